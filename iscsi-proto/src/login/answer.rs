//! The offering side of key negotiation: is an answer legal for what was offered, and
//! what does it leave the session with (RFC 7143 §6.2, §13)?
//!
//! A target never needs this; initiators, test tools and the negotiation property tests
//! do: whatever two parties offer, the responder's answer must pass [`check_answer`] and
//! both sides must end with the same [`SessionParams`].

use super::negotiate::{parse_number, NegotiationError};
use crate::keys::{range, SessionParams};

/// How the result of a key is computed (RFC 7143 §6.2.2, §6.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// A list: the answer is one of the offered values.
    List,
    /// Numerical, result is the minimum of both values.
    Min,
    /// Numerical, result is the maximum of both values.
    Max,
    /// Boolean, result is the OR of both values.
    Or,
    /// Boolean, result is the AND of both values.
    And,
    /// Declarative: each side states its own value; nothing is answered.
    Declarative,
}

/// The rule of a standard key, `None` for keys this crate does not negotiate.
pub fn rule(key: &str) -> Option<KeyRule> {
    Some(match key {
        "HeaderDigest" | "DataDigest" | "AuthMethod" | "TaskReporting" => KeyRule::List,
        "MaxConnections" | "MaxBurstLength" | "FirstBurstLength" | "DefaultTime2Retain"
        | "MaxOutstandingR2T" | "ErrorRecoveryLevel" | "iSCSIProtocolLevel" => KeyRule::Min,
        "DefaultTime2Wait" => KeyRule::Max,
        "InitialR2T" | "DataPDUInOrder" | "DataSequenceInOrder" => KeyRule::Or,
        "ImmediateData" | "IFMarker" | "OFMarker" => KeyRule::And,
        "MaxRecvDataSegmentLength" | "InitiatorAlias" | "TargetAlias" => KeyRule::Declarative,
        _ => return None,
    })
}

fn boolean(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

/// Check `answer` against what was offered for `key`. `Reject`, `Irrelevant` and
/// `NotUnderstood` are always legal answers (the key keeps its default).
pub fn check_answer(key: &str, offer: &str, answer: &str) -> Result<(), NegotiationError> {
    let illegal = || NegotiationError::IllegalAnswer {
        key: key.to_string(),
        offer: offer.to_string(),
        answer: answer.to_string(),
    };
    if matches!(answer, "Reject" | "Irrelevant" | "NotUnderstood") {
        return Ok(());
    }
    let Some(rule) = rule(key) else {
        return Ok(());
    };
    let numbers = || -> Result<(u32, u32), NegotiationError> {
        let o = parse_number(offer).ok_or_else(illegal)?;
        let a = parse_number(answer).ok_or_else(illegal)?;
        if let Some((lo, hi)) = range(key) {
            if a < lo || a > hi {
                return Err(illegal());
            }
        }
        Ok((o, a))
    };
    let bools = || -> Result<(bool, bool), NegotiationError> {
        Ok((
            boolean(offer).ok_or_else(illegal)?,
            boolean(answer).ok_or_else(illegal)?,
        ))
    };
    let ok = match rule {
        KeyRule::List => offer.split(',').any(|o| o == answer),
        KeyRule::Min => {
            let (o, a) = numbers()?;
            a <= o
        }
        KeyRule::Max => {
            let (o, a) = numbers()?;
            a >= o
        }
        // Yes OR x is Yes: the responder cannot say No to Yes.
        KeyRule::Or => {
            let (o, a) = bools()?;
            !o || a
        }
        // No AND x is No: the responder cannot say Yes to No.
        KeyRule::And => {
            let (o, a) = bools()?;
            o || !a
        }
        // A declarative key is not answered at all.
        KeyRule::Declarative => false,
    };
    if ok {
        Ok(())
    } else {
        Err(illegal())
    }
}

/// Record an accepted answer in the offering side's parameters (the same parameters
/// the responder computed). Unknown keys and refusals leave `p` unchanged.
pub fn apply_answer(p: &mut SessionParams, key: &str, answer: &str) {
    let n = || parse_number(answer);
    let b = || boolean(answer);
    match key {
        "HeaderDigest" => p.header_digest = answer.eq_ignore_ascii_case("CRC32C"),
        "DataDigest" => p.data_digest = answer.eq_ignore_ascii_case("CRC32C"),
        "MaxConnections" => {
            if let Some(v) = n() {
                p.max_connections = v.min(u32::from(u16::MAX)) as u16;
            }
        }
        "InitialR2T" => p.initial_r2t = b().unwrap_or(p.initial_r2t),
        "ImmediateData" => p.immediate_data = b().unwrap_or(p.immediate_data),
        "DataPDUInOrder" => p.data_pdu_in_order = b().unwrap_or(p.data_pdu_in_order),
        "DataSequenceInOrder" => p.data_sequence_in_order = b().unwrap_or(p.data_sequence_in_order),
        "MaxBurstLength" => p.max_burst_length = n().unwrap_or(p.max_burst_length),
        "FirstBurstLength" => p.first_burst_length = n().unwrap_or(p.first_burst_length),
        "DefaultTime2Wait" => {
            if let Some(v) = n() {
                p.default_time2wait = v.min(3600) as u16;
            }
        }
        "DefaultTime2Retain" => {
            if let Some(v) = n() {
                p.default_time2retain = v.min(3600) as u16;
            }
        }
        "MaxOutstandingR2T" => {
            if let Some(v) = n() {
                p.max_outstanding_r2t = v.min(u32::from(u16::MAX)) as u16;
            }
        }
        "ErrorRecoveryLevel" => {
            if let Some(v) = n() {
                p.error_recovery_level = v.min(2) as u8;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_and_illegal_answers() {
        assert!(check_answer("HeaderDigest", "CRC32C,None", "None").is_ok());
        assert!(check_answer("HeaderDigest", "None", "CRC32C").is_err());
        assert!(check_answer("MaxBurstLength", "4096", "512").is_ok());
        assert!(check_answer("MaxBurstLength", "4096", "8192").is_err());
        assert!(check_answer("MaxBurstLength", "4096", "100").is_err());
        assert!(check_answer("DefaultTime2Wait", "2", "1").is_err());
        assert!(check_answer("InitialR2T", "Yes", "No").is_err());
        assert!(check_answer("InitialR2T", "No", "Yes").is_ok());
        assert!(check_answer("ImmediateData", "No", "Yes").is_err());
        assert!(check_answer("ImmediateData", "Yes", "No").is_ok());
        assert!(check_answer("MaxRecvDataSegmentLength", "8192", "8192").is_err());
        assert!(check_answer("ErrorRecoveryLevel", "2", "Reject").is_ok());
        assert!(check_answer("X-foo", "1", "2").is_ok());
    }

    #[test]
    fn apply() {
        let mut p = SessionParams::default();
        apply_answer(&mut p, "HeaderDigest", "CRC32C");
        apply_answer(&mut p, "MaxBurstLength", "4096");
        apply_answer(&mut p, "InitialR2T", "No");
        apply_answer(&mut p, "FirstBurstLength", "Reject");
        assert!(p.header_digest && !p.initial_r2t);
        assert_eq!((p.max_burst_length, p.first_burst_length), (4096, 65_536));
    }
}
