//! Sans-IO SCSI medium changer (SMC-3): the robot of tgt's virtual tape library
//! (`--device-type changer`), moving tape images between slots, import/export
//! elements and the tape drive LUs of the target.
//!
//! As for a tape (`scsi_ssc`), the library's state lives with the changer's store
//! (`backends::ChangerStore`), which runs the element commands whole ([`run`]) and
//! loads and unloads the drives' images through a [`DriveBay`]; [`prepare_in`],
//! [`execute_in`] and [`complete_in`] are the target's side, answering INQUIRY,
//! REPORT LUNS, REQUEST SENSE, TEST UNIT READY and unit attentions from `scsi_sbc`'s
//! SPC parts and refusing opcodes SMC does not have. Requests and replies travel in
//! `scsi_ssc::wire`'s encoding.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod library;

pub use library::{ConfigError, DriveBay, Element, ElementType, Library};

use bytes::Bytes;
use scsi_sbc::cdb::{ModeSense, PageControl};
use scsi_sbc::dispatch::{check_outcome, request_sense};
use scsi_sbc::{
    asc, BlockOp, Cdb, IoErrorKind, LuConfig, LuContext, LuState, Outcome, Plan, Prepared, Sense,
    SenseKey,
};
use scsi_ssc::{wire, Reply};

/// A parsed command a changer LU answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmcCdb {
    /// TEST UNIT READY, REQUEST SENSE, INQUIRY, REPORT LUNS, as `scsi_sbc` parses them.
    Spc(Cdb),
    /// MODE SENSE (6)/(10).
    ModeSense(ModeSense),
    /// PREVENT ALLOW MEDIUM REMOVAL (1Eh): accepted (the import/export elements are
    /// the administrator's).
    PreventAllow,
    /// INITIALIZE ELEMENT STATUS (07h) and WITH RANGE (37h): the inventory is known.
    InitializeElementStatus,
    /// READ ELEMENT STATUS (B8h), SMC-3 6.10.
    ReadElementStatus {
        /// VOLTAG: report volume tags.
        voltag: bool,
        /// ELEMENT TYPE CODE (0: all).
        kind: u8,
        /// STARTING ELEMENT ADDRESS.
        start: u16,
        /// NUMBER OF ELEMENTS.
        count: u16,
        /// DVCID: report device identifiers.
        dvcid: bool,
        /// Allocation length.
        alloc_len: u32,
    },
    /// MOVE MEDIUM (A5h), SMC-3 6.6.
    MoveMedium {
        /// SOURCE ADDRESS.
        src: u16,
        /// DESTINATION ADDRESS.
        dst: u16,
        /// INVERT.
        invert: bool,
    },
}

impl SmcCdb {
    /// Parse a CDB: an opcode SMC does not have is INVALID COMMAND OPERATION CODE.
    pub fn parse(cdb: &[u8]) -> Result<Self, Sense> {
        let Some(&op) = cdb.first() else {
            return Err(Sense::invalid_opcode());
        };
        let need = |n: usize| {
            if cdb.len() < n {
                Err(Sense::invalid_field_in_cdb())
            } else {
                Ok(())
            }
        };
        Ok(match op {
            0x00 | 0x03 | 0x12 | 0xa0 => SmcCdb::Spc(Cdb::parse(cdb)?),
            0x1a | 0x5a => match Cdb::parse(cdb)? {
                Cdb::ModeSense(ms) => SmcCdb::ModeSense(ms),
                _ => return Err(Sense::invalid_opcode()),
            },
            0x1e => {
                need(6)?;
                SmcCdb::PreventAllow
            }
            0x07 => {
                need(6)?;
                SmcCdb::InitializeElementStatus
            }
            0x37 => {
                need(10)?;
                SmcCdb::InitializeElementStatus
            }
            0xb8 => {
                need(12)?;
                let kind = cdb[1] & 0x0f;
                if kind > 4 {
                    return Err(Sense::invalid_cdb_field(1, 3));
                }
                SmcCdb::ReadElementStatus {
                    voltag: cdb[1] & 0x10 != 0,
                    kind,
                    start: u16::from_be_bytes([cdb[2], cdb[3]]),
                    count: u16::from_be_bytes([cdb[4], cdb[5]]),
                    dvcid: cdb[6] & 0x01 != 0,
                    alloc_len: u32::from_be_bytes([0, cdb[7], cdb[8], cdb[9]]),
                }
            }
            0xa5 => {
                need(12)?;
                SmcCdb::MoveMedium {
                    src: u16::from_be_bytes([cdb[4], cdb[5]]),
                    dst: u16::from_be_bytes([cdb[6], cdb[7]]),
                    invert: cdb[10] & 0x01 != 0,
                }
            }
            _ => return Err(Sense::invalid_opcode()),
        })
    }

    fn runs_in_store(&self) -> bool {
        matches!(
            self,
            SmcCdb::ModeSense(_) | SmcCdb::ReadElementStatus { .. } | SmcCdb::MoveMedium { .. }
        )
    }
}

/// Check a CDB before data-out is solicited: no changer command carries any.
pub fn prepare_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
) -> Result<Prepared, Outcome> {
    let nexus = ctx.nexus.id;
    state.ua.see(nexus);
    let c = SmcCdb::parse(cdb).map_err(|s| check_outcome(s, lu, state))?;
    let exempt = matches!(
        c,
        SmcCdb::Spc(Cdb::Inquiry { .. } | Cdb::ReportLuns { .. } | Cdb::RequestSense { .. })
    );
    if !exempt {
        if let Some(ua) = state.ua.take(nexus) {
            return Err(check_outcome(ua, lu, state));
        }
    }
    if state.offline && !exempt {
        let s = Sense::new(SenseKey::NotReady, asc::NOT_READY_MANUAL_INTERVENTION);
        return Err(check_outcome(s, lu, state));
    }
    Ok(Prepared {
        data_out_len: 0,
        exact: false,
    })
}

/// Run a command that passed [`prepare_in`]: SPC commands now, element commands as a
/// [`BlockOp::Device`] for the changer's store.
pub fn execute_in(
    cdb: &[u8],
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    _data_out: Bytes,
) -> Plan {
    let nexus = ctx.nexus.id;
    state.ua.see(nexus);
    let c = match SmcCdb::parse(cdb) {
        Ok(c) => c,
        Err(s) => return Plan::Done(check_outcome(s, lu, state)),
    };
    if c.runs_in_store() {
        return Plan::Io(BlockOp::Device {
            request: wire::encode_request(cdb, &[]),
        });
    }
    let done = |d: Result<Vec<u8>, Sense>, alloc: usize, state: &mut LuState| match d {
        Ok(mut d) => {
            d.truncate(alloc);
            Plan::Done(Outcome::good(Bytes::from(d)))
        }
        Err(s) => Plan::Done(check_outcome(s, lu, state)),
    };
    match c {
        SmcCdb::Spc(Cdb::Inquiry {
            evpd,
            page_code,
            alloc_len,
        }) => done(
            scsi_sbc::inquiry::inquiry(lu, ctx, evpd, page_code),
            usize::from(alloc_len),
            state,
        ),
        SmcCdb::Spc(Cdb::ReportLuns {
            select_report,
            alloc_len,
        }) => done(
            Ok(scsi_sbc::report_luns::report_luns(ctx.luns, select_report)),
            alloc_len as usize,
            state,
        ),
        SmcCdb::Spc(Cdb::RequestSense { desc, alloc_len }) => done(
            Ok(request_sense(state, nexus, desc)),
            usize::from(alloc_len),
            state,
        ),
        SmcCdb::Spc(Cdb::TestUnitReady)
        | SmcCdb::PreventAllow
        | SmcCdb::InitializeElementStatus => done(Ok(Vec::new()), 0, state),
        _ => done(Err(Sense::invalid_opcode()), 0, state),
    }
}

/// The store's reply as the command's outcome; a store that could not run it is a
/// HARDWARE ERROR.
pub fn complete_in(
    _cdb: &[u8],
    lu: &LuConfig,
    _nexus: u64,
    state: &mut LuState,
    _op: &BlockOp,
    result: Result<Bytes, IoErrorKind>,
) -> Outcome {
    match result.ok().and_then(|b| wire::decode_reply(&b)) {
        Some(Reply {
            data, sense: None, ..
        }) => Outcome::good(Bytes::from(data)),
        Some(Reply { sense: Some(s), .. }) => check_outcome(s, lu, state),
        None => check_outcome(
            Sense::new(SenseKey::HardwareError, asc::INTERNAL_TARGET_FAILURE),
            lu,
            state,
        ),
    }
}

/// Run an element command (the store's side) on `lib`, moving tapes through `bay`.
pub fn run(cdb: &[u8], lib: &mut Library, bay: &mut dyn DriveBay) -> Reply {
    let r = SmcCdb::parse(cdb).and_then(|c| match c {
        SmcCdb::ReadElementStatus {
            voltag,
            kind,
            start,
            count,
            dvcid,
            alloc_len,
        } => {
            let mut d = read_element_status(lib, voltag, kind, start, count, dvcid);
            d.truncate(alloc_len as usize);
            Ok(d)
        }
        SmcCdb::MoveMedium { src, dst, invert } => {
            lib.move_medium(src, dst, invert, bay).map(|()| Vec::new())
        }
        SmcCdb::ModeSense(ms) => {
            let mut d = mode_sense(lib, &ms)?;
            d.truncate(usize::from(ms.alloc_len));
            Ok(d)
        }
        _ => Err(Sense::invalid_opcode()),
    });
    match r {
        Ok(data) => Reply {
            data,
            sense: None,
            block_len: 0,
        },
        Err(s) => Reply {
            data: Vec::new(),
            sense: Some(s),
            block_len: 0,
        },
    }
}

/// Length of one element descriptor: 12 bytes, the primary volume tag (36) with
/// VOLTAG, then an identification descriptor header (4) and, with DVCID, room for a
/// 34-byte identifier (tgt's sizes: 16, 52, 50 or 86).
pub fn descriptor_len(voltag: bool, dvcid: bool) -> usize {
    12 + if voltag { 36 } else { 0 } + 4 + if dvcid { 34 } else { 0 }
}

fn descriptor(e: &Element, voltag: bool, dvcid: bool) -> Vec<u8> {
    let mut d = vec![0u8; descriptor_len(voltag, dvcid)];
    d[0..2].copy_from_slice(&e.addr.to_be_bytes());
    // FULL; ACCESS for slots, mail slots and drives; INENAB/EXENAB for mail slots.
    let mut flags = u8::from(e.full);
    match e.kind {
        ElementType::Transport => {}
        ElementType::Storage | ElementType::DataTransfer => flags |= 0x08,
        ElementType::ImportExport => flags |= 0x08 | 0x10 | 0x20,
    }
    d[2] = flags;
    d[4] = e.asc.asc;
    d[5] = e.asc.ascq;
    if e.full {
        d[9] = 0x01; // medium type: data
    }
    if let Some(src) = e.source {
        d[9] |= 0x80; // SVALID
        d[10..12].copy_from_slice(&src.to_be_bytes());
    }
    if voltag {
        // PRIMARY VOLUME TAG: 32 characters, space padded, volume sequence 0.
        let tag = if !e.volume_tag.is_empty() {
            &e.volume_tag
        } else {
            &e.barcode
        };
        let mut t = [b' '; 32];
        if e.full {
            for (i, b) in tag.bytes().take(32).enumerate() {
                t[i] = b;
            }
        }
        d[12..44].copy_from_slice(&t);
    }
    d
}

/// READ ELEMENT STATUS parameter data (SMC-3 6.10): the element status data header,
/// then one element status page per type with elements at or after `start`, at most
/// `count` elements in all.
pub fn read_element_status(
    lib: &Library,
    voltag: bool,
    kind: u8,
    start: u16,
    count: u16,
    dvcid: bool,
) -> Vec<u8> {
    let len = descriptor_len(voltag, dvcid);
    let mut pages = Vec::new();
    let (mut first, mut n) = (None, 0usize);
    for t in ElementType::ALL {
        if kind != 0 && kind != t as u8 {
            continue;
        }
        let mut es: Vec<&Element> = lib
            .elements
            .iter()
            .filter(|e| e.kind == t && e.addr >= start)
            .collect();
        es.sort_by_key(|e| e.addr);
        es.truncate(usize::from(count).saturating_sub(n));
        if es.is_empty() {
            continue;
        }
        first.get_or_insert(es[0].addr);
        n += es.len();
        let bytes = (es.len() * len) as u32;
        pages.push(t as u8);
        pages.push(if voltag { 0x80 } else { 0 });
        pages.extend_from_slice(&(len as u16).to_be_bytes());
        pages.push(0);
        pages.extend_from_slice(&bytes.to_be_bytes()[1..]);
        for e in es {
            pages.extend_from_slice(&descriptor(e, voltag, dvcid));
        }
    }
    let mut d = Vec::with_capacity(8 + pages.len());
    d.extend_from_slice(&first.unwrap_or(0).to_be_bytes());
    d.extend_from_slice(&(n as u16).to_be_bytes());
    d.push(0);
    d.extend_from_slice(&(pages.len() as u32).to_be_bytes()[1..]);
    d.extend_from_slice(&pages);
    d
}

const MODE_PAGES: [u8; 4] = [0x0a, 0x1d, 0x1e, 0x1f];

fn mode_sense(lib: &Library, ms: &ModeSense) -> Result<Vec<u8>, Sense> {
    let codes = scsi_sbc::mode::select_pages(ms, &MODE_PAGES)?;
    if ms.pc == PageControl::Saved {
        return Err(Sense::illegal_request(asc::SAVING_PARAMETERS_NOT_SUPPORTED));
    }
    let changeable = ms.pc == PageControl::Changeable;
    let pages = codes.into_iter().map(|c| {
        let mut p = match c {
            0x0a => vec![0u8; 12],
            // Element address assignment (SMC-3 7.3.4).
            0x1d => {
                let mut p = vec![0u8; 20];
                if !changeable {
                    for (i, t) in ElementType::ALL.into_iter().enumerate() {
                        let (a, n) = lib.assignment(t);
                        p[2 + i * 4..4 + i * 4].copy_from_slice(&a.to_be_bytes());
                        p[4 + i * 4..6 + i * 4].copy_from_slice(&n.to_be_bytes());
                    }
                }
                p
            }
            // Transport geometry (SMC-3 7.3.5): ROTATE.
            0x1e => {
                let mut p = vec![0u8; 4];
                p[2] = u8::from(lib.rotate && !changeable);
                p
            }
            // Device capabilities (SMC-3 7.3.2): every element can store media and
            // move to every other (tgt's values).
            _ => {
                let mut p = vec![0u8; 20];
                if !changeable {
                    p[2] = 0x0f;
                    p[4..8].copy_from_slice(&[0x0f; 4]);
                    p[12..16].copy_from_slice(&[0x0f; 4]);
                }
                p
            }
        };
        p[0] = c;
        p[1] = (p.len() - 2) as u8;
        if c == 0x0a && !changeable {
            p[2] = 0x02;
        }
        p
    });
    let ms = ModeSense {
        llbaa: false,
        ..*ms
    };
    Ok(scsi_sbc::mode::assemble(&ms, 0, &[], pages))
}

#[cfg(test)]
mod tests;
