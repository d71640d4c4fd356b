#![allow(clippy::disallowed_methods)] // a test owns clocks and threads
//! Hostile clients on raw sockets, both daemons: oversized and lying PDUs, Data-Out
//! the target did not ask for, floods of connections and logins, session limits,
//! slow senders, stalled readers, a full CmdSN window, and memory before and after.
//! Every case checks the RFC's answer and the one log line naming the peer, then
//! a well-behaved client logs in, writes and reads back.

use bytes::Bytes;
use integration_tests::client::{read10, write10, Client, INITIATOR};
use integration_tests::{both_flavours, Daemon, Flavour};
use iscsi_proto::pdu::{DataOut, Digests, Pdu, ScsiCommand, Stage, TaskAttr};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-12.org.example:hostile";
/// The LUN's size: room for a few 1 MiB reads and writes.
const LUN_BYTES: u64 = 64 << 20;

/// A daemon with tid 1 (LUN 1 on a 64 MiB file) and `extra` options.
fn daemon(f: Flavour, extra: &[&str]) -> Daemon {
    let d = Daemon::start(f, extra);
    d.setup_file_target(1, IQN, LUN_BYTES);
    d
}

/// A well-behaved initiator: logs in, writes 8 KiB at an LBA of its own, reads it
/// back, logs out. Proves the daemon still serves after a hostile case.
fn serves(d: &Daemon, lba: u32) {
    let mut c = Client::connect(d.portal).expect("connect");
    c.isid = fresh_isid();
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0), "login refused");
    let data: Vec<u8> = (0..8192u32).map(|i| (i as u8) ^ (lba as u8)).collect();
    let w = c.scsi(1, &write10(lba, 16), &data, 0).expect("write");
    assert_eq!(w.status, 0, "write: {w:?}");
    let r = c.scsi(1, &read10(lba, 16), &[], 8192).expect("read");
    assert_eq!(r.status, 0);
    assert!(r.data == data, "read back differs");
    assert!(c.logout().expect("logout"));
    let rss = rss_kib(d);
    assert!(
        rss < RSS_BOUND_KIB,
        "daemon RSS {rss} KiB after a hostile case"
    );
}

/// The daemon's resident set stays under this through every case (the issue's
/// bound for 1,000 idle sessions).
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// Lines of the daemon's log that report `limit` hit by `peer`.
fn hits(d: &Daemon, limit: &str, peer: SocketAddr) -> usize {
    let needle = format!("limit {limit} hit by {peer}:");
    d.log_lines().iter().filter(|l| l.contains(&needle)).count()
}

/// Wait up to 5 s for the line reporting `limit` hit by `peer`, then require that
/// there is exactly one.
fn one_hit(d: &Daemon, limit: &str, peer: SocketAddr) {
    let start = Instant::now();
    while hits(d, limit, peer) == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let n = hits(d, limit, peer);
    assert_eq!(
        n,
        1,
        "want one '{limit}' line for {peer}, got {n}:\n{}",
        d.log_lines().join("\n")
    );
}

/// The next PDU within `ms`, `Ok(None)` when the target closed; `Err` on a timeout.
fn recv_within(c: &mut Client, ms: u64) -> io::Result<Option<Pdu>> {
    c.stream()
        .set_read_timeout(Some(Duration::from_millis(ms)))?;
    c.recv()
}

/// Whether the target closes the connection within `ms` (PDUs before are skipped).
fn closed_within(c: &mut Client, ms: u64) -> bool {
    let end = Instant::now() + Duration::from_millis(ms);
    loop {
        let left = end.saturating_duration_since(Instant::now()).as_millis() as u64;
        if left == 0 {
            return false;
        }
        match recv_within(c, left.max(1)) {
            Ok(None) => return true,
            Ok(Some(_)) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return true,
            Err(_) => return false,
        }
    }
}

/// Log in as `initiator` with operational keys `ops`; the final login status.
fn login_as(c: &mut Client, initiator: &str, ops: &[(&str, &str)]) -> (u8, u8) {
    let keys = [
        ("InitiatorName", initiator),
        ("AuthMethod", "None"),
        ("SessionType", "Normal"),
        ("TargetName", IQN),
    ];
    let (cl, de, _, _) = c
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .expect("login step 1");
    if (cl, de) != (0, 0) {
        return (cl, de);
    }
    let (cl, de, _, _) = c
        .login_step(Stage::Operational, Stage::FullFeature, true, ops)
        .expect("login step 2");
    (cl, de)
}

/// A SCSI command PDU to LUN 1; a non-immediate one takes the next CmdSN.
#[allow(clippy::too_many_arguments)]
fn command(
    c: &mut Client,
    itt: u32,
    cdb: &[u8],
    edtl: u32,
    write: bool,
    final_bit: bool,
    immediate: bool,
    data: Bytes,
) -> Pdu {
    let mut cdb16 = cdb.to_vec();
    cdb16.resize(16, 0);
    let cmd_sn = if immediate {
        c.cmd_sn()
    } else {
        c.take_cmd_sn()
    };
    Pdu::ScsiCommand(ScsiCommand {
        immediate,
        final_bit,
        read: !write && edtl > 0,
        write,
        attr: TaskAttr::Simple,
        lun: LunField::from_lun(1),
        itt: Itt(itt),
        expected_data_transfer_length: edtl,
        cmd_sn,
        exp_stat_sn: c.exp_stat_sn(),
        cdb: Bytes::from(cdb16),
        data,
    })
}

/// READ(10) of LBA 0, one block, as task `itt` (`immediate`: with the I bit).
fn read_first_block(c: &mut Client, itt: u32, immediate: bool) -> Pdu {
    let cdb = read10(0, 1);
    command(c, itt, &cdb, 512, false, true, immediate, Bytes::new())
}

fn data_out(c: &Client, itt: u32, ttt: Ttt, offset: u32, data_sn: u32, len: usize) -> Pdu {
    Pdu::DataOut(DataOut {
        final_bit: true,
        lun: LunField::from_lun(1),
        itt: Itt(itt),
        ttt,
        exp_stat_sn: c.exp_stat_sn(),
        data_sn,
        buffer_offset: offset,
        data: Bytes::from(vec![0xa5; len]),
    })
}

/// An ISID no other client of this test process uses: each client is its own
/// session (the same ISID would reinstate, and so close, another client's).
fn fresh_isid() -> iscsi_proto::Isid {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let b = n.to_be_bytes();
    iscsi_proto::Isid([0x80, 0x3c, b[0], b[1], b[2], b[3]])
}

/// A logged-in client with the test's default keys and its own session.
fn logged_in(d: &Daemon) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    c.isid = fresh_isid();
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

/// (sense key, ASC, ASCQ) of a SCSI Response's fixed-format sense.
fn sense_of(p: &Pdu) -> Option<(u8, u8, u8)> {
    let Pdu::ScsiResponse(r) = p else {
        return None;
    };
    let s = r.data.get(2..)?;
    (s.len() >= 14).then(|| (s[2] & 0x0f, s[12], s[13]))
}

/// The daemon's resident set, KiB, without its read-only shared file mappings.
/// Reads lent from the page cache (`backends/src/mapped.rs`) map the backing file,
/// and VmRSS counts the cached pages those reads touched; they are the kernel's page
/// cache (shared with every reader of the file, dropped under memory pressure like
/// any cached page), not memory the daemon allocated or could leak.
fn rss_kib(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).expect("status");
    let rss: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    rss.saturating_sub(d.lent_rss_kib(None))
}

/// Descriptors `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// Open files this test process may have: as many as the hard limit allows.
fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

// ----- 1. buffers -----

/// A header claiming a 16 MiB data segment, before and after login: the connection
/// is dropped at once (nothing of that size is read or allocated) with one line.
fn huge_segment_claims(f: Flavour) {
    let d = daemon(f, &[]);
    let rss_before = rss_kib(&d);
    // After login: a SCSI command whose header says 16 MiB follow.
    let mut c = logged_in(&d);
    let peer = c.local_addr();
    let pdu = command(
        &mut c,
        100,
        &write10(0, 8),
        4096,
        true,
        true,
        false,
        Bytes::new(),
    );
    let mut raw = pdu.encode(Digests::default()).to_vec();
    raw[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    c.send_raw(&raw).unwrap();
    c.send_raw(&[0u8; 4096]).unwrap();
    assert!(closed_within(&mut c, 3000), "not dropped");
    one_hit(&d, "MaxRecvDataSegmentLength", peer);
    // During login (we accept 8 KiB there).
    let mut c = Client::connect(d.portal).unwrap();
    let peer = c.local_addr();
    let mut hdr = [0u8; 48];
    hdr[0] = 0x43;
    hdr[5..8].copy_from_slice(&[0x01, 0x00, 0x00]);
    c.send_raw(&hdr).unwrap();
    assert!(closed_within(&mut c, 3000), "not dropped during login");
    one_hit(&d, "MaxRecvDataSegmentLength", peer);
    // Many such claims at once cost nothing.
    for _ in 0..50 {
        let mut s = TcpStream::connect(d.portal).unwrap();
        hdr[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        let _ = s.write_all(&hdr);
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kib(&d);
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    serves(&d, 0);
}

/// Data-Out beyond what the R2T asked (tgt dies on this): Reject, the task ends
/// with ABORTED COMMAND 0C/0D, the session goes on.
fn data_out_beyond_r2t(f: Flavour) {
    let d = daemon(f, &[]);
    let mut c = logged_in(&d);
    let pdu = command(
        &mut c,
        200,
        &write10(8, 8),
        4096,
        true,
        true,
        false,
        Bytes::new(),
    );
    c.send(&pdu).unwrap();
    let Some(Pdu::R2t(r)) = c.recv().unwrap() else {
        panic!("no R2T")
    };
    assert_eq!(r.desired_data_transfer_length, 4096);
    c.send(&data_out(&c, 200, r.ttt, 0, 0, 8192)).unwrap();
    let mut rejected = false;
    loop {
        match c.recv().unwrap().expect("closed") {
            Pdu::Reject(j) => {
                assert_eq!(j.reason, 0x04, "protocol error");
                rejected = true;
            }
            p @ Pdu::ScsiResponse(_) => {
                assert_eq!(sense_of(&p), Some((0x0b, 0x0c, 0x0d)), "{p:?}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rejected);
    // The same session still works.
    let w = c.scsi(1, &write10(8, 8), &[7u8; 4096], 0).unwrap();
    assert_eq!(w.status, 0);
    serves(&d, 16);
}

/// Unsolicited Data-Out past FirstBurstLength: Reject, ABORTED COMMAND 0C/0C.
fn unsolicited_beyond_first_burst(f: Flavour) {
    let d = daemon(f, &[]);
    let mut c = Client::connect(d.portal).unwrap();
    let ops = [
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("FirstBurstLength", "4096"),
        ("MaxBurstLength", "262144"),
        ("MaxRecvDataSegmentLength", "65536"),
    ];
    assert_eq!(login_as(&mut c, INITIATOR, &ops), (0, 0));
    c.clear_unit_attentions().unwrap();
    let pdu = command(
        &mut c,
        300,
        &write10(0, 32),
        16384,
        true,
        false,
        false,
        Bytes::new(),
    );
    c.send(&pdu).unwrap();
    c.send(&data_out(&c, 300, Ttt::RESERVED, 0, 0, 8192))
        .unwrap();
    let mut rejected = false;
    loop {
        match c.recv().unwrap().expect("closed") {
            Pdu::Reject(j) => {
                assert_eq!(j.reason, 0x04);
                rejected = true;
            }
            Pdu::R2t(_) => {}
            p @ Pdu::ScsiResponse(_) => {
                assert_eq!(sense_of(&p), Some((0x0b, 0x0c, 0x0c)), "{p:?}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rejected);
    serves(&d, 24);
}

/// No more R2Ts at a time than MaxOutstandingR2T (1 here); Data-Out with a TTT we
/// never gave is rejected (invalid PDU field); Data-Out for an unknown task is
/// dropped and the session goes on.
fn r2t_bookkeeping(f: Flavour) {
    let d = daemon(f, &[]);
    let mut c = logged_in(&d);
    let burst = c.max_burst();
    let edtl = burst * 2;
    let pdu = command(
        &mut c,
        400,
        &write10(0, (edtl / 512) as u16),
        edtl,
        true,
        true,
        false,
        Bytes::new(),
    );
    c.send(&pdu).unwrap();
    let Some(Pdu::R2t(first)) = c.recv().unwrap() else {
        panic!("no R2T")
    };
    assert_eq!(first.desired_data_transfer_length, burst);
    // One outstanding R2T: nothing else comes until its data is in.
    assert!(recv_within(&mut c, 300).is_err(), "a second R2T came early");
    // A TTT we never gave out.
    c.send(&data_out(&c, 400, Ttt(0x7777_0000), 0, 0, 512))
        .unwrap();
    match recv_within(&mut c, 3000).unwrap() {
        Some(Pdu::Reject(j)) => assert_eq!(j.reason, 0x09, "invalid PDU field"),
        other => panic!("want a Reject, got {other:?}"),
    }
    // Data for a task that does not exist: dropped, no answer.
    c.send(&data_out(&c, 0x5555, Ttt(9), 0, 0, 4096)).unwrap();
    assert!(recv_within(&mut c, 300).is_err(), "unknown ITT answered");
    // The real data, burst by burst.
    let mut r = first;
    loop {
        let mut off = 0;
        let mut sn = 0;
        while off < r.desired_data_transfer_length {
            let n = (r.desired_data_transfer_length - off).min(65536);
            let mut p = data_out(&c, 400, r.ttt, r.buffer_offset + off, sn, n as usize);
            if let Pdu::DataOut(d) = &mut p {
                d.final_bit = off + n == r.desired_data_transfer_length;
            }
            c.send(&p).unwrap();
            off += n;
            sn += 1;
        }
        match recv_within(&mut c, 5000).unwrap().expect("closed") {
            Pdu::R2t(next) => r = next,
            Pdu::ScsiResponse(s) => {
                assert_eq!(s.status, 0);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    serves(&d, 32);
}

/// Write data the connection buffers is capped: with 1 MiB of buffer, four 1 MiB
/// WRITEs get their R2Ts one command at a time, and all complete.
fn buffer_cap_paces_r2ts(f: Flavour) {
    let d = daemon(f, &["--max-connection-buffer", "1M"]);
    let mut c = logged_in(&d);
    let len = 1u32 << 20;
    for i in 0..4u32 {
        let p = command(
            &mut c,
            500 + i,
            &write10(i * 2048, 2048),
            len,
            true,
            true,
            false,
            Bytes::new(),
        );
        c.send(&p).unwrap();
    }
    let mut done = 0;
    let mut active: Option<u32> = None;
    while done < 4 {
        match recv_within(&mut c, 5000).unwrap().expect("closed") {
            Pdu::R2t(r) => {
                // Only one command at a time is asked for its data.
                assert!(
                    active.is_none_or(|a| a == r.itt.0),
                    "R2T for {} while {active:?} holds the buffer",
                    r.itt.0
                );
                active = Some(r.itt.0);
                let mut off = 0;
                let mut sn = 0;
                while off < r.desired_data_transfer_length {
                    let n = (r.desired_data_transfer_length - off).min(65536);
                    let mut p = data_out(&c, r.itt.0, r.ttt, r.buffer_offset + off, sn, n as usize);
                    if let Pdu::DataOut(d) = &mut p {
                        d.final_bit = off + n == r.desired_data_transfer_length;
                    }
                    c.send(&p).unwrap();
                    off += n;
                    sn += 1;
                }
            }
            Pdu::ScsiResponse(s) => {
                assert_eq!(s.status, 0);
                assert_eq!(Some(s.itt.0), active);
                active = None;
                done += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    serves(&d, 40);
}

/// A 48-byte header: opcode (with the immediate bit), flags, ITT, CmdSN, ExpStatSN.
fn raw_header(c: &Client, opcode: u8, flags: u8, itt: u32) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[0] = opcode;
    h[1] = flags;
    h[16..20].copy_from_slice(&itt.to_be_bytes());
    h[24..28].copy_from_slice(&c.cmd_sn().get().to_be_bytes());
    h[28..32].copy_from_slice(&c.exp_stat_sn().get().to_be_bytes());
    h
}

/// What a case must get back.
enum Answer {
    /// A Reject with this reason (and the session goes on).
    Reject(u8),
    /// A Reject with this reason, then the connection closes.
    RejectClose(u8),
    /// The connection closes.
    Close,
    /// A SCSI Response with this status.
    Status(u8),
    /// A NOP-In echoing this many bytes.
    Echo(usize),
}

/// Malformed and misplaced PDUs in full feature phase, each on its own session:
/// the RFC's answer, then a well-behaved client is served.
fn malformed_pdus(f: Flavour) {
    let d = daemon(f, &[]);
    type Case = (&'static str, fn(&mut Client) -> Vec<u8>, Answer);
    let cases: Vec<Case> = vec![
        (
            "unknown opcode",
            |c| raw_header(c, 0x40 | 0x1f, 0x80, 7).to_vec(),
            Answer::Reject(0x05),
        ),
        (
            "SNACK at ErrorRecoveryLevel 0",
            |c| raw_header(c, 0x10, 0x80, 8).to_vec(),
            Answer::Reject(0x04),
        ),
        (
            "a target opcode (SCSI Response)",
            |c| raw_header(c, 0x21, 0x80, 9).to_vec(),
            Answer::Reject(0x04),
        ),
        (
            "a login request in full feature phase",
            |c| {
                let mut h = raw_header(c, 0x43, 0x87, 10);
                h[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, 1]);
                h.to_vec()
            },
            Answer::RejectClose(0x04),
        ),
        (
            "an AHS longer than its PDU says",
            |c| {
                let pdu = command(c, 11, &read10(0, 1), 512, false, true, false, Bytes::new());
                let mut raw = pdu.encode(Digests::default()).to_vec();
                raw[4] = 1; // TotalAHSLength: one word
                raw.extend_from_slice(&[0xff, 0xff, 0x01, 0x00]); // AHSLength 65535
                raw
            },
            Answer::Close,
        ),
        (
            "a task tag already in use",
            |c| {
                let a = command(c, 12, &write10(0, 8), 4096, true, true, false, Bytes::new());
                let b = command(c, 12, &read10(0, 1), 512, false, true, false, Bytes::new());
                let mut raw = a.encode(Digests::default()).to_vec();
                raw.extend_from_slice(&b.encode(Digests::default()).to_vec());
                raw
            },
            Answer::Reject(0x07),
        ),
        (
            "READ(16) of 2^32 blocks (tgt exits)",
            |c| {
                let mut cdb = vec![0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                cdb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                cdb[10..14].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
                command(c, 13, &cdb, 1 << 24, false, true, false, Bytes::new())
                    .encode(Digests::default())
                    .to_vec()
            },
            Answer::Status(0x02),
        ),
        (
            "a NOP-Out carrying 8 KiB",
            |c| {
                let nop = Pdu::NopOut(iscsi_proto::pdu::NopOut {
                    immediate: true,
                    lun: LunField::default(),
                    itt: Itt(14),
                    ttt: Ttt::RESERVED,
                    cmd_sn: c.cmd_sn(),
                    exp_stat_sn: c.exp_stat_sn(),
                    data: Bytes::from(vec![0x5a; 8192]),
                });
                nop.encode(Digests::default()).to_vec()
            },
            Answer::Echo(8192),
        ),
        (
            "WRITE with immediate data longer than EDTL",
            |c| {
                command(
                    c,
                    15,
                    &write10(0, 1),
                    512,
                    true,
                    true,
                    false,
                    Bytes::from(vec![1u8; 4096]),
                )
                .encode(Digests::default())
                .to_vec()
            },
            Answer::Status(0x02),
        ),
    ];
    for (i, (name, bytes, want)) in cases.into_iter().enumerate() {
        let mut c = logged_in(&d);
        let raw = bytes(&mut c);
        c.send_raw(&raw).unwrap();
        let mut got = Vec::new();
        let closed = loop {
            match recv_within(&mut c, 2000) {
                Ok(Some(Pdu::R2t(_))) => {}
                Ok(Some(p)) => {
                    got.push(p);
                    if !matches!(want, Answer::RejectClose(_) | Answer::Close) {
                        break false;
                    }
                }
                Ok(None) => break true,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break true,
                Err(e) => panic!("{name}: no answer ({e}); got {got:?}"),
            }
        };
        match want {
            Answer::Reject(r) | Answer::RejectClose(r) => {
                assert!(
                    matches!(got.first(), Some(Pdu::Reject(j)) if j.reason == r),
                    "{name}: {got:?}"
                );
                assert_eq!(closed, matches!(want, Answer::RejectClose(_)), "{name}");
            }
            Answer::Close => assert!(closed && got.is_empty(), "{name}: {got:?}"),
            Answer::Status(s) => assert!(
                matches!(got.first(), Some(Pdu::ScsiResponse(r)) if r.status == s)
                    || matches!(got.first(), Some(Pdu::DataIn(r)) if r.status_present && r.status == s),
                "{name}: {got:?}"
            ),
            Answer::Echo(n) => assert!(
                matches!(got.first(), Some(Pdu::NopIn(r)) if r.data.len() == n),
                "{name}: {got:?}"
            ),
        }
        serves(&d, 400 + i as u32 * 16);
    }
}

/// Bad first PDUs and bad login requests on fresh connections: the login status
/// RFC 7143 §11.13.5 gives, then the connection closes.
fn malformed_logins(f: Flavour) {
    let d = daemon(f, &[]);
    let keys = |target: &'static str| -> Vec<(String, String)> {
        vec![
            ("InitiatorName".into(), INITIATOR.into()),
            ("SessionType".into(), "Normal".into()),
            ("TargetName".into(), target.into()),
        ]
    };
    let login = |c: &Client, flags: u8, vmin: u8, text: Vec<u8>| -> Vec<u8> {
        let mut h = [0u8; 48];
        h[0] = 0x43;
        h[1] = flags;
        h[3] = vmin;
        let n = text.len();
        h[5..8].copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
        h[8..14].copy_from_slice(&c.isid.0);
        let mut raw = h.to_vec();
        raw.extend_from_slice(&text);
        raw.resize(48 + n.div_ceil(4) * 4, 0);
        raw
    };
    let enc = |pairs: Vec<(String, String)>| iscsi_proto::text::encode(&pairs).to_vec();
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = {
        let c = Client::connect(d.portal).unwrap();
        let mut dup = keys(IQN);
        dup.push(("InitiatorName".into(), "iqn.x:y".into()));
        let v = vec![
            (
                "a SCSI command before login",
                {
                    let mut h = [0u8; 48];
                    h[0] = 0x01;
                    h[1] = 0x80;
                    h.to_vec()
                },
                (2, 0x0b),
            ),
            (
                "version 1 only",
                login(&c, 0x81, 1, enc(keys(IQN))),
                (2, 0x05),
            ),
            (
                "T and C together",
                login(&c, 0xc1, 0, enc(keys(IQN))),
                (2, 0x00),
            ),
            (
                "text that is not key=value",
                login(&c, 0x81, 0, b"\xff\xfe garbage\0".to_vec()),
                (2, 0x00),
            ),
            ("a key given twice", login(&c, 0x81, 0, enc(dup)), (2, 0x00)),
            (
                "an unknown target",
                login(&c, 0x81, 0, enc(keys("iqn.2026-12.org.example:none"))),
                (2, 0x03),
            ),
            (
                "no InitiatorName",
                login(&c, 0x81, 0, enc(vec![("TargetName".into(), IQN.into())])),
                (2, 0x07),
            ),
            (
                "CSG full feature phase",
                login(&c, 0x8f, 0, enc(keys(IQN))),
                (2, 0x00),
            ),
        ];
        drop(c);
        v
    };
    for (i, (name, raw, want)) in cases.into_iter().enumerate() {
        let mut c = Client::connect(d.portal).unwrap();
        c.send_raw(&raw).unwrap();
        match recv_within(&mut c, 3000) {
            Ok(Some(Pdu::LoginResponse(r))) => {
                assert_eq!((r.status_class, r.status_detail), want, "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(closed_within(&mut c, 2000), "{name}: not closed");
        serves(&d, 600 + i as u32 * 16);
    }
}

// ----- 2. connection and session limits -----

/// `--max-connections 2`: the third connection's login is answered 0x0302, one line.
fn max_connections(f: Flavour) {
    let d = daemon(f, &["--max-connections", "2"]);
    let a = logged_in(&d);
    let b = logged_in(&d);
    let mut c = Client::connect(d.portal).unwrap();
    let peer = c.local_addr();
    assert_eq!(c.login_only(Some(IQN)).unwrap(), (3, 2), "out of resources");
    assert!(closed_within(&mut c, 2000));
    one_hit(&d, "max-connections", peer);
    drop((a, b));
    std::thread::sleep(Duration::from_millis(200));
    serves(&d, 48);
}

/// Logins in progress per source address: three silent connections from
/// 127.0.0.1 fill `--max-pending-logins-per-host 3`; the fourth is refused, another
/// address is not.
fn pending_logins_per_host(f: Flavour) {
    let d = daemon(f, &["--max-pending-logins-per-host", "3"]);
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(d.portal).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Client::connect(d.portal).unwrap();
    let peer = c.local_addr();
    assert_eq!(c.login_only(Some(IQN)).unwrap(), (3, 2));
    one_hit(&d, "max-pending-logins-per-host", peer);
    // Another address (all of 127/8 is loopback) logs in meanwhile.
    let mut o = connect_from("127.0.0.9", d.portal.port());
    o.isid = fresh_isid();
    assert_eq!(o.login(Some(IQN)).unwrap(), (0, 0));
    drop(silent);
    std::thread::sleep(Duration::from_millis(200));
    serves(&d, 56);
}

/// A client connected from `src` (a loopback address) to the daemon's port.
fn connect_from(src: &str, port: u16) -> Client {
    // SAFETY: plain socket calls on a descriptor we own, then handed to TcpStream.
    // CLOEXEC: a daemon another test starts meanwhile must not inherit it.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    let addr = |ip: &str, port: u16| {
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        }
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let local = addr(src, 0);
    let remote = addr("127.0.0.1", port);
    // SAFETY: valid sockaddr_in values and their size.
    unsafe {
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0
        );
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0
        );
    }
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` is a connected socket nobody else owns.
    let s = unsafe { TcpStream::from_raw_fd(fd) };
    Client::from_stream(s).unwrap()
}

/// `MaxSessions` and `MaxSessionsPerInitiator` set with tgtadm: logins over them
/// get 0x0302 with one line; a reinstatement (same ISID) is not an extra session.
fn session_limits(f: Flavour) {
    let d = daemon(f, &[]);
    let update = |name: &str, value: &str| {
        d.tgtadm_ok(&[
            "--lld", "iscsi", "--mode", "target", "--op", "update", "--tid", "1", "--name", name,
            "--value", value,
        ]);
    };
    update("MaxSessions", "2");
    update("MaxSessionsPerInitiator", "1");
    let show = d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "show", "--tid", "1",
    ]);
    assert!(show.contains("MaxSessions=2\n"), "{show}");
    assert!(show.contains("MaxSessionsPerInitiator=1\n"), "{show}");
    let ops = [("MaxRecvDataSegmentLength", "65536")];
    let mut a = Client::connect(d.portal).unwrap();
    assert_eq!(login_as(&mut a, "iqn.2026-12.org.example:a", &ops), (0, 0));
    // The same initiator again with another ISID: over its one session.
    let mut a2 = Client::connect(d.portal).unwrap();
    a2.isid = iscsi_proto::Isid([0x80, 0, 0, 0, 0, 2]);
    let peer = a2.local_addr();
    assert_eq!(login_as(&mut a2, "iqn.2026-12.org.example:a", &ops), (3, 2));
    one_hit(&d, "MaxSessionsPerInitiator", peer);
    // Reinstating its session (same ISID) is allowed.
    let mut a3 = Client::connect(d.portal).unwrap();
    assert_eq!(login_as(&mut a3, "iqn.2026-12.org.example:a", &ops), (0, 0));
    let mut b = Client::connect(d.portal).unwrap();
    assert_eq!(login_as(&mut b, "iqn.2026-12.org.example:b", &ops), (0, 0));
    // A third initiator: the target is full.
    let mut c = Client::connect(d.portal).unwrap();
    let peer = c.local_addr();
    assert_eq!(login_as(&mut c, "iqn.2026-12.org.example:c", &ops), (3, 2));
    one_hit(&d, "MaxSessions", peer);
    drop((a, a3, b));
    std::thread::sleep(Duration::from_millis(300));
    update("MaxSessions", "0");
    serves(&d, 64);
    // targets.conf sets them too.
    let conf = d.dir.path("limits.conf");
    std::fs::write(
        &conf,
        format!("<target {IQN}>\n  MaxSessions 3\n  MaxSessionsPerInitiator 2\n</target>\n"),
    )
    .unwrap();
    let d2 = Daemon::start(f, &["-c", conf.to_str().unwrap()]);
    let show = d2.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "show", "--tid", "1",
    ]);
    assert!(show.contains("MaxSessions=3\n"), "{show}");
    assert!(show.contains("MaxSessionsPerInitiator=2\n"), "{show}");
}

// ----- 3. time -----

/// `--login-timeout 1s`: a silent connection and a half-done login are dropped,
/// one line each.
fn login_timeout(f: Flavour) {
    let d = daemon(f, &["--login-timeout", "1s"]);
    let mut silent = Client::connect(d.portal).unwrap();
    let p1 = silent.local_addr();
    let mut half = Client::connect(d.portal).unwrap();
    let p2 = half.local_addr();
    let keys = [
        ("InitiatorName", INITIATOR),
        ("AuthMethod", "None"),
        ("SessionType", "Normal"),
        ("TargetName", IQN),
    ];
    let (cl, _, _, _) = half
        .login_step(Stage::Security, Stage::Operational, true, &keys)
        .unwrap();
    assert_eq!(cl, 0);
    let t = Instant::now();
    assert!(closed_within(&mut silent, 4000));
    assert!(closed_within(&mut half, 4000));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    one_hit(&d, "login-timeout", p1);
    one_hit(&d, "login-timeout", p2);
    serves(&d, 72);
}

/// `--pdu-timeout 1s`: a header announcing 8 KiB of which 100 bytes come is dropped
/// after a second, while another session keeps doing I/O.
fn slow_sender(f: Flavour) {
    let d = daemon(f, &["--pdu-timeout", "1s"]);
    let mut c = logged_in(&d);
    let peer = c.local_addr();
    let pdu = command(
        &mut c,
        600,
        &write10(0, 16),
        8192,
        true,
        true,
        false,
        Bytes::from(vec![1u8; 8192]),
    );
    let raw = pdu.encode(Digests::default()).to_vec();
    c.send_raw(&raw[..148]).unwrap();
    let t = Instant::now();
    let bystander = std::thread::scope(|s| {
        let h = s.spawn(|| {
            for i in 0..5 {
                serves(&d, 80 + i * 16);
            }
        });
        let closed = closed_within(&mut c, 5000);
        h.join().is_ok() && closed
    });
    assert!(bystander, "bystander failed or slow sender not dropped");
    assert!(t.elapsed() < Duration::from_secs(4));
    one_hit(&d, "pdu-timeout", peer);
    serves(&d, 160);
}

/// `--tx-stall-timeout 1s`: a client that sends READs and never reads the answers
/// is dropped; a client doing I/O at the same time is not held up.
fn stalled_reader(f: Flavour) {
    let d = daemon(f, &["--tx-stall-timeout", "1s"]);
    let mut c = logged_in(&d);
    let peer = c.local_addr();
    // 48 READs of 1 MiB: far more than the socket buffers hold.
    for i in 0..48u32 {
        let p = command(
            &mut c,
            700 + i,
            &read10((i % 32) * 2048, 2048),
            1 << 20,
            false,
            true,
            false,
            Bytes::new(),
        );
        c.send(&p).unwrap();
    }
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..5 {
                serves(&d, 200 + i * 16);
            }
        });
    });
    one_hit(&d, "tx-stall-timeout", peer);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // Its socket is gone: reading now ends in EOF or a reset after what was sent.
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut s = c.stream().try_clone().unwrap();
    loop {
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("socket still open: {e}"),
        }
    }
    serves(&d, 300);
}

// ----- 4. outstanding commands -----

/// `--max-commands-per-session 4`: with four commands held (waiting for data),
/// MaxCmdSN closes the window (ExpCmdSN - 1); a command past it is dropped; an
/// immediate command past the task set gets TASK SET FULL; the window reopens as
/// commands end.
fn cmd_window_tracks_capacity(f: Flavour) {
    let d = daemon(f, &["--max-commands-per-session", "4"]);
    let mut c = logged_in(&d);
    let peer = c.local_addr();
    let mut r2ts = Vec::new();
    for i in 0..4u32 {
        let p = command(
            &mut c,
            800 + i,
            &write10(i * 8, 8),
            4096,
            true,
            true,
            false,
            Bytes::new(),
        );
        c.send(&p).unwrap();
        match recv_within(&mut c, 3000).unwrap() {
            Some(Pdu::R2t(r)) => r2ts.push(r),
            other => panic!("want an R2T, got {other:?}"),
        }
    }
    let last = r2ts.last().unwrap();
    assert_eq!(
        last.max_cmd_sn,
        SerialNumber(last.exp_cmd_sn.get().wrapping_sub(1)),
        "window not closed: {last:?}"
    );
    // Past MaxCmdSN: silently dropped (RFC 7143 §4.2.2.1).
    let dropped_sn = c.cmd_sn();
    let p = read_first_block(&mut c, 900, false);
    c.send(&p).unwrap();
    assert!(
        recv_within(&mut c, 300).is_err(),
        "a command past MaxCmdSN was answered"
    );
    // Immediate, with the task set full.
    let p = read_first_block(&mut c, 901, true);
    c.send(&p).unwrap();
    match recv_within(&mut c, 3000).unwrap() {
        Some(Pdu::ScsiResponse(r)) => assert_eq!(r.status, 0x28, "TASK SET FULL"),
        other => panic!("want TASK SET FULL, got {other:?}"),
    }
    // Finish one: its response reopens the window to take the dropped CmdSN.
    let r = r2ts.remove(0);
    c.send(&data_out(&c, r.itt.0, r.ttt, 0, 0, 4096)).unwrap();
    match recv_within(&mut c, 3000).unwrap() {
        Some(Pdu::ScsiResponse(s)) => {
            assert_eq!(s.status, 0);
            assert!(
                dropped_sn.in_window(s.exp_cmd_sn, s.max_cmd_sn),
                "window not reopened: {s:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    for r in r2ts {
        c.send(&data_out(&c, r.itt.0, r.ttt, 0, 0, 4096)).unwrap();
        assert!(matches!(
            recv_within(&mut c, 3000).unwrap(),
            Some(Pdu::ScsiResponse(_))
        ));
    }
    // The dropped CmdSN is still expected: send it again.
    let mut cdb = read10(0, 1);
    cdb.resize(16, 0);
    let again = Pdu::ScsiCommand(ScsiCommand {
        immediate: false,
        final_bit: true,
        read: true,
        write: false,
        attr: TaskAttr::Simple,
        lun: LunField::from_lun(1),
        itt: Itt(902),
        expected_data_transfer_length: 512,
        cmd_sn: dropped_sn,
        exp_stat_sn: c.exp_stat_sn(),
        cdb: Bytes::from(cdb),
        data: Bytes::new(),
    });
    c.send(&again).unwrap();
    match recv_within(&mut c, 3000).unwrap() {
        Some(Pdu::DataIn(d)) => assert!(d.status_present && d.status == 0),
        other => panic!("{other:?}"),
    }
    // One line for the overrun and the full task set together.
    one_hit(&d, "max-commands-per-session", peer);
    serves(&d, 320);
}

// ----- 5. memory -----

/// Hundreds of hostile connections (half logins, huge claims, stalled readers,
/// abandoned writes); once they are gone the RSS is back within 10% of before.
fn memory_returns_after_abuse(f: Flavour) {
    raise_nofile();
    let d = daemon(
        f,
        &[
            "--login-timeout",
            "1s",
            "--tx-stall-timeout",
            "1s",
            "--pdu-timeout",
            "1s",
        ],
    );
    // Warm up: the allocator's arenas and the first session's buffers.
    for i in 0..3 {
        serves(&d, 400 + i * 16);
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(&d);
    let fds_before = open_fds(d.pid());
    for round in 0..2 {
        let mut held = Vec::new();
        // Half logins from several addresses.
        for i in 0..300u32 {
            let src = format!("127.0.{}.{}", 1 + round, 1 + i % 200);
            let mut c = connect_from(&src, d.portal.port());
            let keys = [("InitiatorName", INITIATOR), ("AuthMethod", "None")];
            let req = Pdu::LoginRequest(iscsi_proto::pdu::LoginRequest {
                transit: false,
                continue_bit: false,
                csg: Stage::Security,
                nsg: Stage::Operational,
                version_max: 0,
                version_min: 0,
                isid: c.isid,
                tsih: iscsi_proto::Tsih(0),
                itt: Itt(0),
                cid: 0,
                cmd_sn: SerialNumber(1),
                exp_stat_sn: SerialNumber(0),
                data: iscsi_proto::text::encode(&keys),
            });
            let _ = c.send(&req);
            held.push(c);
        }
        // Huge claims.
        for i in 0..200u32 {
            let src = format!("127.0.{}.{}", 3 + round, 1 + i % 100);
            let mut c = connect_from(&src, d.portal.port());
            let mut hdr = [0u8; 48];
            hdr[0] = 0x43;
            hdr[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
            let _ = c.send_raw(&hdr);
        }
        // Stalled readers and abandoned writes, logged in.
        for i in 0..16u32 {
            let mut c = logged_in(&d);
            for j in 0..16u32 {
                let itt = 1000 + j;
                let p = if i % 2 == 0 {
                    command(
                        &mut c,
                        itt,
                        &read10(j * 2048, 2048),
                        1 << 20,
                        false,
                        true,
                        false,
                        Bytes::new(),
                    )
                } else {
                    command(
                        &mut c,
                        itt,
                        &write10(j * 2048, 2048),
                        1 << 20,
                        true,
                        true,
                        false,
                        Bytes::from(vec![3u8; 65536]),
                    )
                };
                let _ = c.send(&p);
            }
            held.push(c);
        }
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
    }
    // Everything times out or closes.
    std::thread::sleep(Duration::from_millis(2500));
    serves(&d, 480);
    std::thread::sleep(Duration::from_millis(1500));
    let after = rss_kib(&d);
    let fds = open_fds(d.pid());
    eprintln!(
        "{}: RSS before {before} KiB, after abuse {after} KiB ({fds} descriptors open)",
        f.binary()
    );
    // Every hostile connection is gone.
    assert!(
        fds <= fds_before,
        "{fds_before} descriptors before, {fds} after"
    );
    assert!(
        after * 10 <= before * 11,
        "RSS {before} KiB before the abuse, {after} KiB after"
    );
}

/// 1,000 idle logged-in sessions keep the daemon under 64 MiB, and each of the
/// first 256 costs at most 64 KiB of RSS (the data path's goal per idle session:
/// a session's buffers grow with its traffic, not with its existence).
fn thousand_idle_sessions(f: Flavour) {
    raise_nofile();
    let d = daemon(f, &["--max-pending-logins-per-host", "0"]);
    // One session first, so that what every session shares (thread stacks touched,
    // the target's tables, allocator arenas) is in the baseline.
    let mut sessions = Vec::new();
    let mut first = Client::connect(d.portal).expect("connect");
    first.isid = fresh_isid();
    assert_eq!(first.login_only(Some(IQN)).expect("login"), (0, 0));
    sessions.push(first);
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_kib(&d);
    for i in 1..1000u32 {
        if i == 257 {
            std::thread::sleep(Duration::from_millis(200));
            let per = (rss_kib(&d).saturating_sub(base)) / 256;
            eprintln!("{}: RSS per idle session {per} KiB", f.binary());
            assert!(per <= 64, "{per} KiB of RSS per idle session");
        }
        let mut c = Client::connect(d.portal).expect("connect");
        c.isid = fresh_isid();
        assert_eq!(
            c.login_only(Some(IQN)).expect("login"),
            (0, 0),
            "session {i}"
        );
        sessions.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss = rss_kib(&d);
    eprintln!("{}: RSS with 1000 idle sessions {rss} KiB", f.binary());
    assert!(rss < 64 * 1024, "RSS {rss} KiB with 1000 sessions");
    serves(&d, 500);
    drop(sessions);
}

/// (soft, hard) open-file limits of `pid`.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let f: Vec<String> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    (f[3].clone(), f[4].clone())
}

/// Started with a soft open-file limit of 256 (`prlimit`), the daemon raises it to
/// the hard limit, as a service manager's LimitNOFILE would.
fn raises_open_file_limit(f: Flavour) {
    use std::io::BufRead;
    let dir = integration_tests::TempDir::new("nofile");
    let (_, hard) = nofile(std::process::id());
    let mut child = std::process::Command::new("prlimit")
        .arg(format!("--nofile=256:{hard}"))
        .arg("--")
        .arg(integration_tests::bin(f.binary()))
        .args([
            "-f",
            "--iscsi",
            "portal=127.0.0.1:0",
            "-c",
            "none",
            "--control-socket",
        ])
        .arg(dir.path("s"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux)");
    let stderr = child.stderr.take().unwrap();
    let mut lines = io::BufReader::new(stderr).lines();
    let started = lines.any(|l| l.is_ok_and(|l| l.contains("serving iSCSI on")));
    let got = nofile(child.id());
    // SAFETY: kill(2) on the PID of the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
    assert!(started, "daemon did not start");
    assert_eq!(got, (hard.clone(), hard), "soft limit not raised");
}

/// A command and the initiator's FIN arrive in one segment (TCP_CORK held the
/// command back until `shutdown`): one readiness edge announces both, the read
/// that returns the command is short, and the end of file behind it raises no
/// further edge. The daemon must still see it and close the connection, not keep a
/// half-closed connection (and its session) open until a timeout.
fn half_close_behind_a_command_is_seen(f: Flavour) {
    let d = daemon(f, &[]);
    for round in 0..5u32 {
        let mut c = logged_in(&d);
        let fd = std::os::fd::AsRawFd::as_raw_fd(c.stream());
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a pointer to an int of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "TCP_CORK");
        let read = read_first_block(&mut c, 1 + round, false);
        c.send(&read).expect("send");
        c.stream().shutdown(Shutdown::Write).expect("shutdown");
        assert!(
            closed_within(&mut c, 5000),
            "round {round}: the daemon kept a half-closed connection open"
        );
    }
    serves(&d, 0);
}

both_flavours!(
    half_close_behind_a_command_is_seen,
    raises_open_file_limit,
    huge_segment_claims,
    malformed_pdus,
    malformed_logins,
    data_out_beyond_r2t,
    unsolicited_beyond_first_burst,
    r2t_bookkeeping,
    buffer_cap_paces_r2ts,
    max_connections,
    pending_logins_per_host,
    session_limits,
    login_timeout,
    slow_sender,
    stalled_reader,
    cmd_window_tracks_capacity,
    memory_returns_after_abuse,
    thousand_idle_sessions,
);
