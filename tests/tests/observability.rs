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

/// SendTargets lists a target only to initiators its ACL lets in, as Debian's tgt
/// does: target 1 is bound to one initiator name, target 2 to everyone. The
/// refused initiator neither sees target 1 nor logs in to it.
fn send_targets_follows_acl(f: Flavour) {
    let d = Daemon::start(f, &["-c", "none"]);
    d.setup_file_target(1, IQN, 4 << 20);
    d.tgtadm_ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "target",
        "--op",
        "unbind",
        "--tid",
        "1",
        "--initiator-address",
        "ALL",
    ]);
    d.tgtadm_ok(&[
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
    d.setup_file_target(2, OPEN, 4 << 20);
    let url = format!("iscsi://{}", d.portal_str());
    let ls = |who: &str| {
        let r = tool("iscsi-ls", &["-i", who, &url]);
        assert_eq!(r.code, 0, "{r:?}");
        let mut names: Vec<String> = r
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("Target:"))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(ls(ALLOWED), [IQN, OPEN]);
    assert_eq!(ls(OTHER), [OPEN]);
    let lun1 = format!("{url}/{IQN}/1");
    assert_eq!(tool("iscsi-inq", &["-i", ALLOWED, &lun1]).code, 0);
    assert_ne!(tool("iscsi-inq", &["-i", OTHER, &lun1]).code, 0);
}

both_flavours!(
    secrets_never_logged,
    secrets_only_for_root,
    control_socket_is_private,
    send_targets_follows_acl,
);
