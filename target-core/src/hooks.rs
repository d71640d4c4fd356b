//! Things the sans-IO core asks of the daemon: running an administrator's program
//! (tgt's `RedirectCallback`), and the buffers a WRITE's Data-Out is collected in.
//! target-core never starts a process itself; the daemon installs a
//! [`ProgramRunner`] with [`crate::Core::set_runner`] and a [`BufferSource`] with
//! [`crate::Core::set_buffers`].

use bytes::Bytes;
use std::fmt::Debug;

/// Runs an administrator's program and returns what it printed.
pub trait ProgramRunner: Send + Sync + Debug {
    /// Run `argv[0]` with the other arguments (no shell) and return its standard
    /// output, or `None` when it could not start, failed or took too long (it is then
    /// ended). Blocks the calling thread meanwhile, briefly.
    fn run(&self, argv: &[String]) -> Option<String>;
}

/// Where the buffer that collects a WRITE's Data-Out comes from, and where it goes
/// when the store has written it.
///
/// Without one the core allocates a plain vector per command. A daemon that maps
/// large allocations on their own (so that memory returns to the system) pays an
/// `mmap`, a page fault per page and an `munmap` for each such buffer: measured on
/// 1 MiB WRITEs, page faults took a quarter of the event loop's time. A source can
/// hand out buffers whose pages are already mapped and take them back.
pub trait BufferSource: Send + Sync + Debug {
    /// An empty vector with room for `len` bytes (its capacity may be larger).
    fn take(&self, len: usize) -> Vec<u8>;

    /// `buf`, filled, as `Bytes`; the source may take the buffer back when the last
    /// reference drops.
    fn freeze(&self, buf: Vec<u8>) -> Bytes;
}
