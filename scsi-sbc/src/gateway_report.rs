//! What one gateway of a shared medium tells the others about a target's ALUA port
//! groups ([`crate::BlockStore::live_gateways`]): its relative target port, the
//! access state it reports for every group, and the *epoch* of that view.
//!
//! Why the states travel: the gateways decide failovers each by itself (the same
//! rule on the same answers), but a gateway that was down missed them. Started
//! again, it would serve the states its administrator configured (itself
//! active/optimized) while the survivors report another group optimized: two
//! gateways of one logical unit answering REPORT TARGET PORT GROUPS differently.
//! The epoch counts the failover decisions behind a view (0: as configured), so a
//! gateway that hears a view with a higher epoch than its own knows it missed
//! something and adopts that view (`target_core::registry::GatewayWatch`).
//!
//! The text form, one acknowledgement of the survey on the medium's watch channel:
//!
//! ```text
//! tgtd-gw 2
//! port 2
//! epoch 1
//! group 1 unavailable
//! group 2 active/optimized
//! ```
//!
//! A gateway whose LUs hold a lock in the medium (a Ceph RBD image with librbd's
//! exclusive-lock) also names the clients it holds them by, so that when it dies
//! the survivors can break its locks at once instead of waiting for the cluster to
//! notice (`BlockStore::break_lock_of`). That is the third version; it names one
//! client per line, and a reader skips lines whose first word it does not know,
//! so a later version can add lines without the gateways of this one counting its
//! answers as silence:
//!
//! ```text
//! tgtd-gw 3
//! port 2
//! epoch 1
//! group 1 unavailable
//! group 2 active/optimized
//! instance 3b9f2c0e11a4d7f0
//! client 127.0.0.1:0/3512345
//! ```
//!
//! The `instance` names the gateway process: a gateway restarted so fast that it
//! never missed a question (a service manager restarts it in a second) still
//! shows the others, by its new instance, that the clients its previous instance
//! named are dead and their locks can be broken.
//!
//! A report without clients is written as the second version, which the previous
//! build reads; the first version (`tgtd-gw 1`, port only) is still read, as epoch
//! 0 with no states, so gateways of older builds keep counting as alive during an
//! upgrade. (A build that reads only versions 1 and 2 takes a version 3 answer for
//! silence: upgrade the gateways of an image with exclusive-lock together.)

use crate::alua::AccessState;

/// One gateway's answer (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReport {
    /// The gateway's relative target port (1..=65535).
    pub port: u16,
    /// Failover decisions behind `states` (0: as its administrator configured).
    pub epoch: u64,
    /// Every port group's access state, as this gateway serves them, by group id.
    pub states: Vec<(u16, AccessState)>,
    /// The names this gateway's clients hold locks in the medium by (see the module
    /// doc); each [`is_client_name`].
    pub clients: Vec<String>,
    /// The gateway process (see the module doc; [`is_client_name`]); sent with
    /// the clients only.
    pub instance: Option<String>,
}

/// Whether `name` can travel as a `client` line: 1 to [`MAX_CLIENT_LEN`] printable
/// ASCII characters without spaces.
pub fn is_client_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_CLIENT_LEN && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The longest client name a report carries.
pub const MAX_CLIENT_LEN: usize = 256;

/// The longest answer [`GatewayReport::parse`] reads: far more than any real
/// configuration needs, and a bound on what a stray payload costs.
pub const MAX_REPORT_LEN: usize = 64 * 1024;

impl GatewayReport {
    /// A report of port `port` alone (no states, epoch 0).
    pub fn port_only(port: u16) -> GatewayReport {
        GatewayReport {
            port,
            epoch: 0,
            states: Vec::new(),
            clients: Vec::new(),
            instance: None,
        }
    }

    /// The text form: version 2 without clients, else version 3. Client names that
    /// are not [`is_client_name`] are left out.
    pub fn encode(&self) -> Vec<u8> {
        let clients: Vec<&String> = self.clients.iter().filter(|c| is_client_name(c)).collect();
        let version = if clients.is_empty() { 2 } else { 3 };
        let mut s = format!(
            "tgtd-gw {version}\nport {}\nepoch {}\n",
            self.port, self.epoch
        );
        for (group, state) in &self.states {
            s.push_str(&format!("group {group} {}\n", state.name()));
        }
        if let Some(i) = self
            .instance
            .as_ref()
            .filter(|i| version == 3 && is_client_name(i))
        {
            s.push_str(&format!("instance {i}\n"));
        }
        for client in clients {
            s.push_str(&format!("client {client}\n"));
        }
        s.into_bytes()
    }

    /// Read a text form; `None` for anything else (an empty acknowledgement from a
    /// gateway that was not asked yet, a foreign payload, a malformed line).
    pub fn parse(bytes: &[u8]) -> Option<GatewayReport> {
        if bytes.len() > MAX_REPORT_LEN {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let body = text.strip_suffix('\n')?;
        let mut lines = body.split('\n');
        let version = lines.next()?;
        let port = lines
            .next()?
            .strip_prefix("port ")?
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)?;
        match version {
            "tgtd-gw 1" => lines.next().is_none().then(|| Self::port_only(port)),
            "tgtd-gw 2" | "tgtd-gw 3" => {
                let later = version == "tgtd-gw 3";
                let epoch = lines.next()?.strip_prefix("epoch ")?.parse().ok()?;
                let mut states: Vec<(u16, AccessState)> = Vec::new();
                let mut clients = Vec::new();
                let mut instance = None;
                for line in lines {
                    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
                    match word {
                        "group" => {
                            let (group, state) = rest.split_once(' ')?;
                            let group: u16 = group.parse().ok().filter(|g| *g > 0)?;
                            let state = AccessState::ALL.into_iter().find(|s| s.name() == state)?;
                            if states.iter().any(|(g, _)| *g == group) {
                                return None;
                            }
                            states.push((group, state));
                        }
                        "client" if later && is_client_name(rest) => clients.push(rest.to_owned()),
                        "instance" if later && instance.is_none() && is_client_name(rest) => {
                            instance = Some(rest.to_owned())
                        }
                        // A later version's line (not a malformed one of ours).
                        _ if later
                            && word != "client"
                            && word != "instance"
                            && !word.is_empty()
                            && word.bytes().all(|b| b.is_ascii_lowercase()) => {}
                        _ => return None,
                    }
                }
                Some(GatewayReport {
                    port,
                    epoch,
                    states,
                    // Without clients it has nothing to say (and is not written).
                    instance: if clients.is_empty() { None } else { instance },
                    clients,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessState::{ActiveNonOptimized as AN, ActiveOptimized as AO, Unavailable};

    #[test]
    fn reports_read_back_as_written() {
        let r = GatewayReport {
            port: 2,
            epoch: 7,
            states: vec![(1, Unavailable), (2, AO), (3, AN)],
            clients: Vec::new(),
            instance: None,
        };
        assert_eq!(
            String::from_utf8(r.encode()).unwrap(),
            "tgtd-gw 2\nport 2\nepoch 7\ngroup 1 unavailable\ngroup 2 active/optimized\n\
             group 3 active/non-optimized\n"
        );
        assert_eq!(GatewayReport::parse(&r.encode()), Some(r));
        for port in [1, 65535] {
            let r = GatewayReport::port_only(port);
            assert_eq!(GatewayReport::parse(&r.encode()), Some(r));
        }
        for state in AccessState::ALL {
            let r = GatewayReport {
                port: 9,
                epoch: u64::MAX,
                states: vec![(65535, state)],
                clients: Vec::new(),
                instance: None,
            };
            assert_eq!(GatewayReport::parse(&r.encode()), Some(r));
        }
    }

    #[test]
    fn clients_travel_in_the_third_version() {
        let r = GatewayReport {
            port: 1,
            epoch: 2,
            states: vec![(1, AO)],
            clients: vec!["127.0.0.1:0/3512345".into(), "[v2:10.0.0.1:0/1]".into()],
            instance: Some("3b9f".into()),
        };
        let text = r.encode();
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            "tgtd-gw 3\nport 1\nepoch 2\ngroup 1 active/optimized\ninstance 3b9f\n\
             client 127.0.0.1:0/3512345\nclient [v2:10.0.0.1:0/1]\n"
        );
        assert_eq!(GatewayReport::parse(&text), Some(r));
        // Names that cannot travel are left out; with none left it is version 2.
        let odd = GatewayReport {
            port: 1,
            epoch: 0,
            states: Vec::new(),
            clients: vec![String::new(), "a b".into(), "x".repeat(MAX_CLIENT_LEN + 1)],
            instance: Some("i".into()),
        };
        assert_eq!(odd.encode(), b"tgtd-gw 2\nport 1\nepoch 0\n");
        // Lines of a later version are skipped.
        assert_eq!(
            GatewayReport::parse(b"tgtd-gw 3\nport 4\nepoch 0\nclient a\nlease 9 x\n"),
            Some(GatewayReport {
                clients: vec!["a".into()],
                ..GatewayReport::port_only(4)
            })
        );
    }

    #[test]
    fn the_first_version_is_read_as_epoch_zero() {
        assert_eq!(
            GatewayReport::parse(b"tgtd-gw 1\nport 7\n"),
            Some(GatewayReport::port_only(7))
        );
    }

    #[test]
    fn anything_else_is_not_a_report() {
        for bad in [
            &b""[..],
            b"tgtd-gw 1\nport 0\n",
            b"tgtd-gw 1\nport 70000\n",
            b"tgtd-gw 1\nport 1",
            b"tgtd-gw 1\nport 1\nepoch 1\n",
            b"tgtd-gw 4\nport 1\nepoch 1\n",
            b"tgtd-gw 2\nport 1\nepoch 1\nclient a\n",
            b"tgtd-gw 3\nport 1\nepoch 1\nclient\n",
            b"tgtd-gw 3\nport 1\nepoch 1\nclient a b\n",
            b"tgtd-gw 3\nport 1\nepoch 1\nclient \n",
            b"tgtd-gw 3\nport 1\nepoch 1\n\n",
            b"tgtd-gw 3\nport 1\nepoch 1\ninstance a\ninstance b\n",
            b"tgtd-gw 3\nport 1\nepoch 1\ninstance\n",
            b"tgtd-gw 2\nport 1\nepoch 1\ninstance a\n",
            b"tgtd-gw 3\nport 1\nepoch 1\nGroup 1 standby\n",
            b"tgtd-gw 3\nport 1\nepoch 1\ngroup 1 ao\n",
            b"tgtd-gw 2\nport 1\n",
            b"tgtd-gw 2\nport 1\nepoch -1\n",
            b"tgtd-gw 2\nport 1\nepoch 1\ngroup 0 standby\n",
            b"tgtd-gw 2\nport 1\nepoch 1\ngroup 1 ao\n",
            b"tgtd-gw 2\nport 1\nepoch 1\ngroup 1 standby\ngroup 1 standby\n",
            b"tgtd-gw 2\nport 1\nepoch 1\ngroup 1 standby\n\n",
            b"tgtd-gw 2\nport 1\nepoch 1\ngroup 1\n",
            b"\xff",
            b"tgtd-gw? 1\n",
        ] {
            assert_eq!(GatewayReport::parse(bad), None, "{bad:?}");
        }
        let mut long = GatewayReport::port_only(1).encode();
        long.resize(MAX_REPORT_LEN + 1, b'\n');
        assert_eq!(GatewayReport::parse(&long), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = GatewayReport::parse(&bytes);
        }
    }
}
