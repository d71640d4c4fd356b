//! iSNSP framing: the PDU header (RFC 4171 §5.1), TLV attributes (§5.6.1) and
//! messages spread over one or more PDUs (§5.1.2, §5.1.4).
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+---------------+---------------+
//! |        iSNSP VERSION          |         FUNCTION ID           |
//! |         PDU LENGTH            |            FLAGS              |
//! |       TRANSACTION ID          |          SEQUENCE ID          |
//! |                  PDU PAYLOAD (PDU LENGTH bytes)               |
//! +---------------+---------------+---------------+---------------+
//! attribute:  TAG (4) | LENGTH (4, a multiple of 4) | VALUE (LENGTH bytes)
//! ```

use super::response::IsnsError;
use super::ISNSP_VERSION;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::net::IpAddr;

/// An iSNSP Function ID (RFC 4171 §5.1.3); responses have bit 15 set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FunctionId(pub u16);

impl FunctionId {
    /// Device Attribute Registration Request.
    pub const DEV_ATTR_REG: FunctionId = FunctionId(0x0001);
    /// Device Attribute Query Request.
    pub const DEV_ATTR_QRY: FunctionId = FunctionId(0x0002);
    /// Device Deregister Request.
    pub const DEV_DEREG: FunctionId = FunctionId(0x0004);
    /// SCN Register Request.
    pub const SCN_REG: FunctionId = FunctionId(0x0005);
    /// SCN Deregister Request.
    pub const SCN_DEREG: FunctionId = FunctionId(0x0006);
    /// State Change Notification (server to client).
    pub const SCN: FunctionId = FunctionId(0x0008);
    /// Entity Status Inquiry (server to client).
    pub const ESI: FunctionId = FunctionId(0x000d);
    /// Bit 15: the message is a response.
    const RESPONSE_BIT: u16 = 0x8000;

    /// The response function of this request (`DevAttrReg` → `DevAttrRegRsp`).
    pub fn response(self) -> FunctionId {
        FunctionId(self.0 | Self::RESPONSE_BIT)
    }

    /// Whether this is a response function.
    pub fn is_response(self) -> bool {
        self.0 & Self::RESPONSE_BIT != 0
    }

    /// RFC 4171's name, for logs.
    pub fn name(self) -> &'static str {
        match self.0 & !Self::RESPONSE_BIT {
            0x0001 => "DevAttrReg",
            0x0002 => "DevAttrQry",
            0x0003 => "DevGetNext",
            0x0004 => "DevDereg",
            0x0005 => "SCNReg",
            0x0006 => "SCNDereg",
            0x0007 => "SCNEvent",
            0x0008 => "SCN",
            0x000d => "ESI",
            0x000e => "Heartbeat",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for FunctionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rsp = if self.is_response() { "Rsp" } else { "" };
        write!(f, "{}{rsp} ({:#06x})", self.name(), self.0)
    }
}

/// The header's Flags field (RFC 4171 §5.1.4; the RFC numbers its bits 16..31 from
/// the most significant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// Bit 16: sender is the iSNS client.
    pub const CLIENT: Flags = Flags(0x8000);
    /// Bit 17: sender is the iSNS server.
    pub const SERVER: Flags = Flags(0x4000);
    /// Bit 18: an authentication block follows the payload.
    pub const AUTH: Flags = Flags(0x2000);
    /// Bit 19: replace the registration (DevAttrReg only).
    pub const REPLACE: Flags = Flags(0x1000);
    /// Bit 20: last PDU of the message.
    pub const LAST_PDU: Flags = Flags(0x0800);
    /// Bit 21: first PDU of the message.
    pub const FIRST_PDU: Flags = Flags(0x0400);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// The 12-byte iSNSP PDU header (RFC 4171 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// iSNSP Version: 1.
    pub version: u16,
    /// What the message is.
    pub function: FunctionId,
    /// Length of the payload that follows, in bytes (authentication block excluded).
    pub pdu_length: u16,
    /// Client/server, replace, first/last PDU.
    pub flags: Flags,
    /// Matches a response to its request; the same in every PDU of a message.
    pub transaction_id: u16,
    /// 0 for the first PDU of a message, one more for each following PDU.
    pub sequence_id: u16,
}

impl Header {
    /// Encoded size.
    pub const LEN: usize = 12;

    /// Append the header to `out`.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16(self.version);
        out.put_u16(self.function.0);
        out.put_u16(self.pdu_length);
        out.put_u16(self.flags.0);
        out.put_u16(self.transaction_id);
        out.put_u16(self.sequence_id);
    }

    /// Read a header from the first 12 bytes of `b`; `None` when shorter.
    pub fn decode(mut b: &[u8]) -> Option<Header> {
        if b.len() < Self::LEN {
            return None;
        }
        Some(Header {
            version: b.get_u16(),
            function: FunctionId(b.get_u16()),
            pdu_length: b.get_u16(),
            flags: Flags(b.get_u16()),
            transaction_id: b.get_u16(),
            sequence_id: b.get_u16(),
        })
    }
}

/// An attribute tag (RFC 4171 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    /// Separates message key attributes from operating attributes (§5.6.5).
    pub const DELIMITER: Tag = Tag(0);
    /// Entity Identifier (§6.2.1), a string.
    pub const ENTITY_IDENTIFIER: Tag = Tag(1);
    /// Entity Protocol (§6.2.2), 4 bytes.
    pub const ENTITY_PROTOCOL: Tag = Tag(2);
    /// Timestamp (tag 4), 8 bytes; SCNs carry one.
    pub const TIMESTAMP: Tag = Tag(4);
    /// Registration Period (§6.2.6), 4 bytes, seconds.
    pub const REGISTRATION_PERIOD: Tag = Tag(6);
    /// Portal IP Address (§6.3.1), 16 bytes (IPv4 as IPv4-mapped IPv6).
    pub const PORTAL_IP_ADDRESS: Tag = Tag(16);
    /// Portal TCP/UDP Port (§6.3.2), 4 bytes.
    pub const PORTAL_PORT: Tag = Tag(17);
    /// ESI Port (§6.3.5), 4 bytes.
    pub const ESI_PORT: Tag = Tag(20);
    /// SCN Port (a Portal attribute, §6.3), 4 bytes: where the portal takes SCN connections.
    pub const SCN_PORT: Tag = Tag(23);
    /// iSCSI Name (§6.4.1), a string.
    pub const ISCSI_NAME: Tag = Tag(32);
    /// iSCSI Node Type (§6.4.2), 4-byte bitmap.
    pub const ISCSI_NODE_TYPE: Tag = Tag(33);
    /// iSCSI Alias (§6.4.3), a string.
    pub const ISCSI_ALIAS: Tag = Tag(34);
    /// iSCSI SCN Bitmap (§6.4.4), 4 bytes: which changes a node is told about.
    pub const ISCSI_SCN_BITMAP: Tag = Tag(35);
}

/// One TLV attribute. `value` holds exactly the bytes on the wire, padding included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Which attribute.
    pub tag: Tag,
    /// The value, a multiple of 4 bytes long (empty for a delimiter or a query key).
    pub value: Bytes,
}

impl Attr {
    /// A string attribute: UTF-8, NUL-terminated, NUL-padded to 4 bytes (§5.6.1).
    pub fn string(tag: Tag, s: &str) -> Attr {
        let mut v = Vec::with_capacity(s.len() + 4);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        while v.len() & 3 != 0 {
            v.push(0);
        }
        Attr {
            tag,
            value: v.into(),
        }
    }

    /// A 4-byte big-endian integer attribute.
    pub fn u32(tag: Tag, n: u32) -> Attr {
        Attr {
            tag,
            value: Bytes::copy_from_slice(&n.to_be_bytes()),
        }
    }

    /// A 16-byte address attribute; IPv4 goes as IPv4-mapped IPv6 (§6.3.1).
    pub fn ip(tag: Tag, ip: IpAddr) -> Attr {
        let v6 = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        Attr {
            tag,
            value: Bytes::copy_from_slice(&v6.octets()),
        }
    }

    /// A zero-length attribute: the delimiter, or an attribute a query asks for.
    pub fn empty(tag: Tag) -> Attr {
        Attr {
            tag,
            value: Bytes::new(),
        }
    }

    /// The value as a 4-byte integer, when it is one.
    pub fn as_u32(&self) -> Option<u32> {
        let b: [u8; 4] = self.value.as_ref().try_into().ok()?;
        Some(u32::from_be_bytes(b))
    }

    /// The value as a string (up to the first NUL), when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        let end = self
            .value
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.value.len());
        std::str::from_utf8(&self.value[..end]).ok()
    }

    /// The value as an address (16 bytes; IPv4-mapped comes back as IPv4).
    pub fn as_ip(&self) -> Option<IpAddr> {
        let b: [u8; 16] = self.value.as_ref().try_into().ok()?;
        let v6 = std::net::Ipv6Addr::from(b);
        Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        })
    }

    /// Append tag, length and value, padding the value to 4 bytes.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        let pad = (4 - self.value.len() % 4) % 4;
        out.put_u32(self.tag.0);
        out.put_u32((self.value.len() + pad) as u32);
        out.put_slice(&self.value);
        out.put_bytes(0, pad);
    }
}

/// Encode `attrs` one after the other.
pub fn encode_attrs<B: BufMut>(attrs: &[Attr], out: &mut B) {
    for a in attrs {
        a.encode(out);
    }
}

/// Decode a run of attributes filling `b` exactly (§5.6.1).
pub fn decode_attrs(b: &Bytes) -> Result<Vec<Attr>, IsnsError> {
    let mut attrs = Vec::new();
    let mut off = 0usize;
    while off < b.len() {
        let left = b.len() - off;
        if left < 8 {
            return Err(IsnsError::TruncatedAttribute { left });
        }
        let mut h = &b[off..off + 8];
        let tag = Tag(h.get_u32());
        let len = h.get_u32();
        if len & 3 != 0 {
            return Err(IsnsError::MisalignedAttribute { tag: tag.0, len });
        }
        let start = off + 8;
        let end = start
            .checked_add(len as usize)
            .filter(|&e| e <= b.len())
            .ok_or(IsnsError::AttributeOverrun {
                tag: tag.0,
                len,
                left: b.len() - start,
            })?;
        attrs.push(Attr {
            tag,
            value: b.slice(start..end),
        });
        off = end;
    }
    Ok(attrs)
}

/// A whole iSNSP message: the payloads of its PDUs joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What the message is.
    pub function: FunctionId,
    /// The flags of its first PDU (first/last bits aside, the same in every PDU).
    pub flags: Flags,
    /// Transaction ID.
    pub transaction_id: u16,
    /// The joined payload.
    pub payload: Bytes,
}

/// Largest payload we put in one PDU: the 16-bit length, kept a multiple of 4.
pub const MAX_PDU_PAYLOAD: usize = 0xfffc;

impl Message {
    /// Append the message as PDUs to `out`: one PDU when the payload fits in
    /// [`MAX_PDU_PAYLOAD`], otherwise consecutive sequence IDs with the first and
    /// last PDU flagged (§5.1.2). `flags` should not carry FIRST/LAST; they are set here.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let chunks: Vec<&[u8]> = if self.payload.is_empty() {
            vec![&[]]
        } else {
            self.payload.chunks(MAX_PDU_PAYLOAD).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut flags = self.flags;
            if i == 0 {
                flags = flags | Flags::FIRST_PDU;
            }
            if i + 1 == n {
                flags = flags | Flags::LAST_PDU;
            }
            Header {
                version: ISNSP_VERSION,
                function: self.function,
                pdu_length: chunk.len() as u16,
                flags,
                transaction_id: self.transaction_id,
                // More than 65536 PDUs would be a message of 4 GiB.
                sequence_id: i as u16,
            }
            .encode(out);
            out.extend_from_slice(chunk);
        }
    }
}

/// Takes whole PDUs off the front of a receive buffer and joins multi-PDU messages.
#[derive(Debug)]
pub struct MessageDecoder {
    /// The message being joined: its first header, next sequence ID and payload.
    partial: Option<(Header, u16, BytesMut)>,
    max_message: usize,
}

impl Default for MessageDecoder {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_MESSAGE)
    }
}

impl MessageDecoder {
    /// tgt's receive buffer (`BUFSIZE`, 256 KiB): larger messages are refused.
    pub const DEFAULT_MAX_MESSAGE: usize = 1 << 18;

    /// A decoder refusing messages over `max_message` payload bytes.
    pub fn new(max_message: usize) -> Self {
        MessageDecoder {
            partial: None,
            max_message,
        }
    }

    /// The next complete message, taking its PDUs off the front of `buf`; `Ok(None)`
    /// when more bytes are needed. An error means the stream cannot be trusted any
    /// more: the caller drops the connection.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, IsnsError> {
        loop {
            let Some(h) = Header::decode(buf) else {
                return Ok(None);
            };
            if h.version != ISNSP_VERSION {
                return Err(IsnsError::UnsupportedVersion(h.version));
            }
            let total = Header::LEN + h.pdu_length as usize;
            if buf.len() < total {
                return Ok(None);
            }
            let mut pdu = buf.split_to(total);
            pdu.advance(Header::LEN);
            // An authentication block (flag bit 18) would follow the payload; we never
            // ask for one, and its length is not in the header, so we cannot skip it.
            if h.flags.contains(Flags::AUTH) {
                return Err(IsnsError::AuthenticationBlock);
            }
            let first = h.flags.contains(Flags::FIRST_PDU) || h.sequence_id == 0;
            let (head, payload) = match self.partial.take() {
                None if first => (h, pdu),
                None => {
                    return Err(IsnsError::OutOfSequence {
                        transaction_id: h.transaction_id,
                        expected: 0,
                        got: h.sequence_id,
                    })
                }
                Some((head, next, mut acc)) => {
                    if h.transaction_id != head.transaction_id || h.sequence_id != next {
                        return Err(IsnsError::OutOfSequence {
                            transaction_id: h.transaction_id,
                            expected: next,
                            got: h.sequence_id,
                        });
                    }
                    acc.unsplit(pdu);
                    (head, acc)
                }
            };
            if payload.len() > self.max_message {
                return Err(IsnsError::MessageTooLong {
                    len: payload.len(),
                    max: self.max_message,
                });
            }
            // A PDU with neither FIRST nor LAST set starting a message is taken as a
            // whole message: tgt's own parser ignores the flags, so servers tested only
            // against it may leave them out.
            let sloppy =
                h.flags.0 & (Flags::FIRST_PDU | Flags::LAST_PDU).0 == 0 && h.sequence_id == 0;
            if h.flags.contains(Flags::LAST_PDU) || sloppy {
                return Ok(Some(Message {
                    function: head.function,
                    flags: head.flags,
                    transaction_id: head.transaction_id,
                    payload: payload.freeze(),
                }));
            }
            let next = h
                .sequence_id
                .checked_add(1)
                .ok_or(IsnsError::OutOfSequence {
                    transaction_id: h.transaction_id,
                    expected: 0,
                    got: h.sequence_id,
                })?;
            self.partial = Some((head, next, payload));
        }
    }
}
