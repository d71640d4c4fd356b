//! The daemons' [`ProgramRunner`]: runs a `RedirectCallback` program (no shell) and
//! takes its standard output, as tgt's `call_program` does. It runs on the event
//! loop thread of the logging-in connection, so it waits at most [`RUN_LIMIT`]
//! before ending the program; the login then fails with TARGET ERROR and the
//! initiator retries, as with tgt (which waits 0.1 s, holding its whole daemon).
#![allow(clippy::disallowed_methods)] // the daemon side owns clocks and processes

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use target_core::hooks::ProgramRunner;

/// Longest a callback may take.
pub const RUN_LIMIT: Duration = Duration::from_millis(500);

/// Output beyond this is ignored (an address, a port and a word are expected).
const MAX_OUTPUT: u64 = 4096;

/// Runs programs with [`Command`].
#[derive(Debug, Default)]
pub struct CommandRunner;

impl ProgramRunner for CommandRunner {
    fn run(&self, argv: &[String]) -> Option<String> {
        let (program, args) = argv.split_first()?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| tracing::warn!("redirect callback {program}: {e}"))
            .ok()?;
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    tracing::warn!("redirect callback {program}: no answer in {RUN_LIMIT:?}");
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        };
        let mut out = String::new();
        child
            .stdout
            .take()?
            .take(MAX_OUTPUT)
            .read_to_string(&mut out)
            .ok()?;
        if !status.success() {
            tracing::warn!("redirect callback {program}: {status}");
            return None;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str]) -> Option<String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        CommandRunner.run(&argv)
    }

    #[test]
    fn output_exit_status_and_time_limit() {
        assert_eq!(
            run(&["/bin/echo", "192.0.2.1:3260:Temporary"]).as_deref(),
            Some("192.0.2.1:3260:Temporary\n")
        );
        assert_eq!(run(&["/bin/false"]), None, "a failing program");
        assert_eq!(run(&["/nonexistent/program"]), None, "cannot start");
        let started = Instant::now();
        assert_eq!(run(&["/bin/sleep", "5"]), None, "too slow");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(run(&[]), None);
    }
}
