//! [`MemStore`]: a backing store in a `Vec<u8>`, for simulations.

use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};
use std::sync::Mutex;

/// A [`BlockStore`] kept in memory. Operations outside the store fail with
/// [`IoErrorKind::Other`]; [`MemStore::fail_next`] injects one failure.
#[derive(Debug)]
pub struct MemStore {
    data: Mutex<Vec<u8>>,
    fail_next: Mutex<Option<IoErrorKind>>,
}

impl MemStore {
    /// A zero-filled store of `len` bytes.
    pub fn new(len: usize) -> Self {
        MemStore {
            data: Mutex::new(vec![0; len]),
            fail_next: Mutex::new(None),
        }
    }

    /// Make the next operation fail with `kind`.
    pub fn fail_next(&self, kind: IoErrorKind) {
        *self.fail_next.lock().expect("store lock poisoned") = Some(kind);
    }

    /// A copy of `len` bytes at `offset` (panics outside the store: test helper).
    pub fn read_at(&self, offset: usize, len: usize) -> Vec<u8> {
        self.data.lock().expect("store lock poisoned")[offset..offset + len].to_vec()
    }

    /// Overwrite bytes at `offset` (panics outside the store: test helper).
    pub fn write_at(&self, offset: usize, bytes: &[u8]) {
        self.data.lock().expect("store lock poisoned")[offset..offset + bytes.len()]
            .copy_from_slice(bytes);
    }
}

fn range(offset: u64, len: u64, size: usize) -> Result<std::ops::Range<usize>, IoErrorKind> {
    let end = offset.checked_add(len).ok_or(IoErrorKind::Other)?;
    if end > size as u64 {
        return Err(IoErrorKind::Other);
    }
    Ok(offset as usize..end as usize)
}

impl BlockStore for MemStore {
    fn size(&self) -> u64 {
        self.data.lock().expect("store lock poisoned").len() as u64
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        if let Some(kind) = self.fail_next.lock().expect("store lock poisoned").take() {
            return Err(kind);
        }
        let mut data = self.data.lock().expect("store lock poisoned");
        match op {
            BlockOp::Read { offset, len } => {
                let r = range(*offset, *len, data.len())?;
                Ok(Bytes::copy_from_slice(&data[r]))
            }
            BlockOp::Write {
                offset, data: src, ..
            } => {
                let r = range(*offset, src.len() as u64, data.len())?;
                data[r].copy_from_slice(src);
                Ok(Bytes::new())
            }
            BlockOp::Flush => Ok(Bytes::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_bounds() {
        let s = MemStore::new(1024);
        let w = BlockOp::Write {
            offset: 512,
            data: Bytes::from_static(b"abcd"),
            fua: false,
        };
        assert_eq!(s.execute(&w), Ok(Bytes::new()));
        let r = BlockOp::Read {
            offset: 512,
            len: 4,
        };
        assert_eq!(s.execute(&r).unwrap(), Bytes::from_static(b"abcd"));
        let past = BlockOp::Read {
            offset: 1022,
            len: 4,
        };
        assert_eq!(s.execute(&past), Err(IoErrorKind::Other));
        s.fail_next(IoErrorKind::ReadError);
        assert_eq!(s.execute(&r), Err(IoErrorKind::ReadError));
        assert!(s.execute(&r).is_ok());
    }
}
