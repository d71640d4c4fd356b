//! iSNS (RFC 4171) registration of the target with an iSNS server, sans-IO.
//!
//! tgt registers its targets with one iSNS server when `tgtadm --mode sys --op update
//! --name iSNS --value On` (or `iSNS On` in targets.conf) is given with an
//! `iSNSServerIP`: one Network Entity (tgt uses the local IP address of the connection
//! to the server as Entity Identifier) with every listening Portal and one iSCSI
//! Storage Node per target. This module is that client, shaped like the rest of the
//! core: the adapter owns the TCP connection and the clock, feeds bytes and `now` in,
//! and drains what to send.
//!
//! - [`codec`]: the 12-byte iSNSP PDU header (RFC 4171 §5.1) and TLV attributes
//!   (§5.6.1), message framing with multi-PDU reassembly.
//! - [`message`]: the requests tgt sends (DevAttrReg, DevDereg, SCNReg, DevAttrQry
//!   for the Registration Period and for a target's initiators) and the ESIRsp and
//!   SCNRsp answers.
//! - [`response`]: response parsing and [`IsnsError`].
//! - [`client`]: [`Client`], the state machine that keeps the server's view equal to
//!   the wanted [`EntityView`], registers for SCNs and learns the access lists.
//! - [`scn`]: State Change Notifications and [`ScnConnection`], one connection the
//!   server opened to our SCN port.
//! - [`access`]: iSNSAccessControl, [`AccessMap`] (target → allowed initiators).
//! - [`settings`]: the `iSNS*` administration settings ([`IsnsSettings`]) and the
//!   shared [`IsnsState`] that login and SendTargets consult.

pub mod access;
pub mod client;
pub mod codec;
pub mod message;
pub mod response;
pub mod scn;
pub mod settings;

pub use access::AccessMap;
pub use client::{Client, ClientConfig, IsnsEvent};
pub use codec::{Attr, Flags, FunctionId, Header, Message, MessageDecoder, Tag};
pub use message::{EntityView, Node};
pub use response::{IsnsError, Response, Status};
pub use scn::{Scn, ScnConnection};
pub use settings::{IsnsSettings, IsnsState};

/// The iSNSP version this client speaks (RFC 4171 §5.1.1).
pub const ISNSP_VERSION: u16 = 1;

/// The iSNS server's well-known TCP port (RFC 4171 §5; tgt's `ISNS_PORT`).
pub const ISNS_PORT: u16 = 3205;

/// Entity Protocol value for iSCSI (RFC 4171 §6.2.2).
pub const ENTITY_PROTOCOL_ISCSI: u32 = 2;

/// iSCSI Node Type bit for a target (RFC 4171 §6.4.2).
pub const NODE_TYPE_TARGET: u32 = 1;

/// iSCSI Node Type bit for an initiator (RFC 4171 §6.4.2).
pub const NODE_TYPE_INITIATOR: u32 = 2;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod scn_tests;
