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
}
