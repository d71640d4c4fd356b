//! Data-In and SCSI Response: read data cut to MaxRecvDataSegmentLength and
//! MaxBurstLength, status in the last Data-In when it can be, residuals
//! (RFC 7143 §11.4, §11.7).

use super::Connection;
use bytes::Bytes;
use iscsi_proto::pdu::{DataIn, Pdu, ScsiCommand, ScsiResponse};
use iscsi_proto::{Itt, SerialNumber, Ttt};
use scsi_sbc::{Outcome, ScsiStatus};

impl Connection {
    pub(super) fn finish_task(&mut self, itt: u32, outcome: Outcome) {
        self.finish_task_with(itt, outcome, None);
    }

    /// [`Connection::finish_task`] with the data digests of the outcome's data
    /// already computed (by the store worker that read it).
    pub(super) fn finish_task_with(
        &mut self,
        itt: u32,
        outcome: Outcome,
        crcs: Option<super::SegmentCrcs>,
    ) {
        let Some(task) = self.tasks.remove(&itt) else {
            return;
        };
        self.release_itt(itt);
        if let Some(stats) = &task.stats {
            stats.done(task.data_dir(), outcome.status == ScsiStatus::Good);
        }
        let out_len = if task.write { task.cdb_out_len } else { 0 };
        let opcode = task.cdb.first().copied().unwrap_or(0);
        let moved = if task.write {
            task.cdb_out_len
        } else {
            outcome.data.len() as u64
        };
        self.count_done(task.metrics.as_ref(), opcode, &outcome, moved, task.started);
        self.respond(
            Itt(itt),
            task.lun_field,
            task.edtl,
            task.read,
            out_len,
            outcome,
            crcs,
        );
    }

    /// Answer a command that never became a task (failed before data was collected).
    pub(super) fn finish(&mut self, c: &ScsiCommand, outcome: Outcome, out_len: u64) {
        let started = self.obs.now;
        self.count_done_untracked(c, &outcome, started);
        self.respond(
            c.itt,
            c.lun,
            c.expected_data_transfer_length,
            c.read,
            out_len,
            outcome,
            None,
        );
    }

    /// Send Data-In (if any) and status for a finished command, with residuals
    /// (RFC 7143 §11.4.5). `crcs`: the data digests of `outcome.data`'s segments
    /// computed ahead (used where they were computed for this cut of all of it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn respond(
        &mut self,
        itt: Itt,
        lun: iscsi_proto::LunField,
        edtl: u32,
        read: bool,
        out_len: u64,
        outcome: Outcome,
        crcs: Option<super::SegmentCrcs>,
    ) {
        // Resumed after a TASK REASSIGN: Data-In before ExpDataSN arrived already.
        let skip = self.take_resume_from(itt);
        let remembered = (self.error_recovery_level() == 2).then(|| super::erl2::Done {
            lun_field: lun,
            edtl,
            read,
            out_len,
            outcome: outcome.clone(),
            stat_sn: SerialNumber(0),
            kept: 0,
        });
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
        let layout = self.data_in_cut();
        let burst = layout.burst;
        // Precomputed digests fit when they were cut the same way over all of it.
        let crcs = crcs
            .filter(|c| c.layout == layout && c.len == data.len() && self.tx_digests.data)
            .map(|c| c.crcs);
        let mut data_sn = 0u32;
        for (off, end) in layout.segments(data.len()) {
            let burst_end = ((off / burst) + 1) * burst;
            let last = end == data.len();
            let with_status = last && good;
            let stat_sn = if with_status {
                self.take_stat_sn()
            } else {
                self.stat_sn
            };
            if with_status {
                if let Some(mut d) = remembered.clone() {
                    d.stat_sn = stat_sn;
                    self.remember_done(itt, d);
                }
            }
            let final_bit = last || end == burst_end;
            if data_sn < skip && !with_status {
                data_sn += 1;
                continue;
            }
            // ErrorRecoveryLevel > 0: the end of a burst without status asks for a
            // DataACK (A bit, with a TTT to name it; recovery.rs).
            let ack = final_bit && !with_status && self.error_recovery_level() > 0;
            let ttt = if ack { self.alloc_ttt() } else { Ttt::RESERVED };
            let pdu = Pdu::DataIn(DataIn {
                final_bit,
                ack,
                overflow: with_status && overflow,
                underflow: with_status && underflow,
                status_present: with_status,
                status: if with_status {
                    outcome.status.code()
                } else {
                    0
                },
                lun: if ack { lun } else { Default::default() },
                itt,
                ttt,
                stat_sn,
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
                data_sn,
                buffer_offset: off as u32,
                residual_count: if with_status { residual } else { 0 },
                data: data.slice(off..end),
            });
            let crc = crcs.as_ref().and_then(|c| c.get(data_sn as usize).copied());
            self.send_with_crc(pdu, crc);
            data_sn += 1;
        }
        if good && !data.is_empty() {
            return;
        }
        // Fixed or descriptor format, as the LU's D_SENSE says (scsi-sbc decides).
        let sense = match outcome.sense_bytes() {
            Some(fixed) => {
                let mut v = Vec::with_capacity(2 + fixed.len());
                v.extend_from_slice(&(fixed.len() as u16).to_be_bytes());
                v.extend_from_slice(&fixed);
                Bytes::from(v)
            }
            None => Bytes::new(),
        };
        let stat_sn = self.take_stat_sn();
        if let Some(mut d) = remembered {
            d.stat_sn = stat_sn;
            self.remember_done(itt, d);
        }
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
}
