//! `--bstype rbd` on a real one-node Ceph cluster (started once for this binary by
//! `scripts/ceph-test-cluster.sh`, see `integration_tests::ceph`):
//!
//! - the store contract on an `RbdStore` (librbd's asynchronous calls), and a
//!   snapshot opened read-only;
//! - an operation the cluster does not answer (OSD stopped) ends with TIMED OUT
//!   after `timeout=S` instead of hanging, and the store works again afterwards;
//! - libiscsi's Read, Write, Unmap, WriteSame, CompareAndWrite and persistent
//!   reservation suites on an rbd LU, both daemons: no failure;
//! - a missing image, pool or cluster, bad options, and a machine without librbd,
//!   are refused by `logicalunit new` with tgtadm's exact message;
//! - `rbd resize` reaches every nexus as CAPACITY DATA HAS CHANGED (by librbd's
//!   update watch, and at once with `logicalunit update`), and READ CAPACITY gives
//!   the new size;
//! - two daemons over one image are one LU (serial, designators) and one medium;
//! - the OSD stopped under an initiator: ABORTED COMMAND after the timeout, other
//!   LUs unaffected.
#![allow(clippy::disallowed_methods)]

#[path = "../../backends/tests/support/contract.rs"]
mod support;

use backends::{BlockOp, BlockStore, IoErrorKind, OpDone, RbdStore};
use bytes::Bytes;
use integration_tests::ceph::{cluster, free_port};
use integration_tests::client::{read10, Client};
use integration_tests::{both_flavours, conformance_with, Daemon, Flavour};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{contract, readonly_contract, Keeps, SIZE};

const IQN: &str = "iqn.2026-12.test:rbd";
const MIB: u64 = 1024 * 1024;

/// An image name no other test (or flavour) uses.
fn image_name(tag: &str, f: Option<Flavour>) -> String {
    match f {
        Some(f) => format!("{tag}-{}", f.binary()),
        None => tag.to_owned(),
    }
}

#[test]
fn store_contract_on_an_rbd_image() {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image("contract", SIZE);
    let store = RbdStore::open(&path, &ceph.bsopts(), false).expect("open rbd image");
    assert!(!store.image_id().is_empty());
    let store: Arc<dyn BlockStore> = Arc::new(store);
    contract(store.clone(), Keeps::Data);
    drop(store);

    // What was written is in the cluster: a fresh open reads it back.
    let again = RbdStore::open(&path, &ceph.bsopts(), false).expect("reopen");
    let before = again
        .execute(&BlockOp::Read {
            offset: 1 << 20,
            len: 65536,
        })
        .unwrap();
    assert_eq!(&before[..], &support::pattern(77, 1 << 20)[..65536]);

    // COMPARE AND WRITE by the cluster: a mismatch reports where, writes nothing.
    let caw = |compare: Bytes, data: Bytes| {
        again.execute(&BlockOp::CompareAndWrite {
            offset: 4096,
            compare,
            data,
            fua: false,
        })
    };
    let old = again
        .execute(&BlockOp::Read {
            offset: 4096,
            len: 512,
        })
        .unwrap();
    let mut wrong = old.to_vec();
    wrong[10] ^= 0xff;
    assert_eq!(
        caw(wrong.into(), Bytes::from(vec![5u8; 512])),
        Err(IoErrorKind::Miscompare { offset: 10 })
    );
    assert_eq!(
        caw(old.clone(), Bytes::from(vec![5u8; 512])),
        Ok(Bytes::new())
    );
    let now = again
        .execute(&BlockOp::Read {
            offset: 4096,
            len: 512,
        })
        .unwrap();
    assert_eq!(now, Bytes::from(vec![5u8; 512]));
    // Over one sector librbd cannot compare and write: this gateway does it, holding
    // its other writes off.
    let caw8 = |compare: Bytes, data: Bytes| {
        again.execute(&BlockOp::CompareAndWrite {
            offset: 8192,
            compare,
            data,
            fua: false,
        })
    };
    let old8 = again
        .execute(&BlockOp::Read {
            offset: 8192,
            len: 4096,
        })
        .unwrap();
    let mut wrong8 = old8.to_vec();
    wrong8[1000] ^= 1;
    assert_eq!(
        caw8(wrong8.into(), Bytes::from(vec![6u8; 4096])),
        Err(IoErrorKind::Miscompare { offset: 1000 })
    );
    assert_eq!(
        again
            .execute(&BlockOp::Read {
                offset: 8192,
                len: 4096
            })
            .unwrap(),
        old8
    );
    assert_eq!(caw8(old8, Bytes::from(vec![6u8; 4096])), Ok(Bytes::new()));
    let now8 = again
        .execute(&BlockOp::Read {
            offset: 8192,
            len: 4096,
        })
        .unwrap();
    assert_eq!(now8, Bytes::from(vec![6u8; 4096]));
    // WRITE SAME of a pattern, and of zeros.
    let ws = |pattern: Bytes| {
        again.execute(&BlockOp::WriteSame {
            offset: 2 << 20,
            len: 8192,
            pattern,
            fua: true,
        })
    };
    assert_eq!(ws(Bytes::from(vec![0xabu8; 512])), Ok(Bytes::new()));
    let r = again
        .execute(&BlockOp::Read {
            offset: 2 << 20,
            len: 8192,
        })
        .unwrap();
    assert!(r.iter().all(|&b| b == 0xab));
    assert_eq!(ws(Bytes::from(vec![0u8; 512])), Ok(Bytes::new()));
    let r = again
        .execute(&BlockOp::Read {
            offset: 2 << 20,
            len: 8192,
        })
        .unwrap();
    assert!(r.iter().all(|&b| b == 0));

    // A snapshot opens read-only.
    let fresh = ceph.create_image("contract-snap", SIZE);
    ceph.rbd_ok(&["snap", "create", &format!("{fresh}@s1")]);
    let snap = RbdStore::open(&format!("{fresh}@s1"), &ceph.bsopts(), false).expect("snap");
    assert!(snap.is_readonly());
    readonly_contract(Arc::new(snap));
}

/// The asynchronous route answers through the completion it was given, on a librbd
/// thread (not the caller's).
#[test]
fn operations_complete_on_librbd_threads() {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image("async", 4 * MIB);
    let store = RbdStore::open(&path, &ceph.bsopts(), false).expect("open");
    let (tx, rx) = std::sync::mpsc::channel();
    let me = std::thread::current().id();
    for i in 0..64u64 {
        let tx = tx.clone();
        let op = BlockOp::Write {
            offset: i * 4096,
            data: Bytes::from(vec![i as u8; 4096]),
            fua: false,
        };
        let done: OpDone = Box::new(move |r| {
            tx.send((r, std::thread::current().id())).unwrap();
        });
        assert!(
            store.submit_own(&op, done).is_ok(),
            "rbd writes are its own"
        );
    }
    for _ in 0..64 {
        let (r, thread) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("completion");
        assert_eq!(r, Ok(Bytes::new()));
        assert_ne!(thread, me);
    }
    for i in [0u64, 17, 63] {
        let r = store
            .execute(&BlockOp::Read {
                offset: i * 4096,
                len: 4096,
            })
            .unwrap();
        assert!(r.iter().all(|&b| b == i as u8));
    }
}

/// The OSD stopped (SIGSTOP): a read is answered TIMED OUT after `timeout=2`, not
/// held; after SIGCONT the store works again.
#[test]
fn an_unanswered_operation_times_out() {
    let ceph = cluster();
    let path = {
        let _use = ceph.shared();
        ceph.create_image("timeout", 4 * MIB)
    };
    let _alone = ceph.exclusive();
    let store =
        RbdStore::open(&path, &format!("{};timeout=2", ceph.bsopts()), false).expect("open");
    // Written first: the object exists (a never-written block is answered from
    // librbd's object map, without asking an OSD).
    let write = |byte: u8| {
        store.execute(&BlockOp::Write {
            offset: 0,
            data: Bytes::from(vec![byte; 4096]),
            fua: true,
        })
    };
    assert_eq!(write(1), Ok(Bytes::new()));
    ceph.freeze_osd();
    let t0 = Instant::now();
    let r = store.execute(&BlockOp::Read {
        offset: 0,
        len: 4096,
    });
    let took = t0.elapsed();
    ceph.thaw_osd();
    assert_eq!(r.map(|b| b.len()), Err(IoErrorKind::TimedOut));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // The OSD back, the same store works again (librbd resends; a write may time
    // out while the OSD catches up).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match write(2) {
            Ok(_) => break,
            Err(e) if Instant::now() < until => eprintln!("write after SIGCONT: {e:?}"),
            Err(e) => panic!("the store did not recover: {e:?}"),
        }
    }
    let back = store
        .execute(&BlockOp::Read {
            offset: 0,
            len: 4096,
        })
        .unwrap();
    assert!(back.iter().all(|&b| b == 2));
}

/// A target with LUN 1 on a new image of `size` bytes; the image's path.
fn rbd_target(d: &Daemon, tag: &str, size: u64, params: &str) -> String {
    let ceph = cluster();
    let path = ceph.create_image(&image_name(tag, Some(d.flavour)), size);
    d.new_target(1, IQN);
    let bsopts = ceph.bsopts();
    let r = d.lu_new(1, 1, &path, &["--bstype", "rbd", "--bsopts", &bsopts]);
    assert_eq!(r.code, 0, "{r:?}");
    if !params.is_empty() {
        let r = d.lu_update(1, 1, params);
        assert_eq!(r.code, 0, "{r:?}");
    }
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    path
}

/// libiscsi's data-path and reservation suites on an rbd LU.
fn conformance_on_rbd(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let d = Daemon::start(f, &[]);
    rbd_target(&d, "conformance", 128 * MIB, "thin_provisioning=1");
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(show.contains("Backing store type: rbd"), "{show}");
    let suites = [
        "SCSI.Read*",
        "SCSI.Write*",
        "SCSI.Unmap*",
        "SCSI.WriteSame*",
        "SCSI.CompareAndWrite*",
        "SCSI.Prout*",
        "SCSI.Prin*",
    ];
    // Every command is a round trip to the one OSD at queue depth 1: on a loaded
    // machine a suite like WriteSame16.Unmap (some 1500 commands) can go quiet for
    // longer than the default idle limit of 60 s without being stuck.
    let passed = conformance_with(&d, IQN, 1, &suites, |c| {
        c.multipath().idle_timeout(Duration::from_secs(240))
    });
    assert!(passed >= 60, "too few tests passed: {passed}");
}

/// `logicalunit new` refuses what it cannot open, saying why.
fn open_errors(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let d = Daemon::start(f, &[]);
    d.new_target(1, IQN);
    let bsopts = ceph.bsopts();
    let rbd = ["--bstype", "rbd", "--bsopts", bsopts.as_str()];
    let cases: Vec<(String, Vec<&str>, String)> = vec![
        (
            "rbd/no-such-image".into(),
            rbd.to_vec(),
            "tgtadm: invalid request: rbd image 'rbd/no-such-image' does not exist\n".into(),
        ),
        (
            "nopool/img".into(),
            rbd.to_vec(),
            "tgtadm: invalid request: rbd pool 'nopool' does not exist\n".into(),
        ),
        (
            "rbd/".into(),
            rbd.to_vec(),
            "tgtadm: invalid request: bad rbd backing store 'rbd/': expected \
             [POOL/]IMAGE[@SNAP]\n"
                .into(),
        ),
        (
            "rbd/x".into(),
            vec!["--bstype", "rbd", "--bsopts", "pool=rbd"],
            "tgtadm: invalid request: bad --bsopts 'pool=rbd': the rbd backing store takes \
             conf, id, cluster, timeout and nr_threads, not 'pool'\n"
                .into(),
        ),
    ];
    for (store, extra, want) in &cases {
        let r = d.lu_new(1, 1, store, extra);
        assert_eq!((r.code, r.stderr.as_str()), (22, want.as_str()), "{store}");
    }
    // A cluster nobody answers for: refused within the timeout, not hung.
    let dead = d.dir.path("dead.conf");
    std::fs::write(
        &dead,
        format!("[global]\nmon_host = v1:127.0.0.1:{}\n", free_port()),
    )
    .unwrap();
    let opts = format!("conf={};timeout=3", dead.display());
    let t0 = Instant::now();
    let r = d.lu_new(1, 1, "rbd/img", &["--bstype", "rbd", "--bsopts", &opts]);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            22,
            format!(
                "tgtadm: invalid request: cannot connect to Ceph cluster 'ceph' as \
                 client.admin with {}: Connection timed out (os error 110)\n",
                dead.display()
            )
            .as_str()
        )
    );
    // Nothing was created, and a good image still goes in as LUN 1.
    let path = ceph.create_image(&image_name("errors", Some(f)), 4 * MIB);
    let r = d.lu_new(1, 1, &path, &rbd);
    assert_eq!(r.code, 0, "{r:?}");
}

/// A machine without librbd (the daemon told to load a file that does not exist):
/// `logicalunit new --bstype rbd` names the library and the package to install, and
/// the daemon serves its other LUs as before.
fn without_librbd(f: Flavour) {
    let d = Daemon::start_with_env(f, &[], &[("TGTD_LIBRBD", "/nonexistent/librbd.so.1")]);
    d.new_target(1, IQN);
    let r = d.lu_new(1, 1, "rbd/img", &["--bstype", "rbd"]);
    assert_eq!(r.code, 22, "{r:?}");
    assert!(
        r.stderr.starts_with(
            "tgtadm: invalid request: the rbd backing store is not available: cannot load \
             /nonexistent/librbd.so.1 ("
        ) && r
            .stderr
            .ends_with("); install the Debian package librbd1\n"),
        "{r:?}"
    );
    let file = d.sparse_file("plain.img", 4 * MIB);
    let r = d.lu_new(1, 1, file.to_str().unwrap(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// READ CAPACITY(16): the number of blocks.
fn capacity(c: &mut Client, lun: u64) -> u64 {
    let cdb = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    let r = c.scsi(lun, &cdb, &[], 32).expect("read capacity");
    assert_eq!(r.status, 0, "{r:?}");
    u64::from_be_bytes(r.data[..8].try_into().unwrap()) + 1
}

/// `rbd resize`: each nexus hears it once, by the update watch or at once after
/// `logicalunit update`.
fn resize_is_seen(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let d = Daemon::start(f, &[]);
    let path = rbd_target(&d, "resize", 16 * MIB, "");
    let mut sessions: Vec<Client> = (0..2u8)
        .map(|tail| {
            let mut c = Client::connect(d.portal).expect("connect");
            c.isid.0[5] = tail;
            assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
            c.clear_unit_attentions().expect("clear");
            c
        })
        .collect();
    for c in sessions.iter_mut() {
        assert_eq!(capacity(c, 1), 16 * MIB / 512);
    }
    // Seen by librbd's update watch: no tgtadm needed.
    ceph.rbd_ok(&["resize", "--size", "20M", &path]);
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let tur = sessions[0].scsi(1, &[0; 6], &[], 0).expect("tur");
        if tur.status != 0 {
            assert_eq!(tur.sense_key_asc(), Some((0x6, 0x2a, 0x09)), "{tur:?}");
            break;
        }
        assert!(Instant::now() < until, "the resize was not announced");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(capacity(&mut sessions[0], 1), 20 * MIB / 512);
    let tur = sessions[1].scsi(1, &[0; 6], &[], 0).expect("tur");
    assert_eq!(tur.sense_key_asc(), Some((0x6, 0x2a, 0x09)), "{tur:?}");
    assert_eq!(capacity(&mut sessions[1], 1), 20 * MIB / 512);
    // And at once when asked.
    ceph.rbd_ok(&["resize", "--size", "24M", &path]);
    let r = d.lu_update(1, 1, "resize=1");
    assert_eq!(r.code, 0, "{r:?}");
    for c in sessions.iter_mut() {
        let tur = c.scsi(1, &[0; 6], &[], 0).expect("tur");
        assert_eq!(tur.sense_key_asc(), Some((0x6, 0x2a, 0x09)), "{tur:?}");
        assert_eq!(c.scsi(1, &[0; 6], &[], 0).expect("tur").status, 0);
        assert_eq!(capacity(c, 1), 24 * MIB / 512);
        // The new blocks are there to read.
        let r = c
            .scsi(1, &read10((20 * MIB / 512) as u32, 8), &[], 4096)
            .unwrap();
        assert_eq!((r.status, r.data.len()), (0, 4096));
    }
}

/// The OSD stopped under a logged-in initiator: a READ of the rbd LU ends with
/// ABORTED COMMAND, TIMEOUT ON LOGICAL UNIT after `timeout=2`, while a file LU of the
/// same target keeps answering at once; with the OSD back the rbd LU reads again.
fn timeout_is_a_retryable_sense(f: Flavour) {
    let ceph = cluster();
    let path = {
        let _use = ceph.shared();
        ceph.create_image(&image_name("sense-timeout", Some(f)), 4 * MIB)
    };
    let d = Daemon::start(f, &[]);
    d.new_target(1, IQN);
    let opts = format!("{};timeout=2", ceph.bsopts());
    let r = d.lu_new(1, 1, &path, &["--bstype", "rbd", "--bsopts", &opts]);
    assert_eq!(r.code, 0, "{r:?}");
    let file = d.sparse_file("other.img", 4 * MIB);
    let r = d.lu_new(1, 2, file.to_str().unwrap(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c.clear_unit_attentions().expect("clear");
    let block = vec![9u8; 512];
    let w = c
        .scsi(1, &integration_tests::client::write10(0, 1), &block, 0)
        .unwrap();
    assert_eq!(w.status, 0, "{w:?}");

    let _alone = ceph.exclusive();
    let mut other = Client::connect(d.portal).expect("connect");
    other.isid.0[5] = 9;
    assert_eq!(other.login(Some(IQN)).expect("login"), (0, 0));
    other.clear_unit_attentions().expect("clear");
    ceph.freeze_osd();
    let t0 = Instant::now();
    let reader = std::thread::spawn(move || {
        let r = c.scsi(1, &read10(0, 1), &[], 512).expect("read");
        (r, t0.elapsed(), c)
    });
    // Meanwhile the file LU answers at once.
    std::thread::sleep(Duration::from_millis(300));
    let t1 = Instant::now();
    let r = other.scsi(2, &read10(0, 8), &[], 4096).expect("file read");
    assert_eq!(r.status, 0);
    assert!(t1.elapsed() < Duration::from_secs(1), "{:?}", t1.elapsed());
    let (r, took, mut c) = reader.join().expect("reader");
    ceph.thaw_osd();
    assert_eq!(r.status, 2, "{r:?}");
    assert_eq!(r.sense_key_asc(), Some((0xb, 0x3e, 0x02)), "{r:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // The initiator retries, as it would: good once the OSD is back.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c.scsi(1, &read10(0, 1), &[], 512).expect("read");
        if r.status == 0 {
            assert_eq!(r.data, block);
            break;
        }
        assert_eq!(r.sense_key_asc(), Some((0xb, 0x3e, 0x02)), "{r:?}");
        assert!(Instant::now() < until, "no recovery");
    }
}

/// VPD page `page` (INQUIRY with EVPD).
fn vpd(c: &mut Client, page: u8) -> Vec<u8> {
    let r = c
        .scsi(1, &[0x12, 1, page, 0, 255, 0], &[], 255)
        .expect("inquiry");
    assert_eq!(r.status, 0, "{r:?}");
    r.data
}

/// The logical-unit designators of VPD 83h (association 0), as raw descriptors.
fn lu_designators(page: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 4;
    while at + 4 <= page.len() {
        let len = 4 + page[at + 3] as usize;
        if (page[at + 1] >> 4) & 3 == 0 {
            out.push(page[at..at + len].to_vec());
        }
        at += len;
    }
    out
}

/// Two daemons (gateways) over one image: one logical unit to an initiator (the
/// same serial and designators, made from the image id) and one medium (written
/// through A, read back through B). `scsi_id`/`scsi_sn` set on both stay equal.
fn two_gateways_one_image(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = ceph.create_image(&image_name("gateways", Some(f)), 16 * MIB);
    let id = ceph.rbd_ok(&["info", "--format", "json", &path]);
    let id = id
        .split("\"id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no id in rbd info: {id}"))
        .to_owned();
    let (a, b) = (Daemon::start(f, &[]), Daemon::start(f, &[]));
    for (d, tid) in [(&a, 1u32), (&b, 7)] {
        d.new_target(tid, IQN);
        let bsopts = ceph.bsopts();
        let r = d.lu_new(tid, 1, &path, &["--bstype", "rbd", "--bsopts", &bsopts]);
        assert_eq!(r.code, 0, "{r:?}");
        d.bind_all(tid);
    }
    let login = |d: &Daemon| {
        let mut c = Client::connect(d.portal).expect("connect");
        assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
        c.clear_unit_attentions().expect("clear");
        c
    };
    let (mut ca, mut cb) = (login(&a), login(&b));
    let serial = |c: &mut Client| vpd(c, 0x80)[4..].to_vec();
    assert_eq!(serial(&mut ca), id.as_bytes(), "the serial is the image id");
    assert_eq!(serial(&mut ca), serial(&mut cb));
    let (da, db) = (
        lu_designators(&vpd(&mut ca, 0x83)),
        lu_designators(&vpd(&mut cb, 0x83)),
    );
    assert_eq!(da.len(), 2, "T10 vendor id and NAA: {da:?}");
    assert_eq!(da, db);

    // One medium: 1 MiB written through A reads back through B.
    let data: Vec<u8> = (0..MIB as usize).map(|i| (i * 7 + i / 512) as u8).collect();
    let w = ca
        .scsi(1, &integration_tests::client::write10(100, 2048), &data, 0)
        .expect("write");
    assert_eq!(w.status, 0, "{w:?}");
    let r = cb
        .scsi(1, &read10(100, 2048), &[], MIB as u32)
        .expect("read");
    assert_eq!(r.status, 0);
    assert!(r.data == data, "B reads what A wrote");

    // Set by the administrator, the same on both.
    for (d, tid) in [(&a, 1u32), (&b, 7)] {
        let r = d.tgtadm(&[
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "update",
            "--tid",
            &tid.to_string(),
            "--lun",
            "1",
            "--params",
            "scsi_id=gw-lu-42,scsi_sn=SN0042",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let (mut ca, mut cb) = (login(&a), login(&b));
    assert_eq!(serial(&mut ca), b"SN0042");
    assert_eq!(serial(&mut cb), b"SN0042");
    assert_eq!(
        lu_designators(&vpd(&mut ca, 0x83)),
        lu_designators(&vpd(&mut cb, 0x83))
    );
}

/// SIGTERM closes the image: its exclusive lock is handed back at once, so the next
/// client (another gateway, `rbd bench`) writes without waiting ~25 s for the dead
/// owner's lock to expire.
fn sigterm_hands_the_image_back(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let mut d = Daemon::start(f, &[]);
    let path = rbd_target(&d, "sigterm", 16 * MIB, "");
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c.clear_unit_attentions().expect("clear");
    let w = c
        .scsi(
            1,
            &integration_tests::client::write10(8, 8),
            &[0x5a; 4096],
            0,
        )
        .expect("write");
    assert_eq!(w.status, 0, "{w:?}");
    let locks = ceph.rbd_ok(&["lock", "ls", &path]);
    assert!(
        locks.contains("exclusive lock"),
        "a writing gateway holds the exclusive lock: {locks}"
    );
    drop(c);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(30)), Some(0), "clean exit");
    let locks = ceph.rbd_ok(&["lock", "ls", &path]);
    assert!(
        !locks.contains("exclusive lock"),
        "lock handed back: {locks}"
    );
    let start = Instant::now();
    let r = ceph.rbd(&[
        "bench",
        "--io-type",
        "write",
        "--io-size",
        "4K",
        "--io-total",
        "4K",
        &path,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the next writer waited {:?}",
        start.elapsed()
    );
}

/// The cluster fences the gateway's client off the image (`ceph osd blocklist add`,
/// what librbd on another gateway does when it breaks our lock, taking us for dead):
/// the commands that meet the fence end with NOT READY, LOGICAL UNIT NOT ACCESSIBLE,
/// TARGET PORT IN UNAVAILABLE STATE (a multipath initiator retries them on another
/// path), and the store connects again as a new client by itself and serves again,
/// holding the lock under its new address; nothing acknowledged is lost.
fn fenced_gateway_connects_again(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let d = Daemon::start(f, &[]);
    let path = rbd_target(&d, "fenced", 16 * MIB, "");
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c.clear_unit_attentions().expect("clear");
    let write = |c: &mut Client, lba: u32, fill: u8| {
        c.scsi(
            1,
            &integration_tests::client::write10(lba, 8),
            &[fill; 4096],
            0,
        )
        .expect("write")
    };
    let w = write(&mut c, 8, 0x11);
    assert_eq!(w.status, 0, "{w:?}");
    let old = ceph
        .lock_owner(&path)
        .expect("the writing gateway holds the lock");
    let r = ceph.ceph(&["osd", "blocklist", "add", &old]);
    assert_eq!(r.code, 0, "{r:?}");
    // Write block 16 again and again: refused while fenced, then served again.
    let start = Instant::now();
    let (mut refused, mut last_good) = (0, None);
    for fill in 1..=255u8 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not served again: {:#?}",
            d.log_lines()
        );
        let w = write(&mut c, 16, fill);
        if w.status == 0 {
            last_good = Some(fill);
            if refused > 0 {
                break;
            }
        } else {
            assert_eq!(w.sense_key_asc(), Some((0x2, 0x04, 0x0c)), "{w:?}");
            refused += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused > 0, "the fence was never met");
    let fill = last_good.expect("a write after the fence");
    let took = start.elapsed();
    eprintln!("fenced: {refused} commands refused, served again after {took:?}");
    for (lba, want) in [(8u32, 0x11u8), (16, fill)] {
        let r = c.scsi(1, &read10(lba, 8), &[], 4096).expect("read");
        assert_eq!(r.status, 0, "{r:?}");
        assert!(r.data.iter().all(|&b| b == want), "block {lba}");
    }
    let new = ceph.lock_owner(&path).expect("the lock is held again");
    assert_ne!(new, old, "held by the new client");
    assert!(
        d.log_lines()
            .iter()
            .any(|l| l.contains("connected again as client")),
        "{:#?}",
        d.log_lines()
    );
    let _ = ceph.ceph(&["osd", "blocklist", "rm", &old]);
}

both_flavours!(
    fenced_gateway_connects_again,
    conformance_on_rbd,
    sigterm_hands_the_image_back,
    open_errors,
    without_librbd,
    resize_is_seen,
    two_gateways_one_image,
    timeout_is_a_retryable_sense
);
