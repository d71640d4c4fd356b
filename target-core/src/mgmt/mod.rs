//! The management model: every tgtadm request as a value, applied to the registry.
//!
//! - [`Request`] / [`Response`] / [`MgmtError`]: what `tgtadm` asks and what it gets.
//! - [`apply()`]: runs a request against a [`Core`](crate::Core). Opening a backing
//!   store is I/O, so it goes through the caller's [`StoreOpener`].
//! - [`show`]: tgt's `show` text, byte for byte.
//! - [`wire`]: the framing used on the control socket, sans-IO.
//! - [`path`]: where the control socket lives, decided the same way by daemon and CLI.

mod apply;
mod apply_admin;
mod apply_config;
mod apply_lu;
mod error;
pub mod path;
pub mod redact;
mod request;
mod response;
pub mod show;
pub mod stat;
pub mod wire;

pub use apply::apply;
pub use apply_config::{running_config, ConfigAction, ConfigReport};
pub use error::MgmtError;
pub use request::{Mode, Op, Request};
pub use response::Response;

use scsi_sbc::BlockStore;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything `logicalunit new` says about how to open an LU's backing store, so
/// that the opener (the I/O side) can apply it and a later re-open (resize, medium
/// change) opens the store the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSpec<'a> {
    /// `--bstype`, defaulted to `rdwr`.
    pub bstype: &'a str,
    /// `--backing-store`.
    pub path: &'a str,
    /// `--params readonly=1`: writes refused.
    pub readonly: bool,
    /// `--bsoflags`, canonical (`""`, `sync`, `direct`, `sync:direct`).
    pub oflags: &'a str,
    /// `--bsopts`, as given (`key=value;key=value`), empty when none.
    pub bsopts: &'a str,
    /// The LU's logical block size: O_DIRECT needs the medium to take I/O of it.
    pub block_size: u32,
}

impl<'a> StoreSpec<'a> {
    /// A plain read-write store with no flags or options: what tests and the demo use.
    pub fn plain(bstype: &'a str, path: &'a str) -> StoreSpec<'a> {
        StoreSpec {
            bstype,
            path,
            readonly: false,
            oflags: "",
            bsopts: "",
            block_size: 512,
        }
    }

    /// Whether `--bsoflags` holds `flag` (`sync`, `direct`).
    pub fn has_oflag(&self, flag: &str) -> bool {
        self.oflags.split(':').any(|f| f == flag)
    }
}

/// A backing store type the daemon can open, as `system show` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingStoreType {
    /// `--bstype` name (`rdwr`, `null`, ...).
    pub name: String,
    /// `--bsoflags` it supports, tgt's spelling (`sync:direct`), empty when none.
    pub oflags: String,
}

/// The I/O [`apply()`] needs done: opening backing stores and, for `--mode portal`
/// and `--mode lld`, starting and stopping listeners. The daemon implements it
/// with the `backends` crate and real sockets; tests use fakes. Keeping it a trait
/// keeps the core free of files and sockets.
pub trait StoreOpener {
    /// Open the store `spec` names (its type already defaulted to `rdwr`).
    /// The error text is reported to `tgtadm` after "invalid request: ".
    fn open(&self, spec: &StoreSpec<'_>) -> Result<Arc<dyn BlockStore>, String>;

    /// The types [`open`](StoreOpener::open) accepts, for `system show`.
    fn backing_stores(&self) -> Vec<BackingStoreType> {
        ["rdwr", "memory", "null"]
            .into_iter()
            .map(|name| BackingStoreType {
                name: name.into(),
                oflags: String::new(),
            })
            .collect()
    }

    /// Start listening on `addr` now; the answer is the bound address (a port of 0
    /// resolved). The error text is logged; tgtadm gets tgt's "invalid request".
    /// The default refuses: an opener without sockets (tests, tools) has none.
    fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, String> {
        Err(format!("cannot listen on {addr}: no listener support"))
    }

    /// Stop listening on `addr`; connections accepted there stay up, as in tgt.
    fn unlisten(&self, addr: SocketAddr) {
        let _ = addr;
    }

    /// Whether `path` names something a store can be made of: it exists and is not
    /// a directory. tgt-admin skips (and does not number) a store that fails this
    /// test before it asks tgtd for the LU. The default says yes: an opener without
    /// files lets [`open`](StoreOpener::open) decide.
    fn store_exists(&self, path: &str) -> bool {
        let _ = path;
        true
    }
}
