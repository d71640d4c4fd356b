//! TARGET WARM RESET and TARGET COLD RESET (RFC 7143 §11.5.1) reach every session of
//! the target, not just the one that asked: two initiators on one core.

use super::{assert_clean, base, closed_event};
use crate::connection::ConnConfig;
use crate::registry::{AclEntry, Lun, LunBacking};
use crate::testkit::{cdb, fixture, IoMode, MemStore, SenseView, Sim};
use crate::Core;
use bytes::{Bytes, BytesMut};
use iscsi_proto::pdu::{Pdu, TaskMgmtResponse};
use iscsi_proto::{Isid, Itt};
use std::sync::Arc;

/// Two sessions of different initiators, logged in to the fixture target.
fn two_sessions(seed: u64) -> (Sim, Sim, fixture::Fixture) {
    let fx = fixture::single_target(64, fixture::Bind::All);
    let mut a = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed,
        base(),
    );
    a.login_ready(fixture::TARGET);
    let mut b = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed + 1,
        base(),
    );
    b.ini.name = "iqn.2024-01.com.example:sim.other".into();
    b.ini.isid = Isid([0x80, 0, 0, 0, 0, 9]);
    b.login_ready(fixture::TARGET);
    assert_eq!(fx.target.sessions().len(), 2);
    (a, b, fx)
}

/// Send TARGET WARM RESET (6) or TARGET COLD RESET (7) from `sim`; its response.
fn target_reset(sim: &mut Sim, function: u8) -> TaskMgmtResponse {
    let mut t = sim.ini.abort_task(0, Itt::RESERVED);
    t.function = function;
    sim.send(Pdu::TaskMgmtRequest(t.clone()));
    sim.ini
        .received_where(|p| match p {
            Pdu::TaskMgmtResponse(r) if r.itt == t.itt => Some(r.clone()),
            _ => None,
        })
        .pop()
        .expect("a Task Management Response")
}

/// What the adapter does when the registry generation moves: an empty input.
fn wake(sim: &mut Sim) {
    let now = sim.now();
    sim.conn.handle_input(&mut BytesMut::new(), now);
    sim.drive();
}

#[test]
fn warm_reset_aborts_the_other_sessions_tasks_and_sets_a_unit_attention() {
    let (mut a, mut b, fx) = two_sessions(301);
    b.io_mode = IoMode::Hold;
    let victim = b.ini.read(1, &cdb::read10(0, 8), 4096);
    b.drive();
    assert_eq!(b.conn.tasks_in_flight(), 1);
    let before = fx.core.registry.generation();

    let r = target_reset(&mut a, 6);
    assert_eq!(r.response, 0, "function complete");
    assert!(!a.conn.is_closed());
    assert!(fx.core.registry.generation() > before, "adapters must wake");
    assert!(a
        .events
        .contains(&crate::connection::ConnEvent::SharedStateChanged));

    // The other session acts on it when woken: its task is gone, silently.
    wake(&mut b);
    assert_eq!(b.conn.tasks_in_flight(), 0);
    b.complete_all_io();
    b.drive();
    assert_eq!(b.conn.stray_completions(), 1);
    let v = b.ini.task(victim).expect("tracked");
    assert!(!v.done() && v.data_in.is_empty(), "no response for it");
    assert!(!b.conn.is_closed(), "a warm reset keeps the connection");

    // Its next command reports the reset (SAM-5: BUS DEVICE RESET FUNCTION OCCURRED).
    b.io_mode = IoMode::Immediate;
    let tur = b.ini.command(1, &cdb::test_unit_ready(), 0, false, None);
    b.drive();
    let t = b.ini.task(tur).expect("answered");
    assert_eq!(t.status, Some(2), "CHECK CONDITION");
    assert_eq!(
        t.sense,
        Some(SenseView {
            key: 6,
            asc: 0x29,
            ascq: 0x03
        })
    );
    // Acted on once: a later wake aborts nothing new.
    let again = b.ini.read(1, &cdb::read10(0, 1), 512);
    wake(&mut b);
    assert_eq!(b.ini.task(again).and_then(|t| t.status), Some(0));
    assert_clean(&a);
    assert_clean(&b);
}

#[test]
fn cold_reset_drops_every_connection_of_the_target() {
    let (mut a, mut b, fx) = two_sessions(311);
    let r = target_reset(&mut a, 7);
    assert_eq!(r.response, 0, "function complete");
    assert!(a.conn.is_closed(), "the issuer drops after its response");
    assert!(!b.conn.is_closed());
    wake(&mut b);
    assert!(b.conn.is_closed());
    assert!(closed_event(&b));
    assert!(fx.target.sessions().is_empty());
    assert!(fx.core.sessions.is_empty());
    assert_clean(&a);
    assert_clean(&b);
}

#[test]
fn reset_of_another_target_leaves_sessions_alone() {
    let (mut a, _b, fx) = two_sessions(321);
    let (_t2, _) = fixture::add_target(
        &fx.core,
        2,
        "iqn.2024-01.com.example:other",
        8,
        fixture::Bind::All,
    );
    let mut c = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        322,
        base(),
    );
    c.ini.isid = Isid([0x80, 0, 0, 0, 0, 7]);
    c.login_ready("iqn.2024-01.com.example:other");
    c.io_mode = IoMode::Hold;
    c.ini.read(1, &cdb::read10(0, 1), 512);
    c.drive();
    target_reset(&mut a, 7);
    wake(&mut c);
    assert!(!c.conn.is_closed());
    assert_eq!(c.conn.tasks_in_flight(), 1);
}

#[test]
fn a_session_not_woken_drops_at_its_next_input() {
    let (mut a, mut b, _fx) = two_sessions(331);
    target_reset(&mut a, 7);
    // `b` was never woken (an adapter missed the wake-up): the PDU it sends next
    // finds the cold reset first, and is not answered.
    let mut t = b.ini.abort_task(0, Itt::RESERVED);
    t.function = 6;
    b.send(Pdu::TaskMgmtRequest(t));
    assert!(b.conn.is_closed());
    assert!(b
        .ini
        .received_where(|p| matches!(p, Pdu::TaskMgmtResponse(_)).then_some(()))
        .is_empty());
}

/// SANITIZE OVERWRITE with IMMED=1 (SBC-4 5.30.1): the CDB and a pattern of A5h.
fn sanitize_immed() -> (Vec<u8>, Bytes) {
    let len = fixture::BLOCK_SIZE as usize + 4;
    let [hi, lo] = u16::try_from(len).expect("fits").to_be_bytes();
    let cdb = vec![0x48, 0x80 | 0x01, 0, 0, 0, 0, 0, hi, lo, 0];
    let mut param = vec![0x01, 0x00, 0x02, 0x00];
    param.resize(len, 0xa5);
    (cdb, Bytes::from(param))
}

#[test]
fn sanitize_immed_answers_at_once_and_outlives_a_lu_reset() {
    let core = Arc::new(Core::new());
    let target = core.registry.add_target(1, fixture::TARGET).expect("fresh");
    let store = Arc::new(MemStore::new(64 * fixture::BLOCK_SIZE as usize));
    let backing = LunBacking {
        bstype: "memory".into(),
        path: None,
        oflags: String::new(),
        bsopts: String::new(),
    };
    let mut lun = Lun::disk(1, 1, store.clone(), fixture::BLOCK_SIZE, backing);
    lun.config.sanitize = true;
    target.add_lun(lun).expect("fresh");
    target.bind(AclEntry::All).expect("fresh");
    let mut sim = Sim::new(core, fixture::peer(), ConnConfig::default(), 331, base());
    sim.login_ready(fixture::TARGET);
    sim.io_mode = IoMode::Hold;

    // GOOD before the erase ends; the erase is not a task of the connection.
    let (cdb, param) = sanitize_immed();
    let s = sim.ini.write(1, &cdb, param);
    sim.drive();
    assert_eq!(sim.ini.task(s).and_then(|t| t.status), Some(0), "GOOD");
    assert_eq!(sim.pending_io(), 1, "the erase goes on");
    assert_eq!(sim.conn.tasks_in_flight(), 0);

    // Meanwhile the LU is NOT READY, SANITIZE IN PROGRESS, even after a LU reset.
    let mut reset = sim.ini.abort_task(1, Itt::RESERVED);
    reset.function = 5;
    sim.send(Pdu::TaskMgmtRequest(reset));
    sim.drive();
    let ua = sim.ini.command(1, &cdb::test_unit_ready(), 0, false, None);
    sim.drive();
    let t = sim.ini.task(ua).expect("answered");
    let reset_ua = SenseView {
        key: 6,
        asc: 0x29,
        ascq: 0x03,
    };
    assert_eq!(t.sense, Some(reset_ua), "the reset's unit attention first");
    let tur = sim.ini.command(1, &cdb::test_unit_ready(), 0, false, None);
    sim.drive();
    let t = sim.ini.task(tur).expect("answered");
    assert_eq!(t.status, Some(2), "CHECK CONDITION");
    let not_ready = SenseView {
        key: 2,
        asc: 0x04,
        ascq: 0x1b,
    };
    assert_eq!(t.sense, Some(not_ready));

    // Its completion answers nothing a second time, and the LU is ready again.
    sim.complete_all_io();
    sim.drive();
    assert_eq!(sim.conn.stray_completions(), 1);
    assert_eq!(store.read_at(0, 4), [0xa5; 4]);
    sim.io_mode = IoMode::Immediate;
    let tur = sim.ini.command(1, &cdb::test_unit_ready(), 0, false, None);
    sim.drive();
    assert_eq!(sim.ini.task(tur).and_then(|t| t.status), Some(0), "GOOD");
    assert_clean(&sim);
}
