//! Unit attention conditions, queued per I_T nexus (SAM-5 5.14).
//!
//! A condition is reported once to each nexus it was established for: as the CHECK
//! CONDITION of the next command that is not INQUIRY, REPORT LUNS or REQUEST SENSE,
//! or as the sense data of REQUEST SENSE.

use crate::asc::{self, AscAscq};
use crate::sense::{Sense, SenseKey};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Pending conditions kept per nexus; older ones are dropped past this (SAM-5 allows
/// reporting only the most recent when the queue overflows).
const MAX_PENDING: usize = 8;

/// Unit attention queues of one logical unit.
#[derive(Debug, Default, Clone)]
pub struct UnitAttentions {
    /// Every nexus that has sent a command to the LU and not gone away.
    known: BTreeSet<u64>,
    pending: BTreeMap<u64, VecDeque<AscAscq>>,
}

impl UnitAttentions {
    /// Note a nexus; later broadcasts include it. A nexus new to the LU (its first
    /// command since the LU came up, or since its previous session ended) starts with
    /// POWER ON, RESET, OR BUS DEVICE RESET OCCURRED pending, as SAM-5 5.14 asks of
    /// every nexus after power on and as tgt does for each new session: initiators
    /// (Linux, libiscsi) clear it with TEST UNIT READY right after login.
    pub fn see(&mut self, nexus: u64) {
        if self.known.insert(nexus) {
            let q = self.pending.entry(nexus).or_default();
            if !q.contains(&asc::POWER_ON_RESET) {
                q.push_front(asc::POWER_ON_RESET);
            }
        }
    }

    /// Every nexus that has addressed this LU and not gone away.
    pub fn known(&self) -> impl Iterator<Item = u64> + '_ {
        self.known.iter().copied()
    }

    /// The nexus is gone (logout, connection loss): forget its queue.
    pub fn forget(&mut self, nexus: u64) {
        self.known.remove(&nexus);
        self.pending.remove(&nexus);
    }

    /// Queue `code` for one nexus, once (a duplicate of a queued code is not added).
    pub fn add(&mut self, nexus: u64, code: AscAscq) {
        let q = self.pending.entry(nexus).or_default();
        if q.contains(&code) {
            return;
        }
        if q.len() >= MAX_PENDING {
            q.pop_front();
        }
        q.push_back(code);
    }

    /// Queue `code` for every known nexus except `except`.
    pub fn broadcast(&mut self, code: AscAscq, except: Option<u64>) {
        let all: Vec<u64> = self.known.iter().copied().collect();
        for n in all.into_iter().filter(|n| Some(*n) != except) {
            self.add(n, code);
        }
    }

    /// Take the oldest pending condition of `nexus` as sense data.
    pub fn take(&mut self, nexus: u64) -> Option<Sense> {
        let q = self.pending.get_mut(&nexus)?;
        let code = q.pop_front()?;
        if q.is_empty() {
            self.pending.remove(&nexus);
        }
        Some(Sense::new(SenseKey::UnitAttention, code))
    }

    /// Whether `nexus` has a pending condition.
    pub fn has(&self, nexus: u64) -> bool {
        self.pending.get(&nexus).is_some_and(|q| !q.is_empty())
    }

    /// A logical unit reset (LOGICAL UNIT RESET, target reset): every nexus gets
    /// BUS DEVICE RESET FUNCTION OCCURRED, replacing what was pending (SAM-5 6.3.3).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.broadcast(asc::BUS_DEVICE_RESET, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_once_per_nexus() {
        let mut ua = UnitAttentions::default();
        ua.see(1);
        ua.see(2);
        for n in [1, 2] {
            let s = ua.take(n).unwrap();
            assert_eq!((s.asc, s.ascq), (0x29, 0x00), "power on first");
        }
        ua.see(1);
        assert_eq!(ua.take(1), None, "a known nexus gets it once");
        ua.broadcast(asc::MODE_PARAMETERS_CHANGED, Some(1));
        assert_eq!(ua.take(1), None);
        let s = ua.take(2).unwrap();
        assert_eq!(
            (s.key, s.asc, s.ascq),
            (SenseKey::UnitAttention, 0x2a, 0x01)
        );
        assert_eq!(ua.take(2), None);
    }

    #[test]
    fn reset_replaces_and_dedups() {
        let mut ua = UnitAttentions::default();
        ua.see(1);
        ua.add(1, asc::CAPACITY_DATA_CHANGED);
        ua.add(1, asc::CAPACITY_DATA_CHANGED);
        ua.reset();
        let s = ua.take(1).unwrap();
        assert_eq!((s.asc, s.ascq), (0x29, 0x03));
        assert!(!ua.has(1));
        for _ in 0..20 {
            ua.add(1, asc::REPORTED_LUNS_CHANGED);
            ua.add(1, asc::CAPACITY_DATA_CHANGED);
        }
        ua.forget(1);
        assert!(!ua.has(1));
        ua.see(1);
        let s = ua.take(1).unwrap();
        assert_eq!(
            (s.asc, s.ascq),
            (0x29, 0x00),
            "a new session is a new nexus"
        );
    }
}
