//! Daemon-wide counters for monitoring (`tgtd --metrics`, `tgtadm --mode system --op
//! show --json`): per target/LUN commands, bytes, errors by sense key, latency
//! histograms and store queue depth; connections and sessions; logins by status;
//! Rejects and closed connections by reason.
//!
//! Cheap on the command path: a connection looks up an LU's [`LuMetrics`] once and
//! then counts with relaxed atomics (no lock per command). The rare events (logins,
//! Rejects, closes) take a short mutex. The core reads no clock: latencies are the
//! difference of the `now` values the daemon passes to `handle_input` (the command
//! arrived) and to `handle_io_completion` (it finished).
//!
//! [`Metrics::snapshot`] copies everything into plain values ([`MetricsSnapshot`],
//! serde) for the daemon's exporter and for the management answer.

use crate::connection::IoTag;
use crate::Core;
use scsi_sbc::{Outcome, ScsiStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram buckets, in microseconds (a last, unbounded
/// bucket follows). From 50 µs (a cached read) to 5 s (a store in trouble).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// SCSI sense key names (SPC-5 table 49), indexed by key, as metric labels.
pub const SENSE_KEYS: [&str; 16] = [
    "NO_SENSE",
    "RECOVERED_ERROR",
    "NOT_READY",
    "MEDIUM_ERROR",
    "HARDWARE_ERROR",
    "ILLEGAL_REQUEST",
    "UNIT_ATTENTION",
    "DATA_PROTECT",
    "BLANK_CHECK",
    "VENDOR_SPECIFIC",
    "COPY_ABORTED",
    "ABORTED_COMMAND",
    "RESERVED_0C",
    "VOLUME_OVERFLOW",
    "MISCOMPARE",
    "RESERVED_0F",
];

/// A latency histogram with fixed buckets ([`LATENCY_BOUNDS_US`]), atomics only.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Count one observation.
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros();
        let i = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= u128::from(b))
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The histogram now, buckets cumulative as Prometheus counts them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BOUNDS_US.len());
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            if let Some(&le) = LATENCY_BOUNDS_US.get(i) {
                buckets.push((le as f64 / 1e6, acc));
            }
        }
        HistogramSnapshot {
            buckets,
            count: acc,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram's values at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, cumulative; the
    /// unbounded bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
}

/// What kind of command, for the per-LU counters: by operation code, so INQUIRY or
/// REPORT LUNS (data-in, but no medium access) do not count as reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// READ(6/10/12/16).
    Read,
    /// WRITE(6/10/12/16), WRITE AND VERIFY(10/12/16).
    Write,
    /// Anything else.
    Other,
}

impl CommandKind {
    /// The kind of the command whose CDB starts with `opcode`.
    pub fn of(opcode: u8) -> CommandKind {
        match opcode {
            0x08 | 0x28 | 0xa8 | 0x88 => CommandKind::Read,
            0x0a | 0x2a | 0xaa | 0x8a | 0x2e | 0xae | 0x8e => CommandKind::Write,
            _ => CommandKind::Other,
        }
    }
}

/// Non-GOOD statuses other than CHECK CONDITION, as error labels.
const OTHER_STATUSES: [(ScsiStatus, &str); 3] = [
    (ScsiStatus::Busy, "BUSY"),
    (ScsiStatus::ReservationConflict, "RESERVATION_CONFLICT"),
    (ScsiStatus::TaskSetFull, "TASK_SET_FULL"),
];

/// The counters of one LU (target name, LUN), summed over every session.
#[derive(Debug, Default)]
pub struct LuMetrics {
    read_cmds: AtomicU64,
    read_bytes: AtomicU64,
    write_cmds: AtomicU64,
    write_bytes: AtomicU64,
    other_cmds: AtomicU64,
    /// CHECK CONDITION by sense key.
    sense_errors: [AtomicU64; 16],
    /// The other failing statuses ([`OTHER_STATUSES`]), then "OTHER".
    status_errors: [AtomicU64; OTHER_STATUSES.len() + 1],
    read_latency: Histogram,
    write_latency: Histogram,
    /// Store operations handed to the daemon and not yet completed.
    queue_depth: AtomicI64,
}

impl LuMetrics {
    /// A command finished with `outcome` after `latency`; `bytes` moved (data-in
    /// for reads, data-out for writes) when it succeeded.
    pub fn command_done(
        &self,
        kind: CommandKind,
        outcome: &Outcome,
        bytes: u64,
        latency: Duration,
    ) {
        let good = outcome.status == ScsiStatus::Good;
        match kind {
            CommandKind::Read => {
                self.read_cmds.fetch_add(1, Ordering::Relaxed);
                if good {
                    self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                self.read_latency.observe(latency);
            }
            CommandKind::Write => {
                self.write_cmds.fetch_add(1, Ordering::Relaxed);
                if good {
                    self.write_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                self.write_latency.observe(latency);
            }
            CommandKind::Other => {
                self.other_cmds.fetch_add(1, Ordering::Relaxed);
            }
        }
        if good {
            return;
        }
        match (&outcome.sense, outcome.status) {
            (Some(sense), ScsiStatus::CheckCondition) => {
                let key = usize::from(sense.key as u8 & 0x0f);
                self.sense_errors[key].fetch_add(1, Ordering::Relaxed);
            }
            (_, status) => {
                let i = OTHER_STATUSES
                    .iter()
                    .position(|(s, _)| *s == status)
                    .unwrap_or(OTHER_STATUSES.len());
                self.status_errors[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn queue_add(&self, n: i64) {
        self.queue_depth.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self, target: &str, lun: u64) -> LuMetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut errors = BTreeMap::new();
        for (i, c) in self.sense_errors.iter().enumerate() {
            let n = get(c);
            if n > 0 {
                errors.insert(SENSE_KEYS[i].to_string(), n);
            }
        }
        for (i, c) in self.status_errors.iter().enumerate() {
            let n = get(c);
            if n > 0 {
                let name = OTHER_STATUSES.get(i).map_or("OTHER", |(_, n)| n);
                errors.insert(name.to_string(), n);
            }
        }
        LuMetricsSnapshot {
            target: target.to_string(),
            lun,
            read_commands: get(&self.read_cmds),
            read_bytes: get(&self.read_bytes),
            write_commands: get(&self.write_cmds),
            write_bytes: get(&self.write_bytes),
            other_commands: get(&self.other_cmds),
            errors,
            read_latency: self.read_latency.snapshot(),
            write_latency: self.write_latency.snapshot(),
            queue_depth: self.queue_depth.load(Ordering::Relaxed).max(0) as u64,
        }
    }
}

/// One LU's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LuMetricsSnapshot {
    /// Target name.
    pub target: String,
    /// LUN.
    pub lun: u64,
    /// READ commands finished (any status).
    pub read_commands: u64,
    /// Bytes returned by READ commands that succeeded.
    pub read_bytes: u64,
    /// WRITE commands finished (any status).
    pub write_commands: u64,
    /// Bytes stored by WRITE commands that succeeded.
    pub write_bytes: u64,
    /// Other commands finished.
    pub other_commands: u64,
    /// Failed commands by sense key (CHECK CONDITION) or status name.
    pub errors: BTreeMap<String, u64>,
    /// READ latency, command received to status sent.
    pub read_latency: HistogramSnapshot,
    /// WRITE latency, command received (data-out included) to status sent.
    pub write_latency: HistogramSnapshot,
    /// Store operations in flight.
    pub queue_depth: u64,
}

/// Why connections ended, as bounded labels ([`close_label`]).
pub const CLOSE_REASONS: [&str; 12] = [
    "logout",
    "peer_closed",
    "login_failed",
    "login_timeout",
    "nop_timeout",
    "logout_timeout",
    "forced_logout",
    "target_reset",
    "shutdown",
    "protocol_error",
    "limit",
    "other",
];

/// The label of a connection's close reason (the free text of
/// `ConnEvent::Closed`), one of [`CLOSE_REASONS`].
pub fn close_label(reason: &str) -> &'static str {
    match reason {
        "logout" => "logout",
        "connection closed by peer" => "peer_closed",
        "login timed out" => "login_timeout",
        "NOP-In ping unanswered" => "nop_timeout",
        "initiator did not log out when asked" => "logout_timeout",
        "session logged out by the target" => "forced_logout",
        "shutting down" => "shutdown",
        r if r.starts_with("login failed") => "login_failed",
        r if r.contains("cold reset") => "target_reset",
        r if r.contains("limit") || r.contains("too many") => "limit",
        r if r.contains("login")
            || r.contains("digest")
            || r.contains("AHS")
            || r.contains("opcode")
            || r.contains("segment") =>
        {
            "protocol_error"
        }
        _ => "other",
    }
}

/// Reject reason names (RFC 7143 §11.17.1), indexed by code.
pub fn reject_label(code: u8) -> &'static str {
    match code {
        0x02 => "data_digest_error",
        0x03 => "snack_reject",
        0x04 => "protocol_error",
        0x05 => "command_not_supported",
        0x06 => "immediate_command_reject",
        0x07 => "task_in_progress",
        0x08 => "invalid_data_ack",
        0x09 => "invalid_pdu_field",
        0x0a => "long_op_reject",
        0x0b => "negotiation_reset",
        0x0c => "waiting_for_logout",
        _ => "other",
    }
}

/// Daemon-wide counters, one per [`Core`].
#[derive(Debug, Default)]
pub struct Metrics {
    lus: RwLock<BTreeMap<(String, u64), Arc<LuMetrics>>>,
    connections: AtomicI64,
    /// Login answers by status (class << 8 | detail).
    logins: Mutex<BTreeMap<u16, u64>>,
    rejects: Mutex<BTreeMap<&'static str, u64>>,
    closes: Mutex<BTreeMap<&'static str, u64>>,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    *m.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(k)
        .or_default() += 1;
}

impl Metrics {
    /// The counters of LU `lun` of target `target`, created at first use. A caller
    /// keeps the `Arc` (the command path takes this lock once per LU).
    pub fn lu(&self, target: &str, lun: u64) -> Arc<LuMetrics> {
        let key = (target.to_string(), lun);
        if let Some(m) = self.lus.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return m.clone();
        }
        self.lus
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// A login was answered with `status` (`0x0000` success).
    pub fn login(&self, status: u16) {
        bump(&self.logins, status);
    }

    /// A Reject PDU was sent with `reason`.
    pub fn rejected(&self, reason: u8) {
        bump(&self.rejects, reject_label(reason));
    }

    /// A connection ended for `reason` (free text, see [`close_label`]).
    pub fn closed(&self, reason: &str) {
        bump(&self.closes, close_label(reason));
    }

    /// A connection was refused or dropped by the daemon before the core saw it (a
    /// resource limit): counted under `label`, which must be one of
    /// [`CLOSE_REASONS`] (anything else counts as "other").
    pub fn dropped(&self, label: &'static str) {
        let label = CLOSE_REASONS
            .iter()
            .find(|&&r| r == label)
            .copied()
            .unwrap_or("other");
        bump(&self.closes, label);
    }

    /// Everything now. LUs are listed while their target and LUN exist; sessions
    /// are counted per target from the registry.
    pub fn snapshot(&self, core: &Core) -> MetricsSnapshot {
        let targets = core.registry.targets();
        let lus = self.lus.read().unwrap_or_else(|p| p.into_inner());
        let mut lu_list = Vec::new();
        let mut sessions = BTreeMap::new();
        for t in &targets {
            sessions.insert(t.name.clone(), t.sessions().len() as u64);
            for n in t.lun_numbers() {
                if let Some(m) = lus.get(&(t.name.clone(), n)) {
                    lu_list.push(m.snapshot(&t.name, n));
                }
            }
        }
        let copy = |m: &Mutex<BTreeMap<&'static str, u64>>| {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        };
        MetricsSnapshot {
            connections: self.connections.load(Ordering::Relaxed).max(0) as u64,
            sessions: core.sessions.len() as u64,
            target_sessions: sessions,
            logins: self
                .logins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (format!("0x{k:04x}"), *v))
                .collect(),
            rejects: copy(&self.rejects),
            closed_connections: copy(&self.closes),
            lus: lu_list,
        }
    }
}

/// All counters at one moment (`system show --json` carries it as `metrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Connections open now (logging in or logged in).
    pub connections: u64,
    /// iSCSI sessions now (normal and discovery).
    pub sessions: u64,
    /// Sessions per target name.
    pub target_sessions: BTreeMap<String, u64>,
    /// Login answers by status, `"0x0000"` for success, else class and detail
    /// (`"0x0201"` authentication failure, ...).
    pub logins: BTreeMap<String, u64>,
    /// Reject PDUs sent, by reason.
    pub rejects: BTreeMap<String, u64>,
    /// Connections ended, by reason ([`CLOSE_REASONS`]).
    pub closed_connections: BTreeMap<String, u64>,
    /// Per LU counters.
    pub lus: Vec<LuMetricsSnapshot>,
}

/// One connection's view of the metrics: its LU lookups, the `now` of its latest
/// input, and its store operations in flight. Dropping it (the connection ends)
/// takes the connection and its in-flight operations off the gauges.
///
/// Nothing here hashes per store operation: a task carries its LU's counters from
/// its creation ([`ConnMetrics::lu`], once per command), and an operation's
/// [`IoTag`] carries the index of its LU in [`ConnMetrics::slots`] in its low bits
/// ([`ConnMetrics::tag`]), so that its completion finds the gauge to lower by
/// indexing — also for a completion that arrives after its task was aborted.
#[derive(Debug)]
pub(crate) struct ConnMetrics {
    metrics: Arc<Metrics>,
    /// The `now` of the latest input: when a command arrived, or completed.
    pub(crate) now: Instant,
    /// Looked up once per command: hashed cheaply (`crate::taghash`).
    lus: crate::taghash::TagMap<u64, Arc<LuMetrics>>,
    /// The LUs this connection sent store operations to, with how many are in
    /// flight; an LU's index is its slot in [`IoTag`]s.
    slots: Vec<(Arc<LuMetrics>, u64)>,
}

/// Bits of an [`IoTag`] that hold the LU slot ([`ConnMetrics::tag`]).
const SLOT_BITS: u32 = 16;
/// The slot of an operation counted on no LU's gauge (no target; more LUs in use by
/// one connection than slots).
const NO_SLOT: u64 = (1 << SLOT_BITS) - 1;

impl ConnMetrics {
    pub(crate) fn new(metrics: Arc<Metrics>, now: Instant) -> Self {
        metrics.connections.fetch_add(1, Ordering::Relaxed);
        ConnMetrics {
            metrics,
            now,
            lus: Default::default(),
            slots: Vec::new(),
        }
    }

    /// LU `lun` of `target` (the connection's session has one target).
    pub(crate) fn lu(&mut self, target: &str, lun: u64) -> &Arc<LuMetrics> {
        let metrics = &self.metrics;
        self.lus
            .entry(lun)
            .or_insert_with(|| metrics.lu(target, lun))
    }

    /// The tag of the connection's store operation number `seq` for `lu` (`None`:
    /// counted on no LU), raising `lu`'s queue-depth gauge until
    /// [`ConnMetrics::io_done`] sees the tag come back. Tags stay unique: `seq`
    /// fills the high bits.
    pub(crate) fn tag(&mut self, seq: u64, lu: Option<&Arc<LuMetrics>>) -> IoTag {
        let slot = match lu {
            None => NO_SLOT,
            Some(lu) => match self.slots.iter().position(|(s, _)| Arc::ptr_eq(s, lu)) {
                Some(i) => i as u64,
                None if (self.slots.len() as u64) < NO_SLOT => {
                    self.slots.push((lu.clone(), 0));
                    self.slots.len() as u64 - 1
                }
                None => NO_SLOT,
            },
        };
        if let Some((lu, n)) = self.slots.get_mut(slot as usize) {
            lu.queue_add(1);
            *n += 1;
        }
        IoTag(seq << SLOT_BITS | slot)
    }

    /// The operation tagged `tag` came back.
    pub(crate) fn io_done(&mut self, tag: IoTag) {
        let slot = tag.0 & NO_SLOT;
        if let Some((lu, n)) = self.slots.get_mut(slot as usize) {
            if *n > 0 {
                *n -= 1;
                lu.queue_add(-1);
            }
        }
    }
}

impl Drop for ConnMetrics {
    fn drop(&mut self) {
        self.metrics.connections.fetch_sub(1, Ordering::Relaxed);
        for (lu, n) in &self.slots {
            lu.queue_add(-(*n as i64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use scsi_sbc::{Sense, SenseKey};

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (50e-6, 2));
        assert_eq!(s.buckets[3], (500e-6, 2));
        assert_eq!(s.buckets[4], (1e-3, 3));
        assert_eq!(s.buckets.last().unwrap().1, 3);
        assert!((s.sum_seconds - 10.00079).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn lu_counts_by_kind_and_error() {
        let m = LuMetrics::default();
        let ms = Duration::from_millis(1);
        m.command_done(
            CommandKind::Read,
            &Outcome::good(Bytes::from(vec![0; 512])),
            512,
            ms,
        );
        m.command_done(CommandKind::Write, &Outcome::good(Bytes::new()), 4096, ms);
        let sense = Sense {
            key: SenseKey::MediumError,
            asc: 0x11,
            ascq: 0,
            info: None,
            field: None,
            stream: 0,
        };
        m.command_done(CommandKind::Read, &Outcome::check(sense), 512, ms);
        m.command_done(CommandKind::Other, &Outcome::good(Bytes::new()), 36, ms);
        let s = m.snapshot("t", 1);
        assert_eq!((s.read_commands, s.read_bytes), (2, 512));
        assert_eq!((s.write_commands, s.write_bytes), (1, 4096));
        assert_eq!(s.other_commands, 1);
        assert_eq!(s.errors, BTreeMap::from([("MEDIUM_ERROR".to_string(), 1)]));
        assert_eq!(s.read_latency.count, 2);
    }

    #[test]
    fn close_reasons_are_bounded() {
        assert_eq!(close_label("logout"), "logout");
        assert_eq!(close_label("connection closed by peer"), "peer_closed");
        assert_eq!(
            close_label("target cold reset by another session"),
            "target_reset"
        );
        assert_eq!(close_label("anything else"), "other");
        for r in ["logout", "login timed out", "x"] {
            assert!(CLOSE_REASONS.contains(&close_label(r)));
        }
        assert_eq!(CommandKind::of(0x28), CommandKind::Read);
        assert_eq!(CommandKind::of(0x8a), CommandKind::Write);
        assert_eq!(CommandKind::of(0x12), CommandKind::Other);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // one real Instant as the base
    fn connection_gauges_follow_drop() {
        let m = Arc::new(Metrics::default());
        let now = Instant::now();
        let mut c = ConnMetrics::new(m.clone(), now);
        let lu = c.lu("t", 0).clone();
        let other = c.lu("t", 1).clone();
        let t1 = c.tag(1, Some(&lu));
        let t2 = c.tag(2, Some(&lu));
        let t3 = c.tag(3, Some(&other));
        let t4 = c.tag(4, None);
        assert_eq!(
            std::collections::BTreeSet::from([t1, t2, t3, t4]).len(),
            4,
            "tags are unique"
        );
        c.io_done(t1);
        c.io_done(t3);
        c.io_done(t4);
        // A tag never handed out lowers nothing, nor more completions than operations.
        c.io_done(IoTag(7 << SLOT_BITS | 5));
        c.io_done(t3);
        assert_eq!(lu.queue_depth.load(Ordering::Relaxed), 1);
        assert_eq!(other.queue_depth.load(Ordering::Relaxed), 0);
        assert_eq!(m.connections.load(Ordering::Relaxed), 1);
        drop(c);
        assert_eq!(lu.queue_depth.load(Ordering::Relaxed), 0);
        assert_eq!(m.connections.load(Ordering::Relaxed), 0);
    }
}
