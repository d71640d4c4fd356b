//! Full feature phase: CmdSN window, SCSI errors, Reject, NOP, Logout, ABORT TASK.

use super::{assert_clean, closed_event, logged_in, sim_with};
use crate::connection::ConnConfig;
use crate::testkit::{cdb, fixture, IoMode, SenseView};
use bytes::Bytes;
use iscsi_proto::pdu::{reject_reason, Pdu, ScsiCommand, TaskAttr};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};

/// A TEST UNIT READY with an explicit CmdSN, bypassing the initiator's counter.
fn tur_with_cmd_sn(sim: &mut crate::testkit::Sim, cmd_sn: SerialNumber) -> ScsiCommand {
    ScsiCommand {
        immediate: false,
        final_bit: true,
        read: false,
        write: false,
        attr: TaskAttr::Simple,
        lun: LunField::from_lun(1),
        itt: sim.ini.alloc_itt(),
        expected_data_transfer_length: 0,
        cmd_sn,
        exp_stat_sn: sim.ini.exp_stat_sn,
        cdb: Bytes::from(cdb::test_unit_ready()),
        data: Bytes::new(),
    }
}

fn responded(sim: &crate::testkit::Sim, itt: Itt) -> bool {
    sim.ini.received.iter().any(|p| match p {
        Pdu::ScsiResponse(r) => r.itt == itt,
        _ => false,
    })
}

#[test]
fn cmd_sn_gap_is_held_until_filled() {
    let config = ConnConfig {
        cmd_window: 8,
        ..ConnConfig::default()
    };
    let (mut sim, _fx) = sim_with(64, config, 101);
    sim.login_ready(fixture::TARGET);
    let exp = sim.ini.cmd_sn;
    assert_eq!(sim.ini.exp_cmd_sn, exp);
    assert_eq!(sim.ini.max_cmd_sn, exp.plus(7));

    let second = tur_with_cmd_sn(&mut sim, exp.next());
    let third = tur_with_cmd_sn(&mut sim, exp.plus(2));
    let first = tur_with_cmd_sn(&mut sim, exp);
    // Two commands ahead of ExpCmdSN, sent out of order: held, no answer.
    sim.send(Pdu::ScsiCommand(third.clone()));
    sim.send(Pdu::ScsiCommand(second.clone()));
    assert!(!responded(&sim, second.itt));
    assert!(!responded(&sim, third.itt));
    // The gap fills: all three are delivered, in CmdSN order.
    sim.send(Pdu::ScsiCommand(first.clone()));
    let ours = [first.itt, second.itt, third.itt];
    let order: Vec<Itt> = sim.ini.received_where(|p| match p {
        Pdu::ScsiResponse(r) if ours.contains(&r.itt) => Some(r.itt),
        _ => None,
    });
    assert_eq!(order, ours.to_vec());
    assert_eq!(sim.ini.exp_cmd_sn, exp.plus(3));
    assert_clean(&sim);
}

#[test]
fn cmd_sn_outside_window_is_ignored() {
    let config = ConnConfig {
        cmd_window: 4,
        ..ConnConfig::default()
    };
    let (mut sim, _fx) = sim_with(64, config, 102);
    sim.login_ready(fixture::TARGET);
    let exp = sim.ini.cmd_sn;
    let seen = sim.ini.received.len();
    // Beyond MaxCmdSN, and behind ExpCmdSN (a duplicate): both silently dropped
    // (RFC 7143 §4.2.2.1).
    let ahead = tur_with_cmd_sn(&mut sim, exp.plus(10));
    let behind = tur_with_cmd_sn(&mut sim, SerialNumber(exp.get().wrapping_sub(1)));
    sim.send(Pdu::ScsiCommand(ahead.clone()));
    sim.send(Pdu::ScsiCommand(behind.clone()));
    assert!(!responded(&sim, ahead.itt));
    assert!(!responded(&sim, behind.itt));
    assert_eq!(sim.ini.received.len(), seen, "no answer to either");
    // The window did not move: the expected command still works, and the ignored
    // CmdSN does not come back to life when the window reaches it.
    let ok = sim.ini.read(1, &cdb::read10(0, 1), 512);
    sim.drive();
    assert_eq!(sim.ini.task(ok).unwrap().status, Some(0));
    assert!(!responded(&sim, ahead.itt));
    assert_clean(&sim);
}

fn check_condition(seed: u64, lun: u64, cdb: &[u8], edtl: u32) -> SenseView {
    let (mut sim, _fx) = logged_in(seed);
    let itt = sim.ini.read(lun, cdb, edtl);
    sim.drive();
    let t = sim.ini.task(itt).unwrap().clone();
    assert_eq!(t.status, Some(0x02), "CHECK CONDITION");
    assert!(t.data_in.is_empty());
    assert_clean(&sim);
    // The connection goes on.
    let ok = sim.ini.read(1, &cdb::test_unit_ready(), 0);
    sim.drive();
    assert_eq!(sim.ini.task(ok).unwrap().status, Some(0));
    t.sense.expect("sense data")
}

#[test]
fn unknown_scsi_opcode() {
    // SPC-4: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h).
    let s = check_condition(111, 1, &[0xc7, 0, 0, 0, 0, 0], 0);
    assert_eq!((s.key, s.asc, s.ascq), (5, 0x20, 0));
}

#[test]
fn lba_out_of_range() {
    // SBC-3: ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h).
    let s = check_condition(112, 1, &cdb::read10(1020, 8), 4096);
    assert_eq!((s.key, s.asc, s.ascq), (5, 0x21, 0));
}

#[test]
fn lun_that_does_not_exist() {
    // SPC-4: ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25h/00h).
    let s = check_condition(113, 7, &cdb::read10(0, 1), 512);
    assert_eq!((s.key, s.asc, s.ascq), (5, 0x25, 0));
}

#[test]
fn store_failure_is_medium_error() {
    let (mut sim, fx) = logged_in(114);
    fx.store.fail_next(scsi_sbc::IoErrorKind::ReadError);
    let itt = sim.ini.read(1, &cdb::read10(0, 1), 512);
    sim.drive();
    let t = sim.ini.task(itt).unwrap();
    assert_eq!(t.status, Some(0x02));
    let s = t.sense.unwrap();
    assert_eq!((s.key, s.asc, s.ascq), (3, 0x11, 0));
    assert_clean(&sim);
}

#[test]
fn unknown_iscsi_opcode_is_rejected() {
    let (mut sim, _fx) = logged_in(121);
    let mut hdr = [0u8; 48];
    hdr[0] = 0x1c; // not an initiator opcode in RFC 7143 §11.2.1.2
    hdr[16..20].copy_from_slice(&0x1234u32.to_be_bytes());
    sim.ini.send_raw(&hdr);
    sim.drive();
    let rejects = sim.ini.received_where(|p| match p {
        Pdu::Reject(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].reason, reject_reason::COMMAND_NOT_SUPPORTED);
    assert_eq!(
        &rejects[0].data[..],
        &hdr[..],
        "the rejected header comes back"
    );
    assert!(!sim.conn.is_closed());
    // Still in sync.
    let nop = sim.ini.nop_out(Bytes::from_static(b"after"));
    sim.send(Pdu::NopOut(nop));
    assert!(matches!(sim.ini.received.last(), Some(Pdu::NopIn(_))));
    assert_clean(&sim);
}

#[test]
fn snack_is_rejected() {
    // SNACK needs ErrorRecoveryLevel > 0 (RFC 7143 §11.16); at 0 it is a protocol error.
    let (mut sim, _fx) = logged_in(122);
    let s = sim.ini.snack();
    sim.send(Pdu::SnackRequest(s.clone()));
    let rejects = sim.ini.received_where(|p| match p {
        Pdu::Reject(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].reason, reject_reason::PROTOCOL_ERROR);
    assert_eq!(rejects[0].data.len(), 48);
    assert_eq!(rejects[0].data[0] & 0x3f, 0x10);
    assert!(!sim.conn.is_closed());
    assert_clean(&sim);
}

#[test]
fn nop_out_ping_is_echoed() {
    let (mut sim, _fx) = logged_in(131);
    sim.max_chunk = Some(5);
    let ping = sim.ini.nop_out(Bytes::from_static(b"are you there?"));
    let stat_sn = sim.ini.exp_stat_sn;
    sim.send(Pdu::NopOut(ping.clone()));
    let Some(Pdu::NopIn(n)) = sim.ini.received.last() else {
        panic!("expected a NOP-In");
    };
    assert_eq!(n.itt, ping.itt);
    assert_eq!(n.ttt, Ttt::RESERVED);
    assert_eq!(n.data, ping.data);
    assert_eq!(n.stat_sn, stat_sn);
    assert_eq!(n.exp_cmd_sn, ping.cmd_sn.next());
    assert_clean(&sim);
}

#[test]
fn logout_closes_the_connection() {
    let (mut sim, fx) = logged_in(141);
    assert_eq!(fx.target.sessions().len(), 1);
    let l = sim.ini.logout(0);
    sim.send(Pdu::LogoutRequest(l.clone()));
    let Some(Pdu::LogoutResponse(r)) = sim.ini.received.last() else {
        panic!("expected a Logout Response");
    };
    assert_eq!(r.itt, l.itt);
    assert_eq!(r.response, 0);
    assert_eq!(r.time2wait, 2);
    assert_eq!(r.time2retain, 20);
    assert!(sim.conn.is_closed());
    assert!(closed_event(&sim));
    assert!(fx.target.sessions().is_empty());
    assert_clean(&sim);
}

#[test]
fn abort_task_with_io_in_flight() {
    let (mut sim, fx) = logged_in(151);
    let lun1 = || {
        fx.target
            .stat_rows(Some(1))
            .into_iter()
            .next()
            .expect("LUN 1 row")
            .2
    };
    let before = lun1();
    sim.io_mode = IoMode::Hold;
    let victim = sim.ini.read(1, &cdb::read10(0, 8), 4096);
    let other = sim.ini.read(1, &cdb::read10(8, 1), 512);
    sim.drive();
    assert_eq!(sim.pending_io(), 2);
    let abort = sim.ini.abort_task(1, victim);
    sim.send(Pdu::TaskMgmtRequest(abort.clone()));
    let Some(Pdu::TaskMgmtResponse(r)) = sim.ini.received.last() else {
        panic!("expected a Task Management Response");
    };
    assert_eq!(r.itt, abort.itt);
    assert_eq!(r.response, 0, "function complete");
    assert_eq!(sim.conn.tasks_in_flight(), 1);
    // The aborted read's storage completes afterwards: ignored and counted.
    sim.complete_all_io();
    sim.drive();
    assert_eq!(sim.conn.stray_completions(), 1);
    let v = sim.ini.task(victim).unwrap();
    assert!(
        !v.done() && v.data_in.is_empty(),
        "no response for the aborted task"
    );
    assert_eq!(sim.ini.task(other).unwrap().status, Some(0));
    assert_eq!(sim.conn.tasks_in_flight(), 0);
    // `--op stat` (as tgt's abort_cmd): both reads done, the aborted one an error.
    let s = lun1();
    assert_eq!(s.rd_subm_cmds - before.rd_subm_cmds, 2);
    assert_eq!(s.rd_done_cmds - before.rd_done_cmds, 2);
    assert_eq!(s.rd_done_bytes - before.rd_done_bytes, 4096 + 512);
    assert_eq!(s.errs - before.errs, 1);
    assert_clean(&sim);
}

#[test]
fn abort_unknown_task() {
    let (mut sim, _fx) = logged_in(152);
    let mut abort = sim.ini.abort_task(1, Itt(0xdead));
    abort.ref_cmd_sn = sim.ini.cmd_sn;
    sim.send(Pdu::TaskMgmtRequest(abort));
    let Some(Pdu::TaskMgmtResponse(r)) = sim.ini.received.last() else {
        panic!("expected a Task Management Response");
    };
    assert_eq!(r.response, 1, "task does not exist");
    assert_clean(&sim);
}

#[test]
fn target_ping_answered_by_initiator() {
    let config = ConnConfig {
        nop_interval: Some(std::time::Duration::from_secs(5)),
        nop_timeout: std::time::Duration::from_secs(5),
        ..ConnConfig::default()
    };
    let (mut sim, _fx) = sim_with(64, config, 161);
    sim.login_ready(fixture::TARGET);
    // Quiet for 5 s: the target pings; the initiator answers; the connection lives.
    sim.advance(std::time::Duration::from_secs(5));
    sim.drive();
    assert!(sim.ini.received.iter().any(|p| matches!(
        p,
        Pdu::NopIn(n) if n.itt == Itt::RESERVED && n.ttt != Ttt::RESERVED
    )));
    sim.advance(std::time::Duration::from_secs(6));
    sim.drive();
    assert!(!sim.conn.is_closed());
    // An initiator that stops answering is dropped after the NOP timeout.
    sim.ini.auto_ping_reply = false;
    for _ in 0..4 {
        sim.fire_timeout();
        sim.drive();
    }
    assert!(sim.conn.is_closed());
    assert_clean(&sim);
}
