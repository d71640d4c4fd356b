//! The clock of sessions with no connection (ErrorRecoveryLevel 2).
//!
//! A failed connection's tasks wait in their session for DefaultTime2Retain, and a
//! session whose last connection failed waits that long for one to come back
//! (`target_core::connection` `erl2.rs`). No connection is left to drive those
//! deadlines, so one thread per daemon does, for both adapters: it sleeps until
//! [`Core::next_retain_deadline`] (or [`POLL`], for deadlines set meanwhile) and
//! calls [`Core::expire_sessions`] with the time. Ending a session moves the
//! registry's generation, as a management change does.
#![allow(clippy::disallowed_methods)] // an adapter owns its clock and thread

use std::sync::Arc;
use std::time::{Duration, Instant};
use target_core::Core;

/// Longest sleep: a deadline set after the thread went to sleep is seen this late
/// at most (Time2Retain is whole seconds).
pub const POLL: Duration = Duration::from_millis(250);

/// Start the `tgtd-retain` thread for the daemon's life.
pub fn spawn(core: Arc<Core>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tgtd-retain".into())
        .spawn(move || loop {
            let now = Instant::now();
            let wait = core
                .next_retain_deadline()
                .map_or(POLL, |d| d.saturating_duration_since(now).min(POLL));
            std::thread::sleep(wait);
            if core.expire_sessions(Instant::now()) > 0 {
                core.registry.bump();
            }
        })?;
    Ok(())
}
