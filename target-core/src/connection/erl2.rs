//! ErrorRecoveryLevel 2: connection recovery (RFC 7143 §6.2.2, §7.2, §11.5.1).
//!
//! When a connection of a level-2 session *fails* (the socket closed or broke, a
//! NOP-In ping went unanswered, a new login reinstated its CID, or another
//! connection removed it with Logout reason 2), its tasks do not end: they move to
//! the session ([`crate::mcs::SharedSession::orphan`]) without allegiance, each
//! with a deadline DefaultTime2Retain seconds away. A finished task whose status
//! the initiator had not acknowledged (ExpStatSN) goes too, with its outcome, so
//! that its status can be sent again. A logout (reason 0 or 1), an administrator's
//! close or a reset still ends tasks as at level 0.
//!
//! A connection of the same session (a new CID, or the failed one's CID logging in
//! again) takes a task over with TASK MANAGEMENT FUNCTION 8, TASK REASSIGN,
//! naming it by ITT; the answer is "Function complete" and then the task resumes
//! on the new connection:
//!
//! - a write still collecting data gets recovery R2Ts for just the ranges that
//!   did not arrive: each write remembers which byte ranges reached it in sequence
//!   (a small set, `task::Ranges`, bounded by forgetting its smallest range, whose
//!   bytes are then asked again); bursts and the unsolicited sequence of the dead
//!   connection are void;
//! - a task whose storage operation was in flight runs it again (its completion
//!   went to the dead connection): reads are idempotent, a write writes the same
//!   data to the same place;
//! - a read sends its Data-In from the TMF's ExpDataSN, then its status; a
//!   finished task sends its status again (with a StatSN of the new connection).
//!
//! A finished read's data kept for this counts against the session's
//! retained-data cap; past it the oldest sheds its data ([`Done::shed`]). Resets
//! abort running orphans (of the LU, or of the whole target in every session,
//! `crate::Core::abort_orphans`), and so does an ABORT TASK naming one.
//!
//! Refusals (RFC 7143 §11.6.1): "Task allegiance reassignment not supported" (4)
//! below level 2, "Task still allegiant" (3) while the task's connection lives,
//! "Task does not exist" (1) otherwise.
//!
//! When the last connection fails the session stays (in the session table, in
//! `--op show`) until Time2Retain passes; [`crate::Core::expire_sessions`], called
//! by the daemon's housekeeping with the time, then aborts the orphans and ends
//! the session (its I_T nexus too). Orphans of a session that still has
//! connections are aborted the same way at their deadline.

use super::task::{Task, TaskState};
use super::Connection;
use crate::mcs::{NotReassignable, SharedSession};
use iscsi_proto::pdu::TaskMgmtRequest;
use iscsi_proto::{Itt, LunField, SerialNumber};
use scsi_sbc::Outcome;
use std::time::{Duration, Instant};

/// A finished task as answered, kept at level 2 until its status is acknowledged.
#[derive(Debug, Clone)]
pub(super) struct Done {
    pub(super) lun_field: LunField,
    pub(super) edtl: u32,
    pub(super) read: bool,
    pub(super) out_len: u64,
    pub(super) outcome: Outcome,
    /// The StatSN its status went out with.
    pub(super) stat_sn: SerialNumber,
    /// Bytes of its read data counted against the session's retained-data cap
    /// (0 once shed, see [`Done::shed`]).
    pub(super) kept: usize,
}

impl Done {
    /// Past the session's retained-data cap: the read data goes and what is left
    /// answers a TASK REASSIGN with CHECK CONDITION, ABORTED COMMAND, INTERNAL
    /// TARGET FAILURE (44/00): the initiator's SCSI layer retries the read. (The
    /// status already sent is not changed; only a reassignment sees this.)
    /// Returns the bytes no longer counted.
    fn shed(&mut self) -> usize {
        self.outcome = super::full_feature::iscsi_sense(0x44, 0);
        std::mem::take(&mut self.kept)
    }
}

#[derive(Debug)]
enum Kind {
    /// Still running when its connection failed.
    Task(Box<Task>),
    /// Answered, not acknowledged.
    Done(Box<Done>),
}

/// A task without a connection (see the module documentation).
#[derive(Debug)]
pub(crate) struct Orphan {
    deadline: Instant,
    kind: Kind,
}

impl Orphan {
    /// When Time2Retain ends it.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether its ITT is still claimed in the session (a running task); an
    /// answered one's tag was already given back.
    pub(crate) fn holds_tag(&self) -> bool {
        matches!(self.kind, Kind::Task(_))
    }

    /// Bytes of read data it counts against the session's retained-data cap.
    pub(crate) fn retained_bytes(&self) -> usize {
        match &self.kind {
            Kind::Done(d) => d.kept,
            Kind::Task(_) => 0,
        }
    }

    /// Which answered orphan is oldest: earliest deadline, then StatSN (`None`
    /// for an orphan with no read data counted).
    pub(crate) fn shed_order(&self) -> Option<(Instant, u32)> {
        match &self.kind {
            Kind::Done(d) if d.kept > 0 => Some((self.deadline, d.stat_sn.get())),
            _ => None,
        }
    }

    /// Drop its read data (see `Done::shed`); the bytes no longer counted.
    pub(crate) fn shed(&mut self) -> usize {
        match &mut self.kind {
            Kind::Done(d) => d.shed(),
            Kind::Task(_) => 0,
        }
    }

    /// A running task of LU `lun` (a LOGICAL UNIT RESET aborts it).
    pub(crate) fn runs_on(&self, lun: &crate::registry::Lun) -> bool {
        matches!(&self.kind, Kind::Task(t) if t.lun.lun == lun.lun)
    }

    /// A running task of LUN `lun` (ABORT TASK names the LUN too).
    pub(crate) fn runs_on_lun(&self, lun: u64) -> bool {
        matches!(&self.kind, Kind::Task(t) if t.lun.lun == lun)
    }

    /// Time2Retain passed: the task is aborted (counted as tgt counts an abort).
    pub(crate) fn abort(self) {
        if let Kind::Task(t) = self.kind {
            super::tmf::count_aborted(&t);
        }
    }
}

/// TMF response codes of a TASK REASSIGN (RFC 7143 §11.6.1).
pub(super) mod reassign {
    pub(in crate::connection) const COMPLETE: u8 = 0;
    pub(in crate::connection) const NO_TASK: u8 = 1;
    pub(in crate::connection) const STILL_ALLEGIANT: u8 = 3;
    pub(in crate::connection) const NOT_SUPPORTED: u8 = 4;
}

/// A task taken over, resumed once the TMF response has gone out.
#[derive(Debug)]
pub(super) struct Resume {
    itt: u32,
    exp_data_sn: u32,
    orphan: Orphan,
}

impl Connection {
    /// Level 2: remember what a finished task was answered, until acknowledged.
    ///
    /// Its read data counts against the session's retained-data cap
    /// ([`super::RETAIN_CAP`], with what ErrorRecoveryLevel 1 keeps): when it does
    /// not fit, the oldest answered task's data is shed (`Done::shed`) — this
    /// connection's first (lowest StatSN), then the session's orphans (earliest
    /// deadline) — and when nothing is left to shed, this one's.
    pub(super) fn remember_done(&mut self, itt: Itt, mut done: Done) {
        if self.error_recovery_level() != 2 {
            return;
        }
        let n = done.outcome.data.len();
        if let (Some(sh), true) = (self.shared.clone(), n > 0) {
            loop {
                if sh.retain(n, super::RETAIN_CAP) {
                    done.kept = n;
                    break;
                }
                let oldest = self
                    .done
                    .iter()
                    .filter(|(_, d)| d.kept > 0)
                    .min_by(|a, b| {
                        let (x, y) = (a.1.stat_sn, b.1.stat_sn);
                        if x.lt(y) {
                            std::cmp::Ordering::Less
                        } else {
                            std::cmp::Ordering::Greater
                        }
                    })
                    .map(|(i, _)| *i);
                let freed = match oldest {
                    Some(i) => self.done.get_mut(&i).map_or(0, Done::shed),
                    None => sh.shed_oldest_orphan(),
                };
                if freed == 0 {
                    done.shed();
                    break;
                }
                sh.unretain(freed);
            }
        }
        if let Some(old) = self.done.insert(itt.0, done) {
            self.unretain_done(&old);
        }
    }

    fn unretain_done(&self, d: &Done) {
        if let (Some(sh), true) = (&self.shared, d.kept > 0) {
            sh.unretain(d.kept);
        }
    }

    /// ExpStatSN `exp` acknowledged the statuses before it.
    pub(super) fn forget_acknowledged(&mut self, exp: SerialNumber) {
        if !self.done.is_empty() {
            let gone: Vec<u32> = self
                .done
                .iter()
                .filter(|(_, d)| d.stat_sn.lt(exp))
                .map(|(i, _)| *i)
                .collect();
            for i in gone {
                if let Some(d) = self.done.remove(&i) {
                    self.unretain_done(&d);
                }
            }
        }
    }

    /// The connection closes without handing its answers to the session.
    pub(super) fn forget_done(&mut self) {
        let dones: Vec<Done> = self.done.drain().map(|(_, d)| d).collect();
        for d in &dones {
            self.unretain_done(d);
        }
    }

    /// The connection failed at level 2: hand its tasks, and its unacknowledged
    /// answers, to the session. True when it did (the session then outlives this
    /// connection if it is the last one).
    pub(super) fn orphan_tasks(&mut self) -> bool {
        let Some(sh) = self.shared.clone() else {
            return false;
        };
        let retain = self.time2retain();
        if self.error_recovery_level() != 2 || retain.is_zero() {
            return false;
        }
        let deadline = self.obs.now + retain;
        let mut out = Vec::new();
        // A task's buffer reservation moves with it to the connection that takes it.
        for (itt, task) in self.tasks.drain() {
            out.push((
                itt,
                Orphan {
                    deadline,
                    kind: Kind::Task(Box::new(task)),
                },
            ));
        }
        for (itt, d) in self.done.drain() {
            out.push((
                itt,
                Orphan {
                    deadline,
                    kind: Kind::Done(Box::new(d)),
                },
            ));
        }
        sh.orphan(self.cid, out);
        self.io_tags.clear();
        true
    }

    /// DefaultTime2Retain as negotiated.
    pub(super) fn time2retain(&self) -> Duration {
        let secs = self
            .session
            .as_ref()
            .map_or(0, |s| s.params.default_time2retain);
        Duration::from_secs(u64::from(secs))
    }

    /// TASK REASSIGN: the response code, and the task to resume after it.
    pub(super) fn task_reassign(&mut self, t: &TaskMgmtRequest) -> (u8, Option<Resume>) {
        if self.error_recovery_level() < 2 {
            return (reassign::NOT_SUPPORTED, None);
        }
        let itt = t.referenced_task_tag.0;
        if self.tasks.contains_key(&itt) {
            return (reassign::STILL_ALLEGIANT, None);
        }
        let Some(sh) = self.shared.clone() else {
            return (reassign::NO_TASK, None);
        };
        match SharedSession::take_orphan(&sh, itt, self.cid) {
            Ok(orphan) => (
                reassign::COMPLETE,
                Some(Resume {
                    itt,
                    exp_data_sn: t.exp_data_sn,
                    orphan,
                }),
            ),
            Err(NotReassignable::StillAllegiant) => (reassign::STILL_ALLEGIANT, None),
            Err(NotReassignable::NoTask) => (reassign::NO_TASK, None),
        }
    }

    /// Carry on with a task taken over by TASK REASSIGN (module documentation).
    pub(super) fn resume(&mut self, r: Resume) {
        let Resume {
            itt,
            exp_data_sn,
            orphan,
        } = r;
        // Data-In before the initiator's ExpDataSN arrived on the old connection.
        self.resume_from.insert(itt, exp_data_sn);
        match orphan.kind {
            Kind::Done(d) => {
                let d = *d;
                self.respond(
                    Itt(itt),
                    d.lun_field,
                    d.edtl,
                    d.read,
                    d.out_len,
                    d.outcome,
                    None,
                );
            }
            Kind::Task(task) => {
                let mut task = *task;
                match &mut task.state {
                    TaskState::Collecting(st) => {
                        if !st.complete() {
                            // Keep what arrived; recovery R2Ts for the rest.
                            st.reassigned();
                        }
                        self.tasks.insert(itt, task);
                        self.data_out_progress(itt);
                        self.advance_task(itt);
                    }
                    TaskState::Io(op) => {
                        let op = op.clone();
                        let store = task.io_store.clone();
                        let metrics = task.metrics.clone();
                        self.tasks.insert(itt, task);
                        let Some(store) = store else {
                            return self
                                .finish_task(itt, super::full_feature::iscsi_sense(0x44, 0));
                        };
                        let seq = self.next_io_tag;
                        self.next_io_tag += 1;
                        let tag = self.obs.tag(seq, metrics.as_ref());
                        self.io_tags.insert(tag, itt);
                        self.io_out.push_back(super::IoRequest { tag, store, op });
                    }
                }
            }
        }
    }

    /// How many Data-In of task `itt` to leave out (resumed from ExpDataSN).
    pub(super) fn take_resume_from(&mut self, itt: Itt) -> u32 {
        if self.resume_from.is_empty() {
            return 0;
        }
        self.resume_from.remove(&itt.0).unwrap_or(0)
    }
}
