//! ErrorRecoveryLevel pieces (RFC 7143 §7, §11.16): SNACK refused at level 0, and,
//! with level 1 forced in the connection's limits (the target does not negotiate it
//! yet), Status SNACK and Data SNACK answered from what the connection retained.

use super::{base, sim_with};
use crate::connection::ConnConfig;
use crate::testkit::cdb::read10;
use crate::testkit::fixture;
use iscsi_proto::pdu::{reject_reason, DataIn, Pdu, SnackRequest};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};

fn snack(kind: u8, itt: Itt, exp_stat_sn: SerialNumber, beg: u32, run: u32) -> Pdu {
    Pdu::SnackRequest(SnackRequest {
        snack_type: kind,
        lun: LunField::default(),
        itt,
        ttt: Ttt::RESERVED,
        exp_stat_sn,
        beg_run: beg,
        run_length: run,
    })
}

fn rejects(sim: &crate::testkit::Sim) -> Vec<u8> {
    sim.ini.received_where(|p| match p {
        Pdu::Reject(r) => Some(r.reason),
        _ => None,
    })
}

fn data_ins(sim: &crate::testkit::Sim, itt: Itt) -> Vec<DataIn> {
    sim.ini.received_where(|p| match p {
        Pdu::DataIn(d) if d.itt == itt => Some(d.clone()),
        _ => None,
    })
}

#[test]
fn level_0_is_all_the_target_negotiates_and_it_rejects_snack() {
    let (mut sim, _fx) = sim_with(64, ConnConfig::default(), 61);
    sim.ini.offer.error_recovery_level = 2;
    sim.login_ready(fixture::TARGET);
    assert_eq!(sim.ini.login_key("ErrorRecoveryLevel"), Some("0"));
    let exp = sim.ini.exp_stat_sn;
    sim.send(snack(1, Itt::RESERVED, exp, 0, 0));
    assert_eq!(rejects(&sim), vec![reject_reason::PROTOCOL_ERROR]);
    // A target's ErrorRecoveryLevel setting cannot raise it either.
    let mut l = iscsi_proto::keys::TargetLimits::default();
    crate::connection::params::apply(&mut l, "ErrorRecoveryLevel", "2");
    assert_eq!(l.error_recovery_level, 0);
}

#[test]
fn status_and_data_snack_resend_what_was_retained() {
    let mut config = ConnConfig::default();
    config.limits.error_recovery_level = 1;
    let fx = fixture::single_target(64, fixture::Bind::All);
    fx.store
        .write_at(0, &(0..2048u32).map(|i| i as u8).collect::<Vec<_>>());
    let mut sim = crate::testkit::Sim::new(fx.core.clone(), fixture::peer(), config, 62, base());
    sim.ini.offer.error_recovery_level = 1;
    sim.ini.offer.max_recv_data_segment_length = 512;
    sim.login_ready(fixture::TARGET);
    assert_eq!(sim.ini.login_key("ErrorRecoveryLevel"), Some("1"));
    let itt = sim.ini.read(1, &read10(0, 4), 2048);
    sim.drive();
    let first = data_ins(&sim, itt);
    assert_eq!(first.len(), 4);
    let status_sn = first[3].stat_sn;
    assert!(first[3].status_present);
    // Data-In 1 and 2 lost: asked again by DataSN (status not acknowledged yet).
    sim.send(snack(0, itt, status_sn, 1, 2));
    let all = data_ins(&sim, itt);
    assert_eq!(all.len(), 6);
    assert_eq!(all[4], first[1]);
    assert_eq!(all[5], first[2]);
    // The status lost: asked again by StatSN; the very same PDU comes back.
    sim.send(snack(1, Itt::RESERVED, status_sn, status_sn.get(), 1));
    let all = data_ins(&sim, itt);
    assert_eq!(all.len(), 7);
    assert_eq!(all[6], first[3]);
    // What was never sent, or a task it does not know: SNACK Reject.
    sim.send(snack(0, itt, status_sn, 3, 5));
    sim.send(snack(0, Itt(0x7777), status_sn, 0, 0));
    sim.send(snack(
        1,
        Itt::RESERVED,
        status_sn,
        status_sn.get().wrapping_add(50),
        1,
    ));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT; 3]);
    // Once the initiator acknowledges the status, the task's data is released.
    let next = status_sn.plus(4);
    sim.send(snack(0, itt, next, 0, 0));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT; 4]);
    assert_eq!(data_ins(&sim, itt).len(), 7);
}
