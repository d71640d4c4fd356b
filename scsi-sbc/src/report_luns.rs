//! REPORT LUNS parameter data (SPC-4 6.33) with SAM-5 single-level LUN addressing.

use crate::cdb::SelectReport;

/// SAM-5 4.6: LUN < 256 in peripheral device addressing (00b, bus 0); up to 16383 in
/// flat space addressing (01b), as tgt encodes them. Larger numbers cannot be
/// expressed in a single-level LUN and are left out.
pub(crate) fn encode_lun(lun: u64) -> Option<[u8; 8]> {
    let hi = (lun >> 8) as u8;
    let lo = lun as u8;
    match lun {
        0..=0xff => Some([0, lo, 0, 0, 0, 0, 0, 0]),
        0x100..=0x3fff => Some([0x40 | hi, lo, 0, 0, 0, 0, 0, 0]),
        _ => None,
    }
}

/// LUN list (SPC-4 table 283): LUN LIST LENGTH, 4 reserved bytes, then 8 bytes per LUN.
/// We have no well-known logical units, so `WellKnownOnly` lists nothing.
pub fn report_luns(luns: &[u64], select: SelectReport) -> Vec<u8> {
    let encoded: Vec<[u8; 8]> = match select {
        SelectReport::WellKnownOnly => Vec::new(),
        SelectReport::All | SelectReport::AllAndWellKnown => {
            luns.iter().filter_map(|&l| encode_lun(l)).collect()
        }
    };
    let list_len = u32::try_from(encoded.len() * 8).unwrap_or(u32::MAX);
    let mut d = Vec::with_capacity(8 + encoded.len() * 8);
    d.extend_from_slice(&list_len.to_be_bytes());
    d.extend_from_slice(&[0; 4]);
    for l in &encoded {
        d.extend_from_slice(l);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lu::LuContext;
    use crate::test_util::{controller, disk, run_check, run_good, CTX};
    use crate::Sense;

    fn cdb(select: u8, alloc: u32) -> Vec<u8> {
        let a = alloc.to_be_bytes();
        vec![0xa0, 0, select, 0, 0, 0, a[0], a[1], a[2], a[3], 0, 0]
    }

    #[test]
    fn lists_luns() {
        let luns = [0, 1, 300];
        let ctx = LuContext { luns: &luns, ..CTX };
        let d = run_good(&controller(), &ctx, &cdb(0, 512));
        let want = [
            0, 0, 0, 24, 0, 0, 0, 0, // header
            0, 0, 0, 0, 0, 0, 0, 0, // LUN 0
            0, 1, 0, 0, 0, 0, 0, 0, // LUN 1
            0x41, 0x2c, 0, 0, 0, 0, 0, 0, // LUN 300, flat space
        ];
        assert_eq!(d, want);
        assert_eq!(run_good(&disk(), &ctx, &cdb(2, 512)), want);
    }

    #[test]
    fn well_known_only_is_empty() {
        assert_eq!(run_good(&disk(), &CTX, &cdb(1, 512)), vec![0; 8]);
    }

    #[test]
    fn truncated_to_allocation_length() {
        // The LUN LIST LENGTH still counts every LUN (SPC-4 6.33).
        let d = run_good(&disk(), &CTX, &cdb(0, 16));
        assert_eq!(d, vec![0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_select_or_short_allocation() {
        assert_eq!(
            run_check(&disk(), &CTX, &cdb(3, 512)),
            Sense::invalid_cdb_field(2, 7)
        );
        assert_eq!(
            run_check(&disk(), &CTX, &cdb(0, 15)),
            Sense::invalid_cdb_field(6, 7)
        );
    }

    #[test]
    fn unencodable_lun_is_skipped() {
        assert_eq!(encode_lun(0x3fff), Some([0x7f, 0xff, 0, 0, 0, 0, 0, 0]));
        assert_eq!(encode_lun(0x4000), None);
    }
}
