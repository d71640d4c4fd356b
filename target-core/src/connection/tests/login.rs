//! Login scenarios (RFC 7143 §6.3, §11.12, §11.13) and SendTargets discovery.

use super::{assert_clean, base, closed_event, sim_with};
use crate::connection::ConnConfig;
use crate::testkit::fixture::{self, Bind};
use crate::testkit::Sim;
use iscsi_proto::pdu::{Pdu, Stage};
use iscsi_proto::text::{self, Pair};
use iscsi_proto::Tsih;
use std::time::Duration;

fn pairs(v: &[(&str, &str)]) -> Vec<Pair> {
    v.iter()
        .map(|(k, x)| (k.to_string(), x.to_string()))
        .collect()
}

#[test]
fn plain_login_two_stages() {
    let (mut sim, fx) = sim_with(64, ConnConfig::default(), 1);
    sim.ini.offer.max_burst_length = 131_072;
    sim.ini.offer.first_burst_length = 32_768;
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.push(("AuthMethod".into(), "None".into()));

    let r = sim
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .unwrap();
    // Security stage: accepted, T set, moving to the operational stage, no TSIH yet.
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    assert!(r.transit);
    assert_eq!(r.csg, Stage::Security);
    assert_eq!(r.nsg, Stage::Operational);
    assert_eq!(r.tsih, Tsih(0));
    assert_eq!(r.isid, sim.ini.isid);
    let first = text::parse(&r.data).unwrap();
    assert!(first.contains(&("AuthMethod".into(), "None".into())));
    // RFC 7143 §13.9: TargetPortalGroupTag in the first response of a normal session.
    assert!(first.contains(&("TargetPortalGroupTag".into(), "1".into())));

    let offer = sim.ini.offer.pairs(false);
    let r = sim
        .login_step(Stage::Operational, Stage::FullFeature, true, &offer)
        .unwrap();
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    assert!(r.transit);
    assert_eq!(r.csg, Stage::Operational);
    assert_eq!(r.nsg, Stage::FullFeature);
    assert_ne!(r.tsih, Tsih(0), "the final response carries a TSIH");
    // Every negotiated key is answered; declarative MaxRecvDataSegmentLength is declared.
    let ans = text::parse(&r.data).unwrap();
    let get = |k: &str| ans.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(get("HeaderDigest"), Some("None"));
    assert_eq!(get("DataDigest"), Some("None"));
    assert_eq!(get("InitialR2T"), Some("Yes"));
    assert_eq!(get("ImmediateData"), Some("Yes"));
    assert_eq!(get("MaxBurstLength"), Some("131072"));
    assert_eq!(get("FirstBurstLength"), Some("32768"));
    assert_eq!(get("MaxOutstandingR2T"), Some("1"));
    assert_eq!(get("ErrorRecoveryLevel"), Some("0"));
    assert_eq!(get("MaxRecvDataSegmentLength"), Some("262144"));
    assert!(sim.ini.full_feature);
    assert!(!sim.conn.is_closed());
    assert_clean(&sim);

    // The session is visible to management.
    let sessions = fx.target.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].initiator, fixture::INITIATOR);
    assert_eq!(sessions[0].tsih, r.tsih.0);
}

#[test]
fn login_straight_to_full_feature() {
    // An initiator may skip the security stage when the target needs no authentication.
    let (mut sim, _fx) = sim_with(64, ConnConfig::default(), 2);
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.extend(sim.ini.offer.pairs(false));
    let r = sim
        .login_step(Stage::Operational, Stage::FullFeature, true, &keys)
        .unwrap();
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    assert!(r.transit);
    assert_eq!(r.nsg, Stage::FullFeature);
    assert_ne!(r.tsih, Tsih(0));
    assert_eq!(sim.ini.login_key("TargetPortalGroupTag"), Some("1"));
    assert_clean(&sim);
}

/// Send one leading login request and return the response's status; the connection
/// must then close (RFC 7143 §11.13.5).
fn failed_login(sim: &mut Sim, mut req: iscsi_proto::pdu::LoginRequest) -> (u8, u8) {
    req.transit = true;
    sim.ini.send(&Pdu::LoginRequest(req));
    sim.drive();
    let r = sim
        .ini
        .last_login_response()
        .expect("a login response")
        .clone();
    assert!(
        sim.conn.is_closed(),
        "connection closes after a login failure"
    );
    assert!(closed_event(sim));
    assert_eq!(r.tsih, Tsih(0));
    assert!(!r.transit);
    assert!(r.data.is_empty());
    (r.status_class, r.status_detail)
}

#[test]
fn login_unknown_target() {
    let (mut sim, fx) = sim_with(64, ConnConfig::default(), 3);
    let keys = sim.ini.identity_keys("iqn.2024-01.com.example:nope");
    let req = sim
        .ini
        .login_request(Stage::Security, Stage::Operational, true, &keys);
    assert_eq!(failed_login(&mut sim, req), (2, 3));
    assert!(fx.target.sessions().is_empty());
}

#[test]
fn login_from_address_not_in_acl() {
    let fx = fixture::single_target(64, Bind::Addr("10.9.9.9".parse().unwrap()));
    let mut sim = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        4,
        base(),
    );
    let keys = sim.ini.identity_keys(fixture::TARGET);
    let req = sim
        .ini
        .login_request(Stage::Security, Stage::Operational, true, &keys);
    assert_eq!(failed_login(&mut sim, req), (2, 2));
}

#[test]
fn login_from_bound_address_succeeds() {
    let fx = fixture::single_target(64, Bind::Addr(fixture::PEER_IP));
    let mut sim = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        5,
        base(),
    );
    sim.login_normal(fixture::TARGET);
    assert_clean(&sim);
}

#[test]
fn login_missing_initiator_name() {
    let (mut sim, _fx) = sim_with(64, ConnConfig::default(), 6);
    let keys = pairs(&[("SessionType", "Normal"), ("TargetName", fixture::TARGET)]);
    let req = sim
        .ini
        .login_request(Stage::Security, Stage::Operational, true, &keys);
    assert_eq!(failed_login(&mut sim, req), (2, 7));
}

#[test]
fn login_unsupported_version() {
    let (mut sim, _fx) = sim_with(64, ConnConfig::default(), 7);
    let keys = sim.ini.identity_keys(fixture::TARGET);
    let mut req = sim
        .ini
        .login_request(Stage::Security, Stage::Operational, true, &keys);
    req.version_min = 1;
    req.version_max = 1;
    assert_eq!(failed_login(&mut sim, req), (2, 5));
}

#[test]
fn login_text_continuation() {
    // RFC 7143 §11.12.2: the initiator splits its text over two PDUs with the C bit; the
    // target acknowledges the first with an empty response and answers the whole text.
    let (mut sim, _fx) = sim_with(64, ConnConfig::default(), 8);
    sim.max_chunk = Some(7);
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.extend(sim.ini.offer.pairs(false));
    let body = text::encode(&keys);
    let cut = 20; // inside "InitiatorName=iqn..."
    let mut first = sim
        .ini
        .login_request(Stage::Operational, Stage::FullFeature, false, &[]);
    first.continue_bit = true;
    first.data = body.slice(..cut);
    sim.send(Pdu::LoginRequest(first));
    let r = sim.ini.last_login_response().unwrap().clone();
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    assert!(!r.transit);
    assert!(!r.continue_bit);
    assert!(r.data.is_empty(), "a partial text is acknowledged empty");
    assert!(!sim.conn.is_closed());

    let mut second = sim
        .ini
        .login_request(Stage::Operational, Stage::FullFeature, true, &[]);
    second.data = body.slice(cut..);
    sim.send(Pdu::LoginRequest(second));
    let r = sim.ini.last_login_response().unwrap().clone();
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    assert!(r.transit);
    assert_eq!(r.nsg, Stage::FullFeature);
    assert_ne!(r.tsih, Tsih(0));
    assert_eq!(sim.ini.login_key("ImmediateData"), Some("Yes"));
    assert_clean(&sim);
}

#[test]
fn login_timeout() {
    let config = ConnConfig {
        login_timeout: Duration::from_secs(15),
        ..ConnConfig::default()
    };
    let (mut sim, _fx) = sim_with(64, config, 9);
    let deadline = sim.conn.poll_timeout().expect("login timer armed");
    assert_eq!(deadline, sim.now() + Duration::from_secs(15));
    // A security-stage exchange does not finish the login.
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.push(("AuthMethod".into(), "None".into()));
    sim.login_step(Stage::Security, Stage::Operational, true, &keys);
    sim.advance(Duration::from_secs(14));
    sim.drive();
    assert!(!sim.conn.is_closed());
    assert!(sim.fire_timeout());
    sim.drive();
    assert!(sim.conn.is_closed());
    assert!(closed_event(&sim));
    assert_eq!(sim.conn.poll_timeout(), None);
}

#[test]
fn login_timer_stops_in_full_feature() {
    let (mut sim, _fx) = super::logged_in(10);
    assert_eq!(sim.conn.poll_timeout(), None);
    sim.advance(Duration::from_secs(3600));
    sim.drive();
    assert!(!sim.conn.is_closed());
}

#[test]
fn send_targets_lists_allowed_targets() {
    let fx = fixture::single_target(64, Bind::All);
    fixture::add_target(
        &fx.core,
        2,
        "iqn.2024-01.com.example:sim.hidden",
        8,
        Bind::Addr("192.0.2.7".parse().unwrap()),
    );
    fixture::add_target(
        &fx.core,
        3,
        "iqn.2024-01.com.example:sim.disk3",
        8,
        Bind::Addr(fixture::PEER_IP),
    );
    let mut sim = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        11,
        base(),
    );
    sim.max_chunk = Some(13);
    let r = sim.login_discovery();
    assert_ne!(r.tsih, Tsih(0));
    // A discovery session gets no TargetPortalGroupTag (RFC 7143 §13.9: normal only).
    assert_eq!(sim.ini.login_key("TargetPortalGroupTag"), None);

    let req = sim.ini.text_request(&pairs(&[("SendTargets", "All")]));
    let itt = req.itt;
    sim.send(Pdu::TextRequest(req));
    let resp = sim.ini.text_responses(itt);
    assert_eq!(resp.len(), 1);
    assert!(resp[0].final_bit);
    assert!(!resp[0].continue_bit);
    let got = text::parse(&resp[0].data).unwrap();
    assert_eq!(
        got,
        pairs(&[
            ("TargetName", fixture::TARGET),
            ("TargetAddress", "10.0.0.1:3260,1"),
            ("TargetName", "iqn.2024-01.com.example:sim.disk3"),
            ("TargetAddress", "10.0.0.1:3260,1"),
        ])
    );
    assert_clean(&sim);
}

#[test]
fn long_send_targets_answer_continues() {
    // Twenty targets do not fit the initiator's 512-byte segments: the target answers in
    // pieces with the C bit and a TTT the initiator continues with (RFC 7143 §11.11.2).
    let fx = fixture::single_target(8, Bind::All);
    for tid in 2..=20 {
        let name = format!("iqn.2024-01.com.example:sim.a-rather-long-target-name-{tid:02}");
        fixture::add_target(&fx.core, tid, &name, 8, Bind::All);
    }
    let mut sim = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        13,
        base(),
    );
    sim.ini.offer.max_recv_data_segment_length = 512;
    sim.max_chunk = Some(100);
    sim.login_discovery();
    let req = sim.ini.text_request(&pairs(&[("SendTargets", "All")]));
    let itt = req.itt;
    sim.send(Pdu::TextRequest(req));
    let mut body = Vec::new();
    for round in 0.. {
        let resp = sim.ini.text_responses(itt);
        assert_eq!(resp.len(), round + 1);
        let last = resp.last().unwrap();
        assert!(last.data.len() <= 512);
        body.extend_from_slice(&last.data);
        if !last.continue_bit {
            assert!(last.final_bit);
            break;
        }
        assert!(!last.final_bit);
        assert_ne!(last.ttt, iscsi_proto::Ttt::RESERVED);
        let mut more = sim.ini.text_request(&[]);
        more.itt = itt;
        more.ttt = last.ttt;
        sim.send(Pdu::TextRequest(more));
        assert!(round < 20, "answer never ends");
    }
    let got = text::parse(&body).unwrap();
    let names: Vec<_> = got.iter().filter(|(k, _)| k == "TargetName").collect();
    assert_eq!(names.len(), 20);
    assert_clean(&sim);
}

#[test]
fn discovery_session_refuses_scsi() {
    let (mut sim, _fx) = sim_with(64, ConnConfig::default(), 14);
    sim.login_discovery();
    let itt = sim.ini.read(1, &crate::testkit::cdb::read10(0, 1), 512);
    sim.drive();
    assert!(!sim.ini.task(itt).unwrap().done());
    let rejects = sim.ini.received_where(|p| match p {
        Pdu::Reject(r) => Some(r.reason),
        _ => None,
    });
    assert_eq!(
        rejects,
        vec![iscsi_proto::pdu::reject_reason::PROTOCOL_ERROR]
    );
    assert!(sim.ini.protocol_errors.is_empty());
}
