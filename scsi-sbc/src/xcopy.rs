//! The copy manager: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18),
//! and the THIRD-PARTY COPY VPD page that announces them (SPC-4 7.8.17).
//!
//! A copy names its source and destination logical units by identification CSCD
//! descriptors (E4h) carrying a designator the LU reports in its DEVICE IDENTIFICATION
//! page; only LUs of this target (the addressed one and [`LuContext::peers`]) can be
//! named. Block-to-block segment descriptors (02h) are carried out as one
//! [`BlockOp::Copy`]; every other descriptor type is refused with the sense SPC-4
//! assigns to it.
//!
//! The copy manager reaches the other LUs of a copy as the initiator's own I_T nexus
//! would (SPC-4 5.16.4.1): once a copy is planned, the target checks each of them with
//! [`check_copy_target`] (their reservations, readiness and write protection) before
//! any I/O starts, and ends a refused copy with [`copy_refused`].
//!
//! Results of copies with LIST ID USAGE 00b are held per I_T nexus and list identifier
//! (at most [`MAX_HELD_COPIES`], the MAXIMUM CONCURRENT COPIES reported) for RECEIVE
//! COPY RESULTS COPY STATUS and FAILED SEGMENT DETAILS.

use crate::asc::{self, AscAscq};
use crate::block_op::{BlockOp, CopySegment, IoErrorKind};
use crate::dispatch::{check_writable, respond, Outcome, Plan};
use crate::lu::{LuConfig, LuContext};
use crate::pr::Access;
use crate::sense::{Sense, SenseKey};
use crate::state::{CopyStatus, LuState};
use crate::vpd::lu_designators;
use bytes::Bytes;

/// MAXIMUM CSCD DESCRIPTOR COUNT.
const MAX_CSCD_DESCRIPTORS: u16 = 8;
/// MAXIMUM SEGMENT DESCRIPTOR COUNT.
const MAX_SEGMENT_DESCRIPTORS: u16 = 8;
/// MAXIMUM DESCRIPTOR LIST LENGTH, in bytes (CSCD and segment descriptors together).
const MAX_DESCRIPTOR_LIST_LEN: u32 = 1024;
/// Parameter list header (SPC-4 table 103).
const HEADER_LEN: usize = 16;
/// Identification CSCD descriptor: type code and length (SPC-4 6.4.5.2).
const IDENTIFICATION_CSCD: u8 = 0xe4;
const CSCD_LEN: usize = 32;
/// Block device to block device segment descriptor (SPC-4 6.4.6.5) and its length.
const BLOCK_TO_BLOCK: u8 = 0x02;
const BLOCK_TO_BLOCK_LEN: usize = 28;
/// COPY MANAGER STATUS values (SPC-4 table 183).
const IN_PROGRESS: u8 = 0x00;
const COMPLETED: u8 = 0x01;
const COMPLETED_WITH_ERRORS: u8 = 0x02;
/// RECEIVE COPY RESULTS service actions (SPC-4 table 180).
const COPY_STATUS: u8 = 0x00;
const OPERATING_PARAMETERS: u8 = 0x03;
const FAILED_SEGMENT_DETAILS: u8 = 0x04;
/// Held copy results (LIST ID USAGE 00b) per I_T nexus, each under its own list
/// identifier; reported as MAXIMUM and TOTAL CONCURRENT COPIES. A copy beyond it
/// discards the oldest finished result (SPC-4 6.18.1 lets the copy manager discard
/// held data when it needs the resources).
pub(crate) const MAX_HELD_COPIES: usize = 4;
/// FAILED SEGMENT DETAILS parameter data before the sense data (SPC-4 table 187).
const FAILED_SEGMENT_HEADER_LEN: usize = 60;
/// CHECK CONDITION, the COPY COMMAND STATUS of a failed copy.
const CHECK_CONDITION: u8 = 0x02;
/// 0Dh/01h THIRD PARTY DEVICE FAILURE: a copy target answered other than GOOD (here:
/// RESERVATION CONFLICT), as SCST's copy manager reports it.
const THIRD_PARTY_DEVICE_FAILURE: AscAscq = AscAscq {
    asc: 0x0d,
    ascq: 0x01,
};

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(b: &[u8]) -> u64 {
    u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn length_error() -> Sense {
    Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR)
}

fn param_error() -> Sense {
    Sense::illegal_request(asc::INVALID_FIELD_IN_PARAMETER_LIST)
}

fn copy_aborted(code: AscAscq) -> Sense {
    Sense::new(SenseKey::CopyAborted, code)
}

/// One parsed block-to-block segment descriptor.
struct Segment {
    src: usize,
    dst: usize,
    /// Count in destination blocks (DC=1) rather than source blocks.
    dc: bool,
    blocks: u64,
    src_lba: u64,
    dst_lba: u64,
}

/// The CSCD descriptors: for each, the LU it names, if it is one of ours. Refuses
/// other descriptor types and more descriptors than we take.
fn cscds<'a>(
    bytes: &[u8],
    candidates: &[(u64, &'a LuConfig)],
) -> Result<Vec<Option<(u64, &'a LuConfig)>>, Sense> {
    let mut out = Vec::new();
    for d in bytes.chunks(CSCD_LEN) {
        if d[0] != IDENTIFICATION_CSCD {
            return Err(Sense::illegal_request(
                asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE,
            ));
        }
        if d.len() < CSCD_LEN {
            return Err(length_error());
        }
        // LU ID TYPE and NUL (byte 1 bits 7:5) are ignored (SPC-4); PERIPHERAL DEVICE
        // TYPE must be a block device.
        if d[1] & 0x1f != 0 {
            return Err(param_error());
        }
        // Designation descriptor (bytes 4..24, SPC-4 table 482): association 0 (LU).
        let (kind, assoc, len) = (d[5] & 0x0f, (d[5] >> 4) & 0x03, usize::from(d[7]));
        if len > 20 {
            return Err(param_error());
        }
        let id = &d[8..8 + len];
        let found = candidates.iter().copied().find(|(_, c)| {
            assoc == 0
                && c.is_disk()
                && lu_designators(c)
                    .iter()
                    .any(|(t, v)| *t == kind && v.as_slice() == id)
        });
        out.push(found);
    }
    if out.len() > usize::from(MAX_CSCD_DESCRIPTORS) {
        return Err(Sense::illegal_request(asc::TOO_MANY_TARGET_DESCRIPTORS));
    }
    Ok(out)
}

/// The segment descriptors; refuses other types and more than we take.
fn segments(mut bytes: &[u8]) -> Result<Vec<Segment>, Sense> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 4 {
            return Err(length_error());
        }
        if bytes[0] != BLOCK_TO_BLOCK {
            return Err(Sense::illegal_request(
                asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE,
            ));
        }
        if 4 + be16(&bytes[2..4]) != BLOCK_TO_BLOCK_LEN {
            return Err(param_error());
        }
        let Some(d) = bytes.get(..BLOCK_TO_BLOCK_LEN) else {
            return Err(length_error());
        };
        out.push(Segment {
            dc: d[1] & 0x02 != 0,
            src: be16(&d[4..6]),
            dst: be16(&d[6..8]),
            blocks: be16(&d[10..12]) as u64,
            src_lba: be64(&d[12..20]),
            dst_lba: be64(&d[20..28]),
        });
        bytes = &bytes[BLOCK_TO_BLOCK_LEN..];
    }
    if out.len() > usize::from(MAX_SEGMENT_DESCRIPTORS) {
        return Err(Sense::illegal_request(asc::TOO_MANY_SEGMENT_DESCRIPTORS));
    }
    Ok(out)
}

/// Byte offset of `blocks` blocks at `lba` of `lu`, if they lie inside it.
fn extent(lu: &LuConfig, lba: u64, blocks: u64) -> Option<u64> {
    let end = lba.checked_add(blocks)?;
    (end <= lu.num_blocks).then(|| lba * u64::from(lu.block_size))
}

/// EXTENDED COPY (LID1) with its parameter list `data` (SPC-4 6.4).
pub(crate) fn extended_copy(
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    param_len: u32,
    data: &[u8],
) -> Result<Plan, Sense> {
    if param_len == 0 {
        return respond(Vec::new(), 0usize);
    }
    let data = data.get(..param_len as usize).unwrap_or(data);
    if data.len() < HEADER_LEN {
        return Err(length_error());
    }
    let list_id = data[0];
    let usage = (data[1] >> 3) & 0x03;
    let cscd_len = be16(&data[2..4]);
    let seg_len = be32(&data[8..12]);
    let inline_len = be32(&data[12..16]);
    let total = HEADER_LEN as u64 + cscd_len as u64 + seg_len + inline_len;
    if total > data.len() as u64 || cscd_len as u64 + seg_len > u64::from(MAX_DESCRIPTOR_LIST_LEN) {
        return Err(length_error());
    }
    // No inline or held data; LIST ID USAGE 01b is reserved, 11b needs list id 0.
    if inline_len != 0 || usage == 0b01 || (usage == 0b11 && list_id != 0) {
        return Err(param_error());
    }
    let mut candidates = vec![(ctx.lun, lu)];
    candidates.extend(ctx.peers.iter().copied());
    let seg_start = HEADER_LEN + cscd_len;
    let cscds = cscds(&data[HEADER_LEN..seg_start], &candidates)?;
    let segs = segments(&data[seg_start..seg_start + seg_len as usize])?;
    let held = usage == 0b00;
    let (out, bytes) = match plan_segments(lu, ctx, state, &cscds, &segs) {
        Ok(planned) => planned,
        Err(sense) => {
            // An error in a segment aborts the copy (COPY ABORTED): its details are
            // held like those of a copy that fails while it runs (SPC-4 6.18.4).
            if held && sense.key == SenseKey::CopyAborted {
                let failed = CopyStatus {
                    list_id,
                    status: COMPLETED_WITH_ERRORS,
                    failure: Some(sense),
                    ..CopyStatus::default()
                };
                hold(state, ctx.nexus.id, failed);
            }
            return Err(sense);
        }
    };
    let done = out.is_empty();
    if held {
        let status = CopyStatus {
            list_id,
            status: if done { COMPLETED } else { IN_PROGRESS },
            segments: u16::try_from(segs.len()).unwrap_or(u16::MAX),
            bytes,
            ..CopyStatus::default()
        };
        hold(state, ctx.nexus.id, status);
    }
    if done {
        return respond(Vec::new(), 0usize);
    }
    Ok(Plan::Io(BlockOp::Copy {
        segments: out,
        fua: !state.mode.wce(lu),
        held: held.then_some(list_id),
    }))
}

/// The copy segments of block-to-block descriptors `segs` between the LUs `cscds`
/// name, and the bytes they move; refuses a segment that names no LU of ours, lies
/// beyond an LU's capacity or writes a write-protected LU.
fn plan_segments(
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &LuState,
    cscds: &[Option<(u64, &LuConfig)>],
    segs: &[Segment],
) -> Result<(Vec<CopySegment>, u64), Sense> {
    let mut out = Vec::with_capacity(segs.len());
    let mut bytes = 0u64;
    for s in segs {
        let named = |i: usize| match cscds.get(i) {
            None => Err(copy_aborted(asc::UNREACHABLE_COPY_TARGET)),
            Some(None) => Err(copy_aborted(asc::COPY_TARGET_NOT_REACHABLE)),
            Some(Some(c)) => Ok(*c),
        };
        let (src_lun, src) = named(s.src)?;
        let (dst_lun, dst) = named(s.dst)?;
        let (sbs, dbs) = (u64::from(src.block_size), u64::from(dst.block_size));
        let len = s.blocks * if s.dc { dbs } else { sbs };
        if sbs == 0 || dbs == 0 || len % sbs != 0 || len % dbs != 0 {
            return Err(param_error());
        }
        // SPC-4 6.4.3: a segment beyond a copy target's capacity aborts the copy.
        let range_error = copy_aborted(asc::NO_ADDITIONAL_SENSE);
        let src_offset = extent(src, s.src_lba, len / sbs).ok_or(range_error)?;
        let dst_offset = extent(dst, s.dst_lba, len / dbs).ok_or(range_error)?;
        if dst.readonly {
            return Err(Sense::write_protected());
        }
        if dst_lun == ctx.lun {
            check_writable(lu, &state.mode)?;
        }
        bytes += len;
        if len > 0 {
            out.push(CopySegment {
                src: src_lun,
                dst: dst_lun,
                src_offset,
                dst_offset,
                len,
            });
        }
    }
    Ok((out, bytes))
}

/// Hold `status` for `nexus`: it replaces a result held under the same list identifier
/// (SPC-4 6.18.1), and past [`MAX_HELD_COPIES`] the oldest finished result (else the
/// oldest: a copy whose task was aborted never finishes) makes room.
fn hold(state: &mut LuState, nexus: u64, status: CopyStatus) {
    let held = state.copies.entry(nexus).or_default();
    held.retain(|c| c.list_id != status.list_id);
    if held.len() >= MAX_HELD_COPIES {
        let oldest = held.iter().position(|c| c.status != IN_PROGRESS);
        held.remove(oldest.unwrap_or(0));
    }
    held.push(status);
}

/// The held copy of `nexus` that a finished copy operation belongs to: its newest copy
/// in progress. A store operation does not name its list identifier; one nexus runs
/// its held copies one after the other in practice (libiscsi, sg3_utils, ddpt).
fn running(state: &mut LuState, nexus: u64, list_id: u8) -> Option<&mut CopyStatus> {
    let held = state.copies.get_mut(&nexus)?;
    held.iter_mut()
        .rev()
        .find(|c| c.list_id == list_id && c.status == IN_PROGRESS)
}

/// The outcome of a finished [`BlockOp::Copy`] for `nexus`, noted in its held copy
/// status. A failure aborts the copy with the store's error as additional sense, held
/// for FAILED SEGMENT DETAILS.
pub(crate) fn copy_done(
    state: &mut LuState,
    nexus: u64,
    held: Option<u8>,
    result: Result<Bytes, IoErrorKind>,
    error_sense: Sense,
) -> Outcome {
    let failure = result.is_err().then_some(Sense {
        key: SenseKey::CopyAborted,
        ..error_sense
    });
    if let Some(c) = held.and_then(|id| running(state, nexus, id)) {
        c.status = if failure.is_some() {
            COMPLETED_WITH_ERRORS
        } else {
            COMPLETED
        };
        c.failure = failure;
    }
    match failure {
        None => Outcome::good(Bytes::new()),
        Some(sense) => Outcome::check(sense),
    }
}

/// May the copy manager use LUN `lun` (configured as `lu`, in state `state`) as `op`
/// does, on behalf of I_T nexus `nexus`? A target calls this for every LU other than
/// the addressed one that a planned [`BlockOp::Copy`] names, before it runs the copy,
/// locking one LU's state at a time; on `Err` it ends the command with
/// [`copy_refused`] and runs nothing, so nothing is written.
///
/// SPC-4 5.16.4.1: the copy manager accesses a copy target as the initiator's own
/// nexus would; what that nexus would be refused ends the copy:
/// - a reservation held by another nexus (SPC-2 RESERVE, or a persistent reservation
///   that excludes this nexus from reading the source or writing the destination):
///   COPY ABORTED, THIRD PARTY DEVICE FAILURE (0Dh/01h): the copy target would answer
///   RESERVATION CONFLICT;
/// - an LU that is offline, ejected or being sanitized: COPY ABORTED, COPY TARGET
///   DEVICE NOT REACHABLE (0Dh/02h);
/// - a destination that is read-only or software write protected (control mode page
///   SWP): DATA PROTECT, as for the addressed LU (27h/00h, 27h/02h).
pub fn check_copy_target(
    op: &BlockOp,
    lun: u64,
    lu: &LuConfig,
    state: &LuState,
    nexus: u64,
) -> Result<(), Sense> {
    let BlockOp::Copy { segments, .. } = op else {
        return Ok(());
    };
    let reads = segments.iter().any(|s| s.src == lun);
    let writes = segments.iter().any(|s| s.dst == lun);
    if !reads && !writes {
        return Ok(());
    }
    if state.offline || state.ejected || state.sanitizing {
        return Err(copy_aborted(asc::COPY_TARGET_NOT_REACHABLE));
    }
    let access = if writes { Access::Write } else { Access::Read };
    if state.res.check(nexus, access).is_err() {
        return Err(copy_aborted(THIRD_PARTY_DEVICE_FAILURE));
    }
    if writes {
        check_writable(lu, &state.mode)?;
    }
    Ok(())
}

/// End an EXTENDED COPY from `nexus` to the LU `lu` (in state `state`) that
/// [`check_copy_target`] refused with `sense` before it ran: the copy's held status
/// records the failure, and the answer is CHECK CONDITION in the LU's sense format.
pub fn copy_refused(
    lu: &LuConfig,
    nexus: u64,
    state: &mut LuState,
    op: &BlockOp,
    sense: Sense,
) -> Outcome {
    let held = match op {
        BlockOp::Copy { held, .. } => *held,
        _ => None,
    };
    if let Some(c) = held.and_then(|id| running(state, nexus, id)) {
        c.status = COMPLETED_WITH_ERRORS;
        c.bytes = 0;
        c.failure = (sense.key == SenseKey::CopyAborted).then_some(sense);
    }
    let mut o = Outcome::check(sense);
    o.descriptor_sense = state.mode.d_sense(lu);
    o
}

/// RECEIVE COPY RESULTS (SPC-4 6.18): COPY STATUS or FAILED SEGMENT DETAILS of the
/// nexus's copy held under `list_id`, or the OPERATING PARAMETERS.
pub(crate) fn receive_copy_results(
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    sa: u8,
    list_id: u8,
    alloc_len: u32,
) -> Result<Plan, Sense> {
    let nexus = ctx.nexus.id;
    let descriptor = state.mode.d_sense(lu);
    let held = state.copies.get_mut(&nexus);
    let copy = held.and_then(|h| h.iter_mut().find(|c| c.list_id == list_id));
    let data = match (sa, copy) {
        (OPERATING_PARAMETERS, _) => return respond(operating_parameters(lu), alloc_len),
        (COPY_STATUS, Some(c)) if !c.reported => {
            // A finished copy's status is discarded once reported (its failed segment
            // details stay until they are read).
            c.reported = c.status != IN_PROGRESS;
            copy_status(c)
        }
        (COPY_STATUS, _) => return Err(Sense::invalid_field_in_cdb()),
        (FAILED_SEGMENT_DETAILS, Some(c)) => {
            let d = failed_segment_details(c, descriptor);
            // Discarded once sent whole, or when asked for with ALLOCATION LENGTH 0
            // (SPC-4 6.18.4); kept when the allocation length cut them short.
            if alloc_len == 0 || alloc_len as usize >= d.len() {
                c.failure = None;
            }
            d
        }
        (FAILED_SEGMENT_DETAILS, None) => vec![0; 4],
        _ => return Err(Sense::invalid_field_in_cdb()),
    };
    if let Some(held) = state.copies.get_mut(&nexus) {
        held.retain(|c| !c.reported || c.failure.is_some());
        if held.is_empty() {
            state.copies.remove(&nexus);
        }
    }
    respond(data, alloc_len)
}

/// FAILED SEGMENT DETAILS parameter data (SPC-4 table 187): CHECK CONDITION and the
/// sense data the failed copy ended with, in the LU's sense format; no details (only
/// an AVAILABLE DATA of zero) for a copy that did not fail.
fn failed_segment_details(c: &CopyStatus, descriptor: bool) -> Vec<u8> {
    let Some(sense) = c.failure else {
        return vec![0; 4];
    };
    let sense = if descriptor {
        sense.to_descriptor()
    } else {
        sense.to_fixed().to_vec()
    };
    let mut d = vec![0u8; FAILED_SEGMENT_HEADER_LEN];
    let available = (FAILED_SEGMENT_HEADER_LEN + sense.len() - 4) as u32;
    d[0..4].copy_from_slice(&available.to_be_bytes());
    d[56] = CHECK_CONDITION;
    d[58..60].copy_from_slice(&(sense.len() as u16).to_be_bytes());
    d.extend_from_slice(&sense);
    d
}

/// COPY STATUS parameter data (SPC-4 table 182).
fn copy_status(c: &CopyStatus) -> Vec<u8> {
    // TRANSFER COUNT UNITS: 00h bytes, 01h KiB, 02h MiB, ... (the smallest that fits).
    let mut units = 0u8;
    let mut count = c.bytes;
    while count > u64::from(u32::MAX) {
        count >>= 10;
        units += 1;
    }
    let mut d = vec![0, 0, 0, 8, c.status];
    d.extend_from_slice(&c.segments.to_be_bytes());
    d.push(units);
    d.extend_from_slice(&(count as u32).to_be_bytes());
    d
}

/// OPERATING PARAMETERS parameter data (SPC-4 table 185).
fn operating_parameters(lu: &LuConfig) -> Vec<u8> {
    let mut d = vec![0u8; 44];
    d[4] = 0x01; // SNLID: LIST ID USAGE 11b is supported
    d[8..10].copy_from_slice(&MAX_CSCD_DESCRIPTORS.to_be_bytes());
    d[10..12].copy_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
    d[12..16].copy_from_slice(&MAX_DESCRIPTOR_LIST_LEN.to_be_bytes());
    // MAXIMUM SEGMENT LENGTH: what a block-to-block descriptor can name.
    let max_segment = u64::from(u16::MAX) * u64::from(lu.block_size);
    let max_segment = u32::try_from(max_segment).unwrap_or(u32::MAX);
    d[16..20].copy_from_slice(&max_segment.to_be_bytes());
    // No inline data, held data or stream devices (bytes 20-31 zero).
    // TOTAL and MAXIMUM CONCURRENT COPIES: the held copies of one nexus.
    d[34..36].copy_from_slice(&(MAX_HELD_COPIES as u16).to_be_bytes());
    d[36] = MAX_HELD_COPIES as u8;
    let granularity = lu.block_size.max(1).trailing_zeros() as u8;
    d[37] = granularity; // DATA SEGMENT GRANULARITY (log2)
    d[38] = granularity; // INLINE DATA GRANULARITY
    d[39] = granularity; // HELD DATA GRANULARITY
    let codes = [BLOCK_TO_BLOCK, IDENTIFICATION_CSCD];
    d[43] = codes.len() as u8; // IMPLEMENTED DESCRIPTOR LIST LENGTH
    d.extend_from_slice(&codes);
    let available = (d.len() - 4) as u32;
    d[0..4].copy_from_slice(&available.to_be_bytes());
    d
}

/// THIRD-PARTY COPY VPD page body (SPC-4 7.8.17): the Supported Commands descriptor
/// (EXTENDED COPY LID1; RECEIVE COPY RESULTS COPY STATUS, OPERATING PARAMETERS and
/// FAILED SEGMENT DETAILS) and the Supported Descriptors descriptor.
pub(crate) fn third_party_copy_page() -> Vec<u8> {
    let commands = [
        0x83,
        1,
        0x00,
        0x84,
        3,
        COPY_STATUS,
        OPERATING_PARAMETERS,
        FAILED_SEGMENT_DETAILS,
    ];
    let mut d = Vec::new();
    let mut descriptor = |kind: u16, body: &[u8]| {
        let len = body.len().div_ceil(4) * 4;
        d.extend_from_slice(&kind.to_be_bytes());
        d.extend_from_slice(&(len as u16).to_be_bytes());
        d.extend_from_slice(body);
        d.resize(d.len() + len - body.len(), 0);
    };
    let mut body = vec![commands.len() as u8];
    body.extend_from_slice(&commands);
    descriptor(0x0001, &body);
    descriptor(0x0004, &[2, BLOCK_TO_BLOCK, IDENTIFICATION_CSCD]);
    d
}

#[cfg(test)]
#[path = "xcopy_tests.rs"]
mod tests;
