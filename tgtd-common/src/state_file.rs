//! Persist through power loss for file-backed LUs: a store wrapper that keeps the
//! LU's saved state (persistent reservations with APTPL) in a file of the state
//! directory (`--state-dir`, default `/var/lib/tgtd`).
//!
//! The file is named after the backing store's path, so a LUN created again on the same
//! file (after a restart, under any tid/lun) finds its reservations. It is replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory) on the I/O
//! worker that runs [`BlockOp::SaveState`], before the PERSISTENT RESERVE OUT completes.

use bytes::Bytes;
use scsi_sbc::pr::Reservations;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Where `tgtd` keeps LU state unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tgtd";

/// A store whose LU state is kept in `path`.
#[derive(Debug)]
pub struct StateFileStore {
    inner: Arc<dyn BlockStore>,
    path: PathBuf,
    saved: Option<Bytes>,
    /// The newest save written; saves arrive from several workers, possibly out of order.
    last_seq: Mutex<u64>,
}

/// The state file of the store at `backing` (FNV-1a of the path: stable, file-name safe).
pub fn state_path(dir: &Path, backing: &str) -> PathBuf {
    let h = backing.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    dir.join(format!("lu-{h:016x}.pr"))
}

impl StateFileStore {
    /// Wrap `inner`, backed by `backing`, keeping its state under `dir`. `None` (with a
    /// warning) when the directory cannot be created: the LU then is not PTPL capable.
    pub fn wrap(inner: Arc<dyn BlockStore>, dir: &Path, backing: &str) -> Option<Self> {
        if let Err(e) = fs::create_dir_all(dir) {
            tracing::warn!("state directory {}: {e}; APTPL unsupported", dir.display());
            return None;
        }
        let path = state_path(dir, backing);
        let saved = match fs::read(&path) {
            Ok(b) => {
                // Check it now, so a damaged file is reported where it is read.
                if let Err(e) = Reservations::default().restore(&b) {
                    tracing::warn!("{}: {e}; saved reservations ignored", path.display());
                }
                Some(Bytes::from(b))
            }
            Err(_) => None,
        };
        Some(StateFileStore {
            inner,
            path,
            saved,
            last_seq: Mutex::new(0),
        })
    }

    fn save(&self, seq: u64, data: &[u8]) -> std::io::Result<()> {
        let mut last = self.last_seq.lock().unwrap_or_else(PoisonError::into_inner);
        if seq <= *last {
            return Ok(()); // a newer state is already on disk
        }
        if data.is_empty() {
            match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        } else {
            let tmp = self.path.with_extension("pr.tmp");
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
        }
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        *last = seq;
        Ok(())
    }
}

impl BlockStore for StateFileStore {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        match op {
            BlockOp::SaveState { seq, data } => {
                self.save(*seq, data).map(|_| Bytes::new()).map_err(|e| {
                    tracing::warn!("{}: {e}", self.path.display());
                    IoErrorKind::Other
                })
            }
            _ => self.inner.execute(op),
        }
    }

    /// The wrapped store answers what it can at once (cached reads); saving state
    /// always goes to a worker.
    fn execute_nowait(&self, op: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
        match op {
            BlockOp::SaveState { .. } => None,
            _ => self.inner.execute_nowait(op),
        }
    }

    fn physical_block_size(&self) -> Option<u32> {
        self.inner.physical_block_size()
    }

    // Ring operations (read, write, flush) are the wrapped store's own.
    fn ring_file(&self) -> Option<scsi_sbc::RingFile> {
        self.inner.ring_file()
    }

    fn ring_write_begin(&self) -> bool {
        self.inner.ring_write_begin()
    }

    fn ring_write_done(&self) {
        self.inner.ring_write_done()
    }

    fn ring_result(
        &self,
        op: &BlockOp,
        result: Result<Bytes, IoErrorKind>,
    ) -> Result<Bytes, IoErrorKind> {
        self.inner.ring_result(op, result)
    }

    fn backend_note(&self) -> Option<String> {
        self.inner.backend_note()
    }

    fn saves_state(&self) -> bool {
        true
    }

    fn saved_state(&self) -> Option<Bytes> {
        self.saved.clone()
    }

    fn refresh_size(&self) -> Option<u64> {
        self.inner.refresh_size()
    }

    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        self.inner.configure(key, value)
    }

    // Large reads lend the wrapped store's file pages, as without the state file.
    fn reads_for_send(&self, len: u64) -> bool {
        self.inner.reads_for_send(len)
    }

    fn read_for_send(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        self.inner.read_for_send(offset, len)
    }

    fn read_lent(&self, offset: u64, len: u64) -> Option<Result<Bytes, IoErrorKind>> {
        self.inner.read_lent(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backends::MemoryStore;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tgtd-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn open(d: &Path) -> StateFileStore {
        let inner: Arc<dyn BlockStore> = Arc::new(MemoryStore::new(4096));
        StateFileStore::wrap(inner, d, "/srv/lun.img").expect("state dir")
    }

    #[test]
    fn saves_survive_reopen_in_order() {
        let d = dir("order");
        let s = open(&d);
        assert!(s.saves_state());
        assert_eq!(s.saved_state(), None);
        let save = |seq, data: &'static [u8]| BlockOp::SaveState {
            seq,
            data: Bytes::from_static(data),
        };
        assert_eq!(s.execute(&save(2, b"two")), Ok(Bytes::new()));
        // An older save finishing late does not overwrite the newer one.
        assert_eq!(s.execute(&save(1, b"one")), Ok(Bytes::new()));
        assert_eq!(open(&d).saved_state(), Some(Bytes::from_static(b"two")));
        // Reads still reach the wrapped store.
        let r = s.execute(&BlockOp::Read { offset: 0, len: 8 });
        assert_eq!(r, Ok(Bytes::from_static(&[0; 8])));
        assert_eq!(s.read_for_send(0, 8), Ok(Bytes::from_static(&[0; 8])));
        assert!(!s.reads_for_send(1 << 20), "a memory store lends no pages");
        // Empty state forgets the file.
        assert_eq!(s.execute(&save(3, b"")), Ok(Bytes::new()));
        assert_eq!(open(&d).saved_state(), None);
        let _ = fs::remove_dir_all(&d);
    }

    /// The wrapper keeps what the store offers: reads at once, its physical block
    /// size; saving state never runs inline.
    #[test]
    fn wrapper_forwards_inline_reads() {
        let d = dir("nowait");
        let s = open(&d);
        let read = BlockOp::Read {
            offset: 0,
            len: 512,
        };
        assert_eq!(
            s.execute_nowait(&read),
            Some(Ok(Bytes::from(vec![0u8; 512])))
        );
        let save = BlockOp::SaveState {
            seq: 1,
            data: Bytes::from_static(b"x"),
        };
        assert_eq!(s.execute_nowait(&save), None);
        assert_eq!(s.physical_block_size(), None);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn named_after_the_backing_path() {
        let d = Path::new("/var/lib/tgtd");
        assert_ne!(state_path(d, "/a"), state_path(d, "/b"));
        assert!(state_path(d, "/a").starts_with(d));
    }
}
