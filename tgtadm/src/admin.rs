//! `tgt-admin`: tgt's targets.conf tool, as the same program under another name.
//!
//! ```text
//! tgt-admin -e|--execute            create the file's targets that do not exist,
//!                                   delete the ones it lacks (not those in use)
//! tgt-admin --update ALL|NAME       recreate what is not in use, add what is new
//! tgt-admin --delete ALL|NAME|tid=N delete targets (in use: --force)
//! tgt-admin --dump [--full]         print the running state as tgt-admin does;
//!                                   --full (ours): everything, secrets included, in
//!                                   a form that loads back to the same state
//! tgt-admin -s|--show               tgtadm --mode target --op show
//! options: -c|--conf FILE (default /etc/tgt/targets.conf), -f|--force,
//!          -p|--pretend (print the commands only), -v|--verbose,
//!          --ignore-errors, -C|--control-port N, --control-socket PATH
//! ```
//!
//! Behaviour, messages and exit status are tgt-admin 1.0.85's. The file and its
//! `include`s are read here and parsed with [`target_core::config`]; the daemon
//! receives the parsed value and carries out tgt-admin's rules itself
//! ([`Request::ConfigApply`]), so its `-c` at start does exactly the same.

use crate::cli::{Exit, Invocation, EXIT_EINVAL};
use crate::client;
use std::io::Write;
use std::path::PathBuf;
use target_core::config::{Config, ConfigError, ConfigErrorKind};
use target_core::mgmt::{ConfigAction, ConfigReport, Request};

/// tgt's default configuration file.
pub(crate) const DEFAULT_CONF: &str = "/etc/tgt/targets.conf";

#[derive(Debug, Default)]
struct Args {
    action: Option<(String, Option<String>)>,
    conf: Option<String>,
    force: bool,
    full: bool,
    pretend: bool,
    verbose: bool,
    ignore_errors: bool,
    control_port: u16,
    control_socket: Option<PathBuf>,
}

fn err(msg: &str, code: i32) -> Exit {
    Exit {
        stdout: String::new(),
        stderr: format!("tgt-admin: {msg}\n"),
        code,
    }
}

fn parse_args(args: &[String]) -> Result<Args, Exit> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(w) = it.next() {
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (w.as_str(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| err(&format!("option {what} requires a value"), EXIT_EINVAL))
        };
        match name {
            "-e" | "--execute" => a.action = Some(("execute".into(), None)),
            "--update" => a.action = Some(("update".into(), Some(value(name)?))),
            "--delete" => a.action = Some(("delete".into(), Some(value(name)?))),
            "-s" | "--show" => a.action = Some(("show".into(), None)),
            "--dump" => a.action = Some(("dump".into(), None)),
            "-c" | "--conf" => a.conf = Some(value(name)?),
            "-f" | "--force" => a.force = true,
            "--full" => a.full = true,
            "-p" | "--pretend" => a.pretend = true,
            "-v" | "--verbose" => a.verbose = true,
            "--ignore-errors" => a.ignore_errors = true,
            "-C" | "--control-port" => {
                let v = value(name)?;
                a.control_port = v
                    .parse()
                    .map_err(|_| err(&format!("invalid control port '{v}'"), EXIT_EINVAL))?;
            }
            "--control-socket" => a.control_socket = Some(PathBuf::from(value(name)?)),
            "-h" | "--help" => {
                return Err(Exit {
                    stdout: HELP.into(),
                    stderr: String::new(),
                    code: 0,
                })
            }
            _ => {
                return Err(err(
                    &format!("unknown option '{w}' (try --help)"),
                    EXIT_EINVAL,
                ))
            }
        }
    }
    Ok(a)
}

pub(crate) const HELP: &str = "Usage: tgt-admin [OPTION]...\n\
  -e, --execute          create the targets of the configuration file\n\
      --update ALL|NAME  recreate targets from the file (ALL also removes targets it lacks)\n\
      --delete ALL|NAME  delete targets (tid=N: by tid)\n\
      --dump             print the running configuration (tgt-admin's format)\n\
      --full             with --dump: everything, secrets included, loadable as is\n\
  -s, --show             show the targets (tgtadm --mode target --op show)\n\
  -c, --conf FILE        configuration file (default /etc/tgt/targets.conf)\n\
  -f, --force            also change or delete targets in use\n\
  -p, --pretend          only print the tgtadm commands\n\
  -v, --verbose          print the tgtadm commands as they run\n\
      --ignore-errors    go on when a command fails\n\
  -C, --control-port N   talk to the daemon on socket.N\n\
      --control-socket P talk to the daemon at P\n";

/// Read and parse a configuration file with its includes, failing as tgt-admin
/// does: a missing file or a file its parser refuses stops it with the status
/// Perl's `die` gives, a directive without a value with tgt-admin's own message.
fn load(path: &str) -> Result<Config, Exit> {
    if !std::path::Path::new(path).exists() {
        return Err(Exit {
            stdout: String::new(),
            stderr: format!("Config file {path} not found. Exiting...\n"),
            code: 2,
        });
    }
    tgtd_common::config_file::load(std::path::Path::new(path)).map_err(|e| match e {
        tgtd_common::config_file::LoadError::Parse(ConfigError {
            kind: ConfigErrorKind::MissingTargetValue { key, target },
            ..
        }) => Exit {
            stdout: format!(
                "\nOption {key} has a missing value!\n\
                 Check your config file for errors (target: {target})\n"
            ),
            stderr: String::new(),
            code: 1,
        },
        tgtd_common::config_file::LoadError::Parse(ConfigError {
            kind: ConfigErrorKind::MultipleDefinitions(key),
            ..
        }) => Exit {
            stdout: format!(
                "Multiple {key} definitions are not allowed!\n\
                 Check your config file for errors.\n"
            ),
            stderr: String::new(),
            code: 1,
        },
        e => Exit {
            stdout: String::new(),
            stderr: format!("tgt-admin: {e}\n"),
            code: 255,
        },
    })
}

fn send(a: &Args, request: Request) -> Result<target_core::mgmt::Response, Exit> {
    let inv = Invocation {
        request,
        control_port: a.control_port,
        control_socket: a.control_socket.clone(),
        json: false,
        warnings: Vec::new(),
    };
    let path = client::socket_path(&inv);
    client::send(&path, &inv.request)
}

/// Send a [`Request::ConfigApply`] and turn its [`ConfigReport`] into our exit.
fn apply(a: &Args, config: Config, action: ConfigAction, before: String) -> Result<Exit, Exit> {
    let req = Request::ConfigApply {
        config,
        action,
        force: a.force,
        pretend: a.pretend,
        verbose: a.verbose,
        control_port: u32::from(a.control_port),
    };
    let resp = send(a, req)?;
    let report =
        ConfigReport::from_response(&resp).ok_or_else(|| err("the daemon sent no report", 1))?;
    Ok(Exit {
        stdout: before + &report.stdout,
        stderr: report.stderr,
        code: report.code,
    })
}

fn act(args: &[String]) -> Result<Exit, Exit> {
    let a = parse_args(args)?;
    let Some((action, value)) = a.action.clone() else {
        // tgt-admin without an action prints its usage.
        return Ok(Exit {
            stdout: HELP.into(),
            stderr: String::new(),
            code: 0,
        });
    };
    let conf = a.conf.clone().unwrap_or_else(|| DEFAULT_CONF.to_string());
    let file = |a: &Args| -> Result<(Config, String), Exit> {
        let mut cfg = load(&conf)?;
        cfg.ignore_errors |= a.ignore_errors;
        // tgt-admin "executes" this comment, so --pretend and --verbose print it.
        let before = if a.conf.is_some() && (a.pretend || a.verbose) {
            format!("# Using {conf} as configuration file\n\n")
        } else {
            String::new()
        };
        let mut warnings = String::new();
        for w in &cfg.ignored {
            warnings.push_str(&format!("tgt-admin: warning: {w}\n"));
        }
        eprint!("{warnings}");
        Ok((cfg, before))
    };
    let text = |resp: target_core::mgmt::Response| Exit {
        stdout: resp.output.unwrap_or_default(),
        stderr: String::new(),
        code: 0,
    };
    match (action.as_str(), value) {
        ("execute", _) => {
            let (cfg, before) = file(&a)?;
            apply(&a, cfg, ConfigAction::Execute, before)
        }
        ("update", Some(which)) => {
            let (cfg, before) = file(&a)?;
            apply(&a, cfg, ConfigAction::Update(which), before)
        }
        ("delete", Some(which)) => apply(
            &a,
            Config::default(),
            ConfigAction::Delete(which),
            String::new(),
        ),
        ("dump", _) if a.full => {
            // The answer's data is the whole running state.
            let resp = send(&a, Request::ConfigDump)?;
            let cfg: Config = resp
                .data
                .and_then(|d| serde_json::from_value(d).ok())
                .ok_or_else(|| err("the daemon sent no configuration", 1))?;
            Ok(Exit {
                stdout: target_core::config::dump(&cfg),
                stderr: String::new(),
                code: 0,
            })
        }
        ("dump", _) => send(&a, Request::ConfigDump).map(text),
        _ => send(&a, Request::TargetShow).map(text),
    }
}

/// Run `tgt-admin` with `args`; returns the exit status.
pub(crate) fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let exit = act(args).unwrap_or_else(|mut e| {
        // Daemon refusals come back in tgtadm's words; say who speaks.
        if let Some(rest) = e.stderr.strip_prefix("tgtadm: ") {
            e.stderr = format!("tgt-admin: {rest}");
        }
        e
    });
    let _ = out.write_all(exit.stdout.as_bytes());
    let _ = err.write_all(exit.stderr.as_bytes());
    exit.code
}
