//! Choosing and opening a backing store by tgt's names: `--bstype` and `--backing-store`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use scsi_sbc::gateway_report::GatewayReport;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};

use crate::{BackendError, FaultStore, FileStore, MemoryStore, NullStore};

/// A backing-store type, as named by `tgtadm --bstype`.
///
/// Parsing (case-insensitive):
/// - `rdwr` → [`BsType::Rdwr`].
/// - `aio` → [`BsType::Aio`]: the same file or block device, its reads, writes and
///   flushes queued on the event loop's io_uring (tgt's `aio` uses Linux AIO).
///   `sync` is *not* a type: in tgt it is a `--bsoflags` value (O_SYNC), and reading
///   it as a type would hide that the flag was meant.
/// - `memory` or `mem` → [`BsType::Memory`] (not in tgt; the backing store is a size).
/// - `null` → [`BsType::Null`].
/// - `fault` → [`BsType::Fault`] (not in tgt; see [`crate::fault`]).
///
/// [`Display`](fmt::Display) gives the canonical names `rdwr`, `memory`, `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BsType {
    /// A regular file or block device, read and written with `pread`/`pwrite`
    /// ([`FileStore`]); tgt's default.
    #[default]
    Rdwr,
    /// A regular file or block device on io_uring ([`FileStore::open_aio`]).
    Aio,
    /// Sparse RAM of a given size ([`MemoryStore`]); contents are lost on exit.
    Memory,
    /// Reads return zeros, writes are dropped ([`NullStore`]); for benchmarks.
    Null,
    /// Another store with injected failures, delays and holds ([`FaultStore`]); the
    /// inner type and the rules come from `--bsopts`.
    Fault,
    /// A Ceph RBD image, `[POOL/]IMAGE[@SNAP]` ([`crate::RbdStore`]); the cluster
    /// comes from `--bsopts "conf=PATH;id=NAME;cluster=NAME;timeout=S"`.
    Rbd,
}

impl BsType {
    /// The canonical name, as `tgtadm --bstype` takes it and `tgtadm --op show` prints it.
    pub fn name(self) -> &'static str {
        match self {
            BsType::Rdwr => "rdwr",
            BsType::Aio => "aio",
            BsType::Memory => "memory",
            BsType::Null => "null",
            BsType::Fault => "fault",
            BsType::Rbd => "rbd",
        }
    }
}

impl fmt::Display for BsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BsType {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rdwr" => Ok(BsType::Rdwr),
            "aio" => Ok(BsType::Aio),
            "memory" | "mem" => Ok(BsType::Memory),
            "null" => Ok(BsType::Null),
            "fault" => Ok(BsType::Fault),
            "rbd" => Ok(BsType::Rbd),
            _ => Err(BackendError::UnknownBsType { name: s.to_owned() }),
        }
    }
}

/// How to open a backing store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Open read-only: writes fail with [`IoErrorKind::ReadOnly`] (tgt's
    /// `--params readonly=1`). A file that cannot be opened for writing is opened
    /// read-only even without this, as tgt does; see [`FileStore::is_readonly`].
    pub readonly: bool,
    /// tgt's `--bsoflags sync`: open with `O_SYNC`, so every write is durable when
    /// it completes (and so when the initiator gets GOOD), whatever the write cache.
    pub sync: bool,
    /// tgt's `--bsoflags direct`: open with `O_DIRECT`, bypassing the page cache.
    /// I/O then goes through buffers aligned to [`DIRECT_ALIGN`]; a medium that cannot
    /// do I/O of the LU's block size this way is refused at open.
    pub direct: bool,
    /// The LU's logical block size (0: 512), which O_DIRECT I/O must be able to use.
    pub block_size: u32,
}

impl OpenOptions {
    /// Options from tgt's `--bsoflags` text (`sync`, `direct`, `sync:direct`, empty);
    /// anything else is [`BackendError::BadOflags`], as tgt refuses it.
    pub fn with_oflags(mut self, oflags: &str) -> Result<Self, BackendError> {
        for flag in oflags.split(':').filter(|f| !f.is_empty()) {
            match flag {
                "sync" => self.sync = true,
                "direct" => self.direct = true,
                _ => {
                    return Err(BackendError::BadOflags {
                        text: oflags.to_owned(),
                    })
                }
            }
        }
        Ok(self)
    }
}

/// Alignment of the buffers and offsets of O_DIRECT I/O: a page, which covers every
/// logical sector size in use (512 and 4096 bytes).
pub const DIRECT_ALIGN: usize = 4096;

/// Open a backing store.
///
/// `path` means what tgt's `--backing-store` means for the type:
/// - [`BsType::Rdwr`]: a regular file or block device. If it cannot be opened for
///   writing (EACCES, EROFS) it is opened read-only, as tgt does, and writes fail
///   with [`IoErrorKind::ReadOnly`] (DATA PROTECT). Use [`FileStore::open`] to learn
///   whether that happened.
/// - [`BsType::Memory`]: a size for [`parse_size`], e.g. `1G`; a bad size is
///   [`BackendError::BadSize`].
/// - [`BsType::Null`]: a size if `path` parses as one, else 1 TiB, tgt's fixed null
///   size (so `--backing-store None` or `/dev/null` work as in tgt).
pub fn open_store(
    bstype: BsType,
    path: &str,
    opts: &OpenOptions,
) -> Result<Arc<dyn BlockStore>, BackendError> {
    if !matches!(bstype, BsType::Rdwr | BsType::Aio | BsType::Fault) && (opts.sync || opts.direct) {
        // RAM has no page cache to bypass and nothing to make durable.
        let flags = [(opts.sync, "sync"), (opts.direct, "direct")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(":");
        return Err(BackendError::BadOflags { text: flags });
    }
    let store: Arc<dyn BlockStore> = match bstype {
        BsType::Rdwr => return Ok(Arc::new(FileStore::open(path, opts)?)),
        BsType::Aio => return Ok(Arc::new(FileStore::open_aio(path, opts)?)),
        // An `rdwr` inner store and no rules; `FaultStore::open` takes `--bsopts`.
        BsType::Fault => return Ok(Arc::new(FaultStore::open(path, "", opts)?)),
        // Default options (/etc/ceph/ceph.conf, client.admin); the daemon's opener
        // passes `--bsopts` to `RbdStore::open`.
        BsType::Rbd => return Ok(Arc::new(crate::RbdStore::open(path, "", opts.readonly)?)),
        BsType::Memory => Arc::new(MemoryStore::new(parse_size(path)?)),
        BsType::Null => Arc::new(NullStore::new(
            parse_size(path).unwrap_or(NullStore::DEFAULT_SIZE),
        )),
    };
    Ok(if opts.readonly {
        Arc::new(ReadOnlyStore(store))
    } else {
        store
    })
}

/// Parse a size: plain bytes (`1048576`) or a number with a binary suffix `K`, `M`,
/// `G`, `T` (case-insensitive, optionally followed by `B` or `iB`: `4096K`, `512M`,
/// `1G`, `1GiB`). Zero, fractions, and sizes over `u64::MAX` are
/// [`BackendError::BadSize`].
pub fn parse_size(text: &str) -> Result<u64, BackendError> {
    let bad = || BackendError::BadSize {
        text: text.to_owned(),
    };
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits_end);
    if number.is_empty() {
        return Err(bad());
    }
    let number: u64 = number.parse().map_err(|_| bad())?;
    let suffix = suffix.to_ascii_lowercase();
    let unit_name = suffix
        .strip_suffix("ib")
        .or_else(|| suffix.strip_suffix('b'))
        .unwrap_or(&suffix);
    let shift = match unit_name {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    // "B" and "iB" alone would make "512b" bytes and "512ib" nonsense; only allow
    // them after a unit letter, except a bare "B".
    if unit_name.is_empty() && suffix == "ib" {
        return Err(bad());
    }
    let size = number.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if size == 0 {
        return Err(bad());
    }
    Ok(size)
}

/// Refuses writes to a store opened with [`OpenOptions::readonly`] whose type has no
/// read-only mode of its own (memory, null).
#[derive(Debug)]
struct ReadOnlyStore(Arc<dyn BlockStore>);

impl BlockStore for ReadOnlyStore {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        match op {
            BlockOp::Write { .. }
            | BlockOp::WriteSame { .. }
            | BlockOp::Unmap { .. }
            | BlockOp::CompareAndWrite { .. }
            | BlockOp::OrWrite { .. }
            | BlockOp::Copy { .. } => Err(IoErrorKind::ReadOnly),
            // Nothing was written, so nothing needs to become durable.
            BlockOp::Flush => Ok(Bytes::new()),
            // Saved LU state (reservations) is no medium write.
            BlockOp::Read { .. }
            | BlockOp::Compare { .. }
            | BlockOp::Provisioning { .. }
            | BlockOp::SaveState { .. }
            | BlockOp::PrOut { .. }
            | BlockOp::LuEvent { .. }
            | BlockOp::Device { .. } => self.0.execute(op),
        }
    }

    /// Only reads may run at once; anything else is refused by `execute`.
    fn execute_nowait(&self, op: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
        match op {
            BlockOp::Read { .. } => self.0.execute_nowait(op),
            _ => None,
        }
    }

    fn physical_block_size(&self) -> Option<u32> {
        self.0.physical_block_size()
    }

    fn saves_state(&self) -> bool {
        self.0.saves_state()
    }

    fn saved_state(&self) -> Option<Bytes> {
        self.0.saved_state()
    }

    fn refresh_size(&self) -> Option<u64> {
        self.0.refresh_size()
    }

    fn medium_id(&self) -> Option<String> {
        self.0.medium_id()
    }

    fn shared_reservations(&self) -> Option<&scsi_sbc::pr_shared::SharedPr> {
        self.0.shared_reservations()
    }

    fn live_gateways(&self, me: &GatewayReport) -> Option<Vec<GatewayReport>> {
        self.0.live_gateways(me)
    }

    fn lock_client(&self) -> Option<String> {
        self.0.lock_client()
    }

    fn break_lock_of(&self, clients: &[String]) -> Result<Option<String>, String> {
        self.0.break_lock_of(clients)
    }

    fn size_changed(&self) -> bool {
        self.0.size_changed()
    }

    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        self.0.configure(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bstype_names_round_trip() {
        for t in [
            BsType::Rdwr,
            BsType::Aio,
            BsType::Memory,
            BsType::Null,
            BsType::Fault,
            BsType::Rbd,
        ] {
            assert_eq!(t.to_string().parse::<BsType>().unwrap(), t);
        }
        assert_eq!("aio".parse::<BsType>().unwrap(), BsType::Aio);
        assert_eq!("MEM".parse::<BsType>().unwrap(), BsType::Memory);
        assert!(matches!(
            "sync".parse::<BsType>(),
            Err(BackendError::UnknownBsType { name }) if name == "sync"
        ));
        assert_eq!(BsType::default(), BsType::Rdwr);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4096K").unwrap(), 4096 << 10);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size(" 2T ").unwrap(), 2 << 40);
        assert_eq!(parse_size("100B").unwrap(), 100);
    }

    #[test]
    fn bad_sizes_are_rejected() {
        for text in [
            "",
            "G",
            "0",
            "0M",
            "1.5G",
            "-1",
            "1X",
            "1 G",
            "12ib",
            "1GG",
            "abc",
            "99999999999T",
            "18446744073709551616",
        ] {
            match parse_size(text) {
                Err(BackendError::BadSize { text: t }) => assert_eq!(t, text),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn memory_store_takes_size_from_path() {
        let s = open_store(BsType::Memory, "8M", &OpenOptions::default()).unwrap();
        assert_eq!(s.size(), 8 << 20);
        assert!(matches!(
            open_store(BsType::Memory, "lots", &OpenOptions::default()),
            Err(BackendError::BadSize { .. })
        ));
    }

    #[test]
    fn null_store_size_defaults_to_one_tib() {
        let opts = OpenOptions::default();
        assert_eq!(
            open_store(BsType::Null, "None", &opts).unwrap().size(),
            1 << 40
        );
        assert_eq!(
            open_store(BsType::Null, "/dev/null", &opts).unwrap().size(),
            1 << 40
        );
        assert_eq!(
            open_store(BsType::Null, "2G", &opts).unwrap().size(),
            2 << 30
        );
    }

    #[test]
    fn readonly_memory_store_refuses_writes() {
        let opts = OpenOptions {
            readonly: true,
            ..OpenOptions::default()
        };
        let s = open_store(BsType::Memory, "1M", &opts).unwrap();
        let write = BlockOp::Write {
            offset: 0,
            data: Bytes::from_static(b"x"),
            fua: false,
        };
        assert_eq!(s.execute(&write), Err(IoErrorKind::ReadOnly));
        assert_eq!(s.execute(&BlockOp::Flush), Ok(Bytes::new()));
        let read = BlockOp::Read { offset: 0, len: 1 };
        assert_eq!(s.execute(&read).unwrap(), vec![0u8]);
        // At once: reads yes (RAM), writes never (not even refused inline).
        assert_eq!(s.execute_nowait(&read), Some(Ok(Bytes::from_static(&[0]))));
        assert_eq!(s.execute_nowait(&write), None);
    }
}
