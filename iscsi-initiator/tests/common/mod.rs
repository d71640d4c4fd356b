//! An in-process pair: the target core's `Connection` and an initiator `Session`,
//! stepped deterministically on a fake clock, with a tap that decodes every PDU both
//! ways so tests can assert on the wire.
#![allow(dead_code, clippy::disallowed_methods)]

use bytes::{Bytes, BytesMut};
use iscsi_initiator::{cdb, Command, Completion, Config, DataDirection, Event, Session, State};
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::pdu::{Digests, Pdu};
use iscsi_proto::{Itt, SerialNumber};
use std::time::{Duration, Instant};
use target_core::connection::{ConnConfig, Connection, IoCompletion, IoRequest};
use target_core::testkit::fixture::{self, Fixture};

pub const INITIATOR: &str = "iqn.2024-01.com.example:ini-test";

pub struct Pair {
    pub conn: Connection,
    pub ini: Session,
    pub fx: Fixture,
    pub base: Instant,
    pub elapsed: Duration,
    /// Hold storage requests until `complete_io`.
    pub hold_io: bool,
    pub pending_io: Vec<IoRequest>,
    /// Every PDU the initiator sent.
    pub sent: Vec<Pdu>,
    /// Every PDU the target sent.
    pub received: Vec<Pdu>,
    pub events: Vec<Event>,
    /// Errors the initiator returned from handle_input.
    pub errors: Vec<iscsi_initiator::Error>,
    /// CmdSN window violations seen on the wire.
    pub violations: Vec<String>,
    /// Flip one byte of the next Data-In's data segment on its way to the initiator.
    pub corrupt_next_data: bool,
    /// Feed the initiator through `handle_input_buf` in pieces of this many bytes
    /// (a read buffer that keeps incomplete PDUs), instead of `handle_input`.
    pub feed_chunk: Option<usize>,
    pub rbuf: BytesMut,
    max_seen: Option<SerialNumber>,
    next_cmd_sn: Option<SerialNumber>,
    tap_out: PduDecoder,
    tap_in: PduDecoder,
}

impl Pair {
    pub fn new(blocks: u64, conn_cfg: ConnConfig, cfg: Config) -> Pair {
        let fx = fixture::single_target(blocks, fixture::Bind::All);
        Self::with_fixture(fx, conn_cfg, cfg)
    }

    pub fn with_fixture(fx: Fixture, conn_cfg: ConnConfig, cfg: Config) -> Pair {
        let base = Instant::now();
        let mut tap_out = PduDecoder::new(16 << 20);
        tap_out.digests = Digests::default();
        Pair {
            conn: Connection::new(fx.core.clone(), fixture::peer(), conn_cfg, base),
            ini: Session::new(cfg, base),
            fx,
            base,
            elapsed: Duration::ZERO,
            hold_io: false,
            pending_io: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            events: Vec::new(),
            errors: Vec::new(),
            violations: Vec::new(),
            corrupt_next_data: false,
            max_seen: None,
            next_cmd_sn: None,
            tap_out,
            tap_in: PduDecoder::new(16 << 20),
            feed_chunk: None,
            rbuf: BytesMut::new(),
        }
    }

    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    pub fn advance(&mut self, d: Duration) {
        self.elapsed += d;
        let now = self.now();
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
        if self.ini.poll_timeout().is_some_and(|t| t <= now) {
            if let Err(e) = self.ini.handle_timeout(now) {
                self.errors.push(e);
            }
        }
    }

    pub fn complete_io(&mut self) {
        for req in std::mem::take(&mut self.pending_io) {
            let result = req.store.execute(&req.op);
            let now = self.now();
            self.conn
                .handle_io_completion(IoCompletion::new(req.tag, result), now);
        }
    }

    fn tap_sent(&mut self, buf: &[u8]) {
        let mut b = BytesMut::from(buf);
        while let Some(p) = self.tap_out.decode(&mut b).expect("initiator PDUs decode") {
            let sn = match &p {
                Pdu::ScsiCommand(c) if !c.immediate => Some(c.cmd_sn),
                Pdu::NopOut(n) if !n.immediate => Some(n.cmd_sn),
                Pdu::TextRequest(t) if !t.immediate => Some(t.cmd_sn),
                _ => None,
            };
            if let Some(sn) = sn {
                if let Some(want) = self.next_cmd_sn {
                    if sn != want {
                        self.violations
                            .push(format!("CmdSN {sn} where {want} was next"));
                    }
                }
                self.next_cmd_sn = Some(sn.next());
                match self.max_seen {
                    Some(max) if sn.le(max) => {}
                    other => self
                        .violations
                        .push(format!("CmdSN {sn} sent beyond MaxCmdSN {other:?}")),
                }
            }
            self.sent.push(p);
        }
    }

    fn tap_received(&mut self, buf: &[u8]) {
        let mut b = BytesMut::from(buf);
        loop {
            let p = match self.tap_in.decode(&mut b) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                // The corruption a test injected on purpose.
                Err(e) if !e.is_fatal() => continue,
                Err(e) => panic!("target PDUs decode: {e}"),
            };
            let max = match &p {
                Pdu::LoginResponse(r) if r.transit => Some(r.max_cmd_sn),
                Pdu::ScsiResponse(r) => Some(r.max_cmd_sn),
                Pdu::DataIn(r) => Some(r.max_cmd_sn),
                Pdu::R2t(r) => Some(r.max_cmd_sn),
                Pdu::NopIn(r) => Some(r.max_cmd_sn),
                Pdu::TaskMgmtResponse(r) => Some(r.max_cmd_sn),
                Pdu::TextResponse(r) => Some(r.max_cmd_sn),
                _ => None,
            };
            if let Some(m) = max {
                if self.max_seen.is_none_or(|s| s.le(m)) {
                    self.max_seen = Some(m);
                }
            }
            self.received.push(p);
        }
    }

    /// One round each way. Returns whether anything moved.
    pub fn step(&mut self) -> bool {
        let mut progress = false;
        let mut out = BytesMut::new();
        while let Some(e) = self.ini.poll_transmit() {
            out.extend_from_slice(&e.header);
            out.extend_from_slice(&e.data);
            out.extend_from_slice(&e.trailer);
        }
        if !out.is_empty() && !self.conn.is_closed() {
            self.tap_sent(&out);
            let now = self.now();
            self.conn.handle_input(&mut out, now);
            progress = true;
        }
        while let Some(io) = self.conn.poll_io() {
            self.pending_io.push(io);
            progress = true;
        }
        if !self.hold_io && !self.pending_io.is_empty() {
            self.complete_io();
        }
        let mut back = BytesMut::new();
        while let Some(t) = self.conn.poll_transmit() {
            let start = back.len();
            back.extend_from_slice(&t.header);
            back.extend_from_slice(&t.data);
            back.extend_from_slice(&t.trailer);
            if self.corrupt_next_data && t.header[0] & 0x3f == 0x25 && !t.data.is_empty() {
                self.corrupt_next_data = false;
                let at = start + t.header.len();
                back[at] ^= 0xff;
            }
        }
        while self.conn.poll_event().is_some() {}
        if !back.is_empty() {
            self.tap_received(&back);
            match self.feed_chunk {
                None => {
                    if let Err(e) = self.ini.handle_input(&back) {
                        self.errors.push(e);
                    }
                }
                Some(n) => {
                    for (i, chunk) in back.chunks(n).enumerate() {
                        self.rbuf.extend_from_slice(chunk);
                        if let Err(e) = self.ini.handle_input_buf(&mut self.rbuf) {
                            self.errors.push(e);
                        }
                        // What is left is one incomplete PDU, and it says how much
                        // of it the rest of `back` holds.
                        let rest: usize = back.len() - (i * n + chunk.len());
                        let missing = self.ini.input_missing(&self.rbuf);
                        assert!(missing <= rest, "{missing} missing, {rest} to come");
                        assert_eq!(missing == 0, self.rbuf.is_empty());
                    }
                }
            }
            progress = true;
        }
        while let Some(e) = self.ini.poll_event() {
            if let Event::LoginComplete { params, .. } = &e {
                let d = Digests {
                    header: params.header_digest,
                    data: params.data_digest,
                };
                self.tap_out.digests = d;
                self.tap_in.digests = d;
            }
            self.events.push(e);
            progress = true;
        }
        progress
    }

    pub fn drive(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("did not settle");
    }

    pub fn login(&mut self) {
        self.drive();
        assert!(self.errors.is_empty(), "{:?}", self.errors);
        assert_eq!(self.ini.state(), State::FullFeature, "{:?}", self.events);
    }

    /// Run one command to completion.
    pub fn run(&mut self, cmd: Command) -> Completion {
        let itt = self.ini.submit(cmd).expect("submit");
        self.drive();
        self.completion(itt).expect("command completed")
    }

    pub fn completion(&self, itt: Itt) -> Option<Completion> {
        self.events.iter().find_map(|e| match e {
            Event::CommandComplete(c) if c.task == itt => Some(c.clone()),
            _ => None,
        })
    }

    /// TEST UNIT READY until GOOD (the power-on unit attention).
    pub fn clear_ua(&mut self) {
        for _ in 0..4 {
            let c = self.run(Command::new(
                1,
                &cdb::test_unit_ready(),
                DataDirection::None,
            ));
            if c.status == 0 {
                return;
            }
        }
        panic!("unit attention did not clear");
    }

    pub fn write(&mut self, lba: u64, data: Bytes) -> Completion {
        let blocks = (data.len() / 512) as u32;
        self.run(Command::new(
            1,
            &cdb::write16(lba, blocks),
            DataDirection::Write(data),
        ))
    }

    pub fn read(&mut self, lba: u64, blocks: u32) -> Completion {
        self.run(Command::new(
            1,
            &cdb::read16(lba, blocks),
            DataDirection::Read(blocks * 512),
        ))
    }
}

pub fn pattern(len: usize, salt: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ salt ^ (i >> 9) as u8)
            .collect::<Vec<u8>>(),
    )
}

pub fn config() -> Config {
    Config::normal(INITIATOR, fixture::TARGET)
}
