//! The SCSI block device against libiscsi's whole SCSI family (`iscsi-test-cu`
//! 'SCSI.*', with a second session for the MultipathIO tests) on a thin-provisioned
//! 512-byte-block file LUN, a removable one and a read-only one, on both daemons: no
//! test may fail. Plus administration seen from an initiator (unit attentions for
//! LUN changes, offline LUNs) and persistent reservations kept across a restart.
#![allow(clippy::disallowed_methods)]

use integration_tests::client::{Client, ScsiResult, INITIATOR};
use integration_tests::conformance::Conformance;
use integration_tests::{both_flavours, conformance_with, Daemon, Flavour, TempDir};
use std::path::Path;
use std::time::Duration;

const IQN: &str = "iqn.2026-11.test:scsi";
const SIZE: u64 = 128 * 1024 * 1024;

/// Run libiscsi's `patterns` (MULTIPATH=1) on LUN 1 of a 128 MiB file target whose
/// LUN has `--params params`; require no failure and at least `min_passed` passes.
fn conformance(f: Flavour, params: &str, patterns: &[&str], min_passed: u32) {
    let state = TempDir::new("scsi-state");
    let d = Daemon::start(f, &["--state-dir", state.0.to_str().expect("utf-8")]);
    d.setup_file_target(1, IQN, SIZE);
    lu_op(&d, "update", 1, 1, &["--params", params]);
    let passed = conformance_with(&d, IQN, 1, patterns, Conformance::multipath);
    // Fewer means a command regressed into "not implemented" (or a suite now skips).
    assert!(passed >= min_passed, "too few tests passed: {passed}");
}

/// The whole SCSI family on a thin-provisioned LUN: 189 pass today (of 215; the rest
/// skip: no removable medium, no SANITIZE, one logical block per physical).
fn scsi_conformance(f: Flavour) {
    conformance(f, "thin_provisioning=1", &["SCSI.*"], 187);
}

/// 512-byte blocks on 4 KiB physical blocks (`lbppbe=3`, as tgt's param): the WRITE
/// SAME tests that need LBPPB > 1 run (unaligned unmap, data-out size). Not
/// SCSI.CompareAndWrite.InvalidDataOutSize: libiscsi's test patches every PDU that is
/// *not* a SCSI Command (`!= ISCSI_PDU_SCSI_REQUEST`), so the CDB it means to corrupt
/// goes out intact, the COMPARE AND WRITE is valid and MISCOMPARE is the right answer,
/// where it expects ILLEGAL REQUEST.
fn scsi_conformance_4k_physical(f: Flavour) {
    conformance(
        f,
        "thin_provisioning=1,lbppbe=3",
        &["SCSI.WriteSame10.*", "SCSI.WriteSame16.*"],
        16,
    );
}

/// The whole SCSI family on a removable LUN: the eject, PREVENT ALLOW MEDIUM REMOVAL
/// and no-medium tests run too (198 pass today).
fn scsi_conformance_removable(f: Flavour) {
    conformance(f, "thin_provisioning=1,removable=1", &["SCSI.*"], 195);
}

/// A read-only LUN: ReadOnly.ReadOnlySBC (every write refused with DATA PROTECT, WP
/// set in MODE SENSE) and the suites that do not write. The rest of the family writes
/// test data and expects GOOD, which a write-protected LU must refuse.
fn scsi_conformance_readonly(f: Flavour) {
    let suites = [
        "SCSI.ReadOnly*",
        "SCSI.Read1*",
        "SCSI.Read6*",
        "SCSI.ReadCapacity*",
        "SCSI.Inquiry*",
        "SCSI.ModeSense*",
        "SCSI.TestUnitReady*",
        "SCSI.Verify*",
        "SCSI.Prin*",
        "SCSI.ProutRegister*",
        "SCSI.ReportSupportedOpcodes*",
        "SCSI.PreFetch*",
    ];
    conformance(f, "readonly=1", &suites, 60);
}

/// SANITIZE where the administrator offers it (`--params sanitize=1`), erasing at full
/// speed: every Sanitize test but Reset (run on a paced LU below).
fn scsi_conformance_sanitize(f: Flavour) {
    let tests = [
        "SCSI.Sanitize.BlockErase",
        "SCSI.Sanitize.BlockEraseReserved",
        "SCSI.Sanitize.CryptoErase",
        "SCSI.Sanitize.CryptoEraseReserved",
        "SCSI.Sanitize.ExitFailureMode",
        "SCSI.Sanitize.InvalidServiceAction",
        "SCSI.Sanitize.Overwrite",
        "SCSI.Sanitize.OverwriteReserved",
        "SCSI.Sanitize.Readonly",
        "SCSI.Sanitize.Reservations",
    ];
    conformance(f, "thin_provisioning=1,sanitize=1", &tests, 10);
}

/// Sanitize.Reset expects an OVERWRITE (IMMED=0) to still run about five seconds
/// later, through ABORT TASK, ABORT TASK SET, LU reset, warm and cold reset and a new
/// login, and then polls every 60 s until it ends. At full speed the 128 MiB erase
/// ends at once, so the LU caps it at 8 MiB/s (`sanitize_rate`): 16 s. The test is
/// silent through its 60 s poll, so the idle watchdog gets more room.
fn scsi_conformance_sanitize_reset(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, SIZE);
    let params = "thin_provisioning=1,sanitize=1,sanitize_rate=8";
    lu_op(&d, "update", 1, 1, &["--params", params]);
    let passed = conformance_with(&d, IQN, 1, &["SCSI.Sanitize.Reset"], |c| {
        c.multipath().idle_timeout(Duration::from_secs(150))
    });
    assert_eq!(passed, 1);
}

/// `tgtadm --mode logicalunit --op OP --tid TID --lun LUN` plus `extra`.
fn lu_op(d: &Daemon, op: &str, tid: u32, lun: u64, extra: &[&str]) {
    let (tid, lun) = (tid.to_string(), lun.to_string());
    let mut args = vec![
        "--lld",
        "iscsi",
        "--mode",
        "logicalunit",
        "--op",
        op,
        "--tid",
        &tid,
        "--lun",
        &lun,
    ];
    args.extend_from_slice(extra);
    d.tgtadm_ok(&args);
}

/// A sparse backing file of `size` bytes.
fn backing_file(path: &Path, size: u64) -> String {
    let f = std::fs::File::create(path).expect("create backing file");
    f.set_len(size).expect("size backing file");
    path.to_str().expect("utf-8 path").to_string()
}

fn login(d: &Daemon, iqn: &str) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    assert_eq!(c.login(Some(iqn)).expect("login"), (0, 0));
    c
}

fn tur(c: &mut Client, lun: u64) -> ScsiResult {
    c.scsi(lun, &[0; 6], &[], 0).expect("TEST UNIT READY")
}

/// (sense key, ASC, ASCQ) of a CHECK CONDITION, `None` for GOOD.
fn check(r: &ScsiResult) -> Option<(u8, u8, u8)> {
    match r.status {
        0 => None,
        2 => r.sense_key_asc(),
        s => panic!("status {s:#x}"),
    }
}

/// Each new session is a new I_T nexus: its first command other than INQUIRY, REPORT
/// LUNS and REQUEST SENSE gets POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (SAM-5
/// 5.14, as tgt does), once per LUN; a new session after logout hears it again.
fn power_on_unit_attention_per_new_session(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 1 << 20);
    for _ in 0..2 {
        let mut c = Client::connect(d.portal).expect("connect");
        assert_eq!(c.login_only(Some(IQN)).expect("login"), (0, 0));
        let inq = c
            .scsi(1, &[0x12, 0, 0, 0, 36, 0], &[], 36)
            .expect("INQUIRY");
        assert_eq!(inq.status, 0, "INQUIRY does not report unit attentions");
        for lun in [0, 1] {
            assert_eq!(check(&tur(&mut c, lun)), Some((6, 0x29, 0x00)), "LUN {lun}");
            assert_eq!(check(&tur(&mut c, lun)), None, "LUN {lun}: reported once");
        }
        assert!(c.logout().expect("logout"));
    }
}

/// Administration changes reach connected initiators as unit attentions (SPC-4 6.33,
/// SBC-3 4.5), and an offline LUN is NOT READY but still answers INQUIRY.
fn online_changes(f: Flavour) {
    let d = Daemon::start(f, &[]);
    let file = d.setup_file_target(1, IQN, 1 << 20);
    let mut c = login(&d, IQN);
    assert_eq!(check(&tur(&mut c, 1)), None);
    assert_eq!(check(&tur(&mut c, 0)), None);

    let lun2 = backing_file(&d.dir.path("lun-2.img"), 1 << 20);
    lu_op(&d, "new", 1, 2, &["--backing-store", &lun2]);
    for lun in [1, 0] {
        let r = tur(&mut c, lun);
        assert_eq!(
            check(&r),
            Some((6, 0x3f, 0x0e)),
            "LUN {lun}: REPORTED LUNS DATA HAS CHANGED"
        );
        assert_eq!(check(&tur(&mut c, lun)), None, "LUN {lun}: reported once");
    }
    assert_eq!(
        check(&tur(&mut c, 2)),
        Some((6, 0x29, 0x00)),
        "the new LUN was just powered on"
    );
    assert_eq!(check(&tur(&mut c, 2)), None, "LUN 2: reported once");
    assert_eq!(report_luns(&mut c), [0, 1, 2], "the new LUN is listed");

    // Grow the file, then `logicalunit update` re-reads its size.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(2 << 20))
        .expect("grow backing file");
    lu_op(&d, "update", 1, 1, &["--params", "online=1"]);
    assert_eq!(
        check(&tur(&mut c, 1)),
        Some((6, 0x2a, 0x09)),
        "CAPACITY DATA HAS CHANGED"
    );
    assert_eq!(check(&tur(&mut c, 1)), None);
    let cap = c
        .scsi(1, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 8)
        .expect("READ CAPACITY");
    assert_eq!(
        cap.data,
        [0, 0, 0x0f, 0xff, 0, 0, 2, 0],
        "4096 blocks of 512 bytes"
    );

    lu_op(&d, "update", 1, 1, &["--params", "online=0"]);
    assert_eq!(
        check(&tur(&mut c, 1)),
        Some((2, 0x04, 0x03)),
        "offline: NOT READY"
    );
    let read = integration_tests::client::read10(0, 1);
    assert_eq!(
        check(&c.scsi(1, &read, &[], 512).expect("READ")),
        Some((2, 0x04, 0x03))
    );
    let inq = c
        .scsi(1, &[0x12, 0, 0, 0, 36, 0], &[], 36)
        .expect("INQUIRY");
    assert_eq!((inq.status, inq.data.len()), (0, 36));
    lu_op(&d, "update", 1, 1, &["--params", "online=1"]);
    assert_eq!(check(&tur(&mut c, 1)), None);
    lu_op(&d, "delete", 1, 2, &[]);
    assert_eq!(check(&tur(&mut c, 1)), Some((6, 0x3f, 0x0e)));
    assert_eq!(report_luns(&mut c), [0, 1], "the deleted LUN is gone");
}

/// REPORT LUNS (all LUNs) on LUN 0: the LUN numbers listed (single-level, peripheral
/// addressing, as tgt reports them).
fn report_luns(c: &mut Client) -> Vec<u64> {
    let r = c
        .scsi(0, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], &[], 4096)
        .expect("REPORT LUNS");
    assert_eq!(r.status, 0, "{r:?}");
    let len = u32::from_be_bytes(r.data[0..4].try_into().unwrap()) as usize;
    r.data[8..8 + len]
        .chunks(8)
        .map(|e| u64::from(u16::from_be_bytes([e[0], e[1]]) & 0x3fff))
        .collect()
}

/// The NAA designator (DEVICE IDENTIFICATION VPD page, association LU) of `lun`, as
/// an identification CSCD descriptor (E4h, SPC-4 6.4.5.2) for 512-byte blocks.
fn cscd(c: &mut Client, lun: u64) -> Vec<u8> {
    let r = c
        .scsi(lun, &[0x12, 0x01, 0x83, 0x01, 0x00, 0], &[], 256)
        .expect("INQUIRY VPD 83h");
    let mut at = 4;
    while at + 4 <= r.data.len() {
        let len = usize::from(r.data[at + 3]);
        if r.data[at + 1] & 0x3f == 0x03 {
            let mut d = vec![0u8; 32];
            d[0] = 0xe4;
            d[4..8 + len].copy_from_slice(&r.data[at..at + 4 + len]);
            d[5] &= 0x3f; // no PIV or protocol identifier
            d[29..32].copy_from_slice(&[0, 2, 0]);
            return d;
        }
        at += 4 + len;
    }
    panic!("LUN {lun} reports no NAA designator: {:02x?}", r.data);
}

/// EXTENDED COPY sent to LUN 1 with list id `list_id`, held (LIST ID USAGE 00b):
/// parameter list (SPC-4 table 103) with two CSCDs (LUN 1 and LUN 2 by their NAA
/// designators) and one block-to-block segment (table 121) of 8 blocks from LBA 0 of
/// LUN 1 to LBA 16 of LUN 2.
fn copy_8_blocks_lun1_to_lun2(c: &mut Client, list_id: u8) -> ScsiResult {
    let mut seg = vec![0u8; 28];
    seg[0] = 0x02;
    seg[3] = 0x18;
    seg[7] = 1;
    seg[11] = 8;
    seg[27] = 16;
    let mut list = vec![list_id, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 0];
    list.extend(cscd(c, 1));
    list.extend(cscd(c, 2));
    list.extend(seg);
    let mut cdb = [0u8; 16];
    cdb[0] = 0x83;
    cdb[13] = list.len() as u8;
    c.scsi(1, &cdb, &list, 0).expect("EXTENDED COPY")
}

/// EXTENDED COPY of 8 blocks from LUN 1 to LUN 2 of the same target (identification
/// CSCD descriptors naming each by its NAA designator), then RECEIVE COPY RESULTS.
fn extended_copy_between_luns(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 1 << 20);
    let lun2 = backing_file(&d.dir.path("lun-2.img"), 1 << 20);
    lu_op(&d, "new", 1, 2, &["--backing-store", &lun2]);
    let mut c = login(&d, IQN);
    for lun in [1, 2] {
        // Unit attentions first (power on, inventory change), then GOOD.
        let ready = (0..4).any(|_| check(&tur(&mut c, lun)).is_none());
        assert!(ready, "LUN {lun} ready");
    }
    let pattern: Vec<u8> = (0..8 * 512).map(|i| (i % 251) as u8).collect();
    let w = c
        .scsi(1, &integration_tests::client::write10(0, 8), &pattern, 0)
        .expect("WRITE");
    assert_eq!(w.status, 0);
    let r = copy_8_blocks_lun1_to_lun2(&mut c, 7);
    assert_eq!((r.status, check(&r)), (0, None));
    let read = c
        .scsi(2, &integration_tests::client::read10(16, 8), &[], 8 * 512)
        .expect("READ");
    assert!(read.data == pattern, "LUN 2 holds the copied blocks");
    let rcr = [0x84, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0];
    let st = c.scsi(1, &rcr, &[], 12).expect("RECEIVE COPY RESULTS");
    // COPY STATUS (SPC-4 table 182): completed, 1 segment, 4096 bytes.
    assert_eq!(st.data, [0, 0, 0, 8, 1, 0, 1, 0, 0, 0, 0x10, 0]);
}

/// The copy manager reaches the other LUs of a copy as the initiator's own I_T nexus:
/// while another session (another ISID) holds a WRITE EXCLUSIVE reservation of LUN 2,
/// an EXTENDED COPY from LUN 1 to LUN 2 sent to LUN 1 ends in CHECK CONDITION, COPY
/// ABORTED, THIRD PARTY DEVICE FAILURE (0Dh/01h) and writes nothing; the failure is
/// held for RECEIVE COPY RESULTS FAILED SEGMENT DETAILS. The holder's copy runs.
fn extended_copy_refused_by_reservation(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 1 << 20);
    let lun2 = backing_file(&d.dir.path("lun-2.img"), 1 << 20);
    lu_op(&d, "new", 1, 2, &["--backing-store", &lun2]);
    let mut holder = login(&d, IQN);
    let mut other = Client::connect(d.portal).expect("connect");
    other.isid.0[5] = 2;
    assert_eq!(other.login(Some(IQN)).expect("login"), (0, 0));
    for c in [&mut holder, &mut other] {
        for lun in [1, 2] {
            let ready = (0..4).any(|_| check(&tur(c, lun)).is_none());
            assert!(ready, "LUN {lun} ready");
        }
    }
    let pattern: Vec<u8> = (0..8 * 512).map(|i| (i % 251) as u8).collect();
    let w = other
        .scsi(1, &integration_tests::client::write10(0, 8), &pattern, 0)
        .expect("WRITE");
    assert_eq!(w.status, 0);
    // REGISTER key 0xa, then RESERVE WRITE EXCLUSIVE on LUN 2 (SPC-4 6.16).
    let prout2 = |c: &mut Client, sa: u8, typ: u8, key: u64, sa_key: u64| {
        let mut p = vec![0u8; 24];
        p[0..8].copy_from_slice(&key.to_be_bytes());
        p[8..16].copy_from_slice(&sa_key.to_be_bytes());
        let cdb = [0x5f, sa, typ, 0, 0, 0, 0, 0, 24, 0];
        let r = c.scsi(2, &cdb, &p, 0).expect("PERSISTENT RESERVE OUT");
        assert_eq!(r.status, 0, "{r:?}");
    };
    prout2(&mut holder, 0, 0, 0, 0xa);
    prout2(&mut holder, 1, 1, 0xa, 0);
    let r = copy_8_blocks_lun1_to_lun2(&mut other, 9);
    assert_eq!(check(&r), Some((0x0a, 0x0d, 0x01)), "COPY ABORTED");
    let read = other
        .scsi(2, &integration_tests::client::read10(16, 8), &[], 8 * 512)
        .expect("READ");
    assert!(read.data == vec![0; 8 * 512], "LUN 2 unchanged");
    // FAILED SEGMENT DETAILS (SPC-4 table 187): CHECK CONDITION and that sense.
    let rcr = [0x84, 0x04, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0];
    let fsd = other.scsi(1, &rcr, &[], 100).expect("RECEIVE COPY RESULTS");
    assert_eq!(fsd.status, 0);
    assert_eq!((fsd.data[56], fsd.data[62] & 0x0f), (0x02, 0x0a));
    assert_eq!((fsd.data[72], fsd.data[73]), (0x0d, 0x01));
    // The reservation holder may write LUN 2: its copy runs.
    let r = copy_8_blocks_lun1_to_lun2(&mut holder, 9);
    assert_eq!((r.status, check(&r)), (0, None));
    let read = other
        .scsi(2, &integration_tests::client::read10(16, 8), &[], 8 * 512)
        .expect("READ");
    assert!(read.data == pattern, "LUN 2 holds the copied blocks");
}

/// PERSISTENT RESERVE OUT with a 24-byte parameter list.
fn prout(c: &mut Client, sa: u8, typ: u8, key: u64, sa_key: u64, aptpl: bool) -> ScsiResult {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    let cdb = [0x5f, sa, typ, 0, 0, 0, 0, 0, 24, 0];
    c.scsi(1, &cdb, &p, 0).expect("PERSISTENT RESERVE OUT")
}

fn prin(c: &mut Client, sa: u8) -> Vec<u8> {
    let r = c
        .scsi(1, &[0x5e, sa, 0, 0, 0, 0, 0, 0x01, 0, 0], &[], 256)
        .expect("PERSISTENT RESERVE IN");
    assert_eq!(r.status, 0, "{r:?}");
    r.data
}

/// Registrations and the reservation made with APTPL=1 survive a daemon restart on the
/// same backing file, and the same initiator port (name + ISID) holds them again.
fn aptpl_survives_restart(f: Flavour) {
    let dir = TempDir::new("aptpl");
    let state = dir.path("state");
    let state = state.to_str().expect("utf-8");
    let file = backing_file(&dir.path("lun.img"), 1 << 20);
    let setup = |d: &Daemon| {
        for args in [
            vec![
                "--mode",
                "target",
                "--op",
                "new",
                "--tid",
                "1",
                "--targetname",
                IQN,
            ],
            vec![
                "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
            ],
        ] {
            let mut a = vec!["--lld", "iscsi"];
            a.extend(args);
            d.tgtadm_ok(&a);
        }
        lu_op(d, "new", 1, 1, &["--backing-store", &file]);
    };
    let d = Daemon::start(f, &["--state-dir", state]);
    setup(&d);
    let mut c = login(&d, IQN);
    let _ = tur(&mut c, 1);
    // REPORT CAPABILITIES: PTPL_C (SPC-4 table 174).
    assert_eq!(prin(&mut c, 2)[2] & 0x01, 0x01, "PTPL_C");
    assert_eq!(
        prout(&mut c, 0, 0, 0, 0xabc, true).status,
        0,
        "REGISTER APTPL=1"
    );
    assert_eq!(prout(&mut c, 1, 1, 0xabc, 0, false).status, 0, "RESERVE");
    drop(c);
    drop(d);

    let d = Daemon::start(f, &["--state-dir", state]);
    setup(&d);
    let mut c = login(&d, IQN);
    let _ = tur(&mut c, 1);
    let keys = prin(&mut c, 0);
    assert_eq!(&keys[4..8], &[0, 0, 0, 8], "one key");
    assert_eq!(&keys[8..16], &0xabcu64.to_be_bytes());
    let res = prin(&mut c, 1);
    assert_eq!(&res[4..8], &[0, 0, 0, 16], "a reservation");
    assert_eq!(&res[8..16], &0xabcu64.to_be_bytes());
    assert_eq!(res[21] & 0x0f, 1, "WRITE EXCLUSIVE");
    assert_eq!(prin(&mut c, 2)[3] & 0x01, 0x01, "PTPL_A");
    // Still ours after the restart: RELEASE and unregister with our key.
    assert_eq!(prout(&mut c, 2, 1, 0xabc, 0, false).status, 0, "RELEASE");
    assert_eq!(prout(&mut c, 0, 0, 0xabc, 0, false).status, 0, "unregister");
}

/// REGISTER with SPEC_I_PT through one session names another initiator port (the
/// same initiator with another ISID, as a TransportID of format 01b): that port,
/// once it logs in, is registered without registering itself (the daemon keys its
/// nexus exactly as the TransportID says) and may reserve with the key; READ FULL
/// STATUS lists both. A TransportID of format 00b (no ISID) is refused and changes
/// nothing.
fn spec_i_pt_registers_another_initiator_port(f: Flavour) {
    let d = Daemon::start(f, &[]);
    d.setup_file_target(1, IQN, 1 << 20);
    let mut a = login(&d, IQN);
    let _ = tur(&mut a, 1);
    // REPORT CAPABILITIES: SIP_C.
    assert_eq!(prin(&mut a, 2)[2] & 0x08, 0x08, "SIP_C");
    let other_isid = [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a];
    let tid = |format: u8| {
        let text = match format {
            1 => format!("{INITIATOR},i,0x80123456789a"),
            _ => INITIATOR.to_string(),
        };
        let mut t = text.into_bytes();
        t.push(0);
        t.resize(t.len().div_ceil(4) * 4, 0);
        let mut id = vec![(format << 6) | 0x05, 0];
        id.extend_from_slice(&(t.len() as u16).to_be_bytes());
        id.extend_from_slice(&t);
        id
    };
    let register = |c: &mut Client, tid: Vec<u8>| {
        let mut p = vec![0u8; 24];
        p[8..16].copy_from_slice(&0x5151u64.to_be_bytes());
        p[20] = 0x08;
        p.extend_from_slice(&(tid.len() as u32).to_be_bytes());
        p.extend_from_slice(&tid);
        let len = p.len() as u32;
        let mut cdb = vec![0x5f, 0, 0, 0, 0];
        cdb.extend_from_slice(&len.to_be_bytes());
        cdb.push(0);
        c.scsi(1, &cdb, &p, 0).expect("PERSISTENT RESERVE OUT")
    };
    let r = register(&mut a, tid(0));
    assert_eq!(
        check(&r),
        Some((5, 0x26, 0)),
        "format 00b: INVALID FIELD IN PARAMETER LIST"
    );
    assert_eq!(&prin(&mut a, 0)[4..8], &[0, 0, 0, 0], "nothing registered");
    let r = register(&mut a, tid(1));
    assert_eq!(check(&r), None, "{r:?}");
    let keys = prin(&mut a, 0);
    assert_eq!(&keys[4..8], &[0, 0, 0, 16], "two registrations");
    // The named port logs in and reserves with the key, never having registered.
    let mut b = Client::connect(d.portal).expect("connect");
    b.isid = iscsi_proto::Isid(other_isid);
    assert_eq!(b.login(Some(IQN)).expect("login"), (0, 0));
    let _ = tur(&mut b, 1);
    assert_eq!(
        prout(&mut b, 1, 1, 0x5151, 0, false).status,
        0,
        "RESERVE by the named port"
    );
    let res = prin(&mut a, 1);
    assert_eq!(&res[8..16], &0x5151u64.to_be_bytes());
    // A third port of the same initiator is not registered: its RESERVE conflicts.
    let mut c = Client::connect(d.portal).expect("connect");
    c.isid = iscsi_proto::Isid([0x80, 0, 0, 0, 0, 0x33]);
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    let _ = tur(&mut c, 1);
    assert_eq!(
        prout(&mut c, 1, 1, 0x5151, 0, false).status,
        0x18,
        "RESERVATION CONFLICT"
    );
}

both_flavours!(
    power_on_unit_attention_per_new_session,
    scsi_conformance,
    scsi_conformance_removable,
    scsi_conformance_4k_physical,
    scsi_conformance_readonly,
    scsi_conformance_sanitize,
    scsi_conformance_sanitize_reset,
    online_changes,
    extended_copy_between_luns,
    extended_copy_refused_by_reservation,
    aptpl_survives_restart,
    spec_i_pt_registers_another_initiator_port
);
