//! Protocol behaviour seen by a real initiator (libiscsi) against each daemon: CHAP
//! one-way and mutual, header and data digests, per-target limits.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::Client;
use integration_tests::{both_flavours, require_tool, run_with_timeout, Daemon, Flavour, Run};
use iscsi_proto::pdu::Pdu;
use std::process::Command;
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-11.test:protocol";
const SIZE: u64 = 4 * 1024 * 1024;
const USER: &str = "alice";
const SECRET: &str = "alice-secret-123";
const TUSER: &str = "tgtuser";
const TSECRET: &str = "target-secret-456";

fn inq(url: &str, env: &[(&str, &str)]) -> Run {
    let path = require_tool("iscsi-inq");
    let mut cmd = Command::new(path);
    cmd.arg(url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(&mut cmd, Duration::from_secs(30))
}

fn account(d: &Daemon, args: &[&str]) {
    let mut a = vec!["--lld", "iscsi", "--mode", "account"];
    a.extend_from_slice(args);
    d.tgtadm_ok(&a);
}

fn chap_target(d: &Daemon, mutual: bool) {
    d.setup_file_target(1, IQN, SIZE);
    account(d, &["--op", "new", "--user", USER, "--password", SECRET]);
    account(d, &["--op", "bind", "--tid", "1", "--user", USER]);
    if mutual {
        account(d, &["--op", "new", "--user", TUSER, "--password", TSECRET]);
        account(
            d,
            &["--op", "bind", "--tid", "1", "--user", TUSER, "--outgoing"],
        );
    }
}

fn ok(r: &Run) -> bool {
    r.code == 0
}

/// iscsi://user%secret@host/iqn/1 logs in with a bound account and fails otherwise.
fn chap_one_way(f: Flavour) {
    let d = Daemon::start(f, &[]);
    chap_target(&d, false);
    let p = d.portal_str();
    let good = inq(&format!("iscsi://{USER}%{SECRET}@{p}/{IQN}/1"), &[]);
    assert!(ok(&good), "{good:?}");
    let bad = inq(&format!("iscsi://{USER}%wrong-secret-00@{p}/{IQN}/1"), &[]);
    assert!(!ok(&bad), "{bad:?}");
    let none = inq(&format!("iscsi://{p}/{IQN}/1"), &[]);
    assert!(!ok(&none), "{none:?}");
}

/// CHAP on discovery sessions: with an account bound for discovery (`account bind`
/// without `--tid`), SendTargets needs it; unbound, discovery is open again.
fn chap_discovery(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    account(&d, &["--op", "new", "--user", USER, "--password", SECRET]);
    account(&d, &["--op", "bind", "--user", USER]);
    let ls = |url: &str| {
        let path = require_tool("iscsi-ls");
        run_with_timeout(Command::new(path).arg(url), Duration::from_secs(30))
    };
    let p = d.portal_str();
    let good = ls(&format!("iscsi://{USER}%{SECRET}@{p}"));
    assert!(ok(&good) && good.stdout.contains(IQN), "{good:?}");
    let bad = ls(&format!("iscsi://{USER}%wrong-secret-00@{p}"));
    assert!(!ok(&bad) && !bad.stdout.contains(IQN), "{bad:?}");
    let none = ls(&format!("iscsi://{p}"));
    assert!(!ok(&none) && !none.stdout.contains(IQN), "{none:?}");
    account(&d, &["--op", "unbind", "--user", USER]);
    let open = ls(&format!("iscsi://{p}"));
    assert!(ok(&open) && open.stdout.contains(IQN), "{open:?}");
}

/// Mutual CHAP: libiscsi checks the target's answer to its own challenge.
fn chap_mutual(f: Flavour) {
    let d = Daemon::start(f, &[]);
    chap_target(&d, true);
    let url = format!("iscsi://{USER}%{SECRET}@{}/{IQN}/1", d.portal_str());
    let good = inq(
        &url,
        &[
            ("LIBISCSI_CHAP_TARGET_USERNAME", TUSER),
            ("LIBISCSI_CHAP_TARGET_PASSWORD", TSECRET),
        ],
    );
    assert!(ok(&good), "{good:?}");
    let bad = inq(
        &url,
        &[
            ("LIBISCSI_CHAP_TARGET_USERNAME", TUSER),
            ("LIBISCSI_CHAP_TARGET_PASSWORD", "not-the-target-pw"),
        ],
    );
    assert!(!ok(&bad), "{bad:?}");
}

/// Header digests negotiated with ?header_digest=crc32c.
fn header_digest(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let url = format!("iscsi://{}/{IQN}/1?header_digest=crc32c", d.portal_str());
    let r = inq(&url, &[]);
    assert!(ok(&r), "{r:?}");
}

/// A target-side limit set with tgtadm is what the target declares.
fn target_limits_apply(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    d.tgtadm_ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "target",
        "--op",
        "update",
        "--tid",
        "1",
        "--name",
        "MaxRecvDataSegmentLength",
        "--value",
        "4096",
    ]);
    let r = inq(&format!("iscsi://{}/{IQN}/1", d.portal_str()), &[]);
    assert!(ok(&r), "{r:?}");
}

/// A logged-in session to a fresh file target of `d`.
fn logged_in(d: &Daemon) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

/// The next PDU must be an Async Message asking for logout (AsyncEvent 1).
fn expect_logout_request(c: &mut Client) {
    match c.recv().expect("receive") {
        Some(Pdu::AsyncMessage(m)) => assert_eq!(m.async_event, 1, "{m:?}"),
        other => panic!("expected an Async Message, got {other:?}"),
    }
}

/// SIGTERM: the initiator is asked to log out; it does, and the daemon exits 0 at
/// once (well within its grace) and removes its control socket.
fn sigterm_asks_initiators_to_log_out(f: Flavour) {
    let mut d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let mut c = logged_in(&d);
    let started = Instant::now();
    d.signal(libc::SIGTERM);
    expect_logout_request(&mut c);
    assert!(c.logout().expect("logout"), "logout answered");
    assert!(
        c.recv().expect("receive").is_none(),
        "then the connection closes"
    );
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the daemon waited for nobody: {:?}",
        started.elapsed()
    );
    assert!(!d.socket.exists(), "control socket removed");
}

/// SIGINT with an initiator that ignores the request: the connection closes when the
/// grace (`--shutdown-grace`) runs out, and the daemon still exits 0.
fn sigint_gives_up_after_the_grace(f: Flavour) {
    let mut d = Daemon::start(f, &["--shutdown-grace", "300"]);
    d.setup_file_target(1, IQN, SIZE);
    let mut c = logged_in(&d);
    d.signal(libc::SIGINT);
    expect_logout_request(&mut c);
    assert!(
        c.recv().expect("receive").is_none(),
        "closed after the grace"
    );
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!d.socket.exists(), "control socket removed");
}

/// `tgtadm --mode system --op delete` drains the same way (tgt refuses it while a
/// target exists, so the session here is a discovery session).
fn system_delete_asks_initiators_to_log_out(f: Flavour) {
    let mut d = Daemon::start(f, &[]);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(None).expect("discovery login"), (0, 0));
    // tgtadm waits until the daemon is gone, which takes our logout.
    let admin = std::thread::scope(|s| {
        let admin = s.spawn(|| d.tgtadm(&["--mode", "system", "--op", "delete"]));
        expect_logout_request(&mut c);
        assert!(c.logout().expect("logout"), "logout answered");
        assert!(c.recv().expect("receive").is_none());
        admin.join().expect("tgtadm thread")
    });
    assert_eq!(admin.code, 0, "{admin:?}");
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!d.socket.exists(), "control socket removed");
}

/// Two sessions to the target of `d` (different ISIDs), each logged in.
fn two_sessions(d: &Daemon) -> (Client, Client) {
    let a = logged_in(d);
    let mut b = Client::connect(d.portal).expect("connect");
    b.isid = iscsi_proto::Isid([0x80, 0, 0x23, 0x45, 0, 2]);
    assert_eq!(b.login(Some(IQN)).expect("login"), (0, 0));
    (a, b)
}

/// TARGET COLD RESET from one session drops the other session's connection too (two
/// event-loop threads: the other connection may live on another loop).
fn cold_reset_drops_every_session(f: Flavour) {
    let d = Daemon::start(f, &["--threads", "2"]);
    d.setup_file_target(1, IQN, SIZE);
    let (mut a, mut b) = two_sessions(&d);
    assert_eq!(
        a.task_mgmt(7, 0).expect("tmf"),
        Some(0),
        "function complete"
    );
    assert!(a.recv().expect("receive").is_none(), "issuer dropped");
    assert!(
        b.recv().expect("receive").is_none(),
        "other session dropped"
    );
}

/// TARGET WARM RESET from one session: the other session keeps its connection and its
/// next command reports the reset (UNIT ATTENTION, 29h/03h).
fn warm_reset_reaches_every_session(f: Flavour) {
    let d = Daemon::start(f, &["--threads", "2"]);
    d.setup_file_target(1, IQN, SIZE);
    let (mut a, mut b) = two_sessions(&d);
    let tur = [0u8; 6];
    assert_eq!(b.scsi(1, &tur, &[], 0).expect("tur").status, 0);
    assert_eq!(
        a.task_mgmt(6, 0).expect("tmf"),
        Some(0),
        "function complete"
    );
    let r = b.scsi(1, &tur, &[], 0).expect("tur after the reset");
    assert_eq!(r.status, 2, "CHECK CONDITION");
    assert_eq!(r.sense_key_asc(), Some((6, 0x29, 0x03)));
    assert_eq!(
        b.scsi(1, &tur, &[], 0).expect("tur").status,
        0,
        "reported once"
    );
}

/// The first login request to `home`'s target, security stage only: (class, detail,
/// answered keys).
fn security_step(home: &Daemon) -> (u8, u8, Vec<(String, String)>) {
    let mut c = Client::connect(home.portal).expect("connect");
    let (class, detail, pairs, _) = c
        .login_step(
            iscsi_proto::pdu::Stage::Security,
            iscsi_proto::pdu::Stage::Operational,
            true,
            &[
                ("InitiatorName", "iqn.2026-11.test:redirected"),
                ("SessionType", "Normal"),
                ("TargetName", IQN),
                ("AuthMethod", "None"),
            ],
        )
        .expect("login response");
    (class, detail, pairs)
}

/// libiscsi, pointed at `home`, follows the redirection to the other daemon, whose
/// LUN is twice the size.
fn reads_the_away_lun(home: &Daemon) {
    let path = require_tool("iscsi-readcapacity16");
    let url = format!("iscsi://{}/{IQN}/1", home.portal_str());
    let r = run_with_timeout(Command::new(path).arg(&url), Duration::from_secs(30));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("Total size:{}", 2 * SIZE)),
        "{}",
        r.stdout
    );
}

/// `target update --name RedirectAddress/RedirectPort/RedirectReason` (tgt's keys):
/// logins get 0x0101/0x0102 with `TargetAddress`, libiscsi follows it to the other
/// daemon, `show --tid` shows tgt's redirect block, and clearing the address ends it.
fn login_redirect(f: Flavour) {
    let home = Daemon::start(f, &[]);
    home.setup_file_target(1, IQN, SIZE);
    let away = Daemon::start(f, &[]);
    away.setup_file_target(1, IQN, 2 * SIZE);
    let update = |name: &str, value: &str| {
        home.tgtadm_ok(&[
            "--mode", "target", "--op", "update", "--tid", "1", "--name", name, "--value", value,
        ]);
    };
    let away_port = away.portal.port().to_string();
    update("RedirectAddress", "127.0.0.1");
    update("RedirectPort", &away_port);
    // No reason yet: no redirection (as tgt).
    let mut c = Client::connect(home.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    assert!(c.logout().expect("logout"));
    assert_eq!(
        home.tgtadm_ok(&["--mode", "target", "--op", "show", "--tid", "1"]),
        format!("RedirectAddress=127.0.0.1\nRedirectPort={away_port}\nRedirectReason=Unknown\n")
    );
    let bad = home.tgtadm(&[
        "--mode",
        "target",
        "--op",
        "update",
        "--tid",
        "1",
        "--name",
        "RedirectReason",
        "--value",
        "Sometimes",
    ]);
    assert_eq!(
        (bad.code, bad.stderr.as_str()),
        (22, "tgtadm: invalid request\n")
    );
    for (reason, detail) in [("Permanent", 2u8), ("Temporary", 1)] {
        update("RedirectReason", reason);
        let (class, det, pairs) = security_step(&home);
        assert_eq!((class, det), (1, detail), "{reason}");
        let want = format!("127.0.0.1:{away_port}");
        assert_eq!(pairs, vec![("TargetAddress".to_string(), want)]);
    }
    // libiscsi follows a temporary redirection (it takes 0x0102 as a failure): it
    // sees the other daemon's LUN (twice the size).
    reads_the_away_lun(&home);
    // An empty address ends the redirection; show is back to the parameters.
    update("RedirectAddress", "");
    let mut c = Client::connect(home.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let show = home.tgtadm_ok(&["--mode", "target", "--op", "show", "--tid", "1"]);
    assert!(show.starts_with("nop_interval=0\n"), "{show}");
}

/// tgt's `RedirectCallback`: a program asked at each login (arguments: the target
/// name and the initiator's address) answers `ADDRESS:PORT:REASON`; a program that
/// answers nonsense makes the login fail with TARGET ERROR (0x0300), as in tgt.
fn login_redirect_callback(f: Flavour) {
    use std::os::unix::fs::PermissionsExt;
    let home = Daemon::start(f, &[]);
    home.setup_file_target(1, IQN, SIZE);
    let away = Daemon::start(f, &[]);
    away.setup_file_target(1, IQN, 2 * SIZE);
    let args_file = home.dir.path("callback-args");
    let script = home.dir.path("where-to");
    let write_script = |answer: &str| {
        let text = format!(
            "#!/bin/sh\necho \"$@\" > '{}'\necho '{answer}'\n",
            args_file.display()
        );
        std::fs::write(&script, text).expect("write script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
    };
    let away_port = away.portal.port();
    write_script(&format!("127.0.0.1:{away_port}:Temporary"));
    let script_path = script.display().to_string();
    home.tgtadm_ok(&[
        "--mode",
        "target",
        "--op",
        "update",
        "--tid",
        "1",
        "--name",
        "RedirectCallback",
        "--value",
        &script_path,
    ]);
    assert_eq!(
        home.tgtadm_ok(&["--mode", "target", "--op", "show", "--tid", "1"]),
        format!("RedirectCallback={script_path}\n")
    );
    let login = |want: (u8, u8)| {
        let (class, detail, pairs) = security_step(&home);
        assert_eq!((class, detail), want);
        pairs
    };
    let pairs = login((1, 1));
    assert_eq!(
        pairs,
        vec![(
            "TargetAddress".to_string(),
            format!("127.0.0.1:{away_port}")
        )]
    );
    let args = std::fs::read_to_string(&args_file).expect("the callback ran");
    assert_eq!(args.trim(), format!("{IQN} 127.0.0.1"));
    // libiscsi follows it to the other daemon's LUN (twice the size).
    reads_the_away_lun(&home);
    // Nonsense from the program: TARGET ERROR.
    write_script("somewhere else");
    login((3, 0));
    // No callback: logins stay.
    home.tgtadm_ok(&[
        "--mode",
        "target",
        "--op",
        "update",
        "--tid",
        "1",
        "--name",
        "RedirectCallback",
        "--value",
        "",
    ]);
    let mut c = Client::connect(home.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
}

both_flavours!(
    login_redirect,
    login_redirect_callback,
    cold_reset_drops_every_session,
    warm_reset_reaches_every_session,
    chap_one_way,
    chap_discovery,
    chap_mutual,
    header_digest,
    target_limits_apply,
    sigterm_asks_initiators_to_log_out,
    sigint_gives_up_after_the_grace,
    system_delete_asks_initiators_to_log_out
);
