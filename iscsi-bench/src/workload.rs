//! What to do next: read or write, where, and with which data; in verify mode also
//! which blocks are busy and which generation each block should hold.

use crate::verify::{self, Check};
use crate::{Args, Pattern, Rw};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};

/// One command of the workload. The LU is cut into slots of the I/O size from the
/// range start, and every command covers exactly one slot.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// READ(16) (else WRITE(16)).
    pub read: bool,
    /// First LBA.
    pub lba: u64,
    /// Slot index.
    pub slot: u64,
    /// Generation a verify-mode write stamps.
    pub generation: u64,
}

/// A verify mismatch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    /// The block.
    pub lba: u64,
    /// What it should hold.
    pub expected: String,
    /// What it held.
    pub found: String,
}

/// Mismatches of a run: all counted, the first [`Mismatches::PRINT`] printed on stderr
/// as they are found, the first [`Mismatches::KEEP`] kept for the report (a wholly
/// wrong LU must not flood the terminal or the memory).
#[derive(Debug, Default)]
pub struct Mismatches {
    /// How many.
    pub total: u64,
    /// The first ones.
    pub kept: Vec<Mismatch>,
}

impl Mismatches {
    /// Lines printed at most.
    pub const PRINT: u64 = 20;
    /// Mismatches kept at most.
    pub const KEEP: usize = 1000;

    fn push(&mut self, m: Mismatch) {
        self.total += 1;
        if self.total <= Self::PRINT {
            eprintln!(
                "iscsi-bench: verify: LBA {}: expected {}, found {}",
                m.lba, m.expected, m.found
            );
        } else if self.total == Self::PRINT + 1 {
            eprintln!("iscsi-bench: verify: more mismatches follow, not printed");
        }
        if self.kept.len() < Self::KEEP {
            self.kept.push(m);
        }
    }
}

/// Verify-mode bookkeeping.
#[derive(Debug, Default)]
struct VerifyState {
    /// Generation last written (GOOD) per slot.
    generations: HashMap<u64, u64>,
    /// Slots with a command in flight: never two at once on the same blocks.
    busy: HashSet<u64>,
}

/// The shared workload of all sessions.
#[derive(Debug)]
pub struct Workload {
    rng: u64,
    rw: Rw,
    read_pct: u8,
    pattern: Pattern,
    start: u64,
    slots: u64,
    /// Logical blocks per command.
    pub io_blocks: u32,
    /// Logical block length.
    pub block_len: u32,
    cursor: u64,
    /// Commands handed out.
    pub issued: u64,
    limit: Option<u64>,
    verify: Option<VerifyState>,
    fill: Bytes,
    /// Blocks checked by verify.
    pub checked: u64,
    /// Blocks verify could not judge (never written, no header).
    pub unchecked: u64,
}

impl Workload {
    /// A workload over `count` blocks from `start`, `io_blocks` per command.
    pub fn new(
        args: &Args,
        start: u64,
        count: u64,
        io_blocks: u32,
        block_len: u32,
        seed: u64,
    ) -> Self {
        let bytes = io_blocks as usize * block_len as usize;
        // Without verify every write sends the same (non-zero) buffer: no per-command
        // cost in the load generator.
        let fill = Bytes::from((0..bytes).map(|i| (i as u8) ^ 0xa5).collect::<Vec<u8>>());
        Workload {
            rng: seed | 1,
            rw: args.rw,
            read_pct: args.read_pct,
            pattern: args.pattern,
            start,
            slots: count / u64::from(io_blocks),
            io_blocks,
            block_len,
            cursor: 0,
            issued: 0,
            limit: args.ops,
            verify: args.verify.then(VerifyState::default),
            fill,
            checked: 0,
            unchecked: 0,
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: fast, and good enough to spread offsets.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Whether --ops is used up.
    pub fn exhausted(&self) -> bool {
        self.limit.is_some_and(|l| self.issued >= l)
    }

    /// The next command, or `None` when none can start now (limit reached, or in
    /// verify mode every candidate slot is busy).
    pub fn next(&mut self) -> Option<Op> {
        if self.exhausted() {
            return None;
        }
        let read = match self.rw {
            Rw::Read => true,
            Rw::Write => false,
            Rw::Mix => self.rand() % 100 < u64::from(self.read_pct),
        };
        let slot = match self.pattern {
            Pattern::Seq => {
                let s = self.cursor;
                if self.verify.as_ref().is_some_and(|v| v.busy.contains(&s)) {
                    return None;
                }
                self.cursor = (self.cursor + 1) % self.slots;
                s
            }
            Pattern::Rand => {
                let mut found = None;
                for _ in 0..16 {
                    let s = self.rand() % self.slots;
                    if !self.verify.as_ref().is_some_and(|v| v.busy.contains(&s)) {
                        found = Some(s);
                        break;
                    }
                }
                found?
            }
        };
        let mut generation = 0;
        if let Some(v) = &mut self.verify {
            v.busy.insert(slot);
            if !read {
                generation = v.generations.get(&slot).copied().unwrap_or(0) + 1;
            }
        }
        self.issued += 1;
        Some(Op {
            read,
            lba: self.start + slot * u64::from(self.io_blocks),
            slot,
            generation,
        })
    }

    /// Bytes per command.
    pub fn io_bytes(&self) -> u32 {
        self.io_blocks * self.block_len
    }

    /// The data a write carries.
    pub fn write_data(&self, op: &Op) -> Bytes {
        if self.verify.is_none() {
            return self.fill.clone();
        }
        let bl = self.block_len as usize;
        let mut buf = vec![0u8; self.io_bytes() as usize];
        for (i, block) in buf.chunks_mut(bl).enumerate() {
            verify::stamp(block, op.lba + i as u64, op.generation);
        }
        Bytes::from(buf)
    }

    /// A command finished (`good`: status GOOD); read data is checked in verify mode.
    pub fn complete(&mut self, op: &Op, good: bool, data: &[u8], out: &mut Mismatches) {
        let Some(v) = &mut self.verify else {
            return;
        };
        v.busy.remove(&op.slot);
        if !op.read {
            if good {
                v.generations.insert(op.slot, op.generation);
            } else {
                // The blocks may hold the old or the new data now: judge them by
                // their header only from here on.
                v.generations.remove(&op.slot);
            }
            return;
        }
        if !good {
            return;
        }
        let expected = v.generations.get(&op.slot).copied();
        let bl = self.block_len as usize;
        for (i, block) in data.chunks(bl).enumerate() {
            let lba = op.lba + i as u64;
            match verify::check(block, lba, expected) {
                Check::Ok => self.checked += 1,
                Check::Unchecked => self.unchecked += 1,
                Check::Mismatch { expected, found } => {
                    self.checked += 1;
                    out.push(Mismatch {
                        lba,
                        expected,
                        found,
                    });
                }
            }
        }
    }

    /// Forget a command that will not complete (the session failed).
    pub fn abandon(&mut self, op: &Op) {
        if let Some(v) = &mut self.verify {
            v.busy.remove(&op.slot);
            v.generations.remove(&op.slot);
        }
    }
}
