//! Sans-IO iSCSI (RFC 7143): PDUs, framing, digests, text keys and login negotiation.
//!
//! Nothing here touches a socket, a clock or a thread. Bytes come in as buffers and go
//! out as [`pdu::EncodedPdu`]s, so the crate serves a target, an initiator, a proxy or a
//! test tool on any runtime.
//!
//! ```
//! use bytes::BytesMut;
//! use iscsi_proto::framing::PduDecoder;
//! use iscsi_proto::pdu::{Digests, NopOut, Pdu};
//! use iscsi_proto::{Itt, LunField, SerialNumber, Ttt};
//!
//! let ping = Pdu::NopOut(NopOut {
//!     immediate: true,
//!     lun: LunField::default(),
//!     itt: Itt(7),
//!     ttt: Ttt::RESERVED,
//!     cmd_sn: SerialNumber(1),
//!     exp_stat_sn: SerialNumber(1),
//!     data: bytes::Bytes::from_static(b"hello"),
//! });
//! let mut wire = BytesMut::from(&ping.encode(Digests::default()).to_vec()[..]);
//! let back = PduDecoder::new(8192).decode(&mut wire).unwrap().unwrap();
//! assert_eq!(back, ping);
//! assert!(wire.is_empty());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod digest;
pub mod framing;
pub mod keys;
pub mod login;
pub mod pdu;
pub mod serial;
pub mod text;
pub mod types;

#[cfg(any(test, feature = "proptest"))]
pub mod strategies;

pub use serial::SerialNumber;
pub use types::{Isid, Itt, LunField, Tsih, Ttt};
