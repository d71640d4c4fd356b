//! End to end: tgtadm configures each daemon, real initiators (libiscsi) and the
//! in-process client log in, discover, read and write.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{read10, write10, Client};
use integration_tests::{
    both_flavours, require_tool, run_conformance, run_with_timeout, Daemon, Flavour,
};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::Duration;

const IQN: &str = "iqn.2012-12.com.example:server.target";
const SIZE: u64 = 64 * 1024 * 1024;

fn url(d: &Daemon, lun: u32) -> String {
    format!("iscsi://{}/{IQN}/{lun}", d.portal_str())
}

fn libiscsi(tool: &str, args: &[&str]) -> integration_tests::Run {
    let path = require_tool(tool);
    run_with_timeout(Command::new(path).args(args), Duration::from_secs(60))
}

/// The exact commands of the issue, then tgt's show layout, byte for byte.
fn tgtadm_configures_and_shows(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let file = d.setup_file_target(2, IQN, SIZE);
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    let expected = format!(
        "Target 2: {IQN}
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00020000
            SCSI SN: beaf20
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00020001
            SCSI SN: beaf21
            Size: 67 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: {}
            Backing store flags: 
    Account information:
    ACL information:
        ALL
",
        file.display()
    );
    assert_eq!(show, expected);
    // tgt's errors and exit status.
    let dup = d.tgtadm(&[
        "--lld",
        "iscsi",
        "--mode",
        "target",
        "--op",
        "new",
        "--tid",
        "2",
        "--targetname",
        "iqn.x:y",
    ]);
    assert_eq!(
        (dup.code, dup.stderr.as_str()),
        (22, "tgtadm: this target already exists\n")
    );
    let missing = d.tgtadm(&[
        "--lld", "iscsi", "--mode", "target", "--op", "delete", "--tid", "9",
    ]);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (22, "tgtadm: can't find the target\n")
    );
    let lun0 = d.tgtadm(&[
        "--lld",
        "iscsi",
        "--mode",
        "logicalunit",
        "--op",
        "delete",
        "--tid",
        "2",
        "--lun",
        "0",
    ]);
    assert_ne!(lun0.code, 0, "LUN 0 cannot be deleted: {lun0:?}");
    // Delete and re-create: the target disappears from show.
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "delete", "--tid", "2",
    ]);
    assert_eq!(
        d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]),
        ""
    );
}

/// iscsi-ls, iscsi-inq (standard, VPD 0x80, 0x83) and iscsi-readcapacity16.
fn libiscsi_tools_see_the_lun(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(2, IQN, SIZE);
    let ls = libiscsi("iscsi-ls", &["-s", &format!("iscsi://{}", d.portal_str())]);
    assert_eq!(ls.code, 0, "{ls:?}");
    assert!(
        ls.stdout
            .contains(&format!("Target:{IQN} Portal:{},1", d.portal_str())),
        "{}",
        ls.stdout
    );
    assert!(
        ls.stdout.contains("Lun:0    Type:STORAGE_ARRAY_CONTROLLER"),
        "{}",
        ls.stdout
    );
    assert!(
        ls.stdout.contains("Lun:1    Type:DIRECT_ACCESS (Size:63M)"),
        "{}",
        ls.stdout
    );

    let inq = libiscsi("iscsi-inq", &[&url(&d, 1)]);
    assert_eq!(inq.code, 0, "{inq:?}");
    assert!(
        inq.stdout.contains("Peripheral Device Type:DIRECT_ACCESS"),
        "{}",
        inq.stdout
    );
    assert!(inq.stdout.contains("Vendor:IET     "), "{}", inq.stdout);
    assert!(
        inq.stdout.contains("Product:VIRTUAL-DISK    "),
        "{}",
        inq.stdout
    );

    let sn = libiscsi("iscsi-inq", &["-e", "1", "-c", "128", &url(&d, 1)]);
    assert_eq!(sn.code, 0, "{sn:?}");
    assert!(
        sn.stdout.contains("Unit Serial Number:[beaf21]"),
        "{}",
        sn.stdout
    );

    let id = libiscsi("iscsi-inq", &["-e", "1", "-c", "131", &url(&d, 1)]);
    assert_eq!(id.code, 0, "{id:?}");
    assert!(
        id.stdout.contains("IET     00020001"),
        "T10 designator: {}",
        id.stdout
    );
    assert!(
        id.stdout.contains(&format!("{IQN},t,0x0001")),
        "target port name: {}",
        id.stdout
    );

    let cap = libiscsi("iscsi-readcapacity16", &[&url(&d, 1)]);
    assert_eq!(cap.code, 0, "{cap:?}");
    assert!(
        cap.stdout.contains(&format!(
            "RETURNED LOGICAL BLOCK ADDRESS:{}",
            SIZE / 512 - 1
        )),
        "{}",
        cap.stdout
    );
    assert!(
        cap.stdout.contains("LOGICAL BLOCK LENGTH IN BYTES:512"),
        "{}",
        cap.stdout
    );
    assert!(
        cap.stdout.contains(&format!("Total size:{SIZE}")),
        "{}",
        cap.stdout
    );
}

/// libiscsi's conformance tests for the commands this target must have.
fn conformance_subset(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let passed = run_conformance(
        &d,
        IQN,
        1,
        &[
            "SCSI.TestUnitReady",
            "SCSI.Inquiry",
            "SCSI.ReadCapacity10",
            "SCSI.ReadCapacity16",
            "SCSI.Read10",
            "SCSI.Write10",
            "SCSI.Read16",
            "SCSI.Write16",
        ],
    );
    assert!(passed >= 25, "too few tests ran: {passed} passed");
}

/// Bytes written through iSCSI land in the file at the right offset, and bytes written
/// into the file are read back through iSCSI — including a write larger than the
/// immediate data, which takes R2Ts.
fn data_round_trip(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let file = d.setup_file_target(2, IQN, SIZE);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));

    let pattern: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let blocks = (pattern.len() / 512) as u16;
    let r = c
        .scsi(1, &write10(1000, blocks), &pattern, 0)
        .expect("write");
    assert_eq!(r.status, 0, "{r:?}");
    let mut on_disk = vec![0u8; pattern.len()];
    std::fs::File::open(&file)
        .unwrap()
        .read_exact_at(&mut on_disk, 1000 * 512)
        .unwrap();
    assert!(
        on_disk == pattern,
        "written bytes are not in the file at LBA 1000"
    );

    let from_file: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .write_all_at(&from_file, 77 * 512)
        .unwrap();
    let r = c.scsi(1, &read10(77, 16), &[], 8192).expect("read");
    assert_eq!((r.status, r.data.len()), (0, 8192), "{r:?}");
    assert!(
        r.data == from_file,
        "bytes written into the file are not read back"
    );

    let r = c
        .scsi(1, &read10(1000, blocks), &[], pattern.len() as u32)
        .expect("read back");
    assert!(r.status == 0 && r.data == pattern, "read-back mismatch");
    assert!(c.logout().expect("logout"));
}

/// Bad input gets the RFC's answer and the daemon keeps serving.
fn bad_input_is_answered(f: Flavour) {
    let mut d = Daemon::start(f, &[]);
    d.setup_file_target(2, IQN, SIZE);
    d.new_target(3, "iqn.2026-11.org.example:elsewhere");
    d.tgtadm_ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "target",
        "--op",
        "bind",
        "--tid",
        "3",
        "-I",
        "192.0.2.7",
    ]);

    // Unknown target: 0x0203, then the target drops the connection.
    let mut c = Client::connect(d.portal).unwrap();
    assert_eq!(
        c.login(Some("iqn.2026-11.org.example:nope")).unwrap(),
        (2, 3)
    );
    assert!(
        c.recv().unwrap().is_none(),
        "connection must close after a failed login"
    );
    // Bound to another address only: 0x0202.
    let mut c = Client::connect(d.portal).unwrap();
    assert_eq!(
        c.login(Some("iqn.2026-11.org.example:elsewhere")).unwrap(),
        (2, 2)
    );
    // Discovery from 127.0.0.1 lists only what 127.0.0.1 may see.
    let mut c = Client::connect(d.portal).unwrap();
    assert_eq!(c.login(None).unwrap(), (0, 0));
    let pairs = c.send_targets().unwrap();
    assert_eq!(
        pairs,
        vec![
            ("TargetName".to_string(), IQN.to_string()),
            ("TargetAddress".to_string(), format!("{},1", d.portal))
        ]
    );

    let mut c = Client::connect(d.portal).unwrap();
    assert_eq!(c.login(Some(IQN)).unwrap(), (0, 0));
    // Unknown opcode 0xE7: CHECK CONDITION, ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
    let r = c.scsi(1, &[0xe7, 0, 0, 0, 0, 0], &[], 0).unwrap();
    assert_eq!(
        (r.status, r.sense_key_asc()),
        (2, Some((5, 0x20, 0))),
        "{r:?}"
    );
    // READ past the end: LOGICAL BLOCK ADDRESS OUT OF RANGE.
    let last = (SIZE / 512) as u32;
    let r = c.scsi(1, &read10(last - 1, 2), &[], 1024).unwrap();
    assert_eq!(
        (r.status, r.sense_key_asc()),
        (2, Some((5, 0x21, 0))),
        "{r:?}"
    );
    let r = c.scsi(1, &write10(last, 1), &[0u8; 512], 0).unwrap();
    assert_eq!(
        (r.status, r.sense_key_asc()),
        (2, Some((5, 0x21, 0))),
        "{r:?}"
    );
    // A LUN that does not exist: LOGICAL UNIT NOT SUPPORTED.
    let r = c.scsi(9, &read10(0, 1), &[], 512).unwrap();
    assert_eq!(
        (r.status, r.sense_key_asc()),
        (2, Some((5, 0x25, 0))),
        "{r:?}"
    );
    // The session still works after all that.
    let r = c.scsi(1, &read10(0, 1), &[], 512).unwrap();
    assert_eq!((r.status, r.data.len()), (0, 512));

    // Garbage instead of a login: the daemon drops that connection and lives on.
    let mut g = Client::connect(d.portal).unwrap();
    g.send_raw(&[0xff; 48]).unwrap();
    let _ = g.recv();
    assert!(d.alive(), "daemon died");
    let mut c2 = Client::connect(d.portal).unwrap();
    assert_eq!(c2.login(Some(IQN)).unwrap(), (0, 0));
    assert!(c2.logout().unwrap());
}

/// A logged-in initiator shows up in tgtadm's I_T nexus information.
fn show_lists_sessions(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(2, IQN, SIZE);
    let mut c = Client::connect(d.portal).unwrap();
    assert_eq!(c.login(Some(IQN)).unwrap(), (0, 0));
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(
        show.contains("    I_T nexus information:\n        I_T nexus: ")
            && show.contains(&format!(
                "            Initiator: {} alias: ",
                integration_tests::client::INITIATOR
            ))
            && show.contains("            Connection: 0\n                IP Address: 127.0.0.1\n"),
        "{show}"
    );
    assert!(c.logout().unwrap());
    // The session is gone once the logout is through.
    for _ in 0..50 {
        let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
        if !show.contains("I_T nexus: ") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("session still listed after logout");
}

/// `--demo` serves the documented target with no setup.
fn demo_target(f: Flavour) {
    let d = Daemon::start(f, &["--demo"]);
    let r = libiscsi(
        "iscsi-readcapacity16",
        &[&format!(
            "iscsi://{}/iqn.2026-11.org.example:demo/1",
            d.portal_str()
        )],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Total size:1073741824"), "{}", r.stdout);
}

both_flavours!(
    tgtadm_configures_and_shows,
    libiscsi_tools_see_the_lun,
    conformance_subset,
    data_round_trip,
    bad_input_is_answered,
    show_lists_sessions,
    demo_target,
);
