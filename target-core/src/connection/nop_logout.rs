//! NOP-Out/NOP-In and Logout (RFC 7143 §11.14, §11.18, §11.19, §11.20).

use super::Connection;
use iscsi_proto::pdu::{LogoutRequest, LogoutResponse, NopIn, NopOut, Pdu};
use iscsi_proto::{Itt, Ttt};
use std::time::Instant;

impl Connection {
    pub(super) fn handle_nop_out(&mut self, n: NopOut, _now: Instant) {
        if n.itt == Itt::RESERVED {
            // The answer to our ping: the connection is alive.
            self.timers.stop(super::Timer::NopInResponse);
            return;
        }
        let max = self
            .session
            .as_ref()
            .map(|s| s.params.max_xmit_data_segment_length)
            .unwrap_or(8192);
        let data = n.data.slice(..n.data.len().min(max as usize));
        let stat_sn = self.take_stat_sn();
        let pdu = Pdu::NopIn(NopIn {
            lun: n.lun,
            itt: n.itt,
            ttt: Ttt::RESERVED,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data,
        });
        self.send(pdu);
    }

    /// Logout (RFC 7143 §11.14): reason 0 closes the session (every connection),
    /// 1 closes connection CID (this one or another of the session; response 1 when
    /// there is no such CID), 2 (remove the connection for recovery) closes
    /// connection CID keeping its tasks for TASK REASSIGN at ErrorRecoveryLevel 2
    /// (`erl2.rs`) and is answered "not supported" (response 2) below it. A Logout
    /// for this connection closes it after the response. Time2Wait and Time2Retain
    /// in the response are the negotiated defaults: the initiator waits Time2Wait
    /// before reconnecting, and has Time2Retain to reassign tasks.
    pub(super) fn handle_logout(&mut self, l: LogoutRequest) {
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
        let mut close_self = false;
        let mut recover_self = false;
        let erl2 = params.error_recovery_level == 2;
        let response =
            match l.reason {
                0 => {
                    if let Some(sh) = &self.shared {
                        for w in sh.request_close_others(self.cid, "session logged out") {
                            w.wake();
                        }
                    }
                    close_self = true;
                    0
                }
                1 if l.cid == self.cid || self.shared.is_none() => {
                    close_self = true;
                    0
                }
                1 => match self.shared.as_ref().and_then(|sh| {
                    sh.request_close(l.cid, "logged out by another connection", false)
                }) {
                    Some(wake) => {
                        if let Some(w) = wake {
                            w.wake();
                        }
                        0
                    }
                    // CID not found.
                    None => 1,
                },
                2 if erl2 && l.cid == self.cid => {
                    close_self = true;
                    recover_self = true;
                    0
                }
                2 if erl2 => match self.shared.as_ref().and_then(|sh| {
                    sh.request_close(l.cid, "removed for recovery by another connection", true)
                }) {
                    Some(wake) => {
                        if let Some(w) = wake {
                            w.wake();
                        }
                        0
                    }
                    None => 1,
                },
                // Connection recovery needs ErrorRecoveryLevel 2.
                _ => 2,
            };
        let stat_sn = self.take_stat_sn();
        let pdu = Pdu::LogoutResponse(LogoutResponse {
            response,
            itt: l.itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            time2wait: params.default_time2wait,
            time2retain: params.default_time2retain,
        });
        self.send(pdu);
        if recover_self {
            self.close_for_recovery("logout for recovery");
        } else if close_self {
            self.close("logout");
        }
    }
}
