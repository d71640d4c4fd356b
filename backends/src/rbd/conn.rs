//! The store's librbd connection (a cluster handle and the image opened on it), and
//! the thread that replaces it when the cluster fenced this gateway off.
//!
//! Why a connection is replaced: when another gateway takes this one for dead, it
//! breaks the image's exclusive lock that this gateway held, and librbd blocklists
//! our client for it (`BlockStore::break_lock_of`). A blocklisted client instance
//! can never write again (every operation fails with `EBLOCKLISTED`, which is
//! `ESHUTDOWN`), which is the point: a gateway that was only frozen must not land
//! writes after the others went on without it. But the gateway itself is fine, so
//! the store connects again as a new client instance (a new address, not on the
//! blocklist) and serves again, as tcmu-runner does. Meanwhile its commands end
//! with NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE
//! ([`IoErrorKind::Fenced`](scsi_sbc::IoErrorKind::Fenced)), which multipath
//! initiators retry on another path.
//!
//! The connection sits behind a `RwLock`: operations are started under the read
//! lock (librbd's submission does not wait for the I/O), the swap takes the write
//! lock for a moment (with `try_write`, so it never holds readers back), and the old connection is dropped afterwards, outside the
//! lock, on the medic thread (closing the image waits for its operations in flight,
//! which a blocklisted client fails at once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant};

use super::ffi::{Cluster, Image};
use super::store::{errno_text, same_client, RbdOptions};
use crate::BackendError;

/// An image and the cluster handle it was opened on (dropped in that order: closing
/// the image needs the handle).
pub(crate) struct Connection {
    pub(crate) image: Image,
    pub(crate) cluster: Cluster,
}

/// Everything it takes to open the image (again).
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) opts: RbdOptions,
    /// librados settings applied before connecting.
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) pool: String,
    pub(crate) image: String,
    pub(crate) snap: Option<String>,
    pub(crate) readonly: bool,
    /// `--backing-store` as given, for messages.
    pub(crate) path: String,
    /// Set by the image's update watch when the header changes (a resize).
    pub(crate) changed: Arc<AtomicBool>,
}

impl Endpoint {
    /// Connect and open the image, with its update watch. Errors say what to fix:
    /// the unreachable cluster, the missing pool or image.
    pub(crate) fn connect(&self) -> Result<Connection, BackendError> {
        let o = &self.opts;
        let settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let cluster =
            Cluster::connect(&o.cluster, &o.name, &o.conf, &settings).map_err(|(step, e)| {
                BackendError::RbdCluster {
                    cluster: o.cluster.clone(),
                    name: o.name.clone(),
                    conf: o.conf.clone(),
                    step,
                    why: errno_text(e),
                }
            })?;
        let (pool, name, snap) = (&self.pool, &self.image, self.snap.as_deref());
        let image_err = |e: i32| BackendError::RbdImage {
            path: self.path.clone(),
            why: errno_text(e),
        };
        let io = cluster.ioctx(pool).map_err(|e| {
            if e == -libc::ENOENT {
                BackendError::RbdMissing {
                    what: format!("pool '{pool}'"),
                }
            } else {
                image_err(e)
            }
        })?;
        let mut image = io.open(name, snap, self.readonly).map_err(|e| {
            if e == -libc::ENOENT {
                BackendError::RbdMissing {
                    what: match snap {
                        Some(s) => format!("image '{pool}/{name}' or its snapshot '{s}'"),
                        None => format!("image '{pool}/{name}'"),
                    },
                }
            } else {
                image_err(e)
            }
        })?;
        drop(io);
        let (flag, label) = (self.changed.clone(), self.path.clone());
        if let Err(e) = image.watch_updates(Box::new(move || {
            flag.store(true, Ordering::Release);
            tracing::info!("rbd {label}: image header changed (resize?)");
        })) {
            // Not fatal: `logicalunit update` still reads the size again.
            tracing::warn!("rbd {}: no update watch: {}", self.path, errno_text(e));
        }
        Ok(Connection { image, cluster })
    }
}

/// The live connection, shared by the store and its medic.
pub(crate) type Shared = Arc<RwLock<Connection>>;

/// Read access to the live connection (for as long as an operation is started).
pub(crate) fn current(conn: &Shared) -> RwLockReadGuard<'_, Connection> {
    conn.read().unwrap_or_else(PoisonError::into_inner)
}

/// How often the medic looks at the fenced flag, and waits between attempts to
/// connect again.
const LOOK_EVERY: Duration = Duration::from_millis(100);
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The thread that connects again after the client was fenced (see the module
/// doc); stopped and joined on drop.
pub(crate) struct Medic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Medic {
    /// Watch `fenced` (set by an operation that failed with `ESHUTDOWN`) and replace
    /// `conn` from `endpoint` when it is set.
    pub(crate) fn start(
        conn: Shared,
        fenced: Arc<AtomicBool>,
        endpoint: Endpoint,
    ) -> Result<Medic, BackendError> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let path = endpoint.path.clone();
        let thread = std::thread::Builder::new()
            .name("tgtd-rbd-medic".into())
            .spawn(move || run(&conn, &fenced, &endpoint, &s))
            .map_err(|e| BackendError::RbdImage {
                path,
                why: format!("cannot start a thread: {e}"),
            })?;
        Ok(Medic {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Medic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How soon the medic may connect again: at once after a quiet spell, but a client
/// fenced again soon after connecting (an administrator's blocklist of the whole
/// host, say) must not turn into a reconnection for every failed command. The
/// pause doubles from [`FIRST_PAUSE`] to [`MAX_PAUSE`] while reconnections come
/// less than [`QUIET`] apart.
#[derive(Debug, Default)]
struct Backoff {
    last: Option<Instant>,
    pause: Duration,
}

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);
const QUIET: Duration = Duration::from_secs(10);

impl Backoff {
    /// A reconnection is wanted at `now`: the earliest time to make it.
    fn not_before(&mut self, now: Instant) -> Instant {
        let Some(last) = self.last else {
            return now;
        };
        if now.saturating_duration_since(last) >= QUIET + self.pause {
            self.pause = Duration::ZERO;
            return now;
        }
        self.pause = (self.pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
        last + self.pause
    }

    /// A reconnection was made at `now`.
    fn connected(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

fn run(conn: &Shared, fenced: &AtomicBool, endpoint: &Endpoint, stop: &AtomicBool) {
    let label = &endpoint.path;
    let mut next_try = Instant::now();
    let mut backoff = Backoff::default();
    let mut waiting = false;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(LOOK_EVERY);
        if !fenced.load(Ordering::Acquire) {
            continue;
        }
        if !waiting {
            waiting = true;
            next_try = next_try.max(backoff.not_before(Instant::now()));
        }
        if Instant::now() < next_try {
            continue;
        }
        let old_addr = current(conn).cluster.addrs().unwrap_or_default();
        match endpoint.connect() {
            Ok(new) => {
                let addr = new.cluster.addrs().unwrap_or_default();
                // Cleared before the swap: an operation that fails on the old
                // connection after this sets it again, and costs one more
                // (harmless) reconnection.
                fenced.store(false, Ordering::Release);
                waiting = false;
                backoff.connected(Instant::now());
                // `try_write`, not `write`: a waiting writer would hold back every
                // reader (librbd submissions on the event loops) behind a reader
                // that blocks for long (`break_lock_of` talks to the cluster).
                let old = loop {
                    match conn.try_write() {
                        Ok(mut live) => break std::mem::replace(&mut *live, new),
                        Err(TryLockError::Poisoned(p)) => {
                            break std::mem::replace(&mut *p.into_inner(), new)
                        }
                        Err(TryLockError::WouldBlock) => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                    }
                };
                // The header may have changed while we could not watch it.
                endpoint.changed.store(true, Ordering::Release);
                drop(old);
                release_old_lock(conn, &old_addr, label);
                tracing::warn!(
                    "rbd {label}: the cluster fenced client {old_addr} off the image \
                     (blocklisted: another gateway took this one for dead); connected \
                     again as client {addr}"
                );
            }
            Err(e) => {
                tracing::warn!("rbd {label}: fenced off the image, cannot connect again: {e}");
                next_try = Instant::now() + RETRY_EVERY;
            }
        }
    }
}

/// The exclusive lock may still be held by our old, blocklisted client (when the
/// cluster, not another gateway, fenced it): ours to break, or the new client would
/// wait for the OSD to drop the old one's watch.
fn release_old_lock(conn: &Shared, old_addr: &str, label: &str) {
    if old_addr.is_empty() {
        return;
    }
    let live = current(conn);
    let Ok(owners) = live.image.exclusive_lock_owners() else {
        return;
    };
    for owner in owners.iter().filter(|o| same_client(old_addr, o)) {
        match live.image.break_exclusive_lock(owner) {
            Ok(()) => tracing::info!("rbd {label}: broke the lock our fenced client {owner} held"),
            Err(e) => tracing::warn!(
                "rbd {label}: cannot break the lock our fenced client {owner} held: {}",
                errno_text(e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnections_close_together_back_off() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Backoff::default();
        assert_eq!(b.not_before(t0), t0, "the first at once");
        b.connected(t0);
        // Fenced again 0.5 s later: 1 s after the last, then 2, 4 ... 30.
        assert_eq!(b.not_before(t0 + s(0)), t0 + s(1));
        b.connected(t0 + s(1));
        assert_eq!(b.not_before(t0 + s(1)), t0 + s(1) + s(2));
        b.connected(t0 + s(3));
        let mut at = t0 + s(3);
        for want in [4, 8, 16, 30, 30] {
            let next = b.not_before(at);
            assert_eq!(next, at + s(want));
            b.connected(next);
            at = next;
        }
        // After a quiet spell (QUIET past the pause), at once again.
        let later = at + QUIET + MAX_PAUSE;
        assert_eq!(b.not_before(later), later);
        b.connected(later);
        assert_eq!(b.not_before(later), later + FIRST_PAUSE);
    }
}
