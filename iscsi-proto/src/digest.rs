//! CRC32C header and data digests (RFC 7143 §12.1, Castagnoli polynomial).
//!
//! The `crc32c` crate uses the SSE4.2 / ARMv8 CRC instruction when the CPU has it.
//! On the wire the digest is sent least-significant byte first (RFC 7143 §13.1 and the
//! examples in Appendix B of RFC 3720), which is what `put_u32_le` does.

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Continue a CRC32C over more bytes.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 Appendix B.4: 32 bytes of zeros → aa 36 91 8a (as sent on the wire,
        // i.e. little-endian of 0x8a9136aa).
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        // 32 bytes of 0xff → 43 ab a8 62.
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        assert_eq!(crc32c_append(crc32c(&inc[..10]), &inc[10..]), 0x46dd_794e);
    }
}
