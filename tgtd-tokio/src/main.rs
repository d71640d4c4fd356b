//! `tgtd-tokio`: the iSCSI target daemon on a multi-threaded tokio runtime.
//!
//! One task per listener accepts; one task per connection feeds its bytes,
//! completions and deadlines into the sans-IO `Connection` and writes what it says.
#![allow(clippy::disallowed_methods)] // an adapter owns clocks and threads

mod conn;

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tgtd_common::{banner, start, Options};
use tokio::net::TcpListener;
use tokio::sync::Notify;

fn main() -> ExitCode {
    let opts = Options::parse();
    // Daemonizing forks, so it happens in `start` before the runtime starts threads.
    let (daemon, mut readiness) = match start(&opts) {
        Ok(d) => d,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(daemon.threads)
        .thread_name("tgtd-tokio")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let msg = format!("tgtd-tokio: cannot start the runtime: {e}");
            readiness.fail(&msg);
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let ready = &mut readiness;
    let result = rt.block_on(async move {
        let shutdown = Arc::new(Notify::new());
        {
            let s = shutdown.clone();
            daemon.mgmt.on_shutdown(move || s.notify_waiters());
        }
        let mut listeners = Vec::new();
        for p in &daemon.portals {
            let l = TcpListener::bind(p)
                .await
                .map_err(|e| format!("tgtd-tokio: cannot listen on {p}: {e}"))?;
            listeners.push(l);
        }
        let bound: Vec<_> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        eprintln!("{}", banner(&daemon, "tgtd-tokio", &bound));
        ready.ready();
        let shared = Arc::new(conn::Shared {
            core: daemon.core.clone(),
            pool: daemon.pool.clone(),
            config: daemon.conn_config.clone(),
            shutdown: shutdown.clone(),
        });
        for l in listeners {
            tokio::spawn(conn::accept_loop(l, shared.clone()));
        }
        shutdown.notified().await;
        drop(daemon);
        Ok::<(), String>(())
    });
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
