//! ErrorRecoveryLevel 1 on the initiator side (RFC 7143 §6.1, §7): what the session
//! does when a PDU from the target is lost to a digest error, or one of ours is.
//!
//! - A header digest error drops the PDU (two in a row: the stream is lost and the
//!   session fails). A data digest error drops it too, but its header is good: a lost
//!   Data-In is asked for again with a Data SNACK, a lost status with a Status SNACK.
//! - Gaps show up later as well: a Data-In whose DataSN skips some, a status whose
//!   StatSN skips some, a SCSI Response whose ExpDataSN says Data-In are missing; each
//!   gap is asked for with a SNACK, and ExpStatSN stays at the first missing status
//!   (the target keeps what we have not acknowledged). A task completes only when
//!   nothing of it is missing. Data-In go to their buffer offset, so what is sent
//!   again fills the hole; duplicates (and answers for tasks already complete) are
//!   dropped.
//! - A Data-In with the A bit is acknowledged with a DataACK SNACK.
//! - A command the target rejected for a data digest error is sent again at once; a
//!   command with no sign of life for [`RETRY_AFTER`] is retried (same ITT, CmdSN and
//!   data; RFC 7143 §6.2.1), which also makes the target send again a status it
//!   sent and we lost, and SNACKs still unanswered are sent again. Lost Data-Out are
//!   the target's to ask for (recovery R2T); R2Ts are answered in any R2TSN order.

use crate::session::{residual, Completion, Session, State};
use iscsi_proto::pdu::{
    reject_reason, DataIn, DecodeError, Pdu, ScsiCommand, ScsiResponse, SnackRequest,
};
use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often [`Session::handle_timeout`] should run at ErrorRecoveryLevel > 0.
pub const RECOVERY_TICK: Duration = Duration::from_millis(250);

/// A command with no PDU of its own for this long is retried.
pub const RETRY_AFTER: Duration = Duration::from_secs(3);

/// A command the target's ExpCmdSN has been stuck at this long, with later commands
/// sent, is taken as lost (the target holds everything after the gap) and retried.
pub const GAP_RETRY_AFTER: Duration = Duration::from_millis(500);

/// Header digest errors in a row that fail the session.
const HEADER_ERRORS_IN_A_ROW: u32 = 2;

/// Statuses asked for again at most (more means the stream is hopeless).
const MAX_MISSING_STATUS: usize = 1024;

/// SNACK types (RFC 7143 §11.16.1).
const SNACK_DATA: u8 = 0;
const SNACK_STATUS: u8 = 1;
const SNACK_DATA_ACK: u8 = 2;

/// Per task.
#[derive(Debug, Default)]
pub(crate) struct TaskRecovery {
    /// The command as sent (CmdSN set), for a retry.
    pub(crate) command: Option<ScsiCommand>,
    /// Data-In DataSNs lost and asked for again.
    missing: BTreeSet<u32>,
    /// The outcome, waiting for missing Data-In.
    held: Option<Completion>,
    /// Its StatSN, not acknowledged (ExpStatSN) while data is missing: the target
    /// drops a task's retained Data-In once its status is acknowledged.
    held_stat: Option<u32>,
    /// PDUs seen for the task (Data-In, R2T), and the count at the last tick.
    pub(crate) activity: u64,
    seen: u64,
    idle_since: Option<Instant>,
}

impl TaskRecovery {
    /// The oldest Data-In DataSN lost and asked for again.
    pub(crate) fn first_missing(&self) -> Option<u32> {
        self.missing.first().copied()
    }
}

/// Per session (connection).
#[derive(Debug, Default)]
pub(crate) struct SessionRecovery {
    header_errors: u32,
    /// StatSNs lost and asked for again.
    missing_status: BTreeSet<u32>,
    /// StatSNs received but not to be acknowledged yet (their task misses data).
    held_status: BTreeSet<u32>,
    /// The StatSN after the highest seen (`None`: ExpStatSN).
    next_stat: Option<SerialNumber>,
    last_tick: Option<Instant>,
    /// The target's ExpCmdSN while commands after it are out, and since when.
    stuck: Option<(SerialNumber, Instant)>,
    /// Commands retried and SNACKs sent (for reports and tests).
    pub(crate) retries: u64,
    pub(crate) snacks: u64,
}

impl SessionRecovery {
    pub(crate) fn good_pdu(&mut self) {
        self.header_errors = 0;
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl Session {
    /// Commands retried since login (ErrorRecoveryLevel > 0).
    pub fn commands_retried(&self) -> u64 {
        self.rec.retries
    }

    /// SNACKs sent since login (ErrorRecoveryLevel > 0).
    pub fn snacks_sent(&self) -> u64 {
        self.rec.snacks
    }

    fn recovering(&self) -> bool {
        self.params.error_recovery_level > 0 && self.state != State::Login
    }

    fn snack(&mut self, kind: u8, itt: Itt, lun: LunField, ttt: Ttt, beg: u32, run: u32) {
        self.rec.snacks += 1;
        let s = SnackRequest {
            snack_type: kind,
            lun,
            itt,
            ttt,
            exp_stat_sn: self.exp_stat_sn,
            beg_run: beg,
            run_length: run,
        };
        self.send(&Pdu::SnackRequest(s));
    }

    /// A decode error: true when the PDU was dropped and recovery goes on.
    pub(crate) fn decode_error_recovered(&mut self, e: &DecodeError) -> bool {
        if !self.recovering() {
            return false;
        }
        match e {
            DecodeError::HeaderDigest { .. } => {
                self.rec.header_errors += 1;
                self.rec.header_errors < HEADER_ERRORS_IN_A_ROW
            }
            DecodeError::DataDigest { header, .. } => {
                self.rec.header_errors = 0;
                let opcode = header.first().map_or(0, |b| b & 0x3f);
                let status = match opcode {
                    // Data-In: ask for it by DataSN (its status, if it had one, with it).
                    0x25 => {
                        let (Some(itt), Some(sn)) = (be32(header, 16), be32(header, 36)) else {
                            return true;
                        };
                        let Some(t) = self.scsi.get_mut(&itt) else {
                            return true; // sent again for a task already complete
                        };
                        if sn < t.next_data_sn && !t.rec.missing.contains(&sn) {
                            return true; // a copy of one we have
                        }
                        {
                            t.rec.missing.insert(sn);
                            if sn >= t.next_data_sn {
                                t.next_data_sn = sn + 1;
                            }
                            let lun = t.lun;
                            self.snack(SNACK_DATA, Itt(itt), lun, Ttt::RESERVED, sn, 1);
                        }
                        let s_bit = header.get(1).is_some_and(|b| b & 0x01 != 0);
                        if !s_bit {
                            return true;
                        }
                        // Its StatSN counts as seen: the Data SNACK brings it back.
                        be32(header, 24).map(|sn| (sn, false))
                    }
                    // Status-carrying PDUs: ask for them by StatSN.
                    0x20 | 0x21 | 0x22 | 0x24 | 0x26 | 0x3f => {
                        be32(header, 24).map(|sn| (sn, true))
                    }
                    _ => None,
                };
                if let Some((sn, ask)) = status {
                    self.status_lost(SerialNumber(sn), ask);
                }
                true
            }
            _ => false,
        }
    }

    /// A status-carrying PDU with StatSN `sn` arrived whole.
    pub(crate) fn status_seen(&mut self, sn: SerialNumber) {
        if !self.rec.missing_status.remove(&sn.get()) {
            let next = self.rec.next_stat.unwrap_or(self.exp_stat_sn);
            if !sn.lt(next) {
                let gap = sn.get().wrapping_sub(next.get());
                if gap > 0 && (gap as usize) <= MAX_MISSING_STATUS {
                    for i in 0..gap {
                        self.rec.missing_status.insert(next.get().wrapping_add(i));
                    }
                    self.snack(
                        SNACK_STATUS,
                        Itt::RESERVED,
                        LunField::default(),
                        Ttt::RESERVED,
                        next.get(),
                        gap,
                    );
                }
                self.rec.next_stat = Some(sn.next());
            }
        }
        self.update_exp_stat_sn();
    }

    /// The status with StatSN `sn` was lost (data digest error); `ask`: with a
    /// Status SNACK (else another SNACK brings it).
    fn status_lost(&mut self, sn: SerialNumber, ask: bool) {
        let next = self.rec.next_stat.unwrap_or(self.exp_stat_sn);
        if !sn.lt(next) {
            let gap = sn.get().wrapping_sub(next.get());
            if (gap as usize) <= MAX_MISSING_STATUS {
                for i in 0..=gap {
                    self.rec.missing_status.insert(next.get().wrapping_add(i));
                }
                let (beg, run) = if ask {
                    (next.get(), gap + 1)
                } else {
                    (next.get(), gap)
                };
                if run > 0 {
                    self.snack(
                        SNACK_STATUS,
                        Itt::RESERVED,
                        LunField::default(),
                        Ttt::RESERVED,
                        beg,
                        run,
                    );
                }
            }
            self.rec.next_stat = Some(sn.next());
        }
        self.update_exp_stat_sn();
    }

    fn update_exp_stat_sn(&mut self) {
        let next = self.rec.next_stat.unwrap_or(self.exp_stat_sn);
        // The oldest missing (or held) one: the farthest behind the next expected.
        let first = self
            .rec
            .missing_status
            .iter()
            .chain(self.rec.held_status.iter())
            .max_by_key(|s| next.get().wrapping_sub(**s))
            .map(|s| SerialNumber(*s));
        self.exp_stat_sn = first.unwrap_or(next);
    }

    /// A Data-In at ErrorRecoveryLevel > 0.
    pub(crate) fn data_in_recovering(&mut self, d: DataIn) {
        let Some(t) = self.scsi.get_mut(&d.itt.0) else {
            return; // sent again for a task already complete
        };
        t.rec.activity += 1;
        let sn = d.data_sn;
        let fresh = t.rec.missing.remove(&sn) || sn >= t.next_data_sn;
        if !fresh {
            return;
        }
        let gap = sn > t.next_data_sn || !t.rec.missing.is_empty();
        if d.status_present && gap {
            t.rec.held_stat = Some(d.stat_sn.get());
            self.rec.held_status.insert(d.stat_sn.get());
            self.update_exp_stat_sn();
        }
        let Some(t) = self.scsi.get_mut(&d.itt.0) else {
            return;
        };
        if sn > t.next_data_sn {
            let (beg, run) = (t.next_data_sn, sn - t.next_data_sn);
            t.rec.missing.extend(beg..sn);
            let lun = t.lun;
            self.snack(SNACK_DATA, d.itt, lun, Ttt::RESERVED, beg, run);
        }
        let Some(t) = self.scsi.get_mut(&d.itt.0) else {
            return;
        };
        t.next_data_sn = t.next_data_sn.max(sn + 1);
        let off = d.buffer_offset as usize;
        let end = off + d.data.len();
        if end <= t.edtl() as usize && !d.data.is_empty() {
            if t.data.len() < end {
                t.data.resize(end, 0);
            }
            t.data[off..end].copy_from_slice(&d.data);
        }
        if d.ack && d.ttt != Ttt::RESERVED {
            let upto = t.rec.missing.first().copied().unwrap_or(t.next_data_sn);
            self.snack(SNACK_DATA_ACK, Itt::RESERVED, d.lun, d.ttt, upto, 0);
        }
        if d.status_present {
            let t = self.scsi.get_mut(&d.itt.0).expect("looked up above");
            t.rec.held = Some(Completion {
                task: d.itt,
                response: 0,
                status: d.status,
                sense: None,
                data: bytes::Bytes::new(),
                residual: residual(d.overflow, d.underflow, d.residual_count),
            });
        }
        self.try_complete(d.itt);
    }

    /// A SCSI Response at ErrorRecoveryLevel > 0: true when handled here (dropped as
    /// a duplicate, or held until missing Data-In arrive).
    pub(crate) fn response_recovering(&mut self, r: &ScsiResponse) -> bool {
        let Some(t) = self.scsi.get_mut(&r.itt.0) else {
            return true;
        };
        t.rec.activity += 1;
        let mut ask = None;
        if r.exp_data_sn > t.next_data_sn {
            // Data-In at the end were lost.
            let (beg, run) = (t.next_data_sn, r.exp_data_sn - t.next_data_sn);
            t.rec.missing.extend(beg..r.exp_data_sn);
            t.next_data_sn = r.exp_data_sn;
            ask = Some((t.lun, beg, run));
        }
        let t = self.scsi.get_mut(&r.itt.0).expect("looked up above");
        if t.rec.missing.is_empty() {
            return false;
        }
        t.rec.held_stat = Some(r.stat_sn.get());
        self.rec.held_status.insert(r.stat_sn.get());
        self.update_exp_stat_sn();
        if let Some((lun, beg, run)) = ask {
            self.snack(SNACK_DATA, r.itt, lun, Ttt::RESERVED, beg, run);
        }
        let t = self.scsi.get_mut(&r.itt.0).expect("looked up above");
        t.rec.held = Some(Completion {
            task: r.itt,
            response: r.response,
            status: r.status,
            sense: crate::Sense::from_response_data(&r.data),
            data: bytes::Bytes::new(),
            residual: residual(r.overflow, r.underflow, r.residual_count),
        });
        true
    }

    fn try_complete(&mut self, itt: Itt) {
        let Some(t) = self.scsi.get_mut(&itt.0) else {
            return;
        };
        if !t.rec.missing.is_empty() {
            return;
        }
        let Some(mut c) = t.rec.held.take() else {
            return;
        };
        c.data = std::mem::take(&mut t.data).freeze();
        if let Some(sn) = t.rec.held_stat.take() {
            self.rec.held_status.remove(&sn);
        }
        self.complete(c);
        self.update_exp_stat_sn();
    }

    /// A Reject at ErrorRecoveryLevel > 0: true when recovery takes care of it.
    pub(crate) fn reject_recovered(&mut self, r: &iscsi_proto::pdu::Reject) -> bool {
        if r.reason != reject_reason::DATA_DIGEST_ERROR {
            return false;
        }
        let opcode = r.data.first().map_or(0, |b| b & 0x3f);
        match (opcode, be32(&r.data, 16)) {
            // A command lost: send it again now.
            (0x01, Some(itt)) => {
                self.retry(Itt(itt));
                true
            }
            // A Data-Out lost: the target asks for it again with a recovery R2T.
            (0x05, _) => true,
            _ => false,
        }
    }

    /// Send command `itt` again as first sent (its unsolicited data too).
    pub(crate) fn retry(&mut self, itt: Itt) {
        let Some(t) = self.scsi.get(&itt.0) else {
            return;
        };
        let Some(mut cmd) = t.rec.command.clone() else {
            return;
        };
        let len = t.write.len();
        cmd.exp_stat_sn = self.exp_stat_sn;
        let (imm, unsolicited, lun) = (cmd.data.len(), !cmd.final_bit, cmd.lun);
        self.rec.retries += 1;
        self.send(&Pdu::ScsiCommand(cmd));
        if unsolicited {
            let end = (self.params.first_burst_length as usize).min(len);
            self.send_data_out(itt, lun, Ttt::RESERVED, imm, end);
        }
    }

    /// The recovery timer: retry commands that saw nothing for [`RETRY_AFTER`], and
    /// ask again for what is still missing.
    pub(crate) fn recovery_tick(&mut self, now: Instant) {
        if !self.recovering() || self.state != State::FullFeature {
            return;
        }
        self.rec.last_tick = Some(now);
        // ErrorRecoveryLevel 2: TASK REASSIGN refused as still allegiant, again.
        self.reassign_tick();
        let mut retry = Vec::new();
        for (itt, t) in self.scsi.iter_mut() {
            if t.cmd_sn.is_none() {
                continue;
            }
            let since = *t.rec.idle_since.get_or_insert(now);
            if t.rec.activity != t.rec.seen {
                t.rec.seen = t.rec.activity;
                t.rec.idle_since = Some(now);
            } else if now.saturating_duration_since(since) >= RETRY_AFTER {
                t.rec.idle_since = Some(now);
                retry.push(*itt);
            }
        }
        // A CmdSN gap: the target's ExpCmdSN stays at a command of ours while later
        // ones are out; everything after it waits, so retry it soon.
        let (exp, next) = {
            let w = self.win();
            (w.exp_cmd_sn, w.cmd_sn)
        };
        if exp.lt(next) {
            match self.rec.stuck {
                Some((sn, since)) if sn == exp => {
                    if now.saturating_duration_since(since) >= GAP_RETRY_AFTER {
                        let lost = self
                            .scsi
                            .iter()
                            .find(|(_, t)| t.cmd_sn == Some(exp))
                            .map(|(itt, _)| *itt);
                        if let Some(itt) = lost.filter(|i| !retry.contains(i)) {
                            retry.push(itt);
                        }
                        self.rec.stuck = Some((exp, now));
                    }
                }
                _ => self.rec.stuck = Some((exp, now)),
            }
        } else {
            self.rec.stuck = None;
        }
        let overdue = !retry.is_empty();
        for itt in retry {
            let missing: Vec<u32> = self
                .scsi
                .get(&itt)
                .map(|t| t.rec.missing.iter().copied().collect())
                .unwrap_or_default();
            if missing.is_empty() {
                self.retry(Itt(itt));
            } else {
                let lun = self.scsi[&itt].lun;
                for sn in missing {
                    self.snack(SNACK_DATA, Itt(itt), lun, Ttt::RESERVED, sn, 1);
                }
            }
        }
        if let Some(first) = self.rec.missing_status.iter().next().copied() {
            if self.scsi.is_empty() {
                // Nothing waits for them any more.
                self.rec.missing_status.clear();
                self.rec.held_status.clear();
                self.update_exp_stat_sn();
            } else if overdue && first == self.exp_stat_sn.get() {
                let n = self.rec.missing_status.len() as u32;
                self.snack(
                    SNACK_STATUS,
                    Itt::RESERVED,
                    LunField::default(),
                    Ttt::RESERVED,
                    first,
                    n,
                );
            }
        }
    }

    /// When the recovery timer wants to run next.
    pub(crate) fn recovery_timeout(&self) -> Option<Instant> {
        if self.params.error_recovery_level == 0 || self.scsi.is_empty() {
            return None;
        }
        self.rec.last_tick.map(|t| t + RECOVERY_TICK)
    }
}
