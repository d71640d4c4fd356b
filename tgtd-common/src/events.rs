//! What both adapters do with a connection's events: log them, and tell the caller
//! when every connection must re-check shared state (the wake-up itself is
//! runtime-specific: a mio Waker or a tokio watch channel).

use target_core::connection::{ConnEvent, Connection};

/// Drain `conn`'s events, logging them. Returns true when one of them asks every
/// connection to re-check shared state (a target reset, a session reinstatement).
pub fn drain(conn: &mut Connection) -> bool {
    let mut wake_all = false;
    while let Some(ev) = conn.poll_event() {
        match ev {
            ConnEvent::LoggedIn {
                initiator, target, ..
            } => {
                tracing::info!("{initiator} logged in to {target:?}")
            }
            ConnEvent::Closed { reason } => {
                tracing::info!("connection closed: {reason}");
                crate::limits::connection_closed();
            }
            ConnEvent::SharedStateChanged => wake_all = true,
            ConnEvent::LimitHit { limit, detail } => {
                crate::limits::log_hit(conn.peer().peer, limit, &detail)
            }
        }
    }
    wake_all
}
