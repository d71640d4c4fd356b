//! Pieces of ErrorRecoveryLevel 1 (RFC 7143 §7.1, §11.16): what a connection sent is
//! retained until the initiator acknowledges it, so a Status SNACK can resend
//! responses by StatSN and a Data SNACK can resend a task's Data-In by DataSN.
//!
//! Only active when the session negotiated ErrorRecoveryLevel > 0, which the target
//! does not offer yet ([`MAX_ERROR_RECOVERY_LEVEL`] is 0): header-digest recovery,
//! recovery R2Ts for Data-Out, R2T SNACK, DataACK and connection recovery (ERL 2) are
//! missing. The pieces here are tested with the level forced in
//! [`super::ConnConfig::limits`].
//!
//! Retention is bounded per connection ([`RETAIN_CAP`] bytes of PDUs): past it nothing
//! more is kept, and a SNACK for what was not kept is rejected (SNACK_REJECT).

use super::Connection;
use iscsi_proto::pdu::{reject_reason, EncodedPdu, Pdu, SnackRequest};
use iscsi_proto::SerialNumber;
use std::collections::{HashMap, VecDeque};

/// The highest ErrorRecoveryLevel the target negotiates. 0 until ERL 1 is whole.
pub const MAX_ERROR_RECOVERY_LEVEL: u8 = 0;

/// Bytes of sent PDUs a connection keeps for SNACKs.
pub const RETAIN_CAP: usize = 64 << 20;

/// SNACK types (RFC 7143 §11.16.1).
mod snack_type {
    pub(super) const DATA_R2T: u8 = 0;
    pub(super) const STATUS: u8 = 1;
}

/// What one connection keeps for SNACKs.
#[derive(Debug, Default)]
pub(super) struct Retained {
    /// Status-carrying PDUs by StatSN, oldest first.
    status: VecDeque<(SerialNumber, EncodedPdu)>,
    /// Each task's Data-In PDUs (index = DataSN), and the StatSN of its status once
    /// sent (the Data-In go when that StatSN is acknowledged).
    data_in: HashMap<u32, (Option<SerialNumber>, Vec<EncodedPdu>)>,
    bytes: usize,
    /// The cap was reached: some PDUs were not kept.
    overflowed: bool,
}

impl Retained {
    fn room(&mut self, n: usize) -> bool {
        if self.bytes + n > RETAIN_CAP {
            self.overflowed = true;
            return false;
        }
        self.bytes += n;
        true
    }

    /// Keep a PDU just sent.
    pub(super) fn keep(&mut self, pdu: &Pdu, encoded: &EncodedPdu) {
        match pdu {
            Pdu::DataIn(d) => {
                if !self.room(encoded.len()) {
                    return;
                }
                let e = self.data_in.entry(d.itt.0).or_default();
                if e.1.len() == d.data_sn as usize {
                    e.1.push(encoded.clone());
                }
                if d.status_present {
                    e.0 = Some(d.stat_sn);
                    self.status.push_back((d.stat_sn, encoded.clone()));
                }
            }
            Pdu::ScsiResponse(r) => {
                if let Some(e) = self.data_in.get_mut(&r.itt.0) {
                    e.0 = Some(r.stat_sn);
                }
                self.keep_status(r.stat_sn, encoded);
            }
            Pdu::TextResponse(r) => self.keep_status(r.stat_sn, encoded),
            Pdu::TaskMgmtResponse(r) => self.keep_status(r.stat_sn, encoded),
            Pdu::LogoutResponse(r) => self.keep_status(r.stat_sn, encoded),
            Pdu::NopIn(r) if r.itt != iscsi_proto::Itt::RESERVED => {
                self.keep_status(r.stat_sn, encoded)
            }
            Pdu::Reject(r) => self.keep_status(r.stat_sn, encoded),
            _ => {}
        }
    }

    fn keep_status(&mut self, sn: SerialNumber, encoded: &EncodedPdu) {
        if self.room(encoded.len()) {
            self.status.push_back((sn, encoded.clone()));
        }
    }

    /// The initiator acknowledged every StatSN before `exp` (its ExpStatSN).
    pub(super) fn acknowledge(&mut self, exp: SerialNumber) {
        while let Some((sn, e)) = self.status.front() {
            if !sn.lt(exp) {
                break;
            }
            self.bytes -= e.len();
            self.status.pop_front();
        }
        let mut freed = 0;
        self.data_in.retain(|_, (st, pdus)| {
            let done = st.is_some_and(|sn| sn.lt(exp));
            if done {
                freed += pdus.iter().map(EncodedPdu::len).sum::<usize>();
            }
            !done
        });
        self.bytes -= freed.min(self.bytes);
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

    /// Retained Data-In of task `itt` with DataSN in `[beg, beg + run)`.
    fn data(&self, itt: u32, beg: u32, run: u32) -> Option<Vec<EncodedPdu>> {
        let (_, pdus) = self.data_in.get(&itt)?;
        let beg = beg as usize;
        let end = if run == 0 {
            pdus.len()
        } else {
            beg.checked_add(run as usize)?
        };
        (beg < end && end <= pdus.len()).then(|| pdus[beg..end].to_vec())
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

impl Connection {
    /// The session's ErrorRecoveryLevel (0 before login).
    pub(super) fn error_recovery_level(&self) -> u8 {
        self.session
            .as_ref()
            .map_or(0, |s| s.params.error_recovery_level)
    }

    /// A SNACK (RFC 7143 §11.16): rejected at ErrorRecoveryLevel 0; at 1 and above,
    /// Status and Data SNACKs resend what was retained, anything else (R2T SNACK
    /// included, as DataACK and R-Data) is rejected.
    pub(super) fn handle_snack(&mut self, s: SnackRequest) {
        if self.error_recovery_level() == 0 {
            return self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::SnackRequest(s));
        }
        let again = match s.snack_type {
            snack_type::STATUS => self
                .retained
                .statuses(SerialNumber(s.beg_run), s.run_length),
            snack_type::DATA_R2T => self.retained.data(s.itt.0, s.beg_run, s.run_length),
            _ => None,
        };
        match again {
            Some(pdus) => {
                for e in pdus {
                    self.conn_stats.sent(e.len() as u64);
                    self.tx.push_back(e);
                }
            }
            None => self.reject_pdu(reject_reason::SNACK_REJECT, &Pdu::SnackRequest(s)),
        }
    }
}
