//! Online resize: the file (or the loop device over it) grows or shrinks, `tgtadm
//! --op update --params resize=1` reads the size again, every logged-in I_T nexus gets
//! CAPACITY DATA HAS CHANGED exactly once, READ CAPACITY and `--op show` give the new
//! size, I/O past the new end of a shrunk LU is LBA OUT OF RANGE, and libiscsi's
//! ReadCapacity16 test passes afterwards.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{read10, Client};
use integration_tests::{both_flavours, run_conformance, Daemon, Flavour, LoopDev};
use std::path::{Path, PathBuf};

const IQN: &str = "iqn.2026-11.test:resize";
const MIB: u64 = 1024 * 1024;

fn sized_file(d: &Daemon, name: &str, size: u64) -> PathBuf {
    let p = d.dir.path(name);
    std::fs::File::create(&p)
        .and_then(|f| f.set_len(size))
        .expect("backing file");
    p
}

fn grow(path: &Path, size: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(size))
        .expect("resize file");
}

fn lu_new(d: &Daemon, lun: u32, store: &str) {
    let r = d.lu_new(1, lun, store, &[]);
    assert_eq!(r.code, 0, "{r:?}");
}

fn resize(d: &Daemon, lun: u32) {
    let r = d.lu_update(1, lun, "resize=1");
    assert_eq!(r.code, 0, "{r:?}");
}

fn session(d: &Daemon, tail: u8) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    c.isid.0[5] = tail;
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

/// READ CAPACITY(16): the number of blocks.
fn capacity(c: &mut Client, lun: u64) -> u64 {
    let mut cdb = vec![0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    cdb[13] = 32;
    let r = c.scsi(lun, &cdb, &[], 32).expect("read capacity");
    assert_eq!(r.status, 0, "{r:?}");
    u64::from_be_bytes(r.data[..8].try_into().unwrap()) + 1
}

/// TEST UNIT READY: the unit attention it reports, if any.
fn unit_attention(c: &mut Client, lun: u64) -> Option<(u8, u8, u8)> {
    let r = c.scsi(lun, &[0; 6], &[], 0).expect("tur");
    if r.status == 0 {
        return None;
    }
    r.sense_key_asc()
}

/// Each session hears of the change once, then reads the new capacity.
fn expect_capacity_change(sessions: &mut [Client], lun: u64, blocks: u64) {
    for c in sessions.iter_mut() {
        assert_eq!(unit_attention(c, lun), Some((0x6, 0x2a, 0x09)));
        assert_eq!(unit_attention(c, lun), None, "exactly once");
        assert_eq!(capacity(c, lun), blocks);
    }
}

fn grow_and_shrink_while_logged_in(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.new_target(1, IQN);
    let file = sized_file(&d, "file.img", 32 * MIB);
    let under_loop = sized_file(&d, "loop.img", 32 * MIB);
    let dev = LoopDev::attach(&under_loop);
    lu_new(&d, 1, file.to_str().unwrap());
    lu_new(&d, 2, &dev.0);
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    let mut sessions = vec![session(&d, 1), session(&d, 2)];
    for c in sessions.iter_mut() {
        assert_eq!(capacity(c, 1), 32 * MIB / 512);
        assert_eq!(capacity(c, 2), 32 * MIB / 512);
    }

    // A file LU grows.
    grow(&file, 48 * MIB);
    resize(&d, 1);
    expect_capacity_change(&mut sessions, 1, 48 * MIB / 512);
    for c in sessions.iter_mut() {
        assert_eq!(unit_attention(c, 2), None, "the other LU did not change");
    }
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(show.contains("Size: 50 MB, Block size: 512"), "{show}");

    // A loop device LU grows: the file, then the device.
    grow(&under_loop, 40 * MIB);
    dev.refresh();
    resize(&d, 2);
    expect_capacity_change(&mut sessions, 2, 40 * MIB / 512);

    // Nothing changed: no unit attention.
    resize(&d, 1);
    assert_eq!(unit_attention(&mut sessions[0], 1), None);

    // The file LU shrinks: past the new end is out of range.
    grow(&file, 16 * MIB);
    resize(&d, 1);
    expect_capacity_change(&mut sessions, 1, 16 * MIB / 512);
    let c = &mut sessions[0];
    let end = (16 * MIB / 512) as u32;
    let r = c.scsi(1, &read10(end - 1, 1), &[], 512).unwrap();
    assert_eq!(r.status, 0);
    let r = c.scsi(1, &read10(end, 1), &[], 512).unwrap();
    assert_eq!(r.sense_key_asc(), Some((0x5, 0x21, 0x00)), "{r:?}");
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(show.contains("Size: 17 MB, Block size: 512"), "{show}");
    for c in sessions.iter_mut() {
        assert!(c.logout().unwrap());
    }

    // A memory LU has no size on disk to read again.
    d.tgtadm_ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "logicalunit",
        "--op",
        "new",
        "--tid",
        "1",
        "--lun",
        "3",
        "--bstype",
        "memory",
        "--backing-store",
        "8M",
    ]);
    let r = d.lu_update(1, 3, "resize=1");
    assert_eq!(r.code, 22, "{r:?}");
    assert!(r.stderr.contains("no size on disk"), "{r:?}");

    assert!(run_conformance(&d, IQN, 1, &["SCSI.ReadCapacity16*"]) > 0);
    assert!(run_conformance(&d, IQN, 2, &["SCSI.ReadCapacity16*"]) > 0);
}

both_flavours!(grow_and_shrink_while_logged_in);
