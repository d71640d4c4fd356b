//! The SCSI side of a command: which LU answers, checking the CDB before data is
//! solicited, running it, and turning a finished block operation into its outcome.
//!
//! The LU's mutable state (unit attentions, reservations, mode values) lives in
//! `Lun::state`; it is locked only for the duration of one `scsi_sbc` call. The I_T
//! nexus of this connection is named by its initiator port, InitiatorName + ISID
//! (RFC 7143 §4.4.1; SPC-4 5.13.1: registrations belong to the I_T nexus), so a
//! re-login with the same ISID finds its registrations and unit attentions again.
//!
//! Hooks for the rest of the connection: [`Connection::scsi_lu_reset`] (LOGICAL UNIT
//! RESET, target resets) and [`Connection::scsi_nexus_lost`] (the session ends).

use super::task::TaskState;
use super::{Connection, IoRequest, IoTag};
use crate::registry::{Lun, Target};
use bytes::Bytes;
use iscsi_proto::pdu::ScsiCommand;
use scsi_sbc::{IoErrorKind, LuContext, LuState, Nexus, Outcome, Plan, Prepared, Sense, SenseKey};
use std::sync::{Arc, MutexGuard};

/// LOGICAL UNIT NOT SUPPORTED (SPC-4: 25h/00h).
const LUN_NOT_SUPPORTED: Sense = Sense {
    key: SenseKey::IllegalRequest,
    asc: 0x25,
    ascq: 0x00,
    info: None,
};

/// Lock an LU's state; a poisoned lock (a panic elsewhere) still holds valid state.
fn lock(lun: &Lun) -> MutexGuard<'_, LuState> {
    lun.lock_state()
}

/// The nexus id `scsi_sbc` keys reservations and unit attentions by: a 64-bit FNV-1a
/// hash of the initiator port name (InitiatorName, ISID). Deterministic, so it is the
/// same after a re-login or a daemon restart (persisted registrations find their
/// nexus again). Two different ports colliding is a 2^-64 chance per pair; an
/// initiator able to pick its name and ISID can impersonate a port anyway.
pub(crate) fn initiator_port_id(initiator: &str, isid: iscsi_proto::Isid) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = initiator.bytes().chain([0]).chain(isid.0);
    bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

impl Connection {
    /// This connection's I_T nexus id (0 before login).
    fn nexus_id(&self) -> u64 {
        self.session
            .as_ref()
            .map_or(0, |s| initiator_port_id(&s.initiator, s.isid))
    }

    /// This connection's I_T nexus.
    fn nexus(&self) -> Nexus<'_> {
        Nexus {
            id: self.nexus_id(),
            initiator: self.initiator_name(),
        }
    }

    /// Find the LU a command addresses and check its CDB. `Err` is the answer to send
    /// at once (no data is solicited for it).
    pub(super) fn scsi_prepare(
        &mut self,
        target: &Arc<Target>,
        c: &ScsiCommand,
    ) -> Result<(Arc<Lun>, Prepared), Outcome> {
        let lun_no = c.lun.to_lun();
        let opcode = c.cdb.first().copied().unwrap_or(0);
        let lun = match target.lun(lun_no) {
            Some(l) => l,
            // REPORT LUNS and INQUIRY must work on any LUN (SPC-4 §6.33, §6.6.2);
            // LUN 0 answers REPORT LUNS for the whole target.
            None if opcode == 0xa0 => match target.lun(0) {
                Some(l) => l,
                None => return Err(Outcome::check(LUN_NOT_SUPPORTED)),
            },
            None if opcode == 0x12 => return Err(Outcome::good(absent_lun_inquiry(&c.cdb))),
            None => return Err(Outcome::check(LUN_NOT_SUPPORTED)),
        };
        let luns = target.lun_numbers();
        let ctx = LuContext {
            lun: lun.lun,
            luns: &luns,
            target_name: &target.name,
            tpgt: self.config.tpgt,
            nexus: self.nexus(),
        };
        let prepared = scsi_sbc::prepare_in(&c.cdb, &lun.config, &ctx, &mut lock(&lun))?;
        Ok((lun, prepared))
    }

    /// Run a task whose data-out has all arrived.
    pub(super) fn execute(&mut self, itt: u32, data: Bytes) {
        let Some(target) = self.target_luns() else {
            return;
        };
        let nexus_id = self.nexus_id();
        let initiator = self.initiator_name().to_string();
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let luns = target.lun_numbers();
        let ctx = LuContext {
            lun: task.lun.lun,
            luns: &luns,
            target_name: &target.name,
            tpgt: self.config.tpgt,
            nexus: Nexus {
                id: nexus_id,
                initiator: &initiator,
            },
        };
        let plan = {
            let mut state = lock(&task.lun);
            scsi_sbc::execute_in(&task.cdb, &task.lun.config, &ctx, &mut state, data)
        };
        match plan {
            Plan::Done(outcome) => self.finish_task(itt, outcome),
            Plan::Io(op) => {
                let Some(store) = task.lun.store.clone() else {
                    // A media command reached an LU without a store (the controller):
                    // INTERNAL TARGET FAILURE rather than a panic.
                    let sense = Sense {
                        key: SenseKey::HardwareError,
                        asc: 0x44,
                        ascq: 0,
                        info: None,
                    };
                    return self.finish_task(itt, Outcome::check(sense));
                };
                task.state = TaskState::Io(op.clone());
                let tag = IoTag(self.next_io_tag);
                self.next_io_tag += 1;
                self.io_tags.insert(tag, itt);
                self.io_out.push_back(IoRequest { tag, store, op });
            }
        }
    }

    /// A block operation of task `itt` finished.
    pub(super) fn complete_io(&mut self, itt: u32, result: Result<Bytes, IoErrorKind>) {
        let Some(task) = self.tasks.get(&itt) else {
            self.stray_completions += 1;
            return;
        };
        let TaskState::Io(op) = &task.state else {
            return;
        };
        let outcome = {
            let state = lock(&task.lun);
            scsi_sbc::complete_in(&task.cdb, &task.lun.config, &state, op, result)
        };
        self.finish_task(itt, outcome);
    }

    /// LOGICAL UNIT RESET of `lun` (or, with `None`, a target reset of every LU):
    /// unit attentions for every nexus, SPC-2 reservations released (SAM-5 6.3.3).
    pub(super) fn scsi_lu_reset(&mut self, lun: Option<u64>) {
        let Some(target) = self.target_luns() else {
            return;
        };
        for n in target.lun_numbers() {
            if lun.is_none_or(|l| l == n) {
                if let Some(l) = target.lun(n) {
                    lock(&l).reset();
                }
            }
        }
    }

    /// The session (I_T nexus) ends: its unit attentions and SPC-2 reservations go.
    pub(super) fn scsi_nexus_lost(&mut self) {
        let Some(target) = self.target_luns() else {
            return;
        };
        let id = self.nexus().id;
        for n in target.lun_numbers() {
            if let Some(l) = target.lun(n) {
                lock(&l).nexus_lost(id);
            }
        }
    }
}

/// Standard INQUIRY data for a LUN that does not exist: peripheral qualifier 011b,
/// device type 1Fh (SPC-4 §6.6.2), cut to the allocation length.
fn absent_lun_inquiry(cdb: &[u8]) -> Bytes {
    let alloc = if cdb.len() >= 5 {
        usize::from(u16::from_be_bytes([cdb[3], cdb[4]]))
    } else {
        0
    };
    let mut d = vec![0u8; 36];
    d[0] = 0x7f;
    d[2] = 0x06;
    d[3] = 0x02;
    d[4] = 31;
    d.truncate(alloc.min(36));
    Bytes::from(d)
}

#[cfg(test)]
mod tests {
    use super::initiator_port_id;
    use iscsi_proto::Isid;

    #[test]
    fn initiator_port_id_is_stable_and_distinguishes_ports() {
        let name = "iqn.2001-04.com.example:i1";
        let isid = Isid([0x80, 0, 0x23, 0x45, 0, 1]);
        // A fixed value: persisted reservations depend on it never changing.
        assert_eq!(initiator_port_id(name, isid), initiator_port_id(name, isid));
        // FNV-1a 64 of seven zero bytes (empty name, NUL, zero ISID), computed independently.
        assert_eq!(initiator_port_id("", Isid([0; 6])), 0x778b_1a14_b687_6aa7);
        let other = Isid([0x80, 0, 0x23, 0x45, 0, 2]);
        assert_ne!(
            initiator_port_id(name, isid),
            initiator_port_id(name, other)
        );
        assert_ne!(
            initiator_port_id(name, isid),
            initiator_port_id("iqn.2001-04.com.example:i2", isid)
        );
    }
}
