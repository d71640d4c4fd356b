//! Parameter data of the multimedia commands (MMC-6 clause 6 and 7), for a single
//! session, single track, finalized read-only disc of `blocks` 2048-byte blocks.

use crate::{Medium, Profile, BLOCK_SIZE};
use scsi_sbc::Sense;

/// ADR 1 (Q sub-channel encodes current position) and CONTROL 4 (data track, recorded
/// uninterrupted): byte 1 of each TOC track descriptor (MMC-6 table 478).
const ADR_CONTROL_DATA: u8 = 0x14;
/// Track number of the lead-out area in a TOC.
const LEAD_OUT: u8 = 0xaa;

/// An LBA as a TOC address: 4-byte LBA, or MSF (00h, M, S, F) of LBA + 150 frames
/// (MMC-6 6.26.3.1.2), clamped to FFh:3Bh:4Ah (255:59:74), the largest MSF, past
/// which a DVD's addresses do not fit.
fn toc_address(lba: u64, msf: bool) -> [u8; 4] {
    if !msf {
        return u32::try_from(lba).unwrap_or(u32::MAX).to_be_bytes();
    }
    let frames = lba + 150;
    let (m, s, f) = (frames / (60 * 75), (frames / 75) % 60, frames % 75);
    if m > 255 {
        return [0, 255, 59, 74];
    }
    [0, m as u8, s as u8, f as u8]
}

/// READ TOC/PMA/ATIP: format 0 (formatted TOC) and 1 (multi-session information).
/// `track` 0 or 1 lists track 1 and the lead-out, AAh the lead-out alone.
pub(crate) fn read_toc(blocks: u64, msf: bool, format: u8, track: u8) -> Result<Vec<u8>, Sense> {
    let mut d = vec![0, 0, 1, 1];
    match format {
        0 => {
            if !matches!(track, 0 | 1 | LEAD_OUT) {
                return Err(Sense::invalid_cdb_field(6, 7));
            }
            if track != LEAD_OUT {
                d.extend_from_slice(&[0, ADR_CONTROL_DATA, 1, 0]);
                d.extend_from_slice(&toc_address(0, msf));
            }
            d.extend_from_slice(&[0, ADR_CONTROL_DATA, LEAD_OUT, 0]);
            d.extend_from_slice(&toc_address(blocks, msf));
        }
        // First and last complete session 1; the first track of the last session.
        1 => {
            d.extend_from_slice(&[0, ADR_CONTROL_DATA, 1, 0]);
            d.extend_from_slice(&toc_address(0, msf));
        }
        _ => return Err(Sense::invalid_cdb_field(2, 3)),
    }
    // TOC DATA LENGTH excludes itself.
    let len = (d.len() - 2) as u16;
    d[0..2].copy_from_slice(&len.to_be_bytes());
    Ok(d)
}

/// Feature numbers (MMC-6 table 90).
const PROFILE_LIST: u16 = 0x0000;
const CORE: u16 = 0x0001;
const MORPHING: u16 = 0x0002;
const REMOVABLE_MEDIUM: u16 = 0x0003;
const RANDOM_READABLE: u16 = 0x0010;
const CD_READ: u16 = 0x001e;
const DVD_READ: u16 = 0x001f;

/// One feature descriptor: code, VERSION/PERSISTENT/CURRENT, ADDITIONAL LENGTH, data.
fn feature(code: u16, version: u8, persistent: bool, current: bool, data: &[u8]) -> Vec<u8> {
    let mut f = code.to_be_bytes().to_vec();
    f.push(version << 2 | u8::from(persistent) << 1 | u8::from(current));
    f.push(data.len() as u8);
    f.extend_from_slice(data);
    f
}

/// GET CONFIGURATION parameter data (MMC-6 6.6.2): the feature header with the
/// current profile (0000h with no medium), then the features numbered `start` or
/// higher (RT 0), only the current ones (RT 1), or the `start` feature alone (RT 2).
pub(crate) fn configuration(medium: Option<Medium>, rt: u8, start: u16) -> Vec<u8> {
    let current = medium.map(|m| m.profile);
    let is = |p: Profile| current == Some(p);
    let profile_list = {
        // Profile descriptors (MMC-6 table 91), the higher number first.
        let mut data = Vec::new();
        for p in [Profile::DvdRom, Profile::CdRom] {
            data.extend_from_slice(&(p as u16).to_be_bytes());
            data.extend_from_slice(&[u8::from(is(p)), 0]);
        }
        data
    };
    // Random Readable (MMC-6 5.3.5): LOGICAL BLOCK SIZE, BLOCKING (16 sectors per ECC
    // block on a DVD, 1 on a CD), PP (read errors are reported per block).
    let blocking: u16 = if is(Profile::DvdRom) { 0x10 } else { 1 };
    let mut random = BLOCK_SIZE.to_be_bytes().to_vec();
    random.extend_from_slice(&blocking.to_be_bytes());
    random.extend_from_slice(&[0x01, 0]);
    let features: [(u16, bool, Vec<u8>); 7] = [
        (
            PROFILE_LIST,
            true,
            feature(PROFILE_LIST, 0, true, true, &profile_list),
        ),
        // Core (5.3.2): PHYSICAL INTERFACE STANDARD 1, SCSI family.
        (CORE, true, feature(CORE, 0, true, true, &[0, 0, 0, 1])),
        // Morphing (5.3.3): no operational change events, no asynchronous GESN.
        (MORPHING, true, feature(MORPHING, 0, true, true, &[0; 4])),
        // Removable Medium (5.3.4): LOADING MECHANISM TYPE 001b (tray), EJECT (START
        // STOP UNIT ejects), LOCK (PREVENT ALLOW MEDIUM REMOVAL locks).
        (
            REMOVABLE_MEDIUM,
            true,
            feature(REMOVABLE_MEDIUM, 0, true, true, &[0x29, 0, 0, 0]),
        ),
        (
            RANDOM_READABLE,
            medium.is_some(),
            feature(RANDOM_READABLE, 0, false, medium.is_some(), &random),
        ),
        // CD Read (5.3.10): no CD-Text, C2 pointers or digital audio.
        (
            CD_READ,
            is(Profile::CdRom),
            feature(CD_READ, 0, false, is(Profile::CdRom), &[0; 4]),
        ),
        // DVD Read (5.3.11), version 0.
        (
            DVD_READ,
            is(Profile::DvdRom),
            feature(DVD_READ, 0, false, is(Profile::DvdRom), &[]),
        ),
    ];
    let mut d = vec![0u8; 8];
    d[6..8].copy_from_slice(&current.map_or(0, |p| p as u16).to_be_bytes());
    for (code, cur, bytes) in features {
        let wanted = match rt {
            0 => code >= start,
            1 => code >= start && cur,
            _ => code == start,
        };
        if wanted {
            d.extend_from_slice(&bytes);
        }
    }
    // DATA LENGTH: the bytes after itself.
    let len = (d.len() - 4) as u32;
    d[0..4].copy_from_slice(&len.to_be_bytes());
    d
}

/// Notification class 4, media (MMC-6 table 162), bit 4 of the class fields.
const MEDIA_CLASS: u8 = 0x10;

/// GET EVENT STATUS NOTIFICATION, polled (MMC-6 6.7.2): the media class event (`event`,
/// 0 NoChg, 2 NewMedia, 3 MediaRemoval) and media status when the host asks for the
/// media class, else "no event available" (NEA) with only the header.
pub(crate) fn event_status(classes: u8, event: u8, present: bool, tray_open: bool) -> Vec<u8> {
    if classes & MEDIA_CLASS == 0 {
        // EVENT DESCRIPTOR LENGTH 2, NEA, SUPPORTED EVENT CLASSES: media.
        return vec![0, 2, 0x80, MEDIA_CLASS];
    }
    // Media event descriptor (table 172): MEDIA EVENT CODE, MEDIA PRESENT (bit 1) and
    // DOOR OR TRAY OPEN (bit 0), START SLOT, END SLOT.
    let status = u8::from(present) << 1 | u8::from(tray_open);
    vec![0, 6, 0x04, MEDIA_CLASS, event & 0x0f, status, 0, 0]
}

/// READ DISC INFORMATION, standard disc information (MMC-6 6.22.3.1): a finalized
/// (complete) disc with one complete session of one track, not erasable.
pub(crate) fn disc_information() -> Vec<u8> {
    let mut d = vec![0u8; 34];
    d[1] = 32; // DISC INFORMATION LENGTH
               // ERASABLE 0, STATE OF LAST SESSION 11b (complete), DISC STATUS 10b (finalized).
    d[2] = 0x0e;
    d[3] = 1; // number of the first track on the disc
    d[4] = 1; // number of sessions (LSB)
    d[5] = 1; // first track number in the last session (LSB)
    d[6] = 1; // last track number in the last session (LSB)
    d
}

/// READ TRACK INFORMATION (MMC-6 6.27.3) of track 1, the only track; named by an LBA
/// in it (type 0), by its number (type 1) or by session 1 (type 2).
pub(crate) fn track_information(m: Medium, kind: u8, number: u32) -> Result<Vec<u8>, Sense> {
    let valid = match kind {
        0 => u64::from(number) < m.blocks,
        1 | 2 => number == 1,
        _ => false,
    };
    if !valid {
        // The LOGICAL BLOCK ADDRESS/TRACK/SESSION NUMBER field, or the type.
        let at = if kind > 2 { (1, 1) } else { (2, 7) };
        return Err(Sense::invalid_cdb_field(at.0, at.1));
    }
    let blocks = u32::try_from(m.blocks).unwrap_or(u32::MAX);
    let mut d = vec![0u8; 48];
    d[1] = 46; // DATA LENGTH
    d[2] = 1; // track number (LSB)
    d[3] = 1; // session number (LSB)
    d[5] = 0x04; // TRACK MODE 4: data, recorded uninterrupted
    d[6] = 0x01; // DATA MODE 1
    d[7] = 0x02; // LRA_V: LAST RECORDED ADDRESS is valid
                 // TRACK START ADDRESS 0, NEXT WRITABLE ADDRESS 0, FREE BLOCKS 0.
    let blocking: u32 = if m.profile == Profile::DvdRom {
        0x10
    } else {
        0
    };
    d[20..24].copy_from_slice(&blocking.to_be_bytes()); // FIXED PACKET SIZE / BLOCKING
    d[24..28].copy_from_slice(&blocks.to_be_bytes()); // TRACK SIZE
    d[28..32].copy_from_slice(&blocks.saturating_sub(1).to_be_bytes()); // LRA
    Ok(d)
}

/// MECHANISM STATUS (MMC-6 6.9.2): no changer, the mechanism idle, DOOR OPEN when the
/// medium is ejected, no slot tables.
pub(crate) fn mechanism_status(tray_open: bool) -> Vec<u8> {
    let mut d = vec![0u8; 8];
    d[1] = u8::from(tray_open) << 4;
    d
}

/// MODE SENSE pages of a CD/DVD LU (MMC-6 7.2), ascending.
pub(crate) const MODE_PAGES: [u8; 2] = [READ_WRITE_ERROR_RECOVERY, CAPABILITIES];
/// Read/Write Error Recovery (MMC-6 7.3).
const READ_WRITE_ERROR_RECOVERY: u8 = 0x01;
/// MM Capabilities and Mechanical Status (MMC-3 6.3.11; legacy in MMC-6, and what
/// Linux's sr driver reads to learn what the drive does).
const CAPABILITIES: u8 = 0x2a;

/// One mode page: current values, or with `changeable` the mask (nothing can be
/// changed: MODE SELECT is not offered). `locked`: removal is prevented.
pub(crate) fn mode_page(code: u8, changeable: bool, locked: bool) -> Vec<u8> {
    let mut p = match code {
        // READ RETRY COUNT 8 (byte 3) and WRITE RETRY COUNT 8 (byte 8), as tgt.
        READ_WRITE_ERROR_RECOVERY => vec![code, 0x0a, 0, 8, 0, 0, 0, 0, 8, 0, 0, 0],
        _ => {
            let mut p = vec![0u8; 32];
            p[0] = code;
            p[1] = 0x1e;
            // Reads CD-R, CD-RW, method 2, DVD-ROM, DVD-R, DVD-RAM (as tgt); writes
            // nothing.
            p[2] = 0x3f;
            p[3] = 0x00;
            // Multi-session, Mode 2 Form 2 and Form 1.
            p[4] = 0x70;
            // LOADING MECHANISM TYPE 001b (tray), EJECT, PREVENT JUMPER absent, LOCK
            // STATE (bit 1), LOCK.
            p[6] = 0x29 | u8::from(locked) << 1;
            // Obsolete maximum and current read speeds, in kB/s (tgt's 4234, 3x DVD).
            p[8..10].copy_from_slice(&4234u16.to_be_bytes());
            p[14..16].copy_from_slice(&4234u16.to_be_bytes());
            // COPY MANAGEMENT REVISION SUPPORTED 1.
            p[23] = 0x01;
            p
        }
    };
    if changeable {
        p[2..].fill(0);
    }
    p
}
