//! Protocol behaviour seen by a real initiator (libiscsi) against each daemon: CHAP
//! one-way and mutual, header and data digests, per-target limits.
#![allow(clippy::disallowed_methods)]

use integration_tests::{both_flavours, require_tool, run_with_timeout, Daemon, Flavour, Run};
use std::process::Command;
use std::time::Duration;

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

both_flavours!(
    chap_one_way,
    chap_mutual,
    header_digest,
    target_limits_apply
);
