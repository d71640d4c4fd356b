//! Reads answered with the file's own pages, so that the socket write copies
//! straight from the page cache: one copy in the daemon instead of two (a read into
//! a buffer, then the buffer into the socket). Two ways:
//!
//! - [`FileMap`] ([`BlockStore::read_lent`]): the whole file mapped once, and a read
//!   whose pages are all in the page cache is a slice of it, lent on the event-loop
//!   thread with no system call.
//! - [`map_read`] ([`BlockStore::read_for_send`]), for large reads that are not all
//!   cached: the range is mapped read-only and shared on a worker, its pages faulted
//!   in there (`MADV_POPULATE_READ`: a page not in the cache is read from disk there,
//!   and a read error is seen there), and the mapping becomes the read's [`Bytes`],
//!   undone when the last slice of it is dropped, after the write.
//!
//! Only the kernel may read such bytes. A file truncated under a mapping makes an
//! access to the pages past its new end fail: from a system call with EFAULT (the
//! connection's write fails and it is closed), from user space with SIGBUS, which
//! would end the daemon. Hence both only for data no one in the process reads (no
//! data digest, not kept for a resend), and the caller's checks.
//!
//! [`BlockStore::read_for_send`]: scsi_sbc::BlockStore::read_for_send
//! [`BlockStore::read_lent`]: scsi_sbc::BlockStore::read_lent
#![allow(unsafe_code)]

use bytes::Bytes;
use rustix::mm::{madvise, mmap, munmap, Advice, MapFlags, ProtFlags};
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

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

/// A new read-only shared mapping of `len` bytes of `file` from `offset` (a page
/// boundary), at an address of the kernel's choosing; `None` if refused. The caller
/// owns it and unmaps it.
fn map_shared(file: &File, offset: u64, len: usize) -> Option<*mut std::ffi::c_void> {
    // SAFETY: no fixed address, so nothing of ours is replaced; read-only and shared,
    // of a file the caller holds open. The pointer goes to the caller, who owns the
    // mapping from here (`Mapping`, `FileMap`: unmapped once, in their `drop`).
    unsafe {
        mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED,
            file,
            offset,
        )
    }
    .ok()
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
    let base = map_shared(file, start, map_len)?;
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

/// Pages per residency window of a [`FileMap`]: 1 MiB of 4 KiB pages, one `mincore`
/// call of 256 pages when a window's mark is out of date.
const WINDOW_PAGES: usize = 256;

/// How long a window found all in the page cache is trusted to stay there without
/// asking again. The pages were just found resident and are being read (their
/// page-table entries' accessed bits keep them off the reclaim list's tail), so
/// the kernel evicting one within this time takes heavy memory pressure; if it
/// does, the socket write that copies it faults it back in (a disk read on the
/// loop thread, once).
const TRUST_SECS: u64 = 2;

/// [`TRUST_SECS`] periods in which no window is trusted after one that was all
/// in the page cache is found not to be any more: the kernel is dropping this
/// file's pages (memory pressure, a `drop_caches`, an UNMAP that punched a hole),
/// so for the next 30 s every read asks `mincore` for its own pages.
const DISTRUST_PERIODS: u32 = 15;

/// A read-only shared mapping of a whole file, from which cached reads are lent
/// ([`FileMap::lend`]): the socket write copies their bytes straight out of the page
/// cache, with no `preadv2` into a buffer first (measured on 4 KiB random reads at
/// QD32: the `preadv2` was 43% of the event loop's time) and, for reads above
/// 64 KiB, no worker. Unmapped when the store
/// and the last lent slice have let go of it.
///
/// A lent read must not make the event loop wait for the disk, so its pages must
/// be in the page cache. Asking the kernel (`mincore`) for every read costs a
/// system call that took back half of the gain; instead the file is watched in
/// windows of [`WINDOW_PAGES`] pages: one `mincore` of a whole window, and a window
/// found all resident is trusted for [`TRUST_SECS`]. Reads in a window that is not
/// all resident ask for their own pages, and so does every read for
/// [`DISTRUST_PERIODS`] after a window that was all resident is found not to be.
pub(crate) struct FileMap {
    base: *mut std::ffi::c_void,
    len: usize,
    /// Per window: `epoch << 1 | all_resident`, where `epoch` numbers the
    /// [`TRUST_SECS`] periods since `born` from 1 (0: never looked at). A mark of
    /// another period is out of date.
    windows: Box<[AtomicU32]>,
    /// The period up to which no window is trusted ([`DISTRUST_PERIODS`]).
    distrust_until: AtomicU32,
    born: std::time::Instant,
}

// SAFETY: as for `Mapping`: read-only, never written through, unmapped once in drop;
// the marks are atomics.
unsafe impl Send for FileMap {}
// SAFETY: see `Send`.
unsafe impl Sync for FileMap {}

impl std::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMap").field("len", &self.len).finish()
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: exactly what `mmap` returned; no lent slice outlives its `Arc`.
        if let Err(e) = unsafe { munmap(self.base, self.len) } {
            tracing::warn!("munmap of a file mapping failed: {e}");
        }
    }
}

/// `n` window marks, all 0, from zeroed memory: the allocator hands a large
/// zeroed block out as fresh pages that take memory only once touched, so the
/// marks of a 16 TiB device (64 MiB) cost what the windows in use cost.
fn zeroed_marks(n: usize) -> Box<[AtomicU32]> {
    let zeroed: Box<[u32]> = vec![0u32; n].into_boxed_slice();
    // SAFETY: `AtomicU32` has the same size, alignment and bit validity as `u32`,
    // so a boxed slice of one is a boxed slice of the other; the box is moved, not
    // copied, and freed with the same layout.
    unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [AtomicU32]) }
}

/// A slice of a [`FileMap`]: the owner of a lent read's `Bytes`.
struct Lent {
    map: Arc<FileMap>,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `offset + len <= map.len` (checked in `lend`), mapped while `map`
        // lives. Building the slice reads no byte; only the kernel reads them (see
        // the module documentation).
        unsafe { std::slice::from_raw_parts(self.map.base.cast::<u8>().add(self.offset), self.len) }
    }
}

impl FileMap {
    /// Map the whole pages of the first `len` bytes of `file`; `None` when there are
    /// none or the kernel refuses (no address space for it).
    pub(crate) fn new(file: &File, len: u64) -> Option<Arc<FileMap>> {
        let page = rustix::param::page_size() as u64;
        let len = usize::try_from(len - len % page).ok().filter(|n| *n > 0)?;
        let windows = (len / page as usize).div_ceil(WINDOW_PAGES);
        let base = map_shared(file, 0, len)?;
        Some(Arc::new(FileMap {
            base,
            len,
            windows: zeroed_marks(windows),
            distrust_until: AtomicU32::new(0),
            born: std::time::Instant::now(),
        }))
    }

    /// `len` bytes at `offset` lent from the mapping when all their pages are in the
    /// page cache; `None` when not (or the range is not all mapped).
    pub(crate) fn lend(self: &Arc<Self>, offset: u64, len: u64) -> Option<Bytes> {
        let end = offset.checked_add(len)?;
        if len == 0 || end > self.len as u64 {
            return None;
        }
        let (offset, len) = (offset as usize, len as usize);
        if !self.resident(offset, len) {
            return None;
        }
        Some(Bytes::from_owner(Lent {
            map: self.clone(),
            offset,
            len,
        }))
    }

    /// Whether the pages of `offset..offset + len` (inside the mapping) are in the
    /// page cache, by the window marks or by asking.
    fn resident(&self, offset: usize, len: usize) -> bool {
        let page = rustix::param::page_size();
        let first = offset / page;
        let last = (offset + len - 1) / page;
        let epoch = self.epoch();
        let trusting = self.distrust_until.load(Ordering::Relaxed) < epoch;
        let all = |v: &[u8]| v.iter().all(|b| b & 1 == 1);
        (first / WINDOW_PAGES..=last / WINDOW_PAGES).all(|window| {
            let start = window * WINDOW_PAGES;
            // This read's pages in the window.
            let (from, to) = (first.max(start), last.min(start + WINDOW_PAGES - 1));
            let mark = self.windows[window].load(Ordering::Relaxed);
            if mark == epoch << 1 | 1 && trusting {
                true
            } else if mark >> 1 == epoch {
                // Looked at in this period: not all resident, or not trusted now.
                self.ask(from, to + 1 - from, all)
            } else {
                let pages = WINDOW_PAGES.min(self.len / page - start);
                self.ask(start, pages, |v| {
                    let now_all = all(v);
                    if mark & 1 == 1 && !now_all {
                        // All cached when last looked at, and no longer.
                        self.distrust_until
                            .fetch_max(epoch + DISTRUST_PERIODS, Ordering::Relaxed);
                    }
                    self.windows[window].store(epoch << 1 | u32::from(now_all), Ordering::Relaxed);
                    all(&v[from - start..=to - start])
                })
            }
        })
    }

    /// The [`TRUST_SECS`] period we are in, numbered from 1.
    fn epoch(&self) -> u32 {
        u32::try_from(self.born.elapsed().as_secs() / TRUST_SECS + 1).unwrap_or(u32::MAX >> 1)
    }

    /// `mincore` of `pages` pages from page `first` (at most [`WINDOW_PAGES`]), the
    /// answer judged by `judge`; false if the call fails.
    fn ask(&self, first: usize, pages: usize, judge: impl FnOnce(&[u8]) -> bool) -> bool {
        let mut vec = [0u8; WINDOW_PAGES];
        if pages == 0 || pages > vec.len() {
            return false;
        }
        let page = rustix::param::page_size();
        // SAFETY: the range is page-aligned and inside the mapping (callers keep
        // `first + pages` within it); `vec` has room for one byte per page. mincore
        // only reports, it touches no page.
        let r = unsafe {
            libc::mincore(
                self.base.cast::<u8>().add(first * page).cast(),
                pages * page,
                vec.as_mut_ptr(),
            )
        };
        r == 0 && judge(&vec[..pages])
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

    /// A window found all cached is trusted for its period; once a window that was
    /// all cached is found not to be, no window is trusted for a while: a read of a
    /// page dropped from the cache is refused even in a window marked all cached.
    #[test]
    fn lends_cached_pages_and_stops_trusting_when_they_are_dropped() {
        use std::os::unix::fs::FileExt;
        // Next to the test binary, not in /tmp: tmpfs pages cannot be dropped.
        let dir = std::env::current_exe().unwrap();
        let mut f = tempfile::NamedTempFile::new_in(dir.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 249) as u8).collect();
        f.write_all(&data).unwrap();
        f.as_file().sync_data().unwrap();
        let drop_all = || {
            rustix::fs::fadvise(f.as_file(), 0, None, rustix::fs::Advice::DontNeed).unwrap();
        };
        let cache = |from: usize, len: usize| {
            let mut buf = vec![0u8; len];
            f.as_file().read_exact_at(&mut buf, from as u64).unwrap();
        };
        let page = |n: usize| n * 4096;
        let map = FileMap::new(f.as_file(), data.len() as u64).unwrap();
        // (Lent bytes are not looked at until the end: reading them maps their pages
        // into this process, and mapped pages are not dropped from the cache.)
        assert!(map.lend(100, 4000).is_some());
        drop_all();
        // Window 2 looked at for the first time: not cached, not lent.
        assert!(map.lend(page(600) as u64, 4096).is_none());
        // Window 0 is trusted in this period: its pages are lent although dropped
        // (the risk the trust takes: the socket write would read them back). Only
        // if this is still the first period (a stalled machine may have moved on).
        let trusted = map.lend(page(5) as u64, 4096).is_some();
        assert!(trusted || map.epoch() > 1, "trusted in its period");
        // The next period: window 0 looked at again is no longer all cached, and
        // from then on no window is trusted.
        cache(page(200), 4096);
        while map.epoch() < 2 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if trusted {
            assert_eq!(map.distrust_until.load(Ordering::Relaxed), 0);
        }
        let lent = map
            .lend(page(200) as u64, 4096)
            .expect("page 200 is cached");
        assert!(map.distrust_until.load(Ordering::Relaxed) > map.epoch());
        // Window 1 all cached and marked so, but not trusted: each read asks.
        cache(1 << 20, 1 << 20);
        assert!(map.lend(page(300) as u64, 4096).is_some());
        assert_eq!(map.windows[1].load(Ordering::Relaxed), map.epoch() << 1 | 1);
        drop_all();
        assert!(
            map.lend(page(301) as u64, 4096).is_none(),
            "asked, not trusted"
        );
        assert_eq!(&lent[..], &data[page(200)..page(201)]);
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
