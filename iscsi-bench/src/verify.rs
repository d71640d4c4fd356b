//! `--verify`: what a written block carries and how a read block is judged.
//!
//! Every logical block written in verify mode starts with a 32-byte header:
//!
//! | bytes  | content                                              |
//! |--------|------------------------------------------------------|
//! | 0..8   | magic `ISCSIBNC`                                     |
//! | 8..16  | the block's LBA (little-endian)                      |
//! | 16..24 | generation: how many times this run wrote the block  |
//! | 24..28 | the block length                                     |
//! | 28..32 | CRC32C of the block with these four bytes left out   |
//!
//! and the rest of the block is a pattern drawn from (LBA, generation), so a block
//! that lands at the wrong LBA, a stale block and a torn or corrupted block all fail.
//!
//! The rule for reads: a block this run wrote (and whose write completed GOOD) must
//! carry its LBA, the generation of the last write and a matching CRC. A block this
//! run did not write is checked only if it carries the magic (a block stamped by an
//! earlier run, e.g. `--rw write --verify` then `--rw read --verify`): its LBA and CRC
//! must match, its generation cannot be known. Blocks without the magic that this run
//! never wrote are counted as unchecked. Commands never overlap in flight in verify
//! mode, so the expected generation is always well defined.

/// Header magic.
pub const MAGIC: &[u8; 8] = b"ISCSIBNC";
/// Header length.
pub const HEADER: usize = 32;

fn crc(block: &[u8]) -> u32 {
    let c = crc32c::crc32c(&block[..28]);
    crc32c::crc32c_append(c, &block[HEADER..])
}

/// Fill `block` (one logical block) with its header and pattern.
pub fn stamp(block: &mut [u8], lba: u64, generation: u64) {
    let len = block.len();
    block[..8].copy_from_slice(MAGIC);
    block[8..16].copy_from_slice(&lba.to_le_bytes());
    block[16..24].copy_from_slice(&generation.to_le_bytes());
    block[24..28].copy_from_slice(&(len as u32).to_le_bytes());
    let mut x = lba.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ generation.rotate_left(29) ^ 0x5bd1_e995;
    for w in block[HEADER..].chunks_mut(8) {
        // xorshift64: cheap, and every word differs.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        w.copy_from_slice(&b[..w.len()]);
    }
    let c = crc(block);
    block[28..32].copy_from_slice(&c.to_le_bytes());
}

/// What a read block was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Correct.
    Ok,
    /// Not written by this run and carries no header: not checked.
    Unchecked,
    /// Wrong: what was expected and what was found.
    Mismatch {
        /// What the block should hold.
        expected: String,
        /// What it holds.
        found: String,
    },
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Which generation a read block must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Not known (never written by this run, or a write failed): judged by its header
    /// if it has one.
    Any,
    /// Exactly this one (the last write this run saw acknowledged).
    Exactly(u64),
    /// This one or a later one (`--verify-only`: a journaled FUA write, possibly
    /// overwritten by a later write before the crash).
    AtLeast(u64),
}

impl From<Option<u64>> for Expect {
    fn from(g: Option<u64>) -> Expect {
        g.map_or(Expect::Any, Expect::Exactly)
    }
}

/// Judge `block` read from `lba` against what it must carry.
pub fn check(block: &[u8], lba: u64, expected: impl Into<Expect>) -> Check {
    let expected = expected.into();
    let has_magic = &block[..8] == MAGIC;
    let want = match expected {
        Expect::Exactly(g) => format!("lba={lba} gen={g} with a valid checksum"),
        Expect::AtLeast(g) => format!("lba={lba} gen>={g} with a valid checksum"),
        Expect::Any => format!("lba={lba} with a valid checksum"),
    };
    if !has_magic {
        if expected == Expect::Any {
            return Check::Unchecked;
        }
        let zero = block.iter().all(|&b| b == 0);
        return Check::Mismatch {
            expected: want,
            found: if zero {
                "an all-zero block".into()
            } else {
                format!("no header (first bytes {:02x?})", &block[..8])
            },
        };
    }
    let got_lba = u64_at(block, 8);
    let got_gen = u64_at(block, 16);
    let stored = u32::from_le_bytes(block[28..32].try_into().expect("4 bytes"));
    let computed = crc(block);
    let crc_ok = stored == computed;
    let gen_ok = match expected {
        Expect::Any => true,
        Expect::Exactly(g) => g == got_gen,
        Expect::AtLeast(g) => got_gen >= g,
    };
    if got_lba == lba && gen_ok && crc_ok {
        return Check::Ok;
    }
    Check::Mismatch {
        expected: want,
        found: format!(
            "lba={got_lba} gen={got_gen} checksum {}",
            if crc_ok {
                "valid".to_string()
            } else {
                format!("bad (stored {stored:#010x}, computed {computed:#010x})")
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_and_check() {
        let mut b = vec![0u8; 512];
        assert_eq!(check(&b, 5, None), Check::Unchecked);
        assert!(matches!(check(&b, 5, Some(1)), Check::Mismatch { .. }));
        stamp(&mut b, 5, 3);
        assert_eq!(check(&b, 5, Some(3)), Check::Ok);
        assert_eq!(check(&b, 5, None), Check::Ok);
        assert!(matches!(check(&b, 6, None), Check::Mismatch { .. }));
        assert!(matches!(check(&b, 5, Some(2)), Check::Mismatch { .. }));
        b[300] ^= 1;
        let Check::Mismatch { found, .. } = check(&b, 5, None) else {
            panic!()
        };
        assert!(found.contains("bad"), "{found}");
        stamp(&mut b, 5, 3);
        assert_eq!(check(&b, 5, Expect::AtLeast(3)), Check::Ok);
        assert_eq!(check(&b, 5, Expect::AtLeast(2)), Check::Ok);
        assert!(matches!(
            check(&b, 5, Expect::AtLeast(4)),
            Check::Mismatch { .. }
        ));
        assert!(matches!(
            check(&[0u8; 512], 5, Expect::AtLeast(1)),
            Check::Mismatch { .. }
        ));
        let mut c = vec![0u8; 4096];
        stamp(&mut c, 1 << 40, 1);
        assert_eq!(check(&c, 1 << 40, Some(1)), Check::Ok);
    }
}
