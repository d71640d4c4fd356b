//! Long mixed load with `iscsi-bench --verify` on both daemons: 64 sessions x QD32,
//! 70/30 read/write, I/O sizes 4 KiB to 256 KiB, for `TGTD_LOAD_SECS` seconds
//! (default 60; set it lower for a quick local run):
//! - on a plain file: no command error, no verify mismatch;
//! - on a fault store that fails reads and writes of one LBA range with EIO: every
//!   failed command touches that range (and its sense names an LBA in it), every
//!   other command succeeds, and verification of the rest passes;
//! - on a file whose daemon is killed with SIGKILL in the middle of a write run: after
//!   a restart on the same file, every block of every FUA write acknowledged before
//!   the kill, and of every plain write an acknowledged SYNCHRONIZE CACHE covered (the
//!   `--journal`), reads back with its LBA and at least the acknowledged generation
//!   (`--verify-only`). `durability.rs` proves the same contract for
//!   SYNCHRONIZE CACHE and FUA with one session on every store kind; this is it under
//!   load.
//!
//! The tests take a lock and run one at a time: 2048 commands in flight against two
//! daemons at once on a small machine would measure the machine, not the daemons.
#![allow(clippy::disallowed_methods)]

use integration_tests::{
    bin, both_flavours, run_with_timeout, wait_with_timeout, Daemon, Flavour, Run, TempDir,
};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-12.com.example:load.target";
/// 4096 slots of 256 KiB: plenty of room for 2048 commands in flight.
const LU_SIZE: u64 = 1 << 30;
/// The fault range: 8 MiB at 256 MiB (512-byte blocks).
const FAULT_FIRST: u64 = 524_288;
const FAULT_LAST: u64 = FAULT_FIRST + 16_383;

static SERIAL: Mutex<()> = Mutex::new(());

/// One load test at a time (a failed one poisons the lock; the next still runs).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Seconds each load run lasts: `TGTD_LOAD_SECS`, default 60.
fn load_secs() -> f64 {
    match std::env::var("TGTD_LOAD_SECS") {
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .unwrap_or_else(|| panic!("TGTD_LOAD_SECS={v:?} is not a positive number")),
        Err(_) => 60.0,
    }
}

/// The load of the issue: 64 sessions x QD32, `read_pct` % reads (70 in the issue),
/// 4k..256k, verified.
fn load_args(secs: f64, read_pct: u8) -> Vec<String> {
    [
        "--sessions",
        "64",
        "--qd",
        "32",
        "--rw",
        "mix",
        "--read-pct",
        &read_pct.to_string(),
        "--bs",
        "4k-256k",
        "--verify",
        "--json",
        "--connect-timeout",
        "30",
        "--duration",
        &secs.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn bench(d: &Daemon, args: &[String], secs: f64) -> Run {
    let mut cmd = Command::new(bin("iscsi-bench"));
    cmd.arg(d.portal_str()).arg(IQN).args(args);
    // Set-up, the run, the drain (at most 30 s) and the logout.
    run_with_timeout(&mut cmd, Duration::from_secs_f64(secs + 120.0))
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn u(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing: {v}"))
}

/// One line with the figures of a run (shown with --nocapture; the README's and the
/// issue's numbers come from here).
fn summary(f: Flavour, what: &str, v: &serde_json::Value) {
    eprintln!(
        "load {} {what}: {:.1} s, {} ops ({} reads, {} writes), {:.0} IOPS, {:.1} MB/s, \
         latency p50 {:.0} us p99 {:.0} us max {:.0} us, {} blocks verified, {} errors, \
         {} expected errors",
        f.binary(),
        v["duration_s"].as_f64().unwrap_or(0.0),
        v["ops"],
        v["reads"],
        v["writes"],
        v["iops"].as_f64().unwrap_or(0.0),
        v["mb_per_s"].as_f64().unwrap_or(0.0),
        v["latency_us"]["p50"].as_f64().unwrap_or(0.0),
        v["latency_us"]["p99"].as_f64().unwrap_or(0.0),
        v["latency_us"]["max"].as_f64().unwrap_or(0.0),
        v["verify_blocks_checked"],
        v["errors_total"],
        v["errors_expected_total"],
    );
}

/// What every load run must show: the mix ran for the whole time, both directions
/// and a spread of sizes, with blocks verified and no mismatch.
fn assert_sound_run(v: &serde_json::Value, secs: f64) {
    assert_eq!(v["sessions"], 64, "{v}");
    assert_eq!(v["qd"], 32, "{v}");
    assert_eq!(v["verify_mismatches"], 0, "{v}");
    assert!(
        v["duration_s"].as_f64().unwrap() >= secs * 0.95,
        "the run ended early: {v}"
    );
    let (reads, writes) = (u(v, "reads"), u(v, "writes"));
    assert!(reads > 0 && writes > 0, "{v}");
    let read_share = reads as f64 / (reads + writes) as f64;
    assert!(
        (0.6..0.8).contains(&read_share),
        "read share {read_share}: {v}"
    );
    // Mixed sizes: the mean lies strictly between the smallest and the largest.
    let mean = (u(v, "bytes_read") + u(v, "bytes_written")) as f64 / (reads + writes) as f64;
    assert!(mean > 8192.0 && mean < 200_000.0, "mean I/O {mean} B: {v}");
    assert!(u(v, "verify_blocks_checked") > 0, "{v}");
}

/// (a) 64 x QD32 mixed load on a file: 0 errors, 0 mismatches.
fn mixed_load_verifies(f: Flavour) {
    let _one = serial();
    let t0 = Instant::now();
    let secs = load_secs();
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, LU_SIZE);
    let r = bench(&d, &load_args(secs, 70), secs);
    let v = json(&r);
    summary(f, "plain file", &v);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["errors_total"], 0, "{v}");
    assert_eq!(v["failed_commands_total"], 0, "{v}");
    assert_sound_run(&v, secs);
    eprintln!(
        "load {} plain file: wall {:.1} s",
        f.binary(),
        t0.elapsed().as_secs_f64()
    );
}

/// (b) The same load on a fault store failing reads and writes of one range: only
/// that range errors (each failure attributed by LBA), the rest verifies.
fn fault_range_errors_only_there(f: Flavour) {
    let _one = serial();
    let t0 = Instant::now();
    let secs = load_secs();
    let d = Daemon::start(f, &[]);
    let rules = format!("read:eio@{FAULT_FIRST}-{FAULT_LAST}+write:eio@{FAULT_FIRST}-{FAULT_LAST}");
    d.setup_fault_target(1, IQN, LU_SIZE, &rules);
    let mut args = load_args(secs, 70);
    args.extend([
        "--expect-errors".to_string(),
        format!("{FAULT_FIRST}-{FAULT_LAST}"),
    ]);
    let r = bench(&d, &args, secs);
    let v = json(&r);
    summary(f, "fault range", &v);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["errors_total"], 0, "errors outside the fault range: {v}");
    assert_sound_run(&v, secs);
    let expected = u(&v, "errors_expected_total");
    assert!(expected > 0, "the fault range was never hit: {v}");
    assert_eq!(u(&v, "failed_commands_total"), expected, "{v}");
    // Every error is a MEDIUM ERROR (unrecovered read error or write error).
    for row in v["errors_expected"].as_array().unwrap() {
        assert_eq!(row["sense_key"], 3, "{row}");
        assert!(row["asc"] == 0x11 || row["asc"] == 0x0c, "{row}");
    }
    // Every failed command overlaps the range, and its sense names a block in it.
    let failed = v["failed_commands"].as_array().unwrap();
    assert!(!failed.is_empty(), "{v}");
    let (mut reads, mut writes) = (0, 0);
    for c in failed {
        let (lba, blocks) = (u(c, "lba"), u(c, "blocks"));
        assert!(
            lba <= FAULT_LAST && lba + blocks > FAULT_FIRST,
            "a command outside the range failed: {c}"
        );
        let info = u(c, "information");
        assert!(
            (FAULT_FIRST..=FAULT_LAST).contains(&info) && (lba..lba + blocks).contains(&info),
            "{c}"
        );
        assert_eq!(c["expected"], true, "{c}");
        if c["read"] == true {
            reads += 1;
        } else {
            writes += 1;
        }
    }
    assert!(reads > 0 && writes > 0, "{v}");
    eprintln!(
        "load {} fault range: wall {:.1} s",
        f.binary(),
        t0.elapsed().as_secs_f64()
    );
}

/// tid 1 LUN 1 on `store`, bound to ALL.
fn lun_on(d: &Daemon, store: &std::path::Path) {
    d.new_target(1, IQN);
    let r = d.lu_new(1, 1, store.to_str().unwrap(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
}

/// Records in the journal, and whether a SYNCHRONIZE CACHE was journaled.
fn journal_lines(path: &std::path::Path) -> (usize, bool) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let records = text.lines().filter(|l| !l.starts_with('#')).count();
    (records, text.contains("# SYNCHRONIZE CACHE"))
}

/// (c) SIGKILL in the middle of a write run, restart on the same file: every block
/// of every acknowledged FUA write and of every synced write is intact.
fn acknowledged_fua_writes_survive_sigkill_under_load(f: Flavour) {
    let _one = serial();
    let t0 = Instant::now();
    let secs = load_secs();
    let scratch = TempDir::new("load-kill");
    let file = scratch.path("lun.img");
    std::fs::File::create(&file)
        .and_then(|h| h.set_len(LU_SIZE))
        .expect("backing file");
    let journal = scratch.path("acked.journal");
    let mut d = Daemon::start(f, &[]);
    lun_on(&d, &file);
    // The kill ends the run: its own end only bounds it (long enough for a short
    // TGTD_LOAD_SECS too, whose first SYNCHRONIZE CACHE may take seconds at QD 2048).
    let mut args = load_args(secs.max(120.0), 30);
    args.extend(
        [
            "--fua-pct",
            "50",
            "--sync-every",
            "64",
            "--journal",
            journal.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let mut child = Command::new(bin("iscsi-bench"))
        .arg(d.portal_str())
        .arg(IQN)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iscsi-bench");
    // Kill a quarter into the run (at most 15 s in), once FUA writes and a
    // SYNCHRONIZE CACHE have been acknowledged (the journal is written through).
    let kill_at = Duration::from_secs_f64((secs / 4.0).clamp(1.0, 15.0));
    let started = Instant::now();
    loop {
        let (records, synced) = journal_lines(&journal);
        if (records >= 100 && synced) || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(kill_at);
    assert!(d.alive(), "the daemon died under load");
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the write run ended before the kill"
    );
    d.signal(libc::SIGKILL);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(-1), "killed");
    let out = wait_with_timeout(
        child,
        Duration::from_secs(90),
        "iscsi-bench after its target died",
    );
    let v = json(&out);
    summary(f, "write run until SIGKILL", &v);
    assert_eq!(
        out.code, 1,
        "the run must fail when its target dies: {out:?}"
    );
    assert!(v["failure"].is_string(), "{v}");
    assert_eq!(v["verify_mismatches"], 0, "{v}");
    let recorded = u(&v, "journal_records");
    assert!(
        recorded > 0,
        "no FUA write was acknowledged before the kill: {v}"
    );
    assert!(
        u(&v, "syncs") > 0,
        "no SYNCHRONIZE CACHE completed before the kill: {v}"
    );
    assert_eq!(journal_lines(&journal), (recorded as usize, true));

    // A new daemon on the same file reads every journaled block back intact.
    let d2 = Daemon::start(f, &[]);
    lun_on(&d2, &file);
    let r = bench(
        &d2,
        &[
            "--verify-only",
            "--journal",
            journal.to_str().unwrap(),
            "--sessions",
            "4",
            "--qd",
            "16",
            "--json",
        ]
        .map(String::from),
        secs,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    summary(f, "read-back after restart", &v);
    assert_eq!(v["verify_mismatches"], 0, "{v}");
    assert_eq!(v["errors_total"], 0, "{v}");
    let blocks = u(&v, "journal_records");
    assert!(blocks > 0, "{v}");
    assert_eq!(u(&v, "verify_blocks_checked"), blocks, "{v}");
    assert_eq!(u(&v, "writes"), 0, "{v}");
    // The read-back can fail: a journaled block zeroed behind the target's back is
    // caught and named.
    let first = std::fs::read_to_string(&journal).unwrap();
    let lba: u64 = first
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap();
    let fh = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&fh, &[0u8; 512], lba * 512).unwrap();
    fh.sync_all().unwrap();
    let r = bench(
        &d2,
        &[
            "--verify-only",
            "--journal",
            journal.to_str().unwrap(),
            "--json",
        ]
        .map(String::from),
        secs,
    );
    assert_eq!(r.code, 1, "{r:?}");
    let v = json(&r);
    assert_eq!(v["verify_mismatches"], 1, "{v}");
    assert_eq!(v["mismatches"][0]["lba"], lba, "{v}");
    drop(d2);
    drop(d);
    eprintln!(
        "load {} SIGKILL: wall {:.1} s",
        f.binary(),
        t0.elapsed().as_secs_f64()
    );
}

both_flavours!(
    mixed_load_verifies,
    fault_range_errors_only_there,
    acknowledged_fua_writes_survive_sigkill_under_load,
);
