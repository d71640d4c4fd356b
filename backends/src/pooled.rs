//! `--bsopts nr_threads=N`: an LU with I/O threads of its own, as tgt gives every LU
//! its own threads, so that a slow LU (a failing disk, a remote store) cannot take
//! every worker of the daemon-wide pool from the others.

use std::sync::Arc;

use scsi_sbc::{BlockOp, BlockStore, OpDone, StoreLayer};

use crate::{BackendError, WorkerPool};

/// The most threads one LU may ask for.
pub const MAX_LU_THREADS: usize = 128;

/// Take `nr_threads=N` out of `--bsopts` (`key=value` items joined by `;`): the
/// other items, rejoined, and N if it was there. N must be 1 to [`MAX_LU_THREADS`].
pub fn take_nr_threads(bsopts: &str) -> Result<(String, Option<usize>), BackendError> {
    let mut rest = Vec::new();
    let mut threads = None;
    for item in bsopts.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            Some(("nr_threads", n)) => {
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LU_THREADS).contains(n))
                    .ok_or_else(|| BackendError::BadOptions {
                        text: bsopts.to_owned(),
                        why: format!("nr_threads must be a number from 1 to {MAX_LU_THREADS}"),
                    })?;
                threads = Some(n);
            }
            _ => rest.push(item),
        }
    }
    Ok((rest.join(";"), threads))
}

/// A store whose operations run on its own [`WorkerPool`] (threads `tgtd-lu-io-N`)
/// instead of the daemon's; everything else is the wrapped store's. Dropping it (the
/// LU deleted) finishes its queued operations and joins its threads.
#[derive(Debug)]
pub struct PooledStore {
    inner: Arc<dyn BlockStore>,
    pool: WorkerPool,
}

impl PooledStore {
    /// `inner` with `threads` threads of its own.
    pub fn wrap(inner: Arc<dyn BlockStore>, threads: usize) -> Result<PooledStore, BackendError> {
        Ok(PooledStore {
            inner,
            pool: WorkerPool::named(threads, "tgtd-lu-io")?,
        })
    }

    /// How many threads it has.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

impl StoreLayer for PooledStore {
    fn inner(&self) -> &dyn BlockStore {
        &*self.inner
    }

    fn layer_submit_own(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        self.pool.submit(self.inner.clone(), op.clone(), done);
        Ok(())
    }

    fn layer_takes_own_submissions(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use bytes::Bytes;

    #[test]
    fn nr_threads_is_taken_out_of_the_options() {
        assert_eq!(take_nr_threads("").unwrap(), (String::new(), None));
        assert_eq!(
            take_nr_threads("nr_threads=4").unwrap(),
            (String::new(), Some(4))
        );
        assert_eq!(
            take_nr_threads("inner=rdwr; nr_threads=2;rules=flush:eio").unwrap(),
            ("inner=rdwr;rules=flush:eio".to_string(), Some(2))
        );
        for bad in [
            "nr_threads=0",
            "nr_threads=129",
            "nr_threads=x",
            "nr_threads=",
        ] {
            assert!(
                matches!(take_nr_threads(bad), Err(BackendError::BadOptions { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn operations_run_on_the_stores_own_threads() {
        let s = PooledStore::wrap(Arc::new(MemoryStore::new(1 << 20)), 3).unwrap();
        assert_eq!(s.threads(), 3);
        let (tx, rx) = std::sync::mpsc::channel();
        let write = BlockOp::Write {
            offset: 512,
            data: Bytes::from(vec![7u8; 512]),
            fua: false,
        };
        let done: OpDone = Box::new(move |r| {
            let name = std::thread::current().name().map(String::from);
            tx.send((r, name)).unwrap();
        });
        assert!(s.takes_own_submissions());
        assert!(s.submit_own(&write, done).is_ok());
        let (r, name) = rx.recv().unwrap();
        assert_eq!(r, Ok(Bytes::new()));
        assert!(name.unwrap().starts_with("tgtd-lu-io-"));
        let back = s
            .execute(&BlockOp::Read {
                offset: 512,
                len: 512,
            })
            .unwrap();
        assert_eq!(back, Bytes::from(vec![7u8; 512]));
    }
}
