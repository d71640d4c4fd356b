//! Worker threads that run block operations off the event loop.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};

use crate::BackendError;

/// What a worker hands back when an operation finishes. It runs on the worker thread,
/// so it should only route the result (push + wake, send on a channel) and return.
pub type Completion = scsi_sbc::OpDone;

/// A fixed set of named threads (`tgtd-io-0`, `tgtd-io-1`, ...) that run
/// [`BlockStore::execute`] for submitted operations, first come first served.
///
/// The pool knows nothing of runtimes: each job carries a [`Completion`] callback,
/// called on the worker with the result. A mio loop pushes to a queue and pokes its
/// `Waker`; a tokio task sends on a channel.
///
/// A panic inside a store completes the job with [`IoErrorKind::Other`] (HARDWARE
/// ERROR to the initiator) and the worker carries on; a panic inside a completion is
/// logged and the worker carries on.
///
/// Dropping the pool stops it: no new jobs can be submitted (drop needs ownership),
/// every queued job still runs and completes, and the threads are joined.
#[derive(Debug)]
pub struct WorkerPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Workers waiting on `ready`.
    sleeping: usize,
    /// Notifications sent and not yet taken by a waking worker. A submit wakes a
    /// worker only when more are asleep than are already being woken: a worker that
    /// is awake takes queued jobs before it sleeps, so the futex system call of a
    /// notification is saved whenever one is running.
    waking: usize,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("jobs", &self.jobs.len())
            .field("closed", &self.closed)
            .finish()
    }
}

struct Job {
    store: Arc<dyn BlockStore>,
    op: BlockOp,
    done: Completion,
    /// A read whose data only goes to a socket: run as
    /// [`BlockStore::read_for_send`].
    for_send: bool,
}

impl WorkerPool {
    /// Start `threads` workers (at least one; tgt runs 16 per LUN).
    ///
    /// # Panics
    /// If the OS refuses to start a thread, as [`std::thread::spawn`] does; use
    /// [`try_new`](Self::try_new) to get an error instead.
    pub fn new(threads: usize) -> Self {
        Self::try_new(threads).expect("the OS refused to start an I/O worker thread")
    }

    /// Start `threads` workers (at least one), or report why the OS would not.
    pub fn try_new(threads: usize) -> Result<Self, BackendError> {
        Self::named(threads, "tgtd-io")
    }

    /// [`WorkerPool::try_new`] with threads named `PREFIX-0`, `PREFIX-1`, ...
    pub fn named(threads: usize, prefix: &str) -> Result<Self, BackendError> {
        let mut pool = WorkerPool {
            shared: Arc::default(),
            threads: Vec::with_capacity(threads.max(1)),
        };
        for n in 0..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let handle = thread::Builder::new()
                .name(format!("{prefix}-{n}"))
                .spawn(move || worker(&shared))
                // Dropping `pool` here joins the workers already started.
                .map_err(|source| BackendError::Spawn { source })?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queue `op` on `store`; a worker runs `store.execute(&op)` and then calls
    /// `done(result)` on its own thread. Never blocks on I/O.
    pub fn submit(&self, store: Arc<dyn BlockStore>, op: BlockOp, done: Completion) {
        self.queue(Job {
            store,
            op,
            done,
            for_send: false,
        });
    }

    /// Queue a read of `len` bytes at `offset` whose data nothing will look at but
    /// the kernel (it goes to a socket as it is): a worker runs
    /// [`BlockStore::read_for_send`], which may answer with the file's own pages.
    pub fn submit_read_for_send(
        &self,
        store: Arc<dyn BlockStore>,
        offset: u64,
        len: u64,
        done: Completion,
    ) {
        self.queue(Job {
            store,
            op: BlockOp::Read { offset, len },
            done,
            for_send: true,
        });
    }

    fn queue(&self, job: Job) {
        let mut queue = self.lock();
        queue.jobs.push_back(job);
        let wake = queue.sleeping > queue.waking;
        if wake {
            queue.waking += 1;
        }
        drop(queue);
        if wake {
            self.shared.ready.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        lock(&self.shared)
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_all();
        for handle in self.threads.drain(..) {
            // Workers catch every panic of a job, so a join error cannot carry
            // anything worth re-raising during drop.
            let _ = handle.join();
        }
    }
}

/// The queue holds only plain data, and no code that can panic runs under its lock;
/// a poisoned lock is still a consistent queue.
fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Queue> {
    shared.queue.lock().unwrap_or_else(PoisonError::into_inner)
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut queue = lock(shared);
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue.sleeping += 1;
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                queue.sleeping -= 1;
                // Woken by a submit (or spuriously, or by the close): either way one
                // pending notification is accounted for; a missed count only costs a
                // spare notification later.
                queue.waking = queue.waking.saturating_sub(1);
            }
        };
        run(job);
    }
}

fn run(
    Job {
        store,
        op,
        done,
        for_send,
    }: Job,
) {
    let execute = || match op {
        BlockOp::Read { offset, len } if for_send => store.read_for_send(offset, len),
        _ => store.execute(&op),
    };
    let result = panic::catch_unwind(AssertUnwindSafe(execute)).unwrap_or_else(|_| {
        tracing::error!(
            ?store,
            ?op,
            "backing store panicked; completing with a hardware error"
        );
        Err(IoErrorKind::Other)
    });
    if panic::catch_unwind(AssertUnwindSafe(|| done(result))).is_err() {
        tracing::error!(?op, "I/O completion callback panicked; completion lost");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Barrier};
    use std::time::Duration;

    /// Answers a read with the offset's bytes, so each completion names its job.
    #[derive(Debug)]
    struct Echo;

    impl BlockStore for Echo {
        fn size(&self) -> u64 {
            u64::MAX
        }
        fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
            match op {
                BlockOp::Read { offset, .. } => Ok(Bytes::copy_from_slice(&offset.to_be_bytes())),
                _ => Ok(Bytes::new()),
            }
        }
        fn read_for_send(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
            Ok(Bytes::from(format!("send {offset} {len}")))
        }
    }

    /// Every call waits at a barrier: only completes if that many run at once.
    #[derive(Debug)]
    struct Rendezvous(Barrier);

    impl BlockStore for Rendezvous {
        fn size(&self) -> u64 {
            0
        }
        fn execute(&self, _: &BlockOp) -> Result<Bytes, IoErrorKind> {
            self.0.wait();
            Ok(Bytes::new())
        }
    }

    #[derive(Debug)]
    struct Slow;

    impl BlockStore for Slow {
        fn size(&self) -> u64 {
            0
        }
        fn execute(&self, _: &BlockOp) -> Result<Bytes, IoErrorKind> {
            thread::sleep(Duration::from_millis(5));
            Ok(Bytes::new())
        }
    }

    #[derive(Debug)]
    struct Panics;

    impl BlockStore for Panics {
        fn size(&self) -> u64 {
            0
        }
        fn execute(&self, _: &BlockOp) -> Result<Bytes, IoErrorKind> {
            panic!("store bug");
        }
    }

    fn read(offset: u64) -> BlockOp {
        BlockOp::Read { offset, len: 8 }
    }

    #[test]
    fn thousand_jobs_complete_exactly_once() {
        let pool = WorkerPool::new(4);
        assert_eq!(pool.threads(), 4);
        let store: Arc<dyn BlockStore> = Arc::new(Echo);
        let (tx, rx) = mpsc::channel();
        for i in 0..1000u64 {
            let tx = tx.clone();
            pool.submit(
                Arc::clone(&store),
                read(i),
                Box::new(move |r| {
                    let name = thread::current().name().map(str::to_owned);
                    tx.send((r, name)).unwrap();
                }),
            );
        }
        drop(tx);
        let mut seen = HashSet::new();
        for (result, name) in rx.iter() {
            let bytes = result.unwrap();
            let id = u64::from_be_bytes(bytes[..].try_into().unwrap());
            assert!(seen.insert(id), "job {id} completed twice");
            assert!(name.unwrap().starts_with("tgtd-io-"));
        }
        assert_eq!(seen, (0..1000).collect::<HashSet<_>>());
    }

    /// A read submitted for a socket runs as the store's `read_for_send`; a plain
    /// submit of the same read as `execute`.
    #[test]
    fn reads_for_send_run_as_read_for_send() {
        let pool = WorkerPool::new(2);
        let store: Arc<dyn BlockStore> = Arc::new(Echo);
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        pool.submit_read_for_send(store.clone(), 7, 9, Box::new(move |r| t.send(r).unwrap()));
        assert_eq!(rx.recv().unwrap(), Ok(Bytes::from("send 7 9")));
        pool.submit(store, read(7), Box::new(move |r| tx.send(r).unwrap()));
        assert_eq!(
            rx.recv().unwrap(),
            Ok(Bytes::copy_from_slice(&7u64.to_be_bytes()))
        );
    }

    #[test]
    fn jobs_run_in_parallel_on_every_worker() {
        let pool = WorkerPool::new(4);
        let store: Arc<dyn BlockStore> = Arc::new(Rendezvous(Barrier::new(4)));
        let (tx, rx) = mpsc::channel();
        for i in 0..4 {
            let tx = tx.clone();
            pool.submit(
                Arc::clone(&store),
                read(i),
                Box::new(move |r| {
                    tx.send((r, thread::current().name().unwrap().to_owned()))
                        .unwrap();
                }),
            );
        }
        let names: HashSet<String> = (0..4)
            .map(|_| {
                let (r, name) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                r.unwrap();
                name
            })
            .collect();
        let want: HashSet<String> = (0..4).map(|n| format!("tgtd-io-{n}")).collect();
        assert_eq!(names, want);
    }

    #[test]
    fn drop_finishes_queued_jobs_and_joins() {
        let pool = WorkerPool::new(2);
        let done = Arc::new(AtomicUsize::new(0));
        let store: Arc<dyn BlockStore> = Arc::new(Slow);
        for i in 0..40 {
            let done = Arc::clone(&done);
            pool.submit(
                Arc::clone(&store),
                read(i),
                Box::new(move |r| {
                    r.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }),
            );
        }
        drop(pool);
        assert_eq!(done.load(Ordering::SeqCst), 40);
        // Every worker has let go of the store: the threads are gone.
        assert_eq!(Arc::strong_count(&store), 1);
    }

    #[test]
    fn store_panic_completes_with_other_and_worker_survives() {
        let pool = WorkerPool::new(1);
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        pool.submit(
            Arc::new(Panics),
            read(0),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        pool.submit(
            Arc::new(Echo),
            read(7),
            Box::new(move |r| tx2.send(r).unwrap()),
        );
        assert_eq!(rx.recv().unwrap(), Err(IoErrorKind::Other));
        assert_eq!(rx.recv().unwrap().unwrap(), 7u64.to_be_bytes().to_vec());
    }

    #[test]
    fn completion_panic_does_not_kill_the_worker() {
        let pool = WorkerPool::new(1);
        let (tx, rx) = mpsc::channel();
        pool.submit(
            Arc::new(Echo),
            read(1),
            Box::new(|_| panic!("callback bug")),
        );
        pool.submit(
            Arc::new(Echo),
            read(2),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        assert_eq!(rx.recv().unwrap().unwrap(), 2u64.to_be_bytes().to_vec());
    }

    #[test]
    fn zero_threads_means_one() {
        let pool = WorkerPool::new(0);
        assert_eq!(pool.threads(), 1);
        let (tx, rx) = mpsc::channel();
        pool.submit(
            Arc::new(Echo),
            read(3),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        assert!(rx.recv().unwrap().is_ok());
    }
}
