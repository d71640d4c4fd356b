//! Login negotiation costs: the operational stage of a typical Linux initiator's
//! login (open-iscsi's keys), from the request's text segment to the response's:
//! `text::parse`, `Negotiator::respond`, the target's declarations, `finish`, and
//! `text::encode`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use iscsi_proto::keys::{SessionType, TargetLimits};
use iscsi_proto::login::Negotiator;
use iscsi_proto::text;

/// The keys open-iscsi sends in its operational-parameter stage.
const OFFER: &[(&str, &str)] = &[
    ("HeaderDigest", "CRC32C,None"),
    ("DataDigest", "CRC32C,None"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("IFMarker", "No"),
    ("OFMarker", "No"),
    ("ErrorRecoveryLevel", "0"),
    ("InitialR2T", "No"),
    ("ImmediateData", "Yes"),
    ("MaxBurstLength", "16776192"),
    ("FirstBurstLength", "262144"),
    ("MaxOutstandingR2T", "1"),
    ("MaxConnections", "1"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("MaxRecvDataSegmentLength", "262144"),
];

fn login(c: &mut Criterion) {
    let wire = text::encode(OFFER);
    c.bench_function("login/text_parse", |b| {
        b.iter(|| text::parse(black_box(&wire)).expect("valid text"))
    });
    c.bench_function("login/negotiate_operational", |b| {
        b.iter(|| {
            let pairs = text::parse(black_box(&wire)).expect("valid text");
            let mut n = Negotiator::new(TargetLimits::default(), SessionType::Normal);
            let mut answer = n.respond(&pairs).expect("legal offer");
            answer.extend(n.declarations());
            let params = n.finish();
            black_box(params);
            text::encode(&answer)
        })
    });
}

criterion_group!(benches, login);
criterion_main!(benches);
