//! INQUIRY (SPC-4 6.6): standard data; VPD pages live in `vpd`.

use crate::lu::{DeviceType, LuConfig, LuContext};
use crate::sense::Sense;
use crate::vpd;

/// Peripheral qualifier 000b (connected) and device type (SPC-4 table 141).
pub(crate) fn peripheral(lu: &LuConfig) -> u8 {
    lu.device_type.peripheral_type()
}

/// `s` as a fixed-width ASCII field: truncated, space padded, and with characters
/// outside 20h-7Eh replaced by spaces (SPC-4 4.4.1).
pub(crate) fn ascii_field(s: &str, width: usize) -> Vec<u8> {
    let mut out: Vec<u8> = s
        .bytes()
        .map(|b| if (0x20..=0x7e).contains(&b) { b } else { b' ' })
        .take(width)
        .collect();
    out.resize(width, b' ');
    out
}

/// Printable ASCII of `s` without padding (VPD 80h/83h strings).
pub(crate) fn ascii(s: &str) -> Vec<u8> {
    s.bytes()
        .map(|b| if (0x20..=0x7e).contains(&b) { b } else { b' ' })
        .collect()
}

/// Version descriptors (SPC-4 table 144, "no version claimed" codes): SAM-5, iSCSI,
/// SPC-4, then SBC-3 for a disk (libiscsi's suite looks for SBC-3 to expect the 3Ch
/// Block Limits page), MMC-6 for a CD/DVD device or SCC-2 for a controller.
fn version_descriptors(lu: &LuConfig) -> [u16; 4] {
    let command_set = match lu.device_type {
        DeviceType::Disk => 0x04c0,
        DeviceType::Cd => 0x04e0,
        DeviceType::Controller => 0x01e0,
        // SSC-3 and SMC-3, no version claimed.
        DeviceType::Tape => 0x0300,
        DeviceType::Changer => 0x0480,
    };
    [0x00a0, 0x0960, 0x0460, command_set]
}

/// Length of our standard INQUIRY data: 58 bytes up to the version descriptors, plus
/// four 2-byte descriptors (the same 66 bytes tgt returns).
const STANDARD_LEN: usize = 66;

/// Standard INQUIRY data (SPC-4 table 140), untruncated.
pub fn standard(lu: &LuConfig) -> Vec<u8> {
    standard_in(lu, None)
}

/// Standard INQUIRY data with TPGS set when the target has ALUA port groups.
pub(crate) fn standard_in(lu: &LuConfig, alua: Option<&crate::alua::PortGroups>) -> Vec<u8> {
    let mut d = vec![0u8; STANDARD_LEN];
    d[0] = peripheral(lu);
    d[1] = if lu.removable { 0x80 } else { 0 }; // RMB
    d[2] = 0x06; // VERSION: SPC-4
    d[3] = 0x12; // HISUP | RESPONSE DATA FORMAT 2
    d[4] = (STANDARD_LEN - 5) as u8; // ADDITIONAL LENGTH
    if lu.is_disk() {
        d[5] = 0x08; // 3PC: EXTENDED COPY
    }
    if alua.is_some() {
        d[5] |= crate::alua::TPGS_IMPLICIT;
    }
    d[7] = 0x02; // CMDQUE
    d[8..16].copy_from_slice(&ascii_field(&lu.identity.vendor_id, 8));
    d[16..32].copy_from_slice(&ascii_field(&lu.identity.product_id, 16));
    d[32..36].copy_from_slice(&ascii_field(&lu.identity.product_rev, 4));
    for (i, v) in version_descriptors(lu).iter().enumerate() {
        let at = 58 + 2 * i;
        d[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    d
}

/// INQUIRY: standard data, or the VPD page `page_code` when `evpd` is set. The
/// result is not yet cut to the allocation length.
pub fn inquiry(
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    evpd: bool,
    page_code: u8,
) -> Result<Vec<u8>, Sense> {
    if evpd {
        vpd::page(lu, ctx, page_code)
    } else {
        Ok(standard_in(lu, ctx.alua))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{controller, disk, run_good, CTX};

    #[test]
    fn standard_disk_bytes() {
        let d = run_good(&disk(), &CTX, &[0x12, 0, 0, 0, 0xff, 0]);
        // Byte 5: 3PC (EXTENDED COPY).
        let mut want = vec![0x00, 0x00, 0x06, 0x12, 61, 0x08, 0, 0x02];
        want.extend_from_slice(b"IET     VIRTUAL-DISK    0001");
        want.resize(58, 0);
        want.extend_from_slice(&[0x00, 0xa0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xc0]);
        assert_eq!(d, want);
    }

    #[test]
    fn controller_and_removable() {
        let d = run_good(&controller(), &CTX, &[0x12, 0, 0, 0, 0xff, 0]);
        assert_eq!(d[0], 0x0c);
        assert_eq!(&d[16..32], b"Controller      ");
        assert_eq!(&d[64..66], &[0x01, 0xe0]);
        let mut lu = disk();
        lu.removable = true;
        assert_eq!(run_good(&lu, &CTX, &[0x12, 0, 0, 0, 36, 0])[1], 0x80);
    }

    #[test]
    fn allocation_length_truncates() {
        // SPC-4 4.2.5.6: return min(allocation length, available) bytes.
        for alloc in [0u16, 5, 36, 65, 66, 511, 512] {
            let cdb = [0x12, 0, 0, (alloc >> 8) as u8, alloc as u8, 0];
            let d = run_good(&disk(), &CTX, &cdb);
            assert_eq!(d.len(), usize::from(alloc).min(66), "alloc {alloc}");
        }
    }

    #[test]
    fn long_or_odd_identity_is_sanitized() {
        let mut lu = disk();
        lu.identity.vendor_id = "VENDOR-TOO-LONG".into();
        lu.identity.product_id = "tab\there".into();
        let d = run_good(&lu, &CTX, &[0x12, 0, 0, 0, 36, 0]);
        assert_eq!(&d[8..16], b"VENDOR-T");
        assert_eq!(&d[16..32], b"tab here        ");
    }

    #[test]
    fn page_code_without_evpd_is_invalid_field() {
        // SPC-4 6.6: EVPD=0 and PAGE CODE != 0 → ILLEGAL REQUEST, INVALID FIELD IN CDB.
        let s = crate::test_util::run_check(&disk(), &CTX, &[0x12, 0, 0x80, 0, 0xff, 0]);
        assert_eq!(s, Sense::invalid_cdb_field(2, 7));
        let s = crate::test_util::run_check(&disk(), &CTX, &[0x12, 0x02, 0, 0, 0xff, 0]);
        assert_eq!(s, Sense::invalid_cdb_field(1, 1));
    }
}
