//! Mutable state of one logical unit: unit attentions, reservations, mode parameter
//! values, medium removal. The target holds one per LU (behind a lock) and passes it to
//! [`crate::execute_in`]; nothing here does I/O.

use crate::asc;
use crate::lu::LuConfig;
use crate::pr::Reservations;
use crate::pr_shared::LuEvent;
use crate::ua::UnitAttentions;
use std::collections::{BTreeMap, BTreeSet};

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

/// The held result of an EXTENDED COPY, for RECEIVE COPY RESULTS (SPC-4 6.18.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStatus {
    /// List identifier.
    pub list_id: u8,
    /// COPY MANAGER STATUS: 00h in progress, 01h completed without errors, 02h
    /// completed with errors.
    pub status: u8,
    /// Segments processed.
    pub segments: u16,
    /// Bytes copied.
    pub bytes: u64,
    /// COPY STATUS has reported this finished copy (it is kept only while its failed
    /// segment details are still held).
    pub reported: bool,
    /// The sense a failed copy ended with, held for RECEIVE COPY RESULTS FAILED
    /// SEGMENT DETAILS (SPC-4 6.18.4) until they are read.
    pub failure: Option<crate::sense::Sense>,
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
    /// The held EXTENDED COPY results of each nexus, one per LIST IDENTIFIER, oldest
    /// first (a bounded number: see the copy manager's OPERATING PARAMETERS).
    pub copies: BTreeMap<u64, Vec<CopyStatus>>,
    /// A SANITIZE is running: every command but INQUIRY, REPORT LUNS and REQUEST SENSE
    /// answers NOT READY, SANITIZE IN PROGRESS (SBC-4 4.11.2) until it ends, whatever
    /// happens to the task that started it (abort, reset, logout).
    pub sanitizing: bool,
    /// How far the running SANITIZE is, in 65536ths (REQUEST SENSE reports it as the
    /// PROGRESS INDICATION, SPC-4 4.5.2.4.4); the target updates it as the work goes.
    pub sanitize_progress: u16,
    /// Media events (MMC-6 GET EVENT STATUS NOTIFICATION, media class) not yet
    /// reported, per nexus: the event code, 2 NewMedia or 3 MediaRemoval.
    pub media_events: BTreeMap<u64, u8>,
    /// An administrator took the LU offline (tgt `--params online=0`): media commands
    /// answer NOT READY until it is back online; INQUIRY, REPORT LUNS, REQUEST SENSE and
    /// the reservation commands still work.
    pub offline: bool,
    /// A tape LU's fixed block length as its drive last reported it (0: variable
    /// blocks): what a fixed-block WRITE (6) carries is its count times this. The
    /// drive (in its store) owns the value; `scsi-ssc` copies it here after each
    /// command.
    pub stream_block_len: u32,
    /// What this gateway did to a medium that several gateways share (`res.shared`)
    /// and the others must hear of, oldest first: the target takes them after each
    /// command or reset and sends each to the store as a [`crate::BlockOp::LuEvent`].
    /// Always empty on an LU of one gateway.
    pub outbox: Vec<LuEvent>,
}

/// At most this many events wait in [`LuState::outbox`] (the target takes them after
/// every command; the bound only guards against a target that does not).
const MAX_OUTBOX: usize = 16;

impl LuState {
    /// A freshly powered-on LU.
    pub fn new() -> Self {
        LuState::default()
    }

    /// A state where `nexuses` have already addressed the LU and cleared their
    /// power-on unit attention: the starting point of most tests.
    #[cfg(test)]
    pub(crate) fn settled(nexuses: &[u64]) -> Self {
        let mut s = LuState::new();
        for &n in nexuses {
            s.ua.see(n);
            while s.ua.take(n).is_some() {}
        }
        s
    }

    /// LOGICAL UNIT RESET / target reset (SAM-5 6.3.3): UA to every nexus, SPC-2
    /// reservation and medium removal prevention cleared, mode values back to saved.
    /// On a medium shared by several gateways the reset is the LU's, not this
    /// gateway's: the other gateways are told ([`LuState::outbox`]) and reset their
    /// copy of the LU too ([`crate::pr_shared::SharedPr::sync`]).
    pub fn reset(&mut self) {
        self.reset_here();
        self.tell_others(LuEvent::Reset);
    }

    /// [`LuState::reset`] of this gateway's copy only (another gateway's reset).
    pub(crate) fn reset_here(&mut self) {
        self.ua.reset();
        self.res.spc2 = None;
        self.prevent.clear();
        self.mode = self.saved;
    }

    /// Queue `event` for the other gateways when the medium is shared.
    pub(crate) fn tell_others(&mut self, event: LuEvent) {
        if !self.res.shared {
            return;
        }
        if self.outbox.len() >= MAX_OUTBOX {
            self.outbox.remove(0);
        }
        self.outbox.push(event);
    }

    /// An I_T nexus ended (logout, connection loss).
    pub fn nexus_lost(&mut self, nexus: u64) {
        self.ua.forget(nexus);
        self.res.nexus_lost(nexus);
        self.prevent.remove(&nexus);
        self.copies.remove(&nexus);
        self.media_events.remove(&nexus);
    }

    /// Record media event `code` (2 NewMedia, 3 MediaRemoval) for every nexus this LU
    /// knows, replacing one not yet reported.
    pub fn media_event(&mut self, code: u8) {
        let known: Vec<u64> = self.ua.known().collect();
        for n in known {
            self.media_events.insert(n, code);
        }
    }

    /// The capacity changed (resize): CAPACITY DATA HAS CHANGED (SBC-3 4.5) to every
    /// nexus this LU knows and to `nexuses` (the target's other nexuses, which may not
    /// have addressed this LU yet).
    pub fn capacity_changed(&mut self, nexuses: &[u64]) {
        self.see_all(nexuses);
        self.ua.broadcast(asc::CAPACITY_DATA_CHANGED, None);
    }

    /// The medium was replaced (a new backing file): NOT READY TO READY CHANGE, MEDIUM
    /// MAY HAVE CHANGED (SBC-3 4.5) to every nexus this LU knows and to `nexuses`.
    /// A new medium is in: an ejected LU is loaded again, and removable-medium devices
    /// report a NewMedia event.
    pub fn medium_changed(&mut self, nexuses: &[u64]) {
        self.see_all(nexuses);
        self.ejected = false;
        self.ua.broadcast(asc::MEDIUM_MAY_HAVE_CHANGED, None);
        self.media_event(2);
    }

    /// LUNs were added to or removed from the target: REPORTED LUNS DATA HAS CHANGED
    /// (SPC-4 6.33) to every nexus this LU knows and to `nexuses`.
    pub fn luns_changed(&mut self, nexuses: &[u64]) {
        self.see_all(nexuses);
        self.ua.broadcast(asc::REPORTED_LUNS_CHANGED, None);
    }

    fn see_all(&mut self, nexuses: &[u64]) {
        for &n in nexuses {
            self.ua.see(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{disk, CTX};
    use crate::{execute_in, prepare_in, Plan, SenseKey};
    use bytes::Bytes;

    fn key_asc(o: &crate::Outcome) -> Option<(SenseKey, u8, u8)> {
        o.sense.map(|s| (s.key, s.asc, s.ascq))
    }

    #[test]
    fn a_new_nexus_hears_of_power_on_once_and_inquiry_does_not_consume_it() {
        let lu = disk();
        let mut st = LuState::new();
        let inq = [0x12, 0, 0, 0, 36, 0];
        assert!(
            prepare_in(&inq, &lu, &CTX, &mut st).is_ok(),
            "SPC-4 6.6: exempt"
        );
        let tur = [0u8; 6];
        let o = prepare_in(&tur, &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(key_asc(&o), Some((SenseKey::UnitAttention, 0x29, 0x00)));
        assert!(
            prepare_in(&tur, &lu, &CTX, &mut st).is_ok(),
            "reported once"
        );
        // The session ends; the next one is a new nexus and hears it again.
        st.nexus_lost(1);
        let o = prepare_in(&tur, &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(key_asc(&o), Some((SenseKey::UnitAttention, 0x29, 0x00)));
    }

    #[test]
    fn lun_inventory_change_reaches_unseen_nexuses_once() {
        let lu = disk();
        let mut st = LuState::new();
        // Nexus 1 (CTX) never addressed this LU; the target names it.
        st.luns_changed(&[1]);
        let tur = [0u8; 6];
        let o = prepare_in(&tur, &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(
            key_asc(&o),
            Some((SenseKey::UnitAttention, 0x29, 0x00)),
            "SAM-5 5.14: power on first, for a nexus new to the LU"
        );
        let o = prepare_in(&tur, &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(
            key_asc(&o),
            Some((SenseKey::UnitAttention, 0x3f, 0x0e)),
            "SPC-4 6.33: REPORTED LUNS DATA HAS CHANGED"
        );
        assert!(
            prepare_in(&tur, &lu, &CTX, &mut st).is_ok(),
            "reported once"
        );
        st.capacity_changed(&[]);
        let o = prepare_in(&tur, &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(key_asc(&o), Some((SenseKey::UnitAttention, 0x2a, 0x09)));
    }

    #[test]
    fn offline_lu_is_not_ready_but_answers_inquiry() {
        let mut lu = disk();
        let mut st = LuState {
            offline: true,
            ..LuState::settled(&[1])
        };
        let write10 = [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        // Refused before any data-out is solicited.
        let o = prepare_in(&write10, &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(key_asc(&o), Some((SenseKey::NotReady, 0x04, 0x03)));
        let o = prepare_in(&[0u8; 6], &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(key_asc(&o), Some((SenseKey::NotReady, 0x04, 0x03)));
        let inq = [0x12, 0, 0, 0, 36, 0];
        assert!(prepare_in(&inq, &lu, &CTX, &mut st).is_ok());
        match execute_in(&inq, &lu, &CTX, &mut st, Bytes::new()) {
            Plan::Done(o) => assert_eq!(o.data.len(), 36),
            other => panic!("{other:?}"),
        }
        // A removable LU reports its medium missing instead, as tgt does.
        lu.removable = true;
        let read10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let o = prepare_in(&read10, &lu, &CTX, &mut st).unwrap_err();
        assert_eq!(key_asc(&o), Some((SenseKey::NotReady, 0x3a, 0x00)));
        st.offline = false;
        assert!(prepare_in(&read10, &lu, &CTX, &mut st).is_ok());
    }
}
