//! Sans-IO SCSI multimedia device (MMC-6): a read-only CD-ROM or DVD-ROM whose disc
//! is an image file (an ISO or any file), as tgt's `--device-type cd` serves it.
//!
//! The API is `scsi_sbc`'s, so a target picks the crate by the LU's
//! [`DeviceType`](scsi_sbc::DeviceType) and drives both alike: [`prepare_in`] before
//! data is solicited, [`execute_in`] for a [`Plan`], [`complete_in`] when a
//! [`BlockOp`] finishes. The SPC parts (INQUIRY and VPD pages, REQUEST SENSE, REPORT
//! LUNS, unit attentions, sense data, the MODE SENSE framework, READ range checks) are
//! `scsi_sbc`'s; this crate adds the multimedia commands and the medium's life:
//!
//! - 2048-byte logical blocks; the disc is a finalized single-session, single-track
//!   data disc: DVD-ROM profile (0010h) when the image is bigger than a CD holds
//!   ([`CD_MAX_BLOCKS`]), CD-ROM (0008h) otherwise.
//! - Removable: START STOP UNIT ejects (LOEJ, START=0) and loads (LOEJ, START=1); an
//!   eject is refused while any nexus prevents removal (PREVENT ALLOW MEDIUM REMOVAL).
//!   With no medium, media commands answer NOT READY, MEDIUM NOT PRESENT (3Ah/00h).
//! - A new image (`tgtadm --op update --params path=...`, [`LuState::medium_changed`])
//!   or a load reports NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (28h/00h)
//!   once per nexus, and a NewMedia event to GET EVENT STATUS NOTIFICATION.
//! - Recording commands (WRITE (10)/(12), WRITE AND VERIFY, FORMAT UNIT, BLANK, ...)
//!   are refused with ILLEGAL REQUEST, CANNOT WRITE MEDIUM - INCOMPATIBLE FORMAT
//!   (30h/05h); opcodes MMC does not have (READ (6), WRITE SAME, UNMAP, ...) with
//!   INVALID COMMAND OPERATION CODE.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod cdb;
mod pages;

pub use cdb::MmcCdb;

use bytes::Bytes;
use scsi_sbc::asc::{self, AscAscq};
use scsi_sbc::cdb::PageControl;
use scsi_sbc::dispatch::{check_outcome, request_sense, respond};
use scsi_sbc::{
    BlockOp, Cdb, IoErrorKind, LuConfig, LuContext, LuState, Outcome, Plan, Prepared, Sense,
    SenseKey,
};

/// Logical block size of a CD/DVD LU (MMC-6 4.2.2: 2048-byte user data sectors).
pub const BLOCK_SIZE: u32 = 2048;

/// The most 2048-byte blocks a CD holds: 80 minutes × 60 s × 75 sectors (360 000,
/// about 703 MiB). A bigger image is presented as a DVD-ROM. tgt reports every image as
/// a DVD-ROM; a CD-sized image reports the CD-ROM profile here, so that hosts treat a
/// CD image as a CD.
pub const CD_MAX_BLOCKS: u64 = 80 * 60 * 75;

/// 30h/05h CANNOT WRITE MEDIUM - INCOMPATIBLE FORMAT.
pub const CANNOT_WRITE_INCOMPATIBLE_FORMAT: AscAscq = AscAscq {
    asc: 0x30,
    ascq: 0x05,
};

/// MMC profile numbers (MMC-6 table 91).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Profile {
    /// 0008h CD-ROM.
    CdRom = 0x0008,
    /// 0010h DVD-ROM.
    DvdRom = 0x0010,
}

/// The disc in the drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Medium {
    /// Blocks of 2048 bytes.
    pub blocks: u64,
    /// The profile it is presented as.
    pub profile: Profile,
}

/// The disc an LU has now: none when ejected, taken offline, or when its image holds
/// not even one block.
pub fn medium(lu: &LuConfig, state: &LuState) -> Option<Medium> {
    if state.ejected || state.offline || lu.num_blocks == 0 {
        return None;
    }
    let profile = if lu.num_blocks > CD_MAX_BLOCKS {
        Profile::DvdRom
    } else {
        Profile::CdRom
    };
    Some(Medium {
        blocks: lu.num_blocks,
        profile,
    })
}

/// Parse, report a pending unit attention, and refuse media commands with no medium.
fn admit(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<MmcCdb, Outcome> {
    let nexus = ctx.nexus.id;
    state.ua.see(nexus);
    let c = MmcCdb::parse(cdb).map_err(|s| check_outcome(s, lu, state))?;
    if !c.ua_exempt() {
        if let Some(ua) = state.ua.take(nexus) {
            return Err(check_outcome(ua, lu, state));
        }
    }
    check_ready(&c, lu, state).map_err(|s| check_outcome(s, lu, state))?;
    Ok(c)
}

fn check_ready(c: &MmcCdb, lu: &LuConfig, state: &LuState) -> Result<(), Sense> {
    if c.needs_medium() && medium(lu, state).is_none() {
        return Err(Sense::new(SenseKey::NotReady, asc::MEDIUM_NOT_PRESENT));
    }
    Ok(())
}

/// Check a CDB before any data-out is solicited. No command of a read-only disc takes
/// data-out, so [`Prepared::data_out_len`] is always 0; `Err` is the answer to send.
pub fn prepare_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<Prepared, Outcome> {
    let c = admit(cdb, lu, ctx, state)?;
    if let MmcCdb::Spc(Cdb::Read(t)) = &c {
        scsi_sbc::rw::prepare_read(lu, t).map_err(|s| check_outcome(s, lu, state))?;
    }
    if c == MmcCdb::Record {
        return Err(check_outcome(record_refused(), lu, state));
    }
    Ok(Prepared {
        data_out_len: 0,
        exact: false,
    })
}

fn record_refused() -> Sense {
    Sense::illegal_request(CANNOT_WRITE_INCOMPATIBLE_FORMAT)
}

/// Run a command that passed [`prepare_in`] (its unit attention is not reported
/// again). `data_out` is ignored: nothing here takes any.
pub fn execute_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    _data_out: Bytes,
) -> Plan {
    match plan(cdb, lu, ctx, state) {
        Ok(p) => p,
        Err(sense) => Plan::Done(check_outcome(sense, lu, state)),
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

fn plan(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<Plan, Sense> {
    let nexus = ctx.nexus.id;
    state.ua.see(nexus);
    let c = MmcCdb::parse(cdb)?;
    check_ready(&c, lu, state)?;
    let m = medium(lu, state);
    let tray_open = state.ejected;
    match c {
        MmcCdb::Spc(c) => spc(c, lu, ctx, state),
        MmcCdb::StartStopUnit {
            power_condition,
            loej,
            start,
        } => {
            if power_condition != 0 || !loej {
                return respond(Vec::new(), 0usize);
            }
            if start {
                if state.ejected {
                    state.ejected = false;
                    state
                        .ua
                        .broadcast(asc::MEDIUM_MAY_HAVE_CHANGED, Some(nexus));
                    state.media_event(2);
                }
            } else {
                // MMC-6 6.39: an eject while removal is prevented is refused.
                if !state.prevent.is_empty() {
                    return Err(Sense::illegal_request(asc::MEDIUM_REMOVAL_PREVENTED));
                }
                if !state.ejected {
                    state.ejected = true;
                    state.media_event(3);
                }
            }
            respond(Vec::new(), 0usize)
        }
        MmcCdb::PreventAllow { prevent } => {
            if prevent {
                state.prevent.insert(nexus);
            } else {
                state.prevent.remove(&nexus);
            }
            respond(Vec::new(), 0usize)
        }
        MmcCdb::ReadToc {
            msf,
            format,
            track,
            alloc_len,
        } => {
            let blocks = m.map_or(0, |m| m.blocks);
            respond(pages::read_toc(blocks, msf, format, track)?, alloc_len)
        }
        MmcCdb::GetConfiguration {
            rt,
            start,
            alloc_len,
        } => respond(pages::configuration(m, rt, start), alloc_len),
        MmcCdb::GetEventStatus { classes, alloc_len } => {
            let event = if classes & 0x10 != 0 {
                state.media_events.remove(&nexus).unwrap_or(0)
            } else {
                0
            };
            let d = pages::event_status(classes, event, m.is_some(), tray_open);
            respond(d, alloc_len)
        }
        MmcCdb::ReadDiscInformation { alloc_len } => respond(pages::disc_information(), alloc_len),
        MmcCdb::ReadTrackInformation {
            kind,
            number,
            alloc_len,
        } => {
            let m = m.ok_or(Sense::new(SenseKey::NotReady, asc::MEDIUM_NOT_PRESENT))?;
            respond(pages::track_information(m, kind, number)?, alloc_len)
        }
        MmcCdb::MechanismStatus { alloc_len } => {
            respond(pages::mechanism_status(tray_open), alloc_len)
        }
        MmcCdb::SetCdSpeed | MmcCdb::Verify => respond(Vec::new(), 0usize),
        MmcCdb::Record => Err(record_refused()),
    }
}

/// The commands MMC shares with SPC and SBC.
fn spc(c: Cdb, lu: &LuConfig, ctx: &LuContext<'_>, state: &mut LuState) -> Result<Plan, Sense> {
    match c {
        Cdb::TestUnitReady | Cdb::SynchronizeCache { .. } => respond(Vec::new(), 0usize),
        // SPC-4 6.39: with nothing pending, the sense reflects the LU's state, so an
        // empty drive says MEDIUM NOT PRESENT.
        Cdb::RequestSense { desc, alloc_len } => {
            let nexus = ctx.nexus.id;
            let data = if !state.ua.has(nexus) && medium(lu, state).is_none() {
                let s = Sense::new(SenseKey::NotReady, asc::MEDIUM_NOT_PRESENT);
                if desc {
                    s.to_descriptor()
                } else {
                    s.to_fixed().to_vec()
                }
            } else {
                request_sense(state, nexus, desc)
            };
            respond(data, alloc_len)
        }
        Cdb::Inquiry {
            evpd,
            page_code,
            alloc_len,
        } => respond(
            scsi_sbc::inquiry::inquiry(lu, ctx, evpd, page_code)?,
            alloc_len,
        ),
        Cdb::ReportLuns {
            select_report,
            alloc_len,
        } => respond(
            scsi_sbc::report_luns::report_luns(ctx.luns, select_report),
            alloc_len,
        ),
        // MMC-6 6.23: the last block's address (the disc is not empty) and 2048.
        Cdb::ReadCapacity10 => {
            let last = lu.num_blocks.saturating_sub(1);
            let mut d = u32::try_from(last)
                .unwrap_or(u32::MAX)
                .to_be_bytes()
                .to_vec();
            d.extend_from_slice(&BLOCK_SIZE.to_be_bytes());
            respond(d, 8usize)
        }
        Cdb::Read(t) => scsi_sbc::rw::read(lu, &t),
        // MMC-6 7.2: no block descriptors (a drive returns none, as tgt forces DBD);
        // the device-specific parameter is reserved.
        Cdb::ModeSense(ms) => {
            let codes = scsi_sbc::mode::select_pages(&ms, &pages::MODE_PAGES)?;
            if ms.pc == PageControl::Saved {
                return Err(Sense::illegal_request(asc::SAVING_PARAMETERS_NOT_SUPPORTED));
            }
            let changeable = ms.pc == PageControl::Changeable;
            let locked = !state.prevent.is_empty();
            let pages = codes
                .into_iter()
                .map(|code| pages::mode_page(code, changeable, locked));
            respond(scsi_sbc::mode::assemble(&ms, 0, &[], pages), ms.alloc_len)
        }
        // Not reachable: `MmcCdb::parse` only hands over the opcodes above.
        _ => Err(Sense::invalid_opcode()),
    }
}

/// Turn a finished READ into its outcome (a failed read is a MEDIUM ERROR with the
/// LBA, as for a disk), in the LU's sense format.
pub fn complete_in(
    cdb: &[u8],
    lu: &LuConfig,
    nexus: u64,
    state: &mut LuState,
    op: &BlockOp,
    result: Result<Bytes, IoErrorKind>,
) -> Outcome {
    scsi_sbc::complete_in(cdb, lu, nexus, state, op, result)
}

#[cfg(test)]
mod tests;
