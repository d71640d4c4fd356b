//! Opening backing stores for the management model, with the `backends` crate.

use backends::{open_store, BsType, OpenOptions};
use scsi_sbc::BlockStore;
use std::sync::Arc;
use target_core::mgmt::StoreOpener;

/// The daemon's [`StoreOpener`]: `rdwr` files and block devices, `memory`, `null`.
#[derive(Debug, Default, Clone, Copy)]
pub struct BackendsOpener;

impl StoreOpener for BackendsOpener {
    fn open(
        &self,
        bstype: &str,
        path: &str,
        readonly: bool,
    ) -> Result<Arc<dyn BlockStore>, String> {
        let ty: BsType = bstype
            .parse()
            .map_err(|e: backends::BackendError| e.to_string())?;
        open_store(ty, path, &OpenOptions { readonly }).map_err(|e| e.to_string())
    }

    fn store_exists(&self, path: &str) -> bool {
        std::fs::metadata(path).is_ok_and(|m| !m.is_dir())
    }
}
