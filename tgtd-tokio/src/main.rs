//! `tgtd-tokio`: the iSCSI target daemon on tokio.
//!
//! A control runtime accepts (one task per listener) and handles signals; accepted
//! connections go round-robin to `--threads` connection loops, each a single-threaded
//! runtime on its own thread, where one task per connection feeds its bytes,
//! completions and deadlines into the sans-IO `Connection` and writes what it says.
#![allow(clippy::disallowed_methods)] // an adapter owns clocks and threads

mod busy_poll;
mod conn;

use std::process::ExitCode;
use std::sync::Arc;
use tgtd_common::options::Program;
use tgtd_common::{banner, start, Options, PortalChange};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};

/// This daemon, for `--help`, `--version` and its man page.
const PROGRAM: Program = Program {
    name: env!("CARGO_PKG_NAME"),
    man_name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    about: env!("CARGO_PKG_DESCRIPTION"),
};

fn main() -> ExitCode {
    let opts = Options::parse_for(&PROGRAM);
    // Daemonizing forks, so it happens in `start` before the runtime starts threads.
    let (daemon, mut readiness) = match start(&opts) {
        Ok(d) => d,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let (rt, loops) = match runtimes(daemon.threads, daemon.busy_poll) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("tgtd-tokio: cannot start the runtime: {e}");
            readiness.fail(&msg);
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let handles = loops.handles.clone();
    let ready = &mut readiness;
    let result = rt.block_on(async move {
        // Shutdown triggers: `system delete` (the management thread's hook; a
        // `notify_one` permit is kept even when nobody waits yet), SIGTERM, SIGINT.
        // The signal handlers are installed before the banner, so a signal sent as
        // soon as the daemon says it serves is not lost.
        let delete = Arc::new(Notify::new());
        {
            let s = delete.clone();
            daemon.mgmt.on_shutdown(move || s.notify_one());
        }
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| format!("tgtd-tokio: cannot handle SIGTERM: {e}"))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| format!("tgtd-tokio: cannot handle SIGINT: {e}"))?;
        let mut hup = signal(SignalKind::hangup())
            .map_err(|e| format!("tgtd-tokio: cannot handle SIGHUP: {e}"))?;
        eprintln!("{}", banner(&daemon, "tgtd-tokio", &daemon.portals));
        ready.ready();
        // Admin hook: any management change wakes every connection task so it
        // re-checks its target and session (forced logout, deleted target). A watch
        // channel, not a Notify: a task busy when it moves still sees the change.
        let (admin, _) = watch::channel(0u64);
        {
            let a = admin.clone();
            daemon
                .mgmt
                .on_change(move || a.send_modify(|g| *g = g.wrapping_add(1)));
        }
        let shared = Arc::new(conn::Shared {
            core: daemon.core.clone(),
            pool: daemon.pool.clone(),
            config: daemon.conn_config.clone(),
            draining: watch::channel(false).0,
            admin,
            live: Arc::default(),
            loops: handles,
            next_loop: Default::default(),
            tx_stall: daemon.tx_stall,
        });
        // Admin hook: listeners come from the hub (start-up portals first, then
        // `tgtadm --mode portal|lld`); one accept task per listener, aborted on removal.
        let portal_wake = Arc::new(Notify::new());
        {
            let w = portal_wake.clone();
            daemon.hub.on_change(move || w.notify_one());
        }
        let hub = daemon.hub.clone();
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            loop {
                for change in hub.take() {
                    match change {
                        PortalChange::Add(l) => match TcpListener::from_std(l) {
                            Ok(l) => {
                                let addr = l.local_addr().ok();
                                let task =
                                    tokio::spawn(conn::accept_loop(l, accept_shared.clone()));
                                tasks.push((addr, task));
                            }
                            Err(e) => tracing::warn!("cannot serve a new portal: {e}"),
                        },
                        PortalChange::Remove(addr) => tasks.retain(|(a, t)| {
                            let keep = *a != Some(addr);
                            if !keep {
                                t.abort();
                            }
                            keep
                        }),
                    }
                }
                portal_wake.notified().await;
            }
        });
        // SIGHUP re-reads targets.conf on a blocking thread, one reload at a time.
        let mut reloading: Option<tokio::task::JoinHandle<()>> = None;
        let why = loop {
            tokio::select! {
                _ = delete.notified() => break "system delete",
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = hup.recv() => {
                    if let Some(previous) = reloading.take() {
                        let _ = previous.await;
                    }
                    let r = daemon.reloader.clone();
                    reloading = Some(tokio::task::spawn_blocking(move || {
                        r.reload();
                    }));
                }
            }
        };
        tgtd_common::service::stopping();
        // Drain: every connection asks its initiator to log out (one still logging in
        // is dropped); wait for them up to the grace period, then go.
        tracing::info!("{why}: asking initiators to log out");
        shared.draining.send_replace(true);
        let deadline = tokio::time::Instant::now() + daemon.shutdown_grace;
        let _ = tokio::time::timeout_at(deadline, shared.live.all_gone()).await;
        // Dropping the daemon removes the control socket.
        drop(daemon);
        Ok::<(), String>(())
    });
    loops.stop();
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            readiness.fail(&msg);
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// The connection loops: threads each driving a single-threaded runtime until
/// [`Loops::stop`].
struct Loops {
    handles: Vec<tokio::runtime::Handle>,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Loops {
    /// End every loop (their remaining connection tasks are dropped, which closes
    /// the sockets) and wait for the threads.
    fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The control runtime and `n` connection loops (at least one), each polling
/// without sleeping for `busy_poll` after an event (`--busy-poll`).
fn runtimes(
    n: usize,
    busy_poll: std::time::Duration,
) -> std::io::Result<(tokio::runtime::Runtime, Loops)> {
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, _) = watch::channel(false);
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for i in 0..n.max(1) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        handles.push(rt.handle().clone());
        let mut stopped = stop.subscribe();
        let t = std::thread::Builder::new()
            .name(format!("tgtd-tokio-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    // This thread's io_uring (`aio` stores): its completions are
                    // reaped here, beside the connections the runtime serves.
                    let ring = tgtd_common::ring::init_thread().and_then(|fd| {
                        // SAFETY: `fd` is an open descriptor this AsyncFd owns (our
                        // duplicate of the ring's eventfd); it stays open, and the same,
                        // until the AsyncFd drops it.
                        unsafe {
                            tokio::io::unix::AsyncFd::register_with_interest(
                                fd,
                                tokio::io::Interest::READABLE,
                            )
                        }
                        .ok()
                    });
                    // The spinner is a task of its own: each of its turns yields to
                    // the runtime, and only it is polled again, not this future's
                    // other branches (a lock each in the watch and the ring's
                    // readiness per turn, which lengthened every turn).
                    let spin = tokio::spawn(busy_poll::run(busy_poll));
                    while !*stopped.borrow_and_update() {
                        tokio::select! {
                            r = stopped.changed() => if r.is_err() { break },
                            Some(mut ready) = ring_ready(ring.as_ref()) => {
                                tgtd_common::ring::reap();
                                ready.clear_ready();
                            }
                        }
                    }
                    spin.abort();
                });
                rt.shutdown_timeout(std::time::Duration::from_millis(200));
                tgtd_common::ring::close_thread();
            })?;
        threads.push(t);
    }
    Ok((
        control,
        Loops {
            handles,
            stop,
            threads,
        },
    ))
}

/// The ring's eventfd turned readable; never, when this thread has no ring.
async fn ring_ready(
    ring: Option<&tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
) -> Option<tokio::io::unix::AsyncFdReadyGuard<'_, std::os::fd::OwnedFd>> {
    match ring {
        Some(fd) => fd.readable().await.ok(),
        None => std::future::pending().await,
    }
}
