//! Task management functions (RFC 7143 §11.5, §11.6): the tasks named are really
//! aborted (their Data-Out is dropped, their storage results are discarded) before the
//! response goes out.

use super::timer::Timer;
use super::{Connection, IoTag};
use crate::mcs::{AbortElsewhere, Aborts, RemoteAbort, SharedSession};
use iscsi_proto::pdu::{Pdu, TaskMgmtRequest, TaskMgmtResponse};
use iscsi_proto::SerialNumber;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a task management request waits for the other connections of its
/// session (MC/S) to abort their tasks of it. A connection that is alive but whose
/// thread does not get to it in time makes the request answer "Function rejected"
/// (255): the tasks it had may still answer, so "Function complete" would be
/// untrue (RFC 7143 §11.5.1: no response for an aborted task after the TMF
/// response), and the initiator escalates (a reset, then a new session) as it
/// does for a rejected function. Well under the TMF timeouts of initiators
/// (open-iscsi's are 15 s and more).
pub(crate) const REMOTE_TMF_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Connections of the session asked to abort tasks of theirs (MC/S) that have
    /// not answered yet.
    remote: usize,
    /// ABORT TASK passed to the task's connection: its answer decides the response.
    by_answer: bool,
    /// Until when `remote` answers are waited for ([`REMOTE_TMF_TIMEOUT`]).
    deadline: Option<Instant>,
}

impl HeldTmf {
    fn ready(&self) -> bool {
        self.waiting.is_empty() && self.remote == 0
    }
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
        let mut remote = 0;
        let mut by_answer = false;
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
                        None => {
                            remote = 1;
                            by_answer = true;
                            response::NO_TASK
                        }
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
                    // This session's other connections (MC/S) abort theirs; the
                    // response waits for them.
                    remote = self.abort_on_others(Aborts::Lun, lun, t.itt);
                    if t.function == 5 {
                        // Every other session's tasks of the LU (SAM-5: an LU
                        // reset aborts every task set of the LU).
                        self.lu_reset_other_sessions(lun);
                        // Unit attentions, reservation release (scsi.rs hook).
                        held = self.scsi_lu_reset(Some(lun));
                    }
                    response::COMPLETE
                }
            }
            // TARGET WARM RESET, TARGET COLD RESET.
            6 | 7 => {
                drop_after = self.target_reset(t.function == 7, &mut held);
                // This session's other connections abort theirs before the
                // response (other sessions act on the reset generation).
                remote = self.abort_on_others(Aborts::All, 0, t.itt);
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
            remote,
            by_answer,
            deadline: (remote > 0).then(|| self.obs.now + REMOTE_TMF_TIMEOUT),
        };
        if reply.ready() {
            self.send_tmf_response(reply);
            if let Some(r) = resume {
                // The task goes on on this connection after "Function complete".
                self.resume(r);
            }
        } else {
            // The other gateways of a shared medium hear of the reset first, and
            // the session's other connections abort their tasks first.
            self.held_tmfs.push(reply);
            self.arm_tmf_timer();
        }
    }

    /// MC/S: pass a task set function or a reset to the session's other
    /// connections ([`SharedSession::abort_on_others`]); how many must answer.
    fn abort_on_others(&mut self, what: Aborts, lun: u64, tmf_itt: iscsi_proto::Itt) -> usize {
        let Some(sh) = self.shared.clone() else {
            return 0;
        };
        let (asked, wakes) = sh.abort_on_others(RemoteAbort {
            what,
            lun,
            from: Some((self.cid, self.member)),
            tmf_itt: tmf_itt.0,
        });
        for w in wakes {
            w.wake();
        }
        asked
    }

    /// LOGICAL UNIT RESET: the live tasks of LU `lun` in the target's other
    /// sessions are aborted by their connections at their next input (woken
    /// now). Nobody waits for them: they are other I_T nexuses, which learn of
    /// the reset from the unit attention it established.
    fn lu_reset_other_sessions(&mut self, lun: u64) {
        let Some(tid) = self
            .session
            .as_ref()
            .and_then(|s| s.target.as_ref())
            .map(|t| t.tid)
        else {
            return;
        };
        for sh in self.core.sessions.shared_of_target(tid) {
            if self.shared.as_ref().is_some_and(|m| Arc::ptr_eq(m, &sh)) {
                continue;
            }
            let (_, wakes) = sh.abort_on_others(RemoteAbort {
                what: Aborts::Lun,
                lun,
                from: None,
                tmf_itt: 0,
            });
            for w in wakes {
                w.wake();
            }
        }
    }

    /// Arm [`Timer::TmfWait`] at the earliest deadline of a response waiting for
    /// other connections, or stop it.
    fn arm_tmf_timer(&mut self) {
        let next = self
            .held_tmfs
            .iter()
            .filter(|h| h.remote > 0)
            .filter_map(|h| h.deadline)
            .min();
        match next {
            Some(at) => self.timers.set(Timer::TmfWait, at),
            None => self.timers.stop(Timer::TmfWait),
        }
    }

    /// [`Timer::TmfWait`] fired: requests whose other connections did not all
    /// answer by `now` are answered "Function rejected" (see
    /// [`REMOTE_TMF_TIMEOUT`]); a late answer finds nothing to answer.
    pub(super) fn tmf_wait_expired(&mut self, now: Instant) {
        for h in self.held_tmfs.iter_mut() {
            if h.remote > 0 && h.deadline.is_some_and(|d| d <= now) {
                h.remote = 0;
                h.response = response::REJECTED;
            }
        }
        self.send_ready_tmfs();
        self.arm_tmf_timer();
    }

    /// Send the held responses that wait for nothing more, in the order held.
    fn send_ready_tmfs(&mut self) {
        while let Some(i) = self.held_tmfs.iter().position(HeldTmf::ready) {
            let reply = self.held_tmfs.remove(i);
            self.send_tmf_response(reply);
        }
    }

    /// Another connection answered the request `tmf_itt` this one passed on.
    fn tmf_answered(&mut self, tmf_itt: u32, done: bool) {
        let Some(h) = self
            .held_tmfs
            .iter_mut()
            .find(|h| h.itt.0 == tmf_itt && h.remote > 0)
        else {
            // Answered "Function rejected" already (its deadline passed).
            return;
        };
        h.remote -= 1;
        if h.by_answer {
            h.response = if done {
                response::COMPLETE
            } else {
                response::NO_TASK
            };
        }
        self.send_ready_tmfs();
        self.arm_tmf_timer();
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
            what: Aborts::Task(itt),
            lun,
            from: Some((self.cid, self.member)),
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

    /// MC/S: abort the tasks other connections (or sessions) asked this one to
    /// abort (the answer goes back to the asking connection), and answer the task
    /// management requests this connection passed on once all answered.
    pub(super) fn remote_aborts(&mut self, sh: &SharedSession) {
        for a in sh.take_abort_requests(self.cid, self.member) {
            let done = match a.what {
                Aborts::Task(itt) => {
                    let here = self.tasks.get(&itt).is_some_and(|t| t.lun.lun == a.lun);
                    here && self.abort_task(itt)
                }
                Aborts::Lun => {
                    let gone: Vec<u32> = self
                        .tasks
                        .iter()
                        .filter(|(_, task)| task.lun.lun == a.lun)
                        .map(|(k, _)| *k)
                        .collect();
                    for itt in gone {
                        self.abort_task(itt);
                    }
                    true
                }
                Aborts::All => {
                    self.abort_all_tasks();
                    true
                }
            };
            if let Some(w) = sh.answer_abort(&a, done) {
                w.wake();
            }
        }
        for (itt, done) in sh.take_abort_answers(self.cid, self.member) {
            self.tmf_answered(itt, done);
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
        if self.held_tmfs[i].ready() {
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
