//! Things the sans-IO core asks of the daemon: running an administrator's program
//! (tgt's `RedirectCallback`). target-core never starts a process itself; the daemon
//! installs a [`ProgramRunner`] with [`crate::Core::set_runner`].

use std::fmt::Debug;

/// Runs an administrator's program and returns what it printed.
pub trait ProgramRunner: Send + Sync + Debug {
    /// Run `argv[0]` with the other arguments (no shell) and return its standard
    /// output, or `None` when it could not start, failed or took too long (it is then
    /// ended). Blocks the calling thread meanwhile, briefly.
    fn run(&self, argv: &[String]) -> Option<String>;
}
