//! `tgtd-mio`: the iSCSI target daemon on mio event loops.
//!
//! One thread accepts; N event-loop threads each own a share of the connections; the
//! backing-store worker pool runs I/O and wakes the owning loop with its completions.
#![allow(clippy::disallowed_methods)] // an adapter owns clocks and threads

mod conn;
mod event_loop;
mod signals;

use std::process::ExitCode;
use tgtd_common::options::Program;
use tgtd_common::{start, Options};

/// This daemon, for `--help`, `--version` and its man page (installed as tgtd).
const PROGRAM: Program = Program {
    name: env!("CARGO_PKG_NAME"),
    man_name: "tgtd",
    version: env!("CARGO_PKG_VERSION"),
    about: env!("CARGO_PKG_DESCRIPTION"),
};

fn main() -> ExitCode {
    let opts = Options::parse_for(&PROGRAM);
    // Before any thread exists (the management server, the workers): every thread
    // inherits the mask, and the signal threads take them (`signals`).
    if let Err(e) = signals::block() {
        eprintln!("tgtd-mio: cannot block SIGTERM/SIGINT/SIGHUP: {e}");
        return ExitCode::FAILURE;
    }
    let (daemon, mut readiness) = match start(&opts) {
        Ok(d) => d,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = signals::spawn_reloader(daemon.reloader.clone()) {
        let msg = format!("tgtd-mio: cannot start the SIGHUP thread: {e}");
        readiness.fail(&msg);
        eprintln!("{msg}");
        return ExitCode::FAILURE;
    }
    match event_loop::run(daemon, &mut readiness) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            readiness.fail(&msg);
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
