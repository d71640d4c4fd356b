//! ErrorRecoveryLevel against both daemons: the level negotiated up to the target's
//! `MaxErrorRecoveryLevel` (tgtadm and targets.conf), and `iscsi-bench --verify`
//! through a proxy that corrupts PDUs both ways (header and data digests on):
//! at level 1 the run completes with no mismatch and no failed command.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use integration_tests::client::{read10, write10, Client};
use integration_tests::{bin, both_flavours, run_with_timeout, Daemon, Flavour, Run};
use iscsi_proto::pdu::{DataOut, Pdu, TaskMgmtRequest};
use iscsi_proto::{Isid, Itt, LunField, SerialNumber};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const IQN: &str = "iqn.2026-12.com.example:erl.target";
const SIZE: u64 = 8 * 1024 * 1024;

fn bench(portal: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("iscsi-bench"));
    cmd.arg(portal).arg(IQN).args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(180))
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn set_max(d: &Daemon, v: &str) {
    let r = d.target_update(1, "MaxErrorRecoveryLevel", v);
    assert_eq!(r.code, 0, "{r:?}");
}

/// A small xorshift generator: the proxy's corruption is seeded, so a run replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Forward `from` to `to` PDU by PDU, flipping one bit in `per_mille` of the PDUs
/// after login (never in the length bytes, so the stream stays framed, and never in
/// two PDUs in a row). Login PDUs carry no digests; every other PDU carries both.
fn pump(mut from: TcpStream, mut to: TcpStream, per_mille: u64, seed: u64, hits: Arc<AtomicU64>) {
    let mut rng = Rng(seed | 1);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut last_bad = false;
    loop {
        let n = match from.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        loop {
            if buf.len() < 48 {
                break;
            }
            let opcode = buf[0] & 0x3f;
            let login = opcode == 0x03 || opcode == 0x23;
            let ahs = usize::from(buf[4]) * 4;
            let dsl =
                (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
            let pad = (4 - dsl % 4) % 4;
            let digests = if login {
                0
            } else {
                4 + if dsl > 0 { 4 } else { 0 }
            };
            let total = 48 + ahs + dsl + pad + digests;
            if buf.len() < total {
                break;
            }
            let mut frame: Vec<u8> = buf.drain(..total).collect();
            let bad = !login && !last_bad && rng.next() % 1000 < per_mille;
            if bad {
                let mut at = (rng.next() as usize) % frame.len();
                if (4..8).contains(&at) {
                    at = 1;
                }
                frame[at] ^= 1 << (rng.next() % 8);
                hits.fetch_add(1, Ordering::Relaxed);
            }
            last_bad = bad;
            out.extend_from_slice(&frame);
        }
        if to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A proxy in front of `target`: its address, and the count of PDUs it corrupted.
fn corrupting_proxy(target: SocketAddr, per_mille: u64) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(client) = conn else { break };
            let Ok(server) = TcpStream::connect(target) else {
                break;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let seed = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1);
            let (h1, h2) = (h.clone(), h.clone());
            std::thread::spawn(move || pump(client, server, per_mille, seed, h1));
            std::thread::spawn(move || pump(s2, c2, per_mille, seed ^ 0xabcdef, h2));
        }
    });
    (addr, hits)
}

/// Asked 2, the daemon's maximum (1) is the answer; a target's
/// `MaxErrorRecoveryLevel 0` keeps its sessions at 0, shown by `--op show` and read
/// from targets.conf.
fn erl_is_negotiated_up_to_the_targets_maximum(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let portal = d.portal_str();
    let args = ["--erl", "2", "--ops", "20", "--json"];
    let r = bench(&portal, &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        json(&r)["error_recovery_level"],
        2,
        "the default maximum is 2"
    );
    set_max(&d, "1");
    let r = bench(&portal, &args);
    assert_eq!(json(&r)["error_recovery_level"], 1);
    set_max(&d, "0");
    let r = bench(&portal, &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(json(&r)["error_recovery_level"], 0);
    let show = d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "show", "--tid", "1",
    ]);
    assert!(show.contains("MaxErrorRecoveryLevel=0"), "{show}");
    // Out of range: refused as tgt refuses a bad value.
    let bad = d.target_update(1, "MaxErrorRecoveryLevel", "3");
    assert_ne!(bad.code, 0, "{bad:?}");
    // An initiator asking 0 gets 0 wherever the maximum is.
    set_max(&d, "2");
    let r = bench(&portal, &["--erl", "0", "--ops", "20", "--json"]);
    assert_eq!(json(&r)["error_recovery_level"], 0);
    let r = bench(&portal, &args);
    assert_eq!(json(&r)["error_recovery_level"], 2);
    // targets.conf sets it too.
    let img = d.dir.path("conf.img");
    std::fs::File::create(&img).unwrap().set_len(SIZE).unwrap();
    let conf = d.dir.path("erl.conf");
    let text = format!(
        "<target {IQN}>\n  backing-store {}\n  MaxErrorRecoveryLevel 0\n</target>\n",
        img.display()
    );
    std::fs::write(&conf, text).unwrap();
    let d2 = Daemon::start(f, &["-c", conf.to_str().unwrap()]);
    let show = d2.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "show", "--tid", "1",
    ]);
    assert!(show.contains("MaxErrorRecoveryLevel=0\n"), "{show}");
    let r = bench(&d2.portal_str(), &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(json(&r)["error_recovery_level"], 0);
}

/// Header and data digests, ERL 1, PDUs corrupted both ways: a mixed verify run
/// completes with no mismatch and no failed command.
fn verify_run_survives_corruption_at_erl_1(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let (proxy, hits) = corrupting_proxy(d.portal, 5);
    let r = bench(
        &proxy.to_string(),
        &[
            "--erl",
            "1",
            "--header-digest",
            "--data-digest",
            "--rw",
            "mix",
            "--read-pct",
            "50",
            "--verify",
            "--qd",
            "8",
            "--bs",
            "4k-64k",
            "--lba-range",
            "0:4096",
            "--max-recv-data-segment-length",
            "16k",
            "--ops",
            "2000",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    assert_eq!(v["error_recovery_level"], 1);
    assert_eq!(v["ops"], 2000);
    assert_eq!(v["verify_mismatches"], 0, "{v}");
    assert_eq!(v["errors_total"], 0, "{v}");
    assert_eq!(v["failed_commands_total"], 0, "{v}");
    assert!(v["verify_blocks_checked"].as_u64().unwrap() > 0, "{v}");
    let corrupted = hits.load(Ordering::Relaxed);
    assert!(corrupted > 5, "the proxy corrupted {corrupted} PDU(s)");
    let recovered = v["commands_retried"].as_u64().unwrap() + v["snacks_sent"].as_u64().unwrap();
    assert!(recovered > 0, "{v}");
    // The same corruption at level 0 breaks the run (the connection is lost).
    let (proxy, _) = corrupting_proxy(d.portal, 20);
    let r = bench(
        &proxy.to_string(),
        &[
            "--erl",
            "0",
            "--header-digest",
            "--data-digest",
            "--rw",
            "mix",
            "--ops",
            "2000",
        ],
    );
    assert_ne!(r.code, 0, "{r:?}");
}

/// Forward bytes as they come until either side ends.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A plain proxy in front of `target` that kills the newest live connection (both
/// sides shut down) `kills` times: first after `first`, then every `every`. Its
/// address and the count of connections killed.
fn killing_proxy(
    target: SocketAddr,
    first: Duration,
    every: Duration,
    kills: u64,
) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().unwrap();
    let killed = Arc::new(AtomicU64::new(0));
    let live: Arc<std::sync::Mutex<Vec<(TcpStream, TcpStream)>>> = Arc::default();
    let l2 = live.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { break };
            let Ok(server) = TcpStream::connect(target) else {
                break;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            l2.lock()
                .unwrap()
                .push((client.try_clone().unwrap(), server.try_clone().unwrap()));
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || copy(client, server));
            std::thread::spawn(move || copy(s2, c2));
        }
    });
    let k = killed.clone();
    std::thread::spawn(move || {
        std::thread::sleep(first);
        for _ in 0..kills {
            if let Some((c, s)) = live.lock().unwrap().pop() {
                let _ = c.shutdown(Shutdown::Both);
                let _ = s.shutdown(Shutdown::Both);
                k.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(every);
        }
    });
    (addr, killed)
}

fn bench_through_kills(d: &Daemon, erl: &str) -> (Run, u64) {
    let (proxy, killed) = killing_proxy(
        d.portal,
        Duration::from_millis(700),
        Duration::from_millis(1500),
        3,
    );
    let r = bench(
        &proxy.to_string(),
        &[
            "--erl",
            erl,
            "--rw",
            "mix",
            "--read-pct",
            "50",
            "--verify",
            "--qd",
            "8",
            "--bs",
            "4k-64k",
            "--lba-range",
            "0:4096",
            "--duration",
            "6",
            "--json",
        ],
    );
    (r, killed.load(Ordering::Relaxed))
}

/// A proxy kills the connection every 1.5 s: at level 2 `iscsi-bench --verify`
/// reconnects (same CID), takes its commands over with TASK REASSIGN and completes
/// with no mismatch and no failed command; at level 0 the same kills end the run.
fn verify_run_survives_connection_kills_at_erl_2(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let (r, killed) = bench_through_kills(&d, "2");
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    assert_eq!(v["error_recovery_level"], 2);
    assert_eq!(v["verify_mismatches"], 0, "{v}");
    assert_eq!(v["errors_total"], 0, "{v}");
    assert_eq!(v["failed_commands_total"], 0, "{v}");
    assert!(v["verify_blocks_checked"].as_u64().unwrap() > 0, "{v}");
    assert!(killed >= 2, "the proxy killed {killed} connection(s)");
    assert!(v["connections_recovered"].as_u64().unwrap() >= 2, "{v}");
    let (r, killed) = bench_through_kills(&d, "0");
    assert!(killed >= 1);
    assert_ne!(r.code, 0, "{r:?}");
}

fn show_sessions(d: &Daemon) -> usize {
    d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"])
        .matches("I_T nexus: ")
        .count()
}

/// A level-2 session whose DefaultTime2Retain is `retain` seconds.
fn erl2_client(d: &Daemon, retain: &str) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    c.extra_keys = vec![
        ("ErrorRecoveryLevel".into(), "2".into()),
        ("DefaultTime2Wait".into(), "0".into()),
        ("DefaultTime2Retain".into(), retain.into()),
    ];
    c
}

/// ErrorRecoveryLevel 2 against the daemon (raw PDUs): a write that got its R2T
/// and sent half its data loses its connection; the session outlives it (still in
/// `--op show`); the same CID logs in again, TASK REASSIGN takes the write over
/// ("Function complete"), a recovery R2T asks for just the other half, the write
/// ends GOOD and reads back. Then the
/// last connection drops and, with no one driving it, the daemon's Time2Retain
/// clock ends the session.
fn erl2_task_reassign_and_time2retain(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let mut a = erl2_client(&d, "2");
    assert_eq!(a.login(Some(IQN)).expect("login"), (0, 0));
    let cmd = a.command_pdu(1, &write10(3, 2), 1024, true);
    let itt = cmd.itt;
    a.send(&Pdu::ScsiCommand(cmd)).expect("send");
    let first = match a.recv().expect("recv") {
        Some(Pdu::R2t(r)) => r,
        other => panic!("expected an R2T, got {other:?}"),
    };
    assert_eq!(
        (
            first.itt,
            first.buffer_offset,
            first.desired_data_transfer_length
        ),
        (itt, 0, 1024)
    );
    let data = Bytes::from(vec![0x5a; 1024]);
    // The first half arrives; then the connection dies.
    a.send(&Pdu::DataOut(DataOut {
        final_bit: false,
        lun: LunField::from_lun(1),
        itt,
        ttt: first.ttt,
        exp_stat_sn: a.exp_stat_sn(),
        data_sn: 0,
        buffer_offset: 0,
        data: data.slice(..512),
    }))
    .expect("send");
    std::thread::sleep(Duration::from_millis(100));
    let _ = a.stream().shutdown(Shutdown::Both);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(show_sessions(&d), 1, "the session outlives its connection");
    // The same CID again: the session's TSIH, ISID and CmdSN.
    let mut b = erl2_client(&d, "2");
    b.isid = a.isid;
    b.tsih = a.tsih;
    b.cid = a.cid;
    b.set_cmd_sn(a.cmd_sn().get());
    b.set_itt_base(0x1000);
    assert_eq!(b.login_only(Some(IQN)).expect("login"), (0, 0));
    assert_eq!(b.tsih, a.tsih);
    let tmf = TaskMgmtRequest {
        immediate: true,
        function: 8,
        lun: LunField::from_lun(1),
        itt: Itt(0x999),
        referenced_task_tag: itt,
        cmd_sn: b.cmd_sn(),
        exp_stat_sn: b.exp_stat_sn(),
        ref_cmd_sn: SerialNumber(0),
        exp_data_sn: 0,
    };
    b.send(&Pdu::TaskMgmtRequest(tmf)).expect("send");
    let mut r2t = None;
    while r2t.is_none() {
        match b.recv().expect("recv") {
            Some(Pdu::TaskMgmtResponse(r)) => assert_eq!(r.response, 0, "{r:?}"),
            Some(Pdu::R2t(r)) => r2t = Some(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Only the half that did not arrive is asked for again.
    let r2t = r2t.unwrap();
    assert_eq!(
        (r2t.itt, r2t.buffer_offset, r2t.desired_data_transfer_length),
        (itt, 512, 512)
    );
    b.send(&Pdu::DataOut(DataOut {
        final_bit: true,
        lun: LunField::from_lun(1),
        itt,
        ttt: r2t.ttt,
        exp_stat_sn: b.exp_stat_sn(),
        data_sn: 0,
        buffer_offset: 512,
        data: data.slice(512..),
    }))
    .expect("send");
    match b.recv().expect("recv") {
        Some(Pdu::ScsiResponse(r)) => assert_eq!((r.itt, r.status), (itt, 0)),
        other => panic!("expected the write's status, got {other:?}"),
    }
    let r = b.scsi(1, &read10(3, 2), &[], 1024).expect("read");
    assert_eq!((r.status, r.data), (0, vec![0x5a; 1024]));
    // The last connection drops: Time2Retain (2 s) later the session is gone.
    let _ = b.stream().shutdown(Shutdown::Both);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(show_sessions(&d), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while show_sessions(&d) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "session never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // At level 0 a dropped connection ends its session at once (as before).
    let mut z = Client::connect(d.portal).expect("connect");
    z.isid = Isid([0x80, 1, 2, 3, 4, 5]);
    assert_eq!(z.login(Some(IQN)).expect("login"), (0, 0));
    assert_eq!(show_sessions(&d), 1);
    let _ = z.stream().shutdown(Shutdown::Both);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while show_sessions(&d) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "ERL 0 session lingered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

both_flavours!(
    erl_is_negotiated_up_to_the_targets_maximum,
    verify_run_survives_corruption_at_erl_1,
    erl2_task_reassign_and_time2retain,
    verify_run_survives_connection_kills_at_erl_2
);
