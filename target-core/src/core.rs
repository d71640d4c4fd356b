//! `Core`: the state every connection and the management path share.

use crate::registry::Registry;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

/// Shared target state. Cheap to share behind an `Arc`; its locks are never held across
/// a return to the adapter.
#[derive(Debug)]
pub struct Core {
    /// Targets, LUNs, ACLs, sessions.
    pub registry: Registry,
    next_tsih: AtomicU16,
    next_sid: AtomicU64,
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

impl Core {
    /// An empty core: no targets.
    pub fn new() -> Self {
        Core {
            registry: Registry::new(),
            next_tsih: AtomicU16::new(1),
            next_sid: AtomicU64::new(1),
        }
    }

    /// A fresh TSIH for a new session; never 0 (RFC 7143 §11.12.6: 0 means "new session").
    pub fn alloc_tsih(&self) -> u16 {
        loop {
            let t = self.next_tsih.fetch_add(1, Ordering::Relaxed);
            if t != 0 {
                return t;
            }
        }
    }

    /// A fresh session id (tgt's I_T nexus number).
    pub fn alloc_sid(&self) -> u64 {
        self.next_sid.fetch_add(1, Ordering::Relaxed)
    }
}
