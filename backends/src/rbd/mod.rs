//! `--bstype rbd`: a Ceph RBD image as the backing store, through librbd's
//! asynchronous calls.
//!
//! - [`ffi`] loads librados and librbd at run time and wraps the dozen calls used;
//!   all the `unsafe` of this store is there.
//! - [`store`] is the [`BlockStore`](scsi_sbc::BlockStore): plain reads, writes,
//!   flushes, WRITE SAME, UNMAP and COMPARE AND WRITE go to librbd as `rbd_aio_*`
//!   calls from the event loop ([`BlockStore::submit_own`](scsi_sbc::BlockStore::submit_own))
//!   and complete on librbd's own callback thread through the same completion closure
//!   a worker would call; the rest (VERIFY, ORWRITE, EXTENDED COPY, GET LBA STATUS)
//!   runs on a worker, made of the same asynchronous calls waited for.
//! - [`conn`] holds the image and its cluster handle, and connects again when the
//!   cluster fenced this gateway off (blocklisted its client after another gateway
//!   broke its exclusive lock, taking it for dead).
//! - An operation not answered within the LU's timeout (`--bsopts timeout=S`, 30 s
//!   by default) completes with [`IoErrorKind::TimedOut`](scsi_sbc::IoErrorKind):
//!   ABORTED COMMAND, which initiators retry. librbd still owns its buffers until it
//!   answers; the late answer is dropped.

mod conn;
mod ffi;
mod store;

pub use ffi::LoadError;
pub use store::{RbdOptions, RbdStore, DEFAULT_TIMEOUT};

/// Whether librados and librbd can be loaded here (an `Err` names the missing
/// library and the package that provides it).
pub fn available() -> Result<(), LoadError> {
    ffi::available()
}
