//! Negotiation of two random offers always ends in a legal result on both sides: the
//! target's answers obey each key's rule against the initiator's offer (RFC 7143 §6.2)
//! and the initiator, applying those answers, ends with the target's parameters.

use iscsi_proto::keys::{range, SessionParams, SessionType, TargetLimits};
use iscsi_proto::login::answer::{apply_answer, check_answer};
use iscsi_proto::login::Negotiator;
use proptest::prelude::*;

const NUMERIC: [&str; 8] = [
    "MaxConnections",
    "MaxBurstLength",
    "FirstBurstLength",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "MaxOutstandingR2T",
    "ErrorRecoveryLevel",
    "MaxRecvDataSegmentLength",
];
const BOOLEAN: [&str; 4] = [
    "InitialR2T",
    "ImmediateData",
    "DataPDUInOrder",
    "DataSequenceInOrder",
];

/// A value for `key`: mostly legal, sometimes out of range or not of the key's type.
fn value_for(key: &'static str) -> BoxedStrategy<String> {
    if NUMERIC.contains(&key) {
        let (lo, hi) = range(key).unwrap_or((0, u32::MAX));
        prop_oneof![
            8 => (lo..=hi).prop_map(|n| n.to_string()),
            1 => (lo..=hi).prop_map(|n| format!("{n:#x}")),
            1 => any::<u32>().prop_map(|n| n.to_string()),
            1 => Just("lots".to_string()),
        ]
        .boxed()
    } else if BOOLEAN.contains(&key) {
        prop_oneof![
            8 => Just("Yes".to_string()),
            8 => Just("No".to_string()),
            1 => Just("Maybe".to_string()),
        ]
        .boxed()
    } else {
        prop_oneof![
            Just("None".to_string()),
            Just("CRC32C".to_string()),
            Just("CRC32C,None".to_string()),
            Just("None,CRC32C".to_string()),
            Just("MD5".to_string()),
        ]
        .boxed()
    }
}

fn offer() -> impl Strategy<Value = Vec<(String, String)>> {
    let keys: Vec<&'static str> = NUMERIC
        .iter()
        .chain(BOOLEAN.iter())
        .chain(["HeaderDigest", "DataDigest"].iter())
        .copied()
        .collect();
    let per_key: Vec<_> = keys
        .into_iter()
        .map(|k| {
            proptest::option::of(value_for(k)).prop_map(move |v| v.map(|v| (k.to_string(), v)))
        })
        .collect();
    (per_key, any::<u64>()).prop_map(|(v, seed)| {
        let mut v: Vec<_> = v.into_iter().flatten().collect();
        // A seeded rotation: keys come in any order.
        if !v.is_empty() {
            let n = (seed as usize) % v.len();
            v.rotate_left(n);
        }
        v
    })
}

fn limits() -> impl Strategy<Value = TargetLimits> {
    (
        (1u16..4, any::<bool>(), any::<bool>(), 512u32..=16_777_215),
        (
            512u32..=16_777_215,
            512u32..=16_777_215,
            0u16..=3600,
            0u16..=3600,
        ),
        (1u16..64, any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |((mc, ir2t, imm, mrdsl), (mbl, fbl, t2w, t2r), (mor2t, hd, dd))| {
                let digests = |crc: bool| {
                    if crc {
                        vec!["CRC32C".to_string(), "None".to_string()]
                    } else {
                        vec!["None".to_string()]
                    }
                };
                TargetLimits {
                    header_digest: digests(hd),
                    data_digest: digests(dd),
                    max_connections: mc,
                    initial_r2t: ir2t,
                    immediate_data: imm,
                    max_recv_data_segment_length: mrdsl,
                    max_burst_length: mbl,
                    first_burst_length: fbl,
                    default_time2wait: t2w,
                    default_time2retain: t2r,
                    max_outstanding_r2t: mor2t,
                    ..TargetLimits::default()
                }
            },
        )
}

proptest! {
    #[test]
    fn two_random_offers_end_legal_on_both_sides(offer in offer(), limits in limits()) {
        let mut n = Negotiator::new(limits.clone(), SessionType::Normal);
        let answers = match n.respond(&offer) {
            Ok(a) => a,
            // Only a value of the wrong type may break the negotiation.
            Err(_) => {
                prop_assert!(offer.iter().any(|(_, v)| v == "lots" || v == "Maybe"));
                return Ok(());
            }
        };
        let mut initiator = SessionParams::default();
        for (k, a) in &answers {
            let o = &offer.iter().find(|(ok, _)| ok == k).expect("answer to an offered key").1;
            prop_assert!(check_answer(k, o, a).is_ok(), "{}={} answered {}", k, o, a);
            apply_answer(&mut initiator, k, a);
        }
        // The target's own offers (defaults it cannot live with); this initiator
        // accepts each as offered, which is always a legal answer.
        let ours = n.target_offers();
        for (k, v) in &ours {
            prop_assert!(!offer.iter().any(|(ok, _)| ok == k));
            let accept = v.split(',').next().unwrap_or_default().to_string();
            apply_answer(&mut initiator, k, &accept);
            prop_assert!(n.respond(&[(k.clone(), accept)]).unwrap().is_empty());
        }
        prop_assert!(!n.awaiting_answers());
        let target = n.finish();
        if initiator.first_burst_length > initiator.max_burst_length {
            initiator.first_burst_length = initiator.max_burst_length;
        }
        // Both sides agree on every negotiated value ...
        prop_assert_eq!(initiator.header_digest, target.header_digest);
        prop_assert_eq!(initiator.data_digest, target.data_digest);
        prop_assert_eq!(initiator.max_connections, target.max_connections);
        prop_assert_eq!(initiator.initial_r2t, target.initial_r2t);
        prop_assert_eq!(initiator.immediate_data, target.immediate_data);
        prop_assert_eq!(initiator.max_burst_length, target.max_burst_length);
        prop_assert_eq!(initiator.first_burst_length, target.first_burst_length);
        prop_assert_eq!(initiator.default_time2wait, target.default_time2wait);
        prop_assert_eq!(initiator.default_time2retain, target.default_time2retain);
        prop_assert_eq!(initiator.max_outstanding_r2t, target.max_outstanding_r2t);
        prop_assert_eq!(initiator.error_recovery_level, target.error_recovery_level);
        // ... and the result respects the target's limits and the RFC ranges.
        prop_assert!(target.max_connections <= limits.max_connections.max(1));
        prop_assert!(target.max_burst_length <= limits.max_burst_length.max(target.max_burst_length.min(262_144)));
        prop_assert!(target.first_burst_length <= target.max_burst_length);
        prop_assert!(target.max_outstanding_r2t >= 1);
        prop_assert_eq!(target.error_recovery_level, 0);
        prop_assert!(target.max_recv_data_segment_length == limits.max_recv_data_segment_length);
        prop_assert!(target.max_xmit_data_segment_length >= 512);
        if !limits.immediate_data {
            prop_assert!(!target.immediate_data);
        }
        if limits.initial_r2t {
            prop_assert!(target.initial_r2t || !offer.iter().any(|(k, _)| k == "InitialR2T"));
        }
    }

    #[test]
    fn arbitrary_pairs_never_panic(pairs in proptest::collection::vec(("[A-Za-z#-]{1,20}", "[ -~]{0,20}"), 0..20)) {
        let mut n = Negotiator::new(TargetLimits::default(), SessionType::Normal);
        let _ = n.respond(&pairs);
        let _ = n.finish();
    }
}
