//! Named additional sense codes (ASC, ASCQ) used by this crate (SPC-4 table D.1 / annex F).

/// An additional sense code and its qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AscAscq {
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

const fn code(asc: u8, ascq: u8) -> AscAscq {
    AscAscq { asc, ascq }
}

/// 00h/00h NO ADDITIONAL SENSE INFORMATION.
pub const NO_ADDITIONAL_SENSE: AscAscq = code(0x00, 0x00);
/// 0Ch/00h WRITE ERROR.
pub const WRITE_ERROR: AscAscq = code(0x0c, 0x00);
/// 11h/00h UNRECOVERED READ ERROR.
pub const UNRECOVERED_READ_ERROR: AscAscq = code(0x11, 0x00);
/// 20h/00h INVALID COMMAND OPERATION CODE.
pub const INVALID_COMMAND_OPERATION_CODE: AscAscq = code(0x20, 0x00);
/// 21h/00h LOGICAL BLOCK ADDRESS OUT OF RANGE.
pub const LBA_OUT_OF_RANGE: AscAscq = code(0x21, 0x00);
/// 24h/00h INVALID FIELD IN CDB.
pub const INVALID_FIELD_IN_CDB: AscAscq = code(0x24, 0x00);
/// 27h/00h WRITE PROTECTED.
pub const WRITE_PROTECTED: AscAscq = code(0x27, 0x00);
/// 27h/07h SPACE ALLOCATION FAILED WRITE PROTECT.
pub const SPACE_ALLOCATION_FAILED_WRITE_PROTECT: AscAscq = code(0x27, 0x07);
/// 39h/00h SAVING PARAMETERS NOT SUPPORTED.
pub const SAVING_PARAMETERS_NOT_SUPPORTED: AscAscq = code(0x39, 0x00);
/// 44h/00h INTERNAL TARGET FAILURE.
pub const INTERNAL_TARGET_FAILURE: AscAscq = code(0x44, 0x00);
