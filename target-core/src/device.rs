//! Which SCSI crate answers an LU: `scsi_mmc` for a CD/DVD LU, `scsi_ssc` for a
//! tape drive, `scsi_smc` for a medium changer, `scsi_sbc` for the rest (disks and the LUN 0 controller). They have
//! the same sans-IO API, so the choice is this one match on [`DeviceType`] per entry
//! point.

use bytes::Bytes;
use scsi_sbc::{
    BlockOp, DeviceType, IoErrorKind, LuConfig, LuContext, LuState, Outcome, Plan, Prepared,
};

/// `prepare_in` of the LU's command set.
pub(crate) fn prepare_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<Prepared, Outcome> {
    match lu.device_type {
        DeviceType::Cd => scsi_mmc::prepare_in(cdb, lu, ctx, state),
        DeviceType::Tape => scsi_ssc::prepare_in(cdb, lu, ctx, state),
        DeviceType::Changer => scsi_smc::prepare_in(cdb, lu, ctx, state),
        DeviceType::Disk | DeviceType::Controller => scsi_sbc::prepare_in(cdb, lu, ctx, state),
    }
}

/// `execute_in` of the LU's command set.
pub(crate) fn execute_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    data_out: Bytes,
) -> Plan {
    match lu.device_type {
        DeviceType::Cd => scsi_mmc::execute_in(cdb, lu, ctx, state, data_out),
        DeviceType::Tape => scsi_ssc::execute_in(cdb, lu, ctx, state, data_out),
        DeviceType::Changer => scsi_smc::execute_in(cdb, lu, ctx, state, data_out),
        DeviceType::Disk | DeviceType::Controller => {
            scsi_sbc::execute_in(cdb, lu, ctx, state, data_out)
        }
    }
}

/// `complete_in` of the LU's command set.
pub(crate) fn complete_in(
    cdb: &[u8],
    lu: &LuConfig,
    nexus: u64,
    state: &mut LuState,
    op: &BlockOp,
    result: Result<Bytes, IoErrorKind>,
) -> Outcome {
    match lu.device_type {
        DeviceType::Cd => scsi_mmc::complete_in(cdb, lu, nexus, state, op, result),
        DeviceType::Tape => scsi_ssc::complete_in(cdb, lu, nexus, state, op, result),
        DeviceType::Changer => scsi_smc::complete_in(cdb, lu, nexus, state, op, result),
        DeviceType::Disk | DeviceType::Controller => {
            scsi_sbc::complete_in(cdb, lu, nexus, state, op, result)
        }
    }
}
