//! [`Sim`]: one [`Connection`] and one [`Initiator`] on a fake clock, stepped
//! deterministically like quinn-proto's test `Pair`.

use super::{Initiator, Rng};
use crate::connection::{
    ConnConfig, ConnEvent, Connection, IoCompletion, IoRequest, PeerInfo, SegmentCrcs,
};
use crate::Core;
use bytes::{Bytes, BytesMut};
use iscsi_proto::pdu::{LoginResponse, Pdu, Stage};
use iscsi_proto::text::Pair;
use scsi_sbc::BlockOp;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The [`crate::connection::Wake`] of a simulated connection: a flag [`Sim::step`]
/// turns into an empty input.
#[derive(Debug, Default)]
pub struct Kick(AtomicBool);

impl Kick {
    /// Whether a wake came since the last call (and forget it).
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

impl crate::connection::Wake for Kick {
    fn wake(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// When the simulated workers run the storage requests the connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// In the step they are polled, in order.
    Immediate,
    /// Only when the test calls [`Sim::complete_io`] or [`Sim::complete_all_io`].
    Hold,
    /// A seeded random non-empty subset per step, in seeded random order.
    Random,
}

/// A connection, its initiator and a fake clock.
pub struct Sim {
    /// The target side.
    pub conn: Connection,
    /// The initiator side.
    pub ini: Initiator,
    /// The core the connection belongs to.
    pub core: Arc<Core>,
    /// When storage requests run.
    pub io_mode: IoMode,
    /// Largest chunk moved per direction per step (`None`: everything pending); chunk
    /// sizes are drawn from the seed.
    pub max_chunk: Option<usize>,
    /// Every event the connection emitted.
    pub events: Vec<ConnEvent>,
    /// Every storage operation the connection asked for, in order.
    pub ops: Vec<BlockOp>,
    base: Instant,
    elapsed: Duration,
    rng: Rng,
    pending_io: Vec<IoRequest>,
    to_initiator: BytesMut,
    target_in: BytesMut,
    kick: Arc<Kick>,
    /// Applied to every chunk the initiator sends before the connection reads it
    /// (tests of error recovery corrupt or drop PDUs here).
    pub tamper: Option<Box<dyn FnMut(BytesMut) -> BytesMut>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("conn", &self.conn)
            .field("elapsed", &self.elapsed)
            .field("pending_io", &self.pending_io.len())
            .finish()
    }
}

impl Sim {
    /// A connection from `peer` into `core`, created at `base` (the fake clock's zero),
    /// with an [`Initiator`] named [`super::fixture::INITIATOR`]. Storage runs
    /// immediately and bytes move whole until told otherwise.
    pub fn new(
        core: Arc<Core>,
        peer: PeerInfo,
        config: ConnConfig,
        seed: u64,
        base: Instant,
    ) -> Self {
        let kick = Arc::new(Kick::default());
        let mut conn = Connection::new(core.clone(), peer, config, base);
        conn.set_waker(kick.clone());
        Sim {
            conn,
            kick,
            ini: Initiator::new(super::fixture::INITIATOR),
            core,
            io_mode: IoMode::Immediate,
            max_chunk: None,
            events: Vec::new(),
            ops: Vec::new(),
            base,
            elapsed: Duration::ZERO,
            rng: Rng::new(seed),
            pending_io: Vec::new(),
            to_initiator: BytesMut::new(),
            target_in: BytesMut::new(),
            tamper: None,
        }
    }

    // ----- clock -----

    /// The fake clock's current time.
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Move the clock forward by `d` and fire the connection's timers that are due.
    pub fn advance(&mut self, d: Duration) {
        self.elapsed += d;
        let now = self.now();
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
    }

    /// Jump to the connection's next deadline and fire it. False when none is armed.
    pub fn fire_timeout(&mut self) -> bool {
        let Some(at) = self.conn.poll_timeout() else {
            return false;
        };
        if at > self.now() {
            self.elapsed = at - self.base;
        }
        self.conn.handle_timeout(self.now());
        true
    }

    // ----- storage -----

    /// Storage requests polled but not yet completed.
    pub fn pending_io(&self) -> usize {
        self.pending_io.len()
    }

    /// Run the `i`th pending storage request against its store and report it. With
    /// data digests on, every other READ (by tag) comes back with its segments'
    /// digests computed, as the daemons' workers do (`tgtd_common::io::dispatch`),
    /// so both ways of sending them are exercised.
    pub fn complete_io(&mut self, i: usize) {
        let precompute = self.pending_io[i].tag.0.is_multiple_of(2);
        let layout = match (&self.pending_io[i].op, self.conn.data_in_layout()) {
            (BlockOp::Read { .. }, Some(l)) if precompute => Some(l),
            _ => None,
        };
        self.complete_io_with(i, |d| layout.filter(|_| !d.is_empty()).map(|l| l.crcs(d)));
    }

    /// Run the `i`th pending storage request and report it, with the data digests
    /// `crcs` makes of the data it read (for a failed request: none).
    pub fn complete_io_with(&mut self, i: usize, crcs: impl FnOnce(&Bytes) -> Option<SegmentCrcs>) {
        let req = self.pending_io.remove(i);
        let result = req.store.execute(&req.op);
        let crcs = result.as_ref().ok().and_then(crcs);
        let now = self.now();
        self.conn.handle_io_completion(
            IoCompletion {
                tag: req.tag,
                result,
                crcs,
            },
            now,
        );
    }

    /// Run every pending storage request, in order.
    pub fn complete_all_io(&mut self) {
        while !self.pending_io.is_empty() {
            self.complete_io(0);
        }
    }

    // ----- stepping -----

    fn chunk_len(&mut self, available: usize) -> usize {
        match self.max_chunk {
            None => available,
            Some(max) => self.rng.range(1, max.max(1)).min(available),
        }
    }

    /// One round: drain the connection's outputs, deliver one chunk each way, run
    /// storage per [`Sim::io_mode`]. Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let mut progress = false;
        // Another connection of the session woke this one (MC/S).
        if self.kick.take() {
            let now = self.now();
            self.conn.handle_input(&mut BytesMut::new(), now);
            progress = true;
        }
        while let Some(io) = self.conn.poll_io() {
            self.ops.push(io.op.clone());
            self.pending_io.push(io);
            progress = true;
        }
        while let Some(t) = self.conn.poll_transmit() {
            self.to_initiator.extend_from_slice(&t.header);
            self.to_initiator.extend_from_slice(&t.data);
            self.to_initiator.extend_from_slice(&t.trailer);
        }
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
            progress = true;
        }
        if !self.to_initiator.is_empty() {
            let n = self.chunk_len(self.to_initiator.len());
            let chunk = self.to_initiator.split_to(n);
            self.ini.receive(&chunk);
            progress = true;
        }
        if !self.conn.is_closed() && self.ini.outgoing_len() > 0 {
            let n = self.chunk_len(self.ini.outgoing_len());
            let mut chunk = self.ini.take_outgoing(n);
            if let Some(t) = self.tamper.as_mut() {
                chunk = t(chunk);
            }
            self.target_in.extend_from_slice(&chunk);
            let now = self.now();
            self.conn.handle_input(&mut self.target_in, now);
            progress = true;
        }
        match self.io_mode {
            IoMode::Immediate if !self.pending_io.is_empty() => {
                self.complete_all_io();
                progress = true;
            }
            IoMode::Random if !self.pending_io.is_empty() => {
                self.rng.shuffle(&mut self.pending_io);
                let k = self.rng.range(1, self.pending_io.len());
                for _ in 0..k {
                    self.complete_io(0);
                }
                progress = true;
            }
            IoMode::Immediate | IoMode::Random | IoMode::Hold => {}
        }
        progress
    }

    /// Step until nothing happens, at most `max_steps` times. Returns whether it went idle.
    pub fn drive_bounded(&mut self, max_steps: usize) -> bool {
        for _ in 0..max_steps {
            if !self.step() {
                return true;
            }
        }
        false
    }

    /// Step until nothing happens (panics after 100 000 steps: a livelock).
    pub fn drive(&mut self) {
        assert!(self.drive_bounded(100_000), "simulation did not settle");
    }

    // ----- login helpers -----

    /// Send one login request and drive; returns the last login response received.
    pub fn login_step(
        &mut self,
        csg: Stage,
        nsg: Stage,
        transit: bool,
        pairs: &[Pair],
    ) -> Option<LoginResponse> {
        let req = self.ini.login_request(csg, nsg, transit, pairs);
        self.ini.send(&Pdu::LoginRequest(req));
        self.drive();
        self.ini.last_login_response().cloned()
    }

    /// A normal-session login to `target`: security stage with `AuthMethod=None`, then
    /// the operational stage with [`Initiator::offer`]. Panics unless it succeeds;
    /// returns the final login response.
    pub fn login_normal(&mut self, target: &str) -> LoginResponse {
        let mut keys = self.ini.identity_keys(target);
        keys.push(("AuthMethod".into(), "None".into()));
        let r = self
            .login_step(Stage::Security, Stage::Operational, true, &keys)
            .expect("a login response");
        assert_eq!((r.status_class, r.status_detail), (0, 0), "security stage");
        let offer = self.ini.offer.pairs(false);
        let r = self
            .login_step(Stage::Operational, Stage::FullFeature, true, &offer)
            .expect("a login response");
        assert_eq!(
            (r.status_class, r.status_detail),
            (0, 0),
            "operational stage"
        );
        assert!(
            self.ini.full_feature,
            "login did not reach full feature phase"
        );
        r
    }

    /// [`Sim::login_normal`], then what initiators do right after a login (libiscsi,
    /// Linux): clear the power-on unit attention of every LUN (see
    /// [`Sim::clear_unit_attentions`]).
    pub fn login_ready(&mut self, target: &str) -> LoginResponse {
        let r = self.login_normal(target);
        self.clear_unit_attentions();
        r
    }

    /// REPORT LUNS, then TEST UNIT READY to each LUN until it answers GOOD, as
    /// libiscsi does after connecting. Panics on anything but GOOD or UNIT ATTENTION.
    pub fn clear_unit_attentions(&mut self) {
        let alloc = 8 + 8 * 64u32;
        let mut cdb = vec![0xa0, 0, 0, 0, 0, 0];
        cdb.extend_from_slice(&alloc.to_be_bytes());
        cdb.extend_from_slice(&[0, 0]);
        let itt = self.ini.read(0, &cdb, alloc);
        self.drive();
        let data = self.ini.task(itt).expect("REPORT LUNS task").data.clone();
        let luns: Vec<u64> = data
            .get(8..)
            .unwrap_or_default()
            .chunks_exact(8)
            .map(|e| (u64::from(e[0] & 0x3f) << 8) | u64::from(e[1]))
            .collect();
        for lun in luns {
            let mut cleared = false;
            for _ in 0..8 {
                let itt = self.ini.read(lun, &[0u8; 6], 0);
                self.drive();
                let t = self.ini.task(itt).expect("TEST UNIT READY task");
                match (t.status, t.sense) {
                    (Some(0), _) => {
                        cleared = true;
                        break;
                    }
                    (Some(2), Some(s)) if s.key == 6 => continue,
                    other => panic!("TEST UNIT READY to LUN {lun}: {other:?}"),
                }
            }
            assert!(cleared, "LUN {lun} kept reporting unit attentions");
        }
    }

    /// A discovery-session login in one operational-stage request. Panics unless it
    /// succeeds.
    pub fn login_discovery(&mut self) -> LoginResponse {
        let mut keys: Vec<Pair> = vec![
            ("InitiatorName".into(), self.ini.name.clone()),
            ("SessionType".into(), "Discovery".into()),
        ];
        keys.extend(self.ini.offer.pairs(true));
        let r = self
            .login_step(Stage::Operational, Stage::FullFeature, true, &keys)
            .expect("a login response");
        assert_eq!((r.status_class, r.status_detail), (0, 0), "discovery login");
        r
    }

    /// Send a PDU from the initiator and drive.
    pub fn send(&mut self, pdu: Pdu) {
        self.ini.send(&pdu);
        self.drive();
    }
}

/// Step several simulated connections (of one session, say) in turn until none has
/// anything left to do (panics after 100 000 rounds: a livelock).
pub fn drive_all(sims: &mut [&mut Sim]) {
    for _ in 0..100_000 {
        let mut progress = false;
        for s in sims.iter_mut() {
            progress |= s.step();
        }
        if !progress {
            return;
        }
    }
    panic!("simulations did not settle");
}
