//! A `Connection` after a valid login, fed arbitrary chunks, PDUs, timeouts and storage
//! completions in an arbitrary order. Invariants: nothing panics; the simulation always
//! settles (no livelock); everything the target sends decodes at the initiator.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use iscsi_proto::pdu::{DataOut, Pdu, TaskMgmtRequest};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use target_core::connection::{ConnConfig, IoCompletion, IoTag};
use target_core::testkit::{cdb, fixture, IoMode, Offer, Sim};

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u64,
    header_digest: bool,
    data_digest: bool,
    immediate_data: bool,
    initial_r2t: bool,
    small_segments: bool,
    hold_io: bool,
    chunk: u16,
    actions: Vec<Action>,
}

#[derive(Debug, Arbitrary)]
enum Action {
    /// Raw bytes on the wire.
    Raw(Vec<u8>),
    /// A 48-byte header with an arbitrary opcode and fields, then `data_len` zero bytes.
    Header([u8; 48], u8),
    /// A SCSI command with an arbitrary CDB.
    Command {
        lun: u8,
        cdb: [u8; 16],
        edtl: u16,
        read: bool,
        write_len: Option<u16>,
    },
    /// A READ(10) or WRITE(10) within (or just beyond) the LU.
    ReadWrite {
        write: bool,
        lba: u8,
        blocks: u8,
        extra: i8,
    },
    /// A Data-Out for some task.
    DataOut {
        itt: u8,
        ttt: u32,
        offset: u16,
        len: u16,
        final_bit: bool,
    },
    Nop(Vec<u8>),
    Text(Vec<u8>),
    Tmf {
        function: u8,
        itt: u8,
        immediate: bool,
    },
    Logout(u8),
    Snack,
    /// Shift the initiator's CmdSN (out-of-window and gapped commands).
    SkewCmdSn(i8),
    /// Move the clock by this many tens of milliseconds.
    Advance(u16),
    FireTimeout,
    CompleteIo(u8),
    FailIo(u8),
    Stray(u64),
    Close,
    /// Another session of the same target issues TARGET WARM RESET (false) or TARGET
    /// COLD RESET (true); the adapter then wakes this connection with an empty input.
    OtherSessionReset(bool),
}

/// Steps one action may take to settle before it counts as a livelock.
const STEP_BOUND: usize = 200_000;

fn itt(pick: u8) -> Itt {
    // The testkit initiator numbers tasks from 0x10.
    Itt(0x10 + u32::from(pick % 32))
}

fuzz_target!(|input: Input| {
    let fx = fixture::single_target(64, fixture::Bind::All);
    let config = ConnConfig {
        nop_interval: Some(Duration::from_secs(5)),
        nop_timeout: Duration::from_secs(5),
        ..ConnConfig::default()
    };
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    let mut sim = Sim::new(fx.core.clone(), fixture::peer(), config, input.seed, base);
    sim.ini.offer = Offer {
        header_digest: input.header_digest,
        data_digest: input.data_digest,
        immediate_data: input.immediate_data,
        initial_r2t: input.initial_r2t,
        max_recv_data_segment_length: if input.small_segments { 512 } else { 8192 },
        first_burst_length: if input.small_segments { 1024 } else { 65536 },
        max_burst_length: if input.small_segments { 2048 } else { 262_144 },
        max_outstanding_r2t: 2,
        max_connections: 1,
        // Half the runs at ErrorRecoveryLevel 1 (digest errors recovered, SNACKs
        // answered, retention), half at 0.
        error_recovery_level: (input.seed & 1) as u8,
    };
    // At least 4 bytes a step: a 64 KiB transfer then settles well within the step bound
    // (1-byte chunks made a legitimate transfer look like a livelock).
    sim.max_chunk = Some(usize::from(input.chunk).max(4));
    sim.login_normal(fixture::TARGET);
    sim.io_mode = if input.hold_io {
        IoMode::Hold
    } else {
        IoMode::Random
    };
    // A second session of another initiator, logged in on first use.
    let mut other: Option<Sim> = None;
    for action in input.actions {
        match action {
            Action::Raw(b) => sim.ini.send_raw(&b),
            Action::Header(mut h, data_len) => {
                h[4] = 0; // no AHS: keep the stream in step
                h[5] = 0;
                h[6] = 0;
                h[7] = data_len;
                let mut wire = h.to_vec();
                wire.resize(48 + usize::from(data_len).div_ceil(4) * 4, 0);
                if !sim.ini.params.header_digest && !sim.ini.params.data_digest {
                    sim.ini.send_raw(&wire);
                }
            }
            Action::Command {
                lun,
                cdb,
                edtl,
                read,
                write_len,
            } => {
                let data = write_len.map(|n| Bytes::from(vec![0xa5; usize::from(n)]));
                sim.ini
                    .command(u64::from(lun % 4), &cdb, u32::from(edtl), read, data);
            }
            Action::ReadWrite {
                write,
                lba,
                blocks,
                extra,
            } => {
                let lba = u32::from(lba % 70);
                let blocks = u16::from(blocks % 17);
                let len = (i64::from(blocks) * 512 + i64::from(extra)).max(0) as usize;
                if write {
                    let c = cdb::write10(lba, blocks);
                    sim.ini.write(1, &c, Bytes::from(vec![0x5a; len]));
                } else {
                    sim.ini.read(1, &cdb::read10(lba, blocks), len as u32);
                }
            }
            Action::DataOut {
                itt: pick,
                ttt,
                offset,
                len,
                final_bit,
            } => {
                let d = DataOut {
                    final_bit,
                    lun: LunField::from_lun(1),
                    itt: itt(pick),
                    ttt: if ttt % 2 == 0 {
                        Ttt::RESERVED
                    } else {
                        Ttt(ttt)
                    },
                    exp_stat_sn: sim.ini.exp_stat_sn,
                    data_sn: 0,
                    buffer_offset: u32::from(offset),
                    data: Bytes::from(vec![1u8; usize::from(len % 4096)]),
                };
                sim.ini.send(&Pdu::DataOut(d));
            }
            Action::Nop(data) => {
                let n = sim.ini.nop_out(Bytes::from(data));
                sim.ini.send(&Pdu::NopOut(n));
            }
            Action::Text(data) => {
                let mut t = sim.ini.text_request(&[]);
                t.data = Bytes::from(data);
                sim.ini.send(&Pdu::TextRequest(t));
            }
            Action::Tmf {
                function,
                itt: pick,
                immediate,
            } => {
                let t = TaskMgmtRequest {
                    immediate,
                    function: function % 16,
                    lun: LunField::from_lun(u64::from(pick % 3)),
                    itt: sim.ini.alloc_itt(),
                    referenced_task_tag: itt(pick),
                    cmd_sn: if immediate {
                        sim.ini.cmd_sn
                    } else {
                        sim.ini.next_cmd_sn()
                    },
                    exp_stat_sn: sim.ini.exp_stat_sn,
                    ref_cmd_sn: SerialNumber(u32::from(pick)),
                    exp_data_sn: 0,
                };
                sim.ini.send(&Pdu::TaskMgmtRequest(t));
            }
            Action::Logout(reason) => {
                let l = sim.ini.logout(reason % 4);
                sim.ini.send(&Pdu::LogoutRequest(l));
            }
            Action::Snack => {
                let s = sim.ini.snack();
                sim.ini.send(&Pdu::SnackRequest(s));
            }
            Action::SkewCmdSn(d) => {
                sim.ini.cmd_sn = SerialNumber(sim.ini.cmd_sn.get().wrapping_add(d as u32));
            }
            Action::Advance(t) => sim.advance(Duration::from_millis(u64::from(t) * 10)),
            Action::FireTimeout => {
                sim.fire_timeout();
            }
            Action::CompleteIo(i) => {
                if sim.pending_io() > 0 {
                    sim.complete_io(usize::from(i) % sim.pending_io());
                }
            }
            Action::FailIo(i) => {
                if sim.pending_io() > 0 {
                    fx.store.fail_next(scsi_sbc::IoErrorKind::WriteError);
                    sim.complete_io(usize::from(i) % sim.pending_io());
                }
            }
            Action::Stray(tag) => {
                let now = sim.now();
                sim.conn.handle_io_completion(
                    IoCompletion::new(IoTag(tag), Ok(Bytes::new())),
                    now,
                );
            }
            Action::Close => sim.conn.handle_close(),
            Action::OtherSessionReset(cold) => {
                let o = other.get_or_insert_with(|| {
                    let mut o = Sim::new(
                        fx.core.clone(),
                        fixture::peer(),
                        ConnConfig::default(),
                        input.seed ^ 0x5a5a,
                        base,
                    );
                    o.ini.name = "iqn.2024-01.com.example:fuzz.other".into();
                    o.ini.isid.0[5] ^= 0xff;
                    o.login_normal(fixture::TARGET);
                    o
                });
                let issued = !o.conn.is_closed();
                if issued {
                    let mut t = o.ini.abort_task(0, Itt::RESERVED);
                    t.function = if cold { 7 } else { 6 };
                    o.ini.send(&Pdu::TaskMgmtRequest(t));
                    assert!(o.drive_bounded(STEP_BOUND), "other session livelocked");
                }
                let now = sim.now();
                sim.conn.handle_input(&mut bytes::BytesMut::new(), now);
                if issued {
                    // Every session of the target acts on the reset: a cold one drops
                    // it, a warm one leaves it no task.
                    assert!(!cold || sim.conn.is_closed(), "cold reset left a session");
                    assert_eq!(sim.conn.tasks_in_flight(), 0, "warm reset left tasks");
                }
            }
        }
        assert!(sim.drive_bounded(STEP_BOUND), "simulation livelocked");
    }
    sim.complete_all_io();
    assert!(sim.drive_bounded(STEP_BOUND), "simulation livelocked");
    assert!(
        sim.ini.decode_errors.is_empty(),
        "target sent bytes the initiator cannot decode: {:?}",
        sim.ini.decode_errors
    );
});
