//! ErrorRecoveryLevel 1 (RFC 7143 §6, §7, §11.16): negotiation up to the target's
//! maximum, SNACK of each kind, header and data digest errors, lost Data-Out,
//! retried commands, the retention cap, and a proptest over random corruption.

use super::{assert_clean, base, closed_event, sim_with};
use crate::connection::{ConnConfig, DATA_OUT_TIMEOUT};
use crate::testkit::cdb::{read10, write10};
use crate::testkit::{fixture, Sim};
use bytes::{Bytes, BytesMut};
use iscsi_proto::pdu::{reject_reason, DataIn, DataOut, Pdu, R2t, SnackRequest};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
use proptest::prelude::*;
use std::time::Duration;

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

fn rejects(sim: &Sim) -> Vec<u8> {
    sim.ini.received_where(|p| match p {
        Pdu::Reject(r) => Some(r.reason),
        _ => None,
    })
}

fn data_ins(sim: &Sim, itt: Itt) -> Vec<DataIn> {
    sim.ini.received_where(|p| match p {
        Pdu::DataIn(d) if d.itt == itt => Some(d.clone()),
        _ => None,
    })
}

fn r2ts(sim: &Sim, itt: Itt) -> Vec<R2t> {
    sim.ini.received_where(|p| match p {
        Pdu::R2t(r) if r.itt == itt => Some(r.clone()),
        _ => None,
    })
}

fn writes(sim: &Sim) -> usize {
    sim.ops
        .iter()
        .filter(|o| matches!(o, scsi_sbc::BlockOp::Write { .. }))
        .count()
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A session at `erl` (the initiator offers it; the target's own maximum is the
/// default unless `max` sets the target's `MaxErrorRecoveryLevel`), with digests.
fn erl_sim(
    erl: u8,
    max: Option<&str>,
    seed: u64,
    tweak: impl FnOnce(&mut Sim),
) -> (Sim, fixture::Fixture) {
    let (mut sim, fx) = sim_with(256, ConnConfig::default(), seed);
    if let Some(m) = max {
        assert!(fx.target.set_param("MaxErrorRecoveryLevel", m));
    }
    sim.ini.offer.error_recovery_level = erl;
    sim.ini.offer.header_digest = true;
    sim.ini.offer.data_digest = true;
    tweak(&mut sim);
    sim.login_ready(fixture::TARGET);
    (sim, fx)
}

#[test]
fn level_is_the_lower_of_the_offer_and_the_targets_maximum() {
    // The daemon's default maximum is 2.
    let (sim, _fx) = erl_sim(2, None, 60, |_| {});
    assert_eq!(sim.ini.login_key("ErrorRecoveryLevel"), Some("2"));
    let (sim, _fx) = erl_sim(1, None, 60, |_| {});
    assert_eq!(sim.ini.login_key("ErrorRecoveryLevel"), Some("1"));
    let (sim, _fx) = erl_sim(0, None, 60, |_| {});
    assert_eq!(sim.ini.login_key("ErrorRecoveryLevel"), Some("0"));
    let (sim, _fx) = erl_sim(2, Some("1"), 60, |_| {});
    assert_eq!(sim.ini.login_key("ErrorRecoveryLevel"), Some("1"));
}

#[test]
fn a_target_at_maximum_0_keeps_todays_behaviour() {
    let (mut sim, _fx) = erl_sim(2, Some("0"), 61, |_| {});
    assert_eq!(sim.ini.login_key("ErrorRecoveryLevel"), Some("0"));
    let exp = sim.ini.exp_stat_sn;
    sim.send(snack(1, Itt::RESERVED, exp, 0, 0));
    assert_eq!(rejects(&sim), vec![reject_reason::PROTOCOL_ERROR]);
    // A header digest error closes the connection at level 0.
    let cmd = sim.ini.nop_out(Bytes::new());
    let mut wire = sim.ini.encode(&Pdu::NopOut(cmd));
    wire[20] ^= 1;
    sim.ini.send_raw(&wire);
    sim.drive();
    assert!(sim.conn.is_closed() && closed_event(&sim));
    // The key's values are checked like any other.
    let fx = fixture::single_target(8, fixture::Bind::All);
    assert!(!fx.target.set_param("MaxErrorRecoveryLevel", "3"));
    assert!(!fx.target.set_param("MaxErrorRecoveryLevel", "x"));
    let mut l = iscsi_proto::keys::TargetLimits {
        error_recovery_level: 1,
        ..Default::default()
    };
    crate::connection::params::apply(&mut l, "ErrorRecoveryLevel", "7");
    assert_eq!(l.error_recovery_level, 2, "capped by what is implemented");
    crate::connection::params::apply(&mut l, "MaxErrorRecoveryLevel", "0");
    assert_eq!(l.error_recovery_level, 0);
}

#[test]
fn status_and_data_snack_resend_what_was_retained() {
    let (mut sim, fx) = erl_sim(1, None, 62, |s| {
        s.ini.offer.max_recv_data_segment_length = 512;
    });
    fx.store
        .write_at(0, &(0..2048u32).map(|i| i as u8).collect::<Vec<_>>());
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
    // R-Data SNACK is not supported.
    sim.send(snack(3, itt, status_sn, 0, 0));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT; 4]);
    // Once the initiator acknowledges the status, the task's data is released.
    let next = sim.ini.exp_stat_sn;
    sim.send(snack(0, itt, next, 0, 0));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT; 5]);
    assert_eq!(data_ins(&sim, itt).len(), 7);
}

#[test]
fn data_ack_releases_the_data_of_a_burst() {
    let (mut sim, fx) = erl_sim(1, None, 63, |s| {
        s.ini.offer.max_recv_data_segment_length = 512;
        s.ini.offer.max_burst_length = 1024;
        s.ini.offer.first_burst_length = 1024;
    });
    fx.store.write_at(0, &pattern(2048, 3));
    let itt = sim.ini.read(1, &read10(0, 4), 2048);
    sim.drive();
    let d = data_ins(&sim, itt);
    assert_eq!(d.len(), 4);
    assert_eq!(sim.ini.task(itt).unwrap().data, pattern(2048, 3).to_vec());
    // The end of the first burst asks for an acknowledgement, with a TTT to name it;
    // the last Data-In carries the status instead.
    assert!(d[1].final_bit && d[1].ack && d[1].ttt != Ttt::RESERVED);
    assert_eq!(d[1].lun, LunField::from_lun(1));
    assert!(!d[0].ack && !d[3].ack && d[3].status_present);
    // Before the DataACK, DataSN 0 can be asked for again; after it, not.
    let exp = d[3].stat_sn; // status not acknowledged
    sim.send(snack(0, itt, exp, 0, 1));
    assert_eq!(data_ins(&sim, itt).len(), 5);
    sim.send(Pdu::SnackRequest(SnackRequest {
        snack_type: 2,
        lun: LunField::from_lun(1),
        itt: Itt::RESERVED,
        ttt: d[1].ttt,
        exp_stat_sn: exp,
        beg_run: 2,
        run_length: 0,
    }));
    assert!(rejects(&sim).is_empty(), "DataACK is answered by nothing");
    sim.send(snack(0, itt, exp, 0, 1));
    sim.send(snack(0, itt, exp, 1, 1));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT; 2]);
    // Data after the acknowledged point is still there.
    sim.send(snack(0, itt, exp, 2, 2));
    assert_eq!(data_ins(&sim, itt).len(), 7);
    // A DataACK naming a TTT we never sent: SNACK Reject.
    sim.send(Pdu::SnackRequest(SnackRequest {
        snack_type: 2,
        lun: LunField::from_lun(1),
        itt: Itt::RESERVED,
        ttt: Ttt(0x5555),
        exp_stat_sn: exp,
        beg_run: 2,
        run_length: 0,
    }));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT; 3]);
}

/// A write whose Data-Out the test answers by hand: the task's first R2T.
fn manual_write(sim: &mut Sim, lba: u32, data: &Bytes) -> (Itt, R2t) {
    sim.ini.auto_data_out = false;
    let blocks = (data.len() / 512) as u16;
    let itt = sim.ini.write(1, &write10(lba, blocks), data.clone());
    sim.drive();
    let r = r2ts(sim, itt);
    assert_eq!(r.len(), 1, "{:?}", sim.ini.received);
    (itt, r[0].clone())
}

/// A Data-Out of `data[off..off + len]`; F when it ends the write.
fn data_out(
    sim: &Sim,
    itt: Itt,
    ttt: Ttt,
    data: &Bytes,
    sn: u32,
    off: usize,
    len: usize,
) -> DataOut {
    DataOut {
        final_bit: off + len == data.len(),
        lun: LunField::from_lun(1),
        itt,
        ttt,
        exp_stat_sn: sim.ini.exp_stat_sn,
        data_sn: sn,
        buffer_offset: off as u32,
        data: data.slice(off..off + len),
    }
}

/// ImmediateData=No, 512-byte Data-Out PDUs: a 2048-byte write is one burst of four.
fn write_sim(seed: u64) -> (Sim, fixture::Fixture) {
    let mut config = ConnConfig::default();
    config.limits.max_recv_data_segment_length = 512;
    let fx = fixture::single_target(256, fixture::Bind::All);
    let mut sim = Sim::new(fx.core.clone(), fixture::peer(), config, seed, base());
    sim.ini.offer.error_recovery_level = 1;
    sim.ini.offer.header_digest = true;
    sim.ini.offer.data_digest = true;
    sim.ini.offer.immediate_data = false;
    sim.login_ready(fixture::TARGET);
    (sim, fx)
}

#[test]
fn a_data_out_lost_to_a_data_digest_error_is_asked_for_again() {
    let (mut sim, fx) = write_sim(64);
    let data = pattern(2048, 9);
    let (itt, r) = manual_write(&mut sim, 2, &data);
    // PDU 1 (bytes 512..1024) arrives with a bad data digest; 2 and 3 follow.
    for sn in 0..4u32 {
        let d = data_out(&sim, itt, r.ttt, &data, sn, sn as usize * 512, 512);
        let mut wire = sim.ini.encode(&Pdu::DataOut(d));
        if sn == 1 {
            let n = wire.len();
            wire[n - 10] ^= 0x40;
        }
        sim.ini.send_raw(&wire);
        sim.drive();
    }
    assert_eq!(rejects(&sim), vec![reject_reason::DATA_DIGEST_ERROR]);
    // A recovery R2T for just the lost part of the burst, a new TTT, the next R2TSN.
    let all = r2ts(&sim, itt);
    assert_eq!(all.len(), 2);
    let rec = &all[1];
    assert_eq!(
        (rec.buffer_offset, rec.desired_data_transfer_length),
        (512, 1536)
    );
    assert_eq!(rec.r2t_sn, 1);
    assert_ne!(rec.ttt, r.ttt);
    assert!(sim.ini.task(itt).unwrap().status.is_none());
    // Late data for the replaced TTT is dropped without a word.
    sim.send(Pdu::DataOut(data_out(&sim, itt, r.ttt, &data, 1, 512, 512)));
    assert_eq!(rejects(&sim).len(), 1);
    for (i, off) in [512usize, 1024, 1536].into_iter().enumerate() {
        let d = data_out(&sim, itt, rec.ttt, &data, i as u32, off, 512);
        sim.send(Pdu::DataOut(d));
    }
    assert_eq!(sim.ini.task(itt).unwrap().status, Some(0));
    assert_eq!(fx.store.read_at(2 * 512, 2048), data.to_vec());
    assert_eq!(writes(&sim), 1);
    assert!(!sim.conn.is_closed());
}

#[test]
fn the_last_data_out_lost_asks_for_exactly_its_range() {
    let (mut sim, fx) = write_sim(65);
    let data = pattern(2048, 1);
    let (itt, r) = manual_write(&mut sim, 0, &data);
    for sn in 0..4u32 {
        let d = data_out(&sim, itt, r.ttt, &data, sn, sn as usize * 512, 512);
        let mut wire = sim.ini.encode(&Pdu::DataOut(d));
        if sn == 3 {
            wire[60 + 100] ^= 1; // in the data segment (48 + 4 header digest + ...)
        }
        sim.ini.send_raw(&wire);
    }
    sim.drive();
    let all = r2ts(&sim, itt);
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[1].buffer_offset, all[1].desired_data_transfer_length),
        (1536, 512)
    );
    sim.ini.auto_data_out = true;
    // Answered by the testkit's automatic Data-Out this time.
    sim.send(Pdu::DataOut(data_out(
        &sim, itt, all[1].ttt, &data, 0, 1536, 512,
    )));
    assert_eq!(sim.ini.task(itt).unwrap().status, Some(0));
    assert_eq!(fx.store.read_at(0, 2048), data.to_vec());
}

#[test]
fn header_digest_errors_discard_the_pdu_and_the_initiator_retries() {
    let (mut sim, fx) = write_sim(66);
    sim.ini.auto_data_out = true;
    // A write command lost to a header digest error: no answer, connection stays.
    let data = pattern(1024, 4);
    let w = sim.ini.write(1, &write10(8, 2), data.clone());
    let mut wire = sim.ini.take_outgoing(usize::MAX);
    wire[32] ^= 0x10; // CmdSN byte: the header digest no longer matches
    sim.conn.handle_input(&mut wire, sim.now());
    sim.drive();
    assert!(!sim.conn.is_closed());
    assert!(sim.ini.received.iter().all(|p| !matches!(p, Pdu::R2t(_))));
    // A later command waits behind the CmdSN gap.
    let r = sim.ini.read(1, &read10(0, 1), 512);
    sim.drive();
    assert!(sim.ini.task(r).unwrap().status.is_none());
    // The retry (same ITT and CmdSN) fills the gap: both complete, the write once.
    assert!(sim.ini.retry(w));
    sim.drive();
    assert_eq!(sim.ini.task(w).unwrap().status, Some(0));
    assert_eq!(sim.ini.task(r).unwrap().status, Some(0));
    assert_eq!(fx.store.read_at(8 * 512, 1024), data.to_vec());
    assert_eq!(writes(&sim), 1);
    // A retry of a command already done (its status lost on the way): the same
    // status again, nothing run twice.
    let statuses = sim.ini.received.len();
    let again = sim.ini.task(w).unwrap().command.clone().unwrap();
    sim.send(Pdu::ScsiCommand(again));
    assert_eq!(writes(&sim), 1);
    let resent = &sim.ini.received[statuses..];
    assert!(
        matches!(resent, [Pdu::ScsiResponse(x)] if x.itt == w && x.status == 0),
        "{resent:?}"
    );
    assert_clean_but_duplicates(&sim);
    // Two header digest errors in a row: the stream is taken as lost.
    let p1 = sim.ini.nop_out(Bytes::new());
    let p2 = sim.ini.nop_out(Bytes::new());
    let mut wire = sim.ini.encode(&Pdu::NopOut(p1));
    wire[20] ^= 1;
    let mut w2 = sim.ini.encode(&Pdu::NopOut(p2));
    w2[20] ^= 1;
    wire.extend_from_slice(&w2);
    sim.ini.send_raw(&wire);
    sim.drive();
    assert!(sim.conn.is_closed());
}

/// Only what a replay explains: a second status for a task, StatSNs seen twice.
fn assert_clean_but_duplicates(sim: &Sim) {
    let other: Vec<&String> = sim
        .ini
        .protocol_errors
        .iter()
        .filter(|e| !e.contains("second status") && !e.contains("where"))
        .collect();
    assert!(other.is_empty(), "{other:?}");
    assert!(sim.ini.decode_errors.is_empty());
}

#[test]
fn a_lost_final_data_out_is_asked_for_after_the_timeout() {
    let (mut sim, fx) = write_sim(67);
    let data = pattern(1024, 5);
    let (itt, r) = manual_write(&mut sim, 4, &data);
    sim.send(Pdu::DataOut(data_out(&sim, itt, r.ttt, &data, 0, 0, 512)));
    // The second (F) PDU is lost to a header digest error.
    let d = data_out(&sim, itt, r.ttt, &data, 1, 512, 512);
    let mut wire = sim.ini.encode(&Pdu::DataOut(d));
    wire[40] ^= 2;
    sim.ini.send_raw(&wire);
    sim.drive();
    assert_eq!(r2ts(&sim, itt).len(), 1);
    // Nothing for a while: just before the timeout, no recovery yet.
    sim.advance(DATA_OUT_TIMEOUT - Duration::from_millis(1));
    sim.drive();
    assert_eq!(r2ts(&sim, itt).len(), 1);
    sim.advance(Duration::from_millis(1));
    sim.drive();
    let all = r2ts(&sim, itt);
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[1].buffer_offset, all[1].desired_data_transfer_length),
        (512, 512)
    );
    sim.send(Pdu::DataOut(data_out(
        &sim, itt, all[1].ttt, &data, 0, 512, 512,
    )));
    assert_eq!(sim.ini.task(itt).unwrap().status, Some(0));
    assert_eq!(fx.store.read_at(4 * 512, 1024), data.to_vec());
    assert_clean(&sim);
}

#[test]
fn r2t_snack_resends_the_r2t() {
    let (mut sim, fx) = write_sim(68);
    let data = pattern(1024, 6);
    let (itt, r) = manual_write(&mut sim, 6, &data);
    // The R2T was "lost": asked for again by R2TSN.
    let exp = sim.ini.exp_stat_sn;
    sim.send(snack(0, itt, exp, 0, 1));
    let all = r2ts(&sim, itt);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1], r);
    sim.send(snack(0, itt, exp, 1, 1));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT]);
    sim.send(Pdu::DataOut(data_out(&sim, itt, r.ttt, &data, 0, 0, 512)));
    sim.send(Pdu::DataOut(data_out(&sim, itt, r.ttt, &data, 1, 512, 512)));
    assert_eq!(sim.ini.task(itt).unwrap().status, Some(0));
    assert_eq!(fx.store.read_at(6 * 512, 1024), data.to_vec());
}

#[test]
fn retention_is_counted_per_session_and_given_back_on_close() {
    let (mut sim, fx) = erl_sim(1, None, 69, |_| {});
    fx.store.write_at(0, &pattern(4096, 7));
    let itt = sim.ini.read(1, &read10(0, 8), 4096);
    sim.drive();
    assert_eq!(sim.ini.task(itt).unwrap().status, Some(0));
    let shared = sim.conn.shared.clone().unwrap();
    assert!(shared.retained_bytes() >= 4096);
    // Acknowledged: released.
    let nop = sim.ini.nop_out(Bytes::new());
    sim.send(Pdu::NopOut(nop));
    let nop = sim.ini.nop_out(Bytes::new());
    sim.send(Pdu::NopOut(nop));
    assert!(
        shared.retained_bytes() < 4096,
        "{}",
        shared.retained_bytes()
    );
    sim.conn.handle_close();
    assert_eq!(shared.retained_bytes(), 0);
    // The cap: past it nothing is kept (and a SNACK for it is rejected).
    assert!(shared.retain(10, 100));
    assert!(!shared.retain(91, 100));
    shared.unretain(10);
    assert_eq!(shared.retained_bytes(), 0);
}

#[test]
fn past_the_session_cap_nothing_is_kept_and_a_snack_is_rejected() {
    let (mut sim, fx) = erl_sim(1, None, 70, |_| {});
    fx.store.write_at(0, &pattern(4096, 8));
    // Other connections of the session hold nearly the whole cap.
    let shared = sim.conn.shared.clone().unwrap();
    assert!(shared.retain(
        crate::connection::RETAIN_CAP - 100,
        crate::connection::RETAIN_CAP
    ));
    let itt = sim.ini.read(1, &read10(0, 8), 4096);
    sim.drive();
    assert_eq!(
        sim.ini.task(itt).unwrap().status,
        Some(0),
        "the read itself is served"
    );
    let exp = data_ins(&sim, itt)[0].stat_sn;
    sim.send(snack(0, itt, exp, 0, 0));
    sim.send(snack(1, Itt::RESERVED, exp, exp.get(), 1));
    assert_eq!(rejects(&sim), vec![reject_reason::SNACK_REJECT; 2]);
    // Room again (the others acknowledged theirs): the next read is kept.
    shared.unretain(crate::connection::RETAIN_CAP - 100);
    let itt = sim.ini.read(1, &read10(0, 8), 4096);
    sim.drive();
    let d = data_ins(&sim, itt);
    sim.send(snack(0, itt, d[0].stat_sn, 0, 0));
    assert_eq!(data_ins(&sim, itt).len(), d.len() * 2);
}

/// Split whole PDUs (both digests on) off `buf`.
fn frames(mut buf: BytesMut) -> Vec<BytesMut> {
    let mut out = Vec::new();
    while buf.len() >= 48 {
        let ahs = usize::from(buf[4]) * 4;
        let dsl = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
        let pad = (4 - dsl % 4) % 4;
        let total = 48 + ahs + 4 + dsl + pad + if dsl > 0 { 4 } else { 0 };
        if buf.len() < total {
            break;
        }
        out.push(buf.split_to(total));
    }
    if !buf.is_empty() {
        out.push(buf);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random header and data digest errors on what the initiator sends (commands
    /// and Data-Out) at ErrorRecoveryLevel 1: with the initiator retrying commands
    /// that got no answer and the target asking again for lost Data-Out, every write
    /// completes GOOD, exactly once, and reads back.
    #[test]
    fn random_corruption_never_loses_or_duplicates_a_write(
        seed in any::<u64>(),
        rate in 5u64..40,
        sizes in prop::collection::vec(1u16..6, 1..8),
    ) {
        let (mut sim, fx) = write_sim(seed);
        sim.ini.auto_data_out = true;
        let mut rng = crate::testkit::Rng::new(seed ^ 0x5eed);
        let mut last_bad = false;
        sim.tamper = Some(Box::new(move |chunk: BytesMut| {
            let mut out = BytesMut::new();
            for mut f in frames(chunk) {
                // Never two in a row (that closes the connection as a lost stream).
                let bad = !last_bad && f.len() >= 52 && (rng.next_u64() % 100) < rate;
                if bad {
                    let mut at = rng.range(0, f.len() - 1);
                    if (4..8).contains(&at) {
                        at = 20; // keep the lengths: the stream stays framed
                    }
                    f[at] ^= 1 << rng.range(0, 7);
                }
                last_bad = bad;
                out.extend_from_slice(&f);
            }
            out
        }));
        let mut want = Vec::new();
        let mut itts = Vec::new();
        let mut lba = 0u32;
        for (i, blocks) in sizes.iter().enumerate() {
            let data = pattern(usize::from(*blocks) * 512, i as u8);
            itts.push(sim.ini.write(1, &write10(lba, *blocks), data.clone()));
            want.push((lba, data));
            lba += u32::from(*blocks);
        }
        let mut rounds = 0;
        loop {
            sim.drive();
            let pending: Vec<Itt> = itts
                .iter()
                .copied()
                .filter(|i| sim.ini.task(*i).unwrap().status.is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            rounds += 1;
            prop_assert!(rounds < 200, "no progress: {:?}", sim.ini.received.last());
            prop_assert!(!sim.conn.is_closed());
            // The initiator's command timer: retry what got no answer; the target's
            // Data-Out timer.
            sim.advance(DATA_OUT_TIMEOUT);
            for i in pending {
                sim.ini.retry(i);
            }
        }
        for i in &itts {
            prop_assert_eq!(sim.ini.task(*i).unwrap().status, Some(0));
        }
        for (lba, data) in &want {
            prop_assert_eq!(fx.store.read_at(*lba as usize * 512, data.len()), data.to_vec());
        }
        prop_assert_eq!(writes(&sim), itts.len(), "each write ran once");
    }
}
