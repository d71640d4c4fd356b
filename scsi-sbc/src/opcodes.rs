//! REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): every command we implement, with
//! the CDB usage data (a bit set where the field is supported).

use crate::lu::{DeviceType, LuConfig};
use crate::sense::Sense;

/// One supported command: opcode, service action, CDB usage data.
struct Op {
    opcode: u8,
    sa: Option<u8>,
    usage: &'static [u8],
    /// Only on a disk, only with thin provisioning, only where SANITIZE is offered.
    disk: bool,
    thin: bool,
    sanitize: bool,
    /// Only while the target has ALUA port groups (REPORT TARGET PORT GROUPS).
    alua: bool,
}

const fn op(opcode: u8, usage: &'static [u8]) -> Op {
    Op {
        opcode,
        sa: None,
        usage,
        disk: true,
        thin: false,
        sanitize: false,
        alua: false,
    }
}

const fn any(opcode: u8, usage: &'static [u8]) -> Op {
    Op {
        opcode,
        sa: None,
        usage,
        disk: false,
        thin: false,
        sanitize: false,
        alua: false,
    }
}

const fn sa(opcode: u8, sa: u8, usage: &'static [u8], disk: bool) -> Op {
    Op {
        opcode,
        sa: Some(sa),
        usage,
        disk,
        thin: false,
        sanitize: false,
        alua: false,
    }
}

/// SANITIZE with service action `sa` (SBC-4 5.30): IMMED, AUSE, parameter list length.
const fn sanitize(sa: u8) -> Op {
    Op {
        opcode: 0x48,
        sa: Some(sa),
        usage: match sa {
            0x01 => &[0x48, 0xa1, 0, 0, 0, 0, 0, FF, FF, 0x00],
            0x02 => &[0x48, 0xa2, 0, 0, 0, 0, 0, FF, FF, 0x00],
            0x03 => &[0x48, 0xa3, 0, 0, 0, 0, 0, FF, FF, 0x00],
            _ => &[0x48, 0xbf, 0, 0, 0, 0, 0, FF, FF, 0x00],
        },
        disk: true,
        thin: false,
        sanitize: true,
        alua: false,
    }
}

const fn thin(mut o: Op) -> Op {
    o.thin = true;
    o
}

const fn alua(mut o: Op) -> Op {
    o.alua = true;
    o
}

const FF: u8 = 0xff;

/// The table, in opcode order. Byte 1 masks of reads/writes: DPO (10h) and FUA (08h);
/// protection fields are not supported, so their bits are clear.
const OPS: &[Op] = &[
    any(0x00, &[0x00, 0, 0, 0, 0, 0x00]),
    any(0x03, &[0x03, 0x01, 0, 0, FF, 0x00]),
    op(0x04, &[0x04, 0x3f, 0, 0, 0, 0x00]),
    op(0x08, &[0x08, 0x1f, FF, FF, FF, 0x00]),
    op(0x0a, &[0x0a, 0x1f, FF, FF, FF, 0x00]),
    any(0x12, &[0x12, 0x01, FF, FF, FF, 0x00]),
    op(0x15, &[0x15, 0x11, 0, 0, FF, 0x00]),
    any(0x16, &[0x16, 0, 0, 0, 0, 0x00]),
    any(0x17, &[0x17, 0, 0, 0, 0, 0x00]),
    op(0x1a, &[0x1a, 0x08, FF, FF, FF, 0x00]),
    op(0x1b, &[0x1b, 0x01, 0, 0x0f, 0xf7, 0x00]),
    op(0x1e, &[0x1e, 0, 0, 0, 0x03, 0x00]),
    op(0x25, &[0x25, 0, FF, FF, FF, FF, 0, 0, 0x01, 0x00]),
    op(0x28, &[0x28, 0x1a, FF, FF, FF, FF, 0x1f, FF, FF, 0x00]),
    op(0x2a, &[0x2a, 0x1a, FF, FF, FF, FF, 0x1f, FF, FF, 0x00]),
    op(0x2e, &[0x2e, 0x16, FF, FF, FF, FF, 0x1f, FF, FF, 0x00]),
    op(0x2f, &[0x2f, 0x16, FF, FF, FF, FF, 0x1f, FF, FF, 0x00]),
    op(0x34, &[0x34, 0x02, FF, FF, FF, FF, 0x1f, FF, FF, 0x00]),
    op(0x35, &[0x35, 0x02, FF, FF, FF, FF, 0x1f, FF, FF, 0x00]),
    op(0x37, &[0x37, 0, 0x1f, 0, 0, 0, 0, FF, FF, 0x00]),
    thin(op(0x41, &[0x41, 0x08, FF, FF, FF, FF, 0x1f, FF, FF, 0x00])),
    thin(op(0x42, &[0x42, 0, 0, 0, 0, 0, 0x1f, FF, FF, 0x00])),
    sanitize(0x01),
    sanitize(0x02),
    sanitize(0x03),
    sanitize(0x1f),
    op(0x4d, &[0x4d, 0, FF, FF, 0, 0, 0, FF, FF, 0x00]),
    op(0x55, &[0x55, 0x11, 0, 0, 0, 0, 0, FF, FF, 0x00]),
    any(0x56, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]),
    any(0x57, &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]),
    op(0x5a, &[0x5a, 0x18, FF, FF, 0, 0, 0, FF, FF, 0x00]),
    sa(
        0x5e,
        0x00,
        &[0x5e, 0x00, 0, 0, 0, 0, 0, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5e,
        0x01,
        &[0x5e, 0x01, 0, 0, 0, 0, 0, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5e,
        0x02,
        &[0x5e, 0x02, 0, 0, 0, 0, 0, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5e,
        0x03,
        &[0x5e, 0x03, 0, 0, 0, 0, 0, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x00,
        &[0x5f, 0x00, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x01,
        &[0x5f, 0x01, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x02,
        &[0x5f, 0x02, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x03,
        &[0x5f, 0x03, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x04,
        &[0x5f, 0x04, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x05,
        &[0x5f, 0x05, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x06,
        &[0x5f, 0x06, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    sa(
        0x5f,
        0x07,
        &[0x5f, 0x07, FF, 0, 0, FF, FF, FF, FF, 0x00],
        false,
    ),
    // EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (COPY STATUS, OPERATING PARAMETERS,
    // FAILED SEGMENT DETAILS).
    sa(
        0x83,
        0x00,
        &[0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0x00],
        true,
    ),
    sa(
        0x84,
        0x00,
        &[0x84, 0x00, FF, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0x00],
        true,
    ),
    sa(
        0x84,
        0x03,
        &[0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0x00],
        true,
    ),
    // FAILED SEGMENT DETAILS: LIST IDENTIFIER in byte 2, like COPY STATUS.
    sa(
        0x84,
        0x04,
        &[0x84, 0x04, FF, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0x00],
        true,
    ),
    op(
        0x88,
        &[
            0x88, 0x1a, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    op(
        0x89,
        &[
            0x89, 0x18, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0, 0, FF, 0x1f, 0x00,
        ],
    ),
    op(
        0x8a,
        &[
            0x8a, 0x1a, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    op(
        0x8b,
        &[
            0x8b, 0x18, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    op(
        0x8e,
        &[
            0x8e, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    op(
        0x8f,
        &[
            0x8f, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    op(
        0x90,
        &[
            0x90, 0x02, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    op(
        0x91,
        &[
            0x91, 0x02, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    thin(op(
        0x93,
        &[
            0x93, 0x09, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    )),
    op(
        0x9c,
        &[
            0x9c, 0x18, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00,
        ],
    ),
    sa(
        0x9e,
        0x10,
        &[
            0x9e, 0x10, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0x00,
        ],
        true,
    ),
    thin(sa(
        0x9e,
        0x12,
        &[
            0x9e, 0x12, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0x00,
        ],
        true,
    )),
    any(0xa0, &[0xa0, 0, FF, 0, 0, 0, FF, FF, FF, FF, 0, 0x00]),
    // PARAMETER DATA FORMAT 000b and 001b (byte 1 bit 5).
    alua(sa(
        0xa3,
        0x0a,
        &[0xa3, 0x2a, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0x00],
        false,
    )),
    sa(
        0xa3,
        0x0c,
        &[0xa3, 0x0c, 0x87, FF, FF, FF, FF, FF, FF, FF, 0, 0x00],
        false,
    ),
    sa(
        0xa3,
        0x0d,
        &[0xa3, 0x0d, 0x80, 0, 0, 0, FF, FF, FF, FF, 0, 0x00],
        false,
    ),
    op(
        0xa8,
        &[0xa8, 0x1a, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00],
    ),
    op(
        0xaa,
        &[0xaa, 0x1a, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00],
    ),
    op(
        0xae,
        &[0xae, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00],
    ),
    op(
        0xaf,
        &[0xaf, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, 0x1f, 0x00],
    ),
    op(0xb7, &[0xb7, 0x1f, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0x00]),
];

fn offered(o: &Op, lu: &LuConfig, alua: bool) -> bool {
    (!o.disk || lu.device_type == DeviceType::Disk)
        && (!o.thin || lu.thin_provisioning)
        && (!o.sanitize || lu.sanitize)
        && (!o.alua || alua)
}

/// Command timeouts descriptor (SPC-4 table 299): length 0Ah, no timeouts given.
const TIMEOUTS: [u8; 12] = [0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// REPORT SUPPORTED OPERATION CODES parameter data, untruncated.
pub(crate) fn report(
    lu: &LuConfig,
    alua: bool,
    rctd: bool,
    options: u8,
    opcode: u8,
    req_sa: u16,
) -> Result<Vec<u8>, Sense> {
    let ops = OPS.iter().filter(|o| offered(o, lu, alua));
    if options == 0 {
        // All commands (SPC-4 table 297): 8-byte descriptors.
        let mut body = Vec::new();
        for o in ops {
            body.push(o.opcode);
            body.push(0);
            body.extend_from_slice(&u16::from(o.sa.unwrap_or(0)).to_be_bytes());
            body.push(0);
            body.push(u8::from(o.sa.is_some()) | if rctd { 0x02 } else { 0 });
            body.extend_from_slice(&(o.usage.len() as u16).to_be_bytes());
            if rctd {
                body.extend_from_slice(&TIMEOUTS);
            }
        }
        let mut d = (body.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(&body);
        return Ok(d);
    }
    let has_sa = OPS.iter().any(|o| o.opcode == opcode && o.sa.is_some());
    let found = match options {
        // Opcode without service action; an opcode that has them is an invalid field.
        // REPORTING OPTIONS: byte 2 bits 2-0.
        1 if has_sa => return Err(Sense::invalid_cdb_field(2, 2)),
        1 => OPS
            .iter()
            .find(|o| o.opcode == opcode && offered(o, lu, alua)),
        2 if !has_sa && OPS.iter().any(|o| o.opcode == opcode) => {
            return Err(Sense::invalid_cdb_field(2, 2))
        }
        2 => OPS.iter().find(|o| {
            o.opcode == opcode && o.sa.map(u16::from) == Some(req_sa) && offered(o, lu, alua)
        }),
        3 => OPS.iter().find(|o| {
            o.opcode == opcode
                && (o.sa.is_none() || o.sa.map(u16::from) == Some(req_sa))
                && offered(o, lu, alua)
        }),
        _ => return Err(Sense::invalid_cdb_field(2, 2)),
    };
    // SPC-4 table 298: byte 1 CTDP (bit 7), SUPPORT (2:0): 011b supported, 001b not.
    let mut d = vec![0, if rctd { 0x80 } else { 0 }];
    match found {
        Some(o) => {
            d[1] |= 0x03;
            d.extend_from_slice(&(o.usage.len() as u16).to_be_bytes());
            d.extend_from_slice(o.usage);
        }
        None => {
            d[1] |= 0x01;
            d.extend_from_slice(&[0, 0]);
        }
    }
    if rctd {
        d.extend_from_slice(&TIMEOUTS);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdb::Cdb;
    use crate::test_util::disk;

    #[test]
    fn table_is_sorted_and_parses() {
        for w in OPS.windows(2) {
            assert!(
                (w[0].opcode, w[0].sa) < (w[1].opcode, w[1].sa),
                "{:#x}",
                w[1].opcode
            );
        }
        for o in OPS {
            assert_eq!(o.usage[0], o.opcode);
            // Every CDB we report as supported parses with all usage bits but NACA clear.
            let mut cdb = vec![0u8; o.usage.len()];
            cdb[0] = o.opcode;
            if let Some(s) = o.sa {
                cdb[1] = s;
            }
            let r = Cdb::parse(&cdb);
            assert!(
                !matches!(r, Err(crate::CdbError::UnknownOpcode(_))),
                "{:#x}: {r:?}",
                o.opcode
            );
        }
    }

    #[test]
    fn one_command_forms() {
        let lu = disk();
        let d = report(&lu, false, false, 1, 0x28, 0).unwrap();
        assert_eq!(&d[..4], &[0, 3, 0, 10]);
        assert_eq!(d[5] & 0x18, 0x18); // DPO and FUA supported
        assert_eq!(
            report(&lu, false, false, 1, 0x9e, 0),
            Err(Sense::invalid_cdb_field(2, 2))
        );
        let d = report(&lu, false, true, 2, 0x9e, 0x10).unwrap();
        assert_eq!(&d[..2], &[0, 0x83]);
        assert_eq!(d.len(), 4 + 16 + 12);
        assert_eq!(
            report(&lu, false, false, 1, 0xc0, 0).unwrap(),
            vec![0, 1, 0, 0]
        );
    }
}
