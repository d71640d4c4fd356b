//! Implicit ALUA failover between gateways: when the gateway whose port group is
//! active/optimized is gone, the survivors make one of their own groups
//! active/optimized, so initiators are told (ASYMMETRIC ACCESS STATE CHANGED) which
//! path to prefer now instead of waiting for an administrator.
//!
//! Sans-IO: the daemon asks the medium which gateways answer (a Ceph RBD image's
//! gateways answer on its reservation object's watch channel,
//! `BlockStore::live_gateways`), telling them this gateway's view
//! ([`GatewayWatch::report`]), and feeds the reports of those that did into
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
//!
//! A gateway that was away missed the failovers (started again, it serves the
//! states its administrator configured, likely itself active/optimized, while the
//! survivors prefer another group). So every view carries an *epoch*, the failover
//! decisions behind it (0: as configured; each round whose rule changed something
//! adds one), and a gateway that hears a view with a higher epoch than its own
//! adopts it first: the states every group has there (groups it does not know are
//! left alone), and that epoch. Of several such views the highest epoch wins, then
//! the lowest port. A returning gateway's own group, which the survivors marked
//! unavailable, is adopted as active/non-optimized (it serves; the survivors make
//! it so as soon as they hear it); other adopted unavailable groups count as failed
//! over here too. Views of equal epoch are not compared: a state an administrator
//! set on one gateway stays on that gateway, as before.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use scsi_sbc::alua::{AccessState, PortGroups};
use scsi_sbc::gateway_report::GatewayReport;

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
    /// Failover decisions behind this gateway's states (see the module doc).
    epoch: u64,
    /// The process and lock clients each other gateway named last.
    known: BTreeMap<u16, Named>,
    /// Clients of gateway processes that were replaced on their port (a restart):
    /// dead, their locks to break.
    retired: BTreeMap<u16, Vec<String>>,
    /// Gone ports whose locks were broken (until they answer again).
    fenced: BTreeSet<u16>,
}

/// What a gateway named in its last report with clients.
#[derive(Debug, Default, Clone)]
struct Named {
    instance: Option<String>,
    clients: Vec<String>,
    /// Every instance seen on this port: one that comes back is not a restart but
    /// two processes answering for one port (a configuration error), and retires
    /// nothing.
    instances: BTreeSet<String>,
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
    /// `Some(port)`: adopted from the view of the gateway on that relative target
    /// port (it saw failovers this one missed); `None`: this watch's own rule.
    pub adopted_from: Option<u16>,
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

    /// What this gateway tells the others about target `tid`, whose port groups are
    /// `groups`: its port, their states and the epoch of that view (the caller adds
    /// its lock clients, which only the media know).
    pub fn report(&self, tid: u32, groups: &PortGroups) -> GatewayReport {
        GatewayReport {
            port: groups.local_port,
            epoch: self.targets.get(&tid).map_or(0, |w| w.epoch),
            states: groups.groups.iter().map(|g| (g.id, g.state)).collect(),
            clients: Vec::new(),
            instance: None,
        }
    }

    /// Target `tid` has port groups `groups` (this gateway's view), and the gateways
    /// of `reports` answered now: the state changes to make, in order.
    pub fn observe(
        &mut self,
        tid: u32,
        groups: &PortGroups,
        reports: &[GatewayReport],
    ) -> Vec<FailoverStep> {
        let w = self.targets.entry(tid).or_default();
        let mut alive: BTreeSet<u16> = reports.iter().map(|r| r.port).collect();
        alive.insert(groups.local_port);
        for (port, missed) in w.seen.iter_mut() {
            if !alive.contains(port) {
                *missed = missed.saturating_add(1);
            }
        }
        for &port in &alive {
            w.seen.insert(port, 0);
            w.fenced.remove(&port);
        }
        for r in reports.iter().filter(|r| r.port != groups.local_port) {
            // A report without clients (or of an older build) says nothing about
            // them: what was named before is kept.
            if r.clients.is_empty() {
                continue;
            }
            let named = w.known.entry(r.port).or_default();
            if let (Some(before), Some(now)) = (&named.instance, &r.instance) {
                if before != now && !named.instances.contains(now) {
                    let dead = std::mem::take(&mut named.clients);
                    w.retired.entry(r.port).or_default().extend(dead);
                }
            }
            if let Some(now) = &r.instance {
                named.instances.insert(now.clone());
            }
            named.instance = r.instance.clone();
            named.clients = r.clients.clone();
        }
        let newer = reports
            .iter()
            .filter(|r| r.port != groups.local_port && r.epoch > w.epoch)
            .max_by_key(|r| (r.epoch, Reverse(r.port)));
        if let Some(view) = newer {
            return w.adopt(groups, view);
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
                    adopted_from: None,
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
                    adopted_from: None,
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
                        adopted_from: None,
                    });
                    w.failed.remove(&g.id);
                }
            }
        }
        // Groups removed from the configuration are forgotten.
        w.failed.retain(|id| states.contains_key(id));
        if !steps.is_empty() {
            w.epoch += 1;
        }
        steps
    }

    /// The dead lock clients of target `tid`'s gateways, by port, whose locks in the
    /// medium to break (`BlockStore::break_lock_of`): those a port that counts as
    /// gone named in its last report (the same [`MISSES_BEFORE_GONE`] rule as a
    /// failover, so a gateway that was slow once is not fenced), and those of a
    /// gateway process replaced on its port by a new one (a restart, told by a new
    /// instance: it need not have missed a question). Handed out until
    /// [`GatewayWatch::fenced`] says they are broken (a gone port's again once it
    /// has answered again).
    pub fn to_fence(&self, tid: u32) -> Vec<(u16, Vec<String>)> {
        let Some(w) = self.targets.get(&tid) else {
            return Vec::new();
        };
        let ports: BTreeSet<u16> = w.known.keys().chain(w.retired.keys()).copied().collect();
        ports
            .into_iter()
            .filter_map(|port| {
                let mut dead = w.retired.get(&port).cloned().unwrap_or_default();
                let gone = w.seen.get(&port).is_some_and(|m| *m >= MISSES_BEFORE_GONE);
                if gone && !w.fenced.contains(&port) {
                    if let Some(named) = w.known.get(&port) {
                        dead.extend(named.clients.iter().cloned());
                    }
                }
                (!dead.is_empty()).then_some((port, dead))
            })
            .collect()
    }

    /// The clients [`GatewayWatch::to_fence`] handed out for `port` of target `tid`
    /// no longer hold locks (broken, or held by none of them): not handed out
    /// again (a gone port's until it answers again).
    pub fn fenced(&mut self, tid: u32, port: u16) {
        if let Some(w) = self.targets.get_mut(&tid) {
            w.retired.remove(&port);
            if w.seen.get(&port).is_some_and(|m| *m >= MISSES_BEFORE_GONE) {
                w.fenced.insert(port);
            }
        }
    }

    /// Forget target `tid` (deleted, or ALUA turned off).
    pub fn forget(&mut self, tid: u32) {
        self.targets.remove(&tid);
    }
}

impl TargetWatch {
    /// Take `view`'s states and epoch (see the module doc).
    fn adopt(&mut self, groups: &PortGroups, view: &GatewayReport) -> Vec<FailoverStep> {
        self.epoch = view.epoch;
        let mut steps = Vec::new();
        for &(id, state) in &view.states {
            let Some(g) = groups.groups.iter().find(|g| g.id == id) else {
                continue;
            };
            // This gateway's own group, which the others marked unavailable while it
            // was away, serves (they make it active/non-optimized when they hear it).
            let state = if state == AccessState::Unavailable && id == groups.local_group {
                AccessState::ActiveNonOptimized
            } else {
                state
            };
            if state == AccessState::Unavailable {
                self.failed.insert(id);
            } else {
                self.failed.remove(&id);
            }
            if g.state != state {
                steps.push(FailoverStep {
                    group: id,
                    state,
                    adopted_from: Some(view.port),
                });
            }
        }
        steps
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

    /// Reports of gateways that say nothing but their port (epoch 0).
    fn ports(p: &[u16]) -> Vec<GatewayReport> {
        p.iter().map(|&p| GatewayReport::port_only(p)).collect()
    }

    fn step(group: u16, state: AccessState) -> FailoverStep {
        FailoverStep {
            group,
            state,
            adopted_from: None,
        }
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
    fn a_gone_gateway_is_fenced_by_the_clients_it_named_once() {
        let mut w = GatewayWatch::new();
        let g = groups(2, &[(1, AO), (2, AN), (3, AN)]);
        let named = |port: u16, c: &[&str]| GatewayReport {
            clients: c.iter().map(|s| s.to_string()).collect(),
            instance: Some(format!("{port}")),
            ..GatewayReport::port_only(port)
        };
        let all = [named(1, &["a1", "a2"]), named(3, &[])];
        w.observe(1, &g, &all);
        assert_eq!(w.to_fence(1), vec![], "nobody gone");
        // Gateway 1 stops answering: not fenced before it counts as gone.
        for _ in 1..MISSES_BEFORE_GONE {
            w.observe(1, &g, &all[1..]);
            assert_eq!(w.to_fence(1), vec![]);
        }
        w.observe(1, &g, &all[1..]);
        let due = vec![(1, vec!["a1".to_string(), "a2".to_string()])];
        assert_eq!(w.to_fence(1), due);
        assert_eq!(w.to_fence(1), due, "asked again until fenced");
        w.fenced(1, 1);
        w.observe(1, &g, &all[1..]);
        assert_eq!(w.to_fence(1), vec![]);
        // Gateway 3, which named no client, goes too: nothing to break.
        for _ in 0..MISSES_BEFORE_GONE {
            w.observe(1, &g, &[]);
        }
        assert_eq!(w.to_fence(1), vec![]);
        // Gateway 1 back with a new client, gone again: its new client is fenced.
        w.observe(1, &g, &[named(1, &["a3"])]);
        for _ in 0..MISSES_BEFORE_GONE {
            w.observe(1, &g, &[]);
        }
        assert_eq!(w.to_fence(1), vec![(1, vec!["a3".to_string()])]);
        // This gateway's own clients are never fenced, nor another target's.
        let mut me = GatewayWatch::new();
        me.observe(1, &g, &[named(2, &["mine"])]);
        for _ in 0..MISSES_BEFORE_GONE {
            me.observe(1, &g, &[]);
        }
        assert_eq!(me.to_fence(1), vec![]);
        assert_eq!(w.to_fence(2), vec![]);
    }

    #[test]
    fn a_restarted_gateway_retires_the_clients_of_its_previous_process() {
        let mut w = GatewayWatch::new();
        let g = groups(2, &[(1, AO), (2, AN)]);
        let named = |instance: &str, c: &[&str]| GatewayReport {
            clients: c.iter().map(|s| s.to_string()).collect(),
            instance: Some(instance.into()),
            ..GatewayReport::port_only(1)
        };
        w.observe(1, &g, &[named("p1", &["a1"])]);
        assert_eq!(w.to_fence(1), vec![]);
        // Restarted between two questions: never missed one, yet a1 is dead.
        w.observe(1, &g, &[GatewayReport::port_only(1)]);
        assert_eq!(
            w.to_fence(1),
            vec![],
            "a report without clients says nothing"
        );
        w.observe(1, &g, &[named("p2", &["b1"])]);
        assert_eq!(w.to_fence(1), vec![(1, vec!["a1".to_string()])]);
        w.fenced(1, 1);
        assert_eq!(w.to_fence(1), vec![]);
        // Its new process's clients are not touched while it answers.
        w.observe(1, &g, &[named("p2", &["b1", "b2"])]);
        assert_eq!(w.to_fence(1), vec![]);
        // A process seen before coming back is two gateways on one port: nothing.
        w.observe(1, &g, &[named("p1", &["a1"])]);
        w.observe(1, &g, &[named("p2", &["b1"])]);
        assert_eq!(w.to_fence(1), vec![]);
        // Restarted and then gone: both the old clients and the new ones.
        w.observe(1, &g, &[named("p3", &["c1"])]);
        for _ in 0..MISSES_BEFORE_GONE {
            w.observe(1, &g, &[]);
        }
        assert_eq!(
            w.to_fence(1),
            vec![(1, vec!["b1".to_string(), "c1".to_string()])]
        );
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

    /// `g` with `steps` applied, as the daemon's `alua_state` updates do.
    fn apply(g: &PortGroups, steps: &[FailoverStep]) -> PortGroups {
        let mut g = g.clone();
        for st in steps {
            if let Some(x) = g.groups.iter_mut().find(|x| x.id == st.group) {
                x.state = st.state;
            }
        }
        g
    }

    #[test]
    fn a_returning_gateway_adopts_the_failovers_it_missed() {
        let configured = [(1, AO), (2, AN)];
        let (mut w1, mut w2) = (GatewayWatch::new(), GatewayWatch::new());
        let mut g2 = groups(2, &configured);
        let g1 = groups(1, &configured);
        // Both answer with their views (epoch 0): nothing to adopt.
        let both = [w1.report(1, &g1), w2.report(1, &g2)];
        assert_eq!(both[0].epoch, 0);
        assert_eq!(both[0].states, vec![(1, AO), (2, AN)]);
        assert_eq!(w1.observe(1, &g1, &both), vec![]);
        assert_eq!(w2.observe(1, &g2, &both), vec![]);
        // 1 dies: 2 fails over, and its view is one failover on.
        for _ in 1..MISSES_BEFORE_GONE {
            let r = [w2.report(1, &g2)];
            assert_eq!(w2.observe(1, &g2, &r), vec![]);
        }
        let r = [w2.report(1, &g2)];
        let steps = w2.observe(1, &g2, &r);
        assert_eq!(steps, vec![step(1, Unavailable), step(2, AO)]);
        g2 = apply(&g2, &steps);
        assert_eq!(w2.report(1, &g2).epoch, 1);
        // 1 starts again as configured (a new watch) and hears 2 before 2 hears it.
        let mut w1 = GatewayWatch::new();
        let mut g1 = groups(1, &configured);
        let r = [w1.report(1, &g1), w2.report(1, &g2)];
        let steps = w1.observe(1, &g1, &r);
        let adopted = |group, state| FailoverStep {
            group,
            state,
            adopted_from: Some(2),
        };
        // Its own group serves at once, not preferred; 2 stays preferred.
        assert_eq!(steps, vec![adopted(1, AN), adopted(2, AO)]);
        assert_eq!(steps[1].alua_state(), "2:active/optimized");
        g1 = apply(&g1, &steps);
        assert_eq!(g1.local_state(), AN);
        // 2 hears 1 and lets its group serve again: the same states, a later epoch.
        let r = [w1.report(1, &g1), w2.report(1, &g2)];
        assert_eq!(w1.observe(1, &g1, &r), vec![]);
        let s2 = w2.observe(1, &g2, &r);
        assert_eq!(s2, vec![step(1, AN)]);
        g2 = apply(&g2, &s2);
        assert_eq!(g1.groups, g2.groups, "one view");
        // 1 takes that epoch (nothing to change).
        let r = [w1.report(1, &g1), w2.report(1, &g2)];
        assert_eq!(w1.observe(1, &g1, &r), vec![]);
        assert_eq!(w2.observe(1, &g2, &r), vec![]);
        // Steady: same epoch, same states, nothing more.
        for _ in 0..3 {
            let r = [w1.report(1, &g1), w2.report(1, &g2)];
            assert_eq!(r[0].epoch, r[1].epoch);
            assert_eq!(w1.observe(1, &g1, &r), vec![]);
            assert_eq!(w2.observe(1, &g2, &r), vec![]);
        }
    }

    #[test]
    fn a_returning_gateway_that_hears_the_later_view_adopts_it_directly() {
        // 2 already let group 1 serve again (epoch 2) when 1's first answer comes.
        let mut w1 = GatewayWatch::new();
        let g1 = groups(1, &[(1, AO), (2, AN)]);
        let view = GatewayReport {
            port: 2,
            epoch: 2,
            states: vec![(1, AN), (2, AO)],
            clients: Vec::new(),
            instance: None,
        };
        let steps = w1.observe(1, &g1, std::slice::from_ref(&view));
        assert_eq!(
            steps.iter().map(|s| s.alua_state()).collect::<Vec<_>>(),
            ["1:active/non-optimized", "2:active/optimized"]
        );
        let g1 = apply(&g1, &steps);
        assert_eq!(w1.report(1, &g1).epoch, 2);
        assert_eq!(w1.observe(1, &g1, &[view]), vec![], "adopted once");
    }

    #[test]
    fn the_highest_epoch_then_the_lowest_port_is_adopted_and_nothing_else() {
        let g = groups(1, &[(1, AO), (2, AN), (3, AN)]);
        // The view of the gateway on `port`, `epoch` failovers on, `optimized` preferred.
        let view = |port, epoch, optimized| GatewayReport {
            port,
            epoch,
            states: [1, 2, 3]
                .map(|id| (id, if id == optimized { AO } else { AN }))
                .to_vec(),
            clients: Vec::new(),
            instance: None,
        };
        let mut w = GatewayWatch::new();
        let steps = w.observe(1, &g, &[view(3, 4, 3), view(2, 4, 2), view(4, 3, 2)]);
        assert!(steps.iter().all(|s| s.adopted_from == Some(2)), "{steps:?}");
        assert!(steps.contains(&FailoverStep {
            group: 2,
            state: AO,
            adopted_from: Some(2)
        }));
        // Equal epochs are not compared; its own port's view is never adopted.
        let mut w = GatewayWatch::new();
        let g = groups(1, &[(1, AO), (2, AN)]);
        assert_eq!(w.observe(1, &g, &[view(2, 0, 2), view(1, 9, 2)]), vec![]);
        // A view naming groups this gateway does not have changes only the known ones.
        let unknown = GatewayReport {
            port: 2,
            epoch: 1,
            states: vec![(7, AO), (2, AO)],
            clients: Vec::new(),
            instance: None,
        };
        assert_eq!(
            w.observe(1, &g, &[unknown]),
            vec![FailoverStep {
                group: 2,
                state: AO,
                adopted_from: Some(2)
            }]
        );
        // Forgetting the target forgets its epoch.
        w.forget(1);
        assert_eq!(w.report(1, &g).epoch, 0);
    }

    #[test]
    fn another_group_adopted_unavailable_serves_again_when_it_answers() {
        // Gateway 3 was away while 1 failed over to 2; 1 is still gone.
        let mut w3 = GatewayWatch::new();
        let g3 = groups(3, &[(1, AO), (2, AN), (3, AN)]);
        let view = GatewayReport {
            port: 2,
            epoch: 1,
            states: vec![(1, Unavailable), (2, AO), (3, AN)],
            clients: Vec::new(),
            instance: None,
        };
        let steps = w3.observe(1, &g3, std::slice::from_ref(&view));
        assert_eq!(
            steps.iter().map(|s| s.alua_state()).collect::<Vec<_>>(),
            ["1:unavailable", "2:active/optimized"]
        );
        let g3 = apply(&g3, &steps);
        assert_eq!(w3.observe(1, &g3, std::slice::from_ref(&view)), vec![]);
        // 1 answers again: 3 lets it serve, as 2 does.
        let back = [GatewayReport::port_only(1), view];
        assert_eq!(w3.observe(1, &g3, &back), vec![step(1, AN)]);
    }
}
