//! `Core`: the state every connection and the management path share.

use crate::hooks::{BufferSource, ProgramRunner};
use crate::pace::Pacer;
use crate::registry::Registry;
use crate::session::SessionTable;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Where the target resets of one target stand (TARGET WARM RESET and TARGET COLD
/// RESET, RFC 7143 §11.5.1): every session of the target must act on a reset, not just
/// the one that asked for it. A connection remembers the `generation` it last acted
/// on and compares at each input ([`Core::target_resets`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TargetResets {
    /// Moves by one with every target reset of the target.
    pub(crate) generation: u64,
    /// The `generation` of the latest cold reset (0: none yet).
    pub(crate) last_cold: u64,
}

impl TargetResets {
    /// Whether a session that last acted on `seen` must drop (a cold reset since).
    pub(crate) fn cold_since(&self, seen: u64) -> bool {
        self.last_cold > seen
    }
}

/// Shared target state. Cheap to share behind an `Arc`; its locks are never held across
/// a return to the adapter.
#[derive(Debug)]
pub struct Core {
    /// Targets, LUNs, ACLs, sessions.
    pub registry: Registry,
    /// Live iSCSI sessions: TSIH allocation, reinstatement, shared CmdSN windows.
    pub sessions: SessionTable,
    /// Connections served and logins in progress per address (`crate::limits`).
    pub admission: crate::limits::Admission,
    next_sid: AtomicU64,
    /// CHAP identifiers and challenges come from here, so they must be unpredictable:
    /// the daemon seeds it with OS randomness (sans-IO: the core never asks the OS).
    rng: Mutex<ChaCha20Rng>,
    /// Target resets per tid (see [`TargetResets`]).
    resets: Mutex<HashMap<u32, TargetResets>>,
    /// Paces SANITIZE erases of LUs with a `sanitize_rate` (set by the daemon).
    pacer: OnceLock<Arc<dyn Pacer>>,
    /// Runs `RedirectCallback` programs (set by the daemon).
    runner: OnceLock<Arc<dyn ProgramRunner>>,
    /// Buffers for Data-Out (set by the daemon; plain vectors without one).
    buffers: OnceLock<Arc<dyn BufferSource>>,
    /// Monitoring counters (`--metrics`, `system show --json`).
    pub metrics: Arc<crate::metrics::Metrics>,
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
            admission: Default::default(),
            next_sid: AtomicU64::new(1),
            rng: Mutex::new(ChaCha20Rng::from_seed(seed)),
            resets: Mutex::new(HashMap::new()),
            pacer: OnceLock::new(),
            runner: OnceLock::new(),
            buffers: OnceLock::new(),
            metrics: Arc::default(),
        }
    }

    /// Install the program runner (once; later calls are ignored). Without one, a
    /// target with a `RedirectCallback` refuses logins with TARGET ERROR.
    pub fn set_runner(&self, runner: Arc<dyn ProgramRunner>) {
        let _ = self.runner.set(runner);
    }

    /// The program runner, when the daemon installed one.
    pub fn runner(&self) -> Option<&Arc<dyn ProgramRunner>> {
        self.runner.get()
    }

    /// Install the source of Data-Out buffers (once; later calls are ignored).
    pub fn set_buffers(&self, buffers: Arc<dyn BufferSource>) {
        let _ = self.buffers.set(buffers);
    }

    /// The source of Data-Out buffers, when the daemon installed one.
    pub fn buffers(&self) -> Option<&Arc<dyn BufferSource>> {
        self.buffers.get()
    }

    /// Install the pacer for rate-limited background work (once; later calls are
    /// ignored). See [`crate::pace`].
    pub fn set_pacer(&self, pacer: Arc<dyn Pacer>) {
        let _ = self.pacer.set(pacer);
    }

    /// The pacer, when the daemon installed one.
    pub fn pacer(&self) -> Option<&Arc<dyn Pacer>> {
        self.pacer.get()
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

    /// The target resets of target `tid` so far.
    pub(crate) fn target_resets(&self, tid: u32) -> TargetResets {
        self.lock_resets().get(&tid).copied().unwrap_or_default()
    }

    /// Record a target reset of `tid` (cold: every session must drop) and move the
    /// registry generation so the adapters wake every connection to act on it.
    /// Returns the state before and after, atomically, so the issuing connection can
    /// tell whether another session's cold reset came first.
    pub(crate) fn record_target_reset(&self, tid: u32, cold: bool) -> (TargetResets, TargetResets) {
        let (before, after) = {
            let mut g = self.lock_resets();
            let r = g.entry(tid).or_default();
            let before = *r;
            r.generation += 1;
            if cold {
                r.last_cold = r.generation;
            }
            (before, *r)
        };
        self.registry.bump();
        (before, after)
    }

    /// A reset of target `tid` (all its LUs) or of its LU `lun`: abort the tasks
    /// of failed connections waiting for reassignment in every session of the
    /// target (ErrorRecoveryLevel 2, `connection/erl2.rs`): they are tasks of
    /// that LU, which the live connections' resets do not reach. Returns how
    /// many.
    pub(crate) fn abort_orphans(&self, tid: u32, lun: Option<&crate::registry::Lun>) -> usize {
        let mut n = 0;
        for sh in self.sessions.shared_of_target(tid) {
            for o in sh.take_running_orphans(lun) {
                o.abort();
                n += 1;
            }
        }
        n
    }

    fn lock_resets(&self) -> std::sync::MutexGuard<'_, HashMap<u32, TargetResets>> {
        // The map holds plain counters: a panic elsewhere cannot leave it half-updated.
        self.resets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// ErrorRecoveryLevel 2 housekeeping (`connection/erl2.rs`): abort tasks of
    /// failed connections whose DefaultTime2Retain passed by `now`, and end
    /// sessions that outlived their last connection that long (their I_T nexus
    /// and `--op show` entry go). The daemon calls it at
    /// [`Core::next_retain_deadline`]; nothing else drives a session that has no
    /// connection. Returns how many sessions ended.
    pub fn expire_sessions(&self, now: std::time::Instant) -> usize {
        let mut ended = 0;
        for (tsih, sh) in self.sessions.all_shared() {
            if sh.next_deadline().is_none_or(|d| d > now) {
                continue;
            }
            let e = sh.expire(now);
            if let Some(l) = &e.ended {
                self.sessions.remove(tsih, l.sid);
                ended += 1;
            }
            end_expired(e);
        }
        ended
    }

    /// The earliest Time2Retain deadline of any session (see
    /// [`Core::expire_sessions`]); `None` when nothing waits.
    pub fn next_retain_deadline(&self) -> Option<std::time::Instant> {
        self.sessions
            .all_shared()
            .iter()
            .filter_map(|(_, sh)| sh.next_deadline())
            .min()
    }
}

/// Abort what Time2Retain ended and, for a session that ended with it, forget its
/// I_T nexus and its target's record of it.
pub(crate) fn end_expired(e: crate::mcs::Expired) {
    for o in e.orphans {
        o.abort();
    }
    if let Some(l) = e.ended {
        if let Some(t) = &l.target {
            crate::connection::nexus_lost(t, l.nexus);
            t.remove_session(l.sid);
        }
    }
}
