#![allow(clippy::disallowed_methods)] // tests use a real clock as a base; time only moves by hand
//! SCN registration and notification, the initiator query, the access lists and what
//! login and SendTargets make of them (iSNSAccessControl).
//!
//! The byte vectors are laid out by hand from RFC 4171: the 12-byte header (§5.1),
//! TLVs (§5.6.1: tag, length a multiple of 4, NUL-terminated padded strings), and
//! for each message the attribute order tgt 1.0.85's `usr/iscsi/isns.c` writes
//! (`isns_scn_register`, `isns_attr_query`, `send_scn_rsp`).

use super::access::{initiators_in, AccessMap};
use super::client::{Client, ClientConfig, IsnsEvent};
use super::codec::{decode_attrs, Attr, Flags, FunctionId, Message, MessageDecoder, Tag};
use super::message::{self, EntityView, Node};
use super::response::{Response, Status};
use super::scn::{Scn, ScnConnection};
use super::tests::{encode, hex};
use super::IsnsState;
use crate::connection::ConnConfig;
use crate::testkit::fixture::{self, Bind};
use crate::testkit::Sim;
use bytes::{BufMut, BytesMut};
use iscsi_proto::pdu::{Pdu, Stage};
use iscsi_proto::text::{self, Pair};
use std::time::Instant;

const ISNS1: &str = "iqn.2026-11.org.example:isns1";
const INI_A: &str = "iqn.2026-11.org.example:ini-a";
const INI_B: &str = "iqn.2026-11.org.example:ini-b";

// iSCSI Name "iqn.2026-11.org.example:isns1": 29 bytes + NUL + 2 pad = 32 (0x20).
const NAME1: &str =
    "00000020 00000020 69716e2e323032362d31312e6f72672e6578616d706c653a69736e7331 000000";
const DELIMITER: &str = "00000000 00000000";

fn view(scn_port: Option<u16>) -> EntityView {
    EntityView {
        entity_id: "127.0.0.1".into(),
        portals: vec!["127.0.0.1:13261".parse().expect("addr")],
        nodes: vec![Node {
            name: ISNS1.into(),
            alias: None,
        }],
        scn_port,
    }
}

/// A server message (request or response) carrying `status` (responses only) and
/// `attrs`.
fn server_msg(function: FunctionId, xid: u16, status: Option<u32>, attrs: &[Attr]) -> Vec<u8> {
    let mut payload = BytesMut::new();
    if let Some(s) = status {
        payload.put_u32(s);
    }
    super::codec::encode_attrs(attrs, &mut payload);
    encode(&Message {
        function,
        flags: Flags::SERVER,
        transaction_id: xid,
        payload: payload.freeze(),
    })
}

fn sent(c: &mut Client) -> Vec<Message> {
    let mut d = MessageDecoder::default();
    let mut buf = BytesMut::new();
    while let Some(b) = c.poll_transmit() {
        buf.extend_from_slice(&b);
    }
    let mut out = Vec::new();
    while let Some(m) = d.decode(&mut buf).expect("client bytes decode") {
        out.push(m);
    }
    out
}

fn answer(c: &mut Client, m: &Message, status: u32, attrs: &[Attr], now: Instant) {
    let bytes = server_msg(m.function.response(), m.transaction_id, Some(status), attrs);
    c.handle_input(&mut BytesMut::from(&bytes[..]), now);
}

fn events(c: &mut Client) -> Vec<IsnsEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// A DevAttrQryRsp body as a server lays it out: the key echoed, the delimiter, then
/// per initiator its name, node type and one portal address.
fn initiators_rsp(names: &[&str]) -> Vec<Attr> {
    let mut attrs = vec![
        Attr::u32(Tag::ISCSI_NODE_TYPE, 2),
        Attr::empty(Tag::DELIMITER),
    ];
    for n in names {
        attrs.push(Attr::string(Tag::ISCSI_NAME, n));
        attrs.push(Attr::u32(Tag::ISCSI_NODE_TYPE, 2));
        attrs.push(Attr::ip(
            Tag::PORTAL_IP_ADDRESS,
            "192.0.2.1".parse().expect("ip"),
        ));
    }
    attrs
}

/// An SCN from the server to `destination` about `changed` (§5.6.5.8: destination
/// first, then the source attributes: name, timestamp, bitmap).
fn scn_bytes(xid: u16, destination: &str, changed: &str) -> Vec<u8> {
    server_msg(
        FunctionId::SCN,
        xid,
        None,
        &[
            Attr::string(Tag::ISCSI_NAME, destination),
            Attr::string(Tag::ISCSI_NAME, changed),
            Attr {
                tag: Tag::TIMESTAMP,
                value: vec![0, 0, 0, 0, 0x65, 0, 0, 1].into(),
            },
            Attr::u32(Tag::ISCSI_SCN_BITMAP, 0x08),
        ],
    )
}

// ---- bytes --------------------------------------------------------------------

#[test]
fn scn_reg_matches_the_rfc_layout_and_tgt() {
    // Header: version 1, SCNReg (5), 100 payload bytes, client | last | first
    // (0x8c00), transaction 4, sequence 0. Payload: Source iSCSI Name, key iSCSI Name
    // (the same node), delimiter, iSCSI SCN Bitmap (tag 35) with RFC bits 24, 27, 28
    // and 29 (counted from the most significant bit): 0x9c.
    assert_eq!(
        encode(&message::scn_reg(ISNS1, 4)),
        hex(&format!(
            "0001 0005 0064 8c00 0004 0000 {NAME1} {NAME1} {DELIMITER} 00000023 00000004 0000009c"
        ))
    );
    assert_eq!(message::SCN_BITMAP, 0x9c);
}

#[test]
fn initiator_query_matches_the_rfc_layout_and_tgt() {
    // DevAttrQry (2), 84 bytes: Source = the target, key iSCSI Node Type = initiator
    // (2), delimiter, then the operating attributes asked for, empty: iSCSI Name (32),
    // iSCSI Node Type (33), Portal IP Address (16).
    assert_eq!(
        encode(&message::dev_attr_qry_initiators(ISNS1, 6)),
        hex(&format!(
            "0001 0002 0054 8c00 0006 0000 {NAME1} 00000021 00000004 00000002 {DELIMITER} \
             00000020 00000000 00000021 00000000 00000010 00000000"
        ))
    );
}

#[test]
fn scn_rsp_matches_the_rfc_layout() {
    // SCNRsp (0x8008), 44 bytes: status 0, then the SCN Destination Attribute;
    // transaction of the SCN.
    assert_eq!(
        encode(&message::scn_rsp(ISNS1, 0x1234)),
        hex(&format!("0001 8008 002c 8c00 1234 0000 00000000 {NAME1}"))
    );
}

#[test]
fn registration_carries_the_scn_port_after_each_portal() {
    let mut v = view(Some(40000));
    v.portals.push("127.0.0.2:3260".parse().expect("addr"));
    let m = message::dev_attr_reg(ISNS1, &v, &v.nodes, true, 1);
    let attrs = decode_attrs(&m.payload).expect("attrs");
    let tags: Vec<u32> = attrs.iter().map(|a| a.tag.0).collect();
    assert_eq!(
        tags,
        [32, 1, 0, 1, 2, 16, 17, 23, 16, 17, 23, 32, 33],
        "{attrs:?}"
    );
    assert!(attrs
        .iter()
        .filter(|a| a.tag == Tag::SCN_PORT)
        .all(|a| a.as_u32() == Some(40000)));
}

// ---- SCN connection -----------------------------------------------------------

#[test]
fn scn_connection_answers_each_scn_and_reports_it() {
    let mut conn = ScnConnection::new();
    let mut stream = scn_bytes(0x0102, ISNS1, INI_B);
    stream.extend(scn_bytes(0x0103, ISNS1, INI_A));
    // Any chunking: feed a byte at a time.
    let mut buf = BytesMut::new();
    for b in stream {
        buf.put_u8(b);
        conn.handle_input(&mut buf).expect("good bytes");
    }
    let mut out = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        out.extend_from_slice(&b);
    }
    let mut want = encode(&message::scn_rsp(ISNS1, 0x0102));
    want.extend(encode(&message::scn_rsp(ISNS1, 0x0103)));
    assert_eq!(out, want);
    let scn = conn.poll_scn().expect("an SCN");
    assert_eq!(
        scn,
        Scn {
            destination: ISNS1.into(),
            changed: vec![INI_B.into()],
            bitmap: Some(0x08),
            transaction_id: 0x0102,
        }
    );
    assert!(conn.poll_scn().is_some());
    assert!(conn.poll_scn().is_none());
    assert!(!conn.should_close());

    // Something else is counted and dropped; garbage closes.
    let other = server_msg(FunctionId::ESI, 9, None, &[]);
    conn.handle_input(&mut BytesMut::from(&other[..]))
        .expect("good bytes");
    assert_eq!(conn.ignored(), 1);
    assert!(conn.poll_transmit().is_none());
    assert!(conn
        .handle_input(&mut BytesMut::from(&b"GET / HTTP/1.0\r\n"[..]))
        .is_err());
    assert!(conn.should_close());
}

// ---- access lists -------------------------------------------------------------

#[test]
fn initiators_are_read_as_tgt_reads_them() {
    let mut attrs = initiators_rsp(&[INI_A]);
    // A target in the answer is not an initiator; a name without a node type is not
    // one either.
    attrs.push(Attr::string(
        Tag::ISCSI_NAME,
        "iqn.2026-11.org.example:other-target",
    ));
    attrs.push(Attr::u32(Tag::ISCSI_NODE_TYPE, 1));
    attrs.push(Attr::string(
        Tag::ISCSI_NAME,
        "iqn.2026-11.org.example:no-type",
    ));
    attrs.push(Attr::ip(Tag::PORTAL_IP_ADDRESS, "::1".parse().expect("ip")));
    attrs.push(Attr::string(Tag::ISCSI_NAME, INI_B));
    attrs.push(Attr::u32(Tag::ISCSI_NODE_TYPE, 2));
    let rsp = Response {
        function: FunctionId::DEV_ATTR_QRY.response(),
        transaction_id: 1,
        status: Status::SUCCESS,
        attrs,
    };
    assert_eq!(initiators_in(&rsp), [INI_A, INI_B]);
}

#[test]
fn access_map_admits_listed_initiators_only() {
    let mut m = AccessMap::new();
    assert!(!m.allows(ISNS1, INI_A), "no answer yet: nobody");
    assert!(m.set(ISNS1, [INI_A]));
    assert!(!m.set(ISNS1, [INI_A]), "same list: no change");
    assert!(m.allows(ISNS1, INI_A));
    assert!(m.allows(&ISNS1.to_uppercase(), &INI_A.to_uppercase()));
    assert!(!m.allows(ISNS1, INI_B));
    assert!(!m.allows("iqn.2026-11.org.example:other", INI_A));
    assert!(m.set(ISNS1, Vec::<String>::new()));
    assert!(!m.allows(ISNS1, INI_A), "an empty answer admits nobody");
    assert!(m.remove(ISNS1));
    assert!(m.is_empty());
}

#[test]
fn access_is_enforced_only_with_isns_and_access_control_on() {
    let s = IsnsState::default();
    let mut m = AccessMap::new();
    m.set(ISNS1, [INI_A]);
    s.set_access(m);
    // Default: off, everyone passes.
    assert!(s.allows_initiator(ISNS1, INI_B));
    s.update("iSNSAccessControl", "On").expect("ok");
    // Access control without iSNS (no server): not enforced, as in tgt.
    assert!(s.allows_initiator(ISNS1, INI_B));
    s.update("iSNSServerIP", "127.0.0.1").expect("ok");
    s.update("iSNS", "On").expect("ok");
    assert!(s.allows_initiator(ISNS1, INI_A));
    assert!(!s.allows_initiator(ISNS1, INI_B));
    assert!(!s.allows_initiator("iqn.2026-11.org.example:unknown", INI_A));
    s.update("iSNSAccessControl", "Off").expect("ok");
    assert!(s.allows_initiator(ISNS1, INI_B));
}

// ---- client -------------------------------------------------------------------

#[test]
fn client_registers_for_scn_queries_and_follows_scns() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    c.set_view(view(Some(40000)), t0);
    c.handle_connected(t0);
    // tgt's order: DevAttrReg (with the SCN Port), SCNReg, Registration Period,
    // initiators.
    let reg = sent(&mut c);
    assert_eq!(reg[0].function, FunctionId::DEV_ATTR_REG);
    let attrs = decode_attrs(&reg[0].payload).expect("attrs");
    assert!(attrs.contains(&Attr::u32(Tag::SCN_PORT, 40000)));
    answer(&mut c, &reg[0], 0, &[], t0);
    let s = sent(&mut c);
    assert_eq!(
        encode(&s[0]),
        encode(&message::scn_reg(ISNS1, s[0].transaction_id))
    );
    answer(&mut c, &s[0], 0, &[], t0);
    let p = sent(&mut c);
    assert_eq!(
        encode(&p[0]),
        encode(&message::dev_attr_qry_period(
            ISNS1,
            "127.0.0.1",
            p[0].transaction_id
        ))
    );
    answer(&mut c, &p[0], 0, &[], t0);
    let q = sent(&mut c);
    assert_eq!(
        encode(&q[0]),
        encode(&message::dev_attr_qry_initiators(
            ISNS1,
            q[0].transaction_id
        ))
    );
    let v0 = c.access_version();
    answer(&mut c, &q[0], 0, &initiators_rsp(&[INI_A]), t0);
    assert!(c.access_version() != v0);
    assert!(c.access().allows(ISNS1, INI_A));
    assert!(!c.access().allows(ISNS1, INI_B));
    let ev = events(&mut c);
    assert!(ev.contains(&IsnsEvent::ScnRegistered { node: ISNS1.into() }));
    assert!(ev.contains(&IsnsEvent::AccessUpdated {
        target: ISNS1.into(),
        initiators: vec![INI_A.into()],
    }));
    assert!(c.is_idle());

    // An SCN on our own connection: answered, then the initiators asked again.
    let scn = scn_bytes(77, ISNS1, INI_B);
    c.handle_input(&mut BytesMut::from(&scn[..]), t0);
    let out = sent(&mut c);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(encode(&out[0]), encode(&message::scn_rsp(ISNS1, 77)));
    assert_eq!(out[1].function, FunctionId::DEV_ATTR_QRY);
    answer(&mut c, &out[1], 0, &initiators_rsp(&[INI_A, INI_B]), t0);
    assert!(c.access().allows(ISNS1, INI_B));

    // An SCN from the SCN port (handed in by the adapter): the same query.
    let mut conn = ScnConnection::new();
    conn.handle_input(&mut BytesMut::from(&scn_bytes(78, ISNS1, INI_B)[..]))
        .expect("good bytes");
    let scn = conn.poll_scn().expect("scn");
    c.handle_scn(&scn, t0);
    let q = sent(&mut c);
    assert_eq!(q.len(), 1);
    answer(&mut c, &q[0], 0, &initiators_rsp(&[INI_B]), t0);
    assert!(!c.access().allows(ISNS1, INI_A));
    // An SCN for a node we do not hold asks nothing.
    let scn = Scn {
        destination: "iqn.2026-11.org.example:not-ours".into(),
        changed: vec![],
        bitmap: None,
        transaction_id: 79,
    };
    c.handle_scn(&scn, t0);
    assert!(sent(&mut c).is_empty());

    // A refused query keeps the list; the connection and registration stay.
    c.handle_scn(
        &Scn::parse(&decode_one(&scn_bytes(80, ISNS1, INI_A)))
            .expect("ok")
            .expect("scn"),
        t0,
    );
    let q = sent(&mut c);
    answer(&mut c, &q[0], 5, &[], t0); // Invalid Query
    assert!(events(&mut c).contains(&IsnsEvent::Declined {
        function: FunctionId::DEV_ATTR_QRY,
        node: ISNS1.into(),
        status: Status(5),
    }));
    assert!(c.access().allows(ISNS1, INI_B));
    assert!(!c.should_close() && c.registered().is_some() && c.is_idle());

    // The target goes: its list goes with it.
    let v = c.access_version();
    c.set_view(
        EntityView {
            nodes: vec![],
            ..view(Some(40000))
        },
        t0,
    );
    let d = sent(&mut c);
    assert_eq!(d[0].function, FunctionId::DEV_DEREG);
    answer(&mut c, &d[0], 0, &[], t0);
    assert!(c.access().is_empty());
    assert!(c.access_version() != v);
}

#[test]
fn refused_scn_registration_does_not_stop_the_rest() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    c.set_view(view(Some(40000)), t0);
    c.handle_connected(t0);
    let reg = sent(&mut c);
    answer(&mut c, &reg[0], 0, &[], t0);
    let s = sent(&mut c);
    assert_eq!(s[0].function, FunctionId::SCN_REG);
    answer(&mut c, &s[0], 17, &[], t0); // SCN Registration Rejected
    let next = sent(&mut c);
    assert_eq!(next[0].function, FunctionId::DEV_ATTR_QRY, "period query");
    assert!(events(&mut c).contains(&IsnsEvent::Declined {
        function: FunctionId::SCN_REG,
        node: ISNS1.into(),
        status: Status(17),
    }));
    // Without an SCN port there is no SCNReg at all.
    let mut c = Client::new(ClientConfig::default());
    c.set_view(view(None), t0);
    c.handle_connected(t0);
    let reg = sent(&mut c);
    assert!(!decode_attrs(&reg[0].payload)
        .expect("attrs")
        .iter()
        .any(|a| a.tag == Tag::SCN_PORT));
    answer(&mut c, &reg[0], 0, &[], t0);
    assert_eq!(sent(&mut c)[0].function, FunctionId::DEV_ATTR_QRY);
}

fn decode_one(bytes: &[u8]) -> Message {
    MessageDecoder::default()
        .decode(&mut BytesMut::from(bytes))
        .expect("decode")
        .expect("whole message")
}

// ---- login and SendTargets (testkit) ------------------------------------------

fn pairs(v: &[(&str, &str)]) -> Vec<Pair> {
    v.iter()
        .map(|(k, x)| (k.to_string(), x.to_string()))
        .collect()
}

/// The fixture target plus a second one, both bound to ALL; iSNS and
/// iSNSAccessControl on; the server lets `fixture::INITIATOR` see the fixture target
/// only.
fn guarded_core() -> fixture::Fixture {
    let fx = fixture::single_target(64, Bind::All);
    fixture::add_target(&fx.core, 2, ISNS1, 8, Bind::All);
    let isns = &fx.core.registry.isns;
    for (k, v) in [
        ("iSNSServerIP", "127.0.0.1"),
        ("iSNS", "On"),
        ("iSNSAccessControl", "On"),
    ] {
        isns.update(k, v).expect("setting");
    }
    let mut m = AccessMap::new();
    m.set(fixture::TARGET, [fixture::INITIATOR]);
    m.set(ISNS1, [INI_A]);
    isns.set_access(m);
    fx
}

fn sim(fx: &fixture::Fixture, seed: u64) -> Sim {
    Sim::new(
        fx.core.clone(),
        fixture::peer(),
        ConnConfig::default(),
        seed,
        Instant::now(),
    )
}

fn first_login_status(sim: &mut Sim, target: &str) -> (u8, u8) {
    let mut keys = sim.ini.identity_keys(target);
    keys.push(("AuthMethod".into(), "None".into()));
    let r = sim
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .expect("a login response");
    (r.status_class, r.status_detail)
}

#[test]
fn login_needs_the_servers_permission_with_access_control_on() {
    let fx = guarded_core();
    // Allowed: the whole login goes through.
    let mut s = sim(&fx, 1);
    s.login_normal(fixture::TARGET);
    // Not listed for ISNS1: 0x0202 (authorization failure), and the connection ends.
    let mut s = sim(&fx, 2);
    assert_eq!(first_login_status(&mut s, ISNS1), (2, 2));
    assert!(s.conn.is_closed());
    // Listed for ISNS1.
    let mut s = sim(&fx, 3);
    s.ini.name = INI_A.into();
    s.login_normal(ISNS1);
    // A target the server never answered for admits nobody (tgt's empty list).
    fixture::add_target(&fx.core, 3, "iqn.2026-11.org.example:fresh", 8, Bind::All);
    let mut s = sim(&fx, 4);
    assert_eq!(
        first_login_status(&mut s, "iqn.2026-11.org.example:fresh"),
        (2, 2)
    );
    // The list changes (an SCN was followed): the next login sees it.
    let mut m = fx.core.registry.isns.access();
    m.set(ISNS1, [INI_A, fixture::INITIATOR]);
    fx.core.registry.isns.set_access(m);
    let mut s = sim(&fx, 5);
    s.login_normal(ISNS1);
    // Access control off: everyone, whatever the lists say.
    fx.core
        .registry
        .isns
        .update("iSNSAccessControl", "Off")
        .expect("setting");
    let mut s = sim(&fx, 6);
    s.login_normal("iqn.2026-11.org.example:fresh");
    // Discovery sessions are not checked (tgt checks normal sessions only).
    fx.core
        .registry
        .isns
        .update("iSNSAccessControl", "On")
        .expect("setting");
    let mut s = sim(&fx, 7);
    s.ini.name = "iqn.2026-11.org.example:nobody".into();
    s.login_discovery();
}

fn send_targets(s: &mut Sim) -> Vec<Pair> {
    s.login_discovery();
    let req = s.ini.text_request(&pairs(&[("SendTargets", "All")]));
    let itt = req.itt;
    s.send(Pdu::TextRequest(req));
    let resp = s.ini.text_responses(itt);
    assert_eq!(resp.len(), 1);
    text::parse(&resp[0].data).expect("text")
}

#[test]
fn send_targets_lists_only_what_the_server_allows() {
    let fx = guarded_core();
    let mut s = sim(&fx, 11);
    assert_eq!(
        send_targets(&mut s),
        pairs(&[
            ("TargetName", fixture::TARGET),
            ("TargetAddress", "10.0.0.1:3260,1"),
        ])
    );
    let mut s = sim(&fx, 12);
    s.ini.name = INI_A.into();
    assert_eq!(
        send_targets(&mut s),
        pairs(&[("TargetName", ISNS1), ("TargetAddress", "10.0.0.1:3260,1")])
    );
    let mut s = sim(&fx, 13);
    s.ini.name = INI_B.into();
    assert_eq!(send_targets(&mut s), pairs(&[]));
    // Off: both, as without iSNS.
    fx.core
        .registry
        .isns
        .update("iSNSAccessControl", "Off")
        .expect("setting");
    let mut s = sim(&fx, 14);
    s.ini.name = INI_B.into();
    assert_eq!(send_targets(&mut s).len(), 4);
}
