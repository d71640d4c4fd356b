//! Daemon plumbing shared by `tgtd-mio` and `tgtd-tokio`: the command line, the control
//! socket, opening stores, the demo target, going to the background and start-up.
//!
//! Both adapters call [`start`] and then run their own event loops over the returned
//! [`Daemon`]; nothing protocol-related lives here (that is `target-core`).

pub mod busy_poll;
pub mod config_file;
pub mod daemonize;
pub mod demo;
pub mod events;
pub mod gateway_watch;
pub mod io;
pub mod isns;
pub mod limits;
pub mod metrics;
pub mod mgmt_server;
pub mod opener;
pub mod options;
pub mod pacer;
pub mod portals;
pub mod retain;
pub mod ring;
pub mod runner;
pub mod service;
pub mod size_watch;
pub mod state_file;
pub mod txqueue;

pub use opener::BackendsOpener;
pub use options::Options;
pub use portals::{DaemonOpener, PortalChange, PortalHub};

use backends::WorkerPool;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use target_core::connection::ConnConfig;
use target_core::Core;

/// Everything a running daemon shares between its event loops.
pub struct Daemon {
    /// Targets, LUNs, sessions.
    pub core: Arc<Core>,
    /// Backing-store workers.
    pub pool: Arc<WorkerPool>,
    /// Settings for new connections.
    pub conn_config: ConnConfig,
    /// Portals listened on from the start (bound already, port 0 resolved); their
    /// listeners wait in `hub` like those `tgtadm --mode portal` adds later.
    pub portals: Vec<SocketAddr>,
    /// Listeners to start and stop (start-up portals first, then runtime ones).
    pub hub: Arc<PortalHub>,
    /// The management server (kept alive; removes its socket on drop).
    pub mgmt: mgmt_server::MgmtServer,
    /// Where the management socket is.
    pub socket_path: PathBuf,
    /// Event-loop threads wanted.
    pub threads: usize,
    /// Shutdown (signal or `system delete`): every logged-in initiator is asked to
    /// log out, and the daemon exits once all have gone or this long has passed.
    pub shutdown_grace: std::time::Duration,
    /// The iSNS thread; dropped last with the daemon, it deregisters the entity
    /// from the iSNS server (bounded wait) on every way out.
    pub isns: isns::IsnsThread,
    /// SIGHUP: re-read targets.conf (`tgt-admin --update ALL`).
    pub reloader: service::Reloader,
    /// `--pid-file`, removed when the daemon is dropped.
    pub pid_file: Option<service::PidFile>,
    /// Drop a connection whose queued responses have not moved for this long
    /// (stalled reader; `--tx-stall-timeout`).
    pub tx_stall: Option<std::time::Duration>,
    /// How long an event loop polls without sleeping after its last event
    /// (`--busy-poll`; zero: never).
    pub busy_poll: std::time::Duration,
}

/// How long the daemon waits at exit for its backing stores to close (an RBD image
/// flushes and releases its lock; a cluster that does not answer must not keep a
/// stopping daemon alive).
pub const STORE_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for Daemon {
    /// Every way out of the daemon (signal, `system delete`) ends here after the
    /// event loops: the targets are removed so that their stores are dropped and
    /// closed, on a helper thread with a bounded wait.
    fn drop(&mut self) {
        let core = self.core.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("tgtd-close".into())
            .spawn(move || {
                let removed = core.registry.remove_all_targets();
                // The stores close as the last references go, here.
                drop(removed);
                let _ = tx.send(());
            });
        if spawned.is_ok() && rx.recv_timeout(STORE_CLOSE_GRACE).is_err() {
            tracing::warn!(
                "backing stores did not close within {} s; exiting without them",
                STORE_CLOSE_GRACE.as_secs()
            );
        }
    }
}

/// The tracing level of `-d N`, as its help text says: 0 warnings and errors, 1 info,
/// 2 debug, 3 and more trace.
pub fn log_level(debug: u8) -> tracing::Level {
    match debug {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// Set up logging to stderr at the `-d` level (`RUST_LOG` overrides). Colours only
/// when stderr is a terminal: a file, a pipe or the journal gets plain text.
pub fn init_logging(debug: u8) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(log_level(debug).as_str().to_ascii_lowercase())
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parse the command line, daemonize unless `-f`, and start the management server and
/// the I/O workers. On error the message is ready to print as is.
pub fn start(opts: &Options) -> Result<(Daemon, daemonize::Readiness), String> {
    let portals = opts.portals().map_err(|e| format!("tgtd: {e}"))?;
    let socket_path = opts.control_socket_path();
    let readiness = if opts.foreground {
        daemonize::Readiness::foreground()
    } else {
        daemonize::daemonize().map_err(|e| format!("tgtd: cannot daemonize: {e}"))?
    };
    let mut readiness = readiness;
    init_logging(opts.debug);
    limits::tune_allocator(opts.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }));
    // Every connection is a descriptor: take what the hard limit allows, as a
    // service manager's LimitNOFILE would.
    match limits::raise_nofile_limit() {
        Ok(n) if (n as usize) < opts.limits.max_connections.saturating_add(64) => {
            tracing::warn!(
                "open-file limit {n} is below --max-connections {} plus the daemon's own files",
                opts.limits.max_connections
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    if let Err(e) = limits::start_trimmer() {
        tracing::warn!("cannot start the memory trimmer: {e}");
    }
    // After going to the background (tgtd's order), before anything binds: a second
    // daemon given the same file stops here.
    let pid_file = match &opts.pid_file {
        Some(p) => Some(
            service::PidFile::create(p)
                .map_err(|e| format!("tgtd: cannot write pid file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let core = Arc::new(Core::with_seed(os_seed()?));
    readiness.attach(core.clone());
    core.set_pacer(Arc::new(pacer::SleepPacer));
    core.set_runner(Arc::new(runner::CommandRunner));
    core.set_buffers(Arc::new(limits::RecycledBuffers));
    let hub = Arc::new(PortalHub::default());
    let opener = Arc::new(DaemonOpener {
        hub: hub.clone(),
        state_dir: Some(opts.state_dir.clone()),
    });
    let mut bound = Vec::new();
    for p in &portals {
        let b = hub
            .listen(*p)
            .map_err(|e| format!("tgtd: cannot listen on {p}: {e}"))?;
        core.registry.portals.add(b);
        bound.push(b);
    }
    if opts.demo {
        demo::setup(&core, opener.as_ref()).map_err(|e| format!("tgtd: demo target: {e}"))?;
    }
    config_file::load_at_start(&core, opts.config.as_deref(), opener.as_ref())?;
    let mgmt = mgmt_server::spawn(&socket_path, core.clone(), opener)
        .map_err(|e| format!("tgtd: cannot serve {}: {e}", socket_path.display()))?;
    let reloader = service::Reloader::new(mgmt.local(), opts.config.clone());
    // Media that report their own resizes (rbd) are read again without an admin.
    size_watch::spawn(mgmt.local()).map_err(|e| format!("tgtd: cannot start a thread: {e}"))?;
    gateway_watch::spawn(mgmt.local()).map_err(|e| format!("tgtd: cannot start a thread: {e}"))?;
    if let Some(addr) = opts.metrics {
        let bound = metrics::spawn(addr, core.clone())
            .map_err(|e| format!("tgtd: cannot serve metrics on {addr}: {e}"))?;
        eprintln!("tgtd: serving metrics on http://{bound}/metrics");
    }
    // Sessions without a connection (ErrorRecoveryLevel 2) end on this clock.
    retain::spawn(core.clone()).map_err(|e| format!("tgtd: cannot start a thread: {e}"))?;
    // Registration with an iSNS server, once `iSNS On` (targets.conf or tgtadm).
    let isns = isns::spawn(core.clone()).map_err(|e| format!("tgtd: cannot start iSNS: {e}"))?;
    let pool =
        Arc::new(WorkerPool::try_new(opts.io_threads.max(1)).map_err(|e| format!("tgtd: {e}"))?);
    let threads = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    Ok((
        Daemon {
            core,
            pool,
            // One grace for every "please log out" (shutdown, target delete --force), so
            // the Async Message's Parameter3 tells the initiator the time it really has.
            conn_config: {
                let mut c = ConnConfig {
                    logout_grace: std::time::Duration::from_millis(opts.shutdown_grace_ms)
                        .max(std::time::Duration::from_secs(1)),
                    ..ConnConfig::default()
                };
                opts.limits.apply(&mut c);
                c
            },
            portals: bound,
            hub,
            mgmt,
            socket_path,
            threads,
            shutdown_grace: std::time::Duration::from_millis(opts.shutdown_grace_ms),
            isns,
            reloader,
            pid_file,
            tx_stall: opts.limits.tx_stall(),
            busy_poll: std::time::Duration::from_micros(opts.busy_poll_us),
        },
        readiness,
    ))
}

/// The line printed once the daemon serves, so a user (or a test harness) knows the
/// bound portals (a port of 0 is resolved) and where to point tgtadm.
pub fn banner(d: &Daemon, flavour: &str, bound: &[SocketAddr]) -> String {
    let portals: Vec<String> = bound.iter().map(|p| p.to_string()).collect();
    format!(
        "{flavour}: serving iSCSI on {} ; management socket {} (tgtadm --control-socket {})",
        portals.join(", "),
        d.socket_path.display(),
        d.socket_path.display()
    )
}

/// 32 bytes of OS randomness for the core's CSPRNG (CHAP challenges must be
/// unpredictable; the sans-IO core never asks the OS itself).
fn os_seed() -> Result<[u8; 32], String> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("tgtd: cannot read /dev/urandom: {e}"))?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::log_level;
    use tracing::Level;

    #[test]
    fn debug_levels_as_the_help_says() {
        assert_eq!(log_level(0), Level::WARN);
        assert_eq!(log_level(1), Level::INFO);
        assert_eq!(log_level(2), Level::DEBUG);
        assert_eq!(log_level(3), Level::TRACE);
        assert_eq!(log_level(9), Level::TRACE);
    }
}
