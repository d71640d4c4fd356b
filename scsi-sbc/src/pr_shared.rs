//! Persistent reservations shared by several gateways (target daemons) serving one
//! medium, e.g. a Ceph RBD image: the registrations and the reservation live with the
//! store (a cluster object), not in one daemon's memory.
//!
//! The split, sans-IO on this side:
//! - PERSISTENT RESERVE OUT does not change the LU's copy of the state. It becomes a
//!   [`BlockOp::PrOut`] that the store runs as a read-modify-write of the shared state
//!   with [`apply_out`] (the same [`Reservations::handle_out`] every LU runs), writes
//!   the result conditionally on the version it read (retrying on a race), tells the
//!   other gateways (their stores [`SharedPr::publish`] it) and only then completes.
//!   The store answers with the state the command was applied to; [`complete_out`]
//!   runs the command again on it, which gives the exact answer (GOOD, RESERVATION
//!   CONFLICT or the sense) and the unit attentions, and adopts the result.
//! - Every command first brings the LU's copy up to date ([`SharedPr::sync`]: one
//!   atomic load when nothing changed), so a WRITE through gateway B after the PR OUT
//!   through gateway A completed is checked against the new state: A completes only
//!   after B's store published it.
//!
//! The text is [`Reservations::encode_shared`]'s; a store's notification adds one
//! `ua NEXUS ASCASCQ` line (hex) per unit attention the change raised, which each
//! gateway queues for the nexuses it knows.
//!
//! The same channel carries what one gateway does to the LU that every nexus on every
//! gateway must hear of ([`LuEvent`]: LOGICAL UNIT RESET and target resets, MODE
//! SELECT): [`LuState::outbox`] collects them, the target sends each to the store as
//! a [`BlockOp::LuEvent`] (text from [`SharedPr::encode_event`], marked with the
//! sending gateway so that it ignores its own), and the other gateways' stores
//! [`SharedPr::publish`] them; [`SharedPr::sync`] applies them to the LU before its
//! next command, raising the same unit attentions there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::asc::AscAscq;
use crate::dispatch::{Outcome, ScsiStatus};
use crate::lu::Nexus;
use crate::pr::{PrError, Reservations, Uas};
use crate::pr_persist::RestoreError;
use crate::sense::{Sense, SenseKey};
use crate::state::{LuState, ModeValues};
use crate::BlockOp;

/// At most this many unit attentions wait in a [`SharedPr`] (a gateway that runs no
/// command for a long time must not grow without bound).
const MAX_PENDING_UAS: usize = 1024;

/// First line of an [`LuEvent`] notification.
const EVENT_MAGIC: &str = "tgtd-lu 1";

/// Something done to the LU through one gateway that every other gateway applies to
/// its copy of the LU, raising the unit attentions SAM-5 and SPC-4 ask for on its
/// nexuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LuEvent {
    /// LOGICAL UNIT RESET or a target reset: POWER ON, RESET, OR BUS DEVICE RESET
    /// OCCURRED (BUS DEVICE RESET FUNCTION OCCURRED) on every nexus, SPC-2
    /// reservations and medium removal prevention cleared, mode values back to saved.
    Reset,
    /// MODE SELECT changed the current mode parameter values to these: MODE
    /// PARAMETERS CHANGED on every nexus of the other gateways, which take the values.
    Mode(ModeValues),
}

fn tri(v: Option<bool>) -> char {
    match v {
        None => '-',
        Some(false) => '0',
        Some(true) => '1',
    }
}

fn untri(c: &str) -> Option<Option<bool>> {
    match c {
        "-" => Some(None),
        "0" => Some(Some(false)),
        "1" => Some(Some(true)),
        _ => None,
    }
}

/// An event notification: its sender and the event.
fn parse_event(text: &str) -> Option<(u64, LuEvent)> {
    let mut lines = text.lines();
    if lines.next()? != EVENT_MAGIC {
        return None;
    }
    let from = u64::from_str_radix(lines.next()?.strip_prefix("from ")?, 16).ok()?;
    let mut w = lines.next()?.split(' ');
    let event = match w.next()? {
        "reset" => LuEvent::Reset,
        "mode" => {
            let wce = untri(w.next()?)?;
            let rcd = untri(w.next()?)??;
            let d_sense = untri(w.next()?)?;
            let swp = untri(w.next()?)??;
            LuEvent::Mode(ModeValues {
                wce,
                rcd,
                d_sense,
                swp,
            })
        }
        _ => return None,
    };
    Some((from, event))
}

/// Apply another gateway's `event` to this gateway's copy of the LU.
fn apply_event(state: &mut LuState, event: LuEvent) {
    match event {
        LuEvent::Reset => state.reset_here(),
        LuEvent::Mode(values) => {
            if values != state.mode {
                state
                    .ua
                    .broadcast(crate::asc::MODE_PARAMETERS_CHANGED, None);
                state.mode = values;
            }
        }
    }
}

/// What a store does for a [`BlockOp::PrOut`] on the state it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedStep {
    /// Nothing to write: the command fails, or changes nothing.
    Unchanged,
    /// Write `object` in place of what was read (only if nobody wrote in between),
    /// then notify every gateway with `notify` (the state and its unit attentions).
    Write {
        /// The new state, to keep.
        object: Vec<u8>,
        /// The new state and the unit attentions it raised, for the other gateways.
        notify: Vec<u8>,
    },
}

/// A shared state read from its store: empty bytes (no object yet) are the empty
/// state at version 0.
fn read_shared(current: &[u8], ptpl_capable: bool) -> Result<Reservations, RestoreError> {
    let mut r = Reservations {
        ptpl_capable,
        shared: true,
        ..Reservations::default()
    };
    r.restore(current)?;
    Ok(r)
}

/// Run PERSISTENT RESERVE OUT `op` on `res` (at its `shared_version`): the answer and
/// whether the state changed (then `res` is the new state, one version up).
fn run_out(res: &mut Reservations, op: &BlockOp) -> Option<(Result<Uas, PrError>, bool)> {
    let BlockOp::PrOut {
        nexus,
        initiator,
        port,
        initiator_port,
        all_ports,
        sa,
        scope,
        typ,
        param,
    } = op
    else {
        return None;
    };
    let version = res.shared_version;
    let before = res.encode_shared(version);
    let n = Nexus {
        id: *nexus,
        initiator_port: *initiator_port,
        initiator,
    };
    let r = res.handle_out_at(&n, all_ports, *sa, *scope, *typ, param);
    if r.is_ok() && matches!(sa, 0 | 6) {
        res.note_port(*nexus, *port);
    }
    let changed = match &r {
        Ok(uas) => !uas.is_empty() || res.encode_shared(version) != before,
        Err(_) => false,
    };
    if changed {
        res.shared_version = version + 1;
    }
    Some((r, changed))
}

/// The store's half of a [`BlockOp::PrOut`]: apply it to the shared state `current`
/// (as read, empty when there is none yet).
pub fn apply_out(current: &[u8], op: &BlockOp) -> Result<SharedStep, RestoreError> {
    let mut res = read_shared(current, true)?;
    let Some((r, true)) = run_out(&mut res, op) else {
        return Ok(SharedStep::Unchanged);
    };
    let object = res.encode_shared(res.shared_version);
    let mut notify = object.clone();
    for (n, code) in r.unwrap_or_default() {
        notify.extend_from_slice(
            format!("ua {n:016x} {:02x}{:02x}\n", code.asc, code.ascq).as_bytes(),
        );
    }
    Ok(SharedStep::Write { object, notify })
}

/// The unit attentions of a notification (its `ua` lines).
fn notified_uas(text: &str) -> Vec<(u64, AscAscq)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("ua ")?.split(' ');
            let n = u64::from_str_radix(w.next()?, 16).ok()?;
            let c = u16::from_str_radix(w.next()?, 16).ok()?;
            Some((
                n,
                AscAscq {
                    asc: (c >> 8) as u8,
                    ascq: c as u8,
                },
            ))
        })
        .collect()
}

/// Make `next` the LU's copy, keeping what is local to this gateway (SPC-2
/// reservations, the save sequence, the capabilities).
fn adopt(state: &mut LuState, mut next: Reservations) {
    next.spc2 = state.res.spc2;
    next.save_seq = state.res.save_seq;
    next.ptpl_capable = state.res.ptpl_capable;
    next.shared = true;
    state.res = next;
}

/// Queue a unit attention from the shared state for `nexus` if it has addressed this
/// LU through this gateway (the others are other gateways' nexuses).
fn queue_ua(state: &mut LuState, nexus: u64, code: AscAscq) {
    if state.ua.known().any(|k| k == nexus) {
        state.ua.add(nexus, code);
    }
}

/// The LU's half of a [`BlockOp::PrOut`]: the store answered with `result`, the shared
/// state the command was applied to (or an I/O error). Runs the command again on
/// that state for its exact answer and adopts the new state unless the LU already
/// follows a newer one.
pub fn complete_out(
    state: &mut LuState,
    op: &BlockOp,
    result: Result<bytes::Bytes, crate::IoErrorKind>,
) -> Outcome {
    let base = match result {
        Ok(b) => b,
        Err(kind) => return Outcome::check(crate::dispatch::io_error_sense(kind)),
    };
    let mut res = match read_shared(&base, state.res.ptpl_capable) {
        Ok(r) => r,
        // The store handed back what it could not parse either: it wrote nothing.
        Err(_) => {
            return Outcome::check(Sense::new(
                SenseKey::HardwareError,
                AscAscq { asc: 0x44, ascq: 0 },
            ))
        }
    };
    let Some((r, _)) = run_out(&mut res, op) else {
        return Outcome::check(Sense::invalid_field_in_cdb());
    };
    let newer = res.shared_version > state.res.shared_version;
    if newer {
        adopt(state, res);
    }
    match r {
        Ok(uas) => {
            if newer {
                for (n, code) in uas {
                    queue_ua(state, n, code);
                }
            }
            Outcome::good(bytes::Bytes::new())
        }
        Err(PrError::Conflict) => Outcome::status(ScsiStatus::ReservationConflict),
        Err(PrError::Check(s)) => Outcome::check(s),
    }
}

/// Where a store puts the shared state it learns (an object read, another gateway's
/// notification) for the LU to pick up before its next command: the mailbox between
/// the store's threads and the LU's state.
#[derive(Debug, Default)]
pub struct SharedPr {
    /// Newest version published: the LU's fast check.
    latest: AtomicU64,
    /// Other gateways' [`LuEvent`]s wait in `pending`: the LU's other fast check.
    events: AtomicBool,
    /// This gateway's mark on the events it sends (its own come back to it).
    origin: u64,
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// The newest state's version and text.
    version: u64,
    state: Vec<u8>,
    /// Unit attentions not yet queued: (version that raised it, nexus, code).
    uas: Vec<(u64, u64, AscAscq)>,
    /// Other gateways' events not yet applied, oldest first.
    events: Vec<LuEvent>,
}

impl SharedPr {
    /// A mailbox whose gateway marks the events it sends with `origin` (a value
    /// unique among the gateways of a medium, e.g. from the host, process and time).
    pub fn new(origin: u64) -> SharedPr {
        SharedPr {
            origin,
            ..SharedPr::default()
        }
    }

    /// The notification that tells the other gateways of `event`.
    pub fn encode_event(&self, event: &LuEvent) -> Vec<u8> {
        let what = match event {
            LuEvent::Reset => "reset".to_owned(),
            LuEvent::Mode(m) => format!(
                "mode {} {} {} {}",
                tri(m.wce),
                tri(Some(m.rcd)),
                tri(m.d_sense),
                tri(Some(m.swp))
            ),
        };
        format!("{EVENT_MAGIC}\nfrom {:016x}\n{what}\n", self.origin).into_bytes()
    }

    /// The store learned `text`: a state (with a notification's unit attentions), or
    /// another gateway's [`LuEvent`] (this gateway's own are ignored). Returns the
    /// newest version known; an older state than already known changes nothing but
    /// its unit attentions still count.
    pub fn publish(&self, text: &[u8]) -> Result<u64, RestoreError> {
        if text.starts_with(EVENT_MAGIC.as_bytes()) {
            let (from, event) = std::str::from_utf8(text)
                .ok()
                .and_then(parse_event)
                .ok_or(RestoreError::NotOurs)?;
            if from != self.origin {
                let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if p.events.len() >= MAX_PENDING_UAS {
                    p.events.remove(0);
                }
                p.events.push(event);
                self.events.store(true, Ordering::Release);
            }
            return Ok(self.latest());
        }
        let res = read_shared(text, true)?;
        let version = res.shared_version;
        let uas = std::str::from_utf8(text)
            .map(notified_uas)
            .unwrap_or_default();
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if version > p.version {
            p.version = version;
            p.state = text.to_vec();
        }
        for (n, code) in uas {
            if p.uas.len() >= MAX_PENDING_UAS {
                p.uas.remove(0);
            }
            p.uas.push((version, n, code));
        }
        self.latest.fetch_max(version, Ordering::AcqRel);
        Ok(version)
    }

    /// The newest version published.
    pub fn latest(&self) -> u64 {
        self.latest.load(Ordering::Acquire)
    }

    /// Bring the LU's copy up to the newest published state, queueing the unit
    /// attentions raised since the version it had. Cheap when nothing changed.
    pub fn sync(&self, state: &mut LuState) {
        // Every published state has a version of 1 or more (the first write).
        let have = state.res.shared_version;
        if self.latest() <= have && !self.events.load(Ordering::Acquire) {
            return;
        }
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Events first: a reset replaces the unit attentions pending, and a
        // reservation change notified after it must still be reported.
        self.events.store(false, Ordering::Release);
        for event in std::mem::take(&mut p.events) {
            apply_event(state, event);
        }
        if p.version > have {
            if let Ok(next) = read_shared(&p.state, state.res.ptpl_capable) {
                adopt(state, next);
            }
        }
        for &(v, n, code) in &p.uas {
            if v > have {
                queue_ua(state, n, code);
            }
        }
        let now = state.res.shared_version;
        p.uas.retain(|&(v, _, _)| v > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asc;
    use bytes::Bytes;

    const I1: &str = "iqn.2001-04.com.example:i1";
    const I2: &str = "iqn.2001-04.com.example:i2";

    fn out(nexus: u64, initiator: &str, sa: u8, typ: u8, key: u64, sa_key: u64) -> BlockOp {
        let mut p = vec![0u8; 24];
        p[0..8].copy_from_slice(&key.to_be_bytes());
        p[8..16].copy_from_slice(&sa_key.to_be_bytes());
        BlockOp::PrOut {
            nexus,
            initiator: initiator.into(),
            port: 0,
            initiator_port: nexus,
            all_ports: Vec::new(),
            sa,
            scope: 0,
            typ,
            param: Bytes::from(p),
        }
    }

    /// A store that keeps one object and applies PR OUTs as the rbd store does.
    fn store_run(object: &mut Vec<u8>, boxes: &[&SharedPr], op: &BlockOp) -> Bytes {
        let base = Bytes::from(object.clone());
        if let SharedStep::Write { object: o, notify } = apply_out(object, op).unwrap() {
            *object = o;
            for b in boxes {
                b.publish(&notify).unwrap();
            }
        }
        base
    }

    fn lu(shared: &SharedPr) -> LuState {
        let mut s = LuState::new();
        s.res.ptpl_capable = true;
        s.res.shared = true;
        shared.sync(&mut s);
        s
    }

    #[test]
    fn two_gateways_see_one_state() {
        let (ba, bb) = (SharedPr::default(), SharedPr::default());
        let mut object = Vec::new();
        let (mut a, mut b) = (lu(&ba), lu(&bb));
        // Nexus 1 on A, nexus 2 on B have addressed the LU.
        a.ua.see(1);
        let _ = a.ua.take(1);
        b.ua.see(2);
        let _ = b.ua.take(2);

        // REGISTER and RESERVE (write exclusive, registrants only) through A.
        for op in [out(1, I1, 0, 0, 0, 0xa1), out(1, I1, 1, 5, 0xa1, 0)] {
            let base = store_run(&mut object, &[&ba, &bb], &op);
            let o = complete_out(&mut a, &op, Ok(base));
            assert_eq!(o, Outcome::good(Bytes::new()));
        }
        assert_eq!(a.res.shared_version, 2);
        bb.sync(&mut b);
        assert_eq!(b.res.shared_version, 2);
        assert_eq!(b.res.registrations.len(), 1);
        assert_eq!(b.res.holder.map(|h| h.typ), Some(5));
        assert!(
            b.res.check(2, crate::pr::Access::Write).is_err(),
            "B enforces it"
        );
        assert!(b.res.check(2, crate::pr::Access::Read).is_ok());

        // A RESERVE that changes nothing writes nothing.
        let same = out(1, I1, 1, 5, 0xa1, 0);
        assert_eq!(apply_out(&object, &same).unwrap(), SharedStep::Unchanged);

        // Through B: REGISTER, then a RESERVE that conflicts, answered exactly.
        let reg = out(2, I2, 0, 0, 0, 0xb2);
        let base = store_run(&mut object, &[&ba, &bb], &reg);
        assert_eq!(
            complete_out(&mut b, &reg, Ok(base)),
            Outcome::good(Bytes::new())
        );
        let res = out(2, I2, 1, 1, 0xb2, 0);
        let base = store_run(&mut object, &[&ba, &bb], &res);
        assert_eq!(
            complete_out(&mut b, &res, Ok(base)),
            Outcome::status(ScsiStatus::ReservationConflict)
        );

        // PREEMPT through B: A's nexus loses its registration and gets the UA on A.
        let pre = out(2, I2, 4, 1, 0xb2, 0xa1);
        let base = store_run(&mut object, &[&ba, &bb], &pre);
        assert_eq!(
            complete_out(&mut b, &pre, Ok(base)),
            Outcome::good(Bytes::new())
        );
        ba.sync(&mut a);
        assert_eq!(a.res.shared_version, 4);
        assert_eq!(a.res.holder.map(|h| (h.nexus, h.typ)), Some((2, 1)));
        assert!(a.res.check(1, crate::pr::Access::Write).is_err());
        let ua = a.ua.take(1).expect("UA on A");
        assert_eq!((ua.asc, ua.ascq), (0x2a, 0x05));
        assert_eq!(a.ua.take(1), None, "queued once");
        // B raised nothing for itself; its own store's copy of the notify is not
        // queued again.
        bb.sync(&mut b);
        assert_eq!(b.ua.take(2), None);
    }

    #[test]
    fn a_reset_and_new_mode_values_reach_the_other_gateways_nexuses_once() {
        let (ba, bb) = (SharedPr::new(0xa), SharedPr::new(0xb));
        let (mut a, mut b) = (lu(&ba), lu(&bb));
        a.ua.see(1);
        let _ = a.ua.take(1);
        for n in [2, 3] {
            b.ua.see(n);
            let _ = b.ua.take(n);
        }
        b.res.spc2 = Some(2);
        // LOGICAL UNIT RESET through A: A's nexus hears of it and B is to be told.
        a.reset();
        assert_eq!(a.outbox, vec![LuEvent::Reset]);
        for ev in std::mem::take(&mut a.outbox) {
            let text = ba.encode_event(&ev);
            // Every watcher gets it, the sender too.
            ba.publish(&text).unwrap();
            bb.publish(&text).unwrap();
        }
        ba.sync(&mut a);
        assert_eq!(a.ua.take(1).map(|s| (s.asc, s.ascq)), Some((0x29, 0x03)));
        assert_eq!(a.ua.take(1), None, "its own event is not applied again");
        assert!(a.outbox.is_empty());
        bb.sync(&mut b);
        for n in [2, 3] {
            let s = b.ua.take(n).expect("UA on B");
            assert_eq!(
                (s.key, s.asc, s.ascq),
                (SenseKey::UnitAttention, 0x29, 0x03)
            );
            assert_eq!(b.ua.take(n), None, "once");
        }
        assert_eq!(b.res.spc2, None, "the reset released B's SPC-2 reservation");
        assert!(b.outbox.is_empty(), "an applied event is not sent on again");
        bb.sync(&mut b);
        assert_eq!(b.ua.take(2), None);

        // New mode values through A.
        let m = ModeValues {
            wce: Some(false),
            rcd: true,
            d_sense: None,
            swp: true,
        };
        let text = ba.encode_event(&LuEvent::Mode(m));
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            "tgtd-lu 1\nfrom 000000000000000a\nmode 0 1 - 1\n"
        );
        bb.publish(&text).unwrap();
        bb.publish(&text).unwrap();
        bb.sync(&mut b);
        assert_eq!(b.mode, m);
        let s = b.ua.take(2).expect("MODE PARAMETERS CHANGED");
        assert_eq!((s.asc, s.ascq), (0x2a, 0x01));
        assert_eq!(b.ua.take(2), None, "the same values twice: once");

        // An LU of one gateway tells nobody; garbage is refused, not a panic.
        let mut alone = LuState::new();
        alone.reset();
        assert!(alone.outbox.is_empty());
        for bad in [
            &b"tgtd-lu 1\n"[..],
            b"tgtd-lu 1\nfrom zz\nreset\n",
            b"tgtd-lu 1\nfrom 1\nmode 0 - - 1\n",
            b"tgtd-lu 1\nfrom 1\nfly\n",
        ] {
            assert!(bb.publish(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registrations_keep_the_relative_port_they_came_through() {
        let bx = SharedPr::default();
        let mut object = Vec::new();
        let mut a = lu(&bx);
        // One initiator port through two gateways (ports 1 and 2): two nexuses.
        for (nexus, port, key) in [(11, 1, 0xa1), (12, 2, 0xb2)] {
            let mut op = out(nexus, I1, 0, 0, 0, key);
            if let BlockOp::PrOut { port: p, .. } = &mut op {
                *p = port;
            }
            let base = store_run(&mut object, &[&bx], &op);
            assert_eq!(
                complete_out(&mut a, &op, Ok(base)),
                Outcome::good(Bytes::new())
            );
        }
        let text = String::from_utf8(object.clone()).unwrap();
        assert!(
            text.ends_with("port 000000000000000b 1\nport 000000000000000c 2\n"),
            "{text}"
        );
        // READ FULL STATUS through port 7: each registration with its own port.
        let d = a.res.read_in(3, 7).unwrap();
        let first = &d[8..];
        assert_eq!(&first[0..8], &0xa1u64.to_be_bytes());
        assert_eq!(&first[18..20], &[0, 1]);
        let tid_len = u32::from_be_bytes(first[20..24].try_into().unwrap()) as usize;
        let second = &first[24 + tid_len..];
        assert_eq!(&second[0..8], &0xb2u64.to_be_bytes());
        assert_eq!(&second[18..20], &[0, 2]);
        // Without a port (ALUA off) nothing is written and the asker's port is shown.
        let mut plain = Reservations::default();
        plain.restore(&object).unwrap();
        plain.note_port(11, 0);
        assert_eq!(plain.registrations[0].port, 1);
        let op = out(13, I2, 0, 0, 0, 0xc3);
        if let SharedStep::Write { object: o, .. } = apply_out(&[], &op).unwrap() {
            assert!(!String::from_utf8(o).unwrap().contains("port"));
        }
        let mut r = read_shared(&[], true).unwrap();
        run_out(&mut r, &op);
        assert_eq!(&r.read_in(3, 7).unwrap()[8 + 18..8 + 20], &[0, 7]);
    }

    #[test]
    fn a_completion_never_takes_the_state_back() {
        let bx = SharedPr::default();
        let mut object = Vec::new();
        let mut a = lu(&bx);
        let reg = out(1, I1, 0, 0, 0, 0xa1);
        let base = store_run(&mut object, &[&bx], &reg);
        // Another gateway's change arrives (and is synced) before our completion.
        let reg2 = out(2, I2, 0, 0, 0, 0xb2);
        store_run(&mut object, &[&bx], &reg2);
        bx.sync(&mut a);
        assert_eq!(a.res.shared_version, 2);
        assert_eq!(
            complete_out(&mut a, &reg, Ok(base)),
            Outcome::good(Bytes::new())
        );
        assert_eq!(a.res.shared_version, 2);
        assert_eq!(a.res.registrations.len(), 2);
    }

    #[test]
    fn aptpl_and_version_round_trip_and_errors() {
        let mut r = Reservations {
            ptpl_capable: true,
            aptpl: false,
            generation: 3,
            ..Reservations::default()
        };
        let text = r.encode_shared(9);
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            "tgtd-pr 1\nversion 9\naptpl 0\ngeneration 3\n"
        );
        let back = read_shared(&text, true).unwrap();
        assert_eq!(
            (back.shared_version, back.aptpl, back.generation),
            (9, false, 3)
        );
        r.aptpl = true;
        assert!(read_shared(&r.encode_shared(1), true).unwrap().aptpl);
        let bx = SharedPr::default();
        assert!(bx.publish(b"not ours").is_err());
        assert!(bx.publish(b"tgtd-pr 1\naptpl 2\n").is_err());
        assert_eq!(bx.latest(), 0);
        // A store error is the command's sense; bytes that do not parse are a target
        // failure, not a panic.
        let mut s = lu(&bx);
        let op = out(1, I1, 0, 0, 0, 1);
        let o = complete_out(&mut s, &op, Err(crate::IoErrorKind::TimedOut));
        assert_eq!(o.sense.map(|s| s.key), Some(SenseKey::AbortedCommand));
        let o = complete_out(&mut s, &op, Ok(Bytes::from_static(b"junk")));
        assert_eq!(o.sense.map(|s| s.key), Some(SenseKey::HardwareError));
        assert_eq!(
            notified_uas("ua 00000000000000ff 2a05\nua zz 1\n"),
            vec![(0xff, asc::REGISTRATIONS_PREEMPTED)]
        );
    }
}
