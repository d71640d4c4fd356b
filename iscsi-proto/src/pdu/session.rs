//! Login, Text and Logout requests and responses (RFC 7143 §11.10–11.15).

use super::bhs::{Bhs, BhsMut};
use crate::serial::SerialNumber;
use crate::types::{Isid, Itt, LunField, Tsih, Ttt};
use bytes::Bytes;

/// A login stage (CSG/NSG, RFC 7143 §11.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// 0: security negotiation.
    Security,
    /// 1: login operational negotiation.
    Operational,
    /// 3: full feature phase.
    FullFeature,
    /// 2: reserved; kept so it can be refused.
    Reserved,
}

impl Stage {
    fn from_bits(b: u8) -> Self {
        match b & 0x03 {
            0 => Stage::Security,
            1 => Stage::Operational,
            3 => Stage::FullFeature,
            _ => Stage::Reserved,
        }
    }
    /// The 2-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            Stage::Security => 0,
            Stage::Operational => 1,
            Stage::Reserved => 2,
            Stage::FullFeature => 3,
        }
    }
}

/// Login Request (opcode 0x03, RFC 7143 §11.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// T bit: the initiator is ready to move to `nsg`.
    pub transit: bool,
    /// C bit: the text continues in the next PDU.
    pub continue_bit: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (valid with T).
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-min.
    pub version_min: u8,
    /// ISID.
    pub isid: Isid,
    /// TSIH (0 for a new session).
    pub tsih: Tsih,
    /// Initiator task tag.
    pub itt: Itt,
    /// Connection ID.
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: SerialNumber,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
    /// Text key=value pairs (possibly a fragment when `continue_bit`).
    pub data: Bytes,
}

fn isid_at(h: &Bhs<'_>) -> Isid {
    let mut b = [0u8; 6];
    b.copy_from_slice(&h.0[8..14]);
    Isid(b)
}

fn stage_flags(transit: bool, cont: bool, csg: Stage, nsg: Stage) -> u8 {
    let mut f = (csg.bits() << 2) | nsg.bits();
    if transit {
        f |= 0x80;
    }
    if cont {
        f |= 0x40;
    }
    f
}

impl LoginRequest {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        let f = h.flags();
        LoginRequest {
            transit: f & 0x80 != 0,
            continue_bit: f & 0x40 != 0,
            csg: Stage::from_bits(f >> 2),
            nsg: Stage::from_bits(f),
            version_max: h.u8(2),
            version_min: h.u8(3),
            isid: isid_at(&h),
            tsih: Tsih(h.u16(14)),
            itt: Itt(h.u32(16)),
            cid: h.u16(20),
            cmd_sn: SerialNumber(h.u32(24)),
            exp_stat_sn: SerialNumber(h.u32(28)),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x03, true);
        h.set_u8(
            1,
            stage_flags(self.transit, self.continue_bit, self.csg, self.nsg),
        );
        h.set_u8(2, self.version_max);
        h.set_u8(3, self.version_min);
        h.0[8..14].copy_from_slice(&self.isid.0);
        h.set_u16(14, self.tsih.0);
        h.set_u32(16, self.itt.0);
        h.set_u16(20, self.cid);
        h.set_u32(24, self.cmd_sn.0);
        h.set_u32(28, self.exp_stat_sn.0);
    }
}

/// Login Response (opcode 0x23, RFC 7143 §11.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    /// T bit.
    pub transit: bool,
    /// C bit.
    pub continue_bit: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage.
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-active.
    pub version_active: u8,
    /// ISID echoed.
    pub isid: Isid,
    /// TSIH (set on the final response of a leading login).
    pub tsih: Tsih,
    /// Initiator task tag echoed.
    pub itt: Itt,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// Status-Class.
    pub status_class: u8,
    /// Status-Detail.
    pub status_detail: u8,
    /// Text key=value pairs.
    pub data: Bytes,
}

impl LoginResponse {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        let f = h.flags();
        LoginResponse {
            transit: f & 0x80 != 0,
            continue_bit: f & 0x40 != 0,
            csg: Stage::from_bits(f >> 2),
            nsg: Stage::from_bits(f),
            version_max: h.u8(2),
            version_active: h.u8(3),
            isid: isid_at(&h),
            tsih: Tsih(h.u16(14)),
            itt: Itt(h.u32(16)),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            status_class: h.u8(36),
            status_detail: h.u8(37),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x23, false);
        h.set_u8(
            1,
            stage_flags(self.transit, self.continue_bit, self.csg, self.nsg),
        );
        h.set_u8(2, self.version_max);
        h.set_u8(3, self.version_active);
        h.0[8..14].copy_from_slice(&self.isid.0);
        h.set_u16(14, self.tsih.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
        h.set_u8(36, self.status_class);
        h.set_u8(37, self.status_detail);
    }
}

/// Text Request (opcode 0x04, RFC 7143 §11.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// F bit.
    pub final_bit: bool,
    /// C bit.
    pub continue_bit: bool,
    /// Logical unit (unused by iSCSI text).
    pub lun: LunField,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag (continuing a long response) or reserved.
    pub ttt: Ttt,
    /// CmdSN.
    pub cmd_sn: SerialNumber,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
    /// Text key=value pairs.
    pub data: Bytes,
}

impl TextRequest {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        let f = h.flags();
        TextRequest {
            immediate: h.immediate(),
            final_bit: f & 0x80 != 0,
            continue_bit: f & 0x40 != 0,
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            ttt: Ttt(h.u32(20)),
            cmd_sn: SerialNumber(h.u32(24)),
            exp_stat_sn: SerialNumber(h.u32(28)),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x04, self.immediate);
        h.set_u8(
            1,
            stage_flags(
                self.final_bit,
                self.continue_bit,
                Stage::Security,
                Stage::Security,
            ),
        );
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(24, self.cmd_sn.0);
        h.set_u32(28, self.exp_stat_sn.0);
    }
}

/// Text Response (opcode 0x24, RFC 7143 §11.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextResponse {
    /// F bit.
    pub final_bit: bool,
    /// C bit.
    pub continue_bit: bool,
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag: reserved when final, else a tag to continue.
    pub ttt: Ttt,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// Text key=value pairs.
    pub data: Bytes,
}

impl TextResponse {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        let f = h.flags();
        TextResponse {
            final_bit: f & 0x80 != 0,
            continue_bit: f & 0x40 != 0,
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
        h.set_opcode(0x24, false);
        h.set_u8(
            1,
            stage_flags(
                self.final_bit,
                self.continue_bit,
                Stage::Security,
                Stage::Security,
            ),
        );
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
    }
}

/// Logout Request (opcode 0x06, RFC 7143 §11.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// Reason code: 0 close session, 1 close connection, 2 remove connection for recovery.
    pub reason: u8,
    /// Initiator task tag.
    pub itt: Itt,
    /// CID of the connection to close (reasons 1 and 2).
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: SerialNumber,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
}

impl LogoutRequest {
    pub(super) fn decode(h: Bhs<'_>) -> Self {
        LogoutRequest {
            immediate: h.immediate(),
            reason: h.flags() & 0x7f,
            itt: Itt(h.u32(16)),
            cid: h.u16(20),
            cmd_sn: SerialNumber(h.u32(24)),
            exp_stat_sn: SerialNumber(h.u32(28)),
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x06, self.immediate);
        h.set_u8(1, 0x80 | (self.reason & 0x7f));
        h.set_u32(16, self.itt.0);
        h.set_u16(20, self.cid);
        h.set_u32(24, self.cmd_sn.0);
        h.set_u32(28, self.exp_stat_sn.0);
    }
}

/// Logout Response (opcode 0x26, RFC 7143 §11.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    /// Response: 0 closed, 1 CID not found, 2 recovery not supported, 3 cleanup failed.
    pub response: u8,
    /// Initiator task tag.
    pub itt: Itt,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// Time2Wait.
    pub time2wait: u16,
    /// Time2Retain.
    pub time2retain: u16,
}

impl LogoutResponse {
    pub(super) fn decode(h: Bhs<'_>) -> Self {
        LogoutResponse {
            response: h.u8(2),
            itt: Itt(h.u32(16)),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            time2wait: h.u16(40),
            time2retain: h.u16(42),
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x26, false);
        h.set_u8(1, 0x80);
        h.set_u8(2, self.response);
        h.set_u32(16, self.itt.0);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
        h.set_u16(40, self.time2wait);
        h.set_u16(42, self.time2retain);
    }
}
