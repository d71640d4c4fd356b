//! Command dispatch by opcode: CDB + LU state → a plan.

use crate::block_op::{BlockOp, IoErrorKind};
use crate::lu::{LuConfig, LuContext};
use crate::sense::Sense;
use bytes::Bytes;

/// SCSI status byte (SAM-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScsiStatus {
    /// 0x00
    Good,
    /// 0x02
    CheckCondition,
    /// 0x08
    Busy,
    /// 0x18
    ReservationConflict,
    /// 0x28
    TaskSetFull,
}

impl ScsiStatus {
    /// The status byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            ScsiStatus::Good => 0x00,
            ScsiStatus::CheckCondition => 0x02,
            ScsiStatus::Busy => 0x08,
            ScsiStatus::ReservationConflict => 0x18,
            ScsiStatus::TaskSetFull => 0x28,
        }
    }
}

/// The finished answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Status byte.
    pub status: ScsiStatus,
    /// Data-in for the initiator, already cut to the CDB's allocation length.
    pub data: Bytes,
    /// Sense data (fixed format bytes) when `status` is CHECK CONDITION.
    pub sense: Option<Sense>,
}

/// What to do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer now.
    Done(Outcome),
    /// Run this operation on the backing store, then call [`complete`].
    Io(BlockOp),
}

/// The result of checking a CDB before any data-out is solicited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// Bytes of data-out the command carries, as its CDB says (e.g. blocks × block size for
    /// WRITE). The transport collects min(this, expected data transfer length) bytes.
    pub data_out_len: u64,
}

/// Check a CDB before the transport solicits data for it.
pub fn prepare(cdb: &[u8], lu: &LuConfig) -> Result<Prepared, Sense> {
    let _ = (cdb, lu);
    todo!()
}

/// Run a command whose data-out (if any) has been collected.
pub fn execute(cdb: &[u8], lu: &LuConfig, ctx: &LuContext<'_>, data_out: Bytes) -> Plan {
    let _ = (cdb, lu, ctx, data_out);
    todo!()
}

/// Turn a finished block operation into the command's outcome.
pub fn complete(op: &BlockOp, result: Result<Bytes, IoErrorKind>) -> Outcome {
    let _ = (op, result);
    todo!()
}
