//! Opening backing stores for the management model, with the `backends` crate.

use backends::{open_store, BsType, OpenOptions};
use scsi_sbc::BlockStore;
use std::sync::Arc;
use target_core::mgmt::{StoreOpener, StoreSpec};

/// The daemon's [`StoreOpener`]: `rdwr` files and block devices, `memory`, `null`,
/// `fault` around any of them (`--bsopts "inner=TYPE;rules=RULES"`), and `rbd`
/// images (`--bsopts "conf=PATH;id=NAME;cluster=NAME;timeout=S"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct BackendsOpener;

impl BackendsOpener {
    /// Open the store `spec` names, without the threads of its own that
    /// `--bsopts nr_threads=N` asks for: those wrap it last ([`own_threads`]), around
    /// any wrapper the daemon adds, so that their jobs run the whole stack.
    pub fn open_parts(
        &self,
        spec: &StoreSpec<'_>,
    ) -> Result<(Arc<dyn BlockStore>, Option<usize>), String> {
        // A tape drive (`--device-type tape`): the image in tgt's format, or no tape.
        if spec.bstype == "ssc" {
            let store = if spec.path.is_empty() {
                backends::TapeStore::empty(spec.readonly)
            } else {
                backends::TapeStore::open(spec.path, spec.readonly).map_err(|e| e.to_string())?
            };
            return Ok((Arc::new(store), None));
        }
        // A medium changer (`--device-type changer`): its library. tgt opens the
        // backing file and ignores it; a missing one is refused the same way.
        if spec.bstype == "smc" {
            std::fs::metadata(spec.path)
                .map_err(|e| format!("cannot open backing store {}: {e}", spec.path))?;
            return Ok((Arc::new(backends::ChangerStore::new()), None));
        }
        let ty: BsType = spec
            .bstype
            .parse()
            .map_err(|e: backends::BackendError| e.to_string())?;
        let (bsopts, threads) =
            backends::pooled::take_nr_threads(spec.bsopts).map_err(|e| e.to_string())?;
        if !bsopts.is_empty() && !matches!(ty, BsType::Fault | BsType::Rbd) {
            // None of these types takes other options (tgt's are for rbd and glfs);
            // tgt ignores them silently, we say so rather than pretend they apply.
            return Err(backends::BackendError::BadOptions {
                text: spec.bsopts.to_owned(),
                why: format!("the {ty} backing store takes no options but nr_threads"),
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
        let store: Arc<dyn BlockStore> = if ty == BsType::Fault {
            Arc::new(
                backends::FaultStore::open(spec.path, &bsopts, &opts).map_err(|e| e.to_string())?,
            )
        } else if ty == BsType::Rbd {
            if !spec.oflags.is_empty() {
                return Err(backends::BackendError::BadOflags {
                    text: spec.oflags.to_owned(),
                }
                .to_string());
            }
            Arc::new(
                backends::RbdStore::open(spec.path, &bsopts, spec.readonly)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            open_store(ty, spec.path, &opts).map_err(|e| e.to_string())?
        };
        Ok((store, threads))
    }
}

/// `store` with `threads` I/O threads of its own (`--bsopts nr_threads=N`), or as it
/// is when none were asked for.
pub fn own_threads(
    store: Arc<dyn BlockStore>,
    threads: Option<usize>,
) -> Result<Arc<dyn BlockStore>, String> {
    match threads {
        None => Ok(store),
        Some(n) => Ok(Arc::new(
            backends::PooledStore::wrap(store, n).map_err(|e| e.to_string())?,
        )),
    }
}

impl StoreOpener for BackendsOpener {
    fn open(&self, spec: &StoreSpec<'_>) -> Result<Arc<dyn BlockStore>, String> {
        let (store, threads) = self.open_parts(spec)?;
        own_threads(store, threads)
    }

    /// tgt lists `rdwr (bsoflags sync:direct)`: the types that take open flags.
    fn backing_stores(&self) -> Vec<target_core::mgmt::BackingStoreType> {
        [
            ("rdwr", "sync:direct"),
            ("aio", "sync:direct"),
            ("memory", ""),
            ("null", ""),
            ("fault", "sync:direct"),
            ("rbd", ""),
            ("ssc", ""),
            ("smc", ""),
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
