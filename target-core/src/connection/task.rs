//! One SCSI task: collecting its data-out (immediate, unsolicited, solicited by R2T)
//! until it can run.

use bytes::Bytes;
use iscsi_proto::{LunField, Ttt};
use scsi_sbc::BlockOp;
use std::sync::Arc;

use crate::hooks::BufferSource;
use crate::registry::{DataDir, LuStats, Lun};
use crate::taghash::TagMap;

/// An R2T we sent and whose data has not fully arrived.
#[derive(Debug, Clone, Copy)]
pub(super) struct OutstandingR2t {
    pub(super) ttt: Ttt,
    pub(super) offset: u32,
    pub(super) len: u32,
    pub(super) received: u32,
    /// DataSN the next Data-Out of this sequence must carry (RFC 7143 §11.7.5).
    pub(super) next_data_sn: u32,
}

/// Data-out bookkeeping for a write.
#[derive(Debug)]
pub(super) struct DataOutState {
    /// Bytes the command needs (min of what the CDB says and the EDTL).
    pub(super) want: u32,
    /// Bytes received so far (within `want`).
    pub(super) received: u32,
    /// The buffer, allocated on the first piece that does not cover everything.
    pub(super) buf: Option<Vec<u8>>,
    /// Where `buf` comes from and goes back to (the daemon's [`BufferSource`]);
    /// a plain vector without one.
    pub(super) source: Option<Arc<dyn BufferSource>>,
    /// A single piece that covered everything at offset 0 (no copy needed).
    pub(super) whole: Option<Bytes>,
    /// The offset up to which R2Ts have been sent (or unsolicited data covers).
    pub(super) next_r2t_offset: u32,
    pub(super) r2t_sn: u32,
    pub(super) outstanding: Vec<OutstandingR2t>,
    /// Unsolicited data-out is still coming (the command's F bit was clear).
    pub(super) unsolicited_open: bool,
    pub(super) unsolicited_end: u32,
    /// Offset the next unsolicited Data-Out must start at (DataPDUInOrder=Yes).
    pub(super) unsolicited_next: u32,
    /// DataSN the next unsolicited Data-Out must carry.
    pub(super) unsolicited_data_sn: u32,
    /// Which byte ranges arrived (in sequence, so trusted): after a TASK REASSIGN
    /// only the rest is asked for again (ErrorRecoveryLevel 2, `erl2.rs`).
    pub(super) have: Ranges,
    /// Ranges below `next_r2t_offset` still to be solicited (the gaps a TASK
    /// REASSIGN found), sent before any new burst.
    pub(super) gaps: std::collections::VecDeque<(u32, u32)>,
}

/// Most disjoint ranges a write remembers as received. Past it the smallest is
/// forgotten: its bytes are asked for again after a reassignment, which is
/// wasteful but never wrong (the bound keeps a hostile pattern of tiny bursts
/// from growing the set).
pub(super) const MAX_RANGES: usize = 64;

/// A small set of disjoint, non-adjacent half-open byte ranges, sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Ranges(Vec<(u32, u32)>);

impl Ranges {
    /// Add `[from, to)`, merging with the ranges it touches.
    pub(super) fn insert(&mut self, from: u32, to: u32) {
        if from >= to {
            return;
        }
        let (mut lo, mut hi) = (from, to);
        // Ranges entirely before (ending before `from`) and after (starting past `to`).
        let first = self.0.partition_point(|r| r.1 < from);
        let last = self.0.partition_point(|r| r.0 <= to);
        if first < last {
            lo = lo.min(self.0[first].0);
            hi = hi.max(self.0[last - 1].1);
        }
        self.0.splice(first..last, [(lo, hi)]);
        if self.0.len() > MAX_RANGES {
            if let Some(i) = (0..self.0.len()).min_by_key(|&i| self.0[i].1 - self.0[i].0) {
                self.0.remove(i);
            }
        }
    }

    /// Bytes covered.
    pub(super) fn covered(&self) -> u32 {
        self.0.iter().map(|r| r.1 - r.0).sum()
    }

    /// The ranges of `[0, want)` not covered, in order.
    pub(super) fn missing(&self, want: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        for &(a, b) in &self.0 {
            if a >= want {
                break;
            }
            if a > at {
                out.push((at, a));
            }
            at = at.max(b);
        }
        if at < want {
            out.push((at, want));
        }
        out
    }

    #[cfg(test)]
    pub(super) fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }
}

impl DataOutState {
    /// Store a piece of data at `offset`, clipped to `want`. Returns the bytes counted.
    pub(super) fn put(&mut self, offset: u32, data: &Bytes) -> u32 {
        if offset >= self.want || data.is_empty() {
            return 0;
        }
        let end = (offset as u64 + data.len() as u64).min(self.want as u64) as u32;
        let n = end - offset;
        if offset == 0 && n == self.want && self.received == 0 && self.buf.is_none() {
            self.whole = Some(data.slice(..n as usize));
        } else {
            let want = self.want as usize;
            let source = &self.source;
            let buf = self.buf.get_or_insert_with(|| match source {
                Some(s) => s.take(want),
                None => Vec::with_capacity(want),
            });
            let (offset, end) = (offset as usize, end as usize);
            let piece = &data[..n as usize];
            // Pieces come in order (DataPDUInOrder=Yes), each appended after the
            // last: the buffer is written once, never zero-filled first. A gap (a
            // later burst ahead of an earlier one) is zero-filled up to the piece.
            if offset > buf.len() {
                buf.resize(offset, 0);
            }
            let overlap = buf.len().min(end) - offset.min(buf.len());
            let split = overlap.min(piece.len());
            if offset < buf.len() {
                buf[offset..offset + split].copy_from_slice(&piece[..split]);
            }
            buf.extend_from_slice(&piece[split..]);
        }
        self.received = self.received.saturating_add(n);
        self.have.insert(offset, end);
        n
    }

    /// A TASK REASSIGN took the task over (ErrorRecoveryLevel 2): what arrived
    /// stays, the missing ranges are solicited again (recovery R2Ts, RFC 7143
    /// §6.2.2, §7.2) and the old connection's bursts and unsolicited sequence are
    /// void.
    pub(super) fn reassigned(&mut self) {
        let missing = self.have.missing(self.want);
        self.received = self.have.covered().min(self.want);
        self.gaps = missing.into();
        self.next_r2t_offset = self.want;
        self.outstanding.clear();
        self.unsolicited_open = false;
        self.unsolicited_end = 0;
    }

    pub(super) fn complete(&self) -> bool {
        self.received >= self.want
    }

    pub(super) fn take(&mut self) -> Bytes {
        if let Some(w) = self.whole.take() {
            return w;
        }
        let want = self.want as usize;
        self.buf
            .take()
            .map(|mut b| {
                b.resize(want, 0);
                match &self.source {
                    Some(s) => s.freeze(b),
                    None => Bytes::from(b),
                }
            })
            .unwrap_or_default()
    }
}

/// Where a task stands.
#[derive(Debug)]
pub(super) enum TaskState {
    /// Waiting for data-out.
    Collecting(DataOutState),
    /// A block operation is running.
    Io(BlockOp),
}

/// A SCSI task of this connection, keyed by ITT.
#[derive(Debug)]
pub(super) struct Task {
    pub(super) lun_field: LunField,
    pub(super) lun: Arc<Lun>,
    pub(super) cdb: Bytes,
    pub(super) edtl: u32,
    pub(super) read: bool,
    pub(super) write: bool,
    /// Bytes of data-out the CDB calls for (for residuals of writes).
    pub(super) cdb_out_len: u64,
    pub(super) state: TaskState,
    /// The I_T_L counters, once the task is submitted to its LU (`--op stat`).
    pub(super) stats: Option<Arc<LuStats>>,
    /// When the command arrived (the `now` of that input), for latency metrics.
    pub(super) started: std::time::Instant,
    /// The LU's monitoring counters, looked up once when the task is created.
    pub(super) metrics: Option<std::sync::Arc<crate::metrics::LuMetrics>>,
    /// Buffer bytes counted against the connection's cap for this task
    /// (`limits.rs`): write data to collect, or read data to fetch. Set only by
    /// [`Tasks::reserve`], which keeps the table's total.
    pub(super) reserved: Reserved,
    /// The store its block operation went to, so that a TASK REASSIGN can run it
    /// again (ErrorRecoveryLevel 2, `erl2.rs`).
    pub(super) io_store: Option<Arc<dyn scsi_sbc::BlockStore>>,
}

/// A task's buffer bytes ([`Task::reserved`]): made non-zero only here, by
/// [`Tasks::reserve`], so the table's running total cannot miss a change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Reserved(u64);

impl Reserved {
    /// None yet (a new task).
    pub(super) const NONE: Reserved = Reserved(0);

    pub(super) fn bytes(self) -> u64 {
        self.0
    }

    pub(super) fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// A connection's tasks by ITT, with the buffer bytes they hold summed as tasks
/// arrive, reserve and leave (also when a TASK REASSIGN moves one between
/// connections): the buffer cap is checked for every read and write without a walk
/// over the whole queue.
#[derive(Debug, Default)]
pub(super) struct Tasks {
    map: TagMap<u32, Task>,
    reserved: u64,
}

impl Tasks {
    pub(super) fn get(&self, itt: &u32) -> Option<&Task> {
        self.map.get(itt)
    }

    pub(super) fn get_mut(&mut self, itt: &u32) -> Option<&mut Task> {
        self.map.get_mut(itt)
    }

    pub(super) fn contains_key(&self, itt: &u32) -> bool {
        self.map.contains_key(itt)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&u32, &Task)> {
        self.map.iter()
    }

    /// Add `task` (its reservation counts from now on); a task it replaces is
    /// returned and no longer counted.
    pub(super) fn insert(&mut self, itt: u32, task: Task) -> Option<Task> {
        self.reserved += task.reserved.bytes();
        let old = self.map.insert(itt, task);
        if let Some(o) = &old {
            self.reserved -= o.reserved.bytes();
        }
        old
    }

    pub(super) fn remove(&mut self, itt: &u32) -> Option<Task> {
        let task = self.map.remove(itt)?;
        self.reserved -= task.reserved.bytes();
        Some(task)
    }

    /// Every task, taken out.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = (u32, Task)> + '_ {
        self.reserved = 0;
        self.map.drain()
    }

    pub(super) fn clear(&mut self) {
        self.reserved = 0;
        self.map.clear();
    }

    /// Bytes all tasks hold.
    pub(super) fn reserved(&self) -> u64 {
        debug_assert_eq!(
            self.reserved,
            self.map.values().map(|t| t.reserved.bytes()).sum::<u64>()
        );
        self.reserved
    }

    /// Count `need` bytes against task `itt`, which holds none yet.
    pub(super) fn reserve(&mut self, itt: u32, need: u64) {
        if let Some(t) = self.map.get_mut(&itt) {
            debug_assert!(t.reserved.is_none());
            self.reserved = self.reserved - t.reserved.bytes() + need;
            t.reserved = Reserved(need);
        }
    }
}

impl Task {
    /// The data direction tgt's counters sort this task under.
    pub(super) fn data_dir(&self) -> DataDir {
        data_dir(self.read, self.write, self.edtl)
    }
}

/// tgt's data direction of a command with these flags and expected length.
pub(super) fn data_dir(read: bool, write: bool, edtl: u32) -> DataDir {
    let len = u64::from(edtl);
    match (read, write) {
        (true, true) => DataDir::Bidi {
            read: len,
            write: len,
        },
        (true, false) => DataDir::Read(len),
        (false, true) => DataDir::Write(len),
        (false, false) => DataDir::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(want: u32) -> DataOutState {
        DataOutState {
            want,
            received: 0,
            buf: None,
            source: None,
            whole: None,
            next_r2t_offset: 0,
            r2t_sn: 0,
            outstanding: Vec::new(),
            unsolicited_open: false,
            unsolicited_end: 0,
            unsolicited_next: 0,
            unsolicited_data_sn: 0,
            have: Ranges::default(),
            gaps: Default::default(),
        }
    }

    fn piece(from: u8, len: usize) -> Bytes {
        (0..len).map(|i| from.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn one_piece_is_kept_without_a_copy() {
        let mut st = state(8);
        let data = piece(1, 8);
        assert_eq!(st.put(0, &data), 8);
        assert!(st.complete());
        let got = st.take();
        assert_eq!(got, data);
        assert_eq!(got.as_ptr(), data.as_ptr());
    }

    /// A source that counts its calls and hands out buffers with room to spare.
    #[derive(Debug, Default)]
    struct Counting {
        taken: std::sync::atomic::AtomicUsize,
        frozen: std::sync::atomic::AtomicUsize,
    }

    impl BufferSource for Counting {
        fn take(&self, len: usize) -> Vec<u8> {
            self.taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut v = Vec::with_capacity(len + 64);
            v.extend_from_slice(&[0xEE; 16]);
            v.clear(); // stale bytes past the length, as a recycled buffer has
            v
        }
        fn freeze(&self, buf: Vec<u8>) -> Bytes {
            self.frozen
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Bytes::from(buf)
        }
    }

    #[test]
    fn collected_data_out_uses_the_daemons_buffers() {
        use std::sync::atomic::Ordering::SeqCst;
        let src = Arc::new(Counting::default());
        let whole = piece(3, 24);
        let mut st = state(24);
        st.source = Some(src.clone());
        st.put(0, &whole.slice(0..8));
        st.put(16, &whole.slice(16..24));
        st.put(8, &whole.slice(8..16));
        assert!(st.complete());
        let ptr = st.buf.as_ref().expect("collected").as_ptr();
        let got = st.take();
        assert_eq!(got, whole);
        assert_eq!(got.as_ptr(), ptr, "the source's buffer, not a copy");
        assert_eq!((src.taken.load(SeqCst), src.frozen.load(SeqCst)), (1, 1));
        // A single piece needs no buffer at all.
        let mut st = state(8);
        st.source = Some(src.clone());
        st.put(0, &whole.slice(0..8));
        assert_eq!(st.take(), whole.slice(0..8));
        assert_eq!((src.taken.load(SeqCst), src.frozen.load(SeqCst)), (1, 1));
        // Short data (the initiator sent less than wanted) is zero-filled to `want`.
        let mut st = state(12);
        st.source = Some(src.clone());
        st.put(4, &whole.slice(0..4));
        assert_eq!(&st.take()[..], &[0, 0, 0, 0, 3, 4, 5, 6, 0, 0, 0, 0]);
    }

    #[test]
    fn pieces_in_any_order_land_at_their_offsets() {
        let whole = piece(10, 12);
        let parts = |r: std::ops::Range<usize>| whole.slice(r);
        // In order.
        let mut st = state(12);
        for r in [0..4, 4..8, 8..12] {
            st.put(r.start as u32, &parts(r));
        }
        assert!(st.complete());
        assert_eq!(st.take(), whole);
        // A later burst first, then the earlier ones; the last one runs past `want`.
        let mut st = state(10);
        st.put(8, &parts(8..12));
        st.put(0, &parts(0..4));
        assert!(!st.complete());
        st.put(4, &parts(4..8));
        assert!(st.complete());
        assert_eq!(st.take(), whole.slice(..10));
        // Missing data reads as zeros.
        let mut st = state(8);
        st.put(2, &parts(2..4));
        assert_eq!(&st.take()[..], &[0, 0, 12, 13, 0, 0, 0, 0]);
    }

    #[test]
    fn ranges_merge_and_name_what_is_missing() {
        let mut r = Ranges::default();
        r.insert(100, 200);
        r.insert(300, 400);
        r.insert(0, 50);
        assert_eq!(r.ranges(), &[(0, 50), (100, 200), (300, 400)]);
        assert_eq!(r.missing(500), vec![(50, 100), (200, 300), (400, 500)]);
        // Adjacent and overlapping pieces merge.
        r.insert(50, 100);
        r.insert(150, 320);
        assert_eq!(r.ranges(), &[(0, 400)]);
        assert_eq!(r.covered(), 400);
        assert_eq!(r.missing(400), vec![]);
        assert_eq!(r.missing(450), vec![(400, 450)]);
        r.insert(10, 20);
        assert_eq!(r.ranges(), &[(0, 400)]);
    }

    #[test]
    fn ranges_are_bounded_by_forgetting_the_smallest() {
        let mut r = Ranges::default();
        for i in 0..(MAX_RANGES as u32 + 10) {
            // Every other 8 bytes; the first one a little larger.
            r.insert(i * 16, i * 16 + if i == 0 { 12 } else { 8 });
        }
        assert_eq!(r.ranges().len(), MAX_RANGES);
        // Forgotten ranges are missing (asked again), never claimed.
        let want = (MAX_RANGES as u32 + 10) * 16;
        let missing: u32 = r.missing(want).iter().map(|m| m.1 - m.0).sum();
        assert_eq!(missing + r.covered(), want);
        assert_eq!(r.ranges()[0], (0, 12));
    }

    #[test]
    fn a_reassigned_write_keeps_what_arrived_and_asks_for_the_gaps() {
        let whole = piece(1, 4096);
        let mut st = state(4096);
        st.put(0, &whole.slice(0..1024));
        st.put(2048, &whole.slice(2048..3072));
        st.outstanding.push(OutstandingR2t {
            ttt: Ttt(9),
            offset: 3072,
            len: 1024,
            received: 0,
            next_data_sn: 0,
        });
        st.reassigned();
        assert_eq!(st.received, 2048);
        assert_eq!(Vec::from(st.gaps.clone()), vec![(1024, 2048), (3072, 4096)]);
        assert!(st.outstanding.is_empty());
        st.put(1024, &whole.slice(1024..2048));
        st.put(3072, &whole.slice(3072..4096));
        assert!(st.complete());
        assert_eq!(st.take(), whole);
    }
}
