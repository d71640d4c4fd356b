//! The SCSI side of a command: which LU answers, checking the CDB before data is
//! solicited, running it, and turning a finished block operation into its outcome.
//!
//! The LU's mutable state (unit attentions, reservations, mode values) lives in
//! `Lun::state`; it is locked only for the duration of one `scsi_sbc` call. The I_T
//! nexus of this connection is named by its initiator port, InitiatorName + ISID
//! (RFC 7143 §4.4.1; SPC-4 5.13.1: registrations belong to the I_T nexus), and by the
//! target's relative port when ALUA names one (`alua_port`), so a re-login with the
//! same ISID finds its registrations and unit attentions again.
//!
//! Hooks for the rest of the connection: [`Connection::scsi_lu_reset`] (LOGICAL UNIT
//! RESET, target resets) and [`Connection::scsi_nexus_lost`] (the session ends).

use super::task::TaskState;
use super::{Connection, IoRequest};
use crate::pace::Pacer;
use crate::registry::{LuStats, Lun, Target};
use bytes::Bytes;
use iscsi_proto::pdu::ScsiCommand;
use scsi_sbc::pr_shared::LuEvent;
use scsi_sbc::{
    BlockOp, BlockStore, IoErrorKind, LuConfig, LuContext, LuState, Nexus, Outcome, Plan, Prepared,
    Sense, SenseKey,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// LOGICAL UNIT NOT SUPPORTED (SPC-4: 25h/00h).
const LUN_NOT_SUPPORTED: Sense = Sense {
    key: SenseKey::IllegalRequest,
    asc: 0x25,
    ascq: 0x00,
    info: None,
    field: None,
    stream: 0,
};

/// EXTENDED COPY (LID1) operation code.
const EXTENDED_COPY: u8 = 0x83;

/// Bytes moved per read and write when copying between LUs.
const COPY_CHUNK: u64 = 1 << 20;

/// The store of an EXTENDED COPY between LUs: each LUN the copy names, with its store.
/// It only calls the stores' own operations, on the worker that runs it: reads from
/// the source, writes to the destination, a chunk at a time.
#[derive(Debug)]
struct CopyStore {
    stores: Vec<(u64, Arc<dyn BlockStore>)>,
}

impl CopyStore {
    fn store(&self, lun: u64) -> Result<&Arc<dyn BlockStore>, IoErrorKind> {
        let found = self.stores.iter().find(|(l, _)| *l == lun);
        found.map(|(_, s)| s).ok_or(IoErrorKind::Other)
    }
}

impl BlockStore for CopyStore {
    fn size(&self) -> u64 {
        0
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let BlockOp::Copy { segments, fua, .. } = op else {
            return Err(IoErrorKind::Other);
        };
        for seg in segments {
            let (src, dst) = (self.store(seg.src)?, self.store(seg.dst)?);
            if seg.src == seg.dst {
                let within = BlockOp::Copy {
                    segments: vec![*seg],
                    fua: false,
                    held: None,
                };
                dst.execute(&within)?;
                continue;
            }
            for (offset, to, len) in seg.chunks(COPY_CHUNK) {
                let data = src.execute(&BlockOp::Read { offset, len })?;
                let write = BlockOp::Write {
                    offset: to,
                    data,
                    fua: false,
                };
                dst.execute(&write)?;
            }
        }
        if *fua {
            for (lun, store) in &self.stores {
                if segments.iter().any(|s| s.dst == *lun) {
                    store.execute(&BlockOp::Flush)?;
                }
            }
        }
        Ok(Bytes::new())
    }
}

/// SANITIZE operation code.
const SANITIZE: u8 = 0x48;

/// Bytes a SANITIZE overwrites or erases between two progress reports.
const SANITIZE_CHUNK: u64 = 64 << 20;

/// The store of a SANITIZE: the LU's own, run a chunk at a time so that REQUEST SENSE
/// can report progress (`LuState::sanitize_progress`). When the operation ends the LU
/// is ready again (`LuState::sanitizing`), even if the task was aborted or its
/// connection lost meanwhile (the completion then goes nowhere). Runs on a worker.
#[derive(Debug)]
struct SanitizeStore {
    inner: Arc<dyn BlockStore>,
    state: Arc<Mutex<LuState>>,
    /// The erase's rate cap (bytes/s) and the daemon's pacer, when both are set.
    pace: Option<(Arc<dyn Pacer>, u64)>,
}

impl SanitizeStore {
    fn state(&self) -> MutexGuard<'_, LuState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The whole-LU WRITE SAME or UNMAP of a SANITIZE, in chunks.
    fn run(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let (offset, len, mut step) = match op {
            BlockOp::WriteSame {
                offset,
                len,
                pattern,
                ..
            } => {
                let plen = (pattern.len() as u64).max(1);
                (*offset, *len, (SANITIZE_CHUNK / plen).max(1) * plen)
            }
            BlockOp::Unmap { ranges } if ranges.len() == 1 => {
                (ranges[0].0, ranges[0].1, SANITIZE_CHUNK)
            }
            _ => return self.inner.execute(op),
        };
        let mut paced = self.pace.as_ref().map(|(pacer, rate)| {
            // Four pieces a second at the cap, so progress and pacing stay smooth.
            let plen = match op {
                BlockOp::WriteSame { pattern, .. } => (pattern.len() as u64).max(1),
                _ => 1,
            };
            step = step.min(((rate / 4) / plen).max(1) * plen);
            pacer.start(*rate)
        });
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(step);
            let piece = match op {
                BlockOp::WriteSame { pattern, .. } => BlockOp::WriteSame {
                    offset: offset + done,
                    len: n,
                    pattern: pattern.clone(),
                    fua: false,
                },
                _ => BlockOp::Unmap {
                    ranges: vec![(offset + done, n)],
                },
            };
            self.inner.execute(&piece)?;
            done += n;
            if let Some(run) = paced.as_mut() {
                run.advance(done);
            }
            let progress = u128::from(done) * 0x1_0000 / u128::from(len);
            self.state().sanitize_progress = u16::try_from(progress).unwrap_or(u16::MAX);
        }
        if let BlockOp::WriteSame { fua: true, .. } = op {
            self.inner.execute(&BlockOp::Flush)?;
        }
        Ok(Bytes::new())
    }
}

impl BlockStore for SanitizeStore {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let result = self.run(op);
        self.state().sanitizing = false;
        result
    }
}

/// The IMMED bit of a SANITIZE CDB (byte 1, bit 7).
fn immed(cdb: &[u8]) -> bool {
    cdb.get(1).is_some_and(|b| b & 0x80 != 0)
}

/// For a copy that names LUs besides `lun`, the store that reaches them all; `None`
/// for any other operation (the LU's own store runs it).
fn copy_store(op: &BlockOp, lun: &Arc<Lun>, peers: &[Arc<Lun>]) -> Option<Arc<dyn BlockStore>> {
    let BlockOp::Copy { segments, .. } = op else {
        return None;
    };
    if segments
        .iter()
        .all(|s| s.src == lun.lun && s.dst == lun.lun)
    {
        return None;
    }
    let stores = std::iter::once(lun)
        .chain(peers)
        .filter_map(|l| Some((l.lun, l.store.clone()?)))
        .collect();
    Some(Arc::new(CopyStore { stores }))
}

/// Check each LU besides `lun` that a planned copy names, as the copy manager reaches
/// it for nexus `nexus` (reservations, readiness, write protection: see
/// [`scsi_sbc::check_copy_target`]). Each LU's state is locked alone, never two at
/// once and not while the addressed LU's is held, so copies in opposite directions
/// cannot deadlock.
fn check_copy_targets(
    op: &BlockOp,
    lun: &Lun,
    peers: &[Arc<Lun>],
    nexus: u64,
) -> Result<(), Sense> {
    let BlockOp::Copy { segments, .. } = op else {
        return Ok(());
    };
    let named = |p: &&Arc<Lun>| {
        p.lun != lun.lun && segments.iter().any(|s| s.src == p.lun || s.dst == p.lun)
    };
    for peer in peers.iter().filter(named) {
        scsi_sbc::check_copy_target(op, peer.lun, &peer.config, &lock(peer), nexus)?;
    }
    Ok(())
}

/// Lock an LU's state; a poisoned lock (a panic elsewhere) still holds valid state.
fn lock(lun: &Lun) -> MutexGuard<'_, LuState> {
    lun.lock_state()
}

/// The nexus id `scsi_sbc` keys reservations and unit attentions by: a 64-bit FNV-1a
/// hash of the initiator port name (InitiatorName, ISID). Deterministic, so it is the
/// same after a re-login or a daemon restart (persisted registrations find their
/// nexus again). Two different ports colliding is a 2^-64 chance per pair; an
/// initiator able to pick its name and ISID can impersonate a port anyway.
pub(crate) fn initiator_port_id(initiator: &str, isid: iscsi_proto::Isid) -> u64 {
    scsi_sbc::lu::initiator_port_id(initiator, isid.0)
}

/// The I_T nexus id: the initiator port's ([`initiator_port_id`]) and, when the
/// target names its port (ALUA configured: `alua_port`, one relative target port per
/// gateway), that port too (SPC-4 3.1.54: an I_T nexus is an initiator port and a
/// target port), so one initiator port logged in through two gateways is two
/// nexuses, two registrants. Without ALUA the id is the initiator port's, as before.
pub(crate) fn nexus_id_at(initiator: &str, isid: iscsi_proto::Isid, port: Option<u16>) -> u64 {
    let id = initiator_port_id(initiator, isid);
    match port {
        None => id,
        // scsi-sbc continues the hash over the port (PERSISTENT RESERVE OUT with
        // ALL_TG_PT computes the nexuses through the other ports the same way).
        Some(p) => scsi_sbc::lu::nexus_at_port(id, p),
    }
}

impl Connection {
    /// This connection's I_T nexus id (0 before login).
    pub(super) fn nexus_id(&self) -> u64 {
        let cached = self.nexus_id.get();
        if cached != 0 {
            return cached;
        }
        let id = self.session.as_ref().map_or(0, |s| {
            let port = s
                .target
                .as_ref()
                .and_then(|t| t.alua())
                .map(|a| a.local_port);
            self.initiator_port
                .set(initiator_port_id(&s.initiator, s.isid));
            nexus_id_at(&s.initiator, s.isid, port)
        });
        self.nexus_id.set(id);
        id
    }

    /// This connection's initiator port id (its nexus id without the target port).
    pub(super) fn initiator_port_id(&self) -> u64 {
        self.nexus_id();
        self.initiator_port.get()
    }

    /// This connection's I_T nexus.
    fn nexus(&self) -> Nexus<'_> {
        Nexus {
            id: self.nexus_id(),
            initiator_port: self.initiator_port_id(),
            initiator: self.initiator_name(),
        }
    }

    /// The counters of this session on LUN `lun` of `target`, when the LUN exists.
    pub(super) fn lu_stats(&mut self, target: &Target, lun: u64) -> Option<Arc<LuStats>> {
        if let Some(s) = self.lu_stats.get(&lun) {
            return Some(s.clone());
        }
        target.lun(lun)?;
        let sid = self.session.as_ref()?.sid;
        let stats = target.lu_stats(sid, lun);
        self.lu_stats.insert(lun, stats.clone());
        Some(stats)
    }

    /// Bring [`Connection::lun_list`] up to date with `target`'s LUNs.
    fn refresh_lun_list(&mut self, target: &Target) {
        // The list is set before the generation moves: a list read after an older
        // generation is at worst taken again next time.
        let generation = target.lun_generation();
        if self.lun_list.0 != generation {
            self.lun_list = (generation, target.lun_list());
        }
    }

    /// Find the LU a command addresses and check its CDB. `Err` is the answer to send
    /// at once (no data is solicited for it).
    pub(super) fn scsi_prepare(
        &mut self,
        target: &Arc<Target>,
        c: &ScsiCommand,
    ) -> Result<(Arc<Lun>, Prepared), Outcome> {
        let lun_no = c.lun.to_lun();
        let opcode = c.cdb.first().copied().unwrap_or(0);
        let lun = match target.lun(lun_no) {
            Some(l) => l,
            // REPORT LUNS and INQUIRY must work on any LUN (SPC-4 §6.33, §6.6.2);
            // LUN 0 answers REPORT LUNS for the whole target.
            None if opcode == 0xa0 => match target.lun(0) {
                Some(l) => l,
                None => return Err(Outcome::check(LUN_NOT_SUPPORTED)),
            },
            None if opcode == 0x12 => return Err(Outcome::good(absent_lun_inquiry(&c.cdb))),
            None => return Err(Outcome::check(LUN_NOT_SUPPORTED)),
        };
        self.refresh_lun_list(target);
        let alua = target.alua();
        let ctx = LuContext {
            lun: lun.lun,
            luns: &self.lun_list.1,
            target_name: &target.name,
            tpgt: self.config.tpgt,
            nexus: self.nexus(),
            peers: &[],
            alua: alua.as_deref(),
        };
        let prepared = crate::device::prepare_in(&c.cdb, &lun.config, &ctx, &mut lock(&lun))?;
        Ok((lun, prepared))
    }

    /// Run a task whose data-out has all arrived.
    pub(super) fn execute(&mut self, itt: u32, data: Bytes) {
        let Some(target) = self.target_luns() else {
            return;
        };
        let nexus_id = self.nexus_id();
        let initiator_port = self.initiator_port_id();
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        let stats = {
            let lun = task.lun.lun;
            // Re-borrow: the cache lookup needs `&mut self`.
            let dir = task.data_dir();
            let stats = self.lu_stats(&target, lun);
            if let Some(s) = &stats {
                s.submitted(dir);
            }
            stats
        };
        self.refresh_lun_list(&target);
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        task.stats = stats;
        // Borrowed from the session field by field (no copy of the name per command:
        // `task` borrows only `self.tasks`).
        let initiator = self.session.as_ref().map_or("", |s| s.initiator.as_str());
        let luns = &self.lun_list.1;
        // EXTENDED COPY may name the target's other LUs: only then are they looked up.
        let peer_luns: Vec<Arc<Lun>> = if task.cdb.first() == Some(&EXTENDED_COPY) {
            luns.iter()
                .filter(|&&n| n != task.lun.lun)
                .filter_map(|&n| target.lun(n))
                .filter(|l| l.online && l.store.is_some())
                .collect()
        } else {
            Vec::new()
        };
        let peers: Vec<(u64, &LuConfig)> = peer_luns.iter().map(|l| (l.lun, &l.config)).collect();
        let alua = target.alua();
        let ctx = LuContext {
            lun: task.lun.lun,
            luns,
            target_name: &target.name,
            tpgt: self.config.tpgt,
            nexus: Nexus {
                id: nexus_id,
                initiator_port,
                initiator,
            },
            peers: &peers,
            alua: alua.as_deref(),
        };
        let (plan, events) = {
            let mut state = lock(&task.lun);
            let plan =
                crate::device::execute_in(&task.cdb, &task.lun.config, &ctx, &mut state, data);
            (plan, std::mem::take(&mut state.outbox))
        };
        let held = if events.is_empty() {
            Vec::new()
        } else {
            let lun = task.lun.clone();
            self.announce(&lun, events)
        };
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        match plan {
            // New mode values: the answer waits until the other gateways have them, so
            // a command sent through another gateway after it hears of the change.
            Plan::Done(outcome) if !held.is_empty() => {
                self.held_tasks.push(super::tmf::HeldTask {
                    itt,
                    outcome,
                    waiting: held.into_iter().collect(),
                });
            }
            Plan::Done(outcome) => self.finish_task(itt, outcome),
            Plan::Io(op) => {
                // The other LUs of a copy, checked before any of it runs.
                if let Err(sense) = check_copy_targets(&op, &task.lun, &peer_luns, nexus_id) {
                    let outcome = {
                        let mut state = lock(&task.lun);
                        scsi_sbc::copy_refused(&task.lun.config, nexus_id, &mut state, &op, sense)
                    };
                    return self.finish_task(itt, outcome);
                }
                let store = match copy_store(&op, &task.lun, &peer_luns) {
                    Some(copy) => Some(copy),
                    None => task.lun.store.clone(),
                };
                let sanitize = task.cdb.first() == Some(&SANITIZE);
                let store = store.map(|inner| -> Arc<dyn BlockStore> {
                    if sanitize {
                        let state = task.lun.state.clone();
                        let rate = task.lun.sanitize_rate;
                        let pace = self
                            .core
                            .pacer()
                            .filter(|_| rate > 0)
                            .map(|p| (p.clone(), rate));
                        Arc::new(SanitizeStore { inner, state, pace })
                    } else {
                        inner
                    }
                });
                let Some(store) = store else {
                    // A media command reached an LU without a store (the controller):
                    // INTERNAL TARGET FAILURE rather than a panic.
                    let sense = Sense {
                        key: SenseKey::HardwareError,
                        asc: 0x44,
                        ascq: 0,
                        info: None,
                        field: None,
                        stream: 0,
                    };
                    return self.finish_task(itt, Outcome::check(sense));
                };
                let seq = self.next_io_tag;
                self.next_io_tag += 1;
                let tag = self.obs.tag(seq, task.metrics.as_ref());
                // SANITIZE with IMMED (SBC-4 5.30.1): GOOD now, the erase goes on
                // detached from the task. Its tag is not tracked, so no reset or abort
                // stops it and its completion is ignored (counted as stray); the
                // `SanitizeStore` makes the LU ready again when it ends.
                if sanitize && immed(&task.cdb) {
                    self.io_out.push_back(IoRequest { tag, store, op });
                    return self.finish_task(itt, Outcome::good(Bytes::new()));
                }
                task.state = TaskState::Io(op.clone());
                task.io_store = Some(store.clone());
                self.io_tags.insert(tag, itt);
                self.io_out.push_back(IoRequest { tag, store, op });
            }
        }
    }

    /// A block operation of task `itt` finished.
    pub(super) fn complete_io(
        &mut self,
        itt: u32,
        result: Result<Bytes, IoErrorKind>,
        crcs: Option<super::SegmentCrcs>,
    ) {
        // Digests computed over the store's data hold for the outcome's data only
        // if that is the same bytes (a READ passes them through).
        let read_at = result.as_ref().ok().map(|d| (d.as_ptr(), d.len()));
        let nexus_id = self.nexus_id();
        let Some(task) = self.tasks.get(&itt) else {
            self.stray_completions += 1;
            return;
        };
        let TaskState::Io(op) = &task.state else {
            return;
        };
        let outcome = {
            let mut state = lock(&task.lun);
            crate::device::complete_in(
                &task.cdb,
                &task.lun.config,
                nexus_id,
                &mut state,
                op,
                result,
            )
        };
        let crcs = crcs.filter(|_| read_at == Some((outcome.data.as_ptr(), outcome.data.len())));
        self.finish_task_with(itt, outcome, crcs);
    }

    /// LOGICAL UNIT RESET of `lun` (or, with `None`, a target reset of every LU):
    /// unit attentions for every nexus, SPC-2 reservations released (SAM-5 6.3.3).
    /// Returns the tags of the announcements to the other gateways of shared media
    /// (the response waits for them, so a command sent through another gateway
    /// after it hears of the reset).
    pub(super) fn scsi_lu_reset(&mut self, lun: Option<u64>) -> Vec<super::IoTag> {
        let Some(target) = self.target_luns() else {
            return Vec::new();
        };
        let mut tags = Vec::new();
        for n in target.lun_numbers() {
            if lun.is_none_or(|l| l == n) {
                if let Some(l) = target.lun(n) {
                    let events = {
                        let mut state = lock(&l);
                        state.reset();
                        std::mem::take(&mut state.outbox)
                    };
                    tags.extend(self.announce(&l, events));
                }
            }
        }
        tags
    }

    /// Send `events` of `lun` to its store for the other gateways of its medium
    /// (nothing for an LU without a store). Returns the requests' tags.
    fn announce(&mut self, lun: &Lun, events: Vec<LuEvent>) -> Vec<super::IoTag> {
        let Some(store) = &lun.store else {
            return Vec::new();
        };
        let mut tags = Vec::new();
        for event in events {
            let seq = self.next_io_tag;
            self.next_io_tag += 1;
            let tag = self.obs.tag(seq, None);
            self.announcing.insert(tag);
            self.io_out.push_back(IoRequest {
                tag,
                store: store.clone(),
                op: BlockOp::LuEvent { event },
            });
            tags.push(tag);
        }
        tags
    }

    /// The session (I_T nexus) ends: its unit attentions and SPC-2 reservations go.
    pub(super) fn scsi_nexus_lost(&mut self) {
        let Some(target) = self.target_luns() else {
            return;
        };
        let id = self.nexus().id;
        for n in target.lun_numbers() {
            if let Some(l) = target.lun(n) {
                lock(&l).nexus_lost(id);
            }
        }
    }
}

/// I_T nexus `id` of `target` ended with no connection left to say so (a session
/// that outlived its connections at ErrorRecoveryLevel 2): as
/// [`Connection::scsi_nexus_lost`].
pub(crate) fn nexus_lost(target: &Target, id: u64) {
    for n in target.lun_numbers() {
        if let Some(l) = target.lun(n) {
            lock(&l).nexus_lost(id);
        }
    }
}

/// Standard INQUIRY data for a LUN that does not exist: peripheral qualifier 011b,
/// device type 1Fh (SPC-4 §6.6.2), cut to the allocation length.
fn absent_lun_inquiry(cdb: &[u8]) -> Bytes {
    let alloc = if cdb.len() >= 5 {
        usize::from(u16::from_be_bytes([cdb[3], cdb[4]]))
    } else {
        0
    };
    let mut d = vec![0u8; 36];
    d[0] = 0x7f;
    d[2] = 0x06;
    d[3] = 0x02;
    d[4] = 31;
    d.truncate(alloc.min(36));
    Bytes::from(d)
}

#[cfg(test)]
mod tests {
    use super::{initiator_port_id, nexus_id_at, CopyStore, SanitizeStore};
    use crate::testkit::MemStore;
    use iscsi_proto::Isid;
    use scsi_sbc::{BlockOp, BlockStore, CopySegment, IoErrorKind, LuState};
    use std::sync::{Arc, Mutex};

    #[test]
    fn copy_store_copies_between_and_within_luns() {
        let (a, b) = (Arc::new(MemStore::new(4096)), Arc::new(MemStore::new(4096)));
        a.write_at(0, b"abcdef");
        let copy = CopyStore {
            stores: vec![(1, a.clone()), (2, b.clone())],
        };
        let seg = |src, dst, src_offset, dst_offset, len| CopySegment {
            src,
            dst,
            src_offset,
            dst_offset,
            len,
        };
        let op = BlockOp::Copy {
            segments: vec![seg(1, 2, 0, 100, 6), seg(1, 1, 0, 2, 4)],
            fua: true,
            held: None,
        };
        assert!(copy.execute(&op).is_ok());
        assert_eq!(b.read_at(100, 6), b"abcdef");
        assert_eq!(a.read_at(0, 6), b"ababcd", "overlapping copy within LUN 1");
        // A LUN the store does not hold, and a failing source.
        let op = BlockOp::Copy {
            segments: vec![seg(1, 3, 0, 0, 1)],
            fua: false,
            held: None,
        };
        assert_eq!(copy.execute(&op), Err(IoErrorKind::Other));
        a.fail_next(IoErrorKind::ReadError);
        let op = BlockOp::Copy {
            segments: vec![seg(1, 2, 0, 0, 1)],
            fua: false,
            held: None,
        };
        assert_eq!(copy.execute(&op), Err(IoErrorKind::ReadError));
    }

    #[test]
    fn sanitize_store_makes_the_lu_ready_when_done_even_on_failure() {
        let state = Arc::new(Mutex::new(LuState {
            sanitizing: true,
            ..LuState::new()
        }));
        let inner = Arc::new(MemStore::new(512));
        inner.fail_next(IoErrorKind::WriteError);
        let store = SanitizeStore {
            pace: None,
            inner,
            state: state.clone(),
        };
        let op = BlockOp::Unmap {
            ranges: vec![(0, 512)],
        };
        assert_eq!(store.execute(&op), Err(IoErrorKind::WriteError));
        assert!(!state.lock().unwrap().sanitizing);
        // An overwrite runs to the end, reporting progress as it goes.
        let inner = Arc::new(MemStore::new(1024));
        let store = SanitizeStore {
            pace: None,
            inner: inner.clone(),
            state: state.clone(),
        };
        let op = BlockOp::WriteSame {
            offset: 0,
            len: 1024,
            pattern: bytes::Bytes::from_static(&[0xaa; 512]),
            fua: true,
        };
        assert!(store.execute(&op).is_ok());
        assert_eq!(inner.read_at(0, 1024), vec![0xaa; 1024]);
        assert_eq!(state.lock().unwrap().sanitize_progress, u16::MAX);
    }

    /// Records what a paced erase reports.
    #[derive(Debug, Default)]
    struct Recorder(Arc<Mutex<Vec<(u64, u64)>>>);

    struct RecordRun(Arc<Mutex<Vec<(u64, u64)>>>, u64);

    impl crate::pace::PaceRun for RecordRun {
        fn advance(&mut self, done: u64) {
            self.0.lock().unwrap().push((self.1, done));
        }
    }

    impl crate::pace::Pacer for Recorder {
        fn start(&self, rate: u64) -> Box<dyn crate::pace::PaceRun> {
            Box::new(RecordRun(self.0.clone(), rate))
        }
    }

    #[test]
    fn sanitize_erase_is_paced_in_quarter_second_pieces() {
        let state = Arc::new(Mutex::new(LuState::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let store = SanitizeStore {
            pace: Some((Arc::new(Recorder(log.clone())), 4096)),
            inner: Arc::new(MemStore::new(8192)),
            state,
        };
        let op = BlockOp::WriteSame {
            offset: 0,
            len: 8192,
            pattern: bytes::Bytes::from_static(&[0; 512]),
            fua: false,
        };
        assert!(store.execute(&op).is_ok());
        // 4096 B/s: 1024-byte pieces (two 512-byte patterns), each reported.
        let want: Vec<(u64, u64)> = (1..=8).map(|i| (4096, i * 1024)).collect();
        assert_eq!(*log.lock().unwrap(), want);
    }

    #[test]
    fn the_target_port_is_part_of_the_nexus_only_when_named() {
        let name = "iqn.2001-04.com.example:i1";
        let isid = Isid([0x80, 0, 0x23, 0x45, 0, 1]);
        assert_eq!(
            nexus_id_at(name, isid, None),
            initiator_port_id(name, isid),
            "no ALUA: the id as before"
        );
        let (p1, p2) = (
            nexus_id_at(name, isid, Some(1)),
            nexus_id_at(name, isid, Some(2)),
        );
        assert_ne!(p1, p2, "one initiator port through two target ports");
        assert_ne!(p1, initiator_port_id(name, isid));
        assert_eq!(p1, nexus_id_at(name, isid, Some(1)), "stable");
    }

    #[test]
    fn initiator_port_id_is_stable_and_distinguishes_ports() {
        let name = "iqn.2001-04.com.example:i1";
        let isid = Isid([0x80, 0, 0x23, 0x45, 0, 1]);
        // A fixed value: persisted reservations depend on it never changing.
        assert_eq!(initiator_port_id(name, isid), initiator_port_id(name, isid));
        // FNV-1a 64 of seven zero bytes (empty name, NUL, zero ISID), computed independently.
        assert_eq!(initiator_port_id("", Isid([0; 6])), 0x778b_1a14_b687_6aa7);
        let other = Isid([0x80, 0, 0x23, 0x45, 0, 2]);
        assert_ne!(
            initiator_port_id(name, isid),
            initiator_port_id(name, other)
        );
        assert_ne!(
            initiator_port_id(name, isid),
            initiator_port_id("iqn.2001-04.com.example:i2", isid)
        );
    }
}
