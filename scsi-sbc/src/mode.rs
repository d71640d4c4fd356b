//! MODE SENSE (6)/(10) parameter data (SPC-4 7.5): header, block descriptor, mode pages.
//!
//! MODE SELECT is not supported, so nothing is changeable: changeable values are all
//! zero, default values equal current ones, and saved values do not exist.

use crate::asc;
use crate::cdb::{ModeSense, PageControl};
use crate::lu::LuConfig;
use crate::sense::Sense;

/// Caching mode page (SBC-3 6.4.5).
const CACHING: u8 = 0x08;
/// Control mode page (SPC-4 7.5.8).
const CONTROL: u8 = 0x0a;
/// Page code asking for every page.
const ALL_PAGES: u8 = 0x3f;
/// Subpage code asking for every subpage.
const ALL_SUBPAGES: u8 = 0xff;

/// One page in page_0 format: page code, page length, then parameters.
fn page(lu: &LuConfig, code: u8, pc: PageControl) -> Vec<u8> {
    let mut p = match code {
        // SBC-3 table 183, 20 bytes: byte 2 bit 2 WCE; read cache enabled (RCD=0).
        CACHING => {
            let mut p = vec![0u8; 20];
            p[2] = if lu.write_cache { 0x04 } else { 0 };
            p
        }
        // SPC-4 table 456, 12 bytes: TST 000b, D_SENSE 0 (fixed sense), QUEUE ALGORITHM
        // MODIFIER 1 (unrestricted reordering: the store's workers may reorder), QERR 00b,
        // BUSY TIMEOUT PERIOD FFFFh (unlimited).
        _ => {
            let mut p = vec![0u8; 12];
            p[3] = 0x10;
            p[8] = 0xff;
            p[9] = 0xff;
            p
        }
    };
    if pc == PageControl::Changeable {
        p.iter_mut().for_each(|b| *b = 0);
    }
    p[0] = code;
    p[1] = (p.len() - 2) as u8;
    p
}

/// The pages a request names, or INVALID FIELD IN CDB.
fn selected(ms: &ModeSense) -> Result<&'static [u8], Sense> {
    match (ms.page_code, ms.subpage_code) {
        // We have no subpages, so "all subpages" returns just the subpage-0 pages.
        (ALL_PAGES, 0 | ALL_SUBPAGES) => Ok(&[CACHING, CONTROL]),
        (CACHING, 0 | ALL_SUBPAGES) => Ok(&[CACHING]),
        (CONTROL, 0 | ALL_SUBPAGES) => Ok(&[CONTROL]),
        _ => Err(Sense::invalid_field_in_cdb()),
    }
}

/// Block descriptor for a direct-access device: short (SBC-3 table 178, 8 bytes: NUMBER
/// OF LOGICAL BLOCKS clamped to FFFFFFFFh, LOGICAL BLOCK LENGTH in bytes 5-7) or long
/// (table 179, 16 bytes). Changeable values: all zero.
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
pub(crate) fn mode_sense(lu: &LuConfig, ms: &ModeSense) -> Result<Vec<u8>, Sense> {
    if ms.pc == PageControl::Saved {
        return Err(Sense::illegal_request(asc::SAVING_PARAMETERS_NOT_SUPPORTED));
    }
    let codes = selected(ms)?;
    let long = ms.ten && ms.llbaa;
    let desc = if ms.dbd {
        Vec::new()
    } else {
        block_descriptor(lu, long, ms.pc)
    };
    // SBC-3 table 177 DEVICE-SPECIFIC PARAMETER: WP (bit 7), DPOFUA (bit 4): DPO and
    // FUA are accepted in READ/WRITE.
    let dsp = if lu.readonly { 0x80 } else { 0 } | 0x10;
    let mut d = if ms.ten {
        // SPC-4 table 453: MODE DATA LENGTH (2), MEDIUM TYPE, DSP, LONGLBA, reserved,
        // BLOCK DESCRIPTOR LENGTH (2).
        let longlba = u8::from(long && !desc.is_empty());
        vec![0, 0, 0, dsp, longlba, 0, 0, desc.len() as u8]
    } else {
        // SPC-4 table 452: MODE DATA LENGTH, MEDIUM TYPE, DSP, BLOCK DESCRIPTOR LENGTH.
        vec![0, 0, dsp, desc.len() as u8]
    };
    d.extend_from_slice(&desc);
    for &c in codes {
        d.extend_from_slice(&page(lu, c, ms.pc));
    }
    // MODE DATA LENGTH excludes itself. Our data is < 100 bytes, so both forms fit.
    if ms.ten {
        let n = (d.len() - 2) as u16;
        d[0..2].copy_from_slice(&n.to_be_bytes());
    } else {
        d[0] = (d.len() - 1) as u8;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use crate::asc;
    use crate::test_util::{controller, disk, run_check, run_good, CTX};
    use crate::Sense;

    const CACHING_WCE: [u8; 20] = [
        0x08, 0x12, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    const CONTROL: [u8; 12] = [0x0a, 0x0a, 0, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0];

    fn sense6(dbd: bool, pc: u8, page: u8, sub: u8, alloc: u8) -> [u8; 6] {
        [
            0x1a,
            if dbd { 0x08 } else { 0 },
            pc << 6 | page,
            sub,
            alloc,
            0,
        ]
    }

    #[test]
    fn mode_sense6_all_pages() {
        let d = run_good(&disk(), &CTX, &sense6(false, 0, 0x3f, 0, 255));
        // Header (SPC-4 table 452), short block descriptor: 1000 blocks of 512.
        let mut want = vec![4 + 8 + 20 + 12 - 1, 0, 0x10, 8];
        want.extend_from_slice(&[0, 0, 0x03, 0xe8, 0, 0, 0x02, 0x00]);
        want.extend_from_slice(&CACHING_WCE);
        want.extend_from_slice(&CONTROL);
        assert_eq!(d, want);
    }

    #[test]
    fn mode_sense6_dbd_readonly_single_page() {
        let mut lu = disk();
        lu.readonly = true;
        lu.write_cache = false;
        let d = run_good(&lu, &CTX, &sense6(true, 0, 0x08, 0, 255));
        let mut want = vec![23, 0, 0x90, 0];
        want.extend_from_slice(&CACHING_WCE);
        want[6] = 0;
        assert_eq!(d, want);
        let d = run_good(&lu, &CTX, &sense6(true, 0, 0x0a, 0xff, 255));
        assert_eq!(&d[4..], &CONTROL);
    }

    #[test]
    fn changeable_values_are_zero() {
        let d = run_good(&disk(), &CTX, &sense6(true, 1, 0x08, 0, 255));
        let mut want = vec![23, 0, 0x10, 0, 0x08, 0x12];
        want.resize(24, 0);
        assert_eq!(d, want);
        let d = run_good(&disk(), &CTX, &sense6(true, 2, 0x08, 0, 255));
        assert_eq!(&d[4..], &CACHING_WCE);
    }

    #[test]
    fn saved_values_not_supported() {
        let s = run_check(&disk(), &CTX, &sense6(false, 3, 0x3f, 0, 255));
        assert_eq!(
            s,
            Sense::illegal_request(asc::SAVING_PARAMETERS_NOT_SUPPORTED)
        );
    }

    #[test]
    fn unknown_page_or_subpage() {
        for (page, sub) in [(0x01, 0), (0x1c, 0), (0x08, 1), (0x3f, 1)] {
            let s = run_check(&disk(), &CTX, &sense6(false, 0, page, sub, 255));
            assert_eq!(s, Sense::invalid_field_in_cdb(), "page {page:#x}/{sub:#x}");
        }
    }

    #[test]
    fn mode_sense6_truncates() {
        // libiscsi modesense6_residuals: allocation length 4 returns 4 bytes.
        let d = run_good(&disk(), &CTX, &sense6(false, 0, 0x3f, 0, 4));
        assert_eq!(d, vec![43, 0, 0x10, 8]);
    }

    #[test]
    fn mode_sense10_long_lba() {
        let mut lu = disk();
        lu.num_blocks = 1 << 33;
        // SPC-4 table 164: byte 1 LLBAA (bit 4), bytes 7-8 ALLOCATION LENGTH.
        let d = run_good(&lu, &CTX, &[0x5a, 0x10, 0x0a, 0, 0, 0, 0, 0, 0xff, 0]);
        let mut want = vec![0, 8 + 16 + 12 - 2, 0, 0x10, 0x01, 0, 0, 16];
        want.extend_from_slice(&[0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0]);
        want.extend_from_slice(&CONTROL);
        assert_eq!(d, want);
        // Without LLBAA: short descriptor, block count clamped.
        let d = run_good(&lu, &CTX, &[0x5a, 0, 0x0a, 0, 0, 0, 0, 0, 0xff, 0]);
        assert_eq!(
            &d[..16],
            &[0, 26, 0, 0x10, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0, 0, 2, 0]
        );
    }

    #[test]
    fn controller_rejects_mode_sense() {
        let s = run_check(&controller(), &CTX, &sense6(false, 0, 0x3f, 0, 255));
        assert_eq!(s, Sense::invalid_opcode());
    }
}
