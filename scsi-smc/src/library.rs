//! The library: its elements (robot, slots, import/export, drives) and what tgt's
//! `--params element_type=...` configure. Sans-IO: moving a tape into or out of a
//! drive is asked of a [`DriveBay`].

use scsi_sbc::asc::{self, AscAscq};
use scsi_sbc::{Sense, SenseKey};
use thiserror::Error;

/// Element types (SMC-3 table 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ElementType {
    /// 1: medium transport (the robot's picker).
    Transport = 1,
    /// 2: storage (a slot).
    Storage = 2,
    /// 3: import/export (mail slot).
    ImportExport = 3,
    /// 4: data transfer (a drive).
    DataTransfer = 4,
}

impl ElementType {
    /// From the ELEMENT TYPE CODE.
    pub fn from_code(c: u64) -> Option<Self> {
        Some(match c {
            1 => ElementType::Transport,
            2 => ElementType::Storage,
            3 => ElementType::ImportExport,
            4 => ElementType::DataTransfer,
            _ => return None,
        })
    }

    /// Every type, in the order READ ELEMENT STATUS reports them.
    pub const ALL: [ElementType; 4] = [
        ElementType::Transport,
        ElementType::Storage,
        ElementType::ImportExport,
        ElementType::DataTransfer,
    ];
}

/// One element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Its address.
    pub addr: u16,
    /// Its type.
    pub kind: ElementType,
    /// Holds a tape.
    pub full: bool,
    /// The tape's barcode (its file name under `media_home`).
    pub barcode: String,
    /// A volume tag reported instead of the barcode, when set.
    pub volume_tag: String,
    /// Where the tape came from (SVALID).
    pub source: Option<u16>,
    /// Sides of the medium (INVERT is refused for 1).
    pub sides: u8,
    /// The drive LU at this address: (tid, lun).
    pub drive: Option<(u32, u64)>,
    /// ASC/ASCQ reported for the element (a drive not yet mapped to an LU says
    /// INITIALIZING COMMAND REQUIRED, as tgt).
    pub asc: AscAscq,
}

/// Why a `--params` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A key tgt's changer does not know.
    #[error("unknown parameter '{0}'")]
    UnknownParam(String),
    /// A value or combination that cannot be applied.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// What a move asks of the drives.
pub trait DriveBay {
    /// Load the image `path` into the drive LU (tid, lun).
    fn load(&mut self, drive: (u32, u64), path: &str) -> Result<(), String>;
    /// Take the tape out of the drive LU; `Err` when removal is prevented.
    fn unload(&mut self, drive: (u32, u64)) -> Result<(), String>;
    /// Whether removal is prevented in the drive LU.
    fn prevented(&self, drive: (u32, u64)) -> bool;
}

/// 3Bh/0Dh MEDIUM DESTINATION ELEMENT FULL.
pub const DESTINATION_FULL: AscAscq = AscAscq {
    asc: 0x3b,
    ascq: 0x0d,
};
/// 3Bh/0Eh MEDIUM SOURCE ELEMENT EMPTY.
pub const SOURCE_EMPTY: AscAscq = AscAscq {
    asc: 0x3b,
    ascq: 0x0e,
};
/// 21h/01h INVALID ELEMENT ADDRESS.
pub const INVALID_ELEMENT_ADDRESS: AscAscq = AscAscq {
    asc: 0x21,
    ascq: 0x01,
};
/// 15h/01h MECHANICAL POSITIONING ERROR (the drive would not take the tape).
pub const MECHANICAL_POSITIONING_ERROR: AscAscq = AscAscq {
    asc: 0x15,
    ascq: 0x01,
};

/// The library's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Library {
    /// Elements in the order they were added.
    pub elements: Vec<Element>,
    /// Directory of the tape images (`media_home=`).
    pub media_home: Option<String>,
    /// The transport can rotate media (a medium with two sides configured).
    pub rotate: bool,
}

/// The keys of tgt's changer `--params`.
pub const PARAM_KEYS: [&str; 13] = [
    "element_type",
    "start_address",
    "quantity",
    "sides",
    "clear_slot",
    "address",
    "barcode",
    "volume_tag",
    "tid",
    "lun",
    "type",
    "dump",
    "media_home",
];

#[derive(Debug, Default)]
struct Pending {
    add: Option<bool>,
    element_type: u64,
    start: u64,
    quantity: u64,
    address: u64,
    sides: u64,
    clear: bool,
    barcode: String,
    volume_tag: String,
    tid: u64,
    lun: u64,
}

/// `atoi`: leading digits, 0 when there are none.
fn atoi(s: &str) -> u64 {
    let d: String = s
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    d.parse().unwrap_or(0)
}

impl Library {
    /// Apply one `--params` string, as tgt's changer does: either an `element_type`
    /// with `start_address` and `quantity` (add elements), or one with `address`
    /// (configure an element: a tape by `barcode` in a slot, `clear_slot=1`, the
    /// drive LU `tid`/`lun` of a data transfer element, `sides` of the transport),
    /// and/or `media_home`.
    pub fn configure(&mut self, params: &str) -> Result<(), ConfigError> {
        let mut p = Pending::default();
        for item in params.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            match k {
                "element_type" => p.element_type = atoi(v),
                "start_address" => {
                    p.start = atoi(v);
                    p.add = Some(true);
                }
                "quantity" => p.quantity = atoi(v),
                "sides" => p.sides = atoi(v),
                "clear_slot" => p.clear = atoi(v) != 0,
                "address" => {
                    p.address = atoi(v);
                    p.add = Some(false);
                }
                "barcode" => p.barcode = v.to_owned(),
                "volume_tag" => p.volume_tag = v.to_owned(),
                "tid" => p.tid = atoi(v),
                "lun" => p.lun = atoi(v),
                "type" | "dump" => {}
                "media_home" => self.media_home = Some(v.to_owned()),
                _ => return Err(ConfigError::UnknownParam(k.to_owned())),
            }
        }
        match p.add {
            None => Ok(()),
            Some(true) => self.add(&p),
            Some(false) => self.set(&p),
        }
    }

    fn add(&mut self, p: &Pending) -> Result<(), ConfigError> {
        let kind = ElementType::from_code(p.element_type)
            .ok_or_else(|| ConfigError::Invalid("element_type must be 1 to 4".into()))?;
        if p.start == 0 || p.quantity == 0 {
            return Err(ConfigError::Invalid(
                "start_address and quantity must be positive".into(),
            ));
        }
        let end = p.start + p.quantity;
        if end > 0x1_0000 {
            return Err(ConfigError::Invalid("addresses end past 65535".into()));
        }
        if self
            .elements
            .iter()
            .any(|e| (p.start..end).contains(&u64::from(e.addr)))
        {
            return Err(ConfigError::Invalid(format!(
                "an element already has an address in {}..{}",
                p.start,
                end - 1
            )));
        }
        for a in p.start..end {
            self.elements.push(Element {
                addr: a as u16,
                kind,
                full: false,
                barcode: String::new(),
                volume_tag: String::new(),
                source: None,
                sides: 1,
                drive: None,
                asc: if kind == ElementType::DataTransfer {
                    asc::NOT_READY_INIT_REQUIRED
                } else {
                    asc::NO_ADDITIONAL_SENSE
                },
            });
        }
        Ok(())
    }

    fn set(&mut self, p: &Pending) -> Result<(), ConfigError> {
        let kind = ElementType::from_code(p.element_type)
            .ok_or_else(|| ConfigError::Invalid("element_type must be 1 to 4".into()))?;
        if kind == ElementType::Transport {
            self.rotate = p.sides > 1;
            return Ok(());
        }
        if kind == ElementType::DataTransfer
            && self
                .elements
                .iter()
                .any(|e| e.drive == Some((p.tid as u32, p.lun)) && u64::from(e.addr) != p.address)
        {
            return Err(ConfigError::Invalid(format!(
                "tid {} lun {} is another element's drive",
                p.tid, p.lun
            )));
        }
        let e = self
            .elements
            .iter_mut()
            .find(|e| e.kind == kind && u64::from(e.addr) == p.address)
            .ok_or_else(|| ConfigError::Invalid(format!("no such element {}", p.address)))?;
        match kind {
            ElementType::DataTransfer => {
                if e.full && e.drive != Some((p.tid as u32, p.lun)) {
                    return Err(ConfigError::Invalid("the drive holds a tape".into()));
                }
                if p.tid == 0 {
                    return Err(ConfigError::Invalid("a drive needs tid and lun".into()));
                }
                e.asc = asc::NO_ADDITIONAL_SENSE;
                e.drive = Some((p.tid as u32, p.lun));
            }
            _ if p.clear => {
                e.full = false;
                e.barcode.clear();
                e.volume_tag.clear();
                e.source = None;
            }
            _ => {
                // tgt's fields: a barcode of at most 11 characters, a volume tag of 32.
                if p.barcode.len() > 11 || p.volume_tag.len() > 32 {
                    return Err(ConfigError::Invalid(
                        "barcode or volume tag too long".into(),
                    ));
                }
                if p.barcode.is_empty() || p.barcode.contains('/') {
                    return Err(ConfigError::Invalid(
                        "a tape needs a barcode (its file name)".into(),
                    ));
                }
                e.barcode = p.barcode.clone();
                e.volume_tag = p.volume_tag.clone();
                e.sides = p.sides.clamp(1, 2) as u8;
                e.full = true;
                e.source = None;
            }
        }
        Ok(())
    }

    fn index(&self, addr: u16) -> Option<usize> {
        self.elements.iter().position(|e| e.addr == addr)
    }

    /// The first address and count of each type (element address assignment page).
    pub fn assignment(&self, kind: ElementType) -> (u16, u16) {
        let of: Vec<u16> = self
            .elements
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.addr)
            .collect();
        (
            of.iter().copied().min().unwrap_or(0),
            of.len().min(usize::from(u16::MAX)) as u16,
        )
    }

    /// MOVE MEDIUM (SMC-3 6.6) from `src` to `dst`.
    pub fn move_medium(
        &mut self,
        src: u16,
        dst: u16,
        invert: bool,
        bay: &mut dyn DriveBay,
    ) -> Result<(), Sense> {
        let bad_addr = Sense::illegal_request(INVALID_ELEMENT_ADDRESS);
        let (Some(s), Some(d)) = (self.index(src), self.index(dst)) else {
            return Err(bad_addr);
        };
        if self.elements[s].kind == ElementType::Transport
            || self.elements[d].kind == ElementType::Transport
        {
            // The picker holds a tape only during a move.
            return Err(bad_addr);
        }
        if !self.elements[s].full {
            return Err(Sense::illegal_request(SOURCE_EMPTY));
        }
        if s == d {
            return Ok(());
        }
        if self.elements[d].full {
            return Err(Sense::illegal_request(DESTINATION_FULL));
        }
        if invert && (self.elements[s].sides < 2 || !self.rotate) {
            return Err(Sense::invalid_cdb_field(10, 0));
        }
        let dst_drive = match self.elements[d].kind {
            ElementType::DataTransfer => Some(
                self.elements[d]
                    .drive
                    .ok_or(Sense::new(SenseKey::NotReady, asc::NOT_READY_INIT_REQUIRED))?,
            ),
            _ => None,
        };
        if self.elements[s].kind == ElementType::DataTransfer {
            if let Some(drive) = self.elements[s].drive {
                if bay.prevented(drive) {
                    return Err(Sense::illegal_request(asc::MEDIUM_REMOVAL_PREVENTED));
                }
            }
        }
        if let Some(drive) = dst_drive {
            let Some(home) = &self.media_home else {
                return Err(Sense::new(
                    SenseKey::HardwareError,
                    MECHANICAL_POSITIONING_ERROR,
                ));
            };
            let path = format!("{home}/{}", self.elements[s].barcode);
            bay.load(drive, &path)
                .map_err(|_| Sense::new(SenseKey::HardwareError, MECHANICAL_POSITIONING_ERROR))?;
        }
        if self.elements[s].kind == ElementType::DataTransfer {
            if let Some(drive) = self.elements[s].drive {
                bay.unload(drive)
                    .map_err(|_| Sense::illegal_request(asc::MEDIUM_REMOVAL_PREVENTED))?;
            }
        }
        let moved = self.elements[s].clone();
        let de = &mut self.elements[d];
        de.full = true;
        de.barcode = moved.barcode;
        de.volume_tag = moved.volume_tag;
        de.sides = moved.sides;
        de.source = Some(src);
        let se = &mut self.elements[s];
        se.full = false;
        se.barcode.clear();
        se.volume_tag.clear();
        se.source = None;
        Ok(())
    }
}
