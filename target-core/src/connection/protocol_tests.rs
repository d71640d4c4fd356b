//! Login scenarios of the protocol work: CHAP (one-way, mutual, refused), every login
//! status RFC 7143 §11.13.5 defines that a target sends, stage transitions, session
//! reinstatement and the TSIH rules. Driven by the in-memory initiator; no sockets.

use super::{ConnConfig, ConnEvent};
use crate::testkit::{fixture, Sim};
use iscsi_proto::login::chap::{chap_response, decode_binary, encode_binary, ChapAlgorithm};
use iscsi_proto::pdu::{LoginResponse, Pdu, Stage};
use iscsi_proto::text::Pair;
use iscsi_proto::{Isid, Tsih};
use std::time::Instant;

const USER: &str = "alice";
const SECRET: &str = "alice-secret-123";
const TARGET_USER: &str = "tgt";
const TARGET_SECRET: &str = "target-secret-456";

#[allow(clippy::disallowed_methods)]
fn base() -> Instant {
    Instant::now()
}

fn p(k: &str, v: &str) -> Pair {
    (k.to_string(), v.to_string())
}

fn sim(config: ConnConfig) -> (Sim, fixture::Fixture) {
    let fx = fixture::single_target(64, fixture::Bind::All);
    let sim = Sim::new(fx.core.clone(), fixture::peer(), config, 1, base());
    (sim, fx)
}

/// A second connection (another TCP connection of the same initiator) into `fx`.
fn another(fx: &fixture::Fixture, seed: u64) -> Sim {
    Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed,
        base(),
    )
}

fn status(r: &LoginResponse) -> u16 {
    u16::from(r.status_class) << 8 | u16::from(r.status_detail)
}

fn closed(sim: &Sim) -> bool {
    sim.events
        .iter()
        .any(|e| matches!(e, ConnEvent::Closed { .. }))
}

fn bind_chap(fx: &fixture::Fixture, mutual: bool) {
    let acc = &fx.core.registry.accounts;
    acc.add(USER, SECRET).unwrap();
    fx.target.with_accounts(|b| b.bind(USER, false)).unwrap();
    if mutual {
        acc.add(TARGET_USER, TARGET_SECRET).unwrap();
        fx.target
            .with_accounts(|b| b.bind(TARGET_USER, true))
            .unwrap();
    }
}

fn key(r: &LoginResponse, k: &str) -> Option<String> {
    iscsi_proto::text::parse(&r.data)
        .ok()?
        .into_iter()
        .find(|(pk, _)| pk == k)
        .map(|(_, v)| v)
}

/// Security stage up to the target's challenge; returns (algorithm, id, challenge).
fn chap_start(sim: &mut Sim, algs: &str) -> (ChapAlgorithm, u8, Vec<u8>) {
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.push(p("AuthMethod", "CHAP,None"));
    let r = sim
        .login_step(Stage::Security, Stage::Operational, false, &keys)
        .unwrap();
    assert_eq!(status(&r), 0);
    assert_eq!(key(&r, "AuthMethod").as_deref(), Some("CHAP"));
    let r = sim
        .login_step(
            Stage::Security,
            Stage::Operational,
            false,
            &[p("CHAP_A", algs)],
        )
        .unwrap();
    assert_eq!(status(&r), 0);
    let alg = ChapAlgorithm::from_code(key(&r, "CHAP_A").unwrap().parse().unwrap()).unwrap();
    let id: u8 = key(&r, "CHAP_I").unwrap().parse().unwrap();
    let ch = decode_binary(&key(&r, "CHAP_C").unwrap()).unwrap();
    assert!(ch.len() >= 16);
    (alg, id, ch)
}

fn chap_answer(sim: &mut Sim, pairs: &[Pair]) -> LoginResponse {
    sim.login_step(Stage::Security, Stage::Operational, true, pairs)
        .unwrap()
}

fn finish_login(sim: &mut Sim) -> LoginResponse {
    let offer = sim.ini.offer.pairs(false);
    sim.login_step(Stage::Operational, Stage::FullFeature, true, &offer)
        .unwrap()
}

#[test]
fn chap_one_way_every_algorithm() {
    for (n, algs) in ["5", "6", "7", "8", "7,5"].iter().enumerate() {
        let (mut sim, fx) = sim(ConnConfig::default());
        bind_chap(&fx, false);
        let (alg, id, ch) = chap_start(&mut sim, algs);
        assert_eq!(ch.len(), alg.digest_len().max(16), "case {n}");
        let r = chap_response(alg, id, SECRET.as_bytes(), &ch);
        let resp = chap_answer(
            &mut sim,
            &[p("CHAP_N", USER), p("CHAP_R", &encode_binary(&r))],
        );
        assert_eq!(status(&resp), 0);
        assert!(resp.transit && resp.nsg == Stage::Operational);
        assert_eq!(status(&finish_login(&mut sim)), 0);
        assert!(sim.ini.full_feature);
    }
}

#[test]
fn chap_bad_secret_unknown_user_and_no_chap_offer_fail_with_0201() {
    let (mut sim, fx) = sim(ConnConfig::default());
    bind_chap(&fx, false);
    let (alg, id, ch) = chap_start(&mut sim, "5");
    let r = chap_response(alg, id, b"wrong-secret-000", &ch);
    let resp = chap_answer(
        &mut sim,
        &[p("CHAP_N", USER), p("CHAP_R", &encode_binary(&r))],
    );
    assert_eq!(status(&resp), 0x0201);
    assert!(closed(&sim));

    let mut sim = another(&fx, 2);
    let (alg, id, ch) = chap_start(&mut sim, "5");
    let r = chap_response(alg, id, SECRET.as_bytes(), &ch);
    let resp = chap_answer(
        &mut sim,
        &[p("CHAP_N", "mallory"), p("CHAP_R", &encode_binary(&r))],
    );
    assert_eq!(status(&resp), 0x0201);

    // CHAP is required: AuthMethod=None is refused and leaving the stage fails.
    let mut sim = another(&fx, 3);
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.push(p("AuthMethod", "None"));
    let r = sim
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .unwrap();
    assert_eq!(status(&r), 0x0201);

    // Skipping the security stage is refused too.
    let mut sim = another(&fx, 4);
    let keys = sim.ini.identity_keys(fixture::TARGET);
    let r = sim
        .login_step(Stage::Operational, Stage::FullFeature, true, &keys)
        .unwrap();
    assert_eq!(status(&r), 0x0201);
}

#[test]
fn chap_mutual_answers_and_refuses_reflection() {
    let (mut sim, fx) = sim(ConnConfig::default());
    bind_chap(&fx, true);
    let (alg, id, ch) = chap_start(&mut sim, "5");
    let r = chap_response(alg, id, SECRET.as_bytes(), &ch);
    let my_ch = [0x5au8; 16];
    let resp = chap_answer(
        &mut sim,
        &[
            p("CHAP_N", USER),
            p("CHAP_R", &encode_binary(&r)),
            p("CHAP_I", "9"),
            p("CHAP_C", &encode_binary(&my_ch)),
        ],
    );
    assert_eq!(status(&resp), 0);
    assert_eq!(key(&resp, "CHAP_N").as_deref(), Some(TARGET_USER));
    let expect = chap_response(alg, 9, TARGET_SECRET.as_bytes(), &my_ch);
    assert_eq!(key(&resp, "CHAP_R"), Some(encode_binary(&expect)));
    assert_eq!(status(&finish_login(&mut sim)), 0);

    // The initiator sends our own challenge back: a reflection attack.
    let mut sim = another(&fx, 5);
    let (alg, id, ch) = chap_start(&mut sim, "5");
    let r = chap_response(alg, id, SECRET.as_bytes(), &ch);
    let resp = chap_answer(
        &mut sim,
        &[
            p("CHAP_N", USER),
            p("CHAP_R", &encode_binary(&r)),
            p("CHAP_I", "9"),
            p("CHAP_C", &encode_binary(&ch)),
        ],
    );
    assert_eq!(status(&resp), 0x0201);
}

#[test]
fn chap_challenges_differ_between_logins() {
    let (mut sim, fx) = sim(ConnConfig::default());
    bind_chap(&fx, false);
    let (_, _, a) = chap_start(&mut sim, "5");
    let mut sim2 = another(&fx, 6);
    let (_, _, b) = chap_start(&mut sim2, "5");
    assert_ne!(a, b);
}

#[test]
fn short_secret_is_refused() {
    let (mut sim, fx) = sim(ConnConfig::default());
    fx.core.registry.accounts.add("bob", "short").unwrap();
    fx.target.with_accounts(|b| b.bind("bob", false)).unwrap();
    let (alg, id, ch) = chap_start(&mut sim, "5");
    let r = chap_response(alg, id, b"short", &ch);
    let resp = chap_answer(
        &mut sim,
        &[p("CHAP_N", "bob"), p("CHAP_R", &encode_binary(&r))],
    );
    assert_eq!(status(&resp), 0x0201);
}

/// The first login request with `keys`, answered with the status of the result.
fn first_login(sim: &mut Sim, csg: Stage, nsg: Stage, keys: &[Pair]) -> u16 {
    let r = sim.login_step(csg, nsg, true, keys).expect("a response");
    status(&r)
}

#[test]
fn login_error_statuses() {
    let (mut sim, fx) = sim(ConnConfig::default());
    // 0x0203: no such target.
    let keys = sim.ini.identity_keys("iqn.2024-01.com.example:nope");
    assert_eq!(
        first_login(&mut sim, Stage::Security, Stage::Operational, &keys),
        0x0203
    );
    assert!(closed(&sim));
    // 0x0207: no InitiatorName.
    let mut sim = another(&fx, 2);
    let keys = vec![p("TargetName", fixture::TARGET)];
    assert_eq!(
        first_login(&mut sim, Stage::Security, Stage::Operational, &keys),
        0x0207
    );
    // 0x0207: no TargetName in a normal session.
    let mut sim = another(&fx, 3);
    let keys = vec![p("InitiatorName", "iqn.x")];
    assert_eq!(
        first_login(&mut sim, Stage::Security, Stage::Operational, &keys),
        0x0207
    );
    // 0x0200: T bit to a stage behind us, and a key offered twice.
    let mut sim = another(&fx, 4);
    let keys = sim.ini.identity_keys(fixture::TARGET);
    assert_eq!(
        first_login(&mut sim, Stage::Operational, Stage::Security, &keys),
        0x0200
    );
    let mut sim = another(&fx, 5);
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.push(p("MaxBurstLength", "4096"));
    keys.push(p("MaxBurstLength", "8192"));
    assert_eq!(
        first_login(&mut sim, Stage::Operational, Stage::FullFeature, &keys),
        0x0200
    );
    // 0x0205: version not supported.
    let mut sim = another(&fx, 6);
    let mut req = sim.ini.login_request(
        Stage::Security,
        Stage::Operational,
        true,
        &sim.ini.identity_keys(fixture::TARGET),
    );
    req.version_min = 1;
    req.version_max = 1;
    sim.send(Pdu::LoginRequest(req));
    assert_eq!(status(sim.ini.last_login_response().unwrap()), 0x0205);
    // 0x020a: a TSIH no session has.
    let mut sim = another(&fx, 7);
    let mut req = sim.ini.login_request(
        Stage::Security,
        Stage::Operational,
        true,
        &sim.ini.identity_keys(fixture::TARGET),
    );
    req.tsih = Tsih(0x4242);
    sim.send(Pdu::LoginRequest(req));
    assert_eq!(status(sim.ini.last_login_response().unwrap()), 0x020a);
    // 0x020b: a non-login PDU during login.
    let mut sim = another(&fx, 8);
    let nop = sim.ini.nop_out(bytes::Bytes::new());
    sim.send(Pdu::NopOut(nop));
    assert_eq!(status(sim.ini.last_login_response().unwrap()), 0x020b);
    assert!(closed(&sim));
}

#[test]
fn authorization_and_resources() {
    // 0x0202: the ACL does not admit this initiator.
    let fx = fixture::single_target(64, fixture::Bind::Nothing);
    let mut sim = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        1,
        base(),
    );
    let keys = sim.ini.identity_keys(fixture::TARGET);
    assert_eq!(
        first_login(&mut sim, Stage::Security, Stage::Operational, &keys),
        0x0202
    );
    // 0x0302: the daemon's session limit is reached.
    let fx = fixture::single_target(64, fixture::Bind::All);
    let mut a = Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        1,
        base(),
    );
    a.login_normal(fixture::TARGET);
    let config = ConnConfig {
        max_sessions: Some(1),
        ..ConnConfig::default()
    };
    let mut b = Sim::new(fx.core.clone(), fixture::peer(), config, 2, base());
    b.ini.isid = Isid([0x80, 0, 0, 0, 0, 9]);
    let keys = b.ini.identity_keys(fixture::TARGET);
    assert_eq!(
        first_login(&mut b, Stage::Security, Stage::Operational, &keys),
        0x0302
    );
}

#[test]
fn second_connection_is_refused_with_0206_and_removed_target_with_0204() {
    let (mut a, fx) = sim(ConnConfig::default());
    let r = a.login_normal(fixture::TARGET);
    assert_ne!(r.tsih, Tsih(0));
    let mut b = another(&fx, 2);
    b.ini.isid = a.ini.isid;
    let mut req = b.ini.login_request(
        Stage::Security,
        Stage::Operational,
        true,
        &b.ini.identity_keys(fixture::TARGET),
    );
    req.tsih = r.tsih;
    req.cid = 2;
    b.send(Pdu::LoginRequest(req));
    assert_eq!(status(b.ini.last_login_response().unwrap()), 0x0206);

    // The target goes away between the first and the last login request.
    let mut c = another(&fx, 3);
    c.ini.isid = Isid([0x80, 0, 0, 0, 0, 3]);
    let mut keys = c.ini.identity_keys(fixture::TARGET);
    keys.push(p("AuthMethod", "None"));
    let r = c
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .unwrap();
    assert_eq!(status(&r), 0);
    fx.core.registry.remove_target(fx.target.tid, true).unwrap();
    assert_eq!(status(&finish_login(&mut c)), 0x0204);
}

#[test]
fn reinstatement_closes_the_old_session() {
    let (mut a, fx) = sim(ConnConfig::default());
    let first = a.login_normal(fixture::TARGET);
    let mut b = another(&fx, 2);
    b.ini.isid = a.ini.isid;
    let second = b.login_normal(fixture::TARGET);
    assert_ne!(first.tsih, second.tsih);
    // The adapter feeds the old connection an empty input when the registry's
    // generation moves; it then closes.
    let now = a.now();
    a.conn.handle_input(&mut bytes::BytesMut::new(), now);
    assert!(a.conn.is_closed());
    assert!(!b.conn.is_closed());
    assert_eq!(fx.target.sessions().len(), 1);
    assert_eq!(fx.core.sessions.len(), 1);
    // Another ISID is another session: both live.
    let mut c = another(&fx, 3);
    c.ini.isid = Isid([0x80, 1, 2, 3, 4, 5]);
    c.login_normal(fixture::TARGET);
    let now = b.now();
    b.conn.handle_input(&mut bytes::BytesMut::new(), now);
    assert!(!b.conn.is_closed());
    assert_eq!(fx.core.sessions.len(), 2);
}

#[test]
fn target_offers_non_default_limits_and_holds_transit() {
    let fx = fixture::single_target(64, fixture::Bind::All);
    let mut config = ConnConfig::default();
    config.limits.immediate_data = false;
    config.limits.max_burst_length = 4096;
    let mut sim = Sim::new(fx.core.clone(), fixture::peer(), config, 1, base());
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.push(p("AuthMethod", "None"));
    sim.login_step(Stage::Security, Stage::Operational, true, &keys);
    // The initiator offers nothing: the target must offer what it cannot default.
    let r = sim
        .login_step(Stage::Operational, Stage::FullFeature, true, &[])
        .unwrap();
    assert_eq!(status(&r), 0);
    assert!(!r.transit);
    assert_eq!(key(&r, "ImmediateData").as_deref(), Some("No"));
    assert_eq!(key(&r, "MaxBurstLength").as_deref(), Some("4096"));
    let r = sim
        .login_step(
            Stage::Operational,
            Stage::FullFeature,
            true,
            &[p("ImmediateData", "No"), p("MaxBurstLength", "2048")],
        )
        .unwrap();
    assert_eq!(status(&r), 0);
    assert!(r.transit);
}
