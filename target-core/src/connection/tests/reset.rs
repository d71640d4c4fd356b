//! TARGET WARM RESET and TARGET COLD RESET (RFC 7143 §11.5.1) reach every session of
//! the target, not just the one that asked: two initiators on one core.

use super::{assert_clean, base, closed_event};
use crate::connection::ConnConfig;
use crate::testkit::{cdb, fixture, IoMode, SenseView, Sim};
use bytes::BytesMut;
use iscsi_proto::pdu::{Pdu, TaskMgmtResponse};
use iscsi_proto::{Isid, Itt};

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
    a.login_normal(fixture::TARGET);
    let mut b = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed + 1,
        base(),
    );
    b.ini.name = "iqn.2024-01.com.example:sim.other".into();
    b.ini.isid = Isid([0x80, 0, 0, 0, 0, 9]);
    b.login_normal(fixture::TARGET);
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
    c.login_normal("iqn.2024-01.com.example:other");
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
