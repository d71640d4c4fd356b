//! What a connection tells monitoring: per-LU command counters and latencies, store
//! operations in flight ([`crate::metrics`]), and who it serves, for log context.

use super::Connection;
use crate::metrics::{CommandKind, LuMetrics};
use iscsi_proto::pdu::ScsiCommand;
use scsi_sbc::Outcome;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Who a connection serves, for the daemon's per-session log span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLabels {
    /// TargetName ("" for discovery, or before the login names it).
    pub target: String,
    /// InitiatorName ("" before the first login request).
    pub initiator: String,
    /// The initiator's address.
    pub peer: Option<SocketAddr>,
    /// The session's TSIH (0 until the login succeeds).
    pub tsih: u16,
}

impl Connection {
    /// Target, initiator, peer address and TSIH of this connection: from the
    /// session once logged in, from the leading login request before.
    pub fn session_labels(&self) -> SessionLabels {
        let (initiator, target) = match &self.session {
            Some(s) => (
                s.initiator.as_str(),
                s.target.as_ref().map_or("", |t| t.name.as_str()),
            ),
            None => self.login.names().unwrap_or(("", "")),
        };
        SessionLabels {
            target: target.to_string(),
            initiator: initiator.to_string(),
            peer: Some(self.peer.peer),
            tsih: self.session_tsih.0,
        }
    }

    /// The counters of LU `lun` of this session's target, for a task to carry.
    pub(super) fn lu_metrics(&mut self, lun: u64) -> Option<Arc<LuMetrics>> {
        let target = self.session.as_ref().and_then(|s| s.target.as_ref())?;
        Some(self.obs.lu(&target.name, lun).clone())
    }

    /// A task finished: count it on `lu` (the task's LU) with the bytes it moved and
    /// its time since `started`.
    pub(super) fn count_done(
        &self,
        lu: Option<&Arc<LuMetrics>>,
        opcode: u8,
        outcome: &Outcome,
        bytes: u64,
        started: Instant,
    ) {
        let Some(lu) = lu else {
            return;
        };
        let latency = self.obs.now.saturating_duration_since(started);
        lu.command_done(CommandKind::of(opcode), outcome, bytes, latency);
    }

    /// A command answered before it became a task (refused by the checks): counted
    /// when its LU exists, with no bytes.
    pub(super) fn count_done_untracked(
        &mut self,
        c: &ScsiCommand,
        outcome: &Outcome,
        started: Instant,
    ) {
        let lun = c.lun.to_lun();
        let exists = self
            .session
            .as_ref()
            .and_then(|s| s.target.as_ref())
            .is_some_and(|t| t.lun(lun).is_some());
        if exists {
            let opcode = c.cdb.first().copied().unwrap_or(0);
            let lu = self.lu_metrics(lun);
            self.count_done(lu.as_ref(), opcode, outcome, 0, started);
        }
    }
}
