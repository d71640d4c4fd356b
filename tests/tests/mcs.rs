//! Multiple connections per session (MC/S) against each daemon, with raw PDUs: a
//! second connection joins by ISID+TSIH with its own CID (on another event-loop thread:
//! `--threads 2` hands connections out round-robin), the connections share one CmdSN
//! window and one LU nexus, `tgtadm --op show` lists every connection, Logout reason 1
//! closes another connection, a dropped connection leaves the session alive, and
//! MaxConnections is a per-target limit.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use integration_tests::client::{read10, write10, Client};
use integration_tests::{both_flavours, Daemon, Flavour};
use iscsi_proto::pdu::{DataOut, Pdu, TaskMgmtRequest};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-12.test:mcs";
const SIZE: u64 = 4 * 1024 * 1024;

fn daemon(f: Flavour) -> Daemon {
    let d = Daemon::start(f, &["--threads", "2"]);
    d.setup_file_target(1, IQN, SIZE);
    d
}

/// The leading connection (CID 0) of a session offering MaxConnections `max`.
fn lead(d: &Daemon, max: u16) -> Client {
    let mut a = Client::connect(d.portal).expect("connect");
    a.max_connections = Some(max);
    assert_eq!(a.login(Some(IQN)).expect("login"), (0, 0));
    a
}

/// Connection `cid` joining `a`'s session; the login status.
fn join(d: &Daemon, a: &Client, cid: u16) -> (Client, (u8, u8)) {
    let mut b = Client::connect(d.portal).expect("connect");
    b.isid = a.isid;
    b.tsih = a.tsih;
    b.cid = cid;
    b.max_connections = a.max_connections;
    b.set_cmd_sn(a.cmd_sn().get());
    b.set_itt_base(u32::from(cid) << 20);
    let st = b.login_only(Some(IQN)).expect("login");
    (b, st)
}

fn show(d: &Daemon) -> String {
    d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"])
}

/// The connections `show` lists, polled until they are `want` (a close is noticed
/// by the daemon asynchronously).
fn wait_connections(d: &Daemon, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = show(d);
        let got: Vec<&str> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Connection: "))
            .collect();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections {got:?}, want {want:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Read block `lba` with a hand-built command; (status, ExpCmdSN of the status PDU).
fn read_status(c: &mut Client) -> (u8, u32) {
    loop {
        match c.recv().expect("recv") {
            Some(Pdu::DataIn(d)) if d.status_present => return (d.status, d.exp_cmd_sn.get()),
            Some(Pdu::DataIn(_)) => {}
            Some(Pdu::ScsiResponse(r)) => return (r.status, r.exp_cmd_sn.get()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn two_connections_share_one_session(f: Flavour) {
    let d = daemon(f);
    let mut a = lead(&d, 4);
    let (mut b, st) = join(&d, &a, 2);
    assert_eq!(st, (0, 0), "second connection refused");
    assert_eq!(b.tsih, a.tsih);
    wait_connections(&d, &["0", "2"]);
    let out = show(&d);
    assert_eq!(out.matches("I_T nexus: ").count(), 1, "{out}");
    // One CmdSN window: CmdSN n+1 on A waits for n on B.
    let n = a.cmd_sn().get();
    a.set_cmd_sn(n + 1);
    let ca = a.command_pdu(1, &read10(0, 1), 512, false);
    a.send(&Pdu::ScsiCommand(ca)).expect("send");
    std::thread::sleep(Duration::from_millis(50));
    b.set_cmd_sn(n);
    let cb = b.command_pdu(1, &read10(1, 1), 512, false);
    b.send(&Pdu::ScsiCommand(cb)).expect("send");
    let (sa, exp_a) = read_status(&mut a);
    let (sb, _) = read_status(&mut b);
    assert_eq!((sa, sb), (0, 0));
    assert_eq!(
        exp_a,
        n + 2,
        "A's command ran only after B's filled the gap"
    );
    // One LU nexus: a write on B is read on A; no unit attention on the joined
    // connection (the nexus's power-on one was cleared through A).
    a.set_cmd_sn(n + 2);
    b.set_cmd_sn(n + 2);
    let w = b.scsi(1, &write10(7, 1), &[0x3c; 512], 0).expect("write");
    assert_eq!(w.status, 0, "{w:?}");
    a.set_cmd_sn(b.cmd_sn().get());
    let r = a.scsi(1, &read10(7, 1), &[], 512).expect("read");
    assert_eq!((r.status, r.data), (0, vec![0x3c; 512]));
    // Logout reason 1 on A for CID 2: B closes, A goes on.
    assert_eq!(a.logout_cid(1, 2).expect("logout"), Some(0));
    assert!(
        b.recv().map(|p| p.is_none()).unwrap_or(true),
        "B still open"
    );
    wait_connections(&d, &["0"]);
    let r = a.scsi(1, &read10(7, 1), &[], 512).expect("read");
    assert_eq!(r.status, 0);
    assert_eq!(a.logout_cid(0, 0).expect("logout"), Some(0));
    wait_connections(&d, &[]);
}

fn a_dropped_connection_leaves_the_session(f: Flavour) {
    let d = daemon(f);
    let mut a = lead(&d, 4);
    let (b, st) = join(&d, &a, 5);
    assert_eq!(st, (0, 0));
    let (c, st) = join(&d, &a, 6);
    assert_eq!(st, (0, 0));
    wait_connections(&d, &["0", "5", "6"]);
    // `--mode conn --op delete` closes one connection of several, not the session.
    let conns = d.tgtadm_ok(&["--mode", "conn", "--op", "show", "--tid", "1"]);
    assert_eq!(conns.matches("Connection: ").count(), 3, "{conns}");
    let tsih = a.tsih.0.to_string();
    d.tgtadm_ok(&[
        "--mode", "conn", "--op", "delete", "--tid", "1", "--sid", &tsih, "--cid", "6",
    ]);
    wait_connections(&d, &["0", "5"]);
    let mut c = c;
    assert!(matches!(c.recv(), Ok(None) | Err(_)), "CID 6 is closed");
    drop(b);
    wait_connections(&d, &["0"]);
    let r = a.scsi(1, &read10(0, 1), &[], 512).expect("read");
    assert_eq!(r.status, 0);
    // The last connections going ends the session.
    drop(c);
    drop(a);
    wait_connections(&d, &[]);
    assert!(!show(&d).contains("I_T nexus: "));
}

fn max_connections_is_a_per_target_limit(f: Flavour) {
    let d = daemon(f);
    d.tgtadm_ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "target",
        "--op",
        "update",
        "--tid",
        "1",
        "--name",
        "MaxConnections",
        "--value",
        "2",
    ]);
    let a = lead(&d, 8);
    let (_b, st) = join(&d, &a, 1);
    assert_eq!(st, (0, 0));
    let (_c, st) = join(&d, &a, 2);
    assert_eq!(st, (0x02, 0x06), "third connection over MaxConnections=2");
    // Without the setting, a session may have 8 (the daemon's default limit).
    let d2 = daemon(f);
    let a = lead(&d2, 16);
    let mut keep = Vec::new();
    for cid in 1..8 {
        let (x, st) = join(&d2, &a, cid);
        assert_eq!(st, (0, 0), "cid {cid}");
        keep.push(x);
    }
    let (_x, st) = join(&d2, &a, 8);
    assert_eq!(st, (0x02, 0x06));
}

/// A session over CID 0 (`a`) and CID 2 (`b`, on the other event loop) and a
/// one-block WRITE(10) at `lba` sent on `b`, waiting for its data after the R2T.
struct Waiting {
    a: Client,
    b: Client,
    /// The CmdSN the write took.
    n: u32,
    itt: Itt,
    /// The R2T's transfer tag.
    ttt: Ttt,
}

fn write_waiting_on_b(d: &Daemon, lba: u32) -> Waiting {
    let a = lead(d, 4);
    let (mut b, st) = join(d, &a, 2);
    assert_eq!(st, (0, 0));
    wait_connections(d, &["0", "2"]);
    let n = a.cmd_sn().get();
    b.set_cmd_sn(n);
    let cmd = b.command_pdu(1, &write10(lba, 1), 512, true);
    let itt = cmd.itt;
    b.send(&Pdu::ScsiCommand(cmd)).expect("send");
    let ttt = match b.recv().expect("recv") {
        Some(Pdu::R2t(r)) => r.ttt,
        other => panic!("expected an R2T, got {other:?}"),
    };
    Waiting { a, b, n, itt, ttt }
}

/// The R2T's data for a write that was aborted meanwhile (no response comes).
fn late_data(b: &mut Client, itt: Itt, ttt: Ttt, fill: u8) {
    b.send(&Pdu::DataOut(DataOut {
        final_bit: true,
        lun: LunField::from_lun(1),
        itt,
        ttt,
        exp_stat_sn: b.exp_stat_sn(),
        data_sn: 0,
        buffer_offset: 0,
        data: Bytes::from(vec![fill; 512]),
    }))
    .expect("send");
}

/// ABORT TASK on connection A for a write of connection B (waiting for its data,
/// on another loop thread): B's connection aborts it, A answers "Function
/// complete"; B's late Data-Out is dropped without a response and the tag is free
/// again. A tag no task has: "Task does not exist".
fn abort_task_reaches_a_task_of_another_connection(f: Flavour) {
    let d = daemon(f);
    let Waiting {
        mut a,
        mut b,
        n,
        itt,
        ttt,
    } = write_waiting_on_b(&d, 9);
    let tmf = |tag: Itt, tmf_itt: u32, a: &Client| TaskMgmtRequest {
        immediate: true,
        function: 1,
        lun: LunField::from_lun(1),
        itt: Itt(tmf_itt),
        referenced_task_tag: tag,
        cmd_sn: SerialNumber(n + 1),
        exp_stat_sn: a.exp_stat_sn(),
        ref_cmd_sn: SerialNumber(n),
        exp_data_sn: 0,
    };
    for (tag, tmf_itt, want) in [(itt, 0x7001, 0), (Itt(0x6666), 0x7002, 1)] {
        a.send(&Pdu::TaskMgmtRequest(tmf(tag, tmf_itt, &a)))
            .expect("send");
        match a.recv().expect("recv") {
            Some(Pdu::TaskMgmtResponse(r)) => {
                assert_eq!((r.itt, r.response), (Itt(tmf_itt), want), "{r:?}")
            }
            other => panic!("expected the TMF response, got {other:?}"),
        }
    }
    // The aborted write's data goes nowhere: no status for it.
    late_data(&mut b, itt, ttt, 0x11);
    // The same tag again on B (free once aborted) reads the block unchanged.
    b.set_cmd_sn(n + 1);
    b.set_itt_base(itt.0 - 1);
    let r = b.scsi(1, &read10(9, 1), &[], 512).expect("read");
    assert_eq!((r.status, r.data), (0, vec![0; 512]));
}

/// LOGICAL UNIT RESET on CID 0 aborts a write waiting for its data on CID 2 (the
/// other connection, on the other event loop, aborts it before the response goes
/// out); the late Data-Out gets no response; the LU serves again.
fn lu_reset_reaches_a_task_of_another_connection(f: Flavour) {
    let d = daemon(f);
    let Waiting {
        mut a,
        mut b,
        n,
        itt,
        ttt,
    } = write_waiting_on_b(&d, 11);
    a.send(&Pdu::TaskMgmtRequest(TaskMgmtRequest {
        immediate: true,
        function: 5,
        lun: LunField::from_lun(1),
        itt: Itt(0x7101),
        referenced_task_tag: Itt::RESERVED,
        cmd_sn: SerialNumber(n + 1),
        exp_stat_sn: a.exp_stat_sn(),
        ref_cmd_sn: SerialNumber(0),
        exp_data_sn: 0,
    }))
    .expect("send");
    match a.recv().expect("recv") {
        Some(Pdu::TaskMgmtResponse(r)) => {
            assert_eq!((r.itt, r.response), (Itt(0x7101), 0), "{r:?}")
        }
        other => panic!("expected the TMF response, got {other:?}"),
    }
    // The aborted write's data goes nowhere: no status for it.
    late_data(&mut b, itt, ttt, 0x22);
    // B's next command: the unit attention of the reset (the session's nexus),
    // then the block, unchanged (the next PDU B gets is that answer, not one
    // for the aborted write).
    b.set_cmd_sn(n + 1);
    let r = b.scsi(1, &read10(11, 1), &[], 512).expect("read");
    assert_eq!(r.status, 2, "unit attention after the LU reset");
    assert_eq!(r.sense.get(2).map(|k| k & 0xf), Some(6), "{:?}", r.sense);
    let r = b.scsi(1, &read10(11, 1), &[], 512).expect("read");
    assert_eq!((r.status, r.data), (0, vec![0; 512]));
    // And on A.
    a.set_cmd_sn(n + 3);
    let r = a.scsi(1, &read10(11, 1), &[], 512).expect("read");
    assert_eq!((r.status, r.data), (0, vec![0; 512]));
}

both_flavours!(
    lu_reset_reaches_a_task_of_another_connection,
    abort_task_reaches_a_task_of_another_connection,
    two_connections_share_one_session,
    a_dropped_connection_leaves_the_session,
    max_connections_is_a_per_target_limit
);
