//! `--busy-poll` on a connection loop: after a connection task had something to
//! do, the loop keeps polling its reactor without sleeping for a while, so that
//! the next request finds the thread awake (a sleeping CPU, above all a virtual
//! one, takes tens of microseconds to wake).
//!
//! The state is per thread: each connection loop is a single-threaded runtime, and
//! its connection tasks and its spinner run on that one thread.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use tgtd_common::busy_poll::Window;

thread_local! {
    /// This thread's spin window (`run` sets its length).
    static WINDOW: Cell<Window> = const { Cell::new(Window::new(Duration::ZERO)) };
    /// The spinner, parked while the loop has been idle past the window.
    static PARKED: RefCell<Option<Waker>> = const { RefCell::new(None) };
}

/// A connection task of this thread had an event: start (or extend) the spin.
pub(crate) fn touch() {
    let mut w = WINDOW.with(Cell::get);
    if !w.enabled() {
        return;
    }
    w.touch(Instant::now());
    WINDOW.with(|c| c.set(w));
    if let Some(w) = PARKED.with(|p| p.borrow_mut().take()) {
        w.wake();
    }
}

/// Spin for `window` after every event on this thread, forever (the caller selects
/// it beside the loop's other work). Each turn yields to the runtime, which then
/// polls its reactor with a zero timeout instead of sleeping in it.
pub(crate) async fn run(window: Duration) {
    if window.is_zero() {
        return std::future::pending().await;
    }
    WINDOW.with(|c| c.set(Window::new(window)));
    loop {
        let mut w = WINDOW.with(Cell::get);
        if w.is_open(Instant::now()) {
            // Now and then another runnable thread on this CPU (a store worker)
            // goes first.
            if w.turn_yields() {
                std::thread::yield_now();
            }
            WINDOW.with(|c| c.set(w));
            tokio::task::yield_now().await;
        } else {
            // Idle past the window: sleep until the next event's `touch`.
            let mut parked = false;
            poll_fn(|cx| {
                if parked {
                    return Poll::Ready(());
                }
                parked = true;
                PARKED.with(|p| *p.borrow_mut() = Some(cx.waker().clone()));
                Poll::Pending
            })
            .await;
        }
    }
}
