//! Handing a connection's storage requests to their stores, the same way in both
//! adapters: a request its store can answer at once (a cached read lent from the
//! file's mapping, [`scsi_sbc::BlockStore::read_lent`]; a small cached read, a RAM
//! store, [`scsi_sbc::BlockStore::execute_nowait`]) completes right here on the
//! event-loop thread; a plain read, write or flush of an `aio` store goes on this thread's
//! io_uring ([`crate::ring`]); anything else goes to the worker pool. Ring and pool
//! completions come back through the adapter's own route (a mio queue and waker, a
//! tokio channel).

use backends::{Completion, WorkerPool};
use scsi_sbc::BlockOp;
use std::time::Instant;
use target_core::connection::{Connection, IoCompletion, IoTag};

/// Drain `conn`'s I/O requests. `route(tag)` makes the callback that carries a
/// completion from a pool worker (or a ring, or an LU's own threads) back to this
/// connection.
///
/// With data digests on, a READ's completion callback first computes the digests of
/// the Data-In segments the data will be cut into
/// ([`target_core::connection::DataInLayout::crcs`]), on the
/// thread that read it while the data is in that CPU's cache; the connection then
/// sends them without another pass over the data on its loop (measured: the digest
/// pass was 11% of the loop's time on 128 KiB reads).
pub fn dispatch<F>(
    conn: &mut Connection,
    pool: &WorkerPool,
    now: Instant,
    mut route: impl FnMut(IoTag) -> F,
) where
    F: FnOnce(IoCompletion) + Send + 'static,
{
    let untouched = conn.reads_go_out_untouched();
    let layout = conn.data_in_layout();
    // Made only for operations that leave this thread; each counts as in flight
    // (`busy_poll::OffThread`, whether the loop may spin) until its callback runs.
    let mut done = |tag: IoTag, op: &BlockOp| -> Completion {
        let deliver = route(tag);
        let off_thread = crate::busy_poll::OffThread::start();
        match (op, layout) {
            (BlockOp::Read { .. }, Some(l)) => Box::new(move |result| {
                let crcs = result
                    .as_ref()
                    .ok()
                    .filter(|d| !d.is_empty())
                    .map(|d| l.crcs(d));
                drop(off_thread);
                deliver(IoCompletion { tag, result, crcs })
            }),
            _ => Box::new(move |result| {
                drop(off_thread);
                deliver(IoCompletion::new(tag, result))
            }),
        }
    };
    while let Some(req) = conn.poll_io() {
        if let BlockOp::Read { offset, len } = req.op {
            if untouched {
                // Data that only goes to the socket, all in the page cache: lent
                // from the store's file mapping, on this thread.
                if let Some(result) = req.store.read_lent(offset, len) {
                    conn.handle_io_completion(IoCompletion::new(req.tag, result), now);
                    continue;
                }
                // A large one: the store may map its file's pages on a worker
                // (`backends::mapped`; faulting them in may wait for the disk).
                if req.store.reads_for_send(len) && !req.store.takes_own_submissions() {
                    pool.submit_read_for_send(req.store, offset, len, done(req.tag, &req.op));
                    continue;
                }
            }
        }
        match req.store.execute_nowait(&req.op) {
            Some(result) => conn.handle_io_completion(IoCompletion::new(req.tag, result), now),
            None => match crate::ring::try_queue(&req.store, &req.op, done(req.tag, &req.op)) {
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
