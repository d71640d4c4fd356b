//! Identifier newtypes that cross module boundaries.

use std::fmt;

/// Initiator Task Tag. `0xffffffff` is reserved ([`Itt::RESERVED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Itt(pub u32);

impl Itt {
    /// The reserved value: "no task" (unsolicited NOP-In, Reject, Async).
    pub const RESERVED: Itt = Itt(0xffff_ffff);
}

/// Target Transfer Tag. `0xffffffff` is reserved ([`Ttt::RESERVED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Ttt(pub u32);

impl Ttt {
    /// The reserved value: unsolicited data, or "no answer wanted".
    pub const RESERVED: Ttt = Ttt(0xffff_ffff);
}

/// Initiator Session ID, 6 bytes (RFC 7143 §11.12.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Isid(pub [u8; 6]);

impl fmt::Display for Isid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Target Session Identifying Handle; 0 in a login request means "new session".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tsih(pub u16);

/// An 8-byte SAM logical unit number field as carried in a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LunField(pub [u8; 8]);

impl LunField {
    /// Encode a LUN number the way tgt and Linux do: peripheral addressing (method 00b)
    /// below 256, flat space addressing (method 01b) up to 16383.
    pub fn from_lun(lun: u64) -> Self {
        let mut b = [0u8; 8];
        if lun < 256 {
            b[1] = lun as u8;
        } else {
            let l = (lun & 0x3fff) as u16;
            b[0] = 0x40 | (l >> 8) as u8;
            b[1] = (l & 0xff) as u8;
        }
        LunField(b)
    }

    /// Decode the first level of the LUN: peripheral or flat space addressing.
    pub fn to_lun(self) -> u64 {
        let b = self.0;
        match b[0] >> 6 {
            0b00 => u64::from(b[1]),
            0b01 => (u64::from(b[0] & 0x3f) << 8) | u64::from(b[1]),
            // Other methods (logical unit, extended) are not used by this target;
            // map them to a number no LUN has so the command answers LUN NOT SUPPORTED.
            _ => u64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_encoding() {
        assert_eq!(LunField::from_lun(1).0, [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(LunField::from_lun(300).0, [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        for l in [0u64, 1, 255, 256, 300, 16383] {
            assert_eq!(LunField::from_lun(l).to_lun(), l);
        }
        assert_eq!(LunField([0xc0, 0, 0, 0, 0, 0, 0, 0]).to_lun(), u64::MAX);
    }
}
