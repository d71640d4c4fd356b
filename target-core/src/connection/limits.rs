//! Resource limits of one connection (RFC 7143 answers, one [`ConnEvent::LimitHit`]
//! per hit so the daemon logs one line naming the peer):
//!
//! - admission ([`crate::limits::Admission`]): over `max_connections` or the
//!   per-address cap on logins in progress, the first login request is answered
//!   "out of resources" (0x0302) and the connection closes (or, when too many such
//!   refusals are pending, it closes at once);
//! - sessions per target (`MaxSessions`) and per initiator and target
//!   (`MaxSessionsPerInitiator`): login status 0x0302;
//! - bytes buffered: a connection holds at most `max_buffered_bytes` of write data
//!   being collected and read data being fetched; a task that would go over waits
//!   (no R2T, no read) until earlier tasks finish, and MaxCmdSN only advances as
//!   tasks end, so the initiator's window is the capacity really left;
//! - time: a PDU whose header arrived must be whole within `pdu_timeout`.

use super::task::TaskState;
use super::timer::Timer;
use super::{ConnEvent, Connection, Phase};
use crate::limits::{Admit, Limit};
use iscsi_proto::login::LoginStatus;
use iscsi_proto::pdu::{Pdu, Stage};
use iscsi_proto::{Isid, Itt, SerialNumber};
use std::collections::VecDeque;
use std::time::Instant;

/// The connection's standing with the limits.
#[derive(Debug, Default)]
pub(super) struct LimitState {
    /// Counted by the admission table as served (until released).
    admitted: bool,
    /// Counted as a login in progress from the peer's address.
    pending: bool,
    /// Counted as a refusal pending (answered 0x0302 at its first login request).
    refusing: Option<Limit>,
    /// Tasks waiting for buffer budget, oldest first (ITTs).
    waiting: VecDeque<u32>,
    /// The highest MaxCmdSN we have told the initiator (it ignores smaller ones,
    /// RFC 7143 §4.2.2.1, so ours never goes back either).
    advertised: std::cell::Cell<Option<SerialNumber>>,
    /// Whether a partial PDU's deadline is armed.
    partial: bool,
    /// The command window's limit was reported (once per connection).
    window_reported: bool,
}

impl Connection {
    /// Count a new connection with the daemon's admission table (called by `new`).
    pub(super) fn admit(&mut self) {
        let ip = self.peer.peer.ip();
        match self.core.admission.admit(ip, &self.config.admission) {
            Admit::Yes => {
                self.limits.admitted = true;
                self.limits.pending = true;
            }
            Admit::Refuse(l) => {
                self.limits.refusing = Some(l);
                self.limit_hit(l, "login will be refused (status 0302 out of resources)");
            }
            Admit::Drop(l) => {
                self.limit_hit(l, "connection closed at once");
                self.close(&format!("{l} reached"));
            }
        }
    }

    /// Report a limit hit once: the daemon logs it with the peer's address.
    pub(super) fn limit_hit(&mut self, limit: Limit, detail: &str) {
        self.events.push_back(ConnEvent::LimitHit {
            limit,
            detail: detail.to_string(),
        });
    }

    /// Close because of a limit the adapter enforces (a stalled reader): one
    /// [`ConnEvent::LimitHit`], then the connection is over and its socket may be
    /// dropped without writing what is still queued.
    pub fn close_for_limit(&mut self, limit: Limit, detail: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.limit_hit(limit, detail);
        self.close(&format!("{limit}: {detail}"));
    }

    /// Give the admission table back what this connection held (close and drop).
    pub(super) fn release_admission(&mut self) {
        let ip = self.peer.peer.ip();
        if self.limits.admitted {
            self.core
                .admission
                .release(ip, true, std::mem::take(&mut self.limits.pending));
            self.limits.admitted = false;
        } else if self.limits.refusing.take().is_some() {
            self.core.admission.release(ip, false, false);
        }
    }

    /// The login finished: no longer a login in progress from this address.
    pub(super) fn admission_logged_in(&mut self) {
        if std::mem::take(&mut self.limits.pending) {
            self.core.admission.logged_in(self.peer.peer.ip());
        }
    }

    /// A refused connection's first PDU: answer a login request with "out of
    /// resources" and close. Returns false when the connection is not refused.
    pub(super) fn refuse_login(&mut self, pdu: &Pdu) -> bool {
        if self.limits.refusing.is_none() {
            return false;
        }
        let (itt, isid, csg) = match pdu {
            Pdu::LoginRequest(r) => (r.itt, r.isid, r.csg),
            _ => (Itt::RESERVED, Isid::default(), Stage::Security),
        };
        if let Pdu::LoginRequest(r) = pdu {
            self.stat_sn = r.exp_stat_sn;
            self.exp_cmd_sn = r.cmd_sn;
        }
        self.fail_login_raw(LoginStatus::OUT_OF_RESOURCES, itt, isid, csg);
        true
    }

    /// Whether a refused connection's login timer ran out (closed quietly: its limit
    /// hit was reported already).
    pub(super) fn is_refused(&self) -> bool {
        self.limits.refusing.is_some()
    }

    /// Session limits of the target the login is for (`MaxSessions`,
    /// `MaxSessionsPerInitiator`); a reinstatement replaces a session and is not
    /// counted twice.
    pub(super) fn check_session_limits(
        &mut self,
        target: &crate::registry::Target,
        initiator: &str,
        isid: Isid,
    ) -> Result<(), LoginStatus> {
        let p = target.params();
        if p.max_sessions == 0 && p.max_sessions_per_initiator == 0 {
            return Ok(());
        }
        let key = crate::session::SessionKey {
            initiator: initiator.to_string(),
            isid,
            target: target.name.clone(),
        };
        let reinstating = self.core.sessions.lookup(&key).is_some();
        // Only sessions that are still live count: one a reinstatement replaced stays
        // in the target's list until its own connection (maybe on another thread)
        // has closed, and a login that comes meanwhile must not count it.
        let live = |s: &crate::registry::SessionInfo| {
            self.core
                .sessions
                .by_tsih(iscsi_proto::Tsih(s.tsih))
                .is_some_and(|(_, e)| e.sid == s.sid)
        };
        let sessions: Vec<_> = target.sessions().into_iter().filter(live).collect();
        let adjust = usize::from(reinstating);
        let all = sessions.len().saturating_sub(adjust);
        let mine = sessions
            .iter()
            .filter(|s| s.initiator == initiator)
            .count()
            .saturating_sub(adjust);
        let hit = if p.max_sessions > 0 && all >= p.max_sessions as usize {
            Some((Limit::TargetSessions, p.max_sessions, &target.name))
        } else if p.max_sessions_per_initiator > 0 && mine >= p.max_sessions_per_initiator as usize
        {
            Some((
                Limit::InitiatorSessions,
                p.max_sessions_per_initiator,
                &target.name,
            ))
        } else {
            None
        };
        if let Some((limit, max, name)) = hit {
            let detail = format!(
                "{initiator} to {name}: {max} session(s) allowed; login refused (status 0302 out of resources)"
            );
            self.limit_hit(limit, &detail);
            return Err(LoginStatus::OUT_OF_RESOURCES);
        }
        Ok(())
    }

    /// MaxCmdSN as capacity allows: the window less the tasks and early commands
    /// held (session-wide in full feature phase: `mcs::SharedSession`), never below
    /// what was already advertised (the initiator keeps the largest it saw, so a
    /// command up to it may still come and must be taken).
    pub(super) fn capacity_max_cmd_sn(&self) -> SerialNumber {
        if let Some(shared) = &self.shared {
            // Full feature phase: one window for every connection of the session.
            return shared.capacity_max_cmd_sn(self.tasks.len(), self.config.cmd_window);
        }
        let held = u32::try_from(self.tasks.len()).unwrap_or(u32::MAX);
        let room = self.config.cmd_window.saturating_sub(held);
        // ExpCmdSN + room - 1: with no room, ExpCmdSN - 1 closes the window until a
        // task ends (its response carries the reopened window).
        let candidate = self.exp_cmd_sn.plus(room).plus(u32::MAX);
        let next = match self.limits.advertised.get() {
            Some(a) if candidate.in_window(self.exp_cmd_sn.plus(u32::MAX), a) => a,
            _ => candidate,
        };
        self.limits.advertised.set(Some(next));
        next
    }

    /// A command past the window (RFC 7143 §4.2.2.1: ignored) or an immediate one
    /// over the task set: report the first of this connection. Old CmdSNs
    /// (duplicates) are not the initiator overrunning us and are not reported.
    pub(super) fn window_overrun(&mut self, sn: Option<SerialNumber>) {
        if sn.is_some_and(|sn| sn.lt(self.exp_cmd_sn)) || self.limits.window_reported {
            return;
        }
        self.limits.window_reported = true;
        let detail = match sn {
            Some(sn) => format!(
                "CmdSN {sn} past MaxCmdSN {} ignored (reported once per connection)",
                self.max_cmd_sn()
            ),
            None => format!(
                "immediate command with {} tasks in progress answered TASK SET FULL (reported once per connection)",
                self.tasks.len()
            ),
        };
        self.limit_hit(Limit::CommandWindow, &detail);
    }

    /// May task `itt` take `need` more bytes of buffer now? When it may, they are
    /// counted against it until it ends; otherwise it waits (first come, first
    /// served). A task is always allowed when nothing else holds buffer, so one
    /// command larger than the cap still runs, alone.
    pub(super) fn reserve_buffer(&mut self, itt: u32, need: u64) -> bool {
        match self.tasks.get(&itt) {
            None => return false,
            Some(task) if !task.reserved.is_none() || need == 0 => return true,
            Some(_) => {}
        }
        // Bytes this connection holds for tasks: write data being collected and
        // read data being fetched.
        let used = self.tasks.reserved();
        let cap = self.config.max_buffered_bytes;
        let first_in_line = self.limits.waiting.front().is_none_or(|&w| w == itt);
        if first_in_line && (used == 0 || used + need <= cap) {
            self.tasks.reserve(itt, need);
            if self.limits.waiting.front() == Some(&itt) {
                self.limits.waiting.pop_front();
            }
            return true;
        }
        if !self.limits.waiting.contains(&itt) {
            self.limits.waiting.push_back(itt);
        }
        false
    }

    /// Start tasks that waited for buffer, now that others may have ended.
    pub(super) fn advance_waiting(&mut self) {
        while let Some(&itt) = self.limits.waiting.front() {
            if self.phase != Phase::FullFeature {
                self.limits.waiting.clear();
                return;
            }
            let waiting = self.tasks.get(&itt).is_some_and(|t| {
                t.reserved.is_none() && matches!(t.state, TaskState::Collecting(_))
            });
            if !waiting {
                self.limits.waiting.pop_front();
                continue;
            }
            let before = self.limits.waiting.len();
            self.advance_task(itt);
            if self.limits.waiting.front() == Some(&itt) && self.limits.waiting.len() == before {
                // Still no room for the oldest: the rest wait behind it.
                return;
            }
        }
    }

    /// After input: arm the slow-sender deadline while a partial PDU sits in the
    /// buffer (from when its first bytes arrived, or the last whole PDU was taken),
    /// disarm it when the buffer is empty. An empty call (the adapters' nudge after
    /// a management change, with a buffer of its own) says nothing about the input.
    pub(super) fn track_partial_pdu(
        &mut self,
        before: usize,
        left: usize,
        took_pdu: bool,
        now: Instant,
    ) {
        let Some(limit) = self.config.pdu_timeout else {
            return;
        };
        if before == 0 && left == 0 {
            return;
        }
        if left == 0 || self.phase == Phase::Closed {
            self.limits.partial = false;
            self.timers.stop(Timer::PduIncomplete);
        } else if took_pdu || !self.limits.partial {
            self.limits.partial = true;
            self.timers.set(Timer::PduIncomplete, now + limit);
        }
    }

    /// The slow-sender deadline passed.
    pub(super) fn pdu_timed_out(&mut self) {
        self.timers.stop(Timer::PduIncomplete);
        let secs = self.config.pdu_timeout.unwrap_or_default().as_secs_f64();
        self.close_for_limit(
            Limit::PduTime,
            &format!("a PDU's announced bytes did not arrive within {secs} s; connection dropped"),
        );
    }
}
