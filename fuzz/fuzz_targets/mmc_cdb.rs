//! A sequence of arbitrary CDBs from two I_T nexuses, with media changes, ejects and
//! offline switches in between, through `scsi_mmc::prepare_in` / `execute_in` /
//! `complete_in` against one cd LU. Invariants: nothing panics; no command asks for
//! data-out; a read stays inside the image and completes with what it asked for; a
//! CHECK CONDITION carries sense and no data.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scsi_sbc::state::LuState;
use scsi_sbc::{
    BlockOp, DeviceType, IoErrorKind, LuConfig, LuContext, LuIdentity, Nexus, Plan, ScsiStatus,
};

#[derive(Debug, Arbitrary)]
enum Step {
    Cmd {
        second_nexus: bool,
        cdb: Vec<u8>,
        io_fails: bool,
    },
    MediumChanged,
    Offline(bool),
    Reset,
    NexusLost(bool),
}

#[derive(Debug, Arbitrary)]
struct Input {
    num_blocks: u32,
    descriptor_sense: bool,
    steps: Vec<Step>,
}

fuzz_target!(|input: Input| {
    let lu = LuConfig {
        device_type: DeviceType::Cd,
        block_size: scsi_mmc::BLOCK_SIZE,
        num_blocks: u64::from(input.num_blocks % 1_000_000),
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-CDROM".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010001".into(),
            scsi_sn: "beaf11".into(),
        },
        readonly: true,
        removable: true,
        write_cache: false,
        thin_provisioning: false,
        descriptor_sense: input.descriptor_sense,
        sanitize: false,
        geometry: Default::default(),
    };
    let size = lu.num_blocks * u64::from(lu.block_size);
    let mut state = LuState::new();
    for step in input.steps.into_iter().take(64) {
        let (second, cdb, io_fails) = match step {
            Step::Cmd {
                second_nexus,
                cdb,
                io_fails,
            } => (second_nexus, cdb, io_fails),
            Step::MediumChanged => {
                state.medium_changed(&[1, 2]);
                continue;
            }
            Step::Offline(off) => {
                state.offline = off;
                continue;
            }
            Step::Reset => {
                state.reset();
                continue;
            }
            Step::NexusLost(second) => {
                state.nexus_lost(if second { 2 } else { 1 });
                continue;
            }
        };
        let nexus = if second { 2 } else { 1 };
        let ctx = LuContext {
            lun: 1,
            luns: &[0, 1],
            target_name: "iqn.2024-01.com.example:fuzz",
            tpgt: 1,
            nexus: Nexus {
                id: nexus,
                initiator_port: nexus,
                initiator: "iqn.2024-01.com.example:a",
            },
            peers: &[],
            alua: None,
        };
        let outcome = match scsi_mmc::prepare_in(&cdb, &lu, &ctx, &mut state) {
            Err(o) => o,
            Ok(p) => {
                assert_eq!(p.data_out_len, 0);
                match scsi_mmc::execute_in(&cdb, &lu, &ctx, &mut state, Bytes::new()) {
                    Plan::Done(o) => o,
                    Plan::Io(op) => {
                        let BlockOp::Read { offset, len } = op else {
                            panic!("a cd LU only reads: {op:?}");
                        };
                        assert!(offset + len <= size, "read past the image");
                        let result = if io_fails {
                            Err(IoErrorKind::ReadError)
                        } else {
                            Ok(Bytes::from(vec![0u8; len as usize]))
                        };
                        let o = scsi_mmc::complete_in(&cdb, &lu, nexus, &mut state, &op, result);
                        if !io_fails {
                            assert_eq!(o.data.len() as u64, len);
                        }
                        o
                    }
                }
            }
        };
        match outcome.status {
            ScsiStatus::Good => assert!(outcome.sense.is_none()),
            ScsiStatus::CheckCondition => {
                assert!(outcome.sense.is_some() && outcome.data.is_empty())
            }
            s => panic!("unexpected status {s:?}"),
        }
    }
});
