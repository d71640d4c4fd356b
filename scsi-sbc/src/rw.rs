//! READ, WRITE and SYNCHRONIZE CACHE: range checks and the block operations they become.

use crate::block_op::BlockOp;
use crate::cdb::Transfer;
use crate::dispatch::{Outcome, Plan, MAX_TRANSFER_BYTES};
use crate::lu::LuConfig;
use crate::sense::Sense;
use bytes::Bytes;

/// MAXIMUM TRANSFER LENGTH in blocks (reported in the Block Limits VPD page): what fits
/// in [`MAX_TRANSFER_BYTES`], clamped to the 32-bit field.
pub(crate) fn max_transfer_blocks(lu: &LuConfig) -> u32 {
    let blocks = MAX_TRANSFER_BYTES
        .checked_div(u64::from(lu.block_size))
        .unwrap_or(0);
    u32::try_from(blocks).unwrap_or(u32::MAX)
}

/// SBC-3 4.5: every block of `lba .. lba + blocks` must exist. A zero-block access
/// names no block, yet its LBA may not lie past the end (libiscsi `*_0blocks` tests:
/// LBA = capacity + 1 is out of range).
fn check_range(lu: &LuConfig, lba: u64, blocks: u64) -> Result<(), Sense> {
    match lba.checked_add(blocks) {
        Some(end) if end <= lu.num_blocks => Ok(()),
        _ => Err(Sense::lba_out_of_range()),
    }
}

/// Byte offset and byte length of a checked transfer; `None` if the byte range
/// overflows `u64` (a nonsensical LU size), reported as out of range.
fn byte_range(lu: &LuConfig, lba: u64, blocks: u32) -> Result<(u64, u64), Sense> {
    let bs = u64::from(lu.block_size);
    let offset = lba.checked_mul(bs).ok_or_else(Sense::lba_out_of_range)?;
    let len = u64::from(blocks) * bs; // u32 × u32 always fits in u64
    offset
        .checked_add(len)
        .ok_or_else(Sense::lba_out_of_range)?;
    Ok((offset, len))
}

/// Checks shared by READ and WRITE: range, then the transfer length limit
/// (SBC-3 6.5.3: above MAXIMUM TRANSFER LENGTH is an invalid field in the CDB).
fn check_transfer(lu: &LuConfig, t: &Transfer) -> Result<(u64, u64), Sense> {
    check_range(lu, t.lba, u64::from(t.blocks))?;
    if t.blocks > max_transfer_blocks(lu) {
        return Err(Sense::invalid_field_in_cdb());
    }
    byte_range(lu, t.lba, t.blocks)
}

/// Checks for a WRITE before data is solicited; returns the data-out length in bytes.
pub(crate) fn prepare_write(lu: &LuConfig, t: &Transfer) -> Result<u64, Sense> {
    let (_, len) = check_transfer(lu, t)?;
    if lu.readonly {
        return Err(Sense::write_protected());
    }
    Ok(len)
}

/// Checks for a READ before it runs: range, then the transfer length limit.
pub fn prepare_read(lu: &LuConfig, t: &Transfer) -> Result<(), Sense> {
    check_transfer(lu, t).map(|_| ())
}

/// READ: a [`BlockOp::Read`] of the whole range, or GOOD with no data for zero blocks.
pub fn read(lu: &LuConfig, t: &Transfer) -> Result<Plan, Sense> {
    let (offset, len) = check_transfer(lu, t)?;
    if len == 0 {
        return Ok(Plan::Done(Outcome::good(Bytes::new())));
    }
    Ok(Plan::Io(BlockOp::Read { offset, len }))
}

/// WRITE with the collected data-out.
///
/// The transport hands over min(data-out length, EDTL) bytes. When the initiator's
/// expected length is shorter than the CDB's, FCP-4 / SAM-5 residual rules (and
/// libiscsi's `write*_residuals` tests) want exactly the bytes received written and no
/// more, so the write covers `data_out.len()` bytes from the LBA, even a partial block.
/// Extra bytes beyond the CDB's length are dropped. No bytes at all: GOOD, no I/O.
pub(crate) fn write(lu: &LuConfig, t: &Transfer, data_out: Bytes) -> Result<Plan, Sense> {
    let len = prepare_write(lu, t)?;
    let (offset, _) = byte_range(lu, t.lba, t.blocks)?;
    let take = usize::try_from(len).map_or(data_out.len(), |l| l.min(data_out.len()));
    if take == 0 {
        return Ok(Plan::Done(Outcome::good(Bytes::new())));
    }
    Ok(Plan::Io(BlockOp::Write {
        offset,
        data: data_out.slice(..take),
        fua: t.fua,
    }))
}

/// SYNCHRONIZE CACHE: range check (0 blocks = through the end), then a flush of the
/// whole store; the store has no per-range flush.
pub(crate) fn synchronize_cache(lu: &LuConfig, lba: u64, blocks: u32) -> Result<Plan, Sense> {
    check_range(lu, lba, u64::from(blocks))?;
    Ok(Plan::Io(BlockOp::Flush))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{disk, run, run_check, CTX};
    use crate::{execute, prepare};

    fn read10(lba: u32, blocks: u16, flags: u8) -> Vec<u8> {
        let l = lba.to_be_bytes();
        let b = blocks.to_be_bytes();
        vec![0x28, flags, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
    }

    fn rw16(op: u8, lba: u64, blocks: u32, flags: u8) -> Vec<u8> {
        let mut c = vec![op, flags];
        c.extend_from_slice(&lba.to_be_bytes());
        c.extend_from_slice(&blocks.to_be_bytes());
        c.extend_from_slice(&[0, 0]);
        c
    }

    #[test]
    fn read10_last_block_and_past_end() {
        // disk(): 1000 blocks of 512 bytes.
        assert_eq!(
            run(&disk(), &CTX, &read10(999, 1, 0), Bytes::new()),
            Plan::Io(BlockOp::Read {
                offset: 999 * 512,
                len: 512
            })
        );
        assert_eq!(
            run_check(&disk(), &CTX, &read10(999, 2, 0)),
            Sense::lba_out_of_range()
        );
        assert_eq!(
            run_check(&disk(), &CTX, &read10(u32::MAX, 1, 0)),
            Sense::lba_out_of_range()
        );
    }

    #[test]
    fn zero_blocks() {
        let good = Plan::Done(Outcome::good(Bytes::new()));
        assert_eq!(run(&disk(), &CTX, &read10(0, 0, 0), Bytes::new()), good);
        assert_eq!(run(&disk(), &CTX, &read10(1000, 0, 0), Bytes::new()), good);
        assert_eq!(
            run_check(&disk(), &CTX, &read10(1001, 0, 0)),
            Sense::lba_out_of_range()
        );
        assert_eq!(run(&disk(), &CTX, &rw16(0x8a, 0, 0, 0), Bytes::new()), good);
        let s = run_check(&disk(), &CTX, &rw16(0x8a, u64::MAX, 0, 0));
        assert_eq!(s, Sense::lba_out_of_range());
    }

    #[test]
    fn read16_huge_lba_does_not_overflow() {
        let s = run_check(&disk(), &CTX, &rw16(0x88, u64::MAX, 1, 0));
        assert_eq!(s, Sense::lba_out_of_range());
    }

    #[test]
    fn write16_fua_and_data_out_len() {
        let cdb = rw16(0x8a, 10, 2, 0x08);
        assert_eq!(prepare(&cdb, &disk()).unwrap().data_out_len, 1024);
        let data = Bytes::from(vec![7u8; 1024]);
        assert_eq!(
            execute(&cdb, &disk(), &CTX, data.clone()),
            Plan::Io(BlockOp::Write {
                offset: 5120,
                data,
                fua: true
            })
        );
    }

    #[test]
    fn short_and_long_data_out() {
        let cdb = rw16(0x8a, 1, 1, 0);
        let short = Bytes::from(vec![1u8; 200]);
        assert_eq!(
            execute(&cdb, &disk(), &CTX, short.clone()),
            Plan::Io(BlockOp::Write {
                offset: 512,
                data: short,
                fua: false
            })
        );
        let long = Bytes::from(vec![1u8; 2000]);
        match execute(&cdb, &disk(), &CTX, long) {
            Plan::Io(BlockOp::Write { data, .. }) => assert_eq!(data.len(), 512),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            execute(&cdb, &disk(), &CTX, Bytes::new()),
            Plan::Done(Outcome::good(Bytes::new()))
        );
    }

    #[test]
    fn readonly_write_is_data_protect() {
        let mut lu = disk();
        lu.readonly = true;
        let cdb = rw16(0x8a, 0, 1, 0);
        assert_eq!(prepare(&cdb, &lu), Err(Sense::write_protected()));
        assert_eq!(run_check(&lu, &CTX, &cdb), Sense::write_protected());
        assert!(prepare(&read10(0, 1, 0), &lu).is_ok());
    }

    #[test]
    fn protect_fields_rejected_dpo_fua_accepted() {
        // SBC-3 table 58: RDPROTECT != 0 without protection information.
        for p in 1..8u8 {
            let s = run_check(&disk(), &CTX, &read10(0, 1, p << 5));
            assert_eq!(s, Sense::invalid_cdb_field(1, 7));
        }
        // DPO, FUA, FUA_NV (libiscsi write10_flags).
        assert!(matches!(
            run(&disk(), &CTX, &read10(0, 1, 0x1a), Bytes::new()),
            Plan::Io(BlockOp::Read { .. })
        ));
    }

    #[test]
    fn transfer_above_limit_is_invalid_field() {
        let mut lu = disk();
        lu.num_blocks = u64::MAX / 512;
        let cdb = rw16(0x88, 0, max_transfer_blocks(&lu) + 1, 0);
        assert_eq!(run_check(&lu, &CTX, &cdb), Sense::invalid_field_in_cdb());
    }

    #[test]
    fn read6_write12_forms() {
        // SBC-3 table 47: READ(6) transfer length 0 means 256 blocks.
        assert_eq!(
            run(
                &disk(),
                &CTX,
                &[0x08, 0x00, 0x00, 0x02, 0x00, 0],
                Bytes::new()
            ),
            Plan::Io(BlockOp::Read {
                offset: 1024,
                len: 256 * 512
            })
        );
        let cdb = [0xaa, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0];
        assert_eq!(prepare(&cdb, &disk()).unwrap().data_out_len, 1024);
    }

    #[test]
    fn synchronize_cache_range() {
        let sync10 = |lba: u32, n: u16| {
            let l = lba.to_be_bytes();
            let b = n.to_be_bytes();
            vec![0x35, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
        };
        assert_eq!(
            run(&disk(), &CTX, &sync10(0, 0), Bytes::new()),
            Plan::Io(BlockOp::Flush)
        );
        assert_eq!(
            run(&disk(), &CTX, &sync10(990, 10), Bytes::new()),
            Plan::Io(BlockOp::Flush)
        );
        assert_eq!(
            run_check(&disk(), &CTX, &sync10(990, 11)),
            Sense::lba_out_of_range()
        );
        let s = run_check(&disk(), &CTX, &rw16(0x91, 1001, 0, 0));
        assert_eq!(s, Sense::lba_out_of_range());
    }
}
