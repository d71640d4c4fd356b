//! CDB builders for the commands scenarios send (SBC-3 / SPC-4 layouts).

/// READ(10) (SBC-3 §5.11): `blocks` blocks from `lba`.
pub fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    rw10(0x28, lba, blocks)
}

/// WRITE(10) (SBC-3 §5.32): `blocks` blocks at `lba`.
pub fn write10(lba: u32, blocks: u16) -> Vec<u8> {
    rw10(0x2a, lba, blocks)
}

fn rw10(op: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// TEST UNIT READY (SPC-4 §6.47).
pub fn test_unit_ready() -> Vec<u8> {
    vec![0u8; 6]
}

/// Standard INQUIRY (SPC-4 §6.6) with `alloc` bytes of allocation length.
pub fn inquiry(alloc: u16) -> Vec<u8> {
    let mut c = vec![0x12, 0, 0, 0, 0, 0];
    c[3..5].copy_from_slice(&alloc.to_be_bytes());
    c
}
