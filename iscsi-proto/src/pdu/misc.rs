//! NOP-Out/NOP-In, Task Management, SNACK, Reject and Async Message
//! (RFC 7143 §11.5, 11.6, 11.9, 11.16, 11.17, 11.18, 11.19).

use super::bhs::{Bhs, BhsMut};
use crate::serial::SerialNumber;
use crate::types::{Itt, LunField, Ttt};
use bytes::Bytes;

/// NOP-Out (opcode 0x00, RFC 7143 §11.18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopOut {
    /// Immediate delivery.
    pub immediate: bool,
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag; reserved when answering a target's NOP-In.
    pub itt: Itt,
    /// Target transfer tag: echoes a NOP-In's, or reserved.
    pub ttt: Ttt,
    /// CmdSN.
    pub cmd_sn: SerialNumber,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
    /// Ping data.
    pub data: Bytes,
}

impl NopOut {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        NopOut {
            immediate: h.immediate(),
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            ttt: Ttt(h.u32(20)),
            cmd_sn: SerialNumber(h.u32(24)),
            exp_stat_sn: SerialNumber(h.u32(28)),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x00, self.immediate);
        h.set_u8(1, 0x80);
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(24, self.cmd_sn.0);
        h.set_u32(28, self.exp_stat_sn.0);
    }
}

/// NOP-In (opcode 0x20, RFC 7143 §11.19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopIn {
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag: echoes a NOP-Out's, or reserved for a target ping.
    pub itt: Itt,
    /// Target transfer tag: set for a ping that wants an answer.
    pub ttt: Ttt,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// Ping data.
    pub data: Bytes,
}

impl NopIn {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        NopIn {
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            ttt: Ttt(h.u32(20)),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x20, false);
        h.set_u8(1, 0x80);
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
    }
}

/// Task Management Function Request (opcode 0x02, RFC 7143 §11.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// Function: 1 ABORT TASK, 2 ABORT TASK SET, 3 CLEAR ACA, 4 CLEAR TASK SET,
    /// 5 LOGICAL UNIT RESET, 6 TARGET WARM RESET, 7 TARGET COLD RESET, 8 TASK REASSIGN.
    pub function: u8,
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag of this request.
    pub itt: Itt,
    /// Referenced task tag (ABORT TASK).
    pub referenced_task_tag: Itt,
    /// CmdSN.
    pub cmd_sn: SerialNumber,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
    /// RefCmdSN.
    pub ref_cmd_sn: SerialNumber,
    /// ExpDataSN.
    pub exp_data_sn: u32,
}

impl TaskMgmtRequest {
    pub(super) fn decode(h: Bhs<'_>) -> Self {
        TaskMgmtRequest {
            immediate: h.immediate(),
            function: h.flags() & 0x7f,
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            referenced_task_tag: Itt(h.u32(20)),
            cmd_sn: SerialNumber(h.u32(24)),
            exp_stat_sn: SerialNumber(h.u32(28)),
            ref_cmd_sn: SerialNumber(h.u32(32)),
            exp_data_sn: h.u32(36),
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x02, self.immediate);
        h.set_u8(1, 0x80 | (self.function & 0x7f));
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.referenced_task_tag.0);
        h.set_u32(24, self.cmd_sn.0);
        h.set_u32(28, self.exp_stat_sn.0);
        h.set_u32(32, self.ref_cmd_sn.0);
        h.set_u32(36, self.exp_data_sn);
    }
}

/// Task Management Function Response (opcode 0x22, RFC 7143 §11.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    /// Response: 0 complete, 1 task does not exist, 2 LUN does not exist, 3 task still
    /// allegiant, 4 reassignment not supported, 5 function not supported, 6 authorization
    /// failed, 255 rejected.
    pub response: u8,
    /// Initiator task tag of the request.
    pub itt: Itt,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
}

impl TaskMgmtResponse {
    pub(super) fn decode(h: Bhs<'_>) -> Self {
        TaskMgmtResponse {
            response: h.u8(2),
            itt: Itt(h.u32(16)),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x22, false);
        h.set_u8(1, 0x80);
        h.set_u8(2, self.response);
        h.set_u32(16, self.itt.0);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
    }
}

/// SNACK Request (opcode 0x10, RFC 7143 §11.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnackRequest {
    /// Type: 0 Data/R2T, 1 status, 2 DataACK, 3 R-Data.
    pub snack_type: u8,
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag or SNACK tag.
    pub ttt: Ttt,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
    /// BegRun.
    pub beg_run: u32,
    /// RunLength.
    pub run_length: u32,
}

impl SnackRequest {
    pub(super) fn decode(h: Bhs<'_>) -> Self {
        SnackRequest {
            snack_type: h.flags() & 0x0f,
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            ttt: Ttt(h.u32(20)),
            exp_stat_sn: SerialNumber(h.u32(28)),
            beg_run: h.u32(40),
            run_length: h.u32(44),
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x10, false);
        h.set_u8(1, 0x80 | (self.snack_type & 0x0f));
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(28, self.exp_stat_sn.0);
        h.set_u32(40, self.beg_run);
        h.set_u32(44, self.run_length);
    }
}

/// Reject reasons (RFC 7143 §11.17.1).
pub mod reject_reason {
    /// Data (payload) digest error.
    pub const DATA_DIGEST_ERROR: u8 = 0x02;
    /// SNACK reject.
    pub const SNACK_REJECT: u8 = 0x03;
    /// Protocol error (e.g. SNACK at ErrorRecoveryLevel 0).
    pub const PROTOCOL_ERROR: u8 = 0x04;
    /// Command not supported.
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x05;
    /// Immediate command reject: too many immediate commands.
    pub const IMMEDIATE_COMMAND_REJECT: u8 = 0x06;
    /// Task in progress.
    pub const TASK_IN_PROGRESS: u8 = 0x07;
    /// Invalid data ACK.
    pub const INVALID_DATA_ACK: u8 = 0x08;
    /// Invalid PDU field.
    pub const INVALID_PDU_FIELD: u8 = 0x09;
    /// Long operation reject: out of resources.
    pub const LONG_OP_REJECT: u8 = 0x0a;
    /// Deprecated: negotiation reset.
    pub const NEGOTIATION_RESET: u8 = 0x0b;
    /// Waiting for logout.
    pub const WAITING_FOR_LOGOUT: u8 = 0x0c;
}

/// Reject (opcode 0x3f, RFC 7143 §11.17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Reason code, see [`reject_reason`].
    pub reason: u8,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// DataSN/R2TSN (reason "protocol error" for a SNACK), else 0.
    pub data_sn: u32,
    /// The header of the rejected PDU.
    pub data: Bytes,
}

impl Reject {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        Reject {
            reason: h.u8(2),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            data_sn: h.u32(36),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x3f, false);
        h.set_u8(1, 0x80);
        h.set_u8(2, self.reason);
        h.set_u32(16, 0xffff_ffff);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
        h.set_u32(36, self.data_sn);
    }
}

/// Asynchronous Message (opcode 0x32, RFC 7143 §11.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessage {
    /// Logical unit (event 0).
    pub lun: LunField,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// AsyncEvent: 0 SCSI event, 1 logout request, 2 drop connection, 3 drop all, 4 renegotiate.
    pub async_event: u8,
    /// AsyncVCode.
    pub async_vcode: u8,
    /// Parameter1.
    pub parameter1: u16,
    /// Parameter2.
    pub parameter2: u16,
    /// Parameter3.
    pub parameter3: u16,
    /// Sense data or iSCSI event data.
    pub data: Bytes,
}

impl AsyncMessage {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        AsyncMessage {
            lun: LunField(h.bytes8(8)),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            async_event: h.u8(36),
            async_vcode: h.u8(37),
            parameter1: h.u16(38),
            parameter2: h.u16(40),
            parameter3: h.u16(42),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x32, false);
        h.set_u8(1, 0x80);
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, 0xffff_ffff);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
        h.set_u8(36, self.async_event);
        h.set_u8(37, self.async_vcode);
        h.set_u16(38, self.parameter1);
        h.set_u16(40, self.parameter2);
        h.set_u16(42, self.parameter3);
    }
}
