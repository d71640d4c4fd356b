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

/// A target's parameters: tgt's keys with their current values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetParams {
    /// Seconds between NOP-In pings (0: off).
    pub nop_interval: u32,
    /// Unanswered pings before the connection is dropped.
    pub nop_count: u32,
    /// `(key, value)` in [`PARAM_KEYS`] order.
    pub values: Vec<(String, String)>,
}

impl Default for TargetParams {
    fn default() -> Self {
        TargetParams {
            nop_interval: 0,
            nop_count: 0,
            values: PARAM_KEYS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl TargetParams {
    /// The value of `key` (tgt's spelling), if it is a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            "nop_interval" | "nop_count" => None,
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
}
