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
