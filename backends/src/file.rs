//! `rdwr`: a regular file or block device, read and written with `pread`/`pwrite`.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

use bytes::Bytes;
use rustix::fs::{FallocateFlags, SeekFrom as RawSeek};
use rustix::io::ReadWriteFlags;
use scsi_sbc::block_op::Extent;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};

use crate::aligned::AlignedBuf;
use crate::compound::{self, Primitives};
use crate::{BackendError, OpenOptions, DIRECT_ALIGN, INLINE_WRITE_MAX};

/// At most this many extents answer one allocation-map query (GET LBA STATUS returns
/// a bounded list; the initiator asks again from where it ended).
const MAX_EXTENTS: usize = 64;

/// A backing store on a regular file or a block device (tgt's `rdwr`).
///
/// Each operation is one positioned system call (`pread`/`pwrite`, repeated on short
/// transfers), so any number of workers can share one `FileStore` without a lock.
/// Reads past the end of a file return zeros, as a sparse or short image should.
#[derive(Debug)]
pub struct FileStore {
    file: File,
    path: PathBuf,
    /// Bytes; re-read by [`BlockStore::refresh_size`] after an online resize.
    size: AtomicU64,
    /// A block device (its size comes from the driver, not the inode).
    is_block: bool,
    readonly: bool,
    /// An `fdatasync` failed. The kernel may have dropped the dirty pages it could not
    /// write and reports the error once, so a later `fdatasync` could succeed without
    /// the data being on disk ("fsyncgate"): every later flush fails too, until the
    /// store is opened again.
    flush_failed: AtomicBool,
    /// Orders plain writes against COMPARE AND WRITE / ORWRITE (see `compound`).
    rmw: RwLock<()>,
    /// `preadv2(RWF_NOWAIT)` is not supported here: no inline reads.
    no_nowait: AtomicBool,
    /// Inline reads missed in a row (data not cached). A cold workload would pay a
    /// buffer and a failing syscall per read on the event loop before the worker
    /// does the real read; past [`NOWAIT_MISS_LIMIT`] misses only one read in
    /// [`NOWAIT_PROBE_EVERY`] tries, until one hits again.
    nowait_misses: AtomicU32,
    /// Inline writes still to skip after one was slow (see [`INLINE_WRITE_SLOW`]).
    inline_write_skip: AtomicU32,
    /// A block device's physical sector size (BLKPBSZGET).
    physical_block: Option<u32>,
    /// Opened with O_DIRECT: every transfer goes through an aligned buffer.
    direct: bool,
    /// Opened with O_SYNC: a completed write is durable, flushes have nothing to do
    /// beyond what the OS does anyway.
    sync: bool,
    /// `--bstype aio` and io_uring is available: plain reads, writes and flushes may
    /// go on the daemon's ring ([`BlockStore::ring_file`]).
    ring: bool,
    /// `--bstype aio` on the thread pool: why (for `--op show`).
    aio_fallback: Option<String>,
    /// Ring writes in flight (they do not take `rmw`; see `compound`).
    ring_writes: AtomicUsize,
    /// The whole file mapped, for reads lent from the page cache
    /// ([`BlockStore::read_lent`], up to [`LEND_MAX`]): made at the first such read
    /// (`Some(None)`: the kernel refused, not asked again), made again after the size
    /// changed.
    lent: RwLock<Option<Option<std::sync::Arc<crate::mapped::FileMap>>>>,
    /// `mincore` tells whether this file's pages are in the page cache: since Linux
    /// 5.0 only to a process that owns the file, may write it or is privileged;
    /// to others it reports only pages already in their own page tables, so no read
    /// would ever be lent and each would pay the question.
    residency_known: bool,
}

impl FileStore {
    /// Open `path` for reading and writing, or read-only with
    /// [`OpenOptions::readonly`].
    ///
    /// As tgt does, a file that cannot be opened for writing (EACCES, EROFS) is opened
    /// read-only instead; [`is_readonly`](Self::is_readonly) says whether that happened.
    /// The size is the file length (regular file) or the device size (block device);
    /// an empty store is refused.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self, BackendError> {
        let path = path.as_ref();
        let shown = || path.display().to_string();
        // A block device is opened O_EXCL: the kernel then refuses a second exclusive
        // owner (a mounted file system, md/LVM, another LU), so two writers cannot
        // corrupt each other. On a regular file O_EXCL without O_CREAT means nothing.
        let is_block = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
        let mut flags = 0;
        if opts.sync {
            flags |= libc::O_SYNC;
        }
        if opts.direct {
            flags |= libc::O_DIRECT;
        }
        if is_block {
            flags |= libc::O_EXCL;
        }
        let open = |write: bool| {
            File::options()
                .read(true)
                .write(write)
                .custom_flags(flags)
                .open(path)
        };

        let (file, readonly) = if opts.readonly {
            (open(false), true)
        } else {
            match open(true) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EROFS)) => {
                    (open(false), true)
                }
                other => (other, false),
            }
        };
        let block_size = opts.block_size.max(512);
        let file = file.map_err(|source| match source.raw_os_error() {
            Some(libc::EISDIR) => BackendError::NotAFileOrDevice { path: shown() },
            Some(libc::EBUSY) if is_block => BackendError::Busy { path: shown() },
            // O_DIRECT on a file system that has none (tmpfs).
            Some(libc::EINVAL) if opts.direct => BackendError::DirectUnsupported {
                path: shown(),
                block_size,
                source,
            },
            _ => BackendError::Open {
                path: shown(),
                source,
            },
        })?;

        let meta = file.metadata().map_err(|source| BackendError::Size {
            path: shown(),
            source,
        })?;
        let kind = meta.file_type();
        let residency_known = {
            use std::os::unix::fs::MetadataExt;
            let euid = rustix::process::geteuid();
            !readonly || euid.is_root() || meta.uid() == euid.as_raw()
        };
        let physical_block = if kind.is_block_device() {
            rustix::fs::ioctl_blkpbszget(&file).ok()
        } else {
            None
        };
        let size = if kind.is_file() {
            meta.len()
        } else if kind.is_block_device() {
            // A block device's metadata length is 0; seeking to the end asks the
            // driver (the same number as ioctl BLKGETSIZE64, without unsafe code).
            // Positioned I/O ignores the file offset, so leaving it at the end is fine.
            (&file)
                .seek(SeekFrom::End(0))
                .map_err(|source| BackendError::Size {
                    path: shown(),
                    source,
                })?
        } else {
            return Err(BackendError::NotAFileOrDevice { path: shown() });
        };
        if size == 0 {
            return Err(BackendError::Empty { path: shown() });
        }
        if opts.direct {
            // Some media accept O_DIRECT at open and refuse the I/O (a 4 KiB-sector
            // device under 512-byte blocks): try one block now, not at the first READ.
            let mut probe = AlignedBuf::zeroed(block_size as usize);
            if let Err(source) = file.read_at(probe.as_mut(), 0) {
                return Err(BackendError::DirectUnsupported {
                    path: shown(),
                    block_size,
                    source,
                });
            }
        }
        Ok(FileStore {
            file,
            path: path.to_owned(),
            size: AtomicU64::new(size),
            is_block: kind.is_block_device(),
            readonly,
            flush_failed: AtomicBool::new(false),
            rmw: RwLock::new(()),
            no_nowait: AtomicBool::new(false),
            nowait_misses: AtomicU32::new(0),
            inline_write_skip: AtomicU32::new(0),
            physical_block,
            direct: opts.direct,
            sync: opts.sync,
            ring: false,
            aio_fallback: None,
            ring_writes: AtomicUsize::new(0),
            lent: RwLock::new(None),
            residency_known,
        })
    }

    /// Open `path` as tgt's `aio` store: like [`FileStore::open`], and its plain
    /// reads, writes and flushes go on the event loop's io_uring (see
    /// [`crate::uring`]). Where io_uring is unavailable the store runs on the worker
    /// pool, logs why once, and [`BlockStore::backend_note`] says so.
    pub fn open_aio(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self, BackendError> {
        let mut store = FileStore::open(path, opts)?;
        match crate::uring::availability() {
            Ok(()) => store.ring = true,
            Err(why) => {
                static SAID: AtomicBool = AtomicBool::new(false);
                if !SAID.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "aio backing stores use the thread pool: io_uring unavailable: {why}"
                    );
                }
                store.aio_fallback = Some(format!("thread pool: io_uring unavailable: {why}"));
            }
        }
        Ok(store)
    }

    /// Whether writes are refused: opened with [`OpenOptions::readonly`], or the file
    /// could not be opened for writing. The target reports this as write-protected.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// The path the store was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        let len = usize::try_from(len).map_err(|_| IoErrorKind::ReadError)?;
        if offset.checked_add(len as u64).is_none() {
            return Err(IoErrorKind::ReadError);
        }
        // One allocation, read in place, frozen: the data reaches the Data-In PDUs
        // without another copy.
        if !self.direct {
            return self.read_uninit(offset, len);
        }
        // O_DIRECT needs the buffer aligned: carved from an aligned spot, zeroed so
        // that a short file reads as zeros past EOF.
        let mut buf = AlignedBuf::zeroed(len);
        let mut done = 0;
        while done < len {
            match self
                .file
                .read_at(&mut buf.as_mut()[done..], offset + done as u64)
            {
                Ok(0) => break, // end of file: the rest stays zero
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.map_error(&e, IoErrorKind::ReadError)),
            }
        }
        Ok(buf.freeze())
    }

    /// [`FileStore::read`] into a buffer that is not zero-filled first: `pread`
    /// writes into the vector's spare capacity, and only what lies past the end of
    /// the file is zeroed. Filling 128 KiB with zeros costs about as much as copying
    /// it from the page cache, so this halves the user-space work of a large read.
    fn read_uninit(&self, offset: u64, len: usize) -> Result<Bytes, IoErrorKind> {
        let mut buf: Vec<u8> = crate::recycle::take(len);
        while buf.len() < len {
            let at = offset + buf.len() as u64;
            match rustix::io::pread(&self.file, rustix::buffer::spare_capacity(&mut buf), at) {
                Ok(0) => break, // end of file: the rest reads as zeros
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(self.map_error(&e.into(), IoErrorKind::ReadError)),
            }
        }
        // The allocator may have given more capacity than asked for.
        buf.truncate(len);
        buf.resize(len, 0);
        Ok(crate::recycle::freeze(buf))
    }

    fn write_bytes(&self, offset: u64, data: &[u8]) -> Result<(), IoErrorKind> {
        if self.readonly {
            return Err(IoErrorKind::ReadOnly);
        }
        let result = if self.direct && !is_aligned(data) {
            // Data from the network is wherever the PDU put it: copy it into this
            // worker's aligned bounce buffer (kept between writes).
            BOUNCE.with(|b| {
                let mut b = b.borrow_mut();
                b.fill_from(data);
                self.file.write_all_at(b.as_ref(), offset)
            })
        } else {
            self.file.write_all_at(data, offset)
        };
        result.map_err(|e| self.map_error(&e, IoErrorKind::WriteError))
    }

    fn sync(&self) -> Result<(), IoErrorKind> {
        if self.readonly {
            // Nothing was written through this handle.
            return Ok(());
        }
        // O_SYNC made every completed write durable already (a write that could not be
        // made durable failed itself); fdatasync would only wait for nothing (but with
        // O_DIRECT alone the device cache still needs it).
        if self.sync {
            return Ok(());
        }
        if self.flush_failed.load(Ordering::Acquire) {
            return Err(IoErrorKind::WriteError);
        }
        // fdatasync: the data and the metadata needed to read it back (the size), not
        // the timestamps.
        self.file.sync_data().map_err(|e| {
            self.flush_failed.store(true, Ordering::Release);
            self.map_error(&e, IoErrorKind::WriteError)
        })
    }

    /// Whether an `fdatasync` has failed, so that every flush fails until the store
    /// is opened again.
    pub fn flush_failed(&self) -> bool {
        self.flush_failed.load(Ordering::Acquire)
    }

    /// The size of the file or device now.
    fn current_size(&self) -> io::Result<u64> {
        if self.is_block {
            (&self.file).seek(SeekFrom::End(0))
        } else {
            Ok(self.file.metadata()?.len())
        }
    }

    /// Allocation map from SEEK_DATA / SEEK_HOLE, clipped to the range.
    fn holes(&self, offset: u64, len: u64) -> Result<Vec<Extent>, IoErrorKind> {
        let end = offset.saturating_add(len).min(self.size());
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        while pos < end && out.len() < MAX_EXTENTS {
            let data = match rustix::fs::seek(&self.file, RawSeek::Data(pos)) {
                Ok(d) => d.min(end),
                // ENXIO: no data at or after pos.
                Err(e) if e == rustix::io::Errno::NXIO => end,
                // No SEEK_DATA (old file system, block device): all mapped.
                Err(_) => {
                    out.push(Extent {
                        offset: pos,
                        len: end - pos,
                        mapped: true,
                    });
                    break;
                }
            };
            let (next, mapped) = if data > pos {
                (data, false)
            } else {
                let hole = rustix::fs::seek(&self.file, RawSeek::Hole(pos)).unwrap_or(end);
                (hole.min(end).max(pos + 1), true)
            };
            match out.last_mut() {
                Some(last) if last.mapped == mapped => last.len += next - pos,
                _ => out.push(Extent {
                    offset: pos,
                    len: next - pos,
                    mapped,
                }),
            }
            pos = next;
        }
        Ok(out)
    }

    /// Reduce an OS error to what decides the sense data; `otherwise` is the medium
    /// error for the direction of the transfer.
    fn map_error(&self, e: &io::Error, otherwise: IoErrorKind) -> IoErrorKind {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => IoErrorKind::NoSpace,
            Some(libc::EROFS) => IoErrorKind::ReadOnly,
            Some(libc::EBADF) if self.readonly => IoErrorKind::ReadOnly,
            _ => otherwise,
        }
    }
}

impl BlockStore for FileStore {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Buffered reads of at least [`crate::mapped::MAPPED_READ_MIN`]: O_DIRECT reads
    /// do not go through the page cache, so there are no pages to lend.
    fn reads_for_send(&self, len: u64) -> bool {
        !self.direct && len >= crate::mapped::MAPPED_READ_MIN
    }

    /// The file's pages, mapped (`crate::mapped`); a plain read where that cannot
    /// be done (a range past the end of the file, a page that cannot be read: the
    /// read then reports it as usual).
    fn read_for_send(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        if self.reads_for_send(len) {
            let mapped = usize::try_from(len)
                .ok()
                .and_then(|n| crate::mapped::map_read(&self.file, offset, n, self.size()));
            if let Some(b) = mapped {
                return Ok(b);
            }
        }
        self.execute(&BlockOp::Read { offset, len })
    }

    /// The file's length or the device's size now (after `truncate`, `lvextend`,
    /// `losetup -c`, ...). An empty or unreadable medium keeps the old size.
    fn refresh_size(&self) -> Option<u64> {
        let now = self.current_size().ok().filter(|n| *n > 0)?;
        self.size.store(now, Ordering::Release);
        *self.lent.write().unwrap_or_else(|e| e.into_inner()) = None;
        Some(now)
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        compound::run(self, op)
    }

    fn physical_block_size(&self) -> Option<u32> {
        self.physical_block
    }

    /// From the whole file mapped (`crate::mapped::FileMap`), when the pages are in
    /// the page cache. Not for O_DIRECT stores (their reads skip the page cache, and
    /// their writes would not be seen in it), and not while reads keep missing the
    /// cache (the same back-off as [`BlockStore::execute_nowait`], which then counts
    /// the miss).
    fn read_lent(&self, offset: u64, len: u64) -> Option<Result<Bytes, IoErrorKind>> {
        if self.direct || len > LEND_MAX {
            return None;
        }
        let misses = self.nowait_misses.load(Ordering::Relaxed);
        if misses >= NOWAIT_MISS_LIMIT && !misses.is_multiple_of(NOWAIT_PROBE_EVERY) {
            return None;
        }
        if !self.residency_known {
            return None;
        }
        // Lent under the read lock (no clone of the map's `Arc` but the slice's own);
        // the first read makes the map under the write lock.
        let made = match &*self.lent.read().unwrap_or_else(|e| e.into_inner()) {
            Some(made) => Some(made.as_ref()?.lend(offset, len)?),
            None => None,
        };
        let lent = match made {
            Some(lent) => lent,
            None => {
                let mut slot = self.lent.write().unwrap_or_else(|e| e.into_inner());
                let map = slot
                    .get_or_insert_with(|| crate::mapped::FileMap::new(&self.file, self.size()));
                map.as_ref()?.lend(offset, len)?
            }
        };
        // A hit ends a back-off, as a hit of `execute_nowait` does.
        if misses != 0 {
            self.nowait_misses.store(0, Ordering::Relaxed);
        }
        Some(Ok(lent))
    }

    fn ring_file(&self) -> Option<scsi_sbc::RingFile> {
        use std::os::fd::AsRawFd;
        self.ring.then(|| scsi_sbc::RingFile {
            fd: self.file.as_raw_fd(),
            direct: self.direct,
            readonly: self.readonly,
            size: self.size.load(Ordering::Relaxed),
        })
    }

    /// Admit a ring write unless a read-modify-write holds the store: count it first,
    /// then look at the lock, so that either the RMW sees the count (and waits in
    /// `quiesce`) or the write sees the RMW (and goes to the pool, which waits).
    fn ring_write_begin(&self) -> bool {
        self.ring_writes.fetch_add(1, Ordering::SeqCst);
        if self.rmw.try_read().is_ok() {
            return true;
        }
        self.ring_writes.fetch_sub(1, Ordering::SeqCst);
        false
    }

    fn ring_write_done(&self) {
        self.ring_writes.fetch_sub(1, Ordering::SeqCst);
    }

    /// No "fsyncgate" on the ring either: a failed flush (or FUA write) is remembered,
    /// and no later flush or FUA write reports success until the store is reopened.
    fn ring_result(
        &self,
        op: &BlockOp,
        result: Result<Bytes, IoErrorKind>,
    ) -> Result<Bytes, IoErrorKind> {
        let durable = matches!(op, BlockOp::Flush | BlockOp::Write { fua: true, .. });
        if !durable || self.readonly {
            return result;
        }
        match result {
            Err(e) => {
                self.flush_failed.store(true, Ordering::Release);
                Err(e)
            }
            Ok(_) if self.flush_failed.load(Ordering::Acquire) => Err(IoErrorKind::WriteError),
            ok => ok,
        }
    }

    fn backend_note(&self) -> Option<String> {
        self.aio_fallback.clone()
    }

    /// A small read all in the page cache: `preadv2(RWF_NOWAIT)` either returns the
    /// whole range without waiting for the disk or fails with EAGAIN, and then the
    /// read goes to a worker as usual. Kernels or file systems without RWF_NOWAIT
    /// (EOPNOTSUPP) are remembered and not asked again.
    fn execute_nowait(&self, op: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
        let (offset, len) = match op {
            BlockOp::Read { offset, len } => (*offset, *len),
            BlockOp::Write {
                offset,
                data,
                fua: false,
            } => return self.write_inline(*offset, data),
            _ => return None,
        };
        // O_DIRECT reads never come from the page cache, so they would always miss.
        if self.direct {
            return None;
        }
        if len == 0 || len > crate::INLINE_MAX || self.no_nowait.load(Ordering::Relaxed) {
            return None;
        }
        let misses = self.nowait_misses.load(Ordering::Relaxed);
        if misses >= NOWAIT_MISS_LIMIT && !misses.is_multiple_of(NOWAIT_PROBE_EVERY) {
            self.nowait_misses
                .store(misses.wrapping_add(1), Ordering::Relaxed);
            return None;
        }
        let miss = || {
            self.nowait_misses
                .store(misses.wrapping_add(1), Ordering::Relaxed);
            None
        };
        let small = len as usize == crate::recycle::SMALL_LEN;
        let mut buf = if small {
            crate::recycle::small::take()
        } else {
            vec![0; len as usize]
        };
        let mut bufs = [io::IoSliceMut::new(&mut buf)];
        let read = rustix::io::preadv2(&self.file, &mut bufs, offset, ReadWriteFlags::NOWAIT);
        if small && !matches!(read, Ok(n) if n as u64 == len) {
            crate::recycle::small::give(std::mem::take(&mut buf));
        }
        match read {
            Ok(n) if n as u64 == len => {
                if misses != 0 {
                    self.nowait_misses.store(0, Ordering::Relaxed);
                }
                Some(Ok(if small {
                    crate::recycle::small::freeze(buf)
                } else {
                    Bytes::from(buf)
                }))
            }
            // Partly cached, or past the end of a short file: the worker path decides.
            Ok(_) => miss(),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL) => {
                self.no_nowait.store(true, Ordering::Relaxed);
                None
            }
            Err(_) => miss(),
        }
    }
}

impl FileStore {
    /// A small buffered write, on the caller's thread: a `pwrite` that only copies
    /// into the page cache costs a few microseconds, less than handing it to a
    /// worker and the completion back (a futex wake, two context switches and an
    /// eventfd write). ext4 and most file systems refuse `RWF_NOWAIT` on buffered
    /// writes, so what keeps the caller from blocking is the choice of writes:
    /// whole pages only (no read of a partly written page), no FUA, no O_SYNC or
    /// O_DIRECT, at most [`INLINE_WRITE_MAX`], not while a read-modify-write holds
    /// the store. A write that still took long (dirty-page throttling, a busy
    /// journal) stops inline writes for the next [`INLINE_WRITE_BACKOFF`].
    fn write_inline(&self, offset: u64, data: &Bytes) -> Option<Result<Bytes, IoErrorKind>> {
        let len = data.len() as u64;
        if self.direct
            || self.sync
            || self.readonly
            || self.ring
            || len == 0
            || len > INLINE_WRITE_MAX
            || !offset.is_multiple_of(PAGE)
            || !len.is_multiple_of(PAGE)
        {
            return None;
        }
        let skip = self.inline_write_skip.load(Ordering::Relaxed);
        if skip > 0 {
            self.inline_write_skip.store(skip - 1, Ordering::Relaxed);
            return None;
        }
        // An exclusive holder is a COMPARE AND WRITE or ORWRITE in progress: the
        // write waits for it on a worker instead.
        let _guard = self.rmw.try_read().ok()?;
        let started = std::time::Instant::now();
        let result = self.write_bytes(offset, data).map(|()| Bytes::new());
        if started.elapsed() > INLINE_WRITE_SLOW {
            self.inline_write_skip
                .store(INLINE_WRITE_BACKOFF, Ordering::Relaxed);
        }
        Some(result)
    }
}

/// Inline writes cover whole pages of the page cache.
const PAGE: u64 = 4096;

/// An inline write slower than this (a page-cache copy takes microseconds; dirty-page
/// throttling sleeps for tens of milliseconds; the thread being preempted on a busy
/// machine is in between and only costs a short backoff) ...
const INLINE_WRITE_SLOW: std::time::Duration = std::time::Duration::from_millis(2);

/// ... sends this many following writes to the workers.
const INLINE_WRITE_BACKOFF: u32 = 256;

/// Whether `data` can go to an O_DIRECT write as it is: start and length aligned.
fn is_aligned(data: &[u8]) -> bool {
    (data.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN) && data.len().is_multiple_of(DIRECT_ALIGN)
}

thread_local! {
    /// Each worker's bounce buffer for O_DIRECT writes of unaligned data.
    static BOUNCE: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::zeroed(0));
}

/// Inline-read misses in a row before [`FileStore`] mostly stops trying.
const NOWAIT_MISS_LIMIT: u32 = 8;

/// Longest read lent from the whole-file mapping.
const LEND_MAX: u64 = 16 << 20;

/// While mostly not trying, one read in this many still probes the page cache.
const NOWAIT_PROBE_EVERY: u32 = 16;

impl Primitives for FileStore {
    fn read(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        FileStore::read(self, offset, len)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), IoErrorKind> {
        self.write_bytes(offset, data)
    }

    fn flush(&self) -> Result<(), IoErrorKind> {
        self.sync()
    }

    /// fallocate(PUNCH_HOLE | KEEP_SIZE): the range reads as zeros and frees its
    /// space; where the file system or device cannot punch, zeros are written.
    fn punch(&self, offset: u64, len: u64) -> Result<(), IoErrorKind> {
        if self.readonly {
            return Err(IoErrorKind::ReadOnly);
        }
        let len = len.min(self.size().saturating_sub(offset));
        if len == 0 {
            return Ok(());
        }
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(&self.file, flags, offset, len) {
            Ok(()) => Ok(()),
            Err(_) => {
                let zeros = crate::zeros(1 << 20);
                let mut pos = 0;
                while pos < len {
                    let n = (len - pos).min(zeros.len() as u64) as usize;
                    self.write_bytes(offset + pos, &zeros[..n])?;
                    pos += n as u64;
                }
                Ok(())
            }
        }
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>, IoErrorKind> {
        self.holes(offset, len)
    }

    fn rmw_lock(&self) -> &RwLock<()> {
        &self.rmw
    }

    fn quiesce(&self) {
        while self.ring_writes.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(len: u64) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(len).unwrap();
        f
    }

    fn write(offset: u64, data: &[u8]) -> BlockOp {
        BlockOp::Write {
            offset,
            data: Bytes::copy_from_slice(data),
            fua: false,
        }
    }

    fn read(offset: u64, len: u64) -> BlockOp {
        BlockOp::Read { offset, len }
    }

    #[test]
    fn size_comes_from_a_sparse_file() {
        let f = temp_file(1 << 30);
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        assert_eq!(s.size(), 1 << 30);
        assert!(!s.is_readonly());
        assert_eq!(s.path(), f.path());
        assert_eq!(s.execute(&read(512 << 20, 4096)).unwrap(), vec![0u8; 4096]);
    }

    #[test]
    fn cached_small_reads_run_without_waiting() {
        let f = temp_file(1 << 20);
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        let a: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        s.execute(&write(4096, &a)).unwrap();
        // Just written, so in the page cache: answered at once, with the data. (On a
        // kernel or file system without RWF_NOWAIT the store says so and never
        // answers inline; the worker path is then the only one.)
        match s.execute_nowait(&read(4096, 4096)) {
            Some(r) => assert_eq!(r.unwrap(), a),
            None => assert!(
                s.no_nowait.load(Ordering::Relaxed),
                "cached read not inline"
            ),
        }
        // After a run of misses (a cold workload) the store mostly stops asking, and a
        // periodic probe that hits turns it back on.
        if !s.no_nowait.load(Ordering::Relaxed) {
            s.nowait_misses
                .store(NOWAIT_MISS_LIMIT + 1, Ordering::Relaxed);
            assert!(s.execute_nowait(&read(4096, 4096)).is_none(), "backing off");
            assert_eq!(
                s.nowait_misses.load(Ordering::Relaxed),
                NOWAIT_MISS_LIMIT + 2
            );
            s.nowait_misses.store(NOWAIT_PROBE_EVERY, Ordering::Relaxed);
            assert_eq!(s.execute_nowait(&read(4096, 4096)).unwrap().unwrap(), a);
            assert_eq!(s.nowait_misses.load(Ordering::Relaxed), 0, "a hit resets");
        }
        // Never inline: partial-page writes, large reads, empty reads.
        assert!(s.execute_nowait(&write(0, b"x")).is_none());
        assert!(s
            .execute_nowait(&read(0, crate::INLINE_MAX + 512))
            .is_none());
        assert!(s.execute_nowait(&read(0, 0)).is_none());
    }

    #[test]
    fn small_whole_page_writes_run_inline() {
        let f = temp_file(1 << 20);
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        let a: Vec<u8> = (0..8192u32).map(|i| (i * 3) as u8).collect();
        assert_eq!(
            s.execute_nowait(&write(4096, &a)).unwrap().unwrap(),
            Bytes::new()
        );
        assert_eq!(s.execute(&read(4096, 8192)).unwrap(), a);
        // Not inline: FUA, part of a page, too large, while a read-modify-write
        // holds the store, after a slow one.
        let fua = BlockOp::Write {
            offset: 0,
            data: Bytes::from(vec![1u8; 4096]),
            fua: true,
        };
        assert!(s.execute_nowait(&fua).is_none());
        assert!(s.execute_nowait(&write(512, &[1u8; 4096])).is_none());
        assert!(s.execute_nowait(&write(0, &[1u8; 4000])).is_none());
        let big = vec![1u8; (INLINE_WRITE_MAX + PAGE) as usize];
        assert!(s.execute_nowait(&write(0, &big)).is_none());
        {
            let _rmw = s.rmw.write().unwrap();
            assert!(s.execute_nowait(&write(0, &[1u8; 4096])).is_none());
        }
        s.inline_write_skip.store(2, Ordering::Relaxed);
        assert!(s.execute_nowait(&write(0, &[1u8; 4096])).is_none());
        assert!(s.execute_nowait(&write(0, &[1u8; 4096])).is_none());
        assert!(s.execute_nowait(&write(0, &[1u8; 4096])).is_some());
        // A read-only store leaves the refusal to the worker path.
        let ro = FileStore::open(
            f.path(),
            &OpenOptions {
                readonly: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert!(ro.execute_nowait(&write(0, &[1u8; 4096])).is_none());
    }

    /// Large buffered reads for a socket are the file's own pages: mapped while the
    /// bytes live (the mapping shows in /proc/self/maps), equal to what an ordinary
    /// read gives, and unmapped once dropped. Short reads and ranges past the end of
    /// the file are ordinary reads.
    #[test]
    fn large_reads_for_send_lend_the_file_pages() {
        let f = temp_file(4 << 20);
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 253) as u8).collect();
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        s.execute(&write(0, &data)).unwrap();
        assert!(s.reads_for_send(crate::mapped::MAPPED_READ_MIN));
        assert!(!s.reads_for_send(crate::mapped::MAPPED_READ_MIN - 1));
        let name = f.path().to_str().unwrap().to_owned();
        let mapped = || {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .contains(&name)
        };
        assert!(!mapped());
        let b = s.read_for_send(4096 + 7, 1 << 20).unwrap();
        assert!(mapped(), "a 1 MiB read for a socket maps the file");
        assert_eq!(&b[..], &data[4096 + 7..4096 + 7 + (1 << 20)]);
        assert_eq!(b, s.execute(&read(4096 + 7, 1 << 20)).unwrap());
        drop(b);
        assert!(!mapped(), "unmapped with the last slice");
        // Past the end of the written data but inside the file: zeros, mapped.
        let z = s.read_for_send(3 << 20, 1 << 20).unwrap();
        assert!(z.iter().all(|&x| x == 0));
        drop(z);
        // The store thinks the file is longer than it is (truncated behind its
        // back): an ordinary read, zeros past the end, no SIGBUS.
        f.as_file().set_len(1 << 20).unwrap();
        let t = s.read_for_send(1 << 20, 1 << 20).unwrap();
        assert!(!mapped() && t.iter().all(|&x| x == 0));
        // O_DIRECT stores lend nothing: backends/tests/contract.rs (a file system
        // that takes O_DIRECT is needed, and /tmp may be tmpfs).
    }

    /// Reads for a socket are lent from the whole file mapped, once their pages are
    /// in the page cache: the same bytes as a plain read, a later write
    /// seen, nothing lent from pages that are not cached (the read then goes the
    /// usual way, which caches them), the mapping made again after a resize and
    /// undone with the store and its last slice.
    #[test]
    fn cached_reads_are_lent_from_the_file_mapping() {
        // Next to the test binary, not in /tmp: pages of a tmpfs file cannot be
        // dropped from the cache.
        let dir = std::env::current_exe().unwrap();
        let f = tempfile::NamedTempFile::new_in(dir.parent().unwrap()).unwrap();
        f.as_file().set_len((4 << 20) + 100).unwrap();
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        s.execute(&write(0, &data)).unwrap();
        let name = f.path().to_str().unwrap().to_owned();
        let mapped = || {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .contains(&name)
        };
        let lent = |at: u64, len: u64| s.read_lent(at, len).map(Result::unwrap);
        let a = lent(4096, 4096).expect("cached: lent");
        assert!(mapped());
        assert_eq!(&a[..], &data[4096..8192]);
        // Across a page boundary and a window boundary (1 MiB), unaligned.
        assert_eq!(&lent(4095, 2).unwrap()[..], &data[4095..4097]);
        // (The page after 1 MiB is a hole that no one read yet: cached by the plain
        // read first.)
        let plain = s.execute(&read((1 << 20) - 512, 1024)).unwrap();
        assert_eq!(lent((1 << 20) - 512, 1024).unwrap(), plain);
        // A write after the read is what a later read lends (same pages).
        s.execute(&write(4096, &[9u8; 4096])).unwrap();
        assert_eq!(lent(4096, 4096).unwrap(), vec![9u8; 4096]);
        // Long reads too, across windows, up to LEND_MAX.
        let long = lent(8192, (1 << 20) - 8192 + 512).unwrap();
        assert_eq!(&long[..(1 << 20) - 8192], &data[8192..]);
        assert_eq!(&long[(1 << 20) - 8192..], &[0u8; 512][..]);
        drop(long);
        // Not lent: empty, longer than LEND_MAX, the part-page tail of the file.
        assert!(lent(0, 0).is_none());
        assert!(lent(0, LEND_MAX + 4096).is_none());
        assert!(lent(4 << 20, 100).is_none());
        // Pages dropped from the cache are not lent until a plain read caches them.
        let cold = 3 << 20;
        s.execute(&write(cold, &data[..8192])).unwrap();
        f.as_file().sync_data().unwrap();
        rustix::fs::fadvise(f.as_file(), cold, None, rustix::fs::Advice::DontNeed).unwrap();
        assert!(lent(cold, 4096).is_none(), "not in the page cache");
        assert_eq!(s.execute(&read(cold, 4096)).unwrap(), &data[..4096]);
        assert_eq!(lent(cold, 4096).unwrap(), &data[..4096]);
        // While reads keep missing the cache the store does not ask, but for a
        // probe now and then; a probe that hits ends the back-off.
        s.nowait_misses
            .store(NOWAIT_MISS_LIMIT + 1, Ordering::Relaxed);
        assert!(lent(4096, 4096).is_none(), "backing off");
        s.nowait_misses.store(NOWAIT_PROBE_EVERY, Ordering::Relaxed);
        assert!(lent(4096, 4096).is_some(), "a probe");
        assert_eq!(s.nowait_misses.load(Ordering::Relaxed), 0, "a hit resets");
        // Grown: the new range is lent after the size is read again.
        f.as_file().set_len(8 << 20).unwrap();
        assert_eq!(s.refresh_size(), Some(8 << 20));
        s.execute(&write(6 << 20, &data[..4096])).unwrap();
        assert_eq!(lent(6 << 20, 4096).unwrap(), &data[..4096]);
        drop(s);
        assert!(mapped(), "a lent slice keeps the mapping");
        assert_eq!(&a[..], &[9u8; 4096][..]);
        drop(a);
        assert!(!mapped(), "unmapped with the store and the last slice");
    }

    #[test]
    fn write_then_read_at_offsets() {
        let f = temp_file(1 << 20);
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        let a: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        assert_eq!(s.execute(&write(8192, &a)).unwrap(), Bytes::new());
        assert_eq!(s.execute(&read(8192, 4096)).unwrap(), a);
        // A large read fills its whole buffer from the file, not from zeros.
        let big: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
        s.execute(&write(65536, &big)).unwrap();
        assert_eq!(s.execute(&read(65536, big.len() as u64)).unwrap(), big);
        // Unaligned write and a read that straddles it.
        s.execute(&write(8192 + 1001, b"hello")).unwrap();
        let got = s.execute(&read(8192 + 1000, 7)).unwrap();
        assert_eq!(&got[..], &[a[1000], b'h', b'e', b'l', b'l', b'o', a[1006]]);
        // fua and flush succeed and the data is there.
        let fua = BlockOp::Write {
            offset: 3,
            data: Bytes::from_static(b"durable"),
            fua: true,
        };
        s.execute(&fua).unwrap();
        s.execute(&BlockOp::Flush).unwrap();
        assert_eq!(&s.execute(&read(3, 7)).unwrap()[..], b"durable");
        // Through the file itself, not only through the store.
        let mut on_disk = vec![0u8; 7];
        f.as_file().read_exact_at(&mut on_disk, 3).unwrap();
        assert_eq!(&on_disk, b"durable");
    }

    #[test]
    fn unmap_punches_holes_and_lba_status_sees_them() {
        let f = temp_file(1 << 20);
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        s.execute(&write(0, &[0xab; 256 * 1024])).unwrap();
        let unmap = BlockOp::Unmap {
            ranges: vec![(64 * 1024, 64 * 1024)],
        };
        s.execute(&unmap).unwrap();
        assert_eq!(s.execute(&read(64 * 1024, 4096)).unwrap(), vec![0u8; 4096]);
        assert_eq!(s.execute(&read(0, 2)).unwrap(), vec![0xab, 0xab]);
        let map = s
            .execute(&BlockOp::Provisioning {
                offset: 0,
                len: 1 << 20,
            })
            .unwrap();
        let ext = scsi_sbc::block_op::decode_extents(&map);
        // Where the file system supports SEEK_HOLE (tmpfs, ext4, xfs, btrfs) the
        // punched range is a hole; the size stays (KEEP_SIZE).
        assert!(ext.iter().any(|e| !e.mapped && e.offset <= 64 * 1024));
        assert_eq!(ext.first().map(|e| (e.offset, e.mapped)), Some((0, true)));
        assert_eq!(f.as_file().metadata().unwrap().len(), 1 << 20);
        let same = BlockOp::WriteSame {
            offset: 512,
            len: 1024,
            pattern: Bytes::from(vec![7u8; 512]),
            fua: true,
        };
        s.execute(&same).unwrap();
        assert_eq!(s.execute(&read(512, 1024)).unwrap(), vec![7u8; 1024]);
    }

    #[test]
    fn size_is_read_again_after_a_resize() {
        let f = temp_file(1 << 20);
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        f.as_file().set_len(3 << 20).unwrap();
        assert_eq!(s.size(), 1 << 20, "until asked");
        assert_eq!(s.refresh_size(), Some(3 << 20));
        assert_eq!(s.size(), 3 << 20);
        f.as_file().set_len(512 << 10).unwrap();
        assert_eq!(s.refresh_size(), Some(512 << 10));
        // An emptied file is no disk: the old size stays.
        f.as_file().set_len(0).unwrap();
        assert_eq!(s.refresh_size(), None);
        assert_eq!(s.size(), 512 << 10);
    }

    #[test]
    fn a_failed_flush_fails_every_later_flush() {
        let f = temp_file(1 << 20);
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        s.execute(&BlockOp::Flush).unwrap();
        // As if fdatasync had failed once (the kernel reports a writeback error once).
        s.flush_failed.store(true, Ordering::Release);
        for _ in 0..3 {
            assert_eq!(s.execute(&BlockOp::Flush), Err(IoErrorKind::WriteError));
        }
        let fua = BlockOp::Write {
            offset: 0,
            data: Bytes::from_static(b"x"),
            fua: true,
        };
        assert_eq!(s.execute(&fua), Err(IoErrorKind::WriteError));
        assert!(s.flush_failed());
        // Opened again: a fresh start.
        let again = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        assert_eq!(again.execute(&BlockOp::Flush), Ok(Bytes::new()));
    }

    #[test]
    fn reads_past_end_of_file_are_zeros() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"abc").unwrap();
        let s = FileStore::open(f.path(), &OpenOptions::default()).unwrap();
        assert_eq!(s.size(), 3);
        assert_eq!(&s.execute(&read(1, 6)).unwrap()[..], b"bc\0\0\0\0");
        assert_eq!(s.execute(&read(100, 4)).unwrap(), vec![0u8; 4]);
        assert_eq!(s.execute(&read(0, 0)).unwrap(), Bytes::new());
    }

    #[test]
    fn readonly_open_refuses_writes() {
        let f = temp_file(4096);
        std::fs::write(f.path(), [7u8; 4096]).unwrap();
        let s = FileStore::open(
            f.path(),
            &OpenOptions {
                readonly: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert!(s.is_readonly());
        assert_eq!(s.execute(&write(0, b"x")), Err(IoErrorKind::ReadOnly));
        assert_eq!(s.execute(&BlockOp::Flush), Ok(Bytes::new()));
        assert_eq!(s.execute(&read(0, 2)).unwrap(), vec![7u8, 7]);
    }

    #[test]
    fn ebadf_on_a_readonly_handle_means_readonly() {
        let f = temp_file(4096);
        let s = FileStore::open(
            f.path(),
            &OpenOptions {
                readonly: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        let e = io::Error::from_raw_os_error(libc::EBADF);
        assert_eq!(
            s.map_error(&e, IoErrorKind::WriteError),
            IoErrorKind::ReadOnly
        );
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(
            s.map_error(&e, IoErrorKind::WriteError),
            IoErrorKind::NoSpace
        );
        let e = io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(
            s.map_error(&e, IoErrorKind::ReadError),
            IoErrorKind::ReadError
        );
    }

    #[test]
    fn missing_file_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.img");
        match FileStore::open(&path, &OpenOptions::default()) {
            Err(BackendError::Open { path: p, source }) => {
                assert_eq!(p, path.display().to_string());
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn directory_and_empty_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            FileStore::open(dir.path(), &OpenOptions::default()),
            Err(BackendError::NotAFileOrDevice { .. })
        ));
        assert!(matches!(
            FileStore::open(
                dir.path(),
                &OpenOptions {
                    readonly: true,
                    ..OpenOptions::default()
                }
            ),
            Err(BackendError::NotAFileOrDevice { .. })
        ));
        let empty = temp_file(0);
        assert!(matches!(
            FileStore::open(empty.path(), &OpenOptions::default()),
            Err(BackendError::Empty { .. })
        ));
    }

    #[test]
    fn character_device_is_refused() {
        assert!(matches!(
            FileStore::open("/dev/null", &OpenOptions::default()),
            Err(BackendError::NotAFileOrDevice { .. })
        ));
    }
}
