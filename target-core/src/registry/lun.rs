//! One logical unit of a target.

use scsi_sbc::{BlockStore, DeviceType, LuConfig, LuIdentity, LuState};
use std::sync::{Arc, Mutex};

/// How a LUN is backed, as `tgtadm --op show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunBacking {
    /// Backing store type name (`rdwr`, `memory`, `null`).
    pub bstype: String,
    /// Backing store path (`None` for the controller).
    pub path: Option<String>,
    /// Open flags, as tgt's `--bsoflags` (empty when none).
    pub oflags: String,
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
    /// What commands change (unit attentions, reservations, mode values). Shared by
    /// every copy of this `Lun`, so a replaced `Arc<Lun>` (update, online/offline) keeps
    /// it; locked only for the duration of one `scsi_sbc` call.
    pub state: Arc<Mutex<LuState>>,
}

/// tgt's default SCSI ID for (tid, lun): `IET` padded to 8, then tid and lun as 4 hex digits.
pub fn default_scsi_id(tid: u32, lun: u64) -> String {
    format!("IET     {:04x}{:04x}", tid, lun)
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
            },
            store: None,
            backing: LunBacking {
                bstype: "null".into(),
                path: None,
                oflags: String::new(),
            },
            online: true,
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
            },
            store: Some(store),
            backing,
            online: true,
            state: Arc::default(),
        }
    }

    /// Size in bytes as the initiator sees it.
    pub fn size_bytes(&self) -> u64 {
        self.config.num_blocks * u64::from(self.config.block_size)
    }
}
