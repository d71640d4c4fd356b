//! Per-target iSCSI parameters (`tgtadm --mode target --op update --name K --value V`,
//! shown by `--op show --tid N`), with tgt's keys, order and defaults
//! (`session_keys` in tgt's `usr/iscsi/param.c`, plus `nop_interval`/`nop_count`).
//!
//! They are the target's side of login negotiation as an administrator set them;
//! the login code may read them with [`TargetParams::get`].

use serde::{Deserialize, Serialize};

/// How a key's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A decimal number that fits in 32 bits.
    Number,
    /// `Yes` or `No`.
    Bool,
    /// A comma list of `None` and `CRC32C`.
    Digest,
    /// Anything (tgt keeps `Reject` for the marker intervals).
    Text,
}

/// tgt's keys in `show` order, with their defaults.
pub const PARAM_KEYS: &[(&str, &str)] = &[
    ("MaxRecvDataSegmentLength", "8192"),
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("InitialR2T", "Yes"),
    ("MaxOutstandingR2T", "1"),
    ("ImmediateData", "Yes"),
    ("FirstBurstLength", "65536"),
    ("MaxBurstLength", "262144"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
    ("IFMarker", "No"),
    ("OFMarker", "No"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "20"),
    ("OFMarkInt", "Reject"),
    ("IFMarkInt", "Reject"),
    ("MaxConnections", "1"),
    ("RDMAExtensions", "Yes"),
    ("TargetRecvDataSegmentLength", "262144"),
    ("InitiatorRecvDataSegmentLength", "262144"),
    ("MaxOutstandingUnexpectedPDUs", "0"),
    ("MaxXmitDataSegmentLength", "8192"),
    ("MaxQueueCmd", "128"),
];

fn kind(key: &str) -> Kind {
    match key {
        "HeaderDigest" | "DataDigest" => Kind::Digest,
        "InitialR2T"
        | "ImmediateData"
        | "DataPDUInOrder"
        | "DataSequenceInOrder"
        | "IFMarker"
        | "OFMarker"
        | "RDMAExtensions" => Kind::Bool,
        "OFMarkInt" | "IFMarkInt" => Kind::Text,
        _ => Kind::Number,
    }
}

/// Why logins are sent elsewhere (tgt's `RedirectReason`; RFC 7143 §11.13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedirectReason {
    /// Login status 0x0101: the initiator should come back here later.
    Temporary,
    /// Login status 0x0102: the initiator should use the new address from now on.
    Permanent,
}

/// Login redirection as tgt's `RedirectAddress`, `RedirectPort` and `RedirectReason`
/// target parameters set it: with an address and a reason, every login to the target
/// is answered with a redirect status and `TargetAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    /// Host name or IP address (IPv6 with or without brackets); empty: no redirection.
    pub address: String,
    /// TCP port; empty: the initiator's default (3260).
    pub port: String,
    /// Unset: no redirection (tgt shows "Unknown").
    pub reason: Option<RedirectReason>,
    /// A program asked at each login where to send the initiator (tgt's
    /// `RedirectCallback`); it takes precedence over the fixed address.
    #[serde(default)]
    pub callback: String,
}

/// Why a callback's answer was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The program could not run, failed or took too long.
    #[error("the redirect callback gave no answer")]
    NoAnswer,
    /// Its output is not `ADDRESS:PORT:Temporary|Permanent`.
    #[error("the redirect callback answered {0:?}, not ADDRESS:PORT:REASON")]
    BadAnswer(String),
}

/// Read a `RedirectCallback` program's answer, `ADDRESS:PORT:REASON` (an IPv6 address
/// in brackets), into the `TargetAddress` value and reason, as tgt reads it.
pub fn parse_callback_answer(out: &str) -> Result<(String, RedirectReason), CallbackError> {
    let line = out.lines().next().unwrap_or("").trim();
    let bad = || CallbackError::BadAnswer(line.to_string());
    let (addr, rest) = if line.starts_with('[') {
        let end = line.find(']').ok_or_else(bad)?;
        let rest = line[end + 1..].strip_prefix(':').ok_or_else(bad)?;
        (&line[..=end], rest)
    } else {
        line.split_once(':').ok_or_else(bad)?
    };
    let (port, reason) = rest.split_once(':').ok_or_else(bad)?;
    let reason = if reason.starts_with("Temporary") {
        RedirectReason::Temporary
    } else if reason.starts_with("Permanent") {
        RedirectReason::Permanent
    } else {
        return Err(bad());
    };
    if addr.is_empty() {
        return Err(bad());
    }
    Ok((format!("{addr}:{port}"), reason))
}

impl Redirect {
    /// The `TargetAddress` value and login status to answer logins with, when the
    /// redirection is complete (address and reason set).
    pub fn target_address(&self) -> Option<(String, RedirectReason)> {
        let reason = self.reason?;
        if self.address.is_empty() {
            return None;
        }
        // RFC 7143 §13.8: domainname[:port]; an IPv6 literal goes in brackets.
        let host = if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        };
        Some(match self.port.as_str() {
            "" => (host, reason),
            port => (format!("{host}:{port}"), reason),
        })
    }

    fn reason_text(&self) -> &'static str {
        match self.reason {
            Some(RedirectReason::Temporary) => "Temporary",
            Some(RedirectReason::Permanent) => "Permanent",
            None => "",
        }
    }
}

/// A target's parameters: tgt's keys with their current values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetParams {
    /// Seconds between NOP-In pings (0: off).
    pub nop_interval: u32,
    /// Unanswered pings before the connection is dropped.
    pub nop_count: u32,
    /// `(key, value)` in [`PARAM_KEYS`] order.
    pub values: Vec<(String, String)>,
    /// Login redirection (tgt's `Redirect*` keys).
    #[serde(default)]
    pub redirect: Redirect,
    /// Sessions the target takes at once (`MaxSessions`; 0: no limit). Ours, not tgt's.
    #[serde(default)]
    pub max_sessions: u32,
    /// Sessions one InitiatorName may have with the target at once
    /// (`MaxSessionsPerInitiator`; 0: no limit). Ours, not tgt's.
    #[serde(default)]
    pub max_sessions_per_initiator: u32,
    /// The highest ErrorRecoveryLevel a session of this target may negotiate
    /// (`MaxErrorRecoveryLevel`, 0 to 2; `None`: the daemon's maximum). Ours, not tgt's.
    #[serde(default)]
    pub max_error_recovery_level: Option<u8>,
}

/// Our session-limit keys (not tgt's): settable with `--op update --name K`, shown
/// by `--op show --tid N` and dumped only when set.
pub const LIMIT_KEYS: &[&str] = &[
    "MaxSessions",
    "MaxSessionsPerInitiator",
    "MaxErrorRecoveryLevel",
];

/// The redirection keys, in the order tgt shows them.
pub const REDIRECT_KEYS: &[&str] = &[
    "RedirectAddress",
    "RedirectPort",
    "RedirectReason",
    "RedirectCallback",
];

impl Default for TargetParams {
    fn default() -> Self {
        TargetParams {
            nop_interval: 0,
            nop_count: 0,
            values: PARAM_KEYS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            redirect: Redirect::default(),
            max_sessions: 0,
            max_sessions_per_initiator: 0,
            max_error_recovery_level: None,
        }
    }
}

impl TargetParams {
    /// The value of `key` (tgt's spelling), if it is a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            "nop_interval"
            | "nop_count"
            | "MaxSessions"
            | "MaxSessionsPerInitiator"
            | "MaxErrorRecoveryLevel" => None,
            "RedirectAddress" => Some(self.redirect.address.as_str()),
            "RedirectPort" => Some(self.redirect.port.as_str()),
            "RedirectReason" => Some(self.redirect.reason_text()),
            "RedirectCallback" => Some(self.redirect.callback.as_str()),
            _ => self
                .values
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
        }
    }

    /// Set `key` to `value`. `false` when the key is unknown or the value does not
    /// suit it (tgt answers both with "invalid request").
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let number = || value.trim().parse::<u32>().ok();
        match key {
            "nop_interval" => return number().map(|n| self.nop_interval = n).is_some(),
            "nop_count" => return number().map(|n| self.nop_count = n).is_some(),
            "MaxSessions" => return number().map(|n| self.max_sessions = n).is_some(),
            // RFC 7143 §13.20: ErrorRecoveryLevel is 0 to 2.
            "MaxErrorRecoveryLevel" => {
                return number()
                    .filter(|n| *n <= 2)
                    .map(|n| self.max_error_recovery_level = Some(n as u8))
                    .is_some()
            }
            "MaxSessionsPerInitiator" => {
                return number()
                    .map(|n| self.max_sessions_per_initiator = n)
                    .is_some()
            }
            // tgt takes any address and port text as is; an empty address turns the
            // redirection off.
            "RedirectAddress" => {
                self.redirect.address = value.trim().to_string();
                return true;
            }
            "RedirectPort" => {
                let port = value.trim();
                let ok = port.is_empty() || port.parse::<u16>().is_ok_and(|p| p > 0);
                if ok {
                    self.redirect.port = port.to_string();
                }
                return ok;
            }
            // A program path (and fixed arguments), run without a shell as tgt runs it.
            "RedirectCallback" => {
                self.redirect.callback = value.trim().to_string();
                return true;
            }
            // tgt accepts only these two; the empty value (ours) clears the reason, so
            // that a targets.conf update can take a redirection away.
            "RedirectReason" => {
                self.redirect.reason = match value.trim() {
                    "Temporary" => Some(RedirectReason::Temporary),
                    "Permanent" => Some(RedirectReason::Permanent),
                    "" => None,
                    _ => return false,
                };
                return true;
            }
            _ => {}
        }
        let Some(slot) = self.values.iter_mut().find(|(k, _)| k == key) else {
            return false;
        };
        let ok = match kind(key) {
            Kind::Number => number().is_some(),
            Kind::Bool => matches!(value, "Yes" | "No"),
            Kind::Digest => value.split(',').all(|d| matches!(d, "None" | "CRC32C")),
            Kind::Text => !value.is_empty(),
        };
        if ok {
            slot.1 = value.trim().to_string();
        }
        ok
    }

    /// The values that differ from tgt's defaults, in key order (for dump).
    pub fn changed(&self) -> Vec<(String, String)> {
        let def = TargetParams::default();
        let mut out = Vec::new();
        if self.nop_interval != 0 {
            out.push(("nop_interval".into(), self.nop_interval.to_string()));
        }
        if self.nop_count != 0 {
            out.push(("nop_count".into(), self.nop_count.to_string()));
        }
        out.extend(
            self.values
                .iter()
                .zip(def.values.iter())
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a.clone()),
        );
        if self.max_sessions != 0 {
            out.push(("MaxSessions".into(), self.max_sessions.to_string()));
        }
        if self.max_sessions_per_initiator != 0 {
            out.push((
                "MaxSessionsPerInitiator".into(),
                self.max_sessions_per_initiator.to_string(),
            ));
        }
        if let Some(n) = self.max_error_recovery_level {
            out.push(("MaxErrorRecoveryLevel".into(), n.to_string()));
        }
        for key in REDIRECT_KEYS {
            match self.get(key) {
                Some(v) if !v.is_empty() => out.push((key.to_string(), v.to_string())),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_checks_the_value() {
        let mut p = TargetParams::default();
        assert!(p.set("MaxRecvDataSegmentLength", "65536"));
        assert_eq!(p.get("MaxRecvDataSegmentLength"), Some("65536"));
        assert!(!p.set("MaxRecvDataSegmentLength", "lots"));
        assert!(!p.set("bogus", "1"));
        assert!(!p.set("InitialR2T", "maybe"));
        assert!(p.set("HeaderDigest", "CRC32C,None"));
        assert!(p.set("nop_interval", "5"));
        assert_eq!(
            p.changed(),
            vec![
                ("nop_interval".to_string(), "5".to_string()),
                ("MaxRecvDataSegmentLength".into(), "65536".into()),
                ("HeaderDigest".into(), "CRC32C,None".into()),
            ]
        );
    }

    #[test]
    fn callback_answers_as_tgt_reads_them() {
        assert_eq!(
            parse_callback_answer("192.0.2.9:3262:Temporary\n"),
            Ok(("192.0.2.9:3262".into(), RedirectReason::Temporary))
        );
        assert_eq!(
            parse_callback_answer("[2001:db8::2]:3260:Permanent"),
            Ok(("[2001:db8::2]:3260".into(), RedirectReason::Permanent))
        );
        for bad in [
            "",
            "192.0.2.9",
            "192.0.2.9:3260",
            "a:1:Sometimes",
            "[::1:3260:Temporary",
        ] {
            assert!(parse_callback_answer(bad).is_err(), "{bad:?}");
        }
        let mut p = TargetParams::default();
        assert!(p.set("RedirectCallback", "/usr/local/bin/where-to"));
        assert_eq!(p.get("RedirectCallback"), Some("/usr/local/bin/where-to"));
    }

    #[test]
    fn redirect_needs_address_and_reason() {
        let mut p = TargetParams::default();
        assert!(p.set("RedirectAddress", "192.0.2.7"));
        assert_eq!(p.redirect.target_address(), None, "no reason yet");
        assert!(!p.set("RedirectReason", "Sometimes"));
        assert!(!p.set("RedirectPort", "port"));
        assert!(!p.set("RedirectPort", "0"));
        assert!(p.set("RedirectPort", "3261"));
        assert!(p.set("RedirectReason", "Permanent"));
        assert_eq!(
            p.redirect.target_address(),
            Some(("192.0.2.7:3261".into(), RedirectReason::Permanent))
        );
        assert!(p.set("RedirectAddress", "2001:db8::1"));
        assert_eq!(
            p.redirect.target_address().map(|a| a.0),
            Some("[2001:db8::1]:3261".into())
        );
        assert_eq!(
            p.changed(),
            vec![
                ("RedirectAddress".to_string(), "2001:db8::1".to_string()),
                ("RedirectPort".into(), "3261".into()),
                ("RedirectReason".into(), "Permanent".into()),
            ]
        );
        assert!(p.set("RedirectAddress", ""));
        assert_eq!(p.redirect.target_address(), None, "address cleared: off");
    }
}
