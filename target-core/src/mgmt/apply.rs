//! Applying a [`Request`] to the shared state.
//!
//! Each arm follows the checks and error codes of the tgt function that handles the
//! same request (`tgt_target_create`, `tgt_device_create`, `acl_add`, ... in
//! `usr/target.c`), so an administrator sees the same refusals.

use super::show::{self, SystemInfo};
use super::{MgmtError, Request, Response, StoreOpener};
use crate::registry::{AclEntry, Lun, LunBacking, Target, Tid};
use crate::Core;
use std::sync::Arc;

/// `--bstype` when none is given: tgt's iscsi driver default (`default_bst`).
const DEFAULT_BSTYPE: &str = "rdwr";
/// `--blocksize` when none is given: sbc's default of a 9-bit block shift.
const DEFAULT_BLOCKSIZE: u32 = 512;

/// Apply one management request. Opening a backing store is the only I/O a request
/// may need, and it goes through `opener`.
pub fn apply(core: &Core, req: Request, opener: &dyn StoreOpener) -> Result<Response, MgmtError> {
    match req {
        Request::SystemShow => {
            let info = SystemInfo {
                debug: false,
                backing_stores: opener.backing_stores(),
            };
            Ok(Response::text(show::system_show(&info)))
        }
        Request::SystemDelete => {
            // tgt's `is_system_inactive`: only a daemon without targets may stop.
            if core.registry.targets().is_empty() {
                Ok(Response::ok())
            } else {
                Err(MgmtError::InvalidRequest)
            }
        }
        Request::TargetNew { tid, name } => {
            if tid == 0 || !valid_target_name(&name) {
                return Err(MgmtError::InvalidRequest);
            }
            core.registry.add_target(tid, &name)?;
            Ok(Response::ok())
        }
        Request::TargetDelete { tid, force } => {
            core.registry.remove_target(tid, force)?;
            Ok(Response::ok())
        }
        Request::TargetShow => Ok(Response::text(show::target_show(&core.registry.targets()))),
        Request::TargetBind {
            tid,
            address,
            initiator_name,
        } => {
            let (target, address) = acl_args(core, tid, address, &initiator_name)?;
            if let Some(entry) = address {
                target.bind(entry)?;
            }
            if let Some(name) = &initiator_name {
                target.bind_initiator_name(name)?;
            }
            Ok(Response::ok())
        }
        Request::TargetUnbind {
            tid,
            address,
            initiator_name,
        } => {
            let (target, address) = acl_args(core, tid, address, &initiator_name)?;
            if let Some(entry) = address {
                target.unbind(&entry)?;
            }
            if let Some(name) = &initiator_name {
                target.unbind_initiator_name(name)?;
            }
            Ok(Response::ok())
        }
        Request::LuNew {
            tid,
            lun,
            backing_store,
            bstype,
            blocksize,
            params,
        } => lu_new(
            core,
            opener,
            tid,
            lun,
            &backing_store,
            bstype,
            blocksize,
            params.as_deref(),
        ),
        Request::LuDelete { tid, lun } => {
            // tgt checks LUN 0 before anything else, and reports an unknown target as
            // an unknown LUN (`tgt_device_destroy` looks both up at once).
            if lun == 0 {
                return Err(MgmtError::InvalidRequest);
            }
            let target = core.registry.target(tid).ok_or(MgmtError::NoLun)?;
            target.remove_lun(lun)?;
            Ok(Response::ok())
        }
    }
}

/// tgt accepts only letters, digits, `:`, `.` and `-` in a target name. It lets an
/// empty name through; we do not, since no initiator could name that target.
fn valid_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b))
}

/// The target and parsed address of a bind/unbind. Parsing happens before any change,
/// so a bad address leaves the name rule untouched too.
fn acl_args(
    core: &Core,
    tid: Tid,
    address: Option<String>,
    initiator_name: &Option<String>,
) -> Result<(Arc<Target>, Option<AclEntry>), MgmtError> {
    if address.is_none() && initiator_name.is_none() {
        return Err(MgmtError::InvalidRequest);
    }
    let target = core.registry.target(tid).ok_or(MgmtError::NoTarget)?;
    let address = match address {
        Some(a) => Some(
            a.parse::<AclEntry>()
                .map_err(|_| MgmtError::InvalidRequest)?,
        ),
        None => None,
    };
    if initiator_name.as_deref() == Some("") {
        return Err(MgmtError::InvalidRequest);
    }
    Ok((target, address))
}

#[allow(clippy::too_many_arguments)] // the fields of Request::LuNew, one for one
fn lu_new(
    core: &Core,
    opener: &dyn StoreOpener,
    tid: Tid,
    lun: u64,
    backing_store: &str,
    bstype: Option<String>,
    blocksize: Option<u32>,
    params: Option<&str>,
) -> Result<Response, MgmtError> {
    let target = core.registry.target(tid).ok_or(MgmtError::NoTarget)?;
    // Refuse a taken number before opening anything; add_lun checks again, race-free.
    if target.lun(lun).is_some() {
        return Err(MgmtError::LunExists);
    }
    let block_size = blocksize.unwrap_or(DEFAULT_BLOCKSIZE);
    // tgt logs and ignores a block size that is not a power of two; we refuse it so a
    // typo does not silently give 512-byte blocks. SBC needs at least 512.
    if !block_size.is_power_of_two() || !(512..=65536).contains(&block_size) {
        return Err(MgmtError::InvalidRequest);
    }
    let lu_params = LuParams::parse(params.unwrap_or(""))?;
    let bstype = bstype.unwrap_or_else(|| DEFAULT_BSTYPE.to_string());
    if backing_store.is_empty() {
        return Err(MgmtError::InvalidRequest);
    }
    let readonly = lu_params.readonly.unwrap_or(false);
    let store = opener
        .open(&bstype, backing_store, readonly)
        .map_err(MgmtError::BackingStore)?;
    let backing = LunBacking {
        bstype,
        path: Some(backing_store.to_string()),
        oflags: String::new(),
    };
    let mut lu = Lun::disk(tid, lun, store, block_size, backing);
    lu_params.apply_to(&mut lu);
    target.add_lun(lu)?;
    Ok(Response::ok())
}

/// The subset of tgt's logical unit `--params` (`lu_config` in `usr/spc.c`) that the
/// registry can hold. Any other key is refused, as tgt refuses keys it does not know.
#[derive(Debug, Default)]
struct LuParams {
    readonly: Option<bool>,
    removable: Option<bool>,
    online: Option<bool>,
    scsi_id: Option<String>,
    scsi_sn: Option<String>,
    vendor_id: Option<String>,
    product_id: Option<String>,
    product_rev: Option<String>,
}

impl LuParams {
    fn parse(params: &str) -> Result<Self, MgmtError> {
        let mut p = LuParams::default();
        for item in params.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = item.split_once('=').ok_or(MgmtError::InvalidRequest)?;
            // Field widths are tgt's buffers (tgtd.h); longer values are cut as
            // tgt's match_strncpy cuts them.
            match key {
                "readonly" => p.readonly = Some(flag(value)?),
                "removable" => p.removable = Some(flag(value)?),
                "online" => p.online = Some(flag(value)?),
                "scsi_id" => p.scsi_id = Some(cut(value, 36)),
                "scsi_sn" => p.scsi_sn = Some(cut(value, 36)),
                "vendor_id" => p.vendor_id = Some(cut(value, 8)),
                "product_id" => p.product_id = Some(cut(value, 16)),
                "product_rev" => p.product_rev = Some(cut(value, 4)),
                _ => return Err(MgmtError::InvalidRequest),
            }
        }
        Ok(p)
    }

    fn apply_to(self, lu: &mut Lun) {
        let cfg = &mut lu.config;
        if let Some(v) = self.readonly {
            cfg.readonly = v;
        }
        if let Some(v) = self.removable {
            cfg.removable = v;
        }
        if let Some(v) = self.online {
            lu.online = v;
        }
        let id = &mut cfg.identity;
        for (slot, value) in [
            (&mut id.scsi_id, self.scsi_id),
            (&mut id.scsi_sn, self.scsi_sn),
            (&mut id.vendor_id, self.vendor_id),
            (&mut id.product_id, self.product_id),
            (&mut id.product_rev, self.product_rev),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
    }
}

/// tgt reads these with `atoi`: nonzero is on. A value that is not a number is a
/// mistake we report instead of reading as 0.
fn flag(value: &str) -> Result<bool, MgmtError> {
    value
        .trim()
        .parse::<i64>()
        .map(|n| n != 0)
        .map_err(|_| MgmtError::InvalidRequest)
}

fn cut(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
