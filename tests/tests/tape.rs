//! Tape images and `--device-type tape`/`changer`.
//!
//! `tgtimg` is checked differentially against Debian's `tgtimg` (tgt 1.0.85): the
//! same parameters make the same bytes (but for the creation time in the serial
//! number), and each program's `--op show` prints the same text for either image.
//!
//! A tape LU on both daemons, through the in-process initiator: files of variable and
//! fixed blocks separated by filemarks, rewind, space, locate, read position, the
//! filemark/ILI/EOD sense with their INFORMATION residues, early warning and end of
//! medium; and interop with Debian's tgtd: the same commands through both make the
//! same image bytes, an image written here reads back there and one written there
//! reads back here.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{Client, ScsiResult};
use integration_tests::tgt_ref::{require_ref_tool, RefTgtd};
use integration_tests::{bin, both_flavours, Daemon, Flavour, TempDir};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Offset and length of the MAM's medium serial number (`BARCODE_SECONDS`): the only
/// bytes of a new image that depend on the time it was made.
const SERIAL: std::ops::Range<usize> = 48 + 264..48 + 296;

fn run(prog: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(prog)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("run tgtimg");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tgtimg_new(prog: &Path, file: &Path, barcode: &str, size: &str, kind: &str) -> String {
    let (code, out, err) = run(
        prog,
        &[
            "--op",
            "new",
            "--device-type",
            "tape",
            "--barcode",
            barcode,
            "--size",
            size,
            "--type",
            kind,
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{} failed: {err}", prog.display());
    out
}

#[test]
fn tgtimg_new_matches_tgt() {
    let ours = bin("tgtimg");
    let theirs = require_ref_tool("tgtimg");
    let dir = TempDir::new("tgtimg");
    for (barcode, size, kind) in [
        ("ABC123", "10", "data"),
        ("CLN001L1", "1", "clean"),
        ("W0RM", "2048", "WORM"),
        ("Z", "0", "Data"),
    ] {
        let a = dir.path("ours.img");
        let b = dir.path("theirs.img");
        let out_a = tgtimg_new(&ours, &a, barcode, size, kind);
        let out_b = tgtimg_new(&theirs, &b, barcode, size, kind);
        assert_eq!(out_a, out_b, "stdout of --op new for {barcode}");
        let mut ia = std::fs::read(&a).unwrap();
        let mut ib = std::fs::read(&b).unwrap();
        assert_eq!(ia.len(), 1200);
        assert_eq!(ia.len(), ib.len());
        // The serial numbers are BARCODE_SECONDS: equal up to the clock.
        let sa = String::from_utf8_lossy(&ia[SERIAL]).into_owned();
        assert!(sa.starts_with(&format!("{barcode}_")), "{sa}");
        ia[SERIAL].fill(0);
        ib[SERIAL].fill(0);
        assert_eq!(ia, ib, "image bytes for {barcode} {size} {kind}");
        // Each program shows the other's image as it shows its own.
        for img in [&a, &b] {
            let p = img.to_str().unwrap();
            let (ca, sa, _) = run(&ours, &["--op", "show", "--file", p]);
            let (cb, sb, _) = run(&theirs, &["--op", "show", "--file", p]);
            assert_eq!((ca, &sa), (cb, &sb), "--op show of {}", img.display());
            assert!(sa.contains("End of Data(32): Blk No. 1, prev 0, curr 1152,  next 1152, sz 0"));
        }
    }
}

#[test]
fn tgtimg_errors_match_tgt() {
    let ours = bin("tgtimg");
    let theirs = require_ref_tool("tgtimg");
    let dir = TempDir::new("tgtimg-err");
    let f = dir.path("x.img");
    let f = f.to_str().unwrap();
    for args in [
        vec![
            "--op",
            "new",
            "--device-type",
            "tape",
            "--type",
            "data",
            "--size",
            "1",
            "--file",
            f,
        ],
        vec![
            "--op",
            "new",
            "--device-type",
            "tape",
            "--barcode",
            "A",
            "--size",
            "1",
            "--type",
            "tv",
            "--file",
            f,
        ],
        vec![
            "--op",
            "new",
            "--device-type",
            "tape",
            "--barcode",
            "A",
            "--type",
            "data",
            "--file",
            f,
        ],
        vec![
            "--op",
            "new",
            "--device-type",
            "tape",
            "--barcode",
            "A",
            "--size",
            "1",
            "--file",
            f,
        ],
        vec!["--device-type", "tape", "--file", f],
        vec!["--op", "new", "--device-type", "tape"],
        vec!["--op", "show", "--file", "/nonexistent/tape.img"],
    ] {
        let (ca, _, ea) = run(&ours, &args);
        let (cb, _, eb) = run(&theirs, &args);
        assert_eq!(ca, cb, "exit status of {args:?}");
        assert_eq!(
            ea.lines()
                .next()
                .map(|l| l.split(',').next().unwrap_or(l).to_owned()),
            eb.lines()
                .next()
                .map(|l| l.split(',').next().unwrap_or(l).to_owned()),
            "first line of stderr of {args:?}"
        );
    }
}

const IQN: &str = "iqn.2026-12.test:tape";
const REWIND: [u8; 6] = [0x01, 0, 0, 0, 0, 0];
const WFM1: [u8; 6] = [0x10, 0, 0, 0, 1, 0];

fn new_tape(prog: &Path, file: &Path, barcode: &str, mb: u32) {
    tgtimg_new(prog, file, barcode, &mb.to_string(), "data");
}

/// LUN 1 of target 1 a tape drive over `image`, bound to ALL, with `tgtadm`.
fn setup_tape(tgtadm: impl Fn(&[&str]) -> integration_tests::Run, image: &Path) {
    for args in [
        vec![
            "--lld", "iscsi", "--mode", "target", "--op", "new", "--tid", "1", "-T", IQN,
        ],
        vec![
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
            "tape",
            "--backing-store",
            image.to_str().unwrap(),
        ],
        vec![
            "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
        ],
    ] {
        let r = tgtadm(&args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
    }
}

fn login(portal: SocketAddr) -> Client {
    let mut c = Client::connect(portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

fn cmd(c: &mut Client, cdb: &[u8], out: &[u8], read: u32) -> ScsiResult {
    c.scsi(1, cdb, out, read).expect("scsi")
}

fn good(c: &mut Client, cdb: &[u8], out: &[u8], read: u32) -> Vec<u8> {
    let r = cmd(c, cdb, out, read);
    assert_eq!(r.status, 0, "{cdb:02x?}: {r:?}");
    r.data
}

fn write_var(c: &mut Client, data: &[u8]) -> ScsiResult {
    let n = (data.len() as u32).to_be_bytes();
    cmd(c, &[0x0a, 0, n[1], n[2], n[3], 0], data, 0)
}

fn read_var(c: &mut Client, len: u32) -> ScsiResult {
    let n = len.to_be_bytes();
    cmd(c, &[0x08, 0, n[1], n[2], n[3], 0], &[], len)
}

fn space(code: u8, count: i32) -> [u8; 6] {
    let n = count.to_be_bytes();
    [0x11, code, n[1], n[2], n[3], 0]
}

/// (key, ASC, ASCQ, stream bits, INFORMATION) of fixed sense data.
fn tape_sense(r: &ScsiResult) -> (u8, u8, u8, u8, Option<u32>) {
    assert_eq!(r.status, 2, "{r:?}");
    let s = &r.sense;
    let info = (s[0] & 0x80 != 0).then(|| u32::from_be_bytes([s[3], s[4], s[5], s[6]]));
    (s[2] & 0x0f, s[12], s[13], s[2] & 0xe0, info)
}

fn block(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Write "file 1": three variable blocks and a filemark; "file 2": four fixed
/// 1024-byte blocks and a filemark; then back to variable blocks.
fn write_two_files(c: &mut Client) {
    for i in 0..3 {
        assert_eq!(write_var(c, &block(i, 1000 + i * 100)).status, 0);
    }
    good(c, &WFM1, &[], 0);
    mode_select_block_len(c, 1024);
    let fixed: Vec<u8> = (0..4).flat_map(|i| block(10 + i, 1024)).collect();
    good(c, &[0x0a, 1, 0, 0, 4, 0], &fixed, 0);
    good(c, &WFM1, &[], 0);
    mode_select_block_len(c, 0);
}

fn mode_select_block_len(c: &mut Client, len: u32) {
    let b = len.to_be_bytes();
    let p = [0, 0, 0x10, 8, 0, 0, 0, 0, 0, b[1], b[2], b[3]];
    good(c, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p, 0);
}

fn check_two_files(c: &mut Client) {
    good(c, &REWIND, &[], 0);
    for i in 0..3 {
        assert_eq!(
            read_var(c, 1000 + i as u32 * 100).data,
            block(i, 1000 + i * 100)
        );
    }
    // The filemark: FILEMARK, 00h/01h, INFORMATION = the length asked for.
    let r = read_var(c, 4096);
    assert_eq!(tape_sense(&r), (0, 0, 1, 0x80, Some(4096)));
    mode_select_block_len(c, 1024);
    let r = cmd(c, &[0x08, 1, 0, 0, 4, 0], &[], 4096);
    assert_eq!(r.status, 0, "{r:?}");
    let fixed: Vec<u8> = (0..4).flat_map(|i| block(10 + i, 1024)).collect();
    assert_eq!(r.data, fixed);
    mode_select_block_len(c, 0);
}

fn tape_files_and_positioning(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let image = d.dir.path("tape1.img");
    new_tape(&bin("tgtimg"), &image, "TAPE01", 4);
    setup_tape(|a| d.tgtadm(a), &image);
    let mut c = login(d.portal);
    // INQUIRY: sequential-access (01h), removable, VIRTUAL-TAPE.
    let inq = good(&mut c, &[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!((inq[0], inq[1]), (0x01, 0x80));
    assert_eq!(&inq[16..28], b"VIRTUAL-TAPE");
    // An SBC command: INVALID COMMAND OPERATION CODE.
    let r = cmd(&mut c, &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], &[], 512);
    assert_eq!(r.sense_key_asc(), Some((5, 0x20, 0)));
    let r = cmd(&mut c, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    assert_eq!(r.sense_key_asc(), Some((5, 0x20, 0)));
    // READ BLOCK LIMITS: variable blocks of 1 .. 1 MiB.
    assert_eq!(
        good(&mut c, &[0x05, 0, 0, 0, 0, 0], &[], 6),
        [0, 0x10, 0, 0, 0, 1]
    );
    write_two_files(&mut c);
    check_two_files(&mut c);
    // ILI: a short read of the 1000-byte block, INFORMATION = 10 - 1000 = -990.
    good(&mut c, &REWIND, &[], 0);
    let r = read_var(&mut c, 10);
    assert_eq!(r.data, block(0, 10));
    assert_eq!(tape_sense(&r), (0, 0, 0, 0x20, Some((-990i32) as u32)));
    // SPACE forward 5 blocks from the second: stops past the filemark, residue 3.
    let r = cmd(&mut c, &space(0, 5), &[], 0);
    assert_eq!(tape_sense(&r), (0, 0, 1, 0x80, Some(3)));
    // READ POSITION (long): object 4, file 1.
    let p = good(&mut c, &[0x34, 6, 0, 0, 0, 0, 0, 0, 0, 0], &[], 32);
    assert_eq!(u64::from_be_bytes(p[8..16].try_into().unwrap()), 4);
    assert_eq!(u64::from_be_bytes(p[16..24].try_into().unwrap()), 1);
    // Back over one filemark, forward over it: the fixed blocks follow.
    good(&mut c, &space(1, -1), &[], 0);
    good(&mut c, &space(1, 1), &[], 0);
    assert_eq!(read_var(&mut c, 1024).data, block(10, 1024));
    // SPACE to end of data, append a third file, LOCATE (10) back to object 2.
    good(&mut c, &space(3, 0), &[], 0);
    assert_eq!(write_var(&mut c, b"third file").status, 0);
    good(&mut c, &[0x2b, 0, 0, 0, 0, 0, 2, 0, 0, 0], &[], 0);
    assert_eq!(read_var(&mut c, 1200).data, block(2, 1200));
    // READ POSITION (short) there: object 3.
    let p = good(&mut c, &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 20);
    assert_eq!(u32::from_be_bytes(p[4..8].try_into().unwrap()), 3);
    // Reading past the end of data: BLANK CHECK, END-OF-DATA DETECTED.
    good(&mut c, &space(1, 2), &[], 0);
    assert_eq!(read_var(&mut c, 10).data, b"third file");
    let r = read_var(&mut c, 10);
    assert_eq!(tape_sense(&r), (8, 0, 5, 0, Some(10)));
    // The image is one tgt's tgtimg walks to the end.
    drop(c);
    let (code, out, _) = run(
        &require_ref_tool("tgtimg"),
        &["--op", "show", "--file", image.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert_eq!(out.matches("Filemark").count(), 2, "{out}");
    assert_eq!(out.matches("Uncompressed data").count(), 8, "{out}");
    assert!(out.contains("End of Data(32): Blk No. 11,"), "{out}");
}

fn early_warning_and_end_of_medium(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let image = d.dir.path("small.img");
    new_tape(&bin("tgtimg"), &image, "SMALL1", 1);
    setup_tape(|a| d.tgtadm(a), &image);
    let mut c = login(d.portal);
    let blk = vec![0x5au8; 64 * 1024];
    let mut warned = 0;
    let mut written = 0;
    loop {
        let r = write_var(&mut c, &blk);
        if r.status == 0 {
            assert_eq!(warned, 0, "GOOD after early warning");
            written += 1;
            continue;
        }
        let s = tape_sense(&r);
        if s.0 == 0 {
            // Early warning: NO SENSE, EOM, 00h/02h; the block was written.
            assert_eq!(s, (0, 0, 2, 0x40, Some(0)));
            warned += 1;
            written += 1;
            continue;
        }
        // End of medium: VOLUME OVERFLOW, EOM, the whole block as residue.
        assert_eq!(s, (0x0d, 0, 2, 0x40, Some(64 * 1024)));
        break;
    }
    assert!(warned >= 1 && written >= 10, "{warned} {written}");
    // A filemark still fits? Either way it must not be lost silently.
    let r = cmd(&mut c, &WFM1, &[], 0);
    assert!(r.status == 2, "{r:?}");
    good(&mut c, &REWIND, &[], 0);
    for _ in 0..written {
        assert_eq!(read_var(&mut c, 64 * 1024).data, blk);
    }
}

fn write_protected_image(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let image = d.dir.path("ro.img");
    new_tape(&bin("tgtimg"), &image, "RO0001", 1);
    // readonly=1 on the LU: WRITE is DATA PROTECT, MODE SENSE shows WP.
    for args in [
        vec![
            "--lld", "iscsi", "--mode", "target", "--op", "new", "--tid", "1", "-T", IQN,
        ],
        vec![
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
            "tape",
            "--backing-store",
            image.to_str().unwrap(),
        ],
        vec![
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
            "readonly=1",
        ],
        vec![
            "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
        ],
    ] {
        assert_eq!(d.tgtadm(&args).code, 0, "{args:?}");
    }
    let mut c = login(d.portal);
    let r = write_var(&mut c, b"x");
    assert_eq!(r.sense_key_asc(), Some((7, 0x27, 0)));
    let r = cmd(&mut c, &WFM1, &[], 0);
    assert_eq!(r.sense_key_asc(), Some((7, 0x27, 0)));
    let ms = good(&mut c, &[0x1a, 0, 0x3f, 0, 0xff, 0], &[], 255);
    assert_eq!(ms[2] & 0x80, 0x80);
    // Not a tape image: refused with the reason.
    let junk = d.dir.path("junk");
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    let r = d.lu_new(1, 2, junk.to_str().unwrap(), &["--device-type", "tape"]);
    assert_ne!(r.code, 0, "{r:?}");
}

/// TEST UNIT READY to `lun` until it stops reporting a unit attention; its last answer.
fn settle(c: &mut Client, lun: u64) -> ScsiResult {
    for _ in 0..8 {
        let r = c.scsi(lun, &[0; 6], &[], 0).expect("scsi");
        if r.sense_key_asc().map(|s| s.0) != Some(6) {
            return r;
        }
    }
    panic!("unit attentions do not end on LUN {lun}");
}

fn move_medium(c: &mut Client, src: u16, dst: u16) -> ScsiResult {
    let (s, d) = (src.to_be_bytes(), dst.to_be_bytes());
    let cdb = [0xa5, 0, 0, 16, s[0], s[1], d[0], d[1], 0, 0, 0, 0];
    c.scsi(3, &cdb, &[], 0).expect("scsi")
}

/// READ ELEMENT STATUS with volume tags: (address, full, volume tag, source) of each
/// element of `kind`.
fn elements(c: &mut Client, kind: u8) -> Vec<(u16, bool, String, Option<u16>)> {
    let cdb = [0xb8, 0x10 | kind, 0, 0, 0, 100, 0, 0, 0x40, 0, 0, 0];
    let r = c.scsi(3, &cdb, &[], 0x4000).expect("scsi");
    assert_eq!(r.status, 0, "{r:?}");
    let d = r.data;
    let mut out = vec![];
    let mut at = 8;
    while at + 8 <= d.len() {
        let len = usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        let bytes = u32::from_be_bytes([0, d[at + 5], d[at + 6], d[at + 7]]) as usize;
        for e in d[at + 8..at + 8 + bytes].chunks(len) {
            let tag = String::from_utf8_lossy(&e[12..44]).trim_end().to_owned();
            let src = (e[9] & 0x80 != 0).then(|| u16::from_be_bytes([e[10], e[11]]));
            out.push((u16::from_be_bytes([e[0], e[1]]), e[2] & 1 == 1, tag, src));
        }
        at += 8 + bytes;
    }
    out
}

fn changer_params(media: &Path) -> Vec<String> {
    vec![
        "element_type=4,start_address=1,quantity=2".into(),
        "element_type=4,address=1,tid=1,lun=1".into(),
        "element_type=4,address=2,tid=1,lun=2".into(),
        "element_type=1,start_address=16,quantity=1".into(),
        "element_type=2,start_address=1024,quantity=10".into(),
        "element_type=2,address=1024,barcode=TAPE01,sides=1".into(),
        "element_type=2,address=1025,barcode=TAPE02".into(),
        "element_type=3,start_address=32,quantity=2".into(),
        format!("media_home={}", media.display()),
    ]
}

fn library(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let media = d.dir.path("vtl");
    std::fs::create_dir_all(&media).unwrap();
    for b in ["TAPE01", "TAPE02"] {
        new_tape(&bin("tgtimg"), &media.join(b), b, 8);
    }
    let smc = d.dir.path("smc");
    std::fs::write(&smc, [0u8; 1024]).unwrap();
    d.new_target(1, IQN);
    for lun in ["1", "2"] {
        let r = d.tgtadm(&[
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            "1",
            "--lun",
            lun,
            "--device-type",
            "tape",
            "--backing-store",
            "NONE:0",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let r = d.tgtadm(&[
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
        "--device-type",
        "changer",
        "--backing-store",
        smc.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    for p in changer_params(&media) {
        let r = d.lu_update(1, 3, &p);
        assert_eq!(r.code, 0, "{p}: {r:?}");
    }
    // tgt's answer to a key it does not know.
    let r = d.lu_update(1, 3, "colour=red");
    assert_eq!((r.code, r.stderr.trim()), (22, "tgtadm: unknown parameter"));
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);

    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login_only(Some(IQN)).expect("login"), (0, 0));
    assert_eq!(settle(&mut c, 3).status, 0);
    // Empty drives: NOT READY, MEDIUM NOT PRESENT.
    assert_eq!(settle(&mut c, 1).sense_key_asc(), Some((2, 0x3a, 0)));
    settle(&mut c, 2);
    let inq = c.scsi(3, &[0x12, 0, 0, 0, 96, 0], &[], 96).unwrap().data;
    assert_eq!((inq[0], &inq[16..31]), (0x08, &b"VIRTUAL-CHANGER"[..]));
    assert_eq!(c.scsi(3, &[0x07, 0, 0, 0, 0, 0], &[], 0).unwrap().status, 0);
    let slots = elements(&mut c, 2);
    assert_eq!(slots.len(), 10);
    assert_eq!(slots[0], (1024, true, "TAPE01".into(), None));
    assert_eq!(slots[1], (1025, true, "TAPE02".into(), None));
    assert!(!slots[2].1);
    assert_eq!(
        elements(&mut c, 4),
        vec![
            (1, false, String::new(), None),
            (2, false, String::new(), None)
        ]
    );
    assert_eq!(elements(&mut c, 3).len(), 2);
    assert_eq!(elements(&mut c, 1), vec![(16, false, String::new(), None)]);
    // Load TAPE01 into drive 1 and write two files on it.
    assert_eq!(move_medium(&mut c, 1024, 1).status, 0);
    assert_eq!(
        elements(&mut c, 4)[0],
        (1, true, "TAPE01".into(), Some(1024))
    );
    // The drive says its medium changed, once.
    let r = c.scsi(1, &[0; 6], &[], 0).unwrap();
    assert_eq!(r.sense_key_asc(), Some((6, 0x28, 0)));
    assert_eq!(c.scsi(1, &[0; 6], &[], 0).unwrap().status, 0);
    let one =
        |c: &mut Client, cdb: &[u8], out: &[u8], read: u32| c.scsi(1, cdb, out, read).unwrap();
    for i in 0..2 {
        let b = block(i, 5000);
        let n = (b.len() as u32).to_be_bytes();
        assert_eq!(
            one(&mut c, &[0x0a, 0, n[1], n[2], n[3], 0], &b, 0).status,
            0
        );
        assert_eq!(one(&mut c, &WFM1, &[], 0).status, 0);
    }
    // The drive's tape cannot leave while removal is prevented.
    assert_eq!(one(&mut c, &[0x1e, 0, 0, 0, 1, 0], &[], 0).status, 0);
    assert_eq!(
        move_medium(&mut c, 1, 1030).sense_key_asc(),
        Some((5, 0x53, 0x02))
    );
    assert_eq!(one(&mut c, &[0x1e, 0, 0, 0, 0, 0], &[], 0).status, 0);
    // `--op show` names the tape in drive 1 (tgt updates the LU's path on a move).
    let lu_show = |d: &Daemon, lun: &str| {
        let s = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
        let at = s.find(&format!("        LUN: {lun}\n")).expect("LUN");
        let rest = &s[at + 10..];
        rest[..rest.find("        LUN: ").unwrap_or(rest.len())].to_owned()
    };
    let tape01 = media.join("TAPE01");
    assert!(lu_show(&d, "1").contains(&format!("Backing store path: {}\n", tape01.display())));
    assert!(lu_show(&d, "1").contains("Online: Yes\n"));
    // Unload to another slot; the drive is empty again (offline, no path, as tgt).
    assert_eq!(move_medium(&mut c, 1, 1030).status, 0);
    assert_eq!(settle(&mut c, 1).sense_key_asc(), Some((2, 0x3a, 0)));
    let s = lu_show(&d, "1");
    assert!(
        s.contains("Backing store path: None\n") && s.contains("Online: No\n"),
        "{s}"
    );
    let slots = elements(&mut c, 2);
    assert_eq!(slots[6], (1030, true, "TAPE01".into(), Some(1)));
    assert!(!slots[0].1);
    // Errors: an empty source, a full destination, no such element.
    assert_eq!(
        move_medium(&mut c, 1024, 1026).sense_key_asc(),
        Some((5, 0x3b, 0x0e))
    );
    assert_eq!(
        move_medium(&mut c, 1025, 1030).sense_key_asc(),
        Some((5, 0x3b, 0x0d))
    );
    assert_eq!(
        move_medium(&mut c, 999, 1026).sense_key_asc(),
        Some((5, 0x21, 0x01))
    );
    // The tape, moved into drive 2, has the files written in drive 1.
    assert_eq!(move_medium(&mut c, 1030, 2).status, 0);
    let r = c.scsi(2, &[0; 6], &[], 0).unwrap();
    assert_eq!(r.sense_key_asc(), Some((6, 0x28, 0)));
    assert_eq!(c.scsi(2, &[0; 6], &[], 0).unwrap().status, 0);
    for i in 0..2 {
        let r = c.scsi(2, &[0x08, 0, 0, 0x13, 0x88, 0], &[], 5000).unwrap();
        assert_eq!(r.data, block(i, 5000));
        let r = c.scsi(2, &[0x08, 0, 0, 0x13, 0x88, 0], &[], 5000).unwrap();
        assert_eq!(r.sense[2] & 0x80, 0x80, "filemark {i}");
    }
    // An SSC command to the changer, an SMC one to a drive: not theirs.
    assert_eq!(
        c.scsi(3, &REWIND, &[], 0).unwrap().sense_key_asc(),
        Some((5, 0x20, 0))
    );
    let res = [0xb8, 0, 0, 0, 0, 10, 0, 0, 0x40, 0, 0, 0];
    assert_eq!(
        c.scsi(2, &res, &[], 0x4000).unwrap().sense_key_asc(),
        Some((5, 0x20, 0))
    );
}

both_flavours!(
    tape_files_and_positioning,
    early_warning_and_end_of_medium,
    write_protected_image,
    library,
);

/// The same commands through Debian's tgtd and ours, each on its own copy of one
/// tgtimg-made image: the images end byte for byte the same, each daemon reads back
/// what the other wrote, and `--op show` prints the tape LU the same.
#[test]
fn interop_with_tgt() {
    let ours = Daemon::start(Flavour::Mio, &[]);
    let reference = RefTgtd::start();
    let dir = TempDir::new("tape-interop");
    let blank = dir.path("blank.img");
    new_tape(&require_ref_tool("tgtimg"), &blank, "IOP001", 4);
    let (a, b) = (dir.path("ours.img"), dir.path("theirs.img"));
    std::fs::copy(&blank, &a).unwrap();
    std::fs::copy(&blank, &b).unwrap();
    setup_tape(|x| ours.tgtadm(x), &a);
    setup_tape(|x| reference.tgtadm(x), &b);
    // `--op show` of the tape LU (a fresh image on both).
    let lun1 = |s: &str| {
        let start = s.find("        LUN: 1\n").expect("LUN 1");
        let rest = &s[start..];
        let end = rest.find("    Account information:").unwrap_or(rest.len());
        rest[..end]
            .replace(a.to_str().unwrap(), "IMG")
            .replace(b.to_str().unwrap(), "IMG")
    };
    let show_a = ours.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    let show_b = reference
        .tgtadm(&["--lld", "iscsi", "--mode", "target", "--op", "show"])
        .stdout;
    assert_eq!(lun1(&show_a), lun1(&show_b));
    // Write the same through both (tgt's tape takes variable blocks and filemarks).
    for portal in [ours.portal, reference.portal] {
        let mut c = login(portal);
        for i in 0..3 {
            assert_eq!(write_var(&mut c, &block(i, 700 + i)).status, 0, "{portal}");
        }
        good(&mut c, &WFM1, &[], 0);
        assert_eq!(write_var(&mut c, &block(9, 4096)).status, 0);
        good(&mut c, &WFM1, &[], 0);
        let _ = c.logout();
    }
    let (ia, ib) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ia.len(), ib.len());
    assert!(ia == ib, "the images differ");
    // Swap: each daemon reads the other's image.
    let swap = |tgtadm: &dyn Fn(&[&str]) -> integration_tests::Run, img: &Path| {
        let r = tgtadm(&[
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "delete",
            "--tid",
            "1",
            "--lun",
            "1",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
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
            "tape",
            "--backing-store",
            img.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
    };
    swap(&|x| ours.tgtadm(x), &b);
    swap(&|x| reference.tgtadm(x), &a);
    for portal in [ours.portal, reference.portal] {
        let mut c = login(portal);
        for i in 0..3 {
            assert_eq!(
                read_var(&mut c, 700 + i as u32).data,
                block(i, 700 + i),
                "{portal}"
            );
        }
        let r = read_var(&mut c, 100);
        assert_eq!(r.status, 2, "{portal}: the filemark");
        assert_eq!(r.sense[2] & 0x80, 0x80, "{portal}");
        assert_eq!(read_var(&mut c, 4096).data, block(9, 4096), "{portal}");
    }
}
