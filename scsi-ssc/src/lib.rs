//! Sans-IO SCSI stream device (SSC-3): a virtual tape drive over a tape image in tgt's
//! format, as tgt's `--device-type tape` serves it.
//!
//! Two halves, because a tape's state is its medium's:
//!
//! - the [`Drive`] keeps the position on the tape and the drive's settings (block
//!   length, compression, write protect, removal prevention) and runs every command
//!   that touches them over a [`TapeMedium`] (the image's bytes). The store that owns
//!   the image file (`backends::TapeStore`) holds it and runs it whole on a worker:
//!   one command may walk many headers, which would be one I/O round trip each
//!   through the block-operation interface.
//! - [`prepare_in`], [`execute_in`] and [`complete_in`] are the target's side, with
//!   `scsi_sbc`'s API so that the target drives a tape LU like any other: they answer
//!   INQUIRY, REPORT LUNS, REQUEST SENSE and unit attentions from `scsi_sbc`'s SPC
//!   parts, refuse opcodes SSC does not have (an SBC READ (10) on a tape: INVALID
//!   COMMAND OPERATION CODE), and hand the rest to the store as a
//!   [`BlockOp::Device`] whose request and reply are encoded by [`wire`].
//!
//! Sense data is fixed-format with the FILEMARK, EOM and ILI bits and the INFORMATION
//! residue (SSC-3 4.2), as tgt's tape does.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod cdb;
pub mod drive;
pub mod image;
pub mod wire;

pub use cdb::SscCdb;
pub use drive::{Drive, MediumError, MemoryMedium, Reply, TapeMedium};

use bytes::Bytes;
use scsi_sbc::dispatch::{check_outcome, request_sense};
use scsi_sbc::{
    BlockOp, IoErrorKind, LuConfig, LuContext, LuState, Outcome, Plan, Prepared, Sense, SenseKey,
};

/// Parse and report a pending unit attention.
fn admit(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<SscCdb, Outcome> {
    let nexus = ctx.nexus.id;
    state.ua.see(nexus);
    let c = SscCdb::parse(cdb).map_err(|s| check_outcome(s, lu, state))?;
    if !c.ua_exempt() {
        if let Some(ua) = state.ua.take(nexus) {
            return Err(check_outcome(ua, lu, state));
        }
    }
    // An LU made read-only (`--params readonly=1`) is a write-protected drive
    // whatever the image allows.
    if lu.readonly
        && matches!(
            c,
            SscCdb::Write { .. } | SscCdb::WriteFilemarks { .. } | SscCdb::Erase
        )
    {
        return Err(check_outcome(Sense::write_protected(), lu, state));
    }
    if c.runs_in_drive() && state.offline {
        let s = Sense::new(SenseKey::NotReady, scsi_sbc::asc::MEDIUM_NOT_PRESENT);
        return Err(check_outcome(s, lu, state));
    }
    Ok(c)
}

/// Check a CDB before any data-out is solicited: WRITE (6) carries its transfer
/// length in bytes (variable) or that many blocks of the drive's fixed length, MODE
/// SELECT its parameter list. `Err` is the answer to send.
pub fn prepare_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<Prepared, Outcome> {
    let c = admit(cdb, lu, ctx, state)?;
    let data_out_len = match c {
        SscCdb::Write { fixed: false, len } => u64::from(len),
        SscCdb::Write { fixed: true, len } => {
            if state.stream_block_len == 0 {
                // FIXED with variable blocks configured (SSC-3 6.9).
                return Err(check_outcome(Sense::invalid_cdb_field(1, 0), lu, state));
            }
            let n = u64::from(len) * u64::from(state.stream_block_len);
            if n > scsi_sbc::dispatch::MAX_TRANSFER_BYTES {
                return Err(check_outcome(Sense::invalid_cdb_field(2, 7), lu, state));
            }
            n
        }
        SscCdb::ModeSelect { len, .. } => u64::from(len),
        _ => 0,
    };
    Ok(Prepared {
        data_out_len,
        exact: false,
    })
}

/// Run a command that passed [`prepare_in`]: the SPC commands now, the tape commands
/// as a [`BlockOp::Device`] for the LU's store.
pub fn execute_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    data_out: Bytes,
) -> Plan {
    let nexus = ctx.nexus.id;
    state.ua.see(nexus);
    let c = match SscCdb::parse(cdb) {
        Ok(c) => c,
        Err(s) => return Plan::Done(check_outcome(s, lu, state)),
    };
    let respond = |d: Result<Vec<u8>, Sense>, alloc: usize, state: &mut LuState| match d {
        Ok(mut d) => {
            d.truncate(alloc);
            Plan::Done(Outcome::good(Bytes::from(d)))
        }
        Err(s) => Plan::Done(check_outcome(s, lu, state)),
    };
    match c {
        SscCdb::Inquiry {
            evpd,
            page_code,
            alloc_len,
        } => {
            let d = scsi_sbc::inquiry::inquiry(lu, ctx, evpd, page_code);
            respond(d, usize::from(alloc_len), state)
        }
        SscCdb::ReportLuns {
            select_report,
            alloc_len,
        } => {
            let d = scsi_sbc::report_luns::report_luns(ctx.luns, select_report);
            respond(Ok(d), alloc_len as usize, state)
        }
        SscCdb::RequestSense { desc, alloc_len } => {
            let d = request_sense(state, nexus, desc);
            respond(Ok(d), usize::from(alloc_len), state)
        }
        SscCdb::SendDiagnostic => respond(Ok(Vec::new()), 0, state),
        _ => Plan::Io(BlockOp::Device {
            request: wire::encode_request(cdb, &data_out),
        }),
    }
}

/// [`execute_in`] on a fresh state, as seen by a nexus that has already cleared its
/// power-on unit attention (for tests and fuzzing).
pub fn execute(cdb: &[u8], lu: &LuConfig, ctx: &LuContext<'_>) -> Plan {
    let mut state = LuState::new();
    state.ua.see(ctx.nexus.id);
    let _ = state.ua.take(ctx.nexus.id);
    execute_in(cdb, lu, ctx, &mut state, Bytes::new())
}

/// Turn the drive's reply into the command's outcome (fixed-format sense, as tgt's
/// tape); a store that could not run it at all is a HARDWARE ERROR.
pub fn complete_in(
    cdb: &[u8],
    lu: &LuConfig,
    nexus: u64,
    state: &mut LuState,
    _op: &BlockOp,
    result: Result<Bytes, IoErrorKind>,
) -> Outcome {
    let reply = result.ok().and_then(|b| wire::decode_reply(&b));
    let Some(reply) = reply else {
        let s = Sense::new(
            SenseKey::HardwareError,
            scsi_sbc::asc::INTERNAL_TARGET_FAILURE,
        );
        return check_outcome(s, lu, state);
    };
    state.stream_block_len = reply.block_len;
    // A tape loaded from outside: this nexus hears it now, the others next.
    if reply
        .sense
        .is_some_and(|s| s.key == SenseKey::UnitAttention && (s.asc, s.ascq) == (0x28, 0x00))
    {
        state
            .ua
            .broadcast(scsi_sbc::asc::MEDIUM_MAY_HAVE_CHANGED, Some(nexus));
    }
    let mut reply = reply;
    // WP in the mode parameter header of a read-only LU.
    if lu.readonly && reply.sense.is_none() {
        let at = match cdb.first() {
            Some(0x1a) => Some(2),
            Some(0x5a) => Some(3),
            _ => None,
        };
        if let Some(b) = at.and_then(|i| reply.data.get_mut(i)) {
            *b |= 0x80;
        }
    }
    match reply.sense {
        None => Outcome::good(Bytes::from(reply.data)),
        Some(s) => Outcome {
            status: scsi_sbc::ScsiStatus::CheckCondition,
            data: Bytes::from(reply.data),
            sense: Some(s),
            descriptor_sense: state.mode.d_sense(lu),
        },
    }
}
