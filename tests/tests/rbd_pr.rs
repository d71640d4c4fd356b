//! Persistent reservations shared by every gateway of an rbd image, on the real
//! one-node Ceph cluster (`integration_tests::ceph`), both daemons:
//!
//! - REGISTER and RESERVE through gateway A are seen by READ KEYS / READ
//!   RESERVATION through gateway B, and enforced there: a WRITE from a nexus that is
//!   not registered gets RESERVATION CONFLICT through B, the holder's WRITE through A
//!   is GOOD;
//! - PREEMPT through B takes the reservation from A's holder, which gets
//!   REGISTRATIONS PREEMPTED and then RESERVATION CONFLICT through A;
//! - with APTPL, the registrations and the reservation are back after every gateway
//!   was stopped and started again (and, as documented, without APTPL too);
//! - libiscsi's reservation suites with the first path on A and the second path
//!   (the second initiator of the two-initiator tests) on B: no failure.
#![allow(clippy::disallowed_methods)]

use integration_tests::ceph::cluster;
use integration_tests::client::{read10, write10, Client, ScsiResult};
use integration_tests::conformance::Conformance;
use integration_tests::{both_flavours, Daemon, Flavour};
use iscsi_proto::Isid;
use std::time::Duration;

const IQN: &str = "iqn.2026-12.test:rbd-pr";
const MIB: u64 = 1024 * 1024;
/// RESERVATION CONFLICT status.
const CONFLICT: u8 = 0x18;
/// CHECK CONDITION status.
const CHECK: u8 = 0x02;

/// A new image for this test and flavour.
fn image(tag: &str, f: Flavour) -> String {
    cluster().create_image(&format!("pr-{tag}-{}", f.binary()), 16 * MIB)
}

/// A daemon (gateway) serving `path` as LUN 1 of target `tid`.
fn gateway(f: Flavour, tid: u32, path: &str) -> Daemon {
    let d = Daemon::start(f, &[]);
    d.new_target(tid, IQN);
    let bsopts = cluster().bsopts();
    let r = d.lu_new(tid, 1, path, &["--bstype", "rbd", "--bsopts", &bsopts]);
    assert_eq!(r.code, 0, "{r:?}");
    d.bind_all(tid);
    d
}

/// A session to `d` from initiator port number `port` (its ISID).
fn nexus(d: &Daemon, port: u8) -> Client {
    let mut c = Client::connect(d.portal).expect("connect");
    c.isid = Isid([0x80, 0, 0x23, 0x45, 0x10, port]);
    assert_eq!(c.login(Some(IQN)).expect("login"), (0, 0));
    c
}

/// PERSISTENT RESERVE OUT.
fn pr_out(c: &mut Client, sa: u8, typ: u8, key: u64, sa_key: u64, aptpl: bool) -> ScsiResult {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    let cdb = [0x5f, sa, typ & 0x0f, 0, 0, 0, 0, 0, 24, 0];
    c.scsi(1, &cdb, &p, 0).expect("PR OUT")
}

/// PERSISTENT RESERVE IN service action `sa`: its parameter data.
fn pr_in(c: &mut Client, sa: u8) -> Vec<u8> {
    let cdb = [0x5e, sa, 0, 0, 0, 0, 0, 0x10, 0, 0];
    let r = c.scsi(1, &cdb, &[], 4096).expect("PR IN");
    assert_eq!(r.status, 0, "PR IN {sa}: {r:?}");
    r.data
}

/// READ KEYS: the registered keys.
fn keys(c: &mut Client) -> Vec<u64> {
    let d = pr_in(c, 0);
    d[8..]
        .chunks_exact(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
        .collect()
}

/// READ RESERVATION: (key, type) of the reservation, if any.
fn reservation(c: &mut Client) -> Option<(u64, u8)> {
    let d = pr_in(c, 1);
    let len = u32::from_be_bytes(d[4..8].try_into().unwrap());
    (len >= 16).then(|| {
        (
            u64::from_be_bytes(d[8..16].try_into().unwrap()),
            d[21] & 0x0f,
        )
    })
}

fn write(c: &mut Client) -> ScsiResult {
    c.scsi(1, &write10(8, 1), &[0x5a; 512], 0).expect("WRITE")
}

fn read(c: &mut Client) -> ScsiResult {
    c.scsi(1, &read10(8, 1), &[], 512).expect("READ")
}

const WRITE_EXCLUSIVE: u8 = 1;
const EXCLUSIVE_ACCESS: u8 = 3;

/// A PR OUT through A is seen and enforced through B; PREEMPT through B is seen and
/// enforced through A.
fn reservations_span_gateways(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = image("span", f);
    let (a, b) = (gateway(f, 1, &path), gateway(f, 7, &path));
    let mut holder = nexus(&a, 1);
    let mut other = nexus(&b, 2);
    let mut stranger = nexus(&b, 3);

    assert_eq!(
        pr_out(&mut holder, 0, 0, 0, 0xa1, false).status,
        0,
        "REGISTER"
    );
    assert_eq!(
        pr_out(&mut holder, 1, WRITE_EXCLUSIVE, 0xa1, 0, false).status,
        0,
        "RESERVE"
    );
    // The state is in the cluster: RADOS object tgtd-pr.<image id> of the pool.
    let oid = format!("tgtd-pr.{}", ceph.image_id(&path));
    let object = ceph.rados(&["-p", "rbd", "get", &oid, "-"]);
    assert_eq!(object.code, 0, "{object:?}");
    assert!(
        object
            .stdout
            .starts_with("tgtd-pr 1\nversion 2\naptpl 0\ngeneration 1\n"),
        "{}",
        object.stdout
    );
    assert!(
        object.stdout.contains(&format!(
            " 00000000000000a1 {}\n",
            integration_tests::client::INITIATOR
        )) && object.stdout.ends_with(" 1\n"),
        "{}",
        object.stdout
    );
    // B shows what A did, at once (A completed only after B had it).
    assert_eq!(keys(&mut other), vec![0xa1]);
    assert_eq!(reservation(&mut other), Some((0xa1, WRITE_EXCLUSIVE)));
    let generation = u32::from_be_bytes(pr_in(&mut other, 0)[0..4].try_into().unwrap());
    assert_eq!(generation, 1, "one REGISTER");
    // And enforces it: writes from others conflict, reads pass (write exclusive).
    assert_eq!(write(&mut stranger).status, CONFLICT);
    assert_eq!(read(&mut stranger).status, 0);
    assert_eq!(write(&mut holder).status, 0, "the holder writes through A");

    // PREEMPT through B takes the reservation and removes A's registration.
    assert_eq!(pr_out(&mut other, 0, 0, 0, 0xb2, false).status, 0);
    assert_eq!(keys(&mut holder), vec![0xa1, 0xb2], "A sees B's REGISTER");
    let r = pr_out(&mut other, 4, WRITE_EXCLUSIVE, 0xb2, 0xa1, false);
    assert_eq!(r.status, 0, "PREEMPT: {r:?}");
    assert_eq!(reservation(&mut other), Some((0xb2, WRITE_EXCLUSIVE)));
    // A's nexus learns it lost its registration, then is refused.
    let r = write(&mut holder);
    assert_eq!(
        (r.status, r.sense_key_asc()),
        (CHECK, Some((6, 0x2a, 0x05))),
        "REGISTRATIONS PREEMPTED"
    );
    assert_eq!(write(&mut holder).status, CONFLICT);
    assert_eq!(keys(&mut holder), vec![0xb2]);
    assert_eq!(reservation(&mut holder), Some((0xb2, WRITE_EXCLUSIVE)));
    assert_eq!(
        write(&mut other).status,
        0,
        "the new holder writes through B"
    );
    // A RESERVE through A by a nexus that is not registered: conflict, decided on
    // the shared state.
    assert_eq!(
        pr_out(&mut holder, 1, WRITE_EXCLUSIVE, 0xa1, 0, false).status,
        CONFLICT
    );
    // RELEASE through B: everyone writes again, on both gateways.
    assert_eq!(
        pr_out(&mut other, 2, WRITE_EXCLUSIVE, 0xb2, 0, false).status,
        0
    );
    assert_eq!(reservation(&mut holder), None);
    assert_eq!(write(&mut stranger).status, 0);
}

/// Every gateway stopped and started again: with APTPL the registrations and the
/// reservation are back; the state is kept in the cluster without APTPL too.
fn aptpl_survives_every_gateway(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = image("aptpl", f);
    {
        let (a, _b) = (gateway(f, 1, &path), gateway(f, 7, &path));
        let mut holder = nexus(&a, 1);
        assert_eq!(pr_out(&mut holder, 0, 0, 0, 0xa1, true).status, 0);
        assert_eq!(
            pr_out(&mut holder, 1, EXCLUSIVE_ACCESS, 0xa1, 0, false).status,
            0
        );
        // Both daemons are stopped (killed) here.
    }
    let (a, b) = (gateway(f, 1, &path), gateway(f, 7, &path));
    let mut other = nexus(&b, 2);
    assert_eq!(keys(&mut other), vec![0xa1]);
    assert_eq!(reservation(&mut other), Some((0xa1, EXCLUSIVE_ACCESS)));
    // REPORT CAPABILITIES: CRH, ATP_C, PTPL_C and PTPL_A.
    assert_eq!(pr_in(&mut other, 2)[2..4], [0x1d, 0x91]);
    assert_eq!(read(&mut other).status, CONFLICT, "exclusive access holds");
    // The same initiator port through A is the holder again.
    let mut holder = nexus(&a, 1);
    assert_eq!(write(&mut holder).status, 0);
    // APTPL off (REGISTER with APTPL=0 by the holder): kept while the cluster keeps
    // the object, i.e. also across a restart of every gateway.
    assert_eq!(pr_out(&mut holder, 0, 0, 0xa1, 0xa1, false).status, 0);
    assert_eq!(pr_in(&mut holder, 2)[3], 0x90, "PTPL_A cleared");
    drop((a, b, holder, other));
    let b = gateway(f, 7, &path);
    let mut other = nexus(&b, 2);
    assert_eq!(reservation(&mut other), Some((0xa1, EXCLUSIVE_ACCESS)));
}

/// A gateway killed (SIGKILL, its watch left behind on the OSD) delays a change
/// through another gateway by the watch timeout at most, and the change is made.
fn a_killed_gateway_does_not_block_changes(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = image("killed", f);
    let (a, b) = (gateway(f, 1, &path), gateway(f, 7, &path));
    let mut holder = nexus(&a, 1);
    assert_eq!(pr_out(&mut holder, 0, 0, 0, 0xa1, false).status, 0);
    b.signal(libc::SIGKILL);
    let started = std::time::Instant::now();
    assert_eq!(
        pr_out(&mut holder, 1, WRITE_EXCLUSIVE, 0xa1, 0, false).status,
        0
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(9), "RESERVE took {took:?}");
    assert_eq!(reservation(&mut holder), Some((0xa1, WRITE_EXCLUSIVE)));
    // The next change does not wait: the dead watch is gone.
    let started = std::time::Instant::now();
    assert_eq!(pr_out(&mut holder, 0, 0, 0xa1, 0xa2, false).status, 0);
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "waited for the dead gateway again: {:?}",
        started.elapsed()
    );
    // A gateway started again finds the state.
    drop(b);
    let b = gateway(f, 7, &path);
    let mut other = nexus(&b, 2);
    assert_eq!(keys(&mut other), vec![0xa2]);
    assert_eq!(write(&mut other).status, CONFLICT);
}

/// A gateway frozen (SIGSTOP) for longer than the watch timeout loses its watch; when
/// it runs again it watches the object again and reads it, so it enforces the change
/// made meanwhile through the other gateway.
fn a_lost_watch_is_made_again(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = image("rewatch", f);
    let (a, b) = (gateway(f, 1, &path), gateway(f, 7, &path));
    let mut holder = nexus(&a, 1);
    let mut other = nexus(&b, 2);
    assert_eq!(keys(&mut other), Vec::<u64>::new());
    b.signal(libc::SIGSTOP);
    assert_eq!(pr_out(&mut holder, 0, 0, 0, 0xa1, false).status, 0);
    assert_eq!(
        pr_out(&mut holder, 1, WRITE_EXCLUSIVE, 0xa1, 0, false).status,
        0
    );
    std::thread::sleep(Duration::from_secs(8));
    b.signal(libc::SIGCONT);
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if write(&mut other).status == CONFLICT {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "gateway B never learned the reservation: keys {:?}",
            keys(&mut other)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(reservation(&mut other), Some((0xa1, WRITE_EXCLUSIVE)));
    // And it gets notifications again: a change through A is enforced through B at
    // once.
    assert_eq!(
        pr_out(&mut holder, 2, WRITE_EXCLUSIVE, 0xa1, 0, false).status,
        0
    );
    assert_eq!(write(&mut other).status, 0);
}

/// libiscsi's reservation suites, the second initiator's session on gateway B.
fn libiscsi_reservations_split_across_gateways(f: Flavour) {
    let ceph = cluster();
    let _use = ceph.shared();
    let path = image("libiscsi", f);
    let (a, b) = (gateway(f, 1, &path), gateway(f, 7, &path));
    let second = format!("iscsi://{}/{IQN}/1", b.portal_str());
    let report = Conformance::new(&a.portal_str(), IQN, 1)
        .patterns(&["SCSI.Prout*", "SCSI.Prin*"])
        .second_path(&second)
        .idle_timeout(Duration::from_secs(240))
        .run();
    report.assert_no_failures();
    eprintln!("{}", report.summary());
    // iscsi-test-cu ran with both paths (A and B) open; its two-initiator tests
    // (ProutReserve's ownership tests) then take their second session from the
    // second path (libiscsi `mpath_sd2_get_or_clone`).
    let reserve_log = std::fs::read_to_string(report.logs.join("SCSI.ProutReserve.log"))
        .expect("ProutReserve log");
    assert!(
        reserve_log.contains("found matching LU device identifier for all (2) paths"),
        "{reserve_log}"
    );
    assert!(
        report.passed().len() >= 10,
        "too few tests passed: {}",
        report.summary()
    );
    if let Some(dir) = report.logs.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The OSD stopped (SIGSTOP): a PERSISTENT RESERVE OUT on an LU with `timeout=3`
/// ends with ABORTED COMMAND / TIMEOUT ON LOGICAL UNIT (3Eh/02h), which initiators
/// retry, instead of waiting for the OSD; after SIGCONT the retried command is GOOD
/// and its change is in.
fn an_osd_outage_ends_a_pr_out_with_a_retryable_sense(f: Flavour) {
    let ceph = cluster();
    let path = {
        let _use = ceph.shared();
        image("osd", f)
    };
    let d = Daemon::start(f, &[]);
    d.new_target(1, IQN);
    let bsopts = format!("{};timeout=3", ceph.bsopts());
    let r = d.lu_new(1, 1, &path, &["--bstype", "rbd", "--bsopts", &bsopts]);
    assert_eq!(r.code, 0, "{r:?}");
    d.bind_all(1);
    let mut c = nexus(&d, 1);
    c.clear_unit_attentions().unwrap();
    assert_eq!(pr_out(&mut c, 0, 0, 0, 0xa1, false).status, 0);

    let _alone = ceph.exclusive();
    ceph.freeze_osd();
    let t0 = std::time::Instant::now();
    let r = pr_out(&mut c, 0, 0, 0xa1, 0xa2, false);
    let took = t0.elapsed();
    ceph.thaw_osd();
    assert_eq!(
        (r.status, r.sense_key_asc()),
        (CHECK, Some((0xb, 0x3e, 0x02))),
        "{r:?}"
    );
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(15),
        "{took:?}"
    );
    // The initiator retries: GOOD once the OSD is back, and the new key is in.
    let until = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = pr_out(&mut c, 0, 0, 0xa1, 0xa2, false);
        if r.status == 0 {
            break;
        }
        assert_eq!(r.sense_key_asc(), Some((0xb, 0x3e, 0x02)), "{r:?}");
        assert!(std::time::Instant::now() < until, "no recovery");
    }
    assert_eq!(keys(&mut c), vec![0xa2]);
}

both_flavours!(
    an_osd_outage_ends_a_pr_out_with_a_retryable_sense,
    reservations_span_gateways,
    aptpl_survives_every_gateway,
    a_killed_gateway_does_not_block_changes,
    a_lost_watch_is_made_again,
    libiscsi_reservations_split_across_gateways
);
