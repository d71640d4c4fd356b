//! Writing a [`Config`] back as targets.conf text that [`parse`](super::parse())
//! reads into the same value.

use super::{Config, IsnsConfig, LunConfig, UserConfig};
use crate::isns::IsnsSettings;
use std::fmt::Write;

/// Inverse of the parser's LU directives: a param that has a directive of its own is
/// written as that directive (`write-cache off`, `vendor_id ACME`); any other goes
/// through tgt-admin's raw `params key=value`.
fn param_line(key: &str, value: &str) -> String {
    match key {
        "write_cache" if value == "0" => "write-cache off".to_string(),
        "readonly" | "removable" | "online" | "vendor_id" | "product_id" | "product_rev"
        | "scsi_id" | "scsi_sn" | "sense_format" | "lbppbe" | "la_lba" | "optimal_xfer_gran"
        | "optimal_xfer_len" | "mode_page" => format!("{key} {value}"),
        _ => format!("params {key}={value}"),
    }
}

fn user(out: &mut String, indent: &str, key: &str, u: &UserConfig) {
    let _ = writeln!(out, "{indent}{key} {} {}", u.user, u.password);
}

fn lun(out: &mut String, l: &LunConfig) {
    let tag = if l.direct {
        "direct-store"
    } else {
        "backing-store"
    };
    let _ = writeln!(out, "    <{tag} {}>", l.path);
    if l.explicit_lun {
        let _ = writeln!(out, "        lun {}", l.lun);
    }
    if l.allow_in_use {
        let _ = writeln!(out, "        allow-in-use yes");
    }
    let opt = [
        ("bs-type", &l.bstype),
        ("bsopts", &l.bsopts),
        ("bsoflags", &l.bsoflags),
        ("device-type", &l.device_type),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            let _ = writeln!(out, "        {k} {v}");
        }
    }
    if let Some(b) = l.blocksize {
        let _ = writeln!(out, "        block-size {b}");
    }
    for (k, v) in &l.params {
        let _ = writeln!(out, "        {}", param_line(k, v));
    }
    let _ = writeln!(out, "    </{tag}>");
}

/// The iSNS keys in tgt-admin's order (server settings before `iSNS On`).
fn isns(out: &mut String, c: &IsnsConfig) {
    if let Some(ip) = &c.server_ip {
        let _ = writeln!(out, "iSNSServerIP {ip}");
    }
    if let Some(port) = c.server_port {
        let _ = writeln!(out, "iSNSServerPort {port}");
    }
    let on_off = IsnsSettings::on_off;
    if let Some(ac) = c.access_control {
        let _ = writeln!(out, "iSNSAccessControl {}", on_off(ac));
    }
    if let Some(on) = c.enabled {
        let _ = writeln!(out, "iSNS {}", on_off(on));
    }
}

/// targets.conf text for `config`.
pub fn dump(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "default-driver {}",
        config.default_driver.as_deref().unwrap_or("iscsi")
    );
    if config.ignore_errors {
        let _ = writeln!(out, "ignore-errors yes");
    }
    for u in &config.discovery_incoming {
        user(&mut out, "", "incomingdiscoveryuser", u);
    }
    if let Some(u) = &config.discovery_outgoing {
        user(&mut out, "", "outgoingdiscoveryuser", u);
    }
    isns(&mut out, &config.isns);
    for t in &config.targets {
        let _ = writeln!(out, "\n<target {}>", t.name);
        if let Some(d) = &t.driver {
            let _ = writeln!(out, "    driver {d}");
        }
        if let Some(tid) = t.controller_tid {
            let _ = writeln!(out, "    controller_tid {tid}");
        }
        if t.allow_in_use {
            let _ = writeln!(out, "    allow-in-use yes");
        }
        for l in &t.luns {
            lun(&mut out, l);
        }
        for a in &t.initiator_addresses {
            let _ = writeln!(out, "    initiator-address {a}");
        }
        for n in &t.initiator_names {
            let _ = writeln!(out, "    initiator-name {n}");
        }
        for u in &t.incoming {
            user(&mut out, "    ", "incominguser", u);
        }
        if let Some(u) = &t.outgoing {
            user(&mut out, "    ", "outgoinguser", u);
        }
        for (k, v) in &t.params {
            let _ = writeln!(out, "    {k} {v}");
        }
        let _ = writeln!(out, "</target>");
    }
    out
}

/// What tgt-admin 1.0.85 `--dump` prints for the running state `config` (from
/// [`running_config`](crate::mgmt::running_config)): `default-driver`, then per
/// target its store paths, its accounts with `PLEASE_CORRECT_THE_PASSWORD` (tgtadm
/// does not show secrets), and its ACL unless it is just `ALL`. tgt-admin tells an
/// address from a name by the characters `0-9,.E` only, so a CIDR or an IPv6
/// address comes out as `initiator-name`; we keep that, since its output is what
/// scripts parse. No LUN numbers, no LU parameters: this is tgt-admin's format.
pub fn dump_tgt_admin(config: &Config) -> String {
    let mut out = String::new();
    if config.targets.is_empty() {
        return out;
    }
    let _ = writeln!(out, "default-driver iscsi\n");
    for t in &config.targets {
        let _ = writeln!(out, "<target {}>", t.name);
        for l in t.luns.iter().filter(|l| !l.path.is_empty()) {
            let _ = writeln!(out, "\tbacking-store {}", l.path);
        }
        for u in &t.incoming {
            let _ = writeln!(out, "\tincominguser {} PLEASE_CORRECT_THE_PASSWORD", u.user);
        }
        if let Some(u) = &t.outgoing {
            let _ = writeln!(out, "\toutgoinguser {} PLEASE_CORRECT_THE_PASSWORD", u.user);
        }
        let acl: Vec<&String> = t
            .initiator_addresses
            .iter()
            .chain(&t.initiator_names)
            .collect();
        if !(acl.len() == 1 && acl[0] == "ALL") {
            for a in acl {
                let address = a.chars().all(|c| c.is_ascii_digit() || ",.E".contains(c));
                let key = if address {
                    "initiator-address"
                } else {
                    "initiator-name"
                };
                let _ = writeln!(out, "\t{key} {a}");
            }
        }
        let _ = writeln!(out, "</target>\n");
    }
    out
}
