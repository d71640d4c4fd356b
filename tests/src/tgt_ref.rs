//! The reference target: Debian's tgt 1.0.85 (`/usr/sbin/tgtd`, `tgtadm`,
//! `tgt-admin`), started by a test on its own control port and a free loopback
//! portal, so differential tests can give it and our daemons the same input and
//! compare what `tgtadm` shows.
//!
//! Each [`RefTgtd`] owns one `tgtd -f -C N` process: `N` is picked from the process
//! id and a counter and skipped while `/var/run/tgtd/socket.N` (or its lock) exists,
//! so tests (and test binaries) running side by side never share a daemon or touch
//! another's. It is stopped by its PID on drop (tgtd ignores SIGTERM, so SIGKILL),
//! and then its socket files are removed.

use crate::Run;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Debian installs tgt's programs.
const SBIN: &str = "/usr/sbin";

/// The `PATH` tgt-admin runs with: it calls `tgtadm` (and `lsof`, `sg_inq`) from
/// `PATH`, which must find Debian's tgtadm, never ours.
const REF_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Directory of tgtd's control sockets (`socket.N`, `socket.N.lock`).
const SOCKET_DIR: &str = "/var/run/tgtd";

/// A program of Debian's tgt; a missing one fails the test, naming the installer.
pub fn require_ref_tool(name: &str) -> PathBuf {
    let p = Path::new(SBIN).join(name);
    assert!(
        p.exists(),
        "{} is not installed: run scripts/install-test-deps.sh (Debian's tgt is the reference)",
        p.display()
    );
    p
}

/// A program from `PATH` the tests drive (libiscsi's `iscsi-inq`, ...): a missing
/// one fails the test, naming the project's installer.
pub fn require_test_tool(name: &str) -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-test-deps.sh"))
}

/// A free loopback TCP port, found by binding port 0 (free when this returns; the
/// daemon that gets it binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A control port no tgtd uses: derived from our PID and a counter, skipping any
/// `N` whose `socket.N` or lock file exists (a live tgtd's, or one left behind: we
/// never take over or delete another's files).
fn pick_control_port() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // tgtd takes -C values below 32768; stay clear of the low numbers people
        // give by hand (tgt-reference.sh uses the iSCSI port, 3260 and up).
        let port = 20_000 + ((std::process::id() % 1_000) * 12 + n) % 12_000;
        let sock = Path::new(SOCKET_DIR).join(format!("socket.{port}"));
        let lock = Path::new(SOCKET_DIR).join(format!("socket.{port}.lock"));
        if !sock.exists() && !lock.exists() && UnixStream::connect(&sock).is_err() {
            return port;
        }
    }
}

/// A running Debian tgtd; killed by its PID on drop.
pub struct RefTgtd {
    child: Child,
    /// Its `-C` number (`tgtadm -C N`).
    pub control_port: u32,
    /// The iSCSI portal it serves.
    pub portal: SocketAddr,
    /// Whether it came up: only then are `socket.N` and its lock ours to remove
    /// (a tgtd that lost the race for N leaves the winner's files alone).
    ready: bool,
}

impl RefTgtd {
    /// Start Debian's tgtd on its own control port and a free 127.0.0.1 portal; it is
    /// ready (answers `tgtadm --mode system --op show`) when this returns.
    pub fn start() -> RefTgtd {
        let tgtd = require_ref_tool("tgtd");
        require_ref_tool("tgtadm");
        require_ref_tool("tgt-admin");
        let mut last = String::new();
        for _attempt in 0..5 {
            let control_port = pick_control_port();
            let log = std::env::temp_dir().join(format!("tgt-ref-{control_port}.log"));
            let log_file = std::fs::File::create(&log).expect("tgtd log");
            let portal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let child = Command::new(&tgtd)
                .args(["-f", "-C", &control_port.to_string(), "--iscsi"])
                .arg(format!("portal={portal}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("spawn tgtd");
            let mut t = RefTgtd {
                child,
                control_port,
                portal,
                ready: false,
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if !matches!(t.child.try_wait(), Ok(None)) {
                    break; // it lost the port or the socket to someone: try another
                }
                // Answered by our tgtd (still running), not by another on N.
                if t.tgtadm(&["--mode", "system", "--op", "show"]).code == 0
                    && matches!(t.child.try_wait(), Ok(None))
                {
                    t.ready = true;
                    let _ = std::fs::remove_file(&log);
                    return t;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last = format!(
                "-C {control_port} portal {portal}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            let _ = std::fs::remove_file(&log);
        }
        panic!("Debian's tgtd did not start (5 attempts); the last: {last}");
    }

    /// Debian's `tgtadm -C N ARGS`.
    pub fn tgtadm(&self, args: &[&str]) -> Run {
        Command::new(Path::new(SBIN).join("tgtadm"))
            .arg("-C")
            .arg(self.control_port.to_string())
            .args(args)
            .env("PATH", REF_PATH)
            .stdin(Stdio::null())
            .output()
            .expect("run tgtadm")
            .into()
    }

    /// Debian's `tgt-admin -C N ARGS` (it runs Debian's tgtadm from `PATH`).
    pub fn tgt_admin(&self, args: &[&str]) -> Run {
        Command::new(Path::new(SBIN).join("tgt-admin"))
            .arg("-C")
            .arg(self.control_port.to_string())
            .args(args)
            .env("PATH", REF_PATH)
            .stdin(Stdio::null())
            .output()
            .expect("run tgt-admin")
            .into()
    }
}

impl Drop for RefTgtd {
    fn drop(&mut self) {
        // tgtd ignores SIGTERM; our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.ready {
            return;
        }
        for suffix in ["", ".lock"] {
            let _ = std::fs::remove_file(
                Path::new(SOCKET_DIR).join(format!("socket.{}{suffix}", self.control_port)),
            );
        }
    }
}
