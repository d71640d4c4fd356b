//! `--mode logicalunit`: new, delete, update.

use super::{MgmtError, Request, Response, StoreOpener, StoreSpec};
use crate::registry::{Lun, LunBacking, Tid};
use crate::Core;

/// `--bstype` when none is given: tgt's iscsi driver default (`default_bst`).
const DEFAULT_BSTYPE: &str = "rdwr";
/// `--blocksize` when none is given: sbc's default of a 9-bit block shift.
const DEFAULT_BLOCKSIZE: u32 = 512;

pub(super) fn apply(
    core: &Core,
    req: Request,
    opener: &dyn StoreOpener,
) -> Result<Response, MgmtError> {
    match req {
        Request::LuNew {
            tid,
            lun,
            backing_store,
            bstype,
            blocksize,
            params,
            bsoflags,
            bsopts,
            device_type,
        } => {
            let spec = NewLu {
                tid,
                lun,
                backing_store,
                bstype,
                blocksize,
                params,
                bsoflags,
                bsopts,
                device_type,
            };
            lu_new(core, opener, spec)
        }
        Request::LuDelete { tid, lun } => {
            // tgt checks LUN 0 before anything else, and reports an unknown target as
            // an unknown LUN (`tgt_device_destroy` looks both up at once).
            if lun == 0 {
                return Err(MgmtError::InvalidRequest);
            }
            let target = core.registry.target(tid).ok_or(MgmtError::NoLun)?;
            target.remove_lun(lun)?;
            Ok(Response::ok())
        }
        Request::LuUpdate { tid, lun, params } => lu_update(core, opener, tid, lun, params),
        _ => Err(MgmtError::UnsupportedOperation),
    }
}

/// The fields of [`Request::LuNew`].
struct NewLu {
    tid: Tid,
    lun: u64,
    backing_store: String,
    bstype: Option<String>,
    blocksize: Option<u32>,
    params: Option<String>,
    bsoflags: Option<String>,
    bsopts: Option<String>,
    device_type: Option<String>,
}

/// tgt's `--bsoflags`: `sync`, `direct` or both joined by `:`. Canonical order
/// `sync:direct`, as tgt prints it.
fn parse_oflags(s: &str) -> Result<String, MgmtError> {
    let (mut sync, mut direct) = (false, false);
    for f in s.split(':') {
        match f {
            "sync" => sync = true,
            "direct" => direct = true,
            _ => {
                return Err(MgmtError::BackingStore(format!(
                    "unsupported --bsoflags '{s}': expected sync, direct or sync:direct"
                )))
            }
        }
    }
    let flags: Vec<&str> = [(sync, "sync"), (direct, "direct")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n)
        .collect();
    Ok(flags.join(":"))
}

fn lu_new(core: &Core, opener: &dyn StoreOpener, s: NewLu) -> Result<Response, MgmtError> {
    let target = core.registry.target(s.tid).ok_or(MgmtError::NoTarget)?;
    // Refuse a taken number before opening anything; add_lun checks again, race-free.
    if target.lun(s.lun).is_some() {
        return Err(MgmtError::LunExists);
    }
    if matches!(s.device_type.as_deref(), Some("tape" | "changer")) {
        return tape_new(&target, opener, s);
    }
    // Disks, CD/DVD devices and tapes are emulated; tgt's osd/passthrough are not.
    let cd = match s.device_type.as_deref() {
        None | Some("disk") => false,
        Some("cd") => true,
        Some(_) => return Err(MgmtError::UnsupportedOperation),
    };
    // A CD/DVD has 2048-byte blocks (tgt ignores --blocksize there; one that says
    // otherwise is refused here rather than ignored).
    let default_block = if cd {
        scsi_mmc::BLOCK_SIZE
    } else {
        DEFAULT_BLOCKSIZE
    };
    let block_size = s.blocksize.unwrap_or(default_block);
    if cd && block_size != scsi_mmc::BLOCK_SIZE {
        return Err(MgmtError::InvalidRequest);
    }
    // tgt logs and ignores a block size that is not a power of two; we refuse it so a
    // typo does not silently give 512-byte blocks. SBC needs at least 512.
    if !block_size.is_power_of_two() || !(512..=65536).contains(&block_size) {
        return Err(MgmtError::InvalidRequest);
    }
    // Which options a store type takes is the opener's business (it refuses the
    // ones it does not know, with the reason).
    let mut bsopts = s.bsopts.unwrap_or_default();
    // A fault store wraps `rdwr` unless told: say so, so that `--op show` names the
    // inner store.
    if s.bstype.as_deref() == Some("fault")
        && !bsopts
            .split(';')
            .any(|o| o.trim_start().starts_with("inner="))
    {
        bsopts = if bsopts.is_empty() {
            "inner=rdwr".to_owned()
        } else {
            format!("inner=rdwr;{bsopts}")
        };
    }
    let oflags = match s.bsoflags.as_deref() {
        Some(f) => parse_oflags(f)?,
        None => String::new(),
    };
    let lu_params = LuParams::parse(s.params.as_deref().unwrap_or(""))?;
    // The backing store of a new LU is --backing-store; `path` changes it later, as
    // `resize` and `fault` apply to a store that is open (rules come with --bsopts).
    if lu_params.path.is_some() || lu_params.resize.is_some() || lu_params.fault.is_some() {
        return Err(MgmtError::InvalidRequest);
    }
    let bstype = s.bstype.unwrap_or_else(|| DEFAULT_BSTYPE.to_string());
    if s.backing_store.is_empty() {
        return Err(MgmtError::InvalidRequest);
    }
    // A disc is read-only whatever `readonly=` says.
    let readonly = cd || lu_params.readonly.unwrap_or(false);
    let store = opener
        .open(&StoreSpec {
            bstype: &bstype,
            path: &s.backing_store,
            readonly,
            oflags: &oflags,
            bsopts: &bsopts,
            block_size,
        })
        .map_err(MgmtError::BackingStore)?;
    let backing = LunBacking {
        bstype,
        path: Some(s.backing_store),
        oflags,
        bsopts,
    };
    let physical = store.physical_block_size();
    let medium_id = store.medium_id();
    let mut lu = if cd {
        Lun::cd(s.tid, s.lun, store, backing)
    } else {
        let mut lu = Lun::disk(s.tid, s.lun, store, block_size, backing);
        lu.config.geometry.lbppbe = auto_lbppbe(block_size, physical);
        lu
    };
    // A medium known by the same name everywhere (an RBD image) is one logical unit
    // whichever target serves it: same designators, same serial (`--params` can
    // still set them).
    if let Some(id) = medium_id {
        lu.config.identity.scsi_id = cut(&id, 36);
        lu.config.identity.scsi_sn = cut(&id, 36);
    }
    lu_params.apply_to(&mut lu);
    restore_saved_state(&lu);
    target.add_lun(lu)?;
    Ok(Response::ok())
}

/// `--device-type tape`: a tape drive over a tape image (tgt's `ssc` backing store,
/// the default and the only one a tape takes). `--backing-store NONE` (or tgt's
/// `NONE:0`) is a drive with no tape, for a changer to load.
///
/// `--device-type changer`: a medium changer (tgt's `smc` store, the only one it
/// takes); its backing store is a file tgt requires and ignores. Its elements come
/// with `--op update --params element_type=...`.
fn tape_new(
    target: &crate::registry::Target,
    opener: &dyn StoreOpener,
    s: NewLu,
) -> Result<Response, MgmtError> {
    let changer = s.device_type.as_deref() == Some("changer");
    let own = if changer { "smc" } else { "ssc" };
    let bstype = s.bstype.unwrap_or_else(|| own.to_owned());
    if bstype != own || s.bsoflags.is_some() || s.bsopts.is_some() {
        return Err(MgmtError::InvalidRequest);
    }
    let lu_params = LuParams::parse(s.params.as_deref().unwrap_or(""))?;
    if lu_params.path.is_some() || lu_params.resize.is_some() || lu_params.fault.is_some() {
        return Err(MgmtError::InvalidRequest);
    }
    if s.backing_store.is_empty() {
        return Err(MgmtError::InvalidRequest);
    }
    let readonly = lu_params.readonly.unwrap_or(false);
    let path = if !changer && (s.backing_store == "NONE" || s.backing_store.starts_with("NONE:")) {
        ""
    } else {
        s.backing_store.as_str()
    };
    let store = opener
        .open(&StoreSpec {
            bstype: &bstype,
            path,
            readonly,
            oflags: "",
            bsopts: "",
            block_size: 1,
        })
        .map_err(MgmtError::BackingStore)?;
    let backing = LunBacking {
        bstype,
        path: Some(s.backing_store),
        oflags: String::new(),
        bsopts: String::new(),
    };
    let mut lu = if changer {
        Lun::changer(s.tid, s.lun, store, backing)
    } else {
        Lun::tape(s.tid, s.lun, store, backing)
    };
    lu_params.apply_to(&mut lu);
    target.add_lun(lu)?;
    Ok(Response::ok())
}

/// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT from the medium's physical block size
/// (tgt does the same unless `lbppbe` is given): 3 for 512-byte blocks on a device
/// with 4 KiB physical sectors; 0 when unknown or not a power-of-two multiple.
pub(super) fn auto_lbppbe(block_size: u32, physical: Option<u32>) -> u8 {
    match physical {
        Some(p) if block_size > 0 && p > block_size && p % block_size == 0 => {
            let ratio = p / block_size;
            if ratio.is_power_of_two() {
                ratio.trailing_zeros().min(15) as u8
            } else {
                0
            }
        }
        _ => 0,
    }
}

/// A store that keeps LU state makes the LU persist-through-power-loss capable, and
/// the registrations and reservation it kept with APTPL (SPC-4 5.13.5) come back.
/// State that does not parse is dropped (the adapter's store logs it when it reads
/// it): the LU still serves.
fn restore_saved_state(lu: &Lun) {
    let Some(store) = &lu.store else {
        return;
    };
    if store.shared_reservations().is_some() {
        // Kept by the store for every gateway, APTPL or not (see pr_shared).
        let mut state = lu.lock_state();
        state.res.ptpl_capable = true;
        state.res.shared = true;
        drop(state);
        // Locking again picks up the state the store read when it opened.
        drop(lu.lock_state());
        return;
    }
    if !store.saves_state() {
        return;
    }
    let mut state = lu.lock_state();
    state.res.ptpl_capable = true;
    if let Some(saved) = store.saved_state() {
        // Err leaves the state untouched: no reservations, as on a first start.
        let _ = state.res.restore(&saved);
    }
}

/// `logicalunit update`: tgt applies `--params` to the LU. Beyond tgt:
///
/// - the size of the store is read again ([`BlockStore::refresh_size`]), so
///   `truncate -s +1G disk.img` (or `losetup -c` on a loop device, `lvextend`, ...)
///   followed by an update grows or shrinks the LU while initiators stay connected;
///   each I_T nexus then gets CAPACITY DATA HAS CHANGED once. `resize=1` asks for it
///   explicitly, and is refused for a store with no size on disk (memory, null).
/// - `fault=RULES` replaces the rules of a `fault` store (the store's own setting,
///   [`BlockStore::configure`]); the store's reason for refusing comes back after
///   "invalid request: ".
///
/// [`BlockStore::refresh_size`]: scsi_sbc::BlockStore::refresh_size
/// [`BlockStore::configure`]: scsi_sbc::BlockStore::configure
fn lu_update(
    core: &Core,
    opener: &dyn StoreOpener,
    tid: Tid,
    lun: u64,
    params: Option<String>,
) -> Result<Response, MgmtError> {
    let target = core.registry.target(tid).ok_or(MgmtError::NoTarget)?;
    let current = target.lun(lun).ok_or(MgmtError::NoLun)?;
    let mut params = params;
    if current.config.device_type == scsi_sbc::DeviceType::Changer {
        params = changer_update(core, &current, params.as_deref().unwrap_or(""))?;
    }
    let lu_params = LuParams::parse(params.as_deref().unwrap_or(""))?;
    let mut lu: Lun = (*current).clone();
    let new_path = lu_params.path.clone();
    let resize = lu_params.resize == Some(true);
    let fault = lu_params.fault.clone();
    if (resize || fault.is_some() || new_path.is_some()) && lu.store.is_none() {
        return Err(MgmtError::InvalidRequest);
    }
    // The store's own setting first: refused rules change nothing.
    if let (Some(rules), Some(store)) = (&fault, &lu.store) {
        store
            .configure("fault", rules)
            .map_err(MgmtError::BackingStore)?;
        lu.backing.bsopts = with_option(&lu.backing.bsopts, "rules", rules);
    }
    lu_params.apply_to(&mut lu);
    // tgt's `path=`: another backing file for the LU (a medium change, e.g. the next
    // image in a removable drive). Initiators get MEDIUM MAY HAVE CHANGED.
    if let Some(path) = new_path {
        let store = opener
            .open(&reopen_spec(&lu, &path))
            .map_err(MgmtError::BackingStore)?;
        lu.config.num_blocks = store.size() / u64::from(lu.config.block_size.max(1));
        lu.store = Some(store);
        lu.backing.path = Some(path);
        target.replace_lun(lu)?;
        return Ok(Response::ok());
    }
    if let Some(store) = &lu.store {
        let block = u64::from(lu.config.block_size.max(1));
        match store.refresh_size() {
            Some(bytes) if bytes >= block => lu.config.num_blocks = bytes / block,
            Some(bytes) if resize => {
                return Err(MgmtError::BackingStore(format!(
                    "backing store is now {bytes} bytes, less than one {block}-byte block"
                )))
            }
            None if resize => {
                return Err(MgmtError::BackingStore(format!(
                    "the {} backing store has no size on disk to read again",
                    lu.backing.bstype
                )))
            }
            _ => {}
        }
    }
    target.replace_lun(lu)?;
    Ok(Response::ok())
}

/// A changer's `--params`: tgt's element keys go to its library store (a data
/// transfer element mapped to `tid`/`lun` gets that LU's store attached first), the
/// rest (vendor_id, online, ...) are returned for the LU itself.
fn changer_update(core: &Core, lu: &Lun, params: &str) -> Result<Option<String>, MgmtError> {
    let (smc, rest): (Vec<&str>, Vec<&str>) =
        params.split(',').filter(|i| !i.is_empty()).partition(|i| {
            let key = i.split_once('=').map_or(*i, |(k, _)| k);
            scsi_smc::library::PARAM_KEYS.contains(&key)
        });
    if !smc.is_empty() {
        let store = lu.store.as_ref().ok_or(MgmtError::InvalidRequest)?;
        let value = |key: &str| {
            smc.iter()
                .rev()
                .filter_map(|i| i.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim())
        };
        if let (Some(tid), Some(dlun)) = (value("tid"), value("lun")) {
            let tid: Tid = tid.parse().map_err(|_| MgmtError::InvalidRequest)?;
            let dlun: u64 = dlun.parse().map_err(|_| MgmtError::InvalidRequest)?;
            // The drive must be a tape LU that exists now.
            let drive = core
                .registry
                .target(tid)
                .and_then(|t| t.lun(dlun))
                .filter(|d| d.config.device_type == scsi_sbc::DeviceType::Tape)
                .ok_or(MgmtError::NoLun)?;
            let drive_store = drive.store.clone().ok_or(MgmtError::InvalidRequest)?;
            store
                .attach_peer(&format!("{tid}:{dlun}"), drive_store)
                .map_err(MgmtError::BackingStore)?;
        }
        store.configure("smc", &smc.join(",")).map_err(|e| {
            if e.starts_with("unknown parameter") {
                MgmtError::UnknownParam
            } else {
                MgmtError::BackingStore(e)
            }
        })?;
    }
    let rest = (!rest.is_empty()).then(|| rest.join(","));
    // tgt's changer hands keys its LU code does not know to the library, which
    // calls them unknown.
    if let Some(r) = &rest {
        LuParams::parse(r).map_err(|_| MgmtError::UnknownParam)?;
    }
    Ok(rest)
}

/// `opts` (`key=value;key=value`) with `key` set to `value` (added when missing).
fn with_option(opts: &str, key: &str, value: &str) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut found = false;
    for item in opts.split(';').filter(|i| !i.is_empty()) {
        if item.split_once('=').map(|(k, _)| k.trim()) == Some(key) {
            found = true;
            items.push(format!("{key}={value}"));
        } else {
            items.push(item.to_owned());
        }
    }
    if !found {
        items.push(format!("{key}={value}"));
    }
    items.join(";")
}

/// How to open `lu`'s store again (on `path`): the same type, flags and options as
/// when it was created.
fn reopen_spec<'a>(lu: &'a Lun, path: &'a str) -> StoreSpec<'a> {
    StoreSpec {
        bstype: &lu.backing.bstype,
        path,
        readonly: lu.config.readonly,
        oflags: &lu.backing.oflags,
        bsopts: &lu.backing.bsopts,
        block_size: lu.config.block_size,
    }
}

/// The subset of tgt's logical unit `--params` (`lu_config` in `usr/spc.c`) that the
/// registry can hold. Any other key is refused, as tgt refuses keys it does not know.
#[derive(Debug, Default)]
pub(super) struct LuParams {
    readonly: Option<bool>,
    removable: Option<bool>,
    online: Option<bool>,
    write_cache: Option<bool>,
    // scsi-sbc LuConfig fields (added by the SCSI helper; tgt's spellings).
    thin_provisioning: Option<bool>,
    sense_format: Option<bool>,
    sanitize: Option<bool>,
    sanitize_rate: Option<u64>,
    lbppbe: Option<u8>,
    la_lba: Option<u16>,
    optimal_xfer_gran: Option<u16>,
    optimal_xfer_len: Option<u32>,
    rotation_rate: Option<u16>,
    /// A new backing file for the LU (`logicalunit update` only): a medium change.
    path: Option<String>,
    /// `resize=1` (update only): read the store's size again, refused when it has none.
    resize: Option<bool>,
    /// `fault=RULES` (update only): the rules of a `fault` store.
    fault: Option<String>,
    scsi_id: Option<String>,
    scsi_sn: Option<String>,
    vendor_id: Option<String>,
    product_id: Option<String>,
    product_rev: Option<String>,
}

impl LuParams {
    pub(super) fn parse(params: &str) -> Result<Self, MgmtError> {
        let mut p = LuParams::default();
        for item in params.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = item.split_once('=').ok_or(MgmtError::InvalidRequest)?;
            // Field widths are tgt's buffers (tgtd.h); longer values are cut as
            // tgt's match_strncpy cuts them.
            match key {
                "readonly" => p.readonly = Some(flag(value)?),
                "removable" => p.removable = Some(flag(value)?),
                "online" => p.online = Some(flag(value)?),
                // Not a tgt `--params` key (tgt-admin turns write-cache into a
                // mode page); accepted so a targets.conf setting has one spelling.
                "write_cache" => p.write_cache = Some(flag(value)?),
                "thin_provisioning" => p.thin_provisioning = Some(flag(value)?),
                "sense_format" => p.sense_format = Some(flag(value)?),
                // Not a tgt key: SANITIZE erases the LU, so the administrator opts in.
                "sanitize" => p.sanitize = Some(flag(value)?),
                // Not a tgt key either: the erase's bandwidth cap in MiB/s (0: none),
                // so that a SANITIZE leaves bandwidth to the other LUs.
                "sanitize_rate" => {
                    let mib: u64 = value
                        .trim()
                        .parse()
                        .map_err(|_| MgmtError::InvalidRequest)?;
                    p.sanitize_rate =
                        Some(mib.checked_mul(1 << 20).ok_or(MgmtError::InvalidRequest)?);
                }
                // Physical block layout and transfer hints, as tgt (READ CAPACITY 16,
                // VPD B0h/B1h). Values that do not fit their fields are refused.
                "lbppbe" => p.lbppbe = Some(number(value, 0, 15)? as u8),
                "la_lba" => p.la_lba = Some(number(value, 0, 0x3fff)? as u16),
                "optimal_xfer_gran" => {
                    p.optimal_xfer_gran = Some(number(value, 0, u64::from(u16::MAX))? as u16)
                }
                "optimal_xfer_len" => {
                    p.optimal_xfer_len = Some(number(value, 0, u64::from(u32::MAX))? as u32)
                }
                "rotation_rate" => {
                    p.rotation_rate = Some(number(value, 0, u64::from(u16::MAX))? as u16)
                }
                "path" if !value.trim().is_empty() => p.path = Some(value.trim().to_string()),
                "resize" => p.resize = Some(flag(value)?),
                // The rules themselves use `=` (`after=5`): the value is the rest.
                "fault" => p.fault = Some(value.trim().to_string()),
                // tgt's raw mode page contents (what tgt-admin sends for `write-cache
                // off`): the caching and control pages, whose values we model.
                "mode_page" => p.mode_page(value)?,
                "scsi_id" => p.scsi_id = Some(cut(value, 36)),
                "scsi_sn" => p.scsi_sn = Some(cut(value, 36)),
                "vendor_id" => p.vendor_id = Some(cut(value, 8)),
                "product_id" => p.product_id = Some(cut(value, 16)),
                "product_rev" => p.product_rev = Some(cut(value, 4)),
                _ => return Err(MgmtError::InvalidRequest),
            }
        }
        Ok(p)
    }

    pub(super) fn apply_to(self, lu: &mut Lun) {
        let cfg = &mut lu.config;
        if let Some(v) = self.readonly {
            cfg.readonly = v;
        }
        if let Some(v) = self.removable {
            cfg.removable = v;
        }
        // A disc is read-only and its medium removable, whatever the parameters say.
        if cfg.device_type == scsi_sbc::DeviceType::Cd {
            cfg.readonly = true;
            cfg.removable = true;
        }
        if let Some(v) = self.write_cache {
            cfg.write_cache = v;
        }
        if let Some(v) = self.thin_provisioning {
            cfg.thin_provisioning = v;
        }
        if let Some(v) = self.sense_format {
            cfg.descriptor_sense = v;
        }
        if let Some(v) = self.sanitize {
            cfg.sanitize = v;
        }
        if let Some(v) = self.online {
            lu.online = v;
        }
        if let Some(v) = self.sanitize_rate {
            lu.sanitize_rate = v;
        }
        let g = &mut cfg.geometry;
        if let Some(v) = self.lbppbe {
            g.lbppbe = v;
        }
        if let Some(v) = self.la_lba {
            g.la_lba = v;
        }
        if let Some(v) = self.optimal_xfer_gran {
            g.optimal_xfer_gran = v;
        }
        if let Some(v) = self.optimal_xfer_len {
            g.optimal_xfer_len = v;
        }
        if let Some(v) = self.rotation_rate {
            g.rotation_rate = Some(v);
        }
        let id = &mut cfg.identity;
        for (slot, value) in [
            (&mut id.scsi_id, self.scsi_id),
            (&mut id.scsi_sn, self.scsi_sn),
            (&mut id.vendor_id, self.vendor_id),
            (&mut id.product_id, self.product_id),
            (&mut id.product_rev, self.product_rev),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
    }
}

/// tgt reads these with `atoi`: nonzero is on. A value that is not a number is a
/// mistake we report instead of reading as 0.
fn flag(value: &str) -> Result<bool, MgmtError> {
    value
        .trim()
        .parse::<i64>()
        .map(|n| n != 0)
        .map_err(|_| MgmtError::InvalidRequest)
}

impl LuParams {
    /// `mode_page=PAGE:SUBPAGE:LENGTH:BYTE:BYTE...` (numbers as C's `strtol` base 0
    /// reads them; the bytes are the page's parameters after its 2-byte header). The
    /// caching page (08h) sets WCE and the control page (0Ah) D_SENSE; tgt stores any
    /// page, but other pages have no meaning here and are refused rather than
    /// silently ignored.
    fn mode_page(&mut self, value: &str) -> Result<(), MgmtError> {
        let nums: Vec<u64> = value
            .split(':')
            .map(|n| c_number(n).ok_or(MgmtError::InvalidRequest))
            .collect::<Result<_, _>>()?;
        let [page, subpage, len, data @ ..] = nums.as_slice() else {
            return Err(MgmtError::InvalidRequest);
        };
        if data.len() as u64 > *len || data.iter().any(|b| *b > 0xff) || *subpage != 0 {
            return Err(MgmtError::InvalidRequest);
        }
        let first = data.first().copied().unwrap_or(0);
        match page {
            0x08 => self.write_cache = Some(first & 0x04 != 0),
            0x0a => self.sense_format = Some(first & 0x04 != 0),
            _ => return Err(MgmtError::InvalidRequest),
        }
        Ok(())
    }
}

/// A number as `strtol(s, NULL, 0)` reads a whole string: `0x` hex, leading `0`
/// octal, else decimal.
fn c_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// A decimal number in `lo..=hi` (tgt reads these with `atoi`; we refuse what would
/// not fit the field rather than wrap it).
fn number(value: &str, lo: u64, hi: u64) -> Result<u64, MgmtError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or(MgmtError::InvalidRequest)
}

fn cut(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}
