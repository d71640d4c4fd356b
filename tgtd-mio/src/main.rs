//! `tgtd-mio`: the iSCSI target daemon on mio event loops.
//!
//! One thread accepts; N event-loop threads each own a share of the connections; the
//! backing-store worker pool runs I/O and wakes the owning loop with its completions.
#![allow(clippy::disallowed_methods)] // an adapter owns clocks and threads

mod conn;
mod event_loop;
mod signals;

use clap::Parser;
use std::process::ExitCode;
use tgtd_common::{start, Options};

fn main() -> ExitCode {
    let opts = Options::parse();
    // Before any thread exists (the management server, the workers): every thread
    // inherits the mask, and the event loop's signal thread takes them (`signals`).
    if let Err(e) = signals::block() {
        eprintln!("tgtd-mio: cannot block SIGTERM/SIGINT: {e}");
        return ExitCode::FAILURE;
    }
    let (daemon, mut readiness) = match start(&opts) {
        Ok(d) => d,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    match event_loop::run(daemon, &mut readiness) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            readiness.fail(&msg);
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
