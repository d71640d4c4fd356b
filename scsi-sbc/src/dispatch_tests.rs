use super::*;
use crate::test_util::{controller, disk, run_check, run_good, CTX};
use proptest::prelude::*;

#[test]
fn test_unit_ready() {
    assert_eq!(run_good(&disk(), &CTX, &[0; 6]), Vec::<u8>::new());
    assert_eq!(run_good(&controller(), &CTX, &[0; 6]), Vec::<u8>::new());
}

#[test]
fn unknown_opcodes() {
    // SPC-4 table D.1: 20h/00h INVALID COMMAND OPERATION CODE.
    for op in [0x01, 0x02, 0x7f, 0x94, 0xa4, 0xc0, 0xff] {
        assert_eq!(run_check(&disk(), &CTX, &[op; 16]), Sense::invalid_opcode());
    }
    assert_eq!(prepare(&[], &disk()), Err(Sense::invalid_opcode()));
}

#[test]
fn short_cdb_and_naca() {
    assert_eq!(
        run_check(&disk(), &CTX, &[0x28, 0, 0]),
        Sense::invalid_field_in_cdb()
    );
    // SAM-5 5.2: NACA=1 without NormACA support.
    assert_eq!(
        run_check(&disk(), &CTX, &[0, 0, 0, 0, 0, 0x04]),
        Sense::invalid_cdb_field(5, 2)
    );
}

#[test]
fn request_sense_fixed_and_descriptor() {
    // SPC-4 6.39 / table 48: NO SENSE, 18 bytes.
    let d = run_good(&disk(), &CTX, &[0x03, 0, 0, 0, 252, 0]);
    assert_eq!(
        d,
        vec![0x70, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(run_good(&disk(), &CTX, &[0x03, 0, 0, 0, 8, 0]).len(), 8);
    // DESC=1: descriptor format header, SPC-4 table 45.
    let d = run_good(&controller(), &CTX, &[0x03, 1, 0, 0, 252, 0]);
    assert_eq!(d, vec![0x72, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn controller_refuses_media_commands() {
    let lu = controller();
    for cdb in [
        vec![0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        vec![0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        vec![0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
    ] {
        assert_eq!(prepare(&cdb, &lu), Err(Sense::invalid_opcode()));
        assert_eq!(run_check(&lu, &CTX, &cdb), Sense::invalid_opcode());
    }
}

#[test]
fn prepare_data_out_len() {
    let lu = disk();
    let w10 = [0x2a, 0, 0, 0, 0, 0, 0, 0, 4, 0];
    assert_eq!(
        prepare(&w10, &lu),
        Ok(Prepared {
            data_out_len: 2048,
            exact: false
        })
    );
    let r10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 4, 0];
    assert_eq!(
        prepare(&r10, &lu),
        Ok(Prepared {
            data_out_len: 0,
            exact: false
        })
    );
    assert_eq!(
        prepare(&[0x12, 0, 0, 0, 36, 0], &lu),
        Ok(Prepared {
            data_out_len: 0,
            exact: false
        })
    );
    // WRITE SAME(10) of 8 blocks carries exactly one block; COMPARE AND WRITE of 2
    // blocks exactly four.
    let ws10 = [0x41, 0, 0, 0, 0, 0, 0, 0, 8, 0];
    assert_eq!(
        prepare(&ws10, &lu),
        Ok(Prepared {
            data_out_len: 512,
            exact: true
        })
    );
    let caw = [0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0];
    assert_eq!(
        prepare(&caw, &lu),
        Ok(Prepared {
            data_out_len: 2048,
            exact: true
        })
    );
    let past = [0x2a, 0, 0, 0, 0x03, 0xe7, 0, 0, 2, 0];
    assert_eq!(prepare(&past, &lu), Err(Sense::lba_out_of_range()));
}

#[test]
fn complete_maps_results() {
    let read = BlockOp::Read { offset: 0, len: 4 };
    let data = Bytes::from_static(&[1, 2, 3, 4, 5]);
    assert_eq!(
        complete(&read, Ok(data)),
        Outcome::good(Bytes::from_static(&[1, 2, 3, 4]))
    );
    assert_eq!(
        complete(&BlockOp::Flush, Ok(Bytes::new())),
        Outcome::good(Bytes::new())
    );
    let cases = [
        (IoErrorKind::ReadError, SenseKey::MediumError, 0x11, 0x00),
        (IoErrorKind::WriteError, SenseKey::MediumError, 0x0c, 0x00),
        (IoErrorKind::NoSpace, SenseKey::DataProtect, 0x27, 0x07),
        (IoErrorKind::ReadOnly, SenseKey::DataProtect, 0x27, 0x00),
        (IoErrorKind::Other, SenseKey::HardwareError, 0x44, 0x00),
        (IoErrorKind::TimedOut, SenseKey::AbortedCommand, 0x3e, 0x02),
        (IoErrorKind::Fenced, SenseKey::NotReady, 0x04, 0x0c),
    ];
    for (kind, key, asc, ascq) in cases {
        let o = complete(&read, Err(kind));
        assert_eq!(o.status, ScsiStatus::CheckCondition);
        assert_eq!(o.status.code(), 0x02);
        assert!(o.data.is_empty());
        assert_eq!(
            o.sense,
            Some(Sense {
                key,
                asc,
                ascq,
                info: None,
                field: None,
                stream: 0,
            })
        );
    }
}

fn lu_strategy() -> impl Strategy<Value = LuConfig> {
    (
        any::<bool>(),
        prop_oneof![Just(0u32), Just(512), Just(4096), any::<u32>()],
        any::<u64>(),
        any::<[bool; 3]>(),
    )
        .prop_map(|(ctl, bs, n, [ro, rm, wc])| {
            let mut lu = if ctl { controller() } else { disk() };
            lu.block_size = bs;
            lu.num_blocks = n;
            lu.readonly = ro;
            lu.removable = rm;
            lu.write_cache = wc;
            lu
        })
}

proptest! {
    /// Hostile CDB bytes never panic, and every answer is a status or a plan.
    #[test]
    fn arbitrary_cdbs_never_panic(
        cdb in prop::collection::vec(any::<u8>(), 0..32),
        lu in lu_strategy(),
        data_len in 0usize..4096,
    ) {
        let prepared = prepare(&cdb, &lu);
        let data = Bytes::from(vec![0u8; data_len]);
        match execute(&cdb, &lu, &CTX, data) {
            Plan::Done(o) => {
                prop_assert_eq!(o.sense.is_some(), o.status == ScsiStatus::CheckCondition);
                if o.status == ScsiStatus::CheckCondition {
                    prop_assert!(o.data.is_empty());
                }
            }
            Plan::Io(op) => {
                prop_assert!(prepared.is_ok());
                if let BlockOp::Write { data, .. } = &op {
                    prop_assert!(data.len() as u64 <= prepared.map(|p| p.data_out_len).unwrap_or(0));
                }
                let _ = complete(&op, Err(IoErrorKind::Other));
            }
        }
    }

    /// Biased towards supported opcodes so field parsing is exercised too.
    #[test]
    fn known_opcodes_never_panic(
        op in prop::sample::select(vec![0x00u8, 0x03, 0x08, 0x0a, 0x12, 0x1a, 0x25, 0x28,
            0x2a, 0x35, 0x5a, 0x88, 0x8a, 0x91, 0x9e, 0xa0, 0xa8, 0xaa]),
        rest in prop::collection::vec(any::<u8>(), 0..20),
        lu in lu_strategy(),
    ) {
        let mut cdb = vec![op];
        cdb.extend_from_slice(&rest);
        let _ = prepare(&cdb, &lu);
        let _ = execute(&cdb, &lu, &CTX, Bytes::from_static(&[0u8; 512]));
    }
}
