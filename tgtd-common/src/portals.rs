//! Listening sockets handed from the management path to the event loops.
//!
//! `tgtadm --mode portal --op new` must bind before it answers (so a port in use
//! is an error the admin sees), but the socket is served by the adapter's loop.
//! The [`PortalHub`] is the hand-over: the management thread binds a std listener
//! and queues it; the adapter, woken by the hook, takes the queued changes and
//! starts (or stops) accepting. The hub also implements the daemon's
//! [`StoreOpener`] so [`apply`](target_core::mgmt::apply()) reaches it.

use crate::opener::BackendsOpener;
use crate::state_file::StateFileStore;
use backends::ErrorLogStore;
use scsi_sbc::BlockStore;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use target_core::mgmt::{BackingStoreType, StoreOpener, StoreSpec};

/// A change for the adapter to make.
#[derive(Debug)]
pub enum PortalChange {
    /// Start accepting on this bound, non-blocking listener.
    Add(TcpListener),
    /// Stop accepting on this address.
    Remove(SocketAddr),
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// The queue of [`PortalChange`]s and the hook that wakes the adapter.
#[derive(Default)]
pub struct PortalHub {
    changes: Mutex<Vec<PortalChange>>,
    wake: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for PortalHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalHub").finish_non_exhaustive()
    }
}

impl PortalHub {
    /// Bind `addr` now and queue it for the adapter; the bound address (port 0
    /// resolved) on success.
    pub fn listen(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let l = TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        let bound = l.local_addr()?;
        self.push(PortalChange::Add(l));
        Ok(bound)
    }

    /// Queue the removal of `addr`.
    pub fn unlisten(&self, addr: SocketAddr) {
        self.push(PortalChange::Remove(addr));
    }

    fn push(&self, change: PortalChange) {
        self.changes.lock().expect("portal lock").push(change);
        if let Some(wake) = &*self.wake.lock().expect("portal lock") {
            wake();
        }
    }

    /// Everything queued since the last call, in order.
    pub fn take(&self) -> Vec<PortalChange> {
        std::mem::take(&mut *self.changes.lock().expect("portal lock"))
    }

    /// Run `hook` whenever a change is queued (wake the event loop).
    pub fn on_change(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self.wake.lock().expect("portal lock") = Some(Box::new(hook));
    }
}

/// The daemon's [`StoreOpener`]: stores through `backends`, listeners through the hub.
#[derive(Debug, Clone)]
pub struct DaemonOpener {
    /// Where new listeners go.
    pub hub: Arc<PortalHub>,
    /// Where file-backed LUs keep state across restarts (APTPL); `None`: nowhere.
    pub state_dir: Option<PathBuf>,
}

impl StoreOpener for DaemonOpener {
    fn open(&self, spec: &StoreSpec<'_>) -> Result<Arc<dyn BlockStore>, String> {
        let (store, threads) = BackendsOpener.open_parts(spec)?;
        // Failures are logged for the administrator, once per kind, rate-limited.
        let label = format!("{} {}", spec.bstype, spec.path);
        let store: Arc<dyn BlockStore> =
            Arc::new(ErrorLogStore::wrap(store, &label, spec.block_size));
        // Only files and block devices outlive the daemon; memory and null stores
        // have nothing worth reserving after a restart.
        let durable = matches!(
            spec.bstype.parse(),
            Ok(backends::BsType::Rdwr | backends::BsType::Aio)
        );
        let store = match &self.state_dir {
            Some(dir) if durable => match StateFileStore::wrap(store.clone(), dir, spec.path) {
                Some(s) => Arc::new(s),
                None => store,
            },
            _ => store,
        };
        // The LU's own threads (if any) run the whole stack above.
        crate::opener::own_threads(store, threads)
    }

    fn backing_stores(&self) -> Vec<BackingStoreType> {
        BackendsOpener.backing_stores()
    }

    fn store_exists(&self, path: &str) -> bool {
        BackendsOpener.store_exists(path)
    }

    fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, String> {
        self.hub.listen(addr).map_err(|e| {
            let msg = format!("cannot listen on {addr}: {e}");
            tracing::warn!("{msg}");
            msg
        })
    }

    fn unlisten(&self, addr: SocketAddr) {
        self.hub.unlisten(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's wrappers (error log, APTPL state file) must not hide an `aio`
    /// store's ring: without `ring_file` every operation would silently take the
    /// worker pool.
    #[test]
    fn wrapped_aio_stores_keep_their_ring() {
        let dir = std::env::temp_dir().join(format!("tgtd-opener-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lun.img");
        std::fs::File::create(&file)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let path = file.to_str().unwrap();
        for state_dir in [None, Some(dir.join("state"))] {
            let opener = DaemonOpener {
                hub: Arc::new(PortalHub::default()),
                state_dir,
            };
            let aio = opener.open(&StoreSpec::plain("aio", path)).unwrap();
            assert_eq!(
                aio.ring_file().is_some(),
                backends::uring::availability().is_ok()
            );
            let rdwr = opener.open(&StoreSpec::plain("rdwr", path)).unwrap();
            assert!(rdwr.ring_file().is_none());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
