//! One logical unit of a target.

use scsi_sbc::{BlockStore, DeviceType, LuConfig, LuIdentity, LuState};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How a LUN is backed, as `tgtadm --op show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunBacking {
    /// Backing store type name (`rdwr`, `memory`, `null`).
    pub bstype: String,
    /// Backing store path (`None` for the controller).
    pub path: Option<String>,
    /// Open flags, as tgt's `--bsoflags` (empty when none).
    pub oflags: String,
    /// Backing store options, as tgt's `--bsopts` (empty when none).
    pub bsopts: String,
}

/// A logical unit: its SCSI configuration and its open backing store.
///
/// Immutable once created: a change (online/offline, resize) replaces the `Arc<Lun>` in
/// its target, so a command in flight keeps the view it started with.
#[derive(Debug, Clone)]
pub struct Lun {
    /// LUN number.
    pub lun: u64,
    /// What the SCSI layer needs.
    pub config: LuConfig,
    /// The open store; `None` for the LUN 0 controller.
    pub store: Option<Arc<dyn BlockStore>>,
    /// Where the data lives, for show.
    pub backing: LunBacking,
    /// Whether the LU answers media commands.
    pub online: bool,
    /// Highest rate of a SANITIZE erase in bytes per second, 0 for no limit
    /// (`--params sanitize_rate=MiB/s`).
    pub sanitize_rate: u64,
    /// What commands change (unit attentions, reservations, mode values). Shared by
    /// every copy of this `Lun`, so a replaced `Arc<Lun>` (update, online/offline) keeps
    /// it; locked only for the duration of one `scsi_sbc` call.
    pub state: Arc<Mutex<LuState>>,
}

/// tgt's default SCSI ID for (tid, lun): `IET` padded to 8, then tid and lun as 4 hex digits.
pub fn default_scsi_id(tid: u32, lun: u64) -> String {
    format!("IET     {:04x}{:04x}", tid, lun)
}

/// tgt's default PRODUCT IDENTIFICATION of a device type.
pub fn default_product_id(kind: DeviceType) -> &'static str {
    match kind {
        DeviceType::Disk => "VIRTUAL-DISK",
        DeviceType::Cd => "VIRTUAL-CDROM",
        DeviceType::Controller => "Controller",
        DeviceType::Tape => "VIRTUAL-TAPE",
        DeviceType::Changer => "VIRTUAL-CHANGER",
    }
}

/// tgt's default unit serial number for (tid, lun).
pub fn default_scsi_sn(tid: u32, lun: u64) -> String {
    format!("beaf{}{}", tid, lun)
}

impl Lun {
    /// The LUN 0 controller every target has in tgt.
    pub fn controller(tid: u32) -> Self {
        Lun {
            lun: 0,
            config: LuConfig {
                device_type: DeviceType::Controller,
                block_size: 1,
                num_blocks: 0,
                identity: LuIdentity {
                    vendor_id: "IET".into(),
                    product_id: "Controller".into(),
                    product_rev: "0001".into(),
                    scsi_id: default_scsi_id(tid, 0),
                    scsi_sn: default_scsi_sn(tid, 0),
                },
                readonly: false,
                removable: false,
                write_cache: false,
                thin_provisioning: false,
                descriptor_sense: false,
                sanitize: false,
                geometry: Default::default(),
            },
            store: None,
            backing: LunBacking {
                bstype: "null".into(),
                path: None,
                oflags: String::new(),
                bsopts: String::new(),
            },
            online: true,
            sanitize_rate: 0,
            state: Arc::default(),
        }
    }

    /// A disk LUN over an open store with tgt's default identity.
    pub fn disk(
        tid: u32,
        lun: u64,
        store: Arc<dyn BlockStore>,
        block_size: u32,
        backing: LunBacking,
    ) -> Self {
        let num_blocks = store.size() / u64::from(block_size.max(1));
        Lun {
            lun,
            config: LuConfig {
                device_type: DeviceType::Disk,
                block_size,
                num_blocks,
                identity: LuIdentity {
                    vendor_id: "IET".into(),
                    product_id: "VIRTUAL-DISK".into(),
                    product_rev: "0001".into(),
                    scsi_id: default_scsi_id(tid, lun),
                    scsi_sn: default_scsi_sn(tid, lun),
                },
                readonly: false,
                removable: false,
                write_cache: true,
                thin_provisioning: false,
                descriptor_sense: false,
                sanitize: false,
                geometry: Default::default(),
            },
            store: Some(store),
            backing,
            online: true,
            sanitize_rate: 0,
            state: Arc::default(),
        }
    }

    /// A CD/DVD LUN (tgt's `--device-type cd`) over an open image: 2048-byte blocks,
    /// read-only, removable medium, "VIRTUAL-CDROM"; its commands go to `scsi_mmc`.
    pub fn cd(tid: u32, lun: u64, store: Arc<dyn BlockStore>, backing: LunBacking) -> Self {
        let mut lu = Lun::disk(tid, lun, store, scsi_mmc::BLOCK_SIZE, backing);
        let c = &mut lu.config;
        c.device_type = DeviceType::Cd;
        c.identity.product_id = default_product_id(DeviceType::Cd).into();
        c.readonly = true;
        c.removable = true;
        c.write_cache = false;
        lu
    }

    /// A tape drive LUN (tgt's `--device-type tape`) over a tape store: removable
    /// medium, "VIRTUAL-TAPE", block size 1 as tgt shows it; its commands go to
    /// `scsi_ssc` and run in the store.
    pub fn tape(tid: u32, lun: u64, store: Arc<dyn BlockStore>, backing: LunBacking) -> Self {
        let mut lu = Lun::disk(tid, lun, store, 1, backing);
        let c = &mut lu.config;
        c.device_type = DeviceType::Tape;
        c.num_blocks = 0;
        c.identity.product_id = default_product_id(DeviceType::Tape).into();
        c.removable = true;
        c.write_cache = false;
        lu
    }

    /// A medium changer LUN (tgt's `--device-type changer`) over its library store:
    /// "VIRTUAL-CHANGER", removable as tgt reports it; its commands go to `scsi_smc`.
    pub fn changer(tid: u32, lun: u64, store: Arc<dyn BlockStore>, backing: LunBacking) -> Self {
        let mut lu = Lun::tape(tid, lun, store, backing);
        let c = &mut lu.config;
        c.device_type = DeviceType::Changer;
        c.identity.product_id = default_product_id(DeviceType::Changer).into();
        lu
    }

    /// Lock the LU's state; a poisoned lock (a panic elsewhere) still holds valid state.
    ///
    /// The reservations of a medium that several gateways share are brought up to
    /// what the store last learned from the cluster first ([`SharedPr::sync`], one
    /// atomic load when nothing changed), so every command is checked against them.
    ///
    /// [`SharedPr::sync`]: scsi_sbc::pr_shared::SharedPr::sync
    pub fn lock_state(&self) -> MutexGuard<'_, LuState> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = self.store.as_ref().and_then(|s| s.shared_reservations()) {
            if state.res.shared {
                shared.sync(&mut state);
            }
        }
        state
    }

    /// Size in bytes as the initiator sees it.
    pub fn size_bytes(&self) -> u64 {
        self.config.num_blocks * u64::from(self.config.block_size)
    }
}

/// Every I_T nexus that has addressed one of `luns` (and not gone away): the target's
/// nexuses as far as the SCSI layer knows them.
fn known_nexuses(luns: &[Arc<Lun>]) -> Vec<u64> {
    let mut all = BTreeSet::new();
    for l in luns {
        all.extend(l.lock_state().ua.known());
    }
    all.into_iter().collect()
}

/// LUNs were added to or removed from a target whose LUNs are now `luns`: REPORTED LUNS
/// DATA HAS CHANGED on each of them, for every nexus of the target (SPC-4 6.33).
/// `fresh` (a LUN just added) gets none: it was not there to report anything before.
pub(crate) fn announce_inventory_change(luns: &[Arc<Lun>], fresh: Option<u64>) {
    let nexuses = known_nexuses(luns);
    for l in luns.iter().filter(|l| Some(l.lun) != fresh) {
        l.lock_state().luns_changed(&nexuses);
    }
}

/// `new` replaced `old` (same state): MEDIUM MAY HAVE CHANGED for a new backing file,
/// else CAPACITY DATA HAS CHANGED when the size moved (SBC-3 4.5), and the administrator's online/offline switch reaches the SCSI layer.
/// `luns` are the target's LUNs, whose nexuses all hear of the change.
pub(crate) fn announce_replacement(old: &Lun, new: &Lun, luns: &[Arc<Lun>]) {
    let resized = old.config.num_blocks != new.config.num_blocks
        || old.config.block_size != new.config.block_size;
    let new_medium = old.backing.path != new.backing.path;
    let nexuses = if resized || new_medium {
        known_nexuses(luns)
    } else {
        Vec::new()
    };
    let mut state = new.lock_state();
    state.offline = !new.online;
    if new_medium {
        state.medium_changed(&nexuses);
    }
    // A new medium's size is news the MEDIUM MAY HAVE CHANGED already carries (an
    // initiator reads the capacity again after it): one unit attention, not two.
    if resized && !new_medium {
        state.capacity_changed(&nexuses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use scsi_sbc::{BlockOp, BlockStore, IoErrorKind, SenseKey};

    #[derive(Debug)]
    struct Sized(u64);

    impl BlockStore for Sized {
        fn size(&self) -> u64 {
            self.0
        }
        fn execute(&self, _: &BlockOp) -> Result<Bytes, IoErrorKind> {
            Ok(Bytes::new())
        }
    }

    fn disk(lun: u64, size: u64) -> Lun {
        let backing = LunBacking {
            bstype: "rdwr".into(),
            path: None,
            oflags: String::new(),
            bsopts: String::new(),
        };
        Lun::disk(1, lun, Arc::new(Sized(size)), 512, backing)
    }

    fn pending(l: &Lun, nexus: u64) -> Option<(SenseKey, u8, u8)> {
        l.lock_state()
            .ua
            .take(nexus)
            .map(|s| (s.key, s.asc, s.ascq))
    }

    /// `nexus` has addressed `l` and cleared its power-on unit attention.
    fn seen(l: &Lun, nexus: u64) {
        l.lock_state().ua.see(nexus);
        assert_eq!(
            pending(l, nexus),
            Some((SenseKey::UnitAttention, 0x29, 0x00))
        );
    }

    #[test]
    fn inventory_change_reaches_every_nexus_of_every_old_lun() {
        let luns = [Arc::new(Lun::controller(1)), Arc::new(disk(1, 1 << 20))];
        seen(&luns[0], 7); // nexus 7 has only talked to LUN 0
        seen(&luns[1], 8);
        announce_inventory_change(&luns, None);
        // Nexus 8 never addressed LUN 0 (nor 7 LUN 1): power on comes first there.
        assert_eq!(
            pending(&luns[0], 8),
            Some((SenseKey::UnitAttention, 0x29, 0x00))
        );
        assert_eq!(
            pending(&luns[1], 7),
            Some((SenseKey::UnitAttention, 0x29, 0x00))
        );
        for l in &luns {
            for n in [7, 8] {
                assert_eq!(pending(l, n), Some((SenseKey::UnitAttention, 0x3f, 0x0e)));
                assert_eq!(pending(l, n), None);
            }
        }
        announce_inventory_change(&luns, Some(1));
        assert_eq!(
            pending(&luns[1], 7),
            None,
            "the new LUN reports no inventory change (its power on comes when addressed)"
        );
    }

    #[test]
    fn replacement_reports_resize_and_offline() {
        let old = disk(1, 1 << 20);
        let mut new = old.clone();
        let luns = [Arc::new(old.clone())];
        seen(&luns[0], 3);
        announce_replacement(&old, &new, &luns);
        assert_eq!(pending(&new, 3), None, "same size: no unit attention");
        new.config.num_blocks *= 2;
        new.online = false;
        announce_replacement(&old, &new, &luns);
        assert_eq!(
            pending(&new, 3),
            Some((SenseKey::UnitAttention, 0x2a, 0x09))
        );
        assert!(
            old.lock_state().offline,
            "state is shared with the old copy"
        );
    }
}
