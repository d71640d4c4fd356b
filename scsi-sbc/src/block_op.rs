//! The block-operation vocabulary shared by the SCSI layer and the backing stores.

use bytes::Bytes;

/// One operation on a backing store, in bytes (not blocks): the store knows nothing of
/// block sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOp {
    /// Read `len` bytes at `offset`.
    Read {
        /// Byte offset into the store.
        offset: u64,
        /// Number of bytes.
        len: u64,
    },
    /// Write `data` at `offset`; with `fua` the data must be durable before completion.
    Write {
        /// Byte offset into the store.
        offset: u64,
        /// The bytes to write.
        data: Bytes,
        /// Force unit access: make durable before completing.
        fua: bool,
    },
    /// Make every completed write durable (SYNCHRONIZE CACHE).
    Flush,
}

/// Why a store operation failed, reduced to what decides the SCSI sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoErrorKind {
    /// The medium could not be read (MEDIUM ERROR, UNRECOVERED READ ERROR).
    ReadError,
    /// The medium could not be written (MEDIUM ERROR, WRITE ERROR).
    WriteError,
    /// The store has no room left (DATA PROTECT / SPACE ALLOCATION FAILED).
    NoSpace,
    /// The store is read-only (DATA PROTECT, WRITE PROTECTED).
    ReadOnly,
    /// Anything else (HARDWARE ERROR).
    Other,
}
