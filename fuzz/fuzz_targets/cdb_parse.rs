//! A sequence of arbitrary CDBs with data, from two I_T nexuses, through
//! `scsi_sbc::prepare_in` / `execute_in` / `complete_in` against one small LU and its
//! state (reservations, unit attentions, mode pages). Invariants: nothing panics; block
//! operations stay inside the LU; a write never carries more than the initiator sent or
//! the CDB asked for; a read completes with exactly what it asked for.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scsi_sbc::block_op::{encode_extents, Extent};
use scsi_sbc::state::LuState;
use scsi_sbc::{BlockOp, DeviceType, IoErrorKind, LuConfig, LuContext, LuIdentity, Nexus, Plan};

#[derive(Debug, Arbitrary)]
struct Input {
    controller: bool,
    big_blocks: bool,
    readonly: bool,
    thin: bool,
    descriptor_sense: bool,
    num_blocks: u16,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Arbitrary)]
struct Cmd {
    second_nexus: bool,
    cdb: Vec<u8>,
    data: Vec<u8>,
    /// Run it even when `prepare_in` refused it (a transport bug must not panic us).
    ignore_prepare: bool,
    io_fails: bool,
}

fuzz_target!(|input: Input| {
    let block_size = if input.big_blocks { 4096 } else { 512 };
    let lu = LuConfig {
        device_type: if input.controller {
            DeviceType::Controller
        } else {
            DeviceType::Disk
        },
        block_size,
        num_blocks: u64::from(input.num_blocks),
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-DISK".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010001".into(),
            scsi_sn: "beaf11".into(),
        },
        readonly: input.readonly,
        removable: false,
        write_cache: true,
        thin_provisioning: input.thin,
        descriptor_sense: input.descriptor_sense,
        sanitize: true,
        geometry: Default::default(),
    };
    let size = lu.num_blocks * u64::from(block_size);
    let mut state = LuState::new();
    for cmd in input.cmds.into_iter().take(64) {
        let ctx = LuContext {
            lun: 1,
            luns: &[0, 1],
            target_name: "iqn.2024-01.com.example:fuzz",
            tpgt: 1,
            nexus: Nexus {
                id: if cmd.second_nexus { 2 } else { 1 },
                initiator_port: if cmd.second_nexus { 2 } else { 1 },
                initiator: if cmd.second_nexus {
                    "iqn.2024-01.com.example:b"
                } else {
                    "iqn.2024-01.com.example:a"
                },
            },
            peers: &[],
            alua: None,
        };
        let prepared = scsi_sbc::prepare_in(&cmd.cdb, &lu, &ctx, &mut state);
        if prepared.is_err() && !cmd.ignore_prepare {
            continue;
        }
        let data = Bytes::from(cmd.data);
        let op = match scsi_sbc::execute_in(&cmd.cdb, &lu, &ctx, &mut state, data.clone()) {
            Plan::Done(_) => continue,
            Plan::Io(op) => op,
        };
        // Every byte range an operation touches lies inside the LU.
        let inside = |offset: u64, len: u64| {
            assert!(
                offset.checked_add(len).is_some_and(|e| e <= size),
                "{op:?} outside an LU of {size} bytes"
            )
        };
        let result = match &op {
            BlockOp::Read { offset, len } => {
                inside(*offset, *len);
                Bytes::from(vec![0u8; *len as usize])
            }
            BlockOp::Provisioning { offset, len } => {
                inside(*offset, *len);
                encode_extents(&[Extent {
                    offset: *offset,
                    len: *len,
                    mapped: true,
                }])
            }
            BlockOp::Write {
                offset, data: w, ..
            } => {
                inside(*offset, w.len() as u64);
                assert!(w.len() <= data.len(), "a write carries only data received");
                if let Ok(p) = &prepared {
                    assert!(w.len() as u64 <= p.data_out_len);
                }
                Bytes::new()
            }
            BlockOp::WriteSame {
                offset,
                len,
                pattern,
                ..
            } => {
                inside(*offset, *len);
                assert!(!pattern.is_empty() && len % pattern.len() as u64 == 0);
                Bytes::new()
            }
            BlockOp::Unmap { ranges } => {
                for (o, l) in ranges {
                    inside(*o, *l);
                }
                Bytes::new()
            }
            BlockOp::Compare { offset, data: d }
            | BlockOp::OrWrite {
                offset, data: d, ..
            } => {
                inside(*offset, d.len() as u64);
                Bytes::new()
            }
            BlockOp::CompareAndWrite {
                offset,
                compare,
                data: d,
                ..
            } => {
                inside(*offset, compare.len() as u64);
                assert_eq!(compare.len(), d.len());
                Bytes::new()
            }
            BlockOp::Flush => Bytes::new(),
            // With no peers, a copy stays within this LU.
            BlockOp::Copy { segments, .. } => {
                for seg in segments {
                    assert!(seg.src == 1 && seg.dst == 1 && seg.len > 0);
                    inside(seg.src_offset, seg.len);
                    inside(seg.dst_offset, seg.len);
                }
                Bytes::new()
            }
            // Ops that touch no LBA range of this LU (saved reservation state, ...).
            _ => Bytes::new(),
        };
        let outcome = if cmd.io_fails {
            scsi_sbc::complete_in(
                &cmd.cdb,
                &lu,
                ctx.nexus.id,
                &mut state,
                &op,
                Err(IoErrorKind::Miscompare { offset: 1 }),
            )
        } else {
            scsi_sbc::complete_in(&cmd.cdb, &lu, ctx.nexus.id, &mut state, &op, Ok(result))
        };
        if let (BlockOp::Read { len, .. }, false) = (&op, cmd.io_fails) {
            assert_eq!(outcome.data.len() as u64, *len);
        }
    }
});
