//! A target's administrator-set parameters (`tgtadm --mode target --op update --name K
//! --value V`) turned into its side of login negotiation and its NOP-In settings.

use super::ConnConfig;
use crate::registry::Target;
use iscsi_proto::keys::TargetLimits;
use std::time::Duration;

fn number(v: &str) -> Option<u32> {
    v.trim().parse().ok()
}

fn boolean(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

/// The connection's limits with every key the administrator changed from tgt's
/// defaults applied; untouched keys keep the daemon's (faster) defaults.
pub(super) fn limits_for(target: &Target, base: &TargetLimits) -> TargetLimits {
    let mut l = base.clone();
    for (k, v) in target.params().changed() {
        apply(&mut l, &k, &v);
    }
    l
}

/// Apply one tgt parameter to `l`; keys and values that do not fit are ignored (the
/// management path already refused them).
pub(super) fn apply(l: &mut TargetLimits, key: &str, v: &str) {
    let clamp = |n: u32, lo: u32, hi: u32| n.clamp(lo, hi);
    match key {
        // tgt's MaxRecvDataSegmentLength and TargetRecvDataSegmentLength both set
        // what we declare we can receive.
        "MaxRecvDataSegmentLength" | "TargetRecvDataSegmentLength" => {
            if let Some(n) = number(v) {
                l.max_recv_data_segment_length = clamp(n, 512, 16_777_215);
            }
        }
        "HeaderDigest" | "DataDigest" => {
            let list: Vec<String> = v.split(',').map(str::to_string).collect();
            if key == "HeaderDigest" {
                l.header_digest = list;
            } else {
                l.data_digest = list;
            }
        }
        "InitialR2T" => l.initial_r2t = boolean(v).unwrap_or(l.initial_r2t),
        "ImmediateData" => l.immediate_data = boolean(v).unwrap_or(l.immediate_data),
        "DataPDUInOrder" => l.data_pdu_in_order = boolean(v).unwrap_or(l.data_pdu_in_order),
        "DataSequenceInOrder" => {
            l.data_sequence_in_order = boolean(v).unwrap_or(l.data_sequence_in_order)
        }
        "MaxOutstandingR2T" => {
            if let Some(n) = number(v) {
                l.max_outstanding_r2t = clamp(n, 1, 65_535) as u16;
            }
        }
        "FirstBurstLength" => {
            if let Some(n) = number(v) {
                l.first_burst_length = clamp(n, 512, 16_777_215);
            }
        }
        "MaxBurstLength" => {
            if let Some(n) = number(v) {
                l.max_burst_length = clamp(n, 512, 16_777_215);
            }
        }
        "DefaultTime2Wait" => {
            if let Some(n) = number(v) {
                l.default_time2wait = clamp(n, 0, 3600) as u16;
            }
        }
        "DefaultTime2Retain" => {
            if let Some(n) = number(v) {
                l.default_time2retain = clamp(n, 0, 3600) as u16;
            }
        }
        "MaxConnections" => {
            if let Some(n) = number(v) {
                l.max_connections = clamp(n, 1, 65_535) as u16;
            }
        }
        // tgt's key, up to what the target implements
        // (`recovery::MAX_ERROR_RECOVERY_LEVEL`).
        "ErrorRecoveryLevel" => {
            if let Some(n) = number(v) {
                l.error_recovery_level =
                    n.min(u32::from(super::recovery::MAX_ERROR_RECOVERY_LEVEL)) as u8;
            }
        }
        // Ours: a ceiling (applied after ErrorRecoveryLevel, `TargetParams::changed`
        // order), so 0 keeps a target at ERL 0 whatever the daemon offers.
        "MaxErrorRecoveryLevel" => {
            if let Some(n) = number(v) {
                l.error_recovery_level = l.error_recovery_level.min(n.min(2) as u8);
            }
        }
        _ => {}
    }
}

/// NOP-In pings as the target's `nop_interval` (seconds, 0: off) and `nop_count`
/// (unanswered pings before the connection drops) say.
pub(super) fn nop_for(target: &Target, config: &mut ConnConfig) {
    let p = target.params();
    if p.nop_interval > 0 {
        let iv = Duration::from_secs(u64::from(p.nop_interval));
        config.nop_interval = Some(iv);
        config.nop_timeout = iv * p.nop_count.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgt_keys_map_to_limits() {
        let mut l = TargetLimits::default();
        apply(&mut l, "MaxRecvDataSegmentLength", "4096");
        apply(&mut l, "InitialR2T", "Yes");
        apply(&mut l, "ImmediateData", "No");
        apply(&mut l, "MaxBurstLength", "100");
        apply(&mut l, "HeaderDigest", "CRC32C");
        apply(&mut l, "Bogus", "1");
        assert_eq!(l.max_recv_data_segment_length, 4096);
        assert!(l.initial_r2t && !l.immediate_data);
        assert_eq!(l.max_burst_length, 512);
        assert_eq!(l.header_digest, vec!["CRC32C".to_string()]);
    }
}
