//! One connection as a tokio task: wait for one input, feed it, drain the outputs.

use backends::WorkerPool;
use bytes::BytesMut;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use target_core::connection::{ConnConfig, Connection, IoCompletion, PeerInfo, Wake};
use target_core::Core;
use tgtd_common::txqueue::TxQueue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch, Notify};

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    pub(crate) pool: Arc<WorkerPool>,
    pub(crate) config: ConnConfig,
    /// Becomes true when the daemon shuts down: ask the initiator to log out.
    pub(crate) draining: watch::Sender<bool>,
    /// Moves after every management change (admin hook) and target reset.
    pub(crate) admin: watch::Sender<u64>,
    /// Connection tasks still running, for the shutdown drain.
    pub(crate) live: Arc<Live>,
    /// The connection loops: one single-threaded runtime per thread, so a
    /// connection's readiness, completions and writes stay on one thread (no
    /// cross-thread task wake-ups, which cost a context switch per command).
    pub(crate) loops: Vec<Handle>,
    /// Round-robin position for the next accepted connection.
    pub(crate) next_loop: AtomicUsize,
    /// Drop a connection whose responses have not been taken for this long.
    pub(crate) tx_stall: Option<std::time::Duration>,
}

/// Counts the connection tasks alive; shutdown waits for it to reach zero.
#[derive(Default)]
pub(crate) struct Live {
    count: AtomicUsize,
    gone: Notify,
}

impl Live {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.clone())
    }

    /// Resolves once no connection task is left.
    pub(crate) async fn all_gone(&self) {
        while self.count.load(Ordering::Acquire) > 0 {
            // `notify_one` keeps a permit, so a task ending between the check and
            // this wait is not missed.
            self.gone.notified().await;
        }
    }
}

struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.gone.notify_one();
    }
}

pub(crate) async fn accept_loop(l: TcpListener, shared: Arc<Shared>) {
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tracing::info!("connection from {peer}");
                hand_over(stream, shared.clone());
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Move an accepted connection to the next connection loop (its socket is
/// re-registered with that loop's reactor).
fn hand_over(stream: TcpStream, shared: Arc<Shared>) {
    let n = shared.loops.len();
    if n == 0 {
        tokio::spawn(serve(stream, shared));
        return;
    }
    let i = shared.next_loop.fetch_add(1, Ordering::Relaxed) % n;
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => return tracing::warn!("cannot hand a connection over: {e}"),
    };
    let handle = shared.loops[i].clone();
    handle.spawn(async move {
        match TcpStream::from_std(std_stream) {
            Ok(s) => serve(s, shared).await,
            Err(e) => tracing::warn!("cannot register a connection: {e}"),
        }
    });
}

/// How a connection task is woken from another thread (`Connection::set_waker`):
/// `notify_one` keeps a permit, so a wake before the task waits is not lost, and
/// `pending` lets the task see a wake at the top of a turn without polling the
/// Notify (its select is biased: a socket that is always readable would otherwise
/// keep the kick branch from being polled).
struct Kick {
    notify: Notify,
    pending: AtomicBool,
}

impl Wake for Kick {
    fn wake(&self) {
        self.pending.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// Free space offered to a read (refilled when under a quarter of it is left): as
/// mio's largest read window, so a 128 KiB Data-Out PDU arrives in one or two reads
/// and the buffer is not grown (and its partial PDU copied) along the way.
const READ_RESERVE: usize = 256 * 1024;

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let (mut rd, mut wr) = stream.into_split();
    let (ctx, mut crx) = mpsc::unbounded_channel::<IoCompletion>();
    let mut conn = Connection::new(
        shared.core.clone(),
        PeerInfo { peer, local },
        shared.config.clone(),
        Instant::now(),
    );
    let kick = Arc::new(Kick {
        notify: Notify::new(),
        pending: AtomicBool::new(false),
    });
    conn.set_waker(kick.clone());
    let _live = shared.live.enter();
    let mut admin = shared.admin.subscribe();
    let mut draining = shared.draining.subscribe();
    if *draining.borrow_and_update() {
        // Accepted while shutting down: dropped at once (it is still logging in).
        conn.request_logout(Instant::now());
    }
    let mut rbuf = BytesMut::with_capacity(READ_RESERVE);
    let mut tx = TxQueue::new();
    // One timer for the connection's deadlines, moved only when the deadline moves,
    // and one kick future, made again only after it fired: a new `Sleep` and
    // `Notified` per turn each registered (a lock) and removed (another) an entry
    // in the runtime's timer wheel or the Notify's waiter list, twice per command.
    let timer = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let kicked = kick.notify.notified();
    tokio::pin!(kicked);
    loop {
        let now = Instant::now();
        // What the biased select below polls only when neither finished I/O nor
        // the socket is ready, looked at here every turn (cheap loads), so that a
        // socket that is always readable does not hold them back: a deadline that
        // passed, a kick, a shutdown, a management change.
        if conn.poll_timeout().is_some_and(|at| at <= now) {
            conn.handle_timeout(now);
        }
        // A plain load first: the swap (a locked instruction) only after a kick.
        if kick.pending.load(Ordering::Acquire) && kick.pending.swap(false, Ordering::AcqRel) {
            conn.handle_input(&mut BytesMut::new(), now);
        }
        if draining.has_changed().unwrap_or(false) && *draining.borrow_and_update() {
            conn.request_logout(now);
        }
        if admin.has_changed().unwrap_or(false) {
            admin.borrow_and_update();
            conn.handle_input(&mut BytesMut::new(), now);
        }
        // Drain, in the order the Connection documents.
        tgtd_common::io::dispatch(&mut conn, &shared.pool, now, |_tag| {
            let ctx = ctx.clone();
            move |c: IoCompletion| {
                let _ = ctx.send(c);
            }
        });
        // What this connection queued on the thread's io_uring goes to the kernel.
        tgtd_common::ring::submit();
        tx.fill_from(&mut conn);
        match write_all(&mut wr, &mut tx, shared.tx_stall).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                // A stalled reader: the queue cannot drain, the socket goes without it.
                let secs = shared.tx_stall.unwrap_or_default().as_secs_f64();
                let detail = format!(
                    "{} bytes of responses not read for {secs} s; connection dropped",
                    tx.len()
                );
                conn.close_for_limit(target_core::limits::Limit::TxStall, &detail);
                tgtd_common::events::drain(&mut conn);
                return;
            }
            Err(_) => conn.handle_close(),
        }
        // A target reset or reinstatement: every connection re-checks, as after a
        // management change.
        if tgtd_common::events::drain(&mut conn) {
            shared.admin.send_modify(|g| *g = g.wrapping_add(1));
        }
        if conn.is_closed() {
            let _ = wr.shutdown().await;
            return;
        }
        let deadline = conn.poll_timeout();
        if deadline != armed {
            if let Some(at) = deadline {
                timer.as_mut().reset(at.into());
            }
            armed = deadline;
        }
        if rbuf.capacity() - rbuf.len() < READ_RESERVE / 4 {
            rbuf.reserve(READ_RESERVE);
        }
        let mut rekick = false;
        tokio::select! {
            // A fixed order (no random start): finished I/O first (bounded by what
            // is in flight, so the socket is never starved), then the socket.
            biased;
            Some(c) = crx.recv() => {
                crate::busy_poll::touch();
                let now = Instant::now();
                conn.handle_io_completion(c, now);
                // Completions come in bursts: take every one that is ready.
                while let Ok(c) = crx.try_recv() {
                    conn.handle_io_completion(c, now);
                }
            }
            r = rd.read_buf(&mut rbuf) => match r {
                Ok(0) | Err(_) => conn.handle_close(),
                Ok(_) => {
                    crate::busy_poll::touch();
                    conn.handle_input(&mut rbuf, Instant::now());
                }
            },
            () = &mut timer, if armed.is_some() => {
                // Elapsed: armed again (maybe at the same instant) next turn.
                armed = None;
                conn.handle_timeout(Instant::now());
            }
            // Shutdown: an Async Message asks for logout; the connection ends when
            // the initiator logs out (or the daemon's grace runs out).
            Ok(()) = draining.changed() => conn.request_logout(Instant::now()),
            // Another connection of the session released requests for this one or
            // asked it to close (MC/S).
            () = &mut kicked => {
                rekick = true;
                kick.pending.store(false, Ordering::Release);
                conn.handle_input(&mut BytesMut::new(), Instant::now());
            }
            // Admin hook: an empty input makes the connection re-check its session.
            Ok(()) = admin.changed() => conn.handle_input(&mut BytesMut::new(), Instant::now()),
        }
        if rekick {
            kicked.set(kick.notify.notified());
        }
    }
}

/// Write the whole queue; `TimedOut` when one write made no progress for `stall`.
async fn write_all(
    wr: &mut OwnedWriteHalf,
    tx: &mut TxQueue,
    stall: Option<std::time::Duration>,
) -> std::io::Result<()> {
    while !tx.is_empty() {
        let n = {
            let mut iov = [IoSlice::new(&[]); 64];
            let k = tx.iovecs(&mut iov);
            let write = wr.write_vectored(&iov[..k]);
            match stall {
                Some(limit) => tokio::time::timeout(limit, write)
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??,
                None => write.await?,
            }
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        tx.advance(n);
    }
    Ok(())
}
