//! Implicit ALUA failover between gateways (`target_core::registry::GatewayWatch`):
//! at start and then every [`EVERY`], for each target with ALUA, ask the medium of
//! its first shared LU which gateways answer and with which view of the port groups
//! ([`BlockStore::live_gateways`]: a Ceph RBD image's gateways answer on its
//! reservation object's watch channel), let the rule decide (a failover, or the
//! adoption of failovers this gateway missed while it was away), and make its state
//! changes through [`LocalAdmin`] as `tgtadm --mode target --op update --name
//! alua_state` would (so each is serialised with the administrator's requests and
//! announced with ASYMMETRIC ACCESS STATE CHANGED on every nexus).
//!
//! A gateway that counts as gone (the rule's [`MISSES_BEFORE_GONE`]) may still hold
//! locks in the media (librbd's exclusive lock on an image it wrote), which keeps
//! writes through the survivors waiting until the cluster drops the dead client
//! (for Ceph, the OSD's `osd_client_watch_timeout`: 30 s by default). Each report
//! names the lock clients of its gateway ([`BlockStore::lock_client`] of every LU),
//! so the survivors break the locks those clients hold on every LU of the target
//! ([`BlockStore::break_lock_of`], which fences the dead client) as soon as it
//! counts as gone, or as soon as its port answers with a new process (a restart
//! between two questions: the reports carry a process instance). A lock held by any
//! client a gateway did not name as its own is left to the cluster.
//!
//! A target none of whose LUs is shared between gateways is left alone.
//!
//! [`BlockStore::live_gateways`]: scsi_sbc::BlockStore::live_gateways
//! [`BlockStore::lock_client`]: scsi_sbc::BlockStore::lock_client
//! [`BlockStore::break_lock_of`]: scsi_sbc::BlockStore::break_lock_of
//! [`MISSES_BEFORE_GONE`]: target_core::registry::MISSES_BEFORE_GONE

#![allow(clippy::disallowed_methods)] // the watch owns its thread, and the wall clock names this process (`Watch::new`)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use target_core::mgmt::Request;
use target_core::registry::GatewayWatch;

use crate::mgmt_server::LocalAdmin;

/// How often the gateways are asked. A crashed optimized gateway is replaced
/// within about this plus the store's wait for answers (two seconds for rbd).
pub const EVERY: Duration = Duration::from_secs(2);

/// Start the thread (`tgtd-gw-watch`); it runs until the process exits.
pub fn spawn(admin: LocalAdmin) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tgtd-gw-watch".into())
        .spawn(move || {
            let mut watch = Watch::new();
            loop {
                check(&admin, &mut watch);
                std::thread::sleep(EVERY);
            }
        })
        .map(|_| ())
}

/// What the thread remembers between rounds.
#[derive(Debug)]
pub struct Watch {
    rule: GatewayWatch,
    /// This process among the gateways (`GatewayReport::instance`): its id and the
    /// time it started, so a restarted gateway is told from its previous process.
    instance: String,
    /// The ports that answered last time, per target (logged when they change).
    answered: BTreeMap<u32, BTreeSet<u16>>,
}

impl Watch {
    /// A watch for this process, which has seen nothing yet.
    pub fn new() -> Watch {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Watch {
            rule: GatewayWatch::new(),
            instance: format!("{:x}.{started:x}", std::process::id()),
            answered: BTreeMap::new(),
        }
    }
}

impl Default for Watch {
    fn default() -> Watch {
        Watch::new()
    }
}

fn list(ports: &BTreeSet<u16>) -> String {
    let v: Vec<String> = ports.iter().map(u16::to_string).collect();
    v.join(",")
}

/// One round over every target.
pub fn check(admin: &LocalAdmin, watch: &mut Watch) {
    for target in admin.core().registry.targets() {
        let Some(groups) = target.alua() else {
            watch.rule.forget(target.tid);
            watch.answered.remove(&target.tid);
            continue;
        };
        // The first LU whose medium answers speaks for the target (its gateways
        // serve all of its LUs): one question per target and round, so a dead
        // gateway, which makes each question wait its full timeout, costs a round
        // one timeout however many LUs the target has.
        let luns = target.luns();
        let mut me = watch.rule.report(target.tid, &groups);
        me.clients = luns
            .iter()
            .filter_map(|lun| lun.store.as_ref().and_then(|s| s.lock_client()))
            .collect();
        me.instance = Some(watch.instance.clone());
        let answer = luns
            .iter()
            .find_map(|lun| lun.store.as_ref().and_then(|s| s.live_gateways(&me)));
        let Some(reports) = answer else {
            continue;
        };
        let alive: BTreeSet<u16> = reports.iter().map(|r| r.port).collect();
        // The answers took time: decide on the configuration as it is now.
        let Some(groups) = target.alua() else {
            continue;
        };
        if let Some(before) = watch.answered.insert(target.tid, alive.clone()) {
            if !before.is_subset(&alive) {
                tracing::warn!(
                    "tid {}: gateways answering on ports {} (no answer from {})",
                    target.tid,
                    list(&alive),
                    list(&before.difference(&alive).copied().collect())
                );
            } else if before != alive {
                tracing::info!(
                    "tid {}: gateways answering on ports {}",
                    target.tid,
                    list(&alive)
                );
            }
        } else {
            tracing::info!(
                "tid {}: gateways answering on ports {}",
                target.tid,
                list(&alive)
            );
        }
        for step in watch.rule.observe(target.tid, &groups, &reports) {
            let value = step.alua_state();
            let why = match step.adopted_from {
                Some(port) => format!("as the gateway on port {port} reports"),
                None => "failover".into(),
            };
            let req = Request::TargetUpdate {
                tid: target.tid,
                name: "alua_state".into(),
                value: value.clone(),
            };
            match admin.apply(req) {
                Ok(_) => tracing::warn!("tid {}: port group {value} ({why})", target.tid),
                Err(e) => tracing::warn!("tid {}: cannot set port group {value}: {e}", target.tid),
            }
        }
        for (port, clients) in watch.rule.to_fence(target.tid) {
            if fence(&target.luns(), target.tid, port, &clients) {
                watch.rule.fenced(target.tid, port);
            }
        }
    }
}

/// Break, on every LU in `luns`, a lock held by one of `clients` (dead clients of
/// the gateway on relative port `port`: it is gone, or was restarted). True when
/// nothing failed (then the gateway is not asked about again); a failure is logged
/// and tried again next round.
fn fence(
    luns: &[std::sync::Arc<target_core::registry::Lun>],
    tid: u32,
    port: u16,
    clients: &[String],
) -> bool {
    let mut done = true;
    for lun in luns {
        let Some(store) = lun.store.as_ref() else {
            continue;
        };
        match store.break_lock_of(clients) {
            Ok(Some(owner)) => tracing::warn!(
                "tid {tid} lun {}: broke the lock of a dead gateway process on port {port} \
                 (client {owner}, now fenced off the medium)",
                lun.lun
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(
                    "tid {tid} lun {}: cannot break the lock of the gone gateway on port \
                     {port}: {e}",
                    lun.lun
                );
                done = false;
            }
        }
    }
    done
}
