//! A whole session against target-core on a fake clock and an in-memory store: a
//! login that is either the normal one or arbitrary login requests (stages, transit
//! and continue bits, ISID/TSIH, keys and values picked from the ones RFC 7143 and
//! tgt know plus arbitrary ones), then arbitrary full-feature traffic, timers, storage
//! completions, session reinstatement by a second connection, logout and close.
//!
//! Invariants: nothing panics; every step settles; everything the target sends
//! decodes; the CmdSN window the target announces only moves forward; the session
//! table never holds more sessions than there are connections; and once every
//! connection is gone, nothing is left: no session in the table, no task, no storage
//! request (state returns; nothing grows without bound).
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use iscsi_proto::pdu::{DataOut, LoginRequest, Pdu, Stage, TaskMgmtRequest};
use iscsi_proto::{Itt, LunField, SerialNumber, Tsih, Ttt};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::{Duration, Instant};
use target_core::connection::ConnConfig;
use target_core::testkit::{cdb, fixture, IoMode, Sim};
use target_core::Core;

const KEYS: &[&str] = &[
    "InitiatorName",
    "TargetName",
    "SessionType",
    "AuthMethod",
    "HeaderDigest",
    "DataDigest",
    "MaxConnections",
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
    "OFMarker",
    "IFMarker",
    "TargetAlias",
    "InitiatorAlias",
    "TargetPortalGroupTag",
    "CHAP_A",
    "CHAP_I",
    "CHAP_C",
    "CHAP_N",
    "CHAP_R",
    "X-com.example.fuzz",
    "X#private",
];

const VALUES: &[&str] = &[
    "None",
    "CHAP",
    "CHAP,None",
    "CRC32C",
    "CRC32C,None",
    "None,CRC32C",
    "Yes",
    "No",
    "Normal",
    "Discovery",
    fixture::TARGET,
    fixture::INITIATOR,
    "0",
    "1",
    "2",
    "5",
    "512",
    "8192",
    "65536",
    "262144",
    "16777215",
    "16777216",
    "4294967296",
    "-1",
    "0x10",
    "",
    "NotUnderstood",
    "Reject",
    "Irrelevant",
];

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u64,
    chunk: u16,
    hold_io: bool,
    login: Login,
    actions: Vec<Action>,
}

#[derive(Debug, Arbitrary)]
enum Login {
    /// Security stage with AuthMethod=None, operational stage with the offer.
    Normal {
        header_digest: bool,
        data_digest: bool,
        immediate_data: bool,
        initial_r2t: bool,
        small_segments: bool,
    },
    /// Arbitrary login requests.
    Steps(Vec<LoginStep>),
}

#[derive(Debug, Arbitrary)]
struct LoginStep {
    csg: u8,
    nsg: u8,
    transit: bool,
    continue_bit: bool,
    version: Option<(u8, u8)>,
    tsih: Option<u16>,
    isid_tail: Option<u8>,
    cmd_sn_skew: i8,
    keys: Vec<(KeyPick, ValuePick)>,
}

#[derive(Debug, Arbitrary)]
enum KeyPick {
    Known(u8),
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum ValuePick {
    Known(u8),
    Number(u64),
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Action {
    Raw(Vec<u8>),
    /// Another login request on the same connection (in full feature phase: a
    /// protocol error).
    Login(LoginStep),
    Command {
        lun: u8,
        cdb: [u8; 16],
        edtl: u16,
        read: bool,
        write_len: Option<u16>,
    },
    ReadWrite {
        write: bool,
        lba: u8,
        blocks: u8,
    },
    DataOut {
        itt: u8,
        ttt: u32,
        offset: u16,
        len: u16,
        final_bit: bool,
    },
    Nop(Vec<u8>),
    Text(Vec<u8>),
    Tmf {
        function: u8,
        itt: u8,
        immediate: bool,
    },
    Logout(u8),
    SkewCmdSn(i8),
    Advance(u16),
    FireTimeout,
    CompleteIo(u8),
    /// A second connection with the same initiator name and ISID logs in: session
    /// reinstatement (RFC 7143 §6.3.5), the old connection must go.
    Reinstate,
    Close,
}

const STEP_BOUND: usize = 200_000;

fn stage(b: u8) -> Stage {
    match b % 4 {
        0 => Stage::Security,
        1 => Stage::Operational,
        2 => Stage::Reserved,
        _ => Stage::FullFeature,
    }
}

fn pairs(keys: &[(KeyPick, ValuePick)]) -> Vec<(String, String)> {
    keys.iter()
        .take(32)
        .map(|(k, v)| {
            let k = match k {
                KeyPick::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_string(),
                KeyPick::Other(s) => s.chars().take(80).collect(),
            };
            let v = match v {
                ValuePick::Known(i) => VALUES[usize::from(*i) % VALUES.len()].to_string(),
                ValuePick::Number(n) => n.to_string(),
                ValuePick::Other(s) => s.chars().take(300).collect(),
            };
            (k, v)
        })
        .collect()
}

fn login_request(sim: &mut Sim, step: &LoginStep) -> LoginRequest {
    let mut req = sim.ini.login_request(
        stage(step.csg),
        stage(step.nsg),
        step.transit,
        &pairs(&step.keys),
    );
    req.nsg = stage(step.nsg);
    req.continue_bit = step.continue_bit;
    if let Some((max, min)) = step.version {
        req.version_max = max;
        req.version_min = min;
    }
    if let Some(t) = step.tsih {
        req.tsih = Tsih(t);
    }
    if let Some(t) = step.isid_tail {
        req.isid.0[5] = t;
    }
    req.cmd_sn = SerialNumber(req.cmd_sn.get().wrapping_add(step.cmd_sn_skew as u32));
    req
}

fn itt(pick: u8) -> Itt {
    // The testkit initiator numbers tasks from 0x10.
    Itt(0x10 + u32::from(pick % 32))
}

/// Log in `sim` normally without panicking on a refusal (a reinstatement may be
/// refused while the old session is busy: that is an answer, not a bug).
fn try_login_normal(sim: &mut Sim) {
    let mut keys = sim.ini.identity_keys(fixture::TARGET);
    keys.push(("AuthMethod".into(), "None".into()));
    let req = sim
        .ini
        .login_request(Stage::Security, Stage::Operational, true, &keys);
    sim.ini.send(&Pdu::LoginRequest(req));
    assert!(sim.drive_bounded(STEP_BOUND), "login livelocked");
    if sim.conn.is_closed() {
        return;
    }
    let offer = sim.ini.offer.pairs(false);
    let req = sim
        .ini
        .login_request(Stage::Operational, Stage::FullFeature, true, &offer);
    sim.ini.send(&Pdu::LoginRequest(req));
    assert!(sim.drive_bounded(STEP_BOUND), "login livelocked");
}

fn new_sim(core: &Arc<Core>, seed: u64, base: Instant, chunk: u16) -> Sim {
    let config = ConnConfig {
        nop_interval: Some(Duration::from_secs(5)),
        nop_timeout: Duration::from_secs(5),
        cmd_window: 16,
        ..ConnConfig::default()
    };
    let mut sim = Sim::new(core.clone(), fixture::peer(), config, seed, base);
    sim.max_chunk = Some(usize::from(chunk).max(4));
    sim
}

/// The (ExpCmdSN, MaxCmdSN) a target PDU carries outside login.
fn cmd_window(p: &Pdu) -> Option<(SerialNumber, SerialNumber)> {
    Some(match p {
        Pdu::NopIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::ScsiResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::TaskMgmtResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::TextResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::DataIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::LogoutResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::R2t(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::AsyncMessage(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::Reject(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        _ => return None,
    })
}

/// The target's CmdSN window as its PDUs after login announce it: ExpCmdSN never
/// goes back, and MaxCmdSN is never below ExpCmdSN - 1 (RFC 7143 §4.2.2.1).
fn target_window_moves_forward(sim: &Sim) {
    let mut last: Option<SerialNumber> = None;
    for p in &sim.ini.received {
        let Some((exp, max)) = cmd_window(p) else {
            continue;
        };
        assert!(
            exp.le(max.next()),
            "MaxCmdSN {max:?} below ExpCmdSN {exp:?} - 1 in {p:?}"
        );
        if let Some(prev) = last {
            assert!(prev.le(exp), "ExpCmdSN went back from {prev:?} in {p:?}");
        }
        last = Some(exp);
    }
}

fuzz_target!(|input: Input| {
    let fx = fixture::single_target(64, fixture::Bind::All);
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    let mut sims = vec![new_sim(&fx.core, input.seed, base, input.chunk)];
    match &input.login {
        Login::Normal {
            header_digest,
            data_digest,
            immediate_data,
            initial_r2t,
            small_segments,
        } => {
            let o = &mut sims[0].ini.offer;
            o.header_digest = *header_digest;
            o.data_digest = *data_digest;
            o.immediate_data = *immediate_data;
            o.initial_r2t = *initial_r2t;
            if *small_segments {
                o.max_recv_data_segment_length = 512;
                o.first_burst_length = 1024;
                o.max_burst_length = 2048;
            }
            sims[0].login_normal(fixture::TARGET);
        }
        Login::Steps(steps) => {
            for step in steps.iter().take(8) {
                let sim = &mut sims[0];
                let req = login_request(sim, step);
                sim.ini.send(&Pdu::LoginRequest(req));
                assert!(sim.drive_bounded(STEP_BOUND), "login livelocked");
            }
        }
    }
    sims[0].io_mode = if input.hold_io {
        IoMode::Hold
    } else {
        IoMode::Random
    };
    for action in input.actions {
        let sim = sims.last_mut().expect("a connection");
        match action {
            Action::Raw(b) => sim.ini.send_raw(&b),
            Action::Login(step) => {
                let req = login_request(sim, &step);
                sim.ini.send(&Pdu::LoginRequest(req));
            }
            Action::Command {
                lun,
                cdb,
                edtl,
                read,
                write_len,
            } => {
                let data = write_len.map(|n| Bytes::from(vec![0xa5; usize::from(n)]));
                sim.ini
                    .command(u64::from(lun % 3), &cdb, u32::from(edtl), read, data);
            }
            Action::ReadWrite { write, lba, blocks } => {
                let lba = u32::from(lba % 70);
                let blocks = u16::from(blocks % 17);
                if write {
                    let data = Bytes::from(vec![0x5a; usize::from(blocks) * 512]);
                    sim.ini.write(1, &cdb::write10(lba, blocks), data);
                } else {
                    sim.ini
                        .read(1, &cdb::read10(lba, blocks), u32::from(blocks) * 512);
                }
            }
            Action::DataOut {
                itt: pick,
                ttt,
                offset,
                len,
                final_bit,
            } => {
                let d = DataOut {
                    final_bit,
                    lun: LunField::from_lun(1),
                    itt: itt(pick),
                    ttt: if ttt % 2 == 0 {
                        Ttt::RESERVED
                    } else {
                        Ttt(ttt)
                    },
                    exp_stat_sn: sim.ini.exp_stat_sn,
                    data_sn: 0,
                    buffer_offset: u32::from(offset),
                    data: Bytes::from(vec![1u8; usize::from(len % 4096)]),
                };
                sim.ini.send(&Pdu::DataOut(d));
            }
            Action::Nop(data) => {
                let n = sim.ini.nop_out(Bytes::from(data));
                sim.ini.send(&Pdu::NopOut(n));
            }
            Action::Text(data) => {
                let mut t = sim.ini.text_request(&[]);
                t.data = Bytes::from(data);
                sim.ini.send(&Pdu::TextRequest(t));
            }
            Action::Tmf {
                function,
                itt: pick,
                immediate,
            } => {
                let t = TaskMgmtRequest {
                    immediate,
                    // No TARGET COLD RESET: it drops every session of the target, which
                    // the end-of-run checks could not tell from a leak.
                    function: function % 7,
                    lun: LunField::from_lun(u64::from(pick % 3)),
                    itt: sim.ini.alloc_itt(),
                    referenced_task_tag: itt(pick),
                    cmd_sn: if immediate {
                        sim.ini.cmd_sn
                    } else {
                        sim.ini.next_cmd_sn()
                    },
                    exp_stat_sn: sim.ini.exp_stat_sn,
                    ref_cmd_sn: SerialNumber(u32::from(pick)),
                    exp_data_sn: 0,
                };
                sim.ini.send(&Pdu::TaskMgmtRequest(t));
            }
            Action::Logout(reason) => {
                let l = sim.ini.logout(reason % 4);
                sim.ini.send(&Pdu::LogoutRequest(l));
            }
            Action::SkewCmdSn(d) => {
                sim.ini.cmd_sn = SerialNumber(sim.ini.cmd_sn.get().wrapping_add(d as u32));
            }
            Action::Advance(t) => sim.advance(Duration::from_millis(u64::from(t) * 10)),
            Action::FireTimeout => {
                sim.fire_timeout();
            }
            Action::CompleteIo(i) => {
                if sim.pending_io() > 0 {
                    sim.complete_io(usize::from(i) % sim.pending_io());
                }
            }
            Action::Reinstate => {
                if sims.len() < 4 {
                    let seed = input.seed ^ sims.len() as u64;
                    let mut next = new_sim(&fx.core, seed, base, input.chunk);
                    next.ini.isid = sims[0].ini.isid;
                    try_login_normal(&mut next);
                    next.io_mode = IoMode::Random;
                    // The old connections learn of it when they next wake up.
                    for old in sims.iter_mut() {
                        let now = old.now();
                        old.conn.handle_input(&mut bytes::BytesMut::new(), now);
                        assert!(old.drive_bounded(STEP_BOUND), "old connection livelocked");
                    }
                    sims.push(next);
                }
            }
            Action::Close => sim.conn.handle_close(),
        }
        for s in sims.iter_mut() {
            assert!(s.drive_bounded(STEP_BOUND), "simulation livelocked");
        }
        let live = sims.iter().filter(|s| !s.conn.is_closed()).count();
        assert!(
            fx.core.sessions.len() <= live,
            "{} sessions in the table, {live} connections open",
            fx.core.sessions.len()
        );
    }
    // Everything goes: connections close, storage finishes, and nothing is left.
    for s in sims.iter_mut() {
        s.conn.handle_close();
        s.complete_all_io();
        assert!(s.drive_bounded(STEP_BOUND), "simulation livelocked");
        assert_eq!(s.conn.tasks_in_flight(), 0, "tasks left after close");
        assert_eq!(s.pending_io(), 0, "storage requests after close");
        target_window_moves_forward(s);
        assert!(
            s.ini.decode_errors.is_empty(),
            "target sent bytes the initiator cannot decode: {:?}",
            s.ini.decode_errors
        );
    }
    assert!(
        fx.core.sessions.is_empty(),
        "{} session(s) left after every connection closed",
        fx.core.sessions.len()
    );
});
