//! [`Session`]: one initiator connection (a single-connection session) as a sans-IO
//! state machine.

use crate::config::Config;
use crate::error::Error;
use crate::login::LoginState;
use crate::sense::Sense;
use bytes::{Bytes, BytesMut};
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::keys::SessionParams;
use iscsi_proto::pdu::{
    AsyncMessage, DataIn, DataOut, Digests, EncodedPdu, LogoutRequest, NopIn, NopOut, Pdu, R2t,
    Reject, ScsiCommand, ScsiResponse, TaskAttr, TaskMgmtRequest, TaskMgmtResponse, TextRequest,
    TextResponse,
};
use iscsi_proto::text::{self, TextAssembler};
use iscsi_proto::{Itt, LunField, SerialNumber, Tsih, Ttt};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Login PDUs are being exchanged.
    Login,
    /// Commands may be submitted.
    FullFeature,
    /// A logout request is outstanding.
    LoggingOut,
    /// Logged out cleanly; close the socket.
    Closed,
    /// A fatal error happened; close the socket.
    Failed,
}

/// Data direction and payload of a SCSI command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirection {
    /// No data.
    None,
    /// Read up to this many bytes (Expected Data Transfer Length).
    Read(u32),
    /// Write these bytes (EDTL is their length).
    Write(Bytes),
}

/// A SCSI command to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Logical unit number.
    pub lun: u64,
    /// The CDB (up to 16 bytes; longer ones go in an extended-CDB AHS).
    pub cdb: Bytes,
    /// Data direction and payload.
    pub data: DataDirection,
    /// Task attribute.
    pub attr: TaskAttr,
    /// Check the read data's Data-In PDUs (order, offsets, length) but keep none
    /// of it: the completion's `data` is empty. For a load generator that does not
    /// look at what it reads: a read spread over several Data-In PDUs is then not
    /// gathered into one buffer (a second copy of every byte). At
    /// ErrorRecoveryLevel 1 and above the data is kept all the same (recovery
    /// places it by offset).
    pub discard_read_data: bool,
}

impl Command {
    /// A command with a simple task attribute.
    pub fn new(lun: u64, cdb: &[u8], data: DataDirection) -> Command {
        Command {
            lun,
            cdb: Bytes::copy_from_slice(cdb),
            data,
            attr: TaskAttr::Simple,
            discard_read_data: false,
        }
    }

    /// This command with [`Command::discard_read_data`] set.
    pub fn discarding_read_data(mut self) -> Command {
        self.discard_read_data = true;
        self
    }
}

/// How much less (or more) data moved than the EDTL announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Residual {
    /// Exactly the EDTL.
    #[default]
    None,
    /// This many bytes were not transferred (U bit).
    Underflow(u32),
    /// This many more bytes would have been transferred (O bit).
    Overflow(u32),
}

/// The outcome of one SCSI command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The task (its ITT).
    pub task: Itt,
    /// iSCSI response code (0: command completed at the target).
    pub response: u8,
    /// SCSI status (0 GOOD, 2 CHECK CONDITION, 8 BUSY, 0x18 RESERVATION CONFLICT...).
    pub status: u8,
    /// Sense data of a CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Read data as assembled from Data-In PDUs (empty for writes).
    pub data: Bytes,
    /// Residual of the data transfer.
    pub residual: Residual,
}

/// A Task Management Function (RFC 7143 §11.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmfFunction {
    /// 1: ABORT TASK (needs the referenced task).
    AbortTask,
    /// 2: ABORT TASK SET.
    AbortTaskSet,
    /// 3: CLEAR ACA.
    ClearAca,
    /// 4: CLEAR TASK SET.
    ClearTaskSet,
    /// 5: LOGICAL UNIT RESET.
    LogicalUnitReset,
    /// 6: TARGET WARM RESET.
    TargetWarmReset,
    /// 7: TARGET COLD RESET.
    TargetColdReset,
}

impl TmfFunction {
    fn code(self) -> u8 {
        match self {
            TmfFunction::AbortTask => 1,
            TmfFunction::AbortTaskSet => 2,
            TmfFunction::ClearAca => 3,
            TmfFunction::ClearTaskSet => 4,
            TmfFunction::LogicalUnitReset => 5,
            TmfFunction::TargetWarmReset => 6,
            TmfFunction::TargetColdReset => 7,
        }
    }
}

/// A target SendTargets reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredTarget {
    /// `TargetName`.
    pub name: String,
    /// Every `TargetAddress` (`host:port,tpgt`).
    pub addresses: Vec<String>,
}

/// What the session tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Login finished: commands may be submitted.
    LoginComplete {
        /// The session's TSIH.
        tsih: Tsih,
        /// What was negotiated (from our side: `max_recv_data_segment_length` is ours,
        /// `max_xmit_data_segment_length` the target's).
        params: SessionParams,
        /// Every key the target sent during login.
        target_keys: Vec<(String, String)>,
    },
    /// A SCSI command finished.
    CommandComplete(Completion),
    /// A command was rejected by the target (Reject PDU) and will not complete.
    CommandRejected {
        /// The task.
        task: Itt,
        /// Reject reason (RFC 7143 §11.17.1).
        reason: u8,
    },
    /// A command was ended by a task management function and will not complete.
    CommandAborted {
        /// The task.
        task: Itt,
    },
    /// A task management function finished.
    TaskManagement {
        /// The TMF's own task.
        task: Itt,
        /// The function.
        function: TmfFunction,
        /// Response code (0 complete, 1 no such task, 5 not supported...).
        response: u8,
    },
    /// SendTargets answered.
    Targets {
        /// The text request's task.
        task: Itt,
        /// The targets.
        targets: Vec<DiscoveredTarget>,
    },
    /// A NOP-Out ping of ours was answered.
    Pong {
        /// The ping's task.
        task: Itt,
        /// The echoed data.
        data: Bytes,
    },
    /// The target sent an Async Message (e.g. event 1: please log out).
    Async(AsyncMessage),
    /// A Reject that refers to no outstanding task.
    Rejected(Reject),
    /// Logout finished; close the socket.
    LoggedOut {
        /// Logout response code (0 success).
        response: u8,
    },
}

/// The CmdSN window of a session, shared by its connections (RFC 7143 §4.2.2.1).
#[derive(Debug)]
pub(crate) struct Window {
    /// CmdSN the next non-immediate request takes.
    pub(crate) cmd_sn: SerialNumber,
    pub(crate) exp_cmd_sn: SerialNumber,
    pub(crate) max_cmd_sn: SerialNumber,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            cmd_sn: SerialNumber(1),
            exp_cmd_sn: SerialNumber(1),
            max_cmd_sn: SerialNumber(1),
        }
    }
}

/// A request waiting for the CmdSN window to open.
#[derive(Debug)]
pub(crate) enum Queued {
    Command(ScsiCommand),
    Text(TextRequest),
    Nop(NopOut),
}

/// One outstanding SCSI command.
#[derive(Debug)]
pub(crate) struct ScsiTask {
    pub(crate) lun: LunField,
    pub(crate) cmd_sn: Option<SerialNumber>,
    edtl: u32,
    pub(crate) write: Bytes,
    /// Read data gathered from Data-In PDUs after the first one.
    pub(crate) data: BytesMut,
    /// The first Data-In's data, kept as the slice the decoder made of the read
    /// buffer: when one PDU carries all the data (MaxRecvDataSegmentLength covers the
    /// transfer) it becomes the completion's data without a copy.
    first: Bytes,
    /// Read data is counted, not kept ([`Command::discard_read_data`]).
    discard: bool,
    /// Bytes of read data counted and dropped.
    discarded: usize,
    pub(crate) next_data_sn: u32,
    next_r2t_sn: u32,
    /// ErrorRecoveryLevel > 0 bookkeeping (`recovery.rs`).
    pub(crate) rec: crate::recovery::TaskRecovery,
}

impl ScsiTask {
    pub(crate) fn edtl(&self) -> u32 {
        self.edtl
    }

    /// The first DataSN not received in order (ExpDataSN of a TASK REASSIGN): the
    /// oldest one asked for again, else the next one.
    pub(crate) fn exp_data_sn(&self) -> u32 {
        self.rec.first_missing().unwrap_or(self.next_data_sn)
    }

    /// Bytes of read data received so far.
    fn received(&self) -> usize {
        self.first.len() + self.data.len() + self.discarded
    }

    /// The read data gathered, for the completion.
    fn take_data(&mut self) -> Bytes {
        if self.data.is_empty() {
            std::mem::take(&mut self.first)
        } else {
            std::mem::take(&mut self.data).freeze()
        }
    }
}

/// Most buffers [`Session::recycle`] keeps for reuse.
const SPARE_BUFFERS: usize = 8;

/// Buffers smaller than this are not worth keeping: the allocator serves them
/// from its free lists, where a large one would be mapped and faulted in afresh.
const SPARE_MIN: usize = 64 * 1024;

/// What a non-SCSI task is.
#[derive(Debug)]
pub(crate) enum Other {
    Tmf {
        function: TmfFunction,
        lun: LunField,
        referenced: Option<Itt>,
        cmd_sn: SerialNumber,
    },
    Text {
        assembler: TextAssembler,
    },
    Nop,
    Logout,
    /// TASK REASSIGN of a task of a failed connection (`reassign.rs`).
    Reassign {
        task: Itt,
    },
}

/// During login both sides accept data segments up to 8192 bytes (RFC 7143 §13.12).
pub(crate) const LOGIN_MAX_DATA_SEGMENT: usize = 8192;

/// One initiator connection of a single-connection session. Drive it like the target
/// core's `Connection`:
///
/// - inputs: [`Session::handle_input`] (bytes read from the socket),
///   [`Session::handle_timeout`] (a deadline passed), and the requests
///   ([`Session::submit`], [`Session::send_targets`], [`Session::task_management`],
///   [`Session::ping`], [`Session::logout`]);
/// - outputs, drained after every input: [`Session::poll_transmit`] (PDUs to write,
///   header and data as separate buffers for a vectored write), [`Session::poll_event`],
///   then [`Session::poll_timeout`];
/// - once [`Session::state`] is `Closed` or `Failed` and everything polled has been
///   written, close the socket.
#[derive(Debug)]
pub struct Session {
    pub(crate) config: Config,
    pub(crate) state: State,
    pub(crate) login: LoginState,
    pub(crate) params: SessionParams,
    pub(crate) tsih: Tsih,
    /// This connection's CID.
    pub(crate) cid: u16,
    /// The session's CmdSN window, shared by its connections (MC/S).
    pub(crate) win: Arc<Mutex<Window>>,
    pub(crate) exp_stat_sn: SerialNumber,
    pub(crate) decoder: PduDecoder,
    pub(crate) tx_digests: Digests,
    rx: BytesMut,
    tx: VecDeque<EncodedPdu>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) queued: VecDeque<Queued>,
    pub(crate) scsi: HashMap<u32, ScsiTask>,
    /// Tasks of a failed connection to take over once logged in (`reassign.rs`).
    pub(crate) reassign: Vec<Itt>,
    /// ErrorRecoveryLevel > 0 bookkeeping (`recovery.rs`).
    pub(crate) rec: crate::recovery::SessionRecovery,
    pub(crate) other: HashMap<u32, Other>,
    pub(crate) next_itt: u32,
    pub(crate) deadline: Option<Instant>,
    arena: BytesMut,
    /// Read-data buffers handed back by [`Session::recycle`].
    spare: Vec<BytesMut>,
}

impl Session {
    /// A session that starts logging in at once: the first login request is ready in
    /// [`Session::poll_transmit`]. The login must finish by `now + config.login_timeout`.
    pub fn new(config: Config, now: Instant) -> Session {
        let mut s = Session {
            params: config.initial_params(),
            login: LoginState::default(),
            state: State::Login,
            tsih: Tsih(0),
            cid: 0,
            win: Arc::new(Mutex::new(Window::default())),
            exp_stat_sn: SerialNumber(0),
            decoder: PduDecoder::new(LOGIN_MAX_DATA_SEGMENT),
            tx_digests: Digests::default(),
            rx: BytesMut::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            queued: VecDeque::new(),
            scsi: HashMap::new(),
            reassign: Vec::new(),
            rec: Default::default(),
            other: HashMap::new(),
            next_itt: 1,
            deadline: Some(now + config.login_timeout),
            arena: BytesMut::new(),
            spare: Vec::new(),
            config,
        };
        s.start_login();
        s
    }

    /// Another connection (CID `cid`) of `lead`'s session (MC/S, RFC 7143 §6.3.1):
    /// it logs in with the session's ISID and TSIH and shares its CmdSN window, and
    /// its task tags are kept apart from the other connections' (the CID in the top
    /// byte). `lead` must have logged in. Commands may then be submitted on any
    /// connection; each is answered on the one that carried it.
    pub fn join(lead: &Session, cid: u16, now: Instant) -> Session {
        let mut config = lead.config.clone();
        config.isid = lead.config.isid;
        let mut s = Session {
            params: config.initial_params(),
            login: LoginState::default(),
            state: State::Login,
            tsih: lead.tsih,
            cid,
            win: lead.win.clone(),
            exp_stat_sn: SerialNumber(0),
            decoder: PduDecoder::new(LOGIN_MAX_DATA_SEGMENT),
            tx_digests: Digests::default(),
            rx: BytesMut::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            queued: VecDeque::new(),
            scsi: HashMap::new(),
            reassign: Vec::new(),
            rec: Default::default(),
            other: HashMap::new(),
            next_itt: (u32::from(cid) << 24) | 1,
            deadline: Some(now + config.login_timeout),
            arena: BytesMut::new(),
            spare: Vec::new(),
            config,
        };
        s.start_login();
        s
    }

    /// This connection's CID.
    pub fn cid(&self) -> u16 {
        self.cid
    }

    pub(crate) fn win(&self) -> MutexGuard<'_, Window> {
        self.win.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Send requests that waited for the CmdSN window, which another connection of
    /// the session may have seen open (call it on every connection after input).
    pub fn resume(&mut self) {
        self.flush_queue();
    }

    // ----- accessors -----

    /// Where the session stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Negotiated parameters (RFC defaults until login completes).
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// The login settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// SCSI commands submitted and not completed (sent or waiting for the window).
    pub fn commands_outstanding(&self) -> usize {
        self.scsi.len()
    }

    /// Requests waiting for the target's MaxCmdSN to move.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// The CmdSN window as we know it: (CmdSN of the next request, ExpCmdSN, MaxCmdSN).
    pub fn window(&self) -> (SerialNumber, SerialNumber, SerialNumber) {
        let w = self.win();
        (w.cmd_sn, w.exp_cmd_sn, w.max_cmd_sn)
    }

    /// Whether a non-immediate request submitted now would go out at once.
    pub fn window_open(&self) -> bool {
        self.queued.is_empty() && {
            let w = self.win();
            w.cmd_sn.le(w.max_cmd_sn)
        }
    }

    // ----- driving -----

    /// Bytes read from the socket. Fatal errors move the session to
    /// [`State::Failed`]; everything decoded before the error has been acted on.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if matches!(self.state, State::Failed | State::Closed) {
            return Ok(());
        }
        self.rx.extend_from_slice(bytes);
        let mut rx = std::mem::take(&mut self.rx);
        let r = self.decode_from(&mut rx);
        self.rx = rx;
        r
    }

    /// As [`Session::handle_input`], with the bytes in the caller's read buffer:
    /// whole PDUs are split off it and their data segments handed on as slices of
    /// it (no copy), and an incomplete PDU is left at its front for the next read to
    /// complete. Read from the socket into `buf`'s spare capacity and call this after
    /// every read. Do not mix it with [`Session::handle_input`] on one session.
    pub fn handle_input_buf(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        if matches!(self.state, State::Failed | State::Closed) {
            return Ok(());
        }
        if !self.rx.is_empty() {
            // Bytes given to handle_input before stay first.
            self.rx.extend_from_slice(buf);
            buf.clear();
            let mut rx = std::mem::take(&mut self.rx);
            let r = self.decode_from(&mut rx);
            self.rx = rx;
            return r;
        }
        self.decode_from(buf)
    }

    /// Bytes the incomplete PDU at the front of `buf` (the buffer given to
    /// [`Session::handle_input_buf`]) still needs; 0 when none is started. An event
    /// loop may ask the socket not to wake it before that many arrived
    /// (`SO_RCVLOWAT`): the target is already sending them.
    pub fn input_missing(&self, buf: &[u8]) -> usize {
        if self.rx.is_empty() {
            self.decoder.missing(buf)
        } else {
            self.decoder.missing(&self.rx)
        }
    }

    fn decode_from(&mut self, rx: &mut BytesMut) -> Result<(), Error> {
        loop {
            let pdu = match self.decoder.decode(rx) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                // ErrorRecoveryLevel > 0: the PDU is dropped and asked for again.
                Err(e) if self.decode_error_recovered(&e) => continue,
                // At ErrorRecoveryLevel 0 nothing can be retransmitted, so even a data
                // digest error loses a command for good: give up on the connection.
                Err(e) => return Err(self.fail(e.into())),
            };
            if let Err(e) = self.handle_pdu(pdu) {
                return Err(self.fail(e));
            }
            if matches!(self.state, State::Failed | State::Closed) {
                return Ok(());
            }
        }
    }

    /// Hand a completion's data back when done with it: a large read buffer that
    /// nothing else shares is kept for a later command's Data-In, instead of a fresh
    /// allocation that the kernel maps and zero-fills page by page (at 1 MiB reads
    /// that cost more than the copy of the data itself).
    pub fn recycle(&mut self, data: Bytes) {
        if data.len() < SPARE_MIN || self.spare.len() >= SPARE_BUFFERS {
            return;
        }
        if let Ok(mut buf) = data.try_into_mut() {
            buf.clear();
            if buf.capacity() >= SPARE_MIN {
                self.spare.push(buf);
            }
        }
    }

    /// An empty buffer with room for `len` bytes: one handed back to
    /// [`Session::recycle`] when one is big enough, else a new one (of `len`
    /// rounded up to a power of two). An event loop
    /// can take its next read buffer here: when whole Data-In PDUs of a large read
    /// stay in its old one as the completions' data, the memory comes back round.
    pub fn take_buffer(&mut self, len: usize) -> BytesMut {
        match self.spare.iter().position(|b| b.capacity() >= len) {
            Some(i) => self.spare.swap_remove(i),
            // Rounded up: a buffer handed back as a slice that starts past a PDU
            // header still has room for a request of the same size.
            None => BytesMut::with_capacity(len.checked_next_power_of_two().unwrap_or(len)),
        }
    }

    /// A deadline from [`Session::poll_timeout`] passed.
    /// At ErrorRecoveryLevel > 0 call it at least every
    /// [`RECOVERY_TICK`](crate::recovery::RECOVERY_TICK) while commands are outstanding
    /// (it retries commands that got no answer and asks again for lost PDUs).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        match self.deadline {
            Some(d) if now >= d && self.state == State::Login => {
                self.deadline = None;
                Err(self.fail(Error::LoginTimeout))
            }
            _ => {
                self.recovery_tick(now);
                Ok(())
            }
        }
    }

    /// The next PDU to write.
    pub fn poll_transmit(&mut self) -> Option<EncodedPdu> {
        self.tx.pop_front()
    }

    /// Whether PDUs wait in [`Session::poll_transmit`].
    pub fn has_transmit(&self) -> bool {
        !self.tx.is_empty()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.or_else(|| self.recovery_timeout())
    }

    pub(crate) fn fail(&mut self, e: Error) -> Error {
        self.state = State::Failed;
        self.deadline = None;
        e
    }

    /// Complete a SCSI task (ErrorRecoveryLevel > 0 once nothing is missing).
    pub(crate) fn complete(&mut self, c: Completion) {
        self.scsi.remove(&c.task.0);
        self.events.push_back(Event::CommandComplete(c));
    }

    pub(crate) fn send(&mut self, pdu: &Pdu) {
        let e = pdu.encode_in(self.tx_digests, &mut self.arena);
        self.tx.push_back(e);
    }

    pub(crate) fn alloc_itt(&mut self) -> Itt {
        loop {
            let i = self.next_itt;
            self.next_itt = self.next_itt.wrapping_add(1);
            if i != Itt::RESERVED.0 && !self.scsi.contains_key(&i) && !self.other.contains_key(&i) {
                return Itt(i);
            }
        }
    }

    fn ready(&self) -> Result<(), Error> {
        if self.state == State::FullFeature {
            Ok(())
        } else {
            Err(Error::NotReady)
        }
    }

    // ----- requests -----

    /// Submit a SCSI command. It goes out at once when the CmdSN window allows
    /// (CmdSN <= MaxCmdSN), else when the target opens the window; its write data
    /// follows as immediate data, unsolicited Data-Out and answers to R2Ts as the
    /// negotiated ImmediateData, InitialR2T, FirstBurstLength and the target's
    /// MaxRecvDataSegmentLength allow. The returned tag names it in
    /// [`Event::CommandComplete`].
    pub fn submit(&mut self, cmd: Command) -> Result<Itt, Error> {
        self.ready()?;
        if cmd.cdb.len() > 16 + 255 {
            return Err(Error::TooLarge(
                "CDB longer than an extended-CDB AHS allows",
            ));
        }
        let (read, write, edtl, wdata) = match cmd.data {
            DataDirection::None => (false, false, 0u32, Bytes::new()),
            DataDirection::Read(n) => (true, false, n, Bytes::new()),
            DataDirection::Write(b) => {
                let n = u32::try_from(b.len())
                    .map_err(|_| Error::TooLarge("write data beyond 4 GiB"))?;
                (false, true, n, b)
            }
        };
        let itt = self.alloc_itt();
        let lun = LunField::from_lun(cmd.lun);
        let p = self.params;
        let len = wdata.len();
        let first_burst = (p.first_burst_length as usize).min(len);
        let seg = p.max_xmit_data_segment_length.max(1) as usize;
        let imm = if write && p.immediate_data {
            first_burst.min(seg)
        } else {
            0
        };
        let unsolicited = if write && !p.initial_r2t {
            first_burst
        } else {
            imm
        };
        let pdu = ScsiCommand {
            immediate: false,
            final_bit: unsolicited == imm,
            read,
            write,
            attr: cmd.attr,
            lun,
            itt,
            expected_data_transfer_length: edtl,
            cmd_sn: SerialNumber(0),
            exp_stat_sn: SerialNumber(0),
            cdb: cmd.cdb,
            data: wdata.slice(..imm),
        };
        self.scsi.insert(
            itt.0,
            ScsiTask {
                lun,
                cmd_sn: None,
                edtl,
                write: wdata,
                data: BytesMut::new(),
                first: Bytes::new(),
                discard: cmd.discard_read_data && read && p.error_recovery_level == 0,
                discarded: 0,
                next_data_sn: 0,
                next_r2t_sn: 0,
                rec: Default::default(),
            },
        );
        self.queued.push_back(Queued::Command(pdu));
        self.flush_queue();
        Ok(itt)
    }

    /// Ask a discovery (or normal) session for its targets: `SendTargets=what`
    /// (`All`, or a target name). Answered by [`Event::Targets`].
    pub fn send_targets(&mut self, what: &str) -> Result<Itt, Error> {
        self.ready()?;
        let itt = self.alloc_itt();
        self.other.insert(
            itt.0,
            Other::Text {
                assembler: TextAssembler::default(),
            },
        );
        let req = TextRequest {
            immediate: false,
            final_bit: true,
            continue_bit: false,
            lun: LunField::default(),
            itt,
            ttt: Ttt::RESERVED,
            cmd_sn: SerialNumber(0),
            exp_stat_sn: SerialNumber(0),
            data: text::encode(&[("SendTargets", what)]),
        };
        self.queued.push_back(Queued::Text(req));
        self.flush_queue();
        Ok(itt)
    }

    /// A NOP-Out ping the target must echo ([`Event::Pong`]). It takes a CmdSN like
    /// any non-immediate request, so it also shows the window moving.
    pub fn ping(&mut self, data: Bytes) -> Result<Itt, Error> {
        self.ready()?;
        let itt = self.alloc_itt();
        self.other.insert(itt.0, Other::Nop);
        let nop = NopOut {
            immediate: false,
            lun: LunField::default(),
            itt,
            ttt: Ttt::RESERVED,
            cmd_sn: SerialNumber(0),
            exp_stat_sn: SerialNumber(0),
            data,
        };
        self.queued.push_back(Queued::Nop(nop));
        self.flush_queue();
        Ok(itt)
    }

    /// Send a task management function, as an immediate request (it must overtake
    /// the commands it acts on). `referenced` names the task of an ABORT TASK.
    /// Answered by [`Event::TaskManagement`], preceded by [`Event::CommandAborted`] for
    /// each command it ended.
    pub fn task_management(
        &mut self,
        function: TmfFunction,
        lun: u64,
        referenced: Option<Itt>,
    ) -> Result<Itt, Error> {
        self.ready()?;
        if function == TmfFunction::AbortTask && referenced.is_none() {
            return Err(Error::Busy("ABORT TASK needs the task to abort"));
        }
        let itt = self.alloc_itt();
        let lun_field = LunField::from_lun(lun);
        // RefCmdSN: the aborted command's CmdSN; a command still waiting for the window
        // is simply dropped here, it never reached the target.
        let cmd_sn = self.win().cmd_sn;
        let mut ref_cmd_sn = cmd_sn;
        if let Some(r) = referenced {
            if let Some(t) = self.scsi.get(&r.0) {
                match t.cmd_sn {
                    Some(sn) => ref_cmd_sn = sn,
                    None => {
                        self.scsi.remove(&r.0);
                        self.queued
                            .retain(|q| !matches!(q, Queued::Command(c) if c.itt == r));
                        self.events.push_back(Event::CommandAborted { task: r });
                    }
                }
            }
        }
        self.other.insert(
            itt.0,
            Other::Tmf {
                function,
                lun: lun_field,
                referenced,
                cmd_sn,
            },
        );
        let req = TaskMgmtRequest {
            immediate: true,
            function: function.code(),
            lun: lun_field,
            itt,
            referenced_task_tag: referenced.unwrap_or(Itt::RESERVED),
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn,
            exp_data_sn: 0,
        };
        self.send(&Pdu::TaskMgmtRequest(req));
        Ok(itt)
    }

    /// Close the session (Logout reason 0), as an immediate request. Answered by
    /// [`Event::LoggedOut`].
    pub fn logout(&mut self) -> Result<Itt, Error> {
        self.logout_reason(0)
    }

    /// Close only this connection of the session (Logout reason 1 with its CID).
    /// Answered by [`Event::LoggedOut`].
    pub fn logout_connection(&mut self) -> Result<Itt, Error> {
        self.logout_reason(1)
    }

    fn logout_reason(&mut self, reason: u8) -> Result<Itt, Error> {
        self.ready()?;
        let itt = self.alloc_itt();
        self.other.insert(itt.0, Other::Logout);
        self.state = State::LoggingOut;
        let cmd_sn = self.win().cmd_sn;
        let req = LogoutRequest {
            immediate: true,
            reason,
            itt,
            cid: self.cid,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send(&Pdu::LogoutRequest(req));
        Ok(itt)
    }

    /// Send queued requests while CmdSN <= MaxCmdSN (RFC 7143 §4.2.2.1).
    fn flush_queue(&mut self) {
        while !self.queued.is_empty() {
            let sn = {
                let mut w = self.win();
                if !w.cmd_sn.le(w.max_cmd_sn) {
                    return;
                }
                let sn = w.cmd_sn;
                w.cmd_sn = sn.next();
                sn
            };
            let Some(q) = self.queued.pop_front() else {
                return;
            };
            let exp = self.exp_stat_sn;
            match q {
                Queued::Command(mut c) => {
                    c.cmd_sn = sn;
                    c.exp_stat_sn = exp;
                    let itt = c.itt;
                    let imm = c.data.len();
                    let unsolicited_done = c.final_bit;
                    let lun = c.lun;
                    let keep = (self.params.error_recovery_level > 0).then(|| c.clone());
                    self.send(&Pdu::ScsiCommand(c));
                    let mut first_burst = 0;
                    if let Some(t) = self.scsi.get_mut(&itt.0) {
                        t.rec.command = keep;
                        t.cmd_sn = Some(sn);
                        first_burst = (self.params.first_burst_length as usize).min(t.write.len());
                    }
                    if !unsolicited_done {
                        self.send_data_out(itt, lun, Ttt::RESERVED, imm, first_burst);
                    }
                }
                Queued::Text(mut t) => {
                    t.cmd_sn = sn;
                    t.exp_stat_sn = exp;
                    self.send(&Pdu::TextRequest(t));
                }
                Queued::Nop(mut n) => {
                    n.cmd_sn = sn;
                    n.exp_stat_sn = exp;
                    self.send(&Pdu::NopOut(n));
                }
            }
        }
    }

    /// Write data `[from, to)` as Data-Out PDUs of at most the target's
    /// MaxRecvDataSegmentLength, DataSN from 0, F on the last (RFC 7143 §11.7).
    pub(crate) fn send_data_out(
        &mut self,
        itt: Itt,
        lun: LunField,
        ttt: Ttt,
        from: usize,
        to: usize,
    ) {
        let seg = self.params.max_xmit_data_segment_length.max(512) as usize;
        let Some(t) = self.scsi.get(&itt.0) else {
            return;
        };
        let data = t.write.clone();
        let to = to.min(data.len());
        let mut off = from;
        let mut data_sn = 0;
        while off < to {
            let end = (off + seg).min(to);
            let d = DataOut {
                final_bit: end == to,
                lun,
                itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                buffer_offset: off as u32,
                data: data.slice(off..end),
            };
            self.send(&Pdu::DataOut(d));
            data_sn += 1;
            off = end;
        }
    }

    // ----- receiving -----

    fn handle_pdu(&mut self, pdu: Pdu) -> Result<(), Error> {
        self.rec.good_pdu();
        if let Some(sn) = status_sn(&pdu) {
            if self.params.error_recovery_level > 0 && self.state != State::Login {
                // A gap is asked for again with a Status SNACK (recovery.rs).
                self.status_seen(sn);
            } else {
                // At ERL 0 a StatSN gap means a lost status we can never get back;
                // we simply follow the target's numbering (as open-iscsi does).
                self.exp_stat_sn = sn.next();
            }
        }
        if let Some((exp, max)) = cmd_window(&pdu) {
            self.update_window(exp, max);
        }
        match pdu {
            Pdu::LoginResponse(r) => self.on_login_response(r)?,
            _ if self.state == State::Login => {
                return Err(Error::Protocol(format!(
                    "opcode {:#04x} during login",
                    pdu.opcode()
                )))
            }
            Pdu::DataIn(d) => self.on_data_in(d)?,
            Pdu::ScsiResponse(r) => self.on_scsi_response(r)?,
            Pdu::R2t(r) => self.on_r2t(r)?,
            Pdu::NopIn(n) => self.on_nop_in(n)?,
            Pdu::TaskMgmtResponse(r) => self.on_tmf_response(r)?,
            Pdu::TextResponse(r) => self.on_text_response(r)?,
            Pdu::LogoutResponse(r) => {
                self.other.remove(&r.itt.0);
                self.state = State::Closed;
                self.events.push_back(Event::LoggedOut {
                    response: r.response,
                });
            }
            Pdu::AsyncMessage(a) => {
                if matches!(a.async_event, 2 | 3) {
                    return Err(Error::Dropped(a.async_event));
                }
                self.events.push_back(Event::Async(a));
            }
            Pdu::Reject(r) => self.on_reject(r),
            other => {
                return Err(Error::Protocol(format!(
                    "initiator opcode {:#04x} from the target",
                    other.opcode()
                )))
            }
        }
        self.flush_queue();
        Ok(())
    }

    /// Take the target's ExpCmdSN/MaxCmdSN unless they are stale (RFC 7143 §4.2.2.1:
    /// ignore a MaxCmdSN below ExpCmdSN - 1, and never move the window back).
    pub(crate) fn update_window(&mut self, exp: SerialNumber, max: SerialNumber) {
        if max.plus(1).lt(exp) {
            return;
        }
        let mut w = self.win();
        if w.exp_cmd_sn.le(exp) {
            w.exp_cmd_sn = exp;
        }
        if w.max_cmd_sn.le(max) {
            w.max_cmd_sn = max;
        }
    }

    fn on_data_in(&mut self, d: DataIn) -> Result<(), Error> {
        if self.params.error_recovery_level > 0 {
            self.data_in_recovering(d);
            return Ok(());
        }
        let Some(t) = self.scsi.get_mut(&d.itt.0) else {
            return Err(Error::Protocol(format!(
                "Data-In for unknown task {:#x}",
                d.itt.0
            )));
        };
        if d.data_sn != t.next_data_sn {
            return Err(Error::Protocol(format!(
                "Data-In DataSN {} where {} was expected",
                d.data_sn, t.next_data_sn
            )));
        }
        t.next_data_sn += 1;
        if !d.data.is_empty() {
            // DataPDUInOrder=Yes and DataSequenceInOrder=Yes (what we offer, and what
            // every target does): data arrives in order, so it is appended.
            let received = t.received();
            if d.buffer_offset as usize != received {
                return Err(Error::Protocol(format!(
                    "Data-In at offset {} where {received} was expected",
                    d.buffer_offset,
                )));
            }
            if received + d.data.len() > t.edtl as usize {
                return Err(Error::Protocol(format!(
                    "Data-In beyond the expected length {}",
                    t.edtl
                )));
            }
            let whole = d.status_present || received + d.data.len() == t.edtl as usize;
            if t.discard {
                t.discarded += d.data.len();
            } else if received == 0 && whole {
                // Kept as the decoder's slice: the caller's read buffer is not held
                // by a transfer still under way.
                t.first = d.data;
            } else {
                if t.data.is_empty() {
                    let edtl = t.edtl as usize;
                    let mut buf = self.take_buffer(edtl);
                    let t = self.scsi.get_mut(&d.itt.0).expect("task looked up above");
                    buf.extend_from_slice(&std::mem::take(&mut t.first));
                    t.data = buf;
                }
                let t = self.scsi.get_mut(&d.itt.0).expect("task looked up above");
                t.data.extend_from_slice(&d.data);
            }
        }
        if d.status_present {
            let mut t = self.scsi.remove(&d.itt.0).expect("task looked up above");
            self.events.push_back(Event::CommandComplete(Completion {
                task: d.itt,
                response: 0,
                status: d.status,
                sense: None,
                data: t.take_data(),
                residual: residual(d.overflow, d.underflow, d.residual_count),
            }));
        }
        Ok(())
    }

    fn on_scsi_response(&mut self, r: ScsiResponse) -> Result<(), Error> {
        if self.params.error_recovery_level > 0 && self.response_recovering(&r) {
            return Ok(());
        }
        let Some(mut t) = self.scsi.remove(&r.itt.0) else {
            return Err(Error::Protocol(format!(
                "SCSI Response for unknown task {:#x}",
                r.itt.0
            )));
        };
        self.events.push_back(Event::CommandComplete(Completion {
            task: r.itt,
            response: r.response,
            status: r.status,
            sense: Sense::from_response_data(&r.data),
            data: t.take_data(),
            residual: residual(r.overflow, r.underflow, r.residual_count),
        }));
        Ok(())
    }

    fn on_r2t(&mut self, r: R2t) -> Result<(), Error> {
        let max_burst = self.params.max_burst_length;
        if self.params.error_recovery_level > 0 {
            // Recovery R2Ts, and R2Ts sent again, come out of R2TSN order: each is
            // answered (the target drops data for TTTs it replaced).
            let Some(t) = self.scsi.get_mut(&r.itt.0) else {
                return Ok(());
            };
            t.rec.activity += 1;
            let end = u64::from(r.buffer_offset) + u64::from(r.desired_data_transfer_length);
            if end <= t.write.len() as u64 {
                let lun = t.lun;
                self.send_data_out(r.itt, lun, r.ttt, r.buffer_offset as usize, end as usize);
            }
            return Ok(());
        }
        let Some(t) = self.scsi.get_mut(&r.itt.0) else {
            return Err(Error::Protocol(format!(
                "R2T for unknown task {:#x}",
                r.itt.0
            )));
        };
        if r.r2t_sn != t.next_r2t_sn {
            return Err(Error::Protocol(format!(
                "R2TSN {} where {} was expected",
                r.r2t_sn, t.next_r2t_sn
            )));
        }
        t.next_r2t_sn += 1;
        let end = u64::from(r.buffer_offset) + u64::from(r.desired_data_transfer_length);
        if end > t.write.len() as u64 {
            return Err(Error::Protocol(format!(
                "R2T for bytes up to {end} of a {}-byte write",
                t.write.len()
            )));
        }
        if r.desired_data_transfer_length > max_burst {
            return Err(Error::Protocol(format!(
                "R2T of {} bytes beyond MaxBurstLength {max_burst}",
                r.desired_data_transfer_length
            )));
        }
        let lun = t.lun;
        self.send_data_out(r.itt, lun, r.ttt, r.buffer_offset as usize, end as usize);
        Ok(())
    }

    fn on_nop_in(&mut self, n: NopIn) -> Result<(), Error> {
        if n.itt == Itt::RESERVED {
            // A target ping: answer when it wants an answer (TTT set, RFC 7143 §11.19).
            if n.ttt != Ttt::RESERVED {
                let reply = NopOut {
                    immediate: true,
                    lun: n.lun,
                    itt: Itt::RESERVED,
                    ttt: n.ttt,
                    cmd_sn: self.win().cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                    data: n.data,
                };
                self.send(&Pdu::NopOut(reply));
            }
            return Ok(());
        }
        match self.other.remove(&n.itt.0) {
            Some(Other::Nop) => {
                self.events.push_back(Event::Pong {
                    task: n.itt,
                    data: n.data,
                });
                Ok(())
            }
            _ => Err(Error::Protocol(format!(
                "NOP-In for unknown task {:#x}",
                n.itt.0
            ))),
        }
    }

    fn on_tmf_response(&mut self, r: TaskMgmtResponse) -> Result<(), Error> {
        if let Some(Other::Reassign { task }) = self.other.get(&r.itt.0) {
            let task = *task;
            self.other.remove(&r.itt.0);
            self.reassigned(task, r.response);
            return Ok(());
        }
        let Some(Other::Tmf {
            function,
            lun,
            referenced,
            cmd_sn,
        }) = self.other.remove(&r.itt.0)
        else {
            return Err(Error::Protocol(format!(
                "TMF response for unknown task {:#x}",
                r.itt.0
            )));
        };
        // Function complete (0) or "task does not exist" (1, ABORT TASK): the
        // affected commands will not answer any more (RFC 7143 §11.6.1, §4.2.3.2).
        if matches!(r.response, 0 | 1) {
            let hit: Vec<u32> = self
                .scsi
                .iter()
                .filter(|(itt, t)| {
                    let before = t.cmd_sn.is_some_and(|sn| sn.lt(cmd_sn));
                    match function {
                        TmfFunction::AbortTask => Some(Itt(**itt)) == referenced,
                        TmfFunction::AbortTaskSet
                        | TmfFunction::ClearTaskSet
                        | TmfFunction::LogicalUnitReset => t.lun == lun && before,
                        TmfFunction::TargetWarmReset | TmfFunction::TargetColdReset => before,
                        TmfFunction::ClearAca => false,
                    }
                })
                .map(|(itt, _)| *itt)
                .collect();
            for itt in hit {
                self.scsi.remove(&itt);
                self.events
                    .push_back(Event::CommandAborted { task: Itt(itt) });
            }
        }
        self.events.push_back(Event::TaskManagement {
            task: r.itt,
            function,
            response: r.response,
        });
        Ok(())
    }

    fn on_text_response(&mut self, r: TextResponse) -> Result<(), Error> {
        let Some(Other::Text { assembler }) = self.other.get_mut(&r.itt.0) else {
            return Err(Error::Protocol(format!(
                "Text Response for unknown task {:#x}",
                r.itt.0
            )));
        };
        let Some(full) = assembler.push(&r.data, r.continue_bit)? else {
            // More text follows: ask for it with the target's TTT (RFC 7143 §11.10.4).
            let req = TextRequest {
                immediate: false,
                final_bit: true,
                continue_bit: false,
                lun: LunField::default(),
                itt: r.itt,
                ttt: r.ttt,
                cmd_sn: SerialNumber(0),
                exp_stat_sn: SerialNumber(0),
                data: Bytes::new(),
            };
            self.queued.push_back(Queued::Text(req));
            return Ok(());
        };
        self.other.remove(&r.itt.0);
        let mut targets: Vec<DiscoveredTarget> = Vec::new();
        for (k, v) in text::parse(&full)? {
            match k.as_str() {
                "TargetName" => targets.push(DiscoveredTarget {
                    name: v,
                    addresses: Vec::new(),
                }),
                "TargetAddress" => {
                    if let Some(t) = targets.last_mut() {
                        t.addresses.push(v);
                    }
                }
                _ => {}
            }
        }
        self.events.push_back(Event::Targets {
            task: r.itt,
            targets,
        });
        Ok(())
    }

    fn on_reject(&mut self, r: Reject) {
        if self.params.error_recovery_level > 0 && self.reject_recovered(&r) {
            return;
        }
        // The rejected PDU's header is the data segment; its ITT is at bytes 16..20.
        let itt = r
            .data
            .get(16..20)
            .map(|b| Itt(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
        if let Some(itt) = itt {
            if self.scsi.remove(&itt.0).is_some() || self.other.remove(&itt.0).is_some() {
                self.events.push_back(Event::CommandRejected {
                    task: itt,
                    reason: r.reason,
                });
                return;
            }
        }
        self.events.push_back(Event::Rejected(r));
    }
}

pub(crate) fn residual(overflow: bool, underflow: bool, count: u32) -> Residual {
    if overflow {
        Residual::Overflow(count)
    } else if underflow {
        Residual::Underflow(count)
    } else {
        Residual::None
    }
}

/// The (ExpCmdSN, MaxCmdSN) a target PDU carries.
fn cmd_window(p: &Pdu) -> Option<(SerialNumber, SerialNumber)> {
    Some(match p {
        Pdu::NopIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::ScsiResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::TaskMgmtResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::TextResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::DataIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::LogoutResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::R2t(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::AsyncMessage(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::Reject(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        // Login responses set the window outright once login completes.
        _ => return None,
    })
}

/// The StatSN of a PDU that consumes one (RFC 7143 §4.2.2.2).
fn status_sn(p: &Pdu) -> Option<SerialNumber> {
    match p {
        Pdu::ScsiResponse(x) => Some(x.stat_sn),
        Pdu::DataIn(x) if x.status_present => Some(x.stat_sn),
        Pdu::NopIn(x) if x.itt != Itt::RESERVED => Some(x.stat_sn),
        Pdu::TaskMgmtResponse(x) => Some(x.stat_sn),
        Pdu::LoginResponse(x) => Some(x.stat_sn),
        Pdu::TextResponse(x) => Some(x.stat_sn),
        Pdu::LogoutResponse(x) => Some(x.stat_sn),
        Pdu::Reject(x) => Some(x.stat_sn),
        Pdu::AsyncMessage(x) => Some(x.stat_sn),
        _ => None,
    }
}
