//! Resource limits shared by every connection: which limit was hit (for the one log
//! line each hit gets, and for counters), and the daemon-wide admission of new
//! connections (total connections, logins in progress per source address).
//!
//! The per-connection limits (buffered bytes, slow senders, session counts) are
//! enforced by the connection state machine (`connection/limits.rs`); this module
//! holds what must be shared between connections, behind one short-held lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// A resource limit a peer ran into. Each hit is reported once as
/// [`ConnEvent::LimitHit`](crate::connection::ConnEvent::LimitHit), which the daemon
/// logs with the peer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The daemon serves `--max-connections` connections already.
    Connections,
    /// The source address has `--max-pending-logins-per-host` logins in progress.
    PendingLogins,
    /// The target's `MaxSessions` sessions exist already.
    TargetSessions,
    /// The initiator has `MaxSessionsPerInitiator` sessions with the target already.
    InitiatorSessions,
    /// A PDU announced a data segment longer than we declared we accept.
    DataSegment,
    /// The login did not finish within `--login-timeout`.
    LoginTime,
    /// A PDU whose header arrived did not get its announced bytes within
    /// `--pdu-timeout` (slow sender).
    PduTime,
    /// Our responses were not read for `--tx-stall-timeout` (stalled reader).
    TxStall,
    /// A command came past MaxCmdSN, or an immediate one with the window's worth of
    /// tasks in progress (`--max-commands-per-session`). Reported once per
    /// connection: the RFC's answer (ignore, TASK SET FULL) repeats silently.
    CommandWindow,
}

impl Limit {
    /// A short stable name (log lines, counters).
    pub fn name(self) -> &'static str {
        match self {
            Limit::Connections => "max-connections",
            Limit::PendingLogins => "max-pending-logins-per-host",
            Limit::TargetSessions => "MaxSessions",
            Limit::InitiatorSessions => "MaxSessionsPerInitiator",
            Limit::DataSegment => "MaxRecvDataSegmentLength",
            Limit::LoginTime => "login-timeout",
            Limit::PduTime => "pdu-timeout",
            Limit::TxStall => "tx-stall-timeout",
            Limit::CommandWindow => "max-commands-per-session",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How many connections a refusal may keep open to answer their login with "out of
/// resources" (0x0302) before further ones are closed at once: a flood over the
/// limit must not hold more sockets than this.
pub const MAX_REFUSING: usize = 64;

/// The daemon-wide admission limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections served at once (logged in or logging in); `None`: no limit.
    pub max_connections: Option<usize>,
    /// Connections from one source address still logging in; `None`: no limit.
    pub max_pending_per_host: Option<usize>,
}

/// What [`Admission::admit`] decided for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Served; counted until [`Admission::release`].
    Yes,
    /// Over `limit`: answer the first login request with "out of resources" and close.
    /// Counted as refusing until [`Admission::release`].
    Refuse(Limit),
    /// Over `limit` and too many refusals pending: close at once (nothing counted).
    Drop(Limit),
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    refusing: usize,
    pending: HashMap<IpAddr, usize>,
}

/// Connections the daemon serves, and logins in progress per source address.
#[derive(Debug, Default)]
pub struct Admission {
    counts: Mutex<Counts>,
}

impl Admission {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Plain counters: a panic elsewhere cannot leave them half-updated.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection from `ip` arrived: count it (as logging in) or refuse it.
    pub fn admit(&self, ip: IpAddr, limits: &AdmissionLimits) -> Admit {
        let mut g = self.lock();
        let over = if limits.max_connections.is_some_and(|m| g.total >= m) {
            Some(Limit::Connections)
        } else if limits
            .max_pending_per_host
            .is_some_and(|m| g.pending.get(&ip).copied().unwrap_or(0) >= m)
        {
            Some(Limit::PendingLogins)
        } else {
            None
        };
        match over {
            None => {
                g.total += 1;
                *g.pending.entry(ip).or_default() += 1;
                Admit::Yes
            }
            Some(l) if g.refusing < MAX_REFUSING => {
                g.refusing += 1;
                Admit::Refuse(l)
            }
            Some(l) => Admit::Drop(l),
        }
    }

    /// The admitted connection from `ip` finished its login.
    pub fn logged_in(&self, ip: IpAddr) {
        let mut g = self.lock();
        Self::unpend(&mut g, ip);
    }

    /// A connection ended: `admit` said `Yes` (`pending`: it had not logged in) or
    /// `Refuse`.
    pub fn release(&self, ip: IpAddr, admitted: bool, pending: bool) {
        let mut g = self.lock();
        if admitted {
            g.total = g.total.saturating_sub(1);
            if pending {
                Self::unpend(&mut g, ip);
            }
        } else {
            g.refusing = g.refusing.saturating_sub(1);
        }
    }

    fn unpend(g: &mut Counts, ip: IpAddr) {
        if let Some(n) = g.pending.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                g.pending.remove(&ip);
            }
        }
    }

    /// Connections served now (logged in or logging in).
    pub fn connections(&self) -> usize {
        self.lock().total
    }

    /// Logins in progress from `ip`.
    pub fn pending_from(&self, ip: IpAddr) -> usize {
        self.lock().pending.get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_refuses() {
        let a = Admission::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let limits = AdmissionLimits {
            max_connections: Some(3),
            max_pending_per_host: Some(2),
        };
        assert_eq!(a.admit(ip, &limits), Admit::Yes);
        assert_eq!(a.admit(ip, &limits), Admit::Yes);
        assert_eq!(a.admit(ip, &limits), Admit::Refuse(Limit::PendingLogins));
        assert_eq!(a.admit(other, &limits), Admit::Yes);
        assert_eq!(a.admit(other, &limits), Admit::Refuse(Limit::Connections));
        a.logged_in(ip);
        assert_eq!(a.pending_from(ip), 1);
        a.release(ip, true, false);
        a.release(ip, false, false);
        a.release(other, false, false);
        assert_eq!(a.connections(), 2);
        assert_eq!(a.admit(ip, &limits), Admit::Yes);
        a.release(ip, true, true);
        a.release(ip, true, true);
        a.release(other, true, true);
        assert_eq!(a.connections(), 0);
        assert_eq!(a.pending_from(ip), 0);
        // A flood over the limit: refusals are bounded, the rest are dropped.
        let one = AdmissionLimits {
            max_connections: Some(0),
            max_pending_per_host: None,
        };
        for _ in 0..MAX_REFUSING {
            assert_eq!(a.admit(ip, &one), Admit::Refuse(Limit::Connections));
        }
        assert_eq!(a.admit(ip, &one), Admit::Drop(Limit::Connections));
    }
}
