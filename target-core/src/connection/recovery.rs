//! ErrorRecoveryLevel 1: within-connection recovery (RFC 7143 §6.1, §7, §11.16).
//!
//! At level 1 and above (negotiated up to the target's maximum, `params.rs`):
//!
//! - **Retention.** What a connection sent is kept until the initiator acknowledges
//!   it: status-carrying PDUs until ExpStatSN passes their StatSN, a task's Data-In
//!   until its status is acknowledged or a DataACK SNACK releases them, a write's
//!   R2Ts until its status is sent. The bytes kept are counted per session
//!   ([`RETAIN_CAP`], `mcs::SharedSession::retain`): past the cap nothing more is
//!   kept, and a SNACK for what was not kept gets Reject SNACK_REJECT.
//! - **SNACK.** Status SNACK resends by StatSN, Data/R2T SNACK resends a task's
//!   Data-In by DataSN or (for a write still collecting data) its R2Ts by R2TSN,
//!   DataACK SNACK releases Data-In before the TTT of a Data-In sent with the A bit
//!   (set on the last Data-In of each burst that carries no status). R-Data SNACK is
//!   rejected (SNACK_REJECT).
//! - **Header digest errors** discard the PDU (the frame its length named) and keep
//!   the connection; a command lost that way leaves a CmdSN gap the initiator fills
//!   by retrying it. Two in a row (a corrupted length desynchronises the stream, so
//!   the next header fails too) close the connection.
//! - **Retried commands.** A SCSI command whose CmdSN is already behind ExpCmdSN is a
//!   retry (RFC 7143 §6.2.1): it is never run twice. A task still collecting data
//!   gets recovery R2Ts for what is missing; a finished one has its retained Data-In
//!   and status sent again; otherwise (acknowledged) it is ignored.
//! - **Lost Data-Out** (data digest error, or a gap in DataSN/offset after a PDU lost
//!   to a header digest error): the PDU is dropped, and when the burst's F-bit PDU
//!   arrives (or [`DATA_OUT_TIMEOUT`] passes without progress) a recovery R2T asks for
//!   just the burst's missing tail, with a new TTT and the next R2TSN. Data still
//!   coming for the retired TTT is dropped.
//!
//! Level 2 (connection recovery, TASK REASSIGN) builds on this: `erl2.rs`.

use super::task::{OutstandingR2t, TaskState};
use super::timer::Timer;
use super::Connection;
use crate::mcs::SharedSession;
use iscsi_proto::pdu::{reject_reason, EncodedPdu, Pdu, R2t, ScsiCommand, SnackRequest};
use iscsi_proto::{Itt, SerialNumber, Ttt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The highest ErrorRecoveryLevel the target negotiates (and its default maximum).
pub const MAX_ERROR_RECOVERY_LEVEL: u8 = 2;

/// Bytes of sent PDUs a session keeps for SNACKs and retries.
pub const RETAIN_CAP: usize = 64 << 20;

/// How long a write task may wait for Data-Out it solicited, without any arriving,
/// before its missing bursts are asked for again with recovery R2Ts.
pub const DATA_OUT_TIMEOUT: Duration = Duration::from_secs(2);

/// Header digest errors in a row that close the connection (the stream is lost).
const HEADER_ERRORS_IN_A_ROW: u32 = 2;

/// SNACK types (RFC 7143 §11.16.1).
pub(super) mod snack_type {
    pub(in crate::connection) const DATA_R2T: u8 = 0;
    pub(in crate::connection) const STATUS: u8 = 1;
    pub(in crate::connection) const DATA_ACK: u8 = 2;
}

/// A task's Data-In as sent (index = DataSN; `None` once acknowledged by DataACK).
#[derive(Debug, Default)]
struct DataInKept {
    pdus: Vec<Option<EncodedPdu>>,
}

/// What one connection keeps for recovery.
#[derive(Debug, Default)]
pub(super) struct Retained {
    /// Status-carrying PDUs by StatSN, oldest first.
    status: VecDeque<(SerialNumber, EncodedPdu)>,
    /// Each task's status StatSN once sent, and whether that PDU is its last Data-In
    /// (else a SCSI Response kept in `status`).
    status_of: HashMap<u32, (SerialNumber, bool)>,
    data_in: HashMap<u32, DataInKept>,
    /// Each write's R2Ts (index = R2TSN) while it collects data.
    r2ts: HashMap<u32, Vec<EncodedPdu>>,
    /// TTT of a Data-In sent with the A bit → its task.
    acks: HashMap<u32, u32>,
    bytes: usize,
    /// The cap was reached: some PDUs were not kept.
    overflowed: bool,
    /// Write tasks waiting for Data-Out: when data last arrived (or waiting began).
    progress: HashMap<u32, Instant>,
    /// TTTs replaced by a recovery R2T (late data for them is dropped).
    retired: HashSet<u32>,
    /// Write tasks whose unsolicited sequence was cut short by a loss.
    unsolicited_retired: HashSet<u32>,
    /// Header digest errors since the last good PDU.
    header_errors: u32,
}

impl Retained {
    fn room(&mut self, n: usize, sh: Option<&SharedSession>) -> bool {
        let ok = match sh {
            Some(s) => s.retain(n, RETAIN_CAP),
            None => self.bytes + n <= RETAIN_CAP,
        };
        if ok {
            self.bytes += n;
        } else {
            self.overflowed = true;
        }
        ok
    }

    fn free(&mut self, n: usize, sh: Option<&SharedSession>) {
        let n = n.min(self.bytes);
        self.bytes -= n;
        if let Some(s) = sh {
            s.unretain(n);
        }
    }

    /// Give back everything (the connection closes).
    pub(super) fn clear(&mut self, sh: Option<&SharedSession>) {
        let n = self.bytes;
        self.free(n, sh);
        *self = Retained::default();
    }

    /// A good PDU arrived.
    pub(super) fn good_pdu(&mut self) {
        self.header_errors = 0;
    }

    /// Keep a PDU just sent.
    pub(super) fn keep(&mut self, pdu: &Pdu, encoded: &EncodedPdu, sh: Option<&SharedSession>) {
        let len = encoded.len();
        match pdu {
            Pdu::DataIn(d) => {
                // A status-carrying Data-In is kept twice (by DataSN and by StatSN).
                let n = if d.status_present { 2 * len } else { len };
                if !self.room(n, sh) {
                    if d.status_present {
                        // Not kept, but its earlier Data-In may be: the status's
                        // acknowledgement must still release them.
                        self.status_of.insert(d.itt.0, (d.stat_sn, true));
                        self.drop_r2ts(d.itt.0, sh);
                    }
                    return;
                }
                let e = self.data_in.entry(d.itt.0).or_default();
                if e.pdus.len() == d.data_sn as usize {
                    e.pdus.push(Some(encoded.clone()));
                } else {
                    self.free(len, sh);
                }
                if d.ack && d.ttt != Ttt::RESERVED {
                    self.acks.insert(d.ttt.0, d.itt.0);
                }
                if d.status_present {
                    self.status_of.insert(d.itt.0, (d.stat_sn, true));
                    self.status.push_back((d.stat_sn, encoded.clone()));
                    self.drop_r2ts(d.itt.0, sh);
                }
            }
            Pdu::R2t(r) => {
                if !self.room(len, sh) {
                    return;
                }
                let e = self.r2ts.entry(r.itt.0).or_default();
                if e.len() == r.r2t_sn as usize {
                    e.push(encoded.clone());
                } else {
                    self.free(len, sh);
                }
            }
            Pdu::ScsiResponse(r) => {
                self.drop_r2ts(r.itt.0, sh);
                if self.keep_status(r.stat_sn, encoded, sh) {
                    self.status_of.insert(r.itt.0, (r.stat_sn, false));
                }
            }
            Pdu::TextResponse(r) => _ = self.keep_status(r.stat_sn, encoded, sh),
            Pdu::TaskMgmtResponse(r) => _ = self.keep_status(r.stat_sn, encoded, sh),
            Pdu::LogoutResponse(r) => _ = self.keep_status(r.stat_sn, encoded, sh),
            Pdu::NopIn(r) if r.itt != Itt::RESERVED => _ = self.keep_status(r.stat_sn, encoded, sh),
            Pdu::Reject(r) => _ = self.keep_status(r.stat_sn, encoded, sh),
            _ => {}
        }
    }

    fn keep_status(
        &mut self,
        sn: SerialNumber,
        encoded: &EncodedPdu,
        sh: Option<&SharedSession>,
    ) -> bool {
        let ok = self.room(encoded.len(), sh);
        if ok {
            self.status.push_back((sn, encoded.clone()));
        }
        ok
    }

    fn drop_r2ts(&mut self, itt: u32, sh: Option<&SharedSession>) {
        if let Some(v) = self.r2ts.remove(&itt) {
            self.free(v.iter().map(EncodedPdu::len).sum(), sh);
        }
    }

    /// The initiator acknowledged every StatSN before `exp` (its ExpStatSN).
    pub(super) fn acknowledge(&mut self, exp: SerialNumber, sh: Option<&SharedSession>) {
        let mut freed = 0;
        while let Some((sn, e)) = self.status.front() {
            if !sn.lt(exp) {
                break;
            }
            freed += e.len();
            self.status.pop_front();
        }
        let done: Vec<u32> = self
            .status_of
            .iter()
            .filter(|(_, (sn, _))| sn.lt(exp))
            .map(|(itt, _)| *itt)
            .collect();
        for itt in done {
            self.status_of.remove(&itt);
            if let Some(k) = self.data_in.remove(&itt) {
                freed += k.pdus.iter().flatten().map(EncodedPdu::len).sum::<usize>();
            }
        }
        if !self.acks.is_empty() {
            let data_in = &self.data_in;
            self.acks.retain(|_, itt| data_in.contains_key(itt));
        }
        self.free(freed, sh);
    }

    /// Forget the R2Ts of tasks that no longer exist (aborted without a status).
    pub(super) fn prune_r2ts(&mut self, live: impl Fn(u32) -> bool, sh: Option<&SharedSession>) {
        let gone: Vec<u32> = self.r2ts.keys().copied().filter(|i| !live(*i)).collect();
        for itt in gone {
            self.drop_r2ts(itt, sh);
        }
        self.progress.retain(|i, _| live(*i));
        self.unsolicited_retired.retain(|i| live(*i));
        if self.retired.len() > 4096 {
            self.retired.clear();
        }
    }

    /// Retained status PDUs with StatSN in `[beg, beg + run)` (`run` 0: all from `beg`).
    fn statuses(&self, beg: SerialNumber, run: u32) -> Option<Vec<EncodedPdu>> {
        let end = (run != 0).then(|| beg.plus(run));
        let picked: Vec<EncodedPdu> = self
            .status
            .iter()
            .filter(|(sn, _)| !sn.lt(beg) && end.is_none_or(|e| sn.lt(e)))
            .map(|(_, e)| e.clone())
            .collect();
        let want = run as usize;
        (!picked.is_empty() && (run == 0 || picked.len() == want)).then_some(picked)
    }

    /// Entries `[beg, beg + run)` of `v` (`run` 0: all from `beg`), all present.
    fn run_of<T: Clone>(v: &[Option<T>], beg: u32, run: u32) -> Option<Vec<T>> {
        let beg = beg as usize;
        let end = if run == 0 {
            v.len()
        } else {
            beg.checked_add(run as usize)?
        };
        if beg >= end || end > v.len() {
            return None;
        }
        v[beg..end].iter().cloned().collect()
    }

    /// Retained Data-In of task `itt` with DataSN in `[beg, beg + run)`.
    fn data(&self, itt: u32, beg: u32, run: u32) -> Option<Vec<EncodedPdu>> {
        Self::run_of(&self.data_in.get(&itt)?.pdus, beg, run)
    }

    /// Retained R2Ts of task `itt` with R2TSN in `[beg, beg + run)`.
    fn r2t(&self, itt: u32, beg: u32, run: u32) -> Option<Vec<EncodedPdu>> {
        let v: Vec<Option<EncodedPdu>> = self.r2ts.get(&itt)?.iter().cloned().map(Some).collect();
        Self::run_of(&v, beg, run)
    }

    /// DataACK for the A-bit Data-In with TTT `ttt`: Data-In before DataSN `beg` are
    /// acknowledged. False when the TTT is not one we sent.
    fn data_ack(&mut self, ttt: u32, beg: u32, sh: Option<&SharedSession>) -> bool {
        let Some(itt) = self.acks.remove(&ttt) else {
            return false;
        };
        let mut freed = 0;
        if let Some(k) = self.data_in.get_mut(&itt) {
            let end = (beg as usize).min(k.pdus.len());
            for p in &mut k.pdus[..end] {
                freed += p.take().map_or(0, |e| e.len());
            }
        }
        self.free(freed, sh);
        true
    }

    /// Everything the initiator was sent for finished task `itt` and has not
    /// acknowledged: its Data-In and status, in order. Empty when nothing is kept.
    fn replay(&self, itt: u32) -> Vec<EncodedPdu> {
        let mut out: Vec<EncodedPdu> = self
            .data_in
            .get(&itt)
            .map(|k| k.pdus.iter().flatten().cloned().collect())
            .unwrap_or_default();
        if let Some((sn, false)) = self.status_of.get(&itt) {
            out.extend(
                self.status
                    .iter()
                    .filter(|(s, _)| s == sn)
                    .map(|(_, e)| e.clone()),
            );
        }
        out
    }
}

/// The ExpStatSN an initiator PDU carries.
pub(super) fn exp_stat_sn(pdu: &Pdu) -> Option<SerialNumber> {
    Some(match pdu {
        Pdu::ScsiCommand(p) => p.exp_stat_sn,
        Pdu::DataOut(p) => p.exp_stat_sn,
        Pdu::NopOut(p) => p.exp_stat_sn,
        Pdu::TextRequest(p) => p.exp_stat_sn,
        Pdu::TaskMgmtRequest(p) => p.exp_stat_sn,
        Pdu::LogoutRequest(p) => p.exp_stat_sn,
        Pdu::SnackRequest(p) => p.exp_stat_sn,
        _ => return None,
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl Connection {
    /// The session's ErrorRecoveryLevel (0 before login).
    pub(super) fn error_recovery_level(&self) -> u8 {
        self.session
            .as_ref()
            .map_or(0, |s| s.params.error_recovery_level)
    }

    /// Keep a PDU just sent, at ErrorRecoveryLevel > 0.
    pub(super) fn retain_sent(&mut self, pdu: &Pdu, encoded: &EncodedPdu) {
        if self.error_recovery_level() > 0 {
            self.retained.keep(pdu, encoded, self.shared.as_deref());
        }
    }

    /// An initiator PDU acknowledged what came before its ExpStatSN.
    pub(super) fn acknowledged(&mut self, pdu: &Pdu) {
        self.retained.good_pdu();
        if self.error_recovery_level() == 0 {
            return;
        }
        if let Some(exp) = exp_stat_sn(pdu) {
            self.forget_acknowledged(exp);
            let sh = self.shared.clone();
            self.retained.acknowledge(exp, sh.as_deref());
            let tasks = &self.tasks;
            self.retained
                .prune_r2ts(|itt| tasks.contains_key(&itt), sh.as_deref());
        }
    }

    /// The connection closes: what it kept no longer counts against the session.
    pub(super) fn release_retained(&mut self) {
        let sh = self.shared.clone();
        self.retained.clear(sh.as_deref());
    }

    /// A header digest error: true when the PDU was discarded and the connection goes
    /// on (ErrorRecoveryLevel > 0 and not several in a row).
    pub(super) fn header_digest_error(&mut self) -> bool {
        if self.error_recovery_level() == 0 {
            return false;
        }
        self.retained.header_errors += 1;
        self.retained.header_errors < HEADER_ERRORS_IN_A_ROW
    }

    /// A SNACK (RFC 7143 §11.16): rejected at ErrorRecoveryLevel 0; above, answered
    /// from what was retained (see the module documentation).
    pub(super) fn handle_snack(&mut self, s: SnackRequest) {
        if self.error_recovery_level() == 0 {
            return self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::SnackRequest(s));
        }
        let collecting = self
            .tasks
            .get(&s.itt.0)
            .is_some_and(|t| matches!(t.state, TaskState::Collecting(_)));
        let again = match s.snack_type {
            snack_type::STATUS => self
                .retained
                .statuses(SerialNumber(s.beg_run), s.run_length),
            snack_type::DATA_R2T if collecting => {
                self.retained.r2t(s.itt.0, s.beg_run, s.run_length)
            }
            snack_type::DATA_R2T => self.retained.data(s.itt.0, s.beg_run, s.run_length),
            snack_type::DATA_ACK => {
                let sh = self.shared.clone();
                if self.retained.data_ack(s.ttt.0, s.beg_run, sh.as_deref()) {
                    return;
                }
                None
            }
            _ => None,
        };
        match again {
            Some(pdus) => self.resend(pdus),
            None => self.reject_pdu(reject_reason::SNACK_REJECT, &Pdu::SnackRequest(s)),
        }
    }

    fn resend(&mut self, pdus: Vec<EncodedPdu>) {
        for e in pdus {
            self.conn_stats.sent(e.len() as u64);
            self.tx.push_back(e);
        }
    }

    /// A SCSI command whose CmdSN is behind ExpCmdSN at ErrorRecoveryLevel > 0: a
    /// retry of one already received (RFC 7143 §6.2.1). True when handled so.
    pub(super) fn command_retried(&mut self, c: &ScsiCommand) -> bool {
        if self.error_recovery_level() == 0 || c.immediate || !c.cmd_sn.lt(self.exp_cmd_sn) {
            return false;
        }
        let itt = c.itt.0;
        if let Some(task) = self.tasks.get(&itt) {
            // Still running: a write missing data is asked for it again.
            if matches!(task.state, TaskState::Collecting(_)) {
                self.recover_task(itt);
            }
            return true;
        }
        let again = self.retained.replay(itt);
        if again.is_empty()
            && self.error_recovery_level() == 2
            && !self.claimed(itt)
            && self.shared.as_ref().is_some_and(|s| s.take_lost(c.cmd_sn))
        {
            // Held behind a CmdSN gap when its connection failed, sent again here
            // after TASK REASSIGN found no task (erl2.rs): it runs now.
            self.handle_scsi_command(c.clone());
            return true;
        }
        self.resend(again);
        true
    }

    /// Whether a task of the session holds tag `itt`.
    fn claimed(&self, itt: u32) -> bool {
        self.shared.as_ref().is_some_and(|s| s.itt_in_use(itt))
    }

    /// A Data-Out lost to a data digest error (its header, which passed its digest,
    /// is `header`). False at ErrorRecoveryLevel 0 (the task then ends).
    pub(super) fn data_out_lost(&mut self, header: &[u8]) -> bool {
        if self.error_recovery_level() == 0 {
            return false;
        }
        let (Some(itt), Some(ttt)) = (be32(header, 16), be32(header, 20)) else {
            return true;
        };
        let final_bit = header.get(1).is_some_and(|b| b & 0x80 != 0);
        if final_bit {
            // The rest of the burst will not come: ask for what is missing now.
            self.recover_burst(itt, Ttt(ttt));
        }
        // Otherwise the burst's later PDUs arrive out of sequence and are dropped
        // until its F bit (or the Data-Out timeout) asks again.
        true
    }

    /// A Data-Out out of sequence (DataSN or offset not the next) at a level above 0:
    /// an earlier PDU of its burst was lost; it is dropped, and the burst's last PDU
    /// asks for the missing tail.
    pub(super) fn data_out_out_of_sequence(&mut self, itt: u32, ttt: Ttt, final_bit: bool) {
        if final_bit {
            self.recover_burst(itt, ttt);
        }
    }

    /// Data-Out for a TTT (or an unsolicited sequence) a recovery R2T replaced: late
    /// data, dropped without a word. False when it is not that.
    pub(super) fn data_out_retired(&self, itt: u32, ttt: Ttt) -> bool {
        self.error_recovery_level() > 0
            && if ttt == Ttt::RESERVED {
                self.retained.unsolicited_retired.contains(&itt)
            } else {
                self.retained.retired.contains(&ttt.0)
            }
    }

    /// Write data of task `itt` arrived in sequence.
    pub(super) fn data_out_progress(&mut self, itt: u32) {
        if self.error_recovery_level() > 0 {
            self.retained.progress.insert(itt, self.obs.now);
        }
    }

    /// Ask again for everything task `itt` still waits for.
    fn recover_task(&mut self, itt: u32) {
        let Some(TaskState::Collecting(st)) = self.tasks.get(&itt).map(|t| &t.state) else {
            return;
        };
        let mut ttts: Vec<Ttt> = st.outstanding.iter().map(|r| r.ttt).collect();
        if st.unsolicited_open {
            ttts.push(Ttt::RESERVED);
        }
        for ttt in ttts {
            self.recover_burst(itt, ttt);
        }
        self.retained.progress.insert(itt, self.obs.now);
    }

    /// Replace the burst `ttt` of task `itt` (or its unsolicited sequence, for the
    /// reserved TTT) by a recovery R2T for the part not received.
    fn recover_burst(&mut self, itt: u32, ttt: Ttt) {
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let TaskState::Collecting(st) = &mut task.state else {
            return;
        };
        let (from, to) = if ttt == Ttt::RESERVED {
            if !st.unsolicited_open {
                return;
            }
            st.unsolicited_open = false;
            self.retained.unsolicited_retired.insert(itt);
            (st.unsolicited_next, st.unsolicited_end.min(st.want))
        } else {
            let Some(pos) = st.outstanding.iter().position(|r| r.ttt == ttt) else {
                return;
            };
            let r = st.outstanding.remove(pos);
            self.retained.retired.insert(ttt.0);
            (r.offset + r.received, r.offset + r.len)
        };
        if from >= to {
            return;
        }
        let new_ttt = self.alloc_ttt();
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let TaskState::Collecting(st) = &mut task.state else {
            return;
        };
        st.outstanding.push(OutstandingR2t {
            ttt: new_ttt,
            offset: from,
            len: to - from,
            received: 0,
            next_data_sn: 0,
        });
        let r2t_sn = st.r2t_sn;
        st.r2t_sn += 1;
        let lun = task.lun_field;
        let pdu = Pdu::R2t(R2t {
            lun,
            itt: Itt(itt),
            ttt: new_ttt,
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            r2t_sn,
            buffer_offset: from,
            desired_data_transfer_length: to - from,
        });
        self.send(pdu);
    }

    /// Arm (or fire) the Data-Out timer: a write that solicited data and got none
    /// for [`DATA_OUT_TIMEOUT`] asks for its missing bursts again.
    pub(super) fn check_data_out_timer(&mut self, now: Instant) {
        if self.error_recovery_level() == 0 {
            return;
        }
        let mut next: Option<Instant> = None;
        let mut due = Vec::new();
        for (itt, task) in self.tasks.iter() {
            let TaskState::Collecting(st) = &task.state else {
                continue;
            };
            if st.outstanding.is_empty() && !st.unsolicited_open {
                continue;
            }
            let since = *self.retained.progress.entry(*itt).or_insert(now);
            let at = since + DATA_OUT_TIMEOUT;
            if at <= now {
                due.push(*itt);
            } else {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
            }
        }
        for itt in due {
            self.recover_task(itt);
            let at = now + DATA_OUT_TIMEOUT;
            next = Some(next.map_or(at, |n: Instant| n.min(at)));
        }
        match next {
            Some(at) => self.timers.set(Timer::DataOutRecovery, at),
            None => self.timers.stop(Timer::DataOutRecovery),
        }
    }
}
