//! `--busy-poll`: after an event, a connection loop keeps polling without sleeping
//! for a short window, so that the next request finds its CPU awake (a halted
//! virtual CPU takes 30-45 µs to wake, twice per round trip). This is the rule both
//! adapters follow; each keeps one [`Window`] per loop thread and asks it before
//! every poll.
//!
//! Spinning only pays while the next event is due within about a wake-up's time. A
//! loop whose requests wait on a slow store (an rbd image: milliseconds per
//! operation; a file on a disk that misses the page cache) would otherwise spin
//! from one completion to the next and take a whole CPU from the work it waits for
//! (on one machine with its OSD, 4 KiB random writes to an rbd LU at QD32 went from
//! 5,067 to 5,793 IOPS with `--busy-poll 0`, the daemon using 0.39 instead of 0.54
//! CPUs). So each loop thread also counts the operations it handed to other threads
//! ([`OffThread`]) and keeps a moving average of how long they took; while some
//! are in flight and that average is at least [`SLOW_IO`], the window stays shut.

#![allow(clippy::disallowed_methods)] // the adapter side owns the clock: operation latencies

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Operations handed to other threads that take this long on average are not worth
/// spinning for: the wake-up spinning saves (30-45 µs) is a few percent of their
/// time, and the CPU it burns is the CPU of the store's own threads (librbd, or an
/// OSD on the same machine) or of other loops.
pub const SLOW_IO: Duration = Duration::from_micros(500);

/// Weight of a new latency sample in the moving average: 1 / 2^`EWMA_SHIFT`.
const EWMA_SHIFT: u32 = 3;

/// A loop thread's operations in flight on other threads and their recent latency.
#[derive(Debug, Default)]
pub struct OffThreadIo {
    in_flight: AtomicUsize,
    /// Moving average of their latency, µs.
    avg_us: AtomicU64,
}

impl OffThreadIo {
    /// One operation took `latency`: the average moves an eighth of the way to it.
    /// Updated from store threads without a lock: two completions at the same
    /// instant may lose one sample, which an average shrugs off.
    fn record(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let avg = self.avg_us.load(Ordering::Relaxed);
        let next = if sample >= avg {
            avg + ((sample - avg) >> EWMA_SHIFT)
        } else {
            avg - ((avg - sample) >> EWMA_SHIFT)
        };
        self.avg_us.store(next, Ordering::Relaxed);
    }

    /// Whether the loop waits on slow operations: some in flight, and operations
    /// have lately taken [`SLOW_IO`] or longer.
    pub fn waiting_on_slow_io(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
            && self.avg_us.load(Ordering::Relaxed) >= SLOW_IO.as_micros() as u64
    }
}

thread_local! {
    /// This loop thread's operations on other threads.
    static OFF_THREAD: Arc<OffThreadIo> = Arc::default();
}

/// One operation this loop thread handed to another thread (pool worker, io_uring,
/// an LU's own threads): counted from [`OffThread::start`] until it is dropped,
/// which is when its completion callback has run (or was dropped unrun).
#[derive(Debug)]
pub struct OffThread {
    io: Arc<OffThreadIo>,
    started: Instant,
}

impl OffThread {
    /// Count an operation of the calling (loop) thread from now.
    pub fn start() -> OffThread {
        let io = OFF_THREAD.with(Arc::clone);
        io.in_flight.fetch_add(1, Ordering::Relaxed);
        OffThread {
            io,
            started: Instant::now(),
        }
    }
}

impl Drop for OffThread {
    fn drop(&mut self) {
        self.io.record(self.started.elapsed());
        self.io.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the calling loop thread waits on slow operations
/// ([`OffThreadIo::waiting_on_slow_io`]).
pub fn waiting_on_slow_io() -> bool {
    OFF_THREAD.with(|io| io.waiting_on_slow_io())
}

/// One spin turn in this many gives the CPU away (`sched_yield`), so that a store
/// worker that became runnable on the loop's CPU runs within a few microseconds.
/// Not every turn: the yield was the largest part of a turn (a pass through the
/// scheduler), and the shorter a turn, the sooner the next request is seen.
pub const YIELD_EVERY: u32 = 8;

/// The spin window of one loop: open for `length` after the last [`Window::touch`].
#[derive(Debug, Clone, Copy)]
pub struct Window {
    length: Duration,
    last_event: Option<Instant>,
    /// Turns spun since the last yield.
    turns: u32,
}

impl Window {
    /// A window of `length` (zero: the loop never spins), not open yet.
    pub const fn new(length: Duration) -> Window {
        Window {
            length,
            last_event: None,
            turns: 0,
        }
    }

    /// Whether busy polling is on at all.
    pub fn enabled(&self) -> bool {
        !self.length.is_zero()
    }

    /// The loop had something to do at `now` (a socket event, a completion): the
    /// window opens, or stays open, from then.
    pub fn touch(&mut self, now: Instant) {
        if self.enabled() {
            self.last_event = Some(now);
        }
    }

    /// A spin turn is about to poll: whether it should first give the CPU to
    /// another runnable thread (one turn in [`YIELD_EVERY`]).
    pub fn turn_yields(&mut self) -> bool {
        self.turns += 1;
        if self.turns >= YIELD_EVERY {
            self.turns = 0;
            true
        } else {
            false
        }
    }

    /// Whether the next poll at `now` should not sleep: the last event was less than
    /// the window's length ago, and the loop (the calling thread) is not waiting on
    /// slow operations ([`waiting_on_slow_io`]).
    pub fn is_open(&self, now: Instant) -> bool {
        self.last_event
            .is_some_and(|at| now.saturating_duration_since(at) < self.length)
            && !waiting_on_slow_io()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_for_its_length_after_each_touch() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let mut w = Window::new(us(50));
        assert!(w.enabled());
        assert!(!w.is_open(t0), "nothing happened yet");
        w.touch(t0);
        assert!(w.is_open(t0) && w.is_open(t0 + us(49)));
        assert!(!w.is_open(t0 + us(50)), "closed after its length");
        w.touch(t0 + us(40));
        assert!(w.is_open(t0 + us(80)), "a later event extends it");
        assert!(!w.is_open(t0 + us(90)));
        let yields = (0..3 * YIELD_EVERY).filter(|_| w.turn_yields()).count();
        assert_eq!(yields, 3, "one turn in YIELD_EVERY yields");
        let mut off = Window::new(Duration::ZERO);
        off.touch(t0);
        assert!(
            !off.enabled() && !off.is_open(t0),
            "--busy-poll 0 never spins"
        );
    }

    /// Each test runs on a thread of its own, so this thread-local state is the
    /// test's alone.
    #[test]
    fn slow_operations_in_flight_shut_the_window() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(3600));
        w.touch(t0);
        assert!(w.is_open(t0), "nothing in flight");
        // Operations lately took 5 ms each.
        for _ in 0..64 {
            OFF_THREAD.with(|io| io.record(Duration::from_millis(5)));
        }
        assert!(
            w.is_open(t0),
            "slow, but nothing in flight: spin for the socket"
        );
        let op = OffThread::start();
        assert!(!w.is_open(t0), "waiting on a slow operation: sleep");
        // Its completion runs on a store thread.
        std::thread::spawn(move || drop(op)).join().unwrap();
        assert!(w.is_open(t0), "its completion reopens the window");
        // Operations became fast (a page-cache copy on a worker): spinning pays again.
        for _ in 0..64 {
            OFF_THREAD.with(|io| io.record(Duration::from_micros(20)));
        }
        let op = OffThread::start();
        assert!(w.is_open(t0), "fast operations in flight: spin");
        drop(op);
        let avg = OFF_THREAD.with(|io| io.avg_us.load(Ordering::Relaxed));
        assert!(avg < SLOW_IO.as_micros() as u64, "{avg}");
    }
}
