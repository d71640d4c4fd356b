//! Handing a connection's storage requests to their stores, the same way in both
//! adapters: a request its store can answer at once (a small cached read, a RAM store;
//! [`scsi_sbc::BlockStore::execute_nowait`]) completes right here on the event-loop
//! thread; a plain read, write or flush of an `aio` store goes on this thread's
//! io_uring ([`crate::ring`]); anything else goes to the worker pool. Ring and pool
//! completions come back through the adapter's own route (a mio queue and waker, a
//! tokio channel).

use backends::{Completion, WorkerPool};
use std::time::Instant;
use target_core::connection::{Connection, IoCompletion, IoTag};

/// Drain `conn`'s I/O requests. `route(tag)` makes the callback that carries a
/// pool completion back to this connection.
pub fn dispatch(
    conn: &mut Connection,
    pool: &WorkerPool,
    now: Instant,
    mut route: impl FnMut(IoTag) -> Completion,
) {
    while let Some(req) = conn.poll_io() {
        match req.store.execute_nowait(&req.op) {
            Some(result) => conn.handle_io_completion(
                IoCompletion {
                    tag: req.tag,
                    result,
                },
                now,
            ),
            None => match crate::ring::try_queue(&req.store, &req.op, route(req.tag)) {
                Ok(()) => {}
                // The LU's own threads (`nr_threads`, rbd), else the daemon's pool.
                Err(done) if req.store.takes_own_submissions() => {
                    match req.store.submit_own(&req.op, done) {
                        Ok(()) => {}
                        Err(done) => pool.submit(req.store, req.op, done),
                    }
                }
                Err(done) => pool.submit(req.store, req.op, done),
            },
        }
    }
}
