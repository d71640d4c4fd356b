//! Builders for the CDBs a load generator or test needs, and READ CAPACITY parsing
//! (SBC-3, SPC-4 layouts).

/// READ(16) (SBC-3 §5.16): `blocks` blocks from `lba`.
pub fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x88, lba, blocks)
}

/// WRITE(16) (SBC-3 §5.41): `blocks` blocks at `lba`.
pub fn write16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x8a, lba, blocks)
}

fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// READ(10) (SBC-3 §5.11).
pub fn read10(lba: u32, blocks: u16) -> [u8; 10] {
    rw10(0x28, lba, blocks)
}

/// WRITE(10) (SBC-3 §5.32).
pub fn write10(lba: u32, blocks: u16) -> [u8; 10] {
    rw10(0x2a, lba, blocks)
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// TEST UNIT READY (SPC-4 §6.47).
pub fn test_unit_ready() -> [u8; 6] {
    [0u8; 6]
}

/// Bytes READ CAPACITY(16) returns.
pub const READ_CAPACITY16_LEN: u32 = 32;

/// READ CAPACITY(16) (SERVICE ACTION IN(16), SBC-3 §5.16).
pub fn read_capacity16() -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x10;
    c[10..14].copy_from_slice(&READ_CAPACITY16_LEN.to_be_bytes());
    c
}

/// What READ CAPACITY(16) says about a logical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks (last LBA + 1).
    pub blocks: u64,
    /// Logical block length in bytes.
    pub block_len: u32,
}

/// Parse READ CAPACITY(16) parameter data; `None` when it is too short.
pub fn parse_read_capacity16(d: &[u8]) -> Option<Capacity> {
    let last: [u8; 8] = d.get(0..8)?.try_into().ok()?;
    let len: [u8; 4] = d.get(8..12)?.try_into().ok()?;
    Some(Capacity {
        blocks: u64::from_be_bytes(last).wrapping_add(1),
        block_len: u32::from_be_bytes(len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let c = read16(0x0102_0304_0506_0708, 9);
        assert_eq!(c[0], 0x88);
        assert_eq!(&c[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&c[10..14], &[0, 0, 0, 9]);
        assert_eq!(write16(0, 1)[0], 0x8a);
        assert_eq!(read10(5, 2), [0x28, 0, 0, 0, 0, 5, 0, 0, 2, 0]);
        let mut d = [0u8; 32];
        d[7] = 99;
        d[10] = 2;
        assert_eq!(
            parse_read_capacity16(&d),
            Some(Capacity {
                blocks: 100,
                block_len: 512
            })
        );
        assert_eq!(parse_read_capacity16(&d[..4]), None);
    }
}
