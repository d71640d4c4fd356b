//! `memory`: a sparse RAM disk.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::{PoisonError, RwLock};

use crate::compound::{self, Primitives};
use scsi_sbc::block_op::Extent;

use bytes::{Bytes, BytesMut};
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};

use crate::zeros;

/// Allocation unit. Large enough that a 4 KiB..1 MiB command touches one or two
/// chunks; small enough that a demo file system touches little memory.
const CHUNK: usize = 1 << 20;

/// A sparse in-memory store: contents are kept in 1 MiB chunks allocated on first
/// write, so a 1 GiB (or 1 TiB) LUN costs nothing until written. Unwritten space reads
/// as zeros, and writing zeros to an unallocated chunk does not allocate it (mkfs and
/// "zero the disk" stay cheap). Memory use is proportional to the data written, never
/// to the size, so an admin's typo in the size cannot exhaust memory at creation.
///
/// Chunks live in 64 maps, each behind its own lock, so commands on different
/// chunks rarely wait for each other and reads never wait for reads. A multi-chunk
/// command is atomic per chunk only, which SCSI allows: overlapping concurrent
/// commands have no defined order.
///
/// Reads past the end return zeros and writes past the end fail with
/// [`IoErrorKind::NoSpace`], as a block device does.
#[derive(Debug)]
pub struct MemoryStore {
    size: u64,
    shards: Box<[Shard]>,
    /// Orders plain writes against COMPARE AND WRITE / ORWRITE (see `compound`).
    rmw: RwLock<()>,
}

/// One lock's worth of chunks: chunk index → its bytes (allocated chunks only).
type Shard = RwLock<HashMap<u64, Box<[u8]>>>;

/// Number of lock shards; chunk `i` lives in shard `i % SHARDS`, so a sequential
/// stream spreads over all of them.
const SHARDS: usize = 64;

impl MemoryStore {
    /// A store of `size` bytes, all zero, with no chunk memory allocated yet.
    pub fn new(size: u64) -> Self {
        MemoryStore {
            size,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            rmw: RwLock::new(()),
        }
    }

    /// Bytes of chunk memory allocated so far (chunks written with non-zero data).
    pub fn allocated_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                let map = shard.read().unwrap_or_else(PoisonError::into_inner);
                map.values().map(|c| c.len() as u64).sum::<u64>()
            })
            .sum()
    }

    fn shard(&self, index: u64) -> &Shard {
        &self.shards[(index % SHARDS as u64) as usize]
    }

    /// Length of chunk `index` (the last one may be short).
    fn chunk_len(&self, index: u64) -> usize {
        let start = index * CHUNK as u64;
        (self.size - start).min(CHUNK as u64) as usize
    }

    /// The chunk pieces covering `[offset, offset + len)` clipped to the store:
    /// (chunk index, offset inside the chunk, offset inside the buffer, length).
    fn pieces(&self, offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
        let end = offset.saturating_add(len as u64).min(self.size);
        let mut pos = offset;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let index = pos / CHUNK as u64;
            let in_chunk = (pos % CHUNK as u64) as usize;
            let n = (CHUNK - in_chunk).min((end - pos) as usize);
            let piece = (index, in_chunk, (pos - offset) as usize, n);
            pos += n as u64;
            Some(piece)
        })
    }

    fn read(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        let len = usize::try_from(len).map_err(|_| IoErrorKind::ReadError)?;
        let mut buf: Option<BytesMut> = None;
        for (index, in_chunk, in_buf, n) in self.pieces(offset, len) {
            // A poisoned lock only means a writer panicked mid-copy; the bytes are
            // still bytes, as after a torn write on a real disk.
            let map = self
                .shard(index)
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(data) = map.get(&index) {
                let buf = buf.get_or_insert_with(|| BytesMut::zeroed(len));
                buf[in_buf..in_buf + n].copy_from_slice(&data[in_chunk..in_chunk + n]);
            }
        }
        // Nothing written in range: share the static zeros instead of allocating.
        Ok(buf.map_or_else(|| zeros(len), BytesMut::freeze))
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<Bytes, IoErrorKind> {
        match offset.checked_add(data.len() as u64) {
            Some(end) if end <= self.size => {}
            _ => return Err(IoErrorKind::NoSpace),
        }
        for (index, in_chunk, in_buf, n) in self.pieces(offset, data.len()) {
            let src = &data[in_buf..in_buf + n];
            let mut map = self
                .shard(index)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let dst = match map.entry(index) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(_) if src.iter().all(|&b| b == 0) => continue,
                Entry::Vacant(e) => e.insert(vec![0; self.chunk_len(index)].into_boxed_slice()),
            };
            dst[in_chunk..in_chunk + n].copy_from_slice(src);
        }
        Ok(Bytes::new())
    }
}

impl BlockStore for MemoryStore {
    fn size(&self) -> u64 {
        self.size
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        compound::run(self, op)
    }

    /// RAM never waits: small reads and writes run on the caller's thread.
    fn execute_nowait(&self, op: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
        match op {
            BlockOp::Read { len, .. } if *len <= crate::INLINE_MAX => Some(self.execute(op)),
            BlockOp::Write { data, .. } if data.len() as u64 <= crate::INLINE_MAX => {
                Some(self.execute(op))
            }
            _ => None,
        }
    }
}

impl Primitives for MemoryStore {
    fn read(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        MemoryStore::read(self, offset, len)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), IoErrorKind> {
        MemoryStore::write(self, offset, data).map(|_| ())
    }

    /// RAM is as durable as this store gets.
    fn flush(&self) -> Result<(), IoErrorKind> {
        Ok(())
    }

    /// Whole chunks are freed; partly covered ones get zeros.
    fn punch(&self, offset: u64, len: u64) -> Result<(), IoErrorKind> {
        let len = usize::try_from(len.min(self.size.saturating_sub(offset)))
            .map_err(|_| IoErrorKind::Other)?;
        for (index, in_chunk, _, n) in self.pieces(offset, len) {
            let mut map = self
                .shard(index)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if n == self.chunk_len(index) {
                map.remove(&index);
            } else if let Some(c) = map.get_mut(&index) {
                c[in_chunk..in_chunk + n].fill(0);
            }
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>, IoErrorKind> {
        let len = usize::try_from(len.min(self.size.saturating_sub(offset)))
            .map_err(|_| IoErrorKind::Other)?;
        let mut out: Vec<Extent> = Vec::new();
        for (index, _, in_buf, n) in self.pieces(offset, len) {
            let mapped = self
                .shard(index)
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&index);
            match out.last_mut() {
                Some(last) if last.mapped == mapped => last.len += n as u64,
                _ => out.push(Extent {
                    offset: offset + in_buf as u64,
                    len: n as u64,
                    mapped,
                }),
            }
        }
        Ok(out)
    }

    fn rmw_lock(&self) -> &RwLock<()> {
        &self.rmw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(offset: u64, data: Vec<u8>) -> BlockOp {
        BlockOp::Write {
            offset,
            data: data.into(),
            fua: false,
        }
    }

    fn read(offset: u64, len: u64) -> BlockOp {
        BlockOp::Read { offset, len }
    }

    #[test]
    fn unwritten_store_reads_zeros_and_allocates_nothing() {
        // Even an absurd size costs nothing up front.
        assert_eq!(MemoryStore::new(u64::MAX).allocated_bytes(), 0);
        let s = MemoryStore::new(1 << 30);
        assert_eq!(s.size(), 1 << 30);
        assert_eq!(s.execute(&read(12345, 4096)).unwrap(), vec![0u8; 4096]);
        assert_eq!(s.execute(&read(0, 3 << 20)).unwrap(), vec![0u8; 3 << 20]);
        s.execute(&write(0, vec![0; 2 << 20])).unwrap();
        assert_eq!(s.allocated_bytes(), 0);
    }

    #[test]
    fn round_trip_across_chunk_boundaries() {
        let s = MemoryStore::new(4 << 20);
        // 2.5 MiB starting just before the first boundary: spans chunks 0..=3.
        let offset = CHUNK as u64 - 100;
        let data: Vec<u8> = (0..(5 << 19)).map(|i: u32| (i % 251) as u8 + 1).collect();
        s.execute(&write(offset, data.clone())).unwrap();
        assert_eq!(s.allocated_bytes(), 4 << 20);
        assert_eq!(s.execute(&read(offset, data.len() as u64)).unwrap(), data);
        // A read that starts in zeros and ends in data.
        let got = s.execute(&read(offset - 10, 20)).unwrap();
        assert_eq!(&got[..10], &[0; 10]);
        assert_eq!(&got[10..], &data[..10]);
        assert_eq!(s.execute(&BlockOp::Flush), Ok(Bytes::new()));
    }

    #[test]
    fn only_touched_chunks_are_allocated() {
        let s = MemoryStore::new(1 << 30);
        s.execute(&write((5 << 20) + 7, vec![9; 4096])).unwrap();
        assert_eq!(s.allocated_bytes(), 1 << 20);
        assert_eq!(
            s.execute(&read((5 << 20) + 7, 4096)).unwrap(),
            vec![9u8; 4096]
        );
    }

    #[test]
    fn short_last_chunk_and_bounds() {
        let s = MemoryStore::new((1 << 20) + 512);
        s.execute(&write(1 << 20, vec![1; 512])).unwrap();
        assert_eq!(s.allocated_bytes(), 512);
        assert_eq!(
            s.execute(&write(1 << 20, vec![1; 513])),
            Err(IoErrorKind::NoSpace)
        );
        assert_eq!(
            s.execute(&write(u64::MAX, vec![1])),
            Err(IoErrorKind::NoSpace)
        );
        // Past the end reads as zeros, as on a block device.
        let got = s.execute(&read((1 << 20) + 510, 4)).unwrap();
        assert_eq!(&got[..], &[1, 1, 0, 0]);
        assert_eq!(s.execute(&read(u64::MAX - 1, 4)).unwrap(), vec![0u8; 4]);
    }
}
