//! Login phase: security and operational stages up to full feature phase
//! (RFC 7143 §6.3, §11.12, §11.13).

use super::{ConnEvent, Connection, Phase, Session};
use crate::registry::{ConnectionInfo, SessionInfo, Target};
use bytes::Bytes;
use iscsi_proto::keys::{SessionType, TargetLimits};
use iscsi_proto::login::{LoginStatus, Negotiator};
use iscsi_proto::pdu::{LoginRequest, LoginResponse, Pdu, Stage};
use iscsi_proto::text::{self, Pair, TextAssembler};
use iscsi_proto::{Isid, Itt, Tsih};
use std::sync::Arc;
use std::time::Instant;

/// What the first login PDU established.
#[derive(Debug, Clone)]
struct Leading {
    isid: Isid,
    tsih: Tsih,
    itt: Itt,
    cid: u16,
    initiator: String,
    alias: Option<String>,
    session_type: SessionType,
    target: Option<Arc<Target>>,
}

/// Login progress of one connection.
#[derive(Debug)]
pub(super) struct LoginState {
    negotiator: Negotiator,
    assembler: TextAssembler,
    leading: Option<Leading>,
    stage: Stage,
    auth_ok: bool,
    tpgt_sent: bool,
    /// A long response still being sent in pieces (target-side C bit).
    pending_out: Vec<Bytes>,
}

impl LoginState {
    pub(super) fn new(limits: TargetLimits) -> Self {
        LoginState {
            negotiator: Negotiator::new(limits, SessionType::Normal),
            assembler: TextAssembler::default(),
            leading: None,
            stage: Stage::Security,
            auth_ok: false,
            tpgt_sent: false,
            pending_out: Vec::new(),
        }
    }
}

/// Keys the login state machine handles itself rather than the negotiator.
fn is_identity_key(k: &str) -> bool {
    matches!(
        k,
        "InitiatorName" | "TargetName" | "SessionType" | "InitiatorAlias" | "AuthMethod"
    ) || k.starts_with("CHAP_")
}

impl Connection {
    pub(super) fn handle_login_phase(&mut self, pdu: Pdu, now: Instant) {
        match pdu {
            Pdu::LoginRequest(req) => self.handle_login(req, now),
            // RFC 7143 §6.3: only login PDUs are allowed before full feature phase.
            _ => {
                let st = LoginStatus::INVALID_DURING_LOGIN;
                self.fail_login_raw(st, Itt::RESERVED, Isid::default(), Stage::Security);
            }
        }
    }

    fn handle_login(&mut self, req: LoginRequest, _now: Instant) {
        // Version 0 is the only one (RFC 7143 §11.12.4).
        if req.version_min > 0 {
            return self.fail_login(&req, LoginStatus::UNSUPPORTED_VERSION);
        }
        if self.login.leading.is_none() {
            self.stat_sn = req.exp_stat_sn;
            self.exp_cmd_sn = req.cmd_sn;
        }
        if matches!(req.csg, Stage::FullFeature | Stage::Reserved)
            || (req.transit && (req.nsg == Stage::Reserved || req.nsg.bits() <= req.csg.bits()))
            || (req.transit && req.continue_bit)
            || req.csg.bits() < self.login.stage.bits()
        {
            return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
        }
        // An empty request while we have more response text to send.
        if !self.login.pending_out.is_empty() && req.data.is_empty() {
            return self.send_login_chunk(&req, false);
        }
        let text = match self.login.assembler.push(&req.data, req.continue_bit) {
            Ok(Some(t)) => t,
            Ok(None) => {
                // RFC 7143 §11.12.2: acknowledge a partial text with an empty response.
                return self.respond_login(&req, Vec::new(), false, req.csg);
            }
            Err(_) => return self.fail_login(&req, LoginStatus::INITIATOR_ERROR),
        };
        let pairs = match text::parse(&text) {
            Ok(p) => p,
            Err(_) => return self.fail_login(&req, LoginStatus::INITIATOR_ERROR),
        };
        if self.login.leading.is_none() {
            if let Err(st) = self.leading_login(&req, &pairs) {
                return self.fail_login(&req, st);
            }
        }
        self.login.stage = req.csg;
        let mut out: Vec<Pair> = Vec::new();
        let mut ops = Vec::new();
        for (k, v) in &pairs {
            if k == "AuthMethod" {
                if req.csg != Stage::Security {
                    return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
                }
                // No CHAP account is bound in this build's policy: only None is offered.
                if v.split(',').any(|m| m == "None") {
                    self.login.auth_ok = true;
                    out.push((k.clone(), "None".into()));
                } else {
                    out.push((k.clone(), "Reject".into()));
                }
            } else if k.starts_with("CHAP_") {
                return self.fail_login(&req, LoginStatus::AUTH_FAILURE);
            } else if !is_identity_key(k) {
                ops.push((k.clone(), v.clone()));
            }
        }
        match self.login.negotiator.respond(&ops) {
            Ok(mut r) => out.append(&mut r),
            Err(_) => return self.fail_login(&req, LoginStatus::INITIATOR_ERROR),
        }
        let normal = self
            .login
            .leading
            .as_ref()
            .is_some_and(|l| l.session_type == SessionType::Normal);
        if normal && !self.login.tpgt_sent {
            self.login.tpgt_sent = true;
            out.push(("TargetPortalGroupTag".into(), self.config.tpgt.to_string()));
        }
        let entering_ffp = req.transit && req.nsg == Stage::FullFeature;
        if req.csg == Stage::Operational || entering_ffp {
            out.extend(self.login.negotiator.declarations());
        }
        // Leaving the security stage needs an agreed authentication.
        if req.transit && req.csg == Stage::Security && !self.login.auth_ok {
            return self.fail_login(&req, LoginStatus::AUTH_FAILURE);
        }
        let body = text::encode(&out);
        let max = self
            .login
            .negotiator
            .params
            .max_xmit_data_segment_length
            .max(512) as usize;
        self.login.pending_out = text::chunks(&body, max);
        self.send_login_chunk(&req, true);
    }

    /// Send the next piece of the pending response; the last piece carries the transit.
    fn send_login_chunk(&mut self, req: &LoginRequest, _first: bool) {
        let chunk = if self.login.pending_out.is_empty() {
            Bytes::new()
        } else {
            self.login.pending_out.remove(0)
        };
        let more = !self.login.pending_out.is_empty();
        let transit = req.transit && !more;
        let mut resp = self.login_response(req, LoginStatus::SUCCESS);
        resp.continue_bit = more;
        resp.transit = transit;
        resp.nsg = if transit { req.nsg } else { req.csg };
        if !transit {
            resp.nsg = Stage::Security;
        }
        resp.data = chunk;
        let to_ffp = transit && req.nsg == Stage::FullFeature;
        if to_ffp {
            let tsih = self.core.alloc_tsih();
            resp.tsih = Tsih(tsih);
            self.send(Pdu::LoginResponse(resp));
            self.enter_full_feature(tsih);
        } else {
            if transit {
                self.login.stage = req.nsg;
            }
            self.send(Pdu::LoginResponse(resp));
        }
    }

    fn respond_login(&mut self, req: &LoginRequest, pairs: Vec<Pair>, transit: bool, nsg: Stage) {
        let mut resp = self.login_response(req, LoginStatus::SUCCESS);
        resp.transit = transit;
        resp.nsg = if transit { nsg } else { Stage::Security };
        resp.data = text::encode(&pairs);
        self.send(Pdu::LoginResponse(resp));
    }

    fn login_response(&mut self, req: &LoginRequest, st: LoginStatus) -> LoginResponse {
        let stat_sn = self.take_stat_sn();
        LoginResponse {
            transit: false,
            continue_bit: false,
            csg: req.csg,
            nsg: Stage::Security,
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: req.tsih,
            itt: req.itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            status_class: st.class,
            status_detail: st.detail,
            data: Bytes::new(),
        }
    }

    /// Checks of the first login PDU: who is asking, for what, from where.
    fn leading_login(&mut self, req: &LoginRequest, pairs: &[Pair]) -> Result<(), LoginStatus> {
        let get = |k: &str| pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
        let initiator = get("InitiatorName").ok_or(LoginStatus::MISSING_PARAMETER)?;
        let session_type = match get("SessionType").as_deref() {
            None | Some("Normal") => SessionType::Normal,
            Some("Discovery") => SessionType::Discovery,
            Some(_) => return Err(LoginStatus::SESSION_TYPE_NOT_SUPPORTED),
        };
        if req.tsih.0 != 0 {
            // Adding a connection to an existing session (MaxConnections > 1) is not
            // offered: we negotiate MaxConnections=1, so no such session can exist.
            return Err(LoginStatus::SESSION_DOES_NOT_EXIST);
        }
        let target = match session_type {
            SessionType::Discovery => None,
            SessionType::Normal => {
                let name = get("TargetName").ok_or(LoginStatus::MISSING_PARAMETER)?;
                let t = self
                    .core
                    .registry
                    .target_by_name(&name)
                    .ok_or(LoginStatus::NOT_FOUND)?;
                if !t.allows_initiator(self.peer.peer.ip(), &initiator) {
                    return Err(LoginStatus::AUTHORIZATION_FAILURE);
                }
                Some(t)
            }
        };
        self.login.negotiator.set_session_type(session_type);
        self.login.leading = Some(Leading {
            isid: req.isid,
            tsih: req.tsih,
            itt: req.itt,
            cid: req.cid,
            initiator,
            alias: get("InitiatorAlias"),
            session_type,
            target,
        });
        Ok(())
    }

    fn fail_login(&mut self, req: &LoginRequest, st: LoginStatus) {
        self.fail_login_raw(st, req.itt, req.isid, req.csg);
    }

    /// Answer with a login failure and close (RFC 7143 §11.13.5: the target drops the
    /// connection after a non-zero status).
    fn fail_login_raw(&mut self, st: LoginStatus, itt: Itt, isid: Isid, csg: Stage) {
        let stat_sn = self.take_stat_sn();
        let resp = LoginResponse {
            transit: false,
            continue_bit: false,
            csg,
            nsg: Stage::Security,
            version_max: 0,
            version_active: 0,
            isid,
            tsih: Tsih(0),
            itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            status_class: st.class,
            status_detail: st.detail,
            data: Bytes::new(),
        };
        self.send(Pdu::LoginResponse(resp));
        self.close(&format!(
            "login failed with status {:02x}{:02x}",
            st.class, st.detail
        ));
    }

    fn enter_full_feature(&mut self, tsih: u16) {
        let params = self.login.negotiator.finish();
        let Some(lead) = self.login.leading.clone() else {
            return self.close("login without a leading request");
        };
        // Digests start with the first PDU after the final login response (RFC 7143 §13.1).
        self.tx_digests.header = params.header_digest;
        self.tx_digests.data = params.data_digest;
        self.decoder.digests = self.tx_digests;
        self.decoder.max_data_segment = params.max_recv_data_segment_length as usize;
        let sid = self.core.alloc_sid();
        if let Some(t) = &lead.target {
            t.add_session(SessionInfo {
                sid,
                tsih,
                initiator: lead.initiator.clone(),
                alias: lead.alias.clone(),
                connections: vec![ConnectionInfo {
                    cid: lead.cid,
                    peer: self.peer.peer,
                }],
            });
        }
        self.events.push_back(ConnEvent::LoggedIn {
            initiator: lead.initiator.clone(),
            target: lead
                .target
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            session_type: lead.session_type,
        });
        let _ = (lead.isid, lead.tsih, lead.itt);
        self.session = Some(Session {
            session_type: lead.session_type,
            target: lead.target,
            sid,
            params,
            initiator: lead.initiator,
        });
        self.phase = Phase::FullFeature;
        self.timers.stop(super::Timer::Login);
    }
}
