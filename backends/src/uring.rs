//! `--bstype aio`: plain reads, writes and flushes of a file store queued on an
//! io_uring owned by the event-loop thread, instead of handed to a worker.
//!
//! One [`Ring`] per event loop (not per store): a loop serves many LUs, and one ring
//! with one eventfd is one more readiness source for the loop however many LUs there
//! are. The loop queues operations as its connections produce them
//! ([`Ring::try_queue`], no system call), submits everything queued once per loop turn
//! ([`Ring::submit`], one `io_uring_enter`), and when the ring's eventfd turns readable
//! reaps the completions ([`Ring::reap`]), handing each result to the operation's
//! [`Completion`] exactly as a worker would. No thread sits on the path.
//!
//! What does not fit a single ring operation (WRITE SAME, UNMAP, COMPARE AND WRITE,
//! ...) is declined and goes to the worker pool as before. COMPARE AND WRITE must be
//! atomic with respect to ring writes too: [`BlockStore::ring_write_begin`] lets the
//! store turn a ring write away while a read-modify-write holds the store, and the
//! read-modify-write waits for ring writes in flight to complete first.
//!
//! Where io_uring cannot be had (an old kernel, seccomp, `kernel.io_uring_disabled`,
//! or `TGTD_NO_IO_URING=1` in the environment, which tests use to force it),
//! [`availability`] says why and `aio` stores run on the worker pool.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use io_uring::{opcode, squeue, types, IoUring};
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind, RingFile};

use crate::aligned::AlignedBuf;
use crate::{Completion, DIRECT_ALIGN};

/// Submission queue entries per ring (the completion queue is twice as large).
const ENTRIES: u32 = 256;

/// Operations in flight on one ring at most; past this, work goes to the pool (the
/// completion queue must never overflow).
const MAX_IN_FLIGHT: usize = 2 * ENTRIES as usize;

/// `RWF_DSYNC` for a write with FUA: durable when it completes.
const RWF_DSYNC: i32 = 0x2;

/// Whether this process can use io_uring, and if not, why (probed once).
pub fn availability() -> &'static Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        if std::env::var_os("TGTD_NO_IO_URING").is_some_and(|v| v != "0") {
            return Err("disabled by TGTD_NO_IO_URING".into());
        }
        IoUring::new(4).map(drop).map_err(|e| e.to_string())
    })
}

/// One operation on the ring.
struct InFlight {
    /// Keeps the store, and so its file descriptor, open until the kernel is done.
    store: Arc<dyn BlockStore>,
    /// The operation as asked (for [`BlockStore::ring_result`]).
    op: BlockOp,
    file: RingFile,
    kind: Kind,
    done: Completion,
}

enum Kind {
    Read {
        buf: AlignedBuf,
        offset: u64,
        filled: usize,
    },
    Write {
        /// The bytes, aligned when the file is O_DIRECT; kept until completion.
        data: Data,
        offset: u64,
        written: usize,
        fua: bool,
    },
    Flush,
}

enum Data {
    Shared(Bytes),
    Copied(AlignedBuf),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Shared(b) => b,
            Data::Copied(a) => a.as_ref(),
        }
    }
}

/// An io_uring and the operations on it. Owned by one thread (it is not `Sync`).
pub struct Ring {
    ring: IoUring,
    eventfd: OwnedFd,
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
    in_flight: usize,
    queued: usize,
    /// Completions taken from the queue in one pass, kept for the next reap (no
    /// allocation per wake-up).
    ready: Vec<(u64, i32)>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("in_flight", &self.in_flight)
            .field("queued", &self.queued)
            .finish()
    }
}

impl Ring {
    /// A ring whose completions make [`Ring::eventfd`] readable.
    pub fn new() -> io::Result<Ring> {
        let ring = IoUring::new(ENTRIES)?;
        let eventfd = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        Ok(Ring {
            ring,
            eventfd,
            slots: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
            queued: 0,
            ready: Vec::new(),
        })
    }

    /// The descriptor to watch for readability: completions are waiting.
    pub fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Operations queued or in the kernel.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queue `op` on `store` if it is a ring operation of a ring store; otherwise (or
    /// when the ring is full) give `done` back for the worker pool.
    pub fn try_queue(
        &mut self,
        store: &Arc<dyn BlockStore>,
        op: &BlockOp,
        done: Completion,
    ) -> Result<(), Completion> {
        let Some(file) = store.ring_file() else {
            return Err(done);
        };
        if self.in_flight >= MAX_IN_FLIGHT {
            return Err(done);
        }
        let kind = match op {
            BlockOp::Read { offset, len } => {
                let Ok(len) = usize::try_from(*len) else {
                    return Err(done);
                };
                Kind::Read {
                    buf: if file.direct {
                        AlignedBuf::zeroed(len)
                    } else {
                        AlignedBuf::plain(len)
                    },
                    offset: *offset,
                    filled: 0,
                }
            }
            BlockOp::Write { offset, data, fua } => {
                if file.readonly {
                    return Err(done); // execute answers ReadOnly
                }
                if !store.ring_write_begin() {
                    return Err(done);
                }
                let aligned = (data.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
                    && data.len().is_multiple_of(DIRECT_ALIGN);
                let data = if file.direct && !aligned {
                    let mut copy = AlignedBuf::zeroed(data.len());
                    copy.as_mut().copy_from_slice(data);
                    Data::Copied(copy)
                } else {
                    Data::Shared(data.clone())
                };
                Kind::Write {
                    data,
                    offset: *offset,
                    written: 0,
                    fua: *fua,
                }
            }
            BlockOp::Flush => Kind::Flush,
            _ => return Err(done),
        };
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[slot] = Some(InFlight {
            store: store.clone(),
            op: op.clone(),
            file,
            kind,
            done,
        });
        self.in_flight += 1;
        if self.push(slot).is_err() {
            // No room even after submitting: undo and let the pool have it.
            let f = self.slots[slot].take().expect("just stored");
            self.free.push(slot);
            self.in_flight -= 1;
            if matches!(f.kind, Kind::Write { .. }) {
                f.store.ring_write_done();
            }
            return Err(f.done);
        }
        Ok(())
    }

    /// Put the next (or first) piece of slot `slot` on the submission queue.
    fn push(&mut self, slot: usize) -> Result<(), ()> {
        let f = self.slots[slot].as_mut().expect("live slot");
        let fd = types::Fd(f.file.fd);
        let entry: squeue::Entry = match &mut f.kind {
            Kind::Read {
                buf,
                offset,
                filled,
            } => {
                let rest = &mut buf.as_mut()[*filled..];
                opcode::Read::new(fd, rest.as_mut_ptr(), rest.len() as u32)
                    .offset(*offset + *filled as u64)
                    .build()
            }
            Kind::Write {
                data,
                offset,
                written,
                fua,
            } => {
                let rest = &data.bytes()[*written..];
                opcode::Write::new(fd, rest.as_ptr(), rest.len() as u32)
                    .offset(*offset + *written as u64)
                    .rw_flags(if *fua { RWF_DSYNC } else { 0 })
                    .build()
            }
            Kind::Flush => opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
        };
        let entry = entry.user_data(slot as u64);
        for attempt in 0..2 {
            // SAFETY: the entry points into a buffer owned by `self.slots[slot]`, a
            // heap allocation that does not move and is not freed until this slot's
            // completion has been reaped (`reap`, or `Drop`, which waits for every
            // operation in flight). The descriptor is kept open by the slot's
            // `store` for as long.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.queued += 1;
                return Ok(());
            }
            if attempt == 0 {
                self.submit();
            }
        }
        Err(())
    }

    /// Hand everything queued to the kernel: one system call per loop turn.
    pub fn submit(&mut self) {
        if self.queued == 0 {
            return;
        }
        match self.ring.submit() {
            Ok(_) => self.queued = 0,
            Err(e) => tracing::warn!("io_uring submit failed: {e}"),
        }
    }

    /// Take every completion that is ready and finish its operation (or queue its
    /// next piece). Returns how many operations finished.
    pub fn reap(&mut self) -> usize {
        // Clear the eventfd's count first so a completion posted while we reap makes
        // it readable again.
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&self.eventfd, &mut count);
        let mut finished = 0;
        let mut ready = std::mem::take(&mut self.ready);
        loop {
            ready.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
            if ready.is_empty() {
                break;
            }
            for (slot, res) in ready.drain(..) {
                if self.complete(slot as usize, res) {
                    finished += 1;
                }
            }
        }
        self.ready = ready;
        // Continuations queued while reaping go out now.
        self.submit();
        finished
    }

    /// One completion of slot `slot`: true when its operation finished.
    fn complete(&mut self, slot: usize, res: i32) -> bool {
        let Some(f) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let more = match (&mut f.kind, res) {
            (_, r) if r < 0 => false,
            (
                Kind::Read {
                    buf,
                    offset,
                    filled,
                },
                n,
            ) => {
                *filled += n as usize;
                // 0 bytes: end of file, the rest stays zero. A short read below the
                // end is resumed where it stopped.
                n > 0 && *filled < buf.as_ref().len() && *offset + (*filled as u64) < f.file.size
            }
            (Kind::Write { data, written, .. }, n) => {
                *written += n as usize;
                n > 0 && *written < data.bytes().len()
            }
            (Kind::Flush, _) => false,
        };
        if more && self.push(slot).is_ok() {
            return false;
        }
        let InFlight {
            store,
            op,
            kind,
            done,
            ..
        } = self.slots[slot].take().expect("live slot");
        self.free.push(slot);
        self.in_flight -= 1;
        let is_write = matches!(kind, Kind::Write { .. });
        let result = store.ring_result(&op, finish(kind, res, more));
        if is_write {
            store.ring_write_done();
        }
        done(result);
        true
    }
}

/// The result of a finished operation. `stuck`: it needed another piece that could
/// not be queued.
fn finish(kind: Kind, res: i32, stuck: bool) -> Result<Bytes, IoErrorKind> {
    let failed = |otherwise: IoErrorKind| -> IoErrorKind {
        match -res {
            libc::ENOSPC | libc::EDQUOT => IoErrorKind::NoSpace,
            libc::EROFS => IoErrorKind::ReadOnly,
            _ => otherwise,
        }
    };
    match kind {
        Kind::Read { .. } if res < 0 || stuck => Err(failed(IoErrorKind::ReadError)),
        Kind::Write { .. } | Kind::Flush if res < 0 || stuck => {
            Err(failed(IoErrorKind::WriteError))
        }
        // A write that wrote nothing more (0 bytes) before its end.
        Kind::Write { data, written, .. } if written < data.bytes().len() => {
            Err(IoErrorKind::WriteError)
        }
        Kind::Read { buf, .. } => Ok(buf.freeze()),
        Kind::Write { .. } | Kind::Flush => Ok(Bytes::new()),
    }
}

impl Drop for Ring {
    /// The kernel may still write into buffers of operations in flight: wait for
    /// every one before the buffers are freed.
    fn drop(&mut self) {
        while self.in_flight > 0 {
            self.submit();
            if self.ring.submit_and_wait(1).is_err() {
                // Cannot learn when the kernel is done with them: leak the buffers
                // rather than free memory it may still write to.
                std::mem::forget(std::mem::take(&mut self.slots));
                return;
            }
            self.reap();
        }
    }
}
