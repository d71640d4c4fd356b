//! Opening backing stores for the management model, with the `backends` crate.

use backends::{open_store, BsType, OpenOptions};
use scsi_sbc::BlockStore;
use std::sync::Arc;
use target_core::mgmt::{StoreOpener, StoreSpec};

/// The daemon's [`StoreOpener`]: `rdwr` files and block devices, `memory`, `null`,
/// and `fault` around any of them (`--bsopts "inner=TYPE;rules=RULES"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct BackendsOpener;

impl StoreOpener for BackendsOpener {
    fn open(&self, spec: &StoreSpec<'_>) -> Result<Arc<dyn BlockStore>, String> {
        let ty: BsType = spec
            .bstype
            .parse()
            .map_err(|e: backends::BackendError| e.to_string())?;
        if !spec.bsopts.is_empty() && ty != BsType::Fault {
            // None of these types takes options (tgt's are for rbd and glfs); tgt
            // ignores them silently, we say so rather than pretend they apply.
            return Err(backends::BackendError::BadOptions {
                text: spec.bsopts.to_owned(),
                why: format!("the {ty} backing store takes no options"),
            }
            .to_string());
        }
        let opts = OpenOptions {
            readonly: spec.readonly,
            block_size: spec.block_size,
            ..OpenOptions::default()
        }
        .with_oflags(spec.oflags)
        .map_err(|e| e.to_string())?;
        if ty == BsType::Fault {
            let store = backends::FaultStore::open(spec.path, spec.bsopts, &opts)
                .map_err(|e| e.to_string())?;
            return Ok(Arc::new(store));
        }
        open_store(ty, spec.path, &opts).map_err(|e| e.to_string())
    }

    /// tgt lists `rdwr (bsoflags sync:direct)`: the types that take open flags.
    fn backing_stores(&self) -> Vec<target_core::mgmt::BackingStoreType> {
        [
            ("rdwr", "sync:direct"),
            ("aio", "sync:direct"),
            ("memory", ""),
            ("null", ""),
            ("fault", "sync:direct"),
        ]
        .into_iter()
        .map(|(name, oflags)| target_core::mgmt::BackingStoreType {
            name: name.into(),
            oflags: oflags.into(),
        })
        .collect()
    }

    fn store_exists(&self, path: &str) -> bool {
        std::fs::metadata(path).is_ok_and(|m| !m.is_dir())
    }
}
