//! Initiator access control: which initiators may see and log in to a target.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One ACL entry bound to a target (`tgtadm --op bind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclEntry {
    /// `-I ALL`: any initiator address.
    All,
    /// One initiator address.
    Addr(IpAddr),
    /// An address prefix, `10.0.0.0/8` style.
    Cidr(IpAddr, u8),
}

impl AclEntry {
    /// Whether an initiator connecting from `addr` matches this entry.
    pub fn matches(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        match *self {
            AclEntry::All => true,
            AclEntry::Addr(a) => canonical(a) == addr,
            AclEntry::Cidr(net, len) => match (canonical(net), addr) {
                (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), len),
                (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), len),
                _ => false,
            },
        }
    }
}

/// An IPv4-mapped IPv6 address (dual-stack socket) is the IPv4 address it maps.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let len = usize::from(len).min(a.len() * 8);
    let full = len / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rem = len % 8;
    if rem == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rem);
    a[full] & mask == b[full] & mask
}

/// Why an `--initiator-address` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid initiator address '{0}'")]
pub struct BadAclEntry(pub String);

impl FromStr for AclEntry {
    type Err = BadAclEntry;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("ALL") {
            return Ok(AclEntry::All);
        }
        if let Some((net, len)) = s.split_once('/') {
            let net: IpAddr = net.parse().map_err(|_| BadAclEntry(s.to_string()))?;
            let len: u8 = len.parse().map_err(|_| BadAclEntry(s.to_string()))?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(BadAclEntry(s.to_string()));
            }
            return Ok(AclEntry::Cidr(net, len));
        }
        s.parse()
            .map(AclEntry::Addr)
            .map_err(|_| BadAclEntry(s.to_string()))
    }
}

impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclEntry::All => f.write_str("ALL"),
            AclEntry::Addr(a) => write!(f, "{a}"),
            AclEntry::Cidr(n, l) => write!(f, "{n}/{l}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let all: AclEntry = "ALL".parse().unwrap();
        assert!(all.matches("10.1.2.3".parse().unwrap()));
        let one: AclEntry = "127.0.0.1".parse().unwrap();
        assert!(one.matches("127.0.0.1".parse().unwrap()));
        assert!(one.matches("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!one.matches("127.0.0.2".parse().unwrap()));
        let net: AclEntry = "192.168.4.0/22".parse().unwrap();
        assert!(net.matches("192.168.7.255".parse().unwrap()));
        assert!(!net.matches("192.168.8.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<AclEntry>().is_err());
        assert!("host".parse::<AclEntry>().is_err());
        assert_eq!(net.to_string(), "192.168.4.0/22");
    }
}
