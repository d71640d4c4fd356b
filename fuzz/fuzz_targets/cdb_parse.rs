//! `scsi_sbc::prepare` / `execute` / `complete` on arbitrary CDBs and data against small
//! LU configurations. Invariants: nothing panics; block operations stay inside the LU; a
//! write never carries more than the CDB asked for; a read completes with what it asked.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scsi_sbc::{BlockOp, DeviceType, IoErrorKind, LuConfig, LuContext, LuIdentity, Plan};

#[derive(Debug, Arbitrary)]
struct Input {
    cdb: Vec<u8>,
    data: Vec<u8>,
    controller: bool,
    big_blocks: bool,
    readonly: bool,
    num_blocks: u16,
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
    };
    let ctx = LuContext {
        lun: 1,
        luns: &[0, 1],
        target_name: "iqn.2024-01.com.example:fuzz",
        tpgt: 1,
    };
    let prepared = scsi_sbc::prepare(&input.cdb, &lu);
    let data = Bytes::from(input.data);
    let size = lu.num_blocks * u64::from(block_size);
    match scsi_sbc::execute(&input.cdb, &lu, &ctx, data.clone()) {
        Plan::Done(_) => {}
        Plan::Io(op) => {
            match &op {
                BlockOp::Read { offset, len } => {
                    assert!(offset + len <= size, "read inside the LU");
                    let back = Bytes::from(vec![0u8; *len as usize]);
                    let o = scsi_sbc::complete(&op, Ok(back));
                    assert_eq!(o.data.len() as u64, *len);
                }
                BlockOp::Write { offset, data: w, .. } => {
                    assert!(offset + w.len() as u64 <= size, "write inside the LU");
                    assert!(w.len() <= data.len());
                    let p = prepared.expect("an executed write was prepared");
                    assert!(w.len() as u64 <= p.data_out_len);
                    assert!(!lu.readonly);
                    let _ = scsi_sbc::complete(&op, Ok(Bytes::new()));
                }
                BlockOp::Flush => {}
            }
            let _ = scsi_sbc::complete(&op, Err(IoErrorKind::Other));
        }
    }
});
