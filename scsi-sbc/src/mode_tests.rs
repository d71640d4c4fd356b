use crate::test_util::{controller, disk, run_check, run_good, CTX};
use crate::{execute_in, LuState, Plan, Sense};
use bytes::Bytes;

fn sense6(dbd: bool, pc: u8, page: u8, sub: u8, alloc: u8) -> [u8; 6] {
    [
        0x1a,
        if dbd { 0x08 } else { 0 },
        pc << 6 | page,
        sub,
        alloc,
        0,
    ]
}

#[test]
fn mode_sense6_all_pages_in_order() {
    let d = run_good(&disk(), &CTX, &sense6(false, 0, 0x3f, 0, 255));
    // Header (SPC-4 table 452), short block descriptor: 1000 blocks of 512.
    assert_eq!(&d[1..4], &[0, 0x10, 8]);
    assert_eq!(&d[4..12], &[0, 0, 0x03, 0xe8, 0, 0, 0x02, 0x00]);
    assert_eq!(usize::from(d[0]) + 1, d.len());
    let mut pos = 12;
    let mut codes = Vec::new();
    while pos < d.len() {
        codes.push(d[pos]);
        pos += 2 + usize::from(d[pos + 1]);
    }
    assert_eq!(codes, vec![0x01, 0x02, 0x03, 0x04, 0x08, 0x0a, 0x1a, 0x1c]);
}

#[test]
fn caching_and_control_values() {
    let d = run_good(&disk(), &CTX, &sense6(true, 0, 0x08, 0, 255));
    assert_eq!(&d[4..7], &[0x08, 0x12, 0x04]);
    let d = run_good(&disk(), &CTX, &sense6(true, 1, 0x08, 0, 255));
    assert_eq!(&d[4..7], &[0x08, 0x12, 0x05]);
    let d = run_good(&disk(), &CTX, &sense6(true, 1, 0x0a, 0, 255));
    assert_eq!(&d[4..10], &[0x0a, 0x0a, 0x04, 0, 0x08, 0]);
    let d = run_good(&disk(), &CTX, &sense6(true, 0, 0x0a, 0, 255));
    assert_eq!(
        &d[4..],
        &[0x0a, 0x0a, 0, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0]
    );
}

#[test]
fn unknown_page_or_subpage() {
    // Field pointer: PAGE CODE (byte 2) for an unknown page, SUBPAGE CODE (byte 3)
    // for a known page's unknown subpage.
    for (page, sub, byte, bit) in [
        (0x05, 0, 2, 5),
        (0x1d, 0, 2, 5),
        (0x08, 1, 3, 7),
        (0x3f, 1, 3, 7),
    ] {
        let s = run_check(&disk(), &CTX, &sense6(false, 0, page, sub, 255));
        assert_eq!(
            s,
            Sense::invalid_cdb_field(byte, bit),
            "page {page:#x}/{sub:#x}"
        );
    }
}

#[test]
fn controller_rejects_mode_sense() {
    let s = run_check(&controller(), &CTX, &sense6(false, 0, 0x3f, 0, 255));
    assert_eq!(s, Sense::invalid_opcode());
}

#[test]
fn mode_select_changes_wce_and_swp() {
    let lu = disk();
    let mut st = LuState::settled(&[1, 2, 3]);
    let mut other = CTX;
    other.nexus.id = 2;
    // Nexus 2 is known, so it gets MODE PARAMETERS CHANGED.
    execute_in(&[0, 0, 0, 0, 0, 0], &lu, &other, &mut st, Bytes::new());
    // Caching page with WCE=0, RCD=1.
    let mut p = vec![0, 0, 0, 0, 0x08, 0x12, 0x01];
    p.resize(4 + 20, 0);
    let cdb = [0x15, 0x10, 0, 0, p.len() as u8, 0];
    let r = execute_in(&cdb, &lu, &CTX, &mut st, Bytes::from(p.clone()));
    assert!(matches!(r, Plan::Done(ref o) if o.sense.is_none()), "{r:?}");
    assert_eq!(st.mode.wce, Some(false));
    assert!(st.mode.rcd);
    assert_eq!(st.saved, Default::default());
    assert!(st.ua.has(2));
    assert!(!st.ua.has(1));
    // A change to a bit that is not changeable: the field pointer names byte 6
    // (page byte 2), bit 6 of the parameter data.
    p[6] = 0x41;
    let r = execute_in(&cdb, &lu, &CTX, &mut st, Bytes::from(p.clone()));
    let param = |byte, bit| {
        Sense::illegal_request(crate::asc::INVALID_FIELD_IN_PARAMETER_LIST)
            .at(crate::FieldPointer::param_bit(byte, bit))
    };
    match r {
        Plan::Done(o) => assert_eq!(o.sense, Some(param(6, 6))),
        other => panic!("{other:?}"),
    }
    // An unknown page code: pointer at its byte, no bit.
    p[4] = 0x05;
    let r = execute_in(&cdb, &lu, &CTX, &mut st, Bytes::from(p));
    match r {
        Plan::Done(o) => assert_eq!(
            o.sense.and_then(|s| s.field),
            Some(crate::FieldPointer::param(4))
        ),
        other => panic!("{other:?}"),
    }
    // Control page SWP=1 with SP=1: writes are refused.
    let mut c = vec![
        0, 0, 0, 0, 0x0a, 0x0a, 0, 0x10, 0x08, 0, 0, 0, 0xff, 0xff, 0, 0,
    ];
    c.truncate(16);
    let cdb = [0x15, 0x11, 0, 0, 16, 0];
    execute_in(&cdb, &lu, &CTX, &mut st, Bytes::from(c));
    assert!(st.mode.swp && st.saved.swp);
    let w = [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    match execute_in(&w, &lu, &CTX, &mut st, Bytes::from(vec![0; 512])) {
        Plan::Done(o) => assert_eq!(o.sense.map(|s| (s.asc, s.ascq)), Some((0x27, 0x02))),
        other => panic!("{other:?}"),
    }
}
