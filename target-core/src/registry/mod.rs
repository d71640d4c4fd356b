//! The target registry: targets, their LUNs, ACLs and live sessions.
//!
//! Shared between every connection and the management path. It uses locks inside but
//! never holds one across a return to the caller, and does no I/O: backing stores are
//! opened by the adapter and handed in already open.

mod account;
mod acl;
mod alua;
mod failover;
mod lun;
mod params;
mod portal;
mod stats;
mod target;

pub use account::{Account, AccountBinding, Accounts};
pub use acl::AclEntry;
pub use alua::{is_alua_key, AluaChange, AluaSettings, ALUA_KEYS};
pub use failover::{FailoverStep, GatewayWatch, MISSES_BEFORE_GONE};
pub use lun::{default_product_id, default_scsi_id, default_scsi_sn, Lun, LunBacking};
pub use params::{
    parse_callback_answer, CallbackError, Redirect, RedirectReason, TargetParams, LIMIT_KEYS,
    PARAM_KEYS, REDIRECT_KEYS,
};
pub use portal::{parse_portal, Portals, SystemState, ISCSI_PORT};
pub use stats::{ConnPdu, ConnStatSnapshot, ConnStats, DataDir, LuStatSnapshot, LuStats};
pub use target::{ConnectionInfo, SessionInfo, Target};

use crate::mgmt::MgmtError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Target ID as tgtadm names it (`--tid`).
pub type Tid = u32;

/// Every target of the daemon.
#[derive(Debug, Default)]
pub struct Registry {
    targets: RwLock<BTreeMap<Tid, Arc<Target>>>,
    /// CHAP accounts and the discovery binding.
    pub accounts: Accounts,
    /// The portals being listened on.
    pub portals: Portals,
    /// The iSNS settings (`system update --name iSNS...`), read by the daemon's iSNS
    /// client.
    pub isns: crate::isns::IsnsState,
    state: RwLock<SystemState>,
    /// SCSI host numbers bound to targets (`target bind --bus|--host`), daemon-wide
    /// as in tgt: host → tid.
    bound_hosts: RwLock<BTreeMap<u32, Tid>>,
    debug: AtomicBool,
    lld_stopped: AtomicBool,
    generation: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Create a target with its LUN 0 controller, as tgt does.
    pub fn add_target(&self, tid: Tid, name: &str) -> Result<Arc<Target>, MgmtError> {
        let mut targets = self.targets.write().expect("registry lock poisoned");
        if targets.contains_key(&tid) || targets.values().any(|t| t.name == name) {
            return Err(MgmtError::TargetExists);
        }
        let target = Arc::new(Target::new(tid, name.to_string()));
        targets.insert(tid, target.clone());
        Ok(target)
    }

    /// Remove a target. Refused while it has sessions unless `force`.
    pub fn remove_target(&self, tid: Tid, force: bool) -> Result<Arc<Target>, MgmtError> {
        let mut targets = self.targets.write().expect("registry lock poisoned");
        let target = targets.get(&tid).ok_or(MgmtError::NoTarget)?;
        if !force && !target.sessions().is_empty() {
            return Err(MgmtError::TargetActive);
        }
        let target = targets.remove(&tid).ok_or(MgmtError::NoTarget)?;
        target.mark_deleted();
        drop(targets);
        self.bound_hosts
            .write()
            .expect("registry lock poisoned")
            .retain(|_, t| *t != tid);
        self.bump();
        Ok(target)
    }

    /// Remove every target (their sessions are gone or going): at daemon exit, so
    /// that each backing store is dropped and closed like on `--op delete`, which
    /// for a Ceph RBD image hands its exclusive lock back at once instead of leaving
    /// the next gateway to wait for the lock to expire. The targets removed.
    pub fn remove_all_targets(&self) -> Vec<Arc<Target>> {
        let tids: Vec<Tid> = self.targets().iter().map(|t| t.tid).collect();
        tids.into_iter()
            .filter_map(|tid| self.remove_target(tid, true).ok())
            .collect()
    }

    /// The account named `user` (CHAP secret lookup at login).
    pub fn account(&self, user: &str) -> Option<Account> {
        self.accounts.get(user)
    }

    /// The accounts discovery sessions must use (tgt's global target); empty
    /// `incoming` means discovery needs no CHAP.
    pub fn discovery_accounts(&self) -> AccountBinding {
        self.accounts.discovery()
    }

    /// `system update --name State`: whether new logins are accepted.
    pub fn state(&self) -> SystemState {
        *self.state.read().expect("state lock poisoned")
    }

    /// Set the daemon state.
    pub fn set_state(&self, state: SystemState) {
        *self.state.write().expect("state lock poisoned") = state;
        self.bump();
    }

    /// Whether a new login may proceed: the daemon is `ready` and the iscsi driver
    /// is not stopped. Login should answer "service unavailable" otherwise.
    pub fn accepts_logins(&self) -> bool {
        self.state() == SystemState::Ready && !self.lld_stopped()
    }

    /// `system update --name debug --value on|off`.
    pub fn debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    /// Set the debug flag.
    pub fn set_debug(&self, on: bool) {
        self.debug.store(on, Ordering::Relaxed);
    }

    /// Whether `lld --op stop` stopped the iscsi driver.
    pub fn lld_stopped(&self) -> bool {
        self.lld_stopped.load(Ordering::Acquire)
    }

    /// Record `lld --op start|stop`.
    pub fn set_lld_stopped(&self, stopped: bool) {
        self.lld_stopped.store(stopped, Ordering::Release);
        self.bump();
    }

    /// A counter that moves whenever a change may concern live connections (target
    /// deleted, session logout requested, ACL narrowed, LUNs changed, state). An
    /// adapter woken by the management server compares it with the last value it
    /// saw and, when it moved, feeds each connection an empty input so the
    /// connection re-checks its target and session.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Move [`generation`](Self::generation).
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Log out every session of every target whose initiator the ACL no longer
    /// admits (after an unbind). Returns how many were marked.
    pub fn logout_unadmitted(&self) -> usize {
        let n = self.targets().iter().map(|t| t.logout_unadmitted()).sum();
        self.bump();
        n
    }

    /// Bind SCSI host `host` to target `tid` (tgt's `tgt_bind_host_to_target`): a host
    /// serves one target. This matters to kernel-side drivers (ibmvio); an iSCSI
    /// target accepts and keeps the binding as tgt's iscsi driver does.
    pub fn bind_host(&self, tid: Tid, host: u32) -> Result<(), MgmtError> {
        self.target(tid).ok_or(MgmtError::NoTarget)?;
        let mut hosts = self.bound_hosts.write().expect("registry lock poisoned");
        if hosts.contains_key(&host) {
            return Err(MgmtError::BindingExists);
        }
        hosts.insert(host, tid);
        Ok(())
    }

    /// Undo [`Registry::bind_host`] (tgt's `tgt_unbind_host_to_target`: found by host
    /// alone, refused while the bound target has sessions).
    pub fn unbind_host(&self, host: u32) -> Result<(), MgmtError> {
        let mut hosts = self.bound_hosts.write().expect("registry lock poisoned");
        let tid = *hosts.get(&host).ok_or(MgmtError::NoBinding)?;
        if self.target(tid).is_some_and(|t| !t.sessions().is_empty()) {
            return Err(MgmtError::TargetActive);
        }
        hosts.remove(&host);
        Ok(())
    }

    /// The target a SCSI host is bound to.
    pub fn host_binding(&self, host: u32) -> Option<Tid> {
        self.bound_hosts
            .read()
            .expect("registry lock poisoned")
            .get(&host)
            .copied()
    }

    /// The target with this tid.
    pub fn target(&self, tid: Tid) -> Option<Arc<Target>> {
        self.targets
            .read()
            .expect("registry lock poisoned")
            .get(&tid)
            .cloned()
    }

    /// The target with this iSCSI name (exact match; iSCSI names are case-folded by
    /// the initiator already, RFC 3722).
    pub fn target_by_name(&self, name: &str) -> Option<Arc<Target>> {
        self.targets
            .read()
            .expect("registry lock poisoned")
            .values()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Every target, by ascending tid.
    pub fn targets(&self) -> Vec<Arc<Target>> {
        self.targets
            .read()
            .expect("registry lock poisoned")
            .values()
            .cloned()
            .collect()
    }
}
