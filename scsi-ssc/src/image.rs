//! tgt's tape image format (what `tgtimg` makes and tgt's `bs_ssc` reads and writes),
//! as bytes: encoding and decoding only, no files.
//!
//! An image is a chain of 48-byte block headers, each followed by the block's data:
//!
//! ```text
//! offset 0     header: BOT (blk_sz = capacity in MB, next = 1152)
//! offset 48    MAM: 1104 bytes of medium auxiliary memory
//! offset 1152  first header (EOD on a new tape), data, header, data, ... EOD
//! ```
//!
//! Every header records its own offset (`curr`) and its neighbours' (`prev`, `next`),
//! so the chain can be walked both ways; the last one is always EOD. Integers are
//! big-endian, except the header checksum: a CRC32C of the header's other 44 bytes,
//! stored in the host's order by tgt (little-endian on every host it runs on; a
//! mismatch is only logged by tgt, and tolerated here too).

use thiserror::Error;

/// Size of one block header on disk.
pub const HEADER_LEN: u64 = 48;
/// Size of the MAM (medium auxiliary memory) record that follows the BOT header.
pub const MAM_LEN: u64 = 1104;
/// Offset of the first header after BOT.
pub const FIRST_BLOCK: u64 = HEADER_LEN + MAM_LEN;
/// The image format version tgt writes and accepts (`TGT_TAPE_VERSION`).
pub const FORMAT_VERSION: u32 = 2;

/// Kinds of block header (`blk_type`).
pub mod kind {
    /// No operation (never written).
    pub const NOOP: u32 = 0x00;
    /// Compressed data (tgt never writes it).
    pub const COMPRESSED_DATA: u32 = 0x01;
    /// Uncompressed data: what every write makes.
    pub const DATA: u32 = 0x02;
    /// Encrypted data (never written).
    pub const ENCRYPTED_DATA: u32 = 0x04;
    /// Beginning of tape: the header at offset 0.
    pub const BOT: u32 = 0x10;
    /// End of data: the last header.
    pub const EOD: u32 = 0x20;
    /// A filemark.
    pub const FILEMARK: u32 = 0x40;
    /// A setmark (never written).
    pub const SETMARK: u32 = 0x80;
}

/// Cartridge types (SMC-3 table 20), the MAM's `medium_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cartridge {
    /// 0: unspecified.
    Unspecified,
    /// 1: data.
    Data,
    /// 2: cleaning.
    Cleaning,
    /// 3: diagnostics.
    Diagnostics,
    /// 4: write once, read many.
    Worm,
    /// 5: microcode.
    Microcode,
    /// Any other value.
    Unknown(u8),
}

impl Cartridge {
    /// From the MAM byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Cartridge::Unspecified,
            1 => Cartridge::Data,
            2 => Cartridge::Cleaning,
            3 => Cartridge::Diagnostics,
            4 => Cartridge::Worm,
            5 => Cartridge::Microcode,
            n => Cartridge::Unknown(n),
        }
    }

    /// The MAM byte.
    pub fn byte(self) -> u8 {
        match self {
            Cartridge::Unspecified => 0,
            Cartridge::Data => 1,
            Cartridge::Cleaning => 2,
            Cartridge::Diagnostics => 3,
            Cartridge::Worm => 4,
            Cartridge::Microcode => 5,
            Cartridge::Unknown(n) => n,
        }
    }

    /// What `tgtimg --op show` prints after ` type     : `.
    pub fn show_name(self) -> &'static str {
        match self {
            Cartridge::Unspecified => "Unspecified",
            Cartridge::Data => "Data",
            Cartridge::Cleaning => "Cleaning",
            Cartridge::Diagnostics => "Diagnostics",
            Cartridge::Worm => "WORM",
            Cartridge::Microcode => "Microcode",
            Cartridge::Unknown(_) => "Unknown",
        }
    }
}

/// Why bytes are not a tape image.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageError {
    /// Fewer bytes than a header or MAM needs.
    #[error("short read: {0} bytes where {1} are needed")]
    Short(usize, usize),
    /// The MAM's format version is not tgt's.
    #[error("unknown media format version {0:x}")]
    Version(u32),
    /// The first header is not BOT.
    #[error("the image does not start with a beginning-of-tape header")]
    NoBot,
    /// A header's links do not make a chain.
    #[error("corrupt block header at offset {0}")]
    Corrupt(u64),
}

/// One block header (`struct blk_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHeader {
    /// Bytes of data following the header.
    pub ondisk_sz: u32,
    /// The block's length as written (equal to `ondisk_sz` for uncompressed data;
    /// the capacity in MB in the BOT header).
    pub blk_sz: u32,
    /// One of [`kind`].
    pub blk_type: u32,
    /// Sequence number: BOT is 0, the first object after it 1, and so on.
    pub blk_num: u64,
    /// Offset of the previous header (0 for BOT and the first block).
    pub prev: u64,
    /// Offset of this header.
    pub curr: u64,
    /// Offset of the next header (EOD points at itself).
    pub next: u64,
}

impl BlockHeader {
    /// The 48 bytes on disk, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[4..8].copy_from_slice(&self.ondisk_sz.to_be_bytes());
        b[8..12].copy_from_slice(&self.blk_sz.to_be_bytes());
        b[12..16].copy_from_slice(&self.blk_type.to_be_bytes());
        b[16..24].copy_from_slice(&self.blk_num.to_be_bytes());
        b[24..32].copy_from_slice(&self.prev.to_be_bytes());
        b[32..40].copy_from_slice(&self.curr.to_be_bytes());
        b[40..48].copy_from_slice(&self.next.to_be_bytes());
        let crc = crc32c::crc32c(&b[4..]);
        b[0..4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode a header; the checksum is reported, not enforced (as tgt).
    pub fn decode(b: &[u8]) -> Result<(Self, bool), ImageError> {
        if b.len() < HEADER_LEN as usize {
            return Err(ImageError::Short(b.len(), HEADER_LEN as usize));
        }
        let h = BlockHeader {
            ondisk_sz: be32(&b[4..]),
            blk_sz: be32(&b[8..]),
            blk_type: be32(&b[12..]),
            blk_num: be64(&b[16..]),
            prev: be64(&b[24..]),
            curr: be64(&b[32..]),
            next: be64(&b[40..]),
        };
        let crc_ok = crc32c::crc32c(&b[4..48]).to_le_bytes() == b[0..4];
        Ok((h, crc_ok))
    }

    /// Whether the header is an end-of-data marker.
    pub fn is_eod(&self) -> bool {
        self.blk_type == kind::EOD
    }

    /// Whether the header is a filemark.
    pub fn is_filemark(&self) -> bool {
        self.blk_type == kind::FILEMARK
    }

    /// Whether the header is beginning-of-tape.
    pub fn is_bot(&self) -> bool {
        self.blk_type == kind::BOT
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Byte offsets of the MAM fields this crate reads or writes (`struct MAM`, with the C
/// compiler's padding).
mod mam_off {
    pub(super) const VERSION: usize = 0;
    pub(super) const REMAINING: usize = 8;
    pub(super) const MAX_CAPACITY: usize = 16;
    pub(super) const LOAD_COUNT: usize = 32;
    pub(super) const SPACE_REMAINING: usize = 40;
    pub(super) const WRITTEN_LIFE: usize = 224;
    pub(super) const READ_LIFE: usize = 232;
    pub(super) const WRITTEN_LAST: usize = 240;
    pub(super) const READ_LAST: usize = 248;
    pub(super) const MANUFACTURER: usize = 256;
    pub(super) const SERIAL: usize = 264;
    pub(super) const LENGTH: usize = 296;
    pub(super) const WIDTH: usize = 300;
    pub(super) const DENSITY: usize = 312;
    pub(super) const MEDIUM_TYPE: usize = 336;
    pub(super) const MEDIUM_TYPE_INFO: usize = 338;
    pub(super) const APP_VENDOR: usize = 344;
    pub(super) const BARCODE: usize = 568;
    pub(super) const BARCODE_LEN: usize = 32;
    pub(super) const VENDOR_UNIQUE_LEN: u64 = 256;
    pub(super) const DIRTY: usize = 1096;
}

/// The MAM record. Only the fields with a meaning here are decoded; the raw bytes are
/// kept so that writing it back leaves the others as they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mam {
    raw: Vec<u8>,
}

impl Mam {
    /// Decode the 1104 bytes at offset 48; the version must be tgt's.
    pub fn decode(b: &[u8]) -> Result<Self, ImageError> {
        if b.len() < MAM_LEN as usize {
            return Err(ImageError::Short(b.len(), MAM_LEN as usize));
        }
        let m = Mam {
            raw: b[..MAM_LEN as usize].to_vec(),
        };
        if m.version() != FORMAT_VERSION {
            return Err(ImageError::Version(m.version()));
        }
        Ok(m)
    }

    /// The bytes on disk.
    pub fn encode(&self) -> &[u8] {
        &self.raw
    }

    fn u32_at(&self, o: usize) -> u32 {
        be32(&self.raw[o..])
    }

    fn u64_at(&self, o: usize) -> u64 {
        be64(&self.raw[o..])
    }

    fn set_u64(&mut self, o: usize, v: u64) {
        self.raw[o..o + 8].copy_from_slice(&v.to_be_bytes());
    }

    /// `tape_fmt_version`.
    pub fn version(&self) -> u32 {
        self.u32_at(mam_off::VERSION)
    }

    /// Capacity of the medium in bytes.
    pub fn max_capacity(&self) -> u64 {
        self.u64_at(mam_off::MAX_CAPACITY)
    }

    /// Bytes the MAM says are left.
    pub fn remaining_capacity(&self) -> u64 {
        self.u64_at(mam_off::REMAINING)
    }

    /// Set the bytes left (kept up to date as tapes are written).
    pub fn set_remaining_capacity(&mut self, v: u64) {
        self.set_u64(mam_off::REMAINING, v);
    }

    /// Times the tape was loaded.
    pub fn load_count(&self) -> u64 {
        self.u64_at(mam_off::LOAD_COUNT)
    }

    /// Count one more load.
    pub fn count_load(&mut self) {
        let n = self.load_count().saturating_add(1);
        self.set_u64(mam_off::LOAD_COUNT, n);
    }

    /// Add to the bytes written in the medium's life and in this load.
    pub fn count_written(&mut self, n: u64) {
        for o in [mam_off::WRITTEN_LIFE, mam_off::WRITTEN_LAST] {
            let v = self.u64_at(o).saturating_add(n);
            self.set_u64(o, v);
        }
    }

    /// Add to the bytes read in the medium's life and in this load.
    pub fn count_read(&mut self, n: u64) {
        for o in [mam_off::READ_LIFE, mam_off::READ_LAST] {
            let v = self.u64_at(o).saturating_add(n);
            self.set_u64(o, v);
        }
    }

    /// Start counting a new load's bytes read and written.
    pub fn new_load(&mut self) {
        self.set_u64(mam_off::WRITTEN_LAST, 0);
        self.set_u64(mam_off::READ_LAST, 0);
    }

    /// The cartridge type.
    pub fn cartridge(&self) -> Cartridge {
        Cartridge::from_byte(self.raw[mam_off::MEDIUM_TYPE])
    }

    /// The medium density code.
    pub fn density(&self) -> u8 {
        self.raw[mam_off::DENSITY]
    }

    /// The barcode as stored (tgtimg pads it with spaces to 31 characters).
    pub fn barcode(&self) -> String {
        c_string(&self.raw[mam_off::BARCODE..mam_off::BARCODE + mam_off::BARCODE_LEN])
    }

    /// The medium serial number (`BARCODE_SECONDS` from tgtimg).
    pub fn serial(&self) -> String {
        c_string(&self.raw[mam_off::SERIAL..mam_off::SERIAL + 32])
    }

    /// Medium length and width (tgtimg: 384 tracks, 127 tenths of mm).
    pub fn length_width(&self) -> (u32, u32) {
        (self.u32_at(mam_off::LENGTH), self.u32_at(mam_off::WIDTH))
    }

    /// The MAM tgtimg writes for a new tape: `size_mb` megabytes, `cartridge`,
    /// `barcode`, created at `now` (seconds since the epoch, in the serial number).
    pub fn new(barcode: &str, size_mb: u64, cartridge: Cartridge, now: u64) -> Self {
        let mut raw = vec![0u8; MAM_LEN as usize];
        raw[mam_off::VERSION..4].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        let bytes = size_mb.saturating_mul(1 << 20);
        raw[mam_off::REMAINING..mam_off::REMAINING + 8].copy_from_slice(&bytes.to_be_bytes());
        raw[mam_off::MAX_CAPACITY..mam_off::MAX_CAPACITY + 8].copy_from_slice(&bytes.to_be_bytes());
        raw[mam_off::SPACE_REMAINING..mam_off::SPACE_REMAINING + 8]
            .copy_from_slice(&mam_off::VENDOR_UNIQUE_LEN.to_be_bytes());
        raw[mam_off::LENGTH..mam_off::LENGTH + 4].copy_from_slice(&384u32.to_be_bytes());
        raw[mam_off::WIDTH..mam_off::WIDTH + 4].copy_from_slice(&127u32.to_be_bytes());
        raw[mam_off::MANUFACTURER..mam_off::MANUFACTURER + 8].copy_from_slice(b"Foo     ");
        raw[mam_off::APP_VENDOR..mam_off::APP_VENDOR + 8].copy_from_slice(b"Bar     ");
        raw[mam_off::MEDIUM_TYPE] = cartridge.byte();
        if cartridge == Cartridge::Cleaning {
            // Cleaning loads left.
            raw[mam_off::MEDIUM_TYPE_INFO..mam_off::MEDIUM_TYPE_INFO + 2]
                .copy_from_slice(&20u16.to_be_bytes());
        }
        // C strings in fixed fields: at most 31 characters and a NUL.
        let serial = format!("{barcode}_{now}");
        put_c_string(&mut raw[mam_off::SERIAL..mam_off::SERIAL + 32], &serial);
        let padded = format!("{barcode:<31}");
        put_c_string(
            &mut raw[mam_off::BARCODE..mam_off::BARCODE + mam_off::BARCODE_LEN],
            &padded,
        );
        raw[mam_off::DIRTY] = 0;
        Mam { raw }
    }
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn put_c_string(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len() - 1);
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
    field[n..].fill(0);
}

/// The bytes of a new, empty tape, as `tgtimg --op new --device-type tape` writes
/// them: BOT header, MAM, EOD header (1200 bytes).
pub fn new_image(barcode: &str, size_mb: u64, cartridge: Cartridge, now: u64) -> Vec<u8> {
    let bot = BlockHeader {
        blk_type: kind::BOT,
        blk_sz: u32::try_from(size_mb).unwrap_or(u32::MAX),
        next: FIRST_BLOCK,
        ..BlockHeader::default()
    };
    let eod = BlockHeader {
        blk_type: kind::EOD,
        blk_num: 1,
        curr: FIRST_BLOCK,
        next: FIRST_BLOCK,
        ..BlockHeader::default()
    };
    let mut out = Vec::with_capacity((FIRST_BLOCK + HEADER_LEN) as usize);
    out.extend_from_slice(&bot.encode());
    out.extend_from_slice(Mam::new(barcode, size_mb, cartridge, now).encode());
    out.extend_from_slice(&eod.encode());
    out
}

/// What `tgtimg --op show` prints for one header.
pub fn show_header(h: &BlockHeader) -> String {
    let name = match h.blk_type {
        kind::DATA => " Uncompressed data",
        kind::FILEMARK => "         Filemark",
        kind::BOT => "Beginning of Tape",
        kind::EOD => "      End of Data",
        kind::NOOP => "      No Operation",
        _ => "      Unknown type",
    };
    // tgt prints these with %d: a u32 above i32::MAX shows negative.
    let t = h.blk_type as i32;
    if h.is_bot() {
        format!(
            "{name}({t}): Capacity {} MB, Blk No.: {}, prev {}, curr {}, next {}",
            h.blk_sz as i32, h.blk_num as i64, h.prev as i64, h.curr as i64, h.next as i64
        )
    } else {
        format!(
            "{name}({t}): Blk No. {}, prev {}, curr {},  next {}, sz {}",
            h.blk_num as i64, h.prev as i64, h.curr as i64, h.next as i64, h.ondisk_sz as i32
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_tgt() {
        let img = new_image("ABC123", 10, Cartridge::Data, 1_796_300_633);
        assert_eq!(img.len(), 1200);
        let (bot, ok) = BlockHeader::decode(&img).unwrap();
        assert!(ok && bot.is_bot());
        assert_eq!((bot.blk_sz, bot.next), (10, 1152));
        let mam = Mam::decode(&img[48..]).unwrap();
        assert_eq!(mam.max_capacity(), 10 << 20);
        assert_eq!(mam.barcode(), format!("{:<31}", "ABC123"));
        assert_eq!(mam.serial(), "ABC123_1796300633");
        let (eod, ok) = BlockHeader::decode(&img[1152..]).unwrap();
        assert!(ok && eod.is_eod());
        assert_eq!(
            (eod.blk_num, eod.curr, eod.next, eod.prev),
            (1, 1152, 1152, 0)
        );
    }

    #[test]
    fn header_round_trip_and_checksum() {
        let h = BlockHeader {
            ondisk_sz: 5,
            blk_sz: 5,
            blk_type: kind::DATA,
            blk_num: 3,
            prev: 1152,
            curr: 1200,
            next: 1253,
        };
        let mut b = h.encode();
        assert_eq!(BlockHeader::decode(&b).unwrap(), (h, true));
        b[20] ^= 1;
        assert!(!BlockHeader::decode(&b).unwrap().1);
        assert!(matches!(
            BlockHeader::decode(&b[..47]),
            Err(ImageError::Short(47, 48))
        ));
    }

    #[test]
    fn bad_version_is_refused() {
        let mut img = new_image("A", 1, Cartridge::Data, 0);
        img[48 + 3] = 7;
        assert_eq!(Mam::decode(&img[48..]), Err(ImageError::Version(7)));
    }

    #[test]
    fn show_lines() {
        let img = new_image("A", 10, Cartridge::Data, 0);
        let (bot, _) = BlockHeader::decode(&img).unwrap();
        assert_eq!(
            show_header(&bot),
            "Beginning of Tape(16): Capacity 10 MB, Blk No.: 0, prev 0, curr 0, next 1152"
        );
        let (eod, _) = BlockHeader::decode(&img[1152..]).unwrap();
        assert_eq!(
            show_header(&eod),
            "      End of Data(32): Blk No. 1, prev 0, curr 1152,  next 1152, sz 0"
        );
    }
}
