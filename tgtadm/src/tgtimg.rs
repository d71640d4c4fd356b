//! `tgtimg`: tgt's image file utility (`usr/tgtimg.c`), same options, output and exit
//! statuses: `--op new` makes a tape image in tgt's format (or an empty DVD+R or a
//! disk image), `--op show` dumps a tape image's headers.

use crate::getopt::{GetOpt, LongOpt, Spec};
use scsi_ssc::image::{self, BlockHeader, Cartridge, Mam};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

const PROG: &str = "tgtimg";
/// tgt's exit status for a usage error.
const EINVAL: i32 = 22;

const SPEC: Spec = Spec {
    short: "ho:Y:b:s:t:f:",
    long: &[
        LongOpt {
            name: "help",
            has_arg: false,
            key: 'h',
        },
        LongOpt {
            name: "op",
            has_arg: true,
            key: 'o',
        },
        LongOpt {
            name: "device-type",
            has_arg: true,
            key: 'Y',
        },
        LongOpt {
            name: "barcode",
            has_arg: true,
            key: 'b',
        },
        LongOpt {
            name: "size",
            has_arg: true,
            key: 's',
        },
        LongOpt {
            name: "type",
            has_arg: true,
            key: 't',
        },
        LongOpt {
            name: "file",
            has_arg: true,
            key: 'f',
        },
        LongOpt {
            name: "thin-provisioning",
            has_arg: false,
            key: 'T',
        },
    ],
};

fn usage_text() -> String {
    format!(
        "Usage: {PROG} [OPTION]\n\
Linux SCSI Target Framework Image File Utility, version {}\n\
\n\
  --op new --device-type tape --barcode=[code] --size=[size] --type=[type] --file=[path] [--thin-provisioning]\n\
\t\t\tcreate a new tape image file.\n\
\t\t\t[code] is a string of chars.\n\
\t\t\t[size] is media size(in megabytes).\n\
\t\t\t[type] is media type \n\
\t\t\t\t(data, clean or WORM) for tape devices\n\
\t\t\t\t(dvd+r) for cd devices\n\
\t\t\t\t(disk) for disk devices\n\
\t\t\t[path] is a newly created file\n\
  --op show --device-type tape --file=[path]\n\
\t\t\tdump the tape image file contents.\n\
\t\t\t[path] is the tape image file\n\
  --thin-provisioning   create a sparse file for the media\n\
  --help                display this help and exit\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The man page (section 8), made from the `--help` text.
pub fn man_page() -> String {
    crate::help_man_page(
        PROG,
        "make and show tape images in tgt's format",
        &usage_text(),
    )
}

/// How a run ends early: the exit status, after a message on stderr.
struct Fail(i32);

fn usage_error(err: &mut dyn Write, msg: &str) -> Fail {
    let _ = writeln!(err, "{PROG}: {msg}");
    let _ = writeln!(err, "Try `{PROG} --help' for more information.");
    Fail(EINVAL)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    New,
    Show,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dev {
    Tape,
    Cd,
    Disk,
}

/// Run `tgtimg` with `args` (without the program name); returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_inner(args, out, err) {
        Ok(()) => 0,
        Err(Fail(code)) => code,
    }
}

fn run_inner(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Fail> {
    let (mut op, mut dev) = (None, Dev::Tape);
    let (mut barcode, mut size, mut media, mut path) = (None, None, None, None);
    let mut thin = false;
    let mut g = GetOpt::new(SPEC, PROG, args);
    for parsed in g.by_ref() {
        let (key, value) = match parsed {
            Ok(p) => p,
            Err(msg) => {
                let _ = writeln!(err, "{msg}");
                return Err(usage_error(err, "unrecognized option"));
            }
        };
        let value = value.unwrap_or_default();
        match key {
            'o' => {
                op = Some(match value.as_str() {
                    "new" => Op::New,
                    "show" => Op::Show,
                    _ => {
                        let _ = writeln!(err, "{PROG}: unknown operation: {value}");
                        return Err(Fail(1));
                    }
                })
            }
            'Y' => {
                dev = match value.as_str() {
                    "tape" => Dev::Tape,
                    "cd" => Dev::Cd,
                    "disk" => Dev::Disk,
                    _ => {
                        let _ = writeln!(err, "{PROG}: unknown target type: {value}");
                        return Err(Fail(EINVAL));
                    }
                }
            }
            'b' => barcode = Some(value),
            's' => size = Some(value),
            't' => media = Some(value),
            'f' => path = Some(value),
            'T' => thin = true,
            'h' => {
                let _ = write!(out, "{}", usage_text());
                return Ok(());
            }
            _ => return Err(usage_error(err, "unrecognized option")),
        }
    }
    if let Some(extra) = g.operands().first() {
        return Err(usage_error(err, &format!("unrecognized option '{extra}'")));
    }
    let Some(op) = op else {
        return Err(usage_error(err, "specify the operation type"));
    };
    let Some(path) = path else {
        return Err(usage_error(err, "specify a newly created file"));
    };
    match (dev, op) {
        (Dev::Tape, Op::New) => {
            let Some(media) = media else {
                return Err(usage_error(err, "Missing media type: WORM, CLEAN or DATA"));
            };
            let Some(cart) = tape_media(&media) else {
                return Err(usage_error(
                    err,
                    "Media type must be WORM, CLEAN or DATA for tape devices",
                ));
            };
            let Some(barcode) = barcode else {
                return Err(usage_error(err, "Missing the barcode param"));
            };
            let Some(size) = size else {
                return Err(usage_error(err, "Missing the capacity param"));
            };
            tape_new(&path, &barcode, &size, cart, out, err)
        }
        (Dev::Tape, Op::Show) => tape_show(&path, out, err),
        (Dev::Cd, Op::New) => {
            let Some(media) = media else {
                return Err(usage_error(err, "Missing media type: DVD+R"));
            };
            if !prefix_ci(&media, "dvd+r") {
                return Err(usage_error(err, "Media type must be DVD+R for cd devices"));
            }
            create(&path, err)?;
            let _ = writeln!(out, "Created blank DVD+R image file : {path}");
            Ok(())
        }
        (Dev::Disk, Op::New) => {
            let Some(media) = media else {
                return Err(usage_error(err, "Missing media type: DISK"));
            };
            if !prefix_ci(&media, "disk") {
                return Err(usage_error(err, "Media type must be DISK for disk devices"));
            }
            let Some(size) = size else {
                return Err(usage_error(err, "Missing the capacity param"));
            };
            let mb = leading_number(&size).unwrap_or(0);
            if mb == 0 {
                let _ = writeln!(out, "Capacity must be > 0");
                return Err(Fail(3));
            }
            let f = create(&path, err)?;
            // A sparse file either way: the allocation is the filesystem's business
            // (tgt preallocates unless --thin-provisioning).
            let _ = thin;
            if let Err(e) = f.set_len(mb.saturating_mul(1 << 20)) {
                let _ = writeln!(err, "Failed to set file size: {e}");
                return Err(Fail(6));
            }
            let _ = writeln!(out, "Created blank DISK image file : {path}");
            Ok(())
        }
        (_, Op::Show) => Err(usage_error(err, "unknown the operation type")),
    }
}

/// tgt compares the first letters only, case-insensitively (`strncasecmp`).
fn prefix_ci(value: &str, word: &str) -> bool {
    value.len() >= word.len() && value[..word.len()].eq_ignore_ascii_case(word)
}

fn tape_media(media: &str) -> Option<Cartridge> {
    if prefix_ci(media, "clean") {
        Some(Cartridge::Cleaning)
    } else if prefix_ci(media, "worm") {
        Some(Cartridge::Worm)
    } else if prefix_ci(media, "data") {
        Some(Cartridge::Data)
    } else {
        None
    }
}

/// The number at the start of `s`, as `sscanf("%lu")` reads it.
fn leading_number(s: &str) -> Option<u64> {
    let t = s.trim_start();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn create(path: &str, err: &mut dyn Write) -> Result<File, Fail> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o660)
        .open(path)
        .map_err(|e| {
            let _ = writeln!(err, "Failed creating file: {e}");
            Fail(2)
        })
}

fn tape_new(
    path: &str,
    barcode: &str,
    size: &str,
    cart: Cartridge,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Fail> {
    let Some(mut mb) = leading_number(size) else {
        return Err(usage_error(
            err,
            "the capacity must be a number of megabytes",
        ));
    };
    // tgt's default when the size reads as 0.
    if mb == 0 {
        mb = 8000;
    }
    let blk_sz = mb as u32 as i32;
    let _ = writeln!(
        out,
        "blk_sz: {blk_sz}, next {}, {}",
        image::FIRST_BLOCK,
        image::FIRST_BLOCK
    );
    let _ = writeln!(
        out,
        "Sizeof(mam): {}, sizeof(h): {}",
        image::MAM_LEN,
        image::HEADER_LEN
    );
    // The command-line tool owns its clock: the creation time goes into the serial.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bytes = image::new_image(barcode, mb, cart, now);
    let mut f = create(path, err)?;
    f.write_all(&bytes).map_err(|e| {
        let _ = writeln!(err, "Unable to write header: {e}");
        Fail(1)
    })
}

fn read_at(f: &mut File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut b = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut b)?;
    Ok(b)
}

fn tape_show(path: &str, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Fail> {
    let mut f = File::open(path).map_err(|e| {
        let _ = writeln!(err, "{PROG}: can't open {path}, {e}");
        Fail(1)
    })?;
    let header = |f: &mut File, at: u64| -> Option<BlockHeader> {
        let b = read_at(f, at, image::HEADER_LEN as usize).ok()?;
        BlockHeader::decode(&b).ok().map(|(h, _)| h)
    };
    let Some(mut h) = header(&mut f, 0) else {
        let _ = writeln!(err, "Could not read blk header");
        return Err(Fail(1));
    };
    let mam = read_at(&mut f, image::HEADER_LEN, image::MAM_LEN as usize)
        .ok()
        .filter(|b| b.len() == image::MAM_LEN as usize);
    let Some(mam) = mam else {
        let _ = writeln!(err, "Could not read MAM");
        return Err(Fail(1));
    };
    let mam = match Mam::decode(&mam) {
        Ok(m) => m,
        Err(image::ImageError::Version(v)) => {
            let _ = writeln!(out, "Unknown media format version {v:x}");
            return Err(Fail(1));
        }
        Err(e) => {
            let _ = writeln!(err, "Could not read MAM: {e}");
            return Err(Fail(1));
        }
    };
    let mut text = String::new();
    text.push_str(&format!("Media     : {}\n", mam.barcode()));
    text.push_str(&format!(" type     : {}\n", mam.cartridge().show_name()));
    let serial = mam.serial();
    text.push_str(&format!("Media serial number : {serial}, "));
    // tgt looks for the last '_' (not at position 0) and reads the seconds after it.
    if let Some(i) = serial.rfind('_').filter(|&i| i > 0) {
        let secs = leading_signed(&serial[i + 1..]);
        text.push_str(&format!("created {}", ctime(secs)));
    }
    text.push('\n');
    text.push_str(&image::show_header(&h));
    text.push('\n');
    // Walk the chain to EOD; a header that cannot be read ends it, as in tgt. A
    // chain that loops is cut after as many steps as the file could hold headers.
    let len = f.metadata().map_or(0, |m| m.len());
    let mut steps = len / image::HEADER_LEN + 1;
    while !h.is_eod() && steps > 0 {
        steps -= 1;
        match header(&mut f, h.next) {
            Some(n) => h = n,
            None => {
                text.push_str("Could not read complete blk header - short read!!\n");
                break;
            }
        }
        text.push_str(&image::show_header(&h));
        text.push('\n');
    }
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// `atoll`: an optional sign and digits, 0 when there are none.
fn leading_signed(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: i64 = digits.parse().unwrap_or(0);
    if neg {
        -n
    } else {
        n
    }
}

/// C's `ctime`: local time as "Thu Dec  3 12:23:53 2026\n".
fn ctime(secs: i64) -> String {
    let t: libc::time_t = secs as libc::time_t;
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: ctime_r writes at most 26 bytes (NUL included) into a buffer of 64,
    // and reads only `t`.
    let p = unsafe { libc::ctime_r(&t, buf.as_mut_ptr()) };
    if p.is_null() {
        return "(null)".to_owned();
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_s(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn new_then_show() {
        let dir = std::env::temp_dir().join(format!("tgtimg-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.img");
        let p = f.to_str().unwrap();
        let (code, out, _) = run_s(&[
            "--op",
            "new",
            "--device-type",
            "tape",
            "--barcode",
            "B1",
            "--size",
            "3",
            "--type",
            "worm",
            "--file",
            p,
        ]);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "blk_sz: 3, next 1152, 1152\nSizeof(mam): 1104, sizeof(h): 48\n"
        );
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 1200);
        let (code, out, _) = run_s(&["--op=show", "--file", p]);
        assert_eq!(code, 0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("Media     : {:<31}", "B1"));
        assert_eq!(lines[1], " type     : WORM");
        assert!(lines[2].starts_with("Media serial number : B1_"));
        assert_eq!(
            lines[4],
            "Beginning of Tape(16): Capacity 3 MB, Blk No.: 0, prev 0, curr 0, next 1152"
        );
        assert_eq!(
            lines[5],
            "      End of Data(32): Blk No. 1, prev 0, curr 1152,  next 1152, sz 0"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn usage_errors() {
        let (code, _, err) = run_s(&["--op", "new", "--type", "data", "--file", "/nonexistent/x"]);
        assert_eq!(code, 22);
        assert!(err.starts_with("tgtimg: Missing the barcode param\n"));
        let (code, _, err) = run_s(&["--op", "new", "--type", "tv", "--file", "x"]);
        assert_eq!(code, 22);
        assert!(err.contains("Media type must be WORM, CLEAN or DATA"));
        let (code, _, err) = run_s(&["--file", "x"]);
        assert_eq!(
            (code, err.lines().next()),
            (22, Some("tgtimg: specify the operation type"))
        );
        let (code, _, _) = run_s(&["--op", "dance", "--file", "x"]);
        assert_eq!(code, 1);
        let (code, _, err) = run_s(&["--op", "show", "--file", "/nonexistent/x"]);
        assert_eq!(code, 1);
        assert!(err.contains("can't open"));
    }
}
