//! Running as a service: systemd's readiness protocol (READY=1 only once the portals
//! accept, STATUS=, STOPPING=1, WATCHDOG=1), SIGHUP reloading targets.conf as
//! `tgt-admin --update ALL`, `--pid-file`, the daemons' own `--version`/`--help`, man
//! pages that match the command line, and plain (colourless) logs on a pipe.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::Client;
use integration_tests::{bin, both_flavours, workspace, Daemon, Flavour, TempDir};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The service manager's end of `NOTIFY_SOCKET`.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &TempDir) -> NotifySocket {
        let path = dir.path("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        NotifySocket { sock, path }
    }

    fn env(&self) -> String {
        self.path.to_str().expect("utf-8 path").to_string()
    }

    /// The next message, or `None` after `limit`.
    fn recv(&self, limit: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(limit)).expect("timeout");
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Messages until one has a line `line` (returned last); panics after `limit`.
    fn until(&self, line: &str, limit: Duration) -> Vec<String> {
        let end = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Some(m) = self.recv(left.max(Duration::from_millis(1))) else {
                break;
            };
            let done = m.lines().any(|l| l == line);
            seen.push(m);
            if done {
                return seen;
            }
        }
        panic!("no {line:?} within {limit:?}; got {seen:?}");
    }
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A daemon started by hand (stderr to a file), killed on drop.
struct Raw(Child);

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// READY=1 comes after the banner and only when every portal accepts: a connection
/// made the moment it arrives succeeds. SIGTERM sends STOPPING=1.
fn ready_after_portals_listen(f: Flavour) {
    let dir = TempDir::new("notify-ready");
    let notify = NotifySocket::bind(&dir);
    let (p1, p2) = (free_port(), free_port());
    let err = dir.path("stderr.log");
    let child = Command::new(bin(f.binary()))
        .env("NOTIFY_SOCKET", notify.env())
        .args(["-f", "-c", "none", "--io-threads", "2", "--iscsi"])
        .arg(format!("portal=127.0.0.1:{p1},portal=127.0.0.1:{p2}"))
        .arg("--control-socket")
        .arg(dir.path("tgtd.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("log file"))
        .spawn()
        .expect("spawn daemon");
    let mut raw = Raw(child);
    let first = notify
        .recv(Duration::from_secs(20))
        .expect("no notification from the daemon");
    // At once: every portal accepts, and the banner was written before READY=1.
    for p in [p1, p2] {
        let addr: SocketAddr = ([127, 0, 0, 1], p).into();
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("portal {addr} refused right after READY=1: {e}"));
    }
    let log = std::fs::read_to_string(&err).expect("read log");
    assert!(
        log.contains("serving iSCSI on "),
        "READY=1 before the banner: {log}"
    );
    let lines: Vec<&str> = first.lines().collect();
    assert!(
        lines.contains(&"READY=1"),
        "first message is not READY=1: {first:?}"
    );
    assert!(
        lines.contains(&format!("MAINPID={}", raw.0.id()).as_str()),
        "{first:?}"
    );
    assert!(
        lines.contains(&"STATUS=serving 0 targets, 0 sessions"),
        "{first:?}"
    );
    kill(raw.0.id(), libc::SIGTERM);
    notify.until("STOPPING=1", Duration::from_secs(10));
    let status = raw.0.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}

/// STATUS= follows the targets and sessions; WATCHDOG=1 comes at half of
/// WATCHDOG_USEC; `system delete` also sends STOPPING=1.
fn status_and_watchdog(f: Flavour) {
    let dir = TempDir::new("notify-status");
    let notify = NotifySocket::bind(&dir);
    let env = notify.env();
    let d = Daemon::start_with_env(
        f,
        &["-c", "none"],
        &[("NOTIFY_SOCKET", &env), ("WATCHDOG_USEC", "200000")],
    );
    notify.until("READY=1", Duration::from_secs(5));
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(900) {
        if let Some(m) = notify.recv(Duration::from_millis(100)) {
            pings += m.lines().filter(|l| *l == "WATCHDOG=1").count();
        }
    }
    assert!(
        pings >= 3,
        "only {pings} WATCHDOG=1 in 900 ms at WATCHDOG_USEC=200000"
    );
    d.setup_file_target(1, "iqn.2026-11.org.example:status", 1 << 20);
    notify.until(
        "STATUS=serving 1 target, 0 sessions",
        Duration::from_secs(8),
    );
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(
        c.login(Some("iqn.2026-11.org.example:status"))
            .expect("login"),
        (0, 0)
    );
    notify.until("STATUS=serving 1 target, 1 session", Duration::from_secs(8));
    let _ = c.logout();
    drop(c);
    // tgt refuses `system delete` while a target exists.
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "delete", "--force", "--tid", "1",
    ]);
    d.tgtadm_ok(&["--mode", "system", "--op", "delete"]);
    notify.until("STOPPING=1", Duration::from_secs(10));
}

/// A reload is framed by RELOADING=1 (with MONOTONIC_USEC, which systemd 253 and
/// later require) and READY=1, so `systemctl reload` waits for it.
fn reload_notifies_the_service_manager(f: Flavour) {
    let dir = TempDir::new("notify-reload");
    let notify = NotifySocket::bind(&dir);
    let env = notify.env();
    let conf = dir.path("targets.conf");
    let a1 = image(&dir.0, "a1.img");
    std::fs::write(
        &conf,
        format!("<target {A}>\n  backing-store {a1}\n</target>\n"),
    )
    .unwrap();
    let d = Daemon::start_with_env(
        f,
        &["-c", conf.to_str().unwrap()],
        &[("NOTIFY_SOCKET", &env)],
    );
    let start = notify.until("READY=1", Duration::from_secs(5));
    assert!(
        start
            .concat()
            .contains("STATUS=serving 1 target, 0 sessions"),
        "{start:?}"
    );
    d.signal(libc::SIGHUP);
    let reloading = notify.until("RELOADING=1", Duration::from_secs(10));
    let last = reloading.last().unwrap();
    assert!(last.contains("MONOTONIC_USEC="), "{last:?}");
    notify.until("READY=1", Duration::from_secs(10));
}

/// Without NOTIFY_SOCKET nothing is sent and nothing fails.
fn no_notify_socket_no_messages(f: Flavour) {
    let d = Daemon::start(f, &["-c", "none"]);
    d.new_target(1, "iqn.2026-11.org.example:quiet");
    assert!(d
        .tgtadm_ok(&["--mode", "target", "--op", "show"])
        .contains("quiet"));
}

fn show(d: &Daemon) -> String {
    d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"])
}

fn image(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .and_then(|f| f.set_len(1 << 20))
        .expect("backing file");
    p.to_str().expect("utf-8").to_string()
}

/// Wait until `cond` holds for `show`, or panic with the last one.
fn wait_show(d: &Daemon, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let s = show(d);
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < end,
            "{what}: never happened; show:\n{s}\nlog:\n{}",
            d.log_lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait for a log line containing every one of `parts`.
fn wait_log(d: &Daemon, parts: &[&str]) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = d
            .log_lines()
            .into_iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return l;
        }
        assert!(
            Instant::now() < end,
            "no log line with {parts:?}:\n{}",
            d.log_lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The LUN lines ("LUN: N") of target `name` in `show`.
fn luns_of(show: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in show.lines() {
        if line.starts_with("Target ") {
            inside = line.ends_with(&format!(": {name}"));
        } else if inside && line.trim().starts_with("LUN: ") {
            out.push(line.trim().to_string());
        }
    }
    out
}

const A: &str = "iqn.2026-11.org.example:a";
const B: &str = "iqn.2026-11.org.example:b";
const C: &str = "iqn.2026-11.org.example:c";

/// SIGHUP applies the file's changes: a new target, a removed one, a changed one (a
/// LUN added).
fn sighup_adds_removes_and_changes(f: Flavour) {
    let dir = TempDir::new("reload");
    let (a1, a2, b1, c1) = (
        image(&dir.0, "a1.img"),
        image(&dir.0, "a2.img"),
        image(&dir.0, "b1.img"),
        image(&dir.0, "c1.img"),
    );
    let conf = dir.path("targets.conf");
    std::fs::write(
        &conf,
        format!(
            "<target {A}>\n  backing-store {a1}\n</target>\n\
             <target {B}>\n  backing-store {b1}\n</target>\n"
        ),
    )
    .unwrap();
    let d = Daemon::start(f, &["-d", "1", "-c", conf.to_str().unwrap()]);
    let before = show(&d);
    assert!(before.contains(A) && before.contains(B), "{before}");
    assert_eq!(luns_of(&before, A).len(), 2, "{before}"); // LUN 0 (controller) + 1
    std::fs::write(
        &conf,
        format!(
            "<target {A}>\n  backing-store {a1}\n  backing-store {a2}\n</target>\n\
             <target {C}>\n  backing-store {c1}\n</target>\n"
        ),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let after = wait_show(&d, "C added", |s| s.contains(C));
    assert!(!after.contains(B), "B still there:\n{after}");
    assert_eq!(luns_of(&after, A).len(), 3, "A has no new LUN:\n{after}");
    assert!(after.contains(&a2), "{after}");
    wait_log(&d, &["SIGHUP", "applied"]);
    // The daemon keeps serving: another reload with the same file changes nothing.
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let again = show(&d);
    assert!(
        again.contains(A) && again.contains(C) && !again.contains(B),
        "{again}"
    );
}

/// A target with a session is neither deleted nor recreated by a reload; the daemon
/// says so. Once the session is gone the next reload removes it.
fn sighup_keeps_a_target_in_use(f: Flavour) {
    let dir = TempDir::new("reload-busy");
    let (a1, c1) = (image(&dir.0, "a1.img"), image(&dir.0, "c1.img"));
    let conf = dir.path("targets.conf");
    std::fs::write(
        &conf,
        format!("<target {A}>\n  backing-store {a1}\n</target>\n"),
    )
    .unwrap();
    let d = Daemon::start(f, &["-c", conf.to_str().unwrap()]);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(A)).expect("login"), (0, 0));
    std::fs::write(
        &conf,
        format!("<target {C}>\n  backing-store {c1}\n</target>\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let after = wait_show(&d, "C added", |s| s.contains(C));
    assert!(after.contains(A), "A was in use and went away:\n{after}");
    let line = wait_log(&d, &[A, "is in use"]);
    assert!(line.contains("WARN"), "{line}");
    // The session still works.
    c.clear_unit_attentions()
        .expect("the session survives the reload");
    let _ = c.logout();
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    d.signal(libc::SIGHUP);
    wait_show(&d, "A removed once idle", |s| {
        !s.contains(A) && s.contains(C)
    });
}

/// A file that does not parse changes nothing; the error names file and line.
fn sighup_parse_error_changes_nothing(f: Flavour) {
    let dir = TempDir::new("reload-bad");
    let a1 = image(&dir.0, "a1.img");
    let conf = dir.path("targets.conf");
    std::fs::write(
        &conf,
        format!("<target {A}>\n  backing-store {a1}\n</target>\n"),
    )
    .unwrap();
    let d = Daemon::start(f, &["-c", conf.to_str().unwrap()]);
    let before = show(&d);
    std::fs::write(
        &conf,
        format!(
            "<target {B}>\n  backing-store {a1}\n</target>\n<target {C}>\n  backing-store {a1}\n"
        ),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let shown = conf.display().to_string();
    let line = wait_log(&d, &["SIGHUP", &format!("{shown}:"), "unchanged"]);
    assert!(line.contains("ERROR"), "{line}");
    // file:line: the unclosed block starts on line 4.
    assert!(line.contains(&format!("{shown}:4:")), "{line}");
    assert_eq!(
        show(&d),
        before,
        "a bad file changed the running configuration"
    );
    // A missing file is the same.
    std::fs::remove_file(&conf).unwrap();
    d.signal(libc::SIGHUP);
    wait_log(&d, &["SIGHUP", &shown, "No such file"]);
    assert_eq!(show(&d), before);
}

/// `--pid-file FILE` holds the daemon's pid while it runs and is gone after.
fn pid_file_written_and_removed(f: Flavour) {
    let dir = TempDir::new("pidfile");
    let pid_file = dir.path("tgtd.pid");
    let mut d = Daemon::start(f, &["-c", "none", "--pid-file", pid_file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(text, format!("{}\n", d.pid()));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!pid_file.exists(), "pid file left behind");
}

/// Without `-f` the pid file names the daemon that runs in the background (the
/// child), not the process that was started and has exited.
fn pid_file_of_a_background_daemon(f: Flavour) {
    let dir = TempDir::new("pidfile-bg");
    let pid_file = dir.path("tgtd.pid");
    let mut parent = Command::new(bin(f.binary()))
        .args(["-c", "none", "--iscsi", "portal=127.0.0.1:0", "--pid-file"])
        .arg(&pid_file)
        .arg("--control-socket")
        .arg(dir.path("tgtd.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // The parent exits 0 once the child serves.
    let status = parent.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&pid_file).expect("pid file after start");
    let pid: u32 = text.trim().parse().expect("a pid");
    assert_ne!(pid, parent.id(), "the pid file names the exited parent");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        f.binary().starts_with(comm.trim()),
        "pid {pid} is {comm:?}, not the daemon"
    );
    kill(pid, libc::SIGTERM);
    let end = Instant::now() + Duration::from_secs(10);
    while pid_file.exists() {
        assert!(Instant::now() < end, "pid file left behind");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A second daemon given a pid file that a running one holds refuses to start.
fn pid_file_held_refuses_second_daemon(f: Flavour) {
    let dir = TempDir::new("pidfile2");
    let pid_file = dir.path("tgtd.pid");
    let d = Daemon::start(f, &["-c", "none", "-p", pid_file.to_str().unwrap()]);
    let out = Command::new(bin(f.binary()))
        .args(["-f", "-c", "none", "--iscsi", "portal=127.0.0.1:0", "-p"])
        .arg(&pid_file)
        .arg("--control-socket")
        .arg(dir.path("other.sock"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pid file") && err.contains(&d.pid().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", d.pid())
    );
}

/// `--version` and `--help` are the daemon's own, not the shared crate's.
fn own_version_and_help(f: Flavour) {
    let run = |arg: &str| {
        let o = Command::new(bin(f.binary()))
            .arg(arg)
            .output()
            .expect("run");
        assert!(o.status.success(), "{arg}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let version = run("--version");
    assert_eq!(
        version.trim(),
        format!("{} {}", f.binary(), env!("CARGO_PKG_VERSION"))
    );
    let help = run("--help");
    let first = help.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{}: userspace iSCSI target daemon", f.binary())),
        "{help}"
    );
    assert!(help.contains(&format!("Usage: {} ", f.binary())), "{help}");
    assert!(
        !help.contains("tgtd-common") && !help.contains("plumbing"),
        "{help}"
    );
    assert!(
        help.contains("--pid-file") && help.contains("SIGHUP"),
        "{help}"
    );
}

/// The man pages packaged from dist/man/ are what `--generate-man` writes now.
fn man_page_is_current(f: Flavour) {
    let dir = TempDir::new("man");
    let o = Command::new(bin(f.binary()))
        .arg("--generate-man")
        .arg(&dir.0)
        .output()
        .expect("run");
    assert!(o.status.success(), "{o:?}");
    let page = match f {
        Flavour::Mio => "tgtd.8",
        Flavour::Tokio => "tgtd-tokio.8",
    };
    let fresh = std::fs::read_to_string(dir.path(page)).expect("generated page");
    let committed = workspace().join("dist/man").join(page);
    let kept = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        fresh == kept,
        "{} is stale: run `cargo run -p {} -- --generate-man dist/man`",
        committed.display(),
        f.binary()
    );
}

/// The other programs' man pages (tgtadm's, tgt-admin's and tgtimg's from their
/// `--help` text, iscsi-bench's from clap) are current too.
#[test]
fn tool_man_pages_are_current() {
    let dir = TempDir::new("man-tools");
    for (prog, page) in [
        ("tgtadm", "tgtadm.8"),
        ("tgt-admin", "tgt-admin.8"),
        ("tgtimg", "tgtimg.8"),
        ("iscsi-bench", "iscsi-bench.1"),
    ] {
        let o = Command::new(bin(prog))
            .arg("--generate-man")
            .arg(&dir.0)
            .output()
            .expect("run");
        assert!(o.status.success(), "{prog}: {o:?}");
        let fresh = std::fs::read_to_string(dir.path(page)).expect("generated page");
        let committed = workspace().join("dist/man").join(page);
        let kept = std::fs::read_to_string(&committed).unwrap_or_default();
        assert!(
            fresh == kept,
            "{} is stale: run `{prog} --generate-man dist/man`",
            committed.display()
        );
    }
}

/// Logs on a pipe carry no ANSI colour codes; `-d 1` adds info, `-d 0` does not.
fn plain_logs_on_a_pipe(f: Flavour) {
    let d = Daemon::start(f, &["-c", "none", "-d", "1"]);
    d.new_target(1, "iqn.2026-11.org.example:plain");
    let lines = wait_log(&d, &["INFO", "management request"]);
    assert!(!lines.contains('\x1b'), "{lines:?}");
    let all = d.log_lines().join("\n");
    assert!(
        !all.contains('\x1b'),
        "escape sequences in piped logs:\n{all:?}"
    );
    let quiet = Daemon::start(f, &["-c", "none"]);
    quiet.new_target(1, "iqn.2026-11.org.example:quiet");
    std::thread::sleep(Duration::from_millis(200));
    let all = quiet.log_lines().join("\n");
    assert!(!all.contains("INFO"), "-d 0 logs info:\n{all}");
}

both_flavours!(
    ready_after_portals_listen,
    status_and_watchdog,
    reload_notifies_the_service_manager,
    no_notify_socket_no_messages,
    sighup_adds_removes_and_changes,
    sighup_keeps_a_target_in_use,
    sighup_parse_error_changes_nothing,
    pid_file_written_and_removed,
    pid_file_of_a_background_daemon,
    pid_file_held_refuses_second_daemon,
    own_version_and_help,
    man_page_is_current,
    plain_logs_on_a_pipe,
);
