//! MMC command descriptor blocks: the SPC and block commands MMC shares with SBC are
//! parsed by `scsi_sbc::Cdb`; the multimedia ones here.

use scsi_sbc::{Cdb, Sense};

/// A parsed command a CD/DVD LU answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmcCdb {
    /// TEST UNIT READY, REQUEST SENSE, INQUIRY, MODE SENSE (6)/(10), REPORT LUNS, READ
    /// CAPACITY (10), READ (10)/(12), SYNCHRONIZE CACHE (10), as `scsi_sbc` parses them.
    Spc(Cdb),
    /// START STOP UNIT (1Bh), MMC-6 6.39.
    StartStopUnit {
        /// POWER CONDITION (byte 4, bits 7-4).
        power_condition: u8,
        /// LOEJ: load or eject.
        loej: bool,
        /// START: load (with LOEJ) rather than eject.
        start: bool,
    },
    /// PREVENT ALLOW MEDIUM REMOVAL (1Eh), MMC-6 6.11: PREVENT bit (the PERSISTENT bit
    /// is accepted and treated alike).
    PreventAllow {
        /// Removal prevented.
        prevent: bool,
    },
    /// READ TOC/PMA/ATIP (43h), MMC-6 6.26.
    ReadToc {
        /// Addresses as minute/second/frame rather than LBA.
        msf: bool,
        /// FORMAT (byte 2, bits 3-0).
        format: u8,
        /// TRACK/SESSION NUMBER.
        track: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// GET CONFIGURATION (46h), MMC-6 6.6.
    GetConfiguration {
        /// RT: 0 all features, 1 current features, 2 the starting feature only.
        rt: u8,
        /// STARTING FEATURE NUMBER.
        start: u16,
        /// Allocation length.
        alloc_len: u16,
    },
    /// GET EVENT STATUS NOTIFICATION (4Ah), MMC-6 6.7, polled.
    GetEventStatus {
        /// NOTIFICATION CLASS REQUEST bits.
        classes: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// READ DISC INFORMATION (51h), MMC-6 6.22, standard disc information.
    ReadDiscInformation {
        /// Allocation length.
        alloc_len: u16,
    },
    /// READ TRACK INFORMATION (52h), MMC-6 6.27.
    ReadTrackInformation {
        /// ADDRESS/NUMBER TYPE: 0 LBA, 1 track, 2 session.
        kind: u8,
        /// LOGICAL BLOCK ADDRESS/TRACK/SESSION NUMBER.
        number: u32,
        /// Allocation length.
        alloc_len: u16,
    },
    /// MECHANISM STATUS (BDh), MMC-6 6.9.
    MechanismStatus {
        /// Allocation length.
        alloc_len: u16,
    },
    /// SET CD SPEED (BBh), MMC-6 6.44: accepted, the speed is the host's.
    SetCdSpeed,
    /// VERIFY (10) (2Fh), MMC-6 6.49: an image has nothing to verify.
    Verify,
    /// A command that records on the medium (WRITE (10)/(12), WRITE AND VERIFY (10),
    /// FORMAT UNIT, BLANK, RESERVE TRACK, CLOSE TRACK/SESSION, SEND OPC INFORMATION):
    /// refused, the medium is read-only.
    Record,
}

/// Bytes of each MMC opcode's CDB (SPC-4 4.3.2 groups), or `None` for an opcode a
/// CD/DVD LU does not have (INVALID COMMAND OPERATION CODE).
fn cdb_len(opcode: u8) -> Option<usize> {
    Some(match opcode {
        0x00 | 0x03 | 0x04 | 0x12 | 0x1a | 0x1b | 0x1e => 6,
        0x25 | 0x28 | 0x2a | 0x2e | 0x2f | 0x35 | 0x43 | 0x46 | 0x4a | 0x51 | 0x52 | 0x53
        | 0x54 | 0x5a | 0x5b => 10,
        0xa0 | 0xa1 | 0xa8 | 0xaa | 0xbb | 0xbd => 12,
        _ => return None,
    })
}

fn be16(c: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([c[at], c[at + 1]])
}

impl MmcCdb {
    /// Parse a CDB for a CD/DVD LU. An SBC-only opcode (READ (6), WRITE SAME, UNMAP,
    /// READ CAPACITY (16), ...) is an INVALID COMMAND OPERATION CODE.
    pub fn parse(raw: &[u8]) -> Result<MmcCdb, Sense> {
        let opcode = *raw.first().ok_or_else(Sense::invalid_opcode)?;
        let need = cdb_len(opcode).ok_or_else(Sense::invalid_opcode)?;
        let c = raw.get(..need).ok_or_else(Sense::invalid_field_in_cdb)?;
        // SAM-5 5.2: NACA needs NormACA, which is not offered.
        if c[need - 1] & 0x04 != 0 {
            return Err(Sense::invalid_cdb_field(need as u16 - 1, 2));
        }
        Ok(match opcode {
            0x1b => MmcCdb::StartStopUnit {
                power_condition: c[4] >> 4,
                loej: c[4] & 0x02 != 0,
                start: c[4] & 0x01 != 0,
            },
            0x1e => MmcCdb::PreventAllow {
                prevent: c[4] & 0x01 != 0,
            },
            0x43 => MmcCdb::ReadToc {
                msf: c[1] & 0x02 != 0,
                format: c[2] & 0x0f,
                track: c[6],
                alloc_len: be16(c, 7),
            },
            0x46 => {
                let rt = c[1] & 0x03;
                if rt == 3 {
                    return Err(Sense::invalid_cdb_field(1, 1));
                }
                MmcCdb::GetConfiguration {
                    rt,
                    start: be16(c, 2),
                    alloc_len: be16(c, 7),
                }
            }
            0x4a => {
                // Asynchronous notification is not offered: POLLED must be set.
                if c[1] & 0x01 == 0 {
                    return Err(Sense::invalid_cdb_field(1, 0));
                }
                MmcCdb::GetEventStatus {
                    classes: c[4],
                    alloc_len: be16(c, 7),
                }
            }
            0x51 => {
                // DATA TYPE other than 000b (track resources, POW resources) is not
                // offered.
                if c[1] & 0x07 != 0 {
                    return Err(Sense::invalid_cdb_field(1, 2));
                }
                MmcCdb::ReadDiscInformation {
                    alloc_len: be16(c, 7),
                }
            }
            0x52 => MmcCdb::ReadTrackInformation {
                kind: c[1] & 0x03,
                number: u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                alloc_len: be16(c, 7),
            },
            0xbd => MmcCdb::MechanismStatus {
                alloc_len: be16(c, 8),
            },
            0xbb => MmcCdb::SetCdSpeed,
            0x2f => MmcCdb::Verify,
            0x04 | 0x2a | 0x2e | 0x53 | 0x54 | 0x5b | 0xa1 | 0xaa => MmcCdb::Record,
            _ => MmcCdb::Spc(Cdb::parse(raw).map_err(Sense::from)?),
        })
    }

    /// Whether the command needs a medium: without one it answers NOT READY, MEDIUM
    /// NOT PRESENT (MMC-6 4.1.6). INQUIRY, REQUEST SENSE, REPORT LUNS, MODE SENSE,
    /// GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, MECHANISM STATUS, START STOP
    /// UNIT, PREVENT ALLOW MEDIUM REMOVAL and SET CD SPEED work with an empty tray.
    pub fn needs_medium(&self) -> bool {
        match self {
            MmcCdb::Spc(c) => !matches!(
                c,
                Cdb::Inquiry { .. }
                    | Cdb::RequestSense { .. }
                    | Cdb::ReportLuns { .. }
                    | Cdb::ModeSense(_)
            ),
            MmcCdb::ReadToc { .. }
            | MmcCdb::ReadDiscInformation { .. }
            | MmcCdb::ReadTrackInformation { .. }
            | MmcCdb::Verify
            | MmcCdb::Record => true,
            _ => false,
        }
    }

    /// Commands a pending unit attention is not reported on: INQUIRY, REPORT LUNS and
    /// REQUEST SENSE (SAM-5 5.14), and GET CONFIGURATION and GET EVENT STATUS
    /// NOTIFICATION (MMC-6 4.1.6.1), which a host polls for media changes.
    pub fn ua_exempt(&self) -> bool {
        matches!(
            self,
            MmcCdb::Spc(Cdb::Inquiry { .. } | Cdb::ReportLuns { .. } | Cdb::RequestSense { .. })
                | MmcCdb::GetConfiguration { .. }
                | MmcCdb::GetEventStatus { .. }
        )
    }
}
