//! The store contract: what every backing store promises the SCSI layer, checked
//! the same way on each store type and open mode (memory, null, rdwr, rdwr with
//! `sync`, `direct` and `sync:direct`, aio on io_uring, a block device over a loop
//! device; aio on its thread-pool fallback in `aio_fallback.rs`).
//!
//! - a read returns what the last write put there, at any block-aligned offset and
//!   size; unwritten space reads as zeros (null: always zeros, writes dropped);
//! - writes to distinct blocks from several threads at once all land;
//! - FLUSH succeeds; UNMAP makes the range read as zeros;
//! - the size is what was asked for; an operation past the end gives an error or
//!   zeros, never a panic; a read-only store refuses every write.
#![allow(clippy::disallowed_methods)] // tests own threads

#[path = "support/contract.rs"]
mod support;

use backends::{open_store, BlockOp, BlockStore, BsType, IoErrorKind, OpenOptions};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::{contract, read, readonly_contract, Keeps, SIZE};

fn scratch_file(tag: &str) -> (tempfile::TempDir, PathBuf) {
    // Under the crate's target dir, not /tmp: O_DIRECT needs a real file system and
    // /tmp may be tmpfs.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::Builder::new()
        .prefix(tag)
        .tempdir_in(base)
        .expect("tempdir");
    let path = dir.path().join("lun.img");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(SIZE))
        .expect("backing file");
    (dir, path)
}

fn opts(oflags: &str) -> OpenOptions {
    OpenOptions {
        block_size: 512,
        ..OpenOptions::default()
    }
    .with_oflags(oflags)
    .expect("oflags")
}

#[test]
fn memory() {
    let s = open_store(BsType::Memory, "8M", &opts("")).unwrap();
    contract(s, Keeps::Data);
    let ro = OpenOptions {
        readonly: true,
        ..opts("")
    };
    readonly_contract(open_store(BsType::Memory, "8M", &ro).unwrap());
}

#[test]
fn null() {
    contract(
        open_store(BsType::Null, "8M", &opts("")).unwrap(),
        Keeps::Nothing,
    );
}

fn file_with(oflags: &str) {
    let (_dir, path) = scratch_file("contract");
    let p = path.to_str().unwrap();
    contract(
        open_store(BsType::Rdwr, p, &opts(oflags)).unwrap(),
        Keeps::Data,
    );
    // The data is in the file, where another reader sees it.
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk.len() as u64, SIZE);
    // A large read for a socket is the file's pages when they are in the page
    // cache (no O_DIRECT), and always the same bytes as a plain read.
    let s = open_store(BsType::Rdwr, p, &opts(oflags)).unwrap();
    let direct = oflags.contains("direct");
    assert_eq!(s.reads_for_send(1 << 20), !direct, "oflags {oflags:?}");
    let (at, len) = (3 * 4096, 1u64 << 20);
    assert_eq!(s.read_for_send(at, len).unwrap(), read(&*s, at, len));
    assert_eq!(
        &s.read_for_send(at, len).unwrap()[..],
        &on_disk[at as usize..][..len as usize]
    );
    // A small read lent from the page cache (on the loop, for a socket): never for
    // O_DIRECT (its writes bypass the cache), else the same bytes once cached.
    let (at, len) = (5 * 4096 + 512, 4096);
    let cached = read(&*s, at, len);
    match s.read_lent(at, len) {
        Some(lent) => {
            assert!(!direct, "oflags {oflags:?}: O_DIRECT lends nothing");
            assert_eq!(lent.unwrap(), cached);
        }
        None => assert!(direct, "oflags {oflags:?}: a cached read is lent"),
    }
    let ro = OpenOptions {
        readonly: true,
        ..opts(oflags)
    };
    let (_dir2, fresh) = scratch_file("contract-ro");
    readonly_contract(open_store(BsType::Rdwr, fresh.to_str().unwrap(), &ro).unwrap());
}

#[test]
fn rdwr() {
    file_with("");
}

#[test]
fn rdwr_sync() {
    file_with("sync");
}

#[test]
fn rdwr_direct() {
    file_with("direct");
}

#[test]
fn rdwr_sync_direct() {
    file_with("sync:direct");
}

/// A loop device over a file, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Loop {
        Loop::attach_with(file, &[])
    }

    fn attach_with(file: &Path, extra: &[&str]) -> Loop {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .args(extra)
            .arg(file)
            .output()
            .expect("losetup is missing: it comes with util-linux (mount)");
        assert!(
            out.status.success(),
            "losetup failed (needs root and /dev/loop*): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Runs every operation the way a daemon's event loop does for an `aio` store: plain
/// reads, writes and flushes on this thread's io_uring (submit, wait for the eventfd's
/// completions, reap), the rest through `execute` as a worker would.
#[derive(Debug)]
struct RingDriven(Arc<dyn BlockStore>);

thread_local! {
    static RING: std::cell::RefCell<Option<backends::uring::Ring>> =
        std::cell::RefCell::new(Some(backends::uring::Ring::new().expect("io_uring")));
}

impl BlockStore for RingDriven {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        let (tx, rx) = std::sync::mpsc::channel();
        let done: backends::Completion = Box::new(move |r| tx.send(r).expect("send"));
        let queued = RING.with(|r| {
            let mut r = r.borrow_mut();
            let ring = r.as_mut().expect("ring");
            let queued = ring.try_queue(&self.0, op, done);
            ring.submit();
            queued
        });
        match queued {
            Err(_) => self.0.execute(op),
            Ok(()) => loop {
                if let Ok(r) = rx.try_recv() {
                    return r;
                }
                RING.with(|r| r.borrow_mut().as_mut().expect("ring").reap());
                std::thread::yield_now();
            },
        }
    }
}

fn aio_with(oflags: &str) {
    assert_eq!(
        backends::uring::availability(),
        &Ok(()),
        "io_uring is needed here"
    );
    let (_dir, path) = scratch_file("contract-aio");
    let store = open_store(BsType::Aio, path.to_str().unwrap(), &opts(oflags)).unwrap();
    assert!(
        store.ring_file().is_some(),
        "an aio store offers its file to the ring"
    );
    assert_eq!(store.backend_note(), None);
    contract(Arc::new(RingDriven(store.clone())), Keeps::Data);
    // What the ring wrote is in the page cache: lent, but not by an O_DIRECT store.
    let cached = read(&*store, 4096, 4096);
    let lent = store.read_lent(4096, 4096).map(Result::unwrap);
    assert_eq!(
        lent.is_some(),
        !oflags.contains("direct"),
        "oflags {oflags:?}"
    );
    if let Some(lent) = lent {
        assert_eq!(lent, cached);
    }
}

#[test]
fn aio() {
    aio_with("");
}

#[test]
fn aio_sync_direct() {
    aio_with("sync:direct");
}

/// COMPARE AND WRITE on a worker stays atomic against writes on the ring: the ring
/// write is turned away while the read-modify-write holds the store, and the
/// read-modify-write waits for ring writes in flight.
#[test]
fn aio_ring_writes_yield_to_compare_and_write() {
    let (_dir, path) = scratch_file("contract-aio-caw");
    let store = open_store(BsType::Aio, path.to_str().unwrap(), &opts("")).unwrap();
    assert!(store.ring_write_begin());
    let s2 = store.clone();
    let caw = std::thread::spawn(move || {
        s2.execute(&BlockOp::CompareAndWrite {
            offset: 0,
            compare: Bytes::from(vec![0u8; 512]),
            data: Bytes::from(vec![9u8; 512]),
            fua: false,
        })
    });
    // The CAW is waiting for the ring write in flight: it has not written yet.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!caw.is_finished());
    store.ring_write_done();
    assert_eq!(caw.join().unwrap(), Ok(Bytes::new()));
    assert_eq!(read(&*store, 0, 512), Bytes::from(vec![9u8; 512]));
}

#[test]
fn block_device() {
    let (_dir, path) = scratch_file("contract-loop");
    let dev = Loop::attach(&path);
    for oflags in ["", "direct"] {
        let store = open_store(BsType::Rdwr, &dev.0, &opts(oflags)).unwrap();
        // The device is ours alone while the LU has it: a second owner is refused.
        let again = open_store(BsType::Rdwr, &dev.0, &opts(""));
        assert!(
            matches!(again, Err(backends::BackendError::Busy { .. })),
            "{again:?}"
        );
        // Cached reads of the device are lent from its mapping, as for a file.
        let cached = read(&*store, 8192, 4096);
        let lent = store.read_lent(8192, 4096).map(Result::unwrap);
        assert_eq!(lent.is_some(), oflags.is_empty(), "oflags {oflags:?}");
        if let Some(lent) = lent {
            assert_eq!(lent, cached);
        }
        contract(store, Keeps::Data);
    }
}

#[test]
fn bad_oflags_and_impossible_direct_are_refused() {
    assert!(matches!(
        OpenOptions::default().with_oflags("sync:fast"),
        Err(backends::BackendError::BadOflags { .. })
    ));
    // A device with 4 KiB logical sectors cannot take 512-byte O_DIRECT I/O: the
    // LU is refused at open, not at its first READ.
    let (_dir, path) = scratch_file("contract-4k");
    let dev = Loop::attach_with(&path, &["--sector-size", "4096"]);
    let r = open_store(BsType::Rdwr, &dev.0, &opts("direct"));
    assert!(
        matches!(r, Err(backends::BackendError::DirectUnsupported { .. })),
        "{r:?}"
    );
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("O_DIRECT") && msg.contains("512-byte"),
        "{msg}"
    );
    // 4 KiB LU blocks are fine there.
    let four_k = OpenOptions {
        block_size: 4096,
        ..opts("direct")
    };
    let store = open_store(BsType::Rdwr, &dev.0, &four_k).expect("4 KiB blocks");
    assert_eq!(store.physical_block_size(), Some(4096));
    // Memory and null stores have no open flags.
    assert!(matches!(
        open_store(BsType::Memory, "8M", &opts("sync")),
        Err(backends::BackendError::BadOflags { .. })
    ));
}
