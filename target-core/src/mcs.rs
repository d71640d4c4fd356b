//! What the connections of one session share (multiple connections per session,
//! MC/S, RFC 7143 §4.2.2, §6.3.1): one CmdSN window, one task tag space, and a way
//! to reach each other.
//!
//! Each [`Connection`](crate::connection::Connection) stays owned by its adapter's
//! event-loop thread with its own tasks, StatSN and timers; connections of one
//! session may be on different threads. They meet only here, behind this session's
//! own mutex (no daemon-wide lock), for these things:
//!
//! - **CmdSN ordering.** A non-immediate request is released in CmdSN order over the
//!   whole session. A request ahead of a gap is held with the CID it came on; the
//!   connection whose request fills the gap releases what follows. Released requests
//!   of other connections are queued for them and their adapters are woken through
//!   [`Wake`] (a request is always executed, and answered, on the connection that
//!   carried it: connection allegiance, RFC 7143 §5.1).
//! - **Task tags.** An ITT is claimed for the whole session while its task lives, so
//!   the same ITT on two connections is refused (RFC 7143 §11.1).
//! - **Membership.** Joining (with its CID), leaving, and asking another connection
//!   to close (Logout reason 0 and 1, connection reinstatement, `tgtadm --mode
//!   connection --op delete`).
//! - **Connection recovery** (ErrorRecoveryLevel 2, `connection/erl2.rs`): tasks
//!   of failed connections wait here (orphans) for a TASK REASSIGN or their
//!   Time2Retain, and a session whose last connection failed lingers here.
//!
//! The lock is held only for map operations, never across a call out (wakes are
//! returned and called by the caller after the lock is released). What a command
//! reads on every response — ExpCmdSN, how many requests wait here, the advertised
//! MaxCmdSN — is kept in atomics besides, so MaxCmdSN is computed without the lock;
//! a command takes it three times (CmdSN order, tag claim, tag release).

use iscsi_proto::keys::SessionParams;
use iscsi_proto::pdu::Pdu;
use iscsi_proto::SerialNumber;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::connection::Orphan;
use crate::taghash::TagMap;

/// How a connection's adapter is asked to feed it an empty input soon (it has
/// requests released by another connection, or was asked to close). Called from any
/// thread; must not block.
pub trait Wake: Send + Sync {
    /// Schedule an empty `handle_input` on the connection.
    fn wake(&self);
}

/// One member connection.
#[derive(Default)]
struct Slot {
    /// Which connection holds the CID (a reinstatement gives it to a new one).
    member: u64,
    wake: Option<Arc<dyn Wake>>,
    /// Requests released in CmdSN order, to be dispatched by this connection.
    ready: VecDeque<Pdu>,
    /// Why this connection was asked to close, and whether its tasks stay for
    /// recovery (ErrorRecoveryLevel 2: reinstated CID, Logout reason 2).
    close: Option<(String, bool)>,
    /// Task management requests other connections (or, for a LOGICAL UNIT
    /// RESET, other sessions) received for this one's tasks.
    aborts: Vec<RemoteAbort>,
    /// Answers to task management requests this connection passed on: (TMF's
    /// ITT, whether done: for ABORT TASK whether the task was found).
    answers: Vec<(u32, bool)>,
}

/// What a [`RemoteAbort`] aborts on the connection it is passed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aborts {
    /// ABORT TASK: the task with this tag, if it is of the request's LUN.
    Task(u32),
    /// ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET: every task of the LUN.
    Lun,
    /// TARGET WARM RESET, TARGET COLD RESET: every task.
    All,
}

/// A task management request received on one connection for tasks of another
/// (MC/S: a task management request may come on any connection of the session,
/// RFC 7143 §11.5; the tasks' own connection aborts them, the asking one answers
/// once every connection asked did). A LOGICAL UNIT RESET reaches the
/// connections of the target's other sessions the same way, with nobody waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RemoteAbort {
    /// The tasks to abort.
    pub(crate) what: Aborts,
    /// The LUN the request named (a task of another LU is not aborted).
    pub(crate) lun: u64,
    /// The connection that asked and waits for the answer (its CID and member
    /// id); `None` for another session's reset, which nobody waits for.
    pub(crate) from: Option<(u16, u64)>,
    /// The ITT of the task management request.
    pub(crate) tmf_itt: u32,
}

impl RemoteAbort {
    /// Whether orphan `o` (ErrorRecoveryLevel 2) is one of the tasks it aborts.
    fn takes_orphan(&self, itt: u32, o: &Orphan) -> bool {
        o.holds_tag()
            && match self.what {
                Aborts::Task(t) => t == itt && o.runs_on_lun(self.lun),
                Aborts::Lun => o.runs_on_lun(self.lun),
                Aborts::All => true,
            }
    }

    /// Whether released, not yet dispatched request `p` is one it aborts.
    fn takes_request(&self, p: &Pdu) -> bool {
        let Pdu::ScsiCommand(c) = p else {
            return false;
        };
        match self.what {
            Aborts::Task(t) => c.itt.0 == t && c.lun.to_lun() == self.lun,
            Aborts::Lun => c.lun.to_lun() == self.lun,
            Aborts::All => true,
        }
    }
}

/// Where an ABORT TASK for a task not on the asking connection went.
pub(crate) enum AbortElsewhere {
    /// No live task of the session has the tag.
    NoTask,
    /// A command released to another connection and not dispatched yet was
    /// dropped: it never runs.
    Dropped,
    /// Taken from the orphans (ErrorRecoveryLevel 2): the caller aborts it.
    Orphan(Orphan),
    /// Passed to the task's connection (wake it): the answer comes back to the
    /// asking connection (`SharedSession::take_abort_answers`).
    Passed(Option<Arc<dyn Wake>>),
}

#[derive(Default)]
struct Inner {
    exp_cmd_sn: SerialNumber,
    /// Requests ahead of ExpCmdSN, with the CID that carried them.
    held: BTreeMap<u32, (u16, Pdu)>,
    /// CmdSNs consumed without delivery (ABORT TASK of an unreceived command, a
    /// held request whose connection went away).
    discard: HashSet<u32>,
    /// ErrorRecoveryLevel 2: CmdSNs of commands held ahead of a gap when their
    /// connection failed (consumed, see `discard`); sent again on another
    /// connection they run (`SharedSession::take_lost`), each until its
    /// Time2Retain passes (then, or when the session ends, it is forgotten: a
    /// resend finds nothing to run). At most [`MAX_LOST`].
    lost: HashMap<u32, Instant>,
    /// Live task tags and the CID that owns each (claimed and released once per
    /// command: hashed cheaply, `crate::taghash`).
    itts: TagMap<u32, u16>,
    conns: BTreeMap<u16, Slot>,
    next_member: u64,
    /// ErrorRecoveryLevel 2: tasks of failed connections, by ITT, until a TASK
    /// REASSIGN takes them or their Time2Retain passes.
    orphans: HashMap<u32, Orphan>,
    /// The session outlived its last connection (ErrorRecoveryLevel 2): what ends
    /// it when Time2Retain passes with no connection back.
    lingering: Option<Lingering>,
}

/// Most CmdSNs a session remembers as lost with failed connections (`Inner::lost`);
/// past it a lost command is only consumed, as below ErrorRecoveryLevel 2. (The
/// CmdSN window bounds what can be held in the first place; this bounds what
/// repeated failures leave behind.)
pub(crate) const MAX_LOST: usize = 1024;

/// A session with no connection left, kept for connection recovery until `until`.
#[derive(Debug, Clone)]
pub(crate) struct Lingering {
    /// When it ends unless a connection logs in to it.
    pub(crate) until: Instant,
    /// The daemon-wide session id.
    pub(crate) sid: u64,
    /// Its target (none for discovery sessions, which never linger).
    pub(crate) target: Option<Arc<crate::registry::Target>>,
    /// Its I_T nexus id (unit attentions and reservations go when it ends).
    pub(crate) nexus: u64,
}

/// What [`SharedSession::expire`] took out.
#[derive(Debug, Default)]
pub(crate) struct Expired {
    /// Orphaned tasks whose Time2Retain passed: they are aborted.
    pub(crate) orphans: Vec<Orphan>,
    /// The session itself ended (no connection came back in time).
    pub(crate) ended: Option<Lingering>,
}

/// Why a TASK REASSIGN cannot take a task (RFC 7143 §11.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotReassignable {
    /// No task of the session has that tag ("Task does not exist").
    NoTask,
    /// The task is still allegiant to a live connection.
    StillAllegiant,
}

/// What [`SharedSession::order`] decided.
#[derive(Default)]
pub(crate) struct Released {
    /// Requests for the calling connection, in CmdSN order.
    pub(crate) mine: Vec<Pdu>,
    /// Connections to wake (their requests were released); call after the return.
    pub(crate) wakes: Vec<Arc<dyn Wake>>,
}

/// The shared part of one session.
pub struct SharedSession {
    /// The session-wide parameters the leading login negotiated.
    pub(crate) params: SessionParams,
    /// ExpCmdSN as last advanced, readable without the lock (responses carry it).
    exp: AtomicU32,
    /// A connection ever joined the leading one: only then can requests be released
    /// to, or close requests be left for, a connection by another (a single-connection
    /// session skips those checks on every input).
    joined: AtomicBool,
    /// Some connection has aborts passed to it (`Slot::aborts`) not taken yet.
    poked: AtomicBool,
    /// Bytes its connections keep for ErrorRecoveryLevel 1 recovery
    /// (`connection/recovery.rs`), bounded by a cap.
    retained: AtomicUsize,
    /// Requests held ahead of a CmdSN gap or released to a connection and not yet
    /// taken (`held` and every `ready`), as of the last change under the lock: read
    /// without it by [`Self::capacity_max_cmd_sn`].
    waiting: AtomicUsize,
    /// The largest MaxCmdSN any connection advertised (`1 << 32 | sn`; 0: none yet):
    /// the initiator may send up to it on any connection, so no connection may
    /// advertise (or enforce) less.
    advertised: AtomicU64,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SharedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSession")
            .field("exp_cmd_sn", &self.exp.load(Ordering::Relaxed))
            .finish()
    }
}

impl SharedSession {
    /// A session whose leading connection `cid` logged in with ExpCmdSN `exp`, and
    /// that connection's member id.
    pub(crate) fn new(params: SessionParams, exp: SerialNumber, cid: u16) -> (Arc<Self>, u64) {
        let mut inner = Inner {
            exp_cmd_sn: exp,
            next_member: 2,
            ..Inner::default()
        };
        inner.conns.insert(
            cid,
            Slot {
                member: 1,
                ..Slot::default()
            },
        );
        let s = Arc::new(SharedSession {
            params,
            exp: AtomicU32::new(exp.get()),
            joined: AtomicBool::new(false),
            poked: AtomicBool::new(false),
            retained: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            advertised: AtomicU64::new(0),
            inner: Mutex::new(inner),
        });
        (s, 1)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publish how many requests wait in `g` (call, with the lock held, after
    /// changing `held` or a `ready` queue).
    fn count_waiting(&self, g: &Inner) {
        let n = g.held.len() + g.conns.values().map(|s| s.ready.len()).sum::<usize>();
        self.waiting.store(n, Ordering::Release);
    }

    /// The session's ExpCmdSN.
    pub(crate) fn exp_cmd_sn(&self) -> SerialNumber {
        SerialNumber(self.exp.load(Ordering::Acquire))
    }

    /// MaxCmdSN as capacity allows (limits.rs): the window less `tasks` (the asking
    /// connection's) and the requests held ahead of a CmdSN gap or released to a
    /// connection and not yet taken; never below what any connection of the session
    /// already advertised (the initiator keeps the largest it saw and may use it on
    /// any connection). With no room, ExpCmdSN - 1 closes the window.
    ///
    /// Lock-free (it runs for every response): ExpCmdSN and the waiting count are
    /// published after each change under the lock, ExpCmdSN first, so a reader racing
    /// a change sees at most the room the change leaves (never more than the locked
    /// computation would give); the advertised maximum only moves forward, by
    /// compare-and-swap.
    pub(crate) fn capacity_max_cmd_sn(&self, tasks: usize, window: u32) -> SerialNumber {
        let held = tasks + self.waiting.load(Ordering::Acquire);
        let room = window.saturating_sub(u32::try_from(held).unwrap_or(u32::MAX));
        let exp = self.exp_cmd_sn();
        let candidate = exp.plus(room).plus(u32::MAX);
        let encode = |sn: SerialNumber| (1u64 << 32) | u64::from(sn.get());
        let mut next = candidate;
        let _ = self
            .advertised
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                next = match cur {
                    0 => candidate,
                    cur => {
                        let a = SerialNumber(cur as u32);
                        if candidate.in_window(exp.plus(u32::MAX), a) {
                            a
                        } else {
                            candidate
                        }
                    }
                };
                // Unchanged: no store (the line stays shared between connections).
                (encode(next) != cur).then(|| encode(next))
            });
        next
    }

    /// Count `n` more retained bytes unless that passes `cap`; false when it would.
    pub(crate) fn retain(&self, n: usize, cap: usize) -> bool {
        self.retained
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                cur.checked_add(n).filter(|t| *t <= cap)
            })
            .is_ok()
    }

    /// `n` retained bytes were released.
    pub(crate) fn unretain(&self, n: usize) {
        let _ = self
            .retained
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_sub(n))
            });
    }

    /// Retained bytes over the whole session.
    #[cfg(test)]
    pub(crate) fn retained_bytes(&self) -> usize {
        self.retained.load(Ordering::Acquire)
    }

    /// Whether another connection ever joined (see the field).
    pub(crate) fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    /// Connections in the session.
    pub(crate) fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether `cid` is a member.
    pub(crate) fn has(&self, cid: u16) -> bool {
        self.lock().conns.contains_key(&cid)
    }

    /// Add connection `cid`; returns its member id. A live connection with the same
    /// CID is replaced (connection reinstatement, RFC 7143 §6.3.4): it finds itself
    /// replaced at its next input and closes, its tasks end; its wake is returned.
    pub(crate) fn join(&self, cid: u16) -> (u64, Option<Arc<dyn Wake>>) {
        self.joined.store(true, Ordering::Release);
        let mut g = self.lock();
        // A connection came back to a session that outlived its last one.
        g.lingering = None;
        let member = g.next_member;
        g.next_member += 1;
        let slot = Slot {
            member,
            ..Slot::default()
        };
        let old = g.conns.insert(cid, slot);
        self.count_waiting(&g);
        if old.is_some() {
            let keep: HashSet<u32> = g.orphans.keys().copied().collect();
            g.itts.retain(|itt, c| *c != cid || keep.contains(itt));
        }
        (member, old.and_then(|s| s.wake))
    }

    /// Set how connection `cid` (member `member`) is woken.
    pub(crate) fn set_wake(&self, cid: u16, member: u64, wake: Arc<dyn Wake>) {
        if let Some(s) = self.lock().conns.get_mut(&cid) {
            if s.member == member {
                s.wake = Some(wake);
            }
        }
    }

    /// Connection `cid` (member `member`) is gone: its task tags are free, requests
    /// it left held are consumed (at ErrorRecoveryLevel 2 remembered as lost until
    /// `retain_until`). Returns how many connections remain (a connection that
    /// reinstated its CID stays).
    pub(crate) fn leave(&self, cid: u16, member: u64, retain_until: Instant) -> usize {
        let mut g = self.lock();
        let mine = g.conns.get(&cid).is_some_and(|s| s.member == member);
        let mut wakes = Vec::new();
        let mut aborted = Vec::new();
        if mine {
            let slot = g.conns.remove(&cid).unwrap_or_default();
            // Aborts passed to it and not acted on: its tasks ended with it, or
            // (ErrorRecoveryLevel 2) wait as orphans, which are aborted here.
            for a in slot.aborts {
                let gone: Vec<u32> = g
                    .orphans
                    .iter()
                    .filter(|(itt, o)| a.takes_orphan(**itt, o))
                    .map(|(itt, _)| *itt)
                    .collect();
                for itt in &gone {
                    aborted.extend(g.orphans.remove(itt));
                    g.itts.remove(itt);
                }
                // ABORT TASK: whether the task was found; a task set or reset
                // is done either way.
                let done = !gone.is_empty() || !matches!(a.what, Aborts::Task(_));
                let from = a
                    .from
                    .and_then(|(c, m)| g.conns.get_mut(&c).filter(|s| s.member == m));
                if let Some(s) = from {
                    s.answers.push((a.tmf_itt, done));
                    wakes.extend(s.wake.clone());
                }
            }
            // Tags of orphaned tasks stay claimed until reassigned or expired.
            let keep: HashSet<u32> = g.orphans.keys().copied().collect();
            g.itts.retain(|itt, c| *c != cid || keep.contains(itt));
            let gone: Vec<u32> = g
                .held
                .iter()
                .filter(|(_, (c, _))| *c == cid)
                .map(|(sn, _)| *sn)
                .collect();
            let erl2 = self.params.error_recovery_level == 2;
            for sn in gone {
                g.held.remove(&sn);
                g.discard.insert(sn);
                if erl2 && g.lost.len() < MAX_LOST {
                    g.lost.insert(sn, retain_until);
                }
            }
            self.count_waiting(&g);
        }
        let left = g.conns.len();
        drop(g);
        for o in aborted {
            o.abort();
        }
        for w in wakes {
            w.wake();
        }
        left
    }

    /// Ask connection `cid` to close for `why`; its wake, `None` when no such CID.
    /// With `recover`, its tasks stay for reassignment (Logout reason 2 at
    /// ErrorRecoveryLevel 2).
    pub(crate) fn request_close(
        &self,
        cid: u16,
        why: &str,
        recover: bool,
    ) -> Option<Option<Arc<dyn Wake>>> {
        let mut g = self.lock();
        let s = g.conns.get_mut(&cid)?;
        s.close = Some((why.to_string(), recover));
        Some(s.wake.clone())
    }

    /// Ask every connection but `cid` to close; their wakes.
    pub(crate) fn request_close_others(&self, cid: u16, why: &str) -> Vec<Arc<dyn Wake>> {
        let mut g = self.lock();
        let mut wakes = Vec::new();
        for (c, s) in g.conns.iter_mut() {
            if *c != cid {
                s.close = Some((why.to_string(), false));
                wakes.extend(s.wake.clone());
            }
        }
        wakes
    }

    /// Why connection `cid` (member `member`) must close, if it must: asked to, or
    /// replaced by a connection that reinstated its CID; and whether its tasks stay
    /// for recovery (a reinstated CID's do, RFC 7143 §6.2.2 at level 2).
    pub(crate) fn close_requested(&self, cid: u16, member: u64) -> Option<(String, bool)> {
        match self.lock().conns.get(&cid) {
            Some(s) if s.member == member => s.close.clone(),
            Some(_) => Some((
                "connection reinstated by a new login with its CID".into(),
                true,
            )),
            None => Some(("removed from the session".into(), false)),
        }
    }

    /// ErrorRecoveryLevel 2: connection `cid` failed; its tasks stay, without
    /// allegiance, until reassigned or their deadline passes. Their tags stay
    /// claimed (orphans that already answered do not hold a tag).
    pub(crate) fn orphan(&self, cid: u16, tasks: Vec<(u32, Orphan)>) {
        let mut g = self.lock();
        for (itt, o) in tasks {
            if o.holds_tag() {
                g.itts.insert(itt, cid);
            }
            g.orphans.insert(itt, o);
        }
    }

    /// TASK REASSIGN of task `itt` to connection `cid`: the orphan, its tag now
    /// claimed for `cid`.
    /// Its read data no longer counts here: the connection that resumes it counts
    /// it again when it answers.
    pub(crate) fn take_orphan(&self, itt: u32, cid: u16) -> Result<Orphan, NotReassignable> {
        let mut g = self.lock();
        match g.orphans.remove(&itt) {
            Some(o) => {
                if o.holds_tag() {
                    g.itts.insert(itt, cid);
                }
                drop(g);
                self.unretain(o.retained_bytes());
                Ok(o)
            }
            None if g.itts.contains_key(&itt) => Err(NotReassignable::StillAllegiant),
            None => Err(NotReassignable::NoTask),
        }
    }

    /// A reset: take out the running orphans (of LU `lun`, or all), their tags
    /// freed, for the caller to abort. Answered ones stay (their command
    /// completed before the reset; a reassignment sends that status again).
    pub(crate) fn take_running_orphans(&self, lun: Option<&crate::registry::Lun>) -> Vec<Orphan> {
        let mut g = self.lock();
        let gone: Vec<u32> = g
            .orphans
            .iter()
            .filter(|(_, o)| o.holds_tag() && lun.is_none_or(|l| o.runs_on(l)))
            .map(|(i, _)| *i)
            .collect();
        let mut out = Vec::new();
        for itt in gone {
            if let Some(o) = g.orphans.remove(&itt) {
                g.itts.remove(&itt);
                out.push(o);
            }
        }
        out
    }

    /// Past the retained-data cap: shed the read data of the oldest answered
    /// orphan (`connection/erl2.rs`, `Done::shed`); the bytes it counted (still
    /// counted: the caller gives them back), 0 when no orphan has any.
    pub(crate) fn shed_oldest_orphan(&self) -> usize {
        let mut g = self.lock();
        let oldest = g
            .orphans
            .iter()
            .filter_map(|(i, o)| o.shed_order().map(|k| (k, *i)))
            .min()
            .map(|(_, i)| i);
        oldest
            .and_then(|i| g.orphans.get_mut(&i))
            .map_or(0, Orphan::shed)
    }

    /// ABORT TASK of task `a.what`, received on connection `a.from` where it does
    /// not run (see [`RemoteAbort`]).
    pub(crate) fn abort_elsewhere(&self, a: RemoteAbort) -> AbortElsewhere {
        let Aborts::Task(itt) = a.what else {
            return AbortElsewhere::NoTask;
        };
        let mut g = self.lock();
        if g.orphans.get(&itt).is_some_and(Orphan::holds_tag) {
            if let Some(o) = g.orphans.remove(&itt) {
                if o.runs_on_lun(a.lun) {
                    g.itts.remove(&itt);
                    return AbortElsewhere::Orphan(o);
                }
                g.orphans.insert(itt, o);
            }
            return AbortElsewhere::NoTask;
        }
        let Some(owner) = g.itts.get(&itt).copied() else {
            // Released in CmdSN order to another connection and not dispatched
            // there yet: it never runs (its CmdSN stays consumed).
            for slot in g.conns.values_mut() {
                if let Some(i) = slot.ready.iter().position(|p| a.takes_request(p)) {
                    slot.ready.remove(i);
                    self.count_waiting(&g);
                    return AbortElsewhere::Dropped;
                }
            }
            return AbortElsewhere::NoTask;
        };
        if a.from.is_some_and(|(c, _)| c == owner) {
            return AbortElsewhere::NoTask;
        }
        match g.conns.get_mut(&owner) {
            Some(slot) => {
                slot.aborts.push(a);
                self.poked.store(true, Ordering::Release);
                AbortElsewhere::Passed(slot.wake.clone())
            }
            None => AbortElsewhere::NoTask,
        }
    }

    /// A task set function or a reset (`a.what` is [`Aborts::Lun`] or
    /// [`Aborts::All`]) for every connection of the session but the asking one
    /// (`a.from`; every connection when `None`, another session's LOGICAL UNIT
    /// RESET): released commands it covers that no connection dispatched yet are
    /// dropped (they never run), and the request is passed to each connection.
    /// Returns how many connections were asked (each answers once, or `leave`
    /// does for it) and their wakes, to call after the return.
    pub(crate) fn abort_on_others(&self, a: RemoteAbort) -> (usize, Vec<Arc<dyn Wake>>) {
        let mut g = self.lock();
        let mut asked = 0;
        let mut wakes = Vec::new();
        for (cid, slot) in g.conns.iter_mut() {
            slot.ready.retain(|p| !a.takes_request(p));
            if a.from.is_some_and(|(c, _)| c == *cid) {
                continue;
            }
            slot.aborts.push(a);
            asked += 1;
            wakes.extend(slot.wake.clone());
        }
        if asked > 0 {
            self.poked.store(true, Ordering::Release);
        }
        (asked, wakes)
    }

    /// Whether another connection or session left this session's connections
    /// something to abort (checked by connections of a session no other
    /// connection joined, which skip the lock otherwise).
    pub(crate) fn poked(&self) -> bool {
        self.poked.load(Ordering::Acquire)
    }

    /// Aborts passed to `cid` (member `member`).
    pub(crate) fn take_abort_requests(&self, cid: u16, member: u64) -> Vec<RemoteAbort> {
        let mut g = self.lock();
        let out = match g.conns.get_mut(&cid) {
            Some(s) if s.member == member && !s.aborts.is_empty() => std::mem::take(&mut s.aborts),
            _ => Vec::new(),
        };
        if g.conns.values().all(|s| s.aborts.is_empty()) {
            self.poked.store(false, Ordering::Release);
        }
        out
    }

    /// The task's connection answered a [`RemoteAbort`]: hand the answer to the
    /// asking connection; its wake (none when it is gone or nobody waits).
    pub(crate) fn answer_abort(&self, a: &RemoteAbort, aborted: bool) -> Option<Arc<dyn Wake>> {
        let (cid, member) = a.from?;
        let mut g = self.lock();
        let s = g.conns.get_mut(&cid).filter(|s| s.member == member)?;
        s.answers.push((a.tmf_itt, aborted));
        s.wake.clone()
    }

    /// Answers to ABORT TASKs connection `cid` (member `member`) passed on.
    pub(crate) fn take_abort_answers(&self, cid: u16, member: u64) -> Vec<(u32, bool)> {
        let mut g = self.lock();
        match g.conns.get_mut(&cid) {
            Some(s) if s.member == member && !s.answers.is_empty() => {
                std::mem::take(&mut s.answers)
            }
            _ => Vec::new(),
        }
    }

    /// Whether CmdSN `sn` was a command lost with its failed connection (taken:
    /// it runs once).
    pub(crate) fn take_lost(&self, sn: SerialNumber) -> bool {
        self.lock().lost.remove(&sn.get()).is_some()
    }

    /// CmdSNs remembered as lost.
    #[cfg(test)]
    pub(crate) fn lost(&self) -> usize {
        self.lock().lost.len()
    }

    /// Orphaned tasks waiting for reassignment.
    #[cfg(test)]
    pub(crate) fn orphans(&self) -> usize {
        self.lock().orphans.len()
    }

    /// The last connection failed at ErrorRecoveryLevel 2: the session stays until
    /// `l.until` for a connection to come back.
    pub(crate) fn linger(&self, l: Lingering) {
        self.lock().lingering = Some(l);
    }

    /// Whether the session has no connection and waits for one (see [`Self::linger`]).
    pub(crate) fn is_lingering(&self) -> bool {
        self.lock().lingering.is_some()
    }

    /// The earliest Time2Retain deadline of the session: an orphan's, or the
    /// session's own when it has no connection.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let g = self.lock();
        let o = g.orphans.values().map(Orphan::deadline);
        let l = g.lingering.as_ref().map(|l| l.until);
        let c = g.lost.values().copied();
        o.chain(l).chain(c).min()
    }

    /// Take out what Time2Retain ended by `now`: orphaned tasks past their deadline
    /// (their tags are freed) and, when no connection came back in time, the
    /// session itself with every orphan left.
    pub(crate) fn expire(&self, now: Instant) -> Expired {
        let mut g = self.lock();
        let mut out = Expired::default();
        let ended = g.lingering.as_ref().is_some_and(|l| l.until <= now);
        let due: Vec<u32> = g
            .orphans
            .iter()
            .filter(|(_, o)| ended || o.deadline() <= now)
            .map(|(itt, _)| *itt)
            .collect();
        for itt in due {
            if let Some(o) = g.orphans.remove(&itt) {
                if o.holds_tag() {
                    g.itts.remove(&itt);
                }
                out.orphans.push(o);
            }
        }
        if ended {
            out.ended = g.lingering.take();
            g.lost.clear();
        } else if !g.lost.is_empty() {
            g.lost.retain(|_, until| *until > now);
        }
        drop(g);
        self.unretain(out.orphans.iter().map(Orphan::retained_bytes).sum());
        out
    }

    /// The session ends now (a reinstatement replaced it while it had no
    /// connection): every orphan, and what ends the session.
    pub(crate) fn end(&self) -> Expired {
        let mut g = self.lock();
        g.itts.clear();
        g.lost.clear();
        let out = Expired {
            orphans: g.orphans.drain().map(|(_, o)| o).collect(),
            ended: g.lingering.take(),
        };
        drop(g);
        self.unretain(out.orphans.iter().map(Orphan::retained_bytes).sum());
        out
    }

    /// Requests other connections released for `cid` (member `member`), in CmdSN
    /// order.
    pub(crate) fn take_ready(&self, cid: u16, member: u64) -> VecDeque<Pdu> {
        let mut g = self.lock();
        let ready = match g.conns.get_mut(&cid) {
            Some(s) if s.member == member => std::mem::take(&mut s.ready),
            _ => return VecDeque::new(),
        };
        self.count_waiting(&g);
        ready
    }

    /// A non-immediate request with CmdSN `sn` arrived on `cid`; `window` is the
    /// CmdSN window (MaxCmdSN = ExpCmdSN + window - 1). Out-of-window requests are
    /// ignored (RFC 7143 §4.2.2.1).
    pub(crate) fn order(&self, cid: u16, sn: SerialNumber, pdu: Pdu, window: u32) -> Released {
        let mut out = Released::default();
        let mut g = self.lock();
        let exp = g.exp_cmd_sn;
        let max = exp.plus(window.saturating_sub(1));
        if sn == exp {
            g.exp_cmd_sn = sn.next();
            // Requests released to this connection earlier come first.
            if let Some(slot) = g.conns.get_mut(&cid) {
                out.mine.extend(slot.ready.drain(..));
            }
            out.mine.push(pdu);
        } else if sn.in_window(exp, max) {
            if !g.discard.contains(&sn.get()) {
                g.held.entry(sn.get()).or_insert((cid, pdu));
                self.count_waiting(&g);
            }
            return out;
        } else {
            return out;
        }
        Self::release(&mut g, cid, &mut out);
        // ExpCmdSN before the waiting count (see `capacity_max_cmd_sn`).
        self.exp.store(g.exp_cmd_sn.get(), Ordering::Release);
        self.count_waiting(&g);
        drop(g);
        out
    }

    /// Move ExpCmdSN over every held or discarded CmdSN that now follows it.
    fn release(g: &mut Inner, cid: u16, out: &mut Released) {
        loop {
            let sn = g.exp_cmd_sn;
            if g.discard.remove(&sn.get()) {
                g.exp_cmd_sn = sn.next();
                continue;
            }
            let Some((owner, pdu)) = g.held.remove(&sn.get()) else {
                break;
            };
            g.exp_cmd_sn = sn.next();
            if owner == cid {
                out.mine.push(pdu);
            } else if let Some(slot) = g.conns.get_mut(&owner) {
                slot.ready.push_back(pdu);
                if let Some(w) = &slot.wake {
                    if !out.wakes.iter().any(|x| Arc::ptr_eq(x, w)) {
                        out.wakes.push(w.clone());
                    }
                }
            }
        }
    }

    /// ABORT TASK for a command not received yet (RFC 7143 §11.5.1): a RefCmdSN in
    /// the window and before the TMF's CmdSN is consumed when it arrives.
    pub(crate) fn abort_queued(
        &self,
        ref_sn: SerialNumber,
        tmf_sn: SerialNumber,
        window: u32,
    ) -> bool {
        let mut g = self.lock();
        let exp = g.exp_cmd_sn;
        let max = exp.plus(window.saturating_sub(1));
        if !ref_sn.in_window(exp, max) || !ref_sn.lt(tmf_sn) {
            return false;
        }
        g.held.remove(&ref_sn.get());
        g.discard.insert(ref_sn.get());
        self.count_waiting(&g);
        true
    }

    /// Claim task tag `itt` for `cid`; false when a live task of the session has it.
    pub(crate) fn claim_itt(&self, itt: u32, cid: u16) -> bool {
        let mut g = self.lock();
        match g.itts.entry(itt) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(cid);
                true
            }
        }
    }

    /// Whether a live task of the session has tag `itt`.
    pub(crate) fn itt_in_use(&self, itt: u32) -> bool {
        self.lock().itts.contains_key(&itt)
    }

    /// Task `itt` ended.
    pub(crate) fn release_itt(&self, itt: u32) {
        self.lock().itts.remove(&itt);
    }

    /// Every task of `cid` ended.
    pub(crate) fn release_itts_of(&self, cid: u16) {
        let mut g = self.lock();
        let keep: HashSet<u32> = g.orphans.keys().copied().collect();
        g.itts.retain(|itt, c| *c != cid || keep.contains(itt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_proto::pdu::NopOut;
    use iscsi_proto::{Itt, LunField, Ttt};
    use std::sync::atomic::AtomicUsize;

    /// The fake clock's zero; the one place these tests read the real clock.
    #[allow(clippy::disallowed_methods)]
    fn clock() -> Instant {
        Instant::now()
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn nop(sn: u32) -> Pdu {
        Pdu::NopOut(NopOut {
            immediate: false,
            lun: LunField::default(),
            itt: Itt(sn),
            ttt: Ttt::RESERVED,
            cmd_sn: SerialNumber(sn),
            exp_stat_sn: SerialNumber(0),
            data: bytes::Bytes::new(),
        })
    }

    fn sns(v: &[Pdu]) -> Vec<u32> {
        v.iter()
            .map(|p| match p {
                Pdu::NopOut(n) => n.cmd_sn.get(),
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn requests_are_released_in_cmd_sn_order_across_connections() {
        let (s, _) = SharedSession::new(SessionParams::default(), SerialNumber(1), 1);
        let (m2, old) = s.join(2);
        assert!(old.is_none());
        let w2 = Arc::new(Count(AtomicUsize::new(0)));
        s.set_wake(2, m2, w2.clone());
        // 3 and 2 on connection 2 first, then 4 on 1: all held behind 1.
        assert!(s.order(2, SerialNumber(3), nop(3), 128).mine.is_empty());
        assert!(s.order(2, SerialNumber(2), nop(2), 128).mine.is_empty());
        assert!(s.order(1, SerialNumber(4), nop(4), 128).mine.is_empty());
        // 1 arrives on connection 1: it gets 1 and 4; 2 and 3 are queued for
        // connection 2, which is woken once. (Released in CmdSN order; each
        // connection dispatches its own in that order.)
        let r = s.order(1, SerialNumber(1), nop(1), 128);
        assert_eq!(sns(&r.mine), vec![1, 4]);
        assert_eq!(r.wakes.len(), 1);
        r.wakes[0].wake();
        assert_eq!(w2.0.load(Ordering::SeqCst), 1);
        assert_eq!(sns(&Vec::from(s.take_ready(2, m2))), vec![2, 3]);
        assert_eq!(s.exp_cmd_sn(), SerialNumber(5));
        // Duplicates and requests beyond the window are ignored.
        assert!(s.order(1, SerialNumber(3), nop(3), 128).mine.is_empty());
        assert!(s
            .order(1, SerialNumber(5 + 128), nop(0), 128)
            .mine
            .is_empty());
        assert_eq!(s.exp_cmd_sn(), SerialNumber(5));
    }

    #[test]
    fn itts_are_unique_per_session_and_freed_with_their_connection() {
        let (s, _) = SharedSession::new(SessionParams::default(), SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        assert!(s.claim_itt(7, 1));
        assert!(!s.claim_itt(7, 2));
        assert!(s.claim_itt(8, 2));
        // A stale member (reinstated CID) leaving changes nothing.
        let now = clock();
        assert_eq!(s.leave(2, m2 + 100, now), 2);
        assert_eq!(s.leave(2, m2, now), 1);
        assert!(s.claim_itt(8, 1));
        s.release_itt(7);
        assert!(s.claim_itt(7, 1));
    }

    /// MaxCmdSN (computed without the lock) leaves room for requests held ahead
    /// of a gap and released to a connection but not yet taken, and never goes
    /// below what was advertised.
    #[test]
    fn max_cmd_sn_counts_waiting_requests_and_never_moves_back() {
        let (s, _) = SharedSession::new(SessionParams::default(), SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        assert_eq!(s.capacity_max_cmd_sn(0, 8), SerialNumber(8));
        // Two requests held behind the missing CmdSN 1: 1 + 6 - 1 = 6 < 8, kept 8.
        assert!(s.order(2, SerialNumber(3), nop(3), 8).mine.is_empty());
        assert!(s.order(2, SerialNumber(2), nop(2), 8).mine.is_empty());
        assert_eq!(s.capacity_max_cmd_sn(0, 8), SerialNumber(8));
        // 1 arrives: ExpCmdSN 4; 2 and 3 wait for connection 2; one task here:
        // room 8 - 3 = 5, 4 + 5 - 1 = 8.
        let r = s.order(1, SerialNumber(1), nop(1), 8);
        assert_eq!(sns(&r.mine), vec![1]);
        assert_eq!(s.capacity_max_cmd_sn(1, 8), SerialNumber(8));
        // Connection 2 takes them: room 7, 4 + 7 - 1 = 10.
        assert_eq!(s.take_ready(2, m2).len(), 2);
        assert_eq!(s.capacity_max_cmd_sn(1, 8), SerialNumber(10));
        // A full window would close (ExpCmdSN - 1), but 10 was advertised.
        assert_eq!(s.capacity_max_cmd_sn(8, 8), SerialNumber(10));
    }

    #[test]
    fn a_leaving_connection_s_held_requests_are_consumed() {
        let (s, _) = SharedSession::new(SessionParams::default(), SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        assert!(s.order(2, SerialNumber(2), nop(2), 128).mine.is_empty());
        assert!(s.order(1, SerialNumber(3), nop(3), 128).mine.is_empty());
        s.leave(2, m2, clock());
        let r = s.order(1, SerialNumber(1), nop(1), 128);
        assert_eq!(sns(&r.mine), vec![1, 3]);
        assert_eq!(s.exp_cmd_sn(), SerialNumber(4));
    }

    #[test]
    fn lost_cmd_sns_are_forgotten_at_time2retain_and_session_end_and_bounded() {
        let params = SessionParams {
            error_recovery_level: 2,
            ..SessionParams::default()
        };
        let t0 = clock();
        let until = t0 + std::time::Duration::from_secs(20);
        // Connection 2 fails holding CmdSNs 2 and 3 behind the gap at 1.
        let (s, _) = SharedSession::new(params, SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        assert!(s.order(2, SerialNumber(2), nop(2), 128).mine.is_empty());
        assert!(s.order(2, SerialNumber(3), nop(3), 128).mine.is_empty());
        s.leave(2, m2, until);
        assert_eq!(s.lost(), 2);
        assert_eq!(s.next_deadline(), Some(until));
        // Resent in time: it runs once.
        assert!(s.take_lost(SerialNumber(2)));
        assert!(!s.take_lost(SerialNumber(2)));
        // Time2Retain passes: the other is forgotten (and no deadline is left).
        assert!(s
            .expire(until - std::time::Duration::from_secs(1))
            .orphans
            .is_empty());
        assert_eq!(s.lost(), 1);
        s.expire(until);
        assert_eq!(s.lost(), 0);
        assert!(!s.take_lost(SerialNumber(3)));
        assert_eq!(s.next_deadline(), None);
        // The session ends: forgotten at once.
        let (s, _) = SharedSession::new(params, SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        s.order(2, SerialNumber(5), nop(5), 128);
        s.leave(2, m2, until);
        assert_eq!(s.lost(), 1);
        s.end();
        assert_eq!(s.lost(), 0);
        // Bounded, however many a failed connection held.
        let n = MAX_LOST as u32 + 50;
        let (s, _) = SharedSession::new(params, SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        for sn in 2..n + 2 {
            s.order(2, SerialNumber(sn), nop(sn), n + 8);
        }
        s.leave(2, m2, until);
        assert_eq!(s.lost(), MAX_LOST);
        // Every one of them is consumed all the same: the gap closes.
        let r = s.order(1, SerialNumber(1), nop(1), n + 8);
        assert_eq!(sns(&r.mine), vec![1]);
        assert_eq!(s.exp_cmd_sn(), SerialNumber(n + 2));
    }

    #[test]
    fn abort_of_a_command_released_to_another_connection_drops_it() {
        let (s, m1) = SharedSession::new(SessionParams::default(), SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        let cmd = Pdu::ScsiCommand(iscsi_proto::pdu::ScsiCommand {
            immediate: false,
            final_bit: true,
            read: true,
            write: false,
            attr: iscsi_proto::pdu::TaskAttr::Simple,
            lun: LunField::from_lun(1),
            itt: Itt(0x42),
            expected_data_transfer_length: 512,
            cmd_sn: SerialNumber(2),
            exp_stat_sn: SerialNumber(0),
            cdb: bytes::Bytes::from_static(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            data: bytes::Bytes::new(),
        });
        // CmdSN 2 on connection 2 waits for 1; 1 on connection 1 releases it to 2.
        assert!(s.order(2, SerialNumber(2), cmd, 128).mine.is_empty());
        s.order(1, SerialNumber(1), nop(1), 128);
        let ask = |lun| RemoteAbort {
            what: Aborts::Task(0x42),
            lun,
            from: Some((1, m1)),
            tmf_itt: 7,
        };
        // Another LUN: not that command.
        assert!(matches!(s.abort_elsewhere(ask(0)), AbortElsewhere::NoTask));
        assert!(matches!(s.abort_elsewhere(ask(1)), AbortElsewhere::Dropped));
        assert!(s.take_ready(2, m2).is_empty());
        assert_eq!(s.exp_cmd_sn(), SerialNumber(3));
        assert!(matches!(s.abort_elsewhere(ask(1)), AbortElsewhere::NoTask));
    }

    #[test]
    fn a_task_set_abort_drops_released_commands_and_reaches_every_other_connection() {
        let (s, m1) = SharedSession::new(SessionParams::default(), SerialNumber(1), 1);
        let (m2, _) = s.join(2);
        let (m3, _) = s.join(3);
        let read = |sn: u32, lun: u64| {
            Pdu::ScsiCommand(iscsi_proto::pdu::ScsiCommand {
                immediate: false,
                final_bit: true,
                read: true,
                write: false,
                attr: iscsi_proto::pdu::TaskAttr::Simple,
                lun: LunField::from_lun(lun),
                itt: Itt(0x40 + sn),
                expected_data_transfer_length: 512,
                cmd_sn: SerialNumber(sn),
                exp_stat_sn: SerialNumber(0),
                cdb: bytes::Bytes::from_static(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
                data: bytes::Bytes::new(),
            })
        };
        // CmdSN 2 (LUN 1) and 3 (LUN 0) released to connection 2, not taken yet.
        s.order(2, SerialNumber(2), read(2, 1), 128);
        s.order(2, SerialNumber(3), read(3, 0), 128);
        s.order(1, SerialNumber(1), nop(1), 128);
        let a = RemoteAbort {
            what: Aborts::Lun,
            lun: 1,
            from: Some((1, m1)),
            tmf_itt: 9,
        };
        let (asked, _) = s.abort_on_others(a);
        assert_eq!(asked, 2);
        assert!(s.poked());
        // The LUN 1 command never runs; the other one does.
        let left = Vec::from(s.take_ready(2, m2));
        assert!(matches!(&left[..], [Pdu::ScsiCommand(c)] if c.cmd_sn == SerialNumber(3)));
        assert_eq!(s.take_abort_requests(2, m2), vec![a]);
        assert!(s.poked(), "connection 3 has not taken its request");
        assert_eq!(s.take_abort_requests(3, m3), vec![a]);
        assert!(!s.poked());
        // Each answer reaches the asking connection (none here has a wake).
        assert!(s.answer_abort(&a, true).is_none());
        assert!(s.answer_abort(&a, true).is_none());
        assert_eq!(s.take_abort_answers(1, m1), vec![(9, true), (9, true)]);
        // A request not taken when its connection leaves is answered by `leave`.
        s.abort_on_others(a);
        s.leave(3, m3, clock());
        assert_eq!(s.take_abort_answers(1, m1), vec![(9, true)]);
        assert_eq!(s.take_abort_requests(2, m2), vec![a]);
        // Another session's reset (nobody waits) reaches every connection.
        let (n, _) = s.abort_on_others(RemoteAbort { from: None, ..a });
        assert_eq!(n, 2);
    }
}
