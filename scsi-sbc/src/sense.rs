//! Sense data.

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

impl Sense {
    /// Fixed-format sense data (SPC-4 4.5.3), 18 bytes.
    pub fn to_fixed(&self) -> [u8; 18] {
        todo!()
    }
}
