//! Data-Out: immediate, unsolicited and R2T-solicited write data (RFC 7143 §4.2.2.3,
//! §11.7, §11.8), with DataSN, buffer offset and burst checks.

use super::full_feature::iscsi_sense;
use super::task::{OutstandingR2t, TaskState};
use super::Connection;
use iscsi_proto::pdu::{reject_reason, DataOut, Pdu, R2t};
use iscsi_proto::{Itt, Ttt};

impl Connection {
    /// Send R2Ts for a collecting task, or run it once all its data is in.
    pub(super) fn advance_task(&mut self, itt: u32) {
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let TaskState::Collecting(st) = &mut task.state else {
            return;
        };
        if st.complete() {
            // A read fetches its data now: count it against the buffer cap first.
            let need = if task.read && !task.write {
                u64::from(task.edtl).min(scsi_sbc::MAX_TRANSFER_BYTES)
            } else {
                0
            };
            if need > 0 && !self.reserve_buffer(itt, need) {
                return;
            }
            let Some(TaskState::Collecting(st)) = self.tasks.get_mut(&itt).map(|t| &mut t.state)
            else {
                return;
            };
            let data = st.take();
            return self.execute(itt, data);
        }
        // Write data still to come: solicit it only within the buffer cap.
        let to_solicit = st.next_r2t_offset < st.want || !st.gaps.is_empty();
        if st.outstanding.is_empty() && to_solicit && task.reserved.is_none() {
            let need = u64::from(st.want);
            if !self.reserve_buffer(itt, need) {
                return;
            }
        }
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let TaskState::Collecting(st) = &mut task.state else {
            return;
        };
        let mut r2ts = Vec::new();
        let burst = params.max_burst_length.max(512);
        while st.outstanding.len() < usize::from(params.max_outstanding_r2t.max(1))
            && (st.next_r2t_offset < st.want || !st.gaps.is_empty())
        {
            // Gaps a TASK REASSIGN found come first (erl2.rs), then new bursts.
            let (offset, len) = match st.gaps.pop_front() {
                Some((from, to)) => {
                    let len = (to - from).min(burst);
                    if from + len < to {
                        st.gaps.push_front((from + len, to));
                    }
                    (from, len)
                }
                None => {
                    let len = (st.want - st.next_r2t_offset).min(burst);
                    let offset = st.next_r2t_offset;
                    st.next_r2t_offset += len;
                    (offset, len)
                }
            };
            let ttt = Ttt(self.next_ttt);
            self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
            if self.next_ttt == u32::MAX {
                self.next_ttt = 1;
            }
            let r = OutstandingR2t {
                ttt,
                offset,
                len,
                received: 0,
                next_data_sn: 0,
            };
            st.outstanding.push(r);
            r2ts.push((r, st.r2t_sn));
            st.r2t_sn += 1;
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

    pub(super) fn handle_data_out(&mut self, d: DataOut) {
        let itt = d.itt.0;
        let Some(task) = self.tasks.get(&itt) else {
            // Data for a task that already ended (failed early, aborted): drop it.
            return;
        };
        let TaskState::Collecting(_) = &task.state else {
            return;
        };
        let end = u64::from(d.buffer_offset) + d.data.len() as u64;
        if end > u64::from(task.edtl) {
            self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::DataOut(d));
            return self.finish_task(itt, iscsi_sense(0x0c, 0x0d));
        }
        // DataPDUInOrder=Yes is all we negotiate: each PDU continues its sequence at
        // the next offset with the next DataSN. At ErrorRecoveryLevel 0 a broken
        // sequence cannot be recovered, so the task ends (RFC 7143 §7.1, §11.7.5).
        let in_sequence;
        if self.data_out_retired(itt, d.ttt) {
            // ErrorRecoveryLevel > 0: late data for a burst a recovery R2T replaced.
            return;
        }
        let Some(TaskState::Collecting(st)) = self.tasks.get_mut(&itt).map(|t| &mut t.state) else {
            return;
        };
        if d.ttt == Ttt::RESERVED {
            if !st.unsolicited_open || end > u64::from(st.unsolicited_end) {
                self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::DataOut(d));
                return self.finish_task(itt, iscsi_sense(0x0c, 0x0c));
            }
            in_sequence =
                d.data_sn == st.unsolicited_data_sn && d.buffer_offset == st.unsolicited_next;
            if in_sequence {
                st.unsolicited_data_sn = st.unsolicited_data_sn.wrapping_add(1);
                st.unsolicited_next = end as u32;
                st.put(d.buffer_offset, &d.data);
                if d.final_bit {
                    st.unsolicited_open = false;
                }
            }
        } else {
            let Some(pos) = st.outstanding.iter().position(|r| r.ttt == d.ttt) else {
                // A TTT we never gave out (or one already satisfied).
                return self.reject_pdu(reject_reason::INVALID_PDU_FIELD, &Pdu::DataOut(d));
            };
            let r = &mut st.outstanding[pos];
            in_sequence = d.data_sn == r.next_data_sn
                && d.buffer_offset == r.offset + r.received
                && end <= u64::from(r.offset) + u64::from(r.len);
            if in_sequence {
                r.next_data_sn = r.next_data_sn.wrapping_add(1);
                r.received += d.data.len() as u32;
                let done = r.received >= r.len;
                let early_final = d.final_bit && !done;
                st.put(d.buffer_offset, &d.data);
                if done {
                    st.outstanding.remove(pos);
                } else if early_final {
                    // F set before the burst is complete: the sequence is short.
                    self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::DataOut(d));
                    return self.finish_task(itt, iscsi_sense(0x0c, 0x0d));
                }
            }
        }
        if !in_sequence && self.error_recovery_level() > 0 {
            // A PDU before it was lost (recovery.rs): drop, recover at the burst's end.
            return self.data_out_out_of_sequence(itt, d.ttt, d.final_bit);
        }
        if !in_sequence {
            self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::DataOut(d));
            return self.finish_task(itt, iscsi_sense(0x0c, 0x0d));
        }
        self.data_out_progress(itt);
        self.advance_task(itt);
    }
}
