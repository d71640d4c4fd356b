//! SCSI Command, SCSI Response, Data-Out, Data-In and R2T (RFC 7143 §11.3–11.8).

use super::bhs::{Bhs, BhsMut};
use super::DecodeError;
use crate::serial::SerialNumber;
use crate::types::{Itt, LunField, Ttt};
use bytes::Bytes;

/// Task attribute of a SCSI command (RFC 7143 §11.3.1, ATTR field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAttr {
    /// 0: untagged.
    Untagged,
    /// 1: simple.
    Simple,
    /// 2: ordered.
    Ordered,
    /// 3: head of queue.
    HeadOfQueue,
    /// 4: ACA.
    Aca,
    /// 5–7: reserved values, kept so they round-trip.
    Reserved(u8),
}

impl TaskAttr {
    fn from_bits(b: u8) -> Self {
        match b & 0x07 {
            0 => TaskAttr::Untagged,
            1 => TaskAttr::Simple,
            2 => TaskAttr::Ordered,
            3 => TaskAttr::HeadOfQueue,
            4 => TaskAttr::Aca,
            r => TaskAttr::Reserved(r),
        }
    }
    fn bits(self) -> u8 {
        match self {
            TaskAttr::Untagged => 0,
            TaskAttr::Simple => 1,
            TaskAttr::Ordered => 2,
            TaskAttr::HeadOfQueue => 3,
            TaskAttr::Aca => 4,
            TaskAttr::Reserved(r) => r & 0x07,
        }
    }
}

/// SCSI Command (opcode 0x01, RFC 7143 §11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiCommand {
    /// Immediate delivery.
    pub immediate: bool,
    /// F bit: no unsolicited Data-Out follows.
    pub final_bit: bool,
    /// R bit: data flows to the initiator.
    pub read: bool,
    /// W bit: data flows to the target.
    pub write: bool,
    /// Task attribute.
    pub attr: TaskAttr,
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag.
    pub itt: Itt,
    /// Expected Data Transfer Length.
    pub expected_data_transfer_length: u32,
    /// CmdSN.
    pub cmd_sn: SerialNumber,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
    /// The CDB: the 16 header bytes plus any extended-CDB AHS bytes.
    pub cdb: Bytes,
    /// Immediate data.
    pub data: Bytes,
}

impl ScsiCommand {
    pub(super) fn decode(h: Bhs<'_>, ahs: &[u8], data: Bytes) -> Result<Self, DecodeError> {
        let f = h.flags();
        let mut cdb = h.0[32..48].to_vec();
        // AHS: type 1 (extended CDB) carries CDB bytes beyond 16 (RFC 7143 §11.2.2.3).
        let mut rest = ahs;
        while rest.len() >= 4 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let ty = rest[2];
            let total = (3 + len).div_ceil(4) * 4;
            if total > rest.len() || len == 0 {
                return Err(DecodeError::BadAhs);
            }
            if ty == 1 {
                cdb.extend_from_slice(&rest[4..3 + len]);
            }
            rest = &rest[total..];
        }
        Ok(ScsiCommand {
            immediate: h.immediate(),
            final_bit: f & 0x80 != 0,
            read: f & 0x40 != 0,
            write: f & 0x20 != 0,
            attr: TaskAttr::from_bits(f),
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            expected_data_transfer_length: h.u32(20),
            cmd_sn: SerialNumber(h.u32(24)),
            exp_stat_sn: SerialNumber(h.u32(28)),
            cdb: Bytes::from(cdb),
            data,
        })
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) -> Vec<u8> {
        h.set_opcode(0x01, self.immediate);
        let mut f = self.attr.bits();
        if self.final_bit {
            f |= 0x80;
        }
        if self.read {
            f |= 0x40;
        }
        if self.write {
            f |= 0x20;
        }
        h.set_u8(1, f);
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.expected_data_transfer_length);
        h.set_u32(24, self.cmd_sn.0);
        h.set_u32(28, self.exp_stat_sn.0);
        let n = self.cdb.len().min(16);
        h.0[32..32 + n].copy_from_slice(&self.cdb[..n]);
        let mut ahs = Vec::new();
        if self.cdb.len() > 16 {
            let ext = &self.cdb[16..];
            let len = ext.len() + 1;
            ahs.extend_from_slice(&(len as u16).to_be_bytes());
            ahs.push(1);
            ahs.push(0);
            ahs.extend_from_slice(ext);
            while ahs.len() % 4 != 0 {
                ahs.push(0);
            }
        }
        ahs
    }
}

/// SCSI Response (opcode 0x21, RFC 7143 §11.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResponse {
    /// o bit: bidirectional read residual overflow.
    pub bidi_overflow: bool,
    /// u bit: bidirectional read residual underflow.
    pub bidi_underflow: bool,
    /// O bit: residual overflow.
    pub overflow: bool,
    /// U bit: residual underflow.
    pub underflow: bool,
    /// iSCSI response code (0 = command completed at target).
    pub response: u8,
    /// SCSI status byte.
    pub status: u8,
    /// Initiator task tag.
    pub itt: Itt,
    /// SNACK tag.
    pub snack_tag: u32,
    /// StatSN.
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// ExpDataSN (number of Data-In PDUs sent for the command).
    pub exp_data_sn: u32,
    /// Bidirectional read residual count.
    pub bidi_residual_count: u32,
    /// Residual count.
    pub residual_count: u32,
    /// Data segment: SenseLength (2 bytes) + sense data, or empty.
    pub data: Bytes,
}

impl ScsiResponse {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        let f = h.flags();
        ScsiResponse {
            bidi_overflow: f & 0x10 != 0,
            bidi_underflow: f & 0x08 != 0,
            overflow: f & 0x04 != 0,
            underflow: f & 0x02 != 0,
            response: h.u8(2),
            status: h.u8(3),
            itt: Itt(h.u32(16)),
            snack_tag: h.u32(20),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            exp_data_sn: h.u32(36),
            bidi_residual_count: h.u32(40),
            residual_count: h.u32(44),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x21, false);
        let mut f = 0x80;
        for (bit, on) in [
            (0x10, self.bidi_overflow),
            (0x08, self.bidi_underflow),
            (0x04, self.overflow),
            (0x02, self.underflow),
        ] {
            if on {
                f |= bit;
            }
        }
        h.set_u8(1, f);
        h.set_u8(2, self.response);
        h.set_u8(3, self.status);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.snack_tag);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
        h.set_u32(36, self.exp_data_sn);
        h.set_u32(40, self.bidi_residual_count);
        h.set_u32(44, self.residual_count);
    }
}

/// SCSI Data-Out (opcode 0x05, RFC 7143 §11.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOut {
    /// F bit: last PDU of the sequence.
    pub final_bit: bool,
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag (reserved for unsolicited data).
    pub ttt: Ttt,
    /// ExpStatSN.
    pub exp_stat_sn: SerialNumber,
    /// DataSN within the sequence.
    pub data_sn: u32,
    /// Offset of this data in the command's buffer.
    pub buffer_offset: u32,
    /// The data.
    pub data: Bytes,
}

impl DataOut {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        DataOut {
            final_bit: h.flags() & 0x80 != 0,
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            ttt: Ttt(h.u32(20)),
            exp_stat_sn: SerialNumber(h.u32(28)),
            data_sn: h.u32(36),
            buffer_offset: h.u32(40),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x05, false);
        h.set_u8(1, if self.final_bit { 0x80 } else { 0 });
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(28, self.exp_stat_sn.0);
        h.set_u32(36, self.data_sn);
        h.set_u32(40, self.buffer_offset);
    }
}

/// SCSI Data-In (opcode 0x25, RFC 7143 §11.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataIn {
    /// F bit: last PDU of the sequence.
    pub final_bit: bool,
    /// A bit: acknowledge requested (ERL > 0).
    pub ack: bool,
    /// O bit (valid with S).
    pub overflow: bool,
    /// U bit (valid with S).
    pub underflow: bool,
    /// S bit: status is in this PDU.
    pub status_present: bool,
    /// SCSI status (valid with S).
    pub status: u8,
    /// Logical unit (valid with A).
    pub lun: LunField,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag.
    pub ttt: Ttt,
    /// StatSN (valid with S).
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// DataSN.
    pub data_sn: u32,
    /// Offset of this data in the command's buffer.
    pub buffer_offset: u32,
    /// Residual count (valid with S).
    pub residual_count: u32,
    /// The data.
    pub data: Bytes,
}

impl DataIn {
    pub(super) fn decode(h: Bhs<'_>, data: Bytes) -> Self {
        let f = h.flags();
        DataIn {
            final_bit: f & 0x80 != 0,
            ack: f & 0x40 != 0,
            overflow: f & 0x04 != 0,
            underflow: f & 0x02 != 0,
            status_present: f & 0x01 != 0,
            status: h.u8(3),
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            ttt: Ttt(h.u32(20)),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            data_sn: h.u32(36),
            buffer_offset: h.u32(40),
            residual_count: h.u32(44),
            data,
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x25, false);
        let mut f = 0;
        for (bit, on) in [
            (0x80, self.final_bit),
            (0x40, self.ack),
            (0x04, self.overflow),
            (0x02, self.underflow),
            (0x01, self.status_present),
        ] {
            if on {
                f |= bit;
            }
        }
        h.set_u8(1, f);
        h.set_u8(3, self.status);
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
        h.set_u32(36, self.data_sn);
        h.set_u32(40, self.buffer_offset);
        h.set_u32(44, self.residual_count);
    }
}

/// Ready To Transfer (opcode 0x31, RFC 7143 §11.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2t {
    /// Logical unit.
    pub lun: LunField,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag the Data-Out must carry.
    pub ttt: Ttt,
    /// StatSN (next, not advanced).
    pub stat_sn: SerialNumber,
    /// ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// R2TSN.
    pub r2t_sn: u32,
    /// Offset of the requested data.
    pub buffer_offset: u32,
    /// Bytes requested.
    pub desired_data_transfer_length: u32,
}

impl R2t {
    pub(super) fn decode(h: Bhs<'_>) -> Self {
        R2t {
            lun: LunField(h.bytes8(8)),
            itt: Itt(h.u32(16)),
            ttt: Ttt(h.u32(20)),
            stat_sn: SerialNumber(h.u32(24)),
            exp_cmd_sn: SerialNumber(h.u32(28)),
            max_cmd_sn: SerialNumber(h.u32(32)),
            r2t_sn: h.u32(36),
            buffer_offset: h.u32(40),
            desired_data_transfer_length: h.u32(44),
        }
    }

    pub(super) fn encode(&self, h: &mut BhsMut<'_>) {
        h.set_opcode(0x31, false);
        h.set_u8(1, 0x80);
        h.set_bytes8(8, self.lun.0);
        h.set_u32(16, self.itt.0);
        h.set_u32(20, self.ttt.0);
        h.set_u32(24, self.stat_sn.0);
        h.set_u32(28, self.exp_cmd_sn.0);
        h.set_u32(32, self.max_cmd_sn.0);
        h.set_u32(36, self.r2t_sn);
        h.set_u32(40, self.buffer_offset);
        h.set_u32(44, self.desired_data_transfer_length);
    }
}
