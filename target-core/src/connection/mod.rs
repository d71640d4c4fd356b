//! The `Connection` state machine: one iSCSI connection from its first login PDU to
//! logout, gluing iSCSI ([`iscsi_proto`]) to SCSI ([`scsi_sbc`]) over the shared
//! [`Core`].
//!
//! # Driving it
//!
//! The adapter owns the socket, the timers and the worker threads:
//!
//! - inputs: [`Connection::handle_input`] (bytes read), [`Connection::handle_io_completion`]
//!   (a storage request finished), [`Connection::handle_timeout`] (a deadline passed);
//! - outputs, drained after **every** input, in this order: [`Connection::poll_io`]
//!   (storage requests to run), [`Connection::poll_transmit`] (PDUs to write, header and
//!   data as separate buffers for a vectored write), [`Connection::poll_event`], then
//!   [`Connection::poll_timeout`] for the next deadline;
//! - once [`Connection::is_closed`] is true and everything polled has been written, the
//!   adapter closes the socket.
//!
//! Time is always an argument and must not go backwards.

mod auth;
mod data_in;
mod data_out;
mod discovery;
mod erl2;
mod full_feature;
pub mod io;
mod limits;
mod login;
mod nop_logout;
mod observe;
mod params;
mod recovery;
mod scsi;
mod task;
mod timer;
mod tmf;

pub use crate::mcs::Wake;
pub(crate) use erl2::Orphan;
pub use io::{DataInLayout, IoCompletion, IoRequest, IoTag, SegmentCrcs};
pub use observe::SessionLabels;
pub use recovery::{DATA_OUT_TIMEOUT, MAX_ERROR_RECOVERY_LEVEL, RETAIN_CAP};
pub(crate) use scsi::nexus_lost;

use crate::mcs::SharedSession;
use crate::registry::{ConnPdu, ConnStats, Target};
use crate::taghash::{TagMap, TagSet};
use crate::Core;
use bytes::BytesMut;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::keys::{SessionParams, SessionType, TargetLimits};
use iscsi_proto::pdu::{reject_reason, DecodeError, Digests, EncodedPdu, Pdu, Reject};
use iscsi_proto::SerialNumber;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timer::{Timer, TimerTable};

/// Where the connection comes from and arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The initiator's address.
    pub peer: SocketAddr,
    /// Our address on this connection (reported by SendTargets).
    pub local: SocketAddr,
}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// The target's side of every key negotiation.
    pub limits: TargetLimits,
    /// How long a login may take before the connection is dropped.
    pub login_timeout: Duration,
    /// How long a PDU whose first bytes arrived may take to arrive whole (slow
    /// sender); `None`: no limit.
    pub pdu_timeout: Option<Duration>,
    /// Bytes of write data being collected and read data being fetched that one
    /// connection may hold; a task over it waits until earlier ones end.
    pub max_buffered_bytes: u64,
    /// Daemon-wide connection admission (total, logins in progress per address).
    pub admission: crate::limits::AdmissionLimits,
    /// How many commands past ExpCmdSN the initiator may have queued (MaxCmdSN window).
    pub cmd_window: u32,
    /// Send a NOP-In ping after this much idle time (`None`: never).
    pub nop_interval: Option<Duration>,
    /// Drop the connection when a ping is unanswered this long.
    pub nop_timeout: Duration,
    /// Target portal group tag reported at login and by SendTargets.
    pub tpgt: u16,
    /// Refuse a new session with "out of resources" (0x0302) once the daemon has
    /// this many (`None`: no limit).
    pub max_sessions: Option<usize>,
    /// How long an initiator asked to log out (Async Message) has before the
    /// connection is dropped (AsyncEvent 1, Parameter3).
    pub logout_grace: Duration,
}

/// MaxConnections a session may negotiate when its target does not set it.
pub const DEFAULT_MAX_CONNECTIONS: u16 = 8;

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            // Up to 8 connections per session unless a target sets MaxConnections.
            // ErrorRecoveryLevel up to what is implemented (`recovery.rs`).
            limits: TargetLimits {
                max_connections: DEFAULT_MAX_CONNECTIONS,
                error_recovery_level: MAX_ERROR_RECOVERY_LEVEL,
                ..TargetLimits::default()
            },
            login_timeout: Duration::from_secs(15),
            pdu_timeout: Some(Duration::from_secs(30)),
            max_buffered_bytes: 32 << 20,
            admission: Default::default(),
            cmd_window: 128,
            nop_interval: None,
            nop_timeout: Duration::from_secs(30),
            tpgt: 1,
            max_sessions: None,
            logout_grace: Duration::from_secs(5),
        }
    }
}

/// Something the adapter may want to know or log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// Login finished; the connection is in full feature phase.
    LoggedIn {
        /// InitiatorName.
        initiator: String,
        /// TargetName (empty for discovery).
        target: String,
        /// Discovery or normal.
        session_type: SessionType,
    },
    /// The connection is closing; the reason is for logs.
    Closed {
        /// Why.
        reason: String,
    },
    /// This connection changed state other connections must act on (a target reset,
    /// a session reinstatement): wake every connection as after a management change
    /// (they compare [`Registry::generation`](crate::registry::Registry::generation),
    /// which has moved, and feed themselves an empty input).
    SharedStateChanged,
    /// The peer ran into a resource limit; the daemon logs one line naming it and
    /// the peer. What the connection answers (a login status, a close) follows.
    LimitHit {
        /// Which limit.
        limit: crate::limits::Limit,
        /// What happened, for the log.
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Login,
    FullFeature,
    Closed,
}

/// The session this connection belongs to, once logged in.
#[derive(Debug)]
struct Session {
    session_type: SessionType,
    target: Option<Arc<Target>>,
    sid: u64,
    params: SessionParams,
    initiator: String,
    /// The initiator's ISID: with `initiator` it names the SCSI initiator port, so the
    /// I_T nexus keeps its identity (reservations, unit attentions) across re-logins
    /// (scsi helper; RFC 7143 §4.4.1, SPC-4 5.13).
    isid: iscsi_proto::Isid,
    /// The target's reset generation this session last acted on
    /// ([`Core::target_resets`]).
    resets_seen: u64,
}

/// One iSCSI connection. See the [module documentation](self) for the driving protocol.
pub struct Connection {
    core: Arc<Core>,
    peer: PeerInfo,
    config: ConnConfig,
    phase: Phase,
    decoder: PduDecoder,
    tx_digests: Digests,
    login: login::LoginState,
    session: Option<Session>,
    /// The TSIH of our session once logged in (0 before).
    session_tsih: iscsi_proto::Tsih,
    /// We sent an Async Message asking for logout.
    logout_asked: bool,
    stat_sn: SerialNumber,
    exp_cmd_sn: SerialNumber,
    /// This connection's CID, and its member id in the session's shared state.
    cid: u16,
    member: u64,
    /// What the session's connections share: the CmdSN window, task tags (MC/S,
    /// `crate::mcs`). Set when the login completes.
    shared: Option<Arc<SharedSession>>,
    /// How the adapter is asked to feed this connection an empty input.
    wake: Option<Arc<dyn Wake>>,
    /// Left the session (close or drop); done once.
    detached: bool,
    /// Sent PDUs kept for SNACKs (ErrorRecoveryLevel > 0 only).
    retained: recovery::Retained,
    /// Finished tasks as answered, until their status is acknowledged
    /// (ErrorRecoveryLevel 2, `erl2.rs`).
    done: TagMap<u32, erl2::Done>,
    /// Tasks taken over by TASK REASSIGN: Data-In to leave out (ExpDataSN).
    resume_from: TagMap<u32, u32>,
    /// This connection failed at ErrorRecoveryLevel 2 and handed its tasks to the
    /// session: the session outlives it, even as its last connection.
    orphaned: bool,
    /// Live tasks by ITT, and running block operations by I/O tag: touched several
    /// times per command, so hashed cheaply (`crate::taghash`).
    tasks: task::Tasks,
    io_tags: TagMap<IoTag, u32>,
    /// Announcements to the other gateways of a shared medium in flight
    /// ([`scsi_sbc::BlockOp::LuEvent`]); their completions end no task.
    announcing: TagSet<IoTag>,
    /// Task management responses held until the other gateways heard of the reset.
    held_tmfs: Vec<tmf::HeldTmf>,
    /// Finished commands whose answers wait for their announcements likewise.
    held_tasks: Vec<tmf::HeldTask>,
    next_io_tag: u64,
    next_ttt: u32,
    text: discovery::TextState,
    io_out: VecDeque<IoRequest>,
    tx: VecDeque<EncodedPdu>,
    events: VecDeque<ConnEvent>,
    timers: TimerTable,
    stray_completions: u64,
    /// This session's I/O counters per LUN, taken from the target once
    /// (`--op stat`).
    lu_stats: TagMap<u64, Arc<crate::registry::LuStats>>,
    /// The target's LUN numbers and the `lun_generation` they were taken at: every
    /// command's context carries them, and a copy of our own saves a lock and two
    /// atomic counts on a line every connection of the target shares, per command.
    lun_list: (u64, Arc<[u64]>),
    /// Octets and PDUs this connection carried (`--mode connection --op stat`).
    conn_stats: Arc<ConnStats>,
    /// Where outgoing PDU headers are encoded ([`Pdu::encode_in`]): one allocation
    /// for many headers.
    header_arena: BytesMut,
    /// Monitoring counters: LU lookups, the latest `now`, store operations in flight.
    obs: crate::metrics::ConnMetrics,
    /// Where this connection stands with the resource limits (`limits.rs`).
    limits: limits::LimitState,
    /// The I_T nexus id once computed (0: not yet): a hash over the initiator name
    /// that every command needs two or three times, and that cannot change once the
    /// session is set.
    nexus_id: std::cell::Cell<u64>,
    /// The initiator port's id (the nexus id without the target port), set with
    /// `nexus_id`.
    initiator_port: std::cell::Cell<u64>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("phase", &self.phase)
            .finish()
    }
}

/// During login we accept data segments up to this size (RFC 7143 §13.12 default).
const LOGIN_MAX_DATA_SEGMENT: usize = 8192;

impl Connection {
    /// A new connection that has sent nothing yet.
    pub fn new(core: Arc<Core>, peer: PeerInfo, config: ConnConfig, now: Instant) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Login, now + config.login_timeout);
        let obs = crate::metrics::ConnMetrics::new(core.metrics.clone(), now);
        let mut c = Connection {
            core,
            peer,
            login: login::LoginState::new(config.limits.clone()),
            config,
            phase: Phase::Login,
            decoder: PduDecoder::new(LOGIN_MAX_DATA_SEGMENT),
            tx_digests: Digests::default(),
            session: None,
            session_tsih: iscsi_proto::Tsih(0),
            logout_asked: false,
            stat_sn: SerialNumber(0),
            exp_cmd_sn: SerialNumber(0),
            cid: 0,
            member: 0,
            shared: None,
            wake: None,
            detached: false,
            retained: Default::default(),
            done: TagMap::default(),
            resume_from: TagMap::default(),
            orphaned: false,
            tasks: task::Tasks::default(),
            io_tags: TagMap::default(),
            announcing: Default::default(),
            held_tmfs: Vec::new(),
            held_tasks: Vec::new(),
            next_io_tag: 1,
            next_ttt: 1,
            text: Default::default(),
            io_out: VecDeque::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            timers,
            stray_completions: 0,
            nexus_id: std::cell::Cell::new(0),
            initiator_port: std::cell::Cell::new(0),
            lu_stats: TagMap::default(),
            lun_list: (u64::MAX, Arc::from(&[][..])),
            conn_stats: Arc::default(),
            header_arena: BytesMut::new(),
            obs,
            limits: Default::default(),
        };
        c.admit();
        c
    }

    // ----- getters -----

    /// Whether the connection is over: write what was polled, then close the socket.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The peer this connection serves.
    pub fn peer(&self) -> PeerInfo {
        self.peer
    }

    /// Completions that arrived for tasks no longer known (aborted, connection reset).
    pub fn stray_completions(&self) -> u64 {
        self.stray_completions
    }

    /// Whether the read data this connection sends only ever goes to its socket as
    /// the store gave it: no data digest is computed over it and, below
    /// ErrorRecoveryLevel 2, no task is handed to another connection (where a
    /// digest might be on) to be sent again. An adapter may then have the store lend
    /// its file's pages for large reads (`BlockStore::read_for_send`), bytes that
    /// only system calls may touch.
    pub fn reads_go_out_untouched(&self) -> bool {
        !self.tx_digests.data && self.error_recovery_level() < 2
    }

    /// How this connection cuts read data into Data-In PDUs, when it sends data
    /// digests: a store worker that reads data for it may then compute the digests
    /// of those segments ([`DataInLayout::crcs`]) and return them in the
    /// [`IoCompletion`]. `None` without a data digest (or before full feature phase).
    pub fn data_in_layout(&self) -> Option<DataInLayout> {
        (self.tx_digests.data && self.session.is_some()).then(|| self.data_in_cut())
    }

    /// How read data is cut into Data-In PDUs under the negotiated
    /// MaxRecvDataSegmentLength and MaxBurstLength (defaults before a session).
    fn data_in_cut(&self) -> DataInLayout {
        let params = self.session.as_ref().map(|s| s.params).unwrap_or_default();
        DataInLayout {
            segment: params.max_xmit_data_segment_length.max(512) as usize,
            burst: params.max_burst_length.max(512) as usize,
        }
    }

    /// Number of tasks in progress.
    pub fn tasks_in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// How to ask the adapter for an empty [`Connection::handle_input`] from another
    /// thread: another connection of the session released requests for this one or
    /// asked it to close (MC/S). Set it before the first input.
    pub fn set_waker(&mut self, wake: Arc<dyn Wake>) {
        if let Some(s) = &self.shared {
            s.set_wake(self.cid, self.member, wake.clone());
        }
        self.wake = Some(wake);
    }

    /// This connection's CID (0 before login).
    pub fn cid(&self) -> u16 {
        self.cid
    }

    // ----- inputs -----

    /// Feed bytes read from the socket. Whole PDUs are taken off the front of `buf`; a
    /// partial PDU stays for the next call.
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) {
        self.obs.now = now;
        self.check_shared_state(now);
        self.take_released(now);
        let before = buf.len();
        let mut took_pdu = false;
        while self.phase != Phase::Closed {
            match self.decoder.decode(buf) {
                Ok(Some(pdu)) => {
                    took_pdu = true;
                    self.retained.good_pdu();
                    match &pdu {
                        Pdu::ScsiCommand(_) => self.conn_stats.pdu(ConnPdu::Command),
                        Pdu::DataOut(_) => self.conn_stats.pdu(ConnPdu::DataOut),
                        _ => {}
                    }
                    self.handle_pdu(pdu, now)
                }
                Ok(None) => break,
                // ErrorRecoveryLevel > 0: the PDU is discarded, the connection stays.
                Err(DecodeError::HeaderDigest { .. }) if self.header_digest_error() => {
                    took_pdu = true
                }
                Err(e) if e.is_fatal() => {
                    if let DecodeError::DataSegmentTooLong { len, max } = e {
                        self.limit_hit(
                            crate::limits::Limit::DataSegment,
                            &format!("a PDU announced a {len}-byte data segment, over the {max} bytes we accept; connection dropped"),
                        );
                    }
                    self.close_for_recovery(&format!("{e}"));
                    break;
                }
                Err(e) => self.reject_decode_error(e),
            }
        }
        self.conn_stats
            .received(before.saturating_sub(buf.len()) as u64);
        self.track_partial_pdu(before, buf.len(), took_pdu, now);
        self.advance_waiting();
        self.check_data_out_timer(now);
    }

    /// A storage request finished.
    pub fn handle_io_completion(&mut self, c: IoCompletion, now: Instant) {
        self.obs.now = now;
        self.obs.io_done(c.tag);
        if let Some(s) = &self.shared {
            self.exp_cmd_sn = s.exp_cmd_sn();
        }
        match self.io_tags.remove(&c.tag) {
            Some(itt) => self.complete_io(itt, c.result, c.crcs),
            None if self.announcing.remove(&c.tag) => self.announced(c.tag),
            None => self.stray_completions += 1,
        }
        self.advance_waiting();
        self.check_data_out_timer(now);
    }

    /// A deadline from [`Connection::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.obs.now = now;
        if self.timers.is_expired(Timer::Login, now) {
            self.timers.stop(Timer::Login);
            if self.phase == Phase::Login {
                if !self.is_refused() {
                    let secs = self.config.login_timeout.as_secs_f64();
                    self.limit_hit(
                        crate::limits::Limit::LoginTime,
                        &format!("login not complete within {secs} s; connection dropped"),
                    );
                }
                self.close("login timed out");
            }
        }
        if self.timers.is_expired(Timer::PduIncomplete, now) {
            self.pdu_timed_out();
        }
        if self.timers.is_expired(Timer::NopInResponse, now) {
            self.close_for_recovery("NOP-In ping unanswered");
        }
        if self.timers.is_expired(Timer::NopInInterval, now) {
            self.send_nop_ping(now);
        }
        if self.timers.is_expired(Timer::LogoutWait, now) {
            self.close("initiator did not log out when asked");
        }
        if self.timers.is_expired(Timer::TmfWait, now) {
            self.tmf_wait_expired(now);
        }
        self.check_shared_state(now);
        self.check_data_out_timer(now);
    }

    /// Ask the initiator to log out (daemon shutdown, target removal): an Async
    /// Message, AsyncEvent 1 (RFC 7143 §11.9.1); the connection drops when it logs
    /// out or after [`ConnConfig::logout_grace`].
    pub fn request_logout(&mut self, now: Instant) {
        if self.phase == Phase::Login {
            return self.close("shutting down");
        }
        if self.phase != Phase::FullFeature || self.logout_asked {
            return;
        }
        self.logout_asked = true;
        let grace = self.config.logout_grace;
        let msg = Pdu::AsyncMessage(iscsi_proto::pdu::AsyncMessage {
            lun: Default::default(),
            stat_sn: self.take_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            async_event: 1,
            async_vcode: 0,
            parameter1: 0,
            parameter2: 0,
            parameter3: grace.as_secs().clamp(1, 3600) as u16,
            data: bytes::Bytes::new(),
        });
        self.send(msg);
        self.timers.set(Timer::LogoutWait, now + grace);
    }

    /// React to changes made elsewhere: the target was deleted or the session was
    /// logged out by the administrator or replaced by a reinstatement. Adapters feed
    /// an empty input when [`Registry::generation`](crate::registry::Registry::generation)
    /// moves, so this runs promptly even on a silent connection.
    fn check_shared_state(&mut self, now: Instant) {
        if let Some(sh) = &self.shared {
            if sh.joined() {
                if let Some((why, recover)) = sh.close_requested(self.cid, self.member) {
                    return self.close_with(&why, recover);
                }
            }
            self.exp_cmd_sn = sh.exp_cmd_sn();
        }
        let Some(s) = &self.session else {
            return;
        };
        let Some(t) = s.target.clone() else {
            return;
        };
        let seen = s.resets_seen;
        if t.logout_requested(s.sid) {
            if t.is_deleted() {
                self.request_logout(now);
            } else {
                // Reinstated or forced out: the session is gone, drop at once.
                return self.close("session logged out by the target");
            }
        }
        // Another session reset the target (RFC 7143 §11.5.1): a warm reset aborts
        // our tasks too (the initiator learns of it from the unit attention the reset
        // established), a cold reset drops every connection of the target.
        let resets = self.core.target_resets(t.tid);
        if resets.generation != seen {
            if resets.cold_since(seen) {
                return self.close("target cold reset by another session");
            }
            self.abort_all_tasks();
            if let Some(s) = &mut self.session {
                s.resets_seen = resets.generation;
            }
        }
    }

    /// The socket closed or failed. Its tasks end, or at ErrorRecoveryLevel 2 wait
    /// in the session for another connection to take them over (`erl2.rs`).
    pub fn handle_close(&mut self) {
        self.close_for_recovery("connection closed by peer");
    }

    // ----- outputs -----

    /// The next storage request to run.
    #[must_use]
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.io_out.pop_front()
    }

    /// The next PDU to write.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<EncodedPdu> {
        self.tx.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// When to call [`Connection::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        self.timers.next_timeout()
    }

    // ----- internals -----

    fn handle_pdu(&mut self, pdu: Pdu, now: Instant) {
        if self.phase == Phase::FullFeature {
            if let Some(iv) = self.config.nop_interval {
                self.timers.set(Timer::NopInInterval, now + iv);
                self.timers.stop(Timer::NopInResponse);
            }
        }
        match self.phase {
            Phase::Login => {
                if self.refuse_login(&pdu) {
                    return;
                }
                self.handle_login_phase(pdu, now);
                // testkit fix: the NOP-In interval used to be armed only by a PDU received
                // in full feature phase, so a connection that went quiet right after login
                // was never pinged. Arm it when login completes.
                if self.phase == Phase::FullFeature {
                    if let Some(iv) = self.config.nop_interval {
                        self.timers.set(Timer::NopInInterval, now + iv);
                    }
                }
            }
            Phase::FullFeature => {
                self.acknowledged(&pdu);
                self.handle_full_feature(pdu, now)
            }
            Phase::Closed => {}
        }
    }

    fn send(&mut self, pdu: Pdu) {
        self.send_with_crc(pdu, None);
    }

    /// [`Connection::send`] with the data segment's CRC32C already known.
    fn send_with_crc(&mut self, pdu: Pdu, data_crc: Option<u32>) {
        match &pdu {
            Pdu::DataIn(_) => self.conn_stats.pdu(ConnPdu::DataIn),
            Pdu::ScsiResponse(_) => self.conn_stats.pdu(ConnPdu::Response),
            _ => {}
        }
        let encoded = pdu.encode_in_with(self.tx_digests, &mut self.header_arena, data_crc);
        self.retain_sent(&pdu, &encoded);
        self.conn_stats.sent(encoded.len() as u64);
        self.tx.push_back(encoded);
    }

    fn max_cmd_sn(&self) -> SerialNumber {
        self.capacity_max_cmd_sn()
    }

    /// The StatSN to put in a status-carrying PDU; advances it.
    fn take_stat_sn(&mut self) -> SerialNumber {
        let s = self.stat_sn;
        self.stat_sn = s.next();
        s
    }

    fn reject(&mut self, reason: u8, header: bytes::Bytes) {
        self.core.metrics.rejected(reason);
        let stat_sn = self.take_stat_sn();
        let r = Pdu::Reject(Reject {
            reason,
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data_sn: 0,
            data: header,
        });
        self.send(r);
    }

    fn reject_pdu(&mut self, reason: u8, pdu: &Pdu) {
        let header = pdu.encode(Digests::default()).header.slice(..48);
        self.reject(reason, header);
    }

    fn reject_decode_error(&mut self, e: DecodeError) {
        match e {
            DecodeError::UnknownOpcode { header, .. } => {
                if self.phase == Phase::Login {
                    self.close("unknown opcode during login");
                } else {
                    self.reject(reject_reason::COMMAND_NOT_SUPPORTED, header)
                }
            }
            DecodeError::DataDigest { header, .. } => {
                // RFC 7143 §7.8: Reject, discard; a lost Data-Out cannot be asked for
                // again at ERL 0, so its task ends with "protocol service CRC error".
                // A discarded command leaves a CmdSN gap the initiator must plug
                // (§11.17.1), so nothing else changes.
                let data_out = header.first().is_some_and(|b| b & 0x3f == 0x05);
                let itt = header
                    .get(16..20)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                self.reject(reject_reason::DATA_DIGEST_ERROR, header.clone());
                // ErrorRecoveryLevel > 0: a recovery R2T asks for it again.
                if data_out && self.data_out_lost(&header) {
                    return;
                }
                if let (true, Some(itt)) = (data_out, itt) {
                    if self.tasks.contains_key(&itt) {
                        self.finish_task(itt, full_feature::iscsi_sense(0x47, 0x05));
                    }
                }
            }
            DecodeError::BadAhs => self.close("malformed AHS"),
            other => self.close(&format!("{other}")),
        }
    }

    fn close(&mut self, reason: &str) {
        self.close_with(reason, false)
    }

    /// The connection failed (rather than being logged out or closed on purpose):
    /// at ErrorRecoveryLevel 2 its tasks stay for reassignment.
    fn close_for_recovery(&mut self, reason: &str) {
        self.close_with(reason, true)
    }

    fn close_with(&mut self, reason: &str, recover: bool) {
        if self.phase == Phase::Closed {
            return;
        }
        self.core.metrics.closed(reason);
        // At ErrorRecoveryLevel 0 this connection's tasks end with it; the other
        // connections of the session keep theirs. At level 2 a failed connection's
        // tasks wait in the session (erl2.rs).
        if recover && self.phase == Phase::FullFeature {
            self.orphaned = self.orphan_tasks();
        }
        self.phase = Phase::Closed;
        self.release_admission();
        self.timers.stop(Timer::PduIncomplete);
        self.tasks.clear();
        self.forget_done();
        self.io_tags.clear();
        self.held_tasks.clear();
        self.release_retained();
        self.detach();
        self.events.push_back(ConnEvent::Closed {
            reason: reason.to_string(),
        });
    }

    fn send_nop_ping(&mut self, now: Instant) {
        self.timers.stop(Timer::NopInInterval);
        let ttt = self.alloc_ttt();
        let ping = Pdu::NopIn(iscsi_proto::pdu::NopIn {
            lun: Default::default(),
            itt: iscsi_proto::Itt::RESERVED,
            ttt,
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data: bytes::Bytes::new(),
        });
        self.send(ping);
        self.timers
            .set(Timer::NopInResponse, now + self.config.nop_timeout);
    }

    fn initiator_name(&self) -> &str {
        self.session
            .as_ref()
            .map(|s| s.initiator.as_str())
            .unwrap_or("")
    }

    fn alloc_ttt(&mut self) -> iscsi_proto::Ttt {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == u32::MAX {
            self.next_ttt = 1;
        }
        iscsi_proto::Ttt(t)
    }
}

impl Connection {
    /// Leave the session (once): the last connection ends it (the I_T nexus with its
    /// unit attentions and SPC-2 reservations, the `--op show` entry); otherwise only
    /// this connection goes from the session's records.
    fn detach(&mut self) {
        if self.detached {
            return;
        }
        self.detached = true;
        let remaining = self.shared.as_ref().map_or(0, |sh| {
            sh.leave(self.cid, self.member, self.obs.now + self.time2retain())
        });
        if remaining == 0 && self.orphaned {
            // ErrorRecoveryLevel 2: the session waits Time2Retain for a connection.
            if let (Some(sh), Some(s)) = (&self.shared, &self.session) {
                sh.linger(crate::mcs::Lingering {
                    until: self.obs.now + self.time2retain(),
                    sid: s.sid,
                    target: s.target.clone(),
                    nexus: self.nexus_id(),
                });
                if let Some(t) = &s.target {
                    t.remove_connection(s.sid, self.cid, &self.conn_stats);
                }
                self.core
                    .sessions
                    .connection_left(self.session_tsih, s.sid, true);
                return;
            }
        }
        if remaining == 0 {
            // The I_T nexus ends (scsi.rs hook).
            self.scsi_nexus_lost();
        }
        if let Some(s) = &self.session {
            if let Some(t) = &s.target {
                if remaining == 0 {
                    t.remove_session(s.sid);
                } else {
                    t.remove_connection(s.sid, self.cid, &self.conn_stats);
                }
            }
            self.core
                .sessions
                .connection_closed(self.session_tsih, s.sid);
        }
    }

    /// Dispatch requests another connection of the session released for this one.
    fn take_released(&mut self, now: Instant) {
        // Another session's LOGICAL UNIT RESET pokes a single-connection one.
        let Some(sh) = self.shared.clone().filter(|s| s.joined() || s.poked()) else {
            return;
        };
        for pdu in sh.take_ready(self.cid, self.member) {
            if self.phase != Phase::FullFeature {
                break;
            }
            self.dispatch_ordered(pdu, now);
        }
        if self.phase == Phase::FullFeature {
            self.remote_aborts(&sh);
        }
    }

    /// Claim task tag `itt` for the session; false when another task has it.
    fn claim_itt(&self, itt: u32) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.claim_itt(itt, self.cid))
    }

    /// Task `itt` ended.
    fn release_itt(&self, itt: u32) {
        if let Some(s) = &self.shared {
            s.release_itt(itt);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.release_admission();
        self.release_retained();
        // Sessions are registered with their target for `tgtadm --op show`; a connection
        // dropped without a close (adapter error path) must not leave a ghost behind.
        self.detach();
    }
}

#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod tests;
