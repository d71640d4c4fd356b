//! The request and reply of a [`BlockOp::Device`](scsi_sbc::BlockOp::Device) for a
//! tape drive: how the target side hands a command to the store that runs the
//! [`Drive`](crate::Drive), and how the answer comes back through the store's
//! `Result<Bytes, _>`.
//!
//! Request: CDB length (1 byte), the CDB, the data-out. Reply: a 24-byte head —
//! status (0 good, 1 check), the fixed block length (4 bytes), then for a check the
//! sense key, ASC, ASCQ, stream bits, INFORMATION valid flag and value (8 bytes),
//! field pointer valid/C-D/byte/bit — and the data-in.

use crate::drive::Reply;
use bytes::Bytes;
use scsi_sbc::{FieldPointer, Sense, SenseKey};

const HEAD: usize = 24;

/// Encode a request.
pub fn encode_request(cdb: &[u8], data_out: &[u8]) -> Bytes {
    let n = cdb.len().min(255);
    let mut b = Vec::with_capacity(1 + n + data_out.len());
    b.push(n as u8);
    b.extend_from_slice(&cdb[..n]);
    b.extend_from_slice(data_out);
    Bytes::from(b)
}

/// Decode a request into (CDB, data-out).
pub fn decode_request(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = usize::from(*b.first()?);
    let cdb = b.get(1..1 + n)?;
    Some((cdb, &b[1 + n..]))
}

fn key_from(b: u8) -> Option<SenseKey> {
    Some(match b {
        0x0 => SenseKey::NoSense,
        0x1 => SenseKey::RecoveredError,
        0x2 => SenseKey::NotReady,
        0x3 => SenseKey::MediumError,
        0x4 => SenseKey::HardwareError,
        0x5 => SenseKey::IllegalRequest,
        0x6 => SenseKey::UnitAttention,
        0x7 => SenseKey::DataProtect,
        0x8 => SenseKey::BlankCheck,
        0xa => SenseKey::CopyAborted,
        0xb => SenseKey::AbortedCommand,
        0xd => SenseKey::VolumeOverflow,
        0xe => SenseKey::Miscompare,
        _ => return None,
    })
}

/// Encode a reply.
pub fn encode_reply(r: &Reply) -> Bytes {
    let mut b = vec![0u8; HEAD];
    b[1..5].copy_from_slice(&r.block_len.to_be_bytes());
    if let Some(s) = &r.sense {
        b[0] = 1;
        b[5] = s.key as u8;
        b[6] = s.asc;
        b[7] = s.ascq;
        b[8] = s.stream;
        if let Some(i) = s.info {
            b[9] = 1;
            b[10..18].copy_from_slice(&i.to_be_bytes());
        }
        if let Some(f) = s.field {
            b[18] = 1 | (u8::from(f.in_cdb) << 1);
            b[19..21].copy_from_slice(&f.byte.to_be_bytes());
            b[21] = f.bit.map_or(0xff, |x| x & 7);
        }
    }
    b.extend_from_slice(&r.data);
    Bytes::from(b)
}

/// Decode a reply; `None` for bytes that are not one.
pub fn decode_reply(b: &[u8]) -> Option<Reply> {
    let head = b.get(..HEAD)?;
    let block_len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    let sense = match head[0] {
        0 => None,
        1 => {
            let mut s = Sense::new(
                key_from(head[5])?,
                scsi_sbc::asc::AscAscq {
                    asc: head[6],
                    ascq: head[7],
                },
            );
            s.stream = head[8];
            if head[9] == 1 {
                let mut i = [0u8; 8];
                i.copy_from_slice(&head[10..18]);
                s.info = Some(u64::from_be_bytes(i));
            }
            if head[18] & 1 != 0 {
                s.field = Some(FieldPointer {
                    in_cdb: head[18] & 2 != 0,
                    byte: u16::from_be_bytes([head[19], head[20]]),
                    bit: (head[21] != 0xff).then_some(head[21]),
                });
            }
            Some(s)
        }
        _ => return None,
    };
    Some(Reply {
        data: b[HEAD..].to_vec(),
        sense,
        block_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let (cdb, data) = ([0x0a, 0, 0, 0, 4, 0], [1u8, 2, 3, 4]);
        let r = encode_request(&cdb, &data);
        assert_eq!(decode_request(&r), Some((&cdb[..], &data[..])));
        let reply = Reply {
            data: vec![9, 9],
            sense: Some(Sense {
                info: Some(0xffff_fffe),
                stream: 0x20,
                ..Sense::invalid_cdb_field(1, 0)
            }),
            block_len: 512,
        };
        assert_eq!(decode_reply(&encode_reply(&reply)), Some(reply));
        let good = Reply {
            data: vec![],
            sense: None,
            block_len: 0,
        };
        assert_eq!(decode_reply(&encode_reply(&good)), Some(good));
        assert_eq!(decode_reply(&[0u8; 5]), None);
        assert_eq!(decode_request(&[3, 1]), None);
    }
}
