//! Handing a connection's storage requests to their stores, the same way in both
//! adapters: a request its store can answer at once (a small cached read, a RAM store;
//! [`scsi_sbc::BlockStore::execute_nowait`]) completes right here on the event-loop
//! thread; a plain read, write or flush of an `aio` store goes on this thread's
//! io_uring ([`crate::ring`]); anything else goes to the worker pool. Ring and pool
//! completions come back through the adapter's own route (a mio queue and waker, a
//! tokio channel).

use backends::{Completion, WorkerPool};
use scsi_sbc::BlockOp;
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
    let untouched = conn.reads_go_out_untouched();
    while let Some(req) = conn.poll_io() {
        // A large read whose data only goes to the socket: the store may lend its
        // file's pages (`backends::mapped`), on a worker (faulting them in may wait
        // for the disk).
        if let BlockOp::Read { offset, len } = req.op {
            if untouched && req.store.reads_for_send(len) && !req.store.takes_own_submissions() {
                pool.submit_read_for_send(req.store, offset, len, route(req.tag));
                continue;
            }
        }
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
