//! Resource limits of the connection state machine: admission (connections, logins
//! in progress per address), the slow-sender deadline, the login deadline; each hit
//! reported once as `ConnEvent::LimitHit`.

use super::{base, ConnConfig, ConnEvent};
use crate::limits::{AdmissionLimits, Limit};
use crate::testkit::{fixture, Sim};
use iscsi_proto::pdu::Stage;
use iscsi_proto::Isid;
use std::time::Duration;

fn hits(sim: &Sim, limit: Limit) -> usize {
    sim.events
        .iter()
        .filter(|e| matches!(e, ConnEvent::LimitHit { limit: l, .. } if *l == limit))
        .count()
}

fn closed(sim: &Sim) -> bool {
    sim.events
        .iter()
        .any(|e| matches!(e, ConnEvent::Closed { .. }))
}

fn first_status(sim: &mut Sim) -> (u8, u8) {
    let keys = sim.ini.identity_keys(fixture::TARGET);
    let r = sim
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .expect("a login response");
    (r.status_class, r.status_detail)
}

#[test]
fn connections_over_the_limit_are_refused_with_0302_and_released() {
    let fx = fixture::single_target(64, fixture::Bind::All);
    let config = ConnConfig {
        admission: AdmissionLimits {
            max_connections: Some(1),
            max_pending_per_host: None,
        },
        ..ConnConfig::default()
    };
    let mut a = Sim::new(fx.core.clone(), fixture::peer(), config.clone(), 1, base());
    a.login_normal(fixture::TARGET);
    assert_eq!(fx.core.admission.connections(), 1);
    let mut b = Sim::new(fx.core.clone(), fixture::peer(), config.clone(), 2, base());
    b.ini.isid = Isid([0x80, 0, 0, 0, 0, 9]);
    assert_eq!(first_status(&mut b), (3, 2));
    assert!(closed(&b));
    assert_eq!(hits(&b, Limit::Connections), 1);
    drop(b);
    drop(a);
    assert_eq!(fx.core.admission.connections(), 0);
    // Room again.
    let mut c = Sim::new(fx.core.clone(), fixture::peer(), config, 3, base());
    c.login_normal(fixture::TARGET);
    assert_eq!(hits(&c, Limit::Connections), 0);
}

#[test]
fn logins_in_progress_are_counted_per_address_until_logged_in() {
    let fx = fixture::single_target(64, fixture::Bind::All);
    let config = ConnConfig {
        admission: AdmissionLimits {
            max_connections: None,
            max_pending_per_host: Some(1),
        },
        ..ConnConfig::default()
    };
    let ip = fixture::peer().peer.ip();
    let mut a = Sim::new(fx.core.clone(), fixture::peer(), config.clone(), 1, base());
    assert_eq!(fx.core.admission.pending_from(ip), 1);
    let mut b = Sim::new(fx.core.clone(), fixture::peer(), config.clone(), 2, base());
    assert_eq!(first_status(&mut b), (3, 2));
    assert_eq!(hits(&b, Limit::PendingLogins), 1);
    a.login_normal(fixture::TARGET);
    assert_eq!(fx.core.admission.pending_from(ip), 0);
    let mut c = Sim::new(fx.core.clone(), fixture::peer(), config, 3, base());
    c.ini.isid = Isid([0x80, 0, 0, 0, 0, 9]);
    c.login_normal(fixture::TARGET);
}

#[test]
fn a_partial_pdu_must_complete_within_the_pdu_timeout() {
    let config = ConnConfig {
        pdu_timeout: Some(Duration::from_secs(2)),
        ..ConnConfig::default()
    };
    let (mut sim, _fx) = super::sim_with(64, config, 1);
    sim.login_normal(fixture::TARGET);
    let now = sim.now();
    // 20 bytes of a 48-byte header, then nothing.
    sim.ini.send_raw(&[0x01u8; 20]);
    sim.drive();
    let due = sim.conn.poll_timeout().expect("deadline armed");
    assert_eq!(due, now + Duration::from_secs(2));
    sim.advance(Duration::from_secs(1));
    sim.drive();
    assert!(!closed(&sim));
    sim.advance(Duration::from_secs(1));
    sim.drive();
    assert!(closed(&sim));
    assert_eq!(hits(&sim, Limit::PduTime), 1);
}

#[test]
fn login_deadline_is_one_limit_hit() {
    let config = ConnConfig {
        login_timeout: Duration::from_secs(3),
        ..ConnConfig::default()
    };
    let (mut sim, _fx) = super::sim_with(64, config, 1);
    assert!(sim.fire_timeout());
    sim.drive();
    assert!(closed(&sim));
    assert_eq!(hits(&sim, Limit::LoginTime), 1);
}

/// A session replaced by a reinstatement stops counting at once, not when its old
/// connection (not run here: another thread in a daemon) has closed. CI met this as
/// a new initiator refused with 0302 right after another one's reinstatement.
#[test]
fn a_replaced_session_does_not_count_against_max_sessions() {
    let fx = fixture::single_target(64, fixture::Bind::All);
    let t = fx.core.registry.target(1).expect("target 1");
    assert!(t.set_param("MaxSessions", "2"));
    assert!(t.set_param("MaxSessionsPerInitiator", "1"));
    let config = ConnConfig::default();
    let mut a = Sim::new(fx.core.clone(), fixture::peer(), config.clone(), 1, base());
    a.ini.name = "iqn.2026-12.org.example:a".into();
    a.login_normal(fixture::TARGET);
    // The same initiator port logs in again: a reinstatement, allowed. `a`'s
    // connection is not run, so its old session is still in the target's list.
    let mut a2 = Sim::new(fx.core.clone(), fixture::peer(), config.clone(), 2, base());
    a2.ini.name = a.ini.name.clone();
    a2.login_normal(fixture::TARGET);
    assert_eq!(t.sessions().len(), 2, "the replaced one is still listed");
    // Another initiator: one live session so far, so there is room.
    let mut b = Sim::new(fx.core.clone(), fixture::peer(), config.clone(), 3, base());
    b.ini.name = "iqn.2026-12.org.example:b".into();
    b.ini.isid = Isid([0x80, 0, 0, 0, 0, 7]);
    b.login_normal(fixture::TARGET);
    assert_eq!(hits(&b, Limit::TargetSessions), 0);
    // A third: two live sessions, full.
    let mut c = Sim::new(fx.core.clone(), fixture::peer(), config, 4, base());
    c.ini.name = "iqn.2026-12.org.example:c".into();
    c.ini.isid = Isid([0x80, 0, 0, 0, 0, 8]);
    let mut keys = c.ini.identity_keys(fixture::TARGET);
    keys.push(("AuthMethod".into(), "None".into()));
    let r = c
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .expect("a login response");
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    let offer = c.ini.offer.pairs(false);
    let r = c
        .login_step(Stage::Operational, Stage::FullFeature, true, &offer)
        .expect("a login response");
    assert_eq!((r.status_class, r.status_detail), (3, 2), "full");
    assert_eq!(hits(&c, Limit::TargetSessions), 1);
}
