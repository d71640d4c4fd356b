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
            let buf = self.buf.get_or_insert_with(|| {
                let mut b = BytesMut::with_capacity(want);
                b.resize(want, 0);
                b
            });
            buf[offset as usize..end as usize].copy_from_slice(&data[..n as usize]);
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
        self.buf.take().map(BytesMut::freeze).unwrap_or_default()
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
