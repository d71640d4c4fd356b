//! Administration against both daemons: a table of tgtadm command lines with the
//! stdout, stderr and exit status tgt 1.0.85 gives (recorded once from Debian's tgtd
//! 1.0.85 started on its own control port), targets.conf loading and dump round trip,
//! forced logout of a connected initiator, and the control socket's peer check.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::Client;
use integration_tests::{both_flavours, Daemon, Flavour};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

const IQN: &str = "iqn.2026-11.org.example:admin";

/// tgt 1.0.85's `--op stat` header.
const STAT_HEADER: &str = "tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) \
                           wr_subm(bytes,cmds) wr_done(bytes,cmds) errs\n";

/// (command line, stdout, stderr, exit status). `{file}` is the LUN 1 backing file,
/// `{dir}` the daemon's scratch directory. The daemon starts with tid 1 = IQN, LUN 1
/// on a 64 MiB file, bound to ALL.
const TABLE: &[(&str, &str, &str, i32)] = &[
    // Duplicate tid and name.
    ("--lld iscsi --mode target --op new --tid 1 --targetname iqn.x:y", "", "tgtadm: this target already exists\n", 22),
    ("--lld iscsi --mode target --op delete --tid 9", "", "tgtadm: can't find the target\n", 22),
    ("--lld iscsi --mode logicalunit --op new --tid 9 --lun 1 -b {file}", "", "tgtadm: can't find the target\n", 22),
    // tgt says only "invalid request"; we add the store's reason (see MgmtError::BackingStore).
    ("--lld iscsi --mode logicalunit --op delete --tid 1 --lun 0", "", "tgtadm: invalid request\n", 22),
    ("--lld iscsi --mode logicalunit --op delete --tid 1 --lun 7", "", "tgtadm: can't find the logical unit\n", 22),
    ("--lld iscsi --mode logicalunit --op update --tid 1 --lun 7 --params readonly=1", "", "tgtadm: can't find the logical unit\n", 22),
    ("--lld iscsi --mode logicalunit --op update --tid 1 --lun 1 --params bogus=1", "", "tgtadm: invalid request\n", 22),
    ("--lld iscsi --mode bogus --op show", "", "tgtadm: unknown mode: bogus\n", 1),
    // I/O counters: no session yet, so only the header.
    ("--lld iscsi --mode target --op stat --tid 1", STAT_HEADER, "", 0),
    ("--lld iscsi --mode system --op stat", STAT_HEADER, "", 0),
    ("--lld iscsi --mode logicalunit --op stat --tid 1 --lun 1", STAT_HEADER, "", 0),
    ("--lld iscsi --mode target --op stat --tid 9", "", "tgtadm: can't find the target\n", 22),
    ("--lld iscsi --mode target --op stat", "", "tgtadm: 'tid' option is necessary\n", 22),
    ("--lld iscsi --mode logicalunit --op stat --tid 1", "", "tgtadm: 'lun' option is necessary\n", 22),
    ("--lld iscsi --mode logicalunit --op stat --tid 1 --lun 7", "", "tgtadm: can't find the logical unit\n", 22),
    ("--lld iscsi --mode logicalunit --op stat --tid 1 --lun 1 --bstype rdwr", "", "tgtadm: logicalunit mode: option '-E' is not allowed/supported\n", 22),
    ("--lld iscsi --mode target --op bogus", "", "tgtadm: unknown operation: bogus\n", 1),
    ("--lld iscsi --mode target --op new --tid 2", "", "tgtadm: creating new target requires a name, use --targetname\n", 22),
    ("--lld iscsi --mode target --op new --tid 2 --targetname iqn.a:b --lun 1", "", "tgtadm: target mode: option '-l' is not allowed/supported\n", 22),
    ("--lld iscsi --mode target --op unbind --tid 1 -I 10.0.0.1", "", "tgtadm: this access control rule does not exist\n", 22),
    // SCSI host binding (tgt's tgt_bind_host_to_target): one target per host, unbind
    // found by host alone. --bus resolves through /sys/bus/BUS/devices/DEV/hostN.
    ("--lld iscsi --mode target --op bind --tid 1 --host 3", "", "", 0),
    ("--lld iscsi --mode target --op bind --tid 1 --host 3", "", "tgtadm: this binding already exists\n", 22),
    ("--lld iscsi --mode target --op bind --tid 9 --host 4", "", "tgtadm: can't find the target\n", 22),
    ("--lld iscsi --mode target --op unbind --tid 1 --host 5", "", "tgtadm: can't find the binding\n", 22),
    ("--lld iscsi --mode target --op unbind --tid 1 --host 3", "", "", 0),
    ("--lld iscsi --mode target --op bind --tid 1 --bus nosuchbus,0", "", "tgtadm: can't find bus: nosuchbus\n", 22),
    ("--lld iscsi --mode target --op update --tid 1 --name bogus --value 1", "", "tgtadm: invalid request\n", 22),
    ("--lld iscsi --mode target --op update --tid 9 --name nop_interval --value 1", "", "tgtadm: can't find the target\n", 22),
    ("--lld iscsi --mode system --op update --name State --value bogus", "", "tgtadm: invalid request\n", 22),
    ("--lld iscsi --mode system --op update --name bogus --value on", "", "tgtadm: invalid request\n", 22),
    // Accounts.
    ("--lld iscsi --mode account --op new --user alice --password secret123456", "", "", 0),
    ("--lld iscsi --mode account --op new --user bob --password pw", "", "", 0),
    ("--lld iscsi --mode account --op new --user alice --password x", "", "tgtadm: this account already exists\n", 22),
    ("--lld iscsi --mode account --op show", "Account list:\n    bob\n    alice\n", "", 0),
    ("--lld iscsi --mode account --op bind --tid 1 --user alice", "", "", 0),
    ("--lld iscsi --mode account --op bind --tid 1 --user bob --outgoing", "", "", 0),
    ("--lld iscsi --mode account --op bind --tid 1 --user alice --outgoing", "", "tgtadm: this target already has an outgoing account\n", 22),
    ("--lld iscsi --mode account --op bind --tid 1 --user carol", "", "tgtadm: can't find the account\n", 22),
    ("--lld iscsi --mode account --op bind --tid 9 --user bob", "", "tgtadm: can't find the target\n", 22),
    ("--lld iscsi --mode account --op unbind --tid 1 --user bob", "", "tgtadm: can't find the account\n", 22),
    ("--lld iscsi --mode account --op unbind --tid 1 --user bob --outgoing", "", "", 0),
    ("--lld iscsi --mode account --op delete --user alice", "", "", 0),
    ("--lld iscsi --mode account --op delete --user zed", "", "tgtadm: can't find the account\n", 22),
    ("--lld iscsi --mode account --op show", "Account list:\n    bob\n", "", 0),
    // Target parameters.
    ("--lld iscsi --mode target --op update --tid 1 --name nop_interval --value 5", "", "", 0),
    ("--lld iscsi --mode target --op update --tid 1 --name MaxRecvDataSegmentLength --value 65536", "", "", 0),
    // LU parameters.
    ("--lld iscsi --mode logicalunit --op update --tid 1 --lun 1 --params online=0,removable=1", "", "", 0),
    // Portals: a duplicate and an unknown one are "invalid request" in tgt.
    ("--lld iscsi --mode portal --op new --param portal=bogus", "", "tgtadm: invalid request\n", 22),
    ("--lld iscsi --mode portal --op delete --param portal=127.0.0.1:1", "", "tgtadm: invalid request\n", 22),
    // lld: busy while targets exist.
    ("--lld iscsi --mode lld --op stop", "", "tgtadm: this driver is busy\n", 22),
    ("--lld iscsi --mode lld --op start", "", "", 0),
    // Sessions and connections of an idle target.
    ("--lld iscsi --mode connection --op show --tid 1", "", "", 0),
    ("--lld iscsi --mode connection --op show", "", "tgtadm: can't find the target\n", 22),
    ("--lld iscsi --mode connection --op delete --tid 1 --sid 3 --cid 0", "", "tgtadm: can't find the session\n", 22),
    // Ours only: typographic dashes (tgt fails these with getopt errors).
    ("–lld iscsi –mode target –op delete –tid 9", "", "tgtadm: warning: read '–lld' as '--lld' (a typographic dash in a copied command?)\n\
tgtadm: warning: read '–mode' as '--mode' (a typographic dash in a copied command?)\n\
tgtadm: warning: read '–op' as '--op' (a typographic dash in a copied command?)\n\
tgtadm: warning: read '–tid' as '--tid' (a typographic dash in a copied command?)\n\
tgtadm: can't find the target\n", 22),
    ("–lld iscsi –mode target –op delete –t 9", "", "tgtadm: cannot read '–t': it could be -t or --tid or --targetname\n\
tgtadm: corrected command: tgtadm --lld iscsi --mode target --op delete <–t?> 9\n", 22),
];

fn table_against_tgt_expectations(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let file = d.setup_file_target(1, IQN, 64 << 20);
    let file = file.to_str().expect("utf-8");
    let dir = d.dir.0.to_str().expect("utf-8").to_string();
    for (line, stdout, stderr, code) in TABLE {
        let line = line.replace("{file}", file).replace("{dir}", &dir);
        let args: Vec<&str> = line.split(' ').collect();
        let r = d.tgtadm(&args);
        // The harness adds --control-socket, which the corrected command repeats.
        let sock = format!("--control-socket {} ", d.socket.display());
        let got_err = r.stderr.replace(&sock, "");
        assert_eq!(
            (r.stdout.as_str(), got_err.as_str(), r.code),
            (*stdout, *stderr, *code),
            "{f:?}: tgtadm {line}"
        );
    }
    let show = d.tgtadm_ok(&["--mode", "target", "--op", "show"]);
    assert!(
        show.contains("    Account information:\n    ACL information:\n"),
        "{show}"
    );
    assert!(
        show.contains("            Online: No\n            Removable media: Yes\n"),
        "{show}"
    );
    let params = d.tgtadm_ok(&["--mode", "target", "--op", "show", "--tid", "1"]);
    assert!(
        params.starts_with("nop_interval=5\nnop_count=0\nMaxRecvDataSegmentLength=65536\n"),
        "{params}"
    );
}

fn config_load_dump_round_trip(f: Flavour) {
    let dir = integration_tests::TempDir::new("conf");
    for n in 1..=3 {
        std::fs::File::create(dir.path(&format!("d{n}.img")))
            .and_then(|fh| fh.set_len(8 << 20))
            .expect("backing file");
    }
    std::fs::create_dir_all(dir.path("conf.d")).expect("mkdir");
    std::fs::write(
        dir.path("conf.d/extra.conf"),
        format!(
            "<target iqn.2026-11.org.example:inc>\n  backing-store {}\n</target>\n",
            dir.path("d3.img").display()
        ),
    )
    .expect("write include");
    let conf = dir.path("targets.conf");
    std::fs::write(
        &conf,
        format!(
            "default-driver iscsi\ninclude {}/conf.d/*.conf\n\
             <target {IQN}>\n  <backing-store {}>\n  </backing-store>\n  <backing-store {}>\n    lun 4\n    vendor_id ACME\n  </backing-store>\n\
               initiator-address 127.0.0.1\n  initiator-name iqn.x:y\n  incominguser alice secret123456\n  outgoinguser bob secret654321\n\
             </target>\n",
            dir.0.display(),
            dir.path("d1.img").display(),
            dir.path("d2.img").display()
        ),
    )
    .expect("write conf");
    let d = Daemon::start(f, &["-c", conf.to_str().expect("utf-8")]);
    let show = d.tgtadm_ok(&["--mode", "target", "--op", "show"]);
    // tgt-admin creates targets in name order.
    assert!(show.contains(&format!("Target 1: {IQN}\n")), "{show}");
    assert!(
        show.contains("Target 2: iqn.2026-11.org.example:inc\n"),
        "{show}"
    );
    assert!(show.contains("        LUN: 4\n"), "{show}");
    assert!(show.contains("    Account information:\n        alice\n        bob (outgoing)\n    ACL information:\n        127.0.0.1\n        iqn.x:y\n"), "{show}");
    let admin = integration_tests::bin("tgt-admin");
    let dump = |socket: &std::path::Path| {
        let out = Command::new(&admin)
            .arg("--control-socket")
            .arg(socket)
            .arg("--dump")
            .output()
            .expect("tgt-admin");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let first = dump(&d.socket);
    assert_eq!(
        first,
        format!(
            "default-driver iscsi\n\n<target {IQN}>\n\tbacking-store {}\n\tbacking-store {}\n\
             \tincominguser alice PLEASE_CORRECT_THE_PASSWORD\n\toutgoinguser bob PLEASE_CORRECT_THE_PASSWORD\n\
             \tinitiator-address 127.0.0.1\n\tinitiator-name iqn.x:y\n</target>\n\n\
             <target iqn.2026-11.org.example:inc>\n\tbacking-store {}\n</target>\n\n",
            dir.path("d1.img").display(),
            dir.path("d2.img").display(),
            dir.path("d3.img").display()
        )
    );
    // Load the dump into a fresh daemon: the same state dumps the same text.
    let dumped = dir.path("dumped.conf");
    std::fs::write(&dumped, &first).expect("write dump");
    let d2 = Daemon::start(f, &["-c", dumped.to_str().expect("utf-8")]);
    assert_eq!(dump(&d2.socket), first);
    // tgt-admin --update ALL with a smaller file removes only what went away.
    std::fs::write(
        &conf,
        format!(
            "<target {IQN}>\n  backing-store {}\n  initiator-address 127.0.0.1\n</target>\n",
            dir.path("d1.img").display()
        ),
    )
    .expect("rewrite");
    let out = Command::new(&admin)
        .arg("--control-socket")
        .arg(&d.socket)
        .args(["-c", conf.to_str().expect("utf-8"), "--update", "ALL"])
        .output()
        .expect("tgt-admin");
    assert!(out.status.success(), "{out:?}");
    let show = d.tgtadm_ok(&["--mode", "target", "--op", "show"]);
    assert!(!show.contains("iqn.2026-11.org.example:inc"), "{show}");
    assert!(!show.contains("        LUN: 4\n"), "{show}");
    assert!(show.contains("        LUN: 1\n"), "{show}");
    // A malformed file: the daemon refuses to start, naming the line.
    std::fs::write(&conf, "\n<target iqn.a:b>\n  bogus 1\n").expect("rewrite");
    let out = Command::new(integration_tests::bin(f.binary()))
        .args(["-f", "--iscsi", "portal=127.0.0.1:0", "--control-socket"])
        .arg(dir.path("bad.sock"))
        .args(["-c", conf.to_str().expect("utf-8")])
        .output()
        .expect("daemon");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("targets.conf:2: '<target>' is not closed"),
        "{err}"
    );
}

fn forced_logout_drops_the_initiator(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 8 << 20);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let conns = d.tgtadm_ok(&["--mode", "conn", "--op", "show", "--tid", "1"]);
    let tsih = conns
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Session: "))
        .unwrap_or_else(|| panic!("{conns}"))
        .to_string();
    assert!(conns.contains("        IP Address: 127.0.0.1\n"), "{conns}");
    d.tgtadm_ok(&[
        "--mode", "conn", "--op", "delete", "--tid", "1", "--sid", &tsih, "--cid", "0",
    ]);
    // The idle connection is closed without the initiator sending anything.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let show = d.tgtadm_ok(&["--mode", "target", "--op", "show"]);
        if show.contains("    I_T nexus information:\n    LUN information:\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still logged in: {show}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        matches!(c.recv(), Ok(None) | Err(_)),
        "the socket is closed"
    );
}

fn runtime_portal_is_served(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 8 << 20);
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let portal = format!("portal=127.0.0.1:{port}");
    d.tgtadm_ok(&["--mode", "portal", "--op", "new", "--param", &portal]);
    let shown = d.tgtadm_ok(&["--mode", "portal", "--op", "show"]);
    assert!(
        shown.starts_with(&format!("Portal: 127.0.0.1:{port},1\n")),
        "{shown}"
    );
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = Client::connect(addr).expect("connect to the new portal");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let r = d.tgtadm(&["--mode", "portal", "--op", "new", "--param", &portal]);
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("tgtadm: invalid request\n", 22)
    );
    d.tgtadm_ok(&["--mode", "portal", "--op", "delete", "--param", &portal]);
}

fn non_root_is_refused(f: Flavour) {
    let d = Daemon::start(f, &[]);
    // Let anyone reach the socket so the daemon's own peer check is what refuses.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    std::fs::set_permissions(&d.dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new(integration_tests::bin("tgtadm"))
        .arg("--control-socket")
        .arg(&d.socket)
        .args(["--mode", "target", "--op", "show"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("tgtadm as nobody");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tgtadm: permission denied\n"
    );
    assert_eq!(out.status.code(), Some(22));
}

/// `system update State offline` refuses new logins with SERVICE UNAVAILABLE (0x0301);
/// back to ready, they work again.
fn offline_refuses_logins(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 8 << 20);
    d.tgtadm_ok(&[
        "--mode", "sys", "--op", "update", "--name", "State", "--value", "offline",
    ]);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (3, 1));
    d.tgtadm_ok(&[
        "--mode", "sys", "--op", "update", "--name", "State", "--value", "ready",
    ]);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
}

/// One `--op stat` line in tgt's layout.
#[allow(clippy::too_many_arguments)]
fn stat_line(lun: u64, sid: u64, rd: (u64, u64), wr: (u64, u64), errs: u64) -> String {
    format!(
        "{:3} {lun:3} {sid:3} {:12} {:6} {:12} {:6} {:12} {:6} {:12} {:6} {errs:4}\n",
        1, rd.0, rd.1, rd.0, rd.1, wr.0, wr.1, wr.0, wr.1
    )
}

/// `--mode session --op stat` and `--mode connection --op stat` (tgt's
/// `iscsi_stat_session_by_sid` / `iscsi_stat_connection`): the session's LU lines,
/// then its connection's PDU and octet counters; unknown sessions and connections
/// get tgt's errors.
fn session_and_connection_stat(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 8 << 20);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login_only(Some(IQN)).expect("login"), (0, 0));
    let show = d.tgtadm_ok(&["--mode", "session", "--op", "show", "--tid", "1"]);
    let field = |key: &str| -> u64 {
        show.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {show}"))
    };
    let (tsih, nexus) = (field("Session:"), field("I_T nexus:"));
    // TEST UNIT READY (its power-on unit attention: a SCSI Response), a 4 KiB WRITE
    // as immediate data (a SCSI Response), a 4 KiB READ (one Data-In with status).
    let data = vec![0x5au8; 4096];
    assert_eq!(c.scsi(1, &[0; 6], &[], 0).expect("tur").status, 2);
    let w = c.scsi(1, &integration_tests::client::write10(0, 8), &data, 0);
    assert_eq!(w.expect("write").status, 0);
    let r = c.scsi(1, &integration_tests::client::read10(0, 8), &[], 4096);
    assert_eq!(r.expect("read").data, data);
    let tid = ["--tid", "1"];
    let sid = tsih.to_string();
    let mut args = vec!["--mode", "session", "--op", "stat", "--sid", &sid];
    args.extend(tid);
    let out = d.tgtadm_ok(&args);
    let (lu_part, conn_part) = out.split_once("\n\n").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        format!("{lu_part}\n"),
        format!(
            "{STAT_HEADER}{}{}",
            stat_line(0, nexus, (0, 0), (0, 0), 0),
            stat_line(1, nexus, (4096, 1), (4096, 1), 1)
        )
    );
    let mut lines = conn_part.lines();
    assert_eq!(
        lines.next(),
        Some("sid cid rxdata_octets txdata_octets dataout_pdus datain_pdus cmd_pdus rsp_pdus")
    );
    let line = lines.next().expect("connection line");
    let cols: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(cols.len(), 8, "{line}");
    assert_eq!((cols[0], cols[1]), (tsih, 0), "sid (TSIH) and cid");
    assert!(cols[2] >= 3 * 48 + 4096, "rx octets {line}");
    assert!(cols[3] >= 3 * 48 + 4096, "tx octets {line}");
    assert_eq!(
        &cols[4..],
        &[0, 1, 3, 2],
        "Data-Out, Data-In, commands, responses"
    );
    assert_eq!(lines.next(), None);
    // The same line alone from connection stat.
    let mut args = vec![
        "--mode",
        "connection",
        "--op",
        "stat",
        "--sid",
        &sid,
        "--cid",
        "0",
    ];
    args.extend(tid);
    assert_eq!(d.tgtadm_ok(&args), format!("{conn_part}"));
    // Unknown session or connection: tgt's errors.
    for (args, err) in [
        (
            vec![
                "--mode", "session", "--op", "stat", "--tid", "1", "--sid", "999",
            ],
            "tgtadm: can't find the session\n",
        ),
        (
            vec![
                "--mode",
                "connection",
                "--op",
                "stat",
                "--tid",
                "1",
                "--sid",
                &sid,
                "--cid",
                "5",
            ],
            "tgtadm: can't find the connection\n",
        ),
    ] {
        let r = d.tgtadm(&args);
        assert_eq!((r.code, r.stderr.as_str()), (22, err), "{args:?}");
    }
}

fn stat_counts_reads_and_writes(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 8 << 20);
    let mut c = Client::connect(d.portal).expect("connect");
    // No unit-attention clearing at login: every command below is counted.
    assert_eq!(c.login_only(Some(IQN)).expect("login"), (0, 0));
    let show = d.tgtadm_ok(&["--mode", "target", "--op", "show"]);
    let sid: u64 = show
        .lines()
        .find_map(|l| l.trim().strip_prefix("I_T nexus: "))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{show}"));
    let zero = format!(
        "{STAT_HEADER}{}{}",
        stat_line(0, sid, (0, 0), (0, 0), 0),
        stat_line(1, sid, (0, 0), (0, 0), 0)
    );
    assert_eq!(
        d.tgtadm_ok(&["--mode", "target", "--op", "stat", "--tid", "1"]),
        zero
    );
    // A pending unit attention (if any) fails TEST UNIT READY: an error, no bytes.
    let mut errs = 0;
    while c.scsi(1, &[0; 6], &[], 0).expect("tur").status != 0 {
        errs += 1;
        assert!(errs < 5, "unit attentions do not clear");
    }
    let w = c
        .scsi(
            1,
            &integration_tests::client::write10(0, 8),
            &[0xab; 4096],
            0,
        )
        .expect("write");
    assert_eq!(w.status, 0);
    for blocks in [8, 16] {
        let r = c
            .scsi(
                1,
                &integration_tests::client::read10(0, blocks),
                &[],
                u32::from(blocks) * 512,
            )
            .expect("read");
        assert_eq!(r.status, 0);
    }
    let lun1 = stat_line(1, sid, (12288, 2), (4096, 1), errs);
    let all = format!(
        "{STAT_HEADER}{}{lun1}",
        stat_line(0, sid, (0, 0), (0, 0), 0)
    );
    assert_eq!(
        d.tgtadm_ok(&["--mode", "target", "--op", "stat", "--tid", "1"]),
        all
    );
    assert_eq!(d.tgtadm_ok(&["--mode", "system", "--op", "stat"]), all);
    assert_eq!(
        d.tgtadm_ok(&[
            "--mode",
            "logicalunit",
            "--op",
            "stat",
            "--tid",
            "1",
            "--lun",
            "1"
        ]),
        format!("{STAT_HEADER}{lun1}")
    );
    let json = d.tgtadm_ok(&[
        "--mode",
        "logicalunit",
        "--op",
        "stat",
        "--tid",
        "1",
        "--lun",
        "1",
        "--json",
    ]);
    // tgtadm pretty-prints the daemon's JSON.
    for field in [
        format!("\"sid\": {sid}"),
        "\"rd_done_bytes\": 12288".to_string(),
        "\"wr_done_cmds\": 1".to_string(),
        format!("\"errs\": {errs}"),
    ] {
        assert!(json.contains(&field), "{field} missing: {json}");
    }
    // The counters go with the session.
    assert!(c.logout().expect("logout"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.tgtadm_ok(&["--mode", "target", "--op", "stat", "--tid", "1"]) != STAT_HEADER {
        assert!(
            std::time::Instant::now() < deadline,
            "stats outlive the session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

both_flavours!(
    stat_counts_reads_and_writes,
    session_and_connection_stat,
    offline_refuses_logins,
    table_against_tgt_expectations,
    config_load_dump_round_trip,
    forced_logout_drops_the_initiator,
    runtime_portal_is_served,
    non_root_is_refused,
);
