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
    /// 0xa
    CopyAborted = 0xa,
    /// 0xb
    AbortedCommand = 0xb,
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
        }
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
        b[2] = self.key as u8;
        // ADDITIONAL SENSE LENGTH: bytes 8..18.
        b[7] = 10;
        b[12] = self.asc;
        b[13] = self.ascq;
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
        b
    }

    /// The sense bytes, fixed or descriptor format, with a PROGRESS INDICATION of
    /// `progress` 65536ths in the sense key specific field (SPC-4 4.5.2.4.4): SKSV
    /// and bytes 16-17 of fixed format, or a sense key specific descriptor (02h).
    pub fn with_progress(&self, descriptor: bool, progress: u16) -> Vec<u8> {
        let [hi, lo] = progress.to_be_bytes();
        if descriptor {
            let mut b = self.to_descriptor();
            b.extend_from_slice(&[0x02, 0x06, 0x80, hi, lo, 0, 0, 0]);
            b[7] += 8;
            b
        } else {
            let mut b = self.to_fixed();
            b[15..18].copy_from_slice(&[0x80, hi, lo]);
            b.to_vec()
        }
    }
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
