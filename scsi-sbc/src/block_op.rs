//! The block-operation vocabulary shared by the SCSI layer and the backing stores.

use bytes::Bytes;

/// One operation on a backing store, in bytes (not blocks): the store knows nothing of
/// block sizes.
///
/// `Read`, `Write` and `Flush` are the primitives every store has. The others carry a
/// whole SCSI command's worth of work so a store can do it in one go and, where SBC asks
/// for it, atomically against concurrent writes (COMPARE AND WRITE, ORWRITE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOp {
    /// Read `len` bytes at `offset`.
    Read {
        /// Byte offset into the store.
        offset: u64,
        /// Number of bytes.
        len: u64,
    },
    /// Write `data` at `offset`; with `fua` the data must be durable before completion.
    Write {
        /// Byte offset into the store.
        offset: u64,
        /// The bytes to write.
        data: Bytes,
        /// Force unit access: make durable before completing.
        fua: bool,
    },
    /// Make every completed write durable (SYNCHRONIZE CACHE).
    Flush,
    /// Write `pattern` over and over to fill `len` bytes at `offset` (WRITE SAME).
    /// `len` is a multiple of `pattern.len()`, which is never empty.
    WriteSame {
        /// Byte offset into the store.
        offset: u64,
        /// Number of bytes to fill.
        len: u64,
        /// One logical block.
        pattern: Bytes,
        /// Force unit access.
        fua: bool,
    },
    /// Deallocate byte ranges `(offset, len)`: afterwards they read as zeros (UNMAP,
    /// WRITE SAME with UNMAP). A store that cannot deallocate writes zeros.
    Unmap {
        /// The ranges, in any order.
        ranges: Vec<(u64, u64)>,
    },
    /// Compare `data` with the store's bytes at `offset` (VERIFY with BYTCHK);
    /// a difference fails with [`IoErrorKind::Miscompare`].
    Compare {
        /// Byte offset into the store.
        offset: u64,
        /// The expected bytes.
        data: Bytes,
    },
    /// Atomically: compare `compare` with the bytes at `offset` and, only if equal,
    /// write `data` there (COMPARE AND WRITE). No other write to the range may land in
    /// between.
    CompareAndWrite {
        /// Byte offset into the store.
        offset: u64,
        /// The expected bytes.
        compare: Bytes,
        /// The bytes to write on a match; the same length as `compare`.
        data: Bytes,
        /// Force unit access.
        fua: bool,
    },
    /// Atomically OR `data` into the bytes at `offset` (ORWRITE).
    OrWrite {
        /// Byte offset into the store.
        offset: u64,
        /// The bytes to OR in.
        data: Bytes,
        /// Force unit access.
        fua: bool,
    },
    /// Durably keep `data` as the LU's saved state (persistent reservations with
    /// APTPL, SPC-4 5.13.5), replacing what was kept; empty `data` forgets it. Only
    /// stores whose [`crate::BlockStore::saves_state`] is true are sent this. `seq`
    /// grows with each save of an LU: a store drops a save older than one it kept.
    SaveState {
        /// Ordering of saves of one LU.
        seq: u64,
        /// The state, opaque to the store.
        data: Bytes,
    },
    /// PERSISTENT RESERVE OUT on reservations the store keeps for every gateway of
    /// its medium ([`crate::BlockStore::shared_reservations`]): the store applies it
    /// to the shared state with [`crate::pr_shared::apply_out`] and answers with the
    /// state it applied it to (see [`crate::pr_shared`]).
    PrOut {
        /// The I_T nexus the command came from.
        nexus: u64,
        /// Its initiator name.
        initiator: String,
        /// The relative target port it came through (0 when ALUA is off), kept with
        /// a registration for READ FULL STATUS.
        port: u16,
        /// The initiator port's id (the nexus id without the target port).
        initiator_port: u64,
        /// Every relative target port of the target (empty when ALUA is off): a
        /// REGISTER with ALL_TG_PT registers the initiator port through each.
        all_ports: Vec<u16>,
        /// SERVICE ACTION.
        sa: u8,
        /// SCOPE.
        scope: u8,
        /// TYPE.
        typ: u8,
        /// The parameter list.
        param: Bytes,
    },
    /// Tell every other gateway of the store's medium of something done to the LU
    /// through this one ([`crate::pr_shared::LuEvent`]: a reset, new mode values), so
    /// that their nexuses get the same unit attentions. Only stores with
    /// [`crate::BlockStore::shared_reservations`] are sent this; the store answers
    /// once the other gateways have taken it (or after a bound).
    LuEvent {
        /// What happened.
        event: crate::pr_shared::LuEvent,
    },
    /// Report which bytes of `offset .. offset + len` are allocated (GET LBA STATUS).
    /// The result is an extent list encoded by [`encode_extents`].
    Provisioning {
        /// Byte offset into the store.
        offset: u64,
        /// Number of bytes to describe (the store may describe fewer).
        len: u64,
    },
    /// Copy bytes between logical units (EXTENDED COPY), segment after segment; with
    /// `fua` the copied data must be durable before completion. A plain store copies
    /// within itself (every segment's `src` and `dst` name it); a target that copies
    /// between LUs hands the operation to a store that maps the LUNs to their stores.
    Copy {
        /// The segments, in order.
        segments: Vec<CopySegment>,
        /// Force unit access on the destinations.
        fua: bool,
        /// The LIST IDENTIFIER whose status the copy manager holds for RECEIVE COPY
        /// RESULTS (`None` when the initiator asked for none), so that a completion
        /// updates its own copy even when several of a nexus's copies run at once.
        held: Option<u8>,
    },
    /// A whole command of an emulated device whose medium state lives with its store
    /// (a tape drive: the position on the tape; a medium changer: its elements), run
    /// by that store in one go. The request and the answer (the result bytes) are in
    /// the device crate's own encoding (`scsi_ssc`, `scsi_smc`); any other store fails
    /// it with [`IoErrorKind::Other`].
    Device {
        /// The request, opaque to everything between the device crate and its store.
        request: Bytes,
    },
}

/// One segment of a [`BlockOp::Copy`]: `len` bytes from `src_offset` of LUN `src` to
/// `dst_offset` of LUN `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySegment {
    /// LUN of the source.
    pub src: u64,
    /// LUN of the destination.
    pub dst: u64,
    /// Byte offset into the source.
    pub src_offset: u64,
    /// Byte offset into the destination.
    pub dst_offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl CopySegment {
    /// The segment cut into `(src_offset, dst_offset, len)` pieces of at most `chunk`
    /// bytes, ordered so that copying them one after the other is right even when
    /// source and destination overlap in one store (back to front when the
    /// destination lies above the source).
    pub fn chunks(&self, chunk: u64) -> Vec<(u64, u64, u64)> {
        let chunk = chunk.max(1);
        let mut out = Vec::new();
        let mut pos = 0u64;
        while pos < self.len {
            let n = (self.len - pos).min(chunk);
            out.push((self.src_offset + pos, self.dst_offset + pos, n));
            pos += n;
        }
        if self.src == self.dst && self.dst_offset > self.src_offset {
            out.reverse();
        }
        out
    }
}

/// Why a store operation failed, reduced to what decides the SCSI sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoErrorKind {
    /// The medium could not be read (MEDIUM ERROR, UNRECOVERED READ ERROR).
    ReadError,
    /// The medium could not be written (MEDIUM ERROR, WRITE ERROR).
    WriteError,
    /// As [`IoErrorKind::ReadError`], and the store knows where: the sense reports the
    /// LBA of byte `offset` of the store instead of the command's first LBA.
    ReadErrorAt {
        /// Byte offset into the store of the first byte that could not be read.
        offset: u64,
    },
    /// As [`IoErrorKind::WriteError`], at byte `offset` of the store.
    WriteErrorAt {
        /// Byte offset into the store of the first byte that could not be written.
        offset: u64,
    },
    /// The store has no room left: DATA PROTECT / SPACE ALLOCATION FAILED WRITE
    /// PROTECT on a thin-provisioned LU, MEDIUM ERROR / WRITE ERROR on a fully
    /// provisioned one (SBC-4 4.7.3.6: a thick LU promised the space).
    NoSpace,
    /// The store is read-only (DATA PROTECT, WRITE PROTECTED).
    ReadOnly,
    /// Anything else (HARDWARE ERROR).
    Other,
    /// This gateway was fenced off a medium that other gateways serve too (a Ceph
    /// client blocklisted when another gateway broke its lock, taking it for dead):
    /// NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE, so a
    /// multipath initiator retries on another gateway's path while this one
    /// reconnects.
    Fenced,
    /// The store did not answer in time (a network store whose cluster is
    /// unreachable): ABORTED COMMAND, TIMEOUT ON LOGICAL UNIT, which initiators retry.
    TimedOut,
    /// A compare found a difference `offset` bytes into the compared data
    /// (MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION).
    Miscompare {
        /// Offset of the first differing byte from the start of the compared range.
        offset: u64,
    },
}

/// One extent of a [`BlockOp::Provisioning`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset into the store.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Whether the bytes are allocated (`false`: a hole that reads as zeros).
    pub mapped: bool,
}

/// Encode extents as the result bytes of [`BlockOp::Provisioning`]: 17 bytes each,
/// offset and length big-endian, then 1 for mapped or 0 for a hole.
pub fn encode_extents(extents: &[Extent]) -> Bytes {
    let mut out = Vec::with_capacity(extents.len() * 17);
    for e in extents {
        out.extend_from_slice(&e.offset.to_be_bytes());
        out.extend_from_slice(&e.len.to_be_bytes());
        out.push(u8::from(e.mapped));
    }
    Bytes::from(out)
}

/// Decode [`encode_extents`]' bytes; a trailing partial record is ignored.
pub fn decode_extents(b: &[u8]) -> Vec<Extent> {
    b.chunks_exact(17)
        .map(|c| {
            let mut o = [0u8; 8];
            let mut l = [0u8; 8];
            o.copy_from_slice(&c[0..8]);
            l.copy_from_slice(&c[8..16]);
            Extent {
                offset: u64::from_be_bytes(o),
                len: u64::from_be_bytes(l),
                mapped: c[16] != 0,
            }
        })
        .collect()
}

/// Offset of the first byte where `a` and `b` differ, comparing the common length.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<u64> {
    a.iter().zip(b).position(|(x, y)| x != y).map(|p| p as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_round_trip() {
        let e = [
            Extent {
                offset: 0,
                len: 4096,
                mapped: true,
            },
            Extent {
                offset: 4096,
                len: 1 << 40,
                mapped: false,
            },
        ];
        assert_eq!(decode_extents(&encode_extents(&e)), e.to_vec());
        assert_eq!(decode_extents(&[0u8; 16]), vec![]);
    }

    #[test]
    fn copy_chunks_are_safe_for_overlaps() {
        let seg = CopySegment {
            src: 1,
            dst: 1,
            src_offset: 0,
            dst_offset: 2,
            len: 5,
        };
        assert_eq!(seg.chunks(2), vec![(4, 6, 1), (2, 4, 2), (0, 2, 2)]);
        let down = CopySegment {
            src_offset: 2,
            dst_offset: 0,
            ..seg
        };
        assert_eq!(down.chunks(4), vec![(2, 0, 4), (6, 4, 1)]);
        assert_eq!(CopySegment { len: 0, ..seg }.chunks(0), vec![]);
    }

    #[test]
    fn difference() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
    }
}
