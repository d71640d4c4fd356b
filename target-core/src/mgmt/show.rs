//! `show` text in tgt's exact layout, so scripts that parse `tgtadm --op show`
//! (tgt-admin, monitoring checks) keep working.
//!
//! Layout facts come from tgt 1.0.97: `tgt_target_show_all` and `system_show` in
//! `usr/target.c`, the session text built in `usr/iscsi/session.c`, `isns_show` in
//! `usr/iscsi/isns.c`; indentation is tgt's `_TAB1`..`_TAB4`, four spaces a level.

use super::{BackingStoreType, Response};
use crate::isns::IsnsSettings;
use crate::registry::{AccountBinding, Lun, SessionInfo, SystemState, Target};
use scsi_sbc::DeviceType;
use serde_json::{json, Value};
use std::sync::Arc;

#[path = "show_admin.rs"]
mod admin;
pub use admin::{
    account_show, connection_show, lld_show, portal_show, session_show, target_params_show,
};

/// One level of tgt's `_TAB` indentation.
const TAB: &str = "    ";

/// Daemon-wide facts `--mode system --op show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// Whether debug logging is on (`system update --name debug --value on`).
    pub debug: bool,
    /// `system update --name State`.
    pub state: SystemState,
    /// Whether `lld --op stop` stopped the iscsi driver.
    pub lld_stopped: bool,
    /// Discovery CHAP accounts (tgt's global target).
    pub discovery: AccountBinding,
    /// Backing store types this daemon can open, in the order to list them.
    pub backing_stores: Vec<BackingStoreType>,
    /// The iSNS settings (tgt's `isns_show`).
    pub isns: IsnsSettings,
}

/// Append `text` at `level` tabs followed by a newline.
pub(crate) fn line(out: &mut String, level: usize, text: &str) {
    for _ in 0..level {
        out.push_str(TAB);
    }
    out.push_str(text);
    out.push('\n');
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// tgt's `print_disksize`: an integer formula close to bytes / 10^6, computed on
/// 512-byte sectors with unsigned wrap-around exactly as the C does, so the same LUN
/// shows the same "Size: N MB" under both daemons.
pub fn tgt_megabytes(size: u64) -> u64 {
    let sectors = size / 512;
    sectors.wrapping_sub((sectors / 625).wrapping_sub(974)) / 1950
}

/// `--mode target --op show`: every target, ascending tid, as text and JSON.
pub fn target_show(targets: &[Arc<Target>]) -> Response {
    let data = Value::Array(targets.iter().map(|t| target_json(t)).collect());
    Response::show(target_show_text(targets), data)
}

fn target_json(t: &Target) -> Value {
    json!({
        "tid": t.tid,
        "name": t.name,
        "state": "ready",
        "sessions": t.sessions().iter().map(session_json).collect::<Vec<_>>(),
        "luns": t.luns().iter().map(|l| lun_json(l)).collect::<Vec<_>>(),
        "incoming_users": t.incoming_users(),
        "outgoing_user": t.outgoing_user(),
        "initiator_addresses": t.acl().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "initiator_names": t.initiator_name_acl(),
        "alua": alua_json(t),
    })
}

pub(crate) fn session_json(s: &SessionInfo) -> Value {
    json!({
        "it_nexus": s.sid,
        "tsih": s.tsih,
        "initiator": s.initiator,
        "alias": s.alias,
        "connections": s.connections.iter().map(|c| json!({
            "cid": c.cid,
            "address": c.peer.ip().to_string(),
            "port": c.peer.port(),
        })).collect::<Vec<_>>(),
    })
}

fn lun_json(l: &Lun) -> Value {
    let c = &l.config;
    // A drive a changer loads: its tape now (see `lun_show`).
    let medium = l.store.as_ref().and_then(|s| s.medium());
    let online = l.online && !matches!(medium, Some(None));
    let path = match medium {
        Some(m) => m,
        None => l.backing.path.clone(),
    };
    json!({
        "lun": l.lun,
        "type": match c.device_type { DeviceType::Cd => "cd", kind => kind.show_name() },
        "scsi_id": c.identity.scsi_id,
        "scsi_sn": c.identity.scsi_sn,
        "vendor_id": c.identity.vendor_id,
        "product_id": c.identity.product_id,
        "product_rev": c.identity.product_rev,
        "size": l.store.as_ref().map_or(0, |s| s.size()),
        "block_size": c.block_size,
        "online": online,
        "removable": c.removable,
        "readonly": c.readonly,
        "write_cache": c.write_cache,
        "bstype": l.backing.bstype,
        "path": path,
        "bsoflags": l.backing.oflags,
        "bsopts": l.backing.bsopts,
    })
}

fn target_show_text(targets: &[Arc<Target>]) -> String {
    let mut out = String::new();
    for target in targets {
        line(
            &mut out,
            0,
            &format!("Target {}: {}", target.tid, target.name),
        );
        line(&mut out, 1, "System information:");
        line(&mut out, 2, "Driver: iscsi");
        line(&mut out, 2, "State: ready");
        line(&mut out, 1, "I_T nexus information:");
        for session in target.sessions() {
            nexus_show(&mut out, &session);
        }
        line(&mut out, 1, "LUN information:");
        for lun in target.luns() {
            lun_show(&mut out, &lun);
        }
        line(&mut out, 1, "Account information:");
        for user in target.incoming_users() {
            line(&mut out, 2, &user);
        }
        if let Some(user) = target.outgoing_user() {
            line(&mut out, 2, &format!("{user} (outgoing)"));
        }
        line(&mut out, 1, "ACL information:");
        for entry in target.acl() {
            line(&mut out, 2, &entry.to_string());
        }
        for name in target.initiator_name_acl() {
            line(&mut out, 2, &name);
        }
        alua_show(&mut out, target);
    }
    out
}

/// ALUA port groups (ours, not tgt's), only while ALUA is on, so that tgt's layout
/// stays as it was otherwise: this gateway's group and port, then every group with
/// its state and relative target ports.
fn alua_show(out: &mut String, target: &Target) {
    let Some(pg) = target.alua() else {
        return;
    };
    line(out, 1, "ALUA information:");
    line(out, 2, &format!("Local port group: {}", pg.local_group));
    line(out, 2, &format!("Local relative port: {}", pg.local_port));
    for g in &pg.groups {
        let ports: Vec<String> = g.ports.iter().map(u16::to_string).collect();
        line(
            out,
            2,
            &format!(
                "Port group {}: {} ports {}",
                g.id,
                g.state.name(),
                ports.join(",")
            ),
        );
    }
}

fn alua_json(target: &Target) -> Value {
    match target.alua() {
        None => Value::Null,
        Some(pg) => json!({
            "local_group": pg.local_group,
            "local_port": pg.local_port,
            "groups": pg.groups.iter().map(|g| json!({
                "id": g.id,
                "state": g.state.name(),
                "ports": g.ports,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// One I_T nexus. tgt records this text once at login with the leading connection
/// only; we list every current connection of the session in the same shape.
fn nexus_show(out: &mut String, s: &SessionInfo) {
    line(out, 2, &format!("I_T nexus: {}", s.sid));
    let alias = s.alias.as_deref().unwrap_or("none");
    line(
        out,
        3,
        &format!("Initiator: {} alias: {}", s.initiator, alias),
    );
    for c in &s.connections {
        line(out, 3, &format!("Connection: {}", c.cid));
        line(out, 4, &format!("IP Address: {}", c.peer.ip()));
    }
}

fn lun_show(out: &mut String, lun: &Lun) {
    let cfg = &lun.config;
    let kind = cfg.device_type.show_name();
    // tgt prints the size of the opened store (lu->size), not blocks * block size.
    let size = lun.store.as_ref().map_or(0, |s| s.size());
    line(out, 2, &format!("LUN: {}", lun.lun));
    line(out, 3, &format!("Type: {kind}"));
    line(out, 3, &format!("SCSI ID: {}", cfg.identity.scsi_id));
    line(out, 3, &format!("SCSI SN: {}", cfg.identity.scsi_sn));
    line(
        out,
        3,
        &format!(
            "Size: {} MB, Block size: {}",
            tgt_megabytes(size),
            cfg.block_size
        ),
    );
    // A drive a changer loads and unloads: its tape now, offline without one (tgt
    // takes the LU offline on unload).
    let medium = lun.store.as_ref().and_then(|s| s.medium());
    let online = lun.online && !matches!(medium, Some(None));
    line(out, 3, &format!("Online: {}", yes_no(online)));
    line(
        out,
        3,
        &format!("Removable media: {}", yes_no(cfg.removable)),
    );
    // PREVENT ALLOW MEDIUM REMOVAL state lives with the SCSI layer: any nexus.
    let prevented = !lun.lock_state().prevent.is_empty();
    line(out, 3, &format!("Prevent removal: {}", yes_no(prevented)));
    line(out, 3, &format!("Readonly: {}", yes_no(cfg.readonly)));
    line(out, 3, "SWP: No");
    // tgt shows the LU's thin_provisioning setting here.
    line(
        out,
        3,
        &format!("Thin-provisioning: {}", yes_no(cfg.thin_provisioning)),
    );
    line(
        out,
        3,
        &match lun.store.as_ref().and_then(|s| s.backend_note()) {
            // e.g. `aio (thread pool: io_uring unavailable: ...)`: never a silent alias.
            Some(note) => format!("Backing store type: {} ({note})", lun.backing.bstype),
            None => format!("Backing store type: {}", lun.backing.bstype),
        },
    );
    line(
        out,
        3,
        &format!(
            "Backing store path: {}",
            match &medium {
                Some(m) => m.as_deref().unwrap_or("None"),
                None => lun.backing.path.as_deref().unwrap_or("None"),
            }
        ),
    );
    // tgt prints the empty flag string after the colon and space, leaving a trailing
    // space; parsers split on ": ", so keep it.
    line(
        out,
        3,
        &format!("Backing store flags: {}", lun.backing.oflags),
    );
    // Not in tgt (whose stores that take options are not here): the options in force,
    // e.g. a fault store's inner type and rules. Only when there are any, so the
    // output of LUs without options stays tgt's.
    if !lun.backing.bsopts.is_empty() {
        line(
            out,
            3,
            &format!("Backing store options: {}", lun.backing.bsopts),
        );
    }
}

/// `--mode system --op show` for the iscsi driver: tgt's `system_show` (discovery
/// accounts included) followed by the iscsi driver's part, `isns_show`.
pub fn system_show(info: &SystemInfo) -> Response {
    let data = json!({
        "state": info.state.name(),
        "debug": info.debug,
        "llds": { "iscsi": if info.lld_stopped { "stopped" } else { "ready" } },
        "backing_stores": info.backing_stores.iter().map(|b| json!({
            "name": b.name, "bsoflags": b.oflags,
        })).collect::<Vec<_>>(),
        "device_types": ["disk", "cd", "controller", "tape", "changer"],
        "discovery_incoming_users": info.discovery.incoming,
        "discovery_outgoing_user": info.discovery.outgoing,
        "isns": {
            "enabled": info.isns.enabled,
            "server_ip": info.isns.server_ip,
            "server_port": info.isns.server_port,
            "access_control": info.isns.access_control,
        },
    });
    Response::show(system_show_text(info), data)
}

fn system_show_text(info: &SystemInfo) -> String {
    let mut out = String::new();
    line(&mut out, 0, "System:");
    line(&mut out, 1, &format!("State: {}", info.state.name()));
    line(
        &mut out,
        1,
        &format!("debug: {}", if info.debug { "on" } else { "off" }),
    );
    line(&mut out, 0, "LLDs:");
    let lld = if info.lld_stopped { "stopped" } else { "ready" };
    line(&mut out, 1, &format!("iscsi: {lld}"));
    line(&mut out, 0, "Backing stores:");
    for bs in &info.backing_stores {
        if bs.oflags.is_empty() {
            line(&mut out, 1, &bs.name);
        } else {
            line(
                &mut out,
                1,
                &format!("{} (bsoflags {})", bs.name, bs.oflags),
            );
        }
    }
    line(&mut out, 0, "Device types:");
    line(&mut out, 1, "disk");
    line(&mut out, 1, "controller");
    // tgt's system_show prints discovery accounts with a stray blank line after the
    // header (its format string adds "\n" to a text that ends in one); kept.
    if !info.discovery.incoming.is_empty() {
        line(&mut out, 1, "Account information:\n");
        for user in &info.discovery.incoming {
            line(&mut out, 1, user);
        }
        if let Some(user) = &info.discovery.outgoing {
            line(&mut out, 1, &format!("{user} (outgoing)"));
        }
    }
    isns_show(&mut out, &info.isns);
    out
}

/// tgt's `isns_show`, which the iscsi driver appends after `system_show`.
fn isns_show(out: &mut String, isns: &IsnsSettings) {
    line(out, 0, "iSNS:");
    let on_off = IsnsSettings::on_off;
    line(out, 1, &format!("iSNS={}", on_off(isns.enabled)));
    line(out, 1, &format!("iSNSServerIP={}", isns.server_ip));
    line(out, 1, &format!("iSNSServerPort={}", isns.server_port));
    line(
        out,
        1,
        &format!("iSNSAccessControl={}", on_off(isns.access_control)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_follow_tgts_formula() {
        // Values worked by hand from print_disksize's C expression.
        assert_eq!(tgt_megabytes(0), 0);
        assert_eq!(tgt_megabytes(1 << 20), 1); // 2048 sectors: (2048 - 3 + 974) / 1950
        assert_eq!(tgt_megabytes(100 << 20), 105); // 100 MiB shows as 105 MB
        assert_eq!(tgt_megabytes(1 << 30), 1074); // 1 GiB shows as 1074 MB
        assert_eq!(tgt_megabytes(1_000_000_000), 1000);
    }

    #[test]
    fn system_show_layout() {
        let info = SystemInfo {
            debug: false,
            state: SystemState::Ready,
            lld_stopped: false,
            discovery: AccountBinding::default(),
            backing_stores: vec![
                BackingStoreType {
                    name: "null".into(),
                    oflags: String::new(),
                },
                BackingStoreType {
                    name: "rdwr".into(),
                    oflags: "sync:direct".into(),
                },
            ],
            isns: IsnsSettings::default(),
        };
        let expected = "System:\n    State: ready\n    debug: off\nLLDs:\n    iscsi: ready\n\
            Backing stores:\n    null\n    rdwr (bsoflags sync:direct)\n\
            Device types:\n    disk\n    controller\n\
            iSNS:\n    iSNS=Off\n    iSNSServerIP=\n    iSNSServerPort=3205\n    iSNSAccessControl=Off\n";
        assert_eq!(system_show(&info).output.as_deref(), Some(expected));
    }

    #[test]
    fn isns_section_comes_last_with_live_values() {
        // Recorded from tgt 1.0.85 after `account bind --user disc` (discovery) and
        // `--name iSNSServerIP --value 127.0.0.1`, `--name iSNSServerPort --value 7`.
        let info = SystemInfo {
            debug: false,
            state: SystemState::Ready,
            lld_stopped: false,
            discovery: AccountBinding {
                incoming: vec!["disc".into()],
                outgoing: None,
            },
            backing_stores: vec![],
            isns: IsnsSettings {
                enabled: true,
                server_ip: "127.0.0.1".into(),
                server_port: 7,
                access_control: true,
            },
        };
        let text = system_show(&info).output.unwrap_or_default();
        let tail = "    Account information:\n\n    disc\n\
            iSNS:\n    iSNS=On\n    iSNSServerIP=127.0.0.1\n    iSNSServerPort=7\n    iSNSAccessControl=On\n";
        assert!(text.ends_with(tail), "{text}");
    }
}
