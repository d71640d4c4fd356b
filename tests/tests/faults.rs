//! Store failures through the daemons, with the `fault` store: each injected error
//! reaches the initiator as the sense SBC asks for, with the LBA in INFORMATION (fixed
//! and descriptor format); rules change at run time (bad ones refused with the
//! reason); a failed flush stays failed; writes are synced before GOOD when the write
//! cache is off; held and delayed operations; a session on another LU sees none of
//! it; and the daemon's memory and threads are as before.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{read10, write10, Client, ScsiResult};
use integration_tests::{both_flavours, Daemon, Flavour, Run};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-11.test:faults";
const SIZE: u64 = 16 * 1024 * 1024;
const SYNC10: [u8; 10] = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn sparse_file(d: &Daemon, name: &str) -> PathBuf {
    d.sparse_file(name, SIZE)
}

fn lu_new(d: &Daemon, lun: u32, path: &Path, extra: &[&str]) -> Run {
    d.lu_new(1, lun, path.to_str().unwrap(), extra)
}

fn lu_update(d: &Daemon, lun: u32, params: &str) -> Run {
    d.lu_update(1, lun, params)
}

fn update_ok(d: &Daemon, lun: u32, params: &str) {
    let r = lu_update(d, lun, params);
    assert_eq!(r.code, 0, "update {params}: {r:?}");
}

/// Target 1 with LUN 1 a fault store over a file (rules `rules`), LUN 2 a plain file.
fn setup(d: &Daemon, rules: &str) {
    d.new_target(1, IQN);
    let bsopts = format!("inner=rdwr;rules={rules}");
    let r = lu_new(
        d,
        1,
        &sparse_file(d, "fault.img"),
        &["--bstype", "fault", "--bsopts", &bsopts],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = lu_new(d, 2, &sparse_file(d, "plain.img"), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
}

fn session(d: &Daemon, isid_tail: u8) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    c.isid.0[5] = isid_tail;
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

/// (sense key, ASC, ASCQ, INFORMATION when valid), fixed or descriptor format.
fn sense(r: &ScsiResult) -> (u8, u8, u8, Option<u64>) {
    assert_eq!(r.status, 2, "expected CHECK CONDITION: {r:?}");
    let s = &r.sense;
    match s.first().map(|b| b & 0x7f) {
        Some(0x70 | 0x71) => {
            let info = (s[0] & 0x80 != 0)
                .then(|| u64::from(u32::from_be_bytes(s[3..7].try_into().unwrap())));
            (s[2] & 0x0f, s[12], s[13], info)
        }
        Some(0x72 | 0x73) => {
            // Descriptors after the 8-byte header; information descriptor type 00h.
            let mut info = None;
            let mut at = 8;
            while at + 2 <= s.len() {
                let (kind, len) = (s[at], usize::from(s[at + 1]));
                if kind == 0 && s[at + 2] & 0x80 != 0 && at + 12 <= s.len() {
                    info = Some(u64::from_be_bytes(s[at + 4..at + 12].try_into().unwrap()));
                }
                at += 2 + len;
            }
            (s[1] & 0x0f, s[2], s[3], info)
        }
        other => panic!("no sense data ({other:?}): {r:?}"),
    }
}

fn block(n: u16, byte: u8) -> Vec<u8> {
    vec![byte; usize::from(n) * 512]
}

/// VmRSS in KiB and the thread count of `pid`.
fn rss_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("VmRSS:"), field("Threads:"))
}

/// A second session that reads and writes LUN 2 until stopped; counts any answer that
/// is not GOOD.
struct Bystander {
    stop: Arc<AtomicBool>,
    bad: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bystander {
    fn start(d: &Daemon) -> Bystander {
        let mut c = session(d, 0x42);
        let stop = Arc::new(AtomicBool::new(false));
        let bad = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let (s, b, n) = (stop.clone(), bad.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut lba = 0u32;
            while !s.load(Ordering::Relaxed) {
                let data = block(8, lba as u8);
                let w = c.scsi(2, &write10(lba, 8), &data, 0).expect("write");
                let r = c.scsi(2, &read10(lba, 8), &[], 4096).expect("read");
                if w.status != 0 || r.status != 0 || r.data != data {
                    b.fetch_add(1, Ordering::Relaxed);
                }
                n.fetch_add(1, Ordering::Relaxed);
                lba = (lba + 8) % 4096;
            }
            let _ = c.logout();
        });
        Bystander {
            stop,
            bad,
            done,
            thread: Some(thread),
        }
    }

    /// Stop; the number of rounds that were not all GOOD, and the rounds run.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("bystander");
        (
            self.bad.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
        )
    }
}

fn settle_and_measure(d: &Daemon) -> (u64, u64) {
    std::thread::sleep(Duration::from_millis(200));
    rss_and_threads(d.pid())
}

/// Each kind of failure, as the initiator sees it.
fn injected_errors_reach_the_initiator(f: Flavour) {
    let d = Daemon::start(f, &[]);
    setup(
        &d,
        "read:eio@100-199+write:enospc@300-399+write:eio@500-509:after=2",
    );
    update_ok(&d, 1, "thin_provisioning=1");
    let mut c = session(&d, 0x01);
    // Warm up both LUs before measuring.
    for lun in [1, 2] {
        for lba in (0..64).step_by(8) {
            let r = c.scsi(lun, &write10(lba, 8), &block(8, 7), 0).unwrap();
            assert_eq!(r.status, 0);
            assert_eq!(c.scsi(lun, &read10(lba, 8), &[], 4096).unwrap().status, 0);
        }
    }
    let (rss0, threads0) = settle_and_measure(&d);
    let by = Bystander::start(&d);

    for _ in 0..50 {
        // READ across the bad range: the first bad LBA is reported.
        let r = c.scsi(1, &read10(90, 20), &[], 20 * 512).unwrap();
        assert_eq!(sense(&r), (0x3, 0x11, 0x00, Some(100)), "{r:?}");
        // Around it: fine.
        assert_eq!(c.scsi(1, &read10(80, 20), &[], 20 * 512).unwrap().status, 0);
        assert_eq!(c.scsi(1, &read10(200, 8), &[], 4096).unwrap().status, 0);
        // ENOSPC on a thin LU.
        let r = c.scsi(1, &write10(310, 4), &block(4, 1), 0).unwrap();
        assert_eq!(sense(&r), (0x7, 0x27, 0x07, Some(310)), "{r:?}");
    }
    // Logged once per kind with the LBA range, not once per failure.
    let log = d.log_lines();
    let count = |what: &str| log.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count("read error at LBA 100-109"), 1, "{log:#?}");
    assert_eq!(count("out of space at LBA 310-313"), 1, "{log:#?}");
    assert_eq!(count("read error"), 1, "{log:#?}");
    // `after=2`: two writes pass, then the third fails at its first LBA in range.
    for _ in 0..2 {
        let r = c.scsi(1, &write10(505, 2), &block(2, 2), 0).unwrap();
        assert_eq!(r.status, 0, "{r:?}");
    }
    let r = c.scsi(1, &write10(498, 4), &block(4, 2), 0).unwrap();
    assert_eq!(sense(&r), (0x3, 0x0c, 0x00, Some(500)), "{r:?}");
    // ENOSPC on a fully provisioned LU is a WRITE ERROR.
    update_ok(&d, 1, "thin_provisioning=0");
    let r = c.scsi(1, &write10(300, 1), &block(1, 1), 0).unwrap();
    assert_eq!(sense(&r), (0x3, 0x0c, 0x00, Some(300)), "{r:?}");
    // Descriptor format: the information descriptor.
    update_ok(&d, 1, "sense_format=1");
    let r = c.scsi(1, &read10(150, 1), &[], 512).unwrap();
    assert_eq!(r.sense[0] & 0x7f, 0x72, "{r:?}");
    assert_eq!(sense(&r), (0x3, 0x11, 0x00, Some(150)), "{r:?}");
    update_ok(&d, 1, "sense_format=0");

    // Rules change at run time; a bad rule is refused with the reason, rules kept.
    let bad = lu_update(&d, 1, "fault=read:boom@1-2");
    assert_eq!(bad.code, 22, "{bad:?}");
    assert!(
        bad.stderr.starts_with(
            "tgtadm: invalid request: fault rule 'read:boom@1-2': unknown action 'boom'"
        ),
        "{bad:?}"
    );
    let r = c.scsi(1, &read10(100, 1), &[], 512).unwrap();
    assert_eq!(sense(&r).3, Some(100), "old rules in force");
    update_ok(&d, 1, "fault=");
    assert_eq!(c.scsi(1, &read10(100, 100), &[], 51200).unwrap().status, 0);
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(show.contains("Backing store type: fault"), "{show}");
    assert!(
        show.contains("Backing store options: inner=rdwr;rules=\n"),
        "{show}"
    );

    // A failed flush, and every flush after it, until the LU is opened again.
    update_ok(&d, 1, "fault=flush:eio:times=1");
    let r = c.scsi(1, &write10(0, 1), &block(1, 3), 0).unwrap();
    assert_eq!(r.status, 0, "{r:?}");
    for _ in 0..3 {
        let r = c.scsi(1, &SYNC10, &[], 0).unwrap();
        assert_eq!(sense(&r), (0x3, 0x0c, 0x00, Some(0)), "{r:?}");
    }
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(show.contains("rules=flush:eio:times=1"), "{show}");

    let (bad_rounds, rounds) = by.finish();
    assert_eq!(bad_rounds, 0, "the other LU saw errors");
    assert!(rounds > 0);
    assert!(c.logout().unwrap());
    let (rss1, threads1) = settle_and_measure(&d);
    assert_eq!(threads1, threads0, "threads");
    assert!(
        rss1 < rss0 + 16 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB"
    );
}

/// With the write cache off (WCE=0) a plain WRITE is made durable before GOOD: with a
/// failing flush underneath, the WRITE itself fails.
fn write_through_when_the_cache_is_off(f: Flavour) {
    let d = Daemon::start(f, &[]);
    setup(&d, "flush:eio");
    let mut c = session(&d, 0x01);
    let r = c.scsi(1, &write10(8, 1), &block(1, 9), 0).unwrap();
    assert_eq!(r.status, 0, "WCE=1: no flush, GOOD: {r:?}");
    update_ok(&d, 1, "write_cache=0");
    let r = c.scsi(1, &write10(8, 1), &block(1, 9), 0).unwrap();
    assert_eq!(sense(&r), (0x3, 0x0c, 0x00, Some(8)), "{r:?}");
    // FUA under WCE=1 too.
    update_ok(&d, 1, "write_cache=1");
    let mut fua = write10(9, 1);
    fua[1] |= 0x08;
    let r = c.scsi(1, &fua, &block(1, 9), 0).unwrap();
    assert_eq!(sense(&r), (0x3, 0x0c, 0x00, Some(9)), "{r:?}");
    // The other LU flushes fine.
    assert_eq!(c.scsi(2, &SYNC10, &[], 0).unwrap().status, 0);
}

/// A held write waits until the rules change; a delay delays; other sessions and LUs
/// go on meanwhile, and no thread is left behind.
fn held_and_delayed_operations(f: Flavour) {
    let d = Daemon::start(f, &[]);
    setup(&d, "");
    let mut other = session(&d, 0x02);
    assert_eq!(other.scsi(2, &read10(0, 1), &[], 512).unwrap().status, 0);
    let (_, threads0) = settle_and_measure(&d);

    update_ok(&d, 1, "fault=write:hang@10");
    let mut c = session(&d, 0x01);
    let (tx, rx) = mpsc::channel();
    let held = std::thread::spawn(move || {
        let r = c.scsi(1, &write10(10, 1), &block(1, 5), 0).unwrap();
        tx.send(r.status).unwrap();
        c
    });
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "held");
    // Meanwhile: another LU, another session.
    for lba in 0..20 {
        let r = other.scsi(2, &write10(lba, 1), &block(1, 1), 0).unwrap();
        assert_eq!(r.status, 0);
    }
    // A read of the same LU is not held (writes only).
    assert_eq!(other.scsi(1, &read10(10, 1), &[], 512).unwrap().status, 0);
    update_ok(&d, 1, "fault=");
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
    let mut c = held.join().unwrap();
    let r = c.scsi(1, &read10(10, 1), &[], 512).unwrap();
    assert_eq!(r.data, block(1, 5), "the held write landed");

    update_ok(&d, 1, "fault=read:delay=500ms@0-7");
    let t = Instant::now();
    assert_eq!(c.scsi(1, &read10(0, 1), &[], 512).unwrap().status, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(c.scsi(1, &read10(8, 1), &[], 512).unwrap().status, 0);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "outside the range"
    );
    update_ok(&d, 1, "fault=");
    assert!(c.logout().unwrap());
    let (_, threads1) = settle_and_measure(&d);
    assert_eq!(threads1, threads0, "threads");
}

/// libiscsi's tools see the same sense: iscsi-inq works, and a libiscsi READ of a
/// failing range fails while the rest of its suite passes on a clean LU.
fn fault_store_passes_the_read_suite_without_rules(f: Flavour) {
    let d = Daemon::start(f, &[]);
    setup(&d, "");
    let passed = integration_tests::run_conformance(&d, IQN, 1, &["SCSI.Read10*", "SCSI.Write10*"]);
    assert!(passed > 0);
}

both_flavours!(
    injected_errors_reach_the_initiator,
    write_through_when_the_cache_is_off,
    held_and_delayed_operations,
    fault_store_passes_the_read_suite_without_rules
);
