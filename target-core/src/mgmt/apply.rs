//! Applying a [`Request`] to the shared state.
//!
//! Each arm follows the checks and error codes of the tgt function that handles the
//! same request (`tgt_target_create`, `tgt_device_create`, `acl_add`, ... in
//! `usr/target.c`), so an administrator sees the same refusals. Logical units are in
//! `apply_lu.rs`; accounts, portals, lld, sessions in `apply_admin.rs`; whole
//! configurations in `apply_config.rs`.

use super::show::{self, SystemInfo};
use super::stat;
use super::{apply_admin, apply_config, apply_lu, MgmtError, Request, Response, StoreOpener};
use crate::isns::IsnsSettings;
use crate::registry::{AclEntry, SystemState, Target, Tid};
use crate::Core;
use std::sync::Arc;

/// Apply one management request. Opening a backing store or a listener is the only
/// I/O a request may need, and it goes through `opener`.
pub fn apply(core: &Core, req: Request, opener: &dyn StoreOpener) -> Result<Response, MgmtError> {
    let read_only = req.is_read_only();
    let answer = dispatch(core, req, opener);
    // Any change may concern live connections (deleted target, narrowed ACL, ...);
    // adapters re-check their connections when the generation moves.
    if !read_only {
        core.registry.bump();
    }
    answer
}

fn dispatch(core: &Core, req: Request, opener: &dyn StoreOpener) -> Result<Response, MgmtError> {
    match req {
        Request::SystemShow => {
            let info = SystemInfo {
                debug: core.registry.debug(),
                state: core.registry.state(),
                lld_stopped: core.registry.lld_stopped(),
                backing_stores: opener.backing_stores(),
                discovery: core.registry.discovery_accounts(),
                isns: core.registry.isns.get(),
            };
            let mut resp = show::system_show(&info);
            // `--json` also carries the monitoring counters (the text stays tgt's).
            if let Some(serde_json::Value::Object(map)) = &mut resp.data {
                let m = core.metrics.snapshot(core);
                map.insert(
                    "metrics".into(),
                    serde_json::to_value(m).unwrap_or_default(),
                );
            }
            Ok(resp)
        }
        Request::SystemDelete => {
            // tgt's `is_system_inactive`: only a daemon without targets may stop.
            if core.registry.targets().is_empty() {
                Ok(Response::ok())
            } else {
                Err(MgmtError::InvalidRequest)
            }
        }
        Request::SystemUpdate { name, value } => system_update(core, &name, &value),
        Request::TargetNew { tid, name } => {
            if tid == 0 || !valid_target_name(&name) {
                return Err(MgmtError::InvalidRequest);
            }
            if core.registry.lld_stopped() {
                return Err(MgmtError::NoDriver);
            }
            core.registry.add_target(tid, &name)?;
            Ok(Response::ok())
        }
        Request::TargetDelete { tid, force } => {
            core.registry.remove_target(tid, force)?;
            Ok(Response::ok())
        }
        Request::TargetShow => Ok(show::target_show(&core.registry.targets())),
        Request::SystemStat => Ok(stat::stat(&core.registry.targets(), None)),
        Request::TargetStat { tid } => {
            let t = core.registry.target(tid).ok_or(MgmtError::NoTarget)?;
            Ok(stat::stat(&[t], None))
        }
        Request::LuStat { tid, lun } => {
            let t = core.registry.target(tid).ok_or(MgmtError::NoTarget)?;
            t.lun(lun).ok_or(MgmtError::NoLun)?;
            Ok(stat::stat(&[t], Some(lun)))
        }
        Request::TargetShowParams { tid } => {
            let t = core.registry.target(tid).ok_or(MgmtError::NoTarget)?;
            Ok(show::target_params_show(&t.params(), &t.alua_params()))
        }
        Request::TargetUpdate { tid, name, value } => {
            let t = core.registry.target(tid).ok_or(MgmtError::NoTarget)?;
            if t.set_param(&name, &value) {
                Ok(Response::ok())
            } else {
                Err(MgmtError::InvalidRequest)
            }
        }
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
            // tgt leaves logged-in initiators alone; an administrator who narrows
            // access means it now, so sessions the ACL no longer admits are logged out.
            target.logout_unadmitted();
            Ok(Response::ok())
        }
        Request::TargetBindHost { tid, host } => {
            core.registry.bind_host(tid, host)?;
            Ok(Response::ok())
        }
        Request::TargetUnbindHost { host, .. } => {
            core.registry.unbind_host(host)?;
            Ok(Response::ok())
        }
        req @ (Request::LuNew { .. } | Request::LuDelete { .. } | Request::LuUpdate { .. }) => {
            apply_lu::apply(core, req, opener)
        }
        Request::ConfigApply {
            config,
            action,
            force,
            pretend,
            verbose,
            control_port,
        } => {
            let opts = apply_config::Options {
                force,
                pretend,
                verbose,
                control_port,
            };
            Ok(apply_config::apply(core, &config, &action, opts, opener))
        }
        // tgt-admin's `--dump` text; the full state (LUN numbers, parameters,
        // secrets) as `data` for `--json`.
        Request::ConfigDump => {
            let cfg = apply_config::running_config(core);
            let text = crate::config::dump_tgt_admin(&cfg);
            let data = serde_json::to_value(&cfg).unwrap_or_default();
            Ok(Response::show(text, data))
        }
        other => apply_admin::apply(core, other, opener),
    }
}

/// `system update`: tgt's `system_mgmt` knows `State` (ready/offline) and `debug`
/// (on/off), and the iscsi driver's `isns_update` the four iSNS settings; anything
/// else, or a value a setting refuses, is "invalid request". The iSNS client in the
/// daemon sees the change through the registry generation.
fn system_update(core: &Core, name: &str, value: &str) -> Result<Response, MgmtError> {
    match name {
        "State" => {
            let state = SystemState::parse(value).ok_or(MgmtError::InvalidRequest)?;
            core.registry.set_state(state);
        }
        "debug" => match value {
            "on" => core.registry.set_debug(true),
            "off" => core.registry.set_debug(false),
            _ => return Err(MgmtError::InvalidRequest),
        },
        name if IsnsSettings::NAMES.contains(&name) => core
            .registry
            .isns
            .update(name, value)
            .map_err(|_| MgmtError::InvalidRequest)?,
        _ => return Err(MgmtError::InvalidRequest),
    }
    Ok(Response::ok())
}

/// tgt accepts only letters, digits, `:`, `.` and `-` in a target name. It lets an
/// empty name through; we do not, since no initiator could name that target.
pub(super) fn valid_target_name(name: &str) -> bool {
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

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
