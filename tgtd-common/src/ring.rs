//! The event-loop thread's io_uring (`--bstype aio`), shared by both adapters.
//!
//! Each loop thread calls [`init_thread`] once and watches the descriptor it returns;
//! [`crate::io::dispatch`] queues ring operations on the calling thread's ring; the
//! loop calls [`submit`] once per turn and [`reap`] when the descriptor is readable.
//! A thread without a ring (io_uring unavailable, or not a loop thread) sends every
//! operation to the worker pool.

use backends::uring::{availability, Ring};
use backends::{BlockOp, BlockStore, Completion};
use std::cell::RefCell;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

thread_local! {
    static RING: RefCell<Option<Ring>> = const { RefCell::new(None) };
}

/// Give this thread a ring; a descriptor (the caller's own duplicate) to watch for
/// its completions, or `None` when io_uring cannot be used (said once in the log by
/// the first `aio` store).
pub fn init_thread() -> Option<OwnedFd> {
    availability().as_ref().ok()?;
    let made = Ring::new().and_then(|ring| {
        let fd = dup_eventfd(ring.eventfd())?;
        Ok((ring, fd))
    });
    match made {
        Ok((ring, fd)) => {
            RING.with(|r| *r.borrow_mut() = Some(ring));
            Some(fd)
        }
        Err(e) => {
            tracing::warn!(
                "no io_uring for this event loop ({e}): aio stores use the thread pool here"
            );
            None
        }
    }
}

/// A duplicate of the ring's eventfd (`fcntl(F_DUPFD_CLOEXEC)`).
fn dup_eventfd(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: `fd` is the eventfd of a ring that is alive for this whole call.
    #[allow(unsafe_code)]
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned()
}

/// Queue `op` on this thread's ring when it is a ring operation of a ring store;
/// otherwise give `done` back.
pub fn try_queue(
    store: &Arc<dyn BlockStore>,
    op: &BlockOp,
    done: Completion,
) -> Result<(), Completion> {
    RING.with(|r| match r.try_borrow_mut() {
        Ok(mut ring) => match ring.as_mut() {
            Some(ring) => ring.try_queue(store, op, done),
            None => Err(done),
        },
        // Called from inside a completion being reaped: the pool takes it.
        Err(_) => Err(done),
    })
}

/// Submit what this thread queued (one system call, none when nothing is queued).
pub fn submit() {
    RING.with(|r| {
        if let Ok(mut ring) = r.try_borrow_mut() {
            if let Some(ring) = ring.as_mut() {
                ring.submit();
            }
        }
    });
}

/// Finish the operations whose completions are ready; how many finished.
pub fn reap() -> usize {
    RING.with(|r| match r.try_borrow_mut() {
        Ok(mut ring) => ring.as_mut().map_or(0, Ring::reap),
        Err(_) => 0,
    })
}

/// Drop this thread's ring, waiting for its operations in flight (loop exit).
pub fn close_thread() {
    let ring = RING.with(|r| r.borrow_mut().take());
    drop(ring);
}
