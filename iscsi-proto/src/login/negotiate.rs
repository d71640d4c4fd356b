//! The target side of key negotiation (RFC 7143 §6.2–6.6, §13).
//!
//! [`Negotiator::respond`] takes the pairs of one (assembled) login or text request and
//! returns the pairs to answer with, updating the session parameters. Identity keys
//! (`InitiatorName`, `TargetName`, `SessionType`, `AuthMethod`...) are left to the login
//! state machine, which sees them first.

use super::answer::{apply_answer, check_answer};
use crate::keys::{range, SessionParams, SessionType, TargetLimits};
use crate::text::Pair;
use std::collections::HashSet;

/// A negotiation the initiator broke: the login fails with "initiator error" (0x0200).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The same key was offered twice (RFC 7143 §6.2).
    #[error("key {0} offered more than once")]
    DuplicateKey(String),
    /// A key's value does not fit its type (text where a number is due...).
    #[error("key {key} has an invalid value {value:?}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// A key only the target may send came from the initiator (`TargetAlias`,
    /// `TargetAddress`, `TargetPortalGroupTag`: RFC 7143 §13.7, §13.8, §13.9).
    #[error("key {0} may only be sent by the target")]
    TargetOnlyKey(String),
    /// An answer breaks the negotiation rules of its key (RFC 7143 §6.2): checked by
    /// [`check_answer`](super::answer::check_answer) on the initiator side.
    #[error("answer {answer:?} to {key}={offer:?} is not legal")]
    IllegalAnswer {
        /// The key.
        key: String,
        /// What was offered.
        offer: String,
        /// What came back.
        answer: String,
    },
}

/// What the target answers about each key, and what it has agreed so far.
#[derive(Debug, Clone)]
pub struct Negotiator {
    limits: TargetLimits,
    session_type: SessionType,
    /// The parameters agreed so far (RFC defaults until negotiated).
    pub params: SessionParams,
    seen: HashSet<String>,
    declared_mrdsl: bool,
    /// Keys the target offered itself (the initiator left them at a default the target
    /// cannot accept), waiting for the initiator's answer.
    offered: Vec<Pair>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_string()
}

/// Parse a numerical value: decimal or `0x` hexadecimal (RFC 7143 §6.1).
pub fn parse_number(v: &str) -> Option<u32> {
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

/// Keys that mean nothing in a discovery session (RFC 7143 §13: "Irrelevant").
fn irrelevant_in_discovery(key: &str) -> bool {
    matches!(
        key,
        "MaxConnections"
            | "InitialR2T"
            | "ImmediateData"
            | "MaxBurstLength"
            | "FirstBurstLength"
            | "MaxOutstandingR2T"
            | "DataPDUInOrder"
            | "DataSequenceInOrder"
            | "DefaultTime2Wait"
            | "DefaultTime2Retain"
            | "ErrorRecoveryLevel"
    )
}

impl Negotiator {
    /// A negotiator for one login with the target's limits.
    pub fn new(limits: TargetLimits, session_type: SessionType) -> Self {
        let params = SessionParams {
            max_recv_data_segment_length: limits.max_recv_data_segment_length,
            ..SessionParams::default()
        };
        Negotiator {
            limits,
            session_type,
            params,
            seen: HashSet::new(),
            declared_mrdsl: false,
            offered: Vec::new(),
        }
    }

    /// Change the session type once `SessionType` has been read.
    pub fn set_session_type(&mut self, t: SessionType) {
        self.session_type = t;
    }

    /// Answer one request's operational keys. `pairs` must not contain the identity keys.
    pub fn respond(&mut self, pairs: &[Pair]) -> Result<Vec<Pair>, NegotiationError> {
        let mut out = Vec::new();
        for (key, value) in pairs {
            if let Some(pos) = self.offered.iter().position(|(k, _)| k == key) {
                // The initiator answers one of our offers: the answer is the result.
                let (_, offer) = self.offered.remove(pos);
                check_answer(key, &offer, value)?;
                apply_answer(&mut self.params, key, value);
                continue;
            }
            if !self.seen.insert(key.clone()) {
                return Err(NegotiationError::DuplicateKey(key.clone()));
            }
            if let Some(answer) = self.answer(key, value)? {
                out.push((key.clone(), answer));
            }
        }
        Ok(out)
    }

    /// Keys the target declares without being asked, sent once in the operational stage.
    pub fn declarations(&mut self) -> Vec<Pair> {
        if self.declared_mrdsl {
            return Vec::new();
        }
        self.declared_mrdsl = true;
        vec![(
            "MaxRecvDataSegmentLength".to_string(),
            self.limits.max_recv_data_segment_length.to_string(),
        )]
    }

    /// Offers the target must make itself, once, in the operational stage: keys the
    /// initiator did not offer whose RFC default the target's limits do not allow
    /// (RFC 7143 §6.2: a default only holds when nobody negotiates the key). The
    /// login must not leave the operational stage until they are answered.
    pub fn target_offers(&mut self) -> Vec<Pair> {
        if self.session_type == SessionType::Discovery {
            return Vec::new();
        }
        let l = &self.limits;
        let d = SessionParams::default();
        let mut want: Vec<Pair> = Vec::new();
        if !l.header_digest.iter().any(|x| x == "None") {
            want.push(("HeaderDigest".into(), l.header_digest.join(",")));
        }
        if !l.data_digest.iter().any(|x| x == "None") {
            want.push(("DataDigest".into(), l.data_digest.join(",")));
        }
        if !l.immediate_data {
            want.push(("ImmediateData".into(), "No".into()));
        }
        if l.max_burst_length < d.max_burst_length {
            want.push(("MaxBurstLength".into(), l.max_burst_length.to_string()));
        }
        if l.first_burst_length < d.first_burst_length {
            want.push(("FirstBurstLength".into(), l.first_burst_length.to_string()));
        }
        if l.default_time2wait > d.default_time2wait {
            want.push(("DefaultTime2Wait".into(), l.default_time2wait.to_string()));
        }
        if l.default_time2retain < d.default_time2retain {
            want.push((
                "DefaultTime2Retain".into(),
                l.default_time2retain.to_string(),
            ));
        }
        want.retain(|(k, _)| self.seen.insert(k.clone()));
        self.offered.extend(want.iter().cloned());
        want
    }

    /// Whether offers of ours still wait for the initiator's answer.
    pub fn awaiting_answers(&self) -> bool {
        !self.offered.is_empty()
    }

    /// Fix up values that depend on each other once negotiation is over
    /// (FirstBurstLength never exceeds MaxBurstLength, RFC 7143 §13.14).
    pub fn finish(&mut self) -> SessionParams {
        let p = &mut self.params;
        if p.first_burst_length > p.max_burst_length {
            p.first_burst_length = p.max_burst_length;
        }
        self.params
    }

    fn answer(&mut self, key: &str, value: &str) -> Result<Option<String>, NegotiationError> {
        let bad = || NegotiationError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
        };
        // Answers to keys we declared (the initiator may say it does not understand
        // them); they need no answer of their own (RFC 7143 §6.2).
        if matches!(value, "NotUnderstood" | "Irrelevant" | "Reject") {
            return Ok(None);
        }
        if matches!(
            key,
            "TargetAlias" | "TargetAddress" | "TargetPortalGroupTag"
        ) {
            return Err(NegotiationError::TargetOnlyKey(key.to_string()));
        }
        if key.starts_with("X-") || key.starts_with("X#") {
            return Ok(Some("NotUnderstood".into()));
        }
        if self.session_type == SessionType::Discovery && irrelevant_in_discovery(key) {
            return Ok(Some("Irrelevant".into()));
        }
        let l = &self.limits;
        let p = &mut self.params;
        // Numeric keys: a value outside the legal range is answered `Reject`
        // (RFC 7143 §6.2.1), a value that is not a number breaks the login.
        let num = |v: &str| -> Result<Option<u32>, NegotiationError> {
            let n = parse_number(v).ok_or_else(bad)?;
            let (lo, hi) = range(key).unwrap_or((0, u32::MAX));
            Ok(if n < lo || n > hi { None } else { Some(n) })
        };
        let boolean = |v: &str| parse_bool(v).ok_or_else(bad);
        Ok(Some(match key {
            "HeaderDigest" | "DataDigest" => {
                let ours = if key == "HeaderDigest" {
                    &l.header_digest
                } else {
                    &l.data_digest
                };
                let pick = value
                    .split(',')
                    .find(|o| ours.iter().any(|x| x.eq_ignore_ascii_case(o)))
                    .map(str::to_string);
                match pick {
                    Some(alg) => {
                        let on = alg.eq_ignore_ascii_case("CRC32C");
                        if key == "HeaderDigest" {
                            p.header_digest = on;
                        } else {
                            p.data_digest = on;
                        }
                        alg
                    }
                    None => "Reject".into(),
                }
            }
            "MaxConnections" => match num(value)? {
                Some(n) => {
                    p.max_connections = n.min(u32::from(l.max_connections)) as u16;
                    p.max_connections.to_string()
                }
                None => "Reject".into(),
            },
            "InitialR2T" => {
                p.initial_r2t = boolean(value)? || l.initial_r2t;
                yes_no(p.initial_r2t)
            }
            "ImmediateData" => {
                p.immediate_data = boolean(value)? && l.immediate_data;
                yes_no(p.immediate_data)
            }
            "DataPDUInOrder" => {
                p.data_pdu_in_order = boolean(value)? || l.data_pdu_in_order;
                yes_no(p.data_pdu_in_order)
            }
            "DataSequenceInOrder" => {
                p.data_sequence_in_order = boolean(value)? || l.data_sequence_in_order;
                yes_no(p.data_sequence_in_order)
            }
            "MaxRecvDataSegmentLength" => {
                // Declarative: the initiator tells us how much it can receive.
                match num(value)? {
                    Some(n) => p.max_xmit_data_segment_length = n,
                    None => return Ok(Some("Reject".into())),
                }
                return Ok(None);
            }
            "MaxBurstLength" => match num(value)? {
                Some(n) => {
                    p.max_burst_length = n.min(l.max_burst_length);
                    p.max_burst_length.to_string()
                }
                None => "Reject".into(),
            },
            "FirstBurstLength" => match num(value)? {
                Some(n) => {
                    p.first_burst_length = n.min(l.first_burst_length);
                    p.first_burst_length.to_string()
                }
                None => "Reject".into(),
            },
            "DefaultTime2Wait" => match num(value)? {
                Some(n) => {
                    p.default_time2wait = n.max(u32::from(l.default_time2wait)) as u16;
                    p.default_time2wait.to_string()
                }
                None => "Reject".into(),
            },
            "DefaultTime2Retain" => match num(value)? {
                Some(n) => {
                    p.default_time2retain = n.min(u32::from(l.default_time2retain)) as u16;
                    p.default_time2retain.to_string()
                }
                None => "Reject".into(),
            },
            "MaxOutstandingR2T" => match num(value)? {
                Some(n) => {
                    p.max_outstanding_r2t = n.min(u32::from(l.max_outstanding_r2t)) as u16;
                    p.max_outstanding_r2t.to_string()
                }
                None => "Reject".into(),
            },
            "ErrorRecoveryLevel" => match num(value)? {
                Some(n) => {
                    p.error_recovery_level = n.min(u32::from(l.error_recovery_level)) as u8;
                    p.error_recovery_level.to_string()
                }
                None => "Reject".into(),
            },
            // RFC 3720 markers, removed by RFC 7143: we never use them.
            "IFMarker" | "OFMarker" => "No".into(),
            "IFMarkInt" | "OFMarkInt" => "Irrelevant".into(),
            // RFC 7144 keys: we speak protocol level 1 (RFC 7143) ...
            "iSCSIProtocolLevel" => match num(value)? {
                Some(n) => n.min(1).to_string(),
                None => "Reject".into(),
            },
            // ... and report tasks as RFC 3720 did (a list key: the first value we
            // support, RFC 7144 §4.2.2).
            "TaskReporting" => {
                if value.split(',').any(|v| v == "RFC3720") {
                    "RFC3720".into()
                } else {
                    "Reject".into()
                }
            }
            // No iSER here.
            "RDMAExtensions" => "No".into(),
            // Declarative keys from the initiator that need no answer.
            "InitiatorAlias" => return Ok(None),
            _ => "NotUnderstood".into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<Pair> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn typical_linux_offer() {
        let mut n = Negotiator::new(TargetLimits::default(), SessionType::Normal);
        let out = n
            .respond(&pairs(&[
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxConnections", "1"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxRecvDataSegmentLength", "262144"),
                ("MaxBurstLength", "16776192"),
                ("FirstBurstLength", "262144"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "0"),
                ("MaxOutstandingR2T", "1"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
                ("ErrorRecoveryLevel", "0"),
                ("IFMarker", "No"),
                ("X-com.example.Foo", "1"),
                ("Bogus", "1"),
            ]))
            .unwrap();
        assert_eq!(
            out,
            pairs(&[
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxConnections", "1"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxBurstLength", "16776192"),
                ("FirstBurstLength", "262144"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "0"),
                ("MaxOutstandingR2T", "1"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
                ("ErrorRecoveryLevel", "0"),
                ("IFMarker", "No"),
                ("X-com.example.Foo", "NotUnderstood"),
                ("Bogus", "NotUnderstood"),
            ])
        );
        let p = n.finish();
        assert_eq!(p.max_xmit_data_segment_length, 262_144);
        assert!(!p.initial_r2t);
    }

    #[test]
    fn digest_preference_and_reject() {
        let mut n = Negotiator::new(TargetLimits::default(), SessionType::Normal);
        let out = n
            .respond(&pairs(&[
                ("HeaderDigest", "CRC32C,None"),
                ("DataDigest", "MD5"),
            ]))
            .unwrap();
        assert_eq!(
            out,
            pairs(&[("HeaderDigest", "CRC32C"), ("DataDigest", "Reject")])
        );
        assert!(n.params.header_digest);
    }

    #[test]
    fn errors_and_ranges() {
        let mut n = Negotiator::new(TargetLimits::default(), SessionType::Normal);
        assert_eq!(
            n.respond(&pairs(&[("MaxBurstLength", "100")])).unwrap(),
            pairs(&[("MaxBurstLength", "Reject")])
        );
        assert!(matches!(
            n.respond(&pairs(&[("MaxBurstLength", "512")])),
            Err(NegotiationError::DuplicateKey(_))
        ));
        assert!(matches!(
            n.respond(&pairs(&[("InitialR2T", "Maybe")])),
            Err(NegotiationError::BadValue { .. })
        ));
        let mut d = Negotiator::new(TargetLimits::default(), SessionType::Discovery);
        assert_eq!(
            d.respond(&pairs(&[("InitialR2T", "Yes")])).unwrap(),
            pairs(&[("InitialR2T", "Irrelevant")])
        );
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("1a"), None);
    }

    #[test]
    fn first_burst_clamped() {
        let mut n = Negotiator::new(TargetLimits::default(), SessionType::Normal);
        n.respond(&pairs(&[
            ("MaxBurstLength", "4096"),
            ("FirstBurstLength", "65536"),
        ]))
        .unwrap();
        assert_eq!(n.finish().first_burst_length, 4096);
    }
}
