//! Command dispatch by opcode: CDB + LU state → a plan.

use crate::asc;
use crate::block_op::{BlockOp, IoErrorKind};
use crate::capacity::{read_capacity10, read_capacity16};
use crate::cdb::Cdb;
use crate::cdb_ext::ExtCdb;
use crate::inquiry::inquiry;
use crate::lu::{DeviceType, LuConfig, LuContext};
use crate::mode::mode_sense;
use crate::pr::Access;
use crate::report_luns::report_luns;
use crate::rw;
use crate::sbc_ext;
use crate::sense::{Sense, SenseKey};
use crate::state::{LuState, ModeValues};
use bytes::Bytes;

/// The most data one READ or WRITE may move, in bytes. It bounds the buffer a single
/// command makes the target hold; reported in blocks as MAXIMUM TRANSFER LENGTH in the
/// Block Limits VPD page, and a larger transfer is refused with INVALID FIELD IN CDB.
pub const MAX_TRANSFER_BYTES: u64 = 16 * 1024 * 1024;

/// SCSI status byte (SAM-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScsiStatus {
    /// 0x00
    Good,
    /// 0x02
    CheckCondition,
    /// 0x08
    Busy,
    /// 0x18
    ReservationConflict,
    /// 0x28
    TaskSetFull,
}

impl ScsiStatus {
    /// The status byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            ScsiStatus::Good => 0x00,
            ScsiStatus::CheckCondition => 0x02,
            ScsiStatus::Busy => 0x08,
            ScsiStatus::ReservationConflict => 0x18,
            ScsiStatus::TaskSetFull => 0x28,
        }
    }
}

/// The finished answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Status byte.
    pub status: ScsiStatus,
    /// Data-in for the initiator, already cut to the CDB's allocation length.
    pub data: Bytes,
    /// Sense data when `status` is CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Send the sense in descriptor format (the control mode page's D_SENSE).
    pub descriptor_sense: bool,
}

impl Outcome {
    /// GOOD status with `data` as data-in.
    pub fn good(data: Bytes) -> Self {
        Outcome {
            status: ScsiStatus::Good,
            data,
            sense: None,
            descriptor_sense: false,
        }
    }

    /// A status without sense or data (RESERVATION CONFLICT, BUSY, ...).
    pub fn status(status: ScsiStatus) -> Self {
        Outcome {
            status,
            data: Bytes::new(),
            sense: None,
            descriptor_sense: false,
        }
    }

    /// The sense bytes to send (fixed or descriptor format), if any.
    pub fn sense_bytes(&self) -> Option<Vec<u8>> {
        self.sense.map(|s| {
            if self.descriptor_sense {
                s.to_descriptor()
            } else {
                s.to_fixed().to_vec()
            }
        })
    }

    /// CHECK CONDITION with `sense`, no data-in.
    pub fn check(sense: Sense) -> Self {
        Outcome {
            status: ScsiStatus::CheckCondition,
            data: Bytes::new(),
            sense: Some(sense),
            descriptor_sense: false,
        }
    }
}

/// What to do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer now.
    Done(Outcome),
    /// Run this operation on the backing store, then call [`complete`].
    Io(BlockOp),
}

/// The result of checking a CDB before any data-out is solicited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// Bytes of data-out the command carries, as its CDB says (e.g. blocks × block size for
    /// WRITE). The transport collects min(this, expected data transfer length) bytes.
    pub data_out_len: u64,
    /// The data-out must be exactly `data_out_len` bytes: WRITE SAME carries one
    /// block and COMPARE AND WRITE its two halves, so an expected data transfer length
    /// that differs is a confused initiator, refused with INVALID FIELD IN CDB before
    /// any data moves (other writes take the overlap and report a residual).
    pub exact: bool,
}

/// Parse the CDB and refuse commands the LU's device type does not implement.
fn parse_for(cdb: &[u8], lu: &LuConfig) -> Result<Cdb, Sense> {
    // SANITIZE is unknown where it is not offered, whatever its fields say.
    if cdb.first() == Some(&0x48) && !lu.sanitize {
        return Err(Sense::invalid_opcode());
    }
    let c = Cdb::parse(cdb)?;
    if lu.device_type == DeviceType::Controller && c.needs_medium() {
        return Err(Sense::invalid_opcode());
    }

    Ok(c)
}

/// Check a CDB before the transport solicits data for it, without LU state (no unit
/// attentions or reservations): see [`prepare_in`].
pub fn prepare(cdb: &[u8], lu: &LuConfig) -> Result<Prepared, Sense> {
    let c = parse_for(cdb, lu)?;
    data_out_len(&c, lu, &ModeValues::default())
}

/// Bytes of data-out a parsed command carries, after the checks that can be made
/// before the data arrives.
fn data_out_len(c: &Cdb, lu: &LuConfig, mode: &ModeValues) -> Result<Prepared, Sense> {
    let data_out_len = match c {
        Cdb::Write(t) => {
            check_writable(lu, mode)?;
            rw::prepare_write(lu, t)?
        }
        Cdb::Read(t) => {
            rw::prepare_read(lu, t)?;
            0
        }
        Cdb::Ext(e) => sbc_ext::prepare(e, lu, mode)?,
        _ => 0,
    };
    let exact = matches!(
        c,
        Cdb::Ext(ExtCdb::WriteSame { .. } | ExtCdb::CompareAndWrite { .. })
    );
    Ok(Prepared {
        data_out_len,
        exact,
    })
}

/// Refuse a write to a read-only or software write-protected LU.
pub(crate) fn check_writable(lu: &LuConfig, mode: &ModeValues) -> Result<(), Sense> {
    if lu.readonly {
        return Err(Sense::write_protected());
    }
    if mode.swp {
        return Err(Sense::new(
            SenseKey::DataProtect,
            asc::SOFTWARE_WRITE_PROTECTED,
        ));
    }
    Ok(())
}

/// Commands a unit attention is not reported on (SAM-5 5.14): INQUIRY, REPORT LUNS,
/// and REQUEST SENSE, which returns it as its data.
fn ua_exempt(c: &Cdb) -> bool {
    matches!(
        c,
        Cdb::Inquiry { .. } | Cdb::ReportLuns { .. } | Cdb::RequestSense { .. }
    )
}

/// How a command touches the medium, for reservation conflicts.
fn access(c: &Cdb) -> Access {
    use crate::cdb_ext::ExtCdb as E;
    match c {
        Cdb::Read(_) | Cdb::ModeSense(_) => Access::Read,
        Cdb::Write(_) | Cdb::SynchronizeCache { .. } => Access::Write,
        Cdb::TestUnitReady
        | Cdb::ReadCapacity10
        | Cdb::ReadCapacity16 { .. }
        | Cdb::Inquiry { .. }
        | Cdb::ReportLuns { .. }
        | Cdb::RequestSense { .. } => Access::Any,
        Cdb::Ext(e) => match e {
            E::Verify { .. }
            | E::PreFetch { .. }
            | E::GetLbaStatus { .. }
            | E::ReadDefectData { .. }
            | E::LogSense { .. }
            | E::ReceiveCopyResults { .. } => Access::Read,
            E::PrIn { .. }
            | E::PrOut { .. }
            | E::ReportOpcodes { .. }
            | E::ReportTmf { .. }
            | E::ReportTargetPortGroups { .. }
            | E::Release => Access::Any,
            E::Reserve => Access::Spc2,
            _ => Access::Write,
        },
    }
}

/// While an SPC-2 reservation is held by another nexus only these run (SPC-2 table 8);
/// RELEASE answers GOOD without releasing.
fn spc2_allowed(c: &Cdb) -> bool {
    use crate::cdb_ext::ExtCdb as E;
    matches!(
        c,
        Cdb::Inquiry { .. }
            | Cdb::ReportLuns { .. }
            | Cdb::RequestSense { .. }
            | Cdb::Ext(
                E::Release
                    | E::ReportOpcodes { .. }
                    | E::ReportTmf { .. }
                    | E::ReportTargetPortGroups { .. }
                    | E::PrIn { .. }
            )
    )
}

/// CHECK CONDITION with `sense`, in the LU's sense format (the control mode page's
/// D_SENSE).
pub fn check_outcome(sense: Sense, lu: &LuConfig, state: &LuState) -> Outcome {
    let mut o = Outcome::check(sense);
    o.descriptor_sense = state.mode.d_sense(lu);
    o
}

/// NOT READY for TEST UNIT READY and media commands while there is no medium to
/// work on.
///
/// - Ejected (START STOP UNIT LOEJ=1 START=0): MEDIUM NOT PRESENT until START STOP
///   UNIT loads it again (it and PREVENT ALLOW MEDIUM REMOVAL still run).
/// - Taken offline by the administrator: a removable LU reports MEDIUM NOT PRESENT, as
///   tgt does; a fixed disk reports LOGICAL UNIT NOT READY, MANUAL INTERVENTION
///   REQUIRED (04h/03h). tgt answers 04h/01h BECOMING READY there, but the LU will not
///   become ready by itself, and initiators (Linux sd) retry 04h/01h for a long time
///   while they fail 04h/03h at once, which is what an offline disk should do.
fn check_ready(c: &Cdb, lu: &LuConfig, state: &LuState) -> Result<(), Sense> {
    if state.sanitizing && !ua_exempt(c) {
        return Err(Sense::new(SenseKey::NotReady, asc::SANITIZE_IN_PROGRESS));
    }
    if !(c.needs_medium() || *c == Cdb::TestUnitReady) {
        return Ok(());
    }
    if state.offline {
        let code = if lu.removable {
            asc::MEDIUM_NOT_PRESENT
        } else {
            asc::NOT_READY_MANUAL_INTERVENTION
        };
        return Err(Sense::new(SenseKey::NotReady, code));
    }
    let loads = matches!(
        c,
        Cdb::Ext(ExtCdb::StartStopUnit { .. } | ExtCdb::PreventAllow { .. })
    );
    if state.ejected && !loads {
        return Err(Sense::new(SenseKey::NotReady, asc::MEDIUM_NOT_PRESENT));
    }
    Ok(())
}

/// The checks every command goes through before its own: parse, unit attention,
/// reservation conflict (SAM-5 5.14, SPC-4 5.13).
fn admit(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<Cdb, Outcome> {
    let nexus = ctx.nexus.id;
    state.ua.see(nexus);
    let c = parse_for(cdb, lu).map_err(|s| check_outcome(s, lu, state))?;
    // Without ALUA, REPORT TARGET PORT GROUPS is refused as the unknown service
    // action it was before, ahead of unit attentions like any unparsable CDB.
    if ctx.alua.is_none() && matches!(c, Cdb::Ext(ExtCdb::ReportTargetPortGroups { .. })) {
        let s = crate::alua::unsupported_without_alua();
        return Err(check_outcome(s, lu, state));
    }
    if !ua_exempt(&c) {
        if let Some(ua) = state.ua.take(nexus) {
            return Err(check_outcome(ua, lu, state));
        }
    }
    let spc2_conflict = state.res.spc2.is_some_and(|o| o != nexus) && !spc2_allowed(&c);
    if spc2_conflict || state.res.check(nexus, access(&c)).is_err() {
        return Err(Outcome::status(ScsiStatus::ReservationConflict));
    }
    // Before any data-out is solicited (a WRITE to an absent medium gets no R2T).
    check_ready(&c, lu, state).map_err(|s| check_outcome(s, lu, state))?;
    // A port in standby, unavailable or transitioning state (SPC-4 5.15.2.4).
    if let Some(pg) = ctx.alua {
        crate::alua::check_access(pg, &c).map_err(|s| check_outcome(s, lu, state))?;
    }
    Ok(c)
}

/// Check a CDB before the transport solicits data for it: unit attentions,
/// reservations, and everything a data-out command can be refused for (opcode,
/// fields, LBA range, transfer limit, write protection), so that no data-out is
/// solicited for a command that would fail. `Err` is the answer to send.
pub fn prepare_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<Prepared, Outcome> {
    let c = admit(cdb, lu, ctx, state)?;
    data_out_len(&c, lu, &state.mode).map_err(|s| check_outcome(s, lu, state))
}

/// Run a command whose data-out has been collected, without LU state (a fresh state is
/// used): see [`execute_in`].
pub fn execute(cdb: &[u8], lu: &LuConfig, ctx: &LuContext<'_>, data_out: Bytes) -> Plan {
    let mut state = LuState::new();
    // As seen by a nexus that has already cleared its power-on unit attention.
    state.ua.see(ctx.nexus.id);
    let _ = state.ua.take(ctx.nexus.id);
    execute_in(cdb, lu, ctx, &mut state, data_out)
}

/// Run a command whose data-out (if any) has been collected and that passed
/// [`prepare_in`] (its unit attention and reservation checks are not repeated).
///
/// `data_out` may be shorter than [`Prepared::data_out_len`] (the initiator's expected
/// data transfer length was smaller): a WRITE then writes exactly the bytes received,
/// from its LBA on, as SAM-5 5.4.2 / FCP-4 overflow handling allows; see `rw::write`.
pub fn execute_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    data_out: Bytes,
) -> Plan {
    match plan(cdb, lu, ctx, state, data_out) {
        Ok(p) => p,
        Err(sense) => Plan::Done(check_outcome(sense, lu, state)),
    }
}

/// REQUEST SENSE parameter data (SPC-4 6.39) for `nexus`, untruncated: its oldest
/// pending unit attention (taken), else a running SANITIZE with its progress (SBC-4
/// 4.11.2), else NO SENSE; descriptor format when `desc` is set.
pub fn request_sense(state: &mut LuState, nexus: u64, desc: bool) -> Vec<u8> {
    match state.ua.take(nexus) {
        None if state.sanitizing => {
            let s = Sense::new(SenseKey::NotReady, asc::SANITIZE_IN_PROGRESS);
            s.with_progress(desc, state.sanitize_progress)
        }
        s => {
            let idle = Sense::new(SenseKey::NoSense, asc::NO_ADDITIONAL_SENSE);
            let s = s.unwrap_or(idle);
            if desc {
                s.to_descriptor()
            } else {
                s.to_fixed().to_vec()
            }
        }
    }
}

/// GOOD with `data` cut to the allocation length (SPC-4 4.2.5.6).
pub fn respond(mut data: Vec<u8>, alloc_len: impl TryInto<usize>) -> Result<Plan, Sense> {
    data.truncate(alloc_len.try_into().unwrap_or(usize::MAX));
    Ok(Plan::Done(Outcome::good(Bytes::from(data))))
}

fn plan(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    data_out: Bytes,
) -> Result<Plan, Sense> {
    state.ua.see(ctx.nexus.id);
    let c = parse_for(cdb, lu)?;
    check_ready(&c, lu, state)?;
    match c {
        Cdb::TestUnitReady => respond(Vec::new(), 0usize),
        // SPC-4 6.39: a pending unit attention, else NO SENSE, in the format DESC asks for.
        Cdb::RequestSense { desc, alloc_len } => {
            respond(request_sense(state, ctx.nexus.id, desc), alloc_len)
        }
        Cdb::Inquiry {
            evpd,
            page_code,
            alloc_len,
        } => respond(inquiry(lu, ctx, evpd, page_code)?, alloc_len),
        Cdb::ModeSense(ms) => respond(mode_sense(lu, state, &ms)?, ms.alloc_len),
        Cdb::ReportLuns {
            select_report,
            alloc_len,
        } => respond(report_luns(ctx.luns, select_report), alloc_len),
        Cdb::ReadCapacity10 => respond(read_capacity10(lu), 8usize),
        Cdb::ReadCapacity16 { alloc_len } => respond(read_capacity16(lu), alloc_len),
        Cdb::Read(t) => rw::read(lu, &t),
        Cdb::Write(t) => {
            check_writable(lu, &state.mode)?;
            let mut t = t;
            // Write-through while the write cache is disabled (WCE=0).
            t.fua |= !state.mode.wce(lu);
            rw::write(lu, &t, data_out)
        }
        Cdb::SynchronizeCache { lba, blocks } => rw::synchronize_cache(lu, lba, blocks),
        Cdb::Ext(e) => sbc_ext::plan(&e, lu, ctx, state, data_out),
    }
}

/// The sense for a failed store operation (no INFORMATION; see [`failure_sense`]).
pub(crate) fn io_error_sense(kind: IoErrorKind) -> Sense {
    match kind {
        IoErrorKind::ReadError | IoErrorKind::ReadErrorAt { .. } => {
            Sense::new(SenseKey::MediumError, asc::UNRECOVERED_READ_ERROR)
        }
        IoErrorKind::WriteError | IoErrorKind::WriteErrorAt { .. } => {
            Sense::new(SenseKey::MediumError, asc::WRITE_ERROR)
        }
        IoErrorKind::NoSpace => Sense::new(
            SenseKey::DataProtect,
            asc::SPACE_ALLOCATION_FAILED_WRITE_PROTECT,
        ),
        IoErrorKind::ReadOnly => Sense::write_protected(),
        IoErrorKind::Other => Sense::new(SenseKey::HardwareError, asc::INTERNAL_TARGET_FAILURE),
        IoErrorKind::Fenced => Sense::new(SenseKey::NotReady, asc::NOT_ACCESSIBLE_UNAVAILABLE),
        IoErrorKind::TimedOut => Sense::new(SenseKey::AbortedCommand, asc::TIMEOUT_ON_LOGICAL_UNIT),
        IoErrorKind::Miscompare { offset } => Sense {
            info: Some(offset),
            ..Sense::new(SenseKey::Miscompare, asc::MISCOMPARE_DURING_VERIFY)
        },
    }
}

/// The sense for a failed store operation of a command on `lu`, as SBC-4 4.18 asks:
/// a medium error carries the LBA in INFORMATION (where the store says it failed, else
/// the command's first LBA), and running out of space is a DATA PROTECT condition only
/// on a thin-provisioned LU; a fully provisioned one reports a WRITE ERROR.
pub fn failure_sense(cdb: &[u8], lu: &LuConfig, op: &BlockOp, kind: IoErrorKind) -> Sense {
    let bs = u64::from(lu.block_size.max(1));
    let first_lba = || op_offset(op).map(|o| o / bs).or_else(|| cdb_lba(cdb));
    let (sense, info) = match kind {
        IoErrorKind::ReadErrorAt { offset } | IoErrorKind::WriteErrorAt { offset } => {
            (io_error_sense(kind), Some(offset / bs))
        }
        IoErrorKind::ReadError | IoErrorKind::WriteError => (io_error_sense(kind), first_lba()),
        IoErrorKind::NoSpace if !lu.thin_provisioning => (
            Sense::new(SenseKey::MediumError, asc::WRITE_ERROR),
            first_lba(),
        ),
        IoErrorKind::NoSpace => (io_error_sense(kind), first_lba()),
        _ => return io_error_sense(kind),
    };
    Sense { info, ..sense }
}

/// The first byte an operation touches, when it has one.
fn op_offset(op: &BlockOp) -> Option<u64> {
    match op {
        BlockOp::Read { offset, .. }
        | BlockOp::Write { offset, .. }
        | BlockOp::WriteSame { offset, .. }
        | BlockOp::Compare { offset, .. }
        | BlockOp::CompareAndWrite { offset, .. }
        | BlockOp::OrWrite { offset, .. }
        | BlockOp::Provisioning { offset, .. } => Some(*offset),
        BlockOp::Unmap { ranges } => ranges.iter().map(|r| r.0).min(),
        BlockOp::Flush
        | BlockOp::SaveState { .. }
        | BlockOp::PrOut { .. }
        | BlockOp::LuEvent { .. }
        | BlockOp::Copy { .. }
        | BlockOp::Device { .. } => None,
    }
}

/// The LOGICAL BLOCK ADDRESS field of a SYNCHRONIZE CACHE (10) or (16) CDB.
fn cdb_lba(cdb: &[u8]) -> Option<u64> {
    match cdb.first()? {
        0x35 if cdb.len() >= 6 => Some(u64::from(u32::from_be_bytes(cdb[2..6].try_into().ok()?))),
        0x91 if cdb.len() >= 10 => Some(u64::from_be_bytes(cdb[2..10].try_into().ok()?)),
        _ => None,
    }
}

/// Turn a finished block operation into the command's outcome.
///
/// A read's data is cut to the requested length should a store return more.
pub fn complete(op: &BlockOp, result: Result<Bytes, IoErrorKind>) -> Outcome {
    match (op, result) {
        (BlockOp::Read { len, .. }, Ok(mut data)) => {
            data.truncate(usize::try_from(*len).unwrap_or(usize::MAX));
            Outcome::good(data)
        }
        (_, Ok(_)) => Outcome::good(Bytes::new()),
        (_, Err(kind)) => Outcome::check(io_error_sense(kind)),
    }
}

/// [`complete`] for a command that needs its CDB and LU to build the answer (GET LBA
/// STATUS turns the store's extent map into LBA status descriptors), the LU's sense
/// format, and the LU state a finished operation updates: the held status of an
/// EXTENDED COPY from `nexus` (the I_T nexus the command came from), the end of a
/// SANITIZE (a target must also clear [`LuState::sanitizing`] itself when the store
/// operation ends after its task was aborted).
pub fn complete_in(
    cdb: &[u8],
    lu: &LuConfig,
    nexus: u64,
    state: &mut LuState,
    op: &BlockOp,
    result: Result<Bytes, IoErrorKind>,
) -> Outcome {
    let mut o = match (op, result) {
        (BlockOp::Provisioning { .. }, Ok(extents)) => sbc_ext::lba_status(cdb, lu, &extents),
        (BlockOp::PrOut { .. }, result) => crate::pr_shared::complete_out(state, op, result),
        (BlockOp::Copy { held, .. }, result) => {
            let sense = result.as_ref().err().map(|k| io_error_sense(*k));
            let sense = sense.unwrap_or(Sense::new(SenseKey::NoSense, asc::NO_ADDITIONAL_SENSE));
            crate::xcopy::copy_done(state, nexus, *held, result, sense)
        }
        (op, Err(kind)) => Outcome::check(failure_sense(cdb, lu, op, kind)),
        (op, result) => complete(op, result),
    };
    if cdb.first() == Some(&0x48) {
        state.sanitizing = false;
    }
    o.descriptor_sense = state.mode.d_sense(lu);
    o
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
