//! tgt's per-mode checks of a parsed command line (`main()` in `usr/tgtadm.c`), in
//! its order and with its texts; all of them exit 22.

use super::{Exit, Opts, CONTROL_SOCKET, JSON};
use target_core::mgmt::{Mode, Op};

/// tgt's `verify_mode_params`: the first option given that `allowed` does not list.
/// `-d` and our `--control-socket` are always allowed.
fn verify(o: &Opts, allowed: &str) -> Option<char> {
    o.seen
        .iter()
        .copied()
        .find(|&k| !allowed.contains(k) && k != 'd' && k != CONTROL_SOCKET && k != JSON)
}

/// `verify`, failing with `<mode> mode: option '-X' is not allowed/supported`.
fn allow(o: &Opts, mode_name: &str, allowed: &str) -> Result<(), Exit> {
    match verify(o, allowed) {
        Some(k) => Err(Exit::einval(&format!(
            "{mode_name} mode: option '-{k}' is not allowed/supported"
        ))),
        None => Ok(()),
    }
}

/// The same check where tgt words the refusal the other way round.
fn allow_alt(o: &Opts, mode_name: &str, allowed: &str) -> Result<(), Exit> {
    match verify(o, allowed) {
        Some(k) => Err(Exit::einval(&format!(
            "option '-{k}' not supported in {mode_name} mode"
        ))),
        None => Ok(()),
    }
}

fn require(cond: bool, msg: &str) -> Result<(), Exit> {
    if cond {
        Ok(())
    } else {
        Err(Exit::einval(msg))
    }
}

fn not_in_mode(op_name: &str, mode_name: &str) -> Exit {
    Exit::einval(&format!(
        "operation {op_name} not supported in {mode_name} mode"
    ))
}

/// The per-mode checks of tgt's `main()`, in its order and with its texts.
pub(super) fn check_mode(o: &Opts, mode: Mode, op: Op, op_name: &str) -> Result<(), Exit> {
    let name_value = "update operation requires 'name' and 'value' options";
    match mode {
        Mode::System => match op {
            Op::Update => {
                allow(o, "system", "LmonvC")?;
                require(o.name.is_some() && o.value.is_some(), name_value)
            }
            Op::Show | Op::Delete | Op::Stat => Ok(()),
            _ => Err(not_in_mode(op_name, "system")),
        },
        Mode::Target => {
            if o.tid <= 0 && op != Op::Show {
                let msg = if o.tid == 0 {
                    "'tid' cannot be 0"
                } else {
                    "'tid' option is necessary"
                };
                return Err(Exit::einval(msg));
            }
            match op {
                Op::New => {
                    allow(o, "target", "LmotTC")?;
                    require(
                        o.targetname.is_some(),
                        "creating new target requires a name, use --targetname",
                    )
                }
                Op::Delete => allow(o, "target", "LmotCF"),
                Op::Show | Op::Stat => allow(o, "target", "LmotC"),
                Op::Bind | Op::Unbind => {
                    allow(o, "target", "LmotIQBHC")?;
                    // tgt's text really lacks the space before "or".
                    let msg = format!(
                        "{op_name} operation requires initiator-address, initiator-nameor bus"
                    );
                    require(
                        o.address.is_some() || o.iqnname.is_some() || o.host != 0,
                        &msg,
                    )
                }
                Op::Update => {
                    allow(o, "target", "LmotnvC")?;
                    require(o.name.is_some() && o.value.is_some(), name_value)
                }
                _ => Err(not_in_mode(op_name, "target")),
            }
        }
        Mode::Account => match op {
            Op::New => {
                allow(o, "account", "LmoupfC")?;
                require(
                    o.user.is_some() && o.password.is_some(),
                    "'user' and 'password' options are required",
                )
            }
            Op::Show => allow(o, "account", "LmoC"),
            Op::Delete => allow(o, "account", "LmouC"),
            Op::Bind | Op::Unbind => {
                allow(o, "account", "LmotuOC")?;
                require(o.user.is_some(), "'user' option is necessary")
            }
            _ => Err(not_in_mode(op_name, "account")),
        },
        Mode::LogicalUnit => {
            if o.tid <= 0 {
                let msg = if o.tid == 0 {
                    "'tid' must not be 0"
                } else {
                    "'tid' option is necessary"
                };
                return Err(Exit::einval(msg));
            }
            require(o.lun.is_some(), "'lun' option is necessary")?;
            match op {
                Op::New => allow(o, "logicalunit", "LmofytlbEYCS"),
                Op::Delete | Op::Stat => allow(o, "logicalunit", "LmotlC"),
                Op::Update => allow_alt(o, "logicalunit", "LmofytlPC"),
                _ => Err(not_in_mode(op_name, "logicalunit")),
            }
        }
        Mode::Portal => match op {
            Op::New | Op::Delete => {
                allow(o, "portal", "LmoCP")?;
                require(
                    o.portal_ops.is_some(),
                    "you must specify --param portal=<portal>",
                )
            }
            Op::Show => allow_alt(o, "portal", "LmoC"),
            _ => Err(not_in_mode(op_name, "portal")),
        },
        Mode::Lld => match op {
            Op::Start | Op::Stop | Op::Show => allow(o, "lld", "LmoC"),
            // tgt prints the operation's enum number here, not its name.
            _ => Err(Exit::einval(&format!(
                "option {} not supported in lld mode",
                op_number(op)
            ))),
        },
        // tgt does no client-side checks for session and connection modes.
        _ => Ok(()),
    }
}

/// tgt's `enum tgtadm_op` value of an operation.
fn op_number(op: Op) -> u8 {
    match op {
        Op::New => 0,
        Op::Delete => 1,
        Op::Show => 2,
        Op::Bind => 3,
        Op::Unbind => 4,
        Op::Update => 5,
        Op::Stat => 6,
        Op::Start => 7,
        Op::Stop => 8,
        _ => u8::MAX,
    }
}
