//! `smc`: the medium changer of a virtual tape library (`--device-type changer`).
//! The store keeps the library ([`scsi_smc::Library`]: slots, drives, which tape is
//! where) and handles on the drive LUs' stores, attached when the administrator maps
//! a data transfer element to a drive (`--params element_type=4,address=N,tid=T,
//! lun=L`); MOVE MEDIUM loads and unloads their images through
//! [`BlockStore::configure`] (`load=PATH`, `unload=1`).

use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};
use scsi_smc::{DriveBay, Library};
use scsi_ssc::wire;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

type Drives = BTreeMap<(u32, u64), Arc<dyn BlockStore>>;

#[derive(Debug, Default)]
struct Inner {
    library: Library,
    drives: Drives,
}

/// A medium changer's library and its drives.
#[derive(Debug, Default)]
pub struct ChangerStore {
    inner: Mutex<Inner>,
}

struct Bay<'a>(&'a Drives);

impl DriveBay for Bay<'_> {
    fn load(&mut self, drive: (u32, u64), path: &str) -> Result<(), String> {
        let d = self.0.get(&drive).ok_or("no such drive")?;
        d.configure("load", path)
    }

    fn unload(&mut self, drive: (u32, u64)) -> Result<(), String> {
        match self.0.get(&drive) {
            Some(d) => d.configure("unload", "1"),
            None => Ok(()),
        }
    }

    fn prevented(&self, drive: (u32, u64)) -> bool {
        self.0
            .get(&drive)
            .is_some_and(|d| d.configure("removable", "").is_err())
    }
}

impl ChangerStore {
    /// An empty library.
    pub fn new() -> ChangerStore {
        ChangerStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the library as it is now.
    pub fn library(&self) -> Library {
        self.lock().library.clone()
    }
}

impl BlockStore for ChangerStore {
    fn size(&self) -> u64 {
        0
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let BlockOp::Device { request } = op else {
            return Err(IoErrorKind::Other);
        };
        let (cdb, _) = wire::decode_request(request).ok_or(IoErrorKind::Other)?;
        let mut inner = self.lock();
        let Inner { library, drives } = &mut *inner;
        let reply = scsi_smc::run(cdb, library, &mut Bay(drives));
        Ok(wire::encode_reply(&reply))
    }

    /// `smc=PARAMS`: tgt's changer `--params` (`element_type=...`, `media_home=...`).
    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "smc" => self
                .lock()
                .library
                .configure(value)
                .map_err(|e| e.to_string()),
            _ => Err(format!("the smc backing store has no setting '{key}'")),
        }
    }

    /// `TID:LUN`: the store of a drive LU a data transfer element maps to.
    fn attach_peer(&self, name: &str, peer: Arc<dyn BlockStore>) -> Result<(), String> {
        let bad = || format!("'{name}' is not TID:LUN");
        let (t, l) = name.split_once(':').ok_or_else(bad)?;
        let key = (t.parse().map_err(|_| bad())?, l.parse().map_err(|_| bad())?);
        self.lock().drives.insert(key, peer);
        Ok(())
    }
}
