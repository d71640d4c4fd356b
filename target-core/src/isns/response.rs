//! Responses from the iSNS server (RFC 4171 §5.7) and the errors of this module.

use super::codec::{decode_attrs, Attr, FunctionId, Message, Tag};
use bytes::Buf;

/// Why iSNSP bytes could not be used. Any of these ends the connection: the stream
/// position can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IsnsError {
    /// The header's version is not 1 (§5.1.1).
    #[error("iSNSP version {0} is not supported")]
    UnsupportedVersion(u16),
    /// A PDU of a multi-PDU message came out of order or for another transaction.
    #[error("PDU sequence {got} of transaction {transaction_id} where {expected} was expected")]
    OutOfSequence {
        /// Transaction ID of the offending PDU.
        transaction_id: u16,
        /// The sequence ID that should have come.
        expected: u16,
        /// The one that came.
        got: u16,
    },
    /// The joined payload is larger than we accept.
    #[error("iSNSP message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// Payload bytes so far.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The server sent an authentication block, which we never ask for.
    #[error("authentication blocks are not supported")]
    AuthenticationBlock,
    /// A response payload shorter than its 4-byte status code (§5.7).
    #[error("response without a status code ({len} payload bytes)")]
    MissingStatus {
        /// Payload length.
        len: usize,
    },
    /// Fewer than 8 bytes left where an attribute header should be.
    #[error("truncated attribute header ({left} bytes left)")]
    TruncatedAttribute {
        /// Bytes left in the payload.
        left: usize,
    },
    /// An attribute length that is not a multiple of 4 (§5.6.1).
    #[error("attribute {tag} has length {len}, not a multiple of 4")]
    MisalignedAttribute {
        /// The attribute tag.
        tag: u32,
        /// Its length field.
        len: u32,
    },
    /// An attribute longer than what is left of the payload.
    #[error("attribute {tag} of {len} bytes overruns the payload ({left} bytes left)")]
    AttributeOverrun {
        /// The attribute tag.
        tag: u32,
        /// Its length field.
        len: u32,
        /// Bytes left after its header.
        left: usize,
    },
}

/// A response status code (RFC 4171 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    /// Successful.
    pub const SUCCESS: Status = Status(0);
    /// Source Unknown: the server does not know the Source attribute's node.
    pub const SOURCE_UNKNOWN: Status = Status(6);
    /// No Such Entry: what a deregistration names is not registered.
    pub const NO_SUCH_ENTRY: Status = Status(9);

    /// Whether the request succeeded.
    pub fn is_success(self) -> bool {
        self == Status::SUCCESS
    }

    /// RFC 4171's text for the code.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Successful",
            1 => "Unknown Error",
            2 => "Message Format Error",
            3 => "Invalid Registration",
            4 => "RESERVED",
            5 => "Invalid Query",
            6 => "Source Unknown",
            7 => "Source Absent",
            8 => "Source Unauthorized",
            9 => "No Such Entry",
            10 => "Version Not Supported",
            11 => "Internal Error",
            12 => "Busy",
            13 => "Option Not Understood",
            14 => "Invalid Update",
            15 => "Message (FUNCTION_ID) Not Supported",
            16 => "SCN Event Rejected",
            17 => "SCN Registration Rejected",
            18 => "Attribute Not Implemented",
            19 => "FC_DOMAIN_ID Not Available",
            20 => "FC_DOMAIN_ID Not Allocated",
            21 => "ESI Not Available",
            22 => "Invalid Deregistration",
            23 => "Registration Feature Not Supported",
            _ => "undefined status",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// A parsed response: status code, then the attributes (§5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The response function (request function with bit 15 set).
    pub function: FunctionId,
    /// Matches the request.
    pub transaction_id: u16,
    /// The server's verdict.
    pub status: Status,
    /// The attributes after the status; empty when a failed response carried none
    /// (or ones we could not read: a failure is reported on its status alone).
    pub attrs: Vec<Attr>,
}

impl Response {
    /// Parse a response message.
    pub fn parse(msg: &Message) -> Result<Response, IsnsError> {
        let mut p = msg.payload.clone();
        if p.len() < 4 {
            return Err(IsnsError::MissingStatus { len: p.len() });
        }
        let status = Status(p.get_u32());
        let attrs = match decode_attrs(&p) {
            Ok(a) => a,
            Err(_) if !status.is_success() => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Response {
            function: msg.function,
            transaction_id: msg.transaction_id,
            status,
            attrs,
        })
    }

    /// The first attribute with `tag`.
    pub fn attr(&self, tag: Tag) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.tag == tag)
    }
}
