//! Media whose size changes behind the daemon's back and that say so themselves (a
//! Ceph RBD image resized with `rbd resize`: librbd's update watch fires): once a
//! second, every LU whose store reports [`BlockStore::size_changed`] is updated as
//! `tgtadm --mode logicalunit --op update` would (its size read again; each I_T nexus
//! then gets CAPACITY DATA HAS CHANGED), through [`LocalAdmin`], so the change is
//! serialised with the administrator's requests.
//!
//! [`BlockStore::size_changed`]: scsi_sbc::BlockStore::size_changed

use std::time::Duration;

use target_core::mgmt::Request;

use crate::mgmt_server::LocalAdmin;

/// How often the LUs are looked at.
pub const EVERY: Duration = Duration::from_secs(1);

/// Start the watcher thread (`tgtd-size-watch`); it runs until the process exits.
pub fn spawn(admin: LocalAdmin) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tgtd-size-watch".into())
        .spawn(move || loop {
            std::thread::sleep(EVERY);
            check(&admin);
        })
        .map(|_| ())
}

/// One look: update every LU whose medium says its size may have changed.
pub fn check(admin: &LocalAdmin) {
    for target in admin.core().registry.targets() {
        for lun in target.luns() {
            let changed = lun.store.as_ref().is_some_and(|s| s.size_changed());
            if !changed {
                continue;
            }
            let req = Request::LuUpdate {
                tid: target.tid,
                lun: lun.lun,
                params: None,
            };
            match admin.apply(req) {
                Ok(_) => tracing::info!(
                    "tid {} lun {}: medium size read again ({} bytes)",
                    target.tid,
                    lun.lun,
                    lun.store.as_ref().map_or(0, |s| s.size())
                ),
                Err(e) => tracing::warn!(
                    "tid {} lun {}: cannot read the medium size again: {e}",
                    target.tid,
                    lun.lun
                ),
            }
        }
    }
}
