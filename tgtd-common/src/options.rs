//! The daemon command line: tgt's `tgtd` flags plus ours.

use clap::{CommandFactory, FromArgMatches, Parser};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Default iSCSI portal, as tgtd: every IPv4 address, port 3260.
pub const DEFAULT_PORTAL: &str = "0.0.0.0:3260";
/// `--busy-poll`'s default, in microseconds. At QD32 the initiator takes 100-200 µs
/// to answer a batch of responses with the next commands; with 50 µs a loop slept
/// (and paid a wake-up) about once per 40 commands and served 4 KiB reads and writes
/// 30-50% slower than with 200 (`docs/ARCHITECTURE.md`, busy polling).
pub const DEFAULT_BUSY_POLL_US: u64 = 200;
/// The portal `--demo` listens on unless one is given.
pub const DEMO_PORTAL: &str = "127.0.0.1:3260";

/// Userspace iSCSI target daemon, command-line compatible with tgtd.
///
/// Each daemon parses it with [`Options::parse_for`], which puts its own name,
/// version and description on `--help`, `--version` and the man page.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Options {
    /// Stay in the foreground (do not daemonize).
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// Control port N: the management socket is /var/run/tgtd/socket.N.
    #[arg(short = 'C', long = "control-port", default_value_t = 0)]
    pub control_port: u16,
    /// Put the management socket at PATH (overrides -C's path).
    #[arg(long = "control-socket", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Low-level driver options, tgt style: `--iscsi portal=HOST:PORT[,portal=...]`.
    #[arg(long = "iscsi", value_name = "portal=HOST:PORT")]
    pub iscsi: Vec<String>,
    /// Log level: 0 warnings and errors, 1 also info, 2 also debug, 3 and more
    /// also trace (`RUST_LOG` overrides).
    #[arg(short = 'd', long = "debug", value_name = "N", default_value_t = 0)]
    pub debug: u8,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9860; port 0
    /// picks one, printed at start). Only GET /metrics is answered.
    #[arg(long = "metrics", value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Start with a ready demo target (iqn.2026-11.org.example:demo, 1 GiB memory LUN 1,
    /// bound to 127.0.0.1) on 127.0.0.1:3260 unless a portal is given.
    #[arg(long = "demo")]
    pub demo: bool,
    /// Worker threads for backing-store I/O (`rdwr` stores, and what `aio` stores
    /// cannot put on io_uring); tgt's `-t/--nr_iothreads`, same default.
    #[arg(
        short = 't',
        long = "io-threads",
        visible_alias = "nr_iothreads",
        default_value_t = 16
    )]
    pub io_threads: usize,
    /// Event-loop threads for iSCSI connections (default: one per CPU).
    #[arg(long = "threads")]
    pub threads: Option<usize>,
    /// After the last socket event or completion, an event loop keeps polling
    /// without sleeping for this many microseconds (0: sleep at once). A sleeping
    /// CPU, above all a virtual one, takes tens of microseconds to wake, and a
    /// request that finds its loop awake skips that: lower single-request latency
    /// for some CPU while busy. A loop with nothing to do for this long sleeps.
    #[arg(long = "busy-poll", value_name = "US", default_value_t = DEFAULT_BUSY_POLL_US)]
    pub busy_poll_us: u64,
    /// Load this targets.conf at start (default: /etc/tgt/targets.conf when it
    /// exists; `-c none` loads nothing).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep LU state that must survive a restart (persistent reservations with APTPL)
    /// in DIR.
    #[arg(long = "state-dir", value_name = "DIR", default_value = crate::state_file::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// On SIGTERM, SIGINT or `system delete`, how long to wait for initiators asked to
    /// log out (Async Message) before exiting anyway, in milliseconds; also the time an
    /// initiator gets after `target delete --force` (at least 1 s).
    #[arg(long = "shutdown-grace", value_name = "MS", default_value_t = 2000)]
    pub shutdown_grace_ms: u64,
    /// Write the daemon's process id to FILE once it runs (after going to the
    /// background); the file is locked while it runs and removed at exit.
    #[arg(short = 'p', long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Write the daemon's man page into DIR and exit (packaging).
    #[arg(long = "generate-man", value_name = "DIR", hide = true)]
    pub generate_man: Option<PathBuf>,
    /// Resource limits (`crate::limits`).
    #[command(flatten)]
    pub limits: crate::limits::LimitOptions,
}

/// Who is parsing the command line: the daemon's own name, version and description.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The binary's name (`tgtd-mio`).
    pub name: &'static str,
    /// The name its man page documents (`tgtd` for the daemon installed as tgtd).
    pub man_name: &'static str,
    /// `CARGO_PKG_VERSION` of the daemon's crate.
    pub version: &'static str,
    /// `CARGO_PKG_DESCRIPTION` of the daemon's crate.
    pub about: &'static str,
}

/// How the daemon runs as a service: appended to `--help` and the man page.
const AFTER_HELP: &str = "\
Signals: SIGTERM and SIGINT shut down (initiators are asked to log out, see \
--shutdown-grace); SIGHUP reads the -c file again and applies it as \
`tgt-admin --update ALL` does (targets in use are left as they are).
With NOTIFY_SOCKET set (systemd Type=notify) the daemon sends READY=1 once every \
portal listens and the configuration is applied, STATUS= lines, STOPPING=1, and \
WATCHDOG=1 when WATCHDOG_USEC is set.";

/// Why the command line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// An `--iscsi` option other than `portal=`.
    #[error("unknown iscsi option '{0}' (expected portal=HOST:PORT)")]
    UnknownIscsiOption(String),
    /// A portal that is not HOST:PORT.
    #[error("invalid portal '{0}': expected HOST:PORT, e.g. 127.0.0.1:3260 or [::1]:3260")]
    BadPortal(String),
}

impl Options {
    /// The command line of `program`.
    pub fn command_for(program: &Program) -> clap::Command {
        Options::command()
            .name(program.name)
            .bin_name(program.name)
            .version(program.version)
            .about(program.about)
            .long_about(None)
            .after_help(AFTER_HELP)
    }

    /// Parse the process's arguments as `program` (`--help`, `--version` and errors
    /// name it); `--generate-man DIR` writes `DIR/<man_name>.8` and exits.
    pub fn parse_for(program: &Program) -> Options {
        let matches = Options::command_for(program).get_matches();
        let opts = Options::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Some(dir) = &opts.generate_man {
            match write_man_page(program, dir) {
                Ok(path) => {
                    println!("{}", path.display());
                    std::process::exit(0);
                }
                Err(e) => {
                    eprintln!("{}: cannot write the man page: {e}", program.name);
                    std::process::exit(1);
                }
            }
        }
        opts
    }

    /// The portals to listen on.
    pub fn portals(&self) -> Result<Vec<SocketAddr>, OptionsError> {
        let mut out = Vec::new();
        for opt in &self.iscsi {
            for part in opt.split(',').filter(|p| !p.is_empty()) {
                let Some(addr) = part.strip_prefix("portal=") else {
                    return Err(OptionsError::UnknownIscsiOption(part.to_string()));
                };
                out.push(parse_portal(addr)?);
            }
        }
        if out.is_empty() {
            let def = if self.demo {
                DEMO_PORTAL
            } else {
                DEFAULT_PORTAL
            };
            out.push(parse_portal(def)?);
        }
        Ok(out)
    }

    /// Where the management socket goes: `--control-socket`, else the environment, else
    /// `/var/run/tgtd/socket.N` when we may create it, else a per-user directory (the
    /// same rule `tgtadm` follows to find it).
    pub fn control_socket_path(&self) -> PathBuf {
        crate::mgmt_server::default_socket_path(self.control_socket.as_deref(), self.control_port)
    }
}

/// `program`'s man page (section 8) as roff.
pub fn man_page(program: &Program) -> std::io::Result<Vec<u8>> {
    let cmd = Options::command_for(program)
        .name(program.man_name)
        .bin_name(program.man_name);
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
    Ok(out)
}

/// Write `program`'s man page to `DIR/<man_name>.8`; returns the path.
pub fn write_man_page(program: &Program, dir: &std::path::Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.8", program.man_name));
    std::fs::write(&path, man_page(program)?)?;
    Ok(path)
}

/// `HOST:PORT`, `[v6]:PORT`, or a bare host (port 3260).
pub fn parse_portal(s: &str) -> Result<SocketAddr, OptionsError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(SocketAddr::new(ip, 3260));
    }
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:3260")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| OptionsError::BadPortal(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        Options::try_parse_from(std::iter::once("tgtd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn tgt_flags() {
        let o = opts(&[
            "-f",
            "-C",
            "7",
            "--iscsi",
            "portal=127.0.0.1:3261",
            "-d",
            "1",
        ]);
        assert!(o.foreground);
        assert_eq!(o.control_port, 7);
        assert_eq!(
            o.portals().unwrap(),
            vec!["127.0.0.1:3261".parse().unwrap()]
        );
        assert_eq!(
            opts(&[]).portals().unwrap(),
            vec!["0.0.0.0:3260".parse().unwrap()]
        );
        assert_eq!(
            opts(&["--demo"]).portals().unwrap(),
            vec!["127.0.0.1:3260".parse().unwrap()]
        );
        assert_eq!(
            opts(&["--iscsi", "portal=[::1]:3262,portal=127.0.0.1"])
                .portals()
                .unwrap(),
            vec![
                "[::1]:3262".parse().unwrap(),
                "127.0.0.1:3260".parse().unwrap()
            ]
        );
        assert!(matches!(
            opts(&["--iscsi", "nop_interval=3"]).portals(),
            Err(OptionsError::UnknownIscsiOption(_))
        ));
        assert!(matches!(
            opts(&["--iscsi", "portal=no such host:x"]).portals(),
            Err(OptionsError::BadPortal(_))
        ));
        let o = opts(&["--control-socket", "/tmp/x.sock"]);
        assert_eq!(o.control_socket_path(), PathBuf::from("/tmp/x.sock"));
        // tgtd's spelling of the I/O thread count, short and long.
        assert_eq!(opts(&[]).io_threads, 16);
        assert_eq!(opts(&["-t", "4"]).io_threads, 4);
        assert_eq!(opts(&["--nr_iothreads", "8"]).io_threads, 8);
        assert_eq!(opts(&["--io-threads", "2"]).io_threads, 2);
        assert_eq!(
            opts(&["-p", "/run/tgtd.pid"]).pid_file,
            Some(PathBuf::from("/run/tgtd.pid"))
        );
        assert_eq!(
            opts(&["--pid-file", "x.pid"]).pid_file,
            Some(PathBuf::from("x.pid"))
        );
    }

    const PROGRAM: Program = Program {
        name: "tgtd-x",
        man_name: "tgtd",
        version: "9.8.7",
        about: "The x daemon.",
    };

    #[test]
    fn own_name_version_and_description() {
        let mut cmd = Options::command_for(&PROGRAM);
        assert_eq!(cmd.render_version().trim(), "tgtd-x 9.8.7");
        let help = cmd.render_help().to_string();
        assert!(help.starts_with("The x daemon."), "{help}");
        assert!(help.contains("Usage: tgtd-x"), "{help}");
        assert!(help.contains("SIGHUP"), "{help}");
        assert!(!help.contains("generate-man"), "{help}");
        let man = String::from_utf8(man_page(&PROGRAM).unwrap()).unwrap();
        assert!(man.contains(".TH tgtd 8"), "{man}");
        assert!(man.contains("pid\\-file"), "{man}");
    }
}
