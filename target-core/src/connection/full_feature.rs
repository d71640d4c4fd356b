//! Full feature phase: SCSI commands, Data-Out/R2T, Data-In, NOP, Logout, TMF
//! (RFC 7143 §4.2, §11).

use super::task::{DataOutState, OutstandingR2t, Task, TaskState};
use super::Connection;
use bytes::Bytes;
use iscsi_proto::keys::SessionType;
use iscsi_proto::pdu::{
    reject_reason, DataIn, DataOut, LogoutRequest, LogoutResponse, NopIn, NopOut, Pdu, R2t,
    ScsiCommand, ScsiResponse,
};
use iscsi_proto::{Itt, SerialNumber, Ttt};
use scsi_sbc::{Outcome, ScsiStatus};
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

impl Connection {
    pub(super) fn handle_full_feature(&mut self, pdu: Pdu, now: Instant) {
        let Some(sn) = ordered_cmd_sn(&pdu) else {
            return self.dispatch(pdu, now);
        };
        if sn == self.exp_cmd_sn {
            self.exp_cmd_sn = sn.next();
            self.dispatch(pdu, now);
            // Deliver anything queued behind the gap that just closed.
            while let Some(next) = self.queued.remove(&self.exp_cmd_sn.get()) {
                self.exp_cmd_sn = self.exp_cmd_sn.next();
                self.dispatch(next, now);
                if self.phase != super::Phase::FullFeature {
                    break;
                }
            }
        } else if sn.in_window(self.exp_cmd_sn, self.max_cmd_sn()) {
            self.queued.insert(sn.get(), pdu);
        }
        // Outside the window: RFC 7143 §4.2.2.1 says silently ignore.
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
            Pdu::SnackRequest(_) => {
                // SNACK needs ErrorRecoveryLevel > 0, which we never negotiate.
                self.reject_pdu(reject_reason::PROTOCOL_ERROR, &pdu)
            }
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

    fn handle_scsi_command(&mut self, c: ScsiCommand) {
        let Some(target) = self.target_luns() else {
            return;
        };
        if self.tasks.contains_key(&c.itt.0) {
            // RFC 7143 §11.17.1: a task tag already in use.
            return self.reject_pdu(reject_reason::TASK_IN_PROGRESS, &Pdu::ScsiCommand(c));
        }
        let (lun, prepared) = match self.scsi_prepare(&target, &c) {
            Ok(v) => v,
            Err(outcome) => return self.finish(&c, outcome, 0),
        };
        let edtl = c.expected_data_transfer_length;
        let want = if c.write {
            prepared.data_out_len.min(u64::from(edtl)) as u32
        } else {
            0
        };
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
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
            whole: None,
            next_r2t_offset: unsolicited_end.min(want),
            r2t_sn: 0,
            outstanding: Vec::new(),
            unsolicited_open: c.write && !c.final_bit,
            unsolicited_end,
        };
        st.put(0, &c.data);
        let task = Task {
            lun_field: c.lun,
            lun,
            cdb: c.cdb.clone(),
            edtl,
            read: c.read,
            write: c.write,
            cdb_out_len: prepared.data_out_len,
            state: TaskState::Collecting(st),
        };
        let itt = c.itt.0;
        self.tasks.insert(itt, task);
        self.advance_task(itt);
    }

    /// Send R2Ts for a collecting task, or run it once all its data is in.
    fn advance_task(&mut self, itt: u32) {
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let TaskState::Collecting(st) = &mut task.state else {
            return;
        };
        if st.complete() {
            let data = st.take();
            return self.execute(itt, data);
        }
        let mut r2ts = Vec::new();
        while st.outstanding.len() < usize::from(params.max_outstanding_r2t.max(1))
            && st.next_r2t_offset < st.want
        {
            let len = (st.want - st.next_r2t_offset).min(params.max_burst_length.max(512));
            let ttt = Ttt(self.next_ttt);
            self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
            if self.next_ttt == u32::MAX {
                self.next_ttt = 1;
            }
            let r = OutstandingR2t {
                ttt,
                offset: st.next_r2t_offset,
                len,
                received: 0,
            };
            st.outstanding.push(r);
            r2ts.push((r, st.r2t_sn));
            st.r2t_sn += 1;
            st.next_r2t_offset += len;
        }
        let lun = task.lun_field;
        for (r, r2t_sn) in r2ts {
            let pdu = Pdu::R2t(R2t {
                lun,
                itt: Itt(itt),
                ttt: r.ttt,
                stat_sn: self.stat_sn,
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
                r2t_sn,
                buffer_offset: r.offset,
                desired_data_transfer_length: r.len,
            });
            self.send(pdu);
        }
    }

    fn handle_data_out(&mut self, d: DataOut) {
        let Some(task) = self.tasks.get_mut(&d.itt.0) else {
            // Data for a task that already ended (failed early, aborted): drop it.
            return;
        };
        let TaskState::Collecting(st) = &mut task.state else {
            return;
        };
        let end = u64::from(d.buffer_offset) + d.data.len() as u64;
        if end > u64::from(task.edtl) {
            return self.reject_pdu(reject_reason::INVALID_PDU_FIELD, &Pdu::DataOut(d));
        }
        if d.ttt == Ttt::RESERVED {
            if !st.unsolicited_open || end > u64::from(st.unsolicited_end) {
                return self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::DataOut(d));
            }
            st.put(d.buffer_offset, &d.data);
            if d.final_bit {
                st.unsolicited_open = false;
            }
        } else {
            let Some(pos) = st.outstanding.iter().position(|r| r.ttt == d.ttt) else {
                return self.reject_pdu(reject_reason::INVALID_PDU_FIELD, &Pdu::DataOut(d));
            };
            let r = &mut st.outstanding[pos];
            if d.buffer_offset < r.offset || end > u64::from(r.offset) + u64::from(r.len) {
                return self.reject_pdu(reject_reason::INVALID_PDU_FIELD, &Pdu::DataOut(d));
            }
            r.received += d.data.len() as u32;
            let done = d.final_bit || r.received >= r.len;
            st.put(d.buffer_offset, &d.data);
            if done {
                st.outstanding.remove(pos);
            }
        }
        self.advance_task(d.itt.0);
    }

    pub(super) fn finish_task(&mut self, itt: u32, outcome: Outcome) {
        let Some(task) = self.tasks.remove(&itt) else {
            return;
        };
        let out_len = if task.write { task.cdb_out_len } else { 0 };
        self.respond(
            Itt(itt),
            task.lun_field,
            task.edtl,
            task.read,
            out_len,
            outcome,
        );
    }

    /// Answer a command that never became a task (failed before data was collected).
    fn finish(&mut self, c: &ScsiCommand, outcome: Outcome, out_len: u64) {
        self.respond(
            c.itt,
            c.lun,
            c.expected_data_transfer_length,
            c.read,
            out_len,
            outcome,
        );
    }

    /// Send Data-In (if any) and status for a finished command, with residuals
    /// (RFC 7143 §11.4.5).
    fn respond(
        &mut self,
        itt: Itt,
        lun: iscsi_proto::LunField,
        edtl: u32,
        read: bool,
        out_len: u64,
        outcome: Outcome,
    ) {
        let data_len = outcome.data.len() as u64;
        // What the command would move compared with what the initiator expected.
        let moved = if read || data_len > 0 {
            data_len
        } else {
            out_len
        };
        let (overflow, underflow, residual) = match moved.cmp(&u64::from(edtl)) {
            std::cmp::Ordering::Greater => (
                true,
                false,
                (moved - u64::from(edtl)).min(u32::MAX.into()) as u32,
            ),
            std::cmp::Ordering::Less if outcome.status == ScsiStatus::Good || moved > 0 => {
                (false, true, (u64::from(edtl) - moved) as u32)
            }
            _ => (false, false, 0),
        };
        let send_len = if read {
            data_len.min(u64::from(edtl)) as usize
        } else {
            0
        };
        let data = outcome.data.slice(..send_len);
        let good = outcome.status == ScsiStatus::Good && outcome.sense.is_none();
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
        let seg = params.max_xmit_data_segment_length.max(512) as usize;
        let burst = params.max_burst_length.max(512) as usize;
        let mut data_sn = 0u32;
        let mut off = 0usize;
        while off < data.len() {
            let burst_end = ((off / burst) + 1) * burst;
            let end = (off + seg).min(data.len()).min(burst_end);
            let last = end == data.len();
            let with_status = last && good;
            let stat_sn = if with_status {
                self.take_stat_sn()
            } else {
                self.stat_sn
            };
            let pdu = Pdu::DataIn(DataIn {
                final_bit: last || end == burst_end,
                ack: false,
                overflow: with_status && overflow,
                underflow: with_status && underflow,
                status_present: with_status,
                status: if with_status {
                    outcome.status.code()
                } else {
                    0
                },
                lun: Default::default(),
                itt,
                ttt: Ttt::RESERVED,
                stat_sn,
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
                data_sn,
                buffer_offset: off as u32,
                residual_count: if with_status { residual } else { 0 },
                data: data.slice(off..end),
            });
            self.send(pdu);
            data_sn += 1;
            off = end;
        }
        if good && !data.is_empty() {
            return;
        }
        let sense = match outcome.sense {
            Some(s) => {
                let fixed = s.to_fixed();
                let mut v = Vec::with_capacity(2 + fixed.len());
                v.extend_from_slice(&(fixed.len() as u16).to_be_bytes());
                v.extend_from_slice(&fixed);
                Bytes::from(v)
            }
            None => Bytes::new(),
        };
        let _ = lun;
        let stat_sn = self.take_stat_sn();
        let resp = Pdu::ScsiResponse(ScsiResponse {
            bidi_overflow: false,
            bidi_underflow: false,
            overflow,
            underflow,
            response: 0,
            status: outcome.status.code(),
            itt,
            snack_tag: 0,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            exp_data_sn: data_sn,
            bidi_residual_count: 0,
            residual_count: residual,
            data: sense,
        });
        self.send(resp);
    }

    fn handle_nop_out(&mut self, n: NopOut, _now: Instant) {
        if n.itt == Itt::RESERVED {
            // The answer to our ping: the connection is alive.
            self.timers.stop(super::Timer::NopInResponse);
            return;
        }
        let max = self
            .session
            .as_ref()
            .map(|s| s.params.max_xmit_data_segment_length)
            .unwrap_or(8192);
        let data = n.data.slice(..n.data.len().min(max as usize));
        let stat_sn = self.take_stat_sn();
        let pdu = Pdu::NopIn(NopIn {
            lun: n.lun,
            itt: n.itt,
            ttt: Ttt::RESERVED,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data,
        });
        self.send(pdu);
    }

    fn handle_logout(&mut self, l: LogoutRequest) {
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
        let response = match l.reason {
            0 | 1 => 0,
            // Connection recovery needs ErrorRecoveryLevel 2.
            _ => 2,
        };
        let stat_sn = self.take_stat_sn();
        let pdu = Pdu::LogoutResponse(LogoutResponse {
            response,
            itt: l.itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            time2wait: params.default_time2wait,
            time2retain: params.default_time2retain,
        });
        self.send(pdu);
        if response == 0 {
            self.close("logout");
        }
    }
}
