//! Typed CDBs: the raw bytes are parsed once, at the edge, into a [`Cdb`] value.
//!
//! Parsing checks what is knowable from the CDB alone: the operation code, the CDB length
//! of its group, reserved or unsupported field values and the NACA bit. Checks that need
//! the logical unit (LBA range, write protection, device type) happen in dispatch.

use crate::asc;
use crate::sense::Sense;

/// Page control field of MODE SENSE (SPC-4 table 98).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageControl {
    /// 00b: current values.
    Current,
    /// 01b: changeable values (a mask).
    Changeable,
    /// 10b: default values.
    Default,
    /// 11b: saved values.
    Saved,
}

/// SELECT REPORT field of REPORT LUNS (SPC-4 table 282).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectReport {
    /// 00h: every logical unit except the well-known ones.
    All,
    /// 01h: well-known logical units only.
    WellKnownOnly,
    /// 02h: every logical unit.
    AllAndWellKnown,
}

/// A block transfer: READ or WRITE (6), (10), (12), (16). SBC-3 5.8-5.11, 5.31-5.35.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// First logical block.
    pub lba: u64,
    /// Number of logical blocks; 0 moves nothing.
    pub blocks: u32,
    /// Disable page out: a cache hint, accepted and ignored.
    pub dpo: bool,
    /// Force unit access.
    pub fua: bool,
}

/// MODE SENSE (6) or (10), SPC-4 6.11 and 6.12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSense {
    /// The 10-byte form (8-byte header, 16-bit lengths).
    pub ten: bool,
    /// Disable block descriptors.
    pub dbd: bool,
    /// Long LBA accepted (MODE SENSE(10) only): 16-byte block descriptor.
    pub llbaa: bool,
    /// Which values to return.
    pub pc: PageControl,
    /// Page code (3Fh: all pages).
    pub page_code: u8,
    /// Subpage code (FFh with page 3Fh: all subpages).
    pub subpage_code: u8,
    /// Allocation length.
    pub alloc_len: u16,
}

/// A parsed, supported command descriptor block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cdb {
    /// TEST UNIT READY (00h), SPC-4 6.47.
    TestUnitReady,
    /// REQUEST SENSE (03h), SPC-4 6.39.
    RequestSense {
        /// Descriptor-format sense requested.
        desc: bool,
        /// Allocation length.
        alloc_len: u8,
    },
    /// INQUIRY (12h), SPC-4 6.6.
    Inquiry {
        /// Return the vital product data page `page_code`.
        evpd: bool,
        /// VPD page code (0 when `evpd` is false).
        page_code: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// MODE SENSE (6) (1Ah) or (10) (5Ah).
    ModeSense(ModeSense),
    /// REPORT LUNS (A0h), SPC-4 6.33.
    ReportLuns {
        /// Which logical units to list.
        select_report: SelectReport,
        /// Allocation length (at least 16).
        alloc_len: u32,
    },
    /// READ CAPACITY (10) (25h), SBC-3 5.15.
    ReadCapacity10,
    /// READ CAPACITY (16) (9Eh/10h), SBC-3 5.16.
    ReadCapacity16 {
        /// Allocation length.
        alloc_len: u32,
    },
    /// READ (6)/(10)/(12)/(16).
    Read(Transfer),
    /// WRITE (6)/(10)/(12)/(16).
    Write(Transfer),
    /// SYNCHRONIZE CACHE (10) (35h) or (16) (91h), SBC-3 5.22 and 5.23.
    SynchronizeCache {
        /// First logical block of the range.
        lba: u64,
        /// Number of blocks; 0 means through the last block.
        blocks: u32,
    },
    /// Commands parsed in `cdb_ext`: the rest of SPC/SBC.
    Ext(crate::cdb_ext::ExtCdb),
}

/// Why a CDB was refused before looking at the logical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CdbError {
    /// No bytes at all.
    #[error("empty CDB")]
    Empty,
    /// The operation code is not supported.
    #[error("unsupported operation code {0:#04x}")]
    UnknownOpcode(u8),
    /// The service action of a service-action opcode is not supported.
    #[error("unsupported service action {service_action:#04x} of opcode {opcode:#04x}")]
    UnknownServiceAction {
        /// Operation code.
        opcode: u8,
        /// Service action field.
        service_action: u8,
    },
    /// Fewer bytes than the operation code's group requires.
    #[error("CDB for opcode {opcode:#04x} has {len} bytes, needs {need}")]
    TooShort {
        /// Operation code.
        opcode: u8,
        /// Bytes given.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// A reserved or unsupported value in a field; `byte`/`bit` point at its most
    /// significant bit (SPC-4 4.5.2.4.2 field pointer).
    #[error("invalid field in CDB at byte {byte} bit {bit}")]
    InvalidField {
        /// Byte offset in the CDB.
        byte: u8,
        /// Bit number (7 = most significant).
        bit: u8,
    },
}

impl From<CdbError> for Sense {
    fn from(e: CdbError) -> Sense {
        match e {
            CdbError::Empty | CdbError::UnknownOpcode(_) => Sense::invalid_opcode(),
            // SPC-4 6.35: an unsupported service action is an invalid field, not opcode.
            // The SERVICE ACTION field is byte 1, bits 4-0 (libiscsi's suite also
            // reads a field pointer of 1 as "not implemented").
            CdbError::UnknownServiceAction { .. } => Sense::invalid_cdb_field(1, 4),
            CdbError::TooShort { .. } => Sense::illegal_request(asc::INVALID_FIELD_IN_CDB),
            CdbError::InvalidField { byte, bit } => Sense::invalid_cdb_field(byte as u16, bit),
        }
    }
}

/// The longest CDB this crate parses.
pub(crate) const MAX_CDB: usize = 16;

/// CDB length by operation code group (SPC-4 4.3.2); `None` for groups we never support.
fn group_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

fn is_supported(opcode: u8) -> bool {
    crate::cdb_ext::is_ext_opcode(opcode)
        || matches!(
            opcode,
            0x00 | 0x03
                | 0x08
                | 0x0a
                | 0x12
                | 0x1a
                | 0x25
                | 0x28
                | 0x2a
                | 0x35
                | 0x5a
                | 0x88
                | 0x8a
                | 0x91
                | 0x9e
                | 0xa0
                | 0xa8
                | 0xaa
        )
}

pub(crate) fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}
pub(crate) fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

pub(crate) fn invalid(byte: u8, bit: u8) -> CdbError {
    CdbError::InvalidField { byte, bit }
}

/// Byte 1 of READ/WRITE (10)/(12)/(16): RDPROTECT/WRPROTECT (7:5), DPO (4), FUA (3).
/// Protection information is not supported (INQUIRY PROTECT=0), so a nonzero
/// xxPROTECT field is an invalid field (SBC-3 table 50). FUA_NV (bit 1) and the
/// obsolete bit 0 are accepted and ignored.
pub(crate) fn transfer_flags(b1: u8, lba: u64, blocks: u32) -> Result<Transfer, CdbError> {
    if b1 & 0xe0 != 0 {
        return Err(invalid(1, 7));
    }
    Ok(Transfer {
        lba,
        blocks,
        dpo: b1 & 0x10 != 0,
        fua: b1 & 0x08 != 0,
    })
}

impl Cdb {
    /// Parse a CDB. Bytes past the length of the opcode's group are ignored (iSCSI
    /// always carries at least 16).
    pub fn parse(raw: &[u8]) -> Result<Cdb, CdbError> {
        let opcode = *raw.first().ok_or(CdbError::Empty)?;
        let need = match group_len(opcode) {
            Some(n) if is_supported(opcode) => n,
            _ => return Err(CdbError::UnknownOpcode(opcode)),
        };
        let src = raw.get(..need).ok_or(CdbError::TooShort {
            opcode,
            len: raw.len(),
            need,
        })?;
        // Copy into a fixed array so every field access below is a constant index
        // into a 16-byte array: bounds are checked at compile time.
        let mut c = [0u8; MAX_CDB];
        c.get_mut(..need)
            .ok_or(CdbError::UnknownOpcode(opcode))?
            .copy_from_slice(src);
        // SAM-5 5.2: NACA (control byte bit 2) needs NormACA, which we do not offer.
        let control = src.last().copied().unwrap_or(0);
        if control & 0x04 != 0 {
            return Err(invalid((need - 1) as u8, 2));
        }
        Self::parse_fields(&c)
    }

    fn parse_fields(c: &[u8; MAX_CDB]) -> Result<Cdb, CdbError> {
        Ok(match c[0] {
            0x00 => Cdb::TestUnitReady,
            // SPC-4 table 237: byte 1 bit 0 DESC, byte 4 ALLOCATION LENGTH.
            0x03 => Cdb::RequestSense {
                desc: c[1] & 0x01 != 0,
                alloc_len: c[4],
            },
            // SPC-4 table 142: byte 1 CMDDT (obsolete, bit 1) and EVPD (bit 0),
            // byte 2 PAGE CODE, bytes 3-4 ALLOCATION LENGTH.
            0x12 => {
                if c[1] & 0x02 != 0 {
                    return Err(invalid(1, 1));
                }
                let evpd = c[1] & 0x01 != 0;
                if !evpd && c[2] != 0 {
                    return Err(invalid(2, 7));
                }
                Cdb::Inquiry {
                    evpd,
                    page_code: c[2],
                    alloc_len: be16([c[3], c[4]]),
                }
            }
            // SPC-4 table 161 (6) / 164 (10).
            0x1a | 0x5a => {
                let ten = c[0] == 0x5a;
                let pc = match c[2] >> 6 {
                    0 => PageControl::Current,
                    1 => PageControl::Changeable,
                    2 => PageControl::Default,
                    _ => PageControl::Saved,
                };
                Cdb::ModeSense(ModeSense {
                    ten,
                    dbd: c[1] & 0x08 != 0,
                    llbaa: ten && c[1] & 0x10 != 0,
                    pc,
                    page_code: c[2] & 0x3f,
                    subpage_code: c[3],
                    alloc_len: if ten {
                        be16([c[7], c[8]])
                    } else {
                        u16::from(c[4])
                    },
                })
            }
            // SPC-4 table 281: byte 2 SELECT REPORT, bytes 6-9 ALLOCATION LENGTH.
            0xa0 => {
                let select_report = match c[2] {
                    0 => SelectReport::All,
                    1 => SelectReport::WellKnownOnly,
                    2 => SelectReport::AllAndWellKnown,
                    _ => return Err(invalid(2, 7)),
                };
                let alloc_len = be32([c[6], c[7], c[8], c[9]]);
                // SPC-4 6.33: an allocation length below 16 is an invalid field.
                if alloc_len < 16 {
                    return Err(invalid(6, 7));
                }
                Cdb::ReportLuns {
                    select_report,
                    alloc_len,
                }
            }
            // SBC-3 table 63: bytes 2-5 LBA, byte 8 bit 0 PMI. With PMI=0 the LBA
            // must be zero.
            0x25 => {
                let pmi = c[8] & 0x01 != 0;
                if !pmi && c[2..6] != [0, 0, 0, 0] {
                    return Err(invalid(2, 7));
                }
                Cdb::ReadCapacity10
            }
            // SBC-3 table 65: SERVICE ACTION IN(16), service action 10h, bytes 10-13
            // ALLOCATION LENGTH.
            0x9e => match c[1] & 0x1f {
                0x10 => Cdb::ReadCapacity16 {
                    alloc_len: be32([c[10], c[11], c[12], c[13]]),
                },
                0x12 => Cdb::Ext(crate::cdb_ext::parse(c)?),
                sa => {
                    return Err(CdbError::UnknownServiceAction {
                        opcode: 0x9e,
                        service_action: sa,
                    })
                }
            },
            // SBC-3 table 47 / 93: 21-bit LBA, TRANSFER LENGTH 0 means 256 blocks.
            0x08 | 0x0a => {
                let lba = u64::from(be32([0, c[1] & 0x1f, c[2], c[3]]));
                let blocks = if c[4] == 0 { 256 } else { u32::from(c[4]) };
                let t = Transfer {
                    lba,
                    blocks,
                    dpo: false,
                    fua: false,
                };
                if c[0] == 0x08 {
                    Cdb::Read(t)
                } else {
                    Cdb::Write(t)
                }
            }
            // SBC-3 table 48 / 94: bytes 2-5 LBA, bytes 7-8 TRANSFER LENGTH.
            0x28 | 0x2a => {
                let lba = u64::from(be32([c[2], c[3], c[4], c[5]]));
                let t = transfer_flags(c[1], lba, u32::from(be16([c[7], c[8]])))?;
                if c[0] == 0x28 {
                    Cdb::Read(t)
                } else {
                    Cdb::Write(t)
                }
            }
            // SBC-3 table 49 / 95: bytes 2-5 LBA, bytes 6-9 TRANSFER LENGTH.
            0xa8 | 0xaa => {
                let lba = u64::from(be32([c[2], c[3], c[4], c[5]]));
                let t = transfer_flags(c[1], lba, be32([c[6], c[7], c[8], c[9]]))?;
                if c[0] == 0xa8 {
                    Cdb::Read(t)
                } else {
                    Cdb::Write(t)
                }
            }
            // SBC-3 table 50 / 96: bytes 2-9 LBA, bytes 10-13 TRANSFER LENGTH.
            0x88 | 0x8a => {
                let t = transfer_flags(
                    c[1],
                    u64::from_be_bytes([c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]]),
                    be32([c[10], c[11], c[12], c[13]]),
                )?;
                if c[0] == 0x88 {
                    Cdb::Read(t)
                } else {
                    Cdb::Write(t)
                }
            }
            // SBC-3 table 87: bytes 2-5 LBA, bytes 7-8 NUMBER OF LOGICAL BLOCKS.
            0x35 => Cdb::SynchronizeCache {
                lba: u64::from(be32([c[2], c[3], c[4], c[5]])),
                blocks: u32::from(be16([c[7], c[8]])),
            },
            // SBC-3 table 88: bytes 2-9 LBA, bytes 10-13 NUMBER OF LOGICAL BLOCKS.
            0x91 => Cdb::SynchronizeCache {
                lba: u64::from_be_bytes([c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]]),
                blocks: be32([c[10], c[11], c[12], c[13]]),
            },
            _ => Cdb::Ext(crate::cdb_ext::parse(c)?),
        })
    }

    /// Whether the command needs a medium (a direct-access LU); a controller LU
    /// answers such commands with INVALID COMMAND OPERATION CODE, as tgt's LUN 0 does.
    pub fn needs_medium(&self) -> bool {
        match self {
            Cdb::TestUnitReady
            | Cdb::RequestSense { .. }
            | Cdb::Inquiry { .. }
            | Cdb::ReportLuns { .. } => false,
            Cdb::Ext(e) => e.needs_medium(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(lba: u64, blocks: u32, dpo: bool, fua: bool) -> Transfer {
        Transfer {
            lba,
            blocks,
            dpo,
            fua,
        }
    }

    #[test]
    fn parses_reads_and_writes() {
        // SBC-3 table 48: READ(10) DPO|FUA, LBA 01020304h, TRANSFER LENGTH 0506h.
        let r10 = [0x28, 0x18, 1, 2, 3, 4, 0, 5, 6, 0];
        assert_eq!(
            Cdb::parse(&r10),
            Ok(Cdb::Read(t(0x0102_0304, 0x0506, true, true)))
        );
        // SBC-3 table 96: WRITE(16), LBA in bytes 2-9, TRANSFER LENGTH in 10-13.
        let mut w16 = [0u8; 16];
        w16[0] = 0x8a;
        w16[2..10].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        w16[10..14].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            Cdb::parse(&w16),
            Ok(Cdb::Write(t(0x0102_0304_0506_0708, 9, false, false)))
        );
        // SBC-3 table 95: WRITE(12) with FUA.
        let w12 = [0xaa, 0x08, 0, 0, 0, 7, 0, 0, 1, 0, 0, 0];
        assert_eq!(Cdb::parse(&w12), Ok(Cdb::Write(t(7, 256, false, true))));
        // SBC-3 table 47: READ(6) 21-bit LBA, length 0 = 256 blocks; reserved bits 7:5
        // of byte 1 are not part of the LBA.
        let r6 = [0x08, 0xff, 0xff, 0xff, 0, 0];
        assert_eq!(
            Cdb::parse(&r6),
            Ok(Cdb::Read(t(0x1f_ffff, 256, false, false)))
        );
    }

    #[test]
    fn rejects_protection_fields() {
        let w10 = [0x2a, 0x20, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(
            Cdb::parse(&w10),
            Err(CdbError::InvalidField { byte: 1, bit: 7 })
        );
    }

    #[test]
    fn parses_inquiry() {
        // SPC-4 table 142: EVPD, PAGE CODE 83h, ALLOCATION LENGTH 0102h.
        assert_eq!(
            Cdb::parse(&[0x12, 0x01, 0x83, 0x01, 0x02, 0]),
            Ok(Cdb::Inquiry {
                evpd: true,
                page_code: 0x83,
                alloc_len: 0x0102
            })
        );
        assert_eq!(
            Cdb::parse(&[0x12, 0x00, 0x80, 0, 0xff, 0]),
            Err(CdbError::InvalidField { byte: 2, bit: 7 })
        );
        assert_eq!(
            Cdb::parse(&[0x12, 0x02, 0, 0, 0xff, 0]),
            Err(CdbError::InvalidField { byte: 1, bit: 1 })
        );
    }

    #[test]
    fn parses_mode_sense() {
        assert_eq!(
            Cdb::parse(&[0x1a, 0x08, 0x7f, 0xff, 0x20, 0]),
            Ok(Cdb::ModeSense(ModeSense {
                ten: false,
                dbd: true,
                llbaa: false,
                pc: PageControl::Changeable,
                page_code: 0x3f,
                subpage_code: 0xff,
                alloc_len: 0x20,
            }))
        );
        assert_eq!(
            Cdb::parse(&[0x5a, 0x10, 0xca, 0, 0, 0, 0, 0x01, 0x00, 0]),
            Ok(Cdb::ModeSense(ModeSense {
                ten: true,
                dbd: false,
                llbaa: true,
                pc: PageControl::Saved,
                page_code: 0x0a,
                subpage_code: 0,
                alloc_len: 0x100,
            }))
        );
    }

    #[test]
    fn parses_capacity_luns_sense_sync() {
        assert_eq!(
            Cdb::parse(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Ok(Cdb::ReadCapacity10)
        );
        let mut rc16 = [0u8; 16];
        rc16[0] = 0x9e;
        rc16[1] = 0x10;
        rc16[13] = 32;
        assert_eq!(Cdb::parse(&rc16), Ok(Cdb::ReadCapacity16 { alloc_len: 32 }));
        rc16[1] = 0x13;
        assert_eq!(
            Cdb::parse(&rc16),
            Err(CdbError::UnknownServiceAction {
                opcode: 0x9e,
                service_action: 0x13
            })
        );
        assert_eq!(
            Cdb::parse(&[0xa0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
            Ok(Cdb::ReportLuns {
                select_report: SelectReport::AllAndWellKnown,
                alloc_len: 256
            })
        );
        assert_eq!(
            Cdb::parse(&[0x03, 0x01, 0, 0, 18, 0]),
            Ok(Cdb::RequestSense {
                desc: true,
                alloc_len: 18
            })
        );
        assert_eq!(
            Cdb::parse(&[0x35, 0x02, 0, 0, 0, 5, 0, 0, 3, 0]),
            Ok(Cdb::SynchronizeCache { lba: 5, blocks: 3 })
        );
    }

    #[test]
    fn errors_map_to_sense() {
        assert_eq!(Cdb::parse(&[]), Err(CdbError::Empty));
        assert_eq!(Cdb::parse(&[0xc5; 16]), Err(CdbError::UnknownOpcode(0xc5)));
        assert_eq!(
            Cdb::parse(&[0x88, 0, 0]),
            Err(CdbError::TooShort {
                opcode: 0x88,
                len: 3,
                need: 16
            })
        );
        assert_eq!(
            Cdb::parse(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04]),
            Err(CdbError::InvalidField { byte: 9, bit: 2 })
        );
        assert_eq!(
            Sense::from(CdbError::UnknownOpcode(0xc5)),
            Sense::invalid_opcode()
        );
        assert_eq!(
            Sense::from(CdbError::InvalidField { byte: 1, bit: 1 }),
            Sense::invalid_cdb_field(1, 1)
        );
        // Extra trailing bytes (iSCSI pads every CDB to 16) are ignored.
        assert_eq!(Cdb::parse(&[0u8; 16]), Ok(Cdb::TestUnitReady));
    }
}
