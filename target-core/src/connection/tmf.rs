//! Task management functions (RFC 7143 §11.5, §11.6): the tasks named are really
//! aborted (their Data-Out is dropped, their storage results are discarded) before the
//! response goes out.

use super::{Connection, IoTag};
use crate::mcs::{AbortElsewhere, RemoteAbort, SharedSession};
use iscsi_proto::pdu::{Pdu, TaskMgmtRequest, TaskMgmtResponse};
use iscsi_proto::SerialNumber;

/// An aborted command ends with TASK ABORTED: `--op stat` counts it done and as an
/// error, as tgt's `abort_cmd` does.
pub(super) fn count_aborted(task: &super::task::Task) {
    if let Some(stats) = &task.stats {
        stats.done(task.data_dir(), false);
    }
}

/// A task management response waiting for the announcements of its reset to the
/// other gateways of a shared medium.
#[derive(Debug)]
pub(super) struct HeldTmf {
    itt: iscsi_proto::Itt,
    response: u8,
    drop_after: bool,
    waiting: std::collections::HashSet<IoTag>,
}

/// A finished command (MODE SELECT) whose answer waits for the announcement of what
/// it changed to the other gateways of a shared medium. An abort or reset meanwhile
/// removes the task; the answer then goes nowhere.
#[derive(Debug)]
pub(super) struct HeldTask {
    pub(super) itt: u32,
    pub(super) outcome: scsi_sbc::Outcome,
    pub(super) waiting: std::collections::HashSet<IoTag>,
}

/// TMF response codes (RFC 7143 §11.6.1).
mod response {
    pub(super) const COMPLETE: u8 = 0;
    pub(super) const NO_TASK: u8 = 1;
    pub(super) const NO_LUN: u8 = 2;
    pub(super) const NOT_SUPPORTED: u8 = 5;
    pub(super) const REJECTED: u8 = 255;
}

impl Connection {
    /// Forget task `itt`: no response will be sent for it and a storage completion
    /// that arrives later is counted as stray.
    fn abort_task(&mut self, itt: u32) -> bool {
        self.io_tags.retain(|_, i| *i != itt);
        self.held_tasks.retain(|h| h.itt != itt);
        match self.tasks.remove(&itt) {
            Some(task) => {
                self.release_itt(itt);
                count_aborted(&task);
                true
            }
            None => false,
        }
    }

    /// Forget every task (target reset): no responses, later completions are stray.
    pub(super) fn abort_all_tasks(&mut self) {
        for (_, task) in self.tasks.drain() {
            count_aborted(&task);
        }
        if let Some(s) = &self.shared {
            s.release_itts_of(self.cid);
        }
        self.io_tags.clear();
        self.held_tasks.clear();
    }

    /// TARGET WARM RESET / TARGET COLD RESET (RFC 7143 §11.5.1): every LU of the target
    /// is reset, and every session of the target, not just this one, loses its tasks
    /// (cold: its connections). The other sessions learn of it through the core's
    /// reset generation when the adapter wakes them ([`ConnEvent::SharedStateChanged`]).
    /// Returns whether this connection must drop after its response.
    ///
    /// [`ConnEvent::SharedStateChanged`]: super::ConnEvent::SharedStateChanged
    fn target_reset(&mut self, cold: bool, held: &mut Vec<IoTag>) -> bool {
        self.abort_all_tasks();
        if let Some(tid) = self
            .session
            .as_ref()
            .and_then(|s| s.target.as_ref())
            .map(|t| t.tid)
        {
            self.core.abort_orphans(tid, None);
        }
        // Every LU of the target: unit attention to every nexus, reservations (scsi.rs hook).
        *held = self.scsi_lu_reset(None);
        let Some(s) = &mut self.session else {
            return cold;
        };
        let Some(t) = &s.target else {
            return cold;
        };
        let (before, after) = self.core.record_target_reset(t.tid, cold);
        // A cold reset by another session that we had not acted on yet still drops us
        // (after our response has gone out, like our own cold reset).
        let dropped = before.cold_since(s.resets_seen);
        s.resets_seen = after.generation;
        self.events.push_back(super::ConnEvent::SharedStateChanged);
        cold || dropped
    }

    pub(super) fn handle_tmf(&mut self, t: TaskMgmtRequest) {
        let lun = t.lun.to_lun();
        let lun_exists = self.target_luns().and_then(|tg| tg.lun(lun)).is_some();
        let mut drop_after = false;
        let mut held = Vec::new();
        let mut resume = None;
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
                    match self.abort_elsewhere(itt, lun, t.itt) {
                        Some(code) => code,
                        // The task's connection answers; the response goes then.
                        None => return,
                    }
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
                    self.abort_orphans_of(t.function == 5, lun);
                    if t.function == 5 {
                        // Unit attentions, reservation release (scsi.rs hook).
                        held = self.scsi_lu_reset(Some(lun));
                    }
                    response::COMPLETE
                }
            }
            // TARGET WARM RESET, TARGET COLD RESET.
            6 | 7 => {
                drop_after = self.target_reset(t.function == 7, &mut held);
                response::COMPLETE
            }
            // CLEAR ACA: no ACA support.
            3 => response::NOT_SUPPORTED,
            // TASK REASSIGN (erl2.rs).
            8 => {
                let (code, r) = self.task_reassign(&t);
                resume = r;
                code
            }
            _ => response::REJECTED,
        };
        let reply = HeldTmf {
            itt: t.itt,
            response,
            drop_after,
            waiting: held.into_iter().collect(),
        };
        if reply.waiting.is_empty() {
            self.send_tmf_response(reply);
            if let Some(r) = resume {
                // The task goes on on this connection after "Function complete".
                self.resume(r);
            }
        } else {
            // The other gateways of a shared medium hear of the reset first.
            self.held_tmfs.push(reply);
        }
    }

    /// ErrorRecoveryLevel 2: tasks of LU `lun` left by failed connections
    /// (`erl2.rs`) are aborted like live ones: this session's for ABORT TASK SET
    /// and CLEAR TASK SET (they are tasks of this I_T nexus), every session's of
    /// the target for a LOGICAL UNIT RESET (`all`).
    fn abort_orphans_of(&mut self, all: bool, lun: u64) {
        let Some(lu) = self.target_luns().and_then(|tg| tg.lun(lun)) else {
            return;
        };
        if all {
            if let Some(tid) = self
                .session
                .as_ref()
                .and_then(|s| s.target.as_ref())
                .map(|t| t.tid)
            {
                self.core.abort_orphans(tid, Some(&*lu));
            }
        } else if let Some(sh) = &self.shared {
            for o in sh.take_running_orphans(Some(&*lu)) {
                o.abort();
            }
        }
    }

    /// ABORT TASK for a task this connection does not have: another connection
    /// of the session may (MC/S), or it waits without allegiance (ErrorRecoveryLevel
    /// 2). The response code, or `None` when the task's connection was asked and
    /// the response waits for its answer ([`Connection::remote_aborts`]).
    fn abort_elsewhere(&mut self, itt: u32, lun: u64, tmf_itt: iscsi_proto::Itt) -> Option<u8> {
        let sh = self.shared.clone()?;
        let ask = RemoteAbort {
            itt,
            lun,
            from: (self.cid, self.member),
            tmf_itt: tmf_itt.0,
        };
        match sh.abort_elsewhere(ask) {
            AbortElsewhere::NoTask => Some(response::NO_TASK),
            AbortElsewhere::Dropped => Some(response::COMPLETE),
            AbortElsewhere::Orphan(o) => {
                o.abort();
                Some(response::COMPLETE)
            }
            AbortElsewhere::Passed(wake) => {
                if let Some(w) = wake {
                    w.wake();
                }
                None
            }
        }
    }

    /// MC/S: abort the tasks other connections were asked to abort (their answer
    /// goes back to them), and answer the ABORT TASKs this connection passed on.
    pub(super) fn remote_aborts(&mut self, sh: &SharedSession) {
        for a in sh.take_abort_requests(self.cid, self.member) {
            let here = self.tasks.get(&a.itt).is_some_and(|t| t.lun.lun == a.lun);
            let aborted = here && self.abort_task(a.itt);
            if let Some(w) = sh.answer_abort(&a, aborted) {
                w.wake();
            }
        }
        for (itt, aborted) in sh.take_abort_answers(self.cid, self.member) {
            self.send_tmf_response(HeldTmf {
                itt: iscsi_proto::Itt(itt),
                response: if aborted {
                    response::COMPLETE
                } else {
                    response::NO_TASK
                },
                drop_after: false,
                waiting: Default::default(),
            });
        }
    }

    fn send_tmf_response(&mut self, reply: HeldTmf) {
        let stat_sn = self.take_stat_sn();
        let pdu = Pdu::TaskMgmtResponse(TaskMgmtResponse {
            response: reply.response,
            itt: reply.itt,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(pdu);
        if reply.drop_after {
            // A cold reset drops every connection (SAM-5 §7.13 via RFC 7143 §11.5.1).
            self.close("target cold reset");
        }
    }

    /// The announcement tagged `tag` to the other gateways is done (taken by them,
    /// or given up by the store after its bound): a response held for it goes out
    /// once its last announcement is done.
    pub(super) fn announced(&mut self, tag: IoTag) {
        if let Some(i) = self
            .held_tasks
            .iter()
            .position(|h| h.waiting.contains(&tag))
        {
            self.held_tasks[i].waiting.remove(&tag);
            if self.held_tasks[i].waiting.is_empty() {
                let held = self.held_tasks.remove(i);
                self.finish_task(held.itt, held.outcome);
            }
            return;
        }
        let Some(i) = self.held_tmfs.iter().position(|h| h.waiting.contains(&tag)) else {
            return;
        };
        self.held_tmfs[i].waiting.remove(&tag);
        if self.held_tmfs[i].waiting.is_empty() {
            let reply = self.held_tmfs.remove(i);
            self.send_tmf_response(reply);
        }
    }

    /// ABORT TASK for a command not received yet: RFC 7143 §11.5.1 says a RefCmdSN
    /// inside the window and before the TMF's own CmdSN is considered received, so the
    /// command is dropped when (or if) it arrives and the CmdSN gap closes.
    fn abort_queued(&mut self, ref_cmd_sn: SerialNumber, tmf_cmd_sn: SerialNumber) -> bool {
        let window = self.config.cmd_window;
        self.shared
            .as_ref()
            .is_some_and(|s| s.abort_queued(ref_cmd_sn, tmf_cmd_sn, window))
    }
}
