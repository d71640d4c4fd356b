//! A target's ALUA settings (`tgtadm --mode target --op update --name alua_* ...`,
//! targets.conf `alua_group`, `alua_port`, `alua_state`): which target port group
//! this gateway's port is in, and the state and ports of every gateway's group.
//!
//! Several daemons ("gateways") serving one image each hold the whole picture: the
//! administrator (or ceph-iscsi-like tooling) tells every gateway the same groups, and
//! each gateway its own group and port. Nothing is exchanged between gateways.
//!
//! Keys (the value syntax is ours; tgt has no ALUA):
//! - `alua_group ID`: this gateway's target port group, 1..=65535; 0 turns ALUA off
//!   (TPGS 0, the answers of a target without ALUA), the default.
//! - `alua_port ID`: this gateway's relative target port identifier, 1..=65535;
//!   default: the group id (one port per gateway, as ceph-iscsi lays it out).
//! - `alua_state GROUP:STATE[:PORT,PORT...]`: declare or change a group; STATE is
//!   `active/optimized` (`ao`), `active/non-optimized` (`an`), `standby`, `unavailable`
//!   or `transitioning`; ports default to the ones the group had, or to the group id;
//!   `GROUP:none` removes the group.

use scsi_sbc::alua::{AccessState, PortGroup, PortGroups};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One configured group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    state: AccessState,
    ports: Vec<u16>,
    /// The state was changed after the group was first declared (STATUS CODE 02h).
    changed: bool,
}

/// The ALUA keys of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AluaSettings {
    local_group: u16,
    local_port: Option<u16>,
    groups: BTreeMap<u16, Group>,
    /// What the SCSI layer sees, rebuilt on every change (commands read it without
    /// building anything).
    view: Option<Arc<PortGroups>>,
}

/// What a successful `set` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluaChange {
    /// Nothing an initiator sees.
    None,
    /// Port groups or states as reported changed: every nexus gets ASYMMETRIC
    /// ACCESS STATE CHANGED.
    Reported,
}

/// Whether `key` is one of the ALUA keys.
pub fn is_alua_key(key: &str) -> bool {
    ALUA_KEYS.contains(&key)
}

/// The ALUA keys, in dump order.
pub const ALUA_KEYS: &[&str] = &["alua_group", "alua_port", "alua_state"];

fn id(v: &str) -> Option<u16> {
    v.trim().parse::<u16>().ok().filter(|n| *n > 0)
}

impl AluaSettings {
    /// Set one key; `None` when the key or value is refused.
    pub fn set(&mut self, key: &str, value: &str) -> Option<AluaChange> {
        match key {
            "alua_group" => {
                let v = value.trim();
                self.local_group = if v == "0" { 0 } else { id(v)? };
            }
            "alua_port" => self.local_port = Some(id(value)?),
            "alua_state" => self.set_state(value)?,
            _ => return None,
        }
        let before = self.view.clone();
        self.view = self.build().map(Arc::new);
        Some(if before != self.view {
            AluaChange::Reported
        } else {
            AluaChange::None
        })
    }

    fn set_state(&mut self, value: &str) -> Option<()> {
        let mut parts = value.trim().splitn(3, ':');
        let group = id(parts.next()?)?;
        let state = parts.next()?;
        let ports = match parts.next() {
            Some(list) => Some(
                list.split(',')
                    .map(id)
                    .collect::<Option<Vec<u16>>>()
                    .filter(|p| !p.is_empty() && p.len() <= 255)?,
            ),
            None => None,
        };
        if state.trim() == "none" && ports.is_none() {
            self.groups.remove(&group);
            return Some(());
        }
        let state = AccessState::parse(state)?;
        match self.groups.get_mut(&group) {
            Some(g) => {
                g.changed |= g.state != state;
                g.state = state;
                if let Some(p) = ports {
                    g.ports = p;
                }
            }
            None => {
                let g = Group {
                    state,
                    ports: ports.unwrap_or_else(|| vec![group]),
                    changed: false,
                };
                self.groups.insert(group, g);
            }
        }
        Some(())
    }

    /// This gateway's relative target port.
    fn local_port(&self) -> u16 {
        self.local_port.unwrap_or(self.local_group)
    }

    fn build(&self) -> Option<PortGroups> {
        if self.local_group == 0 {
            return None;
        }
        let mut groups: Vec<PortGroup> = self
            .groups
            .iter()
            .map(|(&id, g)| PortGroup {
                id,
                state: g.state,
                ports: g.ports.clone(),
                changed: g.changed,
            })
            .collect();
        // The local group is always reported, active/optimized until it is declared,
        // and holds the local port.
        let port = self.local_port();
        match groups.iter_mut().find(|g| g.id == self.local_group) {
            Some(g) if !g.ports.contains(&port) => g.ports.push(port),
            Some(_) => {}
            None => {
                groups.push(PortGroup {
                    id: self.local_group,
                    state: AccessState::ActiveOptimized,
                    ports: vec![port],
                    changed: false,
                });
                groups.sort_by_key(|g| g.id);
            }
        }
        Some(PortGroups {
            groups,
            local_group: self.local_group,
            local_port: port,
        })
    }

    /// What the SCSI layer gets in `LuContext::alua`; `None` while ALUA is off.
    pub fn view(&self) -> Option<Arc<PortGroups>> {
        self.view.clone()
    }

    /// The keys that differ from the defaults, as `(key, value)` lines that `set`
    /// reads back into the same settings (dump, targets.conf).
    pub fn changed(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, g) in &self.groups {
            let ports: Vec<String> = g.ports.iter().map(u16::to_string).collect();
            out.push((
                "alua_state".to_string(),
                format!("{id}:{}:{}", g.state.name(), ports.join(",")),
            ));
        }
        if let Some(p) = self.local_port {
            out.push(("alua_port".to_string(), p.to_string()));
        }
        if self.local_group != 0 {
            out.push(("alua_group".to_string(), self.local_group.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_with_group_zero() {
        let mut a = AluaSettings::default();
        assert_eq!(a.view(), None);
        assert_eq!(a.set("alua_state", "2:an"), Some(AluaChange::None));
        assert_eq!(a.view(), None, "groups alone do not turn ALUA on");
        assert_eq!(a.set("alua_group", "1"), Some(AluaChange::Reported));
        let v = a.view().unwrap();
        assert_eq!((v.local_group, v.local_port), (1, 1));
        assert_eq!(
            v.groups
                .iter()
                .map(|g| (g.id, g.state, g.ports.clone()))
                .collect::<Vec<_>>(),
            vec![
                (1, AccessState::ActiveOptimized, vec![1]),
                (2, AccessState::ActiveNonOptimized, vec![2]),
            ]
        );
        assert_eq!(a.set("alua_group", "0"), Some(AluaChange::Reported));
        assert_eq!(a.view(), None);
    }

    #[test]
    fn state_changes_are_reported_and_marked() {
        let mut a = AluaSettings::default();
        a.set("alua_group", "2").unwrap();
        a.set("alua_port", "7").unwrap();
        a.set("alua_state", "1:active/optimized").unwrap();
        assert_eq!(a.set("alua_state", "2:ao"), Some(AluaChange::Reported));
        assert_eq!(a.set("alua_state", "2:ao"), Some(AluaChange::None));
        assert_eq!(
            a.set("alua_state", "2:standby:7,8"),
            Some(AluaChange::Reported)
        );
        let v = a.view().unwrap();
        assert_eq!(v.local_state(), AccessState::Standby);
        assert_eq!(v.groups[1].ports, vec![7, 8]);
        assert!(v.groups[1].changed);
        assert!(!v.groups[0].changed);
        let dump = a.changed();
        assert_eq!(
            dump,
            vec![
                ("alua_state".to_string(), "1:active/optimized:1".to_string()),
                ("alua_state".into(), "2:standby:7,8".into()),
                ("alua_port".into(), "7".into()),
                ("alua_group".into(), "2".into()),
            ]
        );
        let mut b = AluaSettings::default();
        for (k, v) in &dump {
            b.set(k, v).unwrap();
        }
        assert_eq!(b.view().unwrap().groups[1].ports, vec![7, 8]);
        assert_eq!(a.set("alua_state", "1:none"), Some(AluaChange::Reported));
        assert_eq!(a.view().unwrap().groups.len(), 1);
    }

    #[test]
    fn bad_values_are_refused() {
        let mut a = AluaSettings::default();
        for (k, v) in [
            ("alua_group", "-1"),
            ("alua_group", "65536"),
            ("alua_group", "x"),
            ("alua_port", "0"),
            ("alua_state", "1"),
            ("alua_state", "0:ao"),
            ("alua_state", "1:offline"),
            ("alua_state", "1:ao:"),
            ("alua_state", "1:ao:1,0"),
            ("alua_state", "x:ao"),
            ("alua_bogus", "1"),
        ] {
            assert_eq!(a.set(k, v), None, "{k}={v}");
        }
        assert_eq!(a, AluaSettings::default());
    }
}
