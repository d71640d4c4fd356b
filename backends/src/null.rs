//! `null`: reads zeros, drops writes.

use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};

use crate::zeros;

/// A store that holds nothing: reads return zeros, writes and flushes succeed and are
/// dropped (tgt's `null`). It measures the target without any storage cost; reads up
/// to 1 MiB do not even allocate.
#[derive(Debug)]
pub struct NullStore {
    size: u64,
}

impl NullStore {
    /// tgt's null store size, used when `--backing-store` is not a size: 1 TiB.
    pub const DEFAULT_SIZE: u64 = 1 << 40;

    /// A null store that reports `size` bytes.
    pub fn new(size: u64) -> Self {
        NullStore { size }
    }
}

impl BlockStore for NullStore {
    fn size(&self) -> u64 {
        self.size
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        match op {
            BlockOp::Read { len, .. } => {
                let len = usize::try_from(*len).map_err(|_| IoErrorKind::ReadError)?;
                Ok(zeros(len))
            }
            // Every byte reads as zero, so a compare is against zeros.
            BlockOp::Compare { data, .. } | BlockOp::CompareAndWrite { compare: data, .. } => {
                match data.iter().position(|&b| b != 0) {
                    Some(at) => Err(IoErrorKind::Miscompare { offset: at as u64 }),
                    None => Ok(Bytes::new()),
                }
            }
            BlockOp::Provisioning { offset, len } => Ok(scsi_sbc::block_op::encode_extents(&[
                scsi_sbc::block_op::Extent {
                    offset: *offset,
                    len: *len,
                    mapped: false,
                },
            ])),
            BlockOp::Write { .. }
            | BlockOp::Flush
            | BlockOp::WriteSame { .. }
            | BlockOp::Unmap { .. }
            | BlockOp::OrWrite { .. }
            | BlockOp::Copy { .. } => Ok(Bytes::new()),
            // Keeps no LU state (`saves_state` is false, so this is not sent).
            BlockOp::SaveState { .. }
            | BlockOp::PrOut { .. }
            | BlockOp::LuEvent { .. }
            | BlockOp::Device { .. } => Err(IoErrorKind::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zeros_and_drops_writes() {
        let s = NullStore::new(1 << 20);
        assert_eq!(s.size(), 1 << 20);
        let w = BlockOp::Write {
            offset: 0,
            data: Bytes::from_static(b"gone"),
            fua: true,
        };
        assert_eq!(s.execute(&w), Ok(Bytes::new()));
        assert_eq!(s.execute(&BlockOp::Flush), Ok(Bytes::new()));
        let r = BlockOp::Read { offset: 0, len: 4 };
        assert_eq!(s.execute(&r).unwrap(), vec![0u8; 4]);
        let big = BlockOp::Read {
            offset: 0,
            len: 3 << 20,
        };
        assert_eq!(s.execute(&big).unwrap(), vec![0u8; 3 << 20]);
    }
}
