//! Pacing of long background work (the erase of a SANITIZE) to a byte rate, so that
//! it leaves bandwidth to the other LUs on the same storage.
//!
//! target-core never waits or reads a clock: the daemon installs a [`Pacer`] (one that
//! sleeps, `backends::SleepPacer`) with [`crate::Core::set_pacer`]; without one, work
//! runs unpaced.

use std::fmt::Debug;

/// Makes paced runs.
pub trait Pacer: Send + Sync + Debug {
    /// Start pacing one operation to `bytes_per_sec` (never 0).
    fn start(&self, bytes_per_sec: u64) -> Box<dyn PaceRun>;
}

/// One paced operation.
pub trait PaceRun: Send {
    /// `done` bytes of the operation are finished: return once the rate allows the
    /// next piece (at once when the work is behind schedule).
    fn advance(&mut self, done: u64);
}
