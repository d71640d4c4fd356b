//! The reservation state machine as a table of (state, action, nexus) → result.

use super::*;

const A: u64 = 1;
const B: u64 = 2;
const C: u64 = 3;

fn nexus(id: u64) -> Nexus<'static> {
    Nexus {
        id,
        initiator_port: id,
        initiator: match id {
            A => "iqn.a",
            B => "iqn.b",
            _ => "iqn.c",
        },
    }
}

fn param(key: u64, sa_key: u64) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p
}

/// One PERSISTENT RESERVE OUT.
#[derive(Debug, Clone, Copy)]
enum Act {
    Register(u64, u64),
    Ignore(u64),
    Reserve(u64, u8),
    Release(u64, u8),
    Clear(u64),
    Preempt(u64, u64, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Good,
    Conflict,
    Sense(u8, u8),
}

fn apply(r: &mut Reservations, who: u64, act: Act) -> (Res, Uas) {
    let n = nexus(who);
    let out = match act {
        Act::Register(k, s) => r.handle_out(&n, 0, 0, 0, &param(k, s)),
        Act::Ignore(s) => r.handle_out(&n, 6, 0, 0, &param(0, s)),
        Act::Reserve(k, t) => r.handle_out(&n, 1, 0, t, &param(k, 0)),
        Act::Release(k, t) => r.handle_out(&n, 2, 0, t, &param(k, 0)),
        Act::Clear(k) => r.handle_out(&n, 3, 0, 0, &param(k, 0)),
        Act::Preempt(k, s, t) => r.handle_out(&n, 4, 0, t, &param(k, s)),
    };
    match out {
        Ok(u) => (Res::Good, u),
        Err(PrError::Conflict) => (Res::Conflict, Vec::new()),
        Err(PrError::Check(s)) => (Res::Sense(s.asc, s.ascq), Vec::new()),
    }
}

/// A with key 0xa, B with key 0xb registered.
fn two_registered() -> Reservations {
    let mut r = Reservations::default();
    assert_eq!(apply(&mut r, A, Act::Register(0, 0xa)).0, Res::Good);
    assert_eq!(apply(&mut r, B, Act::Register(0, 0xb)).0, Res::Good);
    r
}

#[test]
fn out_actions_table() {
    use Act::*;
    // (setup: A holds a reservation of this type, or none), who, action, result.
    let table: &[(Option<u8>, u64, Act, Res)] = &[
        (None, C, Register(5, 1), Res::Conflict),
        (None, C, Register(0, 1), Res::Good),
        (None, C, Ignore(7), Res::Good),
        (None, A, Register(0xb, 1), Res::Conflict),
        (None, A, Register(0xa, 0xaa), Res::Good),
        (None, C, Reserve(0, 1), Res::Conflict),
        (None, A, Reserve(0xa, 2), Res::Sense(0x24, 0)),
        (None, A, Reserve(0xa, 3), Res::Good),
        (Some(3), A, Reserve(0xa, 3), Res::Good),
        (Some(3), A, Reserve(0xa, 1), Res::Conflict),
        (Some(3), B, Reserve(0xb, 3), Res::Conflict),
        (Some(3), B, Release(0xb, 3), Res::Good),
        (Some(3), A, Release(0xa, 1), Res::Sense(0x26, 0x04)),
        (Some(3), A, Release(0xa, 3), Res::Good),
        (Some(3), B, Release(0xa, 3), Res::Conflict),
        (Some(1), B, Clear(0xb), Res::Good),
        (Some(1), C, Clear(0), Res::Conflict),
        (Some(1), B, Preempt(0xb, 0xa, 3), Res::Good),
        (Some(1), B, Preempt(0xb, 0x99, 3), Res::Conflict),
        (None, B, Preempt(0xb, 0, 3), Res::Sense(0x26, 0)),
        (None, B, Preempt(0xb, 0xa, 3), Res::Good),
        (Some(7), B, Preempt(0xb, 0, 8), Res::Good),
    ];
    for &(held, who, act, want) in table {
        let mut r = two_registered();
        if let Some(t) = held {
            assert_eq!(apply(&mut r, A, Act::Reserve(0xa, t)).0, Res::Good);
        }
        assert_eq!(apply(&mut r, who, act).0, want, "{held:?} {who} {act:?}");
    }
}

#[test]
fn access_by_type() {
    // (type, nexus) → (read allowed, write allowed); A holds, B registered, C not.
    let table: &[(u8, u64, bool, bool)] = &[
        (WRITE_EXCLUSIVE, B, true, false),
        (WRITE_EXCLUSIVE, C, true, false),
        (EXCLUSIVE_ACCESS, B, false, false),
        (WRITE_EXCLUSIVE_RO, B, true, true),
        (WRITE_EXCLUSIVE_RO, C, true, false),
        (EXCLUSIVE_ACCESS_RO, B, true, true),
        (EXCLUSIVE_ACCESS_RO, C, false, false),
        (WRITE_EXCLUSIVE_AR, B, true, true),
        (WRITE_EXCLUSIVE_AR, C, true, false),
        (EXCLUSIVE_ACCESS_AR, C, false, false),
    ];
    for &(t, who, read, write) in table {
        let mut r = two_registered();
        apply(&mut r, A, Act::Reserve(0xa, t));
        assert_eq!(
            r.check(who, Access::Read).is_ok(),
            read,
            "type {t} nexus {who}"
        );
        assert_eq!(
            r.check(who, Access::Write).is_ok(),
            write,
            "type {t} nexus {who}"
        );
        assert!(r.check(A, Access::Write).is_ok());
        assert!(r.check(who, Access::Any).is_ok());
    }
}

#[test]
fn unit_attentions_of_preempt_and_clear() {
    let mut r = two_registered();
    apply(&mut r, A, Act::Reserve(0xa, WRITE_EXCLUSIVE));
    let (res, uas) = apply(&mut r, B, Act::Preempt(0xb, 0xa, EXCLUSIVE_ACCESS));
    assert_eq!(res, Res::Good);
    assert_eq!(uas, vec![(A, asc::REGISTRATIONS_PREEMPTED)]);
    assert_eq!(r.holder, Some(Holder { nexus: B, typ: 3 }));
    let (_, uas) = apply(&mut r, C, Act::Register(0, 0xc));
    assert!(uas.is_empty());
    let (_, uas) = apply(&mut r, B, Act::Clear(0xb));
    assert_eq!(uas, vec![(C, asc::RESERVATIONS_PREEMPTED)]);
    assert!(r.registrations.is_empty() && r.holder.is_none());
}

#[test]
fn release_of_registrants_only_notifies() {
    let mut r = two_registered();
    apply(&mut r, A, Act::Reserve(0xa, WRITE_EXCLUSIVE_RO));
    let (_, uas) = apply(&mut r, A, Act::Release(0xa, WRITE_EXCLUSIVE_RO));
    assert_eq!(uas, vec![(B, asc::RESERVATIONS_RELEASED)]);
}

#[test]
fn spc2_reserve_release() {
    let mut r = Reservations::default();
    assert_eq!(r.reserve(A), Ok(()));
    assert_eq!(r.reserve(B), Err(PrError::Conflict));
    assert_eq!(r.check(B, Access::Read), Err(PrError::Conflict));
    assert_eq!(r.release(B), Ok(()));
    assert_eq!(r.spc2, Some(A));
    r.nexus_lost(A);
    assert_eq!(r.reserve(B), Ok(()));
    // A persistent reservation makes RESERVE conflict.
    let mut r = two_registered();
    apply(&mut r, A, Act::Reserve(0xa, 1));
    assert_eq!(r.reserve(A), Err(PrError::Conflict));
}

#[test]
fn read_in_pages() {
    let mut r = two_registered();
    apply(&mut r, A, Act::Reserve(0xa, EXCLUSIVE_ACCESS));
    // READ KEYS: generation 2, 16 bytes of keys.
    let d = r.read_in(0, 1).unwrap();
    assert_eq!(&d[..8], &[0, 0, 0, 2, 0, 0, 0, 16]);
    assert_eq!(&d[8..16], &0xau64.to_be_bytes());
    // READ RESERVATION: key of the holder, type in byte 21.
    let d = r.read_in(1, 1).unwrap();
    assert_eq!(d.len(), 24);
    assert_eq!(&d[8..16], &0xau64.to_be_bytes());
    assert_eq!(d[21], 3);
    assert_eq!(r.read_in(2, 1).unwrap().len(), 8);
    // READ FULL STATUS: A is R_HOLDER, TransportID carries the name.
    let d = r.read_in(3, 1).unwrap();
    assert_eq!(d[8 + 12], 1);
    assert_eq!(&d[8 + 24..8 + 26], &[0x05, 0]);
    assert_eq!(r.read_in(4, 1), Err(Sense::invalid_field_in_cdb()));
}

#[test]
fn short_parameter_list() {
    let mut r = Reservations::default();
    let e = r.handle_out(&nexus(A), 0, 0, 0, &[0; 8]);
    assert_eq!(
        e,
        Err(PrError::Check(Sense::illegal_request(
            asc::PARAMETER_LIST_LENGTH_ERROR
        )))
    );
}

#[test]
fn transport_ids() {
    let t = transport_id("iqn.x");
    assert_eq!(t.len() % 4, 0);
    assert_eq!(transport_id_name(&t).as_deref(), Some("iqn.x"));
    let mut t2 = vec![0x45, 0, 0, 16];
    t2.extend_from_slice(b"iqn.y,i,0x123\0\0\0");
    assert_eq!(transport_id_name(&t2).as_deref(), Some("iqn.y"));
    assert_eq!(transport_id_name(&[1, 2]), None);
}

/// REGISTER with ALL_TG_PT (flags byte 20, bit 2): one registration per port of the
/// target for the same initiator port; ignored when a registered nexus changes its
/// key; SPEC_I_PT stays refused.
#[test]
fn all_tg_pt_registers_every_port() {
    use crate::lu::nexus_at_port;
    const IPORT: u64 = 0x5eed;
    let through = |port: u16| Nexus {
        id: nexus_at_port(IPORT, port),
        initiator_port: IPORT,
        initiator: "iqn.multi",
    };
    let with = |key: u64, sa_key: u64, flags: u8| {
        let mut p = param(key, sa_key);
        p[20] = flags;
        p
    };
    let ports = [1u16, 2, 3];
    let mut r = Reservations::default();
    r.handle_out_at(&through(2), &ports, 0, 0, 0, &with(0, 0xaa, 0x04))
        .unwrap();
    let mut regs: Vec<(u64, u16, u64)> = r
        .registrations
        .iter()
        .map(|g| (g.nexus, g.port, g.key))
        .collect();
    regs.sort_by_key(|g| g.1);
    assert_eq!(
        regs,
        ports
            .iter()
            .map(|&p| (nexus_at_port(IPORT, p), p, 0xaa))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        r.registrations[0].nexus,
        through(2).id,
        "its own nexus first"
    );
    assert_eq!(r.generation, 1, "one generation for the whole registration");
    // Through another port the initiator port is registered: it may reserve.
    r.handle_out_at(&through(3), &ports, 1, 0, WRITE_EXCLUSIVE, &param(0xaa, 0))
        .unwrap();
    // READ FULL STATUS: a descriptor per nexus, each naming its port; the holder
    // is the nexus through port 3.
    let d = r.read_in(3, 1).unwrap();
    let mut at = 8;
    let mut seen = Vec::new();
    while at < d.len() {
        let tid_len = u32::from_be_bytes(d[at + 20..at + 24].try_into().unwrap()) as usize;
        let port = u16::from_be_bytes([d[at + 18], d[at + 19]]);
        assert_eq!(
            d[at + 12] & 0x02,
            0,
            "ALL_TG_PT 0: one descriptor per nexus"
        );
        seen.push((port, d[at + 12] & 0x01));
        at += 24 + tid_len;
    }
    seen.sort();
    assert_eq!(seen, [(1, 0), (2, 0), (3, 1)]);
    // A registered nexus changing its key: ALL_TG_PT is ignored, only it changes.
    r.handle_out_at(&through(1), &ports, 0, 0, 0, &with(0xaa, 0xbb, 0x04))
        .unwrap();
    let mut keys: Vec<u64> = r.registrations.iter().map(|g| g.key).collect();
    keys.sort();
    assert_eq!(keys, [0xaa, 0xaa, 0xbb]);
    // A port already registered keeps its key when another registers ALL_TG_PT.
    let mut r2 = Reservations::default();
    r2.handle_out_at(&through(1), &ports, 0, 0, 0, &param(0, 0x11))
        .unwrap();
    r2.handle_out_at(&through(2), &ports, 0, 0, 0, &with(0, 0x22, 0x04))
        .unwrap();
    let mut got: Vec<(u16, u64)> = r2.registrations.iter().map(|g| (g.port, g.key)).collect();
    got.sort();
    assert_eq!(got, [(1, 0x11), (2, 0x22), (3, 0x22)]);
    // A target with one port (no ALUA): ALL_TG_PT registers just this nexus.
    let mut r3 = Reservations::default();
    r3.handle_out(&nexus(A), 0, 0, 0, &with(0, 0xa, 0x04))
        .unwrap();
    assert_eq!(r3.registrations.len(), 1);
    // REPORT CAPABILITIES: ATP_C and SIP_C set.
    assert_eq!(r3.read_in(2, 1).unwrap()[2] & 0x0c, 0x0c);
}

/// An iSCSI TransportID of format 01b: `name,i,0x` and the ISID in hex, NUL
/// terminated, padded to a multiple of 4.
fn port_tid(name: &str, isid: [u8; 6]) -> Vec<u8> {
    let hex: String = isid.iter().map(|b| format!("{b:02x}")).collect();
    let mut text = format!("{name},i,0x{hex}").into_bytes();
    text.push(0);
    text.resize(text.len().div_ceil(4) * 4, 0);
    let mut t = vec![0x45, 0];
    t.extend_from_slice(&(text.len() as u16).to_be_bytes());
    t.extend_from_slice(&text);
    t
}

/// A REGISTER parameter list with SPEC_I_PT (and `flags`) naming `tids`.
fn spec_i_pt(sa_key: u64, flags: u8, tids: &[Vec<u8>]) -> Vec<u8> {
    let mut p = param(0, sa_key);
    p[20] = 0x08 | flags;
    let list: Vec<u8> = tids.concat();
    p.extend_from_slice(&(list.len() as u32).to_be_bytes());
    p.extend_from_slice(&list);
    p
}

fn bad_param_sense() -> Result<Uas, PrError> {
    Err(PrError::Check(Sense::illegal_request(
        asc::INVALID_FIELD_IN_PARAMETER_LIST,
    )))
}

#[test]
fn spec_i_pt_registers_the_named_initiator_ports() {
    use crate::lu::initiator_port_id;
    let isid = [0x40, 0, 0x01, 0x37, 0, 0x02];
    let other = initiator_port_id("iqn.b", isid);
    let mut r = Reservations::default();
    r.handle_out(
        &nexus(A),
        0,
        0,
        0,
        &spec_i_pt(0x77, 0, &[port_tid("iqn.b", isid)]),
    )
    .unwrap();
    let regs: Vec<(u64, &str, u64)> = r
        .registrations
        .iter()
        .map(|g| (g.nexus, g.initiator.as_str(), g.key))
        .collect();
    assert_eq!(regs, [(A, "iqn.a", 0x77), (other, "iqn.b", 0x77)]);
    assert_eq!(r.generation, 1);
    // The named port, once it logs in, is a registrant: it may reserve with the key.
    let b = Nexus {
        id: other,
        initiator_port: other,
        initiator: "iqn.b",
    };
    r.handle_out(&b, 1, 0, WRITE_EXCLUSIVE, &param(0x77, 0))
        .unwrap();
    assert!(r.is_holder(other));
    // The TransportID in READ FULL STATUS names the initiator.
    let full = r.read_in(3, 1).unwrap();
    assert!(full.windows(5).any(|w| w == b"iqn.b"));
}

#[test]
fn spec_i_pt_with_all_tg_pt_registers_every_port_of_each() {
    use crate::lu::{initiator_port_id, nexus_at_port};
    const IPORT: u64 = 0x5eed;
    let me = Nexus {
        id: nexus_at_port(IPORT, 2),
        initiator_port: IPORT,
        initiator: "iqn.a",
    };
    let isid = [0, 0, 0, 0, 0, 9];
    let other = initiator_port_id("iqn.c", isid);
    let ports = [1u16, 2];
    // Registrations made by a SPEC_I_PT REGISTER with `flags` through `me`, sorted.
    let register_through = |flags: u8| {
        let mut r = Reservations::default();
        r.handle_out_at(
            &me,
            &ports,
            0,
            0,
            0,
            &spec_i_pt(5, flags, &[port_tid("iqn.c", isid)]),
        )
        .unwrap();
        let mut got: Vec<(u64, u16)> = r.registrations.iter().map(|g| (g.nexus, g.port)).collect();
        got.sort();
        got
    };
    // Without ALL_TG_PT: the named port through this port (2) only.
    let got = register_through(0);
    let mut want = vec![(me.id, 2), (nexus_at_port(other, 2), 2)];
    want.sort();
    assert_eq!(got, want);
    // With ALL_TG_PT: both ports of this initiator port and of the named one.
    let got = register_through(0x04);
    let mut want: Vec<(u64, u16)> = ports
        .iter()
        .flat_map(|&p| [(nexus_at_port(IPORT, p), p), (nexus_at_port(other, p), p)])
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn spec_i_pt_refusals_change_nothing() {
    use crate::lu::initiator_port_id;
    let isid = [1, 2, 3, 4, 5, 6];
    let tid = port_tid("iqn.b", isid);
    let mut r = Reservations::default();
    // Format 00b (a device, not a port), another protocol, a malformed ISID.
    let mut device = tid.clone();
    device[0] = 0x05;
    let mut fc = tid.clone();
    fc[0] = 0x40;
    // An ISID of 4 hex digits instead of 12.
    let text = b"iqn.b,i,0x1234\0\0";
    let mut short_isid = vec![0x45, 0];
    short_isid.extend_from_slice(&(text.len() as u16).to_be_bytes());
    short_isid.extend_from_slice(text);
    for bad in [device, fc, short_isid] {
        assert_eq!(
            r.handle_out(
                &nexus(A),
                0,
                0,
                0,
                &spec_i_pt(9, 0, std::slice::from_ref(&bad))
            ),
            bad_param_sense(),
            "{bad:?}"
        );
    }
    // The TransportID length disagrees with the list: PARAMETER LIST LENGTH ERROR.
    let mut p = spec_i_pt(9, 0, std::slice::from_ref(&tid));
    p.push(0);
    assert_eq!(
        r.handle_out(&nexus(A), 0, 0, 0, &p),
        Err(PrError::Check(Sense::illegal_request(
            asc::PARAMETER_LIST_LENGTH_ERROR
        )))
    );
    // Not with REGISTER AND IGNORE EXISTING KEY, nor from a registered nexus.
    assert_eq!(
        r.handle_out(
            &nexus(A),
            6,
            0,
            0,
            &spec_i_pt(9, 0, std::slice::from_ref(&tid))
        ),
        bad_param_sense()
    );
    assert!(
        r.registrations.is_empty(),
        "nothing registered by a refusal"
    );
    r.handle_out(&nexus(C), 0, 0, 0, &param(0, 3)).unwrap();
    assert_eq!(
        r.handle_out(
            &nexus(C),
            0,
            0,
            0,
            &spec_i_pt(3, 0, std::slice::from_ref(&tid))
        ),
        bad_param_sense()
    );
    // A named port already registered fails the whole command.
    let b = initiator_port_id("iqn.b", isid);
    let nb = Nexus {
        id: b,
        initiator_port: b,
        initiator: "iqn.b",
    };
    r.handle_out(&nb, 0, 0, 0, &param(0, 4)).unwrap();
    assert_eq!(
        r.handle_out(&nexus(A), 0, 0, 0, &spec_i_pt(9, 0, &[tid])),
        bad_param_sense()
    );
    assert_eq!(r.registrations.len(), 2, "A was not registered either");
    assert!(r.reg(A).is_none());
}
