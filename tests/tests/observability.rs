//! Security and observability of both daemons: CHAP secrets kept out of logs and
//! out of non-root answers, the control socket's mode and peer check, SendTargets
//! filtered by the ACL, the `--metrics` endpoint against known I/O, `system show
//! --json` counters, and per-session tracing spans.
#![allow(clippy::disallowed_methods)]

use integration_tests::{bin, both_flavours, require_tool, run_with_timeout, Daemon, Flavour, Run};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-12.test:obs";
const USER: &str = "alice";
const SECRET_CONF: &str = "ConfS3cret-0001";
const SECRET_ADM: &str = "AdmS3cret-00002";
const SECRET_RELOAD: &str = "RelS3cret-00003";
const SECRET_BAD: &str = "BadS3cret-00004";
const NOBODY: u32 = 65534;

fn tool(name: &str, args: &[&str]) -> Run {
    let path = require_tool(name);
    run_with_timeout(Command::new(path).args(args), Duration::from_secs(30))
}

fn image(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .and_then(|f| f.set_len(4 << 20))
        .expect("image");
    p.to_string_lossy().into_owned()
}

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

/// `-d 9` (everything, trace level) through every path a secret takes: targets.conf
/// at start, `account new` on the control socket, CHAP logins good and bad, a SIGHUP
/// reload that creates an account (tgt-admin's verbose commands carry
/// `--password=`), and a reload that fails to parse on an account line. The log
/// has none of the secrets; it does have the lines that would have carried them.
fn secrets_never_logged(f: Flavour) {
    let scratch = integration_tests::TempDir::new("secrets");
    let img = image(&scratch.0, "lu.img");
    let conf = scratch.path("targets.conf");
    let target = |extra: &str| {
        format!(
            "<target {IQN}>\n  backing-store {img}\n  incominguser {USER} {SECRET_CONF}\n{extra}</target>\n"
        )
    };
    std::fs::write(&conf, target("")).unwrap();
    let d = Daemon::start(f, &["-d", "9", "-c", conf.to_str().unwrap()]);
    d.tgtadm_ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "account",
        "--op",
        "new",
        "--user",
        "bob",
        "--password",
        SECRET_ADM,
    ]);
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "account", "--op", "bind", "--tid", "1", "--user", "bob",
    ]);
    let p = d.portal_str();
    let good = tool(
        "iscsi-inq",
        &[&format!("iscsi://{USER}%{SECRET_CONF}@{p}/{IQN}/1")],
    );
    assert_eq!(good.code, 0, "{good:?}");
    let good = tool(
        "iscsi-inq",
        &[&format!("iscsi://bob%{SECRET_ADM}@{p}/{IQN}/1")],
    );
    assert_eq!(good.code, 0, "{good:?}");
    let bad = tool(
        "iscsi-inq",
        &[&format!("iscsi://bob%{SECRET_CONF}@{p}/{IQN}/1")],
    );
    assert_ne!(bad.code, 0, "{bad:?}");
    // A reload that adds an account: tgt-admin's verbose command is logged.
    std::fs::write(
        &conf,
        target(&format!("  incominguser carol {SECRET_RELOAD}\n")),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    wait_log(&d, &["SIGHUP", "applied"]);
    let cmd = wait_log(&d, &["--mode account --op new", "carol"]);
    assert!(cmd.contains("--password=********"), "{cmd}");
    let good = tool(
        "iscsi-inq",
        &[&format!("iscsi://carol%{SECRET_RELOAD}@{p}/{IQN}/1")],
    );
    assert_eq!(good.code, 0, "{good:?}");
    // A reload that does not parse, on an account line.
    std::fs::write(
        &conf,
        target(&format!("  incominguser dave {SECRET_BAD} extra\n")),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    wait_log(&d, &["SIGHUP", "incominguser", "unchanged"]);
    wait_log(&d, &["logged in"]);
    let log = d.log_lines();
    assert!(
        log.len() > 10,
        "-d 9 logged almost nothing:\n{}",
        log.join("\n")
    );
    for secret in [SECRET_CONF, SECRET_ADM, SECRET_RELOAD, SECRET_BAD] {
        let leaks: Vec<_> = log.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} logged: {leaks:#?}");
    }
}

fn as_user(program: &str, socket: &Path, args: &[&str], uid: Option<u32>) -> Run {
    let mut cmd = Command::new(bin(program));
    cmd.arg("--control-socket").arg(socket).args(args);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    run_with_timeout(&mut cmd, Duration::from_secs(30))
}

/// An unprivileged daemon (uid nobody) serves its own uid and root. `show` output has
/// no secret for anyone (tgt's text exactly, the same for both); the answers that
/// carry secrets (`tgt-admin --dump --full`, tgt-admin's echoed commands) keep them
/// for root and mask them for the other caller; a third uid is refused.
fn secrets_only_for_root(f: Flavour) {
    let d = Daemon::start_as(f, &["-c", "none"], NOBODY);
    let adm = |args: &[&str], uid: Option<u32>| as_user("tgtadm", &d.socket, args, uid);
    let ok = |r: Run| {
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    ok(adm(
        &[
            "--lld",
            "iscsi",
            "--mode",
            "target",
            "--op",
            "new",
            "--tid",
            "1",
            "--targetname",
            IQN,
        ],
        Some(NOBODY),
    ));
    ok(adm(
        &[
            "--lld",
            "iscsi",
            "--mode",
            "account",
            "--op",
            "new",
            "--user",
            USER,
            "--password",
            SECRET_ADM,
        ],
        Some(NOBODY),
    ));
    ok(adm(
        &[
            "--lld", "iscsi", "--mode", "account", "--op", "bind", "--tid", "1", "--user", USER,
        ],
        Some(NOBODY),
    ));
    for args in [
        &["--lld", "iscsi", "--mode", "target", "--op", "show"][..],
        &["--lld", "iscsi", "--mode", "account", "--op", "show"][..],
        &["--lld", "iscsi", "--mode", "system", "--op", "show"][..],
    ] {
        let root = ok(adm(args, None));
        let other = ok(adm(args, Some(NOBODY)));
        assert_eq!(root, other, "{args:?}");
        assert!(!root.contains(SECRET_ADM), "{args:?}: {root}");
    }
    let root = ok(adm(
        &["--lld", "iscsi", "--mode", "target", "--op", "show"],
        None,
    ));
    assert!(
        root.contains("    Account information:\n        alice\n"),
        "{root}"
    );

    let dump = |uid| {
        let r = as_user("tgt-admin", &d.socket, &["--dump", "--full"], uid);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    let root = dump(None);
    assert!(
        root.contains(&format!("incominguser {USER} {SECRET_ADM}")),
        "{root}"
    );
    let other = dump(Some(NOBODY));
    assert!(!other.contains(SECRET_ADM), "{other}");
    assert!(
        other.contains(&format!("incominguser {USER} PLEASE_CORRECT_THE_PASSWORD")),
        "{other}"
    );

    // tgt-admin --pretend echoes the tgtadm commands it would run.
    let conf = d.dir.path("pretend.conf");
    std::fs::write(
        &conf,
        format!(
            "<target iqn.2026-12.test:other>\n  incominguser carol {SECRET_RELOAD}\n</target>\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf = conf.to_str().unwrap();
    let pretend = |uid| {
        let r = as_user("tgt-admin", &d.socket, &["-e", "-p", "-c", conf], uid);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    let root = pretend(None);
    assert!(
        root.contains(&format!("--password={SECRET_RELOAD}")),
        "{root}"
    );
    let other = pretend(Some(NOBODY));
    assert!(!other.contains(SECRET_RELOAD), "{other}");
    assert!(
        other.contains("--user=carol --password=********"),
        "{other}"
    );

    // Neither root nor the daemon's uid: refused before anything is read.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = adm(&["--mode", "target", "--op", "show"], Some(NOBODY - 1));
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("tgtadm: permission denied\n", 22)
    );
}

/// The control socket is created 0600 and owned by the daemon's user; with the mode
/// opened up, the peer check alone still refuses another uid.
fn control_socket_is_private(f: Flavour) {
    let d = Daemon::start(f, &["-c", "none"]);
    let meta = std::fs::metadata(&d.socket).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 0);
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&d.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = as_user(
        "tgtadm",
        &d.socket,
        &["--mode", "target", "--op", "show"],
        Some(NOBODY),
    );
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("tgtadm: permission denied\n", 22)
    );
    let r = as_user(
        "tgtadm",
        &d.socket,
        &["--mode", "target", "--op", "show"],
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
}

const ALLOWED: &str = "iqn.2026-12.init:allowed";
const OTHER: &str = "iqn.2026-12.init:other";
const OPEN: &str = "iqn.2026-12.test:open";

/// What `iscsi-ls -i WHO` lists at `portal`, sorted.
fn listed(portal: &str, who: &str) -> Vec<String> {
    let r = tool("iscsi-ls", &["-i", who, &format!("iscsi://{portal}")]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut names: Vec<String> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Target:"))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

/// The same ACL set-up through `tgtadm` (ours or Debian's): target 1 bound to one
/// initiator name only, target 2 to everyone.
fn acl_targets(tgtadm: impl Fn(&[&str]) -> Run, lun1: &str, lun2: &str) {
    let ok = |args: &[&str]| {
        let r = tgtadm(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
    };
    for (tid, name, file) in [("1", IQN, lun1), ("2", OPEN, lun2)] {
        ok(&[
            "--lld", "iscsi", "--mode", "target", "--op", "new", "--tid", tid, "-T", name,
        ]);
        ok(&[
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            tid,
            "--lun",
            "1",
            "-b",
            file,
        ]);
    }
    ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "target",
        "--op",
        "bind",
        "--tid",
        "1",
        "--initiator-name",
        ALLOWED,
    ]);
    ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "2", "-I", "ALL",
    ]);
}

/// SendTargets lists a target only to initiators its ACL lets in, and Debian's tgt
/// lists exactly the same to each: the refused initiator neither sees target 1 nor
/// logs in to it.
fn send_targets_follows_acl(f: Flavour) {
    let d = Daemon::start(f, &["-c", "none"]);
    let (lun1, lun2) = (image(&d.dir.0, "acl1.img"), image(&d.dir.0, "acl2.img"));
    acl_targets(|a| d.tgtadm(a), &lun1, &lun2);
    let p = d.portal_str();
    assert_eq!(listed(&p, ALLOWED), [IQN, OPEN]);
    assert_eq!(listed(&p, OTHER), [OPEN]);
    let lun1_url = format!("iscsi://{p}/{IQN}/1");
    assert_eq!(tool("iscsi-inq", &["-i", ALLOWED, &lun1_url]).code, 0);
    assert_ne!(tool("iscsi-inq", &["-i", OTHER, &lun1_url]).code, 0);

    let reference = integration_tests::tgt_ref::RefTgtd::start();
    acl_targets(|a| reference.tgtadm(a), &lun1, &lun2);
    let rp = reference.portal.to_string();
    for who in [ALLOWED, OTHER] {
        assert_eq!(
            listed(&rp, who),
            listed(&p, who),
            "{who}: tgt and ours differ"
        );
    }
}

/// The address the daemon printed for `--metrics 127.0.0.1:0`.
fn metrics_addr(d: &Daemon) -> String {
    wait_log(d, &["serving metrics on http://"])
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("metrics address")
        .to_string()
}

/// One HTTP exchange: `request` as is, the whole answer back.
fn http(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("send request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn scrape(addr: &str) -> String {
    let r = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
    r.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

/// The value of the sample `series` (name and labels exactly as exposed); 0 when
/// the series is absent (a counter that never moved).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("sample value"))
}

fn lu_series(name: &str, extra: &str) -> String {
    format!("{name}{{target=\"{IQN}\",lun=\"1\"{extra}}}")
}

/// Known I/O through the in-process initiator (5 WRITE(10) of 8 blocks, 3 READ(10)
/// of 4 blocks, one READ past the end), then `/metrics` shows exactly that much more
/// than before it: commands, bytes, the ILLEGAL REQUEST, latency counts, and the
/// gauges; logins and closes by status and reason; `system show --json` carries the
/// same numbers.
fn metrics_match_io(f: Flavour) {
    use integration_tests::client::{read10, write10, Client};
    let d = Daemon::start(f, &["-c", "none", "--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&d);
    d.setup_file_target(1, IQN, 4 << 20);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let before = scrape(&addr);
    assert_eq!(sample(&before, "tgtd_connections"), 1.0, "{before}");
    assert_eq!(sample(&before, "tgtd_sessions"), 1.0, "{before}");
    assert_eq!(
        sample(
            &before,
            &format!("tgtd_target_sessions{{target=\"{IQN}\"}}")
        ),
        1.0
    );
    for i in 0..5u32 {
        let data = vec![i as u8 + 1; 4096];
        let r = c.scsi(1, &write10(i * 8, 8), &data, 0).expect("write");
        assert_eq!(r.status, 0);
    }
    for i in 0..3u32 {
        let r = c.scsi(1, &read10(i * 8, 4), &[], 2048).expect("read");
        assert_eq!((r.status, r.data), (0, vec![i as u8 + 1; 2048]));
    }
    let r = c
        .scsi(1, &read10(8192, 1), &[], 512)
        .expect("read past the end");
    assert_eq!(r.sense_key_asc().map(|s| s.0), Some(5), "{r:?}");
    let after = scrape(&addr);
    let delta = |name: &str, extra: &str| {
        let series = lu_series(name, extra);
        sample(&after, &series) - sample(&before, &series)
    };
    assert_eq!(delta("tgtd_lu_write_commands_total", ""), 5.0, "{after}");
    assert_eq!(delta("tgtd_lu_write_bytes_total", ""), 20480.0, "{after}");
    assert_eq!(delta("tgtd_lu_read_commands_total", ""), 4.0, "{after}");
    assert_eq!(delta("tgtd_lu_read_bytes_total", ""), 6144.0, "{after}");
    assert_eq!(
        delta("tgtd_lu_errors_total", ",sense_key=\"ILLEGAL_REQUEST\""),
        1.0,
        "{after}"
    );
    assert_eq!(delta("tgtd_lu_read_latency_seconds_count", ""), 4.0);
    assert_eq!(delta("tgtd_lu_write_latency_seconds_count", ""), 5.0);
    assert_eq!(
        delta("tgtd_lu_write_latency_seconds_bucket", ",le=\"+Inf\""),
        5.0
    );
    assert_eq!(
        sample(&after, &lu_series("tgtd_lu_store_queue_depth", "")),
        0.0
    );
    assert!(after.contains("# TYPE tgtd_lu_read_latency_seconds histogram"));

    // The management answer carries the same counters.
    let r = d.tgtadm(&["--mode", "system", "--op", "show", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("--json parses");
    let m = &v["metrics"];
    let lu = m["lus"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["target"] == IQN && l["lun"] == 1))
        .unwrap_or_else(|| panic!("no LU 1 in {m}"));
    for (key, name) in [
        ("write_commands", "tgtd_lu_write_commands_total"),
        ("write_bytes", "tgtd_lu_write_bytes_total"),
        ("read_commands", "tgtd_lu_read_commands_total"),
        ("read_bytes", "tgtd_lu_read_bytes_total"),
    ] {
        assert_eq!(
            lu[key].as_f64(),
            Some(sample(&after, &lu_series(name, ""))),
            "{key}"
        );
    }
    assert_eq!(lu["errors"]["ILLEGAL_REQUEST"], 1);
    assert_eq!(m["connections"], 1);
    assert_eq!(m["sessions"], 1);

    // Logins by status, closes by reason.
    let mut bad = Client::connect(d.portal).expect("connect");
    assert_eq!(
        bad.login(Some("iqn.2026-12.test:nosuch")).expect("login"),
        (2, 3)
    );
    assert!(c.logout().expect("logout"));
    drop(c);
    let end = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let t = scrape(&addr);
        if sample(&t, "tgtd_connections") == 0.0 || Instant::now() > end {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sample(&last, "tgtd_connections"), 0.0, "{last}");
    assert_eq!(sample(&last, "tgtd_sessions"), 0.0, "{last}");
    assert_eq!(
        sample(
            &last,
            "tgtd_logins_total{status=\"0x0000\",result=\"success\"}"
        ),
        1.0,
        "{last}"
    );
    assert_eq!(
        sample(
            &last,
            "tgtd_logins_total{status=\"0x0203\",result=\"failure\"}"
        ),
        1.0,
        "{last}"
    );
    assert_eq!(
        sample(&last, "tgtd_connections_closed_total{reason=\"logout\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &last,
            "tgtd_connections_closed_total{reason=\"login_failed\"}"
        ),
        1.0,
        "{last}"
    );
}

/// Store failures and stalls as the metrics show them: a READ failing with EIO
/// from a fault store counts under MEDIUM_ERROR, a held WRITE is one operation of
/// queue depth until released, and an unknown opcode is one Reject counted as
/// `command_not_supported`.
fn metrics_show_store_trouble(f: Flavour) {
    use integration_tests::client::{read10, write10, Client};
    use iscsi_proto::pdu::Pdu;
    let d = Daemon::start(f, &["-c", "none", "--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&d);
    d.setup_fault_target(1, IQN, 4 << 20, "read:eio@100-107");
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let r = c.scsi(1, &read10(100, 8), &[], 4096).expect("read");
    assert_eq!(
        r.sense_key_asc().map(|s| (s.0, s.1)),
        Some((3, 0x11)),
        "{r:?}"
    );
    let t = scrape(&addr);
    assert_eq!(
        sample(
            &t,
            &lu_series("tgtd_lu_errors_total", ",sense_key=\"MEDIUM_ERROR\"")
        ),
        1.0,
        "{t}"
    );
    assert_eq!(
        sample(&t, &lu_series("tgtd_lu_read_bytes_total", "")),
        0.0,
        "{t}"
    );

    // A held write: queue depth 1 while it waits, 0 once released.
    let r = d.lu_update(1, 1, "fault=write:hang@10");
    assert_eq!(r.code, 0, "{r:?}");
    let held = std::thread::spawn(move || {
        let r = c
            .scsi(1, &write10(10, 1), &[7u8; 512], 0)
            .expect("held write");
        (c, r.status)
    });
    let depth = |want: f64| {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let t = scrape(&addr);
            let got = sample(&t, &lu_series("tgtd_lu_store_queue_depth", ""));
            if got == want || Instant::now() > end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(depth(1.0), 1.0);
    let r = d.lu_update(1, 1, "fault=");
    assert_eq!(r.code, 0, "{r:?}");
    let (mut c, status) = held.join().expect("held thread");
    assert_eq!(status, 0);
    assert_eq!(depth(0.0), 0.0);

    // An opcode we do not know, in full feature phase: Reject (command not supported).
    let mut bhs = [0u8; 48];
    bhs[0] = 0x40 | 0x1d;
    bhs[16..20].copy_from_slice(&0x7777u32.to_be_bytes());
    c.send_raw(&bhs).expect("send");
    match c.recv().expect("answer") {
        Some(Pdu::Reject(r)) => assert_eq!(r.reason, 0x05),
        other => panic!("expected a Reject, got {other:?}"),
    }
    let t = scrape(&addr);
    assert_eq!(
        sample(&t, "tgtd_rejects_total{reason=\"command_not_supported\"}"),
        1.0,
        "{t}"
    );
}

/// The metrics listener answers only GET /metrics; other methods, paths, garbage
/// and oversized heads are refused, and a client that sends nothing holds neither
/// the data path nor, past the read timeout, the listener.
fn metrics_refuses_other_requests(f: Flavour) {
    use integration_tests::client::{read10, Client};
    let d = Daemon::start(f, &["-c", "none", "--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&d);
    let status = |req: &[u8]| {
        let r = http(&addr, req);
        r.lines().next().unwrap_or("").to_string()
    };
    assert_eq!(
        status(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        status(b"PUT /metrics HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        status(b"GET /other HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
    assert_eq!(
        status(b"\x16\x03\x01 garbage\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.resize(64 * 1024, b'a');
    assert_eq!(
        status(&huge),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A client that trickles a byte at a time is cut off at the 2 s deadline.
    let trickle = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(&addr).expect("connect");
            let t0 = Instant::now();
            // 80 bytes, 200 ms apart: 16 s if the listener waited for all of it.
            let mut req = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
            req.resize(80, b'a');
            for b in req {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            (t0.elapsed(), rest)
        })
    };
    // A client that connects and says nothing: iSCSI is served meanwhile.
    let idle = std::net::TcpStream::connect(&addr).expect("idle client");
    d.setup_file_target(1, IQN, 4 << 20);
    let t0 = Instant::now();
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let r = c.scsi(1, &read10(0, 8), &[], 4096).expect("read");
    assert_eq!(r.status, 0);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // After the read timeout the listener serves again.
    let body = scrape(&addr);
    assert!(body.contains("tgtd_connections 1"), "{body}");
    drop(idle);
    let (took, answer) = trickle.join().expect("trickle thread");
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(
        took < Duration::from_secs(9),
        "trickling client kept for {took:?}"
    );
}

/// At `-d 1` every log line about a session (login, logout, a failed login) is
/// written inside its span: target, initiator name, peer address and TSIH.
fn session_lines_carry_the_session(f: Flavour) {
    use integration_tests::client::Client;
    let d = Daemon::start(f, &["-c", "none", "-d", "1"]);
    d.setup_file_target(1, IQN, 4 << 20);
    let mut c = Client::connect(d.portal).expect("connect");
    let local = c_local_addr(&c);
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    assert!(c.logout().expect("logout"));
    drop(c);
    let mut bad = Client::connect(d.portal).expect("connect");
    let bad_local = c_local_addr(&bad);
    assert_eq!(
        bad.login(Some("iqn.2026-12.test:nosuch")).expect("login"),
        (2, 3)
    );
    drop(bad);
    let login = wait_log(&d, &["logged in"]);
    let logout = wait_log(&d, &["connection closed: logout"]);
    let failed = wait_log(&d, &["connection closed: login failed"]);
    let init = integration_tests::client::INITIATOR;
    for line in [&login, &logout] {
        assert!(line.contains(&format!("target={IQN}")), "{line}");
        assert!(line.contains(&format!("initiator={init}")), "{line}");
        assert!(line.contains(&format!("peer={local}")), "{line}");
        let tsih = line
            .split("tsih=")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u16>().ok());
        assert!(tsih.is_some_and(|t| t != 0), "{line}");
    }
    assert!(
        failed.contains("target=iqn.2026-12.test:nosuch"),
        "{failed}"
    );
    assert!(failed.contains(&format!("initiator={init}")), "{failed}");
    assert!(failed.contains(&format!("peer={bad_local}")), "{failed}");
    assert!(failed.contains("tsih=0"), "{failed}");
}

fn c_local_addr(c: &integration_tests::client::Client) -> std::net::SocketAddr {
    c.local_addr()
}

both_flavours!(
    metrics_show_store_trouble,
    session_lines_carry_the_session,
    metrics_match_io,
    metrics_refuses_other_requests,
    secrets_never_logged,
    secrets_only_for_root,
    control_socket_is_private,
    send_targets_follows_acl,
);
