//! Backing stores and the worker pool that runs their I/O.
//!
//! This is the I/O side of the target: the sans-IO cores (`target-core`, `scsi-sbc`)
//! describe block operations as [`BlockOp`] values; this crate opens the stores that
//! execute them and owns the threads that run them off the event loop.
//!
//! - [`open_store`] opens a store the way `tgtadm --mode logicalunit --op new
//!   --bstype T --backing-store PATH` names it ([`BsType`]).
//! - [`FileStore`] (`rdwr`): a regular file or block device, `pread`/`pwrite`.
//! - [`MemoryStore`] (`memory`): sparse RAM, for demos and tests.
//! - [`NullStore`] (`null`): reads zeros, drops writes, for benchmarks.
//! - [`RbdStore`] (`rbd`): a Ceph RBD image through librbd's asynchronous calls,
//!   the libraries loaded at run time (see [`rbd`]).
//! - [`FaultStore`] (`fault`): another store with injected failures, delays and held
//!   operations, changeable at run time; the rule syntax is in [`fault`].
//! - [`TapeStore`] (`ssc`): a tape image in tgt's format behind a virtual tape drive
//!   (`--device-type tape`); it runs whole SSC commands ([`BlockOp::Device`]).
//! - [`ChangerStore`] (`smc`): the medium changer of a virtual tape library
//!   (`--device-type changer`): its elements, and the drives' stores it loads.
//! - [`ErrorLogStore`]: logs an LU's failed operations, once per kind with the LBA
//!   range, then at most one summary per [`LOG_EVERY`].
//! - Small reads whose data is in memory (page cache, RAM store), and small
//!   whole-page buffered writes, can run on the caller's thread instead
//!   ([`BlockStore::execute_nowait`], up to [`INLINE_MAX`] and
//!   [`INLINE_WRITE_MAX`]).
//! - [`WorkerPool`]: named threads that run [`BlockStore::execute`] and hand each
//!   result to a callback, which is how every runtime routes completions home
//!   (mio: queue + `Waker`; tokio: channel).
//!
//! # Durability contract
//!
//! What an acknowledged (GOOD) command promises about the data surviving a crash of
//! the daemon or the machine:
//!
//! - With the LU's write cache on (caching mode page WCE=1, the default), an
//!   acknowledged WRITE is durable once a later SYNCHRONIZE CACHE has been
//!   acknowledged (the store `fdatasync`s on [`BlockOp::Flush`]).
//! - A WRITE with FUA, and any write while WCE=0 (the SCSI layer then sets FUA on
//!   every write: WRITE, WRITE SAME, COMPARE AND WRITE, ORWRITE, EXTENDED COPY), is
//!   durable when acknowledged: the store writes and `fdatasync`s before completing.
//! - WRITE AND VERIFY is durable when acknowledged, whatever the write cache.
//! - With `--bsoflags sync` (O_SYNC) every write is durable when acknowledged.
//! - UNMAP (and WRITE SAME with UNMAP) deallocates through the file system; like a
//!   write under WCE=1 it is durable after the next acknowledged SYNCHRONIZE CACHE.
//! - A failed flush is never followed by a successful one: after an `fdatasync`
//!   error the kernel may have dropped the pages it could not write, so
//!   [`FileStore`] fails every later flush (MEDIUM ERROR, WRITE ERROR) until the LU
//!   is opened again.
//! - `memory` and `null` stores keep nothing across a restart.
//!
//! ```
//! use std::sync::mpsc;
//! use backends::{open_store, BsType, OpenOptions, WorkerPool};
//! use scsi_sbc::BlockOp;
//!
//! let store = open_store(BsType::Memory, "16M", &OpenOptions::default()).unwrap();
//! let pool = WorkerPool::new(2);
//! let (tx, rx) = mpsc::channel();
//! let op = BlockOp::Read { offset: 4096, len: 512 };
//! pool.submit(store, op, Box::new(move |result| tx.send(result).unwrap()));
//! assert_eq!(rx.recv().unwrap().unwrap(), vec![0u8; 512]);
//! ```
// Unsafe code only where io_uring needs it (`uring`) and in the librbd bindings
// (`rbd::ffi`), each block with its SAFETY note.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
// This crate is the one place in the workspace allowed to own threads (the worker
// pool); the workspace clippy.toml bans `std::thread::spawn` for the sans-IO cores.
// We spawn through `std::thread::Builder` anyway (named threads, spawn errors
// reported), so this allow only guards against future uses.
#![allow(clippy::disallowed_methods)]

/// Largest read a store runs on the caller's thread ([`BlockStore::execute_nowait`]):
/// above it the copy takes long enough that a worker (and the second core) pays off.
/// (Measured: 128 KiB reads inline cost less CPU per command but lost a tenth to a
/// third of the throughput of sequential 128 KiB reads at queue depth 8.)
pub const INLINE_MAX: u64 = 64 * 1024;

/// Largest write a store runs on the caller's thread: the data was just read from the
/// socket by that thread, so the copy into the store runs from its cache.
pub const INLINE_WRITE_MAX: u64 = 128 * 1024;

mod aligned;
mod changer;
mod compound;
mod error;
pub mod fault;
mod file;
mod logged;
mod mapped;
mod memory;
mod null;
mod open;
mod pool;
pub mod pooled;
pub mod rbd;
pub mod recycle;
mod tape;
pub mod uring;

pub use changer::ChangerStore;
pub use error::BackendError;
pub use fault::FaultStore;
pub use file::FileStore;
pub use logged::{ErrorLogStore, LOG_EVERY};
pub use memory::MemoryStore;
pub use null::NullStore;
pub use open::{open_store, parse_size, BsType, OpenOptions, DIRECT_ALIGN};
pub use pool::{Completion, WorkerPool};
pub use pooled::PooledStore;
pub use rbd::RbdStore;
pub use tape::TapeStore;

/// Re-exported so users of this crate need not name `scsi-sbc` for the store vocabulary.
pub use scsi_sbc::{BlockOp, BlockStore, IoErrorKind, OpDone};

use bytes::{Bytes, BytesMut};

/// Length of the shared all-zero buffer. Zero-initialised statics live in `.bss`,
/// so this costs no file size and, until read, no memory.
const ZEROS_LEN: usize = 1 << 20;
static ZEROS: [u8; ZEROS_LEN] = [0; ZEROS_LEN];

/// `len` zero bytes. Up to 1 MiB this is a slice of a shared static buffer (no
/// allocation), which makes reads of unwritten space and of the null store free.
pub(crate) fn zeros(len: usize) -> Bytes {
    if len <= ZEROS_LEN {
        Bytes::from_static(&ZEROS[..len])
    } else {
        BytesMut::zeroed(len).freeze()
    }
}
