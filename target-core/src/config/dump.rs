//! Writing a [`Config`] back as targets.conf text that [`parse`](super::parse())
//! reads into the same value.

use super::{Config, IsnsConfig, LunConfig, UserConfig};
use crate::isns::IsnsSettings;
use std::fmt::Write;

/// Inverse of the parser's LU directives: a param that has a directive of its own is
/// written as that directive (`write-cache off`, `vendor_id ACME`); any other goes
/// through tgt-admin's raw `params key=value`.
fn param_line(key: &str, value: &str) -> String {
    let flag = |v: &str| if v == "0" { "off" } else { "on" };
    match key {
        "write_cache" => format!("write-cache {}", flag(value)),
        "readonly" | "removable" | "online" => format!("{key} {}", flag(value)),
        "vendor_id" | "product_id" | "product_rev" | "scsi_id" | "scsi_sn" | "sense_format"
        | "lbppbe" | "la_lba" | "optimal_xfer_gran" | "optimal_xfer_len" | "rotation_rate"
        | "mode_page" => format!("{key} {value}"),
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
    let _ = writeln!(out, "        lun {}", l.lun);
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
    for u in &config.discovery_incoming {
        user(&mut out, "", "incominguser", u);
    }
    if let Some(u) = &config.discovery_outgoing {
        user(&mut out, "", "outgoinguser", u);
    }
    isns(&mut out, &config.isns);
    for t in &config.targets {
        let _ = writeln!(out, "\n<target {}>", t.name);
        if let Some(d) = &t.driver {
            let _ = writeln!(out, "    driver {d}");
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
