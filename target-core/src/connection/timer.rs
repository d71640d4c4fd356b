//! Connection deadlines, polled like quinn's timer table: no callbacks, just the earliest
//! `Instant` the adapter must wake up at.

use std::time::Instant;

/// The connection's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Login must finish by then, or the connection is dropped.
    Login = 0,
    /// Time to send a NOP-In ping.
    NopInInterval = 1,
    /// A NOP-In ping went unanswered by then: the connection is dead.
    NopInResponse = 2,
    /// We asked the initiator to log out (Async Message); drop the connection if it
    /// has not by then.
    LogoutWait = 3,
    /// A PDU's first bytes arrived and the rest must by then (slow sender).
    PduIncomplete = 4,
    /// ErrorRecoveryLevel > 0: a write task's Data-Out stopped coming (a PDU lost to
    /// a digest error); its missing bursts are asked for again (`recovery.rs`).
    DataOutRecovery = 5,
    /// A task management response waits for other connections of the session to
    /// abort their tasks (MC/S, `tmf.rs`); past it, it is answered without them.
    TmfWait = 6,
}

const COUNT: usize = 7;

/// One optional deadline per [`Timer`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; COUNT],
}

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.data[t as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, t: Timer) {
        self.data[t as usize] = None;
    }

    /// The earliest armed deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    /// Whether `t` is armed and due at `now`.
    pub(crate) fn is_expired(&self, t: Timer, now: Instant) -> bool {
        self.data[t as usize].is_some_and(|at| at <= now)
    }
}
