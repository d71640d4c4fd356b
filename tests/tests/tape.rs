//! Tape images and `--device-type tape`/`changer`.
//!
//! `tgtimg` is checked differentially against Debian's `tgtimg` (tgt 1.0.85): the
//! same parameters make the same bytes (but for the creation time in the serial
//! number), and each program's `--op show` prints the same text for either image.
#![allow(clippy::disallowed_methods)]

use integration_tests::tgt_ref::require_ref_tool;
use integration_tests::{bin, TempDir};
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
