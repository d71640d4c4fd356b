//! Splitting a byte stream into PDUs: `&mut BytesMut` in, whole PDUs out.
//!
//! [`PduDecoder::decode`] takes one whole PDU off the front of the buffer, or returns
//! `Ok(None)` and leaves the buffer untouched when more bytes are needed. The data
//! segment comes out as a `Bytes` slice of the buffer (no copy).

use crate::digest;
use crate::pdu::bhs::{pad_len, Bhs, BHS_LEN};
use crate::pdu::{DecodeError, Digests, Pdu};
use bytes::{Buf, Bytes, BytesMut};

/// Stream decoder with the connection's digest settings and data segment limit.
#[derive(Debug, Clone)]
pub struct PduDecoder {
    /// Which digests the connection negotiated.
    pub digests: Digests,
    /// The largest data segment we accept (our MaxRecvDataSegmentLength; during login,
    /// the login limit).
    pub max_data_segment: usize,
}

impl PduDecoder {
    /// A decoder with no digests and the given data segment limit.
    pub fn new(max_data_segment: usize) -> Self {
        PduDecoder {
            digests: Digests::default(),
            max_data_segment,
        }
    }

    /// Total length on the wire of the PDU whose header starts `buf`, if the header is
    /// complete enough to tell.
    fn frame_len(&self, buf: &[u8]) -> Option<Result<(usize, usize, usize), DecodeError>> {
        if buf.len() < BHS_LEN {
            return None;
        }
        let mut hdr = [0u8; BHS_LEN];
        hdr.copy_from_slice(&buf[..BHS_LEN]);
        let h = Bhs(&hdr);
        let ahs = h.total_ahs_len();
        let dsl = h.data_segment_len();
        if dsl > self.max_data_segment {
            return Some(Err(DecodeError::DataSegmentTooLong {
                len: dsl,
                max: self.max_data_segment,
            }));
        }
        let hd = if self.digests.header { 4 } else { 0 };
        let dd = if self.digests.data && dsl > 0 { 4 } else { 0 };
        let total = BHS_LEN + ahs + hd + dsl + pad_len(dsl) + dd;
        Some(Ok((total, ahs, dsl)))
    }

    /// Bytes still missing before the PDU at the front of `buf` is whole: 0 when
    /// `buf` is empty, holds a whole PDU, or starts with a header that will not
    /// decode. An event loop can wait for that many (`SO_RCVLOWAT`) instead of
    /// waking for every segment of a large data PDU.
    pub fn missing(&self, buf: &[u8]) -> usize {
        if buf.is_empty() {
            return 0;
        }
        match self.frame_len(buf) {
            None => BHS_LEN - buf.len(),
            Some(Ok((total, ..))) => total.saturating_sub(buf.len()),
            Some(Err(_)) => 0,
        }
    }

    /// Take one PDU off the front of `buf`.
    ///
    /// `Ok(None)`: need more bytes (nothing consumed). `Err` with a non-fatal error: the
    /// PDU was consumed and should be answered with a Reject. A fatal error
    /// ([`DecodeError::is_fatal`]) means the connection must be dropped.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Pdu>, DecodeError> {
        let (total, ahs_len, dsl) = match self.frame_len(buf) {
            None => return Ok(None),
            Some(r) => r?,
        };
        if buf.len() < total {
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        let mut header = [0u8; BHS_LEN];
        header.copy_from_slice(&frame[..BHS_LEN]);
        let hlen = BHS_LEN + ahs_len;
        if self.digests.header {
            let computed = digest::crc32c(&frame[..hlen]);
            let got = u32::from_le_bytes([
                frame[hlen],
                frame[hlen + 1],
                frame[hlen + 2],
                frame[hlen + 3],
            ]);
            if got != computed {
                return Err(DecodeError::HeaderDigest { got, computed });
            }
        }
        let ahs = frame[BHS_LEN..hlen].to_vec();
        frame.advance(hlen + if self.digests.header { 4 } else { 0 });
        let padded = dsl + pad_len(dsl);
        let data: Bytes = if dsl == 0 {
            Bytes::new()
        } else {
            if self.digests.data {
                let computed = digest::crc32c(&frame[..padded]);
                let d = &frame[padded..padded + 4];
                let got = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                if got != computed {
                    return Err(DecodeError::DataDigest {
                        got,
                        computed,
                        header: Bytes::copy_from_slice(&header),
                    });
                }
            }
            frame.truncate(dsl);
            frame.freeze()
        };
        Pdu::decode(&header, &ahs, data).map(Some)
    }
}
