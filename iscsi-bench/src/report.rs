//! Counting, and the final report: text, JSON and SVG.

use crate::engine::Outcome;
use crate::workload::Op;
use crate::Args;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Width of one throughput-over-time bucket.
const BUCKET: Duration = Duration::from_millis(100);

/// What went wrong with one command, as the error table groups it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ErrorKey {
    /// iSCSI response code.
    pub response: u8,
    /// SCSI status.
    pub status: u8,
    /// Sense key, ASC, ASCQ.
    pub sense: Option<(u8, u8, u8)>,
    /// Reject reason, when the target rejected the command.
    pub rejected: Option<u8>,
    /// Ended by a task management function.
    pub aborted: bool,
}

impl fmt::Display for ErrorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.rejected {
            return write!(f, "rejected (reason {r:#04x})");
        }
        if self.aborted {
            return write!(f, "aborted");
        }
        if self.response != 0 {
            return write!(f, "iSCSI response {:#04x}", self.response);
        }
        write!(f, "status {:#04x}", self.status)?;
        if let Some((k, a, q)) = self.sense {
            write!(f, " sense key {k:#x} ASC {a:#04x} ASCQ {q:#04x}")?;
        }
        Ok(())
    }
}

/// A failed command, with where it went: what attributes errors to LBAs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedCommand {
    /// First LBA.
    pub lba: u64,
    /// Logical blocks.
    pub blocks: u32,
    /// A READ (else a WRITE).
    pub read: bool,
    /// Inside the --expect-errors range.
    pub expected: bool,
    /// What went wrong.
    pub description: String,
    /// The LBA the sense data names (INFORMATION), when it names one.
    pub information: Option<u64>,
}

/// Counters of the measured phase.
#[derive(Debug)]
pub struct Stats {
    /// Latency of every command, nanoseconds.
    pub hist: Histogram<u64>,
    /// Latency since the last progress line.
    interval: Histogram<u64>,
    interval_ops: u64,
    interval_bytes: u64,
    /// Completed reads.
    pub reads: u64,
    /// Completed writes.
    pub writes: u64,
    /// Bytes read (GOOD commands).
    pub bytes_read: u64,
    /// Bytes written (GOOD commands).
    pub bytes_written: u64,
    /// Failed commands by kind (those not expected).
    pub errors: BTreeMap<ErrorKey, u64>,
    /// --expect-errors: inclusive LBA range whose failures are expected.
    expect: Option<(u64, u64)>,
    /// Expected failed commands by kind.
    pub expected: BTreeMap<ErrorKey, u64>,
    /// The first [`Stats::KEEP_FAILED`] failed commands.
    pub failed: Vec<FailedCommand>,
    /// Failed commands (with an LBA), all counted.
    pub failed_total: u64,
    /// (commands, bytes) per [`BUCKET`].
    pub timeline: Vec<(u64, u64)>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

impl Stats {
    /// Failed commands kept for the report at most.
    pub const KEEP_FAILED: usize = 1000;

    /// Empty counters; failures of commands touching `expect` (inclusive LBAs) are
    /// expected.
    pub fn new(expect: Option<(u64, u64)>) -> Stats {
        Stats {
            hist: histogram(),
            interval: histogram(),
            interval_ops: 0,
            interval_bytes: 0,
            reads: 0,
            writes: 0,
            bytes_read: 0,
            bytes_written: 0,
            errors: BTreeMap::new(),
            expect,
            expected: BTreeMap::new(),
            failed: Vec::new(),
            failed_total: 0,
            timeline: Vec::new(),
        }
    }

    /// One finished command, `at` into the run.
    pub fn record(&mut self, read: bool, latency: Duration, bytes: u64, at: Duration) {
        let ns = (latency.as_nanos() as u64).clamp(1, 3_600_000_000_000);
        self.hist.saturating_record(ns);
        self.interval.saturating_record(ns);
        self.interval_ops += 1;
        self.interval_bytes += bytes;
        if read {
            self.reads += 1;
            self.bytes_read += bytes;
        } else {
            self.writes += 1;
            self.bytes_written += bytes;
        }
        let i = (at.as_nanos() / BUCKET.as_nanos()) as usize;
        if self.timeline.len() <= i {
            self.timeline.resize(i + 1, (0, 0));
        }
        self.timeline[i].0 += 1;
        self.timeline[i].1 += bytes;
    }

    /// One failed command.
    pub fn error(&mut self, key: ErrorKey) {
        *self.errors.entry(key).or_default() += 1;
    }

    /// A READ or WRITE that failed: kept with its LBAs, and counted as expected when
    /// it touches the --expect-errors range (an error that names an LBA outside the
    /// range is never expected).
    pub fn command_failed(&mut self, op: &Op, key: ErrorKey, information: Option<u64>) {
        let last = op.lba + u64::from(op.blocks).max(1) - 1;
        let expected = self.expect.is_some_and(|(first, end)| {
            op.lba <= end && first <= last && information.is_none_or(|i| first <= i && i <= end)
        });
        if expected {
            *self.expected.entry(key).or_default() += 1;
        } else {
            self.error(key);
        }
        self.failed_total += 1;
        if self.failed.len() < Self::KEEP_FAILED {
            self.failed.push(FailedCommand {
                lba: op.lba,
                blocks: op.blocks,
                read: op.read,
                expected,
                description: key.to_string(),
                information,
            });
        }
    }

    /// Failed commands that were not expected.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Rewrite the live progress line (stderr is a terminal) and start a new interval.
    pub fn progress_line(&mut self, at: Duration) {
        let ops = self.interval_ops;
        let mb = self.interval_bytes as f64 / 1e6;
        let p99 = if ops > 0 {
            self.interval.value_at_quantile(0.99) as f64 / 1e3
        } else {
            0.0
        };
        eprint!(
            "\r\x1b[K{:>6.1}s  {ops:>9} ops/s  {mb:>9.1} MB/s  p99 {p99:>9.1} us  errors {}",
            at.as_secs_f64(),
            self.errors_total()
        );
        self.interval.reset();
        self.interval_ops = 0;
        self.interval_bytes = 0;
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
struct Latency {
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn latency(h: &Histogram<u64>) -> Latency {
    let us = |v: u64| v as f64 / 1e3;
    if h.is_empty() {
        return Latency {
            min: 0.0,
            mean: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p999: 0.0,
            max: 0.0,
        };
    }
    Latency {
        min: us(h.min()),
        mean: h.mean() / 1e3,
        p50: us(h.value_at_quantile(0.50)),
        p90: us(h.value_at_quantile(0.90)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
    }
}

#[derive(Debug, serde::Serialize)]
struct ErrorRow {
    count: u64,
    description: String,
    status: u8,
    response: u8,
    sense_key: Option<u8>,
    asc: Option<u8>,
    ascq: Option<u8>,
    reject_reason: Option<u8>,
    aborted: bool,
}

/// The JSON report.
#[derive(Debug, serde::Serialize)]
struct Report<'a> {
    portal: &'a str,
    target: &'a str,
    lun: u64,
    sessions: u32,
    connections: u16,
    qd: u32,
    rw: crate::Rw,
    read_pct: u8,
    pattern: crate::Pattern,
    bs: u64,
    bs_max: u64,
    fua_pct: u8,
    sync_every: u32,
    syncs: u64,
    block_size: u32,
    lu_blocks: u64,
    lba_start: u64,
    lba_count: u64,
    header_digest: bool,
    data_digest: bool,
    initial_r2t: bool,
    immediate_data: bool,
    max_burst_length: u32,
    first_burst_length: u32,
    target_max_recv_data_segment_length: u32,
    error_recovery_level: u8,
    commands_retried: u64,
    snacks_sent: u64,
    connections_recovered: u64,
    busy_poll: bool,
    event_waits: u64,
    duration_s: f64,
    ops: u64,
    reads: u64,
    writes: u64,
    bytes_read: u64,
    bytes_written: u64,
    iops: f64,
    mb_per_s: f64,
    read_mb_per_s: f64,
    write_mb_per_s: f64,
    latency_us: Latency,
    errors_total: u64,
    errors: Vec<ErrorRow>,
    errors_expected_total: u64,
    errors_expected: Vec<ErrorRow>,
    failed_commands_total: u64,
    failed_commands: &'a [FailedCommand],
    verify: bool,
    verify_only: bool,
    journal_records: u64,
    verify_blocks_checked: u64,
    verify_blocks_unchecked: u64,
    verify_mismatches: u64,
    mismatches: &'a [crate::workload::Mismatch],
    failure: Option<&'a str>,
    success: bool,
}

impl Report<'_> {
    /// `--bs` as given: one size or MIN-MAX.
    fn bs_text(&self) -> String {
        if self.bs == self.bs_max {
            self.bs.to_string()
        } else {
            format!("{}-{}", self.bs, self.bs_max)
        }
    }
}

fn error_rows(m: &BTreeMap<ErrorKey, u64>) -> Vec<ErrorRow> {
    m.iter()
        .map(|(k, n)| ErrorRow {
            count: *n,
            description: k.to_string(),
            status: k.status,
            response: k.response,
            sense_key: k.sense.map(|x| x.0),
            asc: k.sense.map(|x| x.1),
            ascq: k.sense.map(|x| x.2),
            reject_reason: k.rejected,
            aborted: k.aborted,
        })
        .collect()
}

fn report<'a>(args: &'a Args, o: &'a Outcome) -> Report<'a> {
    let s = &o.stats;
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let ops = s.reads + s.writes;
    Report {
        portal: &args.portal,
        target: &args.target,
        lun: args.lun,
        sessions: args.sessions,
        connections: args.connections,
        qd: args.qd,
        rw: args.rw,
        read_pct: args.read_pct,
        pattern: args.pattern,
        bs: args.bs.min,
        bs_max: args.bs.max,
        fua_pct: args.fua_pct,
        sync_every: args.sync_every,
        syncs: o.syncs,
        block_size: o.capacity.block_len,
        lu_blocks: o.capacity.blocks,
        lba_start: o.lba_start,
        lba_count: o.lba_count,
        header_digest: o.params.header_digest,
        data_digest: o.params.data_digest,
        initial_r2t: o.params.initial_r2t,
        immediate_data: o.params.immediate_data,
        max_burst_length: o.params.max_burst_length,
        first_burst_length: o.params.first_burst_length,
        target_max_recv_data_segment_length: o.params.max_xmit_data_segment_length,
        error_recovery_level: o.params.error_recovery_level,
        commands_retried: o.recovery.0,
        snacks_sent: o.recovery.1,
        connections_recovered: o.reconnects,
        busy_poll: args.busy_poll,
        event_waits: o.event_waits,
        duration_s: o.elapsed.as_secs_f64(),
        ops,
        reads: s.reads,
        writes: s.writes,
        bytes_read: s.bytes_read,
        bytes_written: s.bytes_written,
        iops: ops as f64 / secs,
        mb_per_s: (s.bytes_read + s.bytes_written) as f64 / 1e6 / secs,
        read_mb_per_s: s.bytes_read as f64 / 1e6 / secs,
        write_mb_per_s: s.bytes_written as f64 / 1e6 / secs,
        latency_us: latency(&s.hist),
        errors_total: s.errors_total(),
        errors: error_rows(&s.errors),
        errors_expected_total: s.expected.values().sum(),
        errors_expected: error_rows(&s.expected),
        failed_commands_total: s.failed_total,
        failed_commands: &s.failed,
        verify: args.verify || args.verify_only,
        verify_only: args.verify_only,
        journal_records: o.journaled,
        verify_blocks_checked: o.checked,
        verify_blocks_unchecked: o.unchecked,
        verify_mismatches: o.mismatches.total,
        mismatches: &o.mismatches.kept,
        failure: o.fatal.as_deref(),
        success: o.success(),
    }
}

/// Print the report (text on stdout, or JSON with --json), write the SVG, and say
/// why the run failed on stderr.
pub fn emit(args: &Args, o: &Outcome) {
    let r = report(args, o);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("the report serialises")
        );
    } else {
        print!("{}", text(&r));
    }
    if let Some(path) = &args.svg {
        if let Err(e) = std::fs::write(path, svg(&r, &o.stats)) {
            eprintln!("iscsi-bench: cannot write {}: {e}", path.display());
        }
    }
    if let Some(f) = &o.fatal {
        eprintln!("iscsi-bench: run failed: {f}");
    }
    if let Some(first) = o.mismatches.kept.first() {
        eprintln!(
            "iscsi-bench: verify failed: {} mismatched block(s), first at LBA {}",
            o.mismatches.total, first.lba
        );
    }
    if r.errors_total > 0 {
        eprintln!("iscsi-bench: {} command(s) failed", r.errors_total);
    }
}

fn text(r: &Report<'_>) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let l = &r.latency_us;
    let _ = writeln!(
        t,
        "iscsi-bench {} {} LUN {}: {} session(s) of {} connection(s) x qd {}, {:?} {:?}, bs {}, LBA {}+{} of {} x {} B",
        r.portal,
        r.target,
        r.lun,
        r.sessions,
        r.connections,
        r.qd,
        r.rw,
        r.pattern,
        r.bs_text(),
        r.lba_start,
        r.lba_count,
        r.lu_blocks,
        r.block_size
    );
    let _ = writeln!(
        t,
        "  digests: header {} data {}; InitialR2T {} ImmediateData {}; MaxBurst {} FirstBurst {} target MRDSL {}",
        r.header_digest,
        r.data_digest,
        r.initial_r2t,
        r.immediate_data,
        r.max_burst_length,
        r.first_burst_length,
        r.target_max_recv_data_segment_length
    );
    if r.busy_poll {
        let _ = writeln!(
            t,
            "  busy polling: latencies leave out this tool's wake-ups"
        );
    }
    if r.error_recovery_level > 0 {
        let _ = writeln!(
            t,
            "  ErrorRecoveryLevel {}: {} command(s) retried, {} SNACK(s) sent, {} connection(s) recovered",
            r.error_recovery_level, r.commands_retried, r.snacks_sent, r.connections_recovered
        );
    }
    let _ = writeln!(
        t,
        "  {:.2} s: {} ops ({} reads, {} writes), {:.0} IOPS, {:.2} MB/s (read {:.2}, write {:.2})",
        r.duration_s,
        r.ops,
        r.reads,
        r.writes,
        r.iops,
        r.mb_per_s,
        r.read_mb_per_s,
        r.write_mb_per_s
    );
    let _ = writeln!(
        t,
        "  latency us: min {:.1} p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} (mean {:.1})",
        l.min, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
    );
    let _ = writeln!(t, "  errors: {}", r.errors_total);
    for e in &r.errors {
        let _ = writeln!(t, "    {:>8}  {}", e.count, e.description);
    }
    if r.errors_expected_total > 0 {
        let _ = writeln!(t, "  expected errors: {}", r.errors_expected_total);
        for e in &r.errors_expected {
            let _ = writeln!(t, "    {:>8}  {}", e.count, e.description);
        }
    }
    for c in r.failed_commands.iter().filter(|c| !c.expected).take(10) {
        let _ = writeln!(
            t,
            "    failed: {} LBA {}+{}: {}",
            if c.read { "READ" } else { "WRITE" },
            c.lba,
            c.blocks,
            c.description
        );
    }
    if r.syncs > 0 {
        let _ = writeln!(t, "  SYNCHRONIZE CACHE: {} completed", r.syncs);
    }
    if r.journal_records > 0 {
        let _ = writeln!(
            t,
            "  journal: {} {}",
            r.journal_records,
            if r.verify_only {
                "blocks read back"
            } else {
                "acknowledged FUA or synced writes recorded"
            }
        );
    }
    if r.verify {
        let _ = writeln!(
            t,
            "  verify: {} blocks checked, {} unchecked, {} mismatches",
            r.verify_blocks_checked, r.verify_blocks_unchecked, r.verify_mismatches
        );
    }
    t
}

/// A hand-written SVG: the latency distribution (log-scale buckets) on top, commands
/// per second over time below.
fn svg(r: &Report<'_>, s: &Stats) -> String {
    use std::fmt::Write as _;
    let (w, h) = (800.0_f64, 600.0_f64);
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="18" font-size="14">iscsi-bench {} {:?} {:?} bs {} qd {} x {}: {:.0} IOPS, {:.1} MB/s, p99 {:.1} us</text>"#,
        xml(r.target),
        r.rw,
        r.pattern,
        r.bs_text(),
        r.qd,
        r.sessions,
        r.iops,
        r.mb_per_s,
        r.latency_us.p99
    );
    // Latency histogram: buckets of x1.25 from 1 us.
    let (x0, y0, pw, ph) = (60.0, 40.0, 710.0, 220.0);
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    if !s.hist.is_empty() {
        let mut lo = 1_000u64.min(s.hist.min().max(1));
        while lo <= s.hist.max() {
            let hi = ((lo as f64) * 1.25).ceil() as u64 + 1;
            let n = s.hist.count_between(lo, hi.saturating_sub(1));
            buckets.push((lo, n));
            lo = hi;
        }
    }
    let maxn = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let _ = writeln!(
        o,
        r#"<text x="{x0}" y="{}">latency distribution (count per bucket, log-scaled x)</text>"#,
        y0 - 4.0
    );
    let _ = writeln!(
        o,
        r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    let bw = pw / buckets.len().max(1) as f64;
    for (i, (lo, n)) in buckets.iter().enumerate() {
        let bh = ph * (*n as f64) / maxn;
        let _ = writeln!(
            o,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4a7ab5"><title>{:.1} us: {n}</title></rect>"##,
            x0 + i as f64 * bw,
            y0 + ph - bh,
            (bw - 0.5).max(0.5),
            bh,
            *lo as f64 / 1e3
        );
        if i % (buckets.len() / 8).max(1) == 0 {
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{:.1}" font-size="10">{:.0}us</text>"#,
                x0 + i as f64 * bw,
                y0 + ph + 12.0,
                *lo as f64 / 1e3
            );
        }
    }
    // Throughput over time.
    let (x0, y0, pw, ph) = (60.0, 330.0, 710.0, 220.0);
    let _ = writeln!(
        o,
        r#"<text x="{x0}" y="{}">throughput over time (ops/s, 100 ms buckets)</text>"#,
        y0 - 4.0
    );
    let _ = writeln!(
        o,
        r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    let per_s = 1.0 / BUCKET.as_secs_f64();
    let maxo = s.timeline.iter().map(|b| b.0).max().unwrap_or(1).max(1) as f64;
    let n = s.timeline.len().max(2) as f64;
    let pts: Vec<String> = s
        .timeline
        .iter()
        .enumerate()
        .map(|(i, (ops, _))| {
            format!(
                "{:.1},{:.1}",
                x0 + pw * i as f64 / (n - 1.0),
                y0 + ph - ph * (*ops as f64) / maxo
            )
        })
        .collect();
    let _ = writeln!(
        o,
        r##"<polyline fill="none" stroke="#c0392b" stroke-width="1.5" points="{}"/>"##,
        pts.join(" ")
    );
    let _ = writeln!(
        o,
        r#"<text x="4" y="{:.1}" font-size="10">{:.0}</text><text x="4" y="{:.1}" font-size="10">0</text>"#,
        y0 + 10.0,
        maxo * per_s,
        y0 + ph
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" font-size="10">{:.1} s</text>"#,
        x0 + pw - 30.0,
        y0 + ph + 12.0,
        r.duration_s
    );
    o.push_str("</svg>\n");
    o
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
