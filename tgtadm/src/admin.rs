//! `tgt-admin`: tgt's targets.conf tool, as the same program under another name.
//!
//! ```text
//! tgt-admin -e|--execute            create what the file describes (keep the rest)
//! tgt-admin -u|--update ALL|NAME    bring the daemon in line with the file: add and
//!                                   change what differs, remove targets the file
//!                                   lacks (ALL); in-use targets need --force
//! tgt-admin -d|--delete ALL|NAME    delete targets (in use: --force)
//! tgt-admin --dump                  print the running state as targets.conf
//! tgt-admin -s|--show               tgtadm --mode target --op show
//! options: -c|--conf FILE (default /etc/tgt/targets.conf), -f|--force,
//!          -p|--pretend (check the file only), -C|--control-port N,
//!          --control-socket PATH
//! ```
//!
//! The file and its `include`s are read here and parsed with
//! [`target_core::config`]; the daemon receives the parsed value and applies the
//! difference itself ([`Request::ConfigApply`]).

use crate::cli::{Exit, Invocation, EXIT_EINVAL};
use crate::client;
use std::io::Write;
use std::path::PathBuf;
use target_core::config::{self, Config};
use target_core::mgmt::Request;

/// tgt's default configuration file.
pub(crate) const DEFAULT_CONF: &str = "/etc/tgt/targets.conf";

#[derive(Debug, Default)]
struct Args {
    action: Option<(String, Option<String>)>,
    conf: Option<String>,
    force: bool,
    pretend: bool,
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
            "-u" | "--update" => a.action = Some(("update".into(), Some(value(name)?))),
            "-d" | "--delete" => a.action = Some(("delete".into(), Some(value(name)?))),
            "-s" | "--show" => a.action = Some(("show".into(), None)),
            "--dump" => a.action = Some(("dump".into(), None)),
            "-c" | "--conf" => a.conf = Some(value(name)?),
            "-f" | "--force" => a.force = true,
            "-p" | "--pretend" => a.pretend = true,
            "-v" | "--verbose" | "--ignore-errors" => {}
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

const HELP: &str = "Usage: tgt-admin [OPTION]...\n\
  -e, --execute          create the targets of the configuration file\n\
  -u, --update ALL|NAME  apply changes of the file (ALL also removes targets it lacks)\n\
  -d, --delete ALL|NAME  delete targets\n\
      --dump             print the running configuration\n\
  -s, --show             show the targets (tgtadm --mode target --op show)\n\
  -c, --conf FILE        configuration file (default /etc/tgt/targets.conf)\n\
  -f, --force            also change or delete targets in use\n\
  -p, --pretend          only check the configuration file\n\
  -C, --control-port N   talk to the daemon on socket.N\n\
      --control-socket P talk to the daemon at P\n";

/// Read and parse a configuration file with its includes.
pub(crate) fn load(path: &str) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    config::parse(&text, path, &mut tgtd_common::config_file::read_include)
        .map_err(|e| e.to_string())
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

fn act(args: &[String]) -> Result<target_core::mgmt::Response, Exit> {
    let a = parse_args(args)?;
    let Some((action, value)) = a.action.clone() else {
        return Err(err(
            "nothing to do: give --execute, --update, --delete, --dump or --show",
            EXIT_EINVAL,
        ));
    };
    let conf = a.conf.clone().unwrap_or_else(|| DEFAULT_CONF.to_string());
    let file = |a: &Args| -> Result<Config, Exit> {
        let cfg = load(&conf).map_err(|e| err(&e, 1))?;
        if a.pretend {
            return Err(Exit {
                stdout: String::new(),
                stderr: String::new(),
                code: 0,
            });
        }
        Ok(cfg)
    };
    match (action.as_str(), value.as_deref()) {
        ("execute", _) => send(
            &a,
            Request::ConfigApply {
                config: file(&a)?,
                prune: false,
                force: a.force,
            },
        ),
        ("update", Some("ALL")) => send(
            &a,
            Request::ConfigApply {
                config: file(&a)?,
                prune: true,
                force: a.force,
            },
        ),
        ("update", Some(name)) => {
            let mut cfg = file(&a)?;
            cfg.targets.retain(|t| t.name == name);
            if cfg.targets.is_empty() {
                return Err(err(&format!("target {name} is not in {conf}"), EXIT_EINVAL));
            }
            send(
                &a,
                Request::ConfigApply {
                    config: cfg,
                    prune: false,
                    force: a.force,
                },
            )
        }
        ("delete", Some("ALL")) => send(
            &a,
            Request::ConfigApply {
                config: Config::default(),
                prune: true,
                force: a.force,
            },
        ),
        ("delete", Some(name)) => {
            let shown = send(&a, Request::TargetShow)?;
            let tid = shown
                .data
                .as_ref()
                .and_then(|d| d.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .find(|t| t["name"] == name)
                .and_then(|t| t["tid"].as_u64())
                .ok_or_else(|| err("can't find the target", EXIT_EINVAL))?;
            let tid = u32::try_from(tid).map_err(|_| err("bad tid", EXIT_EINVAL))?;
            send(
                &a,
                Request::TargetDelete {
                    tid,
                    force: a.force,
                },
            )
        }
        ("dump", _) => send(&a, Request::ConfigDump),
        _ => send(&a, Request::TargetShow),
    }
}

/// Run `tgt-admin` with `args`; returns the exit status.
pub(crate) fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = act(args).map_err(|mut e| {
        // Daemon refusals come back in tgtadm's words; say who speaks.
        if let Some(rest) = e.stderr.strip_prefix("tgtadm: ") {
            e.stderr = format!("tgt-admin: {rest}");
        }
        e
    });
    crate::finish(result, false, out, err)
}
