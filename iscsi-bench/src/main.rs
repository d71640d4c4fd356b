//! `iscsi-bench PORTAL TARGET [LUN]`: an iSCSI load generator on the sans-IO
//! `iscsi-initiator` crate, with its own mio event loop.
//!
//! It logs in `--sessions` sessions, reads the LU's size with READ CAPACITY(16), then
//! keeps `--qd` READ(16)/WRITE(16) commands in flight per session for `--duration`
//! seconds or `--ops` commands, and reports IOPS, bandwidth, an HDR latency histogram
//! and errors by sense code. `--verify` stamps every written block and checks what
//! reads return (see [`verify`]).
//!
//! Exit status: 0 success; 1 the run failed (a verify mismatch, a command error, a
//! connection lost mid-run); 2 bad arguments or a target that cannot be reached or
//! set up.
#![deny(unsafe_code)] // exceptions: engine::read_into_spare, engine::set_rcvlowat
#![allow(clippy::disallowed_methods)] // the load generator owns its clock

mod engine;
mod report;
mod verify;
mod workload;

use clap::{Parser, ValueEnum};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

/// Read/write mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rw {
    /// Only READ(16).
    Read,
    /// Only WRITE(16).
    Write,
    /// READ(16) with probability --read-pct, else WRITE(16).
    Mix,
}

/// Where each command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// One after the other through the LBA range, wrapping at its end.
    Seq,
    /// Uniformly random, aligned to the I/O size.
    Rand,
}

/// A yes/no switch (as iSCSI spells its booleans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum YesNo {
    /// Yes.
    Yes,
    /// No.
    No,
}

impl YesNo {
    fn on(self) -> bool {
        self == YesNo::Yes
    }
}

/// iSCSI load generator: IOPS, MB/s, latency percentiles and data verification.
#[derive(Debug, Parser)]
#[command(name = "iscsi-bench", version)]
pub struct Args {
    /// Target portal: HOST[:PORT] (port 3260 when omitted).
    pub portal: String,
    /// Target name (IQN).
    pub target: String,
    /// Logical unit number.
    #[arg(default_value_t = 1)]
    pub lun: u64,
    /// Sessions (each with --connections TCP connections).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub sessions: u32,
    /// Connections per session (MC/S): the first logs in, the others join its
    /// session (same ISID and TSIH, their own CID); the session's commands are
    /// spread over them. MaxConnections is offered as this number.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: u16,
    /// Commands in flight per session (spread over its connections).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub qd: u32,
    /// Read, write or a mix.
    #[arg(long, value_enum, default_value_t = Rw::Read)]
    pub rw: Rw,
    /// Percentage of reads with --rw mix.
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub read_pct: u8,
    /// Sequential or random offsets.
    #[arg(long, value_enum, default_value_t = Pattern::Rand)]
    pub pattern: Pattern,
    /// I/O size: bytes, or with a k/m/g suffix (4k, 128k, 1m); a multiple of the
    /// LU's block size. `MIN-MAX` (e.g. 4k-256k) mixes sizes: MIN, 2xMIN, 4xMIN ...
    /// and MAX, each equally likely.
    #[arg(long, default_value = "4k", value_parser = parse_bs)]
    pub bs: BlockSizes,
    /// LBA range START:COUNT in logical blocks (default: the whole LU).
    #[arg(long, value_parser = parse_range)]
    pub lba_range: Option<(u64, u64)>,
    /// Run this many seconds (default 10 unless --ops is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many commands (all sessions together).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Negotiate HeaderDigest=CRC32C.
    #[arg(long)]
    pub header_digest: bool,
    /// Negotiate DataDigest=CRC32C.
    #[arg(long)]
    pub data_digest: bool,
    /// ErrorRecoveryLevel offered (the target answers the lower of this and its
    /// maximum). At 1 digest errors are recovered (SNACK, command retry) instead of
    /// failing the session; at 2 a failed connection is also replaced (after
    /// DefaultTime2Wait) and its commands taken over with TASK REASSIGN.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub erl: u8,
    /// InitialR2T offered.
    #[arg(long, value_enum, default_value_t = YesNo::No)]
    pub initial_r2t: YesNo,
    /// ImmediateData offered.
    #[arg(long, value_enum, default_value_t = YesNo::Yes)]
    pub immediate_data: YesNo,
    /// Our MaxRecvDataSegmentLength (largest Data-In segment we accept).
    #[arg(long, default_value = "256k", value_parser = parse_size)]
    pub max_recv_data_segment_length: u64,
    /// MaxBurstLength offered.
    #[arg(long, default_value = "16776192", value_parser = parse_size)]
    pub max_burst: u64,
    /// FirstBurstLength offered.
    #[arg(long, default_value = "256k", value_parser = parse_size)]
    pub first_burst: u64,
    /// CHAP user name.
    #[arg(long, requires = "chap_secret")]
    pub chap_user: Option<String>,
    /// CHAP secret.
    #[arg(long, requires = "chap_user")]
    pub chap_secret: Option<String>,
    /// Mutual CHAP: the name the target must answer with.
    #[arg(long, requires = "chap_target_secret")]
    pub chap_target_user: Option<String>,
    /// Mutual CHAP: the target's secret (turns mutual CHAP on).
    #[arg(long, requires = "chap_user")]
    pub chap_target_secret: Option<String>,
    /// InitiatorName.
    #[arg(long, default_value = "iqn.2024-01.rs.tgtd:iscsi-bench")]
    pub initiator_name: String,
    /// Stamp written blocks and check what reads return; exit 1 on any mismatch.
    #[arg(long)]
    pub verify: bool,
    /// Print the final report as JSON on stdout (and nothing else there).
    #[arg(long)]
    pub json: bool,
    /// Draw the latency histogram and throughput over time into this SVG file.
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
    /// Seed of the offset and mix choices (default: from the OS).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Percentage of writes sent with FUA (force unit access).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub fua_pct: u8,
    /// Send a SYNCHRONIZE CACHE(16) of the whole LU once this many writes without FUA
    /// have completed since the last one (one at a time; 0: never).
    #[arg(long, default_value_t = 0)]
    pub sync_every: u32,
    /// With --verify: append every FUA write acknowledged GOOD, and every write a
    /// SYNCHRONIZE CACHE acknowledged GOOD covers (completed before it was sent), to
    /// this file (one line `LBA BLOCKS GENERATION`), so that a later `--verify-only`
    /// run can check the acknowledged data survived a crash of the target.
    #[arg(long)]
    pub journal: Option<std::path::PathBuf>,
    /// Write nothing: read back every block --journal names and check it carries its
    /// LBA, a valid checksum and at least the journaled generation.
    #[arg(long, requires = "journal", conflicts_with_all = ["rw", "lba_range", "ops"])]
    pub verify_only: bool,
    /// Commands that fail on blocks in FIRST-LAST (inclusive LBAs) are expected
    /// (e.g. a fault injected there): counted apart, listed with their LBAs, and not a
    /// reason to fail the run. Failures elsewhere still are.
    #[arg(long, value_parser = parse_lba_span)]
    pub expect_errors: Option<(u64, u64)>,
    /// Seconds to wait for the connection and the login.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Poll the sockets without sleeping while the run lasts (as fio's `hipri` or
    /// SPDK's perf do): the latencies then leave out this tool's own wake-ups, which
    /// on a virtual machine cost more than a target's whole answer. Takes a CPU.
    #[arg(long)]
    pub busy_poll: bool,
}

/// A size in bytes: digits with an optional k/m/g (binary) suffix.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t.as_str(), 1),
    };
    let n: u64 = num
        .trim_end_matches(['i', 'b'])
        .parse()
        .map_err(|_| format!("not a size: {s:?} (use e.g. 4096, 4k, 1m)"))?;
    n.checked_mul(mul)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("size out of range: {s:?}"))
}

/// The I/O sizes of a run, in bytes: `min` alone, or a mix up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizes {
    /// Smallest.
    pub min: u64,
    /// Largest.
    pub max: u64,
}

impl BlockSizes {
    /// The sizes drawn from: MIN, 2xMIN, 4xMIN ... below MAX, and MAX.
    pub fn ladder(&self) -> Vec<u64> {
        let mut v = Vec::new();
        let mut s = self.min;
        while s < self.max {
            v.push(s);
            s *= 2;
        }
        v.push(self.max);
        v
    }
}

/// `SIZE` or `MIN-MAX` (see [`parse_size`]).
fn parse_bs(s: &str) -> Result<BlockSizes, String> {
    let (min, max) = match s.split_once('-') {
        Some((a, b)) => (parse_size(a)?, parse_size(b)?),
        None => {
            let n = parse_size(s)?;
            (n, n)
        }
    };
    if min > max {
        return Err(format!("--bs {s:?}: MIN is larger than MAX"));
    }
    Ok(BlockSizes { min, max })
}

/// `FIRST-LAST` (inclusive LBAs) or one `LBA`.
fn parse_lba_span(s: &str) -> Result<(u64, u64), String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("not FIRST-LAST: {s:?}"))
    };
    let (first, last) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if first > last {
        return Err(format!("FIRST is beyond LAST in {s:?}"));
    }
    Ok((first, last))
}

/// `START:COUNT` in logical blocks.
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("not START:COUNT: {s:?}"))?;
    let start = a
        .trim()
        .parse()
        .map_err(|_| format!("bad START in {s:?}"))?;
    let count: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("bad COUNT in {s:?}"))?;
    if count == 0 {
        return Err("COUNT must be at least 1".into());
    }
    Ok((start, count))
}

/// Why the run could not start: reported in one line, exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Bad argument combination found after parsing.
    #[error("{0}")]
    Args(String),
    /// The portal does not resolve.
    #[error("cannot resolve portal {0}")]
    Resolve(String),
    /// No TCP connection.
    #[error("cannot connect to {addr}: {err}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        err: std::io::Error,
    },
    /// Login or setup commands failed.
    #[error("{0}")]
    Target(String),
}

fn resolve(portal: &str) -> Result<SocketAddr, SetupError> {
    let with_port = if portal.parse::<SocketAddr>().is_ok()
        || portal
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok())
    {
        portal.to_string()
    } else if portal.starts_with('[') {
        format!("{portal}:3260")
    } else if portal.contains(':') {
        format!("[{portal}]:3260")
    } else {
        format!("{portal}:3260")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| SetupError::Resolve(portal.to_string()))
}

/// Packaging: `iscsi-bench --generate-man DIR` writes DIR/iscsi-bench.1.
fn generate_man(dir: &std::path::Path) -> ExitCode {
    use clap::CommandFactory;
    let path = dir.join("iscsi-bench.1");
    let mut page = Vec::new();
    let written = clap_mangen::Man::new(Args::command())
        .render(&mut page)
        .and_then(|()| std::fs::create_dir_all(dir))
        .and_then(|()| std::fs::write(&path, page));
    match written {
        Ok(()) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iscsi-bench: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 3 && argv[1] == "--generate-man" {
        return generate_man(std::path::Path::new(&argv[2]));
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line names the problem; usage is for --help.
            let text = e.to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad arguments");
            eprintln!("iscsi-bench: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(ok) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("iscsi-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<bool, SetupError> {
    if args.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err(SetupError::Args(
            "--duration must be a positive number of seconds".into(),
        ));
    }
    if args.ops == Some(0) {
        return Err(SetupError::Args("--ops must be at least 1".into()));
    }
    if args.max_recv_data_segment_length < 512 || args.max_recv_data_segment_length > 16_777_215 {
        return Err(SetupError::Args(
            "--max-recv-data-segment-length must be 512..16777215".into(),
        ));
    }
    for (name, v) in [
        ("--max-burst", args.max_burst),
        ("--first-burst", args.first_burst),
    ] {
        if !(512..=16_777_215).contains(&v) {
            return Err(SetupError::Args(format!("{name} must be 512..16777215")));
        }
    }
    if args.bs.max > u64::from(u32::MAX) {
        return Err(SetupError::Args("--bs must be below 4 GiB".into()));
    }
    if args.journal.is_some() && !args.verify && !args.verify_only {
        return Err(SetupError::Args(
            "--journal needs --verify (or --verify-only)".into(),
        ));
    }
    let addr = resolve(&args.portal)?;
    let outcome = engine::run(&args, addr)?;
    let ok = outcome.success();
    report::emit(&args, &outcome);
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_size_mixes() {
        let one = parse_bs("64k").unwrap();
        assert_eq!((one.min, one.max), (65536, 65536));
        assert_eq!(one.ladder(), vec![65536]);
        let mix = parse_bs("4k-256k").unwrap();
        assert_eq!(
            mix.ladder(),
            vec![4096, 8192, 16384, 32768, 65536, 131072, 262144]
        );
        assert_eq!(
            parse_bs("4k-12k").unwrap().ladder(),
            vec![4096, 8192, 12288]
        );
        assert!(parse_bs("256k-4k").is_err());
        assert!(parse_bs("4k-").is_err());
        assert_eq!(parse_lba_span("100-199"), Ok((100, 199)));
        assert_eq!(parse_lba_span("7"), Ok((7, 7)));
        assert!(parse_lba_span("9-8").is_err());
    }
}
