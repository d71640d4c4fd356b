//! Task management functions (RFC 7143 §11.5, §11.6): the tasks named are really
//! aborted (their Data-Out is dropped, their storage results are discarded) before the
//! response goes out.

use super::Connection;
use iscsi_proto::pdu::{Pdu, TaskMgmtRequest, TaskMgmtResponse};
use iscsi_proto::SerialNumber;

/// TMF response codes (RFC 7143 §11.6.1).
mod response {
    pub(super) const COMPLETE: u8 = 0;
    pub(super) const NO_TASK: u8 = 1;
    pub(super) const NO_LUN: u8 = 2;
    pub(super) const REASSIGN_NOT_SUPPORTED: u8 = 4;
    pub(super) const NOT_SUPPORTED: u8 = 5;
    pub(super) const REJECTED: u8 = 255;
}

impl Connection {
    /// Forget task `itt`: no response will be sent for it and a storage completion
    /// that arrives later is counted as stray.
    fn abort_task(&mut self, itt: u32) -> bool {
        self.io_tags.retain(|_, i| *i != itt);
        self.tasks.remove(&itt).is_some()
    }

    pub(super) fn handle_tmf(&mut self, t: TaskMgmtRequest) {
        let lun = t.lun.to_lun();
        let lun_exists = self.target_luns().and_then(|tg| tg.lun(lun)).is_some();
        let response = match t.function {
            // ABORT TASK.
            1 => {
                let itt = t.referenced_task_tag.0;
                if self.tasks.get(&itt).is_some_and(|task| task.lun.lun != lun) {
                    // The tag names a task of another LU: not this one.
                    response::NO_TASK
                } else if self.abort_task(itt) || self.abort_queued(t.ref_cmd_sn, t.cmd_sn) {
                    response::COMPLETE
                } else {
                    response::NO_TASK
                }
            }
            // ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET.
            2 | 4 | 5 => {
                if !lun_exists {
                    response::NO_LUN
                } else {
                    let gone: Vec<u32> = self
                        .tasks
                        .iter()
                        .filter(|(_, task)| task.lun.lun == lun)
                        .map(|(k, _)| *k)
                        .collect();
                    for itt in gone {
                        self.abort_task(itt);
                    }
                    if t.function == 5 {
                        // Unit attentions, reservation release (scsi.rs hook).
                        self.scsi_lu_reset(Some(lun));
                    }
                    response::COMPLETE
                }
            }
            // TARGET WARM RESET, TARGET COLD RESET.
            6 | 7 => {
                self.tasks.clear();
                self.io_tags.clear();
                // Every LU of the target is reset (scsi.rs hook).
                self.scsi_lu_reset(None);
                response::COMPLETE
            }
            // CLEAR ACA: no ACA support.
            3 => response::NOT_SUPPORTED,
            // TASK REASSIGN: needs ErrorRecoveryLevel 2.
            8 => response::REASSIGN_NOT_SUPPORTED,
            _ => response::REJECTED,
        };
        let stat_sn = self.take_stat_sn();
        let pdu = Pdu::TaskMgmtResponse(TaskMgmtResponse {
            response,
            itt: t.itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(pdu);
        if t.function == 7 {
            // A cold reset drops every connection (SAM-5 §7.13 via RFC 7143 §11.5.1).
            self.close("target cold reset");
        }
    }

    /// ABORT TASK for a command not received yet: RFC 7143 §11.5.1 says a RefCmdSN
    /// inside the window and before the TMF's own CmdSN is considered received, so the
    /// command is dropped when (or if) it arrives and the CmdSN gap closes.
    fn abort_queued(&mut self, ref_cmd_sn: SerialNumber, tmf_cmd_sn: SerialNumber) -> bool {
        if !ref_cmd_sn.in_window(self.exp_cmd_sn, self.max_cmd_sn()) || !ref_cmd_sn.lt(tmf_cmd_sn) {
            return false;
        }
        self.queued.remove(&ref_cmd_sn.get());
        self.discard_cmd_sn.insert(ref_cmd_sn.get());
        true
    }
}
