//! Listening portals and daemon-wide state the adapters act on.
//!
//! `tgtadm --mode portal`, `--mode lld --op start|stop` and `--mode system --op update
//! --name State` change what the daemon should do; the adapter does it (binds
//! sockets, drops connections). Two ways the adapter learns about it:
//! - portals are bound synchronously by the management path through
//!   [`StoreOpener::listen`](crate::mgmt::StoreOpener::listen), so an error reaches
//!   `tgtadm`; this list records what is listening, for `show` and dump;
//! - every change that may affect live connections bumps
//!   [`Registry::generation`](super::Registry::generation); an adapter woken by the
//!   management server compares it with the last value it saw and, when it moved,
//!   feeds each connection an empty input so it re-checks its target and session.

use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

/// tgt's default iSCSI port (`ISCSI_LISTEN_PORT`).
pub const ISCSI_PORT: u16 = 3260;

/// The listening portals, newest first as tgt lists them.
#[derive(Debug, Default)]
pub struct Portals {
    list: RwLock<Vec<SocketAddr>>,
}

impl Portals {
    /// Record a bound portal. Returns false when it was already listed.
    pub fn add(&self, addr: SocketAddr) -> bool {
        let mut list = self.list.write().expect("portal lock poisoned");
        if list.contains(&addr) {
            return false;
        }
        list.insert(0, addr);
        true
    }

    /// Forget a portal. Returns false when it was not listed.
    pub fn remove(&self, addr: SocketAddr) -> bool {
        let mut list = self.list.write().expect("portal lock poisoned");
        let before = list.len();
        list.retain(|a| *a != addr);
        list.len() != before
    }

    /// Whether `addr` is listed.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.list
            .read()
            .expect("portal lock poisoned")
            .contains(&addr)
    }

    /// Every portal, newest first.
    pub fn list(&self) -> Vec<SocketAddr> {
        self.list.read().expect("portal lock poisoned").clone()
    }
}

/// Parse tgt's `portal=` value: `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`; the port
/// defaults to 3260. Host names are not resolved (tgt resolves them with
/// getaddrinfo; a resolver is I/O, so the CLI may resolve before sending).
pub fn parse_portal(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, ISCSI_PORT))
}

/// `system update --name State`: whether the daemon accepts new logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemState {
    /// Serving (tgt's `ready`).
    #[default]
    Ready,
    /// New logins are refused; sessions in progress continue (tgt's `offline`).
    Offline,
}

impl SystemState {
    /// tgt's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            SystemState::Ready => "ready",
            SystemState::Offline => "offline",
        }
    }

    /// Parse tgt's name (`ready`, `offline`).
    pub fn parse(s: &str) -> Option<SystemState> {
        match s {
            "ready" => Some(SystemState::Ready),
            "offline" => Some(SystemState::Offline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_forms() {
        assert_eq!(parse_portal("127.0.0.1"), "127.0.0.1:3260".parse().ok());
        assert_eq!(
            parse_portal("127.0.0.1:3261"),
            "127.0.0.1:3261".parse().ok()
        );
        assert_eq!(parse_portal("[::1]"), "[::1]:3260".parse().ok());
        assert_eq!(parse_portal("::1"), "[::1]:3260".parse().ok());
        assert_eq!(parse_portal("[::1]:5"), "[::1]:5".parse().ok());
        assert_eq!(parse_portal("bogus"), None);
        let p = Portals::default();
        let a = "127.0.0.1:1".parse().unwrap();
        let b = "[::1]:1".parse().unwrap();
        assert!(p.add(a) && p.add(b) && !p.add(a));
        assert_eq!(p.list(), vec![b, a]);
        assert!(p.remove(a) && !p.remove(a));
    }
}
