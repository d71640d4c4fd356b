//! Sense data.

use crate::asc::{self, AscAscq};

/// Sense key (SPC-4 table 27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SenseKey {
    /// 0x0
    NoSense = 0x0,
    /// 0x1
    RecoveredError = 0x1,
    /// 0x2
    NotReady = 0x2,
    /// 0x3
    MediumError = 0x3,
    /// 0x4
    HardwareError = 0x4,
    /// 0x5
    IllegalRequest = 0x5,
    /// 0x6
    UnitAttention = 0x6,
    /// 0x7
    DataProtect = 0x7,
    /// 0x8: a read met blank medium (on a tape: end of data).
    BlankCheck = 0x8,
    /// 0xa
    CopyAborted = 0xa,
    /// 0xb
    AbortedCommand = 0xb,
    /// 0xd: a write reached the end of the medium with data left to write.
    VolumeOverflow = 0xd,
    /// 0xe
    Miscompare = 0xe,
}

/// One sense condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// Sense key.
    pub key: SenseKey,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// INFORMATION field, when valid.
    pub info: Option<u64>,
    /// Which field was invalid (ILLEGAL REQUEST), reported in the sense key specific
    /// bytes so that an initiator or its operator can tell what it got wrong.
    pub field: Option<FieldPointer>,
    /// The stream commands bits FILEMARK (80h), EOM (40h) and ILI (20h) of a
    /// sequential-access device (SSC-3 4.2.x); 0 for every other device.
    pub stream: u8,
}

/// FILEMARK: a read or space met a filemark.
pub const STREAM_FILEMARK: u8 = 0x80;
/// EOM: end-of-medium or beginning-of-medium reached (or early warning).
pub const STREAM_EOM: u8 = 0x40;
/// ILI: the block read was not as long as asked.
pub const STREAM_ILI: u8 = 0x20;

/// A FIELD POINTER (SPC-4 4.5.2.4.2): the byte, and optionally the bit, of the first
/// invalid field, in the CDB or in the parameter list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// C/D: the field is in the CDB (else in the parameter data).
    pub in_cdb: bool,
    /// Byte offset of the field.
    pub byte: u16,
    /// Bit of that byte where the field's most significant bit is (7 = msb).
    pub bit: Option<u8>,
}

impl FieldPointer {
    /// A field of the CDB.
    pub const fn cdb(byte: u16, bit: u8) -> Self {
        FieldPointer {
            in_cdb: true,
            byte,
            bit: Some(bit),
        }
    }

    /// A field of the parameter list (no bit pointer).
    pub const fn param(byte: u16) -> Self {
        FieldPointer {
            in_cdb: false,
            byte,
            bit: None,
        }
    }

    /// A bit of the parameter list.
    pub const fn param_bit(byte: u16, bit: u8) -> Self {
        FieldPointer {
            in_cdb: false,
            byte,
            bit: Some(bit),
        }
    }

    /// The three sense key specific bytes: SKSV, C/D, BPV and BIT POINTER, then
    /// FIELD POINTER.
    fn bytes(&self) -> [u8; 3] {
        let mut b0 = 0x80;
        if self.in_cdb {
            b0 |= 0x40;
        }
        if let Some(bit) = self.bit {
            b0 |= 0x08 | (bit & 7);
        }
        let [hi, lo] = self.byte.to_be_bytes();
        [b0, hi, lo]
    }
}

/// Length of fixed-format sense data: 8 header bytes + ADDITIONAL SENSE LENGTH 10.
pub const FIXED_SENSE_LEN: usize = 18;

impl Sense {
    /// A sense condition from a key and a named additional sense code, without INFORMATION.
    pub const fn new(key: SenseKey, code: AscAscq) -> Self {
        Sense {
            key,
            asc: code.asc,
            ascq: code.ascq,
            info: None,
            field: None,
            stream: 0,
        }
    }

    /// The same condition pointing at the invalid field.
    pub const fn at(self, field: FieldPointer) -> Self {
        Sense {
            field: Some(field),
            ..self
        }
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB (24h/00h) at `byte`, `bit`.
    pub const fn invalid_cdb_field(byte: u16, bit: u8) -> Self {
        Sense::invalid_field_in_cdb().at(FieldPointer::cdb(byte, bit))
    }

    /// ILLEGAL REQUEST with the given additional sense code.
    pub const fn illegal_request(code: AscAscq) -> Self {
        Sense::new(SenseKey::IllegalRequest, code)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB (24h/00h).
    pub const fn invalid_field_in_cdb() -> Self {
        Sense::illegal_request(asc::INVALID_FIELD_IN_CDB)
    }

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h).
    pub const fn invalid_opcode() -> Self {
        Sense::illegal_request(asc::INVALID_COMMAND_OPERATION_CODE)
    }

    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h).
    pub const fn lba_out_of_range() -> Self {
        Sense::illegal_request(asc::LBA_OUT_OF_RANGE)
    }

    /// DATA PROTECT, WRITE PROTECTED (27h/00h).
    pub const fn write_protected() -> Self {
        Sense::new(SenseKey::DataProtect, asc::WRITE_PROTECTED)
    }

    /// Fixed-format sense data (SPC-4 4.5.3), 18 bytes.
    ///
    /// The INFORMATION field is 4 bytes in this format; an `info` that does not fit is
    /// left out and VALID stays 0 (SPC-4 4.5.3: descriptor format is needed for it).
    pub fn to_fixed(&self) -> [u8; 18] {
        let mut b = [0u8; FIXED_SENSE_LEN];
        // SPC-4 table 48: byte 0 VALID | RESPONSE CODE (70h current errors).
        b[0] = 0x70;
        if let Some(info) = self.info.and_then(|i| u32::try_from(i).ok()) {
            b[0] |= 0x80;
            b[3..7].copy_from_slice(&info.to_be_bytes());
        }
        b[2] = self.key as u8 | (self.stream & 0xe0);
        // ADDITIONAL SENSE LENGTH: bytes 8..18.
        b[7] = 10;
        b[12] = self.asc;
        b[13] = self.ascq;
        if let Some(f) = self.field {
            b[15..18].copy_from_slice(&f.bytes());
        }
        b
    }

    /// Descriptor-format sense data (SPC-4 4.5.2): response code 72h, followed by an
    /// information descriptor (SPC-4 4.5.2.2) when `info` is set.
    pub fn to_descriptor(&self) -> Vec<u8> {
        let mut b = vec![0x72, self.key as u8, self.asc, self.ascq, 0, 0, 0, 0];
        if let Some(info) = self.info {
            // Descriptor type 00h, additional length 0Ah, VALID bit, reserved, 8-byte INFORMATION.
            b.extend_from_slice(&[0x00, 0x0a, 0x80, 0x00]);
            b.extend_from_slice(&info.to_be_bytes());
            b[7] = 12;
        }
        if self.stream != 0 {
            // Stream commands descriptor (SSC-3 4.2.x, type 04h, length 02h).
            b.extend_from_slice(&[0x04, 0x02, 0, self.stream & 0xe0]);
            b[7] += 4;
        }
        if let Some(f) = self.field {
            push_sense_key_specific(&mut b, f.bytes());
        }
        b
    }

    /// The sense bytes, fixed or descriptor format, with a PROGRESS INDICATION of
    /// `progress` 65536ths in the sense key specific field (SPC-4 4.5.2.4.4): SKSV
    /// and bytes 16-17 of fixed format, or a sense key specific descriptor (02h).
    pub fn with_progress(&self, descriptor: bool, progress: u16) -> Vec<u8> {
        let [hi, lo] = progress.to_be_bytes();
        if descriptor {
            let mut b = Sense {
                field: None,
                ..*self
            }
            .to_descriptor();
            push_sense_key_specific(&mut b, [0x80, hi, lo]);
            b
        } else {
            let mut b = self.to_fixed();
            b[15..18].copy_from_slice(&[0x80, hi, lo]);
            b.to_vec()
        }
    }
}

/// Append a sense key specific sense data descriptor (SPC-4 4.5.2.5: type 02h,
/// additional length 06h, two reserved bytes, the three bytes, one reserved).
fn push_sense_key_specific(b: &mut Vec<u8>, sks: [u8; 3]) {
    b.extend_from_slice(&[0x02, 0x06, 0, 0, sks[0], sks[1], sks[2], 0]);
    b[7] += 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_without_info() {
        // SPC-4 table 48: 70h, key at byte 2, additional length 10, ASC/ASCQ at 12/13.
        let s = Sense::invalid_field_in_cdb();
        assert_eq!(
            s.to_fixed(),
            [0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0]
        );
    }

    #[test]
    fn field_pointer_in_both_formats() {
        // SPC-4 table 53: SKSV, C/D=1, BPV=1, bit 4; field pointer byte 1.
        let s = Sense::invalid_cdb_field(1, 4);
        assert_eq!(&s.to_fixed()[15..18], &[0xcc, 0x00, 0x01]);
        assert_eq!(
            s.to_descriptor(),
            vec![0x72, 0x05, 0x24, 0x00, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0xcc, 0, 1, 0]
        );
        // Parameter list, no bit pointer: C/D=0, BPV=0.
        let p = Sense::illegal_request(asc::INVALID_FIELD_IN_PARAMETER_LIST)
            .at(FieldPointer::param(300));
        assert_eq!(&p.to_fixed()[15..18], &[0x80, 0x01, 0x2c]);
        // Progress replaces a field pointer, in the descriptor's byte 4.
        let d = s.with_progress(true, 0x1234);
        assert_eq!(&d[8..], &[0x02, 0x06, 0, 0, 0x80, 0x12, 0x34, 0]);
    }

    #[test]
    fn fixed_with_info_sets_valid() {
        let s = Sense {
            info: Some(0x0102_0304),
            ..Sense::lba_out_of_range()
        };
        assert_eq!(
            s.to_fixed(),
            [0xf0, 0, 0x05, 1, 2, 3, 4, 10, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0]
        );
    }

    #[test]
    fn fixed_with_wide_info_is_not_valid() {
        let s = Sense {
            info: Some(1 << 40),
            ..Sense::write_protected()
        };
        let b = s.to_fixed();
        assert_eq!(b[0], 0x70);
        assert_eq!(&b[3..7], &[0, 0, 0, 0]);
        assert_eq!((b[2], b[12], b[13]), (0x07, 0x27, 0x00));
    }

    #[test]
    fn descriptor_format() {
        // SPC-4 table 45 (header) and table 47 (information descriptor).
        assert_eq!(
            Sense::invalid_opcode().to_descriptor(),
            vec![0x72, 0x05, 0x20, 0x00, 0, 0, 0, 0]
        );
        let s = Sense {
            info: Some(7),
            ..Sense::lba_out_of_range()
        };
        assert_eq!(
            s.to_descriptor(),
            vec![0x72, 5, 0x21, 0, 0, 0, 0, 12, 0, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        );
    }
}
