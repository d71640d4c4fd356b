#![allow(clippy::disallowed_methods)] // tests use a real clock as a base; time only moves by hand
//! Byte vectors and client scenarios. The vectors marked "tgt 1.0.85" were captured
//! from Debian's tgtd 1.0.85 (`--name iSNS --value On`, targets isns1 then isns2
//! created and deleted) talking to a recording server on 127.0.0.1, and each field was
//! checked against RFC 4171 §5.1 (header) and §5.6.1 (TLV) by hand.

use super::client::{Client, ClientConfig, IsnsEvent};
use super::codec::{decode_attrs, Attr, Flags, FunctionId, Header, Message, MessageDecoder, Tag};
use super::message::{self, EntityView, Node};
use super::response::{IsnsError, Response, Status};
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use std::time::{Duration, Instant};

const ISNS1: &str = "iqn.2026-11.org.example:isns1";
const ISNS2: &str = "iqn.2026-11.org.example:isns2";

/// Hex (whitespace and `|` ignored) to bytes.
pub(super) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).expect("hex digit") as u8)
        .collect();
    assert_eq!(digits.len() & 1, 0, "odd hex");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// A message's wire bytes.
pub(super) fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

fn view(nodes: &[&str]) -> EntityView {
    EntityView {
        entity_id: "127.0.0.1".into(),
        portals: vec!["127.0.0.1:13261".parse().expect("addr")],
        nodes: nodes
            .iter()
            .map(|n| Node {
                name: n.to_string(),
                alias: None,
            })
            .collect(),
        scn_port: None,
    }
}

// iSCSI Name "iqn.2026-11.org.example:isns1": 29 bytes + NUL + 2 pad = 32 (0x20).
const NAME1: &str =
    "00000020 00000020 69716e2e323032362d31312e6f72672e6578616d706c653a69736e7331 000000";
const NAME2: &str =
    "00000020 00000020 69716e2e323032362d31312e6f72672e6578616d706c653a69736e7332 000000";
// Entity Identifier "127.0.0.1": 9 bytes + NUL + 2 pad = 12.
const EID: &str = "00000001 0000000c 3132372e302e302e31 000000";
const DELIMITER: &str = "00000000 00000000";

#[test]
fn first_dev_attr_reg_matches_the_rfc_layout_and_tgt() {
    let m = message::dev_attr_reg(ISNS1, &view(&[ISNS1]), &view(&[ISNS1]).nodes, true, 1);
    let expected = hex(&format!(
        "0001 0001 00bc 9c00 0001 0000 \
         {NAME1} {EID} {DELIMITER} {EID} \
         00000002 00000004 00000002 \
         00000010 00000010 00000000000000000000ffff7f000001 \
         00000011 00000004 000033cd \
         {NAME1} \
         00000021 00000004 00000001"
    ));
    // Header: version 1, DevAttrReg, 188 payload bytes, flags client (0x8000) |
    // replace (0x1000) | last (0x0800) | first (0x0400), transaction 1, sequence 0.
    // Payload: Source, key EID, delimiter, EID, Entity Protocol iSCSI (2), Portal IP
    // as IPv4-mapped IPv6, Portal Port 13261 (TCP), iSCSI Name, Node Type target (1).
    assert_eq!(encode(&m), expected);
    // tgt 1.0.85 sends the same bytes plus its SCN Port (tag 23, its ephemeral port
    // 0xcd3b) after the portal: 200 payload bytes instead of 188. With our listener's
    // port in the view the bytes are tgt's.
    let tgt = hex(
        "0001000100c89c0000010000000000200000002069716e2e323032362d31312e6f72672e6578616d706c653a69736e7331000000000000010000000c3132372e302e302e310000000000000000000000000000010000000c3132372e302e302e31000000000000020000000400000002000000100000001000000000000000000000ffff7f0000010000001100000004000033cd00000017000000040000cd3b000000200000002069716e2e323032362d31312e6f72672e6578616d706c653a69736e7331000000000000210000000400000001",
    );
    let scn_port = hex("00000017 00000004 0000cd3b");
    let at = tgt
        .windows(12)
        .position(|w| w == scn_port.as_slice())
        .expect("tgt's SCN port");
    let mut without = [&tgt[..at], &tgt[at + 12..]].concat();
    without[4..6].copy_from_slice(&188u16.to_be_bytes());
    assert_eq!(encode(&m), without);
    let with_scn = view(&[ISNS1]).with_scn_port(Some(0xcd3b));
    let m = message::dev_attr_reg(ISNS1, &with_scn, &with_scn.nodes, true, 1);
    assert_eq!(encode(&m), tgt);
}

#[test]
fn added_target_dereg_and_query_match_tgt() {
    // tgt 1.0.85, transaction 5: isns2 added, sourced from isns1, no Replace.
    let m = message::dev_attr_reg(
        ISNS1,
        &view(&[ISNS1, ISNS2]),
        &view(&[ISNS2]).nodes,
        false,
        5,
    );
    assert_eq!(
        encode(&m),
        hex("00010001008c8c0000050000000000200000002069716e2e323032362d31312e6f72672e6578616d706c653a69736e7331000000000000010000000c3132372e302e302e310000000000000000000000000000010000000c3132372e302e302e31000000000000200000002069716e2e323032362d31312e6f72672e6578616d706c653a69736e7332000000000000210000000400000001")
    );
    // Transaction 9: DevDereg of isns2 (Source, delimiter, iSCSI Name).
    assert_eq!(
        encode(&message::dev_dereg_nodes(&[ISNS2.to_string()], 9)),
        hex(&format!(
            "0001 0004 0058 8c00 0009 0000 {NAME2} {DELIMITER} {NAME2}"
        ))
    );
    // Transaction 11: the last target goes, so the whole entity.
    assert_eq!(
        encode(&message::dev_dereg_entity(ISNS1, "127.0.0.1", 11)),
        hex(&format!(
            "0001 0004 0044 8c00 000b 0000 {NAME1} {DELIMITER} {EID}"
        ))
    );
    // Transaction 3: DevAttrQry for the Registration Period (tag 6, empty).
    assert_eq!(
        encode(&message::dev_attr_qry_period(ISNS1, "127.0.0.1", 3)),
        hex(&format!(
            "0001 0002 004c 8c00 0003 0000 {NAME1} {EID} {DELIMITER} 00000006 00000000"
        ))
    );
}

#[test]
fn attributes_round_trip_with_padding() {
    let attrs = vec![
        Attr::string(Tag::ISCSI_NAME, "abc"),
        Attr::string(Tag::ISCSI_ALIAS, "abcd"),
        Attr::u32(Tag::PORTAL_PORT, 3260),
        Attr::ip(Tag::PORTAL_IP_ADDRESS, "::1".parse().expect("ip")),
        Attr::empty(Tag::DELIMITER),
    ];
    let mut b = BytesMut::new();
    super::codec::encode_attrs(&attrs, &mut b);
    // "abc\0" needs no padding; "abcd" + NUL is padded to 8.
    assert_eq!(&b[..12], hex("00000020 00000004 61626300").as_slice());
    assert_eq!(
        &b[12..28],
        hex("00000022 00000008 61626364 00000000").as_slice()
    );
    let back = decode_attrs(&b.freeze()).expect("decode");
    assert_eq!(back[0].as_str(), Some("abc"));
    assert_eq!(back[1].as_str(), Some("abcd"));
    assert_eq!(back[2].as_u32(), Some(3260));
    assert_eq!(back[3].as_ip(), "::1".parse().ok());
    assert_eq!(
        Attr::ip(Tag::PORTAL_IP_ADDRESS, "10.1.2.3".parse().expect("ip")).as_ip(),
        "10.1.2.3".parse().ok()
    );
    assert_eq!(back.len(), 5);
}

#[test]
fn bad_attributes_are_typed_errors() {
    let b = Bytes::from(hex("00000020 00000003 616263"));
    assert_eq!(
        decode_attrs(&b),
        Err(IsnsError::MisalignedAttribute { tag: 32, len: 3 })
    );
    let b = Bytes::from(hex("00000020 00000008 61626300"));
    assert_eq!(
        decode_attrs(&b),
        Err(IsnsError::AttributeOverrun {
            tag: 32,
            len: 8,
            left: 4
        })
    );
    let b = Bytes::from(hex("00000020 0000"));
    assert_eq!(
        decode_attrs(&b),
        Err(IsnsError::TruncatedAttribute { left: 6 })
    );
}

/// A response PDU from the server.
fn rsp(function: FunctionId, xid: u16, status: u32, attrs: &[Attr]) -> Vec<u8> {
    let mut payload = BytesMut::new();
    payload.put_u32(status);
    super::codec::encode_attrs(attrs, &mut payload);
    encode(&Message {
        function: function.response(),
        flags: Flags::SERVER,
        transaction_id: xid,
        payload: payload.freeze(),
    })
}

#[test]
fn decoder_takes_whole_pdus_in_any_chunking_and_joins_multi_pdu_messages() {
    let one = rsp(FunctionId::DEV_ATTR_REG, 7, 0, &[]);
    let mut stream = one.clone();
    // A two-PDU DevAttrQryRsp: status in the first, an attribute in the second.
    let mut h = Header {
        version: 1,
        function: FunctionId::DEV_ATTR_QRY.response(),
        pdu_length: 4,
        flags: Flags::SERVER | Flags::FIRST_PDU,
        transaction_id: 8,
        sequence_id: 0,
    };
    h.encode(&mut stream);
    stream.extend_from_slice(&[0, 0, 0, 0]);
    h.pdu_length = 12;
    h.flags = Flags::SERVER | Flags::LAST_PDU;
    h.sequence_id = 1;
    h.encode(&mut stream);
    Attr::u32(Tag::REGISTRATION_PERIOD, 900).encode(&mut stream);
    for chunk in [1, 3, 5, 12, stream.len()] {
        let mut d = MessageDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            buf.extend_from_slice(c);
            while let Some(m) = d.decode(&mut buf).expect("decode") {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2, "chunk {chunk}");
        assert_eq!(got[0].transaction_id, 7);
        let r = Response::parse(&got[1]).expect("parse");
        assert_eq!(r.status, Status::SUCCESS);
        assert_eq!(
            r.attr(Tag::REGISTRATION_PERIOD).and_then(Attr::as_u32),
            Some(900)
        );
        assert!(buf.is_empty());
    }
}

#[test]
fn decoder_refuses_bad_streams() {
    let mut d = MessageDecoder::default();
    let mut b = BytesMut::from(&hex("0002 8001 0000 4c00 0001 0000")[..]);
    assert_eq!(d.decode(&mut b), Err(IsnsError::UnsupportedVersion(2)));
    // Second PDU of a message that never started.
    let mut d = MessageDecoder::default();
    let mut b = BytesMut::from(&hex("0001 8001 0000 4800 0001 0001")[..]);
    assert_eq!(
        d.decode(&mut b),
        Err(IsnsError::OutOfSequence {
            transaction_id: 1,
            expected: 0,
            got: 1
        })
    );
    let mut d = MessageDecoder::new(8);
    let mut b =
        BytesMut::from(&hex("0001 8001 000c 4c00 0001 0000 00000000 00000000 00000000")[..]);
    assert_eq!(
        d.decode(&mut b),
        Err(IsnsError::MessageTooLong { len: 12, max: 8 })
    );
    let m = Message {
        function: FunctionId::DEV_ATTR_REG.response(),
        flags: Flags::SERVER,
        transaction_id: 1,
        payload: Bytes::from_static(&[0, 0]),
    };
    assert_eq!(
        Response::parse(&m),
        Err(IsnsError::MissingStatus { len: 2 })
    );
}

#[test]
fn large_messages_span_pdus() {
    let m = Message {
        function: FunctionId::DEV_ATTR_REG,
        flags: Flags::CLIENT,
        transaction_id: 3,
        payload: Bytes::from(vec![0u8; super::codec::MAX_PDU_PAYLOAD + 8]),
    };
    let mut buf = BytesMut::from(&encode(&m)[..]);
    let first = Header::decode(&buf).expect("header");
    assert_eq!(first.flags, Flags::CLIENT | Flags::FIRST_PDU);
    let back = MessageDecoder::new(1 << 20)
        .decode(&mut buf)
        .expect("decode")
        .expect("whole");
    assert_eq!(back.payload.len(), m.payload.len());
    assert_eq!(back.flags, Flags::CLIENT | Flags::FIRST_PDU);
}

// ---- client scenarios ---------------------------------------------------------

/// The requests the client sent since the last call.
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
    assert!(buf.is_empty());
    out
}

fn answer(c: &mut Client, m: &Message, status: u32, attrs: &[Attr], now: Instant) {
    let mut b = BytesMut::from(&rsp(m.function, m.transaction_id, status, attrs)[..]);
    c.handle_input(&mut b, now);
}

fn events(c: &mut Client) -> Vec<IsnsEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn names(m: &Message) -> Vec<String> {
    decode_attrs(&m.payload)
        .expect("attrs")
        .iter()
        .filter(|a| a.tag == Tag::ISCSI_NAME)
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

#[test]
fn client_registers_refreshes_adds_and_deregisters() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    assert!(!c.wants_connection(t0), "nothing to register yet");
    c.set_view(view(&[ISNS1]), t0);
    assert!(c.wants_connection(t0));
    c.handle_connected(t0);
    let reg = sent(&mut c);
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].function, FunctionId::DEV_ATTR_REG);
    assert!(reg[0].flags.contains(Flags::REPLACE));
    answer(&mut c, &reg[0], 0, &[], t0);
    // Then the Registration Period query, as tgt does.
    let q = sent(&mut c);
    assert_eq!(q[0].function, FunctionId::DEV_ATTR_QRY);
    answer(
        &mut c,
        &q[0],
        0,
        &[Attr::u32(Tag::REGISTRATION_PERIOD, 60)],
        t0,
    );
    // Then who may see the target (DevAttrQry sourced from it).
    let q = sent(&mut c);
    assert_eq!(q.len(), 1);
    assert_eq!(
        encode(&q[0]),
        encode(&message::dev_attr_qry_initiators(
            ISNS1,
            q[0].transaction_id
        ))
    );
    answer(&mut c, &q[0], 0, &[], t0);
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(50)));
    let ev = events(&mut c);
    assert!(ev.contains(&IsnsEvent::RegistrationPeriod {
        period: Duration::from_secs(60),
        refresh_every: Duration::from_secs(50),
    }));
    // Refresh when due.
    let t1 = t0 + Duration::from_secs(50);
    c.handle_timeout(t1);
    let q = sent(&mut c);
    assert_eq!(q[0].function, FunctionId::DEV_ATTR_QRY);
    answer(&mut c, &q[0], 0, &[], t1);
    // Each refresh asks for the initiators again.
    let q = sent(&mut c);
    assert_eq!(names(&q[0]), [ISNS1, ""]); // Source, then the Name asked for
    answer(&mut c, &q[0], 0, &[], t1);
    // A target added: an addition without Replace, sourced from the held node.
    c.set_view(view(&[ISNS1, ISNS2]), t1);
    let add = sent(&mut c);
    assert_eq!(add[0].function, FunctionId::DEV_ATTR_REG);
    assert!(!add[0].flags.contains(Flags::REPLACE));
    assert_eq!(names(&add[0]), [ISNS1, ISNS2]);
    answer(&mut c, &add[0], 0, &[], t1);
    let q = sent(&mut c);
    assert_eq!(names(&q[0]), [ISNS2, ""]);
    answer(&mut c, &q[0], 0, &[], t1);
    // One removed: DevDereg naming it.
    c.set_view(view(&[ISNS1]), t1);
    let dereg = sent(&mut c);
    assert_eq!(dereg[0].function, FunctionId::DEV_DEREG);
    assert_eq!(names(&dereg[0]), [ISNS2, ISNS2]);
    answer(&mut c, &dereg[0], 0, &[], t1);
    assert_eq!(c.registered().map(|v| v.nodes.len()), Some(1));
    // The last removed: the entity goes.
    c.set_view(view(&[]), t1);
    let dereg = sent(&mut c);
    assert_eq!(
        encode(&dereg[0]),
        encode(&message::dev_dereg_entity(
            ISNS1,
            "127.0.0.1",
            dereg[0].transaction_id
        ))
    );
    answer(&mut c, &dereg[0], 0, &[], t1);
    assert_eq!(c.registered(), None);
    assert!(c.is_idle() && sent(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn refused_requests_are_retried_with_backoff_and_a_full_registration() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    c.set_view(view(&[ISNS1]), t0);
    c.handle_connected(t0);
    let reg = sent(&mut c);
    answer(&mut c, &reg[0], 12, &[], t0); // Busy
    assert_eq!(
        events(&mut c),
        [IsnsEvent::Refused {
            function: FunctionId::DEV_ATTR_REG,
            status: Status(12),
            retry_in: Duration::from_secs(1),
        }]
    );
    assert!(sent(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    let t1 = t0 + Duration::from_secs(1);
    c.handle_timeout(t1);
    let reg = sent(&mut c);
    assert!(reg[0].flags.contains(Flags::REPLACE));
    answer(&mut c, &reg[0], 3, &[], t1); // refused again: the delay doubles
    assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(2)));
}

#[test]
fn silence_closes_and_reconnection_registers_again() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    c.set_view(view(&[ISNS1]), t0);
    c.handle_connected(t0);
    let _ = sent(&mut c);
    let deadline = c.poll_timeout().expect("deadline");
    c.handle_timeout(deadline);
    assert!(c.should_close());
    assert!(matches!(events(&mut c)[..], [IsnsEvent::NoResponse { .. }]));
    c.handle_disconnected(deadline);
    assert!(!c.wants_connection(deadline));
    let t1 = deadline + Duration::from_secs(1);
    assert!(c.wants_connection(t1));
    c.handle_connected(t1);
    let reg = sent(&mut c);
    assert!(reg[0].flags.contains(Flags::REPLACE));
    // A stale answer to the old transaction is ignored, the new one counts.
    answer(
        &mut c,
        &Message {
            transaction_id: 1,
            ..reg[0].clone()
        },
        0,
        &[],
        t1,
    );
    answer(&mut c, &reg[0], 0, &[], t1);
    assert_eq!(c.registered().map(|v| v.nodes.len()), Some(1));
}

#[test]
fn esi_is_answered_with_its_attributes() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    c.set_view(view(&[]), t0);
    c.handle_connected(t0);
    let mut payload = BytesMut::new();
    Attr::string(Tag::ENTITY_IDENTIFIER, "127.0.0.1").encode(&mut payload);
    let esi = Message {
        function: FunctionId::ESI,
        flags: Flags::SERVER,
        transaction_id: 42,
        payload: payload.freeze(),
    };
    let mut b = BytesMut::from(&encode(&esi)[..]);
    c.handle_input(&mut b, t0);
    let out = sent(&mut c);
    assert_eq!(out[0].function, FunctionId(0x800d));
    assert_eq!(out[0].transaction_id, 42);
    assert_eq!(&out[0].payload[..4], &[0, 0, 0, 0]);
    assert_eq!(&out[0].payload[4..], &esi.payload[..]);
    assert_eq!(events(&mut c), [IsnsEvent::EsiAnswered]);
}

#[test]
fn garbage_from_the_server_closes_the_connection() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::default());
    c.set_view(view(&[ISNS1]), t0);
    c.handle_connected(t0);
    let _ = sent(&mut c);
    let mut b = BytesMut::from(&b"HTTP/1.1 400 Bad Request\r\n"[..]);
    c.handle_input(&mut b, t0);
    assert!(c.should_close());
    assert!(matches!(
        events(&mut c)[..],
        [IsnsEvent::Protocol(IsnsError::UnsupportedVersion(_))]
    ));
}

#[test]
fn settings_follow_tgts_rules() {
    use super::settings::{IsnsSettings, SettingError};
    let mut s = IsnsSettings::default();
    // On without a server stays off (tgt 1.0.85 answers success and shows Off).
    s.update("iSNS", "On").expect("accepted");
    assert!(!s.enabled);
    assert!(matches!(
        s.update("iSNS", "on"),
        Err(SettingError::BadValue { .. })
    ));
    assert!(matches!(
        s.update("isns", "On"),
        Err(SettingError::UnknownName(_))
    ));
    s.update("iSNSServerIP", "192.0.2.1").expect("ip");
    s.update("iSNS", "On").expect("on");
    assert!(s.enabled);
    // Ports as C's strtol base 0 reads them (recorded from tgt 1.0.85's show).
    for (v, p) in [
        ("0x10", 16),
        ("010", 8),
        ("-5", -5),
        (" 7", 7),
        ("99999", 99999),
    ] {
        s.update("iSNSServerPort", v).expect("port");
        assert_eq!(s.server_port, p, "{v}");
    }
    assert!(s.update("iSNSServerPort", "3205abc").is_err());
    assert_eq!(s.port(), None, "99999 is no TCP port");
    s.update("iSNSAccessControl", "maybe").expect("ac");
    assert!(!s.access_control);
    s.update("iSNSAccessControl", "On").expect("ac");
    assert!(s.access_control);
}

proptest! {
    #[test]
    fn arbitrary_server_bytes_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        prefix_valid in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let mut c = Client::new(ClientConfig::default());
        c.set_view(view(&[ISNS1]), t0);
        c.handle_connected(t0);
        let reg = sent(&mut c);
        let mut buf = BytesMut::new();
        if prefix_valid {
            buf.extend_from_slice(&rsp(reg[0].function, reg[0].transaction_id, 0, &[]));
        }
        for ch in &chunks {
            buf.extend_from_slice(ch);
            c.handle_input(&mut buf, t0);
            let _ = events(&mut c);
            while c.poll_transmit().is_some() {}
            if c.should_close() {
                c.handle_disconnected(t0);
                c.handle_connected(t0 + Duration::from_secs(120));
                buf.clear();
            }
        }
        // The stand-alone decoder and parser too.
        let all: Vec<u8> = chunks.concat();
        let mut d = MessageDecoder::default();
        let mut b = BytesMut::from(&all[..]);
        while let Ok(Some(m)) = d.decode(&mut b) {
            let _ = Response::parse(&m);
        }
        let _ = decode_attrs(&Bytes::from(all));
    }
}

// ---- management, targets.conf and the registry view ---------------------------

struct NoStores;

impl crate::mgmt::StoreOpener for NoStores {
    fn open(
        &self,
        _spec: &crate::mgmt::StoreSpec<'_>,
    ) -> Result<std::sync::Arc<dyn scsi_sbc::BlockStore>, String> {
        Err("no stores here".into())
    }
}

fn update(core: &crate::Core, name: &str, value: &str) -> Result<(), crate::mgmt::MgmtError> {
    let req = crate::mgmt::Request::SystemUpdate {
        name: name.into(),
        value: value.into(),
    };
    crate::mgmt::apply(core, req, &NoStores).map(|_| ())
}

fn no_include(_: &str) -> Result<Vec<(String, String)>, String> {
    Err("no includes".into())
}

#[test]
fn system_update_show_dump_and_config_agree() {
    use crate::config::{self, ConfigErrorKind};
    use crate::mgmt::{apply, MgmtError, Request};
    let core = crate::Core::new();
    let before = core.registry.generation();
    for (n, v) in [
        ("iSNSServerIP", "192.0.2.1"),
        ("iSNSServerPort", "3206"),
        ("iSNSAccessControl", "On"),
        ("iSNS", "On"),
    ] {
        update(&core, n, v).expect(n);
    }
    assert!(
        core.registry.generation() > before,
        "the iSNS thread must notice"
    );
    assert_eq!(update(&core, "iSNS", "yes"), Err(MgmtError::InvalidRequest));
    assert_eq!(
        update(&core, "iSNSServer", "x"),
        Err(MgmtError::InvalidRequest)
    );
    let show = apply(&core, Request::SystemShow, &NoStores).expect("show");
    let text = show.output.unwrap_or_default();
    assert!(
        text.ends_with(
            "iSNS:\n    iSNS=On\n    iSNSServerIP=192.0.2.1\n    iSNSServerPort=3206\n    iSNSAccessControl=On\n"
        ),
        "{text}"
    );
    // The full dump (tgt-admin's --dump format has no iSNS keys).
    let dump = config::dump(&crate::mgmt::running_config(&core));
    assert!(
        dump.contains(
            "iSNSServerIP 192.0.2.1\niSNSServerPort 3206\niSNSAccessControl On\niSNS On\n"
        ),
        "{dump}"
    );
    // The dump loads into a fresh daemon with the same settings.
    let cfg = config::parse(&dump, "dump", &mut no_include).expect("parse dump");
    let fresh = crate::Core::new();
    let req = Request::ConfigApply {
        config: cfg.clone(),
        action: crate::mgmt::ConfigAction::Execute,
        force: false,
        pretend: false,
        verbose: false,
        control_port: 0,
    };
    apply(&fresh, req, &NoStores).expect("apply");
    assert_eq!(fresh.registry.isns.get(), core.registry.isns.get());
    assert_eq!(config::dump(&cfg), dump);
    // tgt-admin leaves the settings alone once iSNS is on.
    let other = config::parse("iSNSServerIP 198.51.100.7\n", "f", &mut no_include).expect("parse");
    let req = Request::ConfigApply {
        config: other,
        action: crate::mgmt::ConfigAction::Execute,
        force: false,
        pretend: false,
        verbose: false,
        control_port: 0,
    };
    apply(&fresh, req, &NoStores).expect("apply");
    assert_eq!(fresh.registry.isns.get().server_ip, "192.0.2.1");
    // Defaults are not dumped.
    let blank = config::dump(&crate::mgmt::running_config(&crate::Core::new()));
    assert!(!blank.contains("iSNS"));
    // Bad values are line-numbered file errors.
    for (text, key) in [
        ("iSNS maybe\n", "iSNS"),
        ("\niSNSServerPort 32o5\n", "iSNSServerPort"),
    ] {
        let e = config::parse(text, "f", &mut no_include).expect_err(text);
        assert!(
            matches!(&e.kind, ConfigErrorKind::BadValue { key: k, .. } if k == key),
            "{e:?}"
        );
    }
}

#[test]
fn registry_view_replaces_wildcard_portals_by_the_address_towards_the_server() {
    let core = crate::Core::new();
    let reg = &core.registry;
    for p in ["0.0.0.0:3260", "[::]:3260", "10.0.0.5:3261"] {
        reg.portals.add(p.parse().expect("portal"));
    }
    reg.add_target(1, ISNS1).expect("target");
    let v = EntityView::from_registry(reg, "192.0.2.9".parse().expect("ip"));
    assert_eq!(v.entity_id, "192.0.2.9");
    let want: Vec<std::net::SocketAddr> = vec![
        "192.0.2.9:3260".parse().expect("addr"),
        "10.0.0.5:3261".parse().expect("addr"),
    ];
    assert_eq!(v.portals, want);
    assert_eq!(v.nodes, view(&[ISNS1]).nodes);
}
