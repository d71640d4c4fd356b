//! Task management functions (RFC 7143 §11.5, §11.6).

use super::Connection;
use iscsi_proto::pdu::{Pdu, TaskMgmtRequest, TaskMgmtResponse};

impl Connection {
    pub(super) fn handle_tmf(&mut self, t: TaskMgmtRequest) {
        let response = match t.function {
            // ABORT TASK: the task stops; a completion that arrives later is ignored.
            1 => {
                if self.tasks.remove(&t.referenced_task_tag.0).is_some() {
                    self.io_tags
                        .retain(|_, itt| *itt != t.referenced_task_tag.0);
                    0
                } else if t.ref_cmd_sn.lt(self.exp_cmd_sn) {
                    // Already completed: RFC 7143 §11.5.1 says "function complete".
                    0
                } else {
                    1
                }
            }
            // ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET.
            2 | 4 | 5 => {
                let lun = t.lun.to_lun();
                let target = self.target_luns();
                if t.function == 5 && target.as_ref().and_then(|tg| tg.lun(lun)).is_none() {
                    2
                } else {
                    let gone: Vec<u32> = self
                        .tasks
                        .iter()
                        .filter(|(_, task)| task.lun.lun == lun)
                        .map(|(k, _)| *k)
                        .collect();
                    for itt in gone {
                        self.tasks.remove(&itt);
                        self.io_tags.retain(|_, i| *i != itt);
                    }
                    0
                }
            }
            // TARGET WARM RESET, TARGET COLD RESET.
            6 | 7 => {
                self.tasks.clear();
                self.io_tags.clear();
                0
            }
            // CLEAR ACA: no ACA support. TASK REASSIGN: needs ERL 2.
            3 => 5,
            8 => 4,
            _ => 255,
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
}
