//! `--op stat`: per I_T_L nexus I/O counters in tgt's layout (`tgt_stat_header`,
//! `tgt_stat_line` in tgt's `usr/target.c`).
//!
//! One line per (LU, session) pair: LUNs ascending, sessions by I_T nexus number
//! within each. A target without sessions prints only the header.

use super::Response;
use crate::registry::{ConnStatSnapshot, ConnectionInfo, LuStatSnapshot, SessionInfo, Target};
use serde_json::{json, Value};
use std::sync::Arc;

/// tgt's header line, printed once per answer.
pub const HEADER: &str = "tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) \
                          wr_subm(bytes,cmds) wr_done(bytes,cmds) errs\n";

/// One counter line, column widths as tgt prints them.
pub fn stat_line(tid: u32, lun: u64, sid: u64, s: &LuStatSnapshot) -> String {
    format!(
        "{tid:3} {lun:3} {sid:3} {:12} {:6} {:12} {:6} {:12} {:6} {:12} {:6} {:4}\n",
        s.rd_subm_bytes,
        s.rd_subm_cmds,
        s.rd_done_bytes,
        s.rd_done_cmds,
        s.wr_subm_bytes,
        s.wr_subm_cmds,
        s.wr_done_bytes,
        s.wr_done_cmds,
        s.errs,
    )
}

/// The answer to a stat request over `targets` (all of them for `system`, one for
/// `target`), limited to LUN `lun` for `logicalunit`.
pub fn stat(targets: &[Arc<Target>], lun: Option<u64>) -> Response {
    let mut text = String::from(HEADER);
    let mut rows = Vec::new();
    for t in targets {
        for (l, sid, s) in t.stat_rows(lun) {
            text.push_str(&stat_line(t.tid, l, sid, &s));
            rows.push(row_json(t.tid, l, sid, &s));
        }
    }
    Response::show(text, Value::Array(rows))
}

/// tgt's connection counter header (`_stat_iscsi_conn_hdr`).
pub const CONN_HEADER: &str =
    "sid cid rxdata_octets txdata_octets dataout_pdus datain_pdus cmd_pdus rsp_pdus\n";

/// One connection line, column widths as tgt prints them (`_stat_iscsi_conn`).
pub fn conn_line(tsih: u16, cid: u16, s: &ConnStatSnapshot) -> String {
    format!(
        "{tsih:3} {cid:3} {:13} {:13} {:12} {:11} {:8} {:8}\n",
        s.rxdata_octets, s.txdata_octets, s.dataout_pdus, s.datain_pdus, s.cmd_pdus, s.rsp_pdus
    )
}

fn conn_json(tsih: u16, c: &ConnectionInfo) -> Value {
    let mut v = json!({ "sid": tsih, "cid": c.cid });
    if let (Value::Object(m), Ok(Value::Object(s))) =
        (&mut v, serde_json::to_value(c.stats.snapshot()))
    {
        m.extend(s);
    }
    v
}

/// `--mode session --op stat`: the LU lines of this session, then (when it has
/// connections) a blank line and its connections' counters.
pub fn session_stat(t: &Target, s: &SessionInfo) -> Response {
    let mut text = String::from(HEADER);
    let mut rows = Vec::new();
    for (l, sid, snap) in t.stat_rows(None).into_iter().filter(|r| r.1 == s.sid) {
        text.push_str(&stat_line(t.tid, l, sid, &snap));
        rows.push(row_json(t.tid, l, sid, &snap));
    }
    if !s.connections.is_empty() {
        text.push('\n');
        text.push_str(CONN_HEADER);
    }
    let mut conns = Vec::new();
    for c in &s.connections {
        text.push_str(&conn_line(s.tsih, c.cid, &c.stats.snapshot()));
        conns.push(conn_json(s.tsih, c));
    }
    Response::show(text, json!({ "luns": rows, "connections": conns }))
}

/// `--mode connection --op stat`: one connection's counters.
pub fn connection_stat(s: &SessionInfo, c: &ConnectionInfo) -> Response {
    let text = format!(
        "{CONN_HEADER}{}",
        conn_line(s.tsih, c.cid, &c.stats.snapshot())
    );
    Response::show(text, conn_json(s.tsih, c))
}

fn row_json(tid: u32, lun: u64, sid: u64, s: &LuStatSnapshot) -> Value {
    let mut v = json!({ "tid": tid, "lun": lun, "sid": sid });
    if let (Value::Object(m), Ok(Value::Object(c))) = (&mut v, serde_json::to_value(s)) {
        m.extend(c);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines captured from tgt 1.0.85 (`tgtadm --op stat --mode target --tid 1`
    // while iscsi-perf ran against it).
    #[test]
    fn line_matches_tgt_layout() {
        assert_eq!(
            HEADER,
            "tgt lun sid rd_subm(bytes,cmds) rd_done(bytes,cmds) wr_subm(bytes,cmds) \
             wr_done(bytes,cmds) errs\n"
        );
        let zero = LuStatSnapshot::default();
        assert_eq!(
            stat_line(1, 0, 53, &zero),
            "  1   0  53            0      0            0      0            0      0            0      0    0\n"
        );
        let busy = LuStatSnapshot {
            rd_subm_bytes: 200_319_008,
            rd_subm_cmds: 48907,
            rd_done_bytes: 200_319_008,
            rd_done_cmds: 48907,
            errs: 1,
            ..LuStatSnapshot::default()
        };
        assert_eq!(
            conn_line(
                7,
                0,
                &ConnStatSnapshot {
                    rxdata_octets: 1_048_624,
                    txdata_octets: 4_144,
                    dataout_pdus: 15,
                    datain_pdus: 1,
                    cmd_pdus: 3,
                    rsp_pdus: 2,
                }
            ),
            "  7   0       1048624          4144           15           1        3        2\n"
        );
        assert_eq!(
            stat_line(1, 1, 53, &busy),
            "  1   1  53    200319008  48907    200319008  48907            0      0            0      0    1\n"
        );
    }
}
