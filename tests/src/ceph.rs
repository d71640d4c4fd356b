//! A real one-node Ceph cluster for the rbd tests, started once per test binary by
//! `scripts/ceph-test-cluster.sh` (one monitor, one OSD on a sparse file, pool
//! `rbd`, cephx off) on a port and in a directory of its own.
//!
//! Rust's test harness never runs the destructors of statics, so the cluster is
//! stopped two ways: an `atexit` hook runs the script's `stop` (by the PIDs it
//! recorded) when the test binary exits normally, and the script's watcher kills the
//! daemons within a second of the test process disappearing by any other means
//! (SIGKILL, a crash).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::{run_with_timeout, workspace, Run};

/// The running cluster.
#[derive(Debug)]
pub struct Ceph {
    /// Its ceph.conf (for `--bsopts conf=` and the `rbd` tool).
    pub conf: PathBuf,
    /// Its directory (logs, PID files, the OSD's block file).
    pub dir: PathBuf,
    /// The monitor's port on 127.0.0.1.
    pub port: u16,
}

static CLUSTER: OnceLock<Ceph> = OnceLock::new();
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Held shared by tests that use the cluster normally and exclusively by a test
/// that disturbs it (stops the OSD), so that they never overlap.
static USE: RwLock<()> = RwLock::new(());

extern "C" fn stop_at_exit() {
    if let Some(dir) = DIR.get() {
        let _ = Command::new(workspace().join("scripts/ceph-test-cluster.sh"))
            .arg("stop")
            .arg(dir)
            .status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A port nobody listens on now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// The cluster, started on first use (about 15 s); a failure to start is a test
/// failure with the script's output, never a skip.
pub fn cluster() -> &'static Ceph {
    CLUSTER.get_or_init(|| {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tgtd-ceph-{}", std::process::id()));
        DIR.set(dir.clone()).expect("cluster dir set once");
        // SAFETY: registering a plain `extern "C" fn` with no captured state.
        let r = unsafe { libc::atexit(stop_at_exit) };
        assert_eq!(r, 0, "atexit");
        let script = workspace().join("scripts/ceph-test-cluster.sh");
        let run = run_with_timeout(
            Command::new(&script)
                .arg("start")
                .arg(&dir)
                .arg(port.to_string())
                .arg(std::process::id().to_string()),
            Duration::from_secs(240),
        );
        assert_eq!(
            run.code,
            0,
            "{} start failed (run scripts/install-test-deps.sh first): {run:?}",
            script.display()
        );
        let conf = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("CEPH_CONF="))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no CEPH_CONF= from {}: {run:?}", script.display()));
        Ceph { conf, dir, port }
    })
}

impl Ceph {
    /// Use the cluster alongside other tests.
    pub fn shared(&self) -> RwLockReadGuard<'static, ()> {
        USE.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Use the cluster alone (to stop and restart its OSD).
    pub fn exclusive(&self) -> RwLockWriteGuard<'static, ()> {
        USE.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `--bsopts` naming this cluster.
    pub fn bsopts(&self) -> String {
        format!("conf={}", self.conf.display())
    }

    /// Run the `rbd` tool on this cluster.
    pub fn rbd(&self, args: &[&str]) -> Run {
        run_with_timeout(
            Command::new("rbd").arg("-c").arg(&self.conf).args(args),
            Duration::from_secs(120),
        )
    }

    /// Run `rbd` and require success; its standard output.
    pub fn rbd_ok(&self, args: &[&str]) -> String {
        let r = self.rbd(args);
        assert_eq!(r.code, 0, "rbd {args:?}: {r:?}");
        r.stdout
    }

    /// Create image `rbd/NAME` of `size` bytes (removed first if it exists).
    pub fn create_image(&self, name: &str, size: u64) -> String {
        let _ = self.rbd(&["snap", "purge", &format!("rbd/{name}")]);
        let _ = self.rbd(&["rm", &format!("rbd/{name}")]);
        self.rbd_ok(&[
            "create",
            "--size",
            &format!("{size}B"),
            &format!("rbd/{name}"),
        ]);
        format!("rbd/{name}")
    }

    /// Run the `rados` tool on this cluster (raw objects: the shared reservation
    /// state of an image).
    pub fn rados(&self, args: &[&str]) -> Run {
        run_with_timeout(
            Command::new("rados").arg("-c").arg(&self.conf).args(args),
            Duration::from_secs(120),
        )
    }

    /// Run the `ceph` tool on this cluster (e.g. `osd blocklist add`); a failure is
    /// tried again up to four times, a second apart (a monitor command can be
    /// refused with EPERM while the tool's first exchange with the monitor races
    /// another client's, seen with tests running in parallel).
    pub fn ceph(&self, args: &[&str]) -> Run {
        let mut tries = 0;
        loop {
            let r = run_with_timeout(
                Command::new("ceph").arg("-c").arg(&self.conf).args(args),
                Duration::from_secs(120),
            );
            tries += 1;
            if r.code == 0 || tries == 5 {
                return r;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The address of the client holding image `path`'s exclusive lock, from `rbd
    /// lock ls` (`None`: nobody holds it).
    pub fn lock_owner(&self, path: &str) -> Option<String> {
        let out = self.rbd_ok(&["lock", "ls", "--format", "json", path]);
        out.split("\"address\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(str::to_owned)
    }

    /// The id of image `path` (`POOL/IMAGE`), from `rbd info`.
    pub fn image_id(&self, path: &str) -> String {
        let info = self.rbd_ok(&["info", "--format", "json", path]);
        info.split("\"id\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no id in rbd info: {info}"))
            .to_owned()
    }

    /// Create image `rbd/NAME` of `size` bytes with exactly the `features` given
    /// (`rbd create --image-feature`, e.g. `layering` alone: no exclusive-lock, the
    /// layout for an image several gateways write at once); removed first if it exists.
    pub fn create_image_with_features(&self, name: &str, size: u64, features: &str) -> String {
        let _ = self.rbd(&["snap", "purge", &format!("rbd/{name}")]);
        let _ = self.rbd(&["rm", &format!("rbd/{name}")]);
        self.rbd_ok(&[
            "create",
            "--size",
            &format!("{size}B"),
            "--image-feature",
            features,
            &format!("rbd/{name}"),
        ]);
        format!("rbd/{name}")
    }

    /// The OSD's PID (for stopping it).
    pub fn osd_pid(&self) -> i32 {
        read_pid(&self.dir.join("osd.pid"))
    }

    /// Stop the OSD (SIGSTOP) and return once every one of its threads is stopped:
    /// `kill` returns when the signal is sent, and a thread busy on the other CPU of
    /// a loaded machine can still answer a request that arrives in the meantime (a
    /// read sent right after `kill` was once served).
    pub fn freeze_osd(&self) {
        let osd = self.osd_pid();
        // SAFETY: signalling the OSD this binary's cluster started.
        assert_eq!(unsafe { libc::kill(osd, libc::SIGSTOP) }, 0);
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(osd) {
            assert!(
                std::time::Instant::now() < until,
                "OSD {osd} not stopped after 10 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Let a frozen OSD go on (SIGCONT).
    pub fn thaw_osd(&self) {
        // SAFETY: signalling the OSD this binary's cluster started.
        assert_eq!(unsafe { libc::kill(self.osd_pid(), libc::SIGCONT) }, 0);
    }
}

/// Whether every thread of process `pid` is stopped (state `T` in its stat line).
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        crate::proc_stat_fields(&t.path().join("stat").to_string_lossy())
            .is_some_and(|f| f.first().is_some_and(|state| state == "T"))
    })
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PID in {}", path.display()))
}
