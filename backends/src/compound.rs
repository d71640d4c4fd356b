//! The compound block operations (WRITE SAME, UNMAP, COMPARE AND WRITE, ...) built from
//! a store's primitives, so every store implements them the same way.
//!
//! Atomicity: a store keeps an [`RwLock`] that plain writes take shared and the
//! read-modify-write operations (COMPARE AND WRITE, ORWRITE) take exclusive, so no
//! write lands between their read and their write (SBC-4 5.3: COMPARE AND WRITE is
//! atomic with respect to other commands). Reads never take it.

use std::sync::{PoisonError, RwLock};

use bytes::{Bytes, BytesMut};
use scsi_sbc::block_op::{encode_extents, first_difference, Extent};
use scsi_sbc::{BlockOp, IoErrorKind};

/// Bytes written per system call when filling (WRITE SAME, zeroing).
const FILL_CHUNK: u64 = 1 << 20;

/// What a store offers; [`run`] builds every [`BlockOp`] from these.
pub(crate) trait Primitives {
    /// Read exactly `len` bytes at `offset` (zeros past the end).
    fn read(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind>;
    /// Write `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), IoErrorKind>;
    /// Make completed writes durable.
    fn flush(&self) -> Result<(), IoErrorKind>;
    /// Deallocate `len` bytes at `offset` so they read as zeros. The default writes
    /// zeros.
    fn punch(&self, offset: u64, len: u64) -> Result<(), IoErrorKind> {
        fill(self, offset, len, &[0u8; 512])
    }
    /// Allocation map of `offset .. offset + len`; the default says all mapped.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>, IoErrorKind> {
        Ok(vec![Extent {
            offset,
            len,
            mapped: true,
        }])
    }
    /// The write-ordering lock described in the module doc.
    fn rmw_lock(&self) -> &RwLock<()>;
    /// With the lock held exclusively: wait until writes that bypass it (queued on
    /// an io_uring, see `uring`) have completed. The default has none.
    fn quiesce(&self) {}
}

/// Fill `len` bytes at `offset` with `pattern` repeated.
fn fill<P: Primitives + ?Sized>(
    p: &P,
    offset: u64,
    len: u64,
    pattern: &[u8],
) -> Result<(), IoErrorKind> {
    if pattern.is_empty() || len == 0 {
        return Ok(());
    }
    let plen = pattern.len() as u64;
    let per = (FILL_CHUNK / plen).max(1);
    let mut buf = BytesMut::with_capacity((per * plen) as usize);
    for _ in 0..per.min(len.div_ceil(plen)) {
        buf.extend_from_slice(pattern);
    }
    let mut pos = 0u64;
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        p.write(offset + pos, &buf[..n])?;
        pos += n as u64;
    }
    Ok(())
}

/// Run `op` on a store made of `p`'s primitives.
pub(crate) fn run<P: Primitives + ?Sized>(p: &P, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
    let shared = || p.rmw_lock().read().unwrap_or_else(PoisonError::into_inner);
    let exclusive = || {
        let guard = p.rmw_lock().write().unwrap_or_else(PoisonError::into_inner);
        // Writes queued on an io_uring before the lock was taken are not under it.
        p.quiesce();
        guard
    };
    let done = |fua: bool| -> Result<Bytes, IoErrorKind> {
        if fua {
            p.flush()?;
        }
        Ok(Bytes::new())
    };
    match op {
        BlockOp::Read { offset, len } => p.read(*offset, *len),
        BlockOp::Write { offset, data, fua } => {
            let _g = shared();
            p.write(*offset, data)?;
            done(*fua)
        }
        BlockOp::Flush => done(true),
        BlockOp::WriteSame {
            offset,
            len,
            pattern,
            fua,
        } => {
            let _g = shared();
            if pattern.iter().all(|&b| b == 0) {
                // Zeros: deallocating gives the same reads and saves the space.
                p.punch(*offset, *len)?;
            } else {
                fill(p, *offset, *len, pattern)?;
            }
            done(*fua)
        }
        BlockOp::Unmap { ranges } => {
            let _g = shared();
            for &(offset, len) in ranges {
                p.punch(offset, len)?;
            }
            Ok(Bytes::new())
        }
        BlockOp::Compare { offset, data } => {
            let have = p.read(*offset, data.len() as u64)?;
            match first_difference(&have, data) {
                Some(at) => Err(IoErrorKind::Miscompare { offset: at }),
                None => Ok(Bytes::new()),
            }
        }
        BlockOp::CompareAndWrite {
            offset,
            compare,
            data,
            fua,
        } => {
            let _g = exclusive();
            let have = p.read(*offset, compare.len() as u64)?;
            if let Some(at) = first_difference(&have, compare) {
                return Err(IoErrorKind::Miscompare { offset: at });
            }
            p.write(*offset, data)?;
            done(*fua)
        }
        BlockOp::OrWrite { offset, data, fua } => {
            let _g = exclusive();
            let have = p.read(*offset, data.len() as u64)?;
            let merged: Vec<u8> = have.iter().zip(data.iter()).map(|(a, b)| a | b).collect();
            p.write(*offset, &merged)?;
            done(*fua)
        }
        BlockOp::Provisioning { offset, len } => Ok(encode_extents(&p.extents(*offset, *len)?)),
        // A plain store is every LU a copy names (the target wraps stores to copy
        // between LUs).
        BlockOp::Copy { segments, fua, .. } => {
            let _g = shared();
            for seg in segments {
                for (src, dst, len) in seg.chunks(FILL_CHUNK) {
                    let data = p.read(src, len)?;
                    p.write(dst, &data)?;
                }
            }
            done(*fua)
        }
        // A plain store keeps no LU state (`saves_state` is false, so this is not sent);
        // a state-keeping wrapper handles it before the store sees it.
        BlockOp::SaveState { .. }
        | BlockOp::PrOut { .. }
        | BlockOp::LuEvent { .. }
        | BlockOp::Device { .. } => Err(IoErrorKind::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Vec8 {
        data: Mutex<Vec<u8>>,
        lock: RwLock<()>,
    }

    impl Primitives for Vec8 {
        fn read(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
            let d = self.data.lock().unwrap();
            let mut v = vec![0u8; len as usize];
            for (i, b) in v.iter_mut().enumerate() {
                *b = d.get(offset as usize + i).copied().unwrap_or(0);
            }
            Ok(v.into())
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), IoErrorKind> {
            let mut d = self.data.lock().unwrap();
            let end = offset as usize + data.len();
            if d.len() < end {
                d.resize(end, 0);
            }
            d[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn flush(&self) -> Result<(), IoErrorKind> {
            Ok(())
        }
        fn rmw_lock(&self) -> &RwLock<()> {
            &self.lock
        }
    }

    #[test]
    fn compound_ops() {
        let s = Vec8::default();
        let same = BlockOp::WriteSame {
            offset: 2,
            len: 6,
            pattern: Bytes::from_static(b"ab"),
            fua: true,
        };
        run(&s, &same).unwrap();
        assert_eq!(
            &run(&s, &BlockOp::Read { offset: 0, len: 9 }).unwrap()[..],
            b"\0\0ababab\0"
        );
        let cmp = |data: &'static [u8]| BlockOp::Compare {
            offset: 2,
            data: Bytes::from_static(data),
        };
        assert_eq!(run(&s, &cmp(b"abab")), Ok(Bytes::new()));
        assert_eq!(
            run(&s, &cmp(b"abxb")),
            Err(IoErrorKind::Miscompare { offset: 2 })
        );
        let caw = BlockOp::CompareAndWrite {
            offset: 2,
            compare: Bytes::from_static(b"ab"),
            data: Bytes::from_static(b"XY"),
            fua: false,
        };
        run(&s, &caw).unwrap();
        assert_eq!(run(&s, &caw), Err(IoErrorKind::Miscompare { offset: 0 }));
        let or = BlockOp::OrWrite {
            offset: 0,
            data: Bytes::from_static(&[0x01, 0x02]),
            fua: false,
        };
        run(&s, &or).unwrap();
        assert_eq!(
            &run(&s, &BlockOp::Read { offset: 0, len: 4 }).unwrap()[..],
            b"\x01\x02XY"
        );
        run(
            &s,
            &BlockOp::Unmap {
                ranges: vec![(0, 3)],
            },
        )
        .unwrap();
        assert_eq!(
            &run(&s, &BlockOp::Read { offset: 0, len: 4 }).unwrap()[..],
            b"\0\0\0Y"
        );
        let prov = run(&s, &BlockOp::Provisioning { offset: 0, len: 8 }).unwrap();
        assert_eq!(prov.len(), 17);
        // An overlapping copy upwards within the store (EXTENDED COPY).
        let seg = scsi_sbc::CopySegment {
            src: 1,
            dst: 1,
            src_offset: 0,
            dst_offset: 1,
            len: 4,
        };
        run(
            &s,
            &BlockOp::Copy {
                segments: vec![seg],
                fua: true,
                held: None,
            },
        )
        .unwrap();
        assert_eq!(
            &run(&s, &BlockOp::Read { offset: 0, len: 5 }).unwrap()[..],
            b"\0\0\0\0Y"
        );
    }
}
