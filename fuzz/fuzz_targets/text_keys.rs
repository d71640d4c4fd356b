//! Text key=value parsing and the target's negotiation never panic; parsed text
//! round-trips; negotiated values stay within the target's limits.
#![no_main]

use iscsi_proto::keys::{SessionType, TargetLimits};
use iscsi_proto::login::Negotiator;
use iscsi_proto::text::{self, TextAssembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (split, data) = input;
    // Continuation assembly: any split gives the same text.
    let cut = usize::from(split).min(data.len());
    let mut asm = TextAssembler::default();
    if let (Ok(None), Ok(Some(whole))) =
        (asm.push(&data[..cut], true), asm.push(&data[cut..], false))
    {
        assert_eq!(&whole[..], data);
    }
    let Ok(pairs) = text::parse(data) else {
        return;
    };
    let encoded = text::encode(&pairs);
    assert_eq!(text::parse(&encoded).expect("encoded text parses"), pairs);
    for session_type in [SessionType::Normal, SessionType::Discovery] {
        let limits = TargetLimits::default();
        let mut n = Negotiator::new(limits.clone(), session_type);
        let answered = n.respond(&pairs);
        let _ = n.declarations();
        let p = n.finish();
        assert!(p.first_burst_length <= p.max_burst_length);
        if let Ok(answers) = answered {
            for (k, _) in &answers {
                assert!(
                    pairs.iter().any(|(o, _)| o == k),
                    "answers only offered keys"
                );
            }
            assert!(p.max_burst_length <= limits.max_burst_length);
            assert!(p.first_burst_length <= limits.first_burst_length);
            assert!(p.max_outstanding_r2t <= limits.max_outstanding_r2t);
            assert!(p.max_connections <= limits.max_connections);
            assert!(p.error_recovery_level <= limits.error_recovery_level);
        }
    }
});
