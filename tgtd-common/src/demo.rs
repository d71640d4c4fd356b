//! `--demo`: a ready target for a first try without any setup.

use target_core::mgmt::{apply, MgmtError, Request, StoreOpener};
use target_core::Core;

/// The demo target's name.
pub const DEMO_IQN: &str = "iqn.2026-11.org.example:demo";

/// Create tid 1 `iqn.2026-11.org.example:demo` with a 1 GiB in-memory LUN 1, bound to
/// 127.0.0.1, through the same management path `tgtadm` uses.
pub fn setup(core: &Core, opener: &dyn StoreOpener) -> Result<(), MgmtError> {
    let steps = [
        Request::TargetNew {
            tid: 1,
            name: DEMO_IQN.into(),
        },
        Request::LuNew {
            tid: 1,
            lun: 1,
            backing_store: "1G".into(),
            bstype: Some("memory".into()),
            blocksize: None,
            params: None,
            bsoflags: None,
            bsopts: None,
            device_type: None,
        },
        Request::TargetBind {
            tid: 1,
            address: Some("127.0.0.1".into()),
            initiator_name: None,
        },
    ];
    for req in steps {
        apply(core, req, opener)?;
    }
    Ok(())
}
