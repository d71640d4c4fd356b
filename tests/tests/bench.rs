//! iscsi-bench against both daemons: verify runs pass, a block corrupted behind the
//! target's back is caught and named, JSON parses, digests negotiate, bad arguments
//! and unreachable portals exit 2 with one line.
#![allow(clippy::disallowed_methods)]

use integration_tests::{
    bin, both_flavours, proc_stat_fields, run_with_timeout, Daemon, Flavour, Run,
};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::Duration;

const IQN: &str = "iqn.2026-12.com.example:bench.target";
const SIZE: u64 = 8 * 1024 * 1024;

fn bench(d: &Daemon, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("iscsi-bench"));
    cmd.arg(d.portal_str()).arg(IQN).args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(60))
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// A mixed random run of `bs` blocks with verification over the first 2048
/// sectors, `ops` commands at depth `qd` per session, with `extra` options: passes
/// (exit 0, every command done, no mismatch, blocks checked, reads and writes both
/// ran). Returns the report.
fn mixed_verify_passes(
    d: &Daemon,
    bs: &str,
    qd: &str,
    ops: u64,
    extra: &[&str],
) -> serde_json::Value {
    let ops_arg = ops.to_string();
    let mut args = vec![
        "--rw",
        "mix",
        "--read-pct",
        "50",
        "--verify",
        "--qd",
        qd,
        "--bs",
        bs,
        "--lba-range",
        "0:2048",
        "--ops",
        &ops_arg,
        "--json",
    ];
    args.extend_from_slice(extra);
    let r = bench(d, &args);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    assert_eq!(v["ops"], ops);
    assert_eq!(v["verify_mismatches"], 0);
    assert!(v["verify_blocks_checked"].as_u64().unwrap() > 0, "{v}");
    assert!(v["reads"].as_u64().unwrap() > 0 && v["writes"].as_u64().unwrap() > 0);
    v
}

/// A short mixed random run with verification, two sessions: passes, checks blocks.
fn verify_mixed_run_passes(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    mixed_verify_passes(&d, "4k", "8", 3000, &["--sessions", "2"]);
}

/// 1 MiB commands, read data in 256 KiB Data-In PDUs (gathered) and in one 1 MiB PDU
/// each (handed over as the read buffer's slice, buffers recycled), with and without
/// a data digest: a sequential verify run passes every way.
fn large_reads_verify(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    for (mrdsl, digest) in [("256k", false), ("1m", false), ("1m", true)] {
        let mut args = vec![
            "--rw",
            "mix",
            "--read-pct",
            "50",
            "--pattern",
            "seq",
            "--verify",
            "--qd",
            "4",
            "--bs",
            "1m",
            "--ops",
            "64",
            "--max-recv-data-segment-length",
            mrdsl,
            "--json",
        ];
        if digest {
            args.extend(["--header-digest", "--data-digest"]);
        }
        let r = bench(&d, &args);
        assert_eq!(r.code, 0, "{mrdsl} {digest}: {r:?}");
        let v = json(&r);
        assert_eq!(v["ops"], 64, "{v}");
        assert_eq!(v["errors_total"], 0, "{v}");
        assert_eq!(v["verify_mismatches"], 0, "{v}");
        assert!(v["verify_blocks_checked"].as_u64().unwrap() > 0, "{v}");
    }
}

/// One session of four connections (MC/S) on a daemon with two event-loop threads, so
/// the session's connections are served by different threads: a mixed verify run
/// passes (the bench refuses to run unless all four joined: see the last check).
fn verify_mixed_run_over_four_connections(f: Flavour) {
    let d = Daemon::start(f, &["--threads", "2"]);
    d.setup_file_target(1, IQN, SIZE);
    let r = bench(
        &d,
        &[
            "--rw",
            "mix",
            "--read-pct",
            "50",
            "--verify",
            "--connections",
            "4",
            "--qd",
            "16",
            "--bs",
            "4k",
            "--lba-range",
            "0:2048",
            "--ops",
            "4000",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    assert_eq!(v["connections"], 4);
    assert_eq!(v["ops"], 4000);
    assert_eq!(v["verify_mismatches"], 0);
    assert!(v["verify_blocks_checked"].as_u64().unwrap() > 0, "{v}");
    assert!(v["reads"].as_u64().unwrap() > 0 && v["writes"].as_u64().unwrap() > 0);
    // More connections than the target allows: a clear setup error (exit 2).
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
    let r = bench(&d, &["--connections", "4", "--ops", "10"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("allows 2 connection(s) per session, not 4"),
        "{r:?}"
    );
}

/// Write a stamped range, overwrite bytes of one block in the backing file, read the
/// range back with --verify: exit 1, and the LBA is named.
fn corrupted_block_is_caught(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let file = d.setup_file_target(1, IQN, SIZE);
    let range = ["--lba-range", "0:256", "--bs", "4k", "--pattern", "seq"];
    let w = bench(
        &d,
        &[&["--rw", "write", "--verify", "--ops", "32"][..], &range].concat(),
    );
    assert_eq!(w.code, 0, "{w:?}");
    // A clean read pass sees every block stamped.
    let r = bench(
        &d,
        &[
            &["--rw", "read", "--verify", "--ops", "32", "--json"][..],
            &range,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    assert_eq!(v["verify_blocks_checked"], 256);
    assert_eq!(v["verify_blocks_unchecked"], 0);
    // Corrupt the payload of LBA 37 behind the target's back.
    let fh = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    fh.write_all_at(b"CORRUPTION", 37 * 512 + 100).unwrap();
    fh.sync_all().unwrap();
    let r = bench(
        &d,
        &[
            &["--rw", "read", "--verify", "--ops", "32", "--json"][..],
            &range,
        ]
        .concat(),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("LBA 37"), "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["verify_mismatches"], 1);
    assert_eq!(v["mismatches"][0]["lba"], 37);
    assert!(
        v["mismatches"][0]["found"]
            .as_str()
            .unwrap()
            .contains("bad"),
        "{v}"
    );
}

/// The JSON report holds the fields later load tests read.
fn json_report_has_fields(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let svg = d.dir.path("bench.svg");
    let r = bench(
        &d,
        &[
            "--rw",
            "read",
            "--duration",
            "1",
            "--qd",
            "4",
            "--json",
            "--svg",
            svg.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    for k in [
        "iops",
        "mb_per_s",
        "ops",
        "reads",
        "writes",
        "duration_s",
        "errors_total",
        "errors",
        "block_size",
        "lu_blocks",
    ] {
        assert!(!v[k].is_null(), "{k} missing: {v}");
    }
    for k in ["min", "p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_us"][k].as_f64().is_some(), "latency {k}: {v}");
    }
    assert!(v["ops"].as_u64().unwrap() > 0);
    assert!(v["latency_us"]["min"].as_f64() <= v["latency_us"]["p99"].as_f64());
    assert_eq!(v["block_size"], 512);
    assert_eq!(v["lu_blocks"], SIZE / 512);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("polyline"));
}

/// Header and data digests negotiate, and a verified write/read run passes with them.
fn digests_negotiate_and_pass(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let r = bench(
        &d,
        &[
            "--header-digest",
            "--data-digest",
            "--rw",
            "mix",
            "--verify",
            "--bs",
            "64k",
            "--lba-range",
            "0:4096",
            "--ops",
            "400",
            "--qd",
            "8",
            "--json",
            "--initial-r2t",
            "yes",
            "--immediate-data",
            "no",
            "--max-burst",
            "16k",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r);
    assert_eq!(v["header_digest"], true);
    assert_eq!(v["data_digest"], true);
    assert_eq!(v["initial_r2t"], true);
    assert_eq!(v["immediate_data"], false);
    assert_eq!(v["verify_mismatches"], 0);
}

/// Bad arguments and an unreachable target: exit 2, one line on stderr.
fn bad_args_and_unreachable_exit_2(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let one_line = |r: &Run| {
        assert_eq!(r.code, 2, "{r:?}");
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{:?}", r.stderr);
        assert!(r.stdout.is_empty(), "{r:?}");
    };
    for args in [
        &["--rw", "sideways"][..],
        &["--bs", "4q"],
        &["--qd", "0"],
        &["--lba-range", "5"],
        &["--bogus"],
        &["--bs", "1000"],
        &["--lba-range", "0:99999999"],
        &["--duration", "-1"],
        &["--bs", "256k-4k"],
        &["--bs", "4k-1000"],
        &["--expect-errors", "9-8"],
        &["--journal", "/nonexistent/dir/journal"],
        &["--verify-only"],
        &[
            "--verify-only",
            "--journal",
            "/nonexistent/journal",
            "--rw",
            "write",
        ],
        &["--verify-only", "--journal", "/nonexistent/journal"],
        &["--fua-pct", "101"],
    ] {
        one_line(&bench(&d, args));
    }
    // Missing TARGET.
    one_line(&run_with_timeout(
        Command::new(bin("iscsi-bench")).arg(d.portal_str()),
        Duration::from_secs(30),
    ));
    // No such target: the login is refused.
    let r = run_with_timeout(
        Command::new(bin("iscsi-bench")).args([&d.portal_str(), "iqn.2026-12.com.example:nope"]),
        Duration::from_secs(30),
    );
    one_line(&r);
    assert!(
        r.stderr.contains("0203") || r.stderr.contains("refused"),
        "{r:?}"
    );
    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = run_with_timeout(
        Command::new(bin("iscsi-bench")).args([&format!("127.0.0.1:{port}"), IQN]),
        Duration::from_secs(30),
    );
    one_line(&r);
    assert!(r.stderr.contains("cannot connect"), "{r:?}");
}

/// CHAP through the daemon: one-way, mutual, and a wrong secret (exit 2).
fn chap_one_way_and_mutual(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let acct = |args: &[&str]| {
        d.tgtadm_ok(&[&["--lld", "iscsi", "--mode", "account"][..], args].concat());
    };
    acct(&[
        "--op",
        "new",
        "--user",
        "bench-user",
        "--password",
        "bench-secret-1",
    ]);
    acct(&[
        "--op",
        "new",
        "--user",
        "bench-target",
        "--password",
        "target-secret-2",
    ]);
    acct(&["--op", "bind", "--tid", "1", "--user", "bench-user"]);
    let quick = ["--ops", "50", "--qd", "4"];
    // Without credentials the login is refused.
    let r = bench(&d, &quick);
    assert_eq!(r.code, 2, "{r:?}");
    let one_way = [
        "--chap-user",
        "bench-user",
        "--chap-secret",
        "bench-secret-1",
    ];
    let r = bench(&d, &[&quick[..], &one_way].concat());
    assert_eq!(r.code, 0, "{r:?}");
    let r = bench(
        &d,
        &[
            &quick[..],
            &[
                "--chap-user",
                "bench-user",
                "--chap-secret",
                "wrong-secret-3",
            ],
        ]
        .concat(),
    );
    assert_eq!(r.code, 2, "{r:?}");
    acct(&[
        "--op",
        "bind",
        "--tid",
        "1",
        "--user",
        "bench-target",
        "--outgoing",
    ]);
    let mutual = [
        "--chap-target-user",
        "bench-target",
        "--chap-target-secret",
        "target-secret-2",
    ];
    let r = bench(&d, &[&quick[..], &one_way, &mutual].concat());
    assert_eq!(r.code, 0, "{r:?}");
    // The target proves itself with a secret we do not expect: we refuse it.
    let bad = [
        "--chap-target-user",
        "bench-target",
        "--chap-target-secret",
        "other-secret-44",
    ];
    let r = bench(&d, &[&quick[..], &one_way, &bad].concat());
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("CHAP"), "{r:?}");
}

/// CPU time (user + system, clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let f = proc_stat_fields(&format!("/proc/{pid}/stat")).expect("daemon's stat");
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// `--busy-poll`: with it off, at its default and long, verify runs pass (the
/// loop's zero-timeout polls lose no readiness or completion, and a worker's
/// completion wakes a sleeping loop or is found by a spinning one), and once the
/// initiator is done the daemon stops spinning: over two idle seconds it uses
/// almost no CPU. A bad value is refused with a clear line.
fn busy_poll_serves_and_goes_idle(f: Flavour) {
    for extra in [&["--busy-poll", "0"][..], &[], &["--busy-poll", "5000"]] {
        let d = Daemon::start(f, extra);
        d.setup_file_target(1, IQN, SIZE);
        mixed_verify_passes(&d, "4k", "1", 2000, &[]);
        // 128 KiB commands go to the store's workers: each completion must reach a
        // loop that may be asleep (`--busy-poll 0`) or spinning.
        mixed_verify_passes(&d, "128k", "1", 300, &[]);
        // Past the spin window (at most 5 ms here) the loops sleep.
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_ticks(d.pid());
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_ticks(d.pid()) - before;
        // A loop spinning on would use 200 ticks (100 Hz) per thread.
        assert!(used <= 10, "{extra:?}: {used} ticks in 2 idle seconds");
    }
    let r = run_with_timeout(
        Command::new(bin(f.binary())).args(["-f", "--busy-poll", "soon"]),
        Duration::from_secs(10),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--busy-poll"), "{r:?}");
}

/// A loop whose requests wait on a slow store does not spin between their
/// completions (`tgtd_common::busy_poll::SLOW_IO`). Here every operation takes
/// 20 ms on one of the test daemon's 4 workers and the spin window is 20 ms, so a
/// completion arrives well inside the window of the one before: a loop that spun
/// after each would never sleep (without the rule: 197-202 ticks in 2 s, a whole
/// CPU). Resting in `epoll_wait` until the next completion, the daemon used 7-8
/// ticks for its ~400 operations, and the run still verifies.
fn busy_poll_rests_while_the_store_is_slow(f: Flavour) {
    let d = Daemon::start(f, &["--busy-poll", "20000"]);
    d.setup_fault_target(1, IQN, SIZE, "any:delay=20ms");
    let before = cpu_ticks(d.pid());
    let r = bench(
        &d,
        &[
            "--qd",
            "8",
            "--bs",
            "4k",
            "--rw",
            "mix",
            "--lba-range",
            "0:2048",
            "--duration",
            "2",
            "--verify",
            "--json",
        ],
    );
    let used = cpu_ticks(d.pid()) - before;
    let v = json(&r);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["errors_total"], 0, "{v}");
    let ops = v["ops"].as_u64().unwrap();
    // 4 workers, 20 ms each: 200 operations a second.
    assert!(ops > 200, "the slow LU served only {ops} operations: {v}");
    assert!(
        used < 60,
        "{used} CPU ticks (100 Hz) in a 2 s run of {ops} operations on a 20 ms store"
    );
}

/// iscsi-bench's own `--busy-poll`: a verify run with it passes on 4 KiB and 128 KiB
/// commands and its loop never waited for events while the run lasted (every turn
/// polled with a zero timeout); without it, the same run waits (at depth 1 every
/// response is waited for). The report says which it was, in JSON and in text.
fn bench_busy_poll_never_waits(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    for bs in ["4k", "128k"] {
        let v = mixed_verify_passes(&d, bs, "1", 1000, &["--busy-poll"]);
        assert_eq!(v["busy_poll"], true, "{v}");
        assert_eq!(v["event_waits"], 0, "{v}");
        let v = mixed_verify_passes(&d, bs, "1", 1000, &[]);
        assert_eq!(v["busy_poll"], false, "{v}");
        assert!(v["event_waits"].as_u64().unwrap() > 0, "{v}");
    }
    let r = bench(&d, &["--busy-poll", "--ops", "200", "--qd", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("busy polling: latencies leave out this tool's wake-ups"),
        "{r:?}"
    );
    let r = bench(&d, &["--ops", "200", "--qd", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("busy polling"), "{r:?}");
}

/// Reads lend the backing file's pages (`backends/src/mapped.rs`: from the whole
/// file mapped when cached, else 1 MiB reads mapped per read on a worker): 1 MiB
/// and 4 KiB reads of blocks written with --verify are intact, with and without a data
/// digest (with one the read is an ordinary copy). A backing file truncated under
/// the daemon while such reads run costs at most the connection, never the daemon
/// (a mapping's pages vanish; a system call that meets them fails with EFAULT where
/// user space would get SIGBUS): afterwards it still serves a new session.
fn mapped_reads_verify_and_survive_truncation(f: Flavour) {
    let mut d = Daemon::start(f, &[]);
    let path = d.setup_file_target(1, IQN, SIZE);
    let range = format!("0:{}", SIZE / 512);
    for (bs, qd) in [("1m", "4"), ("4k", "16")] {
        // Commands of `bs` at depth `qd` over the whole LU, then `extra`.
        let run = |extra: &[&str]| {
            let mut args = vec!["--bs", bs, "--qd", qd, "--lba-range", &range, "--json"];
            args.extend_from_slice(extra);
            args.into_iter().map(str::to_owned).collect::<Vec<String>>()
        };
        for digest in [&[][..], &["--data-digest"]] {
            let mut extra = vec![
                "--rw",
                "mix",
                "--read-pct",
                "50",
                "--verify",
                "--ops",
                "300",
            ];
            extra.extend_from_slice(digest);
            let args = run(&extra);
            let r = bench(&d, &args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(r.code, 0, "{bs} {digest:?}: {r:?}");
            assert_eq!(json(&r)["verify_mismatches"], 0, "{bs} {digest:?}");
        }
        // The reads were lent: the daemon holds the backing file mapped read-only
        // and shared, and the pages the reads touched are resident in it.
        let name = path.to_str().unwrap();
        assert!(
            d.lent_rss_kib(Some(name)) > 0,
            "{bs}: no resident shared mapping of {name}"
        );
        let reader = Command::new(bin("iscsi-bench"))
            .arg(d.portal_str())
            .arg(IQN)
            .args(run(&["--rw", "read", "--duration", "3"]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(0).unwrap();
        // Whether the reader saw zeros, an error or a dropped connection, it ends.
        let _ = integration_tests::wait_with_timeout(reader, Duration::from_secs(30), "reader");
        assert!(
            d.alive(),
            "the daemon died when its backing file was truncated under {bs} reads"
        );
        file.set_len(SIZE).unwrap();
        let args = run(&["--rw", "read", "--ops", "50"]);
        let r = bench(&d, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.code, 0, "{bs}: {r:?}");
    }
}

both_flavours!(
    busy_poll_serves_and_goes_idle,
    busy_poll_rests_while_the_store_is_slow,
    bench_busy_poll_never_waits,
    mapped_reads_verify_and_survive_truncation,
    chap_one_way_and_mutual,
    verify_mixed_run_passes,
    large_reads_verify,
    verify_mixed_run_over_four_connections,
    corrupted_block_is_caught,
    json_report_has_fields,
    digests_negotiate_and_pass,
    bad_args_and_unreachable_exit_2,
);
