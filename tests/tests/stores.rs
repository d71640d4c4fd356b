//! Backing stores through the daemons: tgt's `--bsoflags sync|direct` really open
//! the file with O_SYNC / O_DIRECT (read back from /proc/PID/fdinfo), block devices
//! (loop devices) are served and owned exclusively, libiscsi's data suites pass on
//! each, and a backing store that cannot be used gets tgt's "invalid request" with the
//! reason while the daemon stays as it was.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{write10, Client};
use integration_tests::conformance::Conformance;
use integration_tests::{both_flavours, conformance_with, Daemon, Flavour, LoopDev};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const IQN: &str = "iqn.2026-11.test:stores";
const SIZE: u64 = 64 * 1024 * 1024;

/// libiscsi's data-path suites, as the backing-store issue lists them.
const DATA_SUITES: &[&str] = &[
    "SCSI.Read*",
    "SCSI.Write*",
    "SCSI.Unmap*",
    "SCSI.WriteSame*",
    "SCSI.CompareAndWrite*",
    "SCSI.Verify*",
];

fn lu_new(d: &Daemon, lun: u32, store: &str, extra: &[&str]) -> integration_tests::Run {
    d.lu_new(1, lun, store, extra)
}

/// `--params` are set by `update` (tgt refuses them on `new`).
fn thin(d: &Daemon, lun: u32) {
    let r = d.lu_update(1, lun, "thin_provisioning=1");
    assert_eq!(r.code, 0, "{r:?}");
}

fn target(d: &Daemon) {
    d.new_target(1, IQN);
    d.tgtadm_ok(&[
        "--lld", "iscsi", "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
}

fn sparse_file(d: &Daemon, name: &str, size: u64) -> PathBuf {
    d.sparse_file(name, size)
}

/// The open flags (octal, as fdinfo prints them) of the daemon's descriptor for `path`.
fn open_flags(d: &Daemon, path: &Path) -> u32 {
    let fds = PathBuf::from(format!("/proc/{}/fd", d.pid()));
    for entry in std::fs::read_dir(&fds).expect("/proc/PID/fd") {
        let fd = entry.expect("fd").path();
        if std::fs::read_link(&fd).ok().as_deref() == Some(path) {
            let n = fd.file_name().unwrap().to_string_lossy().into_owned();
            let info =
                std::fs::read_to_string(format!("/proc/{}/fdinfo/{n}", d.pid())).expect("fdinfo");
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .expect("flags line")
                .trim();
            return u32::from_str_radix(flags, 8).expect("octal flags");
        }
    }
    panic!(
        "{} has no descriptor for {}",
        d.flavour.binary(),
        path.display()
    );
}

const O_DIRECT: u32 = libc::O_DIRECT as u32;
const O_SYNC: u32 = libc::O_SYNC as u32;

/// `--bsoflags` reach the open(2) of the backing file, `--op show` prints them as tgt
/// does, and the data suites pass on an O_SYNC|O_DIRECT LU.
fn open_flags_apply(f: Flavour) {
    let d = Daemon::start(f, &[]);
    target(&d);
    let plain = sparse_file(&d, "plain.img", SIZE);
    let sync = sparse_file(&d, "sync.img", SIZE);
    let both = sparse_file(&d, "both.img", SIZE);
    for (lun, file, flags) in [
        (1, &plain, ""),
        (2, &sync, "sync"),
        (3, &both, "sync:direct"),
    ] {
        let mut extra = vec![];
        if !flags.is_empty() {
            extra.extend(["--bsoflags", flags]);
        }
        let r = lu_new(&d, lun, file.to_str().unwrap(), &extra);
        assert_eq!(r.code, 0, "{r:?}");
        thin(&d, lun);
    }
    let got = |p: &Path| open_flags(&d, p) & (O_DIRECT | O_SYNC);
    assert_eq!(got(&plain), 0);
    assert_eq!(got(&sync), O_SYNC);
    assert_eq!(got(&both), O_SYNC | O_DIRECT);
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    let flags_lines: Vec<&str> = show
        .lines()
        .filter(|l| l.trim_start().starts_with("Backing store flags:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        flags_lines,
        [
            "Backing store flags:",
            "Backing store flags:",
            "Backing store flags: sync",
            "Backing store flags: sync:direct"
        ],
        "{show}"
    );
    conformance_with(&d, IQN, 3, DATA_SUITES, Conformance::multipath);
}

/// A loop device as the backing store: its size, the data suites, and O_EXCL (a
/// second LU on the same device is refused with the reason).
fn block_device_store(f: Flavour) {
    let d = Daemon::start(f, &[]);
    target(&d);
    let file = sparse_file(&d, "loop.img", SIZE);
    let dev = LoopDev::attach(&file);
    let r = lu_new(&d, 1, &dev.0, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    thin(&d, 1);
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(show.contains("Size: 67 MB, Block size: 512"), "{show}");
    let again = lu_new(&d, 2, &dev.0, &[]);
    assert_eq!(again.code, 22, "{again:?}");
    assert!(
        again.stderr.contains("invalid request") && again.stderr.contains("in use"),
        "{again:?}"
    );
    conformance_with(&d, IQN, 1, DATA_SUITES, Conformance::multipath);
    // A write through iSCSI, made durable by SYNCHRONIZE CACHE, is in the file
    // underneath the device.
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
    let r = c.scsi(1, &write10(4242, 128), &data, 0).expect("write");
    assert_eq!(r.status, 0, "{r:?}");
    let sync = [0x35u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(c.scsi(1, &sync, &[], 0).expect("sync").status, 0);
    let mut on_disk = vec![0u8; data.len()];
    std::fs::File::open(&file)
        .expect("file")
        .read_exact_at(&mut on_disk, 4242 * 512)
        .expect("read file");
    assert!(
        on_disk == data,
        "the write is not in the file under the device"
    );
}

/// The descriptors of the daemon that are io_uring instances.
fn io_urings(d: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .expect("/proc/PID/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("io_uring"))
        .count()
}

/// `--bstype aio`: one io_uring per event loop, the LU shown as `aio`, and the data
/// suites pass with reads, writes and flushes on the ring (plain and O_DIRECT).
fn aio_store(f: Flavour) {
    let d = Daemon::start(f, &["--threads", "2"]);
    target(&d);
    let plain = sparse_file(&d, "aio.img", SIZE);
    let direct = sparse_file(&d, "aio-direct.img", SIZE);
    let r = lu_new(&d, 1, plain.to_str().unwrap(), &["--bstype", "aio"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = lu_new(
        &d,
        2,
        direct.to_str().unwrap(),
        &["--bstype", "aio", "--bsoflags", "direct"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    thin(&d, 1);
    thin(&d, 2);
    assert_eq!(io_urings(&d), 2, "one ring per event loop");
    assert_eq!(open_flags(&d, &direct) & O_DIRECT, O_DIRECT);
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    let types: Vec<&str> = show
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Backing store type:"))
        .collect();
    assert_eq!(
        types,
        [
            "Backing store type: null",
            "Backing store type: aio",
            "Backing store type: aio"
        ],
        "{show}"
    );
    let sys = d.tgtadm_ok(&["--mode", "system", "--op", "show"]);
    assert!(sys.contains("    aio (bsoflags sync:direct)\n"), "{sys}");
    conformance_with(&d, IQN, 1, DATA_SUITES, Conformance::multipath);
    conformance_with(&d, IQN, 2, DATA_SUITES, Conformance::multipath);
}

/// Where io_uring cannot be used, `aio` runs on the thread pool and `--op show` says
/// why: never a silent alias.
fn aio_fallback(f: Flavour) {
    let d = Daemon::start_with_env(f, &[], &[("TGTD_NO_IO_URING", "1")]);
    target(&d);
    let file = sparse_file(&d, "aio.img", SIZE);
    let r = lu_new(&d, 1, file.to_str().unwrap(), &["--bstype", "aio"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(io_urings(&d), 0);
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(
        show.contains(
            "Backing store type: aio (thread pool: io_uring unavailable: disabled by TGTD_NO_IO_URING)\n"
        ),
        "{show}"
    );
    conformance_with(
        &d,
        IQN,
        1,
        &["SCSI.Read10", "SCSI.Write10", "SCSI.CompareAndWrite"],
        |c| c,
    );
}

/// The daemon's threads whose name starts with `prefix`.
fn threads_named(d: &Daemon, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .expect("/proc/PID/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// `--bsopts nr_threads=N`: the LU gets N I/O threads of its own (tgt gives each LU
/// its own), its I/O runs there, `--op show` shows the option, and deleting the LU
/// ends them. A bad count is refused with the reason.
fn lu_threads_of_its_own(f: Flavour) {
    let d = Daemon::start(f, &[]);
    target(&d);
    let file = sparse_file(&d, "own.img", SIZE);
    let bad = lu_new(&d, 1, file.to_str().unwrap(), &["--bsopts", "nr_threads=0"]);
    assert_eq!(bad.code, 22, "{bad:?}");
    assert!(
        bad.stderr
            .contains("nr_threads must be a number from 1 to 128"),
        "{bad:?}"
    );
    assert_eq!(threads_named(&d, "tgtd-lu-io"), 0);
    let r = lu_new(&d, 1, file.to_str().unwrap(), &["--bsopts", "nr_threads=3"]);
    assert_eq!(r.code, 0, "{r:?}");
    // A thread names itself once it runs: give them a moment.
    let start = std::time::Instant::now();
    while threads_named(&d, "tgtd-lu-io") < 3 && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(threads_named(&d, "tgtd-lu-io"), 3);
    let show = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(
        show.contains("Backing store options: nr_threads=3\n"),
        "{show}"
    );
    conformance_with(&d, IQN, 1, &["SCSI.Read10", "SCSI.Write10"], |c| c);
    d.tgtadm_ok(&[
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
    let start = std::time::Instant::now();
    while threads_named(&d, "tgtd-lu-io") != 0 && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        threads_named(&d, "tgtd-lu-io"),
        0,
        "the LU's threads ended with it"
    );
}

/// Backing stores that cannot serve: tgt's exit status and "invalid request", our
/// reason after it, and the daemon unchanged.
fn unusable_stores_are_refused(f: Flavour) {
    let d = Daemon::start(f, &[]);
    target(&d);
    let good = sparse_file(&d, "good.img", SIZE);
    let empty = sparse_file(&d, "empty.img", 0);
    let missing = d.dir.path("missing.img");
    let good_s = good.to_str().unwrap();
    let before = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            missing.to_str().unwrap().into(),
            vec![],
            "No such file or directory",
        ),
        (
            d.dir.0.to_str().unwrap().into(),
            vec![],
            "neither a regular file",
        ),
        (empty.to_str().unwrap().into(), vec![], "is empty"),
        (
            good_s.into(),
            vec!["--bstype", "nosuch"],
            "unknown backing store type",
        ),
        (
            good_s.into(),
            vec!["--bsoflags", "fast"],
            "unsupported --bsoflags",
        ),
        (
            good_s.into(),
            vec!["--bsoflags", "sync:fast"],
            "unsupported --bsoflags",
        ),
        (
            good_s.into(),
            vec!["--bsopts", "threads=4"],
            "takes no options",
        ),
        (
            "64M".into(),
            vec!["--bstype", "memory", "--bsoflags", "direct"],
            "unsupported --bsoflags",
        ),
    ];
    for (store, extra, why) in &cases {
        let r = lu_new(&d, 1, store, extra);
        assert_eq!(r.code, 22, "{store} {extra:?}: {r:?}");
        assert!(
            r.stderr.starts_with("tgtadm: invalid request") && r.stderr.contains(why),
            "{store} {extra:?}: {r:?}"
        );
    }
    let after = d.tgtadm_ok(&["--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert_eq!(before, after);
    // And the same LUN number is still free for a good store.
    let ok = lu_new(&d, 1, good_s, &[]);
    assert_eq!(ok.code, 0, "{ok:?}");
}

both_flavours!(
    lu_threads_of_its_own,
    aio_store,
    aio_fallback,
    open_flags_apply,
    block_device_store,
    unusable_stores_are_refused
);
