//! Vital product data pages (SPC-4 7.8, SBC-3 6.5) returned by INQUIRY with EVPD=1.

use crate::inquiry::{ascii, ascii_field, peripheral};
use crate::lu::{DeviceType, LuConfig, LuContext};
use crate::rw::max_transfer_blocks;
use crate::sense::Sense;

/// SUPPORTED VPD PAGES (00h).
const SUPPORTED: u8 = 0x00;
/// UNIT SERIAL NUMBER (80h).
const UNIT_SERIAL: u8 = 0x80;
/// DEVICE IDENTIFICATION (83h).
const DEVICE_ID: u8 = 0x83;
/// BLOCK LIMITS (B0h), SBC-3 6.5.3.
const BLOCK_LIMITS: u8 = 0xb0;
/// BLOCK DEVICE CHARACTERISTICS (B1h), SBC-3 6.5.2.
const BLOCK_DEVICE_CHARACTERISTICS: u8 = 0xb1;
/// EXTENDED INQUIRY DATA (86h), SPC-4 7.8.7.
const EXTENDED_INQUIRY: u8 = 0x86;
/// LOGICAL BLOCK PROVISIONING (B2h), SBC-3 6.6.4.
const LOGICAL_BLOCK_PROVISIONING: u8 = 0xb2;
/// THIRD-PARTY COPY (8Fh), SPC-4 7.8.17.
const THIRD_PARTY_COPY: u8 = 0x8f;

/// Page codes we return, ascending (SPC-4 7.8.14 requires ascending order).
fn supported(lu: &LuConfig) -> &'static [u8] {
    match lu.device_type {
        DeviceType::Disk if lu.thin_provisioning => &[
            SUPPORTED,
            UNIT_SERIAL,
            DEVICE_ID,
            EXTENDED_INQUIRY,
            THIRD_PARTY_COPY,
            BLOCK_LIMITS,
            BLOCK_DEVICE_CHARACTERISTICS,
            LOGICAL_BLOCK_PROVISIONING,
        ],
        DeviceType::Disk => &[
            SUPPORTED,
            UNIT_SERIAL,
            DEVICE_ID,
            EXTENDED_INQUIRY,
            THIRD_PARTY_COPY,
            BLOCK_LIMITS,
            BLOCK_DEVICE_CHARACTERISTICS,
        ],
        DeviceType::Controller | DeviceType::Cd | DeviceType::Tape | DeviceType::Changer => {
            &[SUPPORTED, UNIT_SERIAL, DEVICE_ID]
        }
    }
}

/// One VPD page (untruncated), or INVALID FIELD IN CDB for a page we do not have.
pub(crate) fn page(lu: &LuConfig, ctx: &LuContext<'_>, code: u8) -> Result<Vec<u8>, Sense> {
    if !supported(lu).contains(&code) {
        // INQUIRY's PAGE CODE is byte 2.
        return Err(Sense::invalid_cdb_field(2, 7));
    }
    let body = match code {
        SUPPORTED => supported(lu).to_vec(),
        UNIT_SERIAL => {
            let mut sn = ascii(&lu.identity.scsi_sn);
            sn.truncate(252);
            sn
        }
        DEVICE_ID => device_identification(lu, ctx),
        THIRD_PARTY_COPY => crate::xcopy::third_party_copy_page(),
        BLOCK_LIMITS => block_limits(lu),
        // SPC-4 table 502: HEADSUP/ORDSUP/SIMPSUP (byte 5 of the page), V_SUP NV_SUP
        // (byte 6) off; nothing else applies without protection information.
        EXTENDED_INQUIRY => {
            let mut b = vec![0u8; 0x3c];
            b[1] = 0x07;
            b
        }
        // SBC-3 table 209: THRESHOLD EXPONENT 0, LBPU (bit 7), LBPWS (6), LBPWS10 (5),
        // LBPRZ (byte 1 bit 2), PROVISIONING TYPE 2 (thin).
        LOGICAL_BLOCK_PROVISIONING => vec![0, 0xe0, 0x04, 0x02],
        // B1h: MEDIUM ROTATION RATE (bytes 4-5 of the page): 1 non-rotating unless the
        // administrator says otherwise; form factor not reported.
        _ => {
            let mut b = vec![0u8; 0x3c];
            let rate = lu.geometry.rotation_rate.unwrap_or(1);
            b[0..2].copy_from_slice(&rate.to_be_bytes());
            if lu.sanitize {
                b[3] = 0x50; // WABEREQ, WACEREQ 01b: reads after an erase succeed
            }
            b
        }
    };
    // SPC-4 table 480: byte 0 peripheral, byte 1 page code, bytes 2-3 PAGE LENGTH.
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut d = Vec::with_capacity(body.len() + 4);
    d.extend_from_slice(&[peripheral(lu), code]);
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&body);
    Ok(d)
}

/// Append one designation descriptor (SPC-4 table 482). `data` longer than 255 bytes
/// is cut (callers keep it shorter).
fn designator(out: &mut Vec<u8>, byte0: u8, byte1: u8, data: &[u8]) {
    let data = data.get(..255).unwrap_or(data);
    out.extend_from_slice(&[byte0, byte1, 0, data.len() as u8]);
    out.extend_from_slice(data);
}

/// Code set 1 (binary), 2 (ASCII), 3 (UTF-8); protocol identifier 5 (iSCSI) in bits 7:4.
const BINARY: u8 = 0x01;
const ASCII: u8 = 0x02;
const ISCSI_UTF8: u8 = 0x53;
const ISCSI_BINARY: u8 = 0x51;
/// Byte 1: PIV (bit 7), ASSOCIATION (5:4: 0 LU, 1 target port), DESIGNATOR TYPE (3:0).
const LU_T10: u8 = 0x01;
const LU_NAA: u8 = 0x03;
const PORT_RELATIVE: u8 = 0x94;
const PORT_GROUP: u8 = 0x95;
const PORT_NAME: u8 = 0x98;

/// DEVICE IDENTIFICATION body (SPC-4 7.8.6): T10 vendor ID and NAA designators for
/// the logical unit, then relative port, port group and SCSI name string designators
/// for the target port.
fn device_identification(lu: &LuConfig, ctx: &LuContext<'_>) -> Vec<u8> {
    let mut d = Vec::new();
    designator(&mut d, ASCII, LU_T10, &t10_vendor_id(lu));
    designator(&mut d, BINARY, LU_NAA, &naa6(&lu.identity.scsi_id));
    // Relative target port identifier (SPC-4 7.8.6.7) and target port group
    // (7.8.6.8): without ALUA one port, 1, in group 0; with it this gateway's port
    // and group, so that each gateway's path tells the initiator its group.
    let (port, group) = ctx
        .alua
        .map_or((1, 0), |pg| (pg.local_port, pg.local_group));
    designator(
        &mut d,
        ISCSI_BINARY,
        PORT_RELATIVE,
        &u32::from(port).to_be_bytes(),
    );
    designator(
        &mut d,
        ISCSI_BINARY,
        PORT_GROUP,
        &u32::from(group).to_be_bytes(),
    );
    designator(&mut d, ISCSI_UTF8, PORT_NAME, &target_port_name(ctx));
    d
}

/// The logical unit's designators as (DESIGNATOR TYPE, designator), the ones an
/// EXTENDED COPY CSCD descriptor may name it by.
pub(crate) fn lu_designators(lu: &LuConfig) -> [(u8, Vec<u8>); 2] {
    [
        (LU_T10, t10_vendor_id(lu)),
        (LU_NAA, naa6(&lu.identity.scsi_id).to_vec()),
    ]
}

/// T10 vendor ID designator (SPC-4 7.8.6.4): 8-byte vendor id, then the SCSI ID. tgt's
/// default SCSI ID ("IET     0001000l") already starts with the padded vendor id; it is
/// then used as is, so the designator matches what tgt reports.
fn t10_vendor_id(lu: &LuConfig) -> Vec<u8> {
    let vendor = ascii_field(&lu.identity.vendor_id, 8);
    let id = ascii(&lu.identity.scsi_id);
    let mut out = if id.starts_with(&vendor) {
        id
    } else {
        let mut v = vendor;
        v.extend_from_slice(&id);
        v
    };
    out.truncate(252);
    out
}

/// NAA IEEE Registered Extended (type 6) identifier derived from the SCSI ID the way tgt
/// does (usr/spc.c update_vpd_83): every character contributes one nibble (its hex value,
/// 0 if it is not a hex digit), right-aligned in 128 bits, and the top nibble becomes 6.
/// Deriving it identically keeps a LUN's WWID (udev, multipath) across a switch from tgt.
pub(crate) fn naa6(scsi_id: &str) -> [u8; 16] {
    let v = scsi_id.chars().fold(0u128, |acc, ch| {
        (acc << 4) | u128::from(ch.to_digit(16).unwrap_or(0))
    });
    let v = (v & !(0xf << 124)) | (0x6 << 124);
    v.to_be_bytes()
}

/// SCSI name string of the target port (RFC 7143 §4.2.7.1): `<name>,t,0x<tpgt>`,
/// null terminated and zero padded to a multiple of 4 bytes (SPC-4 7.8.6.11).
fn target_port_name(ctx: &LuContext<'_>) -> Vec<u8> {
    let mut s = format!("{},t,0x{:04x}", ctx.target_name, ctx.tpgt).into_bytes();
    s.truncate(251);
    s.push(0);
    s.resize(s.len().div_ceil(4) * 4, 0);
    s
}

/// BLOCK LIMITS body (SBC-3 table 203, page length 3Ch).
fn block_limits(lu: &LuConfig) -> Vec<u8> {
    let mut b = vec![0u8; 0x3c];
    // Byte offsets below are page offsets minus the 4-byte header.
    // OPTIMAL TRANSFER LENGTH GRANULARITY (page bytes 6-7): as set, else a physical
    // block.
    let g = &lu.geometry;
    let gran = match g.optimal_xfer_gran {
        0 => 1u16 << g.lbppbe.min(15),
        n => n,
    };
    b[2..4].copy_from_slice(&gran.to_be_bytes());
    // OPTIMAL TRANSFER LENGTH (page bytes 12-15), when set.
    b[8..12].copy_from_slice(&g.optimal_xfer_len.to_be_bytes());
    // MAXIMUM TRANSFER LENGTH (page bytes 8-11), in blocks; bounds one command's buffer.
    b[4..8].copy_from_slice(&max_transfer_blocks(lu).to_be_bytes());
    // WSNZ (page byte 4 bit 0) stays 0: WRITE SAME of zero blocks writes through the
    // last LBA (within MAXIMUM WRITE SAME LENGTH).
    // MAXIMUM COMPARE AND WRITE LENGTH (page byte 5).
    b[1] = crate::sbc_ext::MAX_CAW_BLOCKS;
    if lu.thin_provisioning {
        // MAXIMUM UNMAP LBA COUNT (page 20-23), MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
        // (24-27), OPTIMAL UNMAP GRANULARITY (28-31): a file system page.
        b[16..20].copy_from_slice(&crate::sbc_ext::MAX_UNMAP_BLOCKS.to_be_bytes());
        b[20..24].copy_from_slice(&crate::sbc_ext::MAX_UNMAP_DESCRIPTORS.to_be_bytes());
        let gran = (4096 / lu.block_size.max(1)).max(1);
        b[24..28].copy_from_slice(&gran.to_be_bytes());
    }
    // MAXIMUM WRITE SAME LENGTH (page 36-43).
    b[32..40].copy_from_slice(&crate::sbc_ext::max_write_same_blocks(lu).to_be_bytes());
    // MAXIMUM ATOMIC TRANSFER LENGTH (44-47), ATOMIC ALIGNMENT (48-51), ATOMIC TRANSFER
    // LENGTH GRANULARITY (52-55): WRITE ATOMIC takes any aligned length up to the
    // transfer limit.
    b[40..44].copy_from_slice(&max_transfer_blocks(lu).to_be_bytes());
    b[44..48].copy_from_slice(&1u32.to_be_bytes());
    b[48..52].copy_from_slice(&1u32.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{controller, disk, run_check, run_good, CTX};

    fn evpd(page: u8) -> [u8; 6] {
        [0x12, 0x01, page, 0x01, 0x00, 0]
    }

    #[test]
    fn supported_pages_ascending() {
        // SPC-4 table 512.
        let d = run_good(&disk(), &CTX, &evpd(0x00));
        assert_eq!(
            d,
            vec![0, 0, 0, 8, 0x00, 0x80, 0x83, 0x86, 0x8f, 0xb0, 0xb1, 0xb2]
        );
        let mut thick = disk();
        thick.thin_provisioning = false;
        let d = run_good(&thick, &CTX, &evpd(0x00));
        assert_eq!(
            d,
            vec![0, 0, 0, 7, 0x00, 0x80, 0x83, 0x86, 0x8f, 0xb0, 0xb1]
        );
        let d = run_good(&controller(), &CTX, &evpd(0x00));
        assert_eq!(d, vec![0x0c, 0, 0, 3, 0x00, 0x80, 0x83]);
    }

    #[test]
    fn every_listed_page_reads() {
        for lu in [disk(), controller()] {
            for &p in supported(&lu) {
                let d = run_good(&lu, &CTX, &evpd(p));
                assert_eq!(d[1], p);
                assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])) + 4, d.len());
            }
        }
    }

    #[test]
    fn unit_serial_number() {
        // SPC-4 table 531.
        let d = run_good(&disk(), &CTX, &evpd(0x80));
        assert_eq!(d, b"\x00\x80\x00\x06beaf11".to_vec());
    }

    #[test]
    fn device_identification_bytes() {
        let d = run_good(&disk(), &CTX, &evpd(0x83));
        let mut want = vec![0x00, 0x83, 0x00, 0];
        // T10 vendor ID, ASCII, LU: the tgt-style SCSI ID as is.
        want.extend_from_slice(&[0x02, 0x01, 0x00, 16]);
        want.extend_from_slice(b"IET     00010001");
        // NAA 6 from the SCSI ID nibbles: I=0 E=e T=0, five spaces, 00010001.
        want.extend_from_slice(&[0x01, 0x03, 0x00, 16]);
        want.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0x0e, 0, 0, 0, 0, 0x01, 0, 0x01]);
        // Relative target port 1 and target port group 0, iSCSI, target port.
        want.extend_from_slice(&[0x51, 0x94, 0x00, 4, 0, 0, 0, 1]);
        want.extend_from_slice(&[0x51, 0x95, 0x00, 4, 0, 0, 0, 0]);
        // "iqn.2001-04.com.example:t1,t,0x0001" is 35 bytes + NUL, padded to 36.
        want.extend_from_slice(&[0x53, 0x98, 0x00, 36]);
        want.extend_from_slice(b"iqn.2001-04.com.example:t1,t,0x0001\0");
        want[3] = (want.len() - 4) as u8;
        assert_eq!(d, want);
    }

    #[test]
    fn t10_id_prepends_vendor_when_missing() {
        let mut lu = disk();
        lu.identity.scsi_id = "abc".into();
        assert_eq!(t10_vendor_id(&lu), b"IET     abc".to_vec());
    }

    #[test]
    fn block_limits_bytes() {
        // SBC-3 table 203: page length 3Ch, MAXIMUM TRANSFER LENGTH at bytes 8-11.
        let d = run_good(&disk(), &CTX, &evpd(0xb0));
        assert_eq!(d.len(), 64);
        assert_eq!(&d[..4], &[0, 0xb0, 0, 0x3c]);
        assert_eq!(&d[6..8], &[0, 1]);
        let max = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        assert_eq!(u64::from(max) * 512, crate::MAX_TRANSFER_BYTES);
        // WSNZ, MAXIMUM COMPARE AND WRITE LENGTH.
        assert_eq!(&d[4..6], &[0x00, 128]);
        // MAXIMUM UNMAP LBA COUNT 1 Mi, 256 descriptors, granularity 8 (4 KiB).
        assert_eq!(&d[20..32], &[0, 0x10, 0, 0, 0, 0, 1, 0, 0, 0, 0, 8]);
        // MAXIMUM WRITE SAME LENGTH = MAXIMUM TRANSFER LENGTH.
        assert_eq!(
            u64::from(max),
            u64::from_be_bytes(d[36..44].try_into().unwrap())
        );
        // No OPTIMAL TRANSFER LENGTH unless set.
        assert_eq!(&d[12..16], &[0, 0, 0, 0]);
        // A physical block of 8 logical ones is the default granularity; both hints
        // as the administrator sets them.
        let mut lu = disk();
        lu.geometry.lbppbe = 3;
        assert_eq!(&run_good(&lu, &CTX, &evpd(0xb0))[6..8], &[0, 8]);
        lu.geometry.optimal_xfer_gran = 16;
        lu.geometry.optimal_xfer_len = 2048;
        let d = run_good(&lu, &CTX, &evpd(0xb0));
        assert_eq!(&d[6..8], &[0, 16]);
        assert_eq!(&d[12..16], &[0, 0, 8, 0]);
    }

    #[test]
    fn medium_rotation_rate() {
        // SBC-3 table 204: bytes 4-5; 1 = non-rotating medium (the default).
        assert_eq!(&run_good(&disk(), &CTX, &evpd(0xb1))[4..6], &[0, 1]);
        let mut lu = disk();
        lu.geometry.rotation_rate = Some(7200);
        assert_eq!(&run_good(&lu, &CTX, &evpd(0xb1))[4..6], &[0x1c, 0x20]);
    }

    #[test]
    fn unknown_or_disk_only_page_is_invalid_field() {
        assert_eq!(
            run_check(&disk(), &CTX, &evpd(0x87)),
            Sense::invalid_cdb_field(2, 7)
        );
        assert_eq!(
            run_check(&controller(), &CTX, &evpd(0xb0)),
            Sense::invalid_cdb_field(2, 7)
        );
    }

    #[test]
    fn long_target_name_is_bounded() {
        let name = "x".repeat(400);
        let ctx = LuContext {
            target_name: &name,
            ..CTX
        };
        let d = run_good(&disk(), &ctx, &[0x12, 0x01, 0x83, 0x04, 0x00, 0]);
        assert!(d.len() < 400);
    }
}
