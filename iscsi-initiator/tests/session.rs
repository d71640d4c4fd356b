//! The initiator session against the target core, in process.
#![allow(clippy::disallowed_methods)]

mod common;

use bytes::Bytes;
use common::{config, pattern, Pair};
use iscsi_initiator::{
    cdb, Chap, Command, Config, DataDirection, Error, Event, MutualChap, Residual, State,
    TmfFunction,
};
use iscsi_proto::keys::TargetLimits;
use iscsi_proto::pdu::Pdu;
use std::time::Duration;
use target_core::connection::ConnConfig;
use target_core::testkit::fixture;

const USER: &str = "ini-user";
const SECRET: &str = "ini-secret-123";
const TUSER: &str = "tgt-user";
const TSECRET: &str = "tgt-secret-456";

fn chap_pair(mutual: bool, wrong_target_secret: bool) -> Pair {
    let fx = fixture::single_target(64, fixture::Bind::All);
    fx.core.registry.accounts.add(USER, SECRET).unwrap();
    fx.target.with_accounts(|b| b.bind(USER, false)).unwrap();
    fx.core.registry.accounts.add(TUSER, TSECRET).unwrap();
    fx.target.with_accounts(|b| b.bind(TUSER, true)).unwrap();
    let mut cfg = config();
    cfg.chap = Some(Chap {
        user: USER.into(),
        secret: SECRET.as_bytes().to_vec(),
        mutual: mutual.then(|| MutualChap {
            target_user: Some(TUSER.into()),
            target_secret: if wrong_target_secret {
                b"not-the-secret".to_vec()
            } else {
                TSECRET.as_bytes().to_vec()
            },
            id: 9,
            challenge: (0u8..20).map(|i| i.wrapping_mul(37)).collect(),
        }),
    });
    Pair::with_fixture(fx, ConnConfig::default(), cfg)
}

#[test]
fn plain_login_and_logout() {
    let mut p = Pair::new(64, ConnConfig::default(), config());
    p.login();
    let Some(Event::LoginComplete { params, tsih, .. }) = p.events.first() else {
        panic!("{:?}", p.events)
    };
    assert_ne!(tsih.0, 0);
    assert_eq!(params.max_xmit_data_segment_length, 262_144);
    p.clear_ua();
    p.ini.logout().unwrap();
    p.drive();
    assert_eq!(p.ini.state(), State::Closed);
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::LoggedOut { response: 0 })));
}

#[test]
fn chap_one_way_and_mutual() {
    for mutual in [false, true] {
        let mut p = chap_pair(mutual, false);
        p.login();
        p.clear_ua();
        let c = p.write(0, pattern(512, 1));
        assert_eq!(c.status, 0);
    }
}

#[test]
fn chap_failures() {
    // A target that answers mutual CHAP with the wrong secret is refused by us.
    let mut p = chap_pair(true, true);
    p.drive();
    assert_eq!(p.ini.state(), State::Failed);
    assert!(
        matches!(p.errors.as_slice(), [Error::Chap(_)]),
        "{:?}",
        p.errors
    );
    // Our wrong secret: the target refuses with 0x0201.
    let fx = fixture::single_target(64, fixture::Bind::All);
    fx.core.registry.accounts.add(USER, SECRET).unwrap();
    fx.target.with_accounts(|b| b.bind(USER, false)).unwrap();
    let mut cfg = config();
    cfg.chap = Some(Chap {
        user: USER.into(),
        secret: b"wrong-secret-000".to_vec(),
        mutual: None,
    });
    let mut p = Pair::with_fixture(fx, ConnConfig::default(), cfg);
    p.drive();
    match p.errors.as_slice() {
        [Error::LoginRefused { status, .. }] => assert_eq!((status.class, status.detail), (2, 1)),
        other => panic!("{other:?}"),
    }
    // No credentials but the target wants CHAP.
    let fx = fixture::single_target(64, fixture::Bind::All);
    fx.core.registry.accounts.add(USER, SECRET).unwrap();
    fx.target.with_accounts(|b| b.bind(USER, false)).unwrap();
    let mut p = Pair::with_fixture(fx, ConnConfig::default(), config());
    p.drive();
    assert_eq!(p.ini.state(), State::Failed);
}

#[test]
fn login_timeout_without_answers() {
    let mut p = Pair::new(64, ConnConfig::default(), config());
    // Nothing is delivered; time passes.
    let _ = p.ini.poll_transmit();
    p.advance(Duration::from_secs(16));
    assert!(matches!(p.errors.as_slice(), [Error::LoginTimeout]));
    assert_eq!(p.ini.state(), State::Failed);
}

#[test]
fn discovery_send_targets() {
    let mut p = Pair::new(
        64,
        ConnConfig::default(),
        Config::discovery(common::INITIATOR),
    );
    p.login();
    let itt = p.ini.send_targets("All").unwrap();
    p.drive();
    let targets = p
        .events
        .iter()
        .find_map(|e| match e {
            Event::Targets { task, targets } if *task == itt => Some(targets.clone()),
            _ => None,
        })
        .expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].name, fixture::TARGET);
    assert!(targets[0].addresses[0].starts_with("10.0.0.1:3260"));
}

/// Every InitialR2T x ImmediateData mode moves a write larger than FirstBurstLength
/// and MaxBurstLength correctly, with the PDUs the mode calls for.
#[test]
fn every_r2t_mode() {
    const TARGET_MRDSL: u32 = 2048;
    const FIRST: u32 = 4096;
    const MAX: u32 = 8192;
    const LEN: usize = 40 * 512;
    for initial_r2t in [true, false] {
        for immediate in [true, false] {
            let conn_cfg = ConnConfig {
                limits: TargetLimits {
                    max_recv_data_segment_length: TARGET_MRDSL,
                    initial_r2t: false,
                    immediate_data: true,
                    ..TargetLimits::default()
                },
                ..ConnConfig::default()
            };
            let mut cfg = config();
            cfg.initial_r2t = initial_r2t;
            cfg.immediate_data = immediate;
            cfg.first_burst_length = FIRST;
            cfg.max_burst_length = MAX;
            let mut p = Pair::new(1024, conn_cfg, cfg);
            p.login();
            let params = *p.ini.params();
            assert_eq!(
                (params.initial_r2t, params.immediate_data),
                (initial_r2t, immediate)
            );
            assert_eq!(params.max_xmit_data_segment_length, TARGET_MRDSL);
            p.clear_ua();
            let data = pattern(LEN, 7);
            let before = p.sent.len();
            let c = p.write(3, data.clone());
            assert_eq!(c.status, 0, "mode {initial_r2t}/{immediate}");
            assert_eq!(&p.fx.store.read_at(3 * 512, LEN)[..], &data[..]);
            let sent = &p.sent[before..];
            let Some(Pdu::ScsiCommand(cmd)) = sent.first() else {
                panic!()
            };
            let imm = if immediate { TARGET_MRDSL as usize } else { 0 };
            assert_eq!(cmd.data.len(), imm);
            let unsolicited: usize = sent
                .iter()
                .filter_map(|p| match p {
                    Pdu::DataOut(d) if d.ttt == iscsi_proto::Ttt::RESERVED => Some(d.data.len()),
                    _ => None,
                })
                .sum();
            let want_unsolicited = if initial_r2t { 0 } else { FIRST as usize - imm };
            assert_eq!(unsolicited, want_unsolicited);
            assert_eq!(cmd.final_bit, want_unsolicited == 0);
            // Every Data-Out respects the target's MaxRecvDataSegmentLength.
            assert!(sent.iter().all(|p| match p {
                Pdu::DataOut(d) => d.data.len() <= TARGET_MRDSL as usize,
                _ => true,
            }));
            let r2ts = p
                .received
                .iter()
                .filter(|p| matches!(p, Pdu::R2t(_)))
                .count();
            let solicited = LEN - imm - want_unsolicited;
            assert_eq!(r2ts, solicited.div_ceil(MAX as usize));
            // And it reads back.
            let r = p.read(3, 40);
            assert_eq!(r.data, data);
        }
    }
}

#[test]
fn data_in_reassembly_status_and_residuals() {
    let mut cfg = config();
    cfg.max_recv_data_segment_length = 512;
    let conn_cfg = ConnConfig {
        limits: TargetLimits {
            max_burst_length: 2048,
            ..TargetLimits::default()
        },
        ..ConnConfig::default()
    };
    cfg.max_burst_length = 2048;
    let mut p = Pair::new(1024, conn_cfg, cfg);
    p.login();
    p.clear_ua();
    let data = pattern(64 * 512, 3);
    p.fx.store.write_at(0, &data);
    let before = p.received.len();
    let c = p.read(0, 64);
    assert_eq!(c.status, 0);
    assert_eq!(c.data, data);
    assert_eq!(c.residual, Residual::None);
    let data_in: Vec<_> = p.received[before..]
        .iter()
        .filter_map(|p| match p {
            Pdu::DataIn(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(data_in.len(), 64, "512-byte segments");
    // Status came in the last Data-In (no SCSI Response).
    assert!(data_in.last().unwrap().status_present);
    // Underflow: EDTL larger than the CDB's transfer.
    let c = p.run(Command::new(
        1,
        &cdb::read16(0, 1),
        DataDirection::Read(2048),
    ));
    assert_eq!(c.status, 0);
    assert_eq!(c.residual, Residual::Underflow(1536));
    assert_eq!(c.data.len(), 512);
    // Overflow: EDTL smaller than the CDB's transfer.
    let c = p.run(Command::new(
        1,
        &cdb::read16(0, 4),
        DataDirection::Read(1024),
    ));
    assert_eq!(c.residual, Residual::Overflow(1024));
    assert_eq!(&c.data[..], &data[..1024]);
    // CHECK CONDITION with sense: beyond the end of the LU.
    let c = p.read(1024, 1);
    assert_eq!(c.status, 2);
    let s = c.sense.expect("sense");
    assert_eq!((s.key, s.asc), (5, 0x21));
    // READ CAPACITY(16) parses.
    let c = p.run(Command::new(
        1,
        &cdb::read_capacity16(),
        DataDirection::Read(cdb::READ_CAPACITY16_LEN),
    ));
    let cap = cdb::parse_read_capacity16(&c.data).unwrap();
    assert_eq!((cap.blocks, cap.block_len), (1024, 512));
}

/// `Command::discard_read_data`: a read over many Data-In PDUs completes with GOOD,
/// its residual, and no data; the Data-In checks still apply (a read of a kept
/// command right after gets its data); a short transfer reports its underflow.
#[test]
fn discarded_read_data_is_checked_and_dropped() {
    let mut cfg = config();
    cfg.max_recv_data_segment_length = 512;
    let mut p = Pair::new(1024, ConnConfig::default(), cfg);
    p.feed_chunk = Some(1000);
    p.login();
    p.clear_ua();
    let data = pattern(64 * 512, 9);
    p.fx.store.write_at(0, &data);
    let before = p.received.len();
    let read = |lba, blocks, edtl| {
        Command::new(1, &cdb::read16(lba, blocks), DataDirection::Read(edtl)).discarding_read_data()
    };
    let c = p.run(read(0, 64, 64 * 512));
    assert_eq!((c.status, c.residual), (0, Residual::None));
    assert!(c.data.is_empty(), "{} bytes kept", c.data.len());
    let data_in = p.received[before..]
        .iter()
        .filter(|p| matches!(p, Pdu::DataIn(_)))
        .count();
    assert_eq!(data_in, 64, "the data came, 512 bytes a PDU");
    let c = p.run(read(0, 1, 2048));
    assert_eq!((c.status, c.residual), (0, Residual::Underflow(1536)));
    assert!(c.data.is_empty());
    // The same read kept: the data is there.
    assert_eq!(p.read(0, 64).data, data);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
}

/// Read data through the caller's read buffer (`handle_input_buf`, fed in odd-sized
/// pieces): reassembled from many Data-In PDUs, or handed over as the one PDU's slice
/// when a single Data-In carries it all; a recycled buffer is reused for the next
/// reassembly.
#[test]
fn caller_read_buffer_reassembly_and_recycling() {
    for seg in [512u32, 262_144] {
        let mut cfg = config();
        cfg.max_recv_data_segment_length = seg;
        let mut p = Pair::new(1024, ConnConfig::default(), cfg);
        p.feed_chunk = Some(1000);
        p.login();
        p.clear_ua();
        let data = pattern(256 * 512, 5);
        p.fx.store.write_at(0, &data);
        for round in 0..3 {
            let c = p.read(0, 256);
            assert_eq!(c.status, 0, "seg {seg} round {round}");
            assert_eq!(c.data, data, "seg {seg} round {round}");
            let c2 = p.read(8, 128);
            assert_eq!(&c2.data[..], &data[8 * 512..136 * 512]);
            drop((c, c2));
            // A buffer handed back is the next reassembly's (the pair keeps copies
            // of every completion, so its own are not unique and are not kept).
            let mine = Bytes::from(vec![0u8; 256 * 512]);
            let ptr = mine.as_ptr();
            p.ini.recycle(mine);
            let again = p.read(0, 256);
            assert_eq!(again.data, data);
            if seg == 512 {
                // Gathered from 256 PDUs into the buffer handed back.
                assert_eq!(again.data.as_ptr(), ptr, "recycled buffer reused");
            }
        }
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert!(p.rbuf.is_empty());
    }
}

#[test]
fn digests_negotiate_and_catch_corruption() {
    let mut cfg = config();
    cfg.header_digest = true;
    cfg.data_digest = true;
    let mut p = Pair::new(256, ConnConfig::default(), cfg);
    p.login();
    assert!(p.ini.params().header_digest && p.ini.params().data_digest);
    p.clear_ua();
    let data = pattern(16 * 512, 9);
    assert_eq!(p.write(8, data.clone()).status, 0);
    assert_eq!(p.read(8, 16).data, data);
    // One flipped byte in a Data-In: the data digest catches it, the session fails.
    p.corrupt_next_data = true;
    let itt = p
        .ini
        .submit(Command::new(
            1,
            &cdb::read16(8, 16),
            DataDirection::Read(16 * 512),
        ))
        .unwrap();
    p.drive();
    assert!(p.completion(itt).is_none());
    assert!(matches!(
        p.errors.as_slice(),
        [Error::Decode(
            iscsi_proto::pdu::DecodeError::DataDigest { .. }
        )]
    ));
    assert_eq!(p.ini.state(), State::Failed);
}

#[test]
fn abort_task_and_lun_reset() {
    let mut p = Pair::new(64, ConnConfig::default(), config());
    p.login();
    p.clear_ua();
    // ABORT TASK of a command whose storage I/O is held.
    p.hold_io = true;
    let read = p
        .ini
        .submit(Command::new(
            1,
            &cdb::read16(0, 1),
            DataDirection::Read(512),
        ))
        .unwrap();
    p.drive();
    assert_eq!(p.pending_io.len(), 1);
    let tmf = p
        .ini
        .task_management(TmfFunction::AbortTask, 1, Some(read))
        .unwrap();
    p.drive();
    p.hold_io = false;
    p.complete_io();
    p.drive();
    let resp = p.events.iter().find_map(|e| match e {
        Event::TaskManagement { task, response, .. } if *task == tmf => Some(*response),
        _ => None,
    });
    assert_eq!(resp, Some(0), "{:?}", p.events);
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::CommandAborted { task } if *task == read)));
    assert!(p.completion(read).is_none());
    assert_eq!(p.ini.commands_outstanding(), 0);
    // ABORT TASK of a finished task: "task does not exist" (or complete).
    let done = p.read(0, 1).task;
    let tmf = p
        .ini
        .task_management(TmfFunction::AbortTask, 1, Some(done))
        .unwrap();
    p.drive();
    assert!(p.events.iter().any(
        |e| matches!(e, Event::TaskManagement { task, response, .. } if *task == tmf && *response <= 1)
    ));
    // LOGICAL UNIT RESET, then the session goes on.
    let tmf = p
        .ini
        .task_management(TmfFunction::LogicalUnitReset, 1, None)
        .unwrap();
    p.drive();
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::TaskManagement { task, response: 0, .. } if *task == tmf)));
    p.clear_ua();
    assert_eq!(p.read(0, 1).status, 0);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
}

#[test]
fn answers_target_nop_pings() {
    let conn_cfg = ConnConfig {
        nop_interval: Some(Duration::from_secs(5)),
        nop_timeout: Duration::from_secs(5),
        ..ConnConfig::default()
    };
    let mut p = Pair::new(64, conn_cfg, config());
    p.login();
    for _ in 0..6 {
        p.advance(Duration::from_secs(4));
        p.drive();
    }
    let pings = p
        .received
        .iter()
        .filter(|x| matches!(x, Pdu::NopIn(n) if n.itt == iscsi_proto::Itt::RESERVED))
        .count();
    let answers = p
        .sent
        .iter()
        .filter(|x| matches!(x, Pdu::NopOut(n) if n.itt == iscsi_proto::Itt::RESERVED))
        .count();
    assert!(pings >= 2, "{pings} pings");
    assert_eq!(pings, answers);
    assert!(!p.conn.is_closed());
    // Our own ping is answered too.
    let itt = p.ini.ping(Bytes::from_static(b"hello")).unwrap();
    p.drive();
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::Pong { task, data } if *task == itt && &data[..] == b"hello")));
}
