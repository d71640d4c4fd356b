//! The rbd [`BlockStore`]: options, opening, the asynchronous route and the timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use scsi_sbc::block_op::{encode_extents, first_difference, Extent};
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind, OpDone};

use super::conn::{self, Endpoint, Medic};
use super::ffi::{self, Aio, AioOp, Cluster, SharedObject};
use crate::BackendError;
use scsi_sbc::gateway_report::GatewayReport;
use scsi_sbc::pr_shared::{apply_out, LuEvent, SharedPr, SharedStep};

/// How long an operation may take before it is answered with
/// [`IoErrorKind::TimedOut`] when `--bsopts timeout=` does not say (tgt-rbd has no
/// timeout at all; 30 s is what initiators' own command timeouts are usually above).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest piece a worker reads or writes at once when copying.
const COPY_CHUNK: u64 = 1 << 20;

/// The options of an rbd LU: tgt's `--bsopts "conf=PATH;id=NAME;cluster=NAME"`
/// plus `timeout=SECONDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdOptions {
    /// The Ceph configuration file (`conf=`, default `/etc/ceph/ceph.conf`).
    pub conf: String,
    /// The client name (`id=admin` or `id=client.admin`, default `client.admin`).
    pub name: String,
    /// The cluster name (`cluster=`, default `ceph`).
    pub cluster: String,
    /// Per-operation timeout (`timeout=`, seconds, default [`DEFAULT_TIMEOUT`]); it
    /// also bounds connecting at `logicalunit new`.
    pub timeout: Duration,
}

impl Default for RbdOptions {
    fn default() -> Self {
        RbdOptions {
            conf: "/etc/ceph/ceph.conf".into(),
            name: "client.admin".into(),
            cluster: "ceph".into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RbdOptions {
    /// Parse `--bsopts` (`key=value` items joined by `;`). Unknown keys and bad
    /// values are [`BackendError::BadOptions`].
    pub fn parse(bsopts: &str) -> Result<RbdOptions, BackendError> {
        let bad = |why: String| BackendError::BadOptions {
            text: bsopts.to_owned(),
            why,
        };
        let mut o = RbdOptions::default();
        for item in bsopts.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("'{item}' is not key=value")))?;
            let value = value.trim();
            if value.is_empty() {
                return Err(bad(format!("{key} has no value")));
            }
            match key.trim() {
                "conf" => o.conf = value.to_owned(),
                "id" if value.contains('.') => o.name = value.to_owned(),
                "id" => o.name = format!("client.{value}"),
                "cluster" => o.cluster = value.to_owned(),
                "timeout" => {
                    let s = value
                        .parse::<u64>()
                        .ok()
                        .filter(|s| (1..=3600).contains(s))
                        .ok_or_else(|| bad("timeout must be 1 to 3600 seconds".into()))?;
                    o.timeout = Duration::from_secs(s);
                }
                other => {
                    return Err(bad(format!(
                        "the rbd backing store takes conf, id, cluster, timeout and \
                         nr_threads, not '{other}'"
                    )))
                }
            }
        }
        Ok(o)
    }
}

/// `[POOL/]IMAGE[@SNAP]` split into its parts; the pool defaults to `rbd`, as in tgt.
fn parse_image_path(path: &str) -> Result<(&str, &str, Option<&str>), BackendError> {
    let bad = || BackendError::BadImagePath {
        path: path.to_owned(),
    };
    let (pool, rest) = match path.split_once('/') {
        Some((p, r)) => (p, r),
        None => ("rbd", path),
    };
    let (image, snap) = match rest.split_once('@') {
        Some((i, s)) => (i, Some(s)),
        None => (rest, None),
    };
    if pool.is_empty() || image.is_empty() || image.contains('/') || snap == Some("") {
        return Err(bad());
    }
    Ok((pool, image, snap))
}

/// `strerror` of a negative errno, for messages.
pub(crate) fn errno_text(neg: i32) -> String {
    std::io::Error::from_raw_os_error(-neg).to_string()
}

/// One operation's answer: whoever comes first (librbd's completion or the
/// watchdog's timeout) takes `done` and calls it; the other finds it gone.
struct Slot {
    done: Mutex<Option<OpDone>>,
}

impl Slot {
    fn new(done: OpDone) -> Arc<Slot> {
        Arc::new(Slot {
            done: Mutex::new(Some(done)),
        })
    }

    fn finish(&self, result: Result<Bytes, IoErrorKind>) {
        let done = self
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(done) = done {
            done(result);
        }
    }
}

/// Deadlines of the operations in flight, oldest first (every operation of a store
/// has the same timeout, so pushing at the back keeps them ordered). A finished
/// operation leaves a dead `Weak` that is dropped when it reaches the front.
#[derive(Default)]
struct Deadlines {
    queue: VecDeque<(Instant, Weak<Slot>)>,
    stop: bool,
}

/// The store's one timer thread: answers operations whose deadline passed.
struct Watchdog {
    state: Mutex<Deadlines>,
    wake: Condvar,
}

impl Watchdog {
    fn start(label: &str) -> Result<Arc<Watchdog>, BackendError> {
        let w = Arc::new(Watchdog {
            state: Mutex::new(Deadlines::default()),
            wake: Condvar::new(),
        });
        let run = w.clone();
        std::thread::Builder::new()
            .name("tgtd-rbd-timer".into())
            .spawn(move || run.run())
            .map_err(|source| BackendError::Spawn { source })?;
        tracing::debug!("rbd {label}: timer started");
        Ok(w)
    }

    fn watch(&self, slot: &Arc<Slot>, deadline: Instant) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while st.queue.front().is_some_and(|(_, w)| w.strong_count() == 0) {
            st.queue.pop_front();
        }
        let was_empty = st.queue.is_empty();
        st.queue.push_back((deadline, Arc::downgrade(slot)));
        if was_empty {
            self.wake.notify_one();
        }
    }

    fn stop(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if st.stop {
                return;
            }
            let now = Instant::now();
            match st.queue.front() {
                None => {
                    st = self.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
                Some((deadline, _)) if *deadline > now => {
                    let left = *deadline - now;
                    st = self
                        .wake
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Some(_) => {
                    let (_, slot) = st.queue.pop_front().expect("front");
                    if let Some(slot) = slot.upgrade() {
                        drop(st);
                        slot.finish(Err(IoErrorKind::TimedOut));
                        st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                    }
                }
            }
        }
    }
}

/// A Ceph RBD image as an LU's medium (see the [module doc](super)).
pub struct RbdStore {
    // Declared first: stopped before the connection it may replace is dropped.
    _medic: Medic,
    /// The image and its cluster handle (replaced when the cluster fenced us off).
    conn: conn::Shared,
    pr: Option<PrShare>,
    label: String,
    readonly: bool,
    size: AtomicU64,
    timeout: Duration,
    id: String,
    watchdog: Arc<Watchdog>,
    /// Set by the update watch when the image header changed (a resize).
    changed: Arc<AtomicBool>,
    /// Taken shared by writes as they are queued and exclusive by this gateway's
    /// read-modify-writes that librbd cannot do in one call (COMPARE AND WRITE of
    /// more than one sector, ORWRITE), as `compound` does for files.
    rmw: RwLock<()>,
    /// What operations in flight tell the store.
    flags: Arc<OpFlags>,
}

/// What operations in flight tell the store.
#[derive(Debug, Default)]
struct OpFlags {
    /// Writes queued on librbd and not yet answered by it: a read-modify-write with
    /// the lock waits for them to drain.
    writes_in_flight: AtomicUsize,
    /// An operation failed with `ESHUTDOWN`: the cluster blocklisted our client (see
    /// [`conn`]); the medic connects again.
    fenced: Arc<AtomicBool>,
}

impl std::fmt::Debug for RbdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RbdStore")
            .field("image", &self.label)
            .field("id", &self.id)
            .field("readonly", &self.readonly)
            .field("size", &self.size)
            .finish()
    }
}

/// The image's persistent reservations, kept for every gateway in RADOS object
/// `tgtd-pr.<image id>` of the image's pool (see [`scsi_sbc::pr_shared`]).
struct SharedReservations {
    object: SharedObject,
    /// What the watch learns, for the LU.
    shared: Arc<SharedPr>,
    /// One read-modify-write of the object at a time from this gateway (the object's
    /// version, read back after the read, is per I/O context).
    rmw: Mutex<()>,
    /// The object whose advisory lock [`CAW_LOCK`] makes COMPARE AND WRITE of more
    /// than librbd's one sector atomic between gateways (`tgtd-caw.<image id>`).
    caw_oid: String,
    /// This gateway's lock cookies: a prefix unique to the store, then a count.
    caw_cookie: (u64, AtomicU64),
}

/// The advisory lock (a RADOS class lock) every gateway of an image takes around a
/// COMPARE AND WRITE that librbd cannot do in one call: read, compare and write then
/// run as one against every other such command, through any gateway.
const CAW_LOCK: &str = "tgtd-caw";

/// A held [`CAW_LOCK`]; released when dropped.
struct CawGuard<'a> {
    owner: &'a SharedReservations,
    cookie: String,
    label: &'a str,
}

impl Drop for CawGuard<'_> {
    fn drop(&mut self) {
        let o = self.owner;
        if let Err(e) = o.object.unlock(&o.caw_oid, CAW_LOCK, &self.cookie) {
            // It expires by itself after the duration it was taken for.
            tracing::warn!(
                "rbd {}: cannot release {}: {}",
                self.label,
                o.caw_oid,
                errno_text(e)
            );
        }
    }
}

/// How often a PERSISTENT RESERVE OUT is tried again when another gateway changed
/// the object between our read and our write.
const PR_RETRIES: usize = 32;

/// Seconds the OSD keeps the watch of a gateway it no longer hears from, and the
/// longest a PERSISTENT RESERVE OUT waits for the other gateways to acknowledge a
/// change: a crashed gateway delays reservation changes by at most this much (well
/// inside initiators' command timeouts), a live one acknowledges in milliseconds.
const PR_WATCH_TIMEOUT_S: u32 = 5;

/// The question a gateway asks every gateway of the image on the reservation
/// object's watch channel ([`BlockStore::live_gateways`]). Each gateway's watch
/// acknowledges every notification with its [`GatewayReport`] (relative target port
/// and view of the port groups), so the acknowledgements of this one notification
/// name the gateways alive and what each serves.
const GATEWAY_PROBE: &[u8] = b"tgtd-gw? 1\n";

/// How long [`GATEWAY_PROBE`] waits for the acknowledgements: a live gateway answers
/// in milliseconds; one that does not within this is taken for gone.
const GATEWAY_PROBE_TIMEOUT_MS: u64 = 2000;

/// The shared reservations and the thread that watches the object again when the
/// watch is lost (stopped and joined on drop, before the object is closed), on a
/// cluster handle of their own (dropped last, after the object).
struct PrShare {
    pr: Arc<SharedReservations>,
    stop: Arc<AtomicBool>,
    healer: Option<std::thread::JoinHandle<()>>,
    _cluster: Cluster,
}

impl PrShare {
    /// Connect a handle for the reservation object with `settings` (which bound
    /// every object operation, see [`RbdStore::open`]), open and watch the object
    /// and start the thread.
    fn start(
        opts: &RbdOptions,
        settings: &[(&str, &str)],
        pool: &str,
        id: &str,
        label: &str,
    ) -> Result<PrShare, String> {
        let cluster = Cluster::connect(&opts.cluster, &opts.name, &opts.conf, settings)
            .map_err(|(step, e)| format!("cannot {step} the cluster: {}", errno_text(e)))?;
        let pr = match SharedReservations::open(&cluster, pool, id, label) {
            Ok(pr) => Arc::new(pr),
            Err(e) => {
                drop(cluster);
                return Err(e);
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, l) = (pr.clone(), stop.clone(), label.to_owned());
        let healer = std::thread::Builder::new()
            .name("tgtd-rbd-prwatch".into())
            .spawn(move || heal(&p, &s, &l));
        // Built before looking at the spawn: dropping it drops the object, then the
        // handle, in that order.
        let mut share = PrShare {
            pr,
            stop,
            healer: None,
            _cluster: cluster,
        };
        share.healer = Some(healer.map_err(|e| format!("cannot start a thread: {e}"))?);
        Ok(share)
    }
}

impl Drop for PrShare {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.healer.take() {
            let _ = h.join();
        }
    }
}

/// Once a second: a lost watch is made again and the object read again, so that
/// changes made meanwhile through other gateways are enforced here.
fn heal(pr: &SharedReservations, stop: &AtomicBool, label: &str) {
    let mut ticks = 0u32;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        ticks += 1;
        if !ticks.is_multiple_of(10) || !pr.object.watch_lost() {
            continue;
        }
        match pr.object.rewatch() {
            Ok(()) => match pr.object.read() {
                Ok((state, _)) if !state.is_empty() => {
                    let _ = pr.shared.publish(&state);
                    tracing::info!("rbd {label}: reservation object watched and read again");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("rbd {label}: reservations: {}", errno_text(e)),
            },
            Err(e) => tracing::warn!(
                "rbd {label}: cannot watch the reservation object again: {}",
                errno_text(e)
            ),
        }
    }
}

/// librbd's exclusive-lock feature bit (`RBD_FEATURE_EXCLUSIVE_LOCK`).
const RBD_FEATURE_EXCLUSIVE_LOCK: u64 = 1 << 2;

/// The addresses in a librados address text: `127.0.0.1:0/35123`,
/// `v1:127.0.0.1:0/35123` or a bracketed list `[v2:...,v1:...]`, each without
/// its protocol prefix (librados names a client with the prefixes, librbd a lock
/// owner without them).
fn client_addresses(text: &str) -> Vec<&str> {
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|a| {
            let a = a.trim();
            ["v1:", "v2:", "any:", "legacy:"]
                .iter()
                .find_map(|p| a.strip_prefix(p))
                .unwrap_or(a)
        })
        .filter(|a| !a.is_empty())
        .collect()
}

/// Whether two librados address texts name the same client (an address in
/// common: IP, port and the client instance's nonce).
pub(crate) fn same_client(a: &str, b: &str) -> bool {
    let theirs = client_addresses(b);
    client_addresses(a).iter().any(|x| theirs.contains(x))
}

/// A mark unique among the gateways of an image (process id, start time and the
/// address of a fresh allocation), so a gateway knows its own event notifications
/// when librados hands them back to it.
fn gateway_origin() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let here = Box::new(0u8);
    let addr = &*here as *const u8 as u64;
    (u64::from(std::process::id()) << 40) ^ now ^ addr.rotate_left(17)
}

impl SharedReservations {
    /// Tell the other gateways of `event` and wait for their acknowledgements (at
    /// most the watch timeout, as for reservation changes: a dead gateway delays it
    /// that long, and has no nexus to tell anyway).
    fn announce(
        &self,
        event: &LuEvent,
        label: &str,
        timeout: Duration,
    ) -> Result<Bytes, IoErrorKind> {
        let text = self.shared.encode_event(event);
        let wait = timeout.min(Duration::from_secs(u64::from(PR_WATCH_TIMEOUT_S)));
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        if let Err(e) = self.object.notify(&text, ms) {
            tracing::warn!(
                "rbd {label}: not every gateway acknowledged {event:?}: {}",
                errno_text(e)
            );
        }
        Ok(Bytes::new())
    }

    fn open(
        cluster: &Cluster,
        pool: &str,
        id: &str,
        label: &str,
    ) -> Result<SharedReservations, String> {
        let shared = Arc::new(SharedPr::new(gateway_origin()));
        let inbox = shared.clone();
        let log_label = label.to_owned();
        let oid = format!("tgtd-pr.{id}");
        let object = cluster
            .shared_object(
                pool,
                &oid,
                PR_WATCH_TIMEOUT_S,
                Box::new(move |payload| {
                    if payload == GATEWAY_PROBE {
                        return; // Answered by the acknowledgement itself.
                    }
                    if let Err(e) = inbox.publish(payload) {
                        tracing::warn!("rbd {log_label}: reservation update ignored: {e}");
                    }
                }),
            )
            .map_err(|(step, e)| format!("cannot {step} {pool}/{oid}: {}", errno_text(e)))?;
        let me = SharedReservations {
            object,
            shared,
            rmw: Mutex::new(()),
            caw_oid: format!("tgtd-caw.{id}"),
            caw_cookie: (gateway_origin(), AtomicU64::new(0)),
        };
        let (state, _) = me
            .object
            .read()
            .map_err(|e| format!("cannot read {pool}/{oid}: {}", errno_text(e)))?;
        if !state.is_empty() {
            me.shared
                .publish(&state)
                .map_err(|e| format!("{pool}/{oid}: {e}"))?;
        }
        Ok(me)
    }

    /// Take [`CAW_LOCK`], waiting while another gateway holds it, for at most
    /// `timeout` (also how long the OSD keeps it for a gateway that dies holding it).
    fn caw_lock<'a>(
        &'a self,
        timeout: Duration,
        label: &'a str,
    ) -> Result<CawGuard<'a>, IoErrorKind> {
        let (prefix, count) = &self.caw_cookie;
        let cookie = format!("{prefix:016x}.{}", count.fetch_add(1, Ordering::Relaxed));
        let until = Instant::now() + timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            match self
                .object
                .lock_exclusive(&self.caw_oid, CAW_LOCK, &cookie, timeout)
            {
                Ok(()) => {
                    return Ok(CawGuard {
                        owner: self,
                        cookie,
                        label,
                    })
                }
                Err(e) if e == -libc::EBUSY => {
                    if Instant::now() + pause > until {
                        tracing::warn!("rbd {label}: {} held past {timeout:?}", self.caw_oid);
                        return Err(IoErrorKind::TimedOut);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Err(e) => {
                    tracing::warn!(
                        "rbd {label}: cannot lock {}: {}",
                        self.caw_oid,
                        errno_text(e)
                    );
                    return Err(map_errno(e as isize, true));
                }
            }
        }
    }

    /// Answer [`GATEWAY_PROBE`] with `me` from now on, send it, and collect the
    /// reports of the gateways that acknowledged (`me` always included), by port.
    fn live_gateways(&self, me: &GatewayReport) -> Result<Vec<GatewayReport>, i32> {
        self.object.set_ack(&me.encode());
        let acks = self
            .object
            .survey(GATEWAY_PROBE, GATEWAY_PROBE_TIMEOUT_MS)?;
        let mut reports: Vec<GatewayReport> = acks
            .iter()
            .filter_map(|a| GatewayReport::parse(a))
            .filter(|r| r.port != me.port)
            .chain([me.clone()])
            .collect();
        reports.sort_by_key(|r| r.port);
        reports.dedup_by_key(|r| r.port);
        Ok(reports)
    }

    /// PERSISTENT RESERVE OUT on the object: read, apply, write back if nobody wrote
    /// in between (else again), notify every gateway and wait for their
    /// acknowledgements. Answers the state the command was applied to.
    fn pr_out(&self, op: &BlockOp, label: &str, timeout: Duration) -> Result<Bytes, IoErrorKind> {
        let _one = self.rmw.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..PR_RETRIES {
            let (current, version) = match self.object.read() {
                Ok((c, v)) => (c, Some(v)),
                // Removed by an administrator: start again from nothing.
                Err(e) if e == -libc::ENOENT => (Vec::new(), None),
                Err(e) => {
                    tracing::warn!("rbd {label}: reservations: {}", errno_text(e));
                    return Err(map_errno(e as isize, false));
                }
            };
            let step = apply_out(&current, op).map_err(|e| {
                tracing::warn!("rbd {label}: reservation object: {e}");
                IoErrorKind::Other
            })?;
            let SharedStep::Write { object, notify } = step else {
                // What we read is news if our watch missed it.
                if !current.is_empty() {
                    let _ = self.shared.publish(&current);
                }
                return Ok(Bytes::from(current));
            };
            match self.object.replace(&object, version) {
                Ok(()) => {}
                Err(e)
                    if [libc::ERANGE, libc::EOVERFLOW, libc::EEXIST, libc::ENOENT]
                        .contains(&-e) =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::warn!("rbd {label}: reservations: {}", errno_text(e));
                    return Err(map_errno(e as isize, true));
                }
            }
            let wait = timeout.min(Duration::from_secs(u64::from(PR_WATCH_TIMEOUT_S)));
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            if let Err(e) = self.object.notify(&notify, ms) {
                // The state is kept; a gateway that did not answer (dead, or its
                // watch lost) reads it again when its watch comes back.
                tracing::warn!(
                    "rbd {label}: not every gateway acknowledged a reservation change: {}",
                    errno_text(e)
                );
                let _ = self.shared.publish(&notify);
            }
            return Ok(Bytes::from(current));
        }
        tracing::warn!("rbd {label}: reservations: too many concurrent changes");
        Err(IoErrorKind::TimedOut)
    }
}

impl Drop for RbdStore {
    fn drop(&mut self) {
        self.watchdog.stop();
    }
}

impl RbdStore {
    /// Open `[POOL/]IMAGE[@SNAP]` with `--bsopts` text `bsopts`. A snapshot, or
    /// `readonly`, opens the image read-only. Errors say what to fix: the missing
    /// library and its package, the unreachable cluster, the missing pool or image.
    pub fn open(path: &str, bsopts: &str, readonly: bool) -> Result<RbdStore, BackendError> {
        let opts = RbdOptions::parse(bsopts)?;
        let (pool, image_name, snap) = parse_image_path(path)?;
        ffi::available().map_err(|e| BackendError::RbdUnavailable { why: e.to_string() })?;
        let secs = opts.timeout.as_secs().to_string();
        let settings = [
            // Connecting to a cluster that is down must not hold `logicalunit new`
            // (and the control socket) for librados' default of 5 minutes.
            ("client_mount_timeout", secs.as_str()),
            ("rados_mon_op_timeout", secs.as_str()),
            // Several gateways may serve one image: no client-side cache, so every
            // completed write is on the OSDs (durable, and seen by the others).
            ("rbd_cache", "false"),
            // UNMAP must leave zeros (LBPRZ), also for ranges that do not cover
            // whole objects.
            ("rbd_skip_partial_discard", "false"),
        ];
        let changed = Arc::new(AtomicBool::new(false));
        let endpoint = Endpoint {
            opts: opts.clone(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pool: pool.to_owned(),
            image: image_name.to_owned(),
            snap: snap.map(str::to_owned),
            readonly,
            path: path.to_owned(),
            changed: changed.clone(),
        };
        let connection = endpoint.connect()?;
        let size_err = |e: i32| BackendError::RbdImage {
            path: path.to_owned(),
            why: format!("cannot read its size: {}", errno_text(e)),
        };
        let size = connection.image.size().map_err(size_err)?;
        if size == 0 {
            return Err(BackendError::Empty {
                path: path.to_owned(),
            });
        }
        let id = connection.image.id().unwrap_or_default();
        let label = path.to_owned();
        let watchdog = Watchdog::start(&label)?;
        // A snapshot is a medium of its own, read-only: its reservations stay local.
        // The reservation object's own handle: librados' `rados_osd_op_timeout` bounds
        // each of its reads and writes (librbd's I/O keeps its own watchdog above and
        // its handle without it), so an OSD outage ends a PERSISTENT RESERVE OUT with
        // ABORTED COMMAND / TIMEOUT ON LOGICAL UNIT instead of holding it.
        let mut pr_settings = settings.to_vec();
        pr_settings.push(("rados_osd_op_timeout", secs.as_str()));
        // librados pings a watch on each objecter tick (default every 5 s), and the
        // OSD drops a watch not pinged for PR_WATCH_TIMEOUT_S (5 s): at the default
        // the ping raced the timeout and the watch was lost about every 10 s (and
        // with it, until watched and read again, the other gateways' changes).
        pr_settings.push(("objecter_tick_interval", "1"));
        let pr = match (snap, id.is_empty()) {
            (None, false) => match PrShare::start(&opts, &pr_settings, pool, &id, &label) {
                Ok(pr) => Some(pr),
                Err(e) => {
                    tracing::warn!("rbd {label}: reservations not shared between gateways: {e}");
                    None
                }
            },
            _ => None,
        };
        let conn = Arc::new(RwLock::new(connection));
        let flags = Arc::new(OpFlags::default());
        let medic = Medic::start(conn.clone(), flags.fenced.clone(), endpoint)?;
        Ok(RbdStore {
            _medic: medic,
            conn,
            pr,
            label,
            readonly: readonly || snap.is_some(),
            size: AtomicU64::new(size),
            timeout: opts.timeout,
            id,
            watchdog,
            changed,
            rmw: RwLock::new(()),
            flags,
        })
    }

    /// The image's RADOS id (the same through every gateway; empty if librbd did not
    /// say).
    pub fn image_id(&self) -> &str {
        &self.id
    }

    /// Whether writes are refused (a snapshot, or opened read-only).
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// Queue `op` on librbd; `finish` gets librbd's answer (or the timeout's).
    fn start(&self, op: AioOp, slot: &Arc<Slot>, finish: AioFinish) {
        self.watchdog.watch(slot, Instant::now() + self.timeout);
        let s = slot.clone();
        // Counted until librbd answers (not until a timeout does: the write may
        // still land).
        let counted = !matches!(op, AioOp::Read { .. } | AioOp::Flush);
        let flags = self.flags.clone();
        if counted {
            flags.writes_in_flight.fetch_add(1, Ordering::AcqRel);
        }
        let aio = Box::new(Aio {
            op,
            done: Box::new(move |op, ret| {
                if counted {
                    flags.writes_in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                if ret == -(libc::ESHUTDOWN as isize) {
                    flags.fenced.store(true, Ordering::Release);
                }
                if let Some(result) = finish(op, ret) {
                    s.finish(result);
                }
            }),
        });
        let refused = conn::current(&self.conn).image.submit(aio);
        // The connection's guard is gone before the completion runs (it may start
        // the next operation).
        if let Err((aio, e)) = refused {
            let Aio { op, done } = *aio;
            done(op, e as isize);
        }
    }

    /// The asynchronous route ([`BlockStore::submit_own`]): `op` goes to librbd if
    /// it is one librbd does in one call (or one per range, for UNMAP) and no
    /// read-modify-write of this gateway holds the store; `Err(done)` sends it to a
    /// worker ([`BlockStore::execute`]), which waits its turn.
    fn submit(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        if matches!(op, BlockOp::Read { .. } | BlockOp::Flush) {
            return self.launch(op, done);
        }
        if self.readonly || !one_call(op) {
            // Refused (read-only) or built from several calls by `execute`.
            return Err(done);
        }
        let Ok(_shared) = self.rmw.try_read() else {
            return Err(done);
        };
        // Counted as in flight before the guard goes: a read-modify-write that takes
        // the lock next waits for it.
        self.launch(op, done)
    }

    /// Queue `op` on librbd (no lock, no read-only check: the callers did those).
    fn launch(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        match op {
            BlockOp::Read { offset, len } => {
                let Ok(len) = usize::try_from(*len) else {
                    return Err(done);
                };
                let buf = BytesMut::zeroed(len);
                self.start(
                    AioOp::Read {
                        offset: *offset,
                        buf,
                    },
                    &Slot::new(done),
                    Box::new(|op, ret| {
                        Some(match op {
                            AioOp::Read { buf, .. } if ret >= 0 => Ok(buf.freeze()),
                            _ => Err(map_errno(ret, false)),
                        })
                    }),
                );
            }
            BlockOp::Write { offset, data, .. } => self.start(
                AioOp::Write {
                    offset: *offset,
                    data: data.clone(),
                },
                &Slot::new(done),
                Box::new(|_, ret| Some(status(ret, true))),
            ),
            BlockOp::Flush => self.start(
                AioOp::Flush,
                &Slot::new(done),
                Box::new(|_, ret| Some(status(ret, true))),
            ),
            BlockOp::WriteSame {
                offset,
                len,
                pattern,
                ..
            } => {
                let Ok(len) = usize::try_from(*len) else {
                    return Err(done);
                };
                self.start(
                    AioOp::WriteSame {
                        offset: *offset,
                        len,
                        pattern: pattern.clone(),
                    },
                    &Slot::new(done),
                    Box::new(|_, ret| Some(status(ret, true))),
                )
            }
            BlockOp::Unmap { ranges } if ranges.is_empty() => done(Ok(Bytes::new())),
            BlockOp::Unmap { ranges } => {
                // One discard per range; the command completes with the last one
                // (with the first failure, if any).
                let slot = Slot::new(done);
                let left = Arc::new(AtomicUsize::new(ranges.len()));
                let failed = Arc::new(Mutex::new(None::<IoErrorKind>));
                for &(offset, len) in ranges {
                    let (left, failed) = (left.clone(), failed.clone());
                    self.start(
                        AioOp::Discard { offset, len },
                        &slot,
                        Box::new(move |_, ret| {
                            if let Err(e) = status(ret, true) {
                                failed
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .get_or_insert(e);
                            }
                            if left.fetch_sub(1, Ordering::AcqRel) > 1 {
                                return None;
                            }
                            Some(
                                match *failed.lock().unwrap_or_else(PoisonError::into_inner) {
                                    Some(e) => Err(e),
                                    None => Ok(Bytes::new()),
                                },
                            )
                        }),
                    );
                }
            }
            BlockOp::CompareAndWrite {
                offset,
                compare,
                data,
                ..
            } => {
                self.start(
                    AioOp::CompareAndWrite {
                        offset: *offset,
                        compare: compare.clone(),
                        data: data.clone(),
                        mismatch: 0,
                    },
                    &Slot::new(done),
                    Box::new(move |op, ret| {
                        Some(match op {
                            AioOp::CompareAndWrite { mismatch, .. }
                                if ret == -(libc::EILSEQ as isize) =>
                            {
                                // librbd reports where in the compared data the
                                // first difference is, as the sense wants it.
                                Err(IoErrorKind::Miscompare { offset: mismatch })
                            }
                            _ => status(ret, true),
                        })
                    }),
                )
            }
            _ => return Err(done),
        }
        Ok(())
    }

    /// Run `op` through [`RbdStore::launch`] and wait for its answer (on a worker).
    fn wait(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done: OpDone = Box::new(move |r| {
            let _ = tx.send(r);
        });
        if let Err(done) = self.launch(op, done) {
            // Not an asynchronous operation: nothing calls us back.
            drop(done);
            return Err(IoErrorKind::Other);
        }
        // The watchdog answers within the timeout; the margin covers its wake-up.
        rx.recv_timeout(self.timeout + Duration::from_secs(5))
            .unwrap_or(Err(IoErrorKind::TimedOut))
    }

    fn read(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        self.wait(&BlockOp::Read { offset, len })
    }

    fn write(&self, offset: u64, data: Bytes) -> Result<Bytes, IoErrorKind> {
        self.wait(&BlockOp::Write {
            offset,
            data,
            fua: false,
        })
    }

    /// Hold the store against every other write of this gateway: take the lock
    /// exclusive, then wait for the writes queued before it to be answered (at most
    /// the timeout).
    fn exclusive(&self) -> Result<std::sync::RwLockWriteGuard<'_, ()>, IoErrorKind> {
        let guard = self.rmw.write().unwrap_or_else(PoisonError::into_inner);
        let until = Instant::now() + self.timeout;
        while self.flags.writes_in_flight.load(Ordering::Acquire) > 0 {
            if Instant::now() > until {
                return Err(IoErrorKind::TimedOut);
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(guard)
    }
}

/// Whether librbd does `op` in one asynchronous call: COMPARE AND WRITE only within
/// one 512-byte sector (librbd refuses more with EINVAL; VMware's ATS, the common
/// user, is one block).
fn one_call(op: &BlockOp) -> bool {
    match op {
        BlockOp::Read { .. }
        | BlockOp::Write { .. }
        | BlockOp::Flush
        | BlockOp::WriteSame { .. }
        | BlockOp::Unmap { .. } => true,
        BlockOp::CompareAndWrite { offset, data, .. } => {
            offset % CAW_SECTOR + data.len() as u64 <= CAW_SECTOR
        }
        _ => false,
    }
}

/// The unit librbd compares and writes atomically.
const CAW_SECTOR: u64 = 512;

/// What turns librbd's answer into the command's result; `None` while other parts of
/// the command (the other ranges of an UNMAP) are still in flight.
type AioFinish = Box<dyn FnOnce(AioOp, isize) -> Option<Result<Bytes, IoErrorKind>> + Send>;

/// Success (empty result) or the failure a negative return means.
fn status(ret: isize, write: bool) -> Result<Bytes, IoErrorKind> {
    if ret >= 0 {
        Ok(Bytes::new())
    } else {
        Err(map_errno(ret, write))
    }
}

/// A negative errno from librbd as the failure the SCSI layer reports.
fn map_errno(ret: isize, write: bool) -> IoErrorKind {
    let e = i32::try_from(-ret).unwrap_or(libc::EIO);
    match e {
        libc::ENOSPC | libc::EDQUOT => IoErrorKind::NoSpace,
        libc::EROFS => IoErrorKind::ReadOnly,
        libc::ETIMEDOUT => IoErrorKind::TimedOut,
        // Blocklisted (Ceph's EBLOCKLISTED is ESHUTDOWN): fenced off the image,
        // not a medium error; the medic connects again (see `conn`).
        libc::ESHUTDOWN => IoErrorKind::Fenced,
        _ if write => IoErrorKind::WriteError,
        _ => IoErrorKind::ReadError,
    }
}

impl BlockStore for RbdStore {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let writes = !matches!(
            op,
            BlockOp::Read { .. }
                | BlockOp::Flush
                | BlockOp::Compare { .. }
                | BlockOp::Provisioning { .. }
                | BlockOp::PrOut { .. }
                | BlockOp::LuEvent { .. }
        );
        if writes && self.readonly {
            return Err(IoErrorKind::ReadOnly);
        }
        let shared = || self.rmw.read().unwrap_or_else(PoisonError::into_inner);
        match op {
            BlockOp::Read { .. } | BlockOp::Flush => self.wait(op),
            BlockOp::Write { .. } | BlockOp::WriteSame { .. } | BlockOp::Unmap { .. } => {
                let _g = shared();
                self.wait(op)
            }
            BlockOp::CompareAndWrite { .. } if one_call(op) => {
                let _g = shared();
                self.wait(op)
            }
            BlockOp::Compare { offset, data } => {
                let have = self.read(*offset, data.len() as u64)?;
                match first_difference(&have, data) {
                    Some(at) => Err(IoErrorKind::Miscompare { offset: at }),
                    None => Ok(Bytes::new()),
                }
            }
            // More than librbd compares at once: atomic against this gateway's
            // writes, and against every gateway's COMPARE AND WRITE of this kind
            // (the cluster lock; not against another gateway's plain writes, see
            // docs/ARCHITECTURE.md).
            BlockOp::CompareAndWrite {
                offset,
                compare,
                data,
                ..
            } => {
                let _g = self.exclusive()?;
                let _cluster = match &self.pr {
                    Some(p) => Some(p.pr.caw_lock(self.timeout, &self.label)?),
                    None => None,
                };
                let have = self.read(*offset, compare.len() as u64)?;
                if let Some(at) = first_difference(&have, compare) {
                    return Err(IoErrorKind::Miscompare { offset: at });
                }
                self.write(*offset, data.clone())
            }
            BlockOp::OrWrite { offset, data, .. } => {
                let _g = self.exclusive()?;
                let have = self.read(*offset, data.len() as u64)?;
                let merged: Vec<u8> = have.iter().zip(data.iter()).map(|(a, b)| a | b).collect();
                self.write(*offset, merged.into())
            }
            BlockOp::Copy { segments, .. } => {
                let _g = shared();
                for seg in segments {
                    for (src, dst, len) in seg.chunks(COPY_CHUNK) {
                        let data = self.read(src, len)?;
                        self.write(dst, data)?;
                    }
                }
                Ok(Bytes::new())
            }
            // Allocation is the cluster's business (thin by nature); report mapped.
            BlockOp::Provisioning { offset, len } => Ok(encode_extents(&[Extent {
                offset: *offset,
                len: *len,
                mapped: true,
            }])),
            // Not a tape or changer medium (those have their own stores).
            BlockOp::PrOut { .. } => match &self.pr {
                Some(p) => p.pr.pr_out(op, &self.label, self.timeout),
                None => Err(IoErrorKind::Other),
            },
            BlockOp::LuEvent { event } => match &self.pr {
                Some(p) => p.pr.announce(event, &self.label, self.timeout),
                None => Err(IoErrorKind::Other),
            },
            BlockOp::SaveState { .. } | BlockOp::Device { .. } => Err(IoErrorKind::Other),
        }
    }

    fn shared_reservations(&self) -> Option<&SharedPr> {
        self.pr.as_ref().map(|p| &*p.pr.shared)
    }

    /// The image's librbd client address, when the image has exclusive-lock and
    /// this gateway may write it (asked each time: the feature can be turned on and
    /// off while the image is open).
    fn lock_client(&self) -> Option<String> {
        if self.readonly {
            return None;
        }
        let conn = conn::current(&self.conn);
        let features = conn.image.features().ok()?;
        if features & RBD_FEATURE_EXCLUSIVE_LOCK == 0 {
            return None;
        }
        match conn.cluster.addrs() {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(
                    "rbd {}: cannot read our client address: {}",
                    self.label,
                    errno_text(e)
                );
                None
            }
        }
    }

    /// Break the image's exclusive lock if one of `clients` (a gone gateway's
    /// [`BlockStore::lock_client`] names) holds it; librbd blocklists that client.
    fn break_lock_of(&self, clients: &[String]) -> Result<Option<String>, String> {
        if self.readonly || clients.is_empty() {
            return Ok(None);
        }
        let conn = conn::current(&self.conn);
        let owners = match conn.image.exclusive_lock_owners() {
            Ok(o) => o,
            // No exclusive-lock feature (any more): nothing to break.
            Err(e) if e == -libc::EINVAL => return Ok(None),
            Err(e) => return Err(format!("cannot read the lock owner: {}", errno_text(e))),
        };
        let Some(owner) = owners
            .into_iter()
            .find(|o| clients.iter().any(|c| same_client(c, o)))
        else {
            return Ok(None);
        };
        match conn.image.break_exclusive_lock(&owner) {
            Ok(()) => Ok(Some(owner)),
            // Released or taken over meanwhile: no longer the gone gateway's.
            Err(e) if e == -libc::EBUSY || e == -libc::ENOENT => Ok(None),
            Err(e) => Err(format!(
                "cannot break the lock of {owner}: {}",
                errno_text(e)
            )),
        }
    }

    fn live_gateways(&self, me: &GatewayReport) -> Option<Vec<GatewayReport>> {
        let pr = self.pr.as_ref()?;
        match pr.pr.live_gateways(me) {
            Ok(ports) => Some(ports),
            Err(e) => {
                tracing::warn!(
                    "rbd {}: cannot ask the other gateways: {}",
                    self.label,
                    errno_text(e)
                );
                None
            }
        }
    }

    fn submit_own(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        self.submit(op, done)
    }

    fn takes_own_submissions(&self) -> bool {
        true
    }

    /// The update watch saw the header change (a resize, or a snapshot: then the
    /// size read again is the same and nothing is announced).
    fn size_changed(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }

    /// The image id: what every gateway of this image reports as SCSI ID and serial.
    fn medium_id(&self) -> Option<String> {
        (!self.id.is_empty()).then(|| self.id.clone())
    }

    fn refresh_size(&self) -> Option<u64> {
        self.changed.store(false, Ordering::Release);
        match conn::current(&self.conn).image.size() {
            Ok(size) => {
                self.size.store(size, Ordering::Release);
                Some(size)
            }
            Err(e) => {
                tracing::warn!(
                    "rbd {}: cannot read the size: {}",
                    self.label,
                    errno_text(e)
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_tgt_names_them() {
        let o = RbdOptions::parse("").unwrap();
        assert_eq!(o, RbdOptions::default());
        let o = RbdOptions::parse("conf=/tmp/c.conf;id=gw1; cluster=east;timeout=5").unwrap();
        assert_eq!(o.conf, "/tmp/c.conf");
        assert_eq!(o.name, "client.gw1");
        assert_eq!(o.cluster, "east");
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(RbdOptions::parse("id=client.x").unwrap().name, "client.x");
        for bad in ["timeout=0", "timeout=x", "conf=", "pool=rbd", "conf"] {
            assert!(
                matches!(RbdOptions::parse(bad), Err(BackendError::BadOptions { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_addresses_match_with_or_without_their_protocol() {
        assert_eq!(
            client_addresses("[v2:127.0.0.1:0/17,v1:127.0.0.1:0/17]"),
            ["127.0.0.1:0/17", "127.0.0.1:0/17"]
        );
        assert!(same_client("127.0.0.1:0/17", "v1:127.0.0.1:0/17"));
        assert!(same_client(
            "[v2:10.0.0.2:0/9,v1:127.0.0.1:0/17]",
            "127.0.0.1:0/17"
        ));
        // Another instance on the same host: another nonce.
        assert!(!same_client("127.0.0.1:0/17", "127.0.0.1:0/18"));
        assert!(!same_client("", "127.0.0.1:0/18"));
        assert!(!same_client("[]", "[]"));
    }

    #[test]
    fn image_paths_split_into_pool_image_and_snapshot() {
        assert_eq!(parse_image_path("p/i").unwrap(), ("p", "i", None));
        assert_eq!(parse_image_path("i").unwrap(), ("rbd", "i", None));
        assert_eq!(parse_image_path("p/i@s").unwrap(), ("p", "i", Some("s")));
        for bad in ["", "/i", "p/", "p/i@", "p/a/b"] {
            assert!(
                matches!(
                    parse_image_path(bad),
                    Err(BackendError::BadImagePath { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_map_to_sense_kinds() {
        assert_eq!(
            map_errno(-(libc::EIO as isize), false),
            IoErrorKind::ReadError
        );
        assert_eq!(
            map_errno(-(libc::EIO as isize), true),
            IoErrorKind::WriteError
        );
        assert_eq!(
            map_errno(-(libc::ENOSPC as isize), true),
            IoErrorKind::NoSpace
        );
        assert_eq!(
            map_errno(-(libc::ETIMEDOUT as isize), true),
            IoErrorKind::TimedOut
        );
        assert_eq!(
            map_errno(-(libc::EROFS as isize), true),
            IoErrorKind::ReadOnly
        );
    }

    #[test]
    fn the_first_answer_wins_and_the_late_one_is_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let slot = Slot::new(Box::new(move |r| tx.send(r).unwrap()));
        let w = Watchdog::start("test").unwrap();
        w.watch(&slot, Instant::now() + Duration::from_millis(50));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err(IoErrorKind::TimedOut)
        );
        slot.finish(Ok(Bytes::new()));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        w.stop();
    }
}
