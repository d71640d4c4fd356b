//! Large reads answered with the file's own pages ([`BlockStore::read_for_send`]):
//! the range is mapped read-only and shared, its pages are faulted in on the worker
//! (`MADV_POPULATE_READ`: a page not in the cache is read from disk there, and a
//! read error is seen there), and the mapping becomes the read's [`Bytes`]. The
//! socket write then copies straight from the page cache, so a 1 MiB read costs one
//! copy in the daemon instead of two (`pread` into a buffer, then the buffer into the
//! socket); the mapping is undone when the last slice of it is dropped, after the
//! write.
//!
//! Only the kernel may read such bytes. A file truncated under a mapping makes an
//! access to the pages past its new end fail: from a system call with EFAULT (the
//! connection's write fails and it is closed), from user space with SIGBUS, which
//! would end the daemon. Hence `read_for_send` only for data no one in the process
//! reads (no data digest, not kept for a resend), and the caller's checks.
//!
//! [`BlockStore::read_for_send`]: scsi_sbc::BlockStore::read_for_send
#![allow(unsafe_code)]

use bytes::Bytes;
use rustix::mm::{madvise, mmap, munmap, Advice, MapFlags, ProtFlags};
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};

/// The kernel has no `MADV_POPULATE_READ` (before Linux 5.14): no mapped reads, and
/// no `mmap` and `munmap` spent finding that out again for every read.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Reads at least this long are worth a mapping: below it the `mmap`, `madvise`
/// and `munmap` calls and the page-table work cost more than the copy they save
/// (measured: a 1 MiB read saved 10-15% of the daemon's CPU; at 64 KiB a copy of
/// cache-hot data is a few microseconds).
pub(crate) const MAPPED_READ_MIN: u64 = 256 * 1024;

/// A read-only shared mapping of part of a file, unmapped on drop.
struct Mapping {
    /// Start of the mapping (page-aligned, as `mmap` returned it).
    base: *mut std::ffi::c_void,
    /// Bytes mapped from `base`.
    map_len: usize,
    /// Where the read starts in the mapping (the offset's distance from its page).
    skip: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone; the pointer is
// never written through, and it is unmapped only in `drop`, once, when no slice of
// it is left (`Bytes` keeps its owner until the last clone is gone). Sharing or
// moving it between threads is as safe as sharing an immutable byte slice.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`; `&Mapping` only hands out `&[u8]`.
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `base..base + map_len` is mapped readable for the life of `self`,
        // and `skip <= map_len`. Building the slice reads no byte; who reads them is
        // the kernel (see the module documentation).
        unsafe {
            std::slice::from_raw_parts(
                self.base.cast::<u8>().add(self.skip),
                self.map_len - self.skip,
            )
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `map_len` are exactly what `mmap` returned and mapped,
        // and no slice of the mapping outlives its owner, this value.
        if let Err(e) = unsafe { munmap(self.base, self.map_len) } {
            tracing::warn!("munmap of a mapped read failed: {e}");
        }
    }
}

/// `len` bytes of `file` at `offset` as a mapping of its pages, faulted in. `None`
/// when that cannot be done (the range is not all inside the file, the kernel has
/// no `MADV_POPULATE_READ`, a page could not be read): the caller reads the usual
/// way, which also reports a read error as one.
pub(crate) fn map_read(file: &File, offset: u64, len: usize, file_len: u64) -> Option<Bytes> {
    let end = offset.checked_add(len as u64)?;
    if len == 0 || end > file_len || UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let page = rustix::param::page_size() as u64;
    let start = offset - offset % page;
    let skip = (offset - start) as usize;
    let map_len = skip + len;
    // SAFETY: a new private-address mapping (no fixed address) of a file we hold
    // open, read-only and shared: nothing of ours is overwritten, and the pointer is
    // owned by the `Mapping` built right below (or unmapped here).
    let base = unsafe {
        mmap(
            std::ptr::null_mut(),
            map_len,
            ProtFlags::READ,
            MapFlags::SHARED,
            file,
            start,
        )
    }
    .ok()?;
    let mapping = Mapping {
        base,
        map_len,
        skip,
    };
    // SAFETY: the range is the mapping just made; populating only faults its pages
    // in (reading them from disk if needed) and fails, with no signal, where a page
    // cannot be had (EFAULT past the end of the file, EIO, ENOMEM).
    match unsafe { madvise(base, map_len, Advice::LinuxPopulateRead) } {
        Ok(()) => Some(Bytes::from_owner(mapping)),
        Err(rustix::io::Errno::INVAL) => {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            None
        }
        // `mapping` drops: unmapped.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(data: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        f.flush().unwrap();
        f
    }

    #[test]
    fn maps_the_range_at_any_offset() {
        let data: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
        let f = file_with(&data);
        let len = data.len() as u64;
        for (off, n) in [(0usize, 4096usize), (1, 4096), (4095, 2), (100, 3 * 4096)] {
            let b = map_read(f.as_file(), off as u64, n, len).expect("mapped");
            assert_eq!(&b[..], &data[off..off + n], "offset {off} length {n}");
            // Slices keep the mapping alive after the first handle is gone.
            let tail = b.slice(n / 2..);
            drop(b);
            assert_eq!(&tail[..], &data[off + n / 2..off + n]);
        }
    }

    #[test]
    fn refuses_what_is_not_all_in_the_file() {
        let f = file_with(&[1u8; 5000]);
        assert!(map_read(f.as_file(), 4000, 1001, 5000).is_none());
        assert!(map_read(f.as_file(), u64::MAX - 1, 4, 5000).is_none());
        assert!(map_read(f.as_file(), 0, 0, 5000).is_none());
        // The caller's idea of the length is bigger than the file really is (it was
        // truncated): populating fails with EFAULT, no SIGBUS.
        assert!(map_read(f.as_file(), 4096, 8192, 1 << 20).is_none());
    }
}
