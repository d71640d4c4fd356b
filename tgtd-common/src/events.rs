//! What both adapters do with a connection's events: log them inside the
//! connection's session span, and tell the caller when every connection must
//! re-check shared state (the wake-up itself is runtime-specific: a mio Waker or a
//! tokio watch channel).

use target_core::connection::{ConnEvent, Connection};

/// A span naming who `conn` serves: `session{target=.. initiator=.. peer=..
/// tsih=..}`, so every log line written inside it says which session it is about
/// (the target and initiator come from the leading login request until the session
/// exists; TSIH is 0 until the login succeeds). Made when there is something to
/// log, not per PDU: building it copies the names.
pub fn session_span(conn: &Connection) -> tracing::Span {
    let l = conn.session_labels();
    let peer = l.peer.map(|p| p.to_string()).unwrap_or_default();
    tracing::info_span!(
        "session",
        target = %l.target,
        initiator = %l.initiator,
        peer = %peer,
        tsih = l.tsih
    )
}

/// Drain `conn`'s events, logging them in its [`session_span`]. Returns true when
/// one of them asks every connection to re-check shared state (a target reset, a
/// session reinstatement).
pub fn drain(conn: &mut Connection) -> bool {
    let mut wake_all = false;
    let mut span: Option<tracing::Span> = None;
    while let Some(ev) = conn.poll_event() {
        if matches!(ev, ConnEvent::SharedStateChanged) {
            wake_all = true;
            continue;
        }
        let _entered = span.get_or_insert_with(|| session_span(conn)).enter();
        match ev {
            ConnEvent::LoggedIn { session_type, .. } => {
                tracing::info!("logged in ({session_type:?} session)")
            }
            ConnEvent::Closed { reason } => {
                tracing::info!("connection closed: {reason}");
                crate::limits::connection_closed();
            }
            ConnEvent::SharedStateChanged => {}
            ConnEvent::LimitHit { limit, detail } => {
                crate::limits::log_hit(conn.peer().peer, limit, &detail)
            }
        }
    }
    wake_all
}
