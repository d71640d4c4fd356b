//! The 48-byte Basic Header Segment (RFC 7143 §11.2.1): field accessors shared by every
//! PDU type. Typed PDUs read their fields through [`Bhs`] and write through [`BhsMut`];
//! no other code indexes raw header bytes.

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;

/// Read-only view of a BHS.
#[derive(Debug, Clone, Copy)]
pub struct Bhs<'a>(pub &'a [u8; BHS_LEN]);

impl Bhs<'_> {
    /// Byte at `i` (`i < 48`, a constant in every caller).
    pub fn u8(&self, i: usize) -> u8 {
        self.0[i]
    }
    /// Big-endian u16 at `i`.
    pub fn u16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.0[i], self.0[i + 1]])
    }
    /// Big-endian u32 at `i`.
    pub fn u32(&self, i: usize) -> u32 {
        u32::from_be_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]])
    }
    /// 8 bytes at `i`.
    pub fn bytes8(&self, i: usize) -> [u8; 8] {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[i..i + 8]);
        b
    }
    /// The opcode (low 6 bits of byte 0).
    pub fn opcode(&self) -> u8 {
        self.0[0] & 0x3f
    }
    /// The immediate delivery bit.
    pub fn immediate(&self) -> bool {
        self.0[0] & 0x40 != 0
    }
    /// Byte 1, the flags.
    pub fn flags(&self) -> u8 {
        self.0[1]
    }
    /// TotalAHSLength in bytes.
    pub fn total_ahs_len(&self) -> usize {
        usize::from(self.0[4]) * 4
    }
    /// DataSegmentLength in bytes (without padding).
    pub fn data_segment_len(&self) -> usize {
        (usize::from(self.0[5]) << 16) | (usize::from(self.0[6]) << 8) | usize::from(self.0[7])
    }
}

/// Writable BHS under construction.
#[derive(Debug)]
pub struct BhsMut<'a>(pub &'a mut [u8; BHS_LEN]);

impl BhsMut<'_> {
    /// Set byte 0: opcode and immediate bit.
    pub fn set_opcode(&mut self, opcode: u8, immediate: bool) {
        self.0[0] = (opcode & 0x3f) | if immediate { 0x40 } else { 0 };
    }
    /// Set a byte.
    pub fn set_u8(&mut self, i: usize, v: u8) {
        self.0[i] = v;
    }
    /// Set a big-endian u16.
    pub fn set_u16(&mut self, i: usize, v: u16) {
        self.0[i..i + 2].copy_from_slice(&v.to_be_bytes());
    }
    /// Set a big-endian u32.
    pub fn set_u32(&mut self, i: usize, v: u32) {
        self.0[i..i + 4].copy_from_slice(&v.to_be_bytes());
    }
    /// Set 8 bytes.
    pub fn set_bytes8(&mut self, i: usize, v: [u8; 8]) {
        self.0[i..i + 8].copy_from_slice(&v);
    }
    /// Set TotalAHSLength from a byte count (a multiple of 4).
    pub fn set_total_ahs_len(&mut self, bytes: usize) {
        self.0[4] = (bytes / 4) as u8;
    }
    /// Set DataSegmentLength (24 bits).
    pub fn set_data_segment_len(&mut self, len: usize) {
        self.0[5] = (len >> 16) as u8;
        self.0[6] = (len >> 8) as u8;
        self.0[7] = len as u8;
    }
}

/// Padding after a data segment of `len` bytes to the next 4-byte boundary.
pub fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}
