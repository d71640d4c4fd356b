//! Ready-made cores: a target with tid 1, a LUN 1 disk on a [`MemStore`], bound to every
//! address or to one.

use super::MemStore;
use crate::connection::PeerInfo;
use crate::registry::{AclEntry, Lun, LunBacking, Target};
use crate::Core;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The fixture target's name.
pub const TARGET: &str = "iqn.2024-01.com.example:sim.disk1";
/// The initiator name the testkit uses unless told otherwise.
pub const INITIATOR: &str = "iqn.2024-01.com.example:sim.initiator";
/// The fixture's block size.
pub const BLOCK_SIZE: u32 = 512;

/// The simulated initiator's address.
pub const PEER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
/// The simulated portal address.
pub const LOCAL_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

/// The connection the fixture simulates: `10.0.0.2:51000` to the portal `10.0.0.1:3260`.
pub fn peer() -> PeerInfo {
    PeerInfo {
        peer: SocketAddr::new(PEER_IP, 51000),
        local: SocketAddr::new(LOCAL_IP, 3260),
    }
}

/// Which initiators the fixture target admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// `--initiator-address ALL`.
    All,
    /// One address.
    Addr(IpAddr),
    /// Nothing bound: nobody may log in.
    Nothing,
}

/// A core with one target and the handles a test inspects.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The shared core.
    pub core: Arc<Core>,
    /// Target tid 1.
    pub target: Arc<Target>,
    /// LUN 1's store.
    pub store: Arc<MemStore>,
}

/// A core with target tid 1 named [`TARGET`] and a LUN 1 of `blocks` blocks of
/// [`BLOCK_SIZE`] bytes, bound as `bind` says.
pub fn single_target(blocks: u64, bind: Bind) -> Fixture {
    let core = Arc::new(Core::new());
    let (target, store) = add_target(&core, 1, TARGET, blocks, bind);
    Fixture {
        core,
        target,
        store,
    }
}

/// Add a target with a LUN 1 on a fresh [`MemStore`] to `core`.
pub fn add_target(
    core: &Core,
    tid: u32,
    name: &str,
    blocks: u64,
    bind: Bind,
) -> (Arc<Target>, Arc<MemStore>) {
    let target = core
        .registry
        .add_target(tid, name)
        .expect("fixture: tid and name are fresh");
    let len = usize::try_from(blocks * u64::from(BLOCK_SIZE)).expect("fixture: store fits");
    let store = Arc::new(MemStore::new(len));
    let backing = LunBacking {
        bstype: "memory".into(),
        path: None,
        oflags: String::new(),
        bsopts: String::new(),
    };
    target
        .add_lun(Lun::disk(tid, 1, store.clone(), BLOCK_SIZE, backing))
        .expect("fixture: LUN 1 is fresh");
    match bind {
        Bind::All => target.bind(AclEntry::All),
        Bind::Addr(a) => target.bind(AclEntry::Addr(a)),
        Bind::Nothing => Ok(()),
    }
    .expect("fixture: ACL entry is fresh");
    (target, store)
}
