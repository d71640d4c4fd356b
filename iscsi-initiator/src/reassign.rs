//! ErrorRecoveryLevel 2 on the initiator side: connection recovery (RFC 7143
//! §6.2.2, §7.2, §11.5.1).
//!
//! When a connection of a level-2 session fails, [`Session::recover`] makes its
//! replacement: a connection of the same session (same TSIH and ISID, a CID of the
//! caller's choice — the failed one's for a connection reinstatement) that carries
//! the failed connection's commands. Once it is logged in it sends TASK REASSIGN
//! (TMF function 8) for every command that had gone out, with ExpDataSN the first
//! Data-In of the task not received in order; the target answers "Function
//! complete" and resumes each (Data-In from that ExpDataSN, recovery R2Ts, the
//! status again), or "Task does not exist" for a command it never received, which
//! is then sent again as it was (same ITT and CmdSN). "Task still allegiant" (the
//! target has not noticed the old connection's end yet) is asked again at the next
//! recovery tick. Commands that had not gone out wait for the window as usual.
//! The caller waits DefaultTime2Wait before reconnecting.

use crate::session::{Other, Session, State};
use iscsi_proto::pdu::{Pdu, TaskMgmtRequest};
use iscsi_proto::{Itt, SerialNumber};
use std::time::Instant;

/// TMF function code of TASK REASSIGN.
const TASK_REASSIGN: u8 = 8;

impl Session {
    /// The replacement of failed connection `dead` (ErrorRecoveryLevel 2): CID
    /// `cid` of the same session, logging in at once, carrying `dead`'s commands
    /// (see the module documentation). Below level 2 the commands go with `dead`.
    pub fn recover(mut dead: Session, cid: u16, now: Instant) -> Session {
        let mut s = Session::join(&dead, cid, now);
        // Events the caller has not polled yet (a completion read just before the
        // failure) are still to be seen.
        s.events = std::mem::take(&mut dead.events);
        if dead.params.error_recovery_level < 2 {
            return s;
        }
        if cid == dead.cid {
            // The same CID: its tag space goes on.
            s.next_itt = dead.next_itt;
        }
        let mut sent: Vec<Itt> = dead
            .scsi
            .iter()
            .filter(|(_, t)| t.cmd_sn.is_some())
            .map(|(itt, _)| Itt(*itt))
            .collect();
        sent.sort_by_key(|i| i.0);
        s.reassign = sent;
        s.scsi = std::mem::take(&mut dead.scsi);
        for t in s.scsi.values_mut() {
            // What the old connection knew of its acknowledgements is void.
            t.rec.activity += 1;
        }
        s.queued = std::mem::take(&mut dead.queued);
        s
    }

    /// Tasks taken over by this connection and not yet answered by TASK REASSIGN.
    pub fn reassigning(&self) -> usize {
        self.reassign.len()
            + self
                .other
                .values()
                .filter(|o| matches!(o, Other::Reassign { .. }))
                .count()
    }

    /// Logged in: send TASK REASSIGN for each task taken over.
    pub(crate) fn start_reassign(&mut self) {
        for task in std::mem::take(&mut self.reassign) {
            self.send_reassign(task);
        }
    }

    fn send_reassign(&mut self, task: Itt) {
        let Some(t) = self.scsi.get(&task.0) else {
            return;
        };
        let (lun, ref_cmd_sn) = (t.lun, t.cmd_sn.unwrap_or(SerialNumber(0)));
        let exp_data_sn = t.exp_data_sn();
        let itt = self.alloc_itt();
        self.other.insert(itt.0, Other::Reassign { task });
        let req = TaskMgmtRequest {
            immediate: true,
            function: TASK_REASSIGN,
            lun,
            itt,
            referenced_task_tag: task,
            cmd_sn: self.win().cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn,
            // The first Data-In not received in order: the target resends from it
            // (RFC 7143 §11.5.1); later ones that did arrive come again and are
            // dropped as duplicates.
            exp_data_sn,
        };
        self.send(&Pdu::TaskMgmtRequest(req));
    }

    /// The answer to a TASK REASSIGN of `task`.
    pub(crate) fn reassigned(&mut self, task: Itt, response: u8) {
        if self.state != State::FullFeature {
            return;
        }
        match response {
            // Function complete: the task goes on here.
            0 => {
                if let Some(t) = self.scsi.get_mut(&task.0) {
                    t.rec.activity += 1;
                }
            }
            // Task does not exist: the target never received the command.
            1 => self.retry(task),
            // Still allegiant to a connection the target has not seen fail yet.
            3 => self.reassign.push(task),
            // Not supported or refused: the command cannot complete.
            _ => {
                if self.scsi.remove(&task.0).is_some() {
                    self.events
                        .push_back(crate::session::Event::CommandAborted { task });
                }
            }
        }
    }

    /// Asked again at the recovery tick: tasks still allegiant elsewhere.
    pub(crate) fn reassign_tick(&mut self) {
        if self.state == State::FullFeature && !self.reassign.is_empty() {
            self.start_reassign();
        }
    }
}
