//! Whole configurations: apply a parsed targets.conf to the registry, changing only
//! what differs (tgt-admin `--execute` / `--update`), and build the running state
//! back into a [`Config`] (tgt-admin `--dump`).

use super::apply_lu::LuParams;
use super::{MgmtError, Request, Response, StoreOpener};
use crate::config::{Config, IsnsConfig, LunConfig, TargetConfig, UserConfig};
use crate::isns::IsnsSettings;
use crate::registry::{default_scsi_id, default_scsi_sn, AclEntry, Lun, Target, Tid};
use crate::Core;
use std::sync::Arc;

/// The running state as a [`Config`]: every target with its LUNs (not LUN 0), ACLs,
/// accounts (with their secrets: the dump is for root) and changed parameters.
pub fn running_config(core: &Core) -> Config {
    let reg = &core.registry;
    let user = |name: &String| {
        reg.account(name).map(|a| UserConfig {
            user: a.user,
            password: a.password,
        })
    };
    let disc = reg.discovery_accounts();
    Config {
        default_driver: Some("iscsi".into()),
        discovery_incoming: disc.incoming.iter().filter_map(user).collect(),
        discovery_outgoing: disc.outgoing.as_ref().and_then(user),
        isns: isns_config(&reg.isns.get()),
        targets: reg
            .targets()
            .iter()
            .map(|t| TargetConfig {
                name: t.name.clone(),
                driver: None,
                luns: t
                    .luns()
                    .iter()
                    .filter(|l| l.lun != 0)
                    .map(|l| lun_config(t.tid, l))
                    .collect(),
                initiator_addresses: t.acl().iter().map(|a| a.to_string()).collect(),
                initiator_names: t.initiator_name_acl(),
                incoming: t.incoming_users().iter().filter_map(user).collect(),
                outgoing: t.outgoing_user().as_ref().and_then(user),
                params: t.params().changed(),
            })
            .collect(),
    }
}

/// The iSNS settings that differ from tgt's defaults, for the dump.
fn isns_config(s: &IsnsSettings) -> IsnsConfig {
    let d = IsnsSettings::default();
    IsnsConfig {
        server_ip: Some(s.server_ip.clone()).filter(|ip| *ip != d.server_ip),
        server_port: Some(s.server_port).filter(|p| *p != d.server_port),
        access_control: Some(s.access_control).filter(|a| *a != d.access_control),
        enabled: Some(s.enabled).filter(|e| *e != d.enabled),
    }
}

/// The file's iSNS keys, applied as tgt-admin does: only while iSNS is off (it
/// skips them, saying "iSNS already enabled", otherwise), server settings first.
fn apply_isns(core: &Core, c: &IsnsConfig) {
    let mut s = core.registry.isns.get();
    if s.enabled || c.is_empty() {
        return;
    }
    if let Some(ip) = &c.server_ip {
        s.server_ip = ip.clone();
    }
    if let Some(port) = c.server_port {
        s.server_port = port;
    }
    if let Some(ac) = c.access_control {
        s.access_control = ac;
    }
    if let Some(on) = c.enabled {
        // Same rule as `--name iSNS --value On`: no server address, no iSNS.
        s.enabled = on && !s.server_ip.is_empty();
    }
    core.registry.isns.set(s);
}

fn lun_config(tid: Tid, l: &Lun) -> LunConfig {
    let c = &l.config;
    let id = &c.identity;
    let mut params = Vec::new();
    let mut flag = |k: &str, on: bool, default: bool| {
        if on != default {
            params.push((k.to_string(), if on { "1" } else { "0" }.to_string()));
        }
    };
    flag("readonly", c.readonly, false);
    flag("removable", c.removable, false);
    flag("online", l.online, true);
    flag("write_cache", c.write_cache, true);
    flag("thin_provisioning", c.thin_provisioning, false);
    flag("sense_format", c.descriptor_sense, false);
    flag("sanitize", c.sanitize, false);
    let g = &c.geometry;
    let mut number = |k: &str, v: u64| {
        if v != 0 {
            params.push((k.to_string(), v.to_string()));
        }
    };
    number("sanitize_rate", l.sanitize_rate >> 20);
    number("lbppbe", u64::from(g.lbppbe));
    number("la_lba", u64::from(g.la_lba));
    number("optimal_xfer_gran", u64::from(g.optimal_xfer_gran));
    number("optimal_xfer_len", u64::from(g.optimal_xfer_len));
    if let Some(r) = g.rotation_rate {
        params.push(("rotation_rate".to_string(), r.to_string()));
    }
    for (k, v, d) in [
        ("vendor_id", &id.vendor_id, "IET".to_string()),
        ("product_id", &id.product_id, "VIRTUAL-DISK".to_string()),
        ("product_rev", &id.product_rev, "0001".to_string()),
        ("scsi_id", &id.scsi_id, default_scsi_id(tid, l.lun)),
        ("scsi_sn", &id.scsi_sn, default_scsi_sn(tid, l.lun)),
    ] {
        if *v != d {
            params.push((k.to_string(), v.clone()));
        }
    }
    LunConfig {
        lun: l.lun,
        path: l.backing.path.clone().unwrap_or_default(),
        direct: false,
        bstype: Some(l.backing.bstype.clone()),
        bsopts: Some(l.backing.bsopts.clone()).filter(|o| !o.is_empty()),
        bsoflags: Some(l.backing.oflags.clone()).filter(|f| !f.is_empty()),
        blocksize: Some(c.block_size).filter(|b| *b != 512),
        device_type: None,
        params,
    }
}

/// Apply `cfg`: create missing targets (next free tid), bring existing ones (same
/// name) in line, and with `prune` delete targets the file lacks. A target with
/// sessions is neither changed nor deleted unless `force`, as tgt-admin does. Every
/// failure is collected; the answer lists them.
pub(super) fn apply(
    core: &Core,
    cfg: &Config,
    prune: bool,
    force: bool,
    opener: &dyn StoreOpener,
) -> Result<Response, MgmtError> {
    let reg = &core.registry;
    let mut errors = Vec::new();
    apply_isns(core, &cfg.isns);
    for u in cfg.discovery_incoming.iter().chain(&cfg.discovery_outgoing) {
        reg.accounts.upsert(&u.user, &u.password);
    }
    reg.accounts.with_discovery(|b| {
        b.incoming = cfg
            .discovery_incoming
            .iter()
            .map(|u| u.user.clone())
            .collect();
        b.outgoing = cfg.discovery_outgoing.as_ref().map(|u| u.user.clone());
    });
    for t in &cfg.targets {
        if let Err(e) = apply_target(core, t, force, opener) {
            errors.push(format!("target {}: {e}", t.name));
        }
    }
    if prune {
        for t in reg.targets() {
            if !cfg.targets.iter().any(|c| c.name == t.name) {
                if let Err(e) = reg.remove_target(t.tid, force) {
                    errors.push(format!("target {}: {e}", t.name));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Response::ok())
    } else {
        Err(MgmtError::Config(errors.join("\n")))
    }
}

fn next_free_tid(core: &Core) -> Tid {
    let used: Vec<Tid> = core.registry.targets().iter().map(|t| t.tid).collect();
    (1..).find(|t| !used.contains(t)).unwrap_or(Tid::MAX)
}

fn apply_target(
    core: &Core,
    t: &TargetConfig,
    force: bool,
    opener: &dyn StoreOpener,
) -> Result<(), String> {
    if t.driver.as_deref().is_some_and(|d| d != "iscsi") {
        return Err(format!(
            "driver {} is not supported",
            t.driver.as_deref().unwrap_or("")
        ));
    }
    let reg = &core.registry;
    let target = match reg.target_by_name(&t.name).filter(|x| x.name == t.name) {
        Some(existing) => {
            if !force && !existing.sessions().is_empty() {
                return Err(MgmtError::TargetActive.to_string());
            }
            existing
        }
        None => {
            let tid = next_free_tid(core);
            let req = Request::TargetNew {
                tid,
                name: t.name.clone(),
            };
            super::apply(core, req, opener).map_err(|e| e.to_string())?;
            reg.target(tid).ok_or("vanished")?
        }
    };
    let mut errors = Vec::new();
    sync_luns(core, &target, t, opener, &mut errors);
    sync_acl(&target, t, &mut errors);
    sync_accounts(core, &target, t, &mut errors);
    let wanted = &t.params;
    for (k, v) in target.params().changed() {
        if !wanted.iter().any(|(wk, _)| *wk == k) {
            let default = crate::registry::TargetParams::default();
            let d = match k.as_str() {
                "nop_interval" | "nop_count" => "0".to_string(),
                _ => default.get(&k).unwrap_or(&v).to_string(),
            };
            target.set_param(&k, &d);
        }
    }
    for (k, v) in wanted {
        if !target.set_param(k, v) {
            errors.push(format!("invalid value '{v}' for {k}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn same_lun(have: &Lun, want: &LunConfig) -> bool {
    have.backing.path.as_deref() == Some(want.path.as_str())
        && have.backing.bstype == want.bstype.as_deref().unwrap_or("rdwr")
        && have.config.block_size == want.blocksize.unwrap_or(512)
}

fn sync_luns(
    core: &Core,
    target: &Arc<Target>,
    t: &TargetConfig,
    opener: &dyn StoreOpener,
    errors: &mut Vec<String>,
) {
    for have in target.luns().iter().filter(|l| l.lun != 0) {
        let keep = t
            .luns
            .iter()
            .any(|w| w.lun == have.lun && same_lun(have, w));
        if !keep {
            let _ = target.remove_lun(have.lun);
        }
    }
    for w in &t.luns {
        if let Some(have) = target.lun(w.lun) {
            // Same store: bring the parameters in line without reopening it.
            let mut lu = (*have).clone();
            let id = &mut lu.config.identity;
            id.vendor_id = "IET".into();
            id.product_id = "VIRTUAL-DISK".into();
            id.product_rev = "0001".into();
            id.scsi_id = default_scsi_id(target.tid, w.lun);
            id.scsi_sn = default_scsi_sn(target.tid, w.lun);
            lu.config.readonly = false;
            lu.config.removable = false;
            lu.config.write_cache = true;
            lu.online = true;
            match LuParams::parse(&w.params_string().unwrap_or_default()) {
                Ok(p) => {
                    p.apply_to(&mut lu);
                    let _ = target.replace_lun(lu);
                }
                Err(e) => errors.push(format!("LUN {}: {e}", w.lun)),
            }
            continue;
        }
        let req = Request::LuNew {
            tid: target.tid,
            lun: w.lun,
            backing_store: w.path.clone(),
            bstype: w.bstype.clone(),
            blocksize: w.blocksize,
            params: w.params_string(),
            bsoflags: w.bsoflags.clone(),
            bsopts: w.bsopts.clone(),
            device_type: w.device_type.clone(),
        };
        if let Err(e) = super::apply(core, req, opener) {
            errors.push(format!("LUN {} ({}): {e}", w.lun, w.path));
        }
    }
}

fn sync_acl(target: &Arc<Target>, t: &TargetConfig, errors: &mut Vec<String>) {
    let mut wanted = Vec::new();
    for a in &t.initiator_addresses {
        match a.parse::<AclEntry>() {
            Ok(e) => wanted.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    for have in target.acl() {
        if !wanted.contains(&have) {
            let _ = target.unbind(&have);
        }
    }
    for w in wanted {
        if !target.acl().contains(&w) {
            let _ = target.bind(w);
        }
    }
    for have in target.initiator_name_acl() {
        if !t.initiator_names.contains(&have) {
            let _ = target.unbind_initiator_name(&have);
        }
    }
    for w in &t.initiator_names {
        if !target.initiator_name_acl().contains(w) {
            let _ = target.bind_initiator_name(w);
        }
    }
    target.logout_unadmitted();
}

fn sync_accounts(core: &Core, target: &Arc<Target>, t: &TargetConfig, _errors: &mut [String]) {
    for u in t.incoming.iter().chain(&t.outgoing) {
        core.registry.accounts.upsert(&u.user, &u.password);
    }
    target.with_accounts(|b| {
        b.incoming = t.incoming.iter().map(|u| u.user.clone()).collect();
        b.outgoing = t.outgoing.as_ref().map(|u| u.user.clone());
    });
}
