//! Property: whatever mix of commands is submitted, and however the target's storage
//! lags, the initiator never sends a CmdSN beyond the target's MaxCmdSN, numbers its
//! commands without gaps, and every command completes.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{config, pattern, Pair};
use iscsi_initiator::{cdb, Command, DataDirection, Event};
use proptest::prelude::*;
use target_core::connection::ConnConfig;

#[derive(Debug, Clone)]
enum Op {
    Read { lba: u64, blocks: u32 },
    Write { lba: u64, blocks: u32 },
    Tur,
    Ping,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..60, 1u32..4).prop_map(|(lba, blocks)| Op::Read { lba, blocks }),
        (0u64..60, 1u32..4).prop_map(|(lba, blocks)| Op::Write { lba, blocks }),
        Just(Op::Tur),
        Just(Op::Ping),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn cmd_sn_window_is_kept(
        window in 1u32..5,
        batches in proptest::collection::vec((proptest::collection::vec(op(), 1..12), any::<bool>()), 1..6),
    ) {
        let conn_cfg = ConnConfig { cmd_window: window, ..ConnConfig::default() };
        let mut p = Pair::new(64, conn_cfg, config());
        p.login();
        p.clear_ua();
        let mut expected = Vec::new();
        let mut pings = Vec::new();
        for (ops, hold) in batches {
            p.hold_io = hold;
            for o in ops {
                match o {
                    Op::Read { lba, blocks } => expected.push(p.ini.submit(Command::new(
                        1, &cdb::read16(lba, blocks), DataDirection::Read(blocks * 512))).unwrap()),
                    Op::Write { lba, blocks } => expected.push(p.ini.submit(Command::new(
                        1, &cdb::write16(lba, blocks),
                        DataDirection::Write(pattern(blocks as usize * 512, lba as u8)))).unwrap()),
                    Op::Tur => expected.push(p.ini.submit(Command::new(
                        1, &cdb::test_unit_ready(), DataDirection::None)).unwrap()),
                    Op::Ping => pings.push(p.ini.ping(bytes::Bytes::new()).unwrap()),
                }
                // Sometimes move bytes between submissions.
                if hold { p.step(); }
            }
            p.drive();
            p.hold_io = false;
            p.complete_io();
            p.drive();
        }
        prop_assert!(p.violations.is_empty(), "{:?}", p.violations);
        prop_assert!(p.errors.is_empty(), "{:?}", p.errors);
        for itt in expected {
            let c = p.completion(itt);
            prop_assert!(c.is_some_and(|c| c.status == 0), "task {itt:?} incomplete");
        }
        for itt in pings {
            let ponged = p.events.iter().any(|e| matches!(e, Event::Pong { task, .. } if *task == itt));
            prop_assert!(ponged);
        }
        prop_assert_eq!(p.ini.commands_outstanding(), 0);
        prop_assert_eq!(p.ini.queued(), 0);
    }
}

/// A closed window holds commands back until the target moves MaxCmdSN.
#[test]
fn closed_window_queues() {
    let conn_cfg = ConnConfig {
        cmd_window: 1,
        ..ConnConfig::default()
    };
    let mut p = Pair::new(64, conn_cfg, config());
    p.login();
    p.clear_ua();
    p.hold_io = true;
    let itts: Vec<_> = (0..3)
        .map(|i| {
            p.ini
                .submit(Command::new(
                    1,
                    &cdb::read16(i, 1),
                    DataDirection::Read(512),
                ))
                .unwrap()
        })
        .collect();
    assert!(!p.ini.window_open());
    p.drive();
    assert!(p.ini.queued() >= 1, "window of 1 with held I/O");
    p.hold_io = false;
    p.complete_io();
    p.drive();
    for itt in itts {
        assert_eq!(p.completion(itt).unwrap().status, 0);
    }
    assert!(p.violations.is_empty(), "{:?}", p.violations);
}
