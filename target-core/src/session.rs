//! Live iSCSI sessions across every connection: TSIH allocation and the ISID rules
//! (RFC 7143 §4.4.3, §6.3.1, §11.12.5).
//!
//! A session is named by the I_T nexus `(InitiatorName, ISID, TargetName)` and,
//! once logged in, by the TSIH the target gave it. A new leading login (TSIH 0) with
//! the name of a live session *reinstates* it: the old session is logged out (its
//! connection sees [`Target::logout_requested`](crate::registry::Target::logout_requested)
//! and closes, dropping its tasks) and the new one takes its place. A login with a
//! non-zero TSIH adds a connection to (or reinstates a connection of) that session,
//! which only makes sense when the TSIH is live and belongs to the same initiator,
//! ISID and target. At ErrorRecoveryLevel 2 a session outlives its last failed
//! connection (0 connections) until Time2Retain passes
//! ([`crate::Core::expire_sessions`]).

use crate::mcs::SharedSession;
use iscsi_proto::{Isid, Tsih};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The I_T nexus a session stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// InitiatorName.
    pub initiator: String,
    /// The initiator's session id.
    pub isid: Isid,
    /// TargetName (empty for discovery sessions).
    pub target: String,
}

/// What the table knows of a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEntry {
    /// The TSIH the target assigned.
    pub tsih: Tsih,
    /// The daemon-wide session id (`tgtadm --mode session`).
    pub sid: u64,
    /// The target's tid, for a normal session.
    pub tid: Option<u32>,
    /// Connections logged in to the session.
    pub connections: u16,
}

#[derive(Debug, Default)]
struct Inner {
    next_tsih: u16,
    by_key: HashMap<SessionKey, SessionEntry>,
    by_tsih: HashMap<u16, SessionKey>,
    /// What the connections of each session share (MC/S), by TSIH.
    shared: HashMap<u16, Arc<SharedSession>>,
}

/// Every live session of the daemon. Its lock is never held across a return.
#[derive(Debug, Default)]
pub struct SessionTable {
    inner: Mutex<Inner>,
}

impl SessionTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("session table lock poisoned")
    }

    /// A TSIH that is neither 0 nor held by a live session.
    pub fn alloc_tsih(&self) -> u16 {
        let mut g = self.lock();
        // At most 65535 live sessions can exist; the loop ends within that many steps.
        for _ in 0..=u16::MAX {
            g.next_tsih = g.next_tsih.wrapping_add(1);
            let t = g.next_tsih;
            if t != 0 && !g.by_tsih.contains_key(&t) {
                return t;
            }
        }
        // Every TSIH in use: reuse one rather than panic (a login then fails later
        // as "session does not exist" for the loser).
        1
    }

    /// The live session of this I_T nexus, if any.
    pub fn lookup(&self, key: &SessionKey) -> Option<SessionEntry> {
        self.lock().by_key.get(key).copied()
    }

    /// The live session with this TSIH and its nexus.
    pub fn by_tsih(&self, tsih: Tsih) -> Option<(SessionKey, SessionEntry)> {
        let g = self.lock();
        let key = g.by_tsih.get(&tsih.0)?;
        let e = g.by_key.get(key)?;
        Some((key.clone(), *e))
    }

    /// Record a new session; returns the session it replaces (reinstatement), whose
    /// connections the caller must close.
    pub fn insert(&self, key: SessionKey, entry: SessionEntry) -> Option<SessionEntry> {
        let mut g = self.lock();
        let old = g.by_key.insert(key.clone(), entry);
        if let Some(o) = old {
            g.by_tsih.remove(&o.tsih.0);
            g.shared.remove(&o.tsih.0);
        }
        g.by_tsih.insert(entry.tsih.0, key);
        old
    }

    /// One more connection joined session `tsih`; `false` when the session is gone.
    pub fn add_connection(&self, tsih: Tsih) -> bool {
        let mut g = self.lock();
        let Some(key) = g.by_tsih.get(&tsih.0).cloned() else {
            return false;
        };
        match g.by_key.get_mut(&key) {
            Some(e) => {
                e.connections = e.connections.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// A connection of session `sid` ended; the session goes with its last
    /// connection. A session already replaced by a reinstatement is left alone.
    pub fn connection_closed(&self, tsih: Tsih, sid: u64) {
        self.connection_left(tsih, sid, false)
    }

    /// A connection of session `sid` ended; with `keep`, the session stays even
    /// with no connection (ErrorRecoveryLevel 2: it waits Time2Retain for one,
    /// then [`crate::Core::expire_sessions`] ends it).
    pub fn connection_left(&self, tsih: Tsih, sid: u64, keep: bool) {
        let mut g = self.lock();
        let Some(key) = g.by_tsih.get(&tsih.0).cloned() else {
            return;
        };
        let gone = match g.by_key.get_mut(&key) {
            Some(e) if e.sid == sid => {
                e.connections = e.connections.saturating_sub(1);
                e.connections == 0 && !keep
            }
            _ => false,
        };
        if gone {
            g.by_key.remove(&key);
            g.by_tsih.remove(&tsih.0);
            g.shared.remove(&tsih.0);
        }
    }

    /// Record what the connections of session `tsih` share.
    pub(crate) fn attach(&self, tsih: Tsih, shared: Arc<SharedSession>) {
        self.lock().shared.insert(tsih.0, shared);
    }

    /// What the connections of live session `tsih` share.
    pub fn shared(&self, tsih: Tsih) -> Option<Arc<SharedSession>> {
        self.lock().shared.get(&tsih.0).cloned()
    }

    /// End session `tsih` (daemon-wide id `sid`) that outlived its connections,
    /// unless a reinstatement already replaced it.
    pub(crate) fn remove(&self, tsih: Tsih, sid: u64) {
        let mut g = self.lock();
        let Some(key) = g.by_tsih.get(&tsih.0).cloned() else {
            return;
        };
        if g.by_key.get(&key).is_some_and(|e| e.sid == sid) {
            g.by_key.remove(&key);
            g.by_tsih.remove(&tsih.0);
            g.shared.remove(&tsih.0);
        }
    }

    /// What the live sessions of target `tid` share.
    pub(crate) fn shared_of_target(&self, tid: u32) -> Vec<Arc<SharedSession>> {
        let g = self.lock();
        g.by_key
            .values()
            .filter(|e| e.tid == Some(tid))
            .filter_map(|e| g.shared.get(&e.tsih.0).cloned())
            .collect()
    }

    /// What every live session shares, with its TSIH.
    pub(crate) fn all_shared(&self) -> Vec<(Tsih, Arc<SharedSession>)> {
        let g = self.lock();
        g.shared
            .iter()
            .map(|(t, s)| (Tsih(*t), s.clone()))
            .collect()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(isid: u8) -> SessionKey {
        SessionKey {
            initiator: "iqn.i".into(),
            isid: Isid([isid; 6]),
            target: "iqn.t".into(),
        }
    }

    fn entry(tsih: u16, sid: u64) -> SessionEntry {
        SessionEntry {
            tsih: Tsih(tsih),
            sid,
            tid: Some(1),
            connections: 1,
        }
    }

    #[test]
    fn reinstatement_replaces_and_old_close_is_harmless() {
        let t = SessionTable::default();
        let a = t.alloc_tsih();
        assert!(t.insert(key(1), entry(a, 1)).is_none());
        let b = t.alloc_tsih();
        assert_ne!(a, b);
        assert_eq!(t.insert(key(1), entry(b, 2)), Some(entry(a, 1)));
        // The old connection closing must not remove the new session.
        t.connection_closed(Tsih(a), 1);
        assert_eq!(t.lookup(&key(1)).map(|e| e.sid), Some(2));
        assert!(t.by_tsih(Tsih(a)).is_none());
        t.connection_closed(Tsih(b), 2);
        assert!(t.is_empty());
    }

    #[test]
    fn tsih_never_zero_or_live() {
        let t = SessionTable::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..70_000u64 {
            let x = t.alloc_tsih();
            assert_ne!(x, 0);
            if i < 1000 {
                assert!(seen.insert(x));
                t.insert(key((i % 250) as u8), entry(x, i));
            }
        }
    }
}
