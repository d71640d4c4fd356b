//! What to do next: read or write, where, how much and with which data; in verify
//! mode also which blocks are busy and which generation each block should hold; the
//! journal of acknowledged FUA writes, and the read-back of one (`--verify-only`).

use crate::verify::{self, Check, Expect};
use crate::{Args, Pattern, Rw, SetupError};
use bytes::Bytes;
use iscsi_initiator::{cdb, Command, DataDirection};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufWriter, Write};

/// One command of the workload. The LU is cut into slots of the largest I/O size from
/// the range start; every command lies inside one slot (at an offset aligned to its
/// own size), and in verify mode no two commands in flight share a slot.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// READ(16) (else WRITE(16)).
    pub read: bool,
    /// First LBA.
    pub lba: u64,
    /// Logical blocks.
    pub blocks: u32,
    /// Slot index.
    pub slot: u64,
    /// Generation a verify-mode write stamps.
    pub generation: u64,
    /// A WRITE with FUA set.
    pub fua: bool,
    /// A SYNCHRONIZE CACHE(16) of the whole LU (`--sync-every`), not a READ or WRITE.
    pub sync: bool,
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

/// Generations of one slot's blocks (0: not known) and the last one handed out.
#[derive(Debug)]
struct SlotGens {
    last: u64,
    blocks: Box<[u64]>,
}

/// Verify-mode bookkeeping.
#[derive(Debug, Default)]
struct VerifyState {
    /// Per slot written by this run.
    slots: HashMap<u64, SlotGens>,
    /// Slots with a command in flight: never two at once on the same blocks.
    busy: HashSet<u64>,
}

/// `--journal` while writing: one line `LBA BLOCKS GENERATION` per FUA write
/// acknowledged GOOD, appended (and written through) as each completes, and per write
/// an acknowledged SYNCHRONIZE CACHE covers, after a `#` comment line naming it.
#[derive(Debug)]
struct Journal {
    out: BufWriter<std::fs::File>,
    failed: Option<String>,
}

/// `--verify-only`: the extents to read and the generation each journaled block must
/// at least carry.
#[derive(Debug, Default)]
struct Replay {
    todo: VecDeque<(u64, u32)>,
    minimum: HashMap<u64, u64>,
}

/// Blocks one `--verify-only` READ covers at most.
const REPLAY_BLOCKS: u32 = 512;

impl Replay {
    fn load(path: &std::path::Path) -> Result<Replay, SetupError> {
        let bad = |m: String| SetupError::Args(format!("--journal {}: {m}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut minimum: BTreeMap<u64, u64> = BTreeMap::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| bad(e.to_string()))?;
            if line.starts_with('#') {
                continue;
            }
            let f: Vec<u64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| bad(format!("line {}: not LBA BLOCKS GENERATION", n + 1)))?;
            let &[lba, blocks, generation] = &f[..] else {
                return Err(bad(format!("line {}: not LBA BLOCKS GENERATION", n + 1)));
            };
            for b in lba..lba.saturating_add(blocks) {
                let g = minimum.entry(b).or_default();
                *g = (*g).max(generation);
            }
        }
        let mut todo: VecDeque<(u64, u32)> = VecDeque::new();
        for &lba in minimum.keys() {
            match todo.back_mut() {
                Some((first, n)) if *first + u64::from(*n) == lba && *n < REPLAY_BLOCKS => *n += 1,
                _ => todo.push_back((lba, 1)),
            }
        }
        Ok(Replay {
            todo,
            minimum: minimum.into_iter().collect(),
        })
    }
}

/// The shared workload of all sessions.
#[derive(Debug)]
pub struct Workload {
    rng: u64,
    rw: Rw,
    read_pct: u8,
    fua_pct: u8,
    sync_every: u32,
    /// Writes without FUA completed GOOD since the last SYNCHRONIZE CACHE was sent:
    /// (LBA, blocks, generation).
    unsynced: Vec<(u64, u32, u64)>,
    /// The writes the SYNCHRONIZE CACHE in flight covers.
    syncing: Option<Vec<(u64, u32, u64)>>,
    /// SYNCHRONIZE CACHE commands that completed GOOD.
    pub syncs: u64,
    pattern: Pattern,
    start: u64,
    slots: u64,
    /// Logical blocks per slot (the largest I/O size).
    slot_blocks: u32,
    /// The I/O sizes drawn from, in logical blocks.
    sizes: Vec<u32>,
    /// Logical block length.
    pub block_len: u32,
    cursor: u64,
    /// Commands handed out.
    pub issued: u64,
    limit: Option<u64>,
    verify: Option<VerifyState>,
    journal: Option<Journal>,
    replay: Option<Replay>,
    /// Records written to (or blocks read from) the journal.
    pub journaled: u64,
    fill: Bytes,
    /// Blocks checked by verify.
    pub checked: u64,
    /// Blocks verify could not judge (never written, no header).
    pub unchecked: u64,
}

impl Workload {
    /// A workload over `count` blocks from `start` of a LU with `block_len`-byte
    /// blocks; the I/O sizes come from `args.bs` (multiples of `block_len`).
    pub fn new(
        args: &Args,
        start: u64,
        count: u64,
        block_len: u32,
        seed: u64,
    ) -> Result<Self, SetupError> {
        let bl = u64::from(block_len);
        let sizes: Vec<u32> = args.bs.ladder().iter().map(|s| (s / bl) as u32).collect();
        let slot_blocks = (args.bs.max / bl) as u32;
        let bytes = args.bs.max as usize;
        // Without verify every write sends (a slice of) the same non-zero buffer: no
        // per-command cost in the load generator.
        let fill = Bytes::from((0..bytes).map(|i| (i as u8) ^ 0xa5).collect::<Vec<u8>>());
        let journal = match (&args.journal, args.verify_only) {
            (Some(path), false) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| SetupError::Args(format!("--journal {}: {e}", path.display())))?;
                Some(Journal {
                    out: BufWriter::new(file),
                    failed: None,
                })
            }
            _ => None,
        };
        let replay = match (&args.journal, args.verify_only) {
            (Some(path), true) => Some(Replay::load(path)?),
            _ => None,
        };
        let journaled = replay.as_ref().map_or(0, |r| r.minimum.len() as u64);
        Ok(Workload {
            rng: seed | 1,
            rw: args.rw,
            read_pct: args.read_pct,
            fua_pct: args.fua_pct,
            sync_every: args.sync_every,
            unsynced: Vec::new(),
            syncing: None,
            syncs: 0,
            pattern: args.pattern,
            start,
            slots: count / u64::from(slot_blocks),
            slot_blocks,
            sizes,
            block_len,
            cursor: 0,
            issued: 0,
            limit: args.ops,
            verify: (args.verify || args.verify_only).then(VerifyState::default),
            journal,
            replay,
            journaled,
            fill,
            checked: 0,
            unchecked: 0,
        })
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

    /// Whether --ops (or, with --verify-only, the journal) is used up.
    pub fn exhausted(&self) -> bool {
        self.limit.is_some_and(|l| self.issued >= l)
            || self.replay.as_ref().is_some_and(|r| r.todo.is_empty())
    }

    /// The next command, or `None` when none can start now (limit reached, or in
    /// verify mode every candidate slot is busy).
    pub fn next(&mut self) -> Option<Op> {
        if self.exhausted() {
            return None;
        }
        if let Some(r) = &mut self.replay {
            let (lba, blocks) = r.todo.pop_front()?;
            self.issued += 1;
            return Some(Op {
                read: true,
                lba,
                blocks,
                slot: u64::MAX,
                generation: 0,
                fua: false,
                sync: false,
            });
        }
        if self.sync_every > 0
            && self.syncing.is_none()
            && self.unsynced.len() >= self.sync_every as usize
        {
            // Covers what completed before it is sent, nothing later.
            self.syncing = Some(std::mem::take(&mut self.unsynced));
            return Some(Op {
                read: false,
                lba: 0,
                blocks: 0,
                slot: u64::MAX,
                generation: 0,
                fua: false,
                sync: true,
            });
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
        let (blocks, offset) = if self.sizes.len() == 1 {
            (self.slot_blocks, 0)
        } else {
            let pick = (self.rand() % self.sizes.len() as u64) as usize;
            let blocks = self.sizes[pick];
            let places = u64::from((self.slot_blocks - blocks) / blocks + 1);
            let at = match self.pattern {
                Pattern::Seq => 0,
                Pattern::Rand => self.rand() % places,
            };
            (blocks, at * u64::from(blocks))
        };
        let fua = !read && self.fua_pct > 0 && self.rand() % 100 < u64::from(self.fua_pct);
        let mut generation = 0;
        if let Some(v) = &mut self.verify {
            v.busy.insert(slot);
            if !read {
                let slot_blocks = self.slot_blocks as usize;
                let g = v.slots.entry(slot).or_insert_with(|| SlotGens {
                    last: 0,
                    blocks: vec![0; slot_blocks].into_boxed_slice(),
                });
                // Handed out at issue: a block's generations only ever grow, even
                // across failed writes (what --verify-only relies on).
                g.last += 1;
                generation = g.last;
            }
        }
        self.issued += 1;
        Some(Op {
            read,
            lba: self.start + slot * u64::from(self.slot_blocks) + offset,
            blocks,
            slot,
            generation,
            fua,
            sync: false,
        })
    }

    /// Bytes `op` moves.
    pub fn io_bytes(&self, op: &Op) -> u32 {
        op.blocks * self.block_len
    }

    /// The READ(16) or WRITE(16) (FUA when `op.fua`) for `op` on `lun`.
    pub fn command(&self, lun: u64, op: &Op) -> Command {
        if op.sync {
            let mut c = [0u8; 16];
            c[0] = 0x91; // SYNCHRONIZE CACHE(16), LBA 0 and 0 blocks: the whole LU
            return Command::new(lun, &c, DataDirection::None);
        }
        if op.read {
            let cmd = Command::new(
                lun,
                &cdb::read16(op.lba, op.blocks),
                DataDirection::Read(self.io_bytes(op)),
            );
            // Only --verify and --replay look at what was read: otherwise a read
            // over several Data-In PDUs is not gathered into one buffer, as a
            // kernel initiator copies its data once, from the socket to the page.
            return if self.verify.is_none() && self.replay.is_none() {
                cmd.discarding_read_data()
            } else {
                cmd
            };
        }
        let mut c = cdb::write16(op.lba, op.blocks);
        if op.fua {
            c[1] |= 0x08;
        }
        Command::new(lun, &c, DataDirection::Write(self.write_data(op)))
    }

    /// The data a write carries.
    pub fn write_data(&self, op: &Op) -> Bytes {
        if self.verify.is_none() {
            return self.fill.slice(..self.io_bytes(op) as usize);
        }
        let bl = self.block_len as usize;
        let mut buf = vec![0u8; self.io_bytes(op) as usize];
        for (i, block) in buf.chunks_mut(bl).enumerate() {
            verify::stamp(block, op.lba + i as u64, op.generation);
        }
        Bytes::from(buf)
    }

    /// Index of `op`'s first block inside its slot.
    fn offset_in_slot(&self, op: &Op) -> usize {
        (op.lba - self.start - op.slot * u64::from(self.slot_blocks)) as usize
    }

    /// A command finished (`good`: status GOOD); read data is checked in verify mode.
    pub fn complete(&mut self, op: &Op, good: bool, data: &[u8], out: &mut Mismatches) {
        if op.sync {
            let covered = self.syncing.take().unwrap_or_default();
            if good {
                self.syncs += 1;
                if let Some(j) = &mut self.journal {
                    if j.failed.is_none() {
                        if let Err(e) = writeln!(
                            j.out,
                            "# SYNCHRONIZE CACHE {} covers the {} writes below",
                            self.syncs,
                            covered.len()
                        ) {
                            j.failed = Some(format!("--journal: {e}"));
                        }
                    }
                }
                for (lba, blocks, generation) in covered {
                    self.journal(lba, blocks, generation);
                }
            }
            return;
        }
        let bl = self.block_len as usize;
        if let Some(r) = &self.replay {
            if !good {
                return;
            }
            let wants: Vec<Expect> = (op.lba..op.lba + u64::from(op.blocks))
                .map(|lba| {
                    r.minimum
                        .get(&lba)
                        .map_or(Expect::Any, |g| Expect::AtLeast(*g))
                })
                .collect();
            for (i, (block, want)) in data.chunks(bl).zip(wants).enumerate() {
                self.judge(block, op.lba + i as u64, want, out);
            }
            return;
        }
        let off = self.offset_in_slot(op);
        let Some(v) = &mut self.verify else {
            return;
        };
        v.busy.remove(&op.slot);
        if !op.read {
            let g = v
                .slots
                .get_mut(&op.slot)
                .expect("a verify-mode write has its slot");
            // A failed write may have left the old or the new data: judge those
            // blocks by their header only from here on.
            let now = if good { op.generation } else { 0 };
            g.blocks[off..off + op.blocks as usize].fill(now);
            if good && op.fua {
                self.journal(op.lba, op.blocks, op.generation);
            } else if good && self.sync_every > 0 {
                self.unsynced.push((op.lba, op.blocks, op.generation));
            }
            return;
        }
        if !good {
            return;
        }
        let gens: Vec<u64> = match v.slots.get(&op.slot) {
            Some(g) => g.blocks[off..off + op.blocks as usize].to_vec(),
            None => vec![0; op.blocks as usize],
        };
        for (i, block) in data.chunks(bl).enumerate() {
            let g = gens.get(i).copied().unwrap_or(0);
            let want = if g == 0 {
                Expect::Any
            } else {
                Expect::Exactly(g)
            };
            self.judge(block, op.lba + i as u64, want, out);
        }
    }

    fn judge(&mut self, block: &[u8], lba: u64, want: Expect, out: &mut Mismatches) {
        match verify::check(block, lba, want) {
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

    fn journal(&mut self, lba: u64, blocks: u32, generation: u64) {
        let Some(j) = &mut self.journal else {
            return;
        };
        if j.failed.is_some() {
            return;
        }
        // Written through at once: the journal must hold every acknowledgement even
        // if this process dies next.
        let line = writeln!(j.out, "{lba} {blocks} {generation}");
        match line.and_then(|()| j.out.flush()) {
            Ok(()) => self.journaled += 1,
            Err(e) => j.failed = Some(format!("--journal: {e}")),
        }
    }

    /// Flush the journal; why it could not be written, if it could not.
    pub fn finish(&mut self) -> Result<(), String> {
        let Some(j) = &mut self.journal else {
            return Ok(());
        };
        if let Some(e) = j.failed.take() {
            return Err(e);
        }
        j.out
            .flush()
            .and_then(|()| j.out.get_ref().sync_data())
            .map_err(|e| format!("--journal: {e}"))
    }

    /// Forget a command that will not complete (the session failed).
    pub fn abandon(&mut self, op: &Op) {
        if op.sync {
            self.syncing = None;
            return;
        }
        if self.replay.is_some() {
            return;
        }
        let off = self.offset_in_slot(op);
        if let Some(v) = &mut self.verify {
            v.busy.remove(&op.slot);
            if let Some(g) = v.slots.get_mut(&op.slot) {
                if !op.read {
                    g.blocks[off..off + op.blocks as usize].fill(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_replay_merges_extents_and_keeps_the_newest_generation() {
        let dir = std::env::temp_dir().join(format!("iscsi-bench-journal-{}", std::process::id()));
        std::fs::write(&dir, "10 4 1\n12 4 3\n# synced\n100 1 2\n11 1 2\n").unwrap();
        let r = Replay::load(&dir).unwrap();
        assert_eq!(r.todo, VecDeque::from([(10, 6), (100, 1)]));
        assert_eq!(r.minimum[&10], 1);
        assert_eq!(r.minimum[&11], 2);
        assert_eq!(r.minimum[&12], 3);
        assert_eq!(r.minimum[&15], 3);
        assert_eq!(r.minimum[&100], 2);
        std::fs::write(&dir, "10 4\n").unwrap();
        let e = Replay::load(&dir).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let _ = std::fs::remove_file(&dir);
    }
}
