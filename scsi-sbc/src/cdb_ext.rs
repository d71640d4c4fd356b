//! CDB parsing for the commands beyond the basic read/write set: verify, write same,
//! unmap, provisioning, atomic writes, reservations, mode select, report supported
//! operation codes, log sense, format, sanitize and copy.

use crate::cdb::{be16, be32, invalid, transfer_flags, CdbError, Transfer, MAX_CDB};

/// A parsed command of this module. Field names follow SBC-4 / SPC-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtCdb {
    /// MODE SELECT (6) (15h) / (10) (55h), SPC-4 6.9, 6.10.
    ModeSelect {
        /// The 10-byte form.
        ten: bool,
        /// Page format.
        pf: bool,
        /// Save pages.
        sp: bool,
        /// Parameter list length.
        param_len: u16,
    },
    /// PRE-FETCH (10) (34h) / (16) (90h), SBC-3 5.9, 5.10.
    PreFetch {
        /// First block.
        lba: u64,
        /// Number of blocks (0: through the end).
        blocks: u32,
    },
    /// VERIFY (10) (2Fh) / (12) (AFh) / (16) (8Fh), SBC-3 5.33-5.35.
    Verify {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// BYTCHK: 0 medium check only, 1 compare data-out, 3 compare one block to each.
        bytchk: u8,
    },
    /// WRITE AND VERIFY (10) (2Eh) / (12) (AEh) / (16) (8Eh), SBC-3 5.40-5.42.
    WriteVerify(Transfer),
    /// WRITE SAME (10) (41h) / (16) (93h), SBC-3 5.44, 5.45.
    WriteSame {
        /// First block.
        lba: u64,
        /// Number of blocks (0: through the end).
        blocks: u32,
        /// Deallocate instead of writing.
        unmap: bool,
        /// No data-out buffer: write zeros (16 only).
        ndob: bool,
    },
    /// UNMAP (42h), SBC-3 5.28.
    Unmap {
        /// Parameter list length.
        param_len: u16,
    },
    /// GET LBA STATUS (9Eh/12h), SBC-3 5.6.
    GetLbaStatus {
        /// Starting LBA.
        lba: u64,
        /// Allocation length.
        alloc_len: u32,
    },
    /// COMPARE AND WRITE (89h), SBC-3 5.2.
    CompareAndWrite {
        /// First block.
        lba: u64,
        /// Number of blocks (data-out carries twice that).
        blocks: u8,
        /// Force unit access.
        fua: bool,
    },
    /// ORWRITE (16) (8Bh), SBC-4 5.10.
    OrWrite(Transfer),
    /// WRITE ATOMIC (16) (9Ch), SBC-4 5.48.
    WriteAtomic(Transfer),
    /// READ DEFECT DATA (10) (37h) / (12) (B7h), SBC-3 5.19, 5.20.
    ReadDefectData {
        /// The 12-byte form.
        twelve: bool,
        /// Byte 2 (10) / byte 1 (12): REQ_PLIST, REQ_GLIST, DEFECT LIST FORMAT.
        flags: u8,
        /// Allocation length.
        alloc_len: u32,
    },
    /// START STOP UNIT (1Bh), SBC-3 5.25.
    StartStopUnit {
        /// POWER CONDITION.
        power_condition: u8,
        /// Load/eject.
        loej: bool,
        /// Start.
        start: bool,
    },
    /// PREVENT ALLOW MEDIUM REMOVAL (1Eh), SBC-3 5.11.
    PreventAllow {
        /// PREVENT field.
        prevent: u8,
    },
    /// RESERVE (6) (16h) / (10) (56h), SPC-2 7.21.
    Reserve,
    /// RELEASE (6) (17h) / (10) (57h), SPC-2 7.19.
    Release,
    /// PERSISTENT RESERVE IN (5Eh), SPC-4 6.13.
    PrIn {
        /// Service action.
        sa: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// PERSISTENT RESERVE OUT (5Fh), SPC-4 6.14.
    PrOut {
        /// Service action.
        sa: u8,
        /// SCOPE.
        scope: u8,
        /// TYPE.
        typ: u8,
        /// Parameter list length.
        param_len: u32,
    },
    /// REPORT SUPPORTED OPERATION CODES (A3h/0Ch), SPC-4 6.35.
    ReportOpcodes {
        /// Return command timeouts descriptors.
        rctd: bool,
        /// REPORTING OPTIONS.
        options: u8,
        /// REQUESTED OPERATION CODE.
        opcode: u8,
        /// REQUESTED SERVICE ACTION.
        sa: u16,
        /// Allocation length.
        alloc_len: u32,
    },
    /// REPORT TARGET PORT GROUPS (A3h/0Ah), SPC-4 6.37. Answered only when the target
    /// has ALUA port groups configured (otherwise an unknown service action, as before).
    ReportTargetPortGroups {
        /// PARAMETER DATA FORMAT (byte 1 bits 7:5): 000b length only, 001b extended
        /// header; others are refused when the command runs.
        format: u8,
        /// Allocation length.
        alloc_len: u32,
    },
    /// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (A3h/0Dh), SPC-4 6.36.
    ReportTmf {
        /// Return extended parameter data.
        repd: bool,
        /// Allocation length.
        alloc_len: u32,
    },
    /// LOG SENSE (4Dh), SPC-4 6.7.
    LogSense {
        /// Page code.
        page: u8,
        /// Subpage code.
        subpage: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// FORMAT UNIT (04h), SBC-3 5.3.
    FormatUnit {
        /// A parameter list follows.
        fmtdata: bool,
        /// Long parameter list header.
        longlist: bool,
    },
    /// SANITIZE (48h), SBC-3 5.21.
    Sanitize {
        /// Return status at once.
        immed: bool,
        /// Allow unrestricted sanitize exit.
        ause: bool,
        /// Service action: 1 overwrite, 2 block erase, 3 crypto erase, 1Fh exit failure.
        sa: u8,
        /// Parameter list length.
        param_len: u16,
    },
    /// EXTENDED COPY (LID1) (83h/00h), SPC-4 6.4.
    ExtendedCopy {
        /// Parameter list length.
        param_len: u32,
    },
    /// RECEIVE COPY RESULTS (84h), SPC-4 6.18.
    ReceiveCopyResults {
        /// Service action: 0 copy status, 3 operating parameters, 4 failed segment.
        sa: u8,
        /// List identifier.
        list_id: u8,
        /// Allocation length.
        alloc_len: u32,
    },
}

/// Operation codes parsed here (SANITIZE only reaches an LU that offers it).
pub(crate) fn is_ext_opcode(op: u8) -> bool {
    matches!(
        op,
        0x04 | 0x15
            | 0x16
            | 0x17
            | 0x1b
            | 0x1e
            | 0x2e
            | 0x2f
            | 0x34
            | 0x37
            | 0x41
            | 0x42
            | 0x48
            | 0x4d
            | 0x55
            | 0x56
            | 0x57
            | 0x5e
            | 0x5f
            | 0x83
            | 0x84
            | 0x89
            | 0x8b
            | 0x8e
            | 0x8f
            | 0x90
            | 0x93
            | 0x9c
            | 0xa3
            | 0xae
            | 0xaf
            | 0xb7
    )
}

fn lba32(c: &[u8; MAX_CDB]) -> u64 {
    u64::from(be32([c[2], c[3], c[4], c[5]]))
}

fn lba64(c: &[u8; MAX_CDB]) -> u64 {
    u64::from_be_bytes([c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]])
}

fn sa_error(c: &[u8; MAX_CDB]) -> CdbError {
    CdbError::UnknownServiceAction {
        opcode: c[0],
        service_action: c[1] & 0x1f,
    }
}

/// BYTCHK of VERIFY / WRITE AND VERIFY (byte 1 bits 2:1); 2 is reserved (SBC-4 5.34).
fn bytchk(b1: u8) -> Result<u8, CdbError> {
    match (b1 >> 1) & 0x03 {
        2 => Err(invalid(1, 2)),
        v => Ok(v),
    }
}

/// Parse one of this module's commands (the opcode was checked by the caller).
pub(crate) fn parse(c: &[u8; MAX_CDB]) -> Result<ExtCdb, CdbError> {
    Ok(match c[0] {
        0x15 | 0x55 => {
            let ten = c[0] == 0x55;
            ExtCdb::ModeSelect {
                ten,
                pf: c[1] & 0x10 != 0,
                sp: c[1] & 0x01 != 0,
                param_len: if ten {
                    be16([c[7], c[8]])
                } else {
                    u16::from(c[4])
                },
            }
        }
        0x34 => ExtCdb::PreFetch {
            lba: lba32(c),
            blocks: u32::from(be16([c[7], c[8]])),
        },
        0x90 => ExtCdb::PreFetch {
            lba: lba64(c),
            blocks: be32([c[10], c[11], c[12], c[13]]),
        },
        0x2f | 0xaf | 0x8f => {
            if c[1] & 0xe0 != 0 {
                return Err(invalid(1, 7)); // VRPROTECT without protection information
            }
            let (lba, blocks) = match c[0] {
                0x2f => (lba32(c), u32::from(be16([c[7], c[8]]))),
                0xaf => (lba32(c), be32([c[6], c[7], c[8], c[9]])),
                _ => (lba64(c), be32([c[10], c[11], c[12], c[13]])),
            };
            ExtCdb::Verify {
                lba,
                blocks,
                bytchk: bytchk(c[1])?,
            }
        }
        0x2e | 0xae | 0x8e => {
            let (lba, blocks) = match c[0] {
                0x2e => (lba32(c), u32::from(be16([c[7], c[8]]))),
                0xae => (lba32(c), be32([c[6], c[7], c[8], c[9]])),
                _ => (lba64(c), be32([c[10], c[11], c[12], c[13]])),
            };
            bytchk(c[1])?;
            // WRITE AND VERIFY has no FUA; its data reaches the medium before GOOD.
            let mut t = transfer_flags(c[1] & 0xf0, lba, blocks)?;
            t.fua = true;
            ExtCdb::WriteVerify(t)
        }
        0x41 | 0x93 => {
            if c[1] & 0xe0 != 0 {
                return Err(invalid(1, 7));
            }
            // PBDATA / LBDATA (bits 2, 1): no protection information, obsolete.
            if c[1] & 0x06 != 0 {
                return Err(invalid(1, 2));
            }
            // ANCHOR (bit 4): anchored LBAs are not supported (ANC_SUP=0).
            if c[1] & 0x10 != 0 {
                return Err(invalid(1, 4));
            }
            let (lba, blocks, ndob) = if c[0] == 0x41 {
                if c[1] & 0x01 != 0 {
                    return Err(invalid(1, 0));
                }
                (lba32(c), u32::from(be16([c[7], c[8]])), false)
            } else {
                (
                    lba64(c),
                    be32([c[10], c[11], c[12], c[13]]),
                    c[1] & 0x01 != 0,
                )
            };
            ExtCdb::WriteSame {
                lba,
                blocks,
                unmap: c[1] & 0x08 != 0,
                ndob,
            }
        }
        0x42 => {
            if c[1] & 0x01 != 0 {
                return Err(invalid(1, 0)); // ANCHOR
            }
            ExtCdb::Unmap {
                param_len: be16([c[7], c[8]]),
            }
        }
        0x9e => ExtCdb::GetLbaStatus {
            lba: lba64(c),
            alloc_len: be32([c[10], c[11], c[12], c[13]]),
        },
        0x89 => {
            let t = transfer_flags(c[1], lba64(c), u32::from(c[13]))?;
            ExtCdb::CompareAndWrite {
                lba: t.lba,
                blocks: c[13],
                fua: t.fua,
            }
        }
        0x8b => ExtCdb::OrWrite(transfer_flags(
            c[1],
            lba64(c),
            be32([c[10], c[11], c[12], c[13]]),
        )?),
        0x9c => ExtCdb::WriteAtomic(transfer_flags(
            c[1],
            lba64(c),
            u32::from(be16([c[12], c[13]])),
        )?),
        0x37 => ExtCdb::ReadDefectData {
            twelve: false,
            flags: c[2],
            alloc_len: u32::from(be16([c[7], c[8]])),
        },
        0xb7 => ExtCdb::ReadDefectData {
            twelve: true,
            flags: c[1],
            alloc_len: be32([c[6], c[7], c[8], c[9]]),
        },
        0x1b => ExtCdb::StartStopUnit {
            power_condition: c[4] >> 4,
            loej: c[4] & 0x02 != 0,
            start: c[4] & 0x01 != 0,
        },
        0x1e => ExtCdb::PreventAllow {
            prevent: c[4] & 0x03,
        },
        0x16 | 0x56 => {
            // Third-party and extent reservations (SPC-2 obsolete bits) are refused.
            if c[1] & 0x13 != 0 {
                return Err(invalid(1, 4));
            }
            ExtCdb::Reserve
        }
        0x17 | 0x57 => {
            if c[1] & 0x13 != 0 {
                return Err(invalid(1, 4));
            }
            ExtCdb::Release
        }
        0x5e => ExtCdb::PrIn {
            sa: c[1] & 0x1f,
            alloc_len: be16([c[7], c[8]]),
        },
        0x5f => ExtCdb::PrOut {
            sa: c[1] & 0x1f,
            scope: c[2] >> 4,
            typ: c[2] & 0x0f,
            param_len: be32([c[5], c[6], c[7], c[8]]),
        },
        0xa3 => match c[1] & 0x1f {
            0x0a => ExtCdb::ReportTargetPortGroups {
                format: c[1] >> 5,
                alloc_len: be32([c[6], c[7], c[8], c[9]]),
            },
            0x0c => ExtCdb::ReportOpcodes {
                rctd: c[2] & 0x80 != 0,
                options: c[2] & 0x07,
                opcode: c[3],
                sa: be16([c[4], c[5]]),
                alloc_len: be32([c[6], c[7], c[8], c[9]]),
            },
            0x0d => ExtCdb::ReportTmf {
                repd: c[2] & 0x80 != 0,
                alloc_len: be32([c[6], c[7], c[8], c[9]]),
            },
            _ => return Err(sa_error(c)),
        },
        0x4d => {
            // PPC (bit 1) and SP (bit 0) would need parameter saving.
            if c[1] & 0x03 != 0 {
                return Err(invalid(1, 1));
            }
            ExtCdb::LogSense {
                page: c[2] & 0x3f,
                subpage: c[3],
                alloc_len: be16([c[7], c[8]]),
            }
        }
        0x04 => {
            // FMTPINFO (7:6): no protection information.
            if c[1] & 0xc0 != 0 {
                return Err(invalid(1, 7));
            }
            ExtCdb::FormatUnit {
                fmtdata: c[1] & 0x10 != 0,
                longlist: c[1] & 0x20 != 0,
            }
        }
        // Byte 1 bit 6 and bytes 2-6 are reserved (SBC-4 5.30.1).
        0x48 if c[1] & 0x40 != 0 || c[2..7] != [0; 5] => return Err(invalid(1, 6)),
        0x48 => ExtCdb::Sanitize {
            immed: c[1] & 0x80 != 0,
            ause: c[1] & 0x20 != 0,
            sa: c[1] & 0x1f,
            param_len: be16([c[7], c[8]]),
        },
        0x83 => match c[1] & 0x1f {
            0x00 => ExtCdb::ExtendedCopy {
                param_len: be32([c[10], c[11], c[12], c[13]]),
            },
            _ => return Err(sa_error(c)),
        },
        0x84 => match c[1] & 0x1f {
            sa @ (0x00 | 0x03 | 0x04) => ExtCdb::ReceiveCopyResults {
                sa,
                list_id: c[2],
                alloc_len: be32([c[10], c[11], c[12], c[13]]),
            },
            _ => return Err(sa_error(c)),
        },
        other => return Err(CdbError::UnknownOpcode(other)),
    })
}

impl ExtCdb {
    /// Whether the command needs a direct-access LU (see [`crate::Cdb::needs_medium`]).
    pub(crate) fn needs_medium(&self) -> bool {
        !matches!(
            self,
            ExtCdb::ReportOpcodes { .. }
                | ExtCdb::ReportTmf { .. }
                | ExtCdb::ReportTargetPortGroups { .. }
                | ExtCdb::PrIn { .. }
                | ExtCdb::PrOut { .. }
                | ExtCdb::Reserve
                | ExtCdb::Release
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdb::Cdb;

    fn ext(raw: &[u8]) -> Result<ExtCdb, CdbError> {
        match Cdb::parse(raw)? {
            Cdb::Ext(e) => Ok(e),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verify_fields() {
        // SBC-3 table 100: VERIFY(10) BYTCHK=1 (byte 1 bit 1), LBA 5, 2 blocks.
        assert_eq!(
            ext(&[0x2f, 0x02, 0, 0, 0, 5, 0, 0, 2, 0]),
            Ok(ExtCdb::Verify {
                lba: 5,
                blocks: 2,
                bytchk: 1
            })
        );
        assert_eq!(
            ext(&[0x2f, 0x04, 0, 0, 0, 5, 0, 0, 2, 0]),
            Err(CdbError::InvalidField { byte: 1, bit: 2 })
        );
        assert_eq!(
            ext(&[0x2f, 0x20, 0, 0, 0, 5, 0, 0, 2, 0]),
            Err(CdbError::InvalidField { byte: 1, bit: 7 })
        );
    }

    #[test]
    fn write_same_fields() {
        let mut ws16 = [0u8; 16];
        ws16[0] = 0x93;
        ws16[1] = 0x09; // UNMAP | NDOB
        ws16[9] = 7;
        ws16[13] = 3;
        assert_eq!(
            ext(&ws16),
            Ok(ExtCdb::WriteSame {
                lba: 7,
                blocks: 3,
                unmap: true,
                ndob: true
            })
        );
        // NDOB does not exist in WRITE SAME (10).
        assert_eq!(
            ext(&[0x41, 0x01, 0, 0, 0, 0, 0, 0, 1, 0]),
            Err(CdbError::InvalidField { byte: 1, bit: 0 })
        );
        assert_eq!(
            ext(&[0x41, 0x10, 0, 0, 0, 0, 0, 0, 1, 0]),
            Err(CdbError::InvalidField { byte: 1, bit: 4 })
        );
    }

    #[test]
    fn service_actions() {
        let mut c = [0u8; 16];
        c[0] = 0xa3;
        c[1] = 0x0c;
        c[2] = 0x82;
        c[3] = 0x9e;
        c[5] = 0x10;
        c[9] = 0xff;
        assert_eq!(
            ext(&c),
            Ok(ExtCdb::ReportOpcodes {
                rctd: true,
                options: 2,
                opcode: 0x9e,
                sa: 0x10,
                alloc_len: 255
            })
        );
        c[1] = 0x0e;
        assert_eq!(
            Cdb::parse(&c),
            Err(CdbError::UnknownServiceAction {
                opcode: 0xa3,
                service_action: 0x0e
            })
        );
        let mut p = [0u8; 10];
        p[0] = 0x5f;
        p[1] = 0x01;
        p[2] = 0x03;
        p[8] = 24;
        assert_eq!(
            ext(&p),
            Ok(ExtCdb::PrOut {
                sa: 1,
                scope: 0,
                typ: 3,
                param_len: 24
            })
        );
    }

    #[test]
    fn compare_and_write_and_atomic() {
        let mut c = [0u8; 16];
        c[0] = 0x89;
        c[1] = 0x08;
        c[9] = 1;
        c[13] = 2;
        assert_eq!(
            ext(&c),
            Ok(ExtCdb::CompareAndWrite {
                lba: 1,
                blocks: 2,
                fua: true
            })
        );
        c[0] = 0x9c;
        c[12] = 1;
        match ext(&c) {
            Ok(ExtCdb::WriteAtomic(t)) => assert_eq!((t.lba, t.blocks), (1, 258)),
            other => panic!("{other:?}"),
        }
    }
}
