//! Serial number arithmetic (RFC 1982) for CmdSN, StatSN, DataSN and R2TSN.
//!
//! Sequence numbers wrap at 2^32; comparing them with plain `<` is wrong near the wrap,
//! so every comparison goes through [`SerialNumber`].

use std::cmp::Ordering;
use std::fmt;

/// A 32-bit sequence number compared as RFC 1982 (SERIAL_BITS = 32) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SerialNumber(pub u32);

impl SerialNumber {
    /// The raw value.
    pub fn get(self) -> u32 {
        self.0
    }

    /// `self + n`, wrapping.
    #[must_use]
    pub fn plus(self, n: u32) -> Self {
        SerialNumber(self.0.wrapping_add(n))
    }

    /// `self + 1`, wrapping.
    #[must_use]
    pub fn next(self) -> Self {
        self.plus(1)
    }

    /// Serial comparison. `None` when the two are exactly 2^31 apart (undefined by RFC 1982).
    pub fn serial_cmp(self, other: Self) -> Option<Ordering> {
        let diff = other.0.wrapping_sub(self.0);
        match diff {
            0 => Some(Ordering::Equal),
            0x8000_0000 => None,
            d if d < 0x8000_0000 => Some(Ordering::Less),
            _ => Some(Ordering::Greater),
        }
    }

    /// `self < other` in serial arithmetic.
    pub fn lt(self, other: Self) -> bool {
        self.serial_cmp(other) == Some(Ordering::Less)
    }

    /// `self <= other` in serial arithmetic.
    pub fn le(self, other: Self) -> bool {
        matches!(
            self.serial_cmp(other),
            Some(Ordering::Less | Ordering::Equal)
        )
    }

    /// Whether `self` lies in the closed window `[lo, hi]`.
    pub fn in_window(self, lo: Self, hi: Self) -> bool {
        lo.le(self) && self.le(hi)
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        let a = SerialNumber(u32::MAX);
        let b = a.next();
        assert_eq!(b, SerialNumber(0));
        assert!(a.lt(b));
        assert!(!b.lt(a));
        assert!(b.in_window(a, SerialNumber(5)));
        assert!(!SerialNumber(6).in_window(a, SerialNumber(5)));
        assert_eq!(SerialNumber(0).serial_cmp(SerialNumber(0x8000_0000)), None);
    }
}
