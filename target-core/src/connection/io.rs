//! Storage requests leaving the connection, and their completions coming back.

use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};
use std::fmt;
use std::sync::Arc;

/// Opaque tag of one storage request; never reused within a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IoTag(pub u64);

/// A block operation the adapter must run on a worker and report back with
/// [`crate::connection::Connection::handle_io_completion`].
pub struct IoRequest {
    /// Tag to return with the completion.
    pub tag: IoTag,
    /// The store to run it on.
    pub store: Arc<dyn BlockStore>,
    /// The operation.
    pub op: BlockOp,
}

impl fmt::Debug for IoRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoRequest")
            .field("tag", &self.tag)
            .field("op", &self.op)
            .finish()
    }
}

/// The result of an [`IoRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoCompletion {
    /// The request's tag.
    pub tag: IoTag,
    /// Read data (empty for writes and flushes), or why it failed.
    pub result: Result<Bytes, IoErrorKind>,
    /// The data digests of the read data's Data-In segments, when whoever ran the
    /// read computed them ([`DataInLayout::crcs`]); `None`: the connection computes
    /// them when it sends the data.
    pub crcs: Option<SegmentCrcs>,
}

impl IoCompletion {
    /// A completion without precomputed digests.
    pub fn new(tag: IoTag, result: Result<Bytes, IoErrorKind>) -> IoCompletion {
        IoCompletion {
            tag,
            result,
            crcs: None,
        }
    }
}

/// How read data is cut into Data-In PDUs (RFC 7143 §11.7): segments of at most
/// the initiator's MaxRecvDataSegmentLength that do not cross a MaxBurstLength
/// boundary. One rule for the connection that sends them and for a store worker
/// that computes their digests ahead ([`Connection::data_in_layout`]).
///
/// [`Connection::data_in_layout`]: crate::connection::Connection::data_in_layout
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataInLayout {
    /// Largest data segment.
    pub segment: usize,
    /// Largest sequence (burst).
    pub burst: usize,
}

impl DataInLayout {
    /// The segments of `len` bytes of data, as (start, end).
    pub fn segments(self, len: usize) -> impl Iterator<Item = (usize, usize)> {
        let seg = self.segment.max(1);
        let burst = self.burst.max(1);
        let mut off = 0;
        std::iter::from_fn(move || {
            if off >= len {
                return None;
            }
            let burst_end = (off / burst + 1) * burst;
            let end = (off + seg).min(len).min(burst_end);
            let r = (off, end);
            off = end;
            Some(r)
        })
    }

    /// CRC32C (without padding) of each segment of `data`: on a store worker right
    /// after the read, while the data is in that CPU's cache, so that the
    /// connection's loop does not read it a second time for the digests.
    pub fn crcs(self, data: &[u8]) -> SegmentCrcs {
        SegmentCrcs {
            layout: self,
            len: data.len(),
            crcs: self
                .segments(data.len())
                .map(|(a, b)| iscsi_proto::digest::crc32c(&data[a..b]))
                .collect(),
        }
    }
}

/// Data digests of a read's Data-In segments, computed ahead ([`DataInLayout::crcs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCrcs {
    /// The cut they were computed for.
    pub layout: DataInLayout,
    /// The length of the data they cover.
    pub len: usize,
    /// One CRC per segment, in order.
    pub crcs: Vec<u32>,
}
