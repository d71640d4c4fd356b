//! tgt's `targets.conf`: the model, a parser with line-numbered errors and dumpers,
//! sans-IO (`include` files come through a callback).
//!
//! ```text
//! default-driver iscsi
//! include /etc/tgt/conf.d/*.conf
//! incomingdiscoveryuser discovery-user secret # global: discovery CHAP
//! iSNSServerIP 192.0.2.1                      # global: iSNS registration
//! iSNSServerPort 3205
//! iSNSAccessControl Off
//! iSNS On
//! <target iqn.2001-04.com.example:disk1>
//!     <backing-store /srv/disk1.img>          # LUN 1: stores by path, around
//!     </backing-store>                        # the explicit numbers
//!     <backing-store /srv/disk2.img>
//!         lun 5
//!         vendor_id ACME
//!     </backing-store>
//!     direct-store /dev/sdb                   # LUN 2: after the backing stores
//!     bs-type rdwr
//!     initiator-address 192.168.1.0/24        # none given: ACL ALL
//!     initiator-name iqn.1994-05.com.redhat:client
//!     incominguser alice secret12
//!     outgoinguser bob secret34
//!     write-cache off
//!     MaxRecvDataSegmentLength 65536
//! </target>
//! ```
//!
//! [`parse`] gives a [`Config`]; [`dump`] writes one back in the same format, so
//! `parse(dump(c)) == c` for a dumped state; [`dump_tgt_admin`] is tgt-admin's
//! `--dump`. Applying a `Config` the way tgt-admin does is
//! [`Request::ConfigApply`](crate::mgmt::Request::ConfigApply), which tgt-admin and
//! the daemon's `-c` both send, so its rules live in one place.

mod dump;
mod parse;

pub use dump::{dump, dump_tgt_admin};
pub use parse::{parse, ConfigError, ConfigErrorKind, IncludeFn};

use serde::{Deserialize, Serialize};

/// A whole configuration file (after includes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// `default-driver` (only `iscsi` is served).
    pub default_driver: Option<String>,
    /// `incomingdiscoveryuser` lines: discovery CHAP accounts. (tgt-admin ignores a
    /// top-level `incominguser`, and so do we.)
    pub discovery_incoming: Vec<UserConfig>,
    /// `outgoingdiscoveryuser`.
    pub discovery_outgoing: Option<UserConfig>,
    /// `ignore-errors yes`: tgt-admin goes on after a command fails.
    #[serde(default)]
    pub ignore_errors: bool,
    /// Directives tgt-admin ignores without a word (unknown keys, a top-level
    /// `incominguser`), as `file:line: text`: we ignore them too, but say so.
    #[serde(default)]
    pub ignored: Vec<String>,
    /// The top-level `iSNS*` keys.
    #[serde(default)]
    pub isns: IsnsConfig,
    /// The `<target>` blocks, in file order.
    pub targets: Vec<TargetConfig>,
}

/// The top-level iSNS keys, each as given (tgt-admin hands them to `tgtadm --mode
/// sys --op update`, and only while iSNS is off). Values follow
/// [`IsnsSettings::update`](crate::isns::IsnsSettings::update)'s rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsnsConfig {
    /// `iSNSServerIP`.
    pub server_ip: Option<String>,
    /// `iSNSServerPort`.
    pub server_port: Option<i32>,
    /// `iSNSAccessControl` (`On` is on, anything else off).
    pub access_control: Option<bool>,
    /// `iSNS On|Off`.
    pub enabled: Option<bool>,
}

impl IsnsConfig {
    /// Whether no key was given.
    pub fn is_empty(&self) -> bool {
        *self == IsnsConfig::default()
    }
}

/// A CHAP user with its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserConfig {
    /// CHAP name.
    pub user: String,
    /// CHAP secret.
    pub password: String,
}

/// One `<target NAME>` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// The target's iSCSI name.
    pub name: String,
    /// `driver` inside the block, when given.
    pub driver: Option<String>,
    /// Logical units (not LUN 0), with numbers resolved.
    pub luns: Vec<LunConfig>,
    /// `initiator-address` entries (`ALL`, an address, a CIDR).
    pub initiator_addresses: Vec<String>,
    /// `initiator-name` entries.
    pub initiator_names: Vec<String>,
    /// `incominguser` entries.
    pub incoming: Vec<UserConfig>,
    /// `outgoinguser`.
    pub outgoing: Option<UserConfig>,
    /// iSCSI parameters (`MaxRecvDataSegmentLength 65536`), as `target update` takes.
    pub params: Vec<(String, String)>,
    /// `controller_tid N`: the tid to create the target with.
    #[serde(default)]
    pub controller_tid: Option<u32>,
    /// `allow-in-use yes`: use stores another LUN already has open.
    #[serde(default)]
    pub allow_in_use: bool,
}

/// One logical unit: a `backing-store` / `direct-store` line or block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunConfig {
    /// LUN number: the explicit `lun`, or tgt-admin's number for it when every
    /// store of the target can be added (the next free one, stores taken in
    /// tgt-admin's order: `backing-store` before `direct-store`, each by path).
    /// When a store is skipped (missing, in use) the ones after it move up; see
    /// [`explicit_lun`](Self::explicit_lun).
    pub lun: u64,
    /// Whether `lun` was written in the file (a block's `lun N`).
    #[serde(default)]
    pub explicit_lun: bool,
    /// `allow-in-use yes` in the block.
    #[serde(default)]
    pub allow_in_use: bool,
    /// A single-valued LU directive given twice for this store (in its block or
    /// in the target): tgt-admin stops with "Multiple 'KEY' definitions" when it
    /// reaches the store.
    #[serde(default)]
    pub duplicate: Option<String>,
    /// The path (or the size, for `bs-type memory`).
    pub path: String,
    /// `direct-store` (tgt passes the device's identity through; we keep the flag).
    pub direct: bool,
    /// `bs-type`.
    pub bstype: Option<String>,
    /// `bsopts`.
    pub bsopts: Option<String>,
    /// `bsoflags`.
    pub bsoflags: Option<String>,
    /// `block-size`.
    pub blocksize: Option<u32>,
    /// `device-type`.
    pub device_type: Option<String>,
    /// LU parameters in tgt's `--params` spelling (`readonly=1`, `vendor_id=X`,
    /// `scsi_sn=Y`, `write_cache=0`, ...), in file order.
    pub params: Vec<(String, String)>,
}

impl LunConfig {
    /// The `--params` string for these parameters (`k=v,k=v`), `None` when empty.
    pub fn params_string(&self) -> Option<String> {
        if self.params.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        Some(parts.join(","))
    }
}
