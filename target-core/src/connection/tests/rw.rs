//! READ and WRITE through the connection: immediate, unsolicited and solicited data,
//! R2T sequencing, Data-In segmentation and residuals (RFC 7143 §4.1, §11.4.5, §11.7, §11.8).

use super::{assert_clean, sim_with};
use crate::connection::ConnConfig;
use crate::testkit::{cdb, fixture, IoMode, Offer, Sim};
use bytes::Bytes;
use iscsi_proto::keys::TargetLimits;
use iscsi_proto::pdu::Pdu;

/// Target accepts Data-Out segments of at most this many bytes.
const TARGET_MRDSL: u32 = 2048;
/// Initiator accepts Data-In segments of at most this many bytes.
const INITIATOR_MRDSL: u32 = 1024;
const FIRST_BURST: u32 = 4096;
const MAX_BURST: u32 = 8192;
/// 40 blocks: larger than both FirstBurstLength and MaxBurstLength.
const BLOCKS: u16 = 40;
const LEN: usize = BLOCKS as usize * 512;

fn pattern(len: usize, salt: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ salt ^ (i >> 9) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// A logged-in simulation with the burst limits above and the given InitialR2T /
/// ImmediateData offer; bytes move in seeded random chunks, storage completes in a
/// seeded random order.
fn burst_sim(immediate_data: bool, initial_r2t: bool, seed: u64) -> (Sim, fixture::Fixture) {
    let config = ConnConfig {
        limits: TargetLimits {
            max_recv_data_segment_length: TARGET_MRDSL,
            ..TargetLimits::default()
        },
        ..ConnConfig::default()
    };
    let (mut sim, fx) = sim_with(1024, config, seed);
    sim.ini.offer = Offer {
        immediate_data,
        initial_r2t,
        max_recv_data_segment_length: INITIATOR_MRDSL,
        first_burst_length: FIRST_BURST,
        max_burst_length: MAX_BURST,
        ..Offer::default()
    };
    sim.max_chunk = Some(1 + (seed as usize * 977) % 3000);
    sim.io_mode = IoMode::Random;
    sim.login_ready(fixture::TARGET);
    assert_eq!(sim.ini.params.immediate_data, immediate_data);
    assert_eq!(sim.ini.params.initial_r2t, initial_r2t);
    assert_eq!(sim.ini.params.max_xmit_data_segment_length, TARGET_MRDSL);
    (sim, fx)
}

/// The R2Ts a target must send: from the end of the unsolicited data, MaxBurstLength
/// pieces up to the end.
fn expected_r2ts(unsolicited: u32, total: u32) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    let mut off = unsolicited;
    while off < total {
        let len = (total - off).min(MAX_BURST);
        v.push((off, len));
        off += len;
    }
    v
}

fn write_then_read(immediate_data: bool, initial_r2t: bool, seed: u64) {
    let (mut sim, fx) = burst_sim(immediate_data, initial_r2t, seed);
    let data = pattern(LEN, seed as u8);
    let lba = 100;

    let w = sim.ini.write(1, &cdb::write10(lba, BLOCKS), data.clone());
    sim.drive();
    let t = sim.ini.task(w).unwrap().clone();
    assert_eq!(t.status, Some(0), "write status");
    assert!(!t.overflow && !t.underflow);
    assert_eq!(t.residual, 0);
    let imm = if immediate_data {
        FIRST_BURST.min(TARGET_MRDSL)
    } else {
        0
    };
    assert_eq!(t.immediate_len as u32, imm);
    let unsolicited = if initial_r2t { imm } else { FIRST_BURST };
    let r2ts: Vec<(u32, u32)> = t
        .r2ts
        .iter()
        .map(|r| (r.buffer_offset, r.desired_data_transfer_length))
        .collect();
    assert_eq!(r2ts, expected_r2ts(unsolicited, LEN as u32));
    for (i, r) in t.r2ts.iter().enumerate() {
        assert_eq!(r.r2t_sn, i as u32);
        assert_eq!(r.lun.to_lun(), 1);
        assert!(t.r2ts[..i].iter().all(|o| o.ttt != r.ttt), "TTTs differ");
    }
    // The write reached the store as one operation, and nothing else was written.
    assert_eq!(fx.store.read_at(lba as usize * 512, LEN), data.to_vec());
    assert_eq!(
        fx.store.read_at(lba as usize * 512 + LEN, 512),
        vec![0; 512]
    );

    let r = sim.ini.read(1, &cdb::read10(lba, BLOCKS), LEN as u32);
    sim.drive();
    let t = sim.ini.task(r).unwrap().clone();
    assert_eq!(t.data, data.to_vec());
    assert_eq!(t.status, Some(0));
    assert!(t.response.is_none(), "status rides in the last Data-In");
    let n = t.data_in.len();
    assert_eq!(n, LEN / INITIATOR_MRDSL as usize);
    let mut off = 0;
    for (i, d) in t.data_in.iter().enumerate() {
        assert_eq!(d.data_sn, i as u32);
        assert_eq!(d.buffer_offset, off);
        assert!(d.data.len() <= INITIATOR_MRDSL as usize);
        off += d.data.len() as u32;
        let last = i == n - 1;
        let burst_end = off % MAX_BURST == 0;
        assert_eq!(d.final_bit, last || burst_end, "F bit of Data-In {i}");
        assert_eq!(d.status_present, last, "S bit of Data-In {i}");
        if last {
            assert_eq!(d.status, 0);
            assert!(!d.overflow && !d.underflow);
            assert_eq!(d.residual_count, 0);
        }
    }
    assert_clean(&sim);
}

#[test]
fn write_read_immediate_yes_initial_r2t_yes() {
    for seed in [21, 22, 23] {
        write_then_read(true, true, seed);
    }
}

#[test]
fn write_read_immediate_yes_initial_r2t_no() {
    for seed in [31, 32, 33] {
        write_then_read(true, false, seed);
    }
}

#[test]
fn write_read_immediate_no_initial_r2t_yes() {
    for seed in [41, 42, 43] {
        write_then_read(false, true, seed);
    }
}

#[test]
fn write_read_immediate_no_initial_r2t_no() {
    for seed in [51, 52, 53] {
        write_then_read(false, false, seed);
    }
}

#[test]
fn several_outstanding_r2ts() {
    let config = ConnConfig {
        limits: TargetLimits {
            max_recv_data_segment_length: TARGET_MRDSL,
            ..TargetLimits::default()
        },
        ..ConnConfig::default()
    };
    let (mut sim, fx) = sim_with(1024, config, 61);
    sim.ini.offer = Offer {
        immediate_data: false,
        max_burst_length: MAX_BURST,
        max_outstanding_r2t: 4,
        ..Offer::default()
    };
    sim.max_chunk = Some(700);
    sim.login_ready(fixture::TARGET);
    assert_eq!(sim.ini.params.max_outstanding_r2t, 4);
    let len = 64 * 512;
    let data = pattern(len, 9);
    let w = sim.ini.write(1, &cdb::write10(0, 64), data.clone());
    sim.drive();
    let t = sim.ini.task(w).unwrap();
    assert_eq!(t.status, Some(0));
    let r2ts: Vec<(u32, u32)> = t
        .r2ts
        .iter()
        .map(|r| (r.buffer_offset, r.desired_data_transfer_length))
        .collect();
    assert_eq!(r2ts, expected_r2ts(0, len as u32));
    assert_eq!(fx.store.read_at(0, len), data.to_vec());
    assert_clean(&sim);
}

#[test]
fn read_residual_overflow() {
    // EDTL 3000 < 8 blocks: the target sends 3000 bytes and reports 1096 not sent.
    let (mut sim, fx) = burst_sim(true, true, 71);
    let data = pattern(4096, 1);
    fx.store.write_at(512 * 10, &data);
    let r = sim.ini.read(1, &cdb::read10(10, 8), 3000);
    sim.drive();
    let t = sim.ini.task(r).unwrap();
    assert_eq!(t.status, Some(0));
    assert_eq!(t.data, data[..3000].to_vec());
    assert!(t.overflow && !t.underflow);
    assert_eq!(t.residual, 1096);
    assert_clean(&sim);
}

#[test]
fn read_residual_underflow() {
    let (mut sim, fx) = burst_sim(true, true, 72);
    let data = pattern(4096, 2);
    fx.store.write_at(512 * 10, &data);
    let r = sim.ini.read(1, &cdb::read10(10, 8), 5000);
    sim.drive();
    let t = sim.ini.task(r).unwrap();
    assert_eq!(t.status, Some(0));
    assert_eq!(t.data, data.to_vec());
    assert!(!t.overflow && t.underflow);
    assert_eq!(t.residual, 904);
    assert_clean(&sim);
}

#[test]
fn write_residual_overflow() {
    // The CDB asks for 8 blocks, the initiator only sends 3000 bytes: those are written,
    // the rest is reported as residual overflow.
    for (imm, r2t, seed) in [(true, true, 73), (false, false, 74)] {
        let (mut sim, fx) = burst_sim(imm, r2t, seed);
        let data = pattern(3000, 3);
        let w = sim.ini.write(1, &cdb::write10(20, 8), data.clone());
        sim.drive();
        let t = sim.ini.task(w).unwrap();
        assert_eq!(t.status, Some(0));
        assert!(t.overflow && !t.underflow);
        assert_eq!(t.residual, 1096);
        assert_eq!(fx.store.read_at(20 * 512, 3000), data.to_vec());
        assert_eq!(fx.store.read_at(20 * 512 + 3000, 1096), vec![0; 1096]);
        assert_clean(&sim);
    }
}

#[test]
fn write_residual_underflow() {
    // The CDB asks for 4 blocks, the initiator is ready to send 3000 bytes: 2048 bytes
    // are solicited and written, 952 reported as residual underflow.
    for (imm, r2t, seed) in [(true, true, 75), (false, true, 76), (false, false, 77)] {
        let (mut sim, fx) = burst_sim(imm, r2t, seed);
        let data = pattern(3000, 4);
        let w = sim.ini.write(1, &cdb::write10(30, 4), data.clone());
        sim.drive();
        let t = sim.ini.task(w).unwrap();
        assert_eq!(t.status, Some(0));
        assert!(!t.overflow && t.underflow);
        assert_eq!(t.residual, 952);
        for r in &t.r2ts {
            assert!(r.buffer_offset + r.desired_data_transfer_length <= 2048);
        }
        assert_eq!(fx.store.read_at(30 * 512, 2048), data[..2048].to_vec());
        assert_eq!(fx.store.read_at(30 * 512 + 2048, 512), vec![0; 512]);
        assert_clean(&sim);
    }
}

#[test]
fn out_of_order_completion_across_commands() {
    let (mut sim, fx) = super::logged_in(81);
    let a = pattern(1024, 0xa);
    let b = pattern(1024, 0xb);
    fx.store.write_at(0, &a);
    fx.store.write_at(512 * 50, &b);
    sim.io_mode = IoMode::Hold;
    let ra = sim.ini.read(1, &cdb::read10(0, 2), 1024);
    let rb = sim.ini.read(1, &cdb::read10(50, 2), 1024);
    sim.drive();
    assert_eq!(sim.pending_io(), 2);
    assert_eq!(sim.conn.tasks_in_flight(), 2);
    // The second command's read finishes first.
    sim.complete_io(1);
    sim.drive();
    assert!(sim.ini.task(rb).unwrap().done());
    assert!(!sim.ini.task(ra).unwrap().done());
    sim.complete_io(0);
    sim.drive();
    assert_eq!(sim.ini.task(ra).unwrap().data, a.to_vec());
    assert_eq!(sim.ini.task(rb).unwrap().data, b.to_vec());
    // Responses came in completion order: rb's Data-In first.
    let order: Vec<_> = sim.ini.received_where(|p| match p {
        Pdu::DataIn(d) if d.status_present && [ra, rb].contains(&d.itt) => Some(d.itt),
        _ => None,
    });
    assert_eq!(order, vec![rb, ra]);
    assert_eq!(sim.conn.stray_completions(), 0);
    assert_clean(&sim);
}

#[test]
fn random_completion_order_many_commands() {
    // Eight interleaved writes then reads, completed in a seeded random order.
    let (mut sim, fx) = super::logged_in(82);
    sim.io_mode = IoMode::Random;
    sim.max_chunk = Some(333);
    let writes: Vec<_> = (0..8u8)
        .map(|i| {
            let d = pattern(2048, i);
            let itt = sim
                .ini
                .write(1, &cdb::write10(u32::from(i) * 4, 4), d.clone());
            (itt, d)
        })
        .collect();
    sim.drive();
    for (itt, _) in &writes {
        assert_eq!(sim.ini.task(*itt).unwrap().status, Some(0));
    }
    let reads: Vec<_> = (0..8u32)
        .map(|i| sim.ini.read(1, &cdb::read10(i * 4, 4), 2048))
        .collect();
    sim.drive();
    for (r, (_, d)) in reads.iter().zip(&writes) {
        assert_eq!(sim.ini.task(*r).unwrap().data, d.to_vec());
    }
    assert_eq!(fx.store.read_at(0, 2048), writes[0].1.to_vec());
    assert_clean(&sim);
}
