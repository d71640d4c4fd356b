//! The durability contract (see the `backends` crate docs) against a daemon killed
//! with SIGKILL mid-stream: every block whose WRITE was acknowledged with FUA, or whose
//! plain WRITE was followed by an acknowledged SYNCHRONIZE CACHE, reads back with (at
//! least) the generation acknowledged last — from the backing file directly and
//! through a new daemon on the same file. A generation newer than the last
//! acknowledged one may be there (a write in flight when the daemon died); one that
//! was never written may not.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{read10, write10, Client};
use integration_tests::{both_flavours, Daemon, Flavour, LoopDev};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const IQN: &str = "iqn.2026-11.test:durability";
const SIZE: u64 = 16 * 1024 * 1024;
/// Blocks written, spread over the LU.
const BLOCKS: u32 = 64;
const SPREAD: u32 = 97;
const SYNC10: [u8; 10] = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// One block carrying its LBA and generation.
fn block(lba: u32, generation: u64) -> Vec<u8> {
    let mut b = vec![generation as u8; 512];
    b[..8].copy_from_slice(&u64::from(lba).to_be_bytes());
    b[8..16].copy_from_slice(&generation.to_be_bytes());
    b
}

/// The (LBA, generation) a block carries; `None` for a block never written.
fn decode(b: &[u8]) -> Option<(u32, u64)> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let lba = u64::from_be_bytes(b[..8].try_into().unwrap());
    let generation = u64::from_be_bytes(b[8..16].try_into().unwrap());
    assert_eq!(b, block(lba as u32, generation), "torn or foreign block");
    Some((lba as u32, generation))
}

/// What the writer learnt before the daemon died.
#[derive(Default)]
struct Ledger {
    /// Per LBA: the last generation acknowledged as durable.
    durable: HashMap<u32, u64>,
    /// Per LBA: the last generation sent.
    sent: HashMap<u32, u64>,
}

/// Write generation after generation until the daemon stops answering: even
/// generations with FUA, odd ones plainly with a SYNCHRONIZE CACHE every 8 blocks.
/// `rounds` counts the generations whose every block was acknowledged as durable.
fn write_until_killed(mut c: Client, rounds: Arc<AtomicU64>) -> Ledger {
    let mut l = Ledger::default();
    let mut unsynced: Vec<(u32, u64)> = Vec::new();
    for generation in 1u64.. {
        let fua = generation % 2 == 0;
        for i in 0..BLOCKS {
            let lba = i * SPREAD;
            let mut cdb = write10(lba, 1);
            if fua {
                cdb[1] |= 0x08;
            }
            l.sent.insert(lba, generation);
            match c.scsi(1, &cdb, &block(lba, generation), 0) {
                Ok(r) if r.status == 0 => {}
                _ => return l,
            }
            if fua {
                l.durable.insert(lba, generation);
                continue;
            }
            unsynced.push((lba, generation));
            if unsynced.len() == 8 {
                match c.scsi(1, &SYNC10, &[], 0) {
                    Ok(r) if r.status == 0 => {}
                    _ => return l,
                }
                for (lba, g) in unsynced.drain(..) {
                    l.durable.insert(lba, g);
                }
            }
        }
        rounds.store(generation, Ordering::Relaxed);
    }
    l
}

fn check(l: &Ledger, read: impl Fn(u32) -> Vec<u8>) {
    for (&lba, &acked) in &l.durable {
        let got = decode(&read(lba));
        let Some((at, generation)) = got else {
            panic!("LBA {lba}: generation {acked} was acknowledged, the block is empty");
        };
        assert_eq!(at, lba, "LBA {lba} holds LBA {at}'s block");
        assert!(
            generation >= acked && generation <= l.sent[&lba],
            "LBA {lba}: acknowledged {acked}, sent up to {}, found {generation}",
            l.sent[&lba]
        );
    }
}

/// Where the LU's data lives, and how `logicalunit new` names it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `rdwr` on a file (the worker pool).
    Rdwr,
    /// `aio` on a file (the event loop's io_uring).
    Aio,
    /// `rdwr` on a loop device over a file.
    LoopDevice,
}

/// Create tid 1 LUN 1 on `store` with `bstype`, bound to ALL.
fn lun_on(d: &Daemon, store: &str, bstype: &str) {
    d.new_target(1, IQN);
    let r = d.lu_new(1, 1, store, &["--bstype", bstype]);
    assert_eq!(r.code, 0, "{r:?}");
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
}

fn survive_sigkill(f: Flavour, kind: Kind) {
    let scratch = integration_tests::TempDir::new("durability");
    let file = scratch.path("lun.img");
    std::fs::File::create(&file)
        .and_then(|h| h.set_len(SIZE))
        .expect("backing file");
    let dev = (kind == Kind::LoopDevice).then(|| LoopDev::attach(&file));
    let store = dev
        .as_ref()
        .map_or_else(|| file.to_str().unwrap().to_string(), |d| d.0.clone());
    let bstype = if kind == Kind::Aio { "aio" } else { "rdwr" };
    let mut d = Daemon::start(f, &[]);
    lun_on(&d, &store, bstype);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let rounds = Arc::new(AtomicU64::new(0));
    let progress = rounds.clone();
    let writer = std::thread::spawn(move || write_until_killed(c, progress));
    // Kill mid-stream, once every block has been acknowledged a few times (a loop
    // device's flushes are slow; a fast store gets there at once).
    std::thread::sleep(Duration::from_millis(300));
    let start = std::time::Instant::now();
    while rounds.load(Ordering::Relaxed) < 4 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal(libc::SIGKILL);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(-1), "killed");
    let ledger = writer.join().expect("writer");
    assert!(
        ledger.durable.len() == BLOCKS as usize,
        "the writer got too few acknowledgements before the kill ({} blocks)",
        ledger.durable.len()
    );

    // The file itself (under a loop device: what the "disk" got).
    let f_disk = std::fs::File::open(&file).expect("backing file");
    check(&ledger, |lba| {
        let mut b = vec![0u8; 512];
        f_disk
            .read_exact_at(&mut b, u64::from(lba) * 512)
            .expect("read file");
        b
    });

    // Through a new daemon on the same store.
    let d2 = Daemon::start(f, &[]);
    lun_on(&d2, &store, bstype);
    let mut c = Client::connect(d2.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let c = std::cell::RefCell::new(c);
    check(&ledger, |lba| {
        let r = c
            .borrow_mut()
            .scsi(1, &read10(lba, 1), &[], 512)
            .expect("read");
        assert_eq!(r.status, 0, "{r:?}");
        r.data
    });
    drop(d2);
    drop(d);
}

fn acknowledged_writes_survive_sigkill(f: Flavour) {
    survive_sigkill(f, Kind::Rdwr);
}

fn acknowledged_aio_writes_survive_sigkill(f: Flavour) {
    survive_sigkill(f, Kind::Aio);
}

fn acknowledged_block_device_writes_survive_sigkill(f: Flavour) {
    survive_sigkill(f, Kind::LoopDevice);
}

both_flavours!(
    acknowledged_writes_survive_sigkill,
    acknowledged_aio_writes_survive_sigkill,
    acknowledged_block_device_writes_survive_sigkill
);
