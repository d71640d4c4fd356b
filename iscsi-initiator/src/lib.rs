//! Sans-IO iSCSI initiator (RFC 7143) over [`iscsi_proto`].
//!
//! A [`Session`] is one connection of a single-connection session: it logs in
//! (negotiation, CHAP one-way or mutual), runs SendTargets discovery, sends SCSI
//! commands inside the target's CmdSN window, moves write data as immediate data,
//! unsolicited Data-Out and answers to R2Ts, reassembles Data-In (status in the last
//! Data-In included), answers target NOP-In pings, and sends task management
//! functions and the logout.
//!
//! Nothing here touches a socket, a clock, a thread or OS randomness: bytes come in
//! through [`Session::handle_input`], PDUs go out through [`Session::poll_transmit`],
//! results come out of [`Session::poll_event`], and time is an argument. The same
//! state machine therefore drives a mio load generator, a tokio client or an
//! in-memory test against the target core.
//!
//! ```
//! # #[allow(clippy::disallowed_methods)]
//! # let now = std::time::Instant::now();
//! use iscsi_initiator::{cdb, Command, Config, DataDirection, Session, State};
//!
//! let cfg = Config::normal("iqn.2024-01.com.example:ini", "iqn.2024-01.com.example:disk");
//! let mut s = Session::new(cfg, now);
//! // The first login request is ready to be written to the socket.
//! let first = s.poll_transmit().expect("login request");
//! assert_eq!(first.header[0] & 0x3f, 0x03);
//! assert_eq!(s.state(), State::Login);
//! // Commands wait for the login to finish.
//! let read = Command::new(1, &cdb::read16(0, 8), DataDirection::Read(4096));
//! assert!(s.submit(read).is_err());
//! // A real driver now loops: write `poll_transmit()` PDUs, feed what the socket
//! // reads to `handle_input(&bytes)`, and act on `poll_event()`.
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod cdb;
mod config;
mod error;
mod login;
mod reassign;
mod recovery;
mod sense;
mod session;

pub use config::{Chap, Config, MutualChap};
pub use error::Error;
pub use iscsi_proto::keys::SessionParams;
pub use iscsi_proto::pdu::{EncodedPdu, TaskAttr};
pub use iscsi_proto::{Isid, Itt, SerialNumber};
pub use recovery::{GAP_RETRY_AFTER, RECOVERY_TICK, RETRY_AFTER};
pub use sense::Sense;
pub use session::{
    Command, Completion, DataDirection, DiscoveredTarget, Event, Residual, Session, State,
    TmfFunction,
};
