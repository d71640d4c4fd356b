//! Fixtures shared by the unit tests: tgt-like LUs and helpers that run one CDB.

use crate::dispatch::{execute, Plan, ScsiStatus};
use crate::lu::{DeviceType, LuConfig, LuContext, LuIdentity};
use crate::sense::Sense;
use bytes::Bytes;

/// Target context: LUNs 0 and 1 of a target with portal group tag 1.
pub(crate) const CTX: LuContext<'static> = LuContext {
    lun: 1,
    luns: &[0, 1],
    target_name: "iqn.2001-04.com.example:t1",
    tpgt: 1,
    nexus: crate::lu::Nexus {
        id: 1,
        initiator_port: 1,
        initiator: "iqn.2001-04.com.example:i1",
    },
    peers: &[],
    alua: None,
};

/// tgt's LUN 1 of tid 1: 1000 blocks of 512 bytes, identity as tgt builds it.
pub(crate) fn disk() -> LuConfig {
    LuConfig {
        device_type: DeviceType::Disk,
        block_size: 512,
        num_blocks: 1000,
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-DISK".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010001".into(),
            scsi_sn: "beaf11".into(),
        },
        readonly: false,
        removable: false,
        write_cache: true,
        thin_provisioning: true,
        descriptor_sense: false,
        sanitize: true,
        geometry: Default::default(),
    }
}

/// tgt's LUN 0 controller.
pub(crate) fn controller() -> LuConfig {
    let mut lu = disk();
    lu.device_type = DeviceType::Controller;
    lu.block_size = 0;
    lu.num_blocks = 0;
    lu.identity.product_id = "Controller".into();
    lu.identity.scsi_id = "IET     00010000".into();
    lu.identity.scsi_sn = "beaf10".into();
    lu
}

/// Execute `cdb` with `data_out`.
pub(crate) fn run(lu: &LuConfig, ctx: &LuContext<'_>, cdb: &[u8], data_out: Bytes) -> Plan {
    execute(cdb, lu, ctx, data_out)
}

/// Execute `cdb`, expect GOOD answered at once, return the data-in.
pub(crate) fn run_good(lu: &LuConfig, ctx: &LuContext<'_>, cdb: &[u8]) -> Vec<u8> {
    match run(lu, ctx, cdb, Bytes::new()) {
        Plan::Done(o) if o.status == ScsiStatus::Good && o.sense.is_none() => o.data.to_vec(),
        other => panic!("expected GOOD for {cdb:02x?}, got {other:?}"),
    }
}

/// Execute `cdb`, expect CHECK CONDITION without data, return the sense.
pub(crate) fn run_check(lu: &LuConfig, ctx: &LuContext<'_>, cdb: &[u8]) -> Sense {
    match run(lu, ctx, cdb, Bytes::new()) {
        Plan::Done(o) if o.status == ScsiStatus::CheckCondition && o.data.is_empty() => {
            o.sense.expect("CHECK CONDITION carries sense")
        }
        other => panic!("expected CHECK CONDITION for {cdb:02x?}, got {other:?}"),
    }
}
