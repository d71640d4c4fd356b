//! The initiator's per-command path, in process and without sockets.
//!
//! - `initiator/read4k`: `Session::submit` of a READ(16), `poll_transmit` (the
//!   command PDU's encoding), `handle_input` of a canned Data-In carrying 4 KiB and
//!   GOOD status, `poll_event` for the completion: the initiator's own costs (the
//!   canned answer is encoded in the loop too, a few header stores).
//! - `initiator/write4k`: the same for a WRITE(16) with 4 KiB of immediate data,
//!   answered by a SCSI Response.
//! - `roundtrip/read4k` and `roundtrip/write4k`: initiator and target core together
//!   (`target_core::connection::Connection` with a RAM store), one command each way.
#![allow(clippy::disallowed_methods)] // a real clock for the session's base instant

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use iscsi_initiator::{cdb, Command, Config, DataDirection, Event, Session, State};
use iscsi_proto::pdu::{DataIn, Digests, Pdu, ScsiResponse};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
use std::time::Instant;
use target_core::connection::{ConnConfig, Connection, IoCompletion};
use target_core::testkit::fixture;

const INITIATOR: &str = "iqn.2026-11.org.example:bench";

/// An initiator and the target core, logged in, past the power-on unit attention.
struct Pair {
    ini: Session,
    conn: Connection,
    now: Instant,
    /// Kept alive: the target and store the connection uses.
    _fx: fixture::Fixture,
}

impl Pair {
    fn new() -> Pair {
        let fx = fixture::single_target(1 << 16, fixture::Bind::All);
        let now = Instant::now();
        let conn = Connection::new(fx.core.clone(), fixture::peer(), ConnConfig::default(), now);
        let ini = Session::new(Config::normal(INITIATOR, fixture::TARGET), now);
        let mut p = Pair {
            ini,
            conn,
            now,
            _fx: fx,
        };
        p.drive();
        assert_eq!(p.ini.state(), State::FullFeature);
        // The power-on unit attention.
        for _ in 0..4 {
            if p.run(Command::new(
                1,
                &cdb::test_unit_ready(),
                DataDirection::None,
            )) == 0
            {
                return p;
            }
        }
        panic!("unit attention did not clear");
    }

    /// Move bytes both ways until nothing moves; completions go back as events.
    fn drive(&mut self) -> Option<u8> {
        let mut status = None;
        let mut wire = BytesMut::new();
        loop {
            let mut moved = false;
            while let Some(e) = self.ini.poll_transmit() {
                wire.extend_from_slice(&e.header);
                wire.extend_from_slice(&e.data);
                wire.extend_from_slice(&e.trailer);
            }
            if !wire.is_empty() {
                self.conn.handle_input(&mut wire, self.now);
                moved = true;
            }
            while let Some(req) = self.conn.poll_io() {
                let result = req.store.execute(&req.op);
                self.conn
                    .handle_io_completion(IoCompletion::new(req.tag, result), self.now);
            }
            while let Some(t) = self.conn.poll_transmit() {
                let mut back = BytesMut::new();
                back.extend_from_slice(&t.header);
                back.extend_from_slice(&t.data);
                back.extend_from_slice(&t.trailer);
                self.ini.handle_input(&back).expect("target PDUs are valid");
                moved = true;
            }
            while let Some(e) = self.ini.poll_event() {
                if let Event::CommandComplete(c) = e {
                    status = Some(c.status);
                }
                moved = true;
            }
            if !moved {
                return status;
            }
        }
    }

    fn run(&mut self, cmd: Command) -> u8 {
        self.ini.submit(cmd).expect("window open");
        self.drive().expect("completed")
    }
}

/// The fields of a command PDU header the canned answer must echo.
fn command_fields(header: &[u8]) -> (Itt, SerialNumber, SerialNumber) {
    let word = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    (
        Itt(word(16)),
        SerialNumber(word(24)),
        SerialNumber(word(28)),
    )
}

/// Run `cmd` on `ini` against a canned answer: Data-In with status for reads, a
/// SCSI Response for writes.
fn canned(ini: &mut Session, cmd: Command, data: &Bytes) -> u8 {
    let read = matches!(cmd.data, DataDirection::Read(_));
    ini.submit(cmd).expect("window open");
    let mut fields = None;
    while let Some(e) = ini.poll_transmit() {
        fields.get_or_insert_with(|| command_fields(&e.header));
        black_box(&e);
    }
    let (itt, cmd_sn, exp_stat_sn) = fields.expect("a command PDU");
    let exp_cmd_sn = cmd_sn.next();
    let max_cmd_sn = cmd_sn.plus(64);
    let answer = if read {
        Pdu::DataIn(DataIn {
            final_bit: true,
            ack: false,
            overflow: false,
            underflow: false,
            status_present: true,
            status: 0,
            lun: LunField::default(),
            itt,
            ttt: Ttt::RESERVED,
            stat_sn: exp_stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            data_sn: 0,
            buffer_offset: 0,
            residual_count: 0,
            data: data.clone(),
        })
    } else {
        Pdu::ScsiResponse(ScsiResponse {
            bidi_overflow: false,
            bidi_underflow: false,
            overflow: false,
            underflow: false,
            response: 0,
            status: 0,
            itt,
            snack_tag: 0,
            stat_sn: exp_stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            exp_data_sn: 0,
            bidi_residual_count: 0,
            residual_count: 0,
            data: Bytes::new(),
        })
    };
    let e = answer.encode_in(Digests::default(), &mut BytesMut::new());
    let mut wire = Vec::with_capacity(e.header.len() + e.data.len());
    wire.extend_from_slice(&e.header);
    wire.extend_from_slice(&e.data);
    ini.handle_input(&wire).expect("a valid answer");
    match ini.poll_event() {
        Some(Event::CommandComplete(c)) => c.status,
        other => panic!("expected a completion, got {other:?}"),
    }
}

fn command(c: &mut Criterion) {
    let data = Bytes::from(vec![0xa5u8; 4096]);
    let read = || Command::new(1, &cdb::read16(64, 8), DataDirection::Read(4096));
    let write = |d: &Bytes| Command::new(1, &cdb::write16(64, 8), DataDirection::Write(d.clone()));

    let mut p = Pair::new();
    c.bench_function("initiator/read4k", |b| {
        b.iter(|| assert_eq!(canned(&mut p.ini, read(), &data), 0))
    });
    let mut p = Pair::new();
    c.bench_function("initiator/write4k", |b| {
        b.iter(|| assert_eq!(canned(&mut p.ini, write(&data), &data), 0))
    });
    let mut p = Pair::new();
    c.bench_function("roundtrip/read4k", |b| {
        b.iter(|| assert_eq!(p.run(read()), 0))
    });
    c.bench_function("roundtrip/write4k", |b| {
        b.iter(|| assert_eq!(p.run(write(&data)), 0))
    });
}

criterion_group!(benches, command);
criterion_main!(benches);
