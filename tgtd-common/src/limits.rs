//! The daemon's resource limits: their command-line options and defaults, the one
//! log line each hit gets, the stalled-reader watch both adapters use, and the
//! process-wide limits a service raises at start (open files).
//!
//! The limits themselves are enforced by the sans-IO core
//! (`target_core::connection`, `target_core::limits`); only the stalled reader needs
//! the adapter, which alone knows whether its socket takes our bytes.
#![allow(clippy::disallowed_methods)] // the memory trimmer owns a thread

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use target_core::connection::ConnConfig;
use target_core::limits::{AdmissionLimits, Limit};

/// Bytes queued for one connection's socket above which the adapter stops reading
/// that connection's requests until the queue drains (a client that does not read
/// its responses cannot make us hold more than this plus what is in flight).
pub const TX_PAUSE_BYTES: usize = 8 << 20;

/// The limit options (`tgtd --help` lists them under these names).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitOptions {
    /// Connections served at once; over it a login is answered "out of resources"
    /// (status 0x0302) and the connection closed (0: no limit).
    #[arg(long = "max-connections", value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Logins in progress from one source address; over it a login is answered
    /// "out of resources" (0x0302) (0: no limit).
    #[arg(
        long = "max-pending-logins-per-host",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_pending_logins_per_host: usize,
    /// Commands one session may have queued (the CmdSN window: MaxCmdSN advances only
    /// as commands end).
    #[arg(
        long = "max-commands-per-session",
        value_name = "N",
        default_value_t = 128,
        value_parser = clap::value_parser!(u32).range(1..=65536)
    )]
    pub max_commands_per_session: u32,
    /// Write data being collected plus read data being fetched that one connection
    /// may hold (suffix K, M or G); a command over it waits for earlier ones.
    #[arg(long = "max-connection-buffer", value_name = "BYTES", default_value = "32M", value_parser = parse_bytes)]
    pub max_connection_buffer: u64,
    /// Time a login may take (suffix ms or s; plain numbers are seconds).
    #[arg(long = "login-timeout", value_name = "TIME", default_value = "15s", value_parser = parse_duration)]
    pub login_timeout: Duration,
    /// Time a PDU whose header arrived may take to arrive whole (slow sender; 0: no
    /// limit).
    #[arg(long = "pdu-timeout", value_name = "TIME", default_value = "30s", value_parser = parse_duration)]
    pub pdu_timeout: Duration,
    /// Time a connection may go without taking any of our queued responses
    /// (stalled reader; 0: no limit).
    #[arg(long = "tx-stall-timeout", value_name = "TIME", default_value = "30s", value_parser = parse_duration)]
    pub tx_stall_timeout: Duration,
}

impl LimitOptions {
    /// Put the limits the core enforces into the connection settings.
    pub fn apply(&self, c: &mut ConnConfig) {
        let some = |n: usize| (n > 0).then_some(n);
        c.admission = AdmissionLimits {
            max_connections: some(self.max_connections),
            max_pending_per_host: some(self.max_pending_logins_per_host),
        };
        c.cmd_window = self.max_commands_per_session;
        c.max_buffered_bytes = self.max_connection_buffer;
        c.login_timeout = self.login_timeout;
        c.pdu_timeout = (!self.pdu_timeout.is_zero()).then_some(self.pdu_timeout);
    }

    /// The stalled-reader limit, when there is one.
    pub fn tx_stall(&self) -> Option<Duration> {
        (!self.tx_stall_timeout.is_zero()).then_some(self.tx_stall_timeout)
    }
}

/// `15`, `15s`, `500ms`: a duration for the command line.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, true)
    } else {
        (s.strip_suffix('s').unwrap_or(s), false)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a time (examples: 15, 15s, 500ms)"))?;
    Ok(if ms {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(n)
    })
}

/// `1048576`, `64K`, `32M`, `1G`: a byte count for the command line.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a size (examples: 1048576, 64K, 32M)"))
}

/// The one log line of a limit hit, naming the peer.
pub fn log_hit(peer: SocketAddr, limit: Limit, detail: &str) {
    tracing::warn!("limit {limit} hit by {peer}: {detail}");
}

/// Watches one connection's outgoing queue: when it last made progress while
/// non-empty. A connection whose queue has not moved for the stall limit is dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct StallWatch {
    since: Option<Instant>,
}

impl StallWatch {
    /// After a write attempt: `progressed` (some bytes went), `empty` (nothing left).
    pub fn update(&mut self, progressed: bool, empty: bool, now: Instant) {
        if empty {
            self.since = None;
        } else if progressed || self.since.is_none() {
            self.since = Some(now);
        }
    }

    /// When the queue counts as stalled (`None`: it is empty).
    pub fn deadline(&self, limit: Option<Duration>) -> Option<Instant> {
        Some(self.since? + limit?)
    }
}

/// How long the trimmer waits after a connection closes, so that a burst of closes
/// (and the buffers their connections drop just after) is trimmed once.
const TRIM_SETTLE: Duration = Duration::from_millis(200);
/// At most one trim this often.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Set when a connection closed since the last trim; the trimmer thread waits on it.
static TRIM: std::sync::OnceLock<(std::sync::Mutex<bool>, std::sync::Condvar)> =
    std::sync::OnceLock::new();

/// Start the `tgtd-trim` thread (once, at daemon start): after connections close it
/// gives freed memory back to the system.
///
/// glibc keeps freed heap memory in its arenas, so after a burst of connections
/// went away the RSS would stay at its peak. The thread calls `malloc_trim(0)` once
/// a burst of closes has settled, at most once a second (with [`tune_allocator`],
/// the RSS comes back within 5% of its size before an abuse run).
pub fn start_trimmer() -> std::io::Result<()> {
    if TRIM.get().is_some() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("tgtd-trim".into())
        .spawn(trimmer)?;
    let _ = TRIM.set((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    Ok(())
}

/// A connection closed: wake the trimmer (when it runs).
pub fn connection_closed() {
    let Some((flag, cv)) = TRIM.get() else {
        return;
    };
    *flag
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
    cv.notify_one();
}

fn trimmer() {
    let (flag, cv) = loop {
        // `start_trimmer` stores the pair right after spawning us.
        if let Some(p) = TRIM.get() {
            break p;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    loop {
        {
            let mut g = flag
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while !*g {
                g = cv
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *g = false;
        }
        std::thread::sleep(TRIM_SETTLE);
        // Large read buffers kept for reuse go back to the allocator first.
        backends::recycle::release();
        // SAFETY: malloc_trim only releases free memory of the allocator's arenas;
        // it takes the arenas' own locks.
        #[cfg(target_env = "gnu")]
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
        std::thread::sleep(TRIM_EVERY.saturating_sub(TRIM_SETTLE));
    }
}

/// The core's Data-Out buffers come from the same pool as the stores' large read
/// buffers ([`backends::recycle`]): a buffer of 64 KiB or more whose pages are
/// already mapped, given back when the store has written it. Measured on 1 MiB
/// WRITEs at QD4 before this: page faults were a quarter of the event loop's time
/// (every such buffer was `mmap`ed, faulted in page by page and unmapped).
#[derive(Debug, Default)]
pub struct RecycledBuffers;

impl target_core::hooks::BufferSource for RecycledBuffers {
    fn take(&self, len: usize) -> Vec<u8> {
        backends::recycle::take(len)
    }

    fn freeze(&self, buf: Vec<u8>) -> bytes::Bytes {
        backends::recycle::freeze(buf)
    }
}

/// Buffers of at least this size are mapped and unmapped on their own
/// (`M_MMAP_THRESHOLD`), so they go back to the system when freed.
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Tune glibc's allocator so memory freed after a burst goes back to the system;
/// called before any thread starts.
///
/// - Arenas: at most the event loops plus two (at most 8). By default glibc makes
///   up to 8 per CPU, one per allocating thread (16 I/O workers, the loops, ...),
///   and each keeps what was freed into it.
/// - Large buffers (1 MiB and more: big READs and WRITEs) are always `mmap`ed. By
///   default glibc raises its mmap threshold to the size of the largest buffer
///   freed, after which such buffers come from the arenas and stay there.
///
/// Measured with `hostile.rs`' abuse run (tgtd-mio, 2 loops, 2 CPUs): RSS 11 MiB
/// before; after, 116 MiB with glibc's defaults, 34-73 MiB with `malloc_trim` alone,
/// 11-30 MiB with trim and the arena cap, 11.4-11.9 MiB (within 5%) with trim, the
/// cap and the threshold. Smaller transfers keep the heap's speed (the threshold is
/// where glibc's dynamic one ends up anyway for a 1 MiB workload); a transfer of
/// 1 MiB or more pays an `mmap`/`munmap` and its page faults, measured at more
/// than the copy itself, so large read buffers are recycled
/// (`backends::recycle`, emptied by the trim thread).
pub fn tune_allocator(loop_threads: usize) {
    let arenas = (loop_threads + 2).clamp(2, 8) as libc::c_int;
    // SAFETY: mallopt sets allocator parameters; called before other threads run.
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    let _ = arenas;
}

/// Raise the soft limit on open files to the hard limit, as a service manager's
/// `LimitNOFILE` would: every connection is a descriptor, and the default soft
/// limit (1024) is below `--max-connections`' default plus the daemon's own files.
/// Returns the new soft limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(r.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("32M"), Ok(32 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn stall_watch() {
        let t0 = Instant::now();
        let limit = Some(Duration::from_secs(10));
        let mut w = StallWatch::default();
        assert_eq!(w.deadline(limit), None);
        // Blocked with bytes queued: the clock starts.
        w.update(false, false, t0);
        assert_eq!(w.deadline(limit), Some(t0 + Duration::from_secs(10)));
        // Still blocked later: it does not restart.
        w.update(false, false, t0 + Duration::from_secs(3));
        assert_eq!(w.deadline(limit), Some(t0 + Duration::from_secs(10)));
        // Progress restarts it; an empty queue stops it.
        w.update(true, false, t0 + Duration::from_secs(5));
        assert_eq!(w.deadline(limit), Some(t0 + Duration::from_secs(15)));
        assert_eq!(w.deadline(None), None);
        w.update(true, true, t0 + Duration::from_secs(6));
        assert_eq!(w.deadline(limit), None);
    }
}
