//! Login phase: security and operational stages up to full feature phase
//! (RFC 7143 §6.3, §11.12, §11.13).

use super::auth::{AuthPolicy, AuthState};
use super::{ConnEvent, Connection, Phase, Session};
use crate::mcs::SharedSession;
use crate::registry::{
    parse_callback_answer, CallbackError, ConnectionInfo, RedirectReason, SessionInfo, Target,
};
use crate::session::{SessionEntry, SessionKey};
use bytes::Bytes;
use iscsi_proto::keys::{SessionParams, SessionType, TargetLimits};
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
    pub(super) auth: AuthState,
    pub(super) policy: AuthPolicy,
    tpgt_sent: bool,
    /// A long response still being sent in pieces (target-side C bit).
    pending_out: Vec<Bytes>,
    /// Whether the response being sent may carry the T bit.
    transit_ok: bool,
    /// `TargetAddress` for a redirect answer (login status class 1).
    redirect: Option<String>,
    /// Why the login failed, for the log, when the status alone does not say.
    fail_note: Option<String>,
    /// InitiatorName and TargetName the leading request asked for (log context).
    asked: Option<(String, String)>,
    /// The live session this login adds a connection to (non-zero TSIH, MC/S).
    join: Option<Arc<SharedSession>>,
}

impl LoginState {
    pub(super) fn new(limits: TargetLimits) -> Self {
        LoginState {
            negotiator: Negotiator::new(limits, SessionType::Normal),
            assembler: TextAssembler::default(),
            leading: None,
            stage: Stage::Security,
            auth: AuthState::Start,
            policy: AuthPolicy::default(),
            tpgt_sent: false,
            pending_out: Vec::new(),
            transit_ok: false,
            redirect: None,
            fail_note: None,
            asked: None,
            join: None,
        }
    }

    /// InitiatorName and TargetName of the leading login request, once seen (for
    /// log context before the session exists).
    pub(super) fn names(&self) -> Option<(&str, &str)> {
        self.asked.as_ref().map(|(i, t)| (i.as_str(), t.as_str()))
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
        // RFC 7143 §6.3, §11.12.1-3: CSG is the stage we are in (the first request may
        // skip the security stage), NSG lies ahead, T and C never together.
        let first = self.login.leading.is_none();
        let stage_ok = if first {
            matches!(req.csg, Stage::Security | Stage::Operational)
        } else {
            req.csg == self.login.stage
        };
        if !stage_ok
            || (req.transit && (req.nsg == Stage::Reserved || req.nsg.bits() <= req.csg.bits()))
            || (req.transit && req.continue_bit)
        {
            return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
        }
        // Every PDU of a login names the same connection of the same session.
        if let Some(l) = &self.login.leading {
            if l.isid != req.isid || l.tsih != req.tsih || l.cid != req.cid {
                return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
            }
        }
        // An empty request while we have more response text to send.
        if !self.login.pending_out.is_empty() {
            if !req.data.is_empty() {
                return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
            }
            return self.send_login_chunk(&req);
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
        // A key offered twice in one request is a protocol error (RFC 7143 §6.1).
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(pk, _)| pk == k) {
                return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
            }
        }
        if first {
            if let Err(st) = self.leading_login(&req, &pairs) {
                return self.fail_login(&req, st);
            }
        }
        self.login.stage = req.csg;
        let mut out: Vec<Pair> = Vec::new();
        let mut ops = Vec::new();
        let mut chap = false;
        for (k, v) in &pairs {
            if k == "AuthMethod" {
                if req.csg != Stage::Security || self.login.auth != AuthState::Start {
                    return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
                }
                self.auth_method(v, &mut out);
            } else if k.starts_with("CHAP_") {
                chap = true;
            } else if !is_identity_key(k) {
                ops.push((k.clone(), v.clone()));
            }
        }
        if chap {
            if req.csg != Stage::Security {
                return self.fail_login(&req, LoginStatus::INITIATOR_ERROR);
            }
            if let Err(st) = self.chap_keys(&pairs, &mut out) {
                return self.fail_login(&req, st);
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
            out.extend(self.login.negotiator.target_offers());
        }
        let required = self.login.policy.required();
        // Leaving the security stage needs an agreed, finished authentication.
        let mut transit = req.transit;
        if transit && req.csg == Stage::Security && !self.login.auth.passed(required) {
            match self.login.auth {
                // CHAP still running: the initiator answers our keys first.
                AuthState::ChapWaitAlgorithm | AuthState::ChapWaitResponse(_)
                    if !out.is_empty() =>
                {
                    transit = false
                }
                _ => return self.fail_login(&req, LoginStatus::AUTH_FAILURE),
            }
        }
        // Our own offers must be answered before full feature phase.
        if self.login.negotiator.awaiting_answers() {
            transit = false;
        }
        let body = text::encode(&out);
        let max = self
            .login
            .negotiator
            .params
            .max_xmit_data_segment_length
            .clamp(512, super::LOGIN_MAX_DATA_SEGMENT as u32) as usize;
        self.login.pending_out = text::chunks(&body, max);
        self.login.transit_ok = transit;
        self.send_login_chunk(&req);
    }

    /// Send the next piece of the pending response; the last piece carries the transit.
    fn send_login_chunk(&mut self, req: &LoginRequest) {
        let chunk = if self.login.pending_out.is_empty() {
            Bytes::new()
        } else {
            self.login.pending_out.remove(0)
        };
        let more = !self.login.pending_out.is_empty();
        let transit = req.transit && self.login.transit_ok && !more;
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
            if let Err(st) = self.admit_session() {
                return self.fail_login(req, st);
            }
            let tsih = match &self.login.join {
                Some(_) => req.tsih.0,
                None => self.core.alloc_tsih(),
            };
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
        // For log context, even when this login fails below.
        self.login.asked = Some((
            get("InitiatorName").unwrap_or_default(),
            get("TargetName").unwrap_or_default(),
        ));
        // `tgtadm --mode system --op update --name State --value offline` and
        // `--mode lld --op stop` stop new logins (RFC 7143 §11.13.5: 0x0301).
        if !self.core.registry.accepts_logins() {
            return Err(LoginStatus::SERVICE_UNAVAILABLE);
        }
        let initiator = get("InitiatorName").ok_or(LoginStatus::MISSING_PARAMETER)?;
        if initiator.is_empty() {
            return Err(LoginStatus::MISSING_PARAMETER);
        }
        let session_type = match get("SessionType").as_deref() {
            None | Some("Normal") => SessionType::Normal,
            Some("Discovery") => SessionType::Discovery,
            Some(_) => return Err(LoginStatus::SESSION_TYPE_NOT_SUPPORTED),
        };
        let target = match session_type {
            SessionType::Discovery => None,
            SessionType::Normal => {
                let name = get("TargetName").ok_or(LoginStatus::MISSING_PARAMETER)?;
                let t = self
                    .core
                    .registry
                    .target_by_name(&name)
                    .ok_or(LoginStatus::NOT_FOUND)?;
                if t.is_deleted() {
                    return Err(LoginStatus::TARGET_REMOVED);
                }
                // tgt answers a redirection before looking at the ACL: the new portal
                // decides. (tgt also skips it for an initiator whose address is the
                // redirect address itself; we redirect every initiator, so that a
                // redirection to another portal of the same host works.)
                let redirect = t.params().redirect;
                let to = if redirect.callback.is_empty() {
                    redirect.target_address()
                } else {
                    // tgt: a callback that gives no usable answer is a target error.
                    match self.ask_redirect_callback(&redirect.callback, &t.name) {
                        Ok(to) => Some(to),
                        Err(e) => {
                            self.login.fail_note = Some(format!("{}: {e}", t.name));
                            return Err(LoginStatus::TARGET_ERROR);
                        }
                    }
                };
                if let Some((address, reason)) = to {
                    self.login.redirect = Some(address);
                    return Err(match reason {
                        RedirectReason::Temporary => LoginStatus::TARGET_MOVED_TEMPORARILY,
                        RedirectReason::Permanent => LoginStatus::TARGET_MOVED_PERMANENTLY,
                    });
                }
                if !t.allows_initiator(self.peer.peer.ip(), &initiator) {
                    return Err(LoginStatus::AUTHORIZATION_FAILURE);
                }
                // iSNSAccessControl (tgt's `isns_scn_access`, checked after its ACL):
                // only initiators the iSNS server lets see the target. tgt answers
                // 0x0203 for both checks; we answer the ACL's 0x0202 for both.
                if !self
                    .core
                    .registry
                    .isns
                    .allows_initiator(&t.name, &initiator)
                {
                    return Err(LoginStatus::AUTHORIZATION_FAILURE);
                }
                Some(t)
            }
        };
        if req.tsih.0 != 0 {
            // Adding a connection to a session (RFC 7143 §6.3.1): the TSIH must name a
            // live session of this initiator, ISID and target.
            let key = SessionKey {
                initiator: initiator.clone(),
                isid: req.isid,
                target: target.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
            };
            let (k, _) = self
                .core
                .sessions
                .by_tsih(req.tsih)
                .ok_or(LoginStatus::SESSION_DOES_NOT_EXIST)?;
            let shared = self.core.sessions.shared(req.tsih);
            let shared = match shared {
                Some(sh) if k == key => sh,
                _ => return Err(LoginStatus::SESSION_DOES_NOT_EXIST),
            };
            // Up to the MaxConnections the leading login negotiated; a CID already
            // in the session is a connection reinstatement and replaces it.
            let max = usize::from(shared.params.max_connections.max(1));
            if !shared.has(req.cid) && shared.connections() >= max {
                return Err(LoginStatus::TOO_MANY_CONNECTIONS);
            }
            // The login's responses carry the session's command window.
            self.exp_cmd_sn = shared.exp_cmd_sn();
            self.login.join = Some(shared);
        } else if let Some(max) = self.config.max_sessions {
            if self.core.sessions.len() >= max {
                return Err(LoginStatus::OUT_OF_RESOURCES);
            }
        }
        self.login.policy = match &target {
            Some(t) => AuthPolicy {
                incoming: t.incoming_users(),
                outgoing: t.outgoing_user(),
            },
            None => {
                let d = self.core.registry.discovery_accounts();
                AuthPolicy {
                    incoming: d.incoming,
                    outgoing: d.outgoing,
                }
            }
        };
        // Skipping the security stage is only for targets that need no CHAP.
        if req.csg != Stage::Security && self.login.policy.required() {
            return Err(LoginStatus::AUTH_FAILURE);
        }
        let limits = match &target {
            Some(t) => super::params::limits_for(t, &self.config.limits),
            None => self.config.limits.clone(),
        };
        if let Some(t) = &target {
            super::params::nop_for(t, &mut self.config);
        }
        self.login.negotiator = Negotiator::new(limits, session_type);
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

    /// Run the target's `RedirectCallback` as tgt does: the program (split on spaces),
    /// the target name and the initiator's address as arguments; its answer is
    /// `ADDRESS:PORT:REASON`.
    fn ask_redirect_callback(
        &self,
        callback: &str,
        target: &str,
    ) -> Result<(String, RedirectReason), CallbackError> {
        let mut argv: Vec<String> = callback.split_whitespace().map(str::to_string).collect();
        argv.push(target.to_string());
        argv.push(self.peer.peer.ip().to_string());
        let out = self
            .core
            .runner()
            .and_then(|r| r.run(&argv))
            .ok_or(CallbackError::NoAnswer)?;
        parse_callback_answer(&out)
    }

    /// Last checks before full feature phase; reinstates an older session of the same
    /// I_T nexus (RFC 7143 §6.3.5: same InitiatorName and ISID, TSIH 0).
    fn admit_session(&mut self) -> Result<(), LoginStatus> {
        let Some(lead) = &self.login.leading else {
            return Err(LoginStatus::TARGET_ERROR);
        };
        let tsih = lead.tsih;
        let joining = self.login.join.is_some();
        if let Some(t) = &lead.target {
            if t.is_deleted() {
                return Err(LoginStatus::TARGET_REMOVED);
            }
            // A connection joining a session (MC/S) adds no session: the session
            // limits are for new sessions only (MaxConnections bounds the join).
            if !joining {
                let (t, initiator, isid) = (t.clone(), lead.initiator.clone(), lead.isid);
                self.check_session_limits(&t, &initiator, isid)?;
            }
        }
        // The session a connection joins may have ended meanwhile.
        if joining && self.core.sessions.by_tsih(tsih).is_none() {
            return Err(LoginStatus::SESSION_DOES_NOT_EXIST);
        }
        Ok(())
    }

    fn fail_login(&mut self, req: &LoginRequest, st: LoginStatus) {
        self.fail_login_raw(st, req.itt, req.isid, req.csg);
    }

    /// Answer with a login failure and close (RFC 7143 §11.13.5: the target drops the
    /// connection after a non-zero status).
    pub(super) fn fail_login_raw(&mut self, st: LoginStatus, itt: Itt, isid: Isid, csg: Stage) {
        self.core
            .metrics
            .login(u16::from(st.class) << 8 | u16::from(st.detail));
        let stat_sn = self.take_stat_sn();
        // RFC 7143 §11.13.5 / §13.8: a redirect names where to go.
        let data = match self.login.redirect.take() {
            Some(address) if st.class == 1 => {
                text::encode(&[("TargetAddress".to_string(), address)])
            }
            _ => Bytes::new(),
        };
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
            data,
        };
        self.send(Pdu::LoginResponse(resp));
        let note = self
            .login
            .fail_note
            .take()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        self.close(&format!(
            "login failed with status {:02x}{:02x}{note}",
            st.class, st.detail
        ));
    }

    fn enter_full_feature(&mut self, tsih: u16) {
        let mut params = self.login.negotiator.finish();
        let Some(lead) = self.login.leading.clone() else {
            return self.close("login without a leading request");
        };
        self.cid = lead.cid;
        if let Some(shared) = self.login.join.take() {
            // Session-wide keys are the leading login's (RFC 7143 §13: "LO"); this
            // connection keeps its own digests and data segment lengths.
            let own = params;
            params = SessionParams {
                header_digest: own.header_digest,
                data_digest: own.data_digest,
                max_recv_data_segment_length: own.max_recv_data_segment_length,
                max_xmit_data_segment_length: own.max_xmit_data_segment_length,
                ..shared.params
            };
            return self.join_session(shared, lead, params, tsih);
        }
        // Digests start with the first PDU after the final login response (RFC 7143 §13.1).
        self.tx_digests.header = params.header_digest;
        self.tx_digests.data = params.data_digest;
        self.decoder.digests = self.tx_digests;
        self.decoder.max_data_segment = params.max_recv_data_segment_length as usize;
        let sid = self.core.alloc_sid();
        let key = SessionKey {
            initiator: lead.initiator.clone(),
            isid: lead.isid,
            target: lead
                .target
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
        };
        let entry = SessionEntry {
            tsih: Tsih(tsih),
            sid,
            tid: lead.target.as_ref().map(|t| t.tid),
            connections: 1,
        };
        // A session that outlived its connections (ErrorRecoveryLevel 2) has none
        // to notice the reinstatement: it is ended here, orphans and all.
        let old_shared = self
            .core
            .sessions
            .lookup(&key)
            .and_then(|e| self.core.sessions.shared(e.tsih));
        if let Some(old) = self.core.sessions.insert(key, entry) {
            if let Some(sh) = old_shared.filter(|sh| sh.is_lingering()) {
                crate::core::end_expired(sh.end());
            }
            // Session reinstatement: the old session's connection closes and its tasks
            // end (RFC 7143 §6.3.5); it notices at its next input or housekeeping tick.
            if let Some(tid) = old.tid {
                if let Some(t) = self.core.registry.target(tid) {
                    let _ = t.request_logout(old.sid);
                    self.core.registry.bump();
                    self.events.push_back(ConnEvent::SharedStateChanged);
                }
            }
        }
        self.session_tsih = Tsih(tsih);
        let (shared, member) = SharedSession::new(params, self.exp_cmd_sn, lead.cid);
        self.core.sessions.attach(Tsih(tsih), shared.clone());
        if let Some(w) = &self.wake {
            shared.set_wake(lead.cid, member, w.clone());
        }
        self.shared = Some(shared);
        self.member = member;
        if let Some(t) = &lead.target {
            t.add_session(SessionInfo {
                sid,
                tsih,
                initiator: lead.initiator.clone(),
                alias: lead.alias.clone(),
                connections: vec![ConnectionInfo {
                    cid: lead.cid,
                    peer: self.peer.peer,
                    stats: self.conn_stats.clone(),
                }],
            });
        }
        self.core.metrics.login(0);
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
        let resets_seen = lead
            .target
            .as_ref()
            .map_or(0, |t| self.core.target_resets(t.tid).generation);
        self.session = Some(Session {
            session_type: lead.session_type,
            target: lead.target,
            sid,
            params,
            initiator: lead.initiator,
            isid: lead.isid, // the I_T nexus identity (scsi helper)
            resets_seen,
        });
        self.phase = Phase::FullFeature;
        self.timers.stop(super::Timer::Login);
        self.admission_logged_in();
    }

    /// The last step of a login that adds connection `lead.cid` to live session
    /// `tsih` (MC/S, RFC 7143 §6.3.1): it shares the session's CmdSN window, task
    /// tags and I_T nexus, keeps its own StatSN.
    fn join_session(
        &mut self,
        shared: Arc<SharedSession>,
        lead: Leading,
        params: SessionParams,
        tsih: u16,
    ) {
        let Some((_, entry)) = self.core.sessions.by_tsih(Tsih(tsih)) else {
            return self.close("the session ended during the login");
        };
        let (member, replaced) = shared.join(lead.cid);
        if let Some(w) = replaced {
            w.wake();
        }
        if let Some(w) = &self.wake {
            shared.set_wake(lead.cid, member, w.clone());
        }
        self.core.sessions.add_connection(Tsih(tsih));
        self.session_tsih = Tsih(tsih);
        self.decoder.max_data_segment = params.max_recv_data_segment_length as usize;
        self.tx_digests.header = params.header_digest;
        self.tx_digests.data = params.data_digest;
        self.decoder.digests = self.tx_digests;
        if let Some(t) = &lead.target {
            t.add_connection(
                entry.sid,
                ConnectionInfo {
                    cid: lead.cid,
                    peer: self.peer.peer,
                    stats: self.conn_stats.clone(),
                },
            );
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
        let resets_seen = lead
            .target
            .as_ref()
            .map_or(0, |t| self.core.target_resets(t.tid).generation);
        self.exp_cmd_sn = shared.exp_cmd_sn();
        self.shared = Some(shared);
        self.member = member;
        self.session = Some(Session {
            session_type: lead.session_type,
            target: lead.target,
            sid: entry.sid,
            params,
            initiator: lead.initiator,
            isid: lead.isid,
            resets_seen,
        });
        self.phase = Phase::FullFeature;
        self.timers.stop(super::Timer::Login);
    }
}
