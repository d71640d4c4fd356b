//! The `iscsi-initiator` state machine after a real login (against target-core's
//! `Connection` on a fake clock), then fed arbitrary target PDUs (well framed, with
//! the negotiated digests, fields and data from the input), raw bytes, timeouts and
//! legitimate traffic in any order.
//!
//! Invariants: nothing panics; the CmdSN window only moves forward (ExpCmdSN and
//! MaxCmdSN never go back, RFC 7143 §4.2.2.1, whatever the PDUs claim); the initiator
//! numbers its non-immediate requests consecutively and never sends one beyond the
//! MaxCmdSN it knows; its bookkeeping stays bounded by what was submitted; once
//! failed or closed it sends nothing more.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use iscsi_initiator::{Command, Config, DataDirection, Isid, Session, State, TmfFunction};
use iscsi_proto::digest::crc32c;
use iscsi_proto::{Itt, SerialNumber};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use target_core::connection::{ConnConfig, Connection, IoCompletion};
use target_core::testkit::fixture;

#[derive(Debug, Arbitrary)]
struct Input {
    header_digest: bool,
    data_digest: bool,
    immediate_data: bool,
    initial_r2t: bool,
    small_segments: bool,
    actions: Vec<Action>,
}

/// Target-to-initiator opcodes.
const TARGET_OPCODES: [u8; 10] = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3f];

#[derive(Debug, Arbitrary)]
enum Action {
    /// A command the session submits (and the real target may answer).
    Submit {
        lun: u8,
        write: bool,
        lba: u8,
        blocks: u8,
        none: bool,
    },
    Ping(Vec<u8>),
    Tmf {
        function: u8,
        pick: u8,
    },
    Logout,
    /// Let the real target and the initiator talk for a few rounds.
    Pump(u8),
    /// A forged target PDU: opcode, flag byte, header bytes 8..48, data.
    Forged {
        opcode: u8,
        flags: u8,
        /// Use the ITT of a recent request.
        pick_itt: Option<u8>,
        /// StatSN/ExpCmdSN/MaxCmdSN relative to what the session knows.
        sn_delta: Option<(i8, i8, i8)>,
        rest: [u8; 40],
        data: Vec<u8>,
        bad_digest: bool,
    },
    /// Raw bytes as if from the socket.
    Raw(Vec<u8>),
    /// Move the fake clock (tens of milliseconds) and fire due timers.
    Advance(u16),
}

struct Harness {
    sess: Session,
    conn: Connection,
    now: Instant,
    itts: Vec<Itt>,
    submitted: usize,
    /// NOP-Out pings asked for: like commands, they wait in the queue for the window.
    pinged: usize,
    /// Last ExpCmdSN/MaxCmdSN seen, and the CmdSN the next non-immediate request must
    /// carry.
    exp: SerialNumber,
    max: SerialNumber,
    next_cmd_sn: Option<SerialNumber>,
    to_target: BytesMut,
    /// The session had failed or closed and everything it queued was taken.
    dead: bool,
}

impl Harness {
    /// Check the window after one PDU (or one chunk) went in.
    fn window_moved_forward(&mut self) {
        let (_, exp, max) = self.sess.window();
        assert!(
            self.exp.le(exp),
            "ExpCmdSN went back: {:?} -> {:?}",
            self.exp,
            exp
        );
        assert!(
            self.max.le(max),
            "MaxCmdSN went back: {:?} -> {:?}",
            self.max,
            max
        );
        self.exp = exp;
        self.max = max;
    }

    /// Re-take the window after input that may hold many PDUs (each may move it by up
    /// to 2^31 - 1: the sum is not comparable).
    fn resync_window(&mut self) {
        let (_, exp, max) = self.sess.window();
        self.exp = exp;
        self.max = max;
    }

    /// Take what the initiator sends: check every non-immediate request's CmdSN, pass
    /// the bytes to the target.
    fn drain_initiator(&mut self) {
        while let Some(p) = self.sess.poll_transmit() {
            assert!(
                !self.dead,
                "the session sent a PDU after it failed or closed: {p:?}"
            );
            let h = &p.header;
            let opcode = h[0] & 0x3f;
            let immediate = h[0] & 0x40 != 0;
            let itt = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
            let ordered =
                matches!(opcode, 0x01 | 0x02 | 0x04 | 0x06) || (opcode == 0x00 && itt != u32::MAX);
            if ordered && !immediate {
                let sn = SerialNumber(u32::from_be_bytes([h[24], h[25], h[26], h[27]]));
                if let Some(want) = self.next_cmd_sn {
                    assert_eq!(sn, want, "non-consecutive CmdSN");
                }
                let (_, _, max) = self.sess.window();
                assert!(sn.le(max), "CmdSN {sn:?} sent beyond MaxCmdSN {max:?}");
                self.next_cmd_sn = Some(sn.next());
            }
            self.to_target.extend_from_slice(&p.header);
            self.to_target.extend_from_slice(&p.data);
            self.to_target.extend_from_slice(&p.trailer);
        }
        self.dead = matches!(self.sess.state(), State::Failed | State::Closed);
    }

    /// Rounds of real traffic: initiator -> target -> storage -> initiator.
    fn pump(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.drain_initiator();
            if !self.conn.is_closed() && !self.to_target.is_empty() {
                self.conn.handle_input(&mut self.to_target, self.now);
            }
            while let Some(io) = self.conn.poll_io() {
                let result = io.store.execute(&io.op);
                self.conn.handle_io_completion(
                    IoCompletion::new(io.tag, result),
                    self.now,
                );
            }
            let mut back = Vec::new();
            while let Some(t) = self.conn.poll_transmit() {
                back.extend_from_slice(&t.header);
                back.extend_from_slice(&t.data);
                back.extend_from_slice(&t.trailer);
            }
            while self.conn.poll_event().is_some() {}
            let idle = back.is_empty();
            // The real target never moves the window back: PDU by PDU is not needed.
            let _ = self.sess.handle_input(&back);
            self.window_moved_forward();
            self.drain_events();
            if idle && !self.sess.has_transmit() {
                break;
            }
        }
        self.drain_initiator();
    }

    fn drain_events(&mut self) {
        while self.sess.poll_event().is_some() {}
        assert!(
            self.sess.commands_outstanding() <= self.submitted,
            "more commands outstanding than submitted"
        );
        // What waits for the window is what the caller asked for (commands and
        // pings), plus a bounded number of the session's own requests.
        assert!(
            self.sess.queued() <= self.submitted + self.pinged + 64,
            "queued {} with {} commands and {} pings submitted",
            self.sess.queued(),
            self.submitted,
            self.pinged
        );
    }
}

fn forged(h: &Harness, a: &Action) -> Vec<u8> {
    let Action::Forged {
        opcode,
        flags,
        pick_itt,
        sn_delta,
        rest,
        data,
        bad_digest,
    } = a
    else {
        unreachable!()
    };
    let mut bhs = [0u8; 48];
    bhs[0] = TARGET_OPCODES[usize::from(*opcode) % TARGET_OPCODES.len()];
    bhs[1] = *flags;
    bhs[8..48].copy_from_slice(rest);
    bhs[4] = 0; // no AHS
    let data = &data[..data.len().min(16 * 1024)];
    let len = data.len() as u32;
    bhs[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
    if let Some(i) = pick_itt {
        if !h.itts.is_empty() {
            let itt = h.itts[usize::from(*i) % h.itts.len()];
            bhs[16..20].copy_from_slice(&itt.0.to_be_bytes());
        }
    }
    if let Some((s, e, m)) = sn_delta {
        let (_, exp, max) = h.sess.window();
        let stat = SerialNumber(u32::from_be_bytes([bhs[24], bhs[25], bhs[26], bhs[27]]));
        let stat = stat.plus(*s as u32);
        bhs[24..28].copy_from_slice(&stat.get().to_be_bytes());
        bhs[28..32].copy_from_slice(&exp.plus(*e as u32).get().to_be_bytes());
        bhs[32..36].copy_from_slice(&max.plus(*m as u32).get().to_be_bytes());
    }
    let mut wire = bhs.to_vec();
    let digests = h.sess.params();
    if digests.header_digest {
        let c = crc32c(&bhs) ^ u32::from(*bad_digest);
        wire.extend_from_slice(&c.to_le_bytes());
    }
    let start = wire.len();
    wire.extend_from_slice(data);
    wire.resize(start + data.len().div_ceil(4) * 4, 0);
    if digests.data_digest && !data.is_empty() {
        let c = crc32c(&wire[start..]);
        wire.extend_from_slice(&c.to_le_bytes());
    }
    wire
}

fuzz_target!(|input: Input| {
    let fx = fixture::single_target(128, fixture::Bind::All);
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    let mut config = Config::normal(fixture::INITIATOR, fixture::TARGET);
    config.isid = Isid([0x80, 0, 0, 1, 0, 1]);
    config.header_digest = input.header_digest;
    config.data_digest = input.data_digest;
    config.immediate_data = input.immediate_data;
    config.initial_r2t = input.initial_r2t;
    if input.small_segments {
        config.max_recv_data_segment_length = 512;
        config.first_burst_length = 1024;
        config.max_burst_length = 2048;
    }
    let conn_config = ConnConfig {
        cmd_window: 8,
        ..ConnConfig::default()
    };
    let mut h = Harness {
        sess: Session::new(config, base),
        conn: Connection::new(fx.core.clone(), fixture::peer(), conn_config, base),
        now: base,
        itts: Vec::new(),
        submitted: 0,
        pinged: 0,
        exp: SerialNumber(1),
        max: SerialNumber(1),
        next_cmd_sn: None,
        to_target: BytesMut::new(),
        dead: false,
    };
    h.pump(64);
    assert_eq!(h.sess.state(), State::FullFeature, "the login must succeed");
    h.resync_window();
    for action in &input.actions {
        match action {
            Action::Submit {
                lun,
                write,
                lba,
                blocks,
                none,
            } => {
                let (lba, blocks) = (u64::from(*lba % 130), u32::from(*blocks % 9));
                let data = if *none {
                    DataDirection::None
                } else if *write {
                    DataDirection::Write(vec![0x5a; blocks as usize * 512].into())
                } else {
                    DataDirection::Read(blocks * 512)
                };
                let cdb = if *write {
                    iscsi_initiator::cdb::write16(lba, blocks)
                } else {
                    iscsi_initiator::cdb::read16(lba, blocks)
                };
                if let Ok(itt) = h.sess.submit(Command::new(u64::from(*lun % 3), &cdb, data)) {
                    h.submitted += 1;
                    h.itts.push(itt);
                }
            }
            Action::Ping(d) => {
                if let Ok(itt) = h.sess.ping(d[..d.len().min(4096)].to_vec().into()) {
                    h.pinged += 1;
                    h.itts.push(itt);
                }
            }
            Action::Tmf { function, pick } => {
                let f = match function % 7 {
                    0 => TmfFunction::AbortTask,
                    1 => TmfFunction::AbortTaskSet,
                    2 => TmfFunction::ClearAca,
                    3 => TmfFunction::ClearTaskSet,
                    4 => TmfFunction::LogicalUnitReset,
                    5 => TmfFunction::TargetWarmReset,
                    _ => TmfFunction::TargetColdReset,
                };
                let referenced =
                    (!h.itts.is_empty()).then(|| h.itts[usize::from(*pick) % h.itts.len()]);
                if let Ok(itt) = h.sess.task_management(f, 1, referenced) {
                    h.itts.push(itt);
                }
            }
            Action::Logout => {
                if let Ok(itt) = h.sess.logout() {
                    h.itts.push(itt);
                }
            }
            Action::Pump(n) => h.pump(usize::from(*n % 16) + 1),
            Action::Forged { .. } => {
                let wire = forged(&h, action);
                let _ = h.sess.handle_input(&wire);
                h.window_moved_forward();
                h.drain_events();
            }
            Action::Raw(b) => {
                let _ = h.sess.handle_input(b);
                h.resync_window();
                h.drain_events();
            }
            Action::Advance(t) => {
                h.now += Duration::from_millis(u64::from(*t) * 10);
                if h.sess.poll_timeout().is_some_and(|d| d <= h.now) {
                    let _ = h.sess.handle_timeout(h.now);
                }
                if h.conn.poll_timeout().is_some_and(|d| d <= h.now) {
                    h.conn.handle_timeout(h.now);
                }
                h.drain_events();
            }
        }
        h.drain_initiator();
        if h.itts.len() > 256 {
            h.itts.drain(..128);
        }
    }
    h.pump(64);
});
