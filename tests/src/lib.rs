#![allow(clippy::disallowed_methods)] // the harness owns processes, threads and clocks
//! Test harness: start either daemon on loopback with its own port and control socket,
//! configure it with the real `tgtadm`, and drive it with libiscsi's tools or the
//! in-process [`client::Client`].
//!
//! Every scenario is written once as `fn(Flavour)` and instantiated for `tgtd-mio` and
//! `tgtd-tokio` with [`both_flavours!`].

pub mod ceph;
pub mod client;
pub mod conformance;
pub mod tgt_ref;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `tgtd-mio`.
    Mio,
    /// `tgtd-tokio`.
    Tokio,
}

impl Flavour {
    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Flavour::Mio => "tgtd-mio",
            Flavour::Tokio => "tgtd-tokio",
        }
    }
}

/// Instantiate a scenario `fn name(f: Flavour)` as one test per daemon.
#[macro_export]
macro_rules! both_flavours {
    ($($name:ident),* $(,)?) => {
        mod mio { $( #[test] fn $name() { super::$name($crate::Flavour::Mio) } )* }
        mod tokio { $( #[test] fn $name() { super::$name($crate::Flavour::Tokio) } )* }
    };
}

/// The workspace's `target/<profile>` directory, where cargo put the binaries.
pub fn bin_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The fields of a `/proc/.../stat` line after the command name (which ends at the
/// last ')', and may hold spaces): index 0 is the state (field 3 of the line), 11
/// and 12 utime and stime (fields 14 and 15). `None` if the file cannot be read.
pub fn proc_stat_fields(path: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A binary of the workspace; panics with the fix when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` (the README's test command does)",
        p.display()
    );
    p
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// QEMU's `qemu-img` and the directory of its block modules, as
/// `scripts/install-test-deps.sh` unpacks them (`$TGTD_TEST_QEMU_DIR`, else
/// `target/test-deps/qemu-iscsi` of this checkout); missing is a failure.
pub fn qemu() -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("TGTD_TEST_QEMU_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-deps/qemu-iscsi"));
    let img = dir.join("usr/bin/qemu-img");
    let modules = std::fs::read_dir(dir.join("usr/lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("qemu"))
        .find(|m| m.join("block-iscsi.so").exists());
    match (img.exists(), modules) {
        (true, Some(m)) => (img, m),
        _ => panic!(
            "QEMU's iSCSI driver is not in {}: run scripts/install-test-deps.sh",
            dir.display()
        ),
    }
}

/// Require a libiscsi tool: a missing initiator is a failure, not a skip.
pub fn require_tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/install-test-deps.sh (it installs libiscsi-bin and the other tools the tests drive)");
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tgtd-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }

    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running daemon; killed (by its PID) on drop.
pub struct Daemon {
    child: Child,
    /// The portal it listens on.
    pub portal: SocketAddr,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its scratch directory (backing files go here).
    pub dir: TempDir,
    /// Which daemon.
    pub flavour: Flavour,
    /// Every line the daemon wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code().unwrap_or(-1),
        }
    }
}

impl Daemon {
    /// Start `flavour` on 127.0.0.1 with a kernel-chosen port and its own socket.
    pub fn start(flavour: Flavour, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(flavour, extra, &[])
    }

    /// [`Daemon::start`] with extra environment variables for the daemon.
    pub fn start_with_env(flavour: Flavour, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(flavour, extra, env, None)
    }

    /// [`Daemon::start`] as user and group `uid` (an unprivileged daemon); its
    /// scratch directory is made writable for it.
    pub fn start_as(flavour: Flavour, extra: &[&str], uid: u32) -> Daemon {
        Daemon::launch(flavour, extra, &[], Some(uid))
    }

    fn launch(flavour: Flavour, extra: &[&str], env: &[(&str, &str)], uid: Option<u32>) -> Daemon {
        use std::os::unix::process::CommandExt;
        let dir = TempDir::new(flavour.binary());
        let socket = dir.path("tgtd.sock");
        let mut cmd = Command::new(bin(flavour.binary()));
        if let Some(uid) = uid {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777))
                .expect("chmod scratch dir");
            cmd.uid(uid).gid(uid);
        }
        let mut child = cmd
            .envs(env.iter().copied())
            .args(["-f", "--iscsi", "portal=127.0.0.1:0", "--control-socket"])
            .arg(&socket)
            .args(["--io-threads", "4"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        // The banner line names the bound portal; read it, then keep draining stderr.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().expect("log lock").push(line.clone());
                if !sent && line.contains("serving iSCSI on ") {
                    let _ = tx.send(line.clone());
                    sent = true;
                }
                if std::env::var_os("TGTD_TEST_LOG").is_some() {
                    eprintln!("[daemon] {line}");
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("{} did not start", flavour.binary())
            });
        let portal: SocketAddr = line
            .split("serving iSCSI on ")
            .nth(1)
            .and_then(|r| r.split([' ', ',', ';']).next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse banner: {line}"));
        Daemon {
            child,
            portal,
            socket,
            dir,
            flavour,
            log,
        }
    }

    /// The lines the daemon has written to stderr (its log) so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// `host:port` for URLs.
    pub fn portal_str(&self) -> String {
        self.portal.to_string()
    }

    /// Run the real `tgtadm` against this daemon.
    pub fn tgtadm(&self, args: &[&str]) -> Run {
        Command::new(bin("tgtadm"))
            .arg("--control-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tgtadm")
            .into()
    }

    /// Run `tgtadm` and require success.
    pub fn tgtadm_ok(&self, args: &[&str]) -> String {
        let r = self.tgtadm(args);
        assert_eq!(r.code, 0, "tgtadm {args:?} failed: {r:?}");
        r.stdout
    }

    /// `tgtadm --mode target --op update --tid TID --name NAME --value VALUE`, its
    /// answer unchecked (tests of refused values look at it).
    pub fn target_update(&self, tid: u32, name: &str, value: &str) -> Run {
        let tid = tid.to_string();
        self.tgtadm(&[
            "--lld", "iscsi", "--mode", "target", "--op", "update", "--tid", &tid, "--name", name,
            "--value", value,
        ])
    }

    /// `tgtadm --mode target --op bind --tid TID -I ALL`: every initiator may log in.
    pub fn bind_all(&self, tid: u32) {
        let tid = tid.to_string();
        self.tgtadm_ok(&[
            "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", &tid, "-I", "ALL",
        ]);
    }

    /// `tgtadm --mode target --op new --tid TID --targetname IQN` (no LUN, no binding).
    pub fn new_target(&self, tid: u32, iqn: &str) {
        self.tgtadm_ok(&[
            "--lld",
            "iscsi",
            "--mode",
            "target",
            "--op",
            "new",
            "--tid",
            &tid.to_string(),
            "--targetname",
            iqn,
        ]);
    }

    /// Create tid `tid` named `iqn` with LUN 1 a fault store (`--bstype fault`, rules
    /// `rules`, see `backends::fault`) over a sparse file of `size` bytes, bound to
    /// ALL; returns the file's path.
    pub fn setup_fault_target(&self, tid: u32, iqn: &str, size: u64, rules: &str) -> PathBuf {
        let file = self.sparse_file(&format!("fault-{tid}.img"), size);
        self.new_target(tid, iqn);
        let bsopts = format!("inner=rdwr;rules={rules}");
        let r = self.lu_new(
            tid,
            1,
            file.to_str().expect("utf-8 path"),
            &["--bstype", "fault", "--bsopts", &bsopts],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let tid_s = tid.to_string();
        self.tgtadm_ok(&[
            "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", &tid_s, "-I", "ALL",
        ]);
        file
    }

    /// Create tid `tid` named `iqn` with LUN 1 on a sparse file of `size` bytes, bound
    /// to ALL; returns the file's path.
    pub fn setup_file_target(&self, tid: u32, iqn: &str, size: u64) -> PathBuf {
        let file = self.dir.path(&format!("lun-{tid}.img"));
        let f = std::fs::File::create(&file).expect("create backing file");
        f.set_len(size).expect("size backing file");
        let tid_s = tid.to_string();
        self.new_target(tid, iqn);
        self.tgtadm_ok(&[
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            &tid_s,
            "--lun",
            "1",
            "--backing-store",
            file.to_str().expect("utf-8 path"),
        ]);
        self.tgtadm_ok(&[
            "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", &tid_s, "-I", "ALL",
        ]);
        file
    }

    /// `tgtadm --mode logicalunit --op new --tid TID --lun LUN --backing-store STORE`
    /// plus `extra` (`--bstype`, `--bsoflags`, `--bsopts`, ...); how it answered.
    pub fn lu_new(&self, tid: u32, lun: u32, store: &str, extra: &[&str]) -> Run {
        let (tid, lun) = (tid.to_string(), lun.to_string());
        let mut args = vec![
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            &tid,
            "--lun",
            &lun,
            "--backing-store",
            store,
        ];
        args.extend_from_slice(extra);
        self.tgtadm(&args)
    }

    /// `tgtadm --mode logicalunit --op update --tid TID --lun LUN --params PARAMS`.
    pub fn lu_update(&self, tid: u32, lun: u32, params: &str) -> Run {
        let (tid, lun) = (tid.to_string(), lun.to_string());
        self.tgtadm(&[
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "update",
            "--tid",
            &tid,
            "--lun",
            &lun,
            "--params",
            params,
        ])
    }

    /// A sparse file of `size` bytes in the daemon's scratch directory.
    pub fn sparse_file(&self, name: &str, size: u64) -> PathBuf {
        let p = self.dir.path(name);
        std::fs::File::create(&p)
            .and_then(|f| f.set_len(size))
            .expect("backing file");
        p
    }

    /// The daemon's process id (for /proc and signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// KiB resident in the daemon's read-only shared file mappings (`r--s` in
    /// smaps), only those of `file` when given: the backing files' page-cache pages
    /// that reads lent from a mapping touched (`backends/src/mapped.rs`). Nothing
    /// else in the daemon maps a file shared.
    pub fn lent_rss_kib(&self, file: Option<&str>) -> u64 {
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid())).expect("smaps");
        let mut ours = false;
        let mut kib = 0;
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            let (first, second) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                // A mapping's header: range, permissions, offset, device, inode, path.
                ours = second == "r--s" && file.is_none_or(|f| line.ends_with(f));
            } else if ours && first == "Rss:" {
                kib += second.parse::<u64>().expect("Rss");
            }
        }
        kib
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send `sig` (e.g. `libc::SIGTERM`) to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Wait up to `limit` for the daemon to exit; its exit code (-1: killed by a
    /// signal), or `None` when it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loop device over a file (`losetup -f --show`), detached on drop: the block
/// device the backing-store tests use (root and /dev/loop* needed, as in CI).
pub struct LoopDev(pub String);

impl LoopDev {
    /// Attach `file` to the first free loop device.
    pub fn attach(file: &Path) -> LoopDev {
        LoopDev::attach_with(file, &[])
    }

    /// [`LoopDev::attach`] with more `losetup` options (e.g. `--sector-size 4096`).
    pub fn attach_with(file: &Path, extra: &[&str]) -> LoopDev {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .args(extra)
            .arg(file)
            .output()
            .expect("losetup is missing: scripts/install-test-deps.sh installs it (mount)");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LoopDev(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `losetup -c`: the device takes its file's new size.
    pub fn refresh(&self) {
        let ok = Command::new("losetup")
            .args(["-c", &self.0])
            .status()
            .expect("losetup -c");
        assert!(ok.success(), "losetup -c {}", self.0);
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Run a command with a time limit; a command that hangs is killed and fails the test.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Run {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_with_timeout(child, limit, &format!("{cmd:?}"))
}

/// Wait for `child` (stdout and stderr piped) for at most `limit`, reading its output
/// meanwhile (a child that writes more than a pipe holds must not stall); one that is
/// still running then is killed and fails the test, named `what`.
pub fn wait_with_timeout(mut child: Child, limit: Duration, what: &str) -> Run {
    fn drain(
        pipe: Option<impl std::io::Read + Send + 'static>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = std::time::Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    let Some(status) = status else {
        panic!("{what} hung for {limit:?}: {stderr}");
    };
    Run {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
        code: status.code().unwrap_or(-1),
    }
}

/// libiscsi's conformance suite on LUN `lun` of `iqn` served by `d` (see
/// [`conformance::Conformance`] for the settings): every selected test must pass or
/// skip itself; returns how many passed. A failure names the failing tests and the logs.
pub fn run_conformance(d: &Daemon, iqn: &str, lun: u32, patterns: &[&str]) -> u32 {
    conformance_with(d, iqn, lun, patterns, |c| c)
}

/// [`run_conformance`] with settings changed by `tune` (multipath, idle timeout...).
pub fn conformance_with(
    d: &Daemon,
    iqn: &str,
    lun: u32,
    patterns: &[&str],
    tune: impl FnOnce(conformance::Conformance) -> conformance::Conformance,
) -> u32 {
    let report =
        tune(conformance::Conformance::new(&d.portal_str(), iqn, lun).patterns(patterns)).run();
    report.assert_no_failures();
    eprintln!("{}", report.summary());
    // The logs matter only when something failed (the panic above names them).
    if let Some(dir) = report.logs.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    report.passed().len() as u32
}
