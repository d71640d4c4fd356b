//! Management requests: one variant per tgtadm `--mode`/`--op` pair we implement.
//!
//! tgt sends a fixed C struct plus a comma-separated `key=value` string that each
//! handler re-parses with `strstr`. Here the CLI parses once and the daemon receives a
//! typed value, so a request that reaches [`apply`](super::apply()) has already been
//! decoded into exactly the fields its operation uses.
//!
//! Adding a mode (account, portal, session, connection, lld) or an operation
//! (update, stat) is adding variants named `<Mode><Op>`; [`Request::mode`] and
//! [`Request::op`] give tgt's names back for logs and messages. The enum is
//! `#[non_exhaustive]` and travels as JSON keyed by the variant name, so a daemon
//! that does not know a variant refuses it with a decode error instead of
//! misreading it.

use crate::registry::Tid;
use serde::{Deserialize, Serialize};

/// A tgtadm mode (`--mode`), as tgt spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mode {
    /// `system` (alias `sys`).
    System,
    /// `target` (alias `tgt`).
    Target,
    /// `logicalunit` (alias `lu`).
    LogicalUnit,
    /// `portal` (alias `pt`).
    Portal,
    /// `lld`.
    Lld,
    /// `session` (alias `sess`).
    Session,
    /// `connection` (alias `conn`).
    Connection,
    /// `account`.
    Account,
}

impl Mode {
    /// tgt's long name, as `--mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::System => "system",
            Mode::Target => "target",
            Mode::LogicalUnit => "logicalunit",
            Mode::Portal => "portal",
            Mode::Lld => "lld",
            Mode::Session => "session",
            Mode::Connection => "connection",
            Mode::Account => "account",
        }
    }

    /// Parse `--mode`, accepting tgt's short aliases (`str_to_mode` in tgtadm.c).
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "system" | "sys" => Mode::System,
            "target" | "tgt" => Mode::Target,
            "logicalunit" | "lu" => Mode::LogicalUnit,
            "portal" | "pt" => Mode::Portal,
            "session" | "sess" => Mode::Session,
            "connection" | "conn" => Mode::Connection,
            "account" => Mode::Account,
            "lld" => Mode::Lld,
            _ => return None,
        })
    }
}

/// A tgtadm operation (`--op`), as tgt spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Op {
    /// `new`.
    New,
    /// `delete`.
    Delete,
    /// `show`.
    Show,
    /// `bind`.
    Bind,
    /// `unbind`.
    Unbind,
    /// `update`.
    Update,
    /// `stat`.
    Stat,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
}

impl Op {
    /// tgt's name, as `--op` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Op::New => "new",
            Op::Delete => "delete",
            Op::Show => "show",
            Op::Bind => "bind",
            Op::Unbind => "unbind",
            Op::Update => "update",
            Op::Stat => "stat",
            Op::Start => "start",
            Op::Stop => "stop",
        }
    }

    /// Parse `--op` (`str_to_op` in tgtadm.c; exact names, no aliases).
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "new" => Op::New,
            "delete" => Op::Delete,
            "show" => Op::Show,
            "bind" => Op::Bind,
            "unbind" => Op::Unbind,
            "update" => Op::Update,
            "stat" => Op::Stat,
            "start" => Op::Start,
            "stop" => Op::Stop,
            _ => return None,
        })
    }
}

/// One management request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// `--mode system --op show`: daemon state, drivers, backing store types.
    SystemShow,
    /// `--mode system --op delete`: stop the daemon. tgt allows it only when no
    /// target is left (`is_system_inactive`).
    SystemDelete,
    /// `--mode target --op new --tid N --targetname NAME`.
    TargetNew {
        /// Target ID, never 0.
        tid: Tid,
        /// iSCSI name: letters, digits, `:`, `.` and `-` only, as tgt requires.
        name: String,
    },
    /// `--mode target --op delete --tid N [--force]`.
    TargetDelete {
        /// Target ID.
        tid: Tid,
        /// Delete even when initiators are logged in.
        force: bool,
    },
    /// `--mode target --op show` without `--tid`: every target, tgt's layout.
    TargetShow,
    /// `--mode target --op bind --tid N -I ADDR | -Q NAME`. When both are given the
    /// address is bound first, as tgt does.
    TargetBind {
        /// Target ID.
        tid: Tid,
        /// `ALL`, an address or `addr/prefix`.
        address: Option<String>,
        /// An initiator name.
        initiator_name: Option<String>,
    },
    /// `--mode target --op unbind`, the reverse of [`Request::TargetBind`].
    TargetUnbind {
        /// Target ID.
        tid: Tid,
        /// `ALL`, an address or `addr/prefix`, as it was bound.
        address: Option<String>,
        /// An initiator name, as it was bound.
        initiator_name: Option<String>,
    },
    /// `--mode logicalunit --op new --tid N --lun L --backing-store PATH`.
    LuNew {
        /// Target ID.
        tid: Tid,
        /// LUN number; 0 is the controller and always exists.
        lun: u64,
        /// What `--backing-store` names for the type (a path, or a size for memory).
        backing_store: String,
        /// `--bstype`; `rdwr` when absent, tgt's default.
        bstype: Option<String>,
        /// `--blocksize`; 512 when absent.
        blocksize: Option<u32>,
        /// tgt's `--params` for logical units (`readonly=1,scsi_sn=...`), applied
        /// before the LUN becomes visible. tgtadm only sends these with `--op update`;
        /// the config file path creates a LUN with them in one step.
        params: Option<String>,
    },
    /// `--mode logicalunit --op delete --tid N --lun L`.
    LuDelete {
        /// Target ID.
        tid: Tid,
        /// LUN number; 0 is refused.
        lun: u64,
    },
}

impl Request {
    /// The mode this request belongs to.
    pub fn mode(&self) -> Mode {
        match self {
            Request::SystemShow | Request::SystemDelete => Mode::System,
            Request::TargetNew { .. }
            | Request::TargetDelete { .. }
            | Request::TargetShow
            | Request::TargetBind { .. }
            | Request::TargetUnbind { .. } => Mode::Target,
            Request::LuNew { .. } | Request::LuDelete { .. } => Mode::LogicalUnit,
        }
    }

    /// The operation this request performs.
    pub fn op(&self) -> Op {
        match self {
            Request::TargetNew { .. } | Request::LuNew { .. } => Op::New,
            Request::SystemDelete | Request::TargetDelete { .. } | Request::LuDelete { .. } => {
                Op::Delete
            }
            Request::SystemShow | Request::TargetShow => Op::Show,
            Request::TargetBind { .. } => Op::Bind,
            Request::TargetUnbind { .. } => Op::Unbind,
        }
    }

    /// Whether a successful answer means the daemon should stop (tgt's
    /// `system delete`); the adapter shuts down after sending the reply.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Request::SystemDelete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_and_op_names_round_trip() {
        for m in [
            Mode::System,
            Mode::Target,
            Mode::LogicalUnit,
            Mode::Portal,
            Mode::Lld,
            Mode::Session,
            Mode::Connection,
            Mode::Account,
        ] {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        assert_eq!(Mode::parse("lu"), Some(Mode::LogicalUnit));
        assert_eq!(Mode::parse("tgt"), Some(Mode::Target));
        assert_eq!(Mode::parse("Target"), None);
        for o in [
            "new", "delete", "show", "bind", "unbind", "update", "stat", "start", "stop",
        ] {
            assert_eq!(Op::parse(o).map(Op::name), Some(o));
        }
    }

    #[test]
    fn request_names_its_mode_and_op() {
        let r = Request::LuDelete { tid: 1, lun: 2 };
        assert_eq!((r.mode(), r.op()), (Mode::LogicalUnit, Op::Delete));
        assert!(Request::SystemDelete.is_shutdown());
        assert!(!Request::TargetShow.is_shutdown());
    }
}
