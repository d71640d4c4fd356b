//! CRC32C header and data digests (RFC 7143 §12.1): negotiated, used both ways, and
//! what a corrupted digest costs.

use super::{assert_clean, closed_event, sim_with};
use crate::connection::ConnConfig;
use crate::testkit::{cdb, fixture, Sim};
use bytes::Bytes;
use iscsi_proto::pdu::{reject_reason, Pdu};

fn digest_sim(seed: u64) -> (Sim, fixture::Fixture) {
    let (mut sim, fx) = sim_with(256, ConnConfig::default(), seed);
    sim.ini.offer.header_digest = true;
    sim.ini.offer.data_digest = true;
    sim.max_chunk = Some(97);
    let r = sim.login_ready(fixture::TARGET);
    // The final login response itself is sent without digests (RFC 7143 §13.1).
    assert!(r.transit);
    assert_eq!(sim.ini.login_key("HeaderDigest"), Some("CRC32C"));
    assert_eq!(sim.ini.login_key("DataDigest"), Some("CRC32C"));
    assert!(sim.ini.params.header_digest && sim.ini.params.data_digest);
    (sim, fx)
}

#[test]
fn digests_negotiated_and_used() {
    let (mut sim, fx) = digest_sim(201);
    let data = Bytes::from((0..8192u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    let w = sim.ini.write(1, &cdb::write10(3, 16), data.clone());
    sim.drive();
    assert_eq!(sim.ini.task(w).unwrap().status, Some(0));
    assert_eq!(fx.store.read_at(3 * 512, 8192), data.to_vec());
    let r = sim.ini.read(1, &cdb::read10(3, 16), 8192);
    sim.drive();
    assert_eq!(sim.ini.task(r).unwrap().data, data.to_vec());
    // The initiator's decoder checked every digest the target sent.
    assert_clean(&sim);
}

/// A READ's data digests computed ahead by whoever read the data (a store worker)
/// are sent as they are when they were cut the way the connection cuts the data,
/// and ignored (computed again) when they were not; either way every digest the
/// initiator checks is right.
#[test]
fn precomputed_read_digests_are_used_when_they_fit() {
    use crate::connection::DataInLayout;
    use crate::testkit::IoMode;
    let (mut sim, fx) = digest_sim(204);
    let data: Vec<u8> = (0..100 * 1024u32).map(|i| (i * 13 + 5) as u8).collect();
    fx.store.write_at(0, &data);
    let layout = sim.conn.data_in_layout().expect("data digest on");
    assert_eq!(
        layout.segments(data.len()).count(),
        data.len().div_ceil(layout.segment.min(layout.burst)),
        "several Data-In PDUs"
    );
    sim.io_mode = IoMode::Hold;
    let odd = DataInLayout {
        segment: layout.segment / 2 + 512,
        burst: layout.burst,
    };
    for with in [Some(layout), Some(odd), None] {
        let r = sim.ini.read(1, &cdb::read10(0, 200), data.len() as u32);
        sim.drive();
        assert_eq!(sim.pending_io(), 1);
        sim.complete_io_with(0, |d| with.map(|l| l.crcs(d)));
        sim.drive();
        let t = sim.ini.task(r).unwrap();
        assert_eq!(t.status, Some(0), "{with:?}");
        assert!(t.data == data, "{with:?}: data differs");
        // The initiator's decoder checked every data digest.
        assert_clean(&sim);
    }
}

/// Proof that fitting precomputed digests are what goes out: a wrong one trips the
/// encoder's check (debug builds, as tests run).
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "precomputed data CRC")]
fn a_wrong_precomputed_digest_is_caught_in_debug_builds() {
    use crate::testkit::IoMode;
    let (mut sim, _fx) = digest_sim(205);
    let layout = sim.conn.data_in_layout().expect("data digest on");
    sim.io_mode = IoMode::Hold;
    sim.ini.read(1, &cdb::read10(0, 16), 8192);
    sim.drive();
    sim.complete_io_with(0, |d| {
        let mut c = layout.crcs(d);
        c.crcs[0] ^= 1;
        Some(c)
    });
}

#[test]
fn data_in_segments_follow_segment_and_burst_limits() {
    use crate::connection::DataInLayout;
    let l = DataInLayout {
        segment: 3,
        burst: 8,
    };
    let cut: Vec<(usize, usize)> = l.segments(20).collect();
    assert_eq!(
        cut,
        [
            (0, 3),
            (3, 6),
            (6, 8),
            (8, 11),
            (11, 14),
            (14, 16),
            (16, 19),
            (19, 20)
        ]
    );
    assert_eq!(l.segments(0).count(), 0);
    let data: Vec<u8> = (0..20u8).collect();
    let c = l.crcs(&data);
    assert_eq!(c.len, 20);
    assert_eq!(c.crcs.len(), cut.len());
    assert_eq!(c.crcs[2], iscsi_proto::digest::crc32c(&data[6..8]));
}

#[test]
fn corrupted_data_digest_is_rejected() {
    let (mut sim, _fx) = digest_sim(202);
    let ping = sim.ini.nop_out(Bytes::from_static(b"digest me"));
    let mut wire = sim.ini.encode(&Pdu::NopOut(ping.clone()));
    let n = wire.len();
    wire[n - 1] ^= 0x5a; // last byte of the data digest
    sim.ini.send_raw(&wire);
    sim.drive();
    let Some(Pdu::Reject(r)) = sim.ini.received.last() else {
        panic!("expected a Reject");
    };
    assert_eq!(r.reason, reject_reason::DATA_DIGEST_ERROR);
    assert_eq!(r.data.len(), 48);
    assert_eq!(r.data[0] & 0x3f, 0x00, "the NOP-Out's header comes back");
    assert!(!sim.conn.is_closed());
    // RFC 7143 §7.8: the PDU was discarded, so the initiator resends it as it was.
    sim.send(Pdu::NopOut(ping.clone()));
    let Some(Pdu::NopIn(n)) = sim.ini.received.last() else {
        panic!("expected a NOP-In");
    };
    assert_eq!(n.itt, ping.itt);
    assert_eq!(n.data, ping.data);
    assert_clean(&sim);
}

#[test]
fn corrupted_header_digest_closes() {
    let (mut sim, _fx) = digest_sim(203);
    let ping = sim.ini.nop_out(Bytes::from_static(b"x"));
    let mut wire = sim.ini.encode(&Pdu::NopOut(ping));
    wire[49] ^= 0x01; // inside the header digest
    sim.ini.send_raw(&wire);
    sim.drive();
    assert!(sim.conn.is_closed());
    assert!(closed_event(&sim));
    assert!(
        !sim.ini
            .received
            .iter()
            .any(|p| matches!(p, Pdu::NopIn(_) | Pdu::Reject(_))),
        "nothing answers a PDU whose header cannot be trusted"
    );
    assert_clean(&sim);
}
