//! [`MemStore`]: a backing store in a `Vec<u8>`, for simulations.

use bytes::Bytes;
use scsi_sbc::block_op::{encode_extents, first_difference, Extent};
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
        let size = data.len();
        match op {
            BlockOp::Read { offset, len } => {
                let r = range(*offset, *len, size)?;
                Ok(Bytes::copy_from_slice(&data[r]))
            }
            BlockOp::Write {
                offset, data: src, ..
            } => {
                let r = range(*offset, src.len() as u64, size)?;
                data[r].copy_from_slice(src);
                Ok(Bytes::new())
            }
            BlockOp::Flush => Ok(Bytes::new()),
            BlockOp::WriteSame {
                offset,
                len,
                pattern,
                ..
            } => {
                let r = range(*offset, *len, size)?;
                if pattern.is_empty() {
                    return Err(IoErrorKind::Other);
                }
                for (dst, src) in data[r].iter_mut().zip(pattern.iter().cycle()) {
                    *dst = *src;
                }
                Ok(Bytes::new())
            }
            BlockOp::Unmap { ranges } => {
                let rs = ranges
                    .iter()
                    .map(|(o, l)| range(*o, *l, size))
                    .collect::<Result<Vec<_>, _>>()?;
                for r in rs {
                    data[r].fill(0);
                }
                Ok(Bytes::new())
            }
            BlockOp::Compare {
                offset,
                data: expected,
            } => {
                let r = range(*offset, expected.len() as u64, size)?;
                match first_difference(expected, &data[r]) {
                    Some(at) => Err(IoErrorKind::Miscompare { offset: at }),
                    None => Ok(Bytes::new()),
                }
            }
            BlockOp::CompareAndWrite {
                offset,
                compare,
                data: src,
                ..
            } => {
                let r = range(*offset, compare.len() as u64, size)?;
                if let Some(at) = first_difference(compare, &data[r.clone()]) {
                    return Err(IoErrorKind::Miscompare { offset: at });
                }
                let w = range(*offset, src.len() as u64, size)?;
                data[w].copy_from_slice(src);
                Ok(Bytes::new())
            }
            BlockOp::OrWrite {
                offset, data: src, ..
            } => {
                let r = range(*offset, src.len() as u64, size)?;
                for (dst, b) in data[r].iter_mut().zip(src.iter()) {
                    *dst |= b;
                }
                Ok(Bytes::new())
            }
            // Everything is allocated in a Vec: one mapped extent.
            BlockOp::Provisioning { offset, len } => {
                let r = range(*offset, 0, size)?;
                let len = (*len).min((size - r.start) as u64);
                Ok(encode_extents(&[Extent {
                    offset: *offset,
                    len,
                    mapped: true,
                }]))
            }
            // Keeps no LU state (`saves_state` is false, so this is not sent).
            BlockOp::SaveState { .. }
            | BlockOp::PrOut { .. }
            | BlockOp::LuEvent { .. }
            | BlockOp::Device { .. } => Err(IoErrorKind::Other),
            // A copy within this store (every LUN it names is this store).
            BlockOp::Copy { segments, .. } => {
                for seg in segments {
                    let from = range(seg.src_offset, seg.len, size)?;
                    let to = range(seg.dst_offset, seg.len, size)?;
                    data.copy_within(from, to.start);
                }
                Ok(Bytes::new())
            }
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
        let cmp = BlockOp::Compare {
            offset: 512,
            data: Bytes::from_static(b"abXd"),
        };
        assert_eq!(s.execute(&cmp), Err(IoErrorKind::Miscompare { offset: 2 }));
        let same = BlockOp::WriteSame {
            offset: 0,
            len: 6,
            pattern: Bytes::from_static(b"xy"),
            fua: false,
        };
        assert!(s.execute(&same).is_ok());
        assert_eq!(s.read_at(0, 7), b"xyxyxy\0".to_vec());
        s.fail_next(IoErrorKind::ReadError);
        assert_eq!(s.execute(&r), Err(IoErrorKind::ReadError));
        assert!(s.execute(&r).is_ok());
    }
}
