//! iSNSAccessControl: which initiators the iSNS server lets see each target.
//!
//! tgt keeps, per target, the initiator names the server returned to its DevAttrQry
//! (the target as Source, initiators as key: the server answers with the initiators
//! sharing a Discovery Domain with the target). With `iSNS On` and
//! `iSNSAccessControl On`, `isns_scn_access(tid, initiator)` then refuses a login to
//! the target (and leaves the target out of SendTargets) for any initiator not in
//! that list. A target whose list was never filled (no answer yet, server
//! unreachable) or came back empty admits nobody: tgt's list starts empty and the
//! check is "is the name in it". With either setting Off every initiator passes.
//!
//! The [`Client`](super::Client) owns an [`AccessMap`] and fills it from the
//! server's answers; the daemon copies it into [`IsnsState`](super::IsnsState)
//! where the sans-IO login and discovery code reads it.

use super::codec::Tag;
use super::response::Response;
use super::NODE_TYPE_INITIATOR;
use std::collections::{BTreeMap, BTreeSet};

/// Target name → the initiator names allowed to see it. Names compare without
/// regard to ASCII case (iSCSI names are case-folded, RFC 3722; tgt compares the
/// bytes, which agrees for the lower-case names initiators send).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessMap {
    targets: BTreeMap<String, BTreeSet<String>>,
}

fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl AccessMap {
    /// An empty map: nobody is allowed anywhere (when enforced).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the list of `target` (tgt frees the old list and fills it from the
    /// answer). Returns whether it changed.
    pub fn set<I, S>(&mut self, target: &str, initiators: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let new: BTreeSet<String> = initiators.into_iter().map(|i| fold(i.as_ref())).collect();
        let old = self.targets.insert(fold(target), new);
        old.as_ref() != self.targets.get(&fold(target))
    }

    /// Forget `target` (deregistered). Returns whether it was known.
    pub fn remove(&mut self, target: &str) -> bool {
        self.targets.remove(&fold(target)).is_some()
    }

    /// Keep only the targets `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.targets.retain(|t, _| keep(t));
    }

    /// Forget everything (iSNS turned off).
    pub fn clear(&mut self) {
        self.targets.clear();
    }

    /// Whether `initiator` may see `target`: false for a target never answered for.
    pub fn allows(&self, target: &str, initiator: &str) -> bool {
        self.targets
            .get(&fold(target))
            .is_some_and(|s| s.contains(&fold(initiator)))
    }

    /// The allowed initiators of `target` (lower case), when the server answered.
    pub fn initiators(&self, target: &str) -> Option<&BTreeSet<String>> {
        self.targets.get(&fold(target))
    }

    /// How many targets have a list.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether no target has a list.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The initiators in a DevAttrQryRsp to [`dev_attr_qry_initiators`]
/// (super::message::dev_attr_qry_initiators), read as tgt reads it: each iSCSI Name
/// immediately followed by an iSCSI Node Type with the initiator bit (tgt wants the
/// value 2 exactly, which would miss an initiator that is also a Control node). Key attributes
/// echoed before the delimiter (a Node Type without a name) and Portal IP Addresses
/// between nodes add nothing.
pub fn initiators_in(rsp: &Response) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut name: Option<&str> = None;
    for a in &rsp.attrs {
        match a.tag {
            Tag::ISCSI_NAME => name = a.as_str().filter(|n| !n.is_empty()),
            Tag::ISCSI_NODE_TYPE => {
                let initiator = a.as_u32().is_some_and(|t| t & NODE_TYPE_INITIATOR != 0);
                if let (true, Some(n)) = (initiator, name) {
                    if !out.iter().any(|o| o == n) {
                        out.push(n.to_string());
                    }
                }
                name = None;
            }
            _ => name = None,
        }
    }
    out
}
