//! Arbitrary login request sequences against a `Connection` in login phase: any CSG/NSG,
//! T and C bits, any key=value text (operational keys, identity keys, `AuthMethod` and
//! every `CHAP_*` key, including answers computed from the target's real challenge so
//! one-way and mutual CHAP are reached), with no CHAP account, one-way, mutual, a too
//! short secret, or CHAP on discovery, and optionally an existing session to reinstate.
//!
//! Invariants: nothing panics; the simulation settles; every byte the target sends
//! decodes at the initiator, and every login response's text parses; a login response
//! with a non-zero status is the last PDU the target ever sends and the connection is
//! closed (RFC 7143 §11.13.5).
#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use iscsi_proto::login::chap::{chap_response, decode_binary, encode_binary, ChapAlgorithm};
use iscsi_proto::pdu::{LoginResponse, NopOut, Pdu, Stage};
use iscsi_proto::text::Pair;
use iscsi_proto::{Itt, LunField, Tsih};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use target_core::connection::ConnConfig;
use target_core::testkit::{fixture, Sim};

const USER: &str = "alice";
const SECRET: &str = "alice-secret-123";
const TARGET_USER: &str = "tgt";
const TARGET_SECRET: &str = "target-secret-456";
const SHORT_USER: &str = "bob";

/// Which CHAP accounts the target (or discovery) has bound.
#[derive(Debug, Arbitrary, Clone, Copy, PartialEq, Eq)]
enum Accounts {
    None,
    OneWay,
    Mutual,
    /// An incoming account whose secret is below the minimum length.
    ShortSecret,
    /// One-way CHAP for discovery sessions as well as for the target.
    Discovery,
}

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u64,
    accounts: Accounts,
    /// Log another connection of the same initiator and ISID in first, so the fuzzed
    /// login reinstates it (or names its TSIH).
    existing_session: bool,
    /// `lld --op stop`: logins are refused with "service unavailable".
    stopped: bool,
    max_sessions: Option<u8>,
    actions: Vec<Action>,
}

#[derive(Debug, Arbitrary)]
enum Action {
    Request(Request),
    /// Raw bytes on the wire (a torn or garbage PDU).
    Raw(Vec<u8>),
    /// Move the clock by this many seconds (login timeout is 30 s).
    Advance(u8),
    /// A NOP-Out with a small ping payload (only meaningful in full feature phase).
    Nop(u8),
}

#[derive(Debug, Arbitrary)]
struct Request {
    csg: u8,
    nsg: u8,
    transit: bool,
    continue_bit: bool,
    version_min: Option<u8>,
    /// Use the TSIH of the existing session, or an arbitrary one.
    tsih: Option<Tsih16>,
    cid: Option<u16>,
    isid_byte: Option<u8>,
    keys: Vec<Key>,
    chap: Option<ChapAnswer>,
    /// Bytes appended to the encoded text (no trailing NUL, bad UTF-8, ...).
    tail: Option<Vec<u8>>,
}

#[derive(Debug, Arbitrary)]
enum Tsih16 {
    Existing,
    Value(u16),
}

#[derive(Debug, Arbitrary)]
enum Key {
    /// A well-known key with a well-known value.
    Known(u8, u8),
    /// A well-known key with any value.
    KnownAny(u8, String),
    /// Anything at all.
    Any(String, String),
}

/// `CHAP_N`/`CHAP_R` computed from the last challenge the target sent.
#[derive(Debug, Arbitrary)]
struct ChapAnswer {
    user: u8,
    right_secret: bool,
    /// Also challenge the target (mutual CHAP): `None`, a fresh challenge, the
    /// target's own challenge reflected, or a too-short one.
    mutual: Option<u8>,
}

const KEYS: &[&str] = &[
    "InitiatorName",
    "TargetName",
    "SessionType",
    "InitiatorAlias",
    "AuthMethod",
    "CHAP_A",
    "CHAP_I",
    "CHAP_C",
    "CHAP_N",
    "CHAP_R",
    "HeaderDigest",
    "DataDigest",
    "MaxConnections",
    "SendTargets",
    "TargetAlias",
    "TargetAddress",
    "TargetPortalGroupTag",
    "InitialR2T",
    "ImmediateData",
    "MaxRecvDataSegmentLength",
    "MaxBurstLength",
    "FirstBurstLength",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "MaxOutstandingR2T",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "ErrorRecoveryLevel",
    "IFMarker",
    "OFMarker",
    "OFMarkInt",
    "IFMarkInt",
    "TaskReporting",
    "X-com.example.vendor",
    "X#private",
];

const VALUES: &[&str] = &[
    fixture::INITIATOR,
    fixture::TARGET,
    "iqn.2024-01.com.example:nobody",
    "Normal",
    "Discovery",
    "None",
    "CHAP",
    "CHAP,None",
    "None,CHAP",
    "KRB5,SRP",
    "5",
    "7",
    "5,6,7,8",
    "99,7",
    "CRC32C",
    "CRC32C,None",
    "None,CRC32C",
    "Yes",
    "No",
    "0",
    "1",
    "2",
    "512",
    "8192",
    "65536",
    "262144",
    "16777215",
    "16777216",
    "4294967296",
    "-1",
    "",
    "Reject",
    "Irrelevant",
    "NotUnderstood",
    "All",
    USER,
    TARGET_USER,
    SHORT_USER,
    "0x0123456789abcdef0123456789abcdef",
    "0x",
    "0bAAECAwQFBgcICQoLDA0ODw==",
    "0b",
    "1~65535",
];

fn pick<'a>(table: &[&'a str], i: u8) -> &'a str {
    table[usize::from(i) % table.len()]
}

fn stage(bits: u8) -> Stage {
    match bits % 4 {
        0 => Stage::Security,
        1 => Stage::Operational,
        2 => Stage::Reserved,
        _ => Stage::FullFeature,
    }
}

/// The last `CHAP_A`, `CHAP_I`, `CHAP_C` the target sent.
fn last_challenge(sim: &Sim) -> Option<(ChapAlgorithm, u8, Vec<u8>)> {
    let get = |k: &str| sim.ini.login_key(k);
    let alg = ChapAlgorithm::from_code(get("CHAP_A")?.parse().ok()?)?;
    let id = get("CHAP_I")?.parse().ok()?;
    let ch = decode_binary(get("CHAP_C")?)?;
    Some((alg, id, ch))
}

fn chap_pairs(sim: &Sim, a: &ChapAnswer) -> Vec<Pair> {
    let (alg, id, ch) =
        last_challenge(sim).unwrap_or((ChapAlgorithm::from_code(5).expect("MD5"), 0, vec![0; 16]));
    let (user, secret) = match a.user % 4 {
        0 => (USER, SECRET),
        1 => (TARGET_USER, TARGET_SECRET),
        2 => (SHORT_USER, "short"),
        _ => ("mallory", "mallory-secret-000"),
    };
    let secret = if a.right_secret {
        secret
    } else {
        "wrong-secret-xyz"
    };
    let r = chap_response(alg, id, secret.as_bytes(), &ch);
    let mut out = vec![
        ("CHAP_N".to_string(), user.to_string()),
        ("CHAP_R".to_string(), encode_binary(&r)),
    ];
    if let Some(m) = a.mutual {
        let challenge = match m % 3 {
            0 => vec![m; 16],
            1 => ch,
            _ => vec![m; 4],
        };
        out.push(("CHAP_I".into(), m.to_string()));
        out.push(("CHAP_C".into(), encode_binary(&challenge)));
    }
    out
}

fn status(r: &LoginResponse) -> u16 {
    u16::from(r.status_class) << 8 | u16::from(r.status_detail)
}

fn check(sim: &Sim) {
    assert!(
        sim.ini.decode_errors.is_empty(),
        "target sent bytes the initiator cannot decode: {:?}",
        sim.ini.decode_errors
    );
    assert!(
        !sim.ini
            .protocol_errors
            .iter()
            .any(|e| e.starts_with("bad login response text")),
        "{:?}",
        sim.ini.protocol_errors
    );
    let received = &sim.ini.received;
    if let Some(i) = received.iter().position(|p| match p {
        Pdu::LoginResponse(r) => status(r) != 0,
        _ => false,
    }) {
        assert_eq!(
            i + 1,
            received.len(),
            "PDUs after a failed login response: {:?}",
            &received[i..]
        );
        assert!(sim.conn.is_closed(), "connection open after a failed login");
    }
}

fuzz_target!(|input: Input| {
    let fx = fixture::single_target(16, fixture::Bind::All);
    let acc = &fx.core.registry.accounts;
    let _ = acc.add(USER, SECRET);
    let _ = acc.add(TARGET_USER, TARGET_SECRET);
    let _ = acc.add(SHORT_USER, "short");
    match input.accounts {
        Accounts::None => {}
        Accounts::OneWay => {
            let _ = fx.target.with_accounts(|b| b.bind(USER, false));
        }
        Accounts::Mutual => {
            let _ = fx.target.with_accounts(|b| b.bind(USER, false));
            let _ = fx.target.with_accounts(|b| b.bind(TARGET_USER, true));
        }
        Accounts::ShortSecret => {
            let _ = fx.target.with_accounts(|b| b.bind(SHORT_USER, false));
        }
        Accounts::Discovery => {
            let _ = fx.target.with_accounts(|b| b.bind(USER, false));
            let _ = acc.with_discovery(|b| b.bind(USER, false));
            let _ = acc.with_discovery(|b| b.bind(TARGET_USER, true));
        }
    }
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    // The session to reinstate logs in before any account is required of it.
    let mut existing = None;
    if input.existing_session && input.accounts == Accounts::None {
        let mut old = Sim::new(
            fx.core.clone(),
            fixture::peer(),
            ConnConfig::default(),
            input.seed ^ 1,
            base,
        );
        old.login_normal(fixture::TARGET);
        existing = Some(old);
    }
    if input.stopped {
        fx.core.registry.set_lld_stopped(true);
    }
    let config = ConnConfig {
        max_sessions: input.max_sessions.map(usize::from),
        ..ConnConfig::default()
    };
    let mut sim = Sim::new(fx.core.clone(), fixture::peer(), config, input.seed, base);
    let existing_tsih = existing.as_ref().map_or(Tsih(1), |s| s.ini.tsih);

    for action in input.actions.into_iter().take(64) {
        match action {
            Action::Request(r) => {
                let mut pairs: Vec<Pair> = Vec::new();
                for k in r.keys.iter().take(32) {
                    pairs.push(match k {
                        Key::Known(k, v) => (pick(KEYS, *k).into(), pick(VALUES, *v).into()),
                        Key::KnownAny(k, v) => (pick(KEYS, *k).into(), v.clone()),
                        Key::Any(k, v) => (k.clone(), v.clone()),
                    });
                }
                if let Some(a) = &r.chap {
                    pairs.extend(chap_pairs(&sim, a));
                }
                let mut req = sim
                    .ini
                    .login_request(stage(r.csg), stage(r.nsg), r.transit, &pairs);
                req.nsg = stage(r.nsg);
                req.continue_bit = r.continue_bit;
                if let Some(v) = r.version_min {
                    req.version_min = v;
                }
                match r.tsih {
                    Some(Tsih16::Existing) => req.tsih = existing_tsih,
                    Some(Tsih16::Value(v)) => req.tsih = Tsih(v),
                    None => {}
                }
                if let Some(c) = r.cid {
                    req.cid = c;
                }
                if let Some(b) = r.isid_byte {
                    req.isid.0[5] = b;
                }
                if let Some(tail) = &r.tail {
                    let mut d = BytesMut::from(&req.data[..]);
                    d.extend_from_slice(&tail[..tail.len().min(9000)]);
                    req.data = d.freeze();
                }
                sim.ini.send(&Pdu::LoginRequest(req));
            }
            Action::Raw(b) => sim.ini.send_raw(&b),
            Action::Advance(s) => sim.advance(Duration::from_secs(u64::from(s))),
            Action::Nop(n) => {
                let nop = NopOut {
                    immediate: true,
                    lun: LunField::from_lun(0),
                    itt: Itt(0x1000 + u32::from(n)),
                    ttt: iscsi_proto::Ttt::RESERVED,
                    cmd_sn: sim.ini.cmd_sn,
                    exp_stat_sn: sim.ini.exp_stat_sn,
                    data: Bytes::from(vec![n; usize::from(n)]),
                };
                sim.ini.send(&Pdu::NopOut(nop));
            }
        }
        assert!(sim.drive_bounded(10_000), "simulation livelocked");
        check(&sim);
        if sim.conn.is_closed() {
            break;
        }
    }
    // Whatever state the login stopped in, the login timer ends it.
    sim.advance(Duration::from_secs(31));
    assert!(sim.drive_bounded(10_000), "simulation livelocked");
    check(&sim);
    if !sim.ini.full_feature {
        assert!(sim.conn.is_closed(), "login outlived its timeout");
    }
    if let Some(mut old) = existing {
        assert!(old.drive_bounded(10_000), "old session livelocked");
    }
});
