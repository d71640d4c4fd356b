//! `--busy-poll`: after an event, a connection loop keeps polling without sleeping
//! for a short window, so that the next request finds its CPU awake (a halted
//! virtual CPU takes 30-45 µs to wake, twice per round trip). This is the rule both
//! adapters follow; each keeps one [`Window`] per loop thread and asks it before
//! every poll.

use std::time::{Duration, Instant};

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
    /// the window's length ago.
    pub fn is_open(&self, now: Instant) -> bool {
        self.last_event
            .is_some_and(|at| now.saturating_duration_since(at) < self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // one reference instant; the test moves it by hand
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
}
