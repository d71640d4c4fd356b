//! Implicit ALUA failover between gateways: when the gateway whose port group is
//! active/optimized is gone, the survivors make one of their own groups
//! active/optimized, so initiators are told (ASYMMETRIC ACCESS STATE CHANGED) which
//! path to prefer now instead of waiting for an administrator.
//!
//! Sans-IO: the daemon asks the medium which gateways answer (a Ceph RBD image's
//! gateways answer on its reservation object's watch channel,
//! `BlockStore::live_gateways`) and feeds the relative target ports that did into
//! [`GatewayWatch::observe`], which answers the state changes to make, as
//! `alua_state` values an administrator would give.
//!
//! The rule, the same on every gateway so that all survivors make the same choice
//! without talking to each other:
//! - a port counts as gone only after it was seen answering (at start-up the other
//!   gateways may not have been asked yet) and then missed [`MISSES_BEFORE_GONE`]
//!   questions in a row (a gateway whose watch was lost for a moment, or that was
//!   slow to answer once on a loaded machine, is not failed over: a wrong failover
//!   costs every initiator a unit attention and a path change); this gateway's own
//!   port never counts as gone;
//! - an active/optimized group all of whose ports are gone becomes unavailable;
//! - then, if no group with a live port is active/optimized, the live
//!   active/non-optimized group with the lowest id becomes active/optimized;
//! - a group this watch made unavailable whose port answers again becomes
//!   active/non-optimized (it serves again; the group promoted in its place stays
//!   preferred: no fail-back, which would move the path twice).
//!
//! Groups an administrator set to standby, unavailable or transitioning are left as
//! they are, and nothing is promoted while no group was failed over by this watch.

use std::collections::{BTreeMap, BTreeSet};

use scsi_sbc::alua::{AccessState, PortGroups};

/// Questions in a row a gateway that answered before must miss to count as gone.
pub const MISSES_BEFORE_GONE: u32 = 3;

/// What one target's gateways looked like so far.
#[derive(Debug, Default, Clone)]
struct TargetWatch {
    /// Every relative target port seen answering, with the questions it missed
    /// since it last answered.
    seen: BTreeMap<u16, u32>,
    /// Groups this watch made unavailable (and may make active again).
    failed: BTreeSet<u16>,
}

/// The failover rule's memory, for every target with ALUA (see the module doc).
#[derive(Debug, Default, Clone)]
pub struct GatewayWatch {
    targets: BTreeMap<u32, TargetWatch>,
}

/// One state change to make: `alua_state` `GROUP:STATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverStep {
    /// The target port group.
    pub group: u16,
    /// Its new state.
    pub state: AccessState,
}

impl FailoverStep {
    /// The `alua_state` value that makes this change.
    pub fn alua_state(&self) -> String {
        format!("{}:{}", self.group, self.state.name())
    }
}

impl GatewayWatch {
    /// A watch that has seen nothing yet.
    pub fn new() -> GatewayWatch {
        GatewayWatch::default()
    }

    /// Target `tid` has port groups `groups` (this gateway's view), and the gateways
    /// on ports `alive` answered now: the state changes to make, in order.
    pub fn observe(
        &mut self,
        tid: u32,
        groups: &PortGroups,
        alive: &BTreeSet<u16>,
    ) -> Vec<FailoverStep> {
        let w = self.targets.entry(tid).or_default();
        let mut alive = alive.clone();
        alive.insert(groups.local_port);
        for (port, missed) in w.seen.iter_mut() {
            if !alive.contains(port) {
                *missed = missed.saturating_add(1);
            }
        }
        for &port in &alive {
            w.seen.insert(port, 0);
        }
        let group_live = |ports: &[u16]| ports.iter().any(|p| alive.contains(p));
        let group_gone = |ports: &[u16]| {
            !ports.is_empty()
                && ports.iter().all(|p| {
                    w.seen
                        .get(p)
                        .is_some_and(|missed| *missed >= MISSES_BEFORE_GONE)
                })
        };
        let mut steps = Vec::new();
        let mut states: BTreeMap<u16, AccessState> =
            groups.groups.iter().map(|g| (g.id, g.state)).collect();
        for g in &groups.groups {
            if g.state == AccessState::ActiveOptimized && group_gone(&g.ports) {
                steps.push(FailoverStep {
                    group: g.id,
                    state: AccessState::Unavailable,
                });
                states.insert(g.id, AccessState::Unavailable);
                w.failed.insert(g.id);
            }
        }
        let optimized_live = groups
            .groups
            .iter()
            .any(|g| states[&g.id] == AccessState::ActiveOptimized && group_live(&g.ports));
        if !optimized_live && !w.failed.is_empty() {
            let heir = groups
                .groups
                .iter()
                .filter(|g| {
                    states[&g.id] == AccessState::ActiveNonOptimized && group_live(&g.ports)
                })
                .map(|g| g.id)
                .min();
            if let Some(id) = heir {
                steps.push(FailoverStep {
                    group: id,
                    state: AccessState::ActiveOptimized,
                });
            }
        }
        for g in &groups.groups {
            if w.failed.contains(&g.id) && !steps.iter().any(|s| s.group == g.id) {
                if g.state != AccessState::Unavailable {
                    // Someone else (the administrator) set it since: no longer ours.
                    w.failed.remove(&g.id);
                } else if group_live(&g.ports) {
                    steps.push(FailoverStep {
                        group: g.id,
                        state: AccessState::ActiveNonOptimized,
                    });
                    w.failed.remove(&g.id);
                }
            }
        }
        // Groups removed from the configuration are forgotten.
        w.failed.retain(|id| states.contains_key(id));
        steps
    }

    /// Forget target `tid` (deleted, or ALUA turned off).
    pub fn forget(&mut self, tid: u32) {
        self.targets.remove(&tid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scsi_sbc::alua::PortGroup;
    use AccessState::{ActiveNonOptimized as AN, ActiveOptimized as AO, Standby, Unavailable};

    fn groups(local: u16, states: &[(u16, AccessState)]) -> PortGroups {
        PortGroups {
            groups: states
                .iter()
                .map(|&(id, state)| PortGroup {
                    id,
                    state,
                    ports: vec![id],
                    changed: false,
                })
                .collect(),
            local_group: local,
            local_port: local,
        }
    }

    fn ports(p: &[u16]) -> BTreeSet<u16> {
        p.iter().copied().collect()
    }

    fn step(group: u16, state: AccessState) -> FailoverStep {
        FailoverStep { group, state }
    }

    /// Only `answering` answer as often as it takes to count the others gone: the
    /// steps of the last round (the earlier ones must have none).
    fn gone(
        w: &mut GatewayWatch,
        tid: u32,
        g: &PortGroups,
        answering: &[u16],
    ) -> Vec<FailoverStep> {
        for _ in 1..MISSES_BEFORE_GONE {
            assert_eq!(w.observe(tid, g, &ports(answering)), vec![]);
        }
        w.observe(tid, g, &ports(answering))
    }

    #[test]
    fn the_optimized_gateway_gone_promotes_the_lowest_survivor() {
        let mut w = GatewayWatch::new();
        // Gateway 3's view of gateways 1 (optimized), 2 and 3.
        let g = groups(3, &[(1, AO), (2, AN), (3, AN)]);
        assert_eq!(w.observe(1, &g, &ports(&[1, 2, 3])), vec![]);
        assert_eq!(w.observe(1, &g, &ports(&[1, 2, 3])), vec![], "steady");
        for _ in 1..MISSES_BEFORE_GONE {
            assert_eq!(w.observe(1, &g, &ports(&[2, 3])), vec![], "not yet gone");
        }
        let steps = w.observe(1, &g, &ports(&[2, 3]));
        assert_eq!(steps, vec![step(1, Unavailable), step(2, AO)]);
        assert_eq!(steps[0].alua_state(), "1:unavailable");
        assert_eq!(steps[1].alua_state(), "2:active/optimized");
        // Applied: nothing more while 1 stays away.
        let g = groups(3, &[(1, Unavailable), (2, AO), (3, AN)]);
        assert_eq!(w.observe(1, &g, &ports(&[2, 3])), vec![]);
        // 1 answers again: it serves again, not preferred.
        assert_eq!(w.observe(1, &g, &ports(&[1, 2, 3])), vec![step(1, AN)]);
        let g = groups(3, &[(1, AN), (2, AO), (3, AN)]);
        assert_eq!(w.observe(1, &g, &ports(&[1, 2, 3])), vec![]);
    }

    #[test]
    fn every_survivor_makes_the_same_choice() {
        let (mut w2, mut w3) = (GatewayWatch::new(), GatewayWatch::new());
        let states = [(1, AO), (2, AN), (3, AN)];
        for w in [&mut w2, &mut w3] {
            let _ = w.observe(1, &groups(2, &states), &ports(&[1, 2, 3]));
            for _ in 1..MISSES_BEFORE_GONE {
                let _ = w.observe(1, &groups(2, &states), &ports(&[2, 3]));
            }
        }
        assert_eq!(
            w2.observe(1, &groups(2, &states), &ports(&[2, 3])),
            w3.observe(1, &groups(3, &states), &ports(&[2, 3]))
        );
    }

    #[test]
    fn a_gateway_never_seen_is_not_gone() {
        let mut w = GatewayWatch::new();
        // At start-up only this gateway (2) answers: gateway 1 has not been asked.
        let g = groups(2, &[(1, AO), (2, AN)]);
        assert_eq!(w.observe(1, &g, &ports(&[])), vec![]);
        assert_eq!(w.observe(1, &g, &ports(&[2])), vec![]);
        // Nor is this gateway itself, whatever the answer says.
        let g = groups(1, &[(1, AO), (2, AN)]);
        assert_eq!(w.observe(2, &g, &ports(&[2])), vec![]);
        for _ in 0..2 * MISSES_BEFORE_GONE {
            assert_eq!(w.observe(2, &g, &ports(&[])), vec![]);
        }
    }

    #[test]
    fn a_missed_answer_now_and_then_is_not_a_failover() {
        let mut w = GatewayWatch::new();
        let g = groups(2, &[(1, AO), (2, AN)]);
        for round in 0..20 {
            // Gateway 1 misses every other question (a lost watch, a slow answer).
            let answered: &[u16] = if round % 2 == 0 { &[1, 2] } else { &[2] };
            assert_eq!(w.observe(1, &g, &ports(answered)), vec![], "round {round}");
        }
        // Misses in a row below the bound, then an answer: still nothing.
        assert_eq!(w.observe(1, &g, &ports(&[1, 2])), vec![]);
        for _ in 1..MISSES_BEFORE_GONE {
            assert_eq!(w.observe(1, &g, &ports(&[2])), vec![]);
        }
        assert_eq!(w.observe(1, &g, &ports(&[1, 2])), vec![]);
    }

    #[test]
    fn the_administrators_states_are_left_alone() {
        let mut w = GatewayWatch::new();
        // A non-optimized gateway gone: nothing to do.
        let g = groups(1, &[(1, AO), (2, AN)]);
        let _ = w.observe(1, &g, &ports(&[1, 2]));
        assert_eq!(gone(&mut w, 1, &g, &[1]), vec![]);
        // No active/non-optimized survivor (a standby one): demoted, nobody promoted.
        let mut w = GatewayWatch::new();
        let g = groups(2, &[(1, AO), (2, Standby)]);
        let _ = w.observe(1, &g, &ports(&[1, 2]));
        assert_eq!(gone(&mut w, 1, &g, &[2]), vec![step(1, Unavailable)]);
        // No optimized group configured at all: nothing is promoted.
        let mut w = GatewayWatch::new();
        let g = groups(2, &[(1, AN), (2, AN)]);
        let _ = w.observe(1, &g, &ports(&[1, 2]));
        assert_eq!(gone(&mut w, 1, &g, &[2]), vec![]);
    }

    #[test]
    fn a_state_the_administrator_set_since_is_not_undone() {
        let mut w = GatewayWatch::new();
        let g = groups(2, &[(1, AO), (2, AN)]);
        let _ = w.observe(1, &g, &ports(&[1, 2]));
        assert_eq!(gone(&mut w, 1, &g, &[2]).len(), 2);
        // The administrator put group 1 in standby; when it answers again it stays.
        let g = groups(2, &[(1, Standby), (2, AO)]);
        assert_eq!(w.observe(1, &g, &ports(&[1, 2])), vec![]);
    }

    #[test]
    fn targets_are_watched_apart() {
        let mut w = GatewayWatch::new();
        let g = groups(2, &[(1, AO), (2, AN)]);
        let _ = w.observe(1, &g, &ports(&[1, 2]));
        // Target 2 never saw port 1: it is not gone there.
        assert_eq!(gone(&mut w, 2, &g, &[2]), vec![]);
        assert_eq!(gone(&mut w, 1, &g, &[2]).len(), 2);
        w.forget(1);
        assert_eq!(gone(&mut w, 1, &g, &[2]), vec![], "forgotten");
    }
}
