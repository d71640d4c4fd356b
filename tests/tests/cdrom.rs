//! `--device-type cd`: a read-only MMC CD/DVD-ROM over an image file, on both daemons.
//! libiscsi's `iscsi-inq` sees peripheral type 5, QEMU's iSCSI driver (`qemu-img
//! convert`, unpacked by `scripts/install-test-deps.sh`) and the in-process client read the whole
//! image back in 2048-byte blocks, writes are refused, eject/load and PREVENT ALLOW
//! MEDIUM REMOVAL work, a new image (`--op update --params path=`) reaches a logged-in
//! initiator as one MEDIUM MAY HAVE CHANGED, and the bytes of INQUIRY, READ CAPACITY,
//! READ TOC, READ DISC INFORMATION, MODE SENSE 2Ah and GET CONFIGURATION are checked
//! against Debian's tgt 1.0.85 on the same image.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{read10, write10, Client, ScsiResult};
use integration_tests::tgt_ref::{require_test_tool, RefTgtd};
use integration_tests::{both_flavours, Daemon, Flavour};
use std::path::{Path, PathBuf};
use std::process::Command;

const IQN: &str = "iqn.2026-12.test:cdrom";
const BLOCK: usize = 2048;
const MIB: usize = 1024 * 1024;

/// An image of `size` bytes whose every 2048-byte block starts with its LBA and a
/// `tag` byte and is filled with a pattern of both, so a misplaced block shows.
fn image(path: &Path, size: usize, tag: u8) -> Vec<u8> {
    let mut data = vec![0u8; size];
    for (lba, block) in data.chunks_mut(BLOCK).enumerate() {
        for (i, b) in block.iter_mut().enumerate() {
            *b = (lba as u8).wrapping_mul(31) ^ (i as u8) ^ tag;
        }
        block[..4].copy_from_slice(&(lba as u32).to_be_bytes());
        block[4] = tag;
    }
    std::fs::write(path, &data).expect("write image");
    data
}

fn lu_new_cd(tgtadm: impl Fn(&[&str]) -> integration_tests::Run, path: &Path) {
    let r = tgtadm(&[
        "--lld",
        "iscsi",
        "--mode",
        "logicalunit",
        "--op",
        "new",
        "--tid",
        "1",
        "--lun",
        "1",
        "--device-type",
        "cd",
        "--backing-store",
        path.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// Target 1 with LUN 1 a cd over a fresh image of `size` bytes (tag 1).
fn setup(d: &Daemon, size: usize) -> (PathBuf, Vec<u8>) {
    let path = d.dir.path("disc.iso");
    let data = image(&path, size, 1);
    d.new_target(1, IQN);
    lu_new_cd(|a| d.tgtadm(a), &path);
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    (path, data)
}

fn login(portal: std::net::SocketAddr) -> Client {
    let mut c = Client::connect(portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

fn scsi(c: &mut Client, cdb: &[u8], len: u32) -> ScsiResult {
    c.scsi(1, cdb, &[], len).expect("scsi")
}

fn good(c: &mut Client, cdb: &[u8], len: u32) -> Vec<u8> {
    let r = scsi(c, cdb, len);
    assert_eq!(r.status, 0, "{cdb:02x?}: {r:?}");
    r.data
}

fn check(c: &mut Client, cdb: &[u8]) -> (u8, u8, u8) {
    let r = scsi(c, cdb, 255);
    assert_eq!(r.status, 2, "{cdb:02x?}: {r:?}");
    r.sense_key_asc().expect("sense")
}

fn show(d: &Daemon) -> String {
    d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"])
}

const TUR: [u8; 6] = [0; 6];
const READ_CAPACITY: [u8; 10] = [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const EJECT: [u8; 6] = [0x1b, 0, 0, 0, 0x02, 0];
const LOAD: [u8; 6] = [0x1b, 0, 0, 0, 0x03, 0];
const PREVENT: [u8; 6] = [0x1e, 0, 0, 0, 1, 0];
const ALLOW: [u8; 6] = [0x1e, 0, 0, 0, 0, 0];

fn inquiry_capacity_and_show(f: Flavour) {
    let d = Daemon::start(f, &[]);
    setup(&d, 4 * MIB);
    let url = format!("iscsi://{}/{IQN}/1", d.portal_str());
    let out = Command::new(require_test_tool("iscsi-inq"))
        .arg(&url)
        .output()
        .expect("iscsi-inq");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {out:?}");
    assert!(text.contains("Peripheral Device Type:MMC"), "{text}");
    assert!(text.contains("Removable:1"), "{text}");
    assert!(text.contains("Product:VIRTUAL-CDROM"), "{text}");
    let mut c = login(d.portal);
    let cap = good(&mut c, &READ_CAPACITY, 8);
    assert_eq!(
        cap,
        [0, 0, 0x07, 0xff, 0, 0, 0x08, 0],
        "2048 blocks of 2048 bytes"
    );
    let s = show(&d);
    for want in [
        "Type: cd/dvd",
        "Size: 4 MB, Block size: 2048",
        "Removable media: Yes",
        "Readonly: Yes",
    ] {
        assert!(s.contains(want), "{want} missing in:\n{s}");
    }
    // SBC-only opcodes are not a CD's.
    assert_eq!(
        check(
            &mut c,
            &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
        ),
        (5, 0x20, 0)
    );
    assert_eq!(
        check(&mut c, &[0x08, 0, 0, 0, 1, 0]),
        (5, 0x20, 0),
        "READ (6)"
    );
}

fn reads_the_whole_image_back(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let (_, data) = setup(&d, 5 * MIB + 3 * BLOCK);
    let mut c = login(d.portal);
    let blocks = data.len() / BLOCK;
    let mut got = Vec::with_capacity(data.len());
    let mut lba = 0;
    while lba < blocks {
        let n = (blocks - lba).min(200);
        got.extend(good(
            &mut c,
            &read10(lba as u32, n as u16),
            (n * BLOCK) as u32,
        ));
        lba += n;
    }
    assert!(got == data, "the image read back differs");
    // READ (12) of the last block.
    let last = (blocks - 1) as u32;
    let mut r12 = vec![0xa8, 0];
    r12.extend_from_slice(&last.to_be_bytes());
    r12.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    assert!(good(&mut c, &r12, BLOCK as u32) == data[data.len() - BLOCK..]);
    // Past the end, and writes.
    assert_eq!(check(&mut c, &read10(blocks as u32, 1)), (5, 0x21, 0));
    let w = c.scsi(1, &write10(0, 1), &[0u8; BLOCK], 0).expect("write");
    assert_eq!((w.status, w.sense_key_asc()), (2, Some((5, 0x30, 0x05))));
}

fn eject_load_and_prevent(f: Flavour) {
    let d = Daemon::start(f, &[]);
    setup(&d, 2 * MIB);
    let mut c = login(d.portal);
    let mut c2 = Client::connect(d.portal).expect("connect");
    c2.isid.0[5] ^= 1;
    assert_eq!(c2.login(Some(IQN)).expect("login"), (0, 0));
    good(&mut c, &PREVENT, 0);
    assert!(show(&d).contains("Prevent removal: Yes"));
    assert_eq!(
        check(&mut c, &EJECT),
        (5, 0x53, 0x02),
        "MEDIUM REMOVAL PREVENTED"
    );
    good(&mut c, &TUR, 0);
    good(&mut c, &ALLOW, 0);
    good(&mut c, &EJECT, 0);
    assert_eq!(check(&mut c, &TUR), (2, 0x3a, 0), "MEDIUM NOT PRESENT");
    assert_eq!(check(&mut c, &read10(0, 1)), (2, 0x3a, 0));
    // GET EVENT STATUS NOTIFICATION: media removal, tray open, no medium.
    let gesn = [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0];
    assert_eq!(good(&mut c, &gesn, 8), [0, 6, 4, 0x10, 3, 0x01, 0, 0]);
    good(&mut c, &LOAD, 0);
    good(&mut c, &TUR, 0);
    assert_eq!(
        good(&mut c, &read10(1, 1), BLOCK as u32)[..5],
        [0, 0, 0, 1, 1]
    );
    // The other session hears of the load once.
    assert_eq!(check(&mut c2, &TUR), (6, 0x28, 0));
    good(&mut c2, &TUR, 0);
}

fn media_change_reaches_a_logged_in_initiator(f: Flavour) {
    let d = Daemon::start(f, &[]);
    setup(&d, 2 * MIB);
    let mut c = login(d.portal);
    let next = d.dir.path("next.iso");
    let data = image(&next, 3 * MIB, 2);
    d.tgtadm_ok(&[
        "--lld",
        "iscsi",
        "--mode",
        "logicalunit",
        "--op",
        "update",
        "--tid",
        "1",
        "--lun",
        "1",
        "--params",
        &format!("path={}", next.display()),
    ]);
    assert_eq!(
        check(&mut c, &TUR),
        (6, 0x28, 0),
        "NOT READY TO READY CHANGE"
    );
    good(&mut c, &TUR, 0);
    assert_eq!(
        good(&mut c, &READ_CAPACITY, 8),
        [0, 0, 0x05, 0xff, 0, 0, 0x08, 0]
    );
    let last = (data.len() / BLOCK - 1) as u32;
    assert!(good(&mut c, &read10(last, 1), BLOCK as u32) == data[data.len() - BLOCK..]);
    assert!(show(&d).contains(&format!("Backing store path: {}", next.display())));
}

/// QEMU's iSCSI driver, a real initiator, reads the whole disc.
fn qemu_reads_the_disc(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let (_, data) = setup(&d, 3 * MIB + BLOCK);
    let (img, modules) = integration_tests::qemu();
    let out = d.dir.path("copy.raw");
    let r = Command::new(img)
        .env("QEMU_MODULE_DIR", modules)
        .args(["convert", "-O", "raw"])
        .arg(format!("iscsi://{}/{IQN}/1", d.portal_str()))
        .arg(&out)
        .output()
        .expect("qemu-img");
    assert!(r.status.success(), "qemu-img: {r:?}");
    assert!(
        std::fs::read(&out).expect("copy") == data,
        "QEMU read other bytes"
    );
}

both_flavours!(
    qemu_reads_the_disc,
    inquiry_capacity_and_show,
    reads_the_whole_image_back,
    eject_load_and_prevent,
    media_change_reaches_a_logged_in_initiator,
);

/// Feature `code` of GET CONFIGURATION data.
fn feature(d: &[u8], code: u16) -> Option<Vec<u8>> {
    let mut at = 8;
    while at + 4 <= d.len() {
        let end = at + 4 + usize::from(d[at + 3]);
        if u16::from_be_bytes([d[at], d[at + 1]]) == code {
            return d.get(at..end).map(<[u8]>::to_vec);
        }
        at = end;
    }
    None
}

/// The answers to the commands compared with tgt, in order.
fn probe(c: &mut Client) -> Vec<ScsiResult> {
    [
        (&[0x12u8, 0, 0, 0, 96, 0][..], 96),
        (&READ_CAPACITY[..], 8),
        (&[0x43, 0, 0, 0, 0, 0, 0, 0, 64, 0][..], 64),
        (&[0x43, 0, 1, 0, 0, 0, 0, 0, 64, 0][..], 64),
        (&[0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0][..], 34),
        (&[0x5a, 0x08, 0x2a, 0, 0, 0, 0, 0x01, 0, 0][..], 256),
        (&[0x46, 0, 0, 0, 0, 0, 0, 0x04, 0, 0][..], 1024),
        (&[0x52, 1, 0, 0, 0, 1, 0, 0, 64, 0][..], 64),
    ]
    .iter()
    .map(|(cdb, len)| scsi(c, cdb, *len))
    .collect()
}

/// Our answers against Debian's tgt on the same DVD-sized (sparse) image. Where the two
/// differ by design the comparison names the bytes it leaves out (see README).
#[test]
fn bytes_match_debian_tgt() {
    let ours = Daemon::start(Flavour::Mio, &[]);
    let path = ours.dir.path("dvd.iso");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(800 * MIB as u64))
        .expect("image");
    ours.new_target(1, IQN);
    lu_new_cd(|a| ours.tgtadm(a), &path);
    ours.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    let reference = RefTgtd::start();
    let r = reference.tgtadm(&[
        "--lld", "iscsi", "--mode", "target", "--op", "new", "--tid", "1", "-T", IQN,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    lu_new_cd(|a| reference.tgtadm(a), &path);
    let r = reference.tgtadm(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let show = reference.tgtadm(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(show.stdout.contains("Type: cd/dvd"), "{show:?}");

    let a = probe(&mut login(ours.portal));
    let b = probe(&mut login(reference.portal));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!((i, x.status), (i, 0), "ours: {x:?}");
        assert_eq!((i, y.status), (i, 0), "tgt: {y:?}");
    }
    let (inq, tgt_inq) = (&a[0].data, &b[0].data);
    // Peripheral type 5 and RMB; vendor, product, revision. (VERSION: SPC-4 here, tgt
    // claims SPC-3; version descriptors MMC-6/SPC-4 here, MMC-3/SPC-3 there.)
    assert_eq!(inq[..2], tgt_inq[..2]);
    assert_eq!(inq[8..36], tgt_inq[8..36]);
    assert_eq!(a[1].data, b[1].data, "READ CAPACITY");
    // READ TOC: the same bytes, except that tgt sends TOC DATA LENGTH bytes in all,
    // two short (the length excludes its own two bytes): 18 of 20, 10 of 12.
    for (i, name) in [(2, "READ TOC format 0"), (3, "READ TOC format 1")] {
        let (x, y) = (&a[i].data, &b[i].data);
        assert_eq!(x.len(), usize::from(x[1]) + 2, "{name}");
        assert_eq!(y.len(), usize::from(y[1]), "{name}: tgt");
        assert_eq!(x[..y.len()], y[..], "{name}");
    }
    assert_eq!(a[4].data, b[4].data, "READ DISC INFORMATION");
    // MODE SENSE (10) 2Ah: no block descriptor on either; the page's read
    // capabilities and mechanism byte agree (tgt also claims writing and audio).
    let (ms, tgt_ms) = (&a[5].data, &b[5].data);
    let page = |d: &[u8]| {
        d.iter()
            .skip(8)
            .position(|&b| b & 0x3f == 0x2a)
            .map(|p| p + 8)
    };
    let (p, q) = (page(ms).expect("2Ah"), page(tgt_ms).expect("tgt 2Ah"));
    assert_eq!(
        (ms[6], ms[7]),
        (tgt_ms[6], tgt_ms[7]),
        "block descriptor length"
    );
    assert_eq!(ms[p + 2], tgt_ms[q + 2], "read capabilities");
    assert_eq!(ms[p + 6] & 0xf9, tgt_ms[q + 6] & 0xf9, "tray, eject, lock");
    // GET CONFIGURATION: DVD-ROM current on both; the same Removable Medium and Random
    // Readable features and the DVD-ROM profile descriptor (tgt adds DVD+R, we CD-ROM).
    let (gc, tgt_gc) = (&a[6].data, &b[6].data);
    assert_eq!(gc[6..8], [0, 0x10]);
    assert_eq!(gc[6..8], tgt_gc[6..8], "current profile");
    for code in [0x0003, 0x0010, 0x001f] {
        assert_eq!(
            feature(gc, code),
            feature(tgt_gc, code),
            "feature {code:04x}"
        );
    }
    let profiles = |d: &[u8]| feature(d, 0).expect("profile list")[4..8].to_vec();
    assert_eq!(profiles(gc), profiles(tgt_gc), "DVD-ROM profile descriptor");
    // READ TRACK INFORMATION of track 1: the fields tgt fills (its page is 36 bytes,
    // MMC-6's 48).
    assert_eq!(a[7].data[2..32], b[7].data[2..32], "track information");
    // Refusals: WRITE (10) is ILLEGAL REQUEST, CANNOT WRITE MEDIUM - INCOMPATIBLE
    // FORMAT on both, READ (6) an invalid opcode; SYNCHRONIZE CACHE is GOOD. (tgt has
    // no GET EVENT STATUS NOTIFICATION, MECHANISM STATUS or MODE SENSE (6).)
    let mut ca = login(ours.portal);
    let mut cb = login(reference.portal);
    let block = vec![0u8; BLOCK];
    for (cdb, out, want) in [
        (&write10(0, 1)[..], &block[..], (2, Some((5, 0x30, 0x05)))),
        (&[0x08, 0, 0, 0, 1, 0], &[], (2, Some((5, 0x20, 0)))),
        (&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], (0, None)),
    ] {
        let len = if out.is_empty() { BLOCK as u32 } else { 0 };
        for c in [&mut ca, &mut cb] {
            let r = c.scsi(1, cdb, out, len).expect("scsi");
            assert_eq!((r.status, r.sense_key_asc()), want, "{cdb:02x?}");
        }
    }
}
