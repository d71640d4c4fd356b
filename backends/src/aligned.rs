//! Buffers for O_DIRECT I/O, aligned without unsafe code.

use bytes::{Bytes, BytesMut};

use crate::DIRECT_ALIGN;

/// A byte buffer whose data starts at a [`DIRECT_ALIGN`] boundary, without unsafe
/// code: a little more is allocated and the aligned window is used. Frozen, the
/// window becomes [`Bytes`] without a copy.
pub(crate) struct AlignedBuf {
    buf: BytesMut,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize) -> AlignedBuf {
        let buf = BytesMut::zeroed(len + DIRECT_ALIGN);
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedBuf { buf, start, len }
    }

    /// No alignment needed (no O_DIRECT): exactly `len` bytes.
    pub(crate) fn plain(len: usize) -> AlignedBuf {
        AlignedBuf {
            buf: BytesMut::zeroed(len),
            start: 0,
            len,
        }
    }

    pub(crate) fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    pub(crate) fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Make it hold a copy of `data`, growing (and re-aligning) when too small.
    pub(crate) fn fill_from(&mut self, data: &[u8]) {
        if self.buf.len() < data.len() + DIRECT_ALIGN {
            *self = AlignedBuf::zeroed(data.len());
        }
        self.len = data.len();
        self.as_mut().copy_from_slice(data);
    }

    pub(crate) fn freeze(self) -> Bytes {
        self.buf.freeze().slice(self.start..self.start + self.len)
    }
}
