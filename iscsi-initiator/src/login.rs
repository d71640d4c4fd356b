//! The login phase from the initiator's side (RFC 7143 §6, §11.12–11.13): the security
//! stage with `AuthMethod` and CHAP (one-way or mutual), then the operational stage,
//! answering any offers the target makes itself.

use crate::error::Error;
use crate::session::{Event, Session, State};
use bytes::Bytes;
use iscsi_proto::keys::SessionParams;
use iscsi_proto::login::answer::{apply_answer, check_answer, rule, KeyRule};
use iscsi_proto::login::chap::{
    chap_response, decode_binary, encode_binary, ChapAlgorithm, ChapError,
};
use iscsi_proto::login::negotiate::parse_number;
use iscsi_proto::login::LoginStatus;
use iscsi_proto::pdu::{Digests, LoginRequest, LoginResponse, Pdu, Stage};
use iscsi_proto::text::{self, Pair, TextAssembler};
use iscsi_proto::Itt;

/// CHAP algorithms we offer, strongest first; MD5 last so that tgt (MD5 only) and
/// older targets still find one.
const CHAP_OFFER: &str = "7,6,5";

/// Where the login stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Step {
    /// First security-stage request sent (identity and `AuthMethod`).
    #[default]
    Start,
    /// `CHAP_A` sent; waiting for the challenge.
    ChapAlgorithm,
    /// `CHAP_N`/`CHAP_R` sent; waiting for the target to let us out of the stage
    /// (and, for mutual CHAP, for its own response).
    ChapResponse {
        /// Algorithm agreed, to check the target's mutual response with.
        algorithm: Option<ChapAlgorithm>,
    },
    /// Security done, a request to leave the stage sent.
    LeaveSecurity,
    /// Operational keys sent.
    Operational,
}

/// Login progress kept by the [`Session`].
#[derive(Debug, Default)]
pub(crate) struct LoginState {
    pub(crate) step: Step,
    /// Keys we offered in the operational stage, with our value, awaiting answers.
    offered: Vec<Pair>,
    /// Every key the target sent.
    target_keys: Vec<Pair>,
    /// Text split over login responses with the C bit.
    assembler: TextAssembler,
    /// Stage of the last request, to ask for continued text in the same stage.
    csg: Option<Stage>,
    nsg: Option<Stage>,
}

impl Session {
    /// Queue the first login request.
    pub(crate) fn start_login(&mut self) {
        let mut keys: Vec<Pair> =
            vec![("InitiatorName".into(), self.config.initiator_name.clone())];
        match &self.config.target_name {
            Some(t) => {
                keys.push(("SessionType".into(), "Normal".into()));
                keys.push(("TargetName".into(), t.clone()));
            }
            None => keys.push(("SessionType".into(), "Discovery".into())),
        }
        let chap = self.config.chap.is_some();
        keys.push((
            "AuthMethod".into(),
            if chap { "CHAP,None" } else { "None" }.into(),
        ));
        // Without CHAP we are ready to leave the security stage at once.
        self.login_request(Stage::Security, Stage::Operational, !chap, &keys);
        self.login.step = Step::Start;
    }

    fn login_request(&mut self, csg: Stage, nsg: Stage, transit: bool, pairs: &[Pair]) {
        self.login.csg = Some(csg);
        self.login.nsg = Some(nsg);
        let req = LoginRequest {
            transit,
            continue_bit: false,
            csg,
            nsg: if transit { nsg } else { Stage::Security },
            version_max: 0,
            version_min: 0,
            isid: self.config.isid,
            tsih: self.tsih,
            itt: Itt(0),
            cid: self.cid,
            cmd_sn: self.win().cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            data: if pairs.is_empty() {
                Bytes::new()
            } else {
                text::encode(pairs)
            },
        };
        self.send(&Pdu::LoginRequest(req));
    }

    pub(crate) fn on_login_response(&mut self, r: LoginResponse) -> Result<(), Error> {
        if self.state != State::Login {
            return Err(Error::Protocol("Login Response after login".into()));
        }
        let Some(text) = self.login.assembler.push(&r.data, r.continue_bit)? else {
            // The target has more text: ask for it with an empty request (RFC 7143
            // §6.6) in the same stage, not transiting.
            let csg = self.login.csg.unwrap_or(Stage::Security);
            self.login_request(csg, csg, false, &[]);
            return Ok(());
        };
        let pairs = text::parse(&text)?;
        self.login.target_keys.extend(pairs.iter().cloned());
        if r.status_class != 0 {
            let redirect = pairs
                .iter()
                .find(|(k, _)| k == "TargetAddress")
                .map(|(_, v)| v.clone());
            return Err(Error::LoginRefused {
                status: LoginStatus {
                    class: r.status_class,
                    detail: r.status_detail,
                },
                redirect,
            });
        }
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        match r.csg {
            Stage::Security => self.security_response(&r, &pairs, get("AuthMethod")),
            Stage::Operational => self.operational_response(&r, &pairs),
            _ => Err(Error::Protocol(format!(
                "login response in stage {:?}",
                r.csg
            ))),
        }
    }

    fn security_response(
        &mut self,
        r: &LoginResponse,
        pairs: &[Pair],
        auth: Option<&str>,
    ) -> Result<(), Error> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        match self.login.step.clone() {
            Step::Start => match auth {
                Some("CHAP") => {
                    if self.config.chap.is_none() {
                        return Err(Error::AuthMismatch("the target wants CHAP; no credentials"));
                    }
                    self.login.step = Step::ChapAlgorithm;
                    self.login_request(
                        Stage::Security,
                        Stage::Operational,
                        false,
                        &[("CHAP_A".into(), CHAP_OFFER.into())],
                    );
                    Ok(())
                }
                Some("None") | None => {
                    if self
                        .config
                        .chap
                        .as_ref()
                        .is_some_and(|c| c.mutual.is_some())
                    {
                        return Err(Error::AuthMismatch(
                            "mutual CHAP configured but the target skipped authentication",
                        ));
                    }
                    self.leave_security(r)
                }
                Some(_) => Err(Error::AuthMismatch("the target refused every AuthMethod")),
            },
            Step::ChapAlgorithm => {
                let alg = get("CHAP_A")
                    .and_then(|a| a.parse::<u32>().ok())
                    .and_then(ChapAlgorithm::from_code)
                    .ok_or(ChapError::Malformed("CHAP_A"))?;
                let id: u8 = get("CHAP_I")
                    .and_then(|i| i.parse().ok())
                    .ok_or(ChapError::Malformed("CHAP_I"))?;
                let challenge = get("CHAP_C")
                    .and_then(decode_binary)
                    .ok_or(ChapError::Malformed("CHAP_C"))?;
                let chap = self
                    .config
                    .chap
                    .clone()
                    .expect("CHAP step needs credentials");
                let resp = chap_response(alg, id, &chap.secret, &challenge);
                let mut keys: Vec<Pair> = vec![
                    ("CHAP_N".into(), chap.user.clone()),
                    ("CHAP_R".into(), encode_binary(&resp)),
                ];
                let mut mutual_alg = None;
                if let Some(m) = &chap.mutual {
                    if m.challenge == challenge {
                        return Err(ChapError::ReflectedChallenge.into());
                    }
                    keys.push(("CHAP_I".into(), m.id.to_string()));
                    keys.push(("CHAP_C".into(), encode_binary(&m.challenge)));
                    mutual_alg = Some(alg);
                }
                self.login.step = Step::ChapResponse {
                    algorithm: mutual_alg,
                };
                self.login_request(Stage::Security, Stage::Operational, true, &keys);
                Ok(())
            }
            Step::ChapResponse { algorithm } => {
                if let (Some(alg), Some(m)) = (
                    algorithm,
                    self.config.chap.as_ref().and_then(|c| c.mutual.clone()),
                ) {
                    let name = get("CHAP_N").ok_or(ChapError::Malformed("CHAP_N"))?;
                    let got = get("CHAP_R")
                        .and_then(decode_binary)
                        .ok_or(ChapError::Malformed("CHAP_R"))?;
                    if m.target_user.as_deref().is_some_and(|u| u != name) {
                        return Err(ChapError::UnknownUser(name.to_string()).into());
                    }
                    let want = chap_response(alg, m.id, &m.target_secret, &m.challenge);
                    if want != got {
                        return Err(ChapError::BadResponse(name.to_string()).into());
                    }
                    // Checked once; a continued response does not check again.
                    self.login.step = Step::ChapResponse { algorithm: None };
                }
                self.leave_security(r)
            }
            Step::LeaveSecurity => self.leave_security(r),
            Step::Operational => Err(Error::Protocol(
                "security-stage response to an operational request".into(),
            )),
        }
    }

    /// Authentication is settled: go on to the operational stage once the target
    /// lets us (T bit), else ask again.
    fn leave_security(&mut self, r: &LoginResponse) -> Result<(), Error> {
        if r.transit && r.nsg == Stage::Operational {
            self.login.step = Step::Operational;
            let offer = self.config.offer();
            // Declarative keys (our MaxRecvDataSegmentLength) are not answered; the
            // target's key of the same name is its own declaration.
            self.login.offered = offer
                .iter()
                .filter(|(k, _)| rule(k) != Some(KeyRule::Declarative))
                .cloned()
                .collect();
            self.login_request(Stage::Operational, Stage::FullFeature, true, &offer);
        } else if r.transit {
            return Err(Error::Protocol(format!(
                "target moved from security to {:?}",
                r.nsg
            )));
        } else {
            self.login.step = Step::LeaveSecurity;
            self.login_request(Stage::Security, Stage::Operational, true, &[]);
        }
        Ok(())
    }

    fn operational_response(&mut self, r: &LoginResponse, pairs: &[Pair]) -> Result<(), Error> {
        let mut answers: Vec<Pair> = Vec::new();
        for (k, v) in pairs {
            if let Some(pos) = self.login.offered.iter().position(|(ok, _)| ok == k) {
                let (_, ours) = self.login.offered.remove(pos);
                check_answer(k, &ours, v)?;
                apply_answer(&mut self.params, k, v);
                continue;
            }
            match k.as_str() {
                "MaxRecvDataSegmentLength" => {
                    if let Some(n) = parse_number(v) {
                        self.params.max_xmit_data_segment_length = n;
                    }
                }
                "TargetAlias" | "TargetAddress" | "TargetPortalGroupTag" => {}
                _ => {
                    // The target offers a key itself: answer it by the key's rule.
                    if let Some(a) = answer_offer(&self.config.offer(), k, v) {
                        apply_answer(&mut self.params, k, &a);
                        answers.push((k.clone(), a));
                    }
                }
            }
        }
        if r.transit && r.nsg == Stage::FullFeature && answers.is_empty() {
            self.finish_login(r);
            return Ok(());
        }
        // Answer the target's offers (or just ask again to move on).
        self.login_request(Stage::Operational, Stage::FullFeature, true, &answers);
        Ok(())
    }

    fn finish_login(&mut self, r: &LoginResponse) {
        let p = &mut self.params;
        if p.first_burst_length > p.max_burst_length {
            p.first_burst_length = p.max_burst_length;
        }
        self.state = State::FullFeature;
        self.deadline = None;
        self.tsih = r.tsih;
        // The login response's window holds outright (nothing to compare it with).
        {
            let mut w = self.win();
            w.exp_cmd_sn = r.exp_cmd_sn;
            w.max_cmd_sn = r.max_cmd_sn;
        }
        // Digests start with the first PDU after the final login response
        // (RFC 7143 §13.1).
        self.tx_digests = Digests {
            header: self.params.header_digest,
            data: self.params.data_digest,
        };
        self.decoder.digests = self.tx_digests;
        self.decoder.max_data_segment = self.params.max_recv_data_segment_length as usize;
        let params: SessionParams = self.params;
        self.events.push_back(Event::LoginComplete {
            tsih: r.tsih,
            params,
            target_keys: std::mem::take(&mut self.login.target_keys),
        });
        // A connection replacing a failed one takes its tasks over (reassign.rs).
        self.start_reassign();
    }
}

/// Our answer to a key the target offered itself, computed by the key's rule from
/// what we would have offered (RFC 7143 §6.2). `None`: not a key we answer.
fn answer_offer(ours: &[Pair], key: &str, theirs: &str) -> Option<String> {
    if matches!(theirs, "NotUnderstood" | "Irrelevant" | "Reject") {
        return None;
    }
    let mine = ours.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let yes = |v: &str| v == "Yes";
    let yn = |b: bool| if b { "Yes" } else { "No" }.to_string();
    Some(match rule(key) {
        None => "NotUnderstood".to_string(),
        Some(KeyRule::Declarative) => return None,
        Some(KeyRule::List) => {
            let accept: Vec<&str> = mine.map(|m| m.split(',').collect()).unwrap_or_default();
            theirs
                .split(',')
                .find(|t| accept.is_empty() || accept.contains(t))
                .map(str::to_string)
                .unwrap_or_else(|| "Reject".into())
        }
        Some(KeyRule::Min) | Some(KeyRule::Max) => {
            let t = parse_number(theirs)?;
            let m = mine.and_then(parse_number).unwrap_or(t);
            let v = if rule(key) == Some(KeyRule::Min) {
                t.min(m)
            } else {
                t.max(m)
            };
            v.to_string()
        }
        Some(KeyRule::Or) => yn(yes(theirs) || mine.is_some_and(yes)),
        // A boolean AND key we did not offer is something we do not do (IFMarker,
        // OFMarker): No.
        Some(KeyRule::And) => yn(yes(theirs) && mine.is_some_and(yes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_target_offers_by_rule() {
        let ours = vec![
            ("MaxBurstLength".to_string(), "262144".to_string()),
            ("ImmediateData".to_string(), "Yes".to_string()),
            ("HeaderDigest".to_string(), "None".to_string()),
        ];
        assert_eq!(
            answer_offer(&ours, "MaxBurstLength", "4096").as_deref(),
            Some("4096")
        );
        assert_eq!(
            answer_offer(&ours, "DefaultTime2Wait", "5").as_deref(),
            Some("5")
        );
        assert_eq!(
            answer_offer(&ours, "ImmediateData", "No").as_deref(),
            Some("No")
        );
        assert_eq!(
            answer_offer(&ours, "InitialR2T", "No").as_deref(),
            Some("No")
        );
        assert_eq!(
            answer_offer(&ours, "HeaderDigest", "CRC32C").as_deref(),
            Some("Reject")
        );
        assert_eq!(
            answer_offer(&ours, "X-vendor", "1").as_deref(),
            Some("NotUnderstood")
        );
        assert_eq!(answer_offer(&ours, "MaxRecvDataSegmentLength", "1"), None);
    }
}
