//! Recycled buffers for large reads, and for the Data-Out of large writes (the
//! daemons install this pool as target-core's `BufferSource`).
//!
//! The daemons have glibc map every buffer of 1 MiB or more on its own, so that
//! memory goes back to the system when it is freed (`tgtd_common::limits::
//! tune_allocator`). For a stream of large READs that costs, per MiB read, an
//! `mmap`, 256 page faults that each zero a page, and an `munmap` with its TLB
//! shootdown: measured on a 1 MiB sequential read at QD4, 256 page faults per
//! command, and page faults, zeroing and unmapping took more CPU than the copy
//! from the page cache.
//!
//! Smaller heap buffers pay a similar toll: a 128 KiB read buffer freed at the top
//! of an arena is given back to the system (glibc's trim threshold is 128 KiB) and
//! faulted in again by the next read; 0.27 trims per 128 KiB read were measured.
//! Raising the trim threshold instead fixed the speed but kept up to that much of
//! every thread arena's top resident, which `malloc_trim` does not return (RSS after
//! the abuse run over its bound).
//!
//! Here a read of at least [`MIN_LEN`] bytes takes a buffer whose pages are already
//! mapped, if one was given back, and the `Bytes` it becomes gives the buffer back
//! when the last reference to it drops (after the socket took the data). At most
//! [`KEEP_BYTES`] are kept, and [`release`] hands them all back to the allocator:
//! the daemons' trim thread calls it after bursts of closed connections, so a
//! daemon whose clients are gone returns to its size as before.

use bytes::Bytes;
use std::sync::{Mutex, PoisonError};

/// Reads from this size on use recycled buffers: from half the allocator's trim
/// threshold, so that 64 and 128 KiB reads (the common large sizes) are kept.
pub const MIN_LEN: usize = 64 << 10;

/// The most buffer bytes kept for reuse (a QD4 stream of 4 MiB reads, or QD16 of
/// 1 MiB).
pub const KEEP_BYTES: usize = 16 << 20;

/// A buffer larger than this is never kept (it would hold most of the budget for
/// one rare size).
const MAX_KEPT_LEN: usize = 4 << 20;

struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pool {
    /// A kept buffer of exactly `len` bytes' capacity, emptied: the reader fills
    /// all of the spare capacity, and a stream of large reads has one size
    /// (`Vec::with_capacity` gives exactly what was asked for).
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        // The most recently given back first: its pages are the likeliest in cache.
        let i = self.bufs.iter().rposition(|b| b.capacity() == len)?;
        let mut buf = self.bufs.swap_remove(i);
        self.bytes -= buf.capacity();
        buf.clear();
        Some(buf)
    }

    /// Keep `buf` if the budget allows; else give it back to be freed.
    fn give(&mut self, buf: Vec<u8>) -> Option<Vec<u8>> {
        if self.bytes + buf.capacity() > KEEP_BYTES {
            return Some(buf);
        }
        self.bytes += buf.capacity();
        self.bufs.push(buf);
        None
    }

    /// Everything kept, taken out (to be freed).
    fn clear(&mut self) -> Vec<Vec<u8>> {
        self.bytes = 0;
        std::mem::take(&mut self.bufs)
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    bufs: Vec::new(),
    bytes: 0,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An empty vector with room for exactly `len` bytes: a recycled one for large
/// reads when one of that size is kept (its stale contents are past its length).
pub fn take(len: usize) -> Vec<u8> {
    if len >= MIN_LEN {
        if let Some(buf) = pool().take(len) {
            return buf;
        }
    }
    Vec::with_capacity(len)
}

/// `buf` as `Bytes`; a large buffer goes back to the pool when the last reference
/// drops.
pub fn freeze(buf: Vec<u8>) -> Bytes {
    if buf.capacity() >= MIN_LEN && buf.capacity() <= MAX_KEPT_LEN {
        Bytes::from_owner(GoesHome {
            buf,
            home: |buf| drop(pool().give(buf)),
        })
    } else {
        Bytes::from(buf)
    }
}

/// The read size the event loops serve most (a 4 KiB page, read inline from the
/// page cache): kept per thread, see [`small`].
pub const SMALL_LEN: usize = 4096;

/// Zero-filled-once 4 KiB read buffers, kept per thread.
///
/// A 4 KiB read answered on the event loop allocated and zero-filled its buffer and
/// freed it after the socket write: with glibc's `malloc_consolidate` (a 4 KiB
/// request is a large-bin request, which first merges the fast bins) that was 4–5%
/// of a loop at 4 KiB QD32. The buffer is taken and given back on the same loop
/// thread, so a thread-local list needs no lock. A kept buffer holds old data past
/// nothing: it is handed out at its full length only to be read into, and answered
/// only when the read filled all of it.
pub mod small {
    use super::SMALL_LEN;
    use bytes::Bytes;
    use std::cell::RefCell;

    /// Buffers kept per thread (128 KiB): a loop's queue of inline reads in flight.
    const KEEP: usize = 32;

    thread_local! {
        static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer of exactly [`SMALL_LEN`] initialised bytes (contents unspecified).
    pub fn take() -> Vec<u8> {
        FREE.try_with(|f| f.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| vec![0; SMALL_LEN])
    }

    /// `buf` (from [`take`], filled) as `Bytes`; back to this thread's list (the
    /// one where the last reference drops) when done.
    pub fn freeze(buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(super::GoesHome { buf, home: give })
    }

    /// Give `buf` back without using it (kept if this thread's list has room and it
    /// is a [`SMALL_LEN`] buffer, else freed).
    pub fn give(buf: Vec<u8>) {
        if buf.len() != SMALL_LEN {
            return;
        }
        // A thread whose locals are gone (exiting) frees it instead.
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEEP {
                f.push(buf);
            }
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_buffer_comes_back_to_its_thread_once_its_bytes_are_gone() {
            let mut b = take();
            assert_eq!(b.len(), SMALL_LEN);
            b[0] = 7;
            let ptr = b.as_ptr();
            let bytes = freeze(b);
            let slice = bytes.slice(0..1);
            drop(bytes);
            // Still referenced by the slice: not kept yet.
            let other = take();
            assert_ne!(other.as_ptr(), ptr);
            assert_eq!(slice[0], 7);
            drop(slice);
            let again = take();
            assert_eq!(again.as_ptr(), ptr, "reused");
        }

        #[test]
        fn at_most_keep_buffers_are_kept() {
            let bufs: Vec<Vec<u8>> = (0..KEEP + 8).map(|_| take()).collect();
            for b in bufs {
                give(b);
            }
            assert_eq!(FREE.with(|f| f.borrow().len()), KEEP);
            // A buffer of another length is never kept.
            FREE.with(|f| f.borrow_mut().clear());
            give(vec![0; 100]);
            assert_eq!(FREE.with(|f| f.borrow().len()), 0);
        }
    }
}

/// Hand every kept buffer back to the allocator.
pub fn release() {
    // Freed outside the lock.
    let bufs = pool().clear();
    drop(bufs);
}

/// The owner of a buffer lent out as `Bytes`: when the last reference drops, the
/// buffer goes to `home` (the shared pool, which frees one over its budget outside
/// its lock; or a thread's list of 4 KiB buffers, [`small`]).
struct GoesHome {
    buf: Vec<u8>,
    home: fn(Vec<u8>),
}

impl AsRef<[u8]> for GoesHome {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for GoesHome {
    fn drop(&mut self) {
        (self.home)(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_comes_back_when_its_last_reference_drops() {
        // An odd size of its own: other tests of this process read in parallel
        // and take only buffers of their exact sizes.
        let len = MIN_LEN + 4096 + 512;
        let mut big = take(len);
        big.resize(len, 7);
        let ptr = big.as_ptr();
        let bytes = freeze(big);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(&slice[..], &[7u8; 10], "a slice keeps the data alive");
        drop(slice);
        let again = take(len);
        assert_eq!(again.as_ptr(), ptr, "the same buffer is reused");
        assert!(again.is_empty() && again.capacity() == len);
        // Small buffers are plain `Bytes`.
        let small = freeze(vec![1u8; 4096]);
        assert_eq!(small.len(), 4096);
    }

    #[test]
    fn the_pool_keeps_exact_sizes_within_its_budget() {
        let mut p = Pool {
            bufs: Vec::new(),
            bytes: 0,
        };
        assert!(p.take(MIN_LEN).is_none());
        for _ in 0..KEEP_BYTES / MIN_LEN {
            assert!(p.give(Vec::with_capacity(MIN_LEN)).is_none());
        }
        assert_eq!(p.bytes, KEEP_BYTES);
        assert!(p.give(Vec::with_capacity(MIN_LEN)).is_some(), "over budget");
        assert!(p.take(2 * MIN_LEN).is_none(), "only exact sizes");
        let mut b = p.take(MIN_LEN).expect("kept");
        assert_eq!(p.bytes, KEEP_BYTES - MIN_LEN);
        b.push(1);
        assert!(p.give(b).is_none());
        assert!(
            p.take(MIN_LEN).expect("kept").is_empty(),
            "handed out empty"
        );
        assert_eq!(p.clear().len(), KEEP_BYTES / MIN_LEN - 1);
        assert_eq!(p.bytes, 0);
        assert!(p.take(MIN_LEN).is_none(), "nothing kept after clear");
    }

    #[test]
    fn too_large_buffers_are_not_kept() {
        let len = MAX_KEPT_LEN + 512;
        let mut huge = take(len);
        huge.resize(len, 0);
        let ptr = huge.as_ptr();
        let bytes = freeze(huge);
        assert_eq!(bytes.as_ptr(), ptr, "no copy");
        drop(bytes);
        assert_eq!(
            pool().bufs.iter().filter(|b| b.capacity() == len).count(),
            0
        );
    }
}
