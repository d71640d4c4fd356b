//! Typed PDUs for every RFC 7143 opcode, and their encoding.
//!
//! [`Pdu::decode`] turns one whole PDU (header, AHS and data segment already split by
//! [`crate::framing::PduDecoder`]) into a typed value; [`Pdu::encode`] produces the
//! header bytes and leaves the data segment as the same `Bytes` it was given, so a
//! READ payload reaches the socket without a copy.

pub mod bhs;
mod misc;
mod scsi;
mod session;

pub use misc::{
    reject_reason, AsyncMessage, NopIn, NopOut, Reject, SnackRequest, TaskMgmtRequest,
    TaskMgmtResponse,
};
pub use scsi::{DataIn, DataOut, R2t, ScsiCommand, ScsiResponse, TaskAttr};
pub use session::{
    LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, Stage, TextRequest, TextResponse,
};

use crate::digest;
use bhs::{pad_len, Bhs, BhsMut, BHS_LEN};
use bytes::{BufMut, Bytes, BytesMut};

/// Why bytes could not be decoded into a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The opcode is not one RFC 7143 defines for this direction. Answer: Reject,
    /// reason "command not supported"; the stream stays in sync.
    #[error("unknown opcode {opcode:#04x}")]
    UnknownOpcode {
        /// The opcode.
        opcode: u8,
        /// The 48-byte header, for the Reject's data segment.
        header: Bytes,
    },
    /// An AHS is malformed. Answer: Reject, reason "invalid PDU field".
    #[error("malformed additional header segment")]
    BadAhs,
    /// The header digest did not match. Answer (RFC 7143 §7.8): drop the connection, since
    /// no field of the header can be trusted, including its length.
    #[error("header digest mismatch: got {got:#010x}, computed {computed:#010x}")]
    HeaderDigest {
        /// Digest in the PDU.
        got: u32,
        /// Digest computed.
        computed: u32,
    },
    /// The data digest did not match. Answer: Reject with "data digest error"; the PDU is
    /// discarded and the stream stays in sync.
    #[error("data digest mismatch: got {got:#010x}, computed {computed:#010x}")]
    DataDigest {
        /// Digest in the PDU.
        got: u32,
        /// Digest computed.
        computed: u32,
        /// The 48-byte header, for the Reject's data segment.
        header: Bytes,
    },
    /// The data segment is longer than we declared we accept. Answer: drop the connection
    /// (we would have to buffer unbounded data to resynchronise).
    #[error("data segment of {len} bytes exceeds the limit of {max}")]
    DataSegmentTooLong {
        /// Declared length.
        len: usize,
        /// Our MaxRecvDataSegmentLength (or login limit).
        max: usize,
    },
}

impl DecodeError {
    /// Whether the connection must be dropped (the byte stream cannot be trusted).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::HeaderDigest { .. } | DecodeError::DataSegmentTooLong { .. }
        )
    }
}

/// One iSCSI PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Pdu {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    SnackRequest(SnackRequest),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
}

/// An encoded PDU as three buffers for a vectored write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPdu {
    /// BHS, AHS and header digest.
    pub header: Bytes,
    /// The data segment, shared with its source (no copy).
    pub data: Bytes,
    /// Padding and data digest (at most 7 bytes).
    pub trailer: Bytes,
}

impl EncodedPdu {
    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.header.len() + self.data.len() + self.trailer.len()
    }

    /// Whether there is nothing to send (never true for a real PDU).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The PDU as one contiguous buffer (tests and small control PDUs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.header);
        v.extend_from_slice(&self.data);
        v.extend_from_slice(&self.trailer);
        v
    }
}

/// Which digests to add when encoding or check when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digests {
    /// HeaderDigest=CRC32C.
    pub header: bool,
    /// DataDigest=CRC32C.
    pub data: bool,
}

static PAD: [u8; 3] = [0; 3];

/// Bytes an arena for [`Pdu::encode_in`] takes at a time: room for ~170 headers.
const HEADER_ARENA: usize = 8 * 1024;

impl Pdu {
    /// Decode a PDU from its parts: the 48-byte BHS, the AHS bytes and the data segment
    /// (without padding or digests).
    pub fn decode(header: &[u8; BHS_LEN], ahs: &[u8], data: Bytes) -> Result<Pdu, DecodeError> {
        let h = Bhs(header);
        Ok(match h.opcode() {
            0x00 => Pdu::NopOut(NopOut::decode(h, data)),
            0x01 => Pdu::ScsiCommand(ScsiCommand::decode(h, ahs, data)?),
            0x02 => Pdu::TaskMgmtRequest(TaskMgmtRequest::decode(h)),
            0x03 => Pdu::LoginRequest(LoginRequest::decode(h, data)),
            0x04 => Pdu::TextRequest(TextRequest::decode(h, data)),
            0x05 => Pdu::DataOut(DataOut::decode(h, data)),
            0x06 => Pdu::LogoutRequest(LogoutRequest::decode(h)),
            0x10 => Pdu::SnackRequest(SnackRequest::decode(h)),
            0x20 => Pdu::NopIn(NopIn::decode(h, data)),
            0x21 => Pdu::ScsiResponse(ScsiResponse::decode(h, data)),
            0x22 => Pdu::TaskMgmtResponse(TaskMgmtResponse::decode(h)),
            0x23 => Pdu::LoginResponse(LoginResponse::decode(h, data)),
            0x24 => Pdu::TextResponse(TextResponse::decode(h, data)),
            0x25 => Pdu::DataIn(DataIn::decode(h, data)),
            0x26 => Pdu::LogoutResponse(LogoutResponse::decode(h)),
            0x31 => Pdu::R2t(R2t::decode(h)),
            0x32 => Pdu::AsyncMessage(AsyncMessage::decode(h, data)),
            0x3f => Pdu::Reject(Reject::decode(h, data)),
            opcode => {
                return Err(DecodeError::UnknownOpcode {
                    opcode,
                    header: Bytes::copy_from_slice(header),
                })
            }
        })
    }

    /// The data segment this PDU carries (empty for header-only PDUs).
    pub fn data(&self) -> Bytes {
        match self {
            Pdu::NopOut(p) => p.data.clone(),
            Pdu::ScsiCommand(p) => p.data.clone(),
            Pdu::LoginRequest(p) => p.data.clone(),
            Pdu::TextRequest(p) => p.data.clone(),
            Pdu::DataOut(p) => p.data.clone(),
            Pdu::NopIn(p) => p.data.clone(),
            Pdu::ScsiResponse(p) => p.data.clone(),
            Pdu::LoginResponse(p) => p.data.clone(),
            Pdu::TextResponse(p) => p.data.clone(),
            Pdu::DataIn(p) => p.data.clone(),
            Pdu::AsyncMessage(p) => p.data.clone(),
            Pdu::Reject(p) => p.data.clone(),
            Pdu::TaskMgmtRequest(_)
            | Pdu::LogoutRequest(_)
            | Pdu::SnackRequest(_)
            | Pdu::TaskMgmtResponse(_)
            | Pdu::LogoutResponse(_)
            | Pdu::R2t(_) => Bytes::new(),
        }
    }

    /// Encode: header bytes (with AHS and header digest), the data segment unchanged, and
    /// the padding/data-digest trailer.
    pub fn encode(&self, digests: Digests) -> EncodedPdu {
        self.encode_in(digests, &mut BytesMut::new())
    }

    /// [`Pdu::encode`] with the header written into `arena`, a buffer the caller keeps
    /// across PDUs: headers are then carved out of one allocation (refilled when it
    /// runs out) instead of one allocation each. The header shares the arena's
    /// storage until it is dropped.
    pub fn encode_in(&self, digests: Digests, arena: &mut BytesMut) -> EncodedPdu {
        self.encode_in_with(digests, arena, None)
    }

    /// [`Pdu::encode_in`] with the data segment's CRC32C (without padding) already
    /// known: computed where the data was produced, while it was in that CPU's
    /// cache, so the data digest costs no pass over the data here. Debug builds
    /// check it.
    pub fn encode_in_with(
        &self,
        digests: Digests,
        arena: &mut BytesMut,
        data_crc: Option<u32>,
    ) -> EncodedPdu {
        let mut bhs = [0u8; BHS_LEN];
        let mut h = BhsMut(&mut bhs);
        let mut ahs = Vec::new();
        match self {
            Pdu::NopOut(p) => p.encode(&mut h),
            Pdu::ScsiCommand(p) => ahs = p.encode(&mut h),
            Pdu::TaskMgmtRequest(p) => p.encode(&mut h),
            Pdu::LoginRequest(p) => p.encode(&mut h),
            Pdu::TextRequest(p) => p.encode(&mut h),
            Pdu::DataOut(p) => p.encode(&mut h),
            Pdu::LogoutRequest(p) => p.encode(&mut h),
            Pdu::SnackRequest(p) => p.encode(&mut h),
            Pdu::NopIn(p) => p.encode(&mut h),
            Pdu::ScsiResponse(p) => p.encode(&mut h),
            Pdu::TaskMgmtResponse(p) => p.encode(&mut h),
            Pdu::LoginResponse(p) => p.encode(&mut h),
            Pdu::TextResponse(p) => p.encode(&mut h),
            Pdu::DataIn(p) => p.encode(&mut h),
            Pdu::LogoutResponse(p) => p.encode(&mut h),
            Pdu::R2t(p) => p.encode(&mut h),
            Pdu::AsyncMessage(p) => p.encode(&mut h),
            Pdu::Reject(p) => p.encode(&mut h),
        }
        let data = self.data();
        h.set_total_ahs_len(ahs.len());
        h.set_data_segment_len(data.len());
        // The arena holds nothing between calls (each call splits off what it wrote).
        debug_assert!(arena.is_empty(), "encode_in arena must be empty");
        arena.clear();
        // Header, its digest, and the padding and digest of the data.
        let need = BHS_LEN + ahs.len() + 4 + 7;
        if arena.capacity() - arena.len() < need {
            arena.reserve(need.max(HEADER_ARENA));
        }
        arena.put_slice(&bhs);
        arena.put_slice(&ahs);
        if digests.header {
            let crc = digest::crc32c(arena);
            arena.put_u32_le(crc);
        }
        let header = arena.split();
        let pad = pad_len(data.len());
        let trailer = if digests.data && !data.is_empty() {
            // Carved from the arena too: no allocation per PDU.
            arena.put_slice(&PAD[..pad]);
            let data_crc = match data_crc {
                Some(c) => {
                    debug_assert_eq!(c, digest::crc32c(&data), "precomputed data CRC");
                    c
                }
                None => digest::crc32c(&data),
            };
            let crc = digest::crc32c_append(data_crc, &PAD[..pad]);
            arena.put_u32_le(crc);
            arena.split().freeze()
        } else {
            Bytes::from_static(&PAD[..pad])
        };
        EncodedPdu {
            header: header.freeze(),
            data,
            trailer,
        }
    }

    /// The opcode of this PDU.
    pub fn opcode(&self) -> u8 {
        match self {
            Pdu::NopOut(_) => 0x00,
            Pdu::ScsiCommand(_) => 0x01,
            Pdu::TaskMgmtRequest(_) => 0x02,
            Pdu::LoginRequest(_) => 0x03,
            Pdu::TextRequest(_) => 0x04,
            Pdu::DataOut(_) => 0x05,
            Pdu::LogoutRequest(_) => 0x06,
            Pdu::SnackRequest(_) => 0x10,
            Pdu::NopIn(_) => 0x20,
            Pdu::ScsiResponse(_) => 0x21,
            Pdu::TaskMgmtResponse(_) => 0x22,
            Pdu::LoginResponse(_) => 0x23,
            Pdu::TextResponse(_) => 0x24,
            Pdu::DataIn(_) => 0x25,
            Pdu::LogoutResponse(_) => 0x26,
            Pdu::R2t(_) => 0x31,
            Pdu::AsyncMessage(_) => 0x32,
            Pdu::Reject(_) => 0x3f,
        }
    }
}
