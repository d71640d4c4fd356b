//! The login against a scripted target: text continued over several responses (C
//! bit), a target that offers keys itself, a redirection, and a target that talks
//! out of turn.
#![allow(clippy::disallowed_methods)]

use bytes::BytesMut;
use iscsi_initiator::{Config, Error, Event, Session, State};
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::pdu::{Digests, LoginRequest, LoginResponse, NopIn, Pdu, Stage};
use iscsi_proto::text::{self, Pair};
use iscsi_proto::{Itt, LunField, SerialNumber, Tsih, Ttt};
use std::time::Instant;

fn requests(s: &mut Session) -> Vec<LoginRequest> {
    let mut out = Vec::new();
    let dec = PduDecoder::new(1 << 20);
    while let Some(e) = s.poll_transmit() {
        let mut b = BytesMut::from(&e.to_vec()[..]);
        match dec.decode(&mut b).unwrap().unwrap() {
            Pdu::LoginRequest(r) => out.push(r),
            other => panic!("{other:?}"),
        }
    }
    out
}

fn keys(r: &LoginRequest) -> Vec<Pair> {
    text::parse(&r.data).unwrap()
}

fn response(
    stat_sn: u32,
    csg: Stage,
    nsg: Stage,
    transit: bool,
    cont: bool,
    data: &[u8],
) -> Vec<u8> {
    Pdu::LoginResponse(LoginResponse {
        transit,
        continue_bit: cont,
        csg,
        nsg,
        version_max: 0,
        version_active: 0,
        isid: Config::discovery("x").isid,
        tsih: Tsih(if transit && nsg == Stage::FullFeature {
            7
        } else {
            0
        }),
        itt: Itt(0),
        stat_sn: SerialNumber(stat_sn),
        exp_cmd_sn: SerialNumber(1),
        max_cmd_sn: SerialNumber(8),
        status_class: 0,
        status_detail: 0,
        data: bytes::Bytes::copy_from_slice(data),
    })
    .encode(Digests::default())
    .to_vec()
}

fn enc(pairs: &[(&str, &str)]) -> Vec<u8> {
    text::encode(pairs).to_vec()
}

#[test]
fn continued_text_and_target_offers() {
    let mut s = Session::new(Config::normal("iqn.x:i", "iqn.x:t"), Instant::now());
    let r = requests(&mut s);
    assert_eq!(r.len(), 1);
    assert!(r[0].transit && r[0].csg == Stage::Security);
    assert!(keys(&r[0]).contains(&("AuthMethod".into(), "None".into())));
    // Security answer split over two responses: the first with C set.
    let all = enc(&[("AuthMethod", "None"), ("TargetPortalGroupTag", "1")]);
    let (a, b) = all.split_at(7);
    s.handle_input(&response(
        0,
        Stage::Security,
        Stage::Security,
        false,
        true,
        a,
    ))
    .unwrap();
    let r = requests(&mut s);
    assert_eq!(r.len(), 1, "an empty request asks for the rest");
    assert!(r[0].data.is_empty() && !r[0].transit);
    s.handle_input(&response(
        0,
        Stage::Security,
        Stage::Operational,
        true,
        false,
        b,
    ))
    .unwrap();
    let r = requests(&mut s);
    assert_eq!(r[0].csg, Stage::Operational);
    let offered = keys(&r[0]);
    assert!(offered.contains(&("InitialR2T".into(), "Yes".into())));
    // The target answers some keys, declares its MaxRecvDataSegmentLength, and offers
    // a key we did not (a vendor key too); it does not transit yet.
    let answer = enc(&[
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("InitialR2T", "Yes"),
        ("ImmediateData", "No"),
        ("MaxBurstLength", "65536"),
        ("FirstBurstLength", "131072"),
        ("MaxRecvDataSegmentLength", "4096"),
        ("X-com.example.Foo", "1"),
        ("IFMarker", "Yes"),
    ]);
    s.handle_input(&response(
        1,
        Stage::Operational,
        Stage::FullFeature,
        false,
        false,
        &answer,
    ))
    .unwrap();
    let r = requests(&mut s);
    let ans = keys(&r[0]);
    assert!(ans.contains(&("X-com.example.Foo".into(), "NotUnderstood".into())));
    // IFMarker is an AND key we do not support: No.
    assert!(ans.contains(&("IFMarker".into(), "No".into())));
    assert!(r[0].transit);
    s.handle_input(&response(
        2,
        Stage::Operational,
        Stage::FullFeature,
        true,
        false,
        &[],
    ))
    .unwrap();
    assert_eq!(s.state(), State::FullFeature);
    let p = *s.params();
    assert!(!p.immediate_data && p.initial_r2t);
    assert_eq!(p.max_xmit_data_segment_length, 4096);
    assert_eq!(p.max_burst_length, 65536);
    // FirstBurstLength never exceeds MaxBurstLength.
    assert_eq!(p.first_burst_length, 65536);
    assert!(matches!(
        s.poll_event(),
        Some(Event::LoginComplete { tsih: Tsih(7), .. })
    ));
    assert_eq!(s.window().2, SerialNumber(8));
}

#[test]
fn illegal_answer_and_redirect_and_out_of_turn() {
    // ImmediateData=Yes answered to our No breaks the AND rule.
    let mut cfg = Config::normal("iqn.x:i", "iqn.x:t");
    cfg.immediate_data = false;
    let mut s = Session::new(cfg, Instant::now());
    requests(&mut s);
    s.handle_input(&response(
        0,
        Stage::Security,
        Stage::Operational,
        true,
        false,
        &enc(&[("AuthMethod", "None")]),
    ))
    .unwrap();
    requests(&mut s);
    let e = s
        .handle_input(&response(
            1,
            Stage::Operational,
            Stage::FullFeature,
            true,
            false,
            &enc(&[("ImmediateData", "Yes")]),
        ))
        .unwrap_err();
    assert!(matches!(e, Error::Negotiation(_)), "{e}");
    assert_eq!(s.state(), State::Failed);

    // A redirection names the new address.
    let mut s = Session::new(Config::normal("iqn.x:i", "iqn.x:t"), Instant::now());
    requests(&mut s);
    let mut raw = response(
        0,
        Stage::Security,
        Stage::Security,
        false,
        false,
        &enc(&[("TargetAddress", "192.0.2.9:3260,1")]),
    );
    raw[36] = 1; // Status-Class: redirection
    raw[37] = 1;
    let e = s.handle_input(&raw).unwrap_err();
    assert!(e.to_string().contains("192.0.2.9:3260,1"), "{e}");

    // A NOP-In during login is a protocol error.
    let mut s = Session::new(Config::normal("iqn.x:i", "iqn.x:t"), Instant::now());
    let nop = Pdu::NopIn(NopIn {
        lun: LunField::default(),
        itt: Itt::RESERVED,
        ttt: Ttt(5),
        stat_sn: SerialNumber(0),
        exp_cmd_sn: SerialNumber(1),
        max_cmd_sn: SerialNumber(1),
        data: bytes::Bytes::new(),
    })
    .encode(Digests::default())
    .to_vec();
    assert!(matches!(s.handle_input(&nop), Err(Error::Protocol(_))));
}
