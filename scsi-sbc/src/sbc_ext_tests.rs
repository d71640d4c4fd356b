//! CDB-level tests of the extended commands: what an initiator would see.

use crate::block_op::{encode_extents, BlockOp, Extent};
use crate::test_util::{disk, run, run_check, run_good, CTX};
use crate::{complete_in, execute_in, prepare, LuConfig, LuState, Plan, ScsiStatus, Sense};
use bytes::Bytes;

fn c16(op: u8, b1: u8, lba: u64, n: u32) -> Vec<u8> {
    let mut c = vec![op, b1];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&n.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

#[test]
fn verify_bytchk() {
    let lu = disk();
    // BYTCHK=0: range check only.
    run_good(&lu, &CTX, &c16(0x8f, 0, 998, 2));
    assert_eq!(
        run_check(&lu, &CTX, &c16(0x8f, 0, 999, 2)),
        Sense::lba_out_of_range()
    );
    // BYTCHK=1: compare the data-out.
    let cdb = c16(0x8f, 0x02, 4, 2);
    assert_eq!(prepare(&cdb, &lu).unwrap().data_out_len, 1024);
    let data = Bytes::from(vec![9u8; 1024]);
    assert_eq!(
        run(&lu, &CTX, &cdb, data.clone()),
        Plan::Io(BlockOp::Compare { offset: 2048, data })
    );
    // Miscompare: MISCOMPARE 1Dh/00h with the offset in INFORMATION.
    let mut st = LuState::settled(&[1, 2, 3]);
    let o = complete_in(
        &cdb,
        &lu,
        1,
        &mut st,
        &BlockOp::Flush,
        Err(crate::IoErrorKind::Miscompare { offset: 700 }),
    );
    let s = o.sense.unwrap();
    assert_eq!(
        (s.key as u8, s.asc, s.ascq, s.info),
        (0x0e, 0x1d, 0, Some(700))
    );
    // BYTCHK=3: one block compared with each block.
    let cdb = c16(0x8f, 0x06, 0, 3);
    assert_eq!(prepare(&cdb, &lu).unwrap().data_out_len, 512);
    match execute_in(&cdb, &lu, &CTX, &mut st, Bytes::from(vec![1u8; 512])) {
        Plan::Io(BlockOp::Compare { data, .. }) => assert_eq!(data.len(), 1536),
        other => panic!("{other:?}"),
    }
}

/// BYTCHK=3 sends one block but compares the whole range, held as one buffer: a
/// range above MAXIMUM TRANSFER LENGTH is refused before any data is asked for
/// (found by the cdb_parse fuzzer: a 256 MiB range took seconds and its size in RAM).
#[test]
fn verify_bytchk3_is_bounded_by_the_transfer_limit() {
    let lu = LuConfig {
        num_blocks: 1 << 30,
        ..disk()
    };
    let max = crate::rw::max_transfer_blocks(&lu);
    let cdb = c16(0x8f, 0x06, 0, max + 1);
    assert_eq!(
        prepare(&cdb, &lu).unwrap_err(),
        Sense::illegal_request(crate::asc::INVALID_FIELD_IN_CDB)
    );
    let mut st = LuState::settled(&[1, 2, 3]);
    match execute_in(&cdb, &lu, &CTX, &mut st, Bytes::from(vec![1u8; 512])) {
        Plan::Done(o) => {
            let s = o.sense.expect("sense");
            assert_eq!((s.key as u8, s.asc, s.ascq), (0x05, 0x24, 0));
        }
        other => panic!("{other:?}"),
    }
    // At the limit: allowed, the buffer is the range.
    let cdb = c16(0x8f, 0x06, 0, max);
    assert_eq!(prepare(&cdb, &lu).unwrap().data_out_len, 512);
    match execute_in(&cdb, &lu, &CTX, &mut st, Bytes::from(vec![1u8; 512])) {
        Plan::Io(BlockOp::Compare { data, .. }) => {
            assert_eq!(data.len() as u64, crate::MAX_TRANSFER_BYTES)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn write_same_and_unmap() {
    let lu = disk();
    let block = Bytes::from(vec![0u8; 512]);
    // WRITE SAME(16) UNMAP with a zero block: deallocate.
    assert_eq!(
        run(&lu, &CTX, &c16(0x93, 0x08, 10, 4), block.clone()),
        Plan::Io(BlockOp::Unmap {
            ranges: vec![(5120, 2048)]
        })
    );
    // UNMAP deallocates whatever the block holds (LBPRZ=1: it then reads as zeros).
    assert_eq!(
        run(
            &lu,
            &CTX,
            &c16(0x93, 0x08, 10, 4),
            Bytes::from(vec![0xffu8; 512])
        ),
        Plan::Io(BlockOp::Unmap {
            ranges: vec![(5120, 2048)]
        })
    );
    // NDOB without UNMAP: zeros, no data-out.
    let cdb = c16(0x93, 0x01, 10, 4);
    assert_eq!(prepare(&cdb, &lu).unwrap().data_out_len, 0);
    assert!(matches!(
        run(&lu, &CTX, &cdb, Bytes::new()),
        Plan::Io(BlockOp::WriteSame { len: 2048, .. })
    ));
    // Zero blocks (WSNZ=0): from the LBA through the last one, within MAXIMUM WRITE
    // SAME LENGTH; an LBA past the end is out of range first.
    assert!(matches!(
        run(&lu, &CTX, &c16(0x93, 0x01, 990, 0), Bytes::new()),
        Plan::Io(BlockOp::WriteSame {
            offset: 506_880,
            len: 5120,
            ..
        })
    ));
    assert!(matches!(
        run(&lu, &CTX, &c16(0x93, 0x01, 0, 0), Bytes::new()),
        Plan::Io(BlockOp::WriteSame {
            offset: 0,
            len: 512_000,
            ..
        })
    ));
    assert_eq!(
        run_check(&lu, &CTX, &c16(0x93, 0, 1000, 0)),
        Sense::lba_out_of_range()
    );
    let big = LuConfig {
        num_blocks: crate::sbc_ext::max_write_same_blocks(&lu) + 10,
        ..disk()
    };
    assert_eq!(
        run_check(&big, &CTX, &c16(0x93, 0, 0, 0)),
        Sense::invalid_field_in_cdb(),
        "more than MAXIMUM WRITE SAME LENGTH"
    );
    assert!(matches!(
        run(&big, &CTX, &c16(0x93, 0x01, 11, 0), Bytes::new()),
        Plan::Io(BlockOp::WriteSame { .. })
    ));
    assert_eq!(
        run_check(&lu, &CTX, &c16(0x93, 0, 999, 2)),
        Sense::lba_out_of_range()
    );
    // UNMAP parameter list: two descriptors, one empty.
    let mut p = vec![0, 38, 0, 32, 0, 0, 0, 0];
    p.extend_from_slice(&c16(0, 0, 0, 0)[2..14]);
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&8u64.to_be_bytes());
    p.extend_from_slice(&2u32.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0];
    assert_eq!(
        run(&lu, &CTX, &cdb, Bytes::from(p)),
        Plan::Io(BlockOp::Unmap {
            ranges: vec![(4096, 1024)]
        })
    );
    let short = [0x42, 0, 0, 0, 0, 0, 0, 0, 4, 0];
    let s = run(&lu, &CTX, &short, Bytes::from(vec![0; 4]));
    assert!(matches!(s, Plan::Done(o) if o.sense.map(|s| s.asc) == Some(0x1a)));
    let mut thick = disk();
    thick.thin_provisioning = false;
    assert_eq!(run_check(&thick, &CTX, &cdb), Sense::invalid_opcode());
}

#[test]
fn get_lba_status_descriptors() {
    let lu = disk();
    let mut cdb = c16(0x9e, 0x12, 8, 64);
    assert_eq!(
        run(&lu, &CTX, &cdb, Bytes::new()),
        Plan::Io(BlockOp::Provisioning {
            offset: 4096,
            len: 992 * 512
        })
    );
    let ext = encode_extents(&[
        Extent {
            offset: 4096,
            len: 8192,
            mapped: false,
        },
        Extent {
            offset: 12288,
            len: 4096,
            mapped: true,
        },
    ]);
    let o = complete_in(
        &cdb,
        &lu,
        1,
        &mut LuState::settled(&[1, 2, 3]),
        &BlockOp::Flush,
        Ok(Bytes::new()),
    );
    assert_eq!(o.status, ScsiStatus::Good);
    let op = BlockOp::Provisioning { offset: 0, len: 0 };
    let o = complete_in(
        &cdb,
        &lu,
        1,
        &mut LuState::settled(&[1, 2, 3]),
        &op,
        Ok(ext),
    );
    let d = o.data;
    assert_eq!(&d[..4], &[0, 0, 0, 36]);
    assert_eq!(
        &d[8..24],
        &[0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 16, 1, 0, 0, 0]
    );
    assert_eq!(d[24 + 12], 0);
    cdb[9] = 0xe8;
    cdb[8] = 0x03;
    assert_eq!(run_check(&lu, &CTX, &cdb), Sense::lba_out_of_range());
}

#[test]
fn compare_and_write_limits() {
    let lu = disk();
    let mut cdb = c16(0x89, 0, 0, 0);
    cdb[13] = 2;
    assert_eq!(prepare(&cdb, &lu).unwrap().data_out_len, 2048);
    match run(&lu, &CTX, &cdb, Bytes::from(vec![3u8; 2048])) {
        Plan::Io(BlockOp::CompareAndWrite { compare, data, .. }) => {
            assert_eq!((compare.len(), data.len()), (1024, 1024))
        }
        other => panic!("{other:?}"),
    }
    // Short data-out, zero or too many blocks: INVALID FIELD IN CDB.
    assert_eq!(run_check(&lu, &CTX, &cdb), Sense::invalid_field_in_cdb());
    cdb[13] = 0;
    assert_eq!(prepare(&cdb, &lu), Err(Sense::invalid_field_in_cdb()));
    cdb[13] = 200;
    assert_eq!(prepare(&cdb, &lu), Err(Sense::invalid_field_in_cdb()));
}

#[test]
fn reservations_through_commands() {
    let lu = disk();
    let mut st = LuState::settled(&[1, 2, 3]);
    let mut b = CTX;
    b.nexus.id = 2;
    let reserve6 = [0x16, 0, 0, 0, 0, 0];
    let tur = [0, 0, 0, 0, 0, 0];
    assert!(crate::prepare_in(&reserve6, &lu, &CTX, &mut st).is_ok());
    assert!(matches!(
        execute_in(&reserve6, &lu, &CTX, &mut st, Bytes::new()),
        Plan::Done(o) if o.status == ScsiStatus::Good
    ));
    let r = crate::prepare_in(&tur, &lu, &b, &mut st);
    assert_eq!(r.unwrap_err().status, ScsiStatus::ReservationConflict);
    // INQUIRY still works for the other nexus.
    assert!(crate::prepare_in(&[0x12, 0, 0, 0, 36, 0], &lu, &b, &mut st).is_ok());
}

#[test]
fn unit_attention_once_then_request_sense() {
    let lu = disk();
    let mut st = LuState::settled(&[1, 2, 3]);
    let tur = [0, 0, 0, 0, 0, 0];
    assert!(crate::prepare_in(&tur, &lu, &CTX, &mut st).is_ok());
    st.reset();
    let o = crate::prepare_in(&tur, &lu, &CTX, &mut st).unwrap_err();
    assert_eq!(
        o.sense.map(|s| (s.key as u8, s.asc, s.ascq)),
        Some((6, 0x29, 3))
    );
    assert!(crate::prepare_in(&tur, &lu, &CTX, &mut st).is_ok());
    // REQUEST SENSE reports and clears a pending one.
    st.capacity_changed(&[]);
    let rs = [0x03, 0, 0, 0, 18, 0];
    assert!(crate::prepare_in(&rs, &lu, &CTX, &mut st).is_ok());
    match execute_in(&rs, &lu, &CTX, &mut st, Bytes::new()) {
        Plan::Done(o) => assert_eq!((o.data[2], o.data[12], o.data[13]), (6, 0x2a, 0x09)),
        other => panic!("{other:?}"),
    }
    assert!(!st.ua.has(1));
}

#[test]
fn report_supported_opcodes_all() {
    let lu = disk();
    let cdb = [0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
    let d = run_good(&lu, &CTX, &cdb);
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len % 8, 0);
    assert_eq!(d.len(), 4 + len);
    // READ(10) is listed without a service action.
    assert!(d[4..].chunks(8).any(|c| c[0] == 0x28 && c[5] == 0));
}

#[test]
fn removable_medium() {
    let mut lu = disk();
    lu.removable = true;
    let mut st = LuState::settled(&[1, 2, 3]);
    let prevent = [0x1e, 0, 0, 0, 1, 0];
    let eject = [0x1b, 0, 0, 0, 0x02, 0];
    let load = [0x1b, 0, 0, 0, 0x03, 0];
    let tur = [0, 0, 0, 0, 0, 0];
    let run = |c: &[u8], st: &mut LuState| match execute_in(c, &lu, &CTX, st, Bytes::new()) {
        Plan::Done(o) => o.sense.map(|s| (s.asc, s.ascq)),
        other => panic!("{other:?}"),
    };
    assert_eq!(run(&prevent, &mut st), None);
    assert_eq!(run(&eject, &mut st), Some((0x53, 0x02)));
    assert_eq!(run(&[0x1e, 0, 0, 0, 0, 0], &mut st), None);
    assert_eq!(run(&eject, &mut st), None);
    assert_eq!(run(&tur, &mut st), Some((0x3a, 0)));
    // Loading is refused too while removal is prevented (libiscsi PreventAllow.Eject).
    assert_eq!(run(&prevent, &mut st), None);
    assert_eq!(run(&load, &mut st), Some((0x53, 0x02)));
    assert_eq!(run(&[0x1e, 0, 0, 0, 0, 0], &mut st), None);
    assert_eq!(run(&load, &mut st), None);
    assert_eq!(run(&tur, &mut st), None);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary CDBs with arbitrary parameter data (MODE SELECT, UNMAP, PR OUT
        /// lists), from two nexuses sharing one LU state: never a panic, and every
        /// answer is consistent (sense iff CHECK CONDITION).
        #[test]
        fn cdbs_with_parameter_data_never_panic(
            cmds in prop::collection::vec(
                (
                    prop::sample::select(vec![0x15u8, 0x55, 0x42, 0x5f, 0x5e, 0x16, 0x17,
                        0x93, 0x41, 0x89, 0x8f, 0x2f, 0x9e, 0xa3, 0x1b, 0x1e, 0x4d, 0x37,
                        0x04, 0x8b, 0x9c, 0x83, 0x84, 0x00, 0x03]),
                    prop::collection::vec(any::<u8>(), 15),
                    prop::collection::vec(any::<u8>(), 0..600),
                    any::<bool>(),
                ),
                1..8,
            ),
        ) {
            let lu = disk();
            let mut st = LuState::settled(&[1, 2, 3]);
            let mut other = CTX;
            other.nexus.id = 2;
            for (op, rest, data, second) in cmds {
                let ctx = if second { &other } else { &CTX };
                let mut cdb = vec![op];
                cdb.extend_from_slice(&rest);
                if crate::prepare_in(&cdb, &lu, ctx, &mut st).is_err() {
                    continue;
                }
                match execute_in(&cdb, &lu, ctx, &mut st, Bytes::from(data)) {
                    Plan::Done(o) => {
                        prop_assert_eq!(o.sense.is_some(), o.status == ScsiStatus::CheckCondition);
                    }
                    Plan::Io(op) => {
                        let _ = complete_in(&cdb, &lu, ctx.nexus.id, &mut st, &op, Ok(Bytes::new()));
                    }
                }
            }
        }
    }
}

#[test]
fn sanitize_runs_only_where_offered_and_makes_the_lu_not_ready() {
    let lu = disk();
    let erase = [0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
    let off = crate::LuConfig {
        sanitize: false,
        ..disk()
    };
    assert_eq!(run_check(&off, &CTX, &erase), Sense::invalid_opcode());
    let reserved = [0x48, 0x42, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(run_check(&off, &CTX, &reserved), Sense::invalid_opcode());
    // Reserved bit 6 of byte 1 and bytes 2-6 (libiscsi Sanitize.*Reserved).
    assert_eq!(
        run_check(&lu, &CTX, &reserved),
        Sense::invalid_cdb_field(1, 6)
    );
    let mut st = LuState::settled(&[1, 2, 3]);
    let op = match execute_in(&erase, &lu, &CTX, &mut st, Bytes::new()) {
        Plan::Io(op @ BlockOp::Unmap { .. }) => op,
        other => panic!("{other:?}"),
    };
    assert!(st.sanitizing);
    // SBC-4 4.11.2: NOT READY, SANITIZE IN PROGRESS (04h/1Bh) but for INQUIRY,
    // REPORT LUNS and REQUEST SENSE, which reports the same condition.
    let o = crate::prepare_in(&[0; 6], &lu, &CTX, &mut st).unwrap_err();
    let s = o.sense.unwrap();
    assert_eq!(
        (s.key, s.asc, s.ascq),
        (crate::SenseKey::NotReady, 0x04, 0x1b)
    );
    assert!(crate::prepare_in(&[0x12, 0, 0, 0, 36, 0], &lu, &CTX, &mut st).is_ok());
    st.sanitize_progress = 0x8000;
    match execute_in(&[0x03, 0, 0, 0, 18, 0], &lu, &CTX, &mut st, Bytes::new()) {
        // Fixed format (SPC-4 table 48) with SKSV and PROGRESS INDICATION: half done.
        Plan::Done(o) => assert_eq!(
            (o.data[2], o.data[12], o.data[13], &o.data[15..18]),
            (0x02, 0x04, 0x1b, &[0x80, 0x80, 0x00][..])
        ),
        other => panic!("{other:?}"),
    }
    match execute_in(&[0x03, 1, 0, 0, 252, 0], &lu, &CTX, &mut st, Bytes::new()) {
        // Descriptor format: a sense key specific descriptor (SPC-4 4.5.2.5: the three bytes at 4-6).
        Plan::Done(o) => assert_eq!(
            o.data.to_vec(),
            vec![0x72, 2, 4, 0x1b, 0, 0, 0, 8, 2, 6, 0, 0, 0x80, 0x80, 0, 0]
        ),
        other => panic!("{other:?}"),
    }
    let o = complete_in(&erase, &lu, 1, &mut st, &op, Ok(Bytes::new()));
    assert_eq!(o.status, ScsiStatus::Good);
    assert!(!st.sanitizing);
    assert!(crate::prepare_in(&[0; 6], &lu, &CTX, &mut st).is_ok());
}

#[test]
fn sanitize_parameter_errors_are_invalid_field_in_cdb() {
    let lu = disk();
    let cdb = |sa: u8, len: u16| {
        let l = len.to_be_bytes();
        [0x48, sa, 0, 0, 0, 0, 0, l[0], l[1], 0]
    };
    let mut pattern = vec![0x01, 0, 0x02, 0x00];
    pattern.extend_from_slice(&[0xaa; 512]);
    let go = |c: [u8; 10], data: &[u8]| run(&lu, &CTX, &c, Bytes::copy_from_slice(data));
    assert!(matches!(
        go(cdb(0x01, 516), &pattern),
        Plan::Io(BlockOp::WriteSame { len: 512_000, .. })
    ));
    let bad =
        |p: Plan| matches!(p, Plan::Done(o) if o.sense == Some(Sense::invalid_field_in_cdb()));
    // libiscsi Sanitize.Overwrite: lengths 0-4 and block size + 5, OVERWRITE COUNT 0,
    // empty or overlong pattern; non-zero lengths for the erases and EXIT FAILURE MODE.
    for len in [0, 1, 4, 517] {
        assert!(bad(go(cdb(0x01, len), &pattern)), "length {len}");
    }
    let mut zero_count = pattern.clone();
    zero_count[0] = 0;
    assert!(bad(go(cdb(0x01, 516), &zero_count)));
    let mut empty = pattern.clone();
    empty[2..4].copy_from_slice(&[0, 0]);
    assert!(bad(go(cdb(0x01, 516), &empty)));
    for sa in [0x00, 0x02, 0x03, 0x04, 0x1e, 0x1f] {
        assert!(bad(go(cdb(sa, 8), &[0; 8])), "service action {sa:#x}");
    }
    assert!(matches!(go(cdb(0x1f, 0), &[]), Plan::Done(o) if o.status == ScsiStatus::Good));
}

#[test]
fn store_failures_carry_the_lba() {
    let thin = disk();
    let thick = LuConfig {
        thin_provisioning: false,
        ..disk()
    };
    let mut st = LuState::new();
    let sense = |lu: &LuConfig, st: &mut LuState, cdb: &[u8], op: BlockOp, k| {
        let o = complete_in(cdb, lu, 1, st, &op, Err(k));
        let s = o.sense.unwrap();
        (s.key as u8, s.asc, s.ascq, s.info)
    };
    let read = BlockOp::Read {
        offset: 512 * 40,
        len: 4096,
    };
    let r10 = [0x28, 0, 0, 0, 0, 40, 0, 0, 8, 0];
    let k = crate::IoErrorKind::ReadError;
    assert_eq!(
        sense(&thin, &mut st, &r10, read.clone(), k),
        (3, 0x11, 0, Some(40))
    );
    // The store knows better: the failing byte's LBA.
    let k = crate::IoErrorKind::ReadErrorAt { offset: 512 * 43 };
    assert_eq!(sense(&thin, &mut st, &r10, read, k), (3, 0x11, 0, Some(43)));
    let write = BlockOp::Write {
        offset: 512 * 7,
        data: Bytes::from(vec![0u8; 512]),
        fua: false,
    };
    let w10 = [0x2a, 0, 0, 0, 0, 7, 0, 0, 1, 0];
    let k = crate::IoErrorKind::WriteError;
    assert_eq!(
        sense(&thin, &mut st, &w10, write.clone(), k),
        (3, 0x0c, 0, Some(7))
    );
    let k = crate::IoErrorKind::NoSpace;
    assert_eq!(
        sense(&thin, &mut st, &w10, write.clone(), k),
        (7, 0x27, 7, Some(7))
    );
    assert_eq!(
        sense(&thick, &mut st, &w10, write, k),
        (3, 0x0c, 0, Some(7))
    );
    // SYNCHRONIZE CACHE: the CDB's LBA.
    let sync16 = c16(0x91, 0, 99, 0);
    let k = crate::IoErrorKind::WriteError;
    assert_eq!(
        sense(&thin, &mut st, &sync16, BlockOp::Flush, k),
        (3, 0x0c, 0, Some(99))
    );
    // Descriptor format: an information descriptor.
    let o = complete_in(&sync16, &thin, 1, &mut st, &BlockOp::Flush, Err(k));
    let s = o.sense.unwrap();
    assert_eq!(s.to_descriptor()[8..12], [0x00, 0x0a, 0x80, 0x00]);
}

/// The durability contract: with WCE=0 every kind of write is durable before GOOD
/// (FUA set on the store operation), and WRITE AND VERIFY always is.
#[test]
fn writes_are_write_through_when_the_cache_is_off() {
    let fua_of = |lu: &LuConfig, cdb: &[u8], data: Bytes| -> bool {
        let mut st = LuState::settled(&[1]);
        match execute_in(cdb, lu, &CTX, &mut st, data) {
            Plan::Io(
                BlockOp::Write { fua, .. }
                | BlockOp::WriteSame { fua, .. }
                | BlockOp::OrWrite { fua, .. }
                | BlockOp::CompareAndWrite { fua, .. },
            ) => fua,
            other => panic!("{cdb:02x?}: {other:?}"),
        }
    };
    let on = disk();
    let off = LuConfig {
        write_cache: false,
        ..disk()
    };
    let block = || Bytes::from(vec![5u8; 512]);
    let w10 = [0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0];
    let ws16 = c16(0x93, 0, 8, 1);
    let or = [0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0];
    let caw = [0x89, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0];
    let wv = [0x2e, 0, 0, 0, 0, 8, 0, 0, 1, 0];
    assert!(!fua_of(&on, &w10, block()));
    assert!(!fua_of(&on, &ws16, block()));
    assert!(fua_of(&on, &wv, block()), "WRITE AND VERIFY");
    for cdb in [&w10[..], &ws16, &or, &wv] {
        assert!(fua_of(&off, cdb, block()), "{cdb:02x?}");
    }
    assert!(fua_of(&off, &caw, Bytes::from(vec![0u8; 1024])));
}
