//! `Core`: the state every connection and the management path share.

use crate::registry::Registry;
use crate::session::SessionTable;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Shared target state. Cheap to share behind an `Arc`; its locks are never held across
/// a return to the adapter.
#[derive(Debug)]
pub struct Core {
    /// Targets, LUNs, ACLs, sessions.
    pub registry: Registry,
    /// Live iSCSI sessions: TSIH allocation, reinstatement, shared CmdSN windows.
    pub sessions: SessionTable,
    next_sid: AtomicU64,
    /// CHAP identifiers and challenges come from here, so they must be unpredictable:
    /// the daemon seeds it with OS randomness (sans-IO: the core never asks the OS).
    rng: Mutex<ChaCha20Rng>,
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

impl Core {
    /// An empty core with a fixed, all-zero random seed: deterministic, for tests and
    /// tools. A daemon serving real initiators uses [`Core::with_seed`].
    pub fn new() -> Self {
        Self::with_seed([0; 32])
    }

    /// An empty core whose CSPRNG (CHAP challenges) starts from `seed`; daemons pass 32
    /// bytes of OS randomness.
    pub fn with_seed(seed: [u8; 32]) -> Self {
        Core {
            registry: Registry::new(),
            sessions: SessionTable::default(),
            next_sid: AtomicU64::new(1),
            rng: Mutex::new(ChaCha20Rng::from_seed(seed)),
        }
    }

    /// Fill `buf` from the core's CSPRNG.
    pub fn random_bytes(&self, buf: &mut [u8]) {
        self.rng.lock().expect("rng lock poisoned").fill_bytes(buf);
    }

    /// A fresh TSIH for a new session; never 0 (RFC 7143 §11.12.6: 0 means "new
    /// session") and never one in use.
    pub fn alloc_tsih(&self) -> u16 {
        self.sessions.alloc_tsih()
    }

    /// A fresh session id (tgt's I_T nexus number).
    pub fn alloc_sid(&self) -> u64 {
        self.next_sid.fetch_add(1, Ordering::Relaxed)
    }
}
