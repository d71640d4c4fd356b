//! Full feature phase: SCSI commands, Data-Out/R2T, Data-In, NOP, Logout, TMF
//! (RFC 7143 §4.2, §11).

use super::task::{self, DataOutState, Task, TaskState};
use super::Connection;
use iscsi_proto::keys::SessionType;
use iscsi_proto::pdu::{reject_reason, Pdu, ScsiCommand};
use iscsi_proto::{Itt, SerialNumber};
use scsi_sbc::Outcome;
use std::sync::Arc;
use std::time::Instant;

/// Does this PDU take a CmdSN (non-immediate initiator request)?
fn ordered_cmd_sn(pdu: &Pdu) -> Option<SerialNumber> {
    match pdu {
        Pdu::ScsiCommand(c) if !c.immediate => Some(c.cmd_sn),
        Pdu::NopOut(n) if !n.immediate && n.itt != Itt::RESERVED => Some(n.cmd_sn),
        Pdu::TextRequest(t) if !t.immediate => Some(t.cmd_sn),
        Pdu::LogoutRequest(l) if !l.immediate => Some(l.cmd_sn),
        Pdu::TaskMgmtRequest(t) if !t.immediate => Some(t.cmd_sn),
        _ => None,
    }
}

/// CHECK CONDITION, ABORTED COMMAND with an iSCSI ASC/ASCQ (RFC 7143 §11.4.7.2:
/// 0C/0C unexpected unsolicited data, 0C/0D incorrect amount of data, 47/05 protocol
/// service CRC error).
pub(super) fn iscsi_sense(asc: u8, ascq: u8) -> Outcome {
    Outcome::check(scsi_sbc::Sense {
        key: scsi_sbc::SenseKey::AbortedCommand,
        asc,
        ascq,
        info: None,
        field: None,
        stream: 0,
    })
}

impl Connection {
    pub(super) fn handle_full_feature(&mut self, pdu: Pdu, now: Instant) {
        let Some(sn) = ordered_cmd_sn(&pdu) else {
            // Immediate requests (and Data-Out, SNACK) are not ordered by CmdSN.
            return self.dispatch(pdu, now);
        };
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if let Pdu::ScsiCommand(c) = &pdu {
            // ErrorRecoveryLevel > 0: a retried command is never run twice.
            self.exp_cmd_sn = shared.exp_cmd_sn();
            if self.command_retried(c) {
                return;
            }
        }
        // MaxCmdSN as capacity allows (limits.rs): a request past it, a duplicate, or
        // any request while the window is closed (MaxCmdSN = ExpCmdSN - 1) is ignored
        // (RFC 7143 §4.2.2.1).
        self.exp_cmd_sn = shared.exp_cmd_sn();
        let max = self.max_cmd_sn();
        if !sn.in_window(self.exp_cmd_sn, max) {
            return self.window_overrun(Some(sn));
        }
        // Released in CmdSN order over every connection of the session: a request
        // ahead of a gap is held until the gap fills, on whichever connection
        // (`crate::mcs`).
        let window = max
            .get()
            .wrapping_sub(self.exp_cmd_sn.get())
            .wrapping_add(1);
        let released = shared.order(self.cid, sn, pdu, window);
        self.exp_cmd_sn = shared.exp_cmd_sn();
        for w in released.wakes {
            w.wake();
        }
        for p in released.mine {
            if self.phase != super::Phase::FullFeature {
                break;
            }
            self.dispatch_ordered(p, now);
        }
    }

    /// Dispatch a request released in CmdSN order.
    pub(super) fn dispatch_ordered(&mut self, pdu: Pdu, now: Instant) {
        self.dispatch(pdu, now);
    }

    fn dispatch(&mut self, pdu: Pdu, now: Instant) {
        let discovery = self
            .session
            .as_ref()
            .is_some_and(|s| s.session_type == SessionType::Discovery);
        match pdu {
            Pdu::ScsiCommand(c) if !discovery => self.handle_scsi_command(c),
            Pdu::DataOut(d) if !discovery => self.handle_data_out(d),
            Pdu::TaskMgmtRequest(t) if !discovery => self.handle_tmf(t),
            Pdu::NopOut(n) => self.handle_nop_out(n, now),
            Pdu::TextRequest(t) => self.handle_text(t),
            Pdu::LogoutRequest(l) => self.handle_logout(l),
            // Rejected at ErrorRecoveryLevel 0 (recovery.rs).
            Pdu::SnackRequest(s) => self.handle_snack(s),
            Pdu::LoginRequest(_) => {
                self.reject_pdu(reject_reason::PROTOCOL_ERROR, &pdu);
                self.close("login request in full feature phase");
            }
            Pdu::ScsiCommand(_) | Pdu::DataOut(_) | Pdu::TaskMgmtRequest(_) => {
                // A discovery session carries no SCSI (RFC 7143 §4.3).
                self.reject_pdu(reject_reason::PROTOCOL_ERROR, &pdu)
            }
            // Target-to-initiator opcodes sent our way.
            other => self.reject_pdu(reject_reason::PROTOCOL_ERROR, &other),
        }
    }

    pub(super) fn target_luns(&self) -> Option<Arc<crate::registry::Target>> {
        self.session.as_ref().and_then(|s| s.target.clone())
    }

    pub(super) fn handle_scsi_command(&mut self, c: ScsiCommand) {
        let Some(target) = self.target_luns() else {
            return;
        };
        if c.read && c.write {
            // Bidirectional commands are not supported: INVALID FIELD IN CDB.
            let sense = scsi_sbc::Sense::invalid_field_in_cdb();
            return self.finish(&c, Outcome::check(sense), 0);
        }
        if c.immediate && self.tasks.len() >= self.config.cmd_window as usize {
            // Immediate commands bypass the CmdSN window; past the window's worth of
            // tasks the task set is full (SAM-5 TASK SET FULL) rather than unbounded.
            let full = Outcome::status(scsi_sbc::ScsiStatus::TaskSetFull);
            self.window_overrun(None);
            return self.finish(&c, full, 0);
        }
        // Another connection's tags are asked about only once one ever joined: alone,
        // the session's tags are this connection's tasks (the claim below stays the
        // authority either way; this early check only spares `scsi_prepare`).
        let in_use = self.tasks.contains_key(&c.itt.0)
            || self
                .shared
                .as_ref()
                .is_some_and(|s| s.joined() && s.itt_in_use(c.itt.0));
        if in_use {
            // RFC 7143 §11.17.1: a task tag already in use (by any connection of
            // the session).
            return self.reject_pdu(reject_reason::TASK_IN_PROGRESS, &Pdu::ScsiCommand(c));
        }
        let (lun, prepared) = match self.scsi_prepare(&target, &c) {
            Ok(v) => v,
            Err(outcome) => {
                // tgt counts commands its SCSI layer refuses (unit attentions,
                // reservations) as submitted and done, with an error.
                if let Some(stats) = self.lu_stats(&target, c.lun.to_lun()) {
                    let dir = task::data_dir(c.read, c.write, c.expected_data_transfer_length);
                    stats.submitted(dir);
                    stats.done(dir, outcome.status == scsi_sbc::ScsiStatus::Good);
                }
                return self.finish(&c, outcome, 0);
            }
        };
        let edtl = c.expected_data_transfer_length;
        if prepared.exact && u64::from(edtl) != prepared.data_out_len {
            let sense = scsi_sbc::Sense::invalid_field_in_cdb();
            return self.finish(&c, Outcome::check(sense), 0);
        }
        let want = if c.write {
            prepared.data_out_len.min(u64::from(edtl)) as u32
        } else {
            0
        };
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
        // Data the initiator may not send unasked (RFC 7143 §11.4.7.2 iSCSI sense).
        let imm = c.data.len() as u64;
        if imm > u64::from(edtl) {
            return self.finish(&c, iscsi_sense(0x0c, 0x0d), 0);
        }
        if (imm > 0 && !params.immediate_data)
            || imm > u64::from(params.first_burst_length)
            || (imm > 0 && !c.write)
            || (!c.final_bit && (params.initial_r2t || !c.write))
        {
            return self.finish(&c, iscsi_sense(0x0c, 0x0c), 0);
        }
        // The unsolicited range: immediate data, plus the unsolicited Data-Out sequence
        // the initiator sends when the F bit is clear (RFC 7143 §4.1, FirstBurstLength).
        let unsolicited_end = if c.write && !c.final_bit && !params.initial_r2t {
            edtl.min(params.first_burst_length)
        } else {
            (c.data.len() as u32).min(edtl)
        };
        let mut st = DataOutState {
            want,
            received: 0,
            buf: None,
            // Only data that does not all come with the command is collected into a
            // buffer (a 4 KiB write with immediate data is not: no Arc clone).
            source: if (c.data.len() as u32) < want {
                self.core.buffers().cloned()
            } else {
                None
            },
            whole: None,
            next_r2t_offset: unsolicited_end.min(want),
            r2t_sn: 0,
            outstanding: Vec::new(),
            unsolicited_open: c.write && !c.final_bit,
            unsolicited_end,
            unsolicited_next: c.data.len() as u32,
            unsolicited_data_sn: 0,
            have: Default::default(),
            gaps: Default::default(),
        };
        st.put(0, &c.data);
        let metrics = self.lu_metrics(lun.lun);
        let task = Task {
            lun_field: c.lun,
            lun,
            cdb: c.cdb.clone(),
            edtl,
            read: c.read,
            write: c.write,
            cdb_out_len: prepared.data_out_len,
            state: TaskState::Collecting(st),
            stats: None,
            started: self.obs.now,
            metrics,
            reserved: task::Reserved::NONE,
            io_store: None,
        };
        let itt = c.itt.0;
        if !self.claim_itt(itt) {
            // Claimed by another connection since the check above.
            return self.reject_pdu(reject_reason::TASK_IN_PROGRESS, &Pdu::ScsiCommand(c));
        }
        self.tasks.insert(itt, task);
        self.advance_task(itt);
    }
}
