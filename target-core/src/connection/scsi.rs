//! The SCSI side of a command: which LU answers, checking the CDB before data is
//! solicited, running it, and turning a finished block operation into its outcome.

use super::task::TaskState;
use super::{Connection, IoRequest, IoTag};
use crate::registry::{Lun, Target};
use bytes::Bytes;
use iscsi_proto::pdu::ScsiCommand;
use scsi_sbc::{IoErrorKind, LuContext, Outcome, Plan, Prepared, Sense, SenseKey};
use std::sync::Arc;

/// LOGICAL UNIT NOT SUPPORTED (SPC-4: 25h/00h).
const LUN_NOT_SUPPORTED: Sense = Sense {
    key: SenseKey::IllegalRequest,
    asc: 0x25,
    ascq: 0x00,
    info: None,
};

impl Connection {
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
        let prepared = scsi_sbc::prepare(&c.cdb, &lun.config).map_err(Outcome::check)?;
        Ok((lun, prepared))
    }

    /// Run a task whose data-out has all arrived.
    pub(super) fn execute(&mut self, itt: u32, data: Bytes) {
        let Some(target) = self.target_luns() else {
            return;
        };
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let luns = target.lun_numbers();
        let ctx = LuContext {
            lun: task.lun.lun,
            luns: &luns,
            target_name: &target.name,
            tpgt: self.config.tpgt,
        };
        match scsi_sbc::execute(&task.cdb, &task.lun.config, &ctx, data) {
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
        let outcome = scsi_sbc::complete(op, result);
        self.finish_task(itt, outcome);
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
