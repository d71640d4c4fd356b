//! Several gateways over one rbd image, with ALUA (both daemons, on the repo's own
//! one-node Ceph cluster, see `integration_tests::ceph`):
//!
//! - ALUA configured with tgtadm (gateway A's group active/optimized, B's
//!   active/non-optimized): INQUIRY TPGS, VPD 83h port and group, REPORT TARGET PORT
//!   GROUPS through each gateway (exact bytes); a state change set with tgtadm gives
//!   ASYMMETRIC ACCESS STATE CHANGED once per nexus, and a standby port refuses media
//!   access with NOT READY 04h/0Bh;
//! - libiscsi's `SCSI.MultipathIO.*` with the first URL on A and the second on B;
//! - 64 MiB written through A read back through B;
//! - writes interleaved through A and B on an image *with* exclusive-lock (librbd
//!   passes the lock back and forth) finish and read back as written: no deadlock;
//! - A killed with SIGKILL under a writer: the writer goes on through B, and every
//!   write acknowledged before or after the kill reads back intact.
#![allow(clippy::disallowed_methods)]

use integration_tests::ceph::cluster;
use integration_tests::client::{read10, write10, Client, ScsiResult};
use integration_tests::conformance::Conformance;
use integration_tests::{both_flavours, Daemon, Flavour};
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-12.test:gateway";
const MIB: u64 = 1024 * 1024;

/// An image name no other test (or flavour) uses.
fn image(tag: &str, f: Flavour) -> String {
    format!("gw-{tag}-{}", f.binary())
}

fn tgtadm_target(d: &Daemon, op: &[&str]) {
    let mut args = vec!["--lld", "iscsi", "--mode", "target", "--tid", "1"];
    args.extend_from_slice(op);
    d.tgtadm_ok(&args);
}

fn set(d: &Daemon, name: &str, value: &str) {
    tgtadm_target(d, &["--op", "update", "--name", name, "--value", value]);
}

/// Target 1 with LUN 1 on `path` on each gateway; with `alua`, A is group 1 (port 1,
/// active/optimized) and B group 2 (port 2, active/non-optimized), both told both.
fn gateways(f: Flavour, path: &str, alua: bool) -> (Daemon, Daemon) {
    (
        gateway(f, path, alua.then_some("1")),
        gateway(f, path, alua.then_some("2")),
    )
}

/// One gateway: target 1 with LUN 1 on `path`; with `group`, ALUA with group 1
/// active/optimized, group 2 active/non-optimized, this one in `group`.
fn gateway(f: Flavour, path: &str, group: Option<&str>) -> Daemon {
    let ceph = cluster();
    // -d 1: the failover test reads the info line naming the gateways that answer.
    let d = Daemon::start(f, &["-d", "1"]);
    d.new_target(1, IQN);
    let r = d.lu_new(1, 1, path, &["--bstype", "rbd", "--bsopts", &ceph.bsopts()]);
    assert_eq!(r.code, 0, "{r:?}");
    tgtadm_target(&d, &["--op", "bind", "-I", "ALL"]);
    if let Some(group) = group {
        set(&d, "alua_state", "1:active/optimized");
        set(&d, "alua_state", "2:active/non-optimized");
        set(&d, "alua_group", group);
    }
    d
}

/// Wait (at most `limit`) for a line of `d`'s log containing `text`.
fn wait_log(d: &Daemon, text: &str, limit: Duration) {
    let start = Instant::now();
    while !d.log_lines().iter().any(|l| l.contains(text)) {
        assert!(
            start.elapsed() < limit,
            "no log line with {text:?} after {limit:?}: {:#?}",
            d.log_lines()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until each of two ALUA gateways has heard the other (at most 30 s).
fn both_answering(a: &Daemon, b: &Daemon) {
    for d in [a, b] {
        wait_log(
            d,
            "tid 1: gateways answering on ports 1,2",
            Duration::from_secs(30),
        );
    }
}

/// READ(10) of 8 blocks at `lba`, sent again while it meets unit attentions (as an
/// initiator does); the answer, required GOOD.
fn read_past_unit_attentions(c: &mut Client, lba: u32) -> ScsiResult {
    loop {
        let r = c.scsi(1, &read10(lba, 8), &[], 4096).expect("read");
        if r.status == 2 && r.sense_key_asc().map(|s| s.0) == Some(6) {
            continue;
        }
        assert_eq!(r.status, 0, "{r:?}");
        return r;
    }
}

/// WRITE(10) of 8 blocks of `fill` at `lba`, sent again while it meets unit
/// attentions or one of the `allowed` senses (those after a 50 ms pause), until
/// GOOD (required within 40 s): how long that took and how many `allowed` refusals
/// came first.
fn write_until_good(
    c: &mut Client,
    lba: u32,
    fill: u8,
    allowed: &[(u8, u8, u8)],
) -> (Duration, u32) {
    let start = Instant::now();
    let mut refused = 0;
    loop {
        assert!(start.elapsed() < Duration::from_secs(40), "never GOOD");
        let r = c
            .scsi(1, &write10(lba, 8), &[fill; 4096], 0)
            .expect("write");
        if r.status == 0 {
            return (start.elapsed(), refused);
        }
        let sense = r.sense_key_asc().expect("sense");
        if sense.0 != 6 {
            assert!(allowed.contains(&sense), "{r:?}");
            refused += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn login(d: &Daemon, isid_tail: u8) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    c.isid.0[5] = isid_tail;
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

fn rtpg(c: &mut Client, extended: bool) -> Vec<u8> {
    let b1 = if extended { 0x2a } else { 0x0a };
    let r = c
        .scsi(1, &[0xa3, b1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], &[], 256)
        .expect("report target port groups");
    assert_eq!(r.status, 0, "{r:?}");
    r.data
}

/// The target-port designators of VPD 83h (association 1) as (type, designator).
fn port_designators(c: &mut Client) -> Vec<(u8, Vec<u8>)> {
    let r = c
        .scsi(1, &[0x12, 1, 0x83, 0, 255, 0], &[], 255)
        .expect("vpd");
    assert_eq!(r.status, 0, "{r:?}");
    let page = r.data;
    let mut out = Vec::new();
    let mut at = 4;
    while at + 4 <= page.len() {
        let len = page[at + 3] as usize;
        if (page[at + 1] >> 4) & 3 == 1 && page[at + 1] & 0x0f != 8 {
            out.push((page[at + 1] & 0x0f, page[at + 4..at + 4 + len].to_vec()));
        }
        at += 4 + len;
    }
    out
}

/// One group descriptor with one port, as REPORT TARGET PORT GROUPS lays it out.
fn group(state: u8, id: u8, status: u8) -> Vec<u8> {
    vec![state, 0x8f, 0, id, 0, status, 0, 1, 0, 0, 0, id]
}

/// ALUA through both gateways: what each reports, a state change announced once
/// per nexus, and what a standby port refuses.
fn alua_through_each_gateway(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("alua", f), 16 * MIB, "layering");
    let (a, b) = gateways(f, &path, true);
    let (mut a1, mut a2, mut b1) = (login(&a, 1), login(&a, 2), login(&b, 1));

    let both = [group(0, 1, 0), group(1, 2, 0)].concat();
    for c in [&mut a1, &mut b1] {
        let inq = c.scsi(1, &[0x12, 0, 0, 0, 96, 0], &[], 96).unwrap();
        assert_eq!(inq.data[5] & 0x30, 0x10, "TPGS 01b: implicit ALUA");
        assert_eq!(rtpg(c, false), [&[0, 0, 0, 24][..], &both].concat());
        assert_eq!(
            rtpg(c, true),
            [&[0, 0, 0, 28, 0x10, 0, 0, 0][..], &both].concat()
        );
    }
    // Relative target port (type 4) and target port group (type 5) of each path.
    assert_eq!(
        port_designators(&mut a1),
        vec![(4, vec![0, 0, 0, 1]), (5, vec![0, 0, 0, 1])]
    );
    assert_eq!(
        port_designators(&mut b1),
        vec![(4, vec![0, 0, 0, 2]), (5, vec![0, 0, 0, 2])]
    );
    let show = a.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(
        show.contains(
            "    ALUA information:\n        Local port group: 1\n        Local relative port: 1\n        Port group 1: active/optimized ports 1\n        Port group 2: active/non-optimized ports 2\n"
        ),
        "{show}"
    );

    // The administrator moves A to standby and B to active/optimized, on both.
    for d in [&a, &b] {
        set(d, "alua_state", "1:standby");
        set(d, "alua_state", "2:ao");
    }
    let read = read10(0, 8);
    for c in [&mut a1, &mut a2, &mut b1] {
        let r = c.scsi(1, &read, &[], 4096).unwrap();
        assert_eq!(
            (r.status, r.sense_key_asc()),
            (2, Some((6, 0x2a, 0x06))),
            "ASYMMETRIC ACCESS STATE CHANGED"
        );
    }
    // Once per nexus: A's sessions now see standby, B reads.
    for c in [&mut a1, &mut a2] {
        let r = c.scsi(1, &read, &[], 4096).unwrap();
        assert_eq!((r.status, r.sense_key_asc()), (2, Some((2, 0x04, 0x0b))));
        let changed = [group(2, 1, 2), group(0, 2, 2)].concat();
        assert_eq!(rtpg(c, false), [&[0, 0, 0, 24][..], &changed].concat());
    }
    let r = b1.scsi(1, &read, &[], 4096).unwrap();
    assert_eq!((r.status, r.data.len()), (0, 4096), "{r:?}");
    let r = b1.scsi(1, &read, &[], 4096).unwrap();
    assert_eq!(r.status, 0, "no second unit attention");

    // Unavailable: even MODE SENSE is refused (04h/0Ch); INQUIRY still answers.
    set(&a, "alua_state", "1:unavailable");
    let _ = a1.scsi(1, &read, &[], 4096).unwrap();
    let r = a1.scsi(1, &[0x1a, 0, 0x3f, 0, 0xff, 0], &[], 255).unwrap();
    assert_eq!((r.status, r.sense_key_asc()), (2, Some((2, 0x04, 0x0c))));
    assert_eq!(
        a1.scsi(1, &[0x12, 0, 0, 0, 96, 0], &[], 96).unwrap().status,
        0
    );

    // Bad values are refused with tgtadm's "invalid request", nothing changes.
    for (name, value) in [("alua_state", "1:offline"), ("alua_group", "70000")] {
        let r = a.tgtadm(&[
            "--lld", "iscsi", "--mode", "target", "--op", "update", "--tid", "1", "--name", name,
            "--value", value,
        ]);
        assert_eq!(r.code, 22, "{r:?}");
        assert_eq!(r.stderr, "tgtadm: invalid request\n");
    }
    // ALUA off again: TPGS 0 and REPORT TARGET PORT GROUPS unknown, as before.
    set(&b, "alua_group", "0");
    let r = b1.scsi(1, &[0; 6], &[], 0).unwrap();
    assert_eq!(
        (r.status, r.sense_key_asc()),
        (2, Some((6, 0x2a, 0x06))),
        "the change is announced first"
    );
    let r = b1.scsi(1, &[0x12, 0, 0, 0, 96, 0], &[], 96).unwrap();
    assert_eq!(r.data[5] & 0x30, 0);
    let r = b1
        .scsi(1, &[0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], &[], 256)
        .unwrap();
    assert_eq!((r.status, r.sense_key_asc()), (2, Some((5, 0x24, 0))));
}

/// A LOGICAL UNIT RESET and a MODE SELECT through gateway A reach the nexuses of
/// gateway B: the next command through B gets the unit attention, once; a command
/// that arrives before it through A's other nexus too; a target reset likewise.
fn unit_attentions_cross_gateways(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("ua", f), 16 * MIB, "layering");
    let (a, b) = gateways(f, &path, true);
    let (mut a1, mut a2, mut b1, mut b2) = (login(&a, 1), login(&a, 2), login(&b, 1), login(&b, 2));
    for c in [&mut a1, &mut a2, &mut b1, &mut b2] {
        c.clear_unit_attentions().unwrap();
    }
    let tur = [0u8; 6];
    // LOGICAL UNIT RESET through A: when its response is in, B's nexuses know.
    assert_eq!(a1.task_mgmt(5, 1).unwrap(), Some(0));
    for c in [&mut b1, &mut b2, &mut a1, &mut a2] {
        let r = c.scsi(1, &tur, &[], 0).unwrap();
        assert_eq!(
            (r.status, r.sense_key_asc()),
            (2, Some((6, 0x29, 0x03))),
            "BUS DEVICE RESET FUNCTION OCCURRED"
        );
        let r = c.scsi(1, &tur, &[], 0).unwrap();
        assert_eq!(r.status, 0, "once: {r:?}");
    }
    // A target warm reset through B reaches A's nexuses (and B's own).
    assert_eq!(b2.task_mgmt(6, 0).unwrap(), Some(0));
    for c in [&mut a1, &mut a2, &mut b1, &mut b2] {
        let r = c.scsi(1, &tur, &[], 0).unwrap();
        assert_eq!((r.status, r.sense_key_asc()), (2, Some((6, 0x29, 0x03))));
        assert_eq!(c.scsi(1, &tur, &[], 0).unwrap().status, 0);
    }
    // MODE SELECT through A (caching page, WCE flipped): MODE PARAMETERS CHANGED on
    // the other nexuses of both gateways, not on the one that changed it; B takes the
    // value.
    let caching = |c: &mut Client| {
        let r = c.scsi(1, &[0x1a, 0x08, 0x08, 0, 255, 0], &[], 255).unwrap();
        assert_eq!(r.status, 0, "{r:?}");
        r.data
    };
    let before = caching(&mut a1);
    let mut page = before[4..4 + 2 + before[5] as usize].to_vec();
    page[0] &= 0x3f;
    page[2] ^= 0x04;
    let param = [&[0u8, 0, 0, 0][..], &page].concat();
    let r = a1
        .scsi(1, &[0x15, 0x10, 0, 0, param.len() as u8, 0], &param, 0)
        .unwrap();
    assert_eq!(r.status, 0, "{r:?}");
    assert_eq!(a1.scsi(1, &tur, &[], 0).unwrap().status, 0);
    for c in [&mut a2, &mut b1, &mut b2] {
        let r = c.scsi(1, &tur, &[], 0).unwrap();
        assert_eq!(
            (r.status, r.sense_key_asc()),
            (2, Some((6, 0x2a, 0x01))),
            "MODE PARAMETERS CHANGED"
        );
        assert_eq!(c.scsi(1, &tur, &[], 0).unwrap().status, 0);
    }
    assert_eq!(caching(&mut b1)[6] & 0x04, page[2] & 0x04, "WCE taken on B");
}

/// PERSISTENT RESERVE OUT REGISTER through `c` with service action key `key`.
fn register(c: &mut Client, key: u64) -> (u8, Option<(u8, u8, u8)>) {
    let mut param = vec![0u8; 24];
    param[8..16].copy_from_slice(&key.to_be_bytes());
    let r = c
        .scsi(1, &[0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0], &param, 0)
        .unwrap();
    (r.status, r.sense_key_asc())
}

/// READ FULL STATUS through `c`: (key, relative target port) of each registration.
fn full_status(c: &mut Client) -> Vec<(u64, u16)> {
    let r = c
        .scsi(1, &[0x5e, 3, 0, 0, 0, 0, 0, 4, 0, 0], &[], 1024)
        .unwrap();
    assert_eq!(r.status, 0, "{r:?}");
    let mut out = Vec::new();
    let mut at = 8;
    while at + 24 <= r.data.len() {
        let d = &r.data[at..];
        let key = u64::from_be_bytes(d[0..8].try_into().unwrap());
        let port = u16::from_be_bytes([d[18], d[19]]);
        out.push((key, port));
        at += 24 + u32::from_be_bytes(d[20..24].try_into().unwrap()) as usize;
    }
    out
}

/// With ALUA configured the relative target port is part of the I_T nexus: one
/// initiator port (same name, same ISID) logged in through both gateways is two
/// registrants with their own keys, and READ FULL STATUS through either gateway
/// shows each with the port it registered through. Without ALUA (as before) it is
/// one registrant: the second REGISTER with another key conflicts.
fn same_isid_on_two_gateways_is_two_nexuses(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("itn", f), 16 * MIB, "layering");
    let (a, b) = gateways(f, &path, true);
    let (mut ca, mut cb) = (login(&a, 7), login(&b, 7));
    for c in [&mut ca, &mut cb] {
        c.clear_unit_attentions().unwrap();
    }
    assert_eq!(register(&mut ca, 0xa1), (0, None));
    assert_eq!(register(&mut cb, 0xb2), (0, None));
    for c in [&mut ca, &mut cb] {
        assert_eq!(full_status(c), vec![(0xa1, 1), (0xb2, 2)]);
    }
    drop((ca, cb));

    // The same without ALUA: one nexus for both gateways.
    let path = ceph.create_image_with_features(&image("itn0", f), 16 * MIB, "layering");
    let (a, b) = gateways(f, &path, false);
    let (mut ca, mut cb) = (login(&a, 7), login(&b, 7));
    for c in [&mut ca, &mut cb] {
        c.clear_unit_attentions().unwrap();
    }
    assert_eq!(register(&mut ca, 0xa1), (0, None));
    assert_eq!(register(&mut cb, 0xb2).0, 0x18, "RESERVATION CONFLICT");
    assert_eq!(full_status(&mut cb), vec![(0xa1, 1)]);
}

/// PERSISTENT RESERVE OUT REGISTER with ALL_TG_PT through `c`.
fn register_all_ports(c: &mut Client, key: u64) -> u8 {
    let mut param = vec![0u8; 24];
    param[8..16].copy_from_slice(&key.to_be_bytes());
    param[20] = 0x04;
    c.scsi(1, &[0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0], &param, 0)
        .unwrap()
        .status
}

/// REGISTER with ALL_TG_PT through gateway A registers the initiator port through
/// B as well (one registration per I_T nexus, in the cluster-shared state): READ
/// FULL STATUS through either shows the key at ports 1 and 2, and the same
/// initiator port through B reserves with that key without registering there. An
/// initiator port that never registered stays unregistered.
fn all_tg_pt_registers_through_every_gateway(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("atp", f), 16 * MIB, "layering");
    let (a, b) = gateways(f, &path, true);
    let (mut ca, mut cb, mut other) = (login(&a, 9), login(&b, 9), login(&b, 10));
    for c in [&mut ca, &mut cb, &mut other] {
        c.clear_unit_attentions().unwrap();
    }
    // REPORT CAPABILITIES: ATP_C and SIP_C set.
    let caps = cb
        .scsi(1, &[0x5e, 2, 0, 0, 0, 0, 0, 0, 8, 0], &[], 8)
        .unwrap();
    assert_eq!(caps.data[2] & 0x0c, 0x0c, "{caps:?}");
    assert_eq!(register_all_ports(&mut ca, 0xc3), 0);
    for c in [&mut ca, &mut cb] {
        assert_eq!(full_status(c), vec![(0xc3, 1), (0xc3, 2)]);
    }
    // Through B, without a REGISTER there: RESERVE (write exclusive) with the key.
    let mut param = vec![0u8; 24];
    param[0..8].copy_from_slice(&0xc3u64.to_be_bytes());
    let r = cb
        .scsi(1, &[0x5f, 1, 1, 0, 0, 0, 0, 0, 24, 0], &param, 0)
        .unwrap();
    assert_eq!(r.status, 0, "RESERVE through B: {r:?}");
    // Another initiator port through B is not registered: its WRITE conflicts,
    // the holder's goes through.
    let w = |c: &mut Client| c.scsi(1, &write10(0, 1), &[0x77; 512], 0).unwrap().status;
    assert_eq!(w(&mut other), 0x18, "RESERVATION CONFLICT");
    assert_eq!(w(&mut cb), 0);
}

/// libiscsi's MultipathIO suite, the first path on gateway A and the second on B,
/// `SCSI.MultipathIO.Reset` included (a LOGICAL UNIT RESET through one gateway gives
/// the unit attention on the other's nexus).
fn multipath_io_across_gateways(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("mpio", f), 128 * MIB, "layering");
    let (a, b) = gateways(f, &path, true);
    let second = format!("iscsi://{}/{IQN}/1", b.portal_str());
    let report = Conformance::new(&a.portal_str(), IQN, 1)
        .patterns(&[
            "SCSI.MultipathIO.Simple",
            "SCSI.MultipathIO.Reset",
            "SCSI.MultipathIO.CompareAndWrite*",
        ])
        .second_path(&second)
        .idle_timeout(Duration::from_secs(240))
        .run();
    report.assert_no_failures();
    eprintln!("{}", report.summary());
    assert!(
        report.passed().len() >= 4,
        "too few MultipathIO tests ran: {}",
        report.summary()
    );
}

/// COMPARE AND WRITE(16) of `blocks` 512-byte blocks at `lba`: `old` then `new`.
fn caw16(lba: u64, blocks: u8) -> Vec<u8> {
    let mut cdb = vec![0x89, 0];
    cdb.extend_from_slice(&lba.to_be_bytes());
    cdb.extend_from_slice(&[0, 0, 0, blocks, 0, 0]);
    cdb
}

/// Two initiators swap the same two blocks through two gateways at once, round
/// after round, each from the value both last read to its own: a COMPARE AND WRITE
/// longer than the one sector librbd compares and writes atomically must still be
/// atomic across gateways, so in every round exactly one wins and the other gets
/// MISCOMPARE (VMware's ATS on a 4096-byte-block LU is such a command).
fn multi_sector_compare_and_write_is_atomic_across_gateways(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("caw", f), 16 * MIB, "layering");
    let (a, b) = gateways(f, &path, false);
    let block = |who: u8, round: u32| -> Vec<u8> {
        let mut v = vec![who; 1024];
        v[..4].copy_from_slice(&round.to_be_bytes());
        v
    };
    let mut ca = login(&a, 1);
    let w = ca.scsi(1, &write10(8, 2), &block(0, 0), 0).expect("write");
    assert_eq!(w.status, 0);
    let rounds = 60u32;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    // Each side: in round r, swap whatever it saw win round r-1 for its own value.
    let side = |d: &Daemon, who: u8, isid: u8| {
        let mut c = login(d, isid);
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            let mut wins = Vec::new();
            let mut last = vec![0u8; 1024];
            last[..4].copy_from_slice(&0u32.to_be_bytes());
            for round in 1..=rounds {
                let mut data = last.clone();
                let mine = {
                    let mut v = vec![who; 1024];
                    v[..4].copy_from_slice(&round.to_be_bytes());
                    v
                };
                data.extend_from_slice(&mine);
                barrier.wait();
                let r = c
                    .scsi(1, &caw16(8, 2), &data, 0)
                    .expect("compare and write");
                match (r.status, r.sense_key_asc()) {
                    (0, _) => wins.push(round),
                    (2, Some((0x0e, 0x1d, 0))) => {}
                    other => panic!("round {round}: {other:?} {r:?}"),
                }
                barrier.wait();
                let r = c.scsi(1, &read10(8, 2), &[], 1024).expect("read");
                assert_eq!(r.status, 0);
                last = r.data;
                barrier.wait();
            }
            wins
        })
    };
    let (ta, tb) = (side(&a, 0xaa, 2), side(&b, 0xbb, 3));
    let (wa, wb) = (ta.join().expect("A side"), tb.join().expect("B side"));
    for round in 1..=rounds {
        let n = wa.contains(&round) as u8 + wb.contains(&round) as u8;
        assert_eq!(
            n, 1,
            "round {round}: {n} winners (A won {wa:?}, B won {wb:?})"
        );
    }
    eprintln!("A won {} rounds, B {}", wa.len(), wb.len());
    let r = ca.scsi(1, &read10(8, 2), &[], 1024).expect("read");
    let last = if wa.contains(&rounds) { 0xaa } else { 0xbb };
    assert_eq!(r.data, block(last, rounds));
}

/// A block pattern that differs per (chunk, round).
fn pattern(chunk: u64, round: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 ^ (chunk * 131) ^ (round * 7919) ^ (i as u64 >> 9)) as u8)
        .collect()
}

/// 64 MiB written through A (1 MiB WRITEs) reads back equal through B.
fn written_on_a_read_on_b(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("64m", f), 80 * MIB, "layering");
    let (a, b) = gateways(f, &path, true);
    let (mut ca, mut cb) = (login(&a, 1), login(&b, 1));
    let blocks = (MIB / 512) as u16;
    for chunk in 0..64u64 {
        let data = pattern(chunk, 1, MIB as usize);
        let w = ca
            .scsi(1, &write10((chunk * MIB / 512) as u32, blocks), &data, 0)
            .expect("write");
        assert_eq!(w.status, 0, "chunk {chunk}: {w:?}");
    }
    for chunk in 0..64u64 {
        let r = cb
            .scsi(
                1,
                &read10((chunk * MIB / 512) as u32, blocks),
                &[],
                MIB as u32,
            )
            .expect("read");
        assert_eq!(r.status, 0);
        assert!(
            r.data == pattern(chunk, 1, MIB as usize),
            "chunk {chunk} differs"
        );
    }
}

/// Writes interleaved through A and B on an image with exclusive-lock (the default
/// features): every write completes (librbd hands the lock to whichever gateway
/// writes), within a bound, and the last write of each block is what both read.
fn interleaved_writes_with_exclusive_lock(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image(&image("xlock", f), 16 * MIB);
    let info = ceph.rbd_ok(&["info", &path]);
    assert!(info.contains("exclusive-lock"), "{info}");
    let (a, b) = gateways(f, &path, true);
    let (mut ca, mut cb) = (login(&a, 1), login(&b, 1));
    let started = Instant::now();
    let len = 64 * 1024;
    for round in 0..40u64 {
        let chunk = round % 8;
        let c = if round % 2 == 0 { &mut ca } else { &mut cb };
        let data = pattern(chunk, round, len);
        let w = c
            .scsi(1, &write10((chunk * 128) as u32, 128), &data, 0)
            .expect("write");
        assert_eq!(w.status, 0, "round {round}: {w:?}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "40 writes took {took:?}");
    for chunk in 0..8u64 {
        let last = (32..40).find(|r| r % 8 == chunk).unwrap();
        let want = pattern(chunk, last, len);
        for c in [&mut ca, &mut cb] {
            let r = c
                .scsi(1, &read10((chunk * 128) as u32, 128), &[], len as u32)
                .unwrap();
            assert_eq!(r.status, 0);
            assert!(r.data == want, "chunk {chunk}");
        }
    }
}

/// QEMU's iSCSI driver, a real initiator, writes 64 MiB through A; QEMU reads the
/// image back through B, equal.
fn qemu_writes_through_a_reads_through_b(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("qemu", f), 64 * MIB, "layering");
    let (a, b) = gateways(f, &path, true);
    let (img, modules) = integration_tests::qemu();
    let data: Vec<u8> = (0..64u64)
        .flat_map(|chunk| pattern(chunk, 3, MIB as usize))
        .collect();
    let src = a.dir.path("src.raw");
    let back = b.dir.path("back.raw");
    std::fs::write(&src, &data).expect("source file");
    let qemu_img = |args: &[&str]| {
        let r = std::process::Command::new(&img)
            .env("QEMU_MODULE_DIR", &modules)
            .args(args)
            .output()
            .expect("qemu-img");
        assert!(r.status.success(), "qemu-img {args:?}: {r:?}");
    };
    let url = |d: &Daemon| format!("iscsi://{}/{IQN}/1", d.portal_str());
    // -n: the LU exists; write the raw bytes onto it.
    qemu_img(&[
        "convert",
        "-n",
        "-f",
        "raw",
        "-O",
        "raw",
        src.to_str().unwrap(),
        &url(&a),
    ]);
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        &url(&b),
        back.to_str().unwrap(),
    ]);
    let got = std::fs::read(&back).expect("copy");
    assert_eq!(got.len(), data.len());
    if let Some(at) = got.iter().zip(&data).position(|(x, y)| x != y) {
        panic!("QEMU read through B differs from what it wrote through A at byte {at}");
    }
}

/// SIGKILL of gateway A under a writer (FUA writes, one at a time, each chunk once):
/// the writer logs in to B, sends again the write that had no answer, and goes on;
/// every chunk reads back through B as written.
fn writer_survives_sigkill_of_a(f: Flavour) {
    let longest = writer_survives_sigkill(f, "kill", "layering");
    assert!(longest < Duration::from_secs(10), "{longest:?}");
}

/// The same on an image with librbd's exclusive-lock (and object-map), which A held
/// when it died: B's first write waits for the lock. The OSD would drop A's header
/// watch, and librbd on B break A's lock by itself, only after
/// `osd_client_watch_timeout` (30 s, the default, on the test cluster: it took
/// 29.8 s, at the store's op timeout); B's gateway watch breaks it (and fences A's
/// client) as soon as A counts as gone, by the client A named in its reports. The
/// write then completes well inside the store's 30 s op timeout and nothing is lost.
fn writer_survives_sigkill_of_the_lock_owner(f: Flavour) {
    let features = "layering,exclusive-lock,object-map,fast-diff";
    let longest = writer_survives_sigkill(f, "kill-xl", features);
    assert!(longest < Duration::from_secs(20), "{longest:?}");
}

/// Gateway A, which holds the exclusive lock, frozen (SIGSTOP) long enough to count
/// as gone: B breaks A's lock (fencing A's client) and serves the writes; A thawed
/// meets the fence (its commands end with NOT READY / 04h/0Ch, which a multipath
/// initiator retries elsewhere), connects again as a new client by itself and
/// serves again. Nothing A had written before, nor what B wrote meanwhile, is lost
/// or overwritten by the thawed gateway.
fn a_frozen_lock_owner_is_fenced_and_serves_again(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let features = "layering,exclusive-lock,object-map,fast-diff";
    let path = ceph.create_image_with_features(&image("frozen", f), 16 * MIB, features);
    let (a, b) = gateways(f, &path, true);
    both_answering(&a, &b);
    let block = |fill: u8| vec![fill; 4096];
    let mut ca = login(&a, 1);
    write_until_good(&mut ca, 0, 0xa1, &[]);
    let owner = ceph.lock_owner(&path).expect("A holds the lock");
    a.signal(libc::SIGSTOP);
    let mut cb = login(&b, 2);
    cb.stream()
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let (took, _) = write_until_good(&mut cb, 8, 0xb1, &[]);
    eprintln!("frozen: B's first write took {took:?}");
    assert!(took < Duration::from_secs(25), "{took:?}");
    wait_log(
        &b,
        "broke the lock of a dead gateway process on port 1",
        Duration::from_secs(5),
    );
    assert_ne!(ceph.lock_owner(&path), Some(owner.clone()), "B holds it");
    a.signal(libc::SIGCONT);
    let fenced = (0x2, 0x04, 0x0c);
    let (took, refused) = write_until_good(&mut ca, 16, 0xa2, &[fenced]);
    eprintln!("frozen: thawed A refused {refused} writes, served again after {took:?}");
    assert!(refused > 0, "A met no fence: {:#?}", a.log_lines());
    wait_log(&a, "connected again as client", Duration::from_secs(5));
    for (lba, fill) in [(0u32, 0xa1u8), (8, 0xb1), (16, 0xa2)] {
        for c in [&mut ca, &mut cb] {
            let r = read_past_unit_attentions(c, lba);
            assert!(r.data == block(fill), "block {lba}");
        }
    }
    let _ = ceph.ceph(&["osd", "blocklist", "rm", &owner]);
}

/// Gateway A, holding the exclusive lock, killed and started again at once (as a
/// service manager does): it usually answers before it counts as gone, but its
/// report names a new process, so B breaks the lock A's previous process held
/// instead of waiting for the OSD to drop that client's watch (30 s). (The rule
/// itself is unit-tested in target-core's `failover.rs`.)
fn a_restarted_lock_owner_is_fenced(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let features = "layering,exclusive-lock,object-map,fast-diff";
    let path = ceph.create_image_with_features(&image("restart", f), 16 * MIB, features);
    let (mut a, b) = gateways(f, &path, true);
    both_answering(&a, &b);
    let mut ca = login(&a, 1);
    let r = ca.scsi(1, &write10(0, 8), &[0xa1; 4096], 0).expect("write");
    assert_eq!(r.status, 0, "{r:?}");
    let owner = ceph.lock_owner(&path).expect("A holds the lock");
    drop(ca);
    a.signal(libc::SIGKILL);
    assert_eq!(a.wait_exit(Duration::from_secs(10)), Some(-1), "killed");
    let a2 = gateway(f, &path, Some("1"));
    let mut cb = login(&b, 2);
    cb.stream()
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let (took, _) = write_until_good(&mut cb, 8, 0xb1, &[]);
    eprintln!("restart: B's first write took {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    wait_log(
        &b,
        "broke the lock of a dead gateway process on port 1",
        Duration::from_secs(5),
    );
    // Whether A answered again before it counted as gone (then the lock was broken
    // as its previous process's, else as a gone gateway's) depends on how fast the
    // new A started: on a loaded machine it can miss three questions. Either way
    // the write did not wait for the OSD's 30 s.
    let failed_over = b.log_lines().iter().any(|l| l.contains("(failover)"));
    eprintln!("restart: B failed over meanwhile: {failed_over}");
    let mut c2 = login(&a2, 1);
    for (lba, fill) in [(0u32, 0xa1u8), (8, 0xb1)] {
        let r = read_past_unit_attentions(&mut c2, lba);
        assert!(r.data.iter().all(|&x| x == fill), "block {lba}");
    }
    let _ = ceph.ceph(&["osd", "blocklist", "rm", &owner]);
}

/// The SIGKILL run on an image with `features`: answers the longest a write through
/// B took (the client waits up to 40 s for each).
fn writer_survives_sigkill(f: Flavour, tag: &str, features: &str) -> Duration {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image(tag, f), 64 * MIB, features);
    let (mut a, b) = gateways(f, &path, true);
    // Each has heard the other (and, with exclusive-lock, its lock client).
    both_answering(&a, &b);
    let a_portal = a.portal;
    let chunks = 96u64;
    let len = 256 * 1024usize;
    let blocks = (len / 512) as u16;
    // WRITE(10) with FUA: acknowledged means on the OSDs.
    let fua_write = move |chunk: u64| {
        let mut cdb = write10((chunk * len as u64 / 512) as u32, blocks);
        cdb[1] |= 0x08;
        cdb
    };
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let b_portal = b.portal;
    let writer = std::thread::spawn(move || {
        let mut c = Client::connect(a_portal).expect("connect A");
        c.isid.0[5] = 9;
        assert_eq!(c.login(Some(IQN)).unwrap(), (0, 0));
        let mut on_b = false;
        let mut chunk = 0;
        let mut longest = Duration::ZERO;
        while chunk < chunks {
            let data = pattern(chunk, 1, len);
            let sent = Instant::now();
            let r = c.scsi(1, &fua_write(chunk), &data, 0);
            if on_b {
                longest = longest.max(sent.elapsed());
            }
            match r {
                Ok(r) if r.status == 0 => {
                    let _ = tx.send(chunk);
                    chunk += 1;
                }
                // A unit attention (e.g. the state change) is retried, as an
                // initiator does.
                Ok(r) if r.status == 2 && r.sense_key_asc().map(|s| s.0) == Some(6) => {}
                Ok(r) => panic!("chunk {chunk}: {r:?}"),
                Err(e) => {
                    assert!(!on_b, "B failed too: {e}");
                    // The path is gone: fail over to B and send the write again.
                    on_b = true;
                    c = Client::connect(b_portal).expect("connect B");
                    c.isid.0[5] = 9;
                    assert_eq!(c.login(Some(IQN)).unwrap(), (0, 0));
                    let wait = Some(Duration::from_secs(40));
                    c.stream().set_read_timeout(wait).expect("timeout");
                }
            }
        }
        (on_b, longest)
    });
    // Kill A once a quarter of the chunks are acknowledged.
    let mut acked = 0;
    while acked < chunks / 4 {
        acked = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("writer stalled")
            + 1;
    }
    a.signal(libc::SIGKILL);
    assert_eq!(a.wait_exit(Duration::from_secs(10)), Some(-1), "killed");
    // Then B's group becomes active/optimized, as a failover does.
    set(&b, "alua_state", "1:unavailable");
    set(&b, "alua_state", "2:active/optimized");
    let (failed_over, longest) = writer.join().expect("writer");
    assert!(
        failed_over,
        "the writer never needed B: the kill came too late"
    );
    let mut cb = login(&b, 1);
    for chunk in 0..chunks {
        let r = cb
            .scsi(
                1,
                &read10((chunk * len as u64 / 512) as u32, blocks),
                &[],
                len as u32,
            )
            .expect("read");
        assert_eq!(r.status, 0, "{r:?}");
        assert!(r.data == pattern(chunk, 1, len), "chunk {chunk} differs");
    }
    eprintln!("{tag}: the longest write through B took {longest:?}");
    let lines = b.log_lines();
    let broke = lines
        .iter()
        .find(|l| l.contains("broke the lock of a dead gateway process on port 1"));
    eprintln!("{tag}: {broke:?}");
    let broke = broke.is_some();
    // Only a lock A held is broken, and only with exclusive-lock is there one.
    assert_eq!(broke, features.contains("exclusive-lock"), "{lines:#?}");
    longest
}

/// The active/optimized gateway A killed: B sees it no longer answer, makes its own
/// group active/optimized and A's unavailable by itself, and announces it once on
/// each nexus. A started again adopts the failover it missed and serves as
/// active/non-optimized, the same view as B's.
fn failover_without_an_administrator(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image_with_features(&image("failover", f), 16 * MIB, "layering");
    let (mut a, b) = gateways(f, &path, true);
    // Each has heard the other before anything is gone.
    both_answering(&a, &b);
    let (mut b1, mut b2) = (login(&b, 1), login(&b, 2));
    let start = [group(0, 1, 0), group(1, 2, 0)].concat();
    assert_eq!(rtpg(&mut b1, false), [&[0, 0, 0, 24][..], &start].concat());
    a.signal(libc::SIGKILL);
    assert_eq!(a.wait_exit(Duration::from_secs(10)), Some(-1), "killed");
    let killed = Instant::now();
    wait_log(
        &b,
        "tid 1: port group 2:active/optimized (failover)",
        Duration::from_secs(30),
    );
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(25), "failover took {took:?}");
    let read = read10(0, 8);
    for c in [&mut b1, &mut b2] {
        let r = c.scsi(1, &read, &[], 4096).unwrap();
        assert_eq!(
            (r.status, r.sense_key_asc()),
            (2, Some((6, 0x2a, 0x06))),
            "ASYMMETRIC ACCESS STATE CHANGED"
        );
        let r = c.scsi(1, &read, &[], 4096).unwrap();
        assert_eq!((r.status, r.data.len()), (0, 4096), "once: {r:?}");
        let failed_over = [group(3, 1, 2), group(0, 2, 2)].concat();
        assert_eq!(rtpg(c, false), [&[0, 0, 0, 24][..], &failed_over].concat());
    }
    let show = b.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(
        show.contains("        Port group 1: unavailable ports 1\n        Port group 2: active/optimized ports 2\n"),
        "{show}"
    );
    // A back (as its administrator configured it: itself active/optimized): B lets
    // it serve again, not preferred, and A adopts the failover it missed, so both
    // gateways report the same states.
    let a = gateway(f, &path, Some("1"));
    wait_log(
        &b,
        "tid 1: port group 1:active/non-optimized (failover)",
        Duration::from_secs(30),
    );
    let r = b1.scsi(1, &read, &[], 4096).unwrap();
    assert_eq!(r.sense_key_asc(), Some((6, 0x2a, 0x06)));
    let back = [&[0, 0, 0, 24][..], &group(1, 1, 2), &group(0, 2, 2)].concat();
    assert_eq!(rtpg(&mut b1, false), back);
    wait_log(
        &a,
        "tid 1: port group 2:active/optimized (as the gateway on port 2 reports)",
        Duration::from_secs(30),
    );
    let mut a1 = login(&a, 3);
    let start = Instant::now();
    loop {
        let r = a1.scsi(1, &[0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], &[], 256);
        let r = r.expect("report target port groups");
        if r.status == 0 && r.data == back {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "A's view {r:?} never became B's; A's log: {:#?}",
            a.log_lines()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let show = a.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(
        show.contains("        Port group 1: active/non-optimized ports 1\n        Port group 2: active/optimized ports 2\n"),
        "{show}"
    );
    // One view, and it holds: B never took anything from A.
    std::thread::sleep(failover_round() * 2);
    assert_eq!(rtpg(&mut a1, false), back);
    let r = b1.scsi(1, &read, &[], 4096).unwrap();
    assert_eq!(
        (r.status, r.data.len()),
        (0, 4096),
        "no further change on B"
    );
    assert_eq!(rtpg(&mut b1, false), back);
    assert!(
        !b.log_lines()
            .iter()
            .any(|l| l.contains("as the gateway on port 1 reports")),
        "{:#?}",
        b.log_lines()
    );
    drop(a);
}

/// How often a gateway asks the others (tgtd-common's `gateway_watch::EVERY`) plus
/// the longest it waits for their answers.
fn failover_round() -> Duration {
    Duration::from_secs(4)
}

both_flavours!(
    all_tg_pt_registers_through_every_gateway,
    failover_without_an_administrator,
    qemu_writes_through_a_reads_through_b,
    alua_through_each_gateway,
    unit_attentions_cross_gateways,
    same_isid_on_two_gateways_is_two_nexuses,
    multipath_io_across_gateways,
    written_on_a_read_on_b,
    interleaved_writes_with_exclusive_lock,
    writer_survives_sigkill_of_a,
    writer_survives_sigkill_of_the_lock_owner,
    a_frozen_lock_owner_is_fenced_and_serves_again,
    a_restarted_lock_owner_is_fenced,
    multi_sector_compare_and_write_is_atomic_across_gateways
);
