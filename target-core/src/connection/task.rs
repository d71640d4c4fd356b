//! One SCSI task: collecting its data-out (immediate, unsolicited, solicited by R2T)
//! until it can run.

use bytes::{Bytes, BytesMut};
use iscsi_proto::{LunField, Ttt};
use scsi_sbc::BlockOp;
use std::sync::Arc;

use crate::registry::{DataDir, LuStats, Lun};

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
    pub(super) buf: Option<BytesMut>,
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
            let buf = self
                .buf
                .get_or_insert_with(|| BytesMut::with_capacity(want));
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
        n
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
                b.freeze()
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
    /// (`limits.rs`): write data to collect, or read data to fetch.
    pub(super) reserved: u64,
    /// The store its block operation went to, so that a TASK REASSIGN can run it
    /// again (ErrorRecoveryLevel 2, `erl2.rs`).
    pub(super) io_store: Option<Arc<dyn scsi_sbc::BlockStore>>,
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
            whole: None,
            next_r2t_offset: 0,
            r2t_sn: 0,
            outstanding: Vec::new(),
            unsolicited_open: false,
            unsolicited_end: 0,
            unsolicited_next: 0,
            unsolicited_data_sn: 0,
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
}
