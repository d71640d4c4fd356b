//! iSNS registration (RFC 4171) against a fake iSNS server in the test: tgtadm turns
//! iSNS on, targets come and go, and the server must receive the registrations and
//! deregistrations tgt 1.0.85 would send, checked on the raw bytes with a parser of
//! its own (not the daemon's codec). With iSNSAccessControl the server's answer to
//! the initiator query decides who may log in and discover, and an SCN sent to the
//! daemon's SCN port changes it.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::Client;
use integration_tests::{both_flavours, Daemon, Flavour};
use iscsi_proto::pdu::Stage;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IQN_A: &str = "iqn.2026-11.org.example:isns-a";
const IQN_B: &str = "iqn.2026-11.org.example:isns-b";

// RFC 4171 §5.1.3 function IDs and §6.1 attribute tags.
const DEV_ATTR_REG: u16 = 0x0001;
const DEV_ATTR_QRY: u16 = 0x0002;
const DEV_DEREG: u16 = 0x0004;
const SCN_REG: u16 = 0x0005;
const SCN: u16 = 0x0008;
const TAG_SCN_PORT: u32 = 23;
const TAG_SCN_BITMAP: u32 = 35;
const TAG_DELIMITER: u32 = 0;
const TAG_ENTITY_ID: u32 = 1;
const TAG_ENTITY_PROTOCOL: u32 = 2;
const TAG_PORTAL_IP: u32 = 16;
const TAG_PORTAL_PORT: u32 = 17;
const TAG_ISCSI_NAME: u32 = 32;
const TAG_NODE_TYPE: u32 = 33;
const FLAG_CLIENT: u16 = 0x8000;
const FLAG_REPLACE: u16 = 0x1000;

/// One PDU as the server received it.
#[derive(Debug, Clone)]
struct Pdu {
    function: u16,
    flags: u16,
    attrs: Vec<(u32, Vec<u8>)>,
}

impl Pdu {
    /// Attributes after the delimiter (the operating attributes, §5.6.5).
    fn operating(&self) -> &[(u32, Vec<u8>)] {
        let at = self
            .attrs
            .iter()
            .position(|(t, _)| *t == TAG_DELIMITER)
            .map_or(self.attrs.len(), |i| i + 1);
        &self.attrs[at..]
    }

    fn source(&self) -> Option<String> {
        self.attrs
            .first()
            .filter(|(t, _)| *t == TAG_ISCSI_NAME)
            .map(|(_, v)| string(v))
    }
}

/// A NUL-padded string value.
fn string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// Read one PDU: the 12-byte header, then PDU Length bytes of TLVs.
fn read_pdu(s: &mut TcpStream) -> Option<(Pdu, u16)> {
    let mut h = [0u8; 12];
    s.read_exact(&mut h).ok()?;
    let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    assert_eq!(word(0), 1, "iSNSP version");
    let mut payload = vec![0u8; word(4) as usize];
    s.read_exact(&mut payload).ok()?;
    let mut attrs = Vec::new();
    let mut p = &payload[..];
    while !p.is_empty() {
        assert!(p.len() >= 8, "truncated attribute in {payload:02x?}");
        let tag = be32(&p[..4])?;
        let len = be32(&p[4..8])? as usize;
        assert_eq!(len % 4, 0, "attribute {tag} not padded");
        attrs.push((tag, p[8..8 + len].to_vec()));
        p = &p[8 + len..];
    }
    let pdu = Pdu {
        function: word(2),
        flags: word(6),
        attrs,
    };
    Some((pdu, word(8)))
}

/// One TLV.
fn tlv(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// A NUL-terminated string value padded to 4 bytes.
fn str_value(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

/// A server PDU: version 1, `function`, server + first + last PDU, `xid`.
fn server_pdu(function: u16, xid: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [1, function, payload.len() as u16, 0x4c00, xid, 0] {
        out.extend_from_slice(&u16::to_be_bytes(w));
    }
    out.extend_from_slice(payload);
    out
}

/// Whether `pdu` is the initiator query (tgt's `isns_attr_query`): key Node Type =
/// initiator.
fn is_initiator_query(pdu: &Pdu) -> bool {
    pdu.function == DEV_ATTR_QRY
        && pdu
            .attrs
            .get(1)
            .is_some_and(|(t, v)| *t == TAG_NODE_TYPE && be32(v) == Some(2))
}

/// A fake iSNS server on 127.0.0.1 that records every PDU and answers status 0; the
/// initiator query is answered with the initiators in `allowed`, as a server with
/// all of them in the target's Discovery Domain would.
struct FakeServer {
    port: u16,
    got: Arc<Mutex<Vec<Pdu>>>,
    allowed: Arc<Mutex<Vec<String>>>,
}

impl FakeServer {
    fn start() -> FakeServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind fake iSNS");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let allowed = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = got.clone();
        let who = allowed.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let log = log.clone();
                let who = who.clone();
                std::thread::spawn(move || {
                    while let Some((pdu, xid)) = read_pdu(&mut s) {
                        // Response: function | 0x8000, same transaction, status 0,
                        // then for the initiator query the key, the delimiter and
                        // each allowed initiator's name and node type.
                        let mut payload = vec![0; 4];
                        if is_initiator_query(&pdu) {
                            tlv(&mut payload, TAG_NODE_TYPE, &2u32.to_be_bytes());
                            tlv(&mut payload, TAG_DELIMITER, &[]);
                            for name in who.lock().expect("allowed").iter() {
                                tlv(&mut payload, TAG_ISCSI_NAME, &str_value(name));
                                tlv(&mut payload, TAG_NODE_TYPE, &2u32.to_be_bytes());
                            }
                        }
                        let rsp = server_pdu(pdu.function | 0x8000, xid, &payload);
                        log.lock().expect("log").push(pdu);
                        if s.write_all(&rsp).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        FakeServer { port, got, allowed }
    }

    fn count(&self, pred: impl Fn(&Pdu) -> bool) -> usize {
        self.got
            .lock()
            .expect("log")
            .iter()
            .filter(|p| pred(p))
            .count()
    }

    /// The first PDU (in arrival order) that `pred` accepts, waiting up to 10 s.
    fn wait_for(&self, what: &str, pred: impl Fn(&Pdu) -> bool) -> Pdu {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self.got.lock().expect("log").iter().find(|p| pred(p)) {
                return p.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what}; the server got {:#?}",
                self.got.lock().expect("log")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether `attrs` has iSCSI Name `name` immediately followed by Node Type target.
fn has_target_node(attrs: &[(u32, Vec<u8>)], name: &str) -> bool {
    attrs.windows(2).any(|w| {
        w[0].0 == TAG_ISCSI_NAME
            && string(&w[0].1) == name
            && w[1].0 == TAG_NODE_TYPE
            && be32(&w[1].1) == Some(1)
    })
}

fn sys_update(d: &Daemon, name: &str, value: &str) {
    d.tgtadm_ok(&[
        "--op", "update", "--mode", "sys", "--name", name, "--value", value,
    ]);
}

fn registers_and_deregisters_targets(f: Flavour) {
    let server = FakeServer::start();
    let d = Daemon::start(f, &[]);
    let port = server.port.to_string();

    // tgt's refusals: exact names and On/Off only.
    for (name, value) in [("iSNS", "bogus"), ("isns", "On"), ("iSNSServerPort", "12x")] {
        let r = d.tgtadm(&[
            "--op", "update", "--mode", "sys", "--name", name, "--value", value,
        ]);
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (22, "tgtadm: invalid request\n"),
            "{name}={value}"
        );
    }

    sys_update(&d, "iSNSServerIP", "127.0.0.1");
    sys_update(&d, "iSNSServerPort", &port);
    sys_update(&d, "iSNS", "On");
    let show = d.tgtadm_ok(&["--mode", "sys", "--op", "show"]);
    let tail = format!(
        "iSNS:\n    iSNS=On\n    iSNSServerIP=127.0.0.1\n    iSNSServerPort={port}\n    iSNSAccessControl=Off\n"
    );
    assert!(show.ends_with(&tail), "{show}");

    d.new_target(1, IQN_A);
    let reg = server.wait_for("DevAttrReg of target A", |p| {
        p.function == DEV_ATTR_REG && has_target_node(p.operating(), IQN_A)
    });
    assert_eq!(reg.flags & FLAG_CLIENT, FLAG_CLIENT);
    // The first registration carries the whole entity: identifier (our address
    // towards the server), protocol iSCSI, and the daemon's portal as IPv4-mapped
    // IPv6 plus port.
    assert_eq!(reg.flags & FLAG_REPLACE, FLAG_REPLACE);
    let op = reg.operating();
    assert_eq!(op[0], (TAG_ENTITY_ID, b"127.0.0.1\0\0\0".to_vec()));
    assert_eq!(op[1], (TAG_ENTITY_PROTOCOL, vec![0, 0, 0, 2]));
    let mut ip = vec![0u8; 10];
    ip.extend_from_slice(&[0xff, 0xff, 127, 0, 0, 1]);
    let portal = op
        .windows(2)
        .find(|w| w[0].0 == TAG_PORTAL_IP && w[1].0 == TAG_PORTAL_PORT)
        .expect("a portal in the registration");
    assert_eq!(portal[0].1, ip);
    assert_eq!(be32(&portal[1].1), Some(u32::from(d.portal.port())));

    d.new_target(2, IQN_B);
    server.wait_for("DevAttrReg of target B", |p| {
        p.function == DEV_ATTR_REG && has_target_node(p.operating(), IQN_B)
    });

    // B goes: a DevDereg naming it.
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "delete", "--tid", "2",
    ]);
    let dereg = server.wait_for("DevDereg of target B", |p| {
        p.function == DEV_DEREG
            && p.operating()
                .iter()
                .any(|(t, v)| *t == TAG_ISCSI_NAME && string(v) == IQN_B)
    });
    assert!(!dereg
        .operating()
        .iter()
        .any(|(t, v)| *t == TAG_ISCSI_NAME && string(v) == IQN_A));

    // iSNS off: the whole entity is deregistered, sourced from A.
    sys_update(&d, "iSNS", "Off");
    let gone = server.wait_for("DevDereg of the entity", |p| {
        p.function == DEV_DEREG && p.operating().iter().any(|(t, _)| *t == TAG_ENTITY_ID)
    });
    assert_eq!(gone.source().as_deref(), Some(IQN_A));
    let show = d.tgtadm_ok(&["--mode", "sys", "--op", "show"]);
    assert!(show.contains("    iSNS=Off\n"), "{show}");
}

/// targets.conf's iSNS keys are applied at start and written back by the full dump
/// (tgt-admin's own `--dump` format has no iSNS keys).
fn config_file_turns_isns_on(f: Flavour) {
    let server = FakeServer::start();
    let dir = integration_tests::TempDir::new("isns-conf");
    let conf = dir.path("targets.conf");
    std::fs::write(
        &conf,
        format!(
            "iSNSServerIP 127.0.0.1\niSNSServerPort {}\niSNSAccessControl On\niSNS On\n\
             <target {IQN_A}>\n</target>\n",
            server.port
        ),
    )
    .expect("write targets.conf");
    let conf = conf.to_string_lossy().into_owned();
    let d = Daemon::start(f, &["-c", &conf]);
    server.wait_for("DevAttrReg from targets.conf", |p| {
        p.function == DEV_ATTR_REG && has_target_node(p.operating(), IQN_A)
    });
    let show = d.tgtadm_ok(&["--mode", "sys", "--op", "show"]);
    let tail = format!(
        "iSNS:\n    iSNS=On\n    iSNSServerIP=127.0.0.1\n    iSNSServerPort={}\n    iSNSAccessControl=On\n",
        server.port
    );
    assert!(show.ends_with(&tail), "{show}");
    let out = std::process::Command::new(integration_tests::bin("tgt-admin"))
        .arg("--control-socket")
        .arg(&d.socket)
        .args(["--dump", "--full"])
        .output()
        .expect("tgt-admin");
    assert!(out.status.success(), "{out:?}");
    let dump = String::from_utf8_lossy(&out.stdout);
    let keys = format!(
        "iSNSServerIP 127.0.0.1\niSNSServerPort {}\niSNSAccessControl On\niSNS On\n",
        server.port
    );
    assert!(dump.contains(&keys), "{dump}");
}

both_flavours!(
    registers_and_deregisters_targets,
    config_file_turns_isns_on,
    access_control_follows_the_server
);

const INI_A: &str = "iqn.2026-11.org.example:isns-ini-a";
const INI_B: &str = "iqn.2026-11.org.example:isns-ini-b";

/// A login as `initiator` to `target` (discovery when `None`): the client returned
/// with the status of the first failing step, or (0, 0).
fn login_as(d: &Daemon, initiator: &str, target: Option<&str>) -> (Client, (u8, u8)) {
    let mut c = Client::connect(d.portal).expect("connect");
    let mut keys = vec![("InitiatorName", initiator), ("AuthMethod", "None")];
    match target {
        Some(t) => keys.extend([("SessionType", "Normal"), ("TargetName", t)]),
        None => keys.push(("SessionType", "Discovery")),
    }
    let (class, detail, _, _) = c
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .expect("login step");
    if (class, detail) != (0, 0) {
        return (c, (class, detail));
    }
    let ops = [
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("MaxRecvDataSegmentLength", "65536"),
    ];
    let (class, detail, _, _) = c
        .login_step(Stage::Operational, Stage::FullFeature, true, &ops)
        .expect("login step");
    (c, (class, detail))
}

/// Retry a login until it gets `want`, for up to 10 s (the daemon learns the lists
/// asynchronously); the last status otherwise.
fn login_until(d: &Daemon, initiator: &str, target: &str, want: (u8, u8)) -> (u8, u8) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, got) = login_as(d, initiator, Some(target));
        if got == want || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn discovered(d: &Daemon, initiator: &str) -> Vec<String> {
    let (mut c, status) = login_as(d, initiator, None);
    assert_eq!(status, (0, 0), "discovery login as {initiator}");
    c.send_targets()
        .expect("SendTargets")
        .into_iter()
        .filter(|(k, _)| k == "TargetName")
        .map(|(_, v)| v)
        .collect()
}

/// iSNSAccessControl On: the server's answer to the initiator query lets A in and
/// keeps B out (login 0x0202, not in SendTargets); an SCN to the daemon's SCN port,
/// after which the server lists B too, lets B in; SIGTERM deregisters the entity.
fn access_control_follows_the_server(f: Flavour) {
    let server = FakeServer::start();
    server.allowed.lock().expect("allowed").push(INI_A.into());
    let mut d = Daemon::start(f, &[]);
    d.new_target(1, IQN_A);
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    // Off (default): anyone.
    assert_eq!(login_as(&d, INI_B, Some(IQN_A)).1, (0, 0));
    sys_update(&d, "iSNSServerIP", "127.0.0.1");
    sys_update(&d, "iSNSServerPort", &server.port.to_string());
    sys_update(&d, "iSNSAccessControl", "On");
    sys_update(&d, "iSNS", "On");

    // The registration names an SCN port (one of ours, after the portal), then the
    // target registers for SCNs with tgt's bitmap and is queried for.
    let reg = server.wait_for("DevAttrReg with an SCN port", |p| {
        p.function == DEV_ATTR_REG && p.operating().iter().any(|(t, _)| *t == TAG_SCN_PORT)
    });
    let scn_port = reg
        .operating()
        .iter()
        .find(|(t, _)| *t == TAG_SCN_PORT)
        .and_then(|(_, v)| be32(v))
        .and_then(|p| u16::try_from(p).ok())
        .expect("SCN port value");
    let scn_reg = server.wait_for("SCNReg", |p| p.function == SCN_REG);
    assert_eq!(scn_reg.source().as_deref(), Some(IQN_A));
    assert_eq!(scn_reg.operating(), [(TAG_SCN_BITMAP, vec![0, 0, 0, 0x9c])]);
    let q = server.wait_for("initiator query", is_initiator_query);
    assert_eq!(q.source().as_deref(), Some(IQN_A));

    assert_eq!(login_until(&d, INI_A, IQN_A, (0, 0)), (0, 0), "A allowed");
    assert_eq!(login_as(&d, INI_B, Some(IQN_A)).1, (2, 2), "B refused");
    assert_eq!(discovered(&d, INI_A), [IQN_A]);
    assert!(discovered(&d, INI_B).is_empty());

    // The server now lets B see the target and says so with an SCN.
    server.allowed.lock().expect("allowed").push(INI_B.into());
    let queries = server.count(is_initiator_query);
    let mut scn = TcpStream::connect((Ipv4Addr::LOCALHOST, scn_port)).expect("SCN port");
    scn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut payload = Vec::new();
    tlv(&mut payload, TAG_ISCSI_NAME, &str_value(IQN_A));
    tlv(&mut payload, TAG_ISCSI_NAME, &str_value(INI_B));
    tlv(&mut payload, 4, &[0, 0, 0, 0, 0x65, 0, 0, 1]); // Timestamp
    tlv(&mut payload, TAG_SCN_BITMAP, &0x08u32.to_be_bytes()); // object added
    scn.write_all(&server_pdu(SCN, 0x0777, &payload))
        .expect("send SCN");
    // SCNRsp: same transaction, status 0, the destination.
    let (rsp, xid) = read_pdu_with_status(&mut scn).expect("SCNRsp");
    assert_eq!((rsp.function, xid), (SCN | 0x8000, 0x0777));
    assert_eq!(rsp.attrs, [(TAG_ISCSI_NAME, str_value(IQN_A))]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.count(is_initiator_query) <= queries {
        assert!(
            Instant::now() < deadline,
            "no initiator query after the SCN"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(login_until(&d, INI_B, IQN_A, (0, 0)), (0, 0), "B allowed");
    assert_eq!(discovered(&d, INI_B), [IQN_A]);

    // SIGTERM: the entity is deregistered on the way out.
    d.signal(libc::SIGTERM);
    let gone = server.wait_for("DevDereg of the entity at exit", |p| {
        p.function == DEV_DEREG && p.operating().iter().any(|(t, _)| *t == TAG_ENTITY_ID)
    });
    assert_eq!(gone.source().as_deref(), Some(IQN_A));
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A response PDU: the 4-byte status (must be 0), then its TLVs.
fn read_pdu_with_status(s: &mut TcpStream) -> Option<(Pdu, u16)> {
    let mut h = [0u8; 12];
    s.read_exact(&mut h).ok()?;
    let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let mut payload = vec![0u8; word(4) as usize];
    s.read_exact(&mut payload).ok()?;
    assert_eq!(be32(&payload[..4]), Some(0), "status");
    let mut attrs = Vec::new();
    let mut p = &payload[4..];
    while p.len() >= 8 {
        let tag = be32(&p[..4])?;
        let len = be32(&p[4..8])? as usize;
        attrs.push((tag, p[8..8 + len].to_vec()));
        p = &p[8 + len..];
    }
    Some((
        Pdu {
            function: word(2),
            flags: word(6),
            attrs,
        },
        word(8),
    ))
}
