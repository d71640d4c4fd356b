//! ErrorRecoveryLevel 1 between the initiator and the target core in process, with
//! PDUs corrupted on the way in both directions (header and data digests on): every
//! command completes GOOD, reads return what was written, each write runs once.
#![allow(clippy::disallowed_methods)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{config, pattern};
use iscsi_initiator::{cdb, Command, DataDirection, Event, Itt, Session, State};
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use target_core::connection::{ConnConfig, Connection, IoCompletion};
use target_core::testkit::fixture;
use target_core::testkit::Rng;

/// Whole PDUs of `buf` (both digests on, no AHS from either side here).
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

/// Flips one bit in some PDUs (never the length bytes, never two in a row).
struct Corrupter {
    rng: Rng,
    percent: u64,
    last: bool,
    pub hits: usize,
}

impl Corrupter {
    fn apply(&mut self, buf: BytesMut, on: bool) -> BytesMut {
        if !on {
            return buf;
        }
        let mut out = BytesMut::new();
        for mut f in frames(buf) {
            let bad = !self.last && f.len() >= 52 && self.rng.next_u64() % 100 < self.percent;
            if bad {
                let mut at = self.rng.range(0, f.len() - 1);
                if (4..8).contains(&at) {
                    at = 2;
                }
                f[at] ^= 1 << self.rng.range(0, 7);
                self.hits += 1;
            }
            self.last = bad;
            out.extend_from_slice(&f);
        }
        out
    }
}

struct Run {
    conn: Connection,
    ini: Session,
    now: Instant,
    events: Vec<Event>,
    up: Corrupter,
    down: Corrupter,
    /// Every PDU each way, as sent (before any corruption): (to the target, frame).
    log: Vec<(bool, BytesMut)>,
}

impl Run {
    /// Move bytes and storage until nothing happens; corrupt only once `corrupt`.
    fn settle(&mut self, corrupt: bool) {
        for _ in 0..100_000 {
            let mut progress = false;
            let out = self.initiator_out();
            if !out.is_empty() {
                self.log
                    .extend(frames(out.clone()).into_iter().map(|f| (true, f)));
                let mut out = self.up.apply(out, corrupt);
                self.conn.handle_input(&mut out, self.now);
                progress = true;
            }
            progress |= self.run_io();
            let back = self.target_out();
            while self.conn.poll_event().is_some() {}
            if !back.is_empty() {
                self.log
                    .extend(frames(back.clone()).into_iter().map(|f| (false, f)));
                let back = self.down.apply(back, corrupt);
                self.ini.handle_input(&back).expect("initiator input");
                progress = true;
            }
            while let Some(e) = self.ini.poll_event() {
                self.events.push(e);
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("did not settle");
    }

    /// Everything the initiator has to send, as one byte stream.
    fn initiator_out(&mut self) -> BytesMut {
        let mut out = BytesMut::new();
        while let Some(e) = self.ini.poll_transmit() {
            out.extend_from_slice(&e.header);
            out.extend_from_slice(&e.data);
            out.extend_from_slice(&e.trailer);
        }
        out
    }

    /// Run the target's store operations; whether there were any.
    fn run_io(&mut self) -> bool {
        let mut any = false;
        while let Some(io) = self.conn.poll_io() {
            let result = io.store.execute(&io.op);
            let c = IoCompletion::new(io.tag, result);
            self.conn.handle_io_completion(c, self.now);
            any = true;
        }
        any
    }

    /// Everything the target has to send, as one byte stream.
    fn target_out(&mut self) -> BytesMut {
        let mut back = BytesMut::new();
        while let Some(t) = self.conn.poll_transmit() {
            back.extend_from_slice(&t.header);
            back.extend_from_slice(&t.data);
            back.extend_from_slice(&t.trailer);
        }
        back
    }

    /// Let time pass: both sides' timers.
    fn tick(&mut self) {
        self.now += iscsi_initiator::RECOVERY_TICK;
        self.conn.handle_timeout(self.now);
        self.ini.handle_timeout(self.now).expect("initiator timer");
    }
}

fn start(seed: u64, percent: u64, erl: u8) -> (Run, fixture::Fixture) {
    let fx = fixture::single_target(512, fixture::Bind::All);
    let now = Instant::now();
    let mut cfg = config();
    cfg.header_digest = true;
    cfg.data_digest = true;
    cfg.error_recovery_level = erl;
    // Several PDUs per transfer, so losses land in the middle of sequences.
    cfg.max_recv_data_segment_length = 1024;
    cfg.immediate_data = seed & 1 == 0;
    cfg.initial_r2t = seed & 2 == 0;
    let mut conn_cfg = ConnConfig::default();
    conn_cfg.limits.max_recv_data_segment_length = 1024;
    let corrupter = |s| Corrupter {
        rng: Rng::new(s),
        percent,
        last: false,
        hits: 0,
    };
    let mut run = Run {
        conn: Connection::new(fx.core.clone(), fixture::peer(), conn_cfg, now),
        ini: Session::new(cfg, now),
        now,
        events: Vec::new(),
        up: corrupter(seed ^ 1),
        down: corrupter(seed ^ 2),
        log: Vec::new(),
    };
    run.settle(false);
    assert_eq!(run.ini.state(), State::FullFeature);
    // The new nexus's unit attention.
    for _ in 0..2 {
        let tur = Command::new(1, &cdb::test_unit_ready(), DataDirection::None);
        run.ini.submit(tur).unwrap();
    }
    run.settle(false);
    run.events.clear();
    (run, fx)
}

fn done(run: &Run) -> HashMap<u32, &iscsi_initiator::Completion> {
    run.events
        .iter()
        .filter_map(|e| match e {
            Event::CommandComplete(c) => Some((c.task.0, c)),
            _ => None,
        })
        .collect()
}

#[test]
fn erl_is_negotiated_to_the_targets_maximum() {
    let (run, _fx) = start(7, 0, 2);
    assert_eq!(run.ini.params().error_recovery_level, 2);
    let (run, _fx) = start(7, 0, 0);
    assert_eq!(run.ini.params().error_recovery_level, 0);
}

/// Writes then reads of `sizes` (in 512-byte blocks) with `percent` % of PDUs
/// corrupted each way.
fn corrupted_round_trip(seed: u64, percent: u64, sizes: &[u16]) -> (usize, u64, u64) {
    let (mut run, fx) = start(seed, percent, 1);
    assert_eq!(run.ini.params().error_recovery_level, 1);
    let mut lba = 0u32;
    let mut writes = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let data = pattern(usize::from(*n) * 512, i as u8 ^ seed as u8);
        let cmd = Command::new(
            1,
            &cdb::write10(lba, *n),
            DataDirection::Write(data.clone()),
        );
        writes.push((run.ini.submit(cmd).unwrap(), lba, data));
        lba += u32::from(*n);
    }
    let all_done = |run: &Run, itts: &[Itt]| {
        let d = done(run);
        itts.iter().all(|i| d.contains_key(&i.0))
    };
    let itts: Vec<Itt> = writes.iter().map(|w| w.0).collect();
    for round in 0.. {
        run.settle(true);
        if all_done(&run, &itts) {
            break;
        }
        assert!(round < 2000, "writes did not finish: {:?}", run.events);
        run.tick();
    }
    let d = done(&run);
    for (itt, lba, data) in &writes {
        assert_eq!(d[&itt.0].status, 0, "{:?}", d[&itt.0]);
        assert_eq!(
            fx.store.read_at(*lba as usize * 512, data.len()),
            data.to_vec()
        );
    }
    let mut reads = Vec::new();
    for (_, lba, data) in &writes {
        let n = (data.len() / 512) as u16;
        let cmd = Command::new(
            1,
            &cdb::read10(*lba, n),
            DataDirection::Read(data.len() as u32),
        );
        reads.push((run.ini.submit(cmd).unwrap(), data.clone()));
    }
    let itts: Vec<Itt> = reads.iter().map(|r| r.0).collect();
    for round in 0.. {
        run.settle(true);
        if all_done(&run, &itts) {
            break;
        }
        assert!(
            round < 2000,
            "reads did not finish: out {} retries {} snacks {} closed {} state {:?} {:#?}",
            run.ini.commands_outstanding(),
            run.ini.commands_retried(),
            run.ini.snacks_sent(),
            run.conn.is_closed(),
            run.ini.state(),
            run.events
                .iter()
                .filter(|e| !matches!(e, Event::CommandComplete(_)))
                .collect::<Vec<_>>()
        );
        run.tick();
    }
    let d = done(&run);
    for (itt, data) in &reads {
        assert_eq!(d[&itt.0].status, 0);
        assert_eq!(d[&itt.0].data, Bytes::clone(data), "read back");
    }
    assert!(run
        .events
        .iter()
        .all(|e| !matches!(e, Event::CommandRejected { .. })));
    (
        run.up.hits + run.down.hits,
        run.ini.commands_retried(),
        run.ini.snacks_sent(),
    )
}

#[test]
fn commands_survive_corruption_both_ways() {
    let (hits, retries, snacks) = corrupted_round_trip(11, 10, &[1, 8, 16, 3, 32, 2, 24, 5]);
    assert!(hits > 5, "the run corrupted something ({hits})");
    assert!(retries + snacks > 0, "and recovered from it");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn random_corruption_at_erl_1_loses_nothing(
        seed in any::<u64>(),
        percent in 0u64..25,
        sizes in prop::collection::vec(1u16..40, 1..10),
    ) {
        corrupted_round_trip(seed, percent, &sizes);
    }
}

#[test]
fn level_0_still_fails_on_a_digest_error() {
    let (mut run, _fx) = start(5, 0, 0);
    let cmd = Command::new(1, &cdb::read10(0, 8), DataDirection::Read(4096));
    run.ini.submit(cmd).unwrap();
    run.down.percent = 100;
    let mut out = run.initiator_out();
    run.conn.handle_input(&mut out, run.now);
    run.run_io();
    let back = run.target_out();
    let back = run.down.apply(back, true);
    assert!(run.ini.handle_input(&back).is_err());
    assert_eq!(run.ini.state(), State::Failed);
    let _ = Duration::ZERO;
}

/// ErrorRecoveryLevel 2: the connection dies with writes and reads in every state
/// (not yet received, collecting data, answered but the answer lost); its
/// replacement (`Session::recover`, the same CID and then a new one) takes every
/// command over with TASK REASSIGN, or sends again one the target never got. Each
/// completes GOOD once and reads return what was written.
fn connection_recovery(seed: u64, new_cid: bool, deliver: usize) {
    let (mut run, fx) = start(seed, 0, 2);
    assert_eq!(run.ini.params().error_recovery_level, 2);
    let mut want: HashMap<u32, Option<Bytes>> = HashMap::new();
    for k in 0..4u32 {
        let data = pattern(4096 + 1024 * k as usize, k as u8 + 1);
        let cmd = Command::new(
            1,
            &cdb::write10(k * 16, (data.len() / 512) as u16),
            DataDirection::Write(data),
        );
        want.insert(run.ini.submit(cmd).unwrap().0, None);
    }
    // Part of what the initiator sent reaches the target; nothing comes back.
    let out = run.initiator_out();
    let cut = frames(out)
        .into_iter()
        .take(deliver)
        .fold(BytesMut::new(), |mut a, f| {
            a.extend_from_slice(&f);
            a
        });
    let mut cut = cut;
    run.conn.handle_input(&mut cut, run.now);
    run.run_io();
    while run.conn.poll_transmit().is_some() {}
    // The connection dies.
    run.conn.handle_close();
    let cfg = run.ini.config().clone();
    let dead = std::mem::replace(&mut run.ini, Session::new(cfg, run.now));
    let cid = if new_cid { dead.cid() + 1 } else { dead.cid() };
    run.ini = Session::recover(dead, cid, run.now);
    let mut conn_cfg = ConnConfig::default();
    conn_cfg.limits.max_recv_data_segment_length = 1024;
    run.conn = Connection::new(fx.core.clone(), fixture::peer(), conn_cfg, run.now);
    for _ in 0..40 {
        run.settle(false);
        if want.keys().all(|i| done(&run).contains_key(i)) {
            break;
        }
        run.tick();
    }
    let d = done(&run);
    for itt in want.keys() {
        assert_eq!(
            d.get(itt).map(|c| c.status),
            Some(0),
            "task {itt:#x}: {:?}",
            run.events
        );
    }
    let completions = run
        .events
        .iter()
        .filter(|e| matches!(e, Event::CommandComplete(_)))
        .count();
    assert_eq!(completions, want.len(), "each once");
    for k in 0..4u32 {
        let len = 4096 + 1024 * k as usize;
        assert_eq!(
            fx.store.read_at(k as usize * 16 * 512, len),
            &pattern(len, k as u8 + 1)[..]
        );
    }
    let _ = Itt(0);
}

#[test]
fn connection_recovery_on_the_same_cid() {
    for deliver in [0, 1, 2, 5, 9, 100] {
        connection_recovery(40 + deliver as u64, false, deliver);
    }
}

#[test]
fn connection_recovery_on_a_new_cid() {
    for deliver in [0, 3, 7, 100] {
        connection_recovery(80 + deliver as u64, true, deliver);
    }
}

fn be32(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
}

/// ErrorRecoveryLevel 2: a read's connection dies after the initiator got the
/// Data-In in `got` (DataSNs of eight); its replacement's TASK REASSIGN carries
/// ExpDataSN = the first DataSN not received in order, and the target sends only
/// the Data-In from there. The read completes once with all its data.
fn read_resumes_from_exp_data_sn(seed: u64, got: &[u32], exp: u32) {
    let (mut run, fx) = start(seed, 0, 2);
    let want = pattern(8192, 0x5a);
    fx.store.write_at(64 * 512, &want);
    let cmd = Command::new(1, &cdb::read10(64, 16), DataDirection::Read(8192));
    let itt = run.ini.submit(cmd).unwrap();
    let mut out = run.initiator_out();
    run.conn.handle_input(&mut out, run.now);
    run.run_io();
    let back = run.target_out();
    let sent = frames(back);
    assert_eq!(sent.len(), 8, "eight Data-In of 1024");
    for f in &sent {
        if got.contains(&be32(f, 36)) {
            run.ini.handle_input(f).unwrap();
        }
    }
    while run.ini.poll_transmit().is_some() {}
    assert!(done(&run).is_empty());
    // The connection dies; a new CID takes the read over.
    run.conn.handle_close();
    let cfg = run.ini.config().clone();
    let dead = std::mem::replace(&mut run.ini, Session::new(cfg, run.now));
    let cid = dead.cid() + 1;
    run.ini = Session::recover(dead, cid, run.now);
    let mut conn_cfg = ConnConfig::default();
    conn_cfg.limits.max_recv_data_segment_length = 1024;
    run.conn = Connection::new(fx.core.clone(), fixture::peer(), conn_cfg, run.now);
    run.log.clear();
    run.settle(false);
    let c = done(&run);
    let c = c.get(&itt.0).expect("the read completed");
    assert_eq!(c.status, 0);
    assert_eq!(&c.data[..], &want[..]);
    // The TASK REASSIGN (opcode 2, function 8) and what the target resent.
    let tmf: Vec<u32> = run
        .log
        .iter()
        .filter(|(up, f)| *up && f[0] & 0x3f == 0x02 && f[1] & 0x7f == 8)
        .map(|(_, f)| be32(f, 36))
        .collect();
    assert_eq!(tmf, vec![exp], "ExpDataSN of the TASK REASSIGN");
    let resent: Vec<u32> = run
        .log
        .iter()
        .filter(|(up, f)| !*up && f[0] & 0x3f == 0x25 && be32(f, 16) == itt.0)
        .map(|(_, f)| be32(f, 36))
        .collect();
    assert_eq!(resent, (exp..8).collect::<Vec<_>>(), "only the rest");
    let completions = run
        .events
        .iter()
        .filter(|e| matches!(e, Event::CommandComplete(_)))
        .count();
    assert_eq!(completions, 1);
}

#[test]
fn a_reassigned_read_asks_only_for_the_data_in_it_did_not_get() {
    // The first three arrived: resume at DataSN 3.
    read_resumes_from_exp_data_sn(120, &[0, 1, 2], 3);
    // DataSN 2 was lost (asked for with a SNACK that died with the connection):
    // resume at 2; 3 and 4 come again and are dropped as duplicates.
    read_resumes_from_exp_data_sn(122, &[0, 1, 3, 4], 2);
    // Nothing arrived: everything again.
    read_resumes_from_exp_data_sn(124, &[], 0);
}
