//! The target registry: targets, their LUNs, ACLs and live sessions.
//!
//! Shared between every connection and the management path. It uses locks inside but
//! never holds one across a return to the caller, and does no I/O: backing stores are
//! opened by the adapter and handed in already open.

mod acl;
mod lun;
mod target;

pub use acl::AclEntry;
pub use lun::{default_scsi_id, default_scsi_sn, Lun, LunBacking};
pub use target::{ConnectionInfo, SessionInfo, Target};

use crate::mgmt::MgmtError;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Target ID as tgtadm names it (`--tid`).
pub type Tid = u32;

/// Every target of the daemon.
#[derive(Debug, Default)]
pub struct Registry {
    targets: RwLock<BTreeMap<Tid, Arc<Target>>>,
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
        Ok(target)
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
