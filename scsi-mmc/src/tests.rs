//! Each command's parameter data against MMC-6 / SPC-4 layouts, and against what
//! Debian's tgt 1.0.85 returns where the two agree.

use super::*;
use proptest::prelude::*;
use scsi_sbc::{DeviceType, LuIdentity, Nexus, ScsiStatus};

const CTX: LuContext<'static> = LuContext {
    lun: 1,
    luns: &[0, 1],
    target_name: "iqn.2001-04.com.example:t1",
    tpgt: 1,
    nexus: Nexus {
        id: 1,
        initiator_port: 1,
        initiator: "iqn.2001-04.com.example:i1",
    },
    peers: &[],
    alua: None,
};

const OTHER: LuContext<'static> = LuContext {
    nexus: Nexus {
        id: 2,
        initiator_port: 2,
        initiator: "iqn.2001-04.com.example:i2",
    },
    ..CTX
};

/// A cd LU of `blocks` 2048-byte blocks with tgt's identity for LUN 1 of tid 1.
fn cd(blocks: u64) -> LuConfig {
    LuConfig {
        device_type: DeviceType::Cd,
        block_size: BLOCK_SIZE,
        num_blocks: blocks,
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-CDROM".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010001".into(),
            scsi_sn: "beaf11".into(),
        },
        readonly: true,
        removable: true,
        write_cache: false,
        thin_provisioning: false,
        descriptor_sense: false,
        sanitize: false,
        geometry: Default::default(),
    }
}

/// A state where nexuses 1 and 2 have cleared their power-on unit attention.
fn settled() -> LuState {
    let mut s = LuState::new();
    for n in [1, 2] {
        s.ua.see(n);
        while s.ua.take(n).is_some() {}
    }
    s
}

/// Run one command the way a target does: prepare, then execute.
fn run(lu: &LuConfig, ctx: &LuContext<'_>, st: &mut LuState, cdb: &[u8]) -> Result<Plan, Outcome> {
    prepare_in(cdb, lu, ctx, st)?;
    Ok(execute_in(cdb, lu, ctx, st, Bytes::new()))
}

fn good(lu: &LuConfig, st: &mut LuState, cdb: &[u8]) -> Vec<u8> {
    match run(lu, &CTX, st, cdb) {
        Ok(Plan::Done(o)) if o.status == ScsiStatus::Good => o.data.to_vec(),
        other => panic!("expected GOOD for {cdb:02x?}, got {other:?}"),
    }
}

fn sense(lu: &LuConfig, ctx: &LuContext<'_>, st: &mut LuState, cdb: &[u8]) -> (SenseKey, u8, u8) {
    let o = match run(lu, ctx, st, cdb) {
        Err(o) | Ok(Plan::Done(o)) => o,
        other => panic!("expected CHECK CONDITION for {cdb:02x?}, got {other:?}"),
    };
    assert_eq!(o.status, ScsiStatus::CheckCondition, "{cdb:02x?}");
    let s = o.sense.unwrap();
    (s.key, s.asc, s.ascq)
}

fn cdb10(op: u8, b1: u8, b2: u8, b6: u8, alloc: u16) -> [u8; 10] {
    let [h, l] = alloc.to_be_bytes();
    [op, b1, b2, 0, 0, 0, b6, h, l, 0]
}

const SMALL: u64 = 2048; // 4 MiB: a CD
const BIG: u64 = CD_MAX_BLOCKS + 1; // a DVD

#[test]
fn inquiry_is_a_removable_mmc_device() {
    let d = good(&cd(SMALL), &mut settled(), &[0x12, 0, 0, 0, 0xff, 0]);
    assert_eq!(d[0], 0x05, "SPC-4 table 141: CD/DVD device");
    assert_eq!(d[1], 0x80, "RMB");
    assert_eq!(d[5] & 0x08, 0, "no 3PC: EXTENDED COPY is a disk's");
    assert_eq!(&d[16..32], b"VIRTUAL-CDROM   ");
    assert_eq!(&d[64..66], &[0x04, 0xe0], "MMC-6 version descriptor");
    // VPD pages: 00h lists 00h, 80h, 83h only.
    let v = good(&cd(SMALL), &mut settled(), &[0x12, 1, 0, 0, 0xff, 0]);
    assert_eq!(v, vec![0x05, 0x00, 0, 3, 0x00, 0x80, 0x83]);
    let sn = good(&cd(SMALL), &mut settled(), &[0x12, 1, 0x80, 0, 0xff, 0]);
    assert_eq!(&sn[..4], &[0x05, 0x80, 0, 6]);
    assert_eq!(&sn[4..], b"beaf11");
    let id = good(&cd(SMALL), &mut settled(), &[0x12, 1, 0x83, 0, 0xff, 0]);
    assert_eq!(&id[..2], &[0x05, 0x83]);
    let k = sense(
        &cd(SMALL),
        &CTX,
        &mut settled(),
        &[0x12, 1, 0xb0, 0, 0xff, 0],
    );
    assert_eq!(
        k,
        (SenseKey::IllegalRequest, 0x24, 0),
        "no Block Limits page"
    );
}

#[test]
fn read_capacity_has_2048_byte_blocks() {
    let d = good(
        &cd(SMALL),
        &mut settled(),
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(d, [0, 0, 0x07, 0xff, 0, 0, 0x08, 0]);
}

#[test]
fn read_is_a_block_read_in_2048_byte_units() {
    let lu = cd(SMALL);
    let mut st = settled();
    let p = run(&lu, &CTX, &mut st, &[0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0]).unwrap();
    assert_eq!(
        p,
        Plan::Io(BlockOp::Read {
            offset: 3 * 2048,
            len: 4096
        })
    );
    let p = run(&lu, &CTX, &mut st, &[0xa8, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]).unwrap();
    assert_eq!(
        p,
        Plan::Io(BlockOp::Read {
            offset: 2048,
            len: 2048
        })
    );
    let past = [0x28, 0, 0, 0, 0x07, 0xff, 0, 0, 2, 0];
    assert_eq!(
        sense(&lu, &CTX, &mut st, &past),
        (SenseKey::IllegalRequest, 0x21, 0)
    );
    let o = complete_in(
        &past,
        &lu,
        1,
        &mut st,
        &BlockOp::Read {
            offset: 0,
            len: 2048,
        },
        Err(IoErrorKind::ReadError),
    );
    let s = o.sense.unwrap();
    assert_eq!(
        (s.key, s.asc, s.info),
        (SenseKey::MediumError, 0x11, Some(0))
    );
}

#[test]
fn writes_and_sbc_only_opcodes_are_refused() {
    let lu = cd(SMALL);
    let mut st = settled();
    for w in [
        &[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0][..],
        &[0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
        &[0x2e, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        &[0x04, 0, 0, 0, 0, 0],
        &[0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        assert_eq!(
            sense(&lu, &CTX, &mut st, w),
            (SenseKey::IllegalRequest, 0x30, 0x05),
            "{w:02x?}"
        );
    }
    for op in [
        0x08u8, 0x0a, 0x41, 0x42, 0x88, 0x8a, 0x93, 0x9e, 0x89, 0x5e, 0x5f, 0x83, 0x48,
    ] {
        let mut c = [0u8; 16];
        c[0] = op;
        assert_eq!(
            sense(&lu, &CTX, &mut st, &c),
            (SenseKey::IllegalRequest, 0x20, 0),
            "{op:02x}"
        );
    }
    // MMC has SYNCHRONIZE CACHE (10): nothing to flush.
    assert!(good(&lu, &mut st, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_empty());
}

#[test]
fn toc_format_0_in_lba_and_msf() {
    let lu = cd(SMALL);
    let d = good(&lu, &mut settled(), &cdb10(0x43, 0, 0, 0, 0xffff));
    assert_eq!(
        d,
        [0, 0x12, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0, 0, 0x14, 0xaa, 0, 0, 0, 0x08, 0]
    );
    // MSF: track 1 at 00:02:00, lead-out at 2048 + 150 frames = 00:29:23.
    let d = good(&lu, &mut settled(), &cdb10(0x43, 2, 0, 1, 0xffff));
    assert_eq!(&d[8..12], &[0, 0, 2, 0]);
    assert_eq!(&d[16..20], &[0, 0, 29, 23]);
    // Lead-out only; a DVD's MSF saturates at 255:59:74 (tgt's constant).
    let d = good(
        &cd(BIG * 4),
        &mut settled(),
        &cdb10(0x43, 2, 0, 0xaa, 0xffff),
    );
    assert_eq!(d, [0, 0x0a, 1, 1, 0, 0x14, 0xaa, 0, 0, 0xff, 0x3b, 0x4a]);
    let k = sense(&lu, &CTX, &mut settled(), &cdb10(0x43, 0, 0, 2, 0xffff));
    assert_eq!(k, (SenseKey::IllegalRequest, 0x24, 0));
    // Allocation length cuts.
    assert_eq!(
        good(&lu, &mut settled(), &cdb10(0x43, 0, 0, 0, 4)),
        [0, 0x12, 1, 1]
    );
}

#[test]
fn toc_format_1_session_info_and_other_formats() {
    let lu = cd(SMALL);
    let d = good(&lu, &mut settled(), &cdb10(0x43, 0, 1, 0, 0xffff));
    assert_eq!(d, [0, 0x0a, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    let d = good(&lu, &mut settled(), &cdb10(0x43, 2, 1, 0, 0xffff));
    assert_eq!(&d[8..12], &[0, 0, 2, 0]);
    for f in [2, 3, 4, 5, 0xf] {
        let k = sense(&lu, &CTX, &mut settled(), &cdb10(0x43, 0, f, 0, 0xffff));
        assert_eq!(k, (SenseKey::IllegalRequest, 0x24, 0), "format {f}");
    }
}

/// Feature descriptors of GET CONFIGURATION data, as (code, byte 2, data).
fn features(d: &[u8]) -> Vec<(u16, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 4 <= d.len() {
        let len = usize::from(d[at + 3]);
        out.push((
            u16::from_be_bytes([d[at], d[at + 1]]),
            d[at + 2],
            d[at + 4..at + 4 + len].to_vec(),
        ));
        at += 4 + len;
    }
    out
}

#[test]
fn configuration_profiles_follow_the_image_size() {
    for (blocks, profile) in [(SMALL, 0x0008u16), (CD_MAX_BLOCKS, 0x0008), (BIG, 0x0010)] {
        let d = good(&cd(blocks), &mut settled(), &cdb10(0x46, 0, 0, 0, 0xffff));
        assert_eq!(
            u32::from_be_bytes(d[0..4].try_into().unwrap()) as usize,
            d.len() - 4
        );
        assert_eq!(u16::from_be_bytes([d[6], d[7]]), profile);
        let f = features(&d);
        let codes: Vec<u16> = f.iter().map(|x| x.0).collect();
        assert_eq!(
            codes,
            [0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001e, 0x001f]
        );
        let dvd = profile == 0x0010;
        assert_eq!(
            f[0],
            (
                0,
                0x03,
                vec![0, 0x10, u8::from(dvd), 0, 0, 0x08, u8::from(!dvd), 0]
            )
        );
        assert_eq!(f[1], (1, 0x03, vec![0, 0, 0, 1]));
        assert_eq!(
            f[3],
            (3, 0x03, vec![0x29, 0, 0, 0]),
            "tray, eject, lock: as tgt"
        );
        let blocking = if dvd { 0x10 } else { 1 };
        assert_eq!(f[4], (0x10, 0x01, vec![0, 0, 8, 0, 0, blocking, 1, 0]));
        assert_eq!(f[5].1, u8::from(!dvd));
        assert_eq!(f[6].1, u8::from(dvd));
    }
}

#[test]
fn configuration_rt_and_starting_feature() {
    let lu = cd(SMALL);
    // RT=1: current features only (DVD Read is not current on a CD).
    let d = good(&lu, &mut settled(), &cdb10(0x46, 1, 0, 0, 0xffff));
    let codes: Vec<u16> = features(&d).iter().map(|x| x.0).collect();
    assert_eq!(codes, [0, 1, 2, 3, 0x10, 0x1e]);
    // RT=0 from 0003h on.
    let d = good(
        &lu,
        &mut settled(),
        &[0x46, 0, 0, 3, 0, 0, 0, 0xff, 0xff, 0],
    );
    let codes: Vec<u16> = features(&d).iter().map(|x| x.0).collect();
    assert_eq!(codes, [3, 0x10, 0x1e, 0x1f]);
    // RT=2: that feature alone, or only the header.
    let d = good(
        &lu,
        &mut settled(),
        &[0x46, 2, 0, 0x10, 0, 0, 0, 0xff, 0xff, 0],
    );
    assert_eq!(features(&d).len(), 1);
    let d = good(
        &lu,
        &mut settled(),
        &[0x46, 2, 0x01, 0x00, 0, 0, 0, 0xff, 0xff, 0],
    );
    assert_eq!(d, [0, 0, 0, 4, 0, 0, 0, 0x08]);
    let k = sense(&lu, &CTX, &mut settled(), &cdb10(0x46, 3, 0, 0, 0xffff));
    assert_eq!(k, (SenseKey::IllegalRequest, 0x24, 0));
    // No medium: current profile 0, Random Readable not current.
    let mut st = settled();
    st.ejected = true;
    let d = good(&lu, &mut st, &cdb10(0x46, 0, 0, 0, 0xffff));
    assert_eq!(&d[6..8], &[0, 0]);
    assert_eq!(features(&d)[4].1, 0);
}

#[test]
fn event_status_reports_media_events_once() {
    let lu = cd(SMALL);
    let mut st = settled();
    let gesn = [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0];
    assert_eq!(good(&lu, &mut st, &gesn), [0, 6, 4, 0x10, 0, 0x02, 0, 0]);
    st.medium_changed(&[]);
    // GESN reports no unit attention (MMC-6 4.1.6.1), and the event once.
    assert_eq!(good(&lu, &mut st, &gesn), [0, 6, 4, 0x10, 2, 0x02, 0, 0]);
    assert_eq!(good(&lu, &mut st, &gesn), [0, 6, 4, 0x10, 0, 0x02, 0, 0]);
    assert_eq!(
        sense(&lu, &CTX, &mut st, &[0; 6]),
        (SenseKey::UnitAttention, 0x28, 0)
    );
    // Another class: no event available.
    assert_eq!(
        good(&lu, &mut st, &[0x4a, 1, 0, 0, 0x02, 0, 0, 0, 8, 0]),
        [0, 2, 0x80, 0x10]
    );
    // Asynchronous operation is not offered.
    let k = sense(&lu, &CTX, &mut st, &[0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]);
    assert_eq!(k, (SenseKey::IllegalRequest, 0x24, 0));
}

#[test]
fn eject_load_and_prevent() {
    let lu = cd(SMALL);
    let mut st = settled();
    let eject = [0x1b, 0, 0, 0, 0x02, 0];
    let load = [0x1b, 0, 0, 0, 0x03, 0];
    let prevent = [0x1e, 0, 0, 0, 1, 0];
    let allow = [0x1e, 0, 0, 0, 0, 0];
    let tur = [0u8; 6];
    good(&lu, &mut st, &prevent);
    assert_eq!(
        sense(&lu, &CTX, &mut st, &eject),
        (SenseKey::IllegalRequest, 0x53, 0x02)
    );
    // Page 2Ah shows the lock.
    let ms = good(&lu, &mut st, &[0x5a, 0x08, 0x2a, 0, 0, 0, 0, 0, 0xff, 0]);
    assert_eq!(ms[8 + 6], 0x2b);
    good(&lu, &mut st, &allow);
    good(&lu, &mut st, &eject);
    assert_eq!(
        sense(&lu, &CTX, &mut st, &tur),
        (SenseKey::NotReady, 0x3a, 0)
    );
    let rs = good(&lu, &mut st, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!(
        (rs[2], rs[12], rs[13]),
        (2, 0x3a, 0),
        "REQUEST SENSE: the empty drive"
    );
    assert_eq!(
        sense(&lu, &CTX, &mut st, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (SenseKey::NotReady, 0x3a, 0)
    );
    assert_eq!(
        sense(&lu, &CTX, &mut st, &cdb10(0x43, 0, 0, 0, 0xffff)),
        (SenseKey::NotReady, 0x3a, 0)
    );
    assert_eq!(
        good(&lu, &mut st, &[0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]),
        [0, 0x10, 0, 0, 0, 0, 0, 0]
    );
    let gesn = [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0];
    assert_eq!(good(&lu, &mut st, &gesn), [0, 6, 4, 0x10, 3, 0x01, 0, 0]);
    // Loading: ready again; the other nexus hears of it once.
    good(&lu, &mut st, &load);
    assert!(good(&lu, &mut st, &tur).is_empty());
    assert_eq!(
        sense(&lu, &OTHER, &mut st, &tur),
        (SenseKey::UnitAttention, 0x28, 0)
    );
    assert!(
        matches!(run(&lu, &OTHER, &mut st, &tur), Ok(Plan::Done(o)) if o.status == ScsiStatus::Good)
    );
    // Another nexus's prevention blocks this one's eject; its logout lifts it.
    run(&lu, &OTHER, &mut st, &prevent).unwrap();
    assert_eq!(
        sense(&lu, &CTX, &mut st, &eject),
        (SenseKey::IllegalRequest, 0x53, 0x02)
    );
    st.nexus_lost(2);
    good(&lu, &mut st, &eject);
}

#[test]
fn disc_and_track_information() {
    let lu = cd(SMALL);
    let d = good(&lu, &mut settled(), &cdb10(0x51, 0, 0, 0, 0xffff));
    assert_eq!(d.len(), 34);
    assert_eq!(&d[..8], &[0, 32, 0x0e, 1, 1, 1, 1, 0]);
    let k = sense(&lu, &CTX, &mut settled(), &cdb10(0x51, 1, 0, 0, 0xffff));
    assert_eq!(k, (SenseKey::IllegalRequest, 0x24, 0));
    for (kind, number) in [(1u8, 1u32), (0, 0), (0, 2047), (2, 1)] {
        let [a, b, c, e] = number.to_be_bytes();
        let d = good(
            &lu,
            &mut settled(),
            &[0x52, kind, a, b, c, e, 0, 0, 0xff, 0],
        );
        assert_eq!(d.len(), 48);
        assert_eq!(&d[..8], &[0, 46, 1, 1, 0, 0x04, 0x01, 0x02]);
        assert_eq!(
            &d[24..32],
            &[0, 0, 8, 0, 0, 0, 7, 0xff],
            "track size, last recorded"
        );
    }
    for (kind, number) in [(1u8, 2u32), (0, 2048), (2, 2), (3, 0)] {
        let [a, b, c, e] = number.to_be_bytes();
        let k = sense(
            &lu,
            &CTX,
            &mut settled(),
            &[0x52, kind, a, b, c, e, 0, 0, 0xff, 0],
        );
        assert_eq!(k, (SenseKey::IllegalRequest, 0x24, 0));
    }
}

#[test]
fn mode_sense_capabilities_and_all_pages() {
    let lu = cd(SMALL);
    let d = good(
        &lu,
        &mut settled(),
        &[0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 0xff, 0],
    );
    // 8-byte header, no block descriptor even without DBD, page 2Ah of 32 bytes.
    assert_eq!(&d[..8], &[0, 38, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&d[8..16], &[0x2a, 0x1e, 0x3f, 0x00, 0x70, 0, 0x29, 0]);
    assert_eq!(d.len(), 40);
    let all = good(&lu, &mut settled(), &[0x1a, 0, 0x3f, 0, 0xff, 0]);
    assert_eq!(all[0] as usize, all.len() - 1);
    assert_eq!(&all[1..4], &[0, 0, 0]);
    assert_eq!(&all[4..6], &[0x01, 0x0a]);
    assert_eq!(&all[16..18], &[0x2a, 0x1e]);
    let mask = good(&lu, &mut settled(), &[0x1a, 0, 0x7f, 0, 0xff, 0]);
    assert!(mask[6..16].iter().all(|&b| b == 0));
    let k = sense(&lu, &CTX, &mut settled(), &[0x1a, 0, 0x08, 0, 0xff, 0]);
    assert_eq!(k, (SenseKey::IllegalRequest, 0x24, 0), "no caching page");
    let k = sense(&lu, &CTX, &mut settled(), &[0x1a, 0, 0xea, 0, 0xff, 0]);
    assert_eq!(k, (SenseKey::IllegalRequest, 0x39, 0), "saved values");
}

#[test]
fn medium_change_is_a_unit_attention_once_per_nexus() {
    let lu = cd(SMALL);
    let mut st = settled();
    st.ejected = true;
    st.medium_changed(&[]);
    for ctx in [&CTX, &OTHER] {
        assert_eq!(
            sense(&lu, ctx, &mut st, &[0; 6]),
            (SenseKey::UnitAttention, 0x28, 0)
        );
        assert!(
            matches!(run(&lu, ctx, &mut st, &[0; 6]), Ok(Plan::Done(o)) if o.status == ScsiStatus::Good)
        );
    }
    // INQUIRY and GET CONFIGURATION do not consume it.
    st.medium_changed(&[]);
    good(&lu, &mut st, &[0x12, 0, 0, 0, 36, 0]);
    good(&lu, &mut st, &cdb10(0x46, 0, 0, 0, 8));
    let rs = good(&lu, &mut st, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!((rs[2], rs[12], rs[13]), (6, 0x28, 0));
}

#[test]
fn set_cd_speed_and_misc() {
    let lu = cd(SMALL);
    let mut st = settled();
    assert!(good(
        &lu,
        &mut st,
        &[0xbb, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0]
    )
    .is_empty());
    assert!(good(&lu, &mut st, &[0x2f, 0, 0, 0, 0, 0, 0, 0, 1, 0]).is_empty());
    let rl = good(&lu, &mut st, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
    assert_eq!(&rl[..4], &[0, 0, 0, 16]);
    // NACA is refused.
    assert_eq!(
        sense(&lu, &CTX, &mut st, &[0, 0, 0, 0, 0, 4]),
        (SenseKey::IllegalRequest, 0x24, 0)
    );
    // Offline: no medium, as tgt reports a removable LU.
    st.offline = true;
    assert_eq!(
        sense(&lu, &CTX, &mut st, &[0; 6]),
        (SenseKey::NotReady, 0x3a, 0)
    );
}

proptest! {
    /// Whatever the CDB and medium state, a cd LU never panics, answers GOOD or CHECK
    /// CONDITION with sense (never data with CHECK CONDITION), asks for no data-out,
    /// and any read it plans stays inside the image.
    #[test]
    fn random_cdbs_get_a_valid_status(
        cdbs in proptest::collection::vec(
            (prop_oneof![
                Just(0x00u8), Just(0x03), Just(0x12), Just(0x1a), Just(0x1b), Just(0x1e),
                Just(0x25), Just(0x28), Just(0x2a), Just(0x35), Just(0x43), Just(0x46),
                Just(0x4a), Just(0x51), Just(0x52), Just(0x5a), Just(0xa0), Just(0xa8),
                Just(0xbb), Just(0xbd), any::<u8>()
            ], proptest::collection::vec(any::<u8>(), 0..16), any::<bool>()),
            1..12),
        blocks in 0u64..5000,
    ) {
        let lu = cd(blocks);
        let mut st = LuState::new();
        for (op, rest, other) in cdbs {
            let mut cdb = vec![op];
            cdb.extend_from_slice(&rest);
            let ctx = if other { &OTHER } else { &CTX };
            let o = match prepare_in(&cdb, &lu, ctx, &mut st) {
                Err(o) => o,
                Ok(p) => {
                    prop_assert_eq!(p.data_out_len, 0);
                    match execute_in(&cdb, &lu, ctx, &mut st, Bytes::new()) {
                        Plan::Done(o) => o,
                        Plan::Io(op) => {
                            let BlockOp::Read { offset, len } = op else {
                                panic!("only reads: {op:?}");
                            };
                            prop_assert!(offset + len <= blocks * 2048);
                            continue;
                        }
                    }
                }
            };
            match o.status {
                ScsiStatus::Good => prop_assert!(o.sense.is_none()),
                ScsiStatus::CheckCondition => {
                    prop_assert!(o.sense.is_some());
                    prop_assert!(o.data.is_empty());
                }
                s => prop_assert!(false, "unexpected status {:?}", s),
            }
        }
    }
}
