//! `ssc`: a tape image file in tgt's format behind a virtual tape drive
//! (`--device-type tape`). The store owns the drive ([`scsi_ssc::Drive`]): the
//! position on the tape and the drive's settings belong with the medium, and each
//! SSC command ([`BlockOp::Device`]) runs whole here, walking the image's headers
//! with `pread`/`pwrite`.
//!
//! Write protection comes from the image: a file that cannot be opened for writing
//! (permissions, a read-only file system) is a write-protected cartridge, as is an
//! LU created read-only.

use crate::error::BackendError;
use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};
use scsi_ssc::{wire, Drive, MediumError, TapeMedium};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A tape image file.
#[derive(Debug)]
struct FileMedium {
    file: File,
    writable: bool,
}

impl TapeMedium for FileMedium {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), MediumError> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                MediumError::Short
            } else {
                MediumError::Read
            }
        })
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), MediumError> {
        if !self.writable {
            return Err(MediumError::Write);
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|_| MediumError::Write)
    }

    fn flush(&mut self) -> Result<(), MediumError> {
        if !self.writable {
            return Ok(());
        }
        self.file.sync_data().map_err(|_| MediumError::Write)
    }

    fn writable(&self) -> bool {
        self.writable
    }
}

#[derive(Debug)]
struct Inner {
    drive: Drive,
    medium: Option<FileMedium>,
    path: Option<String>,
    /// The image's size when it was loaded: what `--op show` reports, as tgt's
    /// `lu->size` (set when the LU opens its file).
    size: u64,
}

/// A virtual tape drive and the image in it.
#[derive(Debug)]
pub struct TapeStore {
    inner: Mutex<Inner>,
    readonly: bool,
}

fn open_image(path: &str, readonly: bool) -> Result<FileMedium, BackendError> {
    let open_err = |source| BackendError::Open {
        path: path.to_owned(),
        source,
    };
    let rw = if readonly {
        None
    } else {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => Some(f),
            // A file we may not write is a write-protected cartridge.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EACCES | libc::EROFS | libc::EPERM)
                ) =>
            {
                None
            }
            Err(e) => return Err(open_err(e)),
        }
    };
    let medium = match rw {
        Some(file) => FileMedium {
            file,
            writable: true,
        },
        None => FileMedium {
            file: File::open(path).map_err(open_err)?,
            writable: false,
        },
    };
    let meta = medium.file.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(BackendError::NotAFileOrDevice {
            path: path.to_owned(),
        });
    }
    Ok(medium)
}

impl TapeStore {
    /// A drive with the image at `path` loaded; `readonly` write-protects it.
    pub fn open(path: &str, readonly: bool) -> Result<TapeStore, BackendError> {
        let store = TapeStore {
            inner: Mutex::new(Inner {
                drive: Drive::new(readonly),
                medium: None,
                path: None,
                size: 0,
            }),
            readonly,
        };
        store.load(path)?;
        Ok(store)
    }

    /// An empty drive (a library's drive before the changer loads a tape).
    pub fn empty(readonly: bool) -> TapeStore {
        TapeStore {
            inner: Mutex::new(Inner {
                drive: Drive::new(readonly),
                medium: None,
                path: None,
                size: 0,
            }),
            readonly,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Put the image at `path` in the drive (replacing any), positioned at its start.
    pub fn load(&self, path: &str) -> Result<(), BackendError> {
        let mut medium = open_image(path, self.readonly)?;
        let mut inner = self.lock();
        inner
            .drive
            .load(&mut medium)
            .map_err(|e| BackendError::NotATape {
                path: path.to_owned(),
                why: e.to_string(),
            })?;
        inner.size = medium.file.metadata().map_or(0, |m| m.len());
        inner.medium = Some(medium);
        inner.path = Some(path.to_owned());
        Ok(())
    }

    /// Take the image out of the drive; refused while removal is prevented.
    pub fn unload(&self) -> Result<(), String> {
        let mut inner = self.lock();
        if inner.drive.prevented() {
            return Err("medium removal is prevented".to_owned());
        }
        inner.drive.eject();
        inner.medium = None;
        inner.path = None;
        inner.size = 0;
        Ok(())
    }

    /// The image in the drive, if any.
    pub fn path(&self) -> Option<String> {
        self.lock().path.clone()
    }

    /// Whether removal of the tape is prevented (PREVENT ALLOW MEDIUM REMOVAL).
    pub fn prevented(&self) -> bool {
        self.lock().drive.prevented()
    }
}

impl BlockStore for TapeStore {
    /// The image file's size when it was loaded (0 with no tape).
    fn size(&self) -> u64 {
        self.lock().size
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let BlockOp::Device { request } = op else {
            // Only the tape drive's own commands reach a tape.
            return Err(IoErrorKind::Other);
        };
        let (cdb, data) = wire::decode_request(request).ok_or(IoErrorKind::Other)?;
        let mut inner = self.lock();
        let Inner { drive, medium, .. } = &mut *inner;
        let reply = drive.run(cdb, data, medium.as_mut().map(|m| m as &mut dyn TapeMedium));
        Ok(wire::encode_reply(&reply))
    }

    fn medium(&self) -> Option<Option<String>> {
        Some(self.path())
    }

    /// `load=PATH` puts another image in the drive, `unload=1` takes it out (what a
    /// changer's MOVE MEDIUM does to its drives).
    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "load" => {
                self.load(value).map_err(|e| e.to_string())?;
                self.lock().drive.mark_changed();
                Ok(())
            }
            "unload" => self.unload(),
            // Asked by a changer before it takes the tape out.
            "removable" if self.prevented() => Err("medium removal is prevented".to_owned()),
            "removable" => Ok(()),
            _ => Err(format!("the ssc backing store has no setting '{key}'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scsi_ssc::image::{new_image, Cartridge};

    fn cmd(s: &TapeStore, cdb: &[u8], data: &[u8]) -> scsi_ssc::Reply {
        let op = BlockOp::Device {
            request: wire::encode_request(cdb, data),
        };
        wire::decode_reply(&s.execute(&op).unwrap()).unwrap()
    }

    #[test]
    fn writes_land_in_the_file_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.img");
        std::fs::write(&p, new_image("B", 1, Cartridge::Data, 0)).unwrap();
        let path = p.to_str().unwrap();
        let s = TapeStore::open(path, false).unwrap();
        assert_eq!(cmd(&s, &[0x0a, 0, 0, 0, 3, 0], b"abc").sense, None);
        assert_eq!(cmd(&s, &[0x10, 0, 0, 0, 1, 0], &[]).sense, None);
        assert_eq!(s.size(), 1200);
        drop(s);
        let s = TapeStore::open(path, false).unwrap();
        assert_eq!(cmd(&s, &[0x08, 0, 0, 0, 3, 0], &[]).data, b"abc");
        assert!(s.execute(&BlockOp::Read { offset: 0, len: 1 }).is_err());
        // Unload, then nothing is there; load it again.
        s.configure("unload", "1").unwrap();
        assert_eq!(cmd(&s, &[0, 0, 0, 0, 0, 0], &[]).sense.unwrap().asc, 0x3a);
        s.configure("load", path).unwrap();
        // A tape from outside: one UNIT ATTENTION (28h/00h), then ready.
        let ua = cmd(&s, &[0, 0, 0, 0, 0, 0], &[]).sense.unwrap();
        assert_eq!((ua.key as u8, ua.asc, ua.ascq), (6, 0x28, 0));
        assert_eq!(cmd(&s, &[0, 0, 0, 0, 0, 0], &[]).sense, None);
    }

    #[test]
    fn not_a_tape_and_readonly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        let e = TapeStore::open(p.to_str().unwrap(), false).unwrap_err();
        assert!(e.to_string().contains("not a tape image"), "{e}");
        let p = dir.path().join("t.img");
        std::fs::write(&p, new_image("B", 1, Cartridge::Data, 0)).unwrap();
        let s = TapeStore::open(p.to_str().unwrap(), true).unwrap();
        let r = cmd(&s, &[0x0a, 0, 0, 0, 1, 0], b"x");
        assert_eq!(r.sense, Some(scsi_sbc::Sense::write_protected()));
    }
}
