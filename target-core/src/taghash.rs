//! A cheap hash for the integer keys of the per-command tables: a connection's
//! tasks by Initiator Task Tag, its block operations by I/O tag, and the
//! session-wide tag table of MC/S (`crate::mcs`).
//!
//! These tables are touched several times per SCSI command, and std's default
//! SipHash-1-3 was about 4.5% of the target's CPU at 4K QD32 (perf, memory LU).
//! The keys are single `u32`/`u64` words, so one 64x64→128-bit multiply, folded
//! (high half XOR low half), mixes every key bit into every hash bit: hashbrown takes
//! the bucket from the low bits and the control byte from the top 7, and both
//! depend on the whole key.
//!
//! **Hostile keys.** An initiator chooses its ITTs, so a hash it could predict would
//! let it put every live task into one probe sequence. Each table takes a secret
//! random XOR key and an odd random multiplier from std's per-process random source
//! ([`RandomState`], the same one SipHash tables use), once when the table is made
//! (per connection or session, never per command); the peer sees neither. And even
//! a total collision costs at most a linear probe over the live entries, which the
//! CmdSN window (`ConnConfig::cmd_window`) and the task limits bound — never more
//! than that window per lookup. This is not a keyed PRF like SipHash, which is why it
//! is only used for these small bounded integer-keyed tables, never for strings or
//! unbounded ones.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` keyed by a task or I/O tag, hashed by [`TagHash`].
pub(crate) type TagMap<K, V> = HashMap<K, V, TagHash>;
/// A `HashSet` of task or I/O tags, hashed by [`TagHash`].
pub(crate) type TagSet<K> = HashSet<K, TagHash>;

/// Builds [`TagHasher`]s with this table's secret keys (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TagHash {
    xor: u64,
    mul: u64,
    fin: u64,
}

impl Default for TagHash {
    fn default() -> Self {
        // Each RandomState carries fresh keys; two words of it seed this table.
        let r = RandomState::new();
        TagHash {
            xor: r.hash_one(0x7467_6874_6167_0001_u64),
            mul: r.hash_one(0x7467_6874_6167_0002_u64) | 1,
            fin: r.hash_one(0x7467_6874_6167_0003_u64) | 1,
        }
    }
}

impl BuildHasher for TagHash {
    type Hasher = TagHasher;

    fn build_hasher(&self) -> TagHasher {
        TagHasher {
            acc: self.xor,
            mul: self.mul,
            fin: self.fin,
        }
    }
}

/// The hasher of one key: a folded multiply per 64-bit word written, and one more
/// at the end (one alone leaves the top bits, hashbrown's control byte, weakly mixed
/// for keys that differ only in a few middle bits).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TagHasher {
    acc: u64,
    mul: u64,
    fin: u64,
}

/// The 128-bit product of `a` and `b`, its two halves XORed.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl TagHasher {
    #[inline]
    fn word(&mut self, w: u64) {
        self.acc = fold(self.acc ^ w, self.mul);
    }
}

impl Hasher for TagHasher {
    #[inline]
    fn finish(&self) -> u64 {
        fold(self.acc, self.fin)
    }

    /// Any other key shape (not used by the tag tables, but correct): 8 bytes a word.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.word(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.word(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.word(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.word(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.word(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_tables_work() {
        let b = TagHash::default();
        assert_eq!(b.hash_one(7u32), b.hash_one(7u32));
        let mut m: TagMap<u32, u32> = TagMap::default();
        for i in 0..1000u32 {
            m.insert(i << 16, i);
        }
        for i in 0..1000u32 {
            assert_eq!(m.get(&(i << 16)), Some(&i));
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(&1), None);
    }

    /// ITTs a hostile initiator might pick to share low bits (multiples of 2^16)
    /// still spread over the buckets: the bucket index (low bits) and the control
    /// byte (top 7 bits) both take every key bit.
    #[test]
    fn keys_sharing_low_bits_spread_over_buckets() {
        let b = TagHash::default();
        let keys: Vec<u32> = (0..256u32).map(|i| i << 16).collect();
        let low: HashSet<u64> = keys.iter().map(|k| b.hash_one(*k) & 0xff).collect();
        let top: HashSet<u64> = keys.iter().map(|k| b.hash_one(*k) >> 57).collect();
        // 256 keys into 256 buckets: a random function leaves about 162 distinct
        // (sd about 5); into 128 control values, about 111 (sd about 3).
        assert!(low.len() > 135, "only {} distinct low bytes", low.len());
        assert!(top.len() > 90, "only {} distinct control bytes", top.len());
    }

    /// Two tables get different keys, so a collision found on one connection does
    /// not carry over to another.
    #[test]
    fn every_table_has_its_own_keys() {
        let (a, b) = (TagHash::default(), TagHash::default());
        assert_ne!(a.hash_one(1u32), b.hash_one(1u32));
    }
}
