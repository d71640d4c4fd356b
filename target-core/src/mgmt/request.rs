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
    /// `--mode target --op bind --tid N --bus B | --host H`: bind a SCSI host.
    TargetBindHost {
        /// Target ID.
        tid: Tid,
        /// SCSI host number (`--host`, or what `--bus` resolves to).
        host: u32,
    },
    /// `--mode target --op unbind --bus B | --host H`.
    TargetUnbindHost {
        /// Target ID (tgt finds the binding by host alone).
        tid: Tid,
        /// SCSI host number.
        host: u32,
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
        /// `--bsoflags` (`sync`, `direct`, `sync:direct`).
        #[serde(default)]
        bsoflags: Option<String>,
        /// `--bsopts`: options for the backing store type, kept and shown.
        #[serde(default)]
        bsopts: Option<String>,
        /// `--device-type` (`disk` when absent).
        #[serde(default)]
        device_type: Option<String>,
    },
    /// `--mode logicalunit --op update --tid N --lun L [--params K=V,...]`: change
    /// LU parameters; also re-reads the size of a file-backed LUN (grow online).
    LuUpdate {
        /// Target ID.
        tid: Tid,
        /// LUN number.
        lun: u64,
        /// tgt's `--params` (`readonly=1,online=0,scsi_sn=...`).
        params: Option<String>,
    },
    /// `--mode system --op update --name State|debug|iSNS|iSNSServerIP|iSNSServerPort|
    /// iSNSAccessControl --value V`.
    SystemUpdate {
        /// `State`, `debug` or one of the iSNS settings.
        name: String,
        /// `ready`/`offline`, `on`/`off`, `On`/`Off`, an address, a port.
        value: String,
    },
    /// `--mode target --op show --tid N`: the target's iSCSI parameters.
    TargetShowParams {
        /// Target ID.
        tid: Tid,
    },
    /// `--mode target --op update --tid N --name K --value V`.
    TargetUpdate {
        /// Target ID.
        tid: Tid,
        /// Parameter name, tgt's spelling (`MaxRecvDataSegmentLength`, `nop_interval`).
        name: String,
        /// New value.
        value: String,
    },
    /// `--mode account --op new --user U --password P`.
    AccountNew {
        /// CHAP name.
        user: String,
        /// CHAP secret.
        password: String,
    },
    /// `--mode account --op delete --user U`: also unbinds it everywhere.
    AccountDelete {
        /// CHAP name.
        user: String,
    },
    /// `--mode account --op show`.
    AccountShow,
    /// `--mode account --op bind [--tid N] --user U [--outgoing]`; without a tid
    /// the account is bound for discovery (tgt's global target).
    AccountBind {
        /// Target ID, `None` for discovery.
        tid: Option<Tid>,
        /// CHAP name.
        user: String,
        /// Bind as the target's outgoing (mutual CHAP) account.
        outgoing: bool,
    },
    /// `--mode account --op unbind`, the reverse of [`Request::AccountBind`].
    AccountUnbind {
        /// Target ID, `None` for discovery.
        tid: Option<Tid>,
        /// CHAP name.
        user: String,
        /// Unbind the outgoing account.
        outgoing: bool,
    },
    /// `--mode portal --op new --param portal=ADDR[:PORT]`: listen there now.
    PortalNew {
        /// `ADDR`, `ADDR:PORT`, `[V6]:PORT`.
        portal: String,
    },
    /// `--mode portal --op delete --param portal=ADDR[:PORT]`: stop listening.
    PortalDelete {
        /// As it was added.
        portal: String,
    },
    /// `--mode portal --op show`.
    PortalShow,
    /// `--mode lld --op start`.
    LldStart,
    /// `--mode lld --op stop`: refused while targets exist.
    LldStop,
    /// `--mode lld --op show`.
    LldShow,
    /// `--mode session --op show --tid N [--sid S]`.
    SessionShow {
        /// Target ID.
        tid: Tid,
        /// TSIH of one session; all when absent.
        sid: Option<u64>,
    },
    /// `--mode session --op delete --tid N --sid S`: force the session out. tgt
    /// 1.0.x refuses this ("invalid request"); we log the session out.
    SessionDelete {
        /// Target ID.
        tid: Tid,
        /// TSIH.
        sid: u64,
    },
    /// `--mode connection --op show --tid N [--sid S]`.
    ConnectionShow {
        /// Target ID.
        tid: Tid,
        /// TSIH; ignored by tgt's listing (it shows every connection).
        sid: Option<u64>,
    },
    /// `--mode connection --op delete --tid N --sid S --cid C`: force logout.
    ConnectionDelete {
        /// Target ID.
        tid: Tid,
        /// TSIH.
        sid: u64,
        /// Connection ID.
        cid: u32,
    },
    /// Do what tgt-admin does with a configuration (`--execute`, `--update`,
    /// `--delete`; the daemon's `-c` is `--execute`), with tgt-admin's rules, in the
    /// daemon so that both paths share them. The answer's `data` is a
    /// [`ConfigReport`](super::ConfigReport): what tgt-admin would print, and its
    /// exit status.
    ConfigApply {
        /// The parsed file (empty for `--delete`).
        config: crate::config::Config,
        /// Which tgt-admin action.
        #[serde(default)]
        action: super::ConfigAction,
        /// `--force`: also change or delete targets in use, use stores in use.
        force: bool,
        /// `--pretend`: print the tgtadm commands, run none.
        #[serde(default)]
        pretend: bool,
        /// `--verbose`: print the commands as they run.
        #[serde(default)]
        verbose: bool,
        /// The `-C` value tgt-admin would pass its tgtadm commands; it only shows in
        /// the messages, which quote those commands.
        #[serde(default)]
        control_port: u32,
    },
    /// The running state in targets.conf form (tgt-admin `--dump`).
    ConfigDump,
    /// `--mode logicalunit --op delete --tid N --lun L`.
    LuDelete {
        /// Target ID.
        tid: Tid,
        /// LUN number; 0 is refused.
        lun: u64,
    },
    /// `--mode system --op stat`: I/O counters of every target.
    SystemStat,
    /// `--mode target --op stat --tid N`: I/O counters of one target.
    TargetStat {
        /// Target ID.
        tid: Tid,
    },
    /// `--mode logicalunit --op stat --tid N --lun L`: I/O counters of one LU.
    LuStat {
        /// Target ID.
        tid: Tid,
        /// LUN number.
        lun: u64,
    },
    /// `--mode session --op stat --tid N --sid S`: the session's I/O counters per LU,
    /// then its connections' PDU counters (tgt's `iscsi_stat_session_by_sid`).
    SessionStat {
        /// Target ID.
        tid: Tid,
        /// TSIH, as `session show` and `session delete` take it.
        sid: u64,
    },
    /// `--mode connection --op stat --tid N --sid S --cid C`: one connection's PDU
    /// counters (tgt's `iscsi_stat_connection`).
    ConnectionStat {
        /// Target ID.
        tid: Tid,
        /// TSIH.
        sid: u64,
        /// Connection ID.
        cid: u32,
    },
}

impl Request {
    /// The mode this request belongs to.
    pub fn mode(&self) -> Mode {
        match self {
            Request::SystemShow
            | Request::SystemDelete
            | Request::SystemUpdate { .. }
            | Request::ConfigApply { .. }
            | Request::ConfigDump
            | Request::SystemStat => Mode::System,
            Request::TargetNew { .. }
            | Request::TargetDelete { .. }
            | Request::TargetShow
            | Request::TargetShowParams { .. }
            | Request::TargetUpdate { .. }
            | Request::TargetBind { .. }
            | Request::TargetUnbind { .. }
            | Request::TargetBindHost { .. }
            | Request::TargetUnbindHost { .. }
            | Request::TargetStat { .. } => Mode::Target,
            Request::LuNew { .. }
            | Request::LuDelete { .. }
            | Request::LuUpdate { .. }
            | Request::LuStat { .. } => Mode::LogicalUnit,
            Request::AccountNew { .. }
            | Request::AccountDelete { .. }
            | Request::AccountShow
            | Request::AccountBind { .. }
            | Request::AccountUnbind { .. } => Mode::Account,
            Request::PortalNew { .. } | Request::PortalDelete { .. } | Request::PortalShow => {
                Mode::Portal
            }
            Request::LldStart | Request::LldStop | Request::LldShow => Mode::Lld,
            Request::SessionShow { .. }
            | Request::SessionDelete { .. }
            | Request::SessionStat { .. } => Mode::Session,
            Request::ConnectionShow { .. }
            | Request::ConnectionDelete { .. }
            | Request::ConnectionStat { .. } => Mode::Connection,
        }
    }

    /// The operation this request performs.
    pub fn op(&self) -> Op {
        match self {
            Request::TargetNew { .. }
            | Request::LuNew { .. }
            | Request::AccountNew { .. }
            | Request::PortalNew { .. } => Op::New,
            Request::SystemDelete
            | Request::TargetDelete { .. }
            | Request::LuDelete { .. }
            | Request::AccountDelete { .. }
            | Request::PortalDelete { .. }
            | Request::SessionDelete { .. }
            | Request::ConnectionDelete { .. } => Op::Delete,
            Request::SystemShow
            | Request::TargetShow
            | Request::TargetShowParams { .. }
            | Request::AccountShow
            | Request::PortalShow
            | Request::LldShow
            | Request::SessionShow { .. }
            | Request::ConnectionShow { .. }
            | Request::ConfigDump => Op::Show,
            Request::TargetBind { .. }
            | Request::TargetBindHost { .. }
            | Request::AccountBind { .. } => Op::Bind,
            Request::TargetUnbind { .. }
            | Request::TargetUnbindHost { .. }
            | Request::AccountUnbind { .. } => Op::Unbind,
            Request::SystemUpdate { .. }
            | Request::TargetUpdate { .. }
            | Request::LuUpdate { .. }
            | Request::ConfigApply { .. } => Op::Update,
            Request::LldStart => Op::Start,
            Request::LldStop => Op::Stop,
            Request::SystemStat
            | Request::TargetStat { .. }
            | Request::LuStat { .. }
            | Request::SessionStat { .. }
            | Request::ConnectionStat { .. } => Op::Stat,
        }
    }

    /// Whether a successful answer means the daemon should stop (tgt's
    /// `system delete`); the adapter shuts down after sending the reply.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Request::SystemDelete)
    }

    /// Whether the request only reads state (every `show` and `stat`).
    pub fn is_read_only(&self) -> bool {
        matches!(self.op(), Op::Show | Op::Stat)
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
