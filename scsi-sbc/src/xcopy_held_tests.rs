//! The copy manager's access to the other LUs of a copy (reservations, write
//! protection) and its held results (COPY STATUS, FAILED SEGMENT DETAILS per list id).
use super::*;
use crate::pr::{Holder, Registration, EXCLUSIVE_ACCESS, WRITE_EXCLUSIVE};

const PEER: &str = "IET     00010002";
/// Another I_T nexus than CTX's (1).
const OTHER: u64 = 7;

fn peer_lu() -> LuConfig {
    let mut other = disk();
    other.identity.scsi_id = PEER.into();
    other
}

/// RECEIVE COPY RESULTS with service action `sa` for `list_id` (SPC-4 table 179).
fn rcr(sa: u8, list_id: u8, alloc_len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x84;
    c[1] = sa;
    c[2] = list_id;
    c[10..14].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

/// Run RECEIVE COPY RESULTS from CTX's nexus; GOOD expected, its data returned.
fn results(st: &mut LuState, sa: u8, list_id: u8, alloc_len: u32) -> Vec<u8> {
    let cdb = rcr(sa, list_id, alloc_len);
    match execute_in(&cdb, &disk(), &CTX, st, Bytes::new()) {
        Plan::Done(o) if o.status == ScsiStatus::Good => o.data.to_vec(),
        other => panic!("RECEIVE COPY RESULTS {sa}: {other:?}"),
    }
}

/// `other` (nexus OTHER) registered with key 0xabc and holding a reservation of `typ`.
fn reserved_by_other(typ: u8) -> LuState {
    let mut st = LuState::settled(&[1, OTHER]);
    st.res.registrations.push(Registration {
        nexus: OTHER,
        initiator: "iqn.2001-04.com.example:other".into(),
        key: 0xabc,
        port: 0,
    });
    st.res.holder = Some(Holder { nexus: OTHER, typ });
    st
}

/// Plan a held copy (list id `id`) of 2 blocks between CTX's LU (CSCD 0) and the peer
/// (CSCD 1), `to_peer` or from it.
fn plan_with_peer(st: &mut LuState, id: u8, to_peer: bool) -> BlockOp {
    let other = peer_lu();
    let peers = [(2u64, &other)];
    let ctx = LuContext {
        peers: &peers,
        alua: None,
        ..CTX
    };
    let seg = if to_peer {
        b2b(0, 1, 2, 5, 8)
    } else {
        b2b(1, 0, 2, 8, 5)
    };
    let d = list_id(id, 0, &[cscd(ME), cscd(PEER)], &[seg]);
    match run(&ctx, st, &d) {
        Plan::Io(op) => op,
        other => panic!("{other:?}"),
    }
}

fn key_asc(s: Sense) -> (SenseKey, u8, u8) {
    (s.key, s.asc, s.ascq)
}

#[test]
fn reservation_on_the_destination_held_by_another_nexus_refuses_the_copy() {
    let mut st = LuState::settled(&[1]);
    let op = plan_with_peer(&mut st, 3, true);
    let other = peer_lu();
    // Write Exclusive held by another nexus: the copy manager may not write LUN 2
    // for nexus 1, so the target runs nothing (nothing is written).
    let peer = reserved_by_other(WRITE_EXCLUSIVE);
    let refused = check_copy_target(&op, 2, &other, &peer, CTX.nexus.id).unwrap_err();
    assert_eq!(
        key_asc(refused),
        (SenseKey::CopyAborted, 0x0d, 0x01),
        "THIRD PARTY DEVICE FAILURE"
    );
    let o = copy_refused(&disk(), CTX.nexus.id, &mut st, &op, refused);
    assert_eq!(o.status, ScsiStatus::CheckCondition);
    assert_eq!(o.sense, Some(refused));
    // The held status says so, with no bytes copied.
    let status = results(&mut st, 0x00, 3, 12);
    assert_eq!(status, [0, 0, 0, 8, 2, 0, 1, 0, 0, 0, 0, 0]);
    // An SPC-2 RESERVE by another nexus too; our own reservation does not conflict.
    let mut spc2 = LuState::settled(&[1, OTHER]);
    spc2.res.spc2 = Some(OTHER);
    assert!(check_copy_target(&op, 2, &other, &spc2, CTX.nexus.id).is_err());
    let mut own = reserved_by_other(WRITE_EXCLUSIVE);
    own.res.holder = Some(Holder {
        nexus: CTX.nexus.id,
        typ: WRITE_EXCLUSIVE,
    });
    assert_eq!(
        check_copy_target(&op, 2, &other, &own, CTX.nexus.id),
        Ok(())
    );
    // The copy does not touch LUN 3, whatever its state.
    assert_eq!(
        check_copy_target(&op, 3, &other, &peer, CTX.nexus.id),
        Ok(())
    );
}

#[test]
fn reservation_on_the_source_held_by_another_nexus_refuses_reads_only_if_exclusive() {
    let mut st = LuState::settled(&[1]);
    let op = plan_with_peer(&mut st, 4, false);
    let other = peer_lu();
    // Write Exclusive lets every nexus read the source (SPC-4 table 66).
    let peer = reserved_by_other(WRITE_EXCLUSIVE);
    assert_eq!(
        check_copy_target(&op, 2, &other, &peer, CTX.nexus.id),
        Ok(())
    );
    // Exclusive Access does not.
    let peer = reserved_by_other(EXCLUSIVE_ACCESS);
    let refused = check_copy_target(&op, 2, &other, &peer, CTX.nexus.id).unwrap_err();
    assert_eq!(key_asc(refused), (SenseKey::CopyAborted, 0x0d, 0x01));
    let o = copy_refused(&disk(), CTX.nexus.id, &mut st, &op, refused);
    assert_eq!(
        o.sense.map(key_asc),
        Some((SenseKey::CopyAborted, 0x0d, 0x01))
    );
    // An offline source cannot be reached at all.
    let offline = LuState {
        offline: true,
        ..LuState::settled(&[1])
    };
    let refused = check_copy_target(&op, 2, &other, &offline, CTX.nexus.id).unwrap_err();
    assert_eq!(key_asc(refused), (SenseKey::CopyAborted, 0x0d, 0x02));
}

#[test]
fn software_write_protected_destination_refuses_the_copy() {
    let mut st = LuState::settled(&[1]);
    let other = peer_lu();
    let mut swp = LuState::settled(&[1]);
    swp.mode.swp = true;
    // As a destination: DATA PROTECT, LOGICAL UNIT SOFTWARE WRITE PROTECTED, the
    // answer the LU gives the nexus's own WRITE.
    let op = plan_with_peer(&mut st, 5, true);
    let refused = check_copy_target(&op, 2, &other, &swp, CTX.nexus.id).unwrap_err();
    assert_eq!(key_asc(refused), (SenseKey::DataProtect, 0x27, 0x02));
    // Not an aborted copy: no failed segment details are held for it.
    let _ = copy_refused(&disk(), CTX.nexus.id, &mut st, &op, refused);
    assert_eq!(results(&mut st, 0x04, 5, 100), [0, 0, 0, 0]);
    // As the source only, it may be read.
    let op = plan_with_peer(&mut st, 6, false);
    assert_eq!(
        check_copy_target(&op, 2, &other, &swp, CTX.nexus.id),
        Ok(())
    );
    // The addressed LU software write protected as the destination: refused up front.
    let mut me = LuState::settled(&[1]);
    me.mode.swp = true;
    let d = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 996)]);
    assert_eq!(
        sense_of(run(&CTX, &mut me, &d)),
        (SenseKey::DataProtect, 0x27, 0x02)
    );
}

#[test]
fn failed_segment_details_of_a_failed_copy_then_none() {
    let mut st = LuState::settled(&[1]);
    let d = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 8)]);
    let Plan::Io(op) = run(&CTX, &mut st, &d) else {
        panic!("expected a copy");
    };
    // In progress: nothing failed (yet).
    assert_eq!(results(&mut st, 0x04, 1, 100), [0, 0, 0, 0]);
    let lu = disk();
    let failed = Err(IoErrorKind::WriteError);
    let o = complete_in(&[0x83], &lu, CTX.nexus.id, &mut st, &op, failed);
    assert_eq!(o.status, ScsiStatus::CheckCondition);
    // SPC-4 table 187: AVAILABLE DATA, COPY COMMAND STATUS (CHECK CONDITION) at byte
    // 56, SENSE DATA LENGTH at 58, then the sense the copy ended with (fixed format:
    // COPY ABORTED, WRITE ERROR).
    let full = results(&mut st, 0x04, 1, 1024);
    assert_eq!(full.len(), 60 + 18);
    assert_eq!(&full[..4], &[0, 0, 0, 74]);
    assert_eq!(full[56], 0x02);
    assert_eq!(&full[58..60], &[0, 18]);
    assert_eq!((full[60], full[62], full[72]), (0x70, 0x0a, 0x0c));
    // Sent whole: discarded. The copy status is still held, once.
    assert_eq!(results(&mut st, 0x04, 1, 1024), [0, 0, 0, 0]);
    assert_eq!(results(&mut st, 0x00, 1, 12)[4], COMPLETED_WITH_ERRORS);
    assert!(st.copies.is_empty());
}

#[test]
fn failed_segment_details_survive_a_short_read_and_go_with_allocation_length_zero() {
    let mut st = LuState::settled(&[1]);
    // Past the end of the LU: the segment aborts the copy before any I/O, and that
    // failure is held too.
    let d = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 999)]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::CopyAborted, 0, 0)
    );
    // Cut short by the allocation length: AVAILABLE DATA unchanged, details kept.
    assert_eq!(results(&mut st, 0x04, 1, 8), [0, 0, 0, 74, 0, 0, 0, 0]);
    // COPY STATUS first this time: reported, the details stay.
    assert_eq!(results(&mut st, 0x00, 1, 12)[4], COMPLETED_WITH_ERRORS);
    assert_eq!(results(&mut st, 0x04, 1, 100)[56], 0x02);
    // ALLOCATION LENGTH 0 discards them (SPC-4 6.18.4), and with them the copy.
    assert!(results(&mut st, 0x04, 1, 0).is_empty());
    assert!(st.copies.is_empty());
    // A copy that is not held (or unknown list id): no details.
    assert_eq!(results(&mut st, 0x04, 9, 100), [0, 0, 0, 0]);
}

#[test]
fn descriptor_format_failed_segment_details_follow_d_sense() {
    let mut st = LuState::settled(&[1]);
    st.mode.d_sense = Some(true);
    let d = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 999)]);
    let _ = run(&CTX, &mut st, &d);
    let full = results(&mut st, 0x04, 1, 100);
    assert_eq!((full[60], full[61]), (0x72, 0x0a));
}

#[test]
fn results_are_held_per_list_id_up_to_the_reported_limit() {
    let mut st = LuState::settled(&[1]);
    let lu = disk();
    // List id 1 finishes; list id 2 fails; both are held for the nexus.
    for (id, result) in [(1u8, Ok(Bytes::new())), (2, Err(IoErrorKind::ReadError))] {
        let d = list_id(id, 0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 8)]);
        let Plan::Io(op) = run(&CTX, &mut st, &d) else {
            panic!("expected a copy");
        };
        let _ = complete_in(&[0x83], &lu, CTX.nexus.id, &mut st, &op, result);
    }
    assert_eq!(results(&mut st, 0x04, 1, 100), [0, 0, 0, 0]);
    assert_eq!(
        results(&mut st, 0x04, 2, 100)[72],
        0x11,
        "UNRECOVERED READ ERROR"
    );
    assert_eq!(results(&mut st, 0x00, 2, 12)[4], COMPLETED_WITH_ERRORS);
    assert_eq!(results(&mut st, 0x00, 1, 12)[4], COMPLETED);
    assert!(st.copies.is_empty());
    // Another nexus's list ids are its own.
    let d = list_id(1, 0, &[cscd(ME)], &[b2b(0, 0, 0, 0, 8)]);
    let _ = run(&CTX, &mut st, &d);
    let other = LuContext {
        nexus: crate::lu::Nexus {
            id: OTHER,
            initiator_port: OTHER,
            initiator: "iqn.2001-04.com.example:other",
        },
        ..CTX
    };
    st.ua.see(OTHER);
    while st.ua.take(OTHER).is_some() {}
    let cdb = rcr(0x00, 1, 12);
    let p = execute_in(&cdb, &lu, &other, &mut st, Bytes::new());
    assert_eq!(sense_of(p), (SenseKey::IllegalRequest, 0x24, 0x00));
    // At most MAX_HELD_COPIES: the oldest finished result makes room.
    for id in 2..=(MAX_HELD_COPIES as u8 + 1) {
        let d = list_id(id, 0, &[cscd(ME)], &[b2b(0, 0, 0, 0, 8)]);
        let _ = run(&CTX, &mut st, &d);
    }
    assert_eq!(st.copies[&CTX.nexus.id].len(), MAX_HELD_COPIES);
    let cdb = rcr(0x00, 1, 12);
    let p = execute_in(&cdb, &lu, &CTX, &mut st, Bytes::new());
    assert_eq!(
        sense_of(p),
        (SenseKey::IllegalRequest, 0x24, 0x00),
        "evicted"
    );
    let last = MAX_HELD_COPIES as u8 + 1;
    assert_eq!(results(&mut st, 0x00, last, 12)[4], COMPLETED);
    // The same list id again replaces its held result.
    let d = list_id(2, 0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 8)]);
    let _ = run(&CTX, &mut st, &d);
    let held = &st.copies[&CTX.nexus.id];
    assert_eq!(held.iter().filter(|c| c.list_id == 2).count(), 1);
    assert_eq!(held.last().map(|c| c.status), Some(IN_PROGRESS));
}

/// Two held copies of one nexus run at once and finish in the other order: each
/// completion updates its own list id (the operation carries it).
#[test]
fn concurrent_held_copies_complete_out_of_order() {
    let mut st = LuState::settled(&[1]);
    let plan = |st: &mut LuState, id| {
        let d = list_id(id, 0, &[cscd(ME)], &[b2b(0, 0, 1, 0, 8)]);
        match run(&CTX, st, &d) {
            Plan::Io(op) => op,
            other => panic!("{other:?}"),
        }
    };
    let first = plan(&mut st, 5);
    let second = plan(&mut st, 6);
    let lu = disk();
    let failed = Err(IoErrorKind::WriteError);
    complete_in(&[0x83], &lu, CTX.nexus.id, &mut st, &second, failed);
    assert_eq!(
        results(&mut st, 0x00, 5, 12)[4],
        IN_PROGRESS,
        "5 still runs"
    );
    complete_in(
        &[0x83],
        &lu,
        CTX.nexus.id,
        &mut st,
        &first,
        Ok(Bytes::new()),
    );
    assert_eq!(results(&mut st, 0x00, 5, 12)[4], COMPLETED);
    assert_eq!(results(&mut st, 0x00, 6, 12)[4], COMPLETED_WITH_ERRORS);
}
