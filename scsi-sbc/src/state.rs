//! Mutable state of one logical unit: unit attentions, reservations, mode parameter
//! values, medium removal. The target holds one per LU (behind a lock) and passes it to
//! [`crate::execute_in`]; nothing here does I/O.

use crate::asc;
use crate::lu::LuConfig;
use crate::pr::Reservations;
use crate::ua::UnitAttentions;
use std::collections::BTreeSet;

/// Mode parameter values changed by MODE SELECT; `None` means the LU's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModeValues {
    /// Caching page WCE.
    pub wce: Option<bool>,
    /// Caching page RCD (read cache disable).
    pub rcd: bool,
    /// Control page D_SENSE.
    pub d_sense: Option<bool>,
    /// Control page SWP (software write protect).
    pub swp: bool,
}

impl ModeValues {
    /// Effective write cache enable.
    pub fn wce(&self, lu: &LuConfig) -> bool {
        self.wce.unwrap_or(lu.write_cache)
    }

    /// Effective descriptor-format sense.
    pub fn d_sense(&self, lu: &LuConfig) -> bool {
        self.d_sense.unwrap_or(lu.descriptor_sense)
    }
}

/// The result of the last EXTENDED COPY, for RECEIVE COPY RESULTS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStatus {
    /// List identifier.
    pub list_id: u8,
    /// Segments processed.
    pub segments: u16,
    /// Blocks copied.
    pub blocks: u64,
}

/// Everything about an LU that commands change.
#[derive(Debug, Clone, Default)]
pub struct LuState {
    /// Unit attention queues.
    pub ua: UnitAttentions,
    /// SPC-2 and persistent reservations.
    pub res: Reservations,
    /// Current mode parameter values.
    pub mode: ModeValues,
    /// Saved mode parameter values (MODE SELECT with SP=1).
    pub saved: ModeValues,
    /// Nexuses that sent PREVENT ALLOW MEDIUM REMOVAL with PREVENT=1.
    pub prevent: BTreeSet<u64>,
    /// The medium was ejected (START STOP UNIT LOEJ=1 START=0).
    pub ejected: bool,
    /// Last EXTENDED COPY.
    pub copy: Option<CopyStatus>,
}

impl LuState {
    /// A freshly powered-on LU.
    pub fn new() -> Self {
        LuState::default()
    }

    /// LOGICAL UNIT RESET / target reset (SAM-5 6.3.3): UA to every nexus, SPC-2
    /// reservation and medium removal prevention cleared, mode values back to saved.
    pub fn reset(&mut self) {
        self.ua.reset();
        self.res.spc2 = None;
        self.prevent.clear();
        self.mode = self.saved;
    }

    /// An I_T nexus ended (logout, connection loss).
    pub fn nexus_lost(&mut self, nexus: u64) {
        self.ua.forget(nexus);
        self.res.nexus_lost(nexus);
        self.prevent.remove(&nexus);
    }

    /// The capacity changed (resize): CAPACITY DATA HAS CHANGED to everyone.
    pub fn capacity_changed(&mut self) {
        self.ua.broadcast(asc::CAPACITY_DATA_CHANGED, None);
    }

    /// LUNs were added or removed: REPORTED LUNS DATA HAS CHANGED to everyone.
    pub fn luns_changed(&mut self) {
        self.ua.broadcast(asc::REPORTED_LUNS_CHANGED, None);
    }
}
