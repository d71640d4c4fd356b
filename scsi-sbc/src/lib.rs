//! Sans-IO SCSI block device: SPC/SBC command dispatch for an iSCSI target.
//!
//! This crate performs no I/O. A target hands it a CDB and the logical unit's
//! configuration; it answers with a [`Plan`]: either a finished [`Outcome`]
//! (status, data-in, sense) or a [`BlockOp`] for the caller to run against the
//! backing store. When the block operation completes the caller feeds the
//! result to [`complete`] and gets the [`Outcome`] to send.
//!
//! Flow for one command:
//! 1. [`prepare`] checks the CDB before any data is solicited and tells how many
//!    data-out bytes the command needs (so the transport can send R2Ts).
//! 2. [`execute`] runs the command with the collected data-out bytes.
//! 3. For [`Plan::Io`], [`complete`] turns the store's result into the outcome.
//!
//! Raw CDB bytes are parsed once into a typed [`Cdb`] ([`cdb`] module); a malformed
//! CDB becomes a [`CdbError`], which converts into the [`Sense`] to report.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod alua;
pub mod asc;
pub mod block_op;
pub mod cdb;
pub mod cdb_ext;
pub mod dispatch;
pub mod gateway_report;
pub mod inquiry;
pub mod lu;
pub mod mode;
pub mod pr;
pub mod pr_persist;
pub mod pr_shared;
pub mod report_luns;
pub mod rw;
pub mod sense;
pub mod state;
pub mod store;
pub mod ua;

mod capacity;
mod opcodes;
mod sbc_ext;
mod vpd;
mod xcopy;

#[cfg(test)]
mod test_util;

pub use block_op::{BlockOp, CopySegment, IoErrorKind};
pub use cdb::{Cdb, CdbError};
pub use dispatch::{
    complete, complete_in, execute, execute_in, failure_sense, prepare, prepare_in, Outcome, Plan,
    Prepared, ScsiStatus, MAX_TRANSFER_BYTES,
};
pub use lu::{DeviceType, Geometry, LuConfig, LuContext, LuIdentity, Nexus};
pub use sense::{FieldPointer, Sense, SenseKey};
pub use state::LuState;
pub use store::{BlockStore, OpDone, RingFile, StoreLayer};
pub use xcopy::{check_copy_target, copy_refused};
