//! Sans-IO iSCSI target core: the registry of targets and LUNs, the management model,
//! and the connection state machine that glues iSCSI to SCSI.
//!
//! Nothing here touches a socket, a file, a thread or a clock: adapters feed bytes,
//! completions and the current time in, and drain what to send, what I/O to run and
//! when to wake up.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod config;
mod core;
mod device;
pub mod hooks;
pub mod isns;
pub mod limits;
pub mod mcs;
pub mod metrics;
pub mod mgmt;
pub mod pace;
pub mod registry;
pub mod session;
mod taghash;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use crate::core::Core;
pub mod connection;
