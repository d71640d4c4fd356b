//! MODE SENSE / MODE SELECT (SPC-4 6.9-6.12, 7.5): header, block descriptor, mode pages.
//!
//! Changeable: WCE and RCD of the caching page, D_SENSE and SWP of the control page.
//! Saved values are those of the last MODE SELECT with SP=1 (defaults until then).

use crate::asc;
use crate::cdb::{ModeSense, PageControl};
use crate::cdb_ext::ExtCdb;
use crate::lu::{LuConfig, LuContext};
use crate::sense::{FieldPointer, Sense};
use crate::state::{LuState, ModeValues};

const RW_ERROR_RECOVERY: u8 = 0x01;
const DISCONNECT_RECONNECT: u8 = 0x02;
const FORMAT: u8 = 0x03;
const RIGID_DISK: u8 = 0x04;
/// Caching mode page (SBC-3 6.4.5).
const CACHING: u8 = 0x08;
/// Control mode page (SPC-4 7.5.8).
const CONTROL: u8 = 0x0a;
const POWER_CONDITION: u8 = 0x1a;
const INFORMATIONAL_EXCEPTIONS: u8 = 0x1c;
/// Page code asking for every page.
const ALL_PAGES: u8 = 0x3f;
/// Subpage code asking for every subpage.
const ALL_SUBPAGES: u8 = 0xff;

const PAGES: [u8; 8] = [
    RW_ERROR_RECOVERY,
    DISCONNECT_RECONNECT,
    FORMAT,
    RIGID_DISK,
    CACHING,
    CONTROL,
    POWER_CONDITION,
    INFORMATIONAL_EXCEPTIONS,
];

/// Page length (bytes after the 2-byte header).
fn page_len(code: u8) -> usize {
    match code {
        RW_ERROR_RECOVERY | CONTROL | INFORMATIONAL_EXCEPTIONS => 10,
        DISCONNECT_RECONNECT => 14,
        FORMAT | RIGID_DISK => 22,
        CACHING => 18,
        _ => 38, // power condition
    }
}

/// One page with `v`'s values (page_0 format).
fn page_values(lu: &LuConfig, code: u8, v: &ModeValues) -> Vec<u8> {
    let mut p = vec![0u8; page_len(code) + 2];
    p[0] = code;
    p[1] = page_len(code) as u8;
    match code {
        // SBC-3 table 188: DATA BYTES PER PHYSICAL SECTOR (12-13).
        FORMAT => {
            p[10..12].copy_from_slice(&64u16.to_be_bytes());
            p[12..14].copy_from_slice(&(lu.block_size.min(0xffff) as u16).to_be_bytes());
        }
        // SBC-3 table 190: cylinders (2-4) of 64 heads × 64 sectors, rotation rate 7200.
        RIGID_DISK => {
            let cyl = (lu.num_blocks / (64 * 64)).min(0xff_ffff) as u32;
            p[2..5].copy_from_slice(&cyl.to_be_bytes()[1..]);
            p[5] = 64;
            p[20..22].copy_from_slice(&7200u16.to_be_bytes());
        }
        CACHING => {
            p[2] = if v.wce(lu) { 0x04 } else { 0 } | u8::from(v.rcd);
        }
        // SPC-4 table 456: D_SENSE (byte 2 bit 2), QUEUE ALGORITHM MODIFIER 1, SWP
        // (byte 4 bit 3), BUSY TIMEOUT PERIOD FFFFh.
        CONTROL => {
            p[2] = if v.d_sense(lu) { 0x04 } else { 0 };
            p[3] = 0x10;
            p[4] = if v.swp { 0x08 } else { 0 };
            p[8] = 0xff;
            p[9] = 0xff;
        }
        _ => {}
    }
    p
}

/// The changeable-values mask of a page.
fn page_mask(code: u8) -> Vec<u8> {
    let mut p = vec![0u8; page_len(code) + 2];
    p[0] = code;
    p[1] = page_len(code) as u8;
    match code {
        CACHING => p[2] = 0x05,
        CONTROL => {
            p[2] = 0x04;
            p[4] = 0x08;
        }
        _ => {}
    }
    p
}

fn page(lu: &LuConfig, state: &LuState, code: u8, pc: PageControl) -> Vec<u8> {
    match pc {
        PageControl::Current => page_values(lu, code, &state.mode),
        PageControl::Changeable => page_mask(code),
        PageControl::Default => page_values(lu, code, &ModeValues::default()),
        PageControl::Saved => page_values(lu, code, &state.saved),
    }
}

/// The pages a MODE SENSE request names among `available` (a device type's page
/// codes, ascending, none with subpages), or INVALID FIELD IN CDB: 3Fh is every page.
pub fn select_pages(ms: &ModeSense, available: &[u8]) -> Result<Vec<u8>, Sense> {
    match (ms.page_code, ms.subpage_code) {
        // We have no subpages, so "all subpages" returns just the subpage-0 pages.
        (ALL_PAGES, 0 | ALL_SUBPAGES) => Ok(available.to_vec()),
        (c, 0 | ALL_SUBPAGES) if available.contains(&c) => Ok(vec![c]),
        // PAGE CODE is byte 2 bits 5-0, SUBPAGE CODE byte 3.
        (c, _) if c == ALL_PAGES || available.contains(&c) => Err(Sense::invalid_cdb_field(3, 7)),
        _ => Err(Sense::invalid_cdb_field(2, 5)),
    }
}

/// MODE SENSE (6)/(10) parameter data (SPC-4 7.5.4/7.5.5), untruncated: the mode
/// parameter header with `device_specific` (its meaning is the device type's), the
/// block descriptors `desc` (empty for none) and the `pages`, each already whole.
pub fn assemble(
    ms: &ModeSense,
    device_specific: u8,
    desc: &[u8],
    pages: impl IntoIterator<Item = Vec<u8>>,
) -> Vec<u8> {
    let long = ms.ten && ms.llbaa;
    let mut d = if ms.ten {
        let longlba = u8::from(long && !desc.is_empty());
        let [hi, lo] = u16::try_from(desc.len()).unwrap_or(0).to_be_bytes();
        vec![0, 0, 0, device_specific, longlba, 0, hi, lo]
    } else {
        vec![0, 0, device_specific, desc.len().min(255) as u8]
    };
    d.extend_from_slice(desc);
    for p in pages {
        d.extend_from_slice(&p);
    }
    // MODE DATA LENGTH excludes itself.
    if ms.ten {
        let n = u16::try_from(d.len() - 2).unwrap_or(u16::MAX);
        d[0..2].copy_from_slice(&n.to_be_bytes());
    } else {
        d[0] = (d.len() - 1).min(255) as u8;
    }
    d
}

/// Block descriptor for a direct-access device: short (SBC-3 table 178) or long
/// (table 179). Changeable values: all zero.
fn block_descriptor(lu: &LuConfig, long: bool, pc: PageControl) -> Vec<u8> {
    let (blocks, len) = match pc {
        PageControl::Changeable => (0, 0),
        _ => (lu.num_blocks, lu.block_size),
    };
    let len = len.to_be_bytes();
    if long {
        let mut d = vec![0u8; 16];
        d[0..8].copy_from_slice(&blocks.to_be_bytes());
        d[12..16].copy_from_slice(&len);
        d
    } else {
        let blocks = u32::try_from(blocks).unwrap_or(u32::MAX);
        let mut d = vec![0u8; 8];
        d[0..4].copy_from_slice(&blocks.to_be_bytes());
        d[5..8].copy_from_slice(&len[1..4]);
        d
    }
}

/// MODE SENSE parameter data, untruncated.
pub(crate) fn mode_sense(lu: &LuConfig, state: &LuState, ms: &ModeSense) -> Result<Vec<u8>, Sense> {
    let codes = select_pages(ms, &PAGES)?;
    let long = ms.ten && ms.llbaa;
    let desc = if ms.dbd {
        Vec::new()
    } else {
        block_descriptor(lu, long, ms.pc)
    };
    // SBC-3 table 177 DEVICE-SPECIFIC PARAMETER: WP (bit 7), DPOFUA (bit 4).
    let wp = lu.readonly || state.mode.swp;
    let dsp = if wp { 0x80 } else { 0 } | 0x10;
    let pages = codes.into_iter().map(|c| page(lu, state, c, ms.pc));
    Ok(assemble(ms, dsp, &desc, pages))
}

fn param_error() -> Sense {
    Sense::illegal_request(asc::INVALID_FIELD_IN_PARAMETER_LIST)
}

/// INVALID FIELD IN PARAMETER LIST pointing at byte `at` of the parameter data (a
/// field pointer past 65535 is left out).
fn param_error_at(at: usize) -> Sense {
    match u16::try_from(at) {
        Ok(b) => param_error().at(FieldPointer::param(b)),
        Err(_) => param_error(),
    }
}

/// MODE SELECT (6)/(10): validate every page against the changeable mask, then apply.
/// Other nexuses get MODE PARAMETERS CHANGED.
pub(crate) fn mode_select(
    e: &ExtCdb,
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    data: &[u8],
) -> Result<(), Sense> {
    let ExtCdb::ModeSelect {
        ten, sp, param_len, ..
    } = *e
    else {
        return Err(Sense::invalid_field_in_cdb());
    };
    let data = data.get(..usize::from(param_len)).unwrap_or(data);
    if data.is_empty() {
        return Ok(());
    }
    let hdr = if ten { 8 } else { 4 };
    if data.len() < hdr {
        return Err(Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let bdl = if ten {
        usize::from(u16::from_be_bytes([data[6], data[7]]))
    } else {
        usize::from(data[3])
    };
    let mut pos = hdr + bdl;
    if pos > data.len() {
        return Err(Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    // A block descriptor may restate the block length, not change it.
    if bdl == 8 {
        let len = u32::from_be_bytes([0, data[hdr + 5], data[hdr + 6], data[hdr + 7]]);
        if len != 0 && len != lu.block_size {
            return Err(param_error_at(hdr + 5));
        }
    }
    let mut next = state.mode;
    while pos < data.len() {
        let code = data[pos] & 0x3f;
        if data[pos] & 0x40 != 0 || !PAGES.contains(&code) {
            return Err(param_error_at(pos));
        }
        let len = usize::from(*data.get(pos + 1).ok_or_else(|| param_error_at(pos + 1))?);
        if len != page_len(code) || pos + 2 + len > data.len() {
            return Err(param_error_at(pos + 1));
        }
        let new = &data[pos..pos + 2 + len];
        let cur = page_values(lu, code, &state.mode);
        let mask = page_mask(code);
        for i in 2..new.len() {
            let bad = (new[i] ^ cur[i]) & !mask[i];
            if bad != 0 {
                // The most significant bit that may not change, but did.
                let bit = 7 - bad.leading_zeros() as u8;
                let err = param_error();
                return Err(match u16::try_from(pos + i) {
                    Ok(b) => err.at(FieldPointer::param_bit(b, bit)),
                    Err(_) => err,
                });
            }
        }
        match code {
            CACHING => {
                next.wce = Some(new[2] & 0x04 != 0);
                next.rcd = new[2] & 0x01 != 0;
            }
            CONTROL => {
                next.d_sense = Some(new[2] & 0x04 != 0);
                next.swp = new[4] & 0x08 != 0;
            }
            _ => {}
        }
        pos += 2 + len;
    }
    if next != state.mode {
        state
            .ua
            .broadcast(asc::MODE_PARAMETERS_CHANGED, Some(ctx.nexus.id));
        // Every gateway of a shared medium takes the new values and announces them.
        state.tell_others(crate::pr_shared::LuEvent::Mode(next));
    }
    state.mode = next;
    if sp {
        state.saved = next;
    }
    Ok(())
}

#[cfg(test)]
#[path = "mode_tests.rs"]
mod tests;
