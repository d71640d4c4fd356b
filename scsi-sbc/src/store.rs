//! The interface a backing store offers. Defined here (not in `backends`) so that the
//! sans-IO target core can hold a store handle without depending on any I/O crate.

use crate::block_op::{BlockOp, IoErrorKind};
use crate::gateway_report::GatewayReport;
use bytes::Bytes;

/// A backing store. Implementations do blocking I/O and are called from worker
/// threads only, never from an event loop.
///
/// A store that wraps another one implements [`StoreLayer`] instead: a method added
/// here is then forwarded in one place (the impl for `StoreLayer` below), not in
/// every wrapper.
pub trait BlockStore: Send + Sync + std::fmt::Debug {
    /// Size of the store in bytes.
    fn size(&self) -> u64;
    /// Run one block operation. A read returns exactly `len` bytes; writes and
    /// flushes return empty bytes.
    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind>;

    /// Run `op` only if it completes at once without blocking (its data is already in
    /// memory: the page cache, a RAM store); `None` means "run [`BlockStore::execute`]
    /// on a worker". An adapter answers such operations on its own thread and saves
    /// two thread hand-offs per command. By default nothing runs this way.
    fn execute_nowait(&self, op: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
        let _ = op;
        None
    }

    /// The physical block size of the medium when it is known and larger than a
    /// sector (a block device with 4 KiB physical sectors): the LU then reports its
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT, as tgt does unless told otherwise.
    fn physical_block_size(&self) -> Option<u32> {
        None
    }

    /// Whether the store keeps LU state across restarts ([`BlockOp::SaveState`]); the
    /// LU then reports persist through power loss capable (PTPL_C).
    fn saves_state(&self) -> bool {
        false
    }

    /// The state kept by the last [`BlockOp::SaveState`] (of an earlier run), as found
    /// when the store was opened.
    fn saved_state(&self) -> Option<Bytes> {
        None
    }

    /// Read the size of the medium again, after the file or block device behind it
    /// grew or shrank (online resize): the new size in bytes, which [`BlockStore::size`]
    /// reports from then on. `None` from a store with no size on disk (RAM, null) or
    /// one that cannot tell now; its size stays as it was.
    fn refresh_size(&self) -> Option<u64> {
        None
    }

    /// Whether the medium says its size may have changed since the last
    /// [`BlockStore::refresh_size`] (a Ceph RBD image told by its cluster that it was
    /// resized): the daemon then reads the size again as `logicalunit update` does.
    fn size_changed(&self) -> bool {
        false
    }

    /// Change a run-time setting that belongs to the store (`tgtadm --mode
    /// logicalunit --op update --params KEY=VALUE` for a key the target core does not
    /// know, e.g. `fault` of the fault-injecting store). The error is the reason it
    /// was refused, for the administrator.
    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        let _ = value;
        Err(format!("the backing store has no setting '{key}'"))
    }

    /// For a store whose medium comes and goes (a tape drive a changer loads):
    /// `Some(Some(path))` with a medium, `Some(None)` without; `tgtadm --op show`
    /// prints that path and, without a medium, the LU offline, as tgt does. `None`
    /// (the default): the medium is the backing store the LU was created with.
    fn medium(&self) -> Option<Option<String>> {
        None
    }

    /// Give the store a handle on another LU's store, named `name` (a medium
    /// changer's drives: `TID:LUN`), so that its commands can act on it (MOVE MEDIUM
    /// loads and unloads the drive's tape through [`BlockStore::configure`]). Stores
    /// that act on no other refuse it (the default).
    fn attach_peer(&self, name: &str, peer: std::sync::Arc<dyn BlockStore>) -> Result<(), String> {
        let _ = peer;
        Err(format!("the backing store takes no peer '{name}'"))
    }

    /// For a store whose plain reads, writes and flushes the daemon may queue on its
    /// asynchronous I/O ring (tgt's `--bstype aio`, io_uring here) instead of running
    /// [`BlockStore::execute`] on a worker: the open file to address. `None` (the
    /// default): every operation goes through `execute`.
    fn ring_file(&self) -> Option<RingFile> {
        None
    }

    /// A plain write is about to go on the ring: `false` means "not now" (a
    /// read-modify-write such as COMPARE AND WRITE holds the range) and the write goes
    /// through [`BlockStore::execute`] instead, which waits its turn. Every `true` is
    /// followed by one [`BlockStore::ring_write_done`] when the write completes.
    fn ring_write_begin(&self) -> bool {
        false
    }

    /// The ring write announced by [`BlockStore::ring_write_begin`] completed.
    fn ring_write_done(&self) {}

    /// The result of `op` done on the ring, as the store would have answered it from
    /// [`BlockStore::execute`]: the place for what a store adds to a bare system call
    /// (remembering a failed flush, logging a failure). The default passes it on.
    fn ring_result(
        &self,
        op: &BlockOp,
        result: Result<Bytes, IoErrorKind>,
    ) -> Result<Bytes, IoErrorKind> {
        let _ = op;
        result
    }

    /// For a store that runs its operations on threads of its own (tgt's per-LU
    /// I/O threads, `--bsopts nr_threads=N`): queue `op` there and call `done` with
    /// the result when it finishes. `Err(done)` (the default): the caller's own worker
    /// pool runs it.
    fn submit_own(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        let _ = op;
        Err(done)
    }

    /// Whether [`BlockStore::submit_own`] takes operations (rbd, an LU with
    /// `nr_threads`): callers ask it only then, so that a store without its own route
    /// costs no boxed callback or wrapping per operation. A store that overrides
    /// `submit_own` to take operations says `true` here.
    fn takes_own_submissions(&self) -> bool {
        false
    }

    /// A name of the medium that is the same wherever it is opened (the id of a
    /// Ceph RBD image): the LU's default SCSI ID and unit serial number are made
    /// from it instead of from the target and LUN numbers, so that several targets
    /// (gateways) serving one medium describe one logical unit to initiators.
    fn medium_id(&self) -> Option<String> {
        None
    }

    /// For a store whose medium several gateways serve (a Ceph RBD image): the
    /// mailbox through which it hands the LU the persistent reservation state it
    /// keeps for all of them ([`crate::pr_shared`]). The LU then sends PERSISTENT
    /// RESERVE OUT to the store as [`BlockOp::PrOut`]. `None` (the default): the
    /// reservations are the LU's own, kept in memory (and saved with
    /// [`BlockOp::SaveState`] for APTPL when the store [`BlockStore::saves_state`]).
    fn shared_reservations(&self) -> Option<&crate::pr_shared::SharedPr> {
        None
    }

    /// For a medium several gateways serve (a Ceph RBD image): answer every gateway
    /// of the medium with `me` from now on (this gateway's relative target port and
    /// its view of the port groups), ask every gateway for its report, and answer
    /// the reports of those that replied in time (`me` included), sorted by port. A
    /// crashed gateway does not reply, so its port is missing: that is how the
    /// survivors see the ALUA active/optimized gateway gone, and the views tell a
    /// gateway that was away which failovers it missed (`tgtd-common`'s
    /// `gateway_watch`). Blocks for up to a few seconds; never called on the data
    /// path. `None` (the default): the medium is not shared, or the gateways could
    /// not be asked now.
    fn live_gateways(&self, me: &GatewayReport) -> Option<Vec<GatewayReport>> {
        let _ = me;
        None
    }

    /// For a medium whose writer holds a lock in it (a Ceph RBD image with librbd's
    /// exclusive-lock): the name this gateway's client holds it by, which this
    /// gateway's report tells the others ([`GatewayReport::clients`]) so that they
    /// can [`BlockStore::break_lock_of`] it if this gateway dies. `None` (the
    /// default): there is no such lock.
    fn lock_client(&self) -> Option<String> {
        None
    }

    /// The gateway that reported `clients` is gone (it stopped answering
    /// [`BlockStore::live_gateways`]): if one of them holds the medium's lock, break
    /// it, fencing that client off the medium, so that writes through this gateway
    /// need not wait until the cluster notices the death by itself (for RBD, the
    /// OSD's watch timeout: 30 s by default, as long as initiators wait for a
    /// command). Only clients a gateway named as its own are ever broken, never a
    /// live gateway's. Answers the owner whose lock was broken, `Ok(None)` when none
    /// of `clients` held it (the default), or what failed. Blocks; never called on
    /// the data path.
    fn break_lock_of(&self, clients: &[String]) -> Result<Option<String>, String> {
        let _ = clients;
        Ok(None)
    }

    /// A note `tgtadm --op show` adds to the backing store type, e.g. why an `aio`
    /// store runs on the thread pool.
    fn backend_note(&self) -> Option<String> {
        None
    }

    /// Whether [`BlockStore::read_for_send`] can answer a read of `len` bytes other
    /// than by copying (a file store maps the file's pages): callers route large
    /// reads through it only then.
    fn reads_for_send(&self, len: u64) -> bool {
        let _ = len;
        false
    }

    /// A read whose bytes nothing in this process will look at: they go to the
    /// kernel as they are (a socket write with no data digest computed over them,
    /// and not kept to be sent again). A store may then answer with memory that maps
    /// its medium (the page cache of its file) instead of a copy; such memory must
    /// only ever be handed to system calls, because touching it from user space
    /// after the file was truncated under it would raise SIGBUS, where a system
    /// call gets EFAULT. Blocks like [`BlockStore::execute`]; by default it is
    /// exactly a [`BlockOp::Read`].
    fn read_for_send(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        self.execute(&BlockOp::Read { offset, len })
    }

    /// A read answered at once, on the caller's thread (an event loop), with memory
    /// that maps the store's medium (as [`BlockStore::read_for_send`], so under the
    /// same rule: only system calls may touch the bytes), when that needs no wait
    /// for a disk (the file store: its pages are in the page cache); `None` when the
    /// store cannot (the caller then goes on as for any read).
    fn read_lent(&self, offset: u64, len: u64) -> Option<Result<Bytes, IoErrorKind>> {
        let _ = (offset, len);
        None
    }
}

/// A store that wraps another ([`StoreLayer::inner`]) and changes a few of its
/// answers: every [`BlockStore`] method goes to the inner store, except that results
/// pass [`StoreLayer::layer_result`] and own submissions go to
/// [`StoreLayer::layer_submit_own`]. The forwarding is written once, below, so that a
/// new `BlockStore` method cannot be forgotten in one wrapper.
pub trait StoreLayer: Send + Sync + std::fmt::Debug {
    /// The wrapped store.
    fn inner(&self) -> &dyn BlockStore;

    /// The result of `op` as the layer gives it out, from [`BlockStore::execute`],
    /// [`BlockStore::execute_nowait`] and [`BlockStore::ring_result`] (e.g. logged
    /// when it failed). By default unchanged.
    fn layer_result(
        &self,
        op: &BlockOp,
        result: Result<Bytes, IoErrorKind>,
    ) -> Result<Bytes, IoErrorKind> {
        let _ = op;
        result
    }

    /// [`BlockStore::submit_own`] of the layer; by default the inner store's.
    fn layer_submit_own(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        self.inner().submit_own(op, done)
    }

    /// [`BlockStore::takes_own_submissions`] of the layer; by default the inner
    /// store's.
    fn layer_takes_own_submissions(&self) -> bool {
        self.inner().takes_own_submissions()
    }
}

impl<T: StoreLayer> BlockStore for T {
    fn size(&self) -> u64 {
        self.inner().size()
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        self.layer_result(op, self.inner().execute(op))
    }

    fn execute_nowait(&self, op: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
        let r = self.inner().execute_nowait(op)?;
        Some(self.layer_result(op, r))
    }

    fn physical_block_size(&self) -> Option<u32> {
        self.inner().physical_block_size()
    }

    fn saves_state(&self) -> bool {
        self.inner().saves_state()
    }

    fn saved_state(&self) -> Option<Bytes> {
        self.inner().saved_state()
    }

    fn refresh_size(&self) -> Option<u64> {
        self.inner().refresh_size()
    }

    fn size_changed(&self) -> bool {
        self.inner().size_changed()
    }

    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        self.inner().configure(key, value)
    }

    fn medium(&self) -> Option<Option<String>> {
        self.inner().medium()
    }

    fn attach_peer(&self, name: &str, peer: std::sync::Arc<dyn BlockStore>) -> Result<(), String> {
        self.inner().attach_peer(name, peer)
    }

    fn ring_file(&self) -> Option<RingFile> {
        self.inner().ring_file()
    }

    fn ring_write_begin(&self) -> bool {
        self.inner().ring_write_begin()
    }

    fn ring_write_done(&self) {
        self.inner().ring_write_done()
    }

    fn ring_result(
        &self,
        op: &BlockOp,
        result: Result<Bytes, IoErrorKind>,
    ) -> Result<Bytes, IoErrorKind> {
        self.layer_result(op, self.inner().ring_result(op, result))
    }

    fn submit_own(&self, op: &BlockOp, done: OpDone) -> Result<(), OpDone> {
        self.layer_submit_own(op, done)
    }

    fn takes_own_submissions(&self) -> bool {
        self.layer_takes_own_submissions()
    }

    fn medium_id(&self) -> Option<String> {
        self.inner().medium_id()
    }

    fn shared_reservations(&self) -> Option<&crate::pr_shared::SharedPr> {
        self.inner().shared_reservations()
    }

    fn live_gateways(&self, me: &GatewayReport) -> Option<Vec<GatewayReport>> {
        self.inner().live_gateways(me)
    }

    fn lock_client(&self) -> Option<String> {
        self.inner().lock_client()
    }

    fn break_lock_of(&self, clients: &[String]) -> Result<Option<String>, String> {
        self.inner().break_lock_of(clients)
    }

    fn backend_note(&self) -> Option<String> {
        self.inner().backend_note()
    }

    fn reads_for_send(&self, len: u64) -> bool {
        self.inner().reads_for_send(len)
    }

    fn read_for_send(&self, offset: u64, len: u64) -> Result<Bytes, IoErrorKind> {
        let result = self.inner().read_for_send(offset, len);
        self.layer_result(&BlockOp::Read { offset, len }, result)
    }

    fn read_lent(&self, offset: u64, len: u64) -> Option<Result<Bytes, IoErrorKind>> {
        let result = self.inner().read_lent(offset, len)?;
        Some(self.layer_result(&BlockOp::Read { offset, len }, result))
    }
}

/// What is called with the result of an operation run off the caller's thread
/// ([`BlockStore::submit_own`]; the daemon's worker pool and io_uring use the same).
pub type OpDone = Box<dyn FnOnce(Result<Bytes, IoErrorKind>) + Send>;

/// What a ring needs to address a store's file ([`BlockStore::ring_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFile {
    /// The open file descriptor (owned by the store; valid while it lives).
    pub fd: i32,
    /// Opened with O_DIRECT: buffers and offsets must be aligned.
    pub direct: bool,
    /// Writes are refused ([`IoErrorKind::ReadOnly`]).
    pub readonly: bool,
    /// Bytes in the store: a read that ends early below this is resumed, past it the
    /// rest reads as zeros.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A store that answers every method with something other than the default.
    #[derive(Debug, Default)]
    struct Probe {
        ring_done: AtomicUsize,
        shared: crate::pr_shared::SharedPr,
    }

    impl BlockStore for Probe {
        fn size(&self) -> u64 {
            7
        }
        fn execute(&self, _: &BlockOp) -> Result<Bytes, IoErrorKind> {
            Err(IoErrorKind::ReadError)
        }
        fn execute_nowait(&self, _: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
            Some(Ok(Bytes::from_static(b"now")))
        }
        fn live_gateways(&self, me: &GatewayReport) -> Option<Vec<GatewayReport>> {
            Some(vec![GatewayReport::port_only(1), me.clone()])
        }
        fn lock_client(&self) -> Option<String> {
            Some("me".into())
        }
        fn break_lock_of(&self, clients: &[String]) -> Result<Option<String>, String> {
            Ok(clients.first().cloned())
        }
        fn physical_block_size(&self) -> Option<u32> {
            Some(4096)
        }
        fn saves_state(&self) -> bool {
            true
        }
        fn saved_state(&self) -> Option<Bytes> {
            Some(Bytes::from_static(b"st"))
        }
        fn refresh_size(&self) -> Option<u64> {
            Some(9)
        }
        fn size_changed(&self) -> bool {
            true
        }
        fn configure(&self, key: &str, value: &str) -> Result<(), String> {
            Err(format!("{key}={value}"))
        }
        fn medium(&self) -> Option<Option<String>> {
            Some(None)
        }
        fn attach_peer(&self, name: &str, _: Arc<dyn BlockStore>) -> Result<(), String> {
            Err(format!("peer {name}"))
        }
        fn ring_file(&self) -> Option<RingFile> {
            Some(RingFile {
                fd: 3,
                direct: false,
                readonly: true,
                size: 7,
            })
        }
        fn ring_write_begin(&self) -> bool {
            true
        }
        fn ring_write_done(&self) {
            self.ring_done.fetch_add(1, Ordering::Relaxed);
        }
        fn ring_result(
            &self,
            _: &BlockOp,
            _: Result<Bytes, IoErrorKind>,
        ) -> Result<Bytes, IoErrorKind> {
            Err(IoErrorKind::NoSpace)
        }
        fn submit_own(&self, _: &BlockOp, done: OpDone) -> Result<(), OpDone> {
            done(Ok(Bytes::from_static(b"own")));
            Ok(())
        }
        fn takes_own_submissions(&self) -> bool {
            true
        }
        fn medium_id(&self) -> Option<String> {
            Some("id".into())
        }
        fn backend_note(&self) -> Option<String> {
            Some("note".into())
        }
        fn shared_reservations(&self) -> Option<&crate::pr_shared::SharedPr> {
            Some(&self.shared)
        }
        fn reads_for_send(&self, len: u64) -> bool {
            len > 5
        }
        fn read_for_send(&self, _: u64, len: u64) -> Result<Bytes, IoErrorKind> {
            Ok(Bytes::from(vec![7; len as usize]))
        }
        fn read_lent(&self, _: u64, len: u64) -> Option<Result<Bytes, IoErrorKind>> {
            Some(Ok(Bytes::from(vec![8; len as usize])))
        }
    }

    /// A layer that changes nothing.
    #[derive(Debug)]
    struct Plain(Probe);

    impl StoreLayer for Plain {
        fn inner(&self) -> &dyn BlockStore {
            &self.0
        }
    }

    #[test]
    fn a_layer_forwards_every_method() {
        let p = Probe::default();
        let l = Plain(Probe::default());
        let op = BlockOp::Flush;
        assert_eq!(l.size(), p.size());
        assert_eq!(l.execute(&op), p.execute(&op));
        assert_eq!(l.execute_nowait(&op), p.execute_nowait(&op));
        assert_eq!(l.physical_block_size(), p.physical_block_size());
        assert_eq!(l.saves_state(), p.saves_state());
        assert_eq!(l.saved_state(), p.saved_state());
        assert_eq!(l.refresh_size(), p.refresh_size());
        assert_eq!(l.size_changed(), p.size_changed());
        let me = GatewayReport::port_only(3);
        assert_eq!(l.live_gateways(&me), p.live_gateways(&me));
        assert_eq!(l.lock_client(), p.lock_client());
        let gone = ["them".to_owned()];
        assert_eq!(l.break_lock_of(&gone), p.break_lock_of(&gone));
        assert_eq!(l.configure("k", "v"), p.configure("k", "v"));
        assert_eq!(l.medium(), p.medium());
        let peer: Arc<dyn BlockStore> = Arc::new(Probe::default());
        assert_eq!(
            l.attach_peer("1:1", peer.clone()),
            p.attach_peer("1:1", peer)
        );
        assert_eq!(l.ring_file(), p.ring_file());
        assert_eq!(l.reads_for_send(6), p.reads_for_send(6));
        assert_eq!(l.reads_for_send(5), p.reads_for_send(5));
        assert_eq!(l.read_for_send(0, 3), p.read_for_send(0, 3));
        assert_eq!(l.read_lent(0, 2), p.read_lent(0, 2));
        assert_eq!(l.ring_write_begin(), p.ring_write_begin());
        l.ring_write_done();
        assert_eq!(l.0.ring_done.load(Ordering::Relaxed), 1);
        assert_eq!(
            l.ring_result(&op, Ok(Bytes::new())),
            Err(IoErrorKind::NoSpace)
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let done: OpDone = Box::new(move |r| tx.send(r).unwrap());
        assert!(l.submit_own(&op, done).is_ok());
        assert_eq!(rx.recv().unwrap(), Ok(Bytes::from_static(b"own")));
        assert_eq!(l.takes_own_submissions(), p.takes_own_submissions());
        assert_eq!(l.medium_id(), p.medium_id());
        assert_eq!(l.backend_note(), p.backend_note());
        assert!(std::ptr::eq(l.shared_reservations().unwrap(), &l.0.shared));
    }
}
