//! `show` for the modes beyond target and system: target parameters, accounts,
//! portals, lld, sessions, connections. Layouts are tgt 1.0.x's (`account_show`,
//! `lld_show` in `usr/target.c`; `iscsi_target_show` in `usr/iscsi/target.c`).

use super::{line, session_json, Response};
use crate::registry::{Account, SessionInfo, Target, TargetParams};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// `--mode target --op show --tid N`: `nop_interval`, `nop_count`, then the iSCSI
/// keys, one `key=value` a line (tgt's `show_nop_info` + `show_iscsi_param`).
pub fn target_params_show(p: &TargetParams, alua: &[(String, String)]) -> Response {
    // tgt shows only the callback when there is one (`show_redirect_callback`), else
    // only the redirection once an address is set (`show_redirect_info`).
    if !p.redirect.callback.is_empty() {
        let out = format!("RedirectCallback={}\n", p.redirect.callback);
        return Response::show(out, json!({ "RedirectCallback": p.redirect.callback }));
    }
    if !p.redirect.address.is_empty() {
        let reason = match p.get("RedirectReason") {
            Some("") | None => "Unknown",
            Some(r) => r,
        };
        let out = format!(
            "RedirectAddress={}\nRedirectPort={}\nRedirectReason={reason}\n",
            p.redirect.address, p.redirect.port
        );
        let json = json!({
            "RedirectAddress": p.redirect.address,
            "RedirectPort": p.redirect.port,
            "RedirectReason": reason,
        });
        return Response::show(out, json);
    }
    let mut out = format!(
        "nop_interval={}\nnop_count={}\n",
        p.nop_interval, p.nop_count
    );
    let mut map = serde_json::Map::new();
    map.insert("nop_interval".into(), json!(p.nop_interval));
    map.insert("nop_count".into(), json!(p.nop_count));
    for (k, v) in &p.values {
        out.push_str(&format!("{k}={v}\n"));
        map.insert(k.clone(), json!(v));
    }
    // Our session limits (not tgt's), only once set: tgt's layout stays as it was.
    for (k, v) in [
        ("MaxSessions", p.max_sessions),
        ("MaxSessionsPerInitiator", p.max_sessions_per_initiator),
    ] {
        if v != 0 {
            out.push_str(&format!("{k}={v}\n"));
            map.insert(k.into(), json!(v));
        }
    }
    if let Some(n) = p.max_error_recovery_level {
        out.push_str(&format!("MaxErrorRecoveryLevel={n}\n"));
        map.insert("MaxErrorRecoveryLevel".into(), json!(n));
    }
    // ALUA keys (ours), only once set; `alua_state` may repeat, one line a group.
    for (k, v) in alua {
        out.push_str(&format!("{k}={v}\n"));
    }
    if !alua.is_empty() {
        let list: Vec<Value> = alua.iter().map(|(k, v)| json!([k, v])).collect();
        map.insert("alua".into(), Value::Array(list));
    }
    Response::show(out, Value::Object(map))
}

/// `--mode account --op show`: "Account list:" and the names, newest first; nothing
/// at all when there are no accounts. Secrets are not shown (tgt does not either).
pub fn account_show(accounts: &[Account]) -> Response {
    let mut out = String::new();
    if !accounts.is_empty() {
        line(&mut out, 0, "Account list:");
    }
    for a in accounts {
        line(&mut out, 1, &a.user);
    }
    let names: Vec<&str> = accounts.iter().map(|a| a.user.as_str()).collect();
    Response::show(out, json!(names))
}

/// `--mode portal --op show`: `Portal: ADDR:PORT,TPGT`, IPv6 in brackets, newest
/// first. Every portal serves portal group 1.
pub fn portal_show(portals: &[SocketAddr]) -> Response {
    let mut out = String::new();
    for p in portals {
        line(&mut out, 0, &format!("Portal: {p},1"));
    }
    let data: Vec<Value> = portals
        .iter()
        .map(|p| json!({"address": p.ip().to_string(), "port": p.port(), "tpgt": 1}))
        .collect();
    Response::show(out, Value::Array(data))
}

/// `--mode lld --op show`: the driver's state and its targets.
pub fn lld_show(stopped: bool, targets: &[Arc<Target>]) -> Response {
    let state = if stopped { "stopped" } else { "ready" };
    let mut out = String::new();
    line(&mut out, 0, "LLDs:");
    line(&mut out, 1, &format!("iscsi: {state}"));
    for t in targets {
        line(&mut out, 2, &format!("Target {}: {}", t.tid, t.name));
    }
    let data = json!({"iscsi": {
        "state": state,
        "targets": targets.iter().map(|t| json!({"tid": t.tid, "name": t.name})).collect::<Vec<_>>(),
    }});
    Response::show(out, data)
}

/// `--mode session --op show`. tgt 1.0.x answers this with "invalid request" when no
/// session matches and with the session's negotiated keys otherwise; we list the
/// sessions in the I_T nexus layout of `target show`, which says more.
pub fn session_show(sessions: &[SessionInfo]) -> Response {
    let mut out = String::new();
    for s in sessions {
        line(&mut out, 0, &format!("Session: {}", s.tsih));
        line(&mut out, 1, &format!("I_T nexus: {}", s.sid));
        let alias = s.alias.as_deref().unwrap_or("none");
        line(
            &mut out,
            1,
            &format!("Initiator: {} alias: {}", s.initiator, alias),
        );
        for c in &s.connections {
            line(&mut out, 1, &format!("Connection: {}", c.cid));
            line(&mut out, 2, &format!("IP Address: {}", c.peer.ip()));
        }
    }
    Response::show(
        out,
        Value::Array(sessions.iter().map(session_json).collect()),
    )
}

/// `--mode connection --op show --tid N`: every connection of the target in tgt's
/// `iscsi_target_show_connections` layout (the session number is the TSIH).
pub fn connection_show(sessions: &[SessionInfo]) -> Response {
    let mut out = String::new();
    let mut data = Vec::new();
    for s in sessions {
        for c in &s.connections {
            line(&mut out, 0, &format!("Session: {}", s.tsih));
            line(&mut out, 1, &format!("Connection: {}", c.cid));
            line(&mut out, 2, &format!("Initiator: {}", s.initiator));
            line(&mut out, 2, &format!("IP Address: {}", c.peer.ip()));
            data.push(json!({
                "tsih": s.tsih, "cid": c.cid, "initiator": s.initiator,
                "address": c.peer.ip().to_string(),
            }));
        }
    }
    Response::show(out, Value::Array(data))
}
