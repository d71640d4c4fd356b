//! The real `tgtadm` binary against the real control socket server, as an
//! administrator would run it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use target_core::Core;
use tgtd_common::mgmt_server::{spawn, MgmtServer};
use tgtd_common::opener::BackendsOpener;

fn temp_socket(tag: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("tgtadm-e2e-{}-{tag}", std::process::id()))
        .join("socket.0")
}

fn start(tag: &str) -> (MgmtServer, PathBuf) {
    let path = temp_socket(tag);
    let server = spawn(&path, Arc::new(Core::new()), Arc::new(BackendsOpener)).expect("spawn");
    (server, path)
}

/// Run tgtadm with `line` against `socket`: (exit status, stdout, stderr).
fn tgtadm(socket: &Path, line: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tgtadm"))
        .arg("--control-socket")
        .arg(socket)
        .args(line.split_whitespace())
        .env_remove("TGTD_CONTROL_SOCKET")
        .output()
        .expect("run tgtadm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ok(socket: &Path, line: &str) -> String {
    let (code, stdout, stderr) = tgtadm(socket, line);
    assert_eq!((code, stderr.as_str()), (0, ""), "{line}");
    stdout
}

#[test]
fn the_readme_session() {
    let (_server, s) = start("readme");
    let target = "--lld iscsi --mode target";
    assert_eq!(
        ok(
            &s,
            &format!(
                "{target} --op new --tid 2 --targetname iqn.2012-12.com.example:server.target"
            )
        ),
        ""
    );
    assert_eq!(
        tgtadm(
            &s,
            &format!("{target} --op new --tid 2 --targetname iqn.2012-12.com.example:other")
        ),
        (
            22,
            String::new(),
            "tgtadm: this target already exists\n".into()
        )
    );
    ok(&s, "--lld iscsi --mode logicalunit --op new --tid 2 --lun 1 --backing-store 64M --bstype memory");
    assert_eq!(
        tgtadm(&s, "--lld iscsi --mode logicalunit --op new --tid 2 --lun 1 --backing-store 64M --bstype memory"),
        (22, String::new(), "tgtadm: this logical unit number already exists\n".into())
    );
    ok(
        &s,
        &format!("{target} --op bind --tid 2 --initiator-address ALL"),
    );
    let shown = ok(&s, &format!("{target} --op show"));
    assert!(shown
        .starts_with("Target 2: iqn.2012-12.com.example:server.target\n    System information:\n"));
    assert!(shown.contains("        LUN: 1\n            Type: disk\n"));
    assert!(shown.contains("            Size: 67 MB, Block size: 512\n"));
    assert!(shown
        .contains("            Backing store type: memory\n            Backing store path: 64M\n"));
    assert!(shown.ends_with("    ACL information:\n        ALL\n"));
    assert_eq!(
        tgtadm(&s, "--mode target --op delete --tid 9"),
        (22, String::new(), "tgtadm: can't find the target\n".into())
    );
    ok(&s, "--mode logicalunit --op delete --tid 2 --lun 1");
    ok(&s, "-m target -o delete -t 2");
    assert_eq!(ok(&s, "--mode target --op show"), "");
    assert!(ok(&s, "--mode system --op show").starts_with("System:\n    State: ready\n"));
}

#[test]
fn command_line_errors_never_reach_the_daemon() {
    let missing = temp_socket("never-bound");
    assert_eq!(
        tgtadm(&missing, "--mode target --op new --tid 1"),
        (
            22,
            String::new(),
            "tgtadm: creating new target requires a name, use --targetname\n".into()
        )
    );
    assert_eq!(
        tgtadm(&missing, "--mode nope --op show"),
        (1, String::new(), "tgtadm: unknown mode: nope\n".into())
    );
}

#[test]
fn no_daemon_is_tgts_enotconn() {
    let missing = temp_socket("absent");
    assert_eq!(
        tgtadm(&missing, "--mode target --op show"),
        (
            107,
            String::new(),
            "tgtadm: failed to send request hdr to tgt daemon, Transport endpoint is not connected\n".into()
        )
    );
}

#[test]
fn the_environment_names_the_socket() {
    let (_server, s) = start("env");
    let out = Command::new(env!("CARGO_BIN_EXE_tgtadm"))
        .args(["--mode", "system", "--op", "show"])
        .env("TGTD_CONTROL_SOCKET", &s)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("System:\n"));
}

#[test]
fn system_delete_waits_for_the_daemon_to_go() {
    let (server, s) = start("delete");
    let flag = server.shutdown_flag();
    // Play the daemon: drop the server once shutdown is requested.
    let watcher = std::thread::Builder::new()
        .spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            drop(server);
        })
        .unwrap();
    assert_eq!(ok(&s, "--mode system --op delete"), "");
    watcher.join().unwrap();
    assert!(!s.exists());
}
