//! CDB + parameter data through `scsi_sbc::prepare_in` / `execute_in` /
//! `complete_in` with one LU state shared by two nexuses: MODE SELECT pages, UNMAP
//! descriptors, PERSISTENT RESERVE OUT lists, EXTENDED COPY lists. Invariants: no
//! panic; a CHECK CONDITION carries sense and no data; an I/O stays inside the LU.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scsi_sbc::{
    BlockOp, DeviceType, IoErrorKind, LuConfig, LuContext, LuIdentity, LuState, Nexus, Plan,
    ScsiStatus,
};

#[derive(Arbitrary, Debug)]
struct Cmd {
    second_nexus: bool,
    cdb: Vec<u8>,
    data: Vec<u8>,
    fail: bool,
}

fuzz_target!(|cmds: Vec<Cmd>| {
    let lu = LuConfig {
        device_type: DeviceType::Disk,
        block_size: 512,
        num_blocks: 2048,
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-DISK".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010001".into(),
            scsi_sn: "beaf11".into(),
        },
        readonly: false,
        removable: true,
        write_cache: true,
        thin_provisioning: true,
        descriptor_sense: false,
        sanitize: true,
        geometry: Default::default(),
    };
    let size = 2048 * 512u64;
    let mut state = LuState::new();
    for c in cmds.into_iter().take(16) {
        let ctx = LuContext {
            lun: 1,
            luns: &[0, 1],
            target_name: "iqn.2024-01.com.example:fuzz",
            tpgt: 1,
            nexus: Nexus {
                id: if c.second_nexus { 2 } else { 1 },
                initiator_port: if c.second_nexus { 2 } else { 1 },
                initiator: if c.second_nexus { "iqn.b" } else { "iqn.a" },
            },
            peers: &[],
            alua: None,
        };
        if scsi_sbc::prepare_in(&c.cdb, &lu, &ctx, &mut state).is_err() {
            continue;
        }
        match scsi_sbc::execute_in(&c.cdb, &lu, &ctx, &mut state, Bytes::from(c.data)) {
            Plan::Done(o) => {
                assert_eq!(o.sense.is_some(), o.status == ScsiStatus::CheckCondition);
            }
            Plan::Io(op) => {
                let inside = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= size);
                match &op {
                    BlockOp::Read { offset, len } => assert!(inside(*offset, *len)),
                    BlockOp::Write { offset, data, .. } => {
                        assert!(inside(*offset, data.len() as u64))
                    }
                    BlockOp::Unmap { ranges } => {
                        assert!(ranges.iter().all(|&(o, l)| inside(o, l)))
                    }
                    _ => {}
                }
                let r = if c.fail {
                    Err(IoErrorKind::Other)
                } else {
                    Ok(Bytes::new())
                };
                let _ = scsi_sbc::complete_in(&c.cdb, &lu, ctx.nexus.id, &mut state, &op, r);
            }
        }
    }
});
