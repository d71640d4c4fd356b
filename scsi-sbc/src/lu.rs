//! Logical unit configuration: what the SCSI layer needs to know about a LUN.

/// The SCSI peripheral device type a LUN presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// Direct-access block device (type 0x00), backed by a store.
    Disk,
    /// Storage array controller (type 0x0c): tgt's LUN 0, no medium.
    Controller,
    /// CD/DVD device (type 0x05, MMC), read-only over an image file. Its commands are
    /// dispatched by the `scsi-mmc` crate, which uses this crate's SPC parts.
    Cd,
    /// Sequential-access device (type 0x01, SSC): a tape drive over a tape image in
    /// tgt's format. Its commands are dispatched by the `scsi-ssc` crate.
    Tape,
    /// Medium changer (type 0x08, SMC): a tape library's robot. Its commands are
    /// dispatched by the `scsi-smc` crate.
    Changer,
}

impl DeviceType {
    /// PERIPHERAL DEVICE TYPE (SPC-4 table 141).
    pub fn peripheral_type(self) -> u8 {
        match self {
            DeviceType::Disk => 0x00,
            DeviceType::Cd => 0x05,
            DeviceType::Controller => 0x0c,
            DeviceType::Tape => 0x01,
            DeviceType::Changer => 0x08,
        }
    }

    /// The name `tgtadm --op show` prints after `Type:` (tgt's device type names).
    pub fn show_name(self) -> &'static str {
        match self {
            DeviceType::Disk => "disk",
            DeviceType::Cd => "cd/dvd",
            DeviceType::Controller => "controller",
            DeviceType::Tape => "tape",
            DeviceType::Changer => "changer",
        }
    }
}

/// Identity strings reported by INQUIRY and the VPD pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuIdentity {
    /// T10 vendor identification (8 bytes, space padded on the wire). tgt: "IET".
    pub vendor_id: String,
    /// Product identification (16 bytes, space padded). tgt: "VIRTUAL-DISK" / "Controller".
    pub product_id: String,
    /// Product revision level (4 bytes, space padded). tgt: "0001".
    pub product_rev: String,
    /// SCSI ID used in the device identification VPD page (0x83). tgt: "IET     000TTLLL"-style.
    pub scsi_id: String,
    /// Unit serial number (VPD 0x80). tgt: "beaf" + tid + lun.
    pub scsi_sn: String,
}

/// Static configuration of one logical unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuConfig {
    /// What kind of device this LUN is.
    pub device_type: DeviceType,
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
    /// Number of logical blocks (store size / block size); 0 for a controller.
    pub num_blocks: u64,
    /// INQUIRY identity.
    pub identity: LuIdentity,
    /// Writes are refused with DATA PROTECT.
    pub readonly: bool,
    /// The RMB bit in standard INQUIRY.
    pub removable: bool,
    /// Write cache enabled (WCE in the caching mode page) by default; MODE SELECT may
    /// change it. `--params write_cache=0|1`.
    pub write_cache: bool,
    /// Logical block provisioning (tgt `--params thin_provisioning=1`): UNMAP, WRITE SAME
    /// with UNMAP and GET LBA STATUS are offered, LBPME/LBPRZ set in READ CAPACITY (16).
    pub thin_provisioning: bool,
    /// Descriptor-format sense by default (D_SENSE=1; tgt `--params sense_format=1`).
    pub descriptor_sense: bool,
    /// SANITIZE is offered (`--params sanitize=1`; off by default: it erases the LU).
    pub sanitize: bool,
    /// Physical layout and transfer hints (tgt's `lbppbe`, `la_lba`,
    /// `optimal_xfer_gran`, `optimal_xfer_len`, `rotation_rate` params).
    pub geometry: Geometry,
}

/// What an LU tells initiators about its physical blocks and preferred transfers, so
/// that they align and size I/O well (tgt's LU `--params` of the same names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Geometry {
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (READ CAPACITY 16): 2^n logical
    /// blocks share one physical block (e.g. 3 for 512-byte blocks on 4 KiB sectors).
    pub lbppbe: u8,
    /// LOWEST ALIGNED LOGICAL BLOCK ADDRESS (READ CAPACITY 16, 14 bits).
    pub la_lba: u16,
    /// OPTIMAL TRANSFER LENGTH GRANULARITY in blocks (VPD B0h); 0: one block, or a
    /// physical block when `lbppbe` is set.
    pub optimal_xfer_gran: u16,
    /// OPTIMAL TRANSFER LENGTH in blocks (VPD B0h); 0: not reported.
    pub optimal_xfer_len: u32,
    /// MEDIUM ROTATION RATE (VPD B1h): 1 non-rotating (the default, as tgt), or rpm.
    pub rotation_rate: Option<u16>,
}

impl LuConfig {
    /// Whether the LU is a direct-access block device with a medium.
    pub fn is_disk(&self) -> bool {
        self.device_type == DeviceType::Disk
    }
}

/// The id of the I_T nexus of initiator port `initiator_port` (an id the transport
/// makes, e.g. from the iSCSI name and ISID) and relative target port `port`: the
/// initiator port's id continued (FNV-1a 64) over a marker byte no name contains and
/// the port. Fixed: persisted and cluster-shared reservations are keyed by it, and
/// PERSISTENT RESERVE OUT with ALL_TG_PT uses it to register the initiator port
/// through every port of the target.
pub fn nexus_at_port(initiator_port: u64, port: u16) -> u64 {
    fnv1a(
        initiator_port,
        [0xffu8].into_iter().chain(port.to_be_bytes()),
    )
}

/// An initiator port's id: FNV-1a 64 of its iSCSI name, a NUL and its ISID. The
/// transport keys every nexus by it (target-core), and PERSISTENT RESERVE OUT with
/// SPEC_I_PT computes it from a TransportID the same way, so the registration it
/// makes is found when that port logs in.
pub fn initiator_port_id(initiator: &str, isid: [u8; 6]) -> u64 {
    fnv1a(FNV1A_OFFSET, initiator.bytes().chain([0]).chain(isid))
}

/// FNV-1a 64's starting value, for a hash of nothing yet.
pub const FNV1A_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64 of `bytes`, continued from `h`: the hash nexus ids are made of (the
/// transport hashes its initiator port's name into one, [`nexus_at_port`] adds the
/// target port).
pub fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The I_T nexus a command arrived on (SAM-5 4.6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nexus<'a> {
    /// Unique while the nexus exists; unit attentions and reservations are keyed by it.
    pub id: u64,
    /// The initiator port's id: `id` without the target port. Equal to `id` when
    /// the target names no ports (no ALUA); otherwise `id` is
    /// [`nexus_at_port`]`(initiator_port, local port)`.
    pub initiator_port: u64,
    /// The initiator's iSCSI name (TransportID in PERSISTENT RESERVE IN READ FULL
    /// STATUS).
    pub initiator: &'a str,
}

/// Where a command runs: facts about the nexus and target that some commands report.
#[derive(Debug, Clone, Copy)]
pub struct LuContext<'a> {
    /// The LUN number the command was addressed to.
    pub lun: u64,
    /// Every LUN of the target, ascending (REPORT LUNS).
    pub luns: &'a [u64],
    /// The target's iSCSI name (target port designator in VPD 0x83).
    pub target_name: &'a str,
    /// Target portal group tag (relative target port identifier in VPD 0x83).
    pub tpgt: u16,
    /// Who sent the command.
    pub nexus: Nexus<'a>,
    /// Other logical units of the target, by LUN, that EXTENDED COPY may name as
    /// copy source or destination. The LU the command addresses need not be listed;
    /// a target may leave this empty for every other command.
    pub peers: &'a [(u64, &'a LuConfig)],
    /// The target's ALUA port groups (several gateways over one LU); `None`: no ALUA
    /// (TPGS 0, relative port 1 in target port group 0).
    pub alua: Option<&'a crate::alua::PortGroups>,
}
