//! SSC-3 command descriptor blocks: what a tape LU answers, parsed once so that the
//! target side (data-out length, unit attentions) and the drive agree on the fields.

use scsi_sbc::cdb::ModeSense;
use scsi_sbc::{Cdb, Sense};

/// What SPACE counts (SSC-3 table 48, CODE field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceCode {
    /// 0: logical blocks.
    Blocks,
    /// 1: filemarks.
    Filemarks,
    /// 3: to end of data.
    EndOfData,
}

/// What LOCATE (16) addresses (SSC-3 table 32, DEST_TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateTo {
    /// A logical object identifier (LOCATE (10) always).
    Object(u64),
    /// The start of a logical file: after that many filemarks.
    File(u64),
    /// End of data.
    EndOfData,
}

/// A parsed command a tape LU answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SscCdb {
    /// TEST UNIT READY (00h).
    TestUnitReady,
    /// REQUEST SENSE (03h).
    RequestSense {
        /// Descriptor format asked for.
        desc: bool,
        /// Allocation length.
        alloc_len: u8,
    },
    /// INQUIRY (12h), as `scsi_sbc` parses it.
    Inquiry {
        /// EVPD.
        evpd: bool,
        /// PAGE CODE.
        page_code: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// REPORT LUNS (A0h).
    ReportLuns {
        /// SELECT REPORT.
        select_report: scsi_sbc::cdb::SelectReport,
        /// Allocation length.
        alloc_len: u32,
    },
    /// SEND DIAGNOSTIC (1Dh) with SELFTEST: nothing to test in an image.
    SendDiagnostic,
    /// REWIND (01h).
    Rewind,
    /// READ BLOCK LIMITS (05h).
    ReadBlockLimits,
    /// READ (6) (08h).
    Read {
        /// FIXED: the count is in blocks of the fixed block length.
        fixed: bool,
        /// SILI: suppress incorrect-length reports of short blocks.
        sili: bool,
        /// TRANSFER LENGTH: bytes (variable) or blocks (fixed).
        len: u32,
    },
    /// WRITE (6) (0Ah).
    Write {
        /// FIXED.
        fixed: bool,
        /// TRANSFER LENGTH.
        len: u32,
    },
    /// WRITE FILEMARKS (6) (10h).
    WriteFilemarks {
        /// How many.
        count: u32,
    },
    /// SPACE (6) (11h).
    Space {
        /// What to count.
        code: SpaceCode,
        /// How many, negative toward the beginning.
        count: i32,
    },
    /// MODE SELECT (6) (15h) / (10) (55h).
    ModeSelect {
        /// The 10-byte form.
        ten: bool,
        /// PARAMETER LIST LENGTH.
        len: u16,
    },
    /// MODE SENSE (6) (1Ah) / (10) (5Ah).
    ModeSense(ModeSense),
    /// ERASE (6) (19h).
    Erase,
    /// LOAD UNLOAD (1Bh).
    LoadUnload {
        /// LOAD (else unload).
        load: bool,
    },
    /// PREVENT ALLOW MEDIUM REMOVAL (1Eh).
    PreventAllow {
        /// Removal prevented.
        prevent: bool,
    },
    /// LOCATE (10) (2Bh) / (16) (92h).
    Locate(LocateTo),
    /// READ POSITION (34h).
    ReadPosition {
        /// SERVICE ACTION: 0 or 1 short form, 6 long form.
        form: u8,
    },
    /// REPORT DENSITY SUPPORT (44h).
    ReportDensity {
        /// MEDIA: only the densities of the mounted medium.
        media: bool,
        /// Allocation length.
        alloc_len: u16,
    },
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Length of the CDB of `opcode` (SPC-4 4.2.5.1: its group), for the truncation check.
fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 6,
    }
}

impl SscCdb {
    /// Parse a CDB; an opcode SSC does not have (or we do not offer) is INVALID
    /// COMMAND OPERATION CODE, a field we do not support INVALID FIELD IN CDB.
    pub fn parse(cdb: &[u8]) -> Result<Self, Sense> {
        let Some(&op) = cdb.first() else {
            return Err(Sense::invalid_opcode());
        };
        if cdb.len() < cdb_len(op) {
            return Err(Sense::invalid_field_in_cdb());
        }
        let c = match op {
            0x00 => SscCdb::TestUnitReady,
            0x01 => SscCdb::Rewind,
            0x03 | 0x12 | 0xa0 | 0x1a | 0x5a => return spc(cdb),
            0x05 => {
                // MLOC (maximum logical object identifier form) is not offered.
                if cdb[1] & 0x01 != 0 {
                    return Err(Sense::invalid_cdb_field(1, 0));
                }
                SscCdb::ReadBlockLimits
            }
            0x08 => {
                let fixed = cdb[1] & 0x01 != 0;
                let sili = cdb[1] & 0x02 != 0;
                // SSC-3 6.4: SILI with FIXED is an invalid combination.
                if fixed && sili {
                    return Err(Sense::invalid_cdb_field(1, 1));
                }
                SscCdb::Read {
                    fixed,
                    sili,
                    len: be24(&cdb[2..]),
                }
            }
            0x0a => SscCdb::Write {
                fixed: cdb[1] & 0x01 != 0,
                len: be24(&cdb[2..]),
            },
            0x10 => {
                // WSMK: setmarks are not offered.
                if cdb[1] & 0x02 != 0 {
                    return Err(Sense::invalid_cdb_field(1, 1));
                }
                SscCdb::WriteFilemarks {
                    count: be24(&cdb[2..]),
                }
            }
            0x11 => {
                let code = match cdb[1] & 0x0f {
                    0 => SpaceCode::Blocks,
                    1 => SpaceCode::Filemarks,
                    3 => SpaceCode::EndOfData,
                    _ => return Err(Sense::invalid_cdb_field(1, 3)),
                };
                // A 24-bit two's complement count.
                let raw = be24(&cdb[2..]);
                let count = ((raw << 8) as i32) >> 8;
                SscCdb::Space { code, count }
            }
            0x15 | 0x55 => {
                let ten = op == 0x55;
                // SP: parameters cannot be saved.
                if cdb[1] & 0x01 != 0 {
                    return Err(Sense::invalid_cdb_field(1, 0));
                }
                let len = if ten {
                    be16(&cdb[7..])
                } else {
                    u16::from(cdb[4])
                };
                SscCdb::ModeSelect { ten, len }
            }
            0x19 => SscCdb::Erase,
            0x1b => {
                // EOT (position at end of medium before unloading) with LOAD is
                // invalid; HOLD and RETEN change nothing for an image.
                let load = cdb[4] & 0x01 != 0;
                if load && cdb[4] & 0x04 != 0 {
                    return Err(Sense::invalid_cdb_field(4, 2));
                }
                SscCdb::LoadUnload { load }
            }
            0x1d => {
                if cdb[1] & 0x04 == 0 {
                    // Only the default self-test: no diagnostic pages here.
                    return Err(Sense::invalid_cdb_field(1, 2));
                }
                SscCdb::SendDiagnostic
            }
            0x1e => SscCdb::PreventAllow {
                prevent: cdb[4] & 0x03 != 0,
            },
            0x2b => {
                // CP with another partition: there is only partition 0.
                if cdb[1] & 0x02 != 0 && cdb[8] != 0 {
                    return Err(Sense::invalid_cdb_field(8, 7));
                }
                // BT: block addresses are logical object identifiers here anyway.
                let id = u32::from_be_bytes([cdb[3], cdb[4], cdb[5], cdb[6]]);
                SscCdb::Locate(LocateTo::Object(u64::from(id)))
            }
            0x92 => {
                if cdb[1] & 0x02 != 0 && cdb[3] != 0 {
                    return Err(Sense::invalid_cdb_field(3, 7));
                }
                let mut id = [0u8; 8];
                id.copy_from_slice(&cdb[4..12]);
                let id = u64::from_be_bytes(id);
                let to = match (cdb[1] >> 3) & 0x07 {
                    0 => LocateTo::Object(id),
                    1 => LocateTo::File(id),
                    3 => LocateTo::EndOfData,
                    _ => return Err(Sense::invalid_cdb_field(1, 5)),
                };
                SscCdb::Locate(to)
            }
            0x34 => {
                let form = cdb[1] & 0x1f;
                if !matches!(form, 0 | 1 | 6) {
                    return Err(Sense::invalid_cdb_field(1, 4));
                }
                SscCdb::ReadPosition { form }
            }
            0x44 => {
                // MEDIUM TYPE: medium type descriptors are not offered.
                if cdb[1] & 0x02 != 0 {
                    return Err(Sense::invalid_cdb_field(1, 1));
                }
                SscCdb::ReportDensity {
                    media: cdb[1] & 0x01 != 0,
                    alloc_len: be16(&cdb[7..]),
                }
            }
            _ => return Err(Sense::invalid_opcode()),
        };
        Ok(c)
    }

    /// Whether the command works on the medium (and so needs one loaded).
    pub fn needs_medium(&self) -> bool {
        !matches!(
            self,
            SscCdb::RequestSense { .. }
                | SscCdb::Inquiry { .. }
                | SscCdb::ReportLuns { .. }
                | SscCdb::SendDiagnostic
                | SscCdb::PreventAllow { .. }
                | SscCdb::ReadBlockLimits
                | SscCdb::ModeSense(_)
                | SscCdb::ModeSelect { .. }
                | SscCdb::LoadUnload { .. }
                | SscCdb::ReportDensity { media: false, .. }
        )
    }

    /// Whether a pending unit attention does not stop the command (SPC-4 5.9:
    /// INQUIRY, REPORT LUNS, REQUEST SENSE).
    pub fn ua_exempt(&self) -> bool {
        matches!(
            self,
            SscCdb::RequestSense { .. } | SscCdb::Inquiry { .. } | SscCdb::ReportLuns { .. }
        )
    }

    /// Whether the drive (with its medium, in the store) answers the command; the
    /// others are answered by the target from the LU's configuration.
    pub fn runs_in_drive(&self) -> bool {
        !matches!(
            self,
            SscCdb::RequestSense { .. }
                | SscCdb::Inquiry { .. }
                | SscCdb::ReportLuns { .. }
                | SscCdb::SendDiagnostic
        )
    }
}

/// The SPC commands, as `scsi_sbc` parses them.
fn spc(cdb: &[u8]) -> Result<SscCdb, Sense> {
    Ok(match Cdb::parse(cdb)? {
        Cdb::RequestSense { desc, alloc_len } => SscCdb::RequestSense { desc, alloc_len },
        Cdb::Inquiry {
            evpd,
            page_code,
            alloc_len,
        } => SscCdb::Inquiry {
            evpd,
            page_code,
            alloc_len,
        },
        Cdb::ReportLuns {
            select_report,
            alloc_len,
        } => SscCdb::ReportLuns {
            select_report,
            alloc_len,
        },
        Cdb::ModeSense(ms) => SscCdb::ModeSense(ms),
        _ => return Err(Sense::invalid_opcode()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_count_is_signed() {
        let c = SscCdb::parse(&[0x11, 0x01, 0xff, 0xff, 0xfe, 0]).unwrap();
        assert_eq!(
            c,
            SscCdb::Space {
                code: SpaceCode::Filemarks,
                count: -2
            }
        );
        let c = SscCdb::parse(&[0x11, 0x00, 0x7f, 0xff, 0xff, 0]).unwrap();
        assert_eq!(
            c,
            SscCdb::Space {
                code: SpaceCode::Blocks,
                count: 0x7f_ffff
            }
        );
        assert_eq!(
            SscCdb::parse(&[0x11, 0x04, 0, 0, 1, 0]),
            Err(Sense::invalid_cdb_field(1, 3))
        );
    }

    #[test]
    fn sbc_only_opcodes_are_invalid() {
        for op in [0x28u8, 0x2a, 0x25, 0x88, 0x8a, 0x9e, 0x35, 0x42, 0x43, 0x46] {
            let mut cdb = [0u8; 16];
            cdb[0] = op;
            assert_eq!(SscCdb::parse(&cdb), Err(Sense::invalid_opcode()), "{op:#x}");
        }
        assert_eq!(SscCdb::parse(&[]), Err(Sense::invalid_opcode()));
    }

    #[test]
    fn read_fixed_and_sili_conflict() {
        assert_eq!(
            SscCdb::parse(&[0x08, 0x03, 0, 0, 1, 0]),
            Err(Sense::invalid_cdb_field(1, 1))
        );
        assert_eq!(
            SscCdb::parse(&[0x08, 0x01, 0, 1, 0, 0]).unwrap(),
            SscCdb::Read {
                fixed: true,
                sili: false,
                len: 256
            }
        );
    }

    #[test]
    fn locate_forms() {
        assert_eq!(
            SscCdb::parse(&[0x2b, 0, 0, 0, 0, 1, 2, 0, 0, 0]).unwrap(),
            SscCdb::Locate(LocateTo::Object(0x102))
        );
        let mut c16 = [0u8; 16];
        c16[0] = 0x92;
        c16[1] = 1 << 3;
        c16[11] = 3;
        assert_eq!(
            SscCdb::parse(&c16).unwrap(),
            SscCdb::Locate(LocateTo::File(3))
        );
        c16[1] = 3 << 3;
        assert_eq!(
            SscCdb::parse(&c16).unwrap(),
            SscCdb::Locate(LocateTo::EndOfData)
        );
        c16[1] = 2 << 3;
        assert!(SscCdb::parse(&c16).is_err());
        assert!(SscCdb::parse(&c16[..10]).is_err());
    }
}
