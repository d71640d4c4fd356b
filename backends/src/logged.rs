//! Logging the failures of an LU's store for the administrator: each kind of failure
//! once when it first happens, with its LBA range, then at most one summary per
//! [`LOG_EVERY`] while it keeps happening (a failing disk must not flood the log).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind, OpDone, StoreLayer};

/// Shortest time between two log lines about one kind of failure of one LU.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// A store whose failed operations are logged (`tracing::warn!`), rate-limited per
/// kind; everything else passes through unchanged.
#[derive(Debug)]
pub struct ErrorLogStore {
    inner: Arc<dyn BlockStore>,
    /// Shared with completions that arrive off the caller's thread
    /// ([`BlockStore::submit_own`]).
    log: Arc<ErrorLog>,
}

/// What is logged, and when it was last.
#[derive(Debug)]
struct ErrorLog {
    label: String,
    block: u64,
    kinds: Mutex<HashMap<&'static str, Pending>>,
}

/// Failures of one kind since the last line logged about it.
#[derive(Debug)]
struct Pending {
    logged_at: Instant,
    count: u64,
    first_lba: u64,
    last_lba: u64,
}

impl ErrorLogStore {
    /// Log `inner`'s failures as those of `label` (e.g. the backing-store path), with
    /// LBAs of `block_size` bytes.
    pub fn wrap(inner: Arc<dyn BlockStore>, label: &str, block_size: u32) -> ErrorLogStore {
        ErrorLogStore {
            inner,
            log: Arc::new(ErrorLog {
                label: label.to_owned(),
                block: u64::from(block_size.max(1)),
                kinds: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Note a failure of `op`; `now` is when it completed. Returns the line logged,
    /// if one was.
    pub fn note(&self, op: &BlockOp, kind: IoErrorKind, now: Instant) -> Option<String> {
        self.log.note(op, kind, now)
    }

    fn check(&self, op: &BlockOp, r: Result<Bytes, IoErrorKind>) -> Result<Bytes, IoErrorKind> {
        if let Err(kind) = r {
            self.log.note(op, kind, Instant::now());
        }
        r
    }
}

impl ErrorLog {
    fn note(&self, op: &BlockOp, kind: IoErrorKind, now: Instant) -> Option<String> {
        let flush = matches!(op, BlockOp::Flush);
        let name = match kind {
            // A failed flush has no LBA: some earlier write did not reach the disk.
            _ if flush => "flush error",
            IoErrorKind::ReadError | IoErrorKind::ReadErrorAt { .. } => "read error",
            IoErrorKind::WriteError | IoErrorKind::WriteErrorAt { .. } => "write error",
            IoErrorKind::NoSpace => "out of space",
            IoErrorKind::ReadOnly => "write refused (read-only)",
            IoErrorKind::Other => "internal failure",
            IoErrorKind::TimedOut => "timed out",
            IoErrorKind::Fenced => "fenced off the medium",
            // A miscompare is an answer, not a failure of the store.
            IoErrorKind::Miscompare { .. } => return None,
        };
        let (first, last) = self.lbas(op, kind);
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let line = match kinds.get_mut(name) {
            None => {
                kinds.insert(
                    name,
                    Pending {
                        logged_at: now,
                        count: 0,
                        first_lba: u64::MAX,
                        last_lba: 0,
                    },
                );
                if flush {
                    format!("{}: {name}", self.label)
                } else {
                    format!("{}: {name} at LBA {}", self.label, range(first, last))
                }
            }
            Some(p) => {
                p.count += 1;
                p.first_lba = p.first_lba.min(first);
                p.last_lba = p.last_lba.max(last);
                if now.saturating_duration_since(p.logged_at) < LOG_EVERY {
                    return None;
                }
                let secs = now.saturating_duration_since(p.logged_at).as_secs();
                let line = if flush {
                    format!(
                        "{}: {} more {name}s in the last {secs}s",
                        self.label, p.count
                    )
                } else {
                    format!(
                        "{}: {} more {name}s at LBA {} in the last {secs}s",
                        self.label,
                        p.count,
                        range(p.first_lba, p.last_lba),
                    )
                };
                *p = Pending {
                    logged_at: now,
                    count: 0,
                    first_lba: u64::MAX,
                    last_lba: 0,
                };
                line
            }
        };
        drop(kinds);
        tracing::warn!("{line}");
        Some(line)
    }

    /// The LBAs the failed operation covered (where the store said it failed, if it did).
    fn lbas(&self, op: &BlockOp, kind: IoErrorKind) -> (u64, u64) {
        let (offset, len) = match op {
            BlockOp::Read { offset, len } | BlockOp::WriteSame { offset, len, .. } => {
                (*offset, *len)
            }
            BlockOp::Write { offset, data, .. }
            | BlockOp::Compare { offset, data }
            | BlockOp::CompareAndWrite { offset, data, .. }
            | BlockOp::OrWrite { offset, data, .. } => (*offset, data.len() as u64),
            BlockOp::Unmap { ranges } => {
                let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
                let hi = ranges.iter().map(|r| r.0 + r.1).max().unwrap_or(0);
                (lo, hi - lo)
            }
            BlockOp::Provisioning { offset, len } => (*offset, *len),
            BlockOp::Flush
            | BlockOp::SaveState { .. }
            | BlockOp::PrOut { .. }
            | BlockOp::LuEvent { .. }
            | BlockOp::Copy { .. }
            | BlockOp::Device { .. } => (0, 0),
        };
        let first = match kind {
            IoErrorKind::ReadErrorAt { offset } | IoErrorKind::WriteErrorAt { offset } => offset,
            _ => offset,
        } / self.block;
        let last = (offset + len)
            .div_ceil(self.block)
            .saturating_sub(1)
            .max(first);
        (first, last)
    }
}

fn range(first: u64, last: u64) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

impl StoreLayer for ErrorLogStore {
    fn inner(&self) -> &dyn BlockStore {
        &*self.inner
    }

    // Failures of `execute`, `execute_nowait` and of ring operations are logged.
    fn layer_result(
        &self,
        op: &BlockOp,
        result: Result<Bytes, IoErrorKind>,
    ) -> Result<Bytes, IoErrorKind> {
        self.check(op, result)
    }

    // A store with its own asynchronous route (rbd): its failures are logged as
    // they come back. Only such a store is asked: an operation of any other goes
    // back unwrapped at no cost, and the worker's `execute` logs its failure once.
    fn layer_submit_own(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        if !self.inner.takes_own_submissions() {
            return Err(done);
        }
        let held = Arc::new(Mutex::new(Some(done)));
        let (log, what, hand) = (self.log.clone(), op.clone(), held.clone());
        let logged: OpDone = Box::new(move |r| {
            if let Err(kind) = r {
                log.note(&what, kind, Instant::now());
            }
            let done = hand.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(done) = done {
                done(r)
            }
        });
        match self.inner.submit_own(op, logged) {
            Ok(()) => Ok(()),
            Err(refused) => {
                drop(refused);
                let done = held.lock().unwrap_or_else(PoisonError::into_inner).take();
                match done {
                    Some(done) => Err(done),
                    // The store called the wrapper before refusing it: answered.
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn only_stores_with_their_own_route_are_asked_to_take_operations() {
        let plain = ErrorLogStore::wrap(Arc::new(MemoryStore::new(1 << 20)), "/m", 512);
        assert!(!plain.takes_own_submissions());
        let done: OpDone = Box::new(|_| panic!("not run by a store without its own route"));
        assert!(plain.submit_own(&BlockOp::Flush, done).is_err());

        /// Every operation fails.
        #[derive(Debug)]
        struct Failing;
        impl BlockStore for Failing {
            fn size(&self) -> u64 {
                1 << 20
            }
            fn execute(&self, _: &BlockOp) -> Result<Bytes, IoErrorKind> {
                Err(IoErrorKind::ReadError)
            }
        }
        let pooled = crate::PooledStore::wrap(Arc::new(Failing), 1).unwrap();
        let logged = ErrorLogStore::wrap(Arc::new(pooled), "/p", 512);
        assert!(logged.takes_own_submissions());
        let (tx, rx) = std::sync::mpsc::channel();
        let read = BlockOp::Read {
            offset: 0,
            len: 512,
        };
        let done: OpDone = Box::new(move |r| tx.send(r).unwrap());
        assert!(logged.submit_own(&read, done).is_ok());
        // The failure comes back through the wrapper, which logged it.
        assert!(rx.recv().unwrap().is_err());
        let first = logged.note(&read, IoErrorKind::ReadError, Instant::now());
        assert_eq!(first, None, "the failure was noted already");
    }

    #[test]
    fn once_per_kind_then_rate_limited_summaries() {
        let s = ErrorLogStore::wrap(Arc::new(MemoryStore::new(1 << 20)), "/srv/a.img", 512);
        let t0 = Instant::now();
        let read = |lba: u64| BlockOp::Read {
            offset: lba * 512,
            len: 4096,
        };
        let k = IoErrorKind::ReadError;
        assert_eq!(
            s.note(&read(100), k, t0).as_deref(),
            Some("/srv/a.img: read error at LBA 100-107")
        );
        for lba in [50, 300] {
            assert_eq!(s.note(&read(lba), k, t0 + Duration::from_secs(1)), None);
        }
        // Another kind is its own.
        let w = BlockOp::Write {
            offset: 512,
            data: Bytes::from(vec![0; 512]),
            fua: false,
        };
        let at = IoErrorKind::WriteErrorAt { offset: 512 };
        assert_eq!(
            s.note(&w, at, t0).as_deref(),
            Some("/srv/a.img: write error at LBA 1")
        );
        assert_eq!(
            s.note(&read(7), k, t0 + LOG_EVERY).as_deref(),
            Some("/srv/a.img: 3 more read errors at LBA 7-307 in the last 10s")
        );
        assert_eq!(s.note(&read(7), k, t0 + LOG_EVERY), None);
        assert_eq!(
            s.note(&BlockOp::Flush, IoErrorKind::WriteError, t0)
                .as_deref(),
            Some("/srv/a.img: flush error")
        );
        let m = IoErrorKind::Miscompare { offset: 0 };
        assert_eq!(s.note(&read(7), m, t0), None);
    }
}
