//! tgt's `tgtadm` command line: options, per-mode checks, and the [`Request`] it
//! becomes.
//!
//! The checks, their order, their texts and exit codes follow `main()` in tgt's
//! `usr/tgtadm.c`: options are handled in command-line order (so `--mode bogus`
//! fails before a later bad option is seen), a getopt error or a bad number exits 22
//! (EINVAL) after "Try `tgtadm --help'", an unknown mode or operation exits 1, and
//! every per-mode check exits 22.

use crate::getopt::{GetOpt, LongOpt, Spec};
use crate::number::{parse_arg, ArgError, ArgKind};
use std::path::PathBuf;
use target_core::mgmt::{Mode, Op, Request};

/// EINVAL, tgtadm's exit status for a refused command line and a refused request.
pub(crate) const EXIT_EINVAL: i32 = 22;

/// Key of our `--control-socket`, which has no short form.
const CONTROL_SOCKET: char = '@';
/// Key of our `--json`, which has no short form.
const JSON: char = '%';

const LONG_OPTIONS: &[LongOpt] = &[
    LongOpt {
        name: "debug",
        has_arg: false,
        key: 'd',
    },
    LongOpt {
        name: "help",
        has_arg: false,
        key: 'h',
    },
    LongOpt {
        name: "version",
        has_arg: false,
        key: 'V',
    },
    LongOpt {
        name: "lld",
        has_arg: true,
        key: 'L',
    },
    LongOpt {
        name: "op",
        has_arg: true,
        key: 'o',
    },
    LongOpt {
        name: "mode",
        has_arg: true,
        key: 'm',
    },
    LongOpt {
        name: "tid",
        has_arg: true,
        key: 't',
    },
    LongOpt {
        name: "sid",
        has_arg: true,
        key: 's',
    },
    LongOpt {
        name: "cid",
        has_arg: true,
        key: 'c',
    },
    LongOpt {
        name: "lun",
        has_arg: true,
        key: 'l',
    },
    LongOpt {
        name: "name",
        has_arg: true,
        key: 'n',
    },
    LongOpt {
        name: "value",
        has_arg: true,
        key: 'v',
    },
    LongOpt {
        name: "backing-store",
        has_arg: true,
        key: 'b',
    },
    LongOpt {
        name: "bstype",
        has_arg: true,
        key: 'E',
    },
    LongOpt {
        name: "bsopts",
        has_arg: true,
        key: 'S',
    },
    LongOpt {
        name: "bsoflags",
        has_arg: true,
        key: 'f',
    },
    LongOpt {
        name: "blocksize",
        has_arg: true,
        key: 'y',
    },
    LongOpt {
        name: "targetname",
        has_arg: true,
        key: 'T',
    },
    LongOpt {
        name: "initiator-address",
        has_arg: true,
        key: 'I',
    },
    LongOpt {
        name: "initiator-name",
        has_arg: true,
        key: 'Q',
    },
    LongOpt {
        name: "user",
        has_arg: true,
        key: 'u',
    },
    LongOpt {
        name: "password",
        has_arg: true,
        key: 'p',
    },
    LongOpt {
        name: "host",
        has_arg: true,
        key: 'H',
    },
    LongOpt {
        name: "force",
        has_arg: false,
        key: 'F',
    },
    LongOpt {
        name: "params",
        has_arg: true,
        key: 'P',
    },
    LongOpt {
        name: "bus",
        has_arg: true,
        key: 'B',
    },
    LongOpt {
        name: "device-type",
        has_arg: true,
        key: 'Y',
    },
    LongOpt {
        name: "outgoing",
        has_arg: false,
        key: 'O',
    },
    LongOpt {
        name: "control-port",
        has_arg: true,
        key: 'C',
    },
    LongOpt {
        name: "control-socket",
        has_arg: true,
        key: CONTROL_SOCKET,
    },
    LongOpt {
        name: "json",
        has_arg: false,
        key: JSON,
    },
];

/// tgt's short option string, quirks included: `-F` and `-O` take an argument in
/// short form although `--force` and `--outgoing` do not.
pub(crate) const SPEC: Spec = Spec {
    short: "dhVL:o:m:t:s:c:l:n:v:b:E:f:y:T:I:Q:u:p:H:F:P:B:Y:O:C:S:",
    long: LONG_OPTIONS,
};

/// What to run: the request and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    pub(crate) request: Request,
    /// `-C`/`--control-port`, the N of `socket.N`.
    pub(crate) control_port: u16,
    /// `--control-socket`: the socket path, overriding every default.
    pub(crate) control_socket: Option<PathBuf>,
    /// `--json`: print a `show`'s structured form instead of tgt's text.
    pub(crate) json: bool,
    /// Warnings to print on stderr before running (typographic dashes read).
    pub(crate) warnings: Vec<String>,
}

/// The end of the program without talking to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: i32,
}

impl Exit {
    /// `tgtadm: <msg>` on stderr.
    pub(crate) fn error(msg: &str, code: i32) -> Exit {
        Exit::error_with(msg, code)
    }

    fn error_with(msg: &str, code: i32) -> Exit {
        Exit {
            stdout: String::new(),
            stderr: format!("tgtadm: {msg}\n"),
            code,
        }
    }

    /// tgt's `usage(1)`: the reason, then the hint, exit 22.
    fn usage(reason: &str) -> Exit {
        Exit {
            stdout: String::new(),
            stderr: format!("{reason}\nTry `tgtadm --help' for more information.\n"),
            code: EXIT_EINVAL,
        }
    }

    fn einval(msg: &str) -> Exit {
        Exit::error(msg, EXIT_EINVAL)
    }

    /// A request tgt accepts that this daemon does not implement yet.
    fn unsupported() -> Exit {
        Exit::einval("this operation isn't supported")
    }
}

/// The option values, as tgt's `main()` keeps them.
#[derive(Debug, Default)]
struct Opts {
    lld: Option<String>,
    op: Option<(Op, String)>,
    mode: Option<Mode>,
    /// -1 when not given, as in tgt.
    tid: i64,
    lun: Option<u64>,
    name: Option<String>,
    value: Option<String>,
    path: Option<String>,
    targetname: Option<String>,
    address: Option<String>,
    iqnname: Option<String>,
    user: Option<String>,
    password: Option<String>,
    /// SCSI host number from `--host` or `--bus` (0: none, as tgt reads it).
    host: u32,
    force: bool,
    bsoflags: Option<String>,
    bsopts: Option<String>,
    blocksize: Option<String>,
    bstype: Option<String>,
    dev_type: Option<String>,
    sid: Option<u64>,
    cid: Option<u32>,
    outgoing: bool,
    json: bool,
    portal_ops: Option<String>,
    target_ops: Option<String>,
    control_port: u16,
    control_socket: Option<PathBuf>,
    /// Every option key in order, for tgt's `verify_mode_params`.
    seen: Vec<char>,
}

/// Parse the command line (without the program name).
pub(crate) fn parse(args: &[String]) -> Result<Invocation, Exit> {
    let mut o = Opts {
        tid: -1,
        ..Opts::default()
    };
    let (args, warnings) = crate::dashes::normalize(args, SPEC)?;
    let mut getopt = GetOpt::new(SPEC, "tgtadm", &args);
    for item in getopt.by_ref() {
        let (key, arg) = item.map_err(|msg| Exit::usage(&msg))?;
        o.seen.push(key);
        take_option(&mut o, key, arg.unwrap_or_default())?;
    }
    if let Some(first) = getopt.operands().first() {
        return Err(Exit::usage(&format!(
            "tgtadm: unrecognized option '{first}'"
        )));
    }
    let Some((op, op_name)) = o.op.clone() else {
        return Err(Exit::einval("specify the operation type"));
    };
    let Some(mode) = o.mode else {
        return Err(Exit::einval("specify the mode"));
    };
    checks::check_mode(&o, mode, op, &op_name)?;
    // tgt resolves --lld in the daemon ("can't find the driver"); iscsi is the only
    // driver here, so the answer is known without asking.
    if o.lld
        .as_deref()
        .is_some_and(|l| !l.is_empty() && l != "iscsi")
    {
        return Err(Exit::einval("can't find the driver"));
    }
    let request = to_request(&o, mode, op)?;
    Ok(Invocation {
        request,
        control_port: o.control_port,
        control_socket: o.control_socket,
        json: o.json,
        warnings,
    })
}

fn bad_arg(key: char, arg: &str, e: ArgError) -> Exit {
    let what = match e {
        ArgError::Invalid => "invalid",
        ArgError::OutOfRange => "out of range",
    };
    Exit::usage(&format!("-{key} argument value '{arg}' {what}"))
}

fn take_option(o: &mut Opts, key: char, arg: String) -> Result<(), Exit> {
    let num = |kind| parse_arg(&arg, kind).map_err(|e| bad_arg(key, &arg, e));
    match key {
        'L' => o.lld = Some(arg),
        'o' => match Op::parse(&arg) {
            Some(op) => o.op = Some((op, arg)),
            None => return Err(Exit::error(&format!("unknown operation: {arg}"), 1)),
        },
        'm' => match Mode::parse(&arg) {
            Some(m) => o.mode = Some(m),
            None => return Err(Exit::error(&format!("unknown mode: {arg}"), 1)),
        },
        't' => o.tid = num(ArgKind::NonNegativeInt)? as i64,
        's' => o.sid = Some(num(ArgKind::U64)?),
        'c' => o.cid = Some(num(ArgKind::U32)? as u32),
        'l' => o.lun = Some(num(ArgKind::U64)?),
        'P' if o.mode == Some(Mode::Portal) => o.portal_ops = Some(arg),
        'P' => o.target_ops = Some(arg),
        'n' => o.name = Some(arg),
        'v' => o.value = Some(arg),
        'b' => o.path = Some(arg),
        'T' => o.targetname = Some(arg),
        'I' => o.address = Some(arg),
        'Q' => o.iqnname = Some(arg),
        'u' => o.user = Some(arg),
        'p' => o.password = Some(arg),
        'B' => {
            o.host = crate::bus::bus_to_host(std::path::Path::new("/sys/bus"), &arg)
                .map_err(|m| Exit::error(&m, EXIT_EINVAL))?
        }
        'H' => o.host = num(ArgKind::NonNegativeInt)? as u32,
        'F' => o.force = true,
        'f' => o.bsoflags = Some(arg),
        'y' => o.blocksize = Some(arg),
        'E' => o.bstype = Some(arg),
        'S' => o.bsopts = Some(arg),
        'Y' => {
            dev_type(&arg)?;
            o.dev_type = Some(arg)
        }
        'O' => o.outgoing = true,
        JSON => o.json = true,
        'C' => o.control_port = num(ArgKind::NonNegativeShort)? as u16,
        CONTROL_SOCKET => o.control_socket = Some(PathBuf::from(arg)),
        'V' => {
            return Err(Exit {
                stdout: format!("{}\n", env!("CARGO_PKG_VERSION")),
                stderr: String::new(),
                code: 0,
            })
        }
        'h' => {
            return Err(Exit {
                stdout: crate::usage::text(),
                stderr: String::new(),
                code: 0,
            })
        }
        _ => {} // 'd': debug output of the client; nothing to show.
    }
    Ok(())
}

/// Device types `-Y` names (tgt's `str_to_device_type`); the daemon decides which
/// it emulates.
fn dev_type(s: &str) -> Result<(), Exit> {
    match s {
        "disk" | "tape" | "ssc" | "cd" | "changer" | "osd" | "pt" => Ok(()),
        _ => Err(Exit::einval(&format!("unknown target type: {s}"))),
    }
}

/// The request for a command line that passed tgt's checks, or why this daemon
/// cannot do it yet.
fn to_request(o: &Opts, mode: Mode, op: Op) -> Result<Request, Exit> {
    // Checked positive (target mode except show, logicalunit mode) and int-sized.
    let tid = u32::try_from(o.tid).unwrap_or(0);
    let tid_opt = (o.tid > 0).then_some(tid);
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(match (mode, op) {
        (Mode::System, Op::Show) => Request::SystemShow,
        (Mode::System, Op::Delete) => Request::SystemDelete,
        (Mode::System, Op::Stat) => Request::SystemStat,
        (Mode::Target, Op::Stat) => Request::TargetStat { tid },
        (Mode::LogicalUnit, Op::Stat) => Request::LuStat {
            tid,
            lun: o.lun.unwrap_or(0),
        },
        (Mode::System, Op::Update) => Request::SystemUpdate {
            name: text(&o.name),
            value: text(&o.value),
        },
        (Mode::Target, Op::New) => Request::TargetNew {
            tid,
            name: text(&o.targetname),
        },
        (Mode::Target, Op::Delete) => Request::TargetDelete {
            tid,
            force: o.force,
        },
        (Mode::Target, Op::Show) if o.tid < 0 => Request::TargetShow,
        (Mode::Target, Op::Show) => Request::TargetShowParams { tid },
        (Mode::Target, Op::Update) => Request::TargetUpdate {
            tid,
            name: text(&o.name),
            value: text(&o.value),
        },
        (Mode::Target, Op::Bind | Op::Unbind) if o.address.is_some() || o.iqnname.is_some() => {
            let (address, initiator_name) = (o.address.clone(), o.iqnname.clone());
            if op == Op::Bind {
                Request::TargetBind {
                    tid,
                    address,
                    initiator_name,
                }
            } else {
                Request::TargetUnbind {
                    tid,
                    address,
                    initiator_name,
                }
            }
        }
        // Neither address nor name: tgt sends the bare request, a host binding.
        (Mode::Target, Op::Bind) => Request::TargetBindHost { tid, host: o.host },
        (Mode::Target, Op::Unbind) => Request::TargetUnbindHost { tid, host: o.host },
        (Mode::LogicalUnit, Op::New) => {
            // tgt creates an empty, offline removable disk without one; we need a store.
            let Some(path) = o.path.clone() else {
                return Err(Exit::einval("'backing-store' option is necessary"));
            };
            // tgt sends the text and the daemon reads it with strtoul; a bad value
            // becomes 0, which the daemon refuses.
            let blocksize = o.blocksize.as_deref().map(|b| {
                parse_arg(b, ArgKind::U64)
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0)
            });
            Request::LuNew {
                tid,
                lun: o.lun.unwrap_or(0),
                backing_store: path,
                bstype: o.bstype.clone(),
                blocksize,
                params: None,
                bsoflags: o.bsoflags.clone(),
                bsopts: o.bsopts.clone(),
                device_type: o.dev_type.clone(),
            }
        }
        (Mode::LogicalUnit, Op::Delete) => Request::LuDelete {
            tid,
            lun: o.lun.unwrap_or(0),
        },
        (Mode::LogicalUnit, Op::Update) => Request::LuUpdate {
            tid,
            lun: o.lun.unwrap_or(0),
            params: o.target_ops.clone(),
        },
        (Mode::Account, Op::New) => Request::AccountNew {
            user: text(&o.user),
            password: text(&o.password),
        },
        (Mode::Account, Op::Delete) => Request::AccountDelete {
            user: text(&o.user),
        },
        (Mode::Account, Op::Show) => Request::AccountShow,
        (Mode::Account, Op::Bind) => Request::AccountBind {
            tid: tid_opt,
            user: text(&o.user),
            outgoing: o.outgoing,
        },
        (Mode::Account, Op::Unbind) => Request::AccountUnbind {
            tid: tid_opt,
            user: text(&o.user),
            outgoing: o.outgoing,
        },
        (Mode::Portal, Op::New | Op::Delete) => {
            // tgt's portal_ops: `portal=ADDR[:PORT]`; anything else is refused by
            // the daemon ("invalid request"), so send what cannot parse as empty.
            let portal = o
                .portal_ops
                .as_deref()
                .and_then(|p| p.strip_prefix("portal="))
                .unwrap_or("")
                .to_string();
            if op == Op::New {
                Request::PortalNew { portal }
            } else {
                Request::PortalDelete { portal }
            }
        }
        (Mode::Portal, Op::Show) => Request::PortalShow,
        (Mode::Lld, Op::Start) => Request::LldStart,
        (Mode::Lld, Op::Stop) => Request::LldStop,
        (Mode::Lld, Op::Show) => Request::LldShow,
        (Mode::Session, Op::Show) => Request::SessionShow { tid, sid: o.sid },
        (Mode::Session, Op::Delete) => Request::SessionDelete {
            tid,
            sid: o.sid.unwrap_or(0),
        },
        (Mode::Session, Op::Stat) => Request::SessionStat {
            tid,
            sid: o.sid.unwrap_or(0),
        },
        (Mode::Connection, Op::Stat) => Request::ConnectionStat {
            tid,
            sid: o.sid.unwrap_or(0),
            cid: o.cid.unwrap_or(0),
        },
        (Mode::Connection, Op::Show) => Request::ConnectionShow { tid, sid: o.sid },
        (Mode::Connection, Op::Delete) => Request::ConnectionDelete {
            tid,
            sid: o.sid.unwrap_or(0),
            cid: o.cid.unwrap_or(0),
        },
        _ => return Err(Exit::unsupported()),
    })
}

#[path = "checks.rs"]
mod checks;

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
