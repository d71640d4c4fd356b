//! The tape drive: its settings and the mounted tape's position, and every command
//! that touches them, run over a [`TapeMedium`] (the image's bytes). No files here:
//! the store that owns the image file implements [`TapeMedium`] and calls
//! [`Drive::run`].
//!
//! The position is the header of the next object (data block, filemark or EOD), as in
//! tgt: reading or spacing forward moves to its `next`, backward to its `prev`.
//! Writing replaces the object at the position and everything after it with the new
//! object and a new EOD header (tape semantics: what lay beyond is gone).

use crate::cdb::{LocateTo, SpaceCode, SscCdb};
use crate::image::{self, BlockHeader, Cartridge, Mam, FIRST_BLOCK, HEADER_LEN};
use scsi_sbc::asc::{self, AscAscq};
use scsi_sbc::cdb::PageControl;
use scsi_sbc::sense::{STREAM_EOM, STREAM_FILEMARK, STREAM_ILI};
use scsi_sbc::{Sense, SenseKey};

/// Largest block a READ or WRITE moves (READ BLOCK LIMITS reports it).
pub const MAX_BLOCK: u32 = 1 << 20;
/// Density code reported for the virtual medium (vendor-specific range).
pub const DENSITY: u8 = 0x80;

/// 00h/01h FILEMARK DETECTED.
pub const FILEMARK_DETECTED: AscAscq = AscAscq {
    asc: 0x00,
    ascq: 0x01,
};
/// 00h/02h END-OF-PARTITION/MEDIUM DETECTED.
pub const END_OF_MEDIUM: AscAscq = AscAscq {
    asc: 0x00,
    ascq: 0x02,
};
/// 00h/04h BEGINNING-OF-PARTITION/MEDIUM DETECTED.
pub const BEGINNING_OF_MEDIUM: AscAscq = AscAscq {
    asc: 0x00,
    ascq: 0x04,
};
/// 00h/05h END-OF-DATA DETECTED.
pub const END_OF_DATA: AscAscq = AscAscq {
    asc: 0x00,
    ascq: 0x05,
};
/// 31h/00h MEDIUM FORMAT CORRUPTED.
pub const MEDIUM_FORMAT_CORRUPTED: AscAscq = AscAscq {
    asc: 0x31,
    ascq: 0x00,
};
/// 30h/03h CLEANING CARTRIDGE INSTALLED.
pub const CLEANING_CARTRIDGE: AscAscq = AscAscq {
    asc: 0x30,
    ascq: 0x03,
};
/// 30h/0Ch WORM MEDIUM - OVERWRITE ATTEMPTED.
pub const WORM_OVERWRITE: AscAscq = AscAscq {
    asc: 0x30,
    ascq: 0x0c,
};
/// 3Bh/00h SEQUENTIAL POSITIONING ERROR.
pub const POSITIONING_ERROR: AscAscq = AscAscq {
    asc: 0x3b,
    ascq: 0x00,
};

/// Why the medium's bytes could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediumError {
    /// Fewer bytes than asked for (past the end of the file).
    Short,
    /// The read failed.
    Read,
    /// The write failed.
    Write,
}

/// The bytes of a mounted tape image.
pub trait TapeMedium {
    /// Fill `buf` from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), MediumError>;
    /// Write `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), MediumError>;
    /// Make what was written durable.
    fn flush(&mut self) -> Result<(), MediumError>;
    /// Whether the image may be written (its file is writable).
    fn writable(&self) -> bool;
}

/// An image held in memory (tests, fuzzing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryMedium {
    /// The image bytes.
    pub bytes: Vec<u8>,
    /// Writes are refused.
    pub readonly: bool,
}

impl TapeMedium for MemoryMedium {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), MediumError> {
        let start = usize::try_from(offset).map_err(|_| MediumError::Short)?;
        let end = start.checked_add(buf.len()).ok_or(MediumError::Short)?;
        let src = self.bytes.get(start..end).ok_or(MediumError::Short)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), MediumError> {
        if self.readonly {
            return Err(MediumError::Write);
        }
        let start = usize::try_from(offset).map_err(|_| MediumError::Write)?;
        let end = start.checked_add(data.len()).ok_or(MediumError::Write)?;
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[start..end].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), MediumError> {
        Ok(())
    }

    fn writable(&self) -> bool {
        !self.readonly
    }
}

/// The answer to one command run by the drive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Data-in (already cut to the allocation length).
    pub data: Vec<u8>,
    /// CHECK CONDITION with this sense; GOOD when `None`.
    pub sense: Option<Sense>,
    /// The drive's fixed block length after the command (0: variable).
    pub block_len: u32,
}

/// The tape in the drive.
#[derive(Debug, Clone)]
struct Tape {
    mam: Mam,
    /// Header of the next object.
    cur: BlockHeader,
    /// Filemarks before the position (the logical file identifier).
    file_no: u64,
}

/// A tape drive's state: the settings MODE SELECT changes and the mounted tape.
#[derive(Debug, Clone)]
pub struct Drive {
    tape: Option<Tape>,
    /// An image is in the drive (a tape unloaded by LOAD UNLOAD stays in it until the
    /// changer or the administrator takes it away).
    present: bool,
    /// Fixed block length; 0: variable.
    block_len: u32,
    /// DCE of the data compression page (accepted; the image stores data as is).
    compression: bool,
    /// SWP of the device configuration page: software write protect.
    swp: bool,
    /// Removal prevented (PREVENT ALLOW MEDIUM REMOVAL).
    prevent: bool,
    /// The LU is configured read-only.
    readonly: bool,
    /// A tape was put in from outside (a changer): the next command reports NOT
    /// READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED instead of running.
    changed: bool,
}

impl Default for Drive {
    fn default() -> Self {
        Drive::new(false)
    }
}

fn check(key: SenseKey, code: AscAscq) -> Sense {
    Sense::new(key, code)
}

fn corrupt() -> Sense {
    check(SenseKey::MediumError, MEDIUM_FORMAT_CORRUPTED)
}

fn not_present() -> Sense {
    check(SenseKey::NotReady, asc::MEDIUM_NOT_PRESENT)
}

/// A stream condition with INFORMATION (a residue, possibly negative: two's
/// complement in the 4-byte field, as SSC-3 wants).
fn stream(key: SenseKey, code: AscAscq, bits: u8, info: i64) -> Sense {
    Sense {
        info: Some(u64::from(info as i32 as u32)),
        stream: bits,
        ..Sense::new(key, code)
    }
}

fn medium_err(e: MediumError) -> Sense {
    match e {
        MediumError::Write => check(SenseKey::MediumError, asc::WRITE_ERROR),
        MediumError::Read => check(SenseKey::MediumError, asc::UNRECOVERED_READ_ERROR),
        MediumError::Short => corrupt(),
    }
}

fn read_header(m: &mut dyn TapeMedium, at: u64) -> Result<BlockHeader, Sense> {
    let mut b = [0u8; HEADER_LEN as usize];
    m.read_at(at, &mut b).map_err(medium_err)?;
    let (h, _crc_ok) = BlockHeader::decode(&b).map_err(|_| corrupt())?;
    // A header must know where it is; the links decide every move.
    if h.curr != at {
        return Err(corrupt());
    }
    Ok(h)
}

/// Bytes of the tape beyond which writing reports early warning: the last
/// sixteenth of the capacity, at most 32 MiB (room for the host to close its files).
fn early_warning_zone(capacity: u64) -> u64 {
    (capacity / 16).min(32 << 20)
}

impl Drive {
    /// An empty drive; `readonly` when the LU is configured read-only.
    pub fn new(readonly: bool) -> Self {
        Drive {
            tape: None,
            present: false,
            block_len: 0,
            compression: false,
            swp: false,
            prevent: false,
            readonly,
            changed: false,
        }
    }

    /// A tape was loaded from outside (a changer's MOVE MEDIUM, the administrator):
    /// the next command is answered with UNIT ATTENTION, MEDIUM MAY HAVE CHANGED.
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Mount the image in `m`: read its BOT header and MAM, position at the beginning.
    pub fn load(&mut self, m: &mut dyn TapeMedium) -> Result<(), image::ImageError> {
        let mut b = vec![0u8; FIRST_BLOCK as usize];
        m.read_at(0, &mut b)
            .map_err(|_| image::ImageError::Short(0, FIRST_BLOCK as usize))?;
        let (bot, _) = BlockHeader::decode(&b)?;
        if !bot.is_bot() {
            return Err(image::ImageError::NoBot);
        }
        let mam = Mam::decode(&b[HEADER_LEN as usize..])?;
        let cur = read_header(m, bot.next).map_err(|_| image::ImageError::Corrupt(bot.next))?;
        self.tape = Some(Tape {
            mam,
            cur,
            file_no: 0,
        });
        self.present = true;
        Ok(())
    }

    /// Take the tape out (the changer moved it away).
    pub fn eject(&mut self) {
        self.tape = None;
        self.present = false;
        self.prevent = false;
    }

    /// Whether a tape is mounted and ready.
    pub fn loaded(&self) -> bool {
        self.tape.is_some()
    }

    /// Whether medium removal is prevented.
    pub fn prevented(&self) -> bool {
        self.prevent
    }

    /// The barcode of the mounted tape.
    pub fn barcode(&self) -> Option<String> {
        self.tape.as_ref().map(|t| t.mam.barcode())
    }

    /// The fixed block length (0: variable).
    pub fn block_len(&self) -> u32 {
        self.block_len
    }

    /// Run one command (already parsed by [`SscCdb::parse`] from `cdb`) with its
    /// data-out, on the mounted medium `m` (`None` when the drive holds no image).
    pub fn run(&mut self, cdb: &[u8], data_out: &[u8], m: Option<&mut dyn TapeMedium>) -> Reply {
        let mut reply = Reply::default();
        if std::mem::take(&mut self.changed) {
            reply.sense = Some(Sense::new(
                SenseKey::UnitAttention,
                asc::MEDIUM_MAY_HAVE_CHANGED,
            ));
            reply.block_len = self.block_len;
            return reply;
        }
        match SscCdb::parse(cdb).and_then(|c| self.command(c, data_out, m, &mut reply.data)) {
            Ok(()) => {}
            Err(s) => reply.sense = Some(s),
        }
        reply.block_len = self.block_len;
        reply
    }

    fn command(
        &mut self,
        c: SscCdb,
        data_out: &[u8],
        m: Option<&mut dyn TapeMedium>,
        out: &mut Vec<u8>,
    ) -> Result<(), Sense> {
        // Commands without a medium first.
        match c {
            SscCdb::PreventAllow { prevent } => {
                self.prevent = prevent;
                return Ok(());
            }
            SscCdb::ReadBlockLimits => {
                // Granularity 0, MAXIMUM and MINIMUM BLOCK LENGTH (SSC-3 7.6).
                let (max, min) = match self.block_len {
                    0 => (MAX_BLOCK, 1),
                    n => (n, n as u16 as u32),
                };
                out.push(0);
                out.extend_from_slice(&max.to_be_bytes()[1..]);
                out.extend_from_slice(&(min as u16).to_be_bytes());
                return Ok(());
            }
            SscCdb::ModeSense(ms) => {
                let medium_ro = m.as_ref().is_some_and(|m| !m.writable());
                let d = self.mode_sense(&ms, medium_ro)?;
                out.extend_from_slice(&d[..d.len().min(usize::from(ms.alloc_len))]);
                return Ok(());
            }
            SscCdb::ModeSelect { ten, len } => {
                let len = usize::from(len).min(data_out.len());
                return self.mode_select(ten, &data_out[..len]);
            }
            SscCdb::ReportDensity { media, alloc_len } => {
                if media && self.tape.is_none() {
                    return Err(not_present());
                }
                let d = self.density_support();
                out.extend_from_slice(&d[..d.len().min(usize::from(alloc_len))]);
                return Ok(());
            }
            SscCdb::LoadUnload { load } => {
                return match (load, m) {
                    (true, Some(m)) => {
                        self.load(m).map_err(|_| corrupt())?;
                        Ok(())
                    }
                    (true, None) => Err(not_present()),
                    (false, _) if self.prevent => {
                        Err(Sense::illegal_request(asc::MEDIUM_REMOVAL_PREVENTED))
                    }
                    (false, _) => {
                        // The tape leaves the heads; it stays in the drive.
                        self.tape = None;
                        Ok(())
                    }
                };
            }
            _ => {}
        }
        let (Some(m), true) = (m, self.tape.is_some()) else {
            return Err(not_present());
        };
        match c {
            SscCdb::TestUnitReady => Ok(()),
            SscCdb::Rewind => self.rewind(m),
            SscCdb::Read { fixed, sili, len } => self.read(m, fixed, sili, len, out),
            SscCdb::Write { fixed, len } => self.write(m, fixed, len, data_out),
            SscCdb::WriteFilemarks { count } => self.write_filemarks(m, count),
            SscCdb::Space { code, count } => self.space(m, code, count),
            SscCdb::Locate(to) => self.locate(m, to),
            SscCdb::Erase => {
                self.writable(m)?;
                self.worm_check()?;
                let t = self.tape.as_mut().expect("checked above");
                if !t.cur.is_eod() {
                    let eod = BlockHeader {
                        blk_type: image::kind::EOD,
                        ondisk_sz: 0,
                        blk_sz: 0,
                        next: t.cur.curr,
                        ..t.cur
                    };
                    m.write_at(eod.curr, &eod.encode()).map_err(medium_err)?;
                    t.cur = eod;
                }
                m.flush().map_err(medium_err)
            }
            SscCdb::ReadPosition { form } => {
                let d = self.read_position(form);
                out.extend_from_slice(&d);
                Ok(())
            }
            // Answered by the target, or above.
            _ => Err(Sense::invalid_opcode()),
        }
    }

    fn tape(&mut self) -> &mut Tape {
        self.tape.as_mut().expect("a tape is loaded")
    }

    fn writable(&self, m: &dyn TapeMedium) -> Result<(), Sense> {
        let t = self.tape.as_ref().expect("a tape is loaded");
        if t.mam.cartridge() == Cartridge::Cleaning {
            return Err(check(SenseKey::MediumError, CLEANING_CARTRIDGE));
        }
        if self.readonly || self.swp || !m.writable() {
            return Err(Sense::write_protected());
        }
        Ok(())
    }

    fn worm_check(&self) -> Result<(), Sense> {
        let t = self.tape.as_ref().expect("a tape is loaded");
        if t.mam.cartridge() == Cartridge::Worm && !t.cur.is_eod() {
            return Err(check(SenseKey::DataProtect, WORM_OVERWRITE));
        }
        Ok(())
    }

    fn rewind(&mut self, m: &mut dyn TapeMedium) -> Result<(), Sense> {
        let first = read_header(m, FIRST_BLOCK)?;
        let t = self.tape();
        t.cur = first;
        t.file_no = 0;
        Ok(())
    }

    /// Move over the object at the position (never past EOD).
    fn forward(&mut self, m: &mut dyn TapeMedium) -> Result<(), Sense> {
        let t = self.tape();
        if t.cur.is_eod() {
            return Ok(());
        }
        if t.cur.next <= t.cur.curr {
            return Err(corrupt());
        }
        let next = read_header(m, t.cur.next)?;
        if t.cur.is_filemark() {
            t.file_no += 1;
        }
        t.cur = next;
        Ok(())
    }

    /// Whether the position is the beginning of the tape.
    fn at_bop(&self) -> bool {
        self.tape
            .as_ref()
            .is_some_and(|t| t.cur.curr <= FIRST_BLOCK)
    }

    /// Move back over the object before the position.
    fn backward(&mut self, m: &mut dyn TapeMedium) -> Result<(), Sense> {
        let t = self.tape();
        if t.cur.curr <= FIRST_BLOCK {
            return Ok(());
        }
        if t.cur.prev >= t.cur.curr || t.cur.prev < FIRST_BLOCK {
            return Err(corrupt());
        }
        let prev = read_header(m, t.cur.prev)?;
        if prev.is_filemark() {
            t.file_no = t.file_no.saturating_sub(1);
        }
        t.cur = prev;
        Ok(())
    }

    fn read(
        &mut self,
        m: &mut dyn TapeMedium,
        fixed: bool,
        sili: bool,
        len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), Sense> {
        if self.tape().mam.cartridge() == Cartridge::Cleaning {
            return Err(check(SenseKey::MediumError, CLEANING_CARTRIDGE));
        }
        if !fixed {
            return self.read_variable(m, sili, len, out);
        }
        let bs = self.block_len;
        if bs == 0 {
            return Err(Sense::invalid_cdb_field(1, 0));
        }
        if u64::from(len) * u64::from(bs) > scsi_sbc::dispatch::MAX_TRANSFER_BYTES {
            return Err(Sense::invalid_cdb_field(2, 7));
        }
        for i in 0..len {
            let residue = i64::from(len - i);
            let cur = self.tape().cur;
            if cur.is_eod() {
                return Err(stream(SenseKey::BlankCheck, END_OF_DATA, 0, residue));
            }
            self.forward(m)?;
            if cur.is_filemark() {
                return Err(stream(
                    SenseKey::NoSense,
                    FILEMARK_DETECTED,
                    STREAM_FILEMARK,
                    residue,
                ));
            }
            if cur.ondisk_sz != bs {
                // SSC-3 4.2.x: an incorrect-length block ends a fixed read; the
                // residue counts it.
                return Err(stream(
                    SenseKey::NoSense,
                    asc::NO_ADDITIONAL_SENSE,
                    STREAM_ILI,
                    residue,
                ));
            }
            let at = out.len();
            out.resize(at + bs as usize, 0);
            m.read_at(cur.curr + HEADER_LEN, &mut out[at..])
                .map_err(medium_err)?;
        }
        Ok(())
    }

    fn read_variable(
        &mut self,
        m: &mut dyn TapeMedium,
        sili: bool,
        len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), Sense> {
        if len == 0 {
            return Ok(());
        }
        if len > MAX_BLOCK {
            return Err(Sense::invalid_cdb_field(2, 7));
        }
        let cur = self.tape().cur;
        if cur.is_eod() {
            return Err(stream(SenseKey::BlankCheck, END_OF_DATA, 0, i64::from(len)));
        }
        self.forward(m)?;
        if cur.is_filemark() {
            return Err(stream(
                SenseKey::NoSense,
                FILEMARK_DETECTED,
                STREAM_FILEMARK,
                i64::from(len),
            ));
        }
        let n = cur.ondisk_sz.min(len) as usize;
        out.resize(n, 0);
        m.read_at(cur.curr + HEADER_LEN, out).map_err(medium_err)?;
        let residue = i64::from(len) - i64::from(cur.ondisk_sz);
        // A short block with SILI is no error (SSC-3 6.4); an overlength block always
        // is, whatever SILI says.
        if residue != 0 && !(sili && residue > 0) {
            return Err(stream(
                SenseKey::NoSense,
                asc::NO_ADDITIONAL_SENSE,
                STREAM_ILI,
                residue,
            ));
        }
        Ok(())
    }

    /// Append one object at the position, making it the new end of data. `Ok(true)`
    /// when the tape is now past early warning.
    fn append(&mut self, m: &mut dyn TapeMedium, kind: u32, data: &[u8]) -> Result<bool, Sense> {
        let t = self.tape();
        let capacity = t.mam.max_capacity();
        let end = FIRST_BLOCK.saturating_add(capacity);
        let len = data.len() as u64;
        let h = BlockHeader {
            blk_type: kind,
            ondisk_sz: data.len() as u32,
            blk_sz: data.len() as u32,
            next: t.cur.curr + HEADER_LEN + len,
            ..t.cur
        };
        // The block and the EOD header after it must fit.
        if h.next + HEADER_LEN > end {
            return Err(check(SenseKey::VolumeOverflow, END_OF_MEDIUM));
        }
        let eod = BlockHeader {
            blk_type: image::kind::EOD,
            ondisk_sz: 0,
            blk_sz: 0,
            blk_num: h.blk_num + 1,
            prev: h.curr,
            curr: h.next,
            next: h.next,
        };
        // Data and the new EOD first, then the header that links them in: a crash in
        // between leaves the old chain intact.
        if !data.is_empty() {
            m.write_at(h.curr + HEADER_LEN, data).map_err(medium_err)?;
        }
        m.write_at(eod.curr, &eod.encode()).map_err(medium_err)?;
        m.write_at(h.curr, &h.encode()).map_err(medium_err)?;
        if kind == image::kind::FILEMARK {
            t.file_no += 1;
        }
        t.cur = eod;
        Ok(eod.curr + HEADER_LEN > end - early_warning_zone(capacity))
    }

    fn write(
        &mut self,
        m: &mut dyn TapeMedium,
        fixed: bool,
        len: u32,
        data: &[u8],
    ) -> Result<(), Sense> {
        self.writable(m)?;
        let (count, bs) = if fixed {
            if self.block_len == 0 {
                return Err(Sense::invalid_cdb_field(1, 0));
            }
            (len, self.block_len as usize)
        } else {
            if len > MAX_BLOCK {
                return Err(Sense::invalid_cdb_field(2, 7));
            }
            (u32::from(len > 0), len as usize)
        };
        if count == 0 {
            return Ok(());
        }
        // The initiator sent less than the CDB says: nothing is written.
        if data.len() < count as usize * bs {
            return Err(Sense::invalid_field_in_cdb());
        }
        self.worm_check()?;
        let mut warned = false;
        for (i, block) in data.chunks(bs).take(count as usize).enumerate() {
            match self.append(m, image::kind::DATA, block) {
                Ok(w) => warned |= w,
                Err(s) if s.key == SenseKey::VolumeOverflow => {
                    let _ = m.flush();
                    // Residue: blocks (fixed) or bytes (variable) not written.
                    let residue = if fixed {
                        i64::from(count) - i as i64
                    } else {
                        i64::from(len)
                    };
                    return Err(stream(
                        SenseKey::VolumeOverflow,
                        END_OF_MEDIUM,
                        STREAM_EOM,
                        residue,
                    ));
                }
                Err(s) => return Err(s),
            }
        }
        if warned {
            // SSC-3 4.2.x early warning: all data written, CHECK CONDITION with EOM.
            return Err(stream(SenseKey::NoSense, END_OF_MEDIUM, STREAM_EOM, 0));
        }
        Ok(())
    }

    fn write_filemarks(&mut self, m: &mut dyn TapeMedium, count: u32) -> Result<(), Sense> {
        self.writable(m)?;
        if count > 0 {
            self.worm_check()?;
        }
        let mut warned = false;
        for i in 0..count {
            match self.append(m, image::kind::FILEMARK, &[]) {
                Ok(w) => warned |= w,
                Err(s) if s.key == SenseKey::VolumeOverflow => {
                    let _ = m.flush();
                    return Err(stream(
                        SenseKey::VolumeOverflow,
                        END_OF_MEDIUM,
                        STREAM_EOM,
                        i64::from(count - i),
                    ));
                }
                Err(s) => return Err(s),
            }
        }
        // WRITE FILEMARKS is the host's way to flush the drive's buffer.
        m.flush().map_err(medium_err)?;
        if warned {
            return Err(stream(SenseKey::NoSense, END_OF_MEDIUM, STREAM_EOM, 0));
        }
        Ok(())
    }

    fn space(&mut self, m: &mut dyn TapeMedium, code: SpaceCode, count: i32) -> Result<(), Sense> {
        let n = i64::from(count).unsigned_abs();
        match (code, count >= 0) {
            (SpaceCode::EndOfData, _) => {
                while !self.tape().cur.is_eod() {
                    self.forward(m)?;
                }
                Ok(())
            }
            (SpaceCode::Blocks, true) => {
                for i in 0..n {
                    let cur = self.tape().cur;
                    let residue = (n - i) as i64;
                    if cur.is_eod() {
                        return Err(stream(SenseKey::BlankCheck, END_OF_DATA, 0, residue));
                    }
                    self.forward(m)?;
                    if cur.is_filemark() {
                        // Stopped on the end-of-tape side of the filemark.
                        return Err(stream(
                            SenseKey::NoSense,
                            FILEMARK_DETECTED,
                            STREAM_FILEMARK,
                            residue,
                        ));
                    }
                }
                Ok(())
            }
            (SpaceCode::Blocks, false) => {
                for i in 0..n {
                    let residue = (n - i) as i64;
                    if self.at_bop() {
                        return Err(stream(
                            SenseKey::NoSense,
                            BEGINNING_OF_MEDIUM,
                            STREAM_EOM,
                            residue,
                        ));
                    }
                    self.backward(m)?;
                    if self.tape().cur.is_filemark() {
                        // Stopped on the beginning-of-tape side of the filemark.
                        return Err(stream(
                            SenseKey::NoSense,
                            FILEMARK_DETECTED,
                            STREAM_FILEMARK,
                            residue,
                        ));
                    }
                }
                Ok(())
            }
            (SpaceCode::Filemarks, true) => {
                let mut done = 0;
                while done < n {
                    let cur = self.tape().cur;
                    if cur.is_eod() {
                        return Err(stream(
                            SenseKey::BlankCheck,
                            END_OF_DATA,
                            0,
                            (n - done) as i64,
                        ));
                    }
                    self.forward(m)?;
                    if cur.is_filemark() {
                        done += 1;
                    }
                }
                Ok(())
            }
            (SpaceCode::Filemarks, false) => {
                let mut done = 0;
                while done < n {
                    if self.at_bop() {
                        return Err(stream(
                            SenseKey::NoSense,
                            BEGINNING_OF_MEDIUM,
                            STREAM_EOM,
                            (n - done) as i64,
                        ));
                    }
                    self.backward(m)?;
                    if self.tape().cur.is_filemark() {
                        done += 1;
                    }
                }
                Ok(())
            }
        }
    }

    fn locate(&mut self, m: &mut dyn TapeMedium, to: LocateTo) -> Result<(), Sense> {
        let eod = || stream(SenseKey::BlankCheck, END_OF_DATA, 0, 0);
        match to {
            LocateTo::EndOfData => self.space(m, SpaceCode::EndOfData, 0),
            LocateTo::Object(id) => {
                // Walk from here when the target lies ahead, else from the start.
                if self.object_id() > id {
                    self.rewind(m)?;
                }
                while self.object_id() < id {
                    if self.tape().cur.is_eod() {
                        return Err(Sense {
                            info: None,
                            ..eod()
                        });
                    }
                    self.forward(m)?;
                }
                Ok(())
            }
            LocateTo::File(n) => {
                self.rewind(m)?;
                while self.tape().file_no < n {
                    if self.tape().cur.is_eod() {
                        return Err(Sense {
                            info: None,
                            ..eod()
                        });
                    }
                    self.forward(m)?;
                }
                Ok(())
            }
        }
    }

    /// The logical object identifier of the position: objects (blocks and filemarks)
    /// before it.
    fn object_id(&self) -> u64 {
        self.tape
            .as_ref()
            .map_or(0, |t| t.cur.blk_num.saturating_sub(1))
    }

    fn past_early_warning(&self) -> bool {
        self.tape.as_ref().is_some_and(|t| {
            let cap = t.mam.max_capacity();
            t.cur.curr + HEADER_LEN > FIRST_BLOCK + cap - early_warning_zone(cap)
        })
    }

    fn read_position(&self, form: u8) -> Vec<u8> {
        let t = self.tape.as_ref().expect("a tape is loaded");
        let id = self.object_id();
        let bop = self.at_bop();
        let bpew = self.past_early_warning();
        if form == 6 {
            // Long form (SSC-3 table 41): BOP, EOP, MPU=0 and LONU=0 (the numbers are
            // valid), BPEW; partition 0; object number; file number; set number 0.
            let mut d = vec![0u8; 32];
            d[0] = (u8::from(bop) << 7) | u8::from(bpew);
            d[8..16].copy_from_slice(&id.to_be_bytes());
            d[16..24].copy_from_slice(&t.file_no.to_be_bytes());
            d
        } else {
            // Short form (SSC-3 table 39): the first and last object locations are the
            // position (nothing is buffered: the counts are 0 and valid).
            let mut d = vec![0u8; 20];
            d[0] = (u8::from(bop) << 7) | u8::from(bpew);
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            if id == u32::MAX {
                d[0] |= 0x04; // LOLU: the location does not fit.
            }
            d[4..8].copy_from_slice(&id.to_be_bytes());
            d[8..12].copy_from_slice(&id.to_be_bytes());
            d
        }
    }

    fn density_support(&self) -> Vec<u8> {
        let cap_mb = self
            .tape
            .as_ref()
            .map_or(0, |t| t.mam.max_capacity() / 1_000_000);
        // One density descriptor (SSC-3 table 45): WRTOK, DUP=0, DEFLT.
        let mut d = vec![0u8; 52];
        d[0] = DENSITY;
        d[1] = DENSITY;
        d[2] = 0x80 | 0x20;
        d[8..10].copy_from_slice(&127u16.to_be_bytes()); // 12.7 mm
        d[10..12].copy_from_slice(&384u16.to_be_bytes()); // tracks
        d[12..16].copy_from_slice(&u32::try_from(cap_mb).unwrap_or(u32::MAX).to_be_bytes());
        d[16..24].copy_from_slice(b"TGT     ");
        d[24..32].copy_from_slice(b"VIRTUAL ");
        d[32..52].copy_from_slice(b"Virtual tape image  ");
        let mut out = vec![0u8; 4];
        out[0..2].copy_from_slice(&((d.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&d);
        out
    }

    /// The mode pages a tape LU has (ascending).
    const PAGES: [u8; 7] = [0x01, 0x02, 0x0a, 0x0f, 0x10, 0x11, 0x1c];

    fn page(&self, code: u8, pc: PageControl) -> Vec<u8> {
        let changeable = pc == PageControl::Changeable;
        let current = pc == PageControl::Current || pc == PageControl::Saved;
        match code {
            // Read-write error recovery (SSC-3 8.3.5): no retries to tune.
            0x01 => vec![0x01, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            // Disconnect-reconnect (SPC-4 7.5.9).
            0x02 => {
                let mut p = vec![0u8; 16];
                p[0] = 0x02;
                p[1] = 0x0e;
                p
            }
            // Control (SPC-4 7.5.8): fixed-format sense (D_SENSE 0), as tgt.
            0x0a => {
                let mut p = vec![0u8; 12];
                p[0] = 0x0a;
                p[1] = 0x0a;
                if !changeable {
                    p[2] = 0x02; // GLTSD
                }
                p
            }
            // Data compression (SSC-3 8.3.2): DCE is accepted, DCC (capable), DDE.
            0x0f => {
                let mut p = vec![0u8; 16];
                p[0] = 0x0f;
                p[1] = 0x0e;
                if changeable {
                    p[2] = 0x80;
                } else {
                    p[2] = 0x40 | if current && self.compression { 0x80 } else { 0 };
                    p[3] = 0x80;
                }
                p
            }
            // Device configuration (SSC-3 8.3.3): LOIS (logical object identifiers
            // supported), EEG and SEW; SWP is changeable.
            0x10 => {
                let mut p = vec![0u8; 16];
                p[0] = 0x10;
                p[1] = 0x0e;
                if changeable {
                    p[10] = 0x04;
                } else {
                    p[8] = 0x40;
                    p[10] = 0x18 | if current && self.swp { 0x04 } else { 0 };
                }
                p
            }
            // Medium partition (SSC-3 8.3.4): one partition, its size in MB
            // (PSUM 10b); nothing changeable.
            0x11 => {
                let mut p = vec![0u8; 10];
                p[0] = 0x11;
                p[1] = 0x08;
                if !changeable {
                    p[4] = 0x10;
                    p[5] = 0x03;
                    let mb = self.tape.as_ref().map_or(0, |t| t.mam.max_capacity() >> 20);
                    let mb = u16::try_from(mb).unwrap_or(u16::MAX);
                    p[8..10].copy_from_slice(&mb.to_be_bytes());
                }
                p
            }
            // Informational exceptions control (SPC-4 7.5.10): DEXCPT.
            _ => {
                let mut p = vec![0u8; 12];
                p[0] = 0x1c;
                p[1] = 0x0a;
                if !changeable {
                    p[2] = 0x08;
                }
                p
            }
        }
    }

    fn mode_sense(&self, ms: &scsi_sbc::cdb::ModeSense, medium_ro: bool) -> Result<Vec<u8>, Sense> {
        let codes = scsi_sbc::mode::select_pages(ms, &Self::PAGES)?;
        if ms.pc == PageControl::Saved {
            return Err(Sense::illegal_request(asc::SAVING_PARAMETERS_NOT_SUPPORTED));
        }
        let changeable = ms.pc == PageControl::Changeable;
        // Device-specific parameter (SSC-3 8.3.1): WP, BUFFERED MODE 1 (as tgt).
        let protected = self.readonly
            || medium_ro
            || self.swp
            || self
                .tape
                .as_ref()
                .is_some_and(|t| t.mam.cartridge() == Cartridge::Cleaning);
        let dsp = if changeable {
            0
        } else {
            (u8::from(protected) << 7) | 0x10
        };
        // One short block descriptor (SSC-3 8.3.1): density, no block count, the
        // block length (changeable: all of it).
        let desc: Vec<u8> = if ms.dbd {
            Vec::new()
        } else if changeable {
            vec![0, 0, 0, 0, 0, 0xff, 0xff, 0xff]
        } else {
            let bl = self.block_len.to_be_bytes();
            vec![DENSITY, 0, 0, 0, 0, bl[1], bl[2], bl[3]]
        };
        let short = scsi_sbc::cdb::ModeSense {
            llbaa: false,
            ..*ms
        };
        let pages = codes.into_iter().map(|c| self.page(c, ms.pc));
        Ok(scsi_sbc::mode::assemble(&short, dsp, &desc, pages))
    }

    fn mode_select(&mut self, ten: bool, data: &[u8]) -> Result<(), Sense> {
        let param = |byte: usize| {
            Sense::illegal_request(asc::INVALID_FIELD_IN_PARAMETER_LIST)
                .at(scsi_sbc::FieldPointer::param(byte as u16))
        };
        let hdr = if ten { 8 } else { 4 };
        if data.is_empty() {
            return Ok(());
        }
        if data.len() < hdr {
            return Err(Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let bd_len = if ten {
            usize::from(u16::from_be_bytes([data[6], data[7]]))
        } else {
            usize::from(data[3])
        };
        if data.len() < hdr + bd_len || (bd_len != 0 && bd_len != 8) {
            return Err(Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let mut new_block = self.block_len;
        if bd_len == 8 {
            let bd = &data[hdr..hdr + 8];
            // 00h: default, 7Fh: no change, or ours.
            if !matches!(bd[0], 0x00 | 0x7f | DENSITY) {
                return Err(param(hdr));
            }
            let bl = u32::from_be_bytes([0, bd[5], bd[6], bd[7]]);
            if bl > MAX_BLOCK {
                return Err(param(hdr + 5));
            }
            new_block = bl;
        }
        let (mut compression, mut swp) = (self.compression, self.swp);
        let mut at = hdr + bd_len;
        while at < data.len() {
            if data.len() < at + 2 {
                return Err(Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR));
            }
            let code = data[at] & 0x3f;
            if data[at] & 0x40 != 0 {
                // SPF: no subpages here.
                return Err(param(at));
            }
            let len = usize::from(data[at + 1]);
            let Some(page) = data.get(at..at + 2 + len) else {
                return Err(Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR));
            };
            match code {
                0x0f if len >= 2 => compression = page[2] & 0x80 != 0,
                0x10 if len >= 9 => swp = page[10] & 0x04 != 0,
                // Partitioning is not offered: no additional partitions.
                0x11 if len >= 2 => {
                    if page[3] != 0 || page[4] & 0xe1 != 0 {
                        return Err(param(at + 3));
                    }
                }
                0x01 | 0x02 | 0x0a | 0x1c => {}
                _ => return Err(param(at)),
            }
            at += 2 + len;
        }
        self.block_len = new_block;
        self.compression = compression;
        self.swp = swp;
        Ok(())
    }
}

#[cfg(test)]
#[path = "drive_tests.rs"]
mod tests;
