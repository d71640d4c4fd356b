//! One target: name, LUNs, ACL and its live sessions.

use super::alua::{AluaChange, AluaSettings};
use super::{AccountBinding, AclEntry, ConnStats, LuStatSnapshot, LuStats, Lun, TargetParams};
use crate::mgmt::MgmtError;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A connection of a session, for show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connection ID chosen by the initiator.
    pub cid: u16,
    /// The initiator's address.
    pub peer: SocketAddr,
    /// What the connection carried (`--mode session|connection --op stat`).
    pub stats: Arc<ConnStats>,
}

/// A logged-in session (I_T nexus), for show and for forced logout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id as tgt shows it (the I_T nexus number); we use a daemon-wide counter.
    pub sid: u64,
    /// TSIH given to the session.
    pub tsih: u16,
    /// InitiatorName.
    pub initiator: String,
    /// InitiatorAlias, when sent.
    pub alias: Option<String>,
    /// The session's connections.
    pub connections: Vec<ConnectionInfo>,
}

/// A target (`tgtadm --mode target`).
#[derive(Debug)]
pub struct Target {
    /// Target ID.
    pub tid: u32,
    /// iSCSI qualified name.
    pub name: String,
    luns: RwLock<BTreeMap<u64, Arc<Lun>>>,
    /// The keys of `luns`, ascending, rebuilt when a LUN is added or removed: every
    /// SCSI command's context carries them (REPORT LUNS, copy targets), and sharing
    /// one list saves building a `Vec` per command.
    lun_list: RwLock<Arc<[u64]>>,
    acl: RwLock<Vec<AclEntry>>,
    name_acl: RwLock<Vec<String>>,
    sessions: RwLock<BTreeMap<u64, SessionInfo>>,
    deleted: AtomicBool,
    accounts: RwLock<AccountBinding>,
    params: RwLock<TargetParams>,
    /// Sessions (by sid) an administrator logged out; their connections close.
    logout: RwLock<BTreeSet<u64>>,
    /// Moves on every LUN added, removed or replaced: the SCSI layer can compare it
    /// to raise REPORTED LUNS DATA HAS CHANGED / CAPACITY DATA HAS CHANGED.
    lun_generation: AtomicU64,
    /// I/O counters per (sid, LUN), for `--op stat`; dropped with the session.
    stats: RwLock<BTreeMap<(u64, u64), Arc<LuStats>>>,
    /// ALUA port groups (`alua_*` keys); off by default.
    alua: RwLock<AluaSettings>,
    /// Whether ALUA is on: commands of a target without it (the usual case) skip
    /// the lock above.
    alua_on: AtomicBool,
}

impl Target {
    pub(crate) fn new(tid: u32, name: String) -> Self {
        let mut luns = BTreeMap::new();
        luns.insert(0, Arc::new(Lun::controller(tid)));
        Target {
            tid,
            name,
            luns: RwLock::new(luns),
            lun_list: RwLock::new(Arc::from([0u64].as_slice())),
            acl: RwLock::new(Vec::new()),
            name_acl: RwLock::new(Vec::new()),
            sessions: RwLock::new(BTreeMap::new()),
            deleted: AtomicBool::new(false),
            accounts: RwLock::new(AccountBinding::default()),
            params: RwLock::new(TargetParams::default()),
            logout: RwLock::new(BTreeSet::new()),
            lun_generation: AtomicU64::new(0),
            stats: RwLock::new(BTreeMap::new()),
            alua: RwLock::new(AluaSettings::default()),
            alua_on: AtomicBool::new(false),
        }
    }

    /// The LUN with this number.
    pub fn lun(&self, lun: u64) -> Option<Arc<Lun>> {
        self.luns
            .read()
            .expect("lun lock poisoned")
            .get(&lun)
            .cloned()
    }

    /// Every LUN, ascending.
    pub fn luns(&self) -> Vec<Arc<Lun>> {
        self.luns
            .read()
            .expect("lun lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Every LUN number, ascending (REPORT LUNS).
    pub fn lun_numbers(&self) -> Vec<u64> {
        self.lun_list().to_vec()
    }

    /// Every LUN number, ascending, shared (no allocation: the per-command path).
    pub fn lun_list(&self) -> Arc<[u64]> {
        self.lun_list.read().expect("lun lock poisoned").clone()
    }

    /// Rebuild `lun_list` after the inventory changed (`luns` is write-locked by
    /// the caller, so the two agree for every later reader).
    fn set_lun_list(&self, luns: &BTreeMap<u64, Arc<Lun>>) {
        let list: Arc<[u64]> = luns.keys().copied().collect();
        *self.lun_list.write().expect("lun lock poisoned") = list;
    }

    /// Add a LUN; refused when the number is taken.
    pub fn add_lun(&self, lun: Lun) -> Result<(), MgmtError> {
        let mut luns = self.luns.write().expect("lun lock poisoned");
        if luns.contains_key(&lun.lun) {
            return Err(MgmtError::LunExists);
        }
        let number = lun.lun;
        lun.lock_state().offline = !lun.online;
        luns.insert(number, Arc::new(lun));
        self.set_lun_list(&luns);
        self.lun_generation.fetch_add(1, Ordering::AcqRel);
        let all: Vec<Arc<Lun>> = luns.values().cloned().collect();
        drop(luns);
        // Unit attentions for the change (scsi helper): REPORTED LUNS DATA HAS CHANGED.
        super::lun::announce_inventory_change(&all, Some(number));
        Ok(())
    }

    /// Replace an existing LUN with an updated one (online changes).
    pub fn replace_lun(&self, lun: Lun) -> Result<(), MgmtError> {
        let mut luns = self.luns.write().expect("lun lock poisoned");
        let slot = luns.get_mut(&lun.lun).ok_or(MgmtError::NoLun)?;
        let old = std::mem::replace(slot, Arc::new(lun));
        self.lun_generation.fetch_add(1, Ordering::AcqRel);
        let all: Vec<Arc<Lun>> = luns.values().cloned().collect();
        drop(luns);
        // Unit attentions for the change (scsi helper): CAPACITY DATA HAS CHANGED on a
        // resize; online/offline reaches the SCSI layer. The state Arc carries over.
        if let Some(new) = all.iter().find(|l| l.lun == old.lun) {
            super::lun::announce_replacement(&old, new, &all);
        }
        Ok(())
    }

    /// Remove a LUN. LUN 0, the controller, cannot be removed (tgt refuses it too).
    pub fn remove_lun(&self, lun: u64) -> Result<Arc<Lun>, MgmtError> {
        let mut luns = self.luns.write().expect("lun lock poisoned");
        if lun == 0 {
            return Err(MgmtError::InvalidRequest);
        }
        let removed = luns.remove(&lun).ok_or(MgmtError::NoLun)?;
        self.set_lun_list(&luns);
        self.lun_generation.fetch_add(1, Ordering::AcqRel);
        let all: Vec<Arc<Lun>> = luns.values().cloned().collect();
        drop(luns);
        // Unit attentions for the change (scsi helper): REPORTED LUNS DATA HAS CHANGED.
        super::lun::announce_inventory_change(&all, None);
        Ok(removed)
    }

    /// Moves whenever the LUN inventory or a LUN's configuration changed (hook for
    /// unit attentions: REPORTED LUNS DATA HAS CHANGED, CAPACITY DATA HAS CHANGED).
    pub fn lun_generation(&self) -> u64 {
        self.lun_generation.load(Ordering::Acquire)
    }

    /// Bind an ACL entry; refused when already bound.
    pub fn bind(&self, entry: AclEntry) -> Result<(), MgmtError> {
        let mut acl = self.acl.write().expect("acl lock poisoned");
        if acl.contains(&entry) {
            return Err(MgmtError::AclExists);
        }
        acl.push(entry);
        Ok(())
    }

    /// Unbind an ACL entry; refused when not bound.
    pub fn unbind(&self, entry: &AclEntry) -> Result<(), MgmtError> {
        let mut acl = self.acl.write().expect("acl lock poisoned");
        let pos = acl
            .iter()
            .position(|e| e == entry)
            .ok_or(MgmtError::AclNoExist)?;
        acl.remove(pos);
        Ok(())
    }

    /// The bound ACL entries, in bind order.
    pub fn acl(&self) -> Vec<AclEntry> {
        self.acl.read().expect("acl lock poisoned").clone()
    }

    /// Whether an initiator at `addr` may see and log in to this target.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.acl
            .read()
            .expect("acl lock poisoned")
            .iter()
            .any(|e| e.matches(addr))
    }

    /// Bind an initiator name (`tgtadm --op bind --initiator-name`); refused when
    /// already bound. tgt compares names byte for byte (`iqn_acl_add`).
    pub fn bind_initiator_name(&self, name: &str) -> Result<(), MgmtError> {
        let mut names = self.name_acl.write().expect("acl lock poisoned");
        if names.iter().any(|n| n == name) {
            return Err(MgmtError::AclExists);
        }
        names.push(name.to_string());
        Ok(())
    }

    /// Unbind an initiator name; refused when not bound.
    pub fn unbind_initiator_name(&self, name: &str) -> Result<(), MgmtError> {
        let mut names = self.name_acl.write().expect("acl lock poisoned");
        let pos = names
            .iter()
            .position(|n| n == name)
            .ok_or(MgmtError::AclNoExist)?;
        names.remove(pos);
        Ok(())
    }

    /// The bound initiator names, in bind order.
    pub fn initiator_name_acl(&self) -> Vec<String> {
        self.name_acl.read().expect("acl lock poisoned").clone()
    }

    /// Whether an initiator named `name` at `addr` may see and log in to this target.
    ///
    /// tgt admits an initiator when its address matches an address rule *or* its
    /// name matches a name rule (`iscsid.c`: refused only if `ip_acl` and `iqn_acl`
    /// both fail), so this is the check login and SendTargets should use.
    pub fn allows_initiator(&self, addr: IpAddr, name: &str) -> bool {
        self.allows(addr)
            || self
                .name_acl
                .read()
                .expect("acl lock poisoned")
                .iter()
                .any(|n| n == name)
    }

    /// Record a new session.
    pub fn add_session(&self, info: SessionInfo) {
        self.sessions
            .write()
            .expect("session lock poisoned")
            .insert(info.sid, info);
    }

    /// A connection joined session `sid` (MC/S); one with the same CID is replaced
    /// (connection reinstatement).
    pub fn add_connection(&self, sid: u64, conn: ConnectionInfo) {
        let mut g = self.sessions.write().expect("session lock poisoned");
        if let Some(s) = g.get_mut(&sid) {
            s.connections.retain(|c| c.cid != conn.cid);
            s.connections.push(conn);
            s.connections.sort_by_key(|c| c.cid);
        }
    }

    /// Connection `cid` of session `sid` left while others remain. `stats` tells
    /// it from a reinstated connection that took its CID.
    pub fn remove_connection(&self, sid: u64, cid: u16, stats: &Arc<ConnStats>) {
        let mut g = self.sessions.write().expect("session lock poisoned");
        if let Some(s) = g.get_mut(&sid) {
            s.connections
                .retain(|c| c.cid != cid || !Arc::ptr_eq(&c.stats, stats));
        }
    }

    /// Forget a session.
    pub fn remove_session(&self, sid: u64) {
        self.sessions
            .write()
            .expect("session lock poisoned")
            .remove(&sid);
        self.stats
            .write()
            .expect("stats lock poisoned")
            .retain(|&(s, _), _| s != sid);
        self.logout
            .write()
            .expect("logout lock poisoned")
            .remove(&sid);
    }

    /// The counters of session `sid` on LUN `lun`, created on first use. Callers
    /// keep the `Arc` and count without locking.
    pub fn lu_stats(&self, sid: u64, lun: u64) -> Arc<LuStats> {
        let key = (sid, lun);
        if let Some(s) = self.stats.read().expect("stats lock poisoned").get(&key) {
            return s.clone();
        }
        self.stats
            .write()
            .expect("stats lock poisoned")
            .entry(key)
            .or_default()
            .clone()
    }

    /// `(lun, sid, counters)` for every LUN and every session of this target, in
    /// tgt's order (LUNs, then sessions within each); pairs never used count zero.
    pub fn stat_rows(&self, only_lun: Option<u64>) -> Vec<(u64, u64, LuStatSnapshot)> {
        let sids: Vec<u64> = self
            .sessions
            .read()
            .expect("session lock poisoned")
            .keys()
            .copied()
            .collect();
        let stats = self.stats.read().expect("stats lock poisoned");
        let mut rows = Vec::new();
        for lun in self.lun_numbers() {
            if only_lun.is_some_and(|l| l != lun) {
                continue;
            }
            for &sid in &sids {
                let snap = stats
                    .get(&(sid, lun))
                    .map(|s| s.snapshot())
                    .unwrap_or_default();
                rows.push((lun, sid, snap));
            }
        }
        rows
    }

    /// Ask the session `sid` to go (tgtadm session/connection delete, unbind): its
    /// connection closes the next time it is fed input. `NoSession` when unknown.
    pub fn request_logout(&self, sid: u64) -> Result<(), MgmtError> {
        if !self
            .sessions
            .read()
            .expect("session lock poisoned")
            .contains_key(&sid)
        {
            return Err(MgmtError::NoSession);
        }
        self.logout
            .write()
            .expect("logout lock poisoned")
            .insert(sid);
        Ok(())
    }

    /// Whether session `sid` was asked to log out; its connection should close.
    pub fn logout_requested(&self, sid: u64) -> bool {
        self.is_deleted()
            || self
                .logout
                .read()
                .expect("logout lock poisoned")
                .contains(&sid)
    }

    /// The session whose TSIH is `tsih` (tgtadm's `--sid` is the TSIH).
    pub fn session_by_tsih(&self, tsih: u64) -> Option<SessionInfo> {
        self.sessions
            .read()
            .expect("session lock poisoned")
            .values()
            .find(|s| u64::from(s.tsih) == tsih)
            .cloned()
    }

    /// Mark every session whose initiator the ACL no longer admits; returns how many.
    pub fn logout_unadmitted(&self) -> usize {
        let mut n = 0;
        for s in self.sessions() {
            let admitted = s
                .connections
                .iter()
                .all(|c| self.allows_initiator(c.peer.ip(), &s.initiator));
            if !admitted && self.request_logout(s.sid).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Incoming CHAP user names bound to this target, in bind order (empty: no CHAP).
    pub fn incoming_users(&self) -> Vec<String> {
        self.accounts
            .read()
            .expect("account lock poisoned")
            .incoming
            .clone()
    }

    /// The outgoing (mutual CHAP) user name, if one is bound.
    pub fn outgoing_user(&self) -> Option<String> {
        self.accounts
            .read()
            .expect("account lock poisoned")
            .outgoing
            .clone()
    }

    /// Change the account binding.
    pub fn with_accounts<R>(&self, f: impl FnOnce(&mut AccountBinding) -> R) -> R {
        f(&mut self.accounts.write().expect("account lock poisoned"))
    }

    /// The iSCSI parameters an administrator set (`target update`).
    pub fn params(&self) -> TargetParams {
        self.params.read().expect("params lock poisoned").clone()
    }

    /// Set one parameter; `false` when the key or value is refused.
    pub fn set_param(&self, key: &str, value: &str) -> bool {
        if super::alua::is_alua_key(key) {
            return self.set_alua(key, value);
        }
        self.params
            .write()
            .expect("params lock poisoned")
            .set(key, value)
    }

    /// Set one ALUA key. When what initiators are told changed, every nexus known to
    /// every LU of the target gets ASYMMETRIC ACCESS STATE CHANGED once (SPC-4
    /// 5.15.2.3: implicit transitions are announced with this unit attention).
    fn set_alua(&self, key: &str, value: &str) -> bool {
        let change = {
            let mut alua = self.alua.write().expect("alua lock poisoned");
            let change = alua.set(key, value);
            self.alua_on.store(alua.view().is_some(), Ordering::Release);
            change
        };
        match change {
            None => false,
            Some(AluaChange::None) => true,
            Some(AluaChange::Reported) => {
                for lun in self.luns() {
                    lun.lock_state()
                        .ua
                        .broadcast(scsi_sbc::asc::ASYMMETRIC_ACCESS_STATE_CHANGED, None);
                }
                true
            }
        }
    }

    /// The port groups commands see (`LuContext::alua`); `None` while ALUA is off.
    pub fn alua(&self) -> Option<Arc<scsi_sbc::alua::PortGroups>> {
        if !self.alua_on.load(Ordering::Acquire) {
            return None;
        }
        self.alua.read().expect("alua lock poisoned").view()
    }

    /// The ALUA keys an administrator set, as `(key, value)` (dump, targets.conf).
    pub fn alua_params(&self) -> Vec<(String, String)> {
        self.alua.read().expect("alua lock poisoned").changed()
    }

    /// The live sessions, by sid.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .read()
            .expect("session lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Whether the target was deleted; its connections then close.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }
}
