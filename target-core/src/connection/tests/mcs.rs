//! Multiple connections per session (MC/S, RFC 7143 §4.2.2, §6.3.1) with four
//! simulated connections of one session: one CmdSN window, ITTs unique per session,
//! connection allegiance, per-connection StatSN, Logout reasons, a dead connection
//! failing only its own tasks, the MaxConnections limit and CID reinstatement.

use super::{assert_clean, base};
use crate::connection::ConnConfig;
use crate::testkit::cdb::{read10, test_unit_ready, write10};
use crate::testkit::fixture::{self, Bind, Fixture};
use crate::testkit::{drive_all, IoMode, Sim};
use bytes::Bytes;
use iscsi_proto::pdu::{reject_reason, LogoutResponse, Pdu};
use iscsi_proto::{Itt, SerialNumber, Tsih};

/// A session of `n` connections (CIDs 1..=n) that negotiated MaxConnections `max`.
fn session(n: u16, max: u16, seed: u64) -> (Vec<Sim>, Fixture) {
    let fx = fixture::single_target(1024, Bind::All);
    let mut sims = Vec::new();
    let mut lead = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed,
        base(),
    );
    lead.ini.offer.max_connections = max;
    let r = lead.login_ready(fixture::TARGET);
    assert_eq!(
        lead.ini.login_key("MaxConnections"),
        Some(&*max.min(8).to_string())
    );
    sims.push(lead);
    for cid in 2..=n {
        let mut s = join(&fx, &sims[0], r.tsih, cid, seed + u64::from(cid));
        assert_eq!(s.ini.last_login_response().unwrap().tsih, r.tsih);
        s.ini.next_itt = u32::from(cid) << 16;
        sims.push(s);
    }
    (sims, fx)
}

/// A connection with CID `cid` logging in to live session `tsih` of `lead`'s initiator.
fn join(fx: &Fixture, lead: &Sim, tsih: Tsih, cid: u16, seed: u64) -> Sim {
    let mut s = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed,
        base(),
    );
    s.ini.isid = lead.ini.isid;
    s.ini.login_tsih = tsih;
    s.ini.cid = cid;
    s.ini.offer.max_connections = lead.ini.offer.max_connections;
    s.ini.cmd_sn = lead.ini.cmd_sn;
    s.login_normal(fixture::TARGET);
    s
}

fn login_status(s: &Sim) -> u16 {
    let r = s.ini.last_login_response().unwrap();
    u16::from(r.status_class) << 8 | u16::from(r.status_detail)
}

/// The session's next CmdSN, handed to connection `k`'s initiator for its next command.
fn on(sims: &mut [Sim], sn: &mut SerialNumber, k: usize) {
    sims[k].ini.cmd_sn = *sn;
    *sn = sn.next();
}

fn step_all(sims: &mut [Sim]) {
    let mut refs: Vec<&mut Sim> = sims.iter_mut().collect();
    drive_all(&mut refs);
}

fn logout_response(s: &Sim, itt: Itt) -> Option<LogoutResponse> {
    s.ini
        .received_where(|p| match p {
            Pdu::LogoutResponse(r) if r.itt == itt => Some(r.clone()),
            _ => None,
        })
        .pop()
}

#[test]
fn commands_over_four_connections_run_in_cmd_sn_order_with_allegiance() {
    let (mut sims, fx) = session(4, 4, 51);
    fx.store.write_at(0, &[0x11; 512]);
    let mut sn = sims[0].ini.cmd_sn;
    let first = sn;
    // Connections 2..4 send CmdSN first+1..first+3 before connection 1 sends `first`.
    sn = sn.next();
    let mut itts = [Itt(0); 4];
    for k in 1..4 {
        on(&mut sims, &mut sn, k);
        itts[k] = sims[k].ini.read(1, &read10(0, 1), 512);
    }
    step_all(&mut sims);
    for s in &sims[1..] {
        assert!(s.ops.is_empty(), "a command ahead of the CmdSN gap ran");
        assert!(!s.ini.task(itts[1]).is_some_and(|t| t.done()));
    }
    let mut gap = first;
    on(&mut sims, &mut gap, 0);
    itts[0] = sims[0].ini.read(1, &read10(0, 1), 512);
    step_all(&mut sims);
    for (k, s) in sims.iter().enumerate() {
        // Each answer on the connection that carried the command, data included.
        let t = s.ini.task(itts[k]).unwrap();
        assert_eq!(
            (t.status, &t.data[..]),
            (Some(0), &[0x11; 512][..]),
            "cid {}",
            k + 1
        );
        assert_eq!(s.ops.len(), 1, "cid {}", k + 1);
        // Every connection's own StatSN sequence stays gapless (assert_clean).
        assert_clean(s);
    }
    // The session's window moved over all four.
    assert_eq!(sims[0].ini.exp_cmd_sn, first.plus(4));
    // Writes on one connection are read on another (one LU, one nexus), and a
    // connection that joined later sees no POWER ON unit attention: the nexus's was
    // already cleared through the leading connection.
    on(&mut sims, &mut sn, 2);
    let w = sims[2]
        .ini
        .write(1, &write10(5, 1), Bytes::from(vec![0x77; 512]));
    on(&mut sims, &mut sn, 3);
    let tur = sims[3].ini.read(1, &test_unit_ready(), 0);
    step_all(&mut sims);
    assert_eq!(sims[2].ini.task(w).unwrap().status, Some(0));
    assert_eq!(sims[3].ini.task(tur).unwrap().status, Some(0));
    on(&mut sims, &mut sn, 1);
    let r = sims[1].ini.read(1, &read10(5, 1), 512);
    step_all(&mut sims);
    assert_eq!(sims[1].ini.task(r).unwrap().data, vec![0x77; 512]);
}

#[test]
fn an_itt_in_use_on_one_connection_is_refused_on_another() {
    let (mut sims, _fx) = session(2, 2, 52);
    let mut sn = sims[0].ini.cmd_sn;
    sims[0].io_mode = IoMode::Hold;
    on(&mut sims, &mut sn, 0);
    let itt = sims[0].ini.read(1, &read10(0, 1), 512);
    step_all(&mut sims);
    assert_eq!(sims[0].pending_io(), 1);
    // The same ITT on connection 2 while the task lives.
    sims[1].ini.next_itt = itt.0;
    on(&mut sims, &mut sn, 1);
    let dup = sims[1].ini.read(1, &read10(1, 1), 512);
    assert_eq!(dup, itt);
    step_all(&mut sims);
    let rejects = sims[1].ini.received_where(|p| match p {
        Pdu::Reject(r) => Some(r.reason),
        _ => None,
    });
    assert_eq!(rejects, vec![reject_reason::TASK_IN_PROGRESS]);
    // Once it ends, the tag is free again for the session.
    sims[0].complete_all_io();
    step_all(&mut sims);
    assert_eq!(sims[0].ini.task(itt).unwrap().status, Some(0));
    sims[1].ini.next_itt = itt.0;
    on(&mut sims, &mut sn, 1);
    let again = sims[1].ini.read(1, &read10(1, 1), 512);
    step_all(&mut sims);
    assert_eq!(sims[1].ini.task(again).unwrap().status, Some(0));
}

#[test]
fn logout_reasons() {
    let (mut sims, fx) = session(4, 4, 53);
    let cids = |fx: &Fixture| -> Vec<u16> {
        fx.target.sessions()[0]
            .connections
            .iter()
            .map(|c| c.cid)
            .collect()
    };
    assert_eq!(cids(&fx), vec![1, 2, 3, 4]);
    // Reason 2 (remove for recovery) needs ErrorRecoveryLevel 2: "not supported".
    let l = sims[1].ini.logout(2);
    let itt = l.itt;
    sims[1].ini.send(&Pdu::LogoutRequest(l));
    step_all(&mut sims);
    assert_eq!(logout_response(&sims[1], itt).unwrap().response, 2);
    assert!(!sims[1].conn.is_closed());
    // Reason 1 naming another CID: that connection closes, this one stays.
    let mut l = sims[0].ini.logout(1);
    l.cid = 3;
    let itt = l.itt;
    sims[0].ini.send(&Pdu::LogoutRequest(l));
    step_all(&mut sims);
    assert_eq!(logout_response(&sims[0], itt).unwrap().response, 0);
    assert!(sims[2].conn.is_closed() && !sims[0].conn.is_closed());
    assert_eq!(cids(&fx), vec![1, 2, 4]);
    // Reason 1 naming a CID the session does not have: "CID not found".
    let mut l = sims[0].ini.logout(1);
    l.cid = 9;
    let itt = l.itt;
    sims[0].ini.send(&Pdu::LogoutRequest(l));
    step_all(&mut sims);
    assert_eq!(logout_response(&sims[0], itt).unwrap().response, 1);
    // Reason 1 for itself.
    let l = sims[1].ini.logout(1);
    let itt = l.itt;
    sims[1].ini.send(&Pdu::LogoutRequest(l));
    step_all(&mut sims);
    assert_eq!(logout_response(&sims[1], itt).unwrap().response, 0);
    assert!(sims[1].conn.is_closed());
    assert_eq!(cids(&fx), vec![1, 4]);
    // The session still serves commands.
    let mut sn = sims[0].ini.cmd_sn;
    on(&mut sims, &mut sn, 3);
    let r = sims[3].ini.read(1, &read10(0, 1), 512);
    step_all(&mut sims);
    assert_eq!(sims[3].ini.task(r).unwrap().status, Some(0));
    // Reason 0: the whole session, every connection.
    let l = sims[0].ini.logout(0);
    let itt = l.itt;
    sims[0].ini.send(&Pdu::LogoutRequest(l));
    step_all(&mut sims);
    assert_eq!(logout_response(&sims[0], itt).unwrap().response, 0);
    assert!(sims.iter().all(|s| s.conn.is_closed()));
    assert!(fx.target.sessions().is_empty());
    assert!(fx.core.sessions.is_empty());
}

#[test]
fn a_dead_connection_fails_only_its_own_tasks() {
    let (mut sims, fx) = session(3, 3, 54);
    let mut sn = sims[0].ini.cmd_sn;
    for s in sims.iter_mut() {
        s.io_mode = IoMode::Hold;
    }
    on(&mut sims, &mut sn, 0);
    let a = sims[0].ini.read(1, &read10(0, 1), 512);
    on(&mut sims, &mut sn, 1);
    let b = sims[1].ini.read(1, &read10(1, 1), 512);
    step_all(&mut sims);
    assert_eq!((sims[0].pending_io(), sims[1].pending_io()), (1, 1));
    // Connection 2 dies with its task in flight.
    sims[1].conn.handle_close();
    sims[1].complete_all_io();
    assert_eq!(sims[1].conn.stray_completions(), 1);
    assert!(!sims[1].ini.task(b).unwrap().done());
    // Connection 1's task completes; the session and its other connections live on.
    sims[0].complete_all_io();
    step_all(&mut sims);
    assert_eq!(sims[0].ini.task(a).unwrap().status, Some(0));
    assert_eq!(fx.target.sessions().len(), 1);
    assert_eq!(fx.target.sessions()[0].connections.len(), 2);
    sims[2].io_mode = IoMode::Immediate;
    on(&mut sims, &mut sn, 2);
    // The dead connection's ITT is free again.
    sims[2].ini.next_itt = b.0;
    let c = sims[2].ini.read(1, &read10(2, 1), 512);
    step_all(&mut sims);
    assert_eq!(sims[2].ini.task(c).unwrap().status, Some(0));
}

#[test]
fn max_connections_limits_joins_and_a_cid_is_reinstated() {
    let (mut sims, fx) = session(2, 2, 55);
    let tsih = sims[0].ini.tsih;
    // A third connection is over the negotiated MaxConnections=2.
    let mut s = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        56,
        base(),
    );
    s.ini.isid = sims[0].ini.isid;
    s.ini.login_tsih = tsih;
    s.ini.cid = 3;
    let mut keys = s.ini.identity_keys(fixture::TARGET);
    keys.push(("AuthMethod".into(), "None".into()));
    s.login_step(
        iscsi_proto::pdu::Stage::Security,
        iscsi_proto::pdu::Stage::Operational,
        true,
        &keys,
    );
    assert_eq!(login_status(&s), 0x0206);
    // A TSIH of no live session.
    s = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        57,
        base(),
    );
    s.ini.isid = sims[0].ini.isid;
    s.ini.login_tsih = Tsih(tsih.0.wrapping_add(100));
    s.ini.cid = 3;
    s.login_step(
        iscsi_proto::pdu::Stage::Security,
        iscsi_proto::pdu::Stage::Operational,
        true,
        &keys,
    );
    assert_eq!(login_status(&s), 0x020a);
    // CID 2 logs in again: the old connection 2 is replaced and closes.
    let again = join(&fx, &sims[0], tsih, 2, 58);
    sims.push(again);
    step_all(&mut sims);
    assert!(sims[1].conn.is_closed());
    assert!(!sims[2].conn.is_closed() && !sims[0].conn.is_closed());
    let conns = &fx.target.sessions()[0].connections;
    assert_eq!(conns.iter().map(|c| c.cid).collect::<Vec<_>>(), vec![1, 2]);
    let mut sn = sims[2].ini.cmd_sn;
    on(&mut sims, &mut sn, 2);
    let r = sims[2].ini.read(1, &read10(0, 1), 512);
    step_all(&mut sims);
    assert_eq!(sims[2].ini.task(r).unwrap().status, Some(0));
}

/// The response to TMF `itt` that connection `s` received, if any.
fn tmf_response(s: &Sim, itt: Itt) -> Option<u8> {
    s.ini
        .received_where(|p| match p {
            Pdu::TaskMgmtResponse(r) if r.itt == itt => Some(r.response),
            _ => None,
        })
        .pop()
}

#[test]
fn abort_task_on_one_connection_aborts_a_task_of_another() {
    let (mut sims, fx) = session(2, 2, 56);
    let mut sn = sims[0].ini.cmd_sn;
    for s in sims.iter_mut() {
        s.io_mode = IoMode::Hold;
    }
    on(&mut sims, &mut sn, 1);
    let b = sims[1].ini.read(1, &read10(1, 1), 512);
    on(&mut sims, &mut sn, 1);
    let b2 = sims[1].ini.read(1, &read10(2, 1), 512);
    step_all(&mut sims);
    assert_eq!(sims[1].pending_io(), 2);
    // ABORT TASK on connection 1 for a task of connection 2: connection 2 aborts
    // it, then connection 1 answers "Function complete".
    sims[0].ini.cmd_sn = sn;
    let t = sims[0].ini.abort_task(1, b);
    let titt = t.itt;
    sims[0].ini.send(&Pdu::TaskMgmtRequest(t));
    step_all(&mut sims);
    assert_eq!(tmf_response(&sims[0], titt), Some(0));
    // Its storage completion is stray: no response for it, anywhere.
    sims[1].complete_io(0);
    step_all(&mut sims);
    assert_eq!(sims[1].conn.stray_completions(), 1);
    assert!(sims[1].ini.task(b).is_some_and(|t| !t.done()));
    // A wrong LUN, or a tag no task has: "Task does not exist"; the other task
    // of connection 2 goes on and completes.
    let t = sims[0].ini.abort_task(0, b2);
    let titt = t.itt;
    sims[0].ini.send(&Pdu::TaskMgmtRequest(t));
    let t = sims[0].ini.abort_task(1, Itt(0x7777));
    let titt2 = t.itt;
    sims[0].ini.send(&Pdu::TaskMgmtRequest(t));
    step_all(&mut sims);
    assert_eq!(tmf_response(&sims[0], titt), Some(1));
    assert_eq!(tmf_response(&sims[0], titt2), Some(1));
    sims[1].complete_all_io();
    step_all(&mut sims);
    assert_eq!(sims[1].ini.task(b2).unwrap().status, Some(0));
    // The aborted task's tag is free again on any connection.
    on(&mut sims, &mut sn, 0);
    sims[0].io_mode = IoMode::Immediate;
    sims[0].ini.next_itt = b.0;
    let again = sims[0].ini.read(1, &read10(3, 1), 512);
    assert_eq!(again, b);
    step_all(&mut sims);
    assert_eq!(sims[0].ini.task(b).unwrap().status, Some(0));
    assert_clean(&sims[0]);
    assert_clean(&sims[1]);
    let _ = fx;
}

#[test]
fn abort_task_passed_to_a_connection_that_dies_first_is_still_answered() {
    let (mut sims, _fx) = session(2, 2, 57);
    let mut sn = sims[0].ini.cmd_sn;
    sims[1].io_mode = IoMode::Hold;
    on(&mut sims, &mut sn, 1);
    let b = sims[1].ini.read(1, &read10(1, 1), 512);
    step_all(&mut sims);
    sims[0].ini.cmd_sn = sn;
    let t = sims[0].ini.abort_task(1, b);
    let titt = t.itt;
    sims[0].ini.send(&Pdu::TaskMgmtRequest(t));
    // Only connection 1 runs: the request waits for connection 2, which dies
    // (ErrorRecoveryLevel 0: its task ends with it) before it acts.
    sims[0].drive();
    assert_eq!(tmf_response(&sims[0], titt), None);
    sims[1].conn.handle_close();
    sims[0].drive();
    assert_eq!(tmf_response(&sims[0], titt), Some(1));
    assert_clean(&sims[0]);
}

/// A task management request with `function` for LUN `lun` from connection `k`;
/// its ITT.
fn send_tmf(sims: &mut [Sim], sn: SerialNumber, k: usize, function: u8, lun: u64) -> Itt {
    sims[k].ini.cmd_sn = sn;
    let mut t = sims[k].ini.abort_task(lun, Itt::RESERVED);
    t.function = function;
    let itt = t.itt;
    sims[k].ini.send(&Pdu::TaskMgmtRequest(t));
    itt
}

/// Tasks held in storage on connections 2..=n (`per` reads each on LUN 1).
fn held_reads(sims: &mut [Sim], sn: &mut SerialNumber, per: u64) -> Vec<(usize, Itt)> {
    let mut out = Vec::new();
    for s in sims.iter_mut() {
        s.io_mode = IoMode::Hold;
    }
    for k in 1..sims.len() {
        for i in 0..per {
            on(sims, sn, k);
            let lba = (k as u64) * 8 + i;
            out.push((k, sims[k].ini.read(1, &read10(lba as u32, 1), 512)));
        }
    }
    step_all(sims);
    out
}

/// A read on connection `k` succeeds (the first may report a unit attention).
fn read_ok(sims: &mut [Sim], sn: &mut SerialNumber, k: usize) {
    for _ in 0..2 {
        on(sims, sn, k);
        let r = sims[k].ini.read(1, &read10(0, 1), 512);
        step_all(sims);
        let t = sims[k].ini.task(r).unwrap();
        match (t.status, t.sense) {
            (Some(0), _) => return,
            (Some(2), Some(s)) if s.key == 6 => continue,
            other => panic!("read on {k}: {other:?}"),
        }
    }
    panic!("read on {k} kept failing");
}

/// Every task was aborted: no status and no data for it, its storage
/// completion stray.
fn assert_aborted(sims: &mut [Sim], tasks: &[(usize, Itt)]) {
    for s in sims.iter_mut() {
        s.complete_all_io();
    }
    step_all(sims);
    for (k, itt) in tasks {
        let t = sims[*k].ini.task(*itt).unwrap();
        assert!(
            !t.done() && t.data_in.is_empty(),
            "task {itt:?} on {k} answered"
        );
    }
    let stray: u64 = sims.iter().map(|s| s.conn.stray_completions()).sum();
    assert_eq!(stray, tasks.len() as u64);
}

#[test]
fn task_set_functions_and_lu_reset_abort_the_tasks_of_every_connection() {
    // ABORT TASK SET (2), CLEAR TASK SET (4), LOGICAL UNIT RESET (5) from
    // connection 1 of a session of 4: the tasks of connections 2..4 end, and the
    // response goes out only once their connections aborted them.
    for (seed, function) in [(61, 2u8), (62, 4), (63, 5)] {
        let (mut sims, _fx) = session(4, 4, seed);
        let mut sn = sims[0].ini.cmd_sn;
        let tasks = held_reads(&mut sims, &mut sn, 2);
        assert_eq!(sims.iter().map(Sim::pending_io).sum::<usize>(), 6);
        let titt = send_tmf(&mut sims, sn, 0, function, 1);
        // Only connection 1 runs: the others have not acted, no response yet.
        sims[0].drive();
        assert_eq!(tmf_response(&sims[0], titt), None, "function {function}");
        step_all(&mut sims);
        assert_eq!(tmf_response(&sims[0], titt), Some(0), "function {function}");
        for s in &sims[1..] {
            assert_eq!(s.conn.tasks_in_flight(), 0);
        }
        assert_aborted(&mut sims, &tasks);
        // The LU serves again (after the unit attention of an LU reset).
        for s in sims.iter_mut() {
            s.io_mode = IoMode::Immediate;
        }
        read_ok(&mut sims, &mut sn, 3);
        for s in &sims {
            assert_clean(s);
        }
    }
}

#[test]
fn lu_reset_aborts_another_session_s_tasks_and_task_set_functions_do_not() {
    let (mut sims, fx) = session(2, 2, 64);
    let mut sn = sims[0].ini.cmd_sn;
    // Another initiator's single-connection session with a task on LUN 1.
    let mut other = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        65,
        base(),
    );
    other.ini.name = "iqn.2024-01.com.example:sim.other".into();
    other.ini.isid = iscsi_proto::Isid([0x80, 0, 0, 0, 0, 9]);
    other.login_ready(fixture::TARGET);
    other.io_mode = IoMode::Hold;
    let theirs = other.ini.read(1, &read10(40, 1), 512);
    other.drive();
    let ours = held_reads(&mut sims, &mut sn, 1);
    // ABORT TASK SET is of this I_T nexus only: the other session's task lives.
    let t = send_tmf(&mut sims, sn, 0, 2, 1);
    step_all(&mut sims);
    other.drive();
    assert_eq!(tmf_response(&sims[0], t), Some(0));
    assert_eq!(other.conn.tasks_in_flight(), 1);
    // LOGICAL UNIT RESET aborts it too, when its connection next runs.
    let t = send_tmf(&mut sims, sn, 0, 5, 1);
    step_all(&mut sims);
    assert_eq!(tmf_response(&sims[0], t), Some(0));
    other.drive();
    assert_eq!(other.conn.tasks_in_flight(), 0);
    other.complete_all_io();
    other.drive();
    assert_eq!(other.conn.stray_completions(), 1);
    assert!(!other.ini.task(theirs).unwrap().done());
    assert_aborted(&mut sims, &ours);
    // Its next command reports the reset; then it is served.
    other.io_mode = IoMode::Immediate;
    let r = other.ini.read(1, &read10(0, 1), 512);
    other.drive();
    assert_eq!(other.ini.task(r).unwrap().sense.map(|s| s.key), Some(6));
    let r = other.ini.read(1, &read10(0, 1), 512);
    other.drive();
    assert_eq!(other.ini.task(r).unwrap().status, Some(0));
    assert_clean(&other);
    assert_clean(&sims[0]);
}

#[test]
fn target_warm_reset_answers_after_the_session_s_other_connections_aborted() {
    let (mut sims, _fx) = session(3, 3, 66);
    let mut sn = sims[0].ini.cmd_sn;
    let tasks = held_reads(&mut sims, &mut sn, 2);
    let t = send_tmf(&mut sims, sn, 0, 6, 0);
    sims[0].drive();
    assert_eq!(tmf_response(&sims[0], t), None);
    step_all(&mut sims);
    assert_eq!(tmf_response(&sims[0], t), Some(0));
    assert_aborted(&mut sims, &tasks);
    for s in sims.iter_mut() {
        s.io_mode = IoMode::Immediate;
    }
    read_ok(&mut sims, &mut sn, 2);
    assert!(sims.iter().all(|s| !s.conn.is_closed()));
}

#[test]
fn a_connection_that_never_acts_gets_the_request_rejected_at_the_deadline() {
    use crate::connection::tmf::REMOTE_TMF_TIMEOUT;
    for function in [1u8, 2, 5] {
        let (mut sims, _fx) = session(2, 2, 67 + u64::from(function));
        let mut sn = sims[0].ini.cmd_sn;
        let tasks = held_reads(&mut sims, &mut sn, 1);
        let t = if function == 1 {
            sims[0].ini.cmd_sn = sn;
            let t = sims[0].ini.abort_task(1, tasks[0].1);
            let itt = t.itt;
            sims[0].ini.send(&Pdu::TaskMgmtRequest(t));
            itt
        } else {
            send_tmf(&mut sims, sn, 0, function, 1)
        };
        // Connection 2 is alive but its thread never runs: no answer in time.
        sims[0].drive();
        let at = sims[0].conn.poll_timeout().expect("a deadline");
        assert_eq!(at, sims[0].now() + REMOTE_TMF_TIMEOUT);
        sims[0].advance(REMOTE_TMF_TIMEOUT - std::time::Duration::from_millis(1));
        sims[0].drive();
        assert_eq!(tmf_response(&sims[0], t), None);
        sims[0].advance(std::time::Duration::from_millis(1));
        sims[0].drive();
        // "Function rejected": the task may still answer.
        assert_eq!(tmf_response(&sims[0], t), Some(255), "function {function}");
        assert_eq!(sims[0].conn.poll_timeout(), None);
        // When it runs at last it aborts the task; its late answer sends
        // nothing more.
        step_all(&mut sims);
        assert_eq!(sims[1].conn.tasks_in_flight(), 0);
        let n = sims[0]
            .ini
            .received_where(|p| matches!(p, Pdu::TaskMgmtResponse(_)).then_some(()))
            .len();
        assert_eq!(n, 1);
        assert_aborted(&mut sims, &tasks);
        assert_clean(&sims[0]);
    }
}
