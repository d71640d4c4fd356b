//! READ CAPACITY (10) and (16) parameter data (SBC-3 5.15, 5.16).

use crate::lu::LuConfig;

/// The last logical block address; 0 for an empty LU.
fn last_lba(lu: &LuConfig) -> u64 {
    lu.num_blocks.saturating_sub(1)
}

/// READ CAPACITY (10) data (SBC-3 table 64): RETURNED LOGICAL BLOCK ADDRESS, clamped
/// to FFFFFFFFh when the last LBA does not fit (the initiator then uses (16)), and
/// LOGICAL BLOCK LENGTH IN BYTES.
pub(crate) fn read_capacity10(lu: &LuConfig) -> Vec<u8> {
    let lba = u32::try_from(last_lba(lu)).unwrap_or(u32::MAX);
    let mut d = Vec::with_capacity(8);
    d.extend_from_slice(&lba.to_be_bytes());
    d.extend_from_slice(&lu.block_size.to_be_bytes());
    d
}

/// READ CAPACITY (16) data (SBC-3 table 66), 32 bytes: RETURNED LOGICAL BLOCK ADDRESS,
/// LOGICAL BLOCK LENGTH, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (byte 13),
/// LBPME/LBPRZ and LOWEST ALIGNED LBA (bytes 14-15); no protection information.
pub(crate) fn read_capacity16(lu: &LuConfig) -> Vec<u8> {
    let mut d = vec![0u8; 32];
    d[0..8].copy_from_slice(&last_lba(lu).to_be_bytes());
    d[8..12].copy_from_slice(&lu.block_size.to_be_bytes());
    d[13] = lu.geometry.lbppbe & 0x0f;
    let [hi, lo] = (lu.geometry.la_lba & 0x3fff).to_be_bytes();
    d[14] = hi;
    d[15] = lo;
    // Byte 14: LBPME (bit 7) and LBPRZ (bit 6): deallocated blocks read as zeros.
    if lu.thin_provisioning {
        d[14] |= 0xc0;
    }
    d
}

#[cfg(test)]
mod tests {
    use crate::test_util::{controller, disk, run_check, run_good, CTX};
    use crate::Sense;

    #[test]
    fn read_capacity10_bytes() {
        // 1000 blocks of 512: last LBA 999 (3E7h), block length 200h.
        let d = run_good(&disk(), &CTX, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d, vec![0, 0, 0x03, 0xe7, 0, 0, 0x02, 0x00]);
    }

    #[test]
    fn read_capacity10_clamps() {
        let mut lu = disk();
        lu.num_blocks = 1 << 33;
        let d = run_good(&lu, &CTX, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&d[..4], &[0xff; 4]);
        lu.num_blocks = 0;
        let d = run_good(&lu, &CTX, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&d[..4], &[0; 4]);
    }

    #[test]
    fn read_capacity10_lba_without_pmi_is_invalid() {
        // SBC-3 5.15: PMI=0 requires LOGICAL BLOCK ADDRESS 0.
        let s = run_check(&disk(), &CTX, &[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(s, Sense::invalid_cdb_field(2, 7));
        run_good(&disk(), &CTX, &[0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0]);
    }

    #[test]
    fn read_capacity16_bytes_and_alloc_len() {
        let mut lu = disk();
        lu.num_blocks = (1 << 33) + 1;
        lu.block_size = 4096;
        lu.thin_provisioning = false;
        let cdb = |alloc: u8| [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, alloc, 0, 0];
        let d = run_good(&lu, &CTX, &cdb(32));
        let mut want = vec![0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0x10, 0];
        want.resize(32, 0);
        assert_eq!(d, want);
        // libiscsi readcapacity16_alloclen: 0..15 all GOOD, truncated.
        for a in 0..16u8 {
            assert_eq!(run_good(&lu, &CTX, &cdb(a)).len(), usize::from(a));
        }
        assert_eq!(run_good(&lu, &CTX, &cdb(255)).len(), 32);
        // Thin provisioning: LBPME and LBPRZ (byte 14 bits 7, 6).
        lu.thin_provisioning = true;
        assert_eq!(run_good(&lu, &CTX, &cdb(32))[14], 0xc0);
        // 512-byte blocks on 4 KiB physical blocks, lowest aligned LBA 7: exponent
        // in byte 13, LOWEST ALIGNED LBA in bytes 14-15 under LBPME/LBPRZ.
        lu.geometry.lbppbe = 3;
        lu.geometry.la_lba = 0x0107;
        assert_eq!(&run_good(&lu, &CTX, &cdb(32))[13..16], &[0x03, 0xc1, 0x07]);
    }

    #[test]
    fn other_service_action_is_invalid_field() {
        let s = run_check(
            &disk(),
            &CTX,
            &[0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        );
        assert_eq!(s, Sense::invalid_cdb_field(1, 4));
    }

    #[test]
    fn controller_has_no_capacity() {
        let s = run_check(&controller(), &CTX, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(s, Sense::invalid_opcode());
    }
}
