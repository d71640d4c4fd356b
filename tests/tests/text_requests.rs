//! Text Requests and a broken Data-Out sequence, with raw PDUs against each daemon:
//! SendTargets=All in a normal session names the session's target (RFC 7143 Appendix
//! C), malformed SendTargets requests are rejected (libiscsi's newer
//! iSCSI.iSCSISendTargets.Invalid sends these), and a DataSN error at
//! ErrorRecoveryLevel 0 ends that task with CHECK CONDITION while the connection goes on.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use integration_tests::client::{read10, write10, Client};
use integration_tests::{both_flavours, Daemon, Flavour};
use iscsi_proto::pdu::{reject_reason, DataOut, Pdu};
use iscsi_proto::text;

const IQN: &str = "iqn.2026-12.test:text";
const SIZE: u64 = 4 * 1024 * 1024;

fn logged_in(d: &Daemon) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c.clear_unit_attentions().expect("unit attentions");
    c
}

fn send_targets_in_a_normal_session(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    d.new_target(2, "iqn.2026-12.test:other");
    let mut c = logged_in(&d);
    let answer = c.text(b"SendTargets=All\0").expect("text");
    let Some(Pdu::TextResponse(r)) = answer else {
        panic!("expected a Text Response, got {answer:?}");
    };
    assert!(r.final_bit);
    let pairs = text::parse(&r.data).unwrap();
    let names: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "TargetName")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(names, vec![IQN], "{pairs:?}");
    assert!(pairs
        .iter()
        .any(|(k, v)| k == "TargetAddress" && v == &format!("{},1", d.portal)));
}

fn malformed_send_targets_are_rejected(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let mut c = logged_in(&d);
    for bad in [
        &b"SendTargetsPlease=All\0"[..],
        b"SendTargets=Alle\0",
        b"SendTargets=A\0",
        b"sENDtARGETS=aLL\0",
        b"SendTargets\0",
    ] {
        match c.text(bad).expect("an answer") {
            Some(Pdu::Reject(r)) => assert!(
                r.reason == reject_reason::PROTOCOL_ERROR,
                "{:?}: {r:?}",
                String::from_utf8_lossy(bad)
            ),
            other => panic!(
                "{:?}: expected a Reject, got {other:?}",
                String::from_utf8_lossy(bad)
            ),
        }
    }
    // The session still answers.
    let r = c.scsi(1, &read10(0, 1), &[], 512).expect("read");
    assert_eq!(r.status, 0);
}

fn data_sn_error_ends_only_its_task(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let mut c = logged_in(&d);
    let cmd = c.command_pdu(1, &write10(8, 2), 1024, true);
    let itt = cmd.itt;
    c.send(&Pdu::ScsiCommand(cmd)).expect("send");
    let r2t = match c.recv().expect("recv") {
        Some(Pdu::R2t(r)) => r,
        other => panic!("expected an R2T, got {other:?}"),
    };
    let bad = DataOut {
        final_bit: true,
        lun: r2t.lun,
        itt,
        ttt: r2t.ttt,
        exp_stat_sn: c.exp_stat_sn(),
        data_sn: 27,
        buffer_offset: 0,
        data: Bytes::from(vec![0xa6; 1024]),
    };
    c.send(&Pdu::DataOut(bad)).expect("send");
    match c.recv().expect("recv") {
        Some(Pdu::Reject(r)) => assert_eq!(r.reason, reject_reason::PROTOCOL_ERROR),
        other => panic!("expected a Reject, got {other:?}"),
    }
    match c.recv().expect("recv") {
        Some(Pdu::ScsiResponse(r)) => {
            assert_eq!(r.itt, itt);
            assert_eq!(r.status, 2, "CHECK CONDITION");
            // ABORTED COMMAND, 0C/0D (RFC 7143 §11.4.7.2).
            assert_eq!(&r.data[2 + 12..2 + 14], &[0x0c, 0x0d]);
            assert_eq!(r.data[2 + 2] & 0x0f, 0x0b);
        }
        other => panic!("expected a SCSI Response, got {other:?}"),
    }
    // Nothing reached the disk; the connection serves the next commands.
    let r = c.scsi(1, &read10(8, 2), &[], 1024).expect("read");
    assert_eq!((r.status, r.data), (0, vec![0; 1024]));
    let r = c.scsi(1, &write10(8, 2), &[7; 1024], 0).expect("write");
    assert_eq!(r.status, 0);
    let r = c.scsi(1, &read10(8, 2), &[], 1024).expect("read");
    assert_eq!(r.data, vec![7; 1024]);
}

both_flavours!(
    send_targets_in_a_normal_session,
    malformed_send_targets_are_rejected,
    data_sn_error_ends_only_its_task
);
