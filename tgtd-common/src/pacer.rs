//! The daemons' [`Pacer`]: sleeps so that a paced operation (a SANITIZE erase of an
//! LU with `sanitize_rate`) does not run ahead of its rate. It runs on the worker
//! thread of that operation, never on an event loop.
#![allow(clippy::disallowed_methods)] // the daemon side owns the clock

use std::time::{Duration, Instant};
use target_core::pace::{PaceRun, Pacer};

/// Sleeps on the calling thread.
#[derive(Debug, Default)]
pub struct SleepPacer;

struct SleepRun {
    started: Instant,
    bytes_per_sec: u64,
}

impl Pacer for SleepPacer {
    fn start(&self, bytes_per_sec: u64) -> Box<dyn PaceRun> {
        Box::new(SleepRun {
            started: Instant::now(),
            bytes_per_sec: bytes_per_sec.max(1),
        })
    }
}

impl PaceRun for SleepRun {
    fn advance(&mut self, done: u64) {
        let due = Duration::from_secs_f64(done as f64 / self.bytes_per_sec as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_to_the_rate() {
        let started = Instant::now();
        let mut run = SleepPacer.start(1000);
        run.advance(100);
        run.advance(200);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Behind schedule: no wait.
        let mut late = SleepPacer.start(1_000_000_000);
        let t = Instant::now();
        late.advance(1);
        assert!(t.elapsed() < Duration::from_millis(100));
    }
}
