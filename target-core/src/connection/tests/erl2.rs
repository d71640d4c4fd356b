//! ErrorRecoveryLevel 2 (RFC 7143 §6.2.2, §7.2, §11.5.1): a failed connection's
//! tasks wait in the session, a new connection (new CID, or the same CID
//! reinstated) takes them over with TASK REASSIGN and they resume; Time2Retain
//! ends them and the session; refusals; Logout reason 2; session reinstatement.

use super::{assert_clean, base};
use crate::connection::ConnConfig;
use crate::testkit::cdb::{read10, write10};
use crate::testkit::fixture::{self, Bind, Fixture};
use crate::testkit::{drive_all, IoMode, Offer, Sim};
use bytes::Bytes;
use iscsi_proto::pdu::{DataOut, LogoutResponse, Pdu, TaskMgmtResponse};
use iscsi_proto::{Itt, Tsih};
use proptest::prelude::*;
use std::time::Duration;

/// A session at ErrorRecoveryLevel `erl` (MaxConnections 2) and its first
/// connection, CID 1; the initiator accepts 512-byte Data-In segments.
fn session(erl: u8, seed: u64) -> (Sim, Fixture) {
    session_with(erl, seed, |_| {})
}

/// Read data may be lent from the store's pages (`reads_go_out_untouched`) only
/// where no data digest is summed over it and no task can move to another
/// connection: below ErrorRecoveryLevel 2, without DataDigest.
#[test]
fn reads_go_out_untouched_only_without_digest_below_erl_2() {
    for (erl, digest, want) in [
        (0, false, true),
        (1, false, true),
        (2, false, false),
        (0, true, false),
        (1, true, false),
    ] {
        let (s, _fx) = session_with(erl, 60 + u64::from(erl), |o| o.data_digest = digest);
        assert_eq!(
            s.conn.reads_go_out_untouched(),
            want,
            "ERL {erl}, data digest {digest}"
        );
    }
}

/// [`session`] with more of the initiator's offer changed by `offer`.
fn session_with(erl: u8, seed: u64, offer: impl FnOnce(&mut Offer)) -> (Sim, Fixture) {
    let fx = fixture::single_target(1024, Bind::All);
    let mut s = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed,
        base(),
    );
    s.ini.offer.error_recovery_level = erl;
    s.ini.offer.max_connections = 2;
    s.ini.offer.immediate_data = false;
    s.ini.offer.max_recv_data_segment_length = 512;
    offer(&mut s.ini.offer);
    s.login_ready(fixture::TARGET);
    assert_eq!(
        s.ini.login_key("ErrorRecoveryLevel"),
        Some(&*erl.to_string())
    );
    (s, fx)
}

/// Connection `cid` of `old`'s session (its TSIH, ISID and CmdSN), on the fake
/// clock where `old` is.
fn rejoin(fx: &Fixture, old: &Sim, tsih: Tsih, cid: u16, seed: u64) -> Sim {
    let mut s = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed,
        old.now(),
    );
    s.ini.isid = old.ini.isid;
    s.ini.login_tsih = tsih;
    s.ini.cid = cid;
    s.ini.offer = old.ini.offer.clone();
    s.ini.cmd_sn = old.ini.cmd_sn;
    s.ini.next_itt = old.ini.next_itt + 0x1000;
    let r = s.login_normal(fixture::TARGET);
    assert_eq!(r.status_class, 0, "{r:?}");
    assert_eq!(r.tsih, tsih);
    s
}

fn tmf_response(s: &Sim, itt: Itt) -> Option<u8> {
    s.ini
        .received_where(|p| match p {
            Pdu::TaskMgmtResponse(TaskMgmtResponse {
                itt: i, response, ..
            }) if *i == itt => Some(*response),
            _ => None,
        })
        .pop()
}

/// Send TASK REASSIGN of `task` on `s` and drive; the response code.
fn reassign(s: &mut Sim, task: Itt) -> u8 {
    let t = s.ini.task_reassign(1, task);
    let itt = t.itt;
    s.send(Pdu::TaskMgmtRequest(t));
    s.drive();
    tmf_response(s, itt).expect("TMF response")
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn writes(s: &Sim) -> usize {
    s.ops
        .iter()
        .filter(|o| matches!(o, scsi_sbc::BlockOp::Write { .. }))
        .count()
}

#[test]
fn a_read_whose_connection_died_mid_io_resumes_on_a_new_cid() {
    let (mut a, fx) = session(2, 300);
    let tsih = a.ini.tsih;
    let want = pattern(2048, 1);
    fx.store.write_at(4096, &want);
    a.io_mode = IoMode::Hold;
    let itt = a.ini.read(1, &read10(8, 4), 2048);
    a.drive();
    assert_eq!(a.pending_io(), 1);
    // The connection fails with the read in flight: the session outlives it.
    a.conn.handle_close();
    a.drive();
    assert_eq!(fx.core.sessions.len(), 1);
    assert_eq!(fx.target.sessions().len(), 1);
    assert!(fx.target.sessions()[0].connections.is_empty());
    // Its completion goes nowhere (the adapter dropped the connection).
    a.complete_all_io();
    assert!(a.ini.task(itt).is_some_and(|t| !t.done()));
    // A new connection, CID 2, takes the task over.
    let mut b = rejoin(&fx, &a, tsih, 2, 301);
    b.ini.adopt(itt, a.ini.task(itt).unwrap().clone());
    assert_eq!(reassign(&mut b, itt), 0);
    let t = b.ini.task(itt).unwrap();
    assert_eq!(t.status, Some(0));
    assert_eq!(&t.data[..], &want[..]);
    assert_eq!(t.data_in.len(), 4);
    assert_clean(&b);
    assert_eq!(fx.target.sessions()[0].connections.len(), 1);
}

#[test]
fn an_answered_read_resumes_from_exp_data_sn_on_the_reinstated_cid() {
    let (mut a, fx) = session(2, 310);
    let tsih = a.ini.tsih;
    let want = pattern(2048, 7);
    fx.store.write_at(0, &want);
    let itt = a.ini.read(1, &read10(0, 4), 2048);
    a.drive();
    // The target sent 4 Data-In (status in the last); the initiator got 2.
    let mut seen = a.ini.task(itt).unwrap().clone();
    assert_eq!(seen.data_in.len(), 4);
    seen.data_in.truncate(2);
    seen.status = None;
    seen.data.truncate(1024);
    // The same CID logs in again while the old connection still looks alive to
    // the target: connection reinstatement; the old one closes at its next input
    // and its unacknowledged answers wait in the session.
    let mut b = rejoin(&fx, &a, tsih, 1, 311);
    {
        let mut all = [&mut a, &mut b];
        drive_all(&mut all);
    }
    assert!(a.conn.is_closed());
    b.ini.adopt(itt, seen);
    assert_eq!(reassign(&mut b, itt), 0);
    let t = b.ini.task(itt).unwrap();
    let sns: Vec<u32> = t.data_in.iter().map(|d| d.data_sn).collect();
    assert_eq!(sns, vec![0, 1, 2, 3], "resumed at DataSN 2");
    assert_eq!(t.status, Some(0));
    assert_eq!(&t.data[..], &want[..]);
    assert_clean(&b);
}

#[test]
fn a_write_whose_connection_died_gets_recovery_r2ts_on_the_new_connection() {
    let (mut a, fx) = session(2, 320);
    let tsih = a.ini.tsih;
    let data = pattern(8192, 3);
    a.ini.auto_data_out = false;
    let itt = a.ini.write(1, &write10(16, 16), data.clone());
    a.drive();
    assert_eq!(a.ini.task(itt).unwrap().r2ts.len(), 1);
    a.conn.handle_close();
    a.drive();
    let mut b = rejoin(&fx, &a, tsih, 2, 321);
    b.ini.adopt(itt, a.ini.task(itt).unwrap().clone());
    assert_eq!(reassign(&mut b, itt), 0);
    let t = b.ini.task(itt).unwrap();
    assert_eq!(t.status, Some(0));
    assert!(t.r2ts.len() >= 2, "a recovery R2T: {:?}", t.r2ts);
    assert_eq!(writes(&b), 1);
    assert_eq!(fx.store.read_at(16 * 512, 8192), &data[..]);
    assert_clean(&b);
}

/// A Data-Out of `data[off..end)` on burst `ttt`, DataSN `sn`.
fn data_out(
    s: &Sim,
    itt: Itt,
    ttt: iscsi_proto::Ttt,
    data: &Bytes,
    sn: u32,
    off: usize,
    end: usize,
) -> DataOut {
    DataOut {
        final_bit: false,
        lun: iscsi_proto::LunField::from_lun(1),
        itt,
        ttt,
        exp_stat_sn: s.ini.exp_stat_sn,
        data_sn: sn,
        buffer_offset: off as u32,
        data: data.slice(off..end),
    }
}

#[test]
fn a_reassigned_write_is_asked_only_for_the_ranges_that_did_not_arrive() {
    let (mut a, fx) = session(2, 322);
    let tsih = a.ini.tsih;
    let data = pattern(8192, 4);
    a.ini.auto_data_out = false;
    let itt = a.ini.write(1, &write10(48, 16), data.clone());
    a.drive();
    // One burst of 8192 (MaxBurstLength 256 KiB): the first 3072 bytes arrive in
    // three PDUs, then a fourth out of sequence (DataSN 4 at 5120: a PDU lost in
    // between), which is not kept; then the connection dies.
    let r = a.ini.task(itt).unwrap().r2ts[0].clone();
    assert_eq!((r.buffer_offset, r.desired_data_transfer_length), (0, 8192));
    for (sn, off) in [(0u32, 0usize), (1, 1024), (2, 2048), (4, 5120)] {
        let d = data_out(&a, itt, r.ttt, &data, sn, off, off + 1024);
        a.send(Pdu::DataOut(d));
    }
    a.drive();
    a.conn.handle_close();
    let mut b = rejoin(&fx, &a, tsih, 2, 323);
    b.ini.adopt(itt, a.ini.task(itt).unwrap().clone());
    assert_eq!(reassign(&mut b, itt), 0);
    let t = b.ini.task(itt).unwrap();
    assert_eq!(t.status, Some(0));
    // One recovery R2T, for exactly what is missing (the out-of-sequence PDU's
    // bytes are asked for again too).
    let asked: Vec<(u32, u32)> = t.r2ts[1..]
        .iter()
        .map(|r| (r.buffer_offset, r.desired_data_transfer_length))
        .collect();
    assert_eq!(asked, vec![(3072, 8192 - 3072)]);
    let sent: usize = t.data_out.iter().map(|d| d.data.len()).sum();
    assert_eq!(sent, 8192 - 3072, "only the rest went again");
    assert_eq!(writes(&b), 1);
    assert_eq!(fx.store.read_at(48 * 512, 8192), &data[..]);
    assert_clean(&b);
}

#[test]
fn a_reassigned_write_with_a_hole_between_bursts_is_asked_for_each_hole() {
    // Bursts of 2048, two outstanding: the second burst arrives whole, the
    // third half, the first not at all; then the connection dies.
    let (mut a, fx) = session_with(2, 327, |o| {
        o.max_burst_length = 2048;
        o.max_outstanding_r2t = 2;
    });
    let tsih = a.ini.tsih;
    let data = pattern(8192, 6);
    a.ini.auto_data_out = false;
    let itt = a.ini.write(1, &write10(64, 16), data.clone());
    a.drive();
    let bursts = |s: &Sim| -> Vec<(u32, u32)> {
        s.ini
            .task(itt)
            .unwrap()
            .r2ts
            .iter()
            .map(|r| (r.buffer_offset, r.desired_data_transfer_length))
            .collect()
    };
    assert_eq!(bursts(&a), vec![(0, 2048), (2048, 2048)]);
    let r1 = a.ini.task(itt).unwrap().r2ts[1].clone();
    for (sn, off) in [(0u32, 0usize), (1, 1024)] {
        let mut d = data_out(&a, itt, r1.ttt, &data, sn, 2048 + off, 3072 + off);
        d.final_bit = sn == 1;
        a.send(Pdu::DataOut(d));
    }
    a.drive();
    assert_eq!(bursts(&a)[2], (4096, 2048));
    let r2 = a.ini.task(itt).unwrap().r2ts[2].clone();
    a.send(Pdu::DataOut(data_out(
        &a, itt, r2.ttt, &data, 0, 4096, 5120,
    )));
    a.drive();
    a.conn.handle_close();
    let mut b = rejoin(&fx, &a, tsih, 2, 329);
    b.ini.adopt(itt, a.ini.task(itt).unwrap().clone());
    assert_eq!(reassign(&mut b, itt), 0);
    let t = b.ini.task(itt).unwrap();
    assert_eq!(t.status, Some(0));
    // The hole before what arrived, then the rest, each within MaxBurstLength.
    assert_eq!(
        bursts(&b)[3..].to_vec(),
        vec![(0, 2048), (5120, 2048), (7168, 1024)]
    );
    assert_eq!(writes(&b), 1);
    assert_eq!(fx.store.read_at(64 * 512, 8192), &data[..]);
    assert_clean(&b);
}

#[test]
fn a_write_in_flight_is_written_again_once_and_answered() {
    let (mut a, fx) = session(2, 325);
    let tsih = a.ini.tsih;
    let data = pattern(4096, 9);
    a.io_mode = IoMode::Hold;
    let itt = a.ini.write(1, &write10(40, 8), data.clone());
    a.drive();
    assert_eq!(a.pending_io(), 1);
    a.conn.handle_close();
    let mut b = rejoin(&fx, &a, tsih, 2, 326);
    b.ini.adopt(itt, a.ini.task(itt).unwrap().clone());
    assert_eq!(reassign(&mut b, itt), 0);
    assert_eq!(b.ini.task(itt).unwrap().status, Some(0));
    assert_eq!(writes(&b), 1);
    assert_eq!(fx.store.read_at(40 * 512, 4096), &data[..]);
}

#[test]
fn answered_reads_kept_for_reassignment_count_against_the_cap_and_the_oldest_is_shed() {
    let (mut a, fx) = session(2, 315);
    let tsih = a.ini.tsih;
    let sh = fx.core.sessions.shared(tsih).unwrap();
    let want: Vec<Bytes> = (0..3u8).map(|k| pattern(2048, 20 + k)).collect();
    let mut itts = Vec::new();
    for (k, w) in want.iter().enumerate() {
        fx.store.write_at(k * 4096, w);
        itts.push(a.ini.read(1, &read10(k as u32 * 8, 4), 2048));
    }
    a.drive();
    // Answered, never acknowledged (no PDU followed): the connection fails. What
    // it kept for ERL 1 is released; the three reads' data wait for reassignment
    // and are counted.
    let mut seen = Vec::new();
    for itt in &itts {
        let mut t = a.ini.task(*itt).unwrap().clone();
        t.data_in.clear();
        t.data.clear();
        t.status = None;
        t.response = None;
        seen.push(t);
    }
    a.conn.handle_close();
    assert_eq!(sh.orphans(), 3);
    assert_eq!(sh.retained_bytes(), 3 * 2048);
    // Other connections of the session hold the rest of the cap.
    let others = crate::connection::RETAIN_CAP - 3 * 2048;
    assert!(sh.retain(others, crate::connection::RETAIN_CAP));
    // The newest read is taken over first: answering it again needs room, so the
    // oldest answered read (the first) sheds its data.
    let mut b = rejoin(&fx, &a, tsih, 2, 316);
    for (itt, t) in itts.iter().zip(&seen) {
        b.ini.adopt(*itt, t.clone());
    }
    assert_eq!(reassign(&mut b, itts[2]), 0);
    let t = b.ini.task(itts[2]).unwrap();
    assert_eq!((t.status, &t.data[..]), (Some(0), &want[2][..]));
    assert!(sh.retained_bytes() <= crate::connection::RETAIN_CAP);
    // The first one's data is gone: its reassignment ends it with CHECK
    // CONDITION, ABORTED COMMAND, INTERNAL TARGET FAILURE (the initiator retries).
    assert_eq!(reassign(&mut b, itts[0]), 0);
    let t = b.ini.task(itts[0]).unwrap();
    assert_eq!(t.status, Some(2));
    let sense = t.sense.unwrap();
    assert_eq!((sense.key, sense.asc, sense.ascq), (0x0b, 0x44, 0x00));
    assert!(t.data.is_empty());
    // The second still has its data.
    assert_eq!(reassign(&mut b, itts[1]), 0);
    let t = b.ini.task(itts[1]).unwrap();
    assert_eq!((t.status, &t.data[..]), (Some(0), &want[1][..]));
    assert!(sh.retained_bytes() <= crate::connection::RETAIN_CAP);
    assert_clean(&b);
    // Acknowledged and the others' share given back.
    let nop = b.ini.nop_out(Bytes::new());
    b.send(Pdu::NopOut(nop));
    let nop = b.ini.nop_out(Bytes::new());
    b.send(Pdu::NopOut(nop));
    sh.unretain(others);
    assert!(b.conn.done.is_empty());
    // Only the last NOP-In (a 48-byte header, not acknowledged yet) is kept: the
    // Data-In kept before a status that did not fit went with its acknowledgement.
    assert_eq!(sh.retained_bytes(), 48);
}

/// Send task management function `function` on `lun` from `s`; its response code.
fn tmf(s: &mut Sim, function: u8, lun: u64) -> u8 {
    let mut t = s.ini.abort_task(lun, Itt::RESERVED);
    t.function = function;
    let itt = t.itt;
    s.send(Pdu::TaskMgmtRequest(t));
    tmf_response(s, itt).expect("TMF response")
}

/// A read left running by a failed connection CID `cid` of `a`'s session.
fn orphan_read(fx: &Fixture, a: &mut Sim, cid: u16, seed: u64) -> Itt {
    let mut c = rejoin(fx, a, a.ini.tsih, cid, seed);
    // A reset before left a unit attention for the session.
    c.clear_unit_attentions();
    c.io_mode = IoMode::Hold;
    let itt = c.ini.read(1, &read10(0, 1), 512);
    c.drive();
    assert_eq!(c.pending_io(), 1);
    c.conn.handle_close();
    // The session's CmdSN and tags went on there.
    a.ini.cmd_sn = c.ini.cmd_sn;
    a.ini.next_itt = c.ini.next_itt;
    itt
}

#[test]
fn resets_abort_the_tasks_failed_connections_left() {
    let (mut a, fx) = session(2, 317);
    let sh = fx.core.sessions.shared(a.ini.tsih).unwrap();
    let itt = orphan_read(&fx, &mut a, 2, 318);
    assert_eq!(sh.orphans(), 1);
    // A LOGICAL UNIT RESET of another LU leaves it; of its LU, aborts it.
    assert_eq!(tmf(&mut a, 5, 0), 0);
    assert_eq!(sh.orphans(), 1);
    assert_eq!(tmf(&mut a, 5, 1), 0);
    assert_eq!(sh.orphans(), 0);
    assert!(!sh.itt_in_use(itt.0));
    assert_eq!(reassign(&mut a, itt), 1, "the task does not exist any more");
    // ABORT TASK SET of its LU aborts this session's orphans too.
    let itt = orphan_read(&fx, &mut a, 3, 319);
    assert_eq!(sh.orphans(), 1);
    assert_eq!(tmf(&mut a, 2, 1), 0);
    assert_eq!(sh.orphans(), 0);
    assert_eq!(reassign(&mut a, itt), 1);
    // A TARGET WARM RESET from another session aborts them as well.
    let itt = orphan_read(&fx, &mut a, 4, 320);
    assert_eq!(sh.orphans(), 1);
    let mut other = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        321,
        a.now(),
    );
    other.ini.name = "iqn.2024-01.com.example:sim.other".into();
    other.ini.isid = iscsi_proto::Isid([0x80, 0, 0, 0, 0, 9]);
    other.login_ready(fixture::TARGET);
    assert_eq!(tmf(&mut other, 6, 0), 0);
    assert_eq!(sh.orphans(), 0);
    assert!(!sh.itt_in_use(itt.0));
    // The aborted tasks are counted as tgt counts aborts; nothing else changed
    // for the live connection.
    assert!(!a.conn.is_closed());
    assert_clean(&a);
}

#[test]
fn abort_task_ends_a_task_waiting_for_reassignment() {
    let (mut a, fx) = session(2, 324);
    let sh = fx.core.sessions.shared(a.ini.tsih).unwrap();
    let itt = orphan_read(&fx, &mut a, 2, 325);
    assert_eq!(sh.orphans(), 1);
    // The wrong LUN: not that task.
    let t = a.ini.abort_task(0, itt);
    let titt = t.itt;
    a.send(Pdu::TaskMgmtRequest(t));
    assert_eq!(tmf_response(&a, titt), Some(1));
    assert_eq!(sh.orphans(), 1);
    let t = a.ini.abort_task(1, itt);
    let titt = t.itt;
    a.send(Pdu::TaskMgmtRequest(t));
    assert_eq!(tmf_response(&a, titt), Some(0));
    assert_eq!(sh.orphans(), 0);
    assert!(!sh.itt_in_use(itt.0));
    assert_eq!(reassign(&mut a, itt), 1);
}

#[test]
fn time2retain_aborts_the_tasks_and_ends_the_session() {
    let (mut a, fx) = session(2, 330);
    let tsih = a.ini.tsih;
    a.io_mode = IoMode::Hold;
    let itt = a.ini.read(1, &read10(0, 1), 512);
    a.drive();
    a.conn.handle_close();
    let t0 = a.now();
    let sh = fx.core.sessions.shared(tsih).unwrap();
    assert_eq!(sh.orphans(), 1);
    // DefaultTime2Retain is 20 s.
    assert_eq!(
        fx.core.next_retain_deadline(),
        Some(t0 + Duration::from_secs(20))
    );
    assert_eq!(fx.core.expire_sessions(t0 + Duration::from_secs(19)), 0);
    assert_eq!(fx.core.sessions.len(), 1);
    assert_eq!(fx.core.expire_sessions(t0 + Duration::from_secs(20)), 1);
    assert_eq!(sh.orphans(), 0);
    assert!(fx.core.sessions.is_empty());
    assert!(fx.target.sessions().is_empty());
    assert_eq!(fx.core.next_retain_deadline(), None);
    // Too late: the session is gone (a login naming its TSIH finds nothing).
    assert!(fx.core.sessions.by_tsih(tsih).is_none());
    assert!(fx.core.sessions.shared(tsih).is_none());
    let _ = itt;
}

#[test]
fn orphans_of_a_session_that_keeps_a_connection_expire_too() {
    let (mut a, fx) = session(2, 335);
    let tsih = a.ini.tsih;
    let mut b = rejoin(&fx, &a, tsih, 2, 336);
    b.io_mode = IoMode::Hold;
    b.ini.cmd_sn = a.ini.cmd_sn;
    let itt = b.ini.read(1, &read10(0, 1), 512);
    b.drive();
    b.conn.handle_close();
    let sh = fx.core.sessions.shared(tsih).unwrap();
    assert_eq!(sh.orphans(), 1);
    assert_eq!(
        fx.core.expire_sessions(b.now() + Duration::from_secs(21)),
        0
    );
    assert_eq!(sh.orphans(), 0);
    assert_eq!(fx.core.sessions.len(), 1);
    // The tag is free again; the task is gone.
    assert!(!sh.itt_in_use(itt.0));
    assert_eq!(reassign(&mut a, itt), 1);
}

#[test]
fn reassign_is_refused_below_level_2_for_unknown_and_allegiant_tasks() {
    // Level 1: "Task allegiance reassignment not supported".
    let (mut a, _fx) = session(1, 340);
    assert_eq!(reassign(&mut a, Itt(0x77)), 4);
    // Level 2: an unknown ITT does not exist.
    let (mut a, fx) = session(2, 341);
    assert_eq!(reassign(&mut a, Itt(0x77)), 1);
    // A task whose connection lives is still allegiant to it, whichever
    // connection asks.
    a.io_mode = IoMode::Hold;
    let itt = a.ini.read(1, &read10(0, 1), 512);
    a.drive();
    let mut b = rejoin(&fx, &a, a.ini.tsih, 2, 342);
    assert_eq!(reassign(&mut b, itt), 3);
    assert_eq!(reassign(&mut a, itt), 3);
    // At level 0 a failed connection's tasks end with it (today's behaviour).
    let (mut z, fx) = session(0, 343);
    z.io_mode = IoMode::Hold;
    z.ini.read(1, &read10(0, 1), 512);
    z.drive();
    z.conn.handle_close();
    assert!(fx.core.sessions.is_empty());
}

#[test]
fn logout_reason_2_removes_a_connection_for_recovery() {
    let (mut a, fx) = session(2, 350);
    let tsih = a.ini.tsih;
    let mut b = rejoin(&fx, &a, tsih, 2, 351);
    b.io_mode = IoMode::Hold;
    let want = pattern(512, 5);
    fx.store.write_at(512, &want);
    let itt = b.ini.read(1, &read10(1, 1), 512);
    b.drive();
    a.ini.cmd_sn = b.ini.cmd_sn;
    let mut l = a.ini.logout(2);
    l.cid = 2;
    let litt = l.itt;
    a.ini.send(&Pdu::LogoutRequest(l));
    {
        let mut all = [&mut a, &mut b];
        drive_all(&mut all);
    }
    let r: LogoutResponse = a
        .ini
        .received_where(|p| match p {
            Pdu::LogoutResponse(r) if r.itt == litt => Some(r.clone()),
            _ => None,
        })
        .pop()
        .unwrap();
    assert_eq!((r.response, r.time2wait, r.time2retain), (0, 2, 20));
    assert!(b.conn.is_closed() && !a.conn.is_closed());
    a.ini.adopt(itt, b.ini.task(itt).unwrap().clone());
    assert_eq!(reassign(&mut a, itt), 0);
    let t = a.ini.task(itt).unwrap();
    assert_eq!((t.status, &t.data[..]), (Some(0), &want[..]));
    // Reason 2 naming no connection of the session: "CID not found"; at level 1
    // connection recovery is not supported.
    let mut l = a.ini.logout(2);
    l.cid = 9;
    let litt = l.itt;
    a.send(Pdu::LogoutRequest(l));
    let resp = |s: &Sim, i: Itt| {
        s.ini
            .received_where(|p| match p {
                Pdu::LogoutResponse(r) if r.itt == i => Some(r.response),
                _ => None,
            })
            .pop()
    };
    assert_eq!(resp(&a, litt), Some(1));
    let (mut z, _fx) = session(1, 352);
    let l = z.ini.logout(2);
    let litt = l.itt;
    z.send(Pdu::LogoutRequest(l));
    assert_eq!(resp(&z, litt), Some(2));
    assert!(!z.conn.is_closed());
}

#[test]
fn session_reinstatement_still_clears_everything() {
    let (mut a, fx) = session(2, 360);
    let tsih = a.ini.tsih;
    a.io_mode = IoMode::Hold;
    let itt = a.ini.read(1, &read10(0, 1), 512);
    a.drive();
    a.conn.handle_close();
    assert_eq!(fx.core.sessions.len(), 1);
    // A new leading login (TSIH 0) with the same ISID replaces the session.
    let mut b = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        361,
        a.now(),
    );
    b.ini.isid = a.ini.isid;
    b.ini.offer = a.ini.offer.clone();
    b.login_ready(fixture::TARGET);
    assert_ne!(b.ini.tsih, tsih);
    assert_eq!(fx.core.sessions.len(), 1);
    assert_eq!(fx.target.sessions().len(), 1);
    assert_eq!(fx.core.next_retain_deadline(), None);
    assert_eq!(reassign(&mut b, itt), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random connection drops at level 2 while writes are in progress (data still
    /// to come, or storage in flight): after each drop a connection (alternately
    /// a new CID and the same CID) takes every unfinished task over. Every write
    /// ends GOOD exactly once, and the store holds what was written.
    #[test]
    fn random_drops_with_reassignment_never_lose_or_duplicate_a_write(
        seed in any::<u64>(),
        drops in proptest::collection::vec((1usize..6, any::<bool>()), 1..4),
    ) {
        let (mut cur, fx) = session(2, seed);
        let tsih = cur.ini.tsih;
        cur.io_mode = IoMode::Random;
        let mut done: std::collections::HashMap<u32, u8> = Default::default();
        let mut expected: Vec<(u32, Bytes)> = Vec::new();
        let mut cid = 1u16;
        let mut k = 0u8;
        for (round, (steps, hold_data)) in drops.iter().enumerate() {
            // A few writes to distinct blocks.
            cur.ini.auto_data_out = !hold_data;
            let mut itts = Vec::new();
            for _ in 0..3 {
                k += 1;
                let lba = u32::from(k) * 8;
                let data = pattern(4096, k);
                itts.push(cur.ini.write(1, &write10(lba, 8), data.clone()));
                expected.push((lba, data));
            }
            for _ in 0..*steps {
                cur.step();
            }
            // The connection fails.
            cur.conn.handle_close();
            let next = if round % 2 == 0 { cid + 1 } else { cid };
            cid = next;
            let mut n = rejoin(&fx, &cur, tsih, next, seed ^ (round as u64 + 1));
            n.io_mode = IoMode::Random;
            // Count what finished on the old connection.
            for itt in &itts {
                if let Some(t) = cur.ini.task(*itt) {
                    if t.done() {
                        *done.entry(itt.0).or_default() += 1;
                    } else {
                        n.ini.adopt(*itt, t.clone());
                        let code = reassign(&mut n, *itt);
                        prop_assert_eq!(code, 0);
                        n.drive();
                        let t = n.ini.task(*itt).unwrap();
                        prop_assert_eq!(t.status, Some(0));
                        *done.entry(itt.0).or_default() += 1;
                    }
                }
            }
            // An R2T lost in flight with the dead connection leaves a gap in the
            // R2TSNs this initiator saw (the target's numbering goes on); nothing
            // else may look wrong.
            let errors: Vec<&String> = n
                .ini
                .protocol_errors
                .iter()
                .filter(|e| !e.starts_with("R2TSN"))
                .collect();
            prop_assert!(errors.is_empty(), "{:?}", errors);
            prop_assert!(n.ini.decode_errors.is_empty());
            cur = n;
        }
        prop_assert!(done.values().all(|n| *n == 1));
        prop_assert_eq!(done.len(), expected.len());
        for (lba, data) in expected {
            prop_assert_eq!(fx.store.read_at(lba as usize * 512, data.len()), &data[..]);
        }
    }
}
