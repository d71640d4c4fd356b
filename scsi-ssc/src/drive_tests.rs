use super::*;
use crate::image::new_image;

fn tape(mb: u64, cart: Cartridge) -> (Drive, MemoryMedium) {
    let mut m = MemoryMedium {
        bytes: new_image("T1", mb, cart, 0),
        readonly: false,
    };
    let mut d = Drive::new(false);
    d.load(&mut m).unwrap();
    (d, m)
}

fn run(d: &mut Drive, m: &mut MemoryMedium, cdb: &[u8], data: &[u8]) -> Reply {
    d.run(cdb, data, Some(m))
}

fn good(d: &mut Drive, m: &mut MemoryMedium, cdb: &[u8], data: &[u8]) -> Vec<u8> {
    let r = run(d, m, cdb, data);
    assert_eq!(r.sense, None, "{cdb:02x?}");
    r.data
}

fn write_var(d: &mut Drive, m: &mut MemoryMedium, data: &[u8]) -> Reply {
    let n = (data.len() as u32).to_be_bytes();
    run(d, m, &[0x0a, 0, n[1], n[2], n[3], 0], data)
}

fn read_var(d: &mut Drive, m: &mut MemoryMedium, len: u32, sili: bool) -> Reply {
    let n = len.to_be_bytes();
    run(d, m, &[0x08, u8::from(sili) << 1, n[1], n[2], n[3], 0], &[])
}

const REWIND: [u8; 6] = [0x01, 0, 0, 0, 0, 0];
const WFM1: [u8; 6] = [0x10, 0, 0, 0, 1, 0];

fn space(code: u8, count: i32) -> [u8; 6] {
    let c = count.to_be_bytes();
    [0x11, code, c[1], c[2], c[3], 0]
}

fn sense(key: SenseKey, code: AscAscq, bits: u8, info: Option<u64>) -> Option<Sense> {
    Some(Sense {
        info,
        stream: bits,
        ..Sense::new(key, code)
    })
}

/// Two files of variable blocks: "aaaa" "bb" FM "ccc" FM.
fn two_files() -> (Drive, MemoryMedium) {
    let (mut d, mut m) = tape(1, Cartridge::Data);
    for (blk, fm) in [(&b"aaaa"[..], false), (b"bb", true), (b"ccc", true)] {
        assert_eq!(write_var(&mut d, &mut m, blk).sense, None);
        if fm {
            good(&mut d, &mut m, &WFM1, &[]);
        }
    }
    good(&mut d, &mut m, &REWIND, &[]);
    (d, m)
}

#[test]
fn write_rewind_read_back_with_filemarks() {
    let (mut d, mut m) = two_files();
    assert_eq!(read_var(&mut d, &mut m, 4, false).data, b"aaaa");
    assert_eq!(read_var(&mut d, &mut m, 2, false).data, b"bb");
    // The filemark: NO SENSE, FILEMARK, 00h/01h, INFORMATION = the transfer length.
    let r = read_var(&mut d, &mut m, 10, false);
    assert!(r.data.is_empty());
    assert_eq!(
        r.sense,
        sense(
            SenseKey::NoSense,
            FILEMARK_DETECTED,
            STREAM_FILEMARK,
            Some(10)
        )
    );
    assert_eq!(read_var(&mut d, &mut m, 3, false).data, b"ccc");
    let r = read_var(&mut d, &mut m, 3, false);
    assert_eq!(r.sense.unwrap().stream, STREAM_FILEMARK);
    // End of data: BLANK CHECK, 00h/05h, INFORMATION = the transfer length.
    let r = read_var(&mut d, &mut m, 7, false);
    assert_eq!(
        r.sense,
        sense(SenseKey::BlankCheck, END_OF_DATA, 0, Some(7))
    );
    // The image is still a chain tgtimg can walk: BOT .. EOD with 5 objects.
    let (bot, _) = BlockHeader::decode(&m.bytes).unwrap();
    let mut h = BlockHeader::decode(&m.bytes[bot.next as usize..])
        .unwrap()
        .0;
    let mut kinds = vec![];
    while !h.is_eod() {
        kinds.push(h.blk_type);
        h = BlockHeader::decode(&m.bytes[h.next as usize..]).unwrap().0;
    }
    assert_eq!(kinds, vec![2, 2, 0x40, 2, 0x40]);
    assert_eq!(h.blk_num, 6);
}

#[test]
fn incorrect_length_residues() {
    let (mut d, mut m) = two_files();
    // Asked for more than the block: ILI, INFORMATION = 6 - 4 = 2; the block's data.
    let r = read_var(&mut d, &mut m, 6, false);
    assert_eq!(r.data, b"aaaa");
    assert_eq!(
        r.sense,
        sense(
            SenseKey::NoSense,
            asc::NO_ADDITIONAL_SENSE,
            STREAM_ILI,
            Some(2)
        )
    );
    // Asked for less: ILI, INFORMATION = 1 - 2 = -1 (two's complement); one byte.
    let r = read_var(&mut d, &mut m, 1, false);
    assert_eq!(r.data, b"b");
    assert_eq!(r.sense.unwrap().info, Some(0xffff_ffff));
    assert_eq!(
        r.sense.unwrap().to_fixed()[0..7],
        [0xf0, 0, 0x20, 0xff, 0xff, 0xff, 0xff]
    );
    // SILI suppresses a short block, not an overlength one.
    good(&mut d, &mut m, &REWIND, &[]);
    assert_eq!(read_var(&mut d, &mut m, 100, true).sense, None);
    assert!(read_var(&mut d, &mut m, 1, true).sense.is_some());
}

#[test]
fn space_blocks_and_filemarks() {
    let (mut d, mut m) = two_files();
    // Forward 5 blocks: stops after the filemark with residue 5 - 2 = 3.
    let r = run(&mut d, &mut m, &space(0, 5), &[]);
    assert_eq!(
        r.sense,
        sense(
            SenseKey::NoSense,
            FILEMARK_DETECTED,
            STREAM_FILEMARK,
            Some(3)
        )
    );
    assert_eq!(read_var(&mut d, &mut m, 3, false).data, b"ccc");
    // Back one filemark from after "ccc": before the first filemark... then read it.
    good(&mut d, &mut m, &space(1, -1), &[]);
    let r = read_var(&mut d, &mut m, 3, false);
    assert_eq!(r.sense.unwrap().stream, STREAM_FILEMARK);
    // Backward over blocks into BOT: EOM, 00h/04h, the residue.
    good(&mut d, &mut m, &REWIND, &[]);
    good(&mut d, &mut m, &space(0, 1), &[]);
    let r = run(&mut d, &mut m, &space(0, -3), &[]);
    assert_eq!(
        r.sense,
        sense(SenseKey::NoSense, BEGINNING_OF_MEDIUM, STREAM_EOM, Some(2))
    );
    // Forward filemarks past the last: BLANK CHECK with the filemarks not spaced.
    good(&mut d, &mut m, &REWIND, &[]);
    let r = run(&mut d, &mut m, &space(1, 3), &[]);
    assert_eq!(
        r.sense,
        sense(SenseKey::BlankCheck, END_OF_DATA, 0, Some(1))
    );
    // To end of data, then append: a third file after the second.
    good(&mut d, &mut m, &REWIND, &[]);
    good(&mut d, &mut m, &space(3, 0), &[]);
    assert_eq!(write_var(&mut d, &mut m, b"dd").sense, None);
    good(&mut d, &mut m, &REWIND, &[]);
    good(&mut d, &mut m, &space(1, 2), &[]);
    assert_eq!(read_var(&mut d, &mut m, 2, false).data, b"dd");
}

#[test]
fn read_position_and_locate() {
    let (mut d, mut m) = two_files();
    let p = good(&mut d, &mut m, &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
    // Short form at BOP: BOP bit, object 0.
    assert_eq!(p.len(), 20);
    assert_eq!(p[0], 0x80);
    assert_eq!(&p[4..12], &[0, 0, 0, 0, 0, 0, 0, 0]);
    good(&mut d, &mut m, &space(1, 1), &[]);
    let p = good(&mut d, &mut m, &[0x34, 6, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
    // Long form: after "aaaa" "bb" FM, object 3, file 1.
    assert_eq!(p.len(), 32);
    assert_eq!(p[0], 0);
    assert_eq!(u64::from_be_bytes(p[8..16].try_into().unwrap()), 3);
    assert_eq!(u64::from_be_bytes(p[16..24].try_into().unwrap()), 1);
    // LOCATE (10) to object 1 ("bb"), LOCATE (16) to file 2 (after the 2nd filemark).
    good(&mut d, &mut m, &[0x2b, 0, 0, 0, 0, 0, 1, 0, 0, 0], &[]);
    assert_eq!(read_var(&mut d, &mut m, 2, false).data, b"bb");
    let mut l16 = [0u8; 16];
    l16[0] = 0x92;
    l16[1] = 1 << 3;
    l16[11] = 2;
    good(&mut d, &mut m, &l16, &[]);
    let p = good(&mut d, &mut m, &[0x34, 6, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
    assert_eq!(u64::from_be_bytes(p[8..16].try_into().unwrap()), 5);
    // Past the end of data: BLANK CHECK, positioned at EOD.
    let r = run(&mut d, &mut m, &[0x2b, 0, 0, 0, 0, 0, 99, 0, 0, 0], &[]);
    assert_eq!(r.sense.unwrap().key, SenseKey::BlankCheck);
    assert_eq!(
        read_var(&mut d, &mut m, 1, false).sense.unwrap().key,
        SenseKey::BlankCheck
    );
    // An unsupported service action.
    let r = run(&mut d, &mut m, &[0x34, 8, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
    assert_eq!(r.sense, Some(Sense::invalid_cdb_field(1, 4)));
}

fn mode_select_block(len: u32) -> (Vec<u8>, [u8; 6]) {
    let b = len.to_be_bytes();
    let data = vec![0, 0, 0x10, 8, 0, 0, 0, 0, 0, b[1], b[2], b[3]];
    (data, [0x15, 0x10, 0, 0, 12, 0])
}

#[test]
fn fixed_blocks() {
    let (mut d, mut m) = tape(1, Cartridge::Data);
    // FIXED with variable blocks configured.
    let r = run(&mut d, &mut m, &[0x0a, 1, 0, 0, 1, 0], &[0; 512]);
    assert_eq!(r.sense, Some(Sense::invalid_cdb_field(1, 0)));
    let (p, cdb) = mode_select_block(512);
    let r = run(&mut d, &mut m, &cdb, &p);
    assert_eq!((r.sense, r.block_len), (None, 512));
    // READ BLOCK LIMITS reports the fixed length.
    let l = good(&mut d, &mut m, &[0x05, 0, 0, 0, 0, 0], &[]);
    assert_eq!(l, vec![0, 0, 2, 0, 2, 0]);
    let data: Vec<u8> = (0..1536u32).map(|i| i as u8).collect();
    good(&mut d, &mut m, &[0x0a, 1, 0, 0, 3, 0], &data);
    good(&mut d, &mut m, &WFM1, &[]);
    good(&mut d, &mut m, &REWIND, &[]);
    let r = good(&mut d, &mut m, &[0x08, 1, 0, 0, 2, 0], &[]);
    assert_eq!(r, data[..1024]);
    // Four more blocks asked for, one there: the filemark with residue 4 - 1 = 3.
    let r = run(&mut d, &mut m, &[0x08, 1, 0, 0, 4, 0], &[]);
    assert_eq!(r.data, data[1024..]);
    assert_eq!(
        r.sense,
        sense(
            SenseKey::NoSense,
            FILEMARK_DETECTED,
            STREAM_FILEMARK,
            Some(3)
        )
    );
    // A variable block of another length read in fixed mode: ILI with the residue.
    good(&mut d, &mut m, &space(3, 0), &[]);
    let (p, cdb) = mode_select_block(0);
    good(&mut d, &mut m, &cdb, &p);
    assert_eq!(write_var(&mut d, &mut m, b"xyz").sense, None);
    let (p, cdb) = mode_select_block(512);
    good(&mut d, &mut m, &cdb, &p);
    good(&mut d, &mut m, &space(0, -1), &[]);
    let r = run(&mut d, &mut m, &[0x08, 1, 0, 0, 2, 0], &[]);
    assert_eq!(
        r.sense,
        sense(
            SenseKey::NoSense,
            asc::NO_ADDITIONAL_SENSE,
            STREAM_ILI,
            Some(2)
        )
    );
}

#[test]
fn early_warning_then_volume_overflow() {
    // 1 MiB: early warning in the last 64 KiB.
    let (mut d, mut m) = tape(1, Cartridge::Data);
    let block = vec![7u8; 60 * 1024];
    let mut warned_at = None;
    for i in 0..40 {
        let r = write_var(&mut d, &mut m, &block);
        match r.sense {
            None => {}
            Some(s) if s.key == SenseKey::NoSense => {
                // Early warning: written, EOM, 00h/02h, INFORMATION 0.
                assert_eq!(
                    s,
                    sense(SenseKey::NoSense, END_OF_MEDIUM, STREAM_EOM, Some(0)).unwrap()
                );
                warned_at.get_or_insert(i);
            }
            Some(s) => {
                // End of medium: nothing written, VOLUME OVERFLOW, EOM, the residue.
                assert_eq!(
                    s,
                    sense(
                        SenseKey::VolumeOverflow,
                        END_OF_MEDIUM,
                        STREAM_EOM,
                        Some(60 * 1024)
                    )
                    .unwrap()
                );
                let w = warned_at.expect("early warning came first");
                assert!(i > w, "{i} {w}");
                // READ POSITION says beyond early warning.
                let p = good(&mut d, &mut m, &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
                assert_eq!(p[0] & 1, 1);
                // Everything written before reads back.
                good(&mut d, &mut m, &REWIND, &[]);
                for _ in 0..i {
                    assert_eq!(read_var(&mut d, &mut m, 60 * 1024, false).data, block);
                }
                assert_eq!(
                    read_var(&mut d, &mut m, 1, false).sense.unwrap().key,
                    SenseKey::BlankCheck
                );
                return;
            }
        }
    }
    panic!("no end of medium on a 1 MiB tape");
}

#[test]
fn write_protection() {
    let (mut d, mut m) = tape(1, Cartridge::Data);
    m.readonly = true;
    assert_eq!(
        write_var(&mut d, &mut m, b"x").sense,
        Some(Sense::write_protected())
    );
    assert_eq!(
        run(&mut d, &mut m, &WFM1, &[]).sense,
        Some(Sense::write_protected())
    );
    assert_eq!(
        run(&mut d, &mut m, &[0x19, 0, 0, 0, 0, 0], &[]).sense,
        Some(Sense::write_protected())
    );
    // MODE SENSE (6) shows WP and BUFFERED MODE.
    let s = good(&mut d, &mut m, &[0x1a, 0, 0x3f, 0, 0xff, 0], &[]);
    assert_eq!(s[2], 0x90);
    // Software write protect through the device configuration page.
    let (mut d, mut m) = tape(1, Cartridge::Data);
    let mut p = vec![0, 0, 0, 0];
    let mut page = vec![0u8; 16];
    page[0] = 0x10;
    page[1] = 0x0e;
    page[10] = 0x04;
    p.extend_from_slice(&page);
    good(&mut d, &mut m, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p);
    assert_eq!(
        write_var(&mut d, &mut m, b"x").sense,
        Some(Sense::write_protected())
    );
}

#[test]
fn worm_and_cleaning() {
    let (mut d, mut m) = tape(1, Cartridge::Worm);
    assert_eq!(write_var(&mut d, &mut m, b"one").sense, None);
    good(&mut d, &mut m, &REWIND, &[]);
    let r = write_var(&mut d, &mut m, b"two");
    assert_eq!(
        r.sense,
        Some(Sense::new(SenseKey::DataProtect, WORM_OVERWRITE))
    );
    good(&mut d, &mut m, &space(3, 0), &[]);
    assert_eq!(write_var(&mut d, &mut m, b"two").sense, None);
    let (mut d, mut m) = tape(1, Cartridge::Cleaning);
    let r = read_var(&mut d, &mut m, 1, false);
    assert_eq!(
        r.sense,
        Some(Sense::new(SenseKey::MediumError, CLEANING_CARTRIDGE))
    );
}

#[test]
fn erase_truncates_at_the_position() {
    let (mut d, mut m) = two_files();
    good(&mut d, &mut m, &space(0, 1), &[]);
    good(&mut d, &mut m, &[0x19, 1, 0, 0, 0, 0], &[]);
    good(&mut d, &mut m, &REWIND, &[]);
    assert_eq!(read_var(&mut d, &mut m, 4, false).data, b"aaaa");
    assert_eq!(
        read_var(&mut d, &mut m, 2, false).sense.unwrap().key,
        SenseKey::BlankCheck
    );
}

#[test]
fn load_unload_and_prevent() {
    let (mut d, mut m) = two_files();
    good(&mut d, &mut m, &[0x1e, 0, 0, 0, 1, 0], &[]);
    let r = run(&mut d, &mut m, &[0x1b, 0, 0, 0, 0, 0], &[]);
    assert_eq!(
        r.sense,
        Some(Sense::illegal_request(asc::MEDIUM_REMOVAL_PREVENTED))
    );
    good(&mut d, &mut m, &[0x1e, 0, 0, 0, 0, 0], &[]);
    good(&mut d, &mut m, &[0x1b, 0, 0, 0, 0, 0], &[]);
    let r = run(&mut d, &mut m, &[0, 0, 0, 0, 0, 0], &[]);
    assert_eq!(r.sense, Some(not_present()));
    assert_eq!(
        read_var(&mut d, &mut m, 4, false).sense,
        Some(not_present())
    );
    // LOAD: back at the beginning.
    good(&mut d, &mut m, &[0x1b, 0, 0, 0, 1, 0], &[]);
    assert_eq!(read_var(&mut d, &mut m, 4, false).data, b"aaaa");
    // Loaded from outside: one UNIT ATTENTION, then the command runs again.
    d.mark_changed();
    let r = run(&mut d, &mut m, &REWIND, &[]);
    assert_eq!(
        r.sense,
        Some(Sense::new(
            SenseKey::UnitAttention,
            asc::MEDIUM_MAY_HAVE_CHANGED
        ))
    );
    good(&mut d, &mut m, &REWIND, &[]);
    // No image at all.
    let mut empty = Drive::new(false);
    assert_eq!(
        empty.run(&[0, 0, 0, 0, 0, 0], &[], None).sense,
        Some(not_present())
    );
    assert_eq!(
        empty.run(&[0x1b, 0, 0, 0, 1, 0], &[], None).sense,
        Some(not_present())
    );
}

#[test]
fn mode_pages_layout() {
    let (mut d, mut m) = tape(8, Cartridge::Data);
    // MODE SENSE (6), all pages: header 4 + block descriptor 8 + pages.
    let s = good(&mut d, &mut m, &[0x1a, 0, 0x3f, 0, 0xff, 0], &[]);
    assert_eq!(s[0] as usize, s.len() - 1);
    assert_eq!(s[3], 8);
    assert_eq!(&s[4..12], &[DENSITY, 0, 0, 0, 0, 0, 0, 0]);
    let mut at = 12;
    let mut codes = vec![];
    while at < s.len() {
        codes.push(s[at]);
        at += 2 + s[at + 1] as usize;
    }
    assert_eq!(at, s.len());
    assert_eq!(codes, vec![0x01, 0x02, 0x0a, 0x0f, 0x10, 0x11, 0x1c]);
    // Data compression page: DCC, DDE; DCE after MODE SELECT.
    let c = good(&mut d, &mut m, &[0x1a, 8, 0x0f, 0, 0xff, 0], &[]);
    assert_eq!(&c[4..8], &[0x0f, 0x0e, 0x40, 0x80]);
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(&c[4..]);
    p[6] |= 0x80;
    good(&mut d, &mut m, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p);
    let c = good(&mut d, &mut m, &[0x1a, 8, 0x0f, 0, 0xff, 0], &[]);
    assert_eq!(c[6], 0xc0);
    // Medium partition page: one partition of 8 MB.
    let c = good(&mut d, &mut m, &[0x1a, 8, 0x11, 0, 0xff, 0], &[]);
    assert_eq!(&c[4..14], &[0x11, 8, 0, 0, 0x10, 3, 0, 0, 0, 8]);
    // MODE SENSE (10) with a block descriptor and LLBAA: still the short descriptor.
    let s = good(
        &mut d,
        &mut m,
        &[0x5a, 0x10, 0x10, 0, 0, 0, 0, 0, 0xff, 0],
        &[],
    );
    assert_eq!((s[3], s[4], s[7]), (0x10, 0, 8));
    // Saved values, unknown pages, partitions: refused.
    assert!(run(&mut d, &mut m, &[0x1a, 0, 0xcf, 0, 0xff, 0], &[])
        .sense
        .is_some());
    assert!(run(&mut d, &mut m, &[0x1a, 0, 0x08, 0, 0xff, 0], &[])
        .sense
        .is_some());
    let mut p = vec![0, 0, 0, 0, 0x11, 8, 1, 1, 0x20, 3, 0, 0, 0, 8];
    let r = run(&mut d, &mut m, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p);
    assert_eq!(r.sense.unwrap().asc, 0x26);
    p.truncate(6);
    let r = run(&mut d, &mut m, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p);
    assert_eq!(r.sense.unwrap().asc, 0x1a);
    // A block length over the limit.
    let (p, cdb) = mode_select_block(MAX_BLOCK + 1);
    assert_eq!(run(&mut d, &mut m, &cdb, &p).sense.unwrap().asc, 0x26);
}

#[test]
fn report_density_support() {
    let (mut d, mut m) = tape(10, Cartridge::Data);
    let r = good(&mut d, &mut m, &[0x44, 1, 0, 0, 0, 0, 0, 0, 0xff, 0], &[]);
    assert_eq!(r.len(), 56);
    assert_eq!(u16::from_be_bytes([r[0], r[1]]), 54);
    assert_eq!((r[4], r[5], r[6]), (DENSITY, DENSITY, 0xa0));
    assert_eq!(u32::from_be_bytes(r[16..20].try_into().unwrap()), 10);
    let r = run(&mut d, &mut m, &[0x44, 0, 0, 0, 0, 0, 0, 0, 8, 0], &[]);
    assert_eq!(r.data.len(), 8);
}

#[test]
fn corrupt_chain_is_medium_error_not_a_hang() {
    let (mut d, mut m) = two_files();
    // Point the first block's `next` back at itself.
    let (mut h, _) = BlockHeader::decode(&m.bytes[FIRST_BLOCK as usize..]).unwrap();
    h.next = h.curr;
    m.bytes[FIRST_BLOCK as usize..FIRST_BLOCK as usize + 48].copy_from_slice(&h.encode());
    good(&mut d, &mut m, &REWIND, &[]);
    let r = run(&mut d, &mut m, &space(3, 0), &[]);
    assert_eq!(r.sense, Some(corrupt()));
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Obj {
        Block(Vec<u8>),
        Filemark,
    }

    fn obj() -> impl Strategy<Value = Obj> {
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 1..300).prop_map(Obj::Block),
            1 => Just(Obj::Filemark),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever sequence of blocks and filemarks is written, a rewind reads it
        /// back in order (a filemark as FILEMARK sense), READ POSITION counts the
        /// objects and files passed, and SPACE to end of data lands after the last.
        #[test]
        fn written_objects_read_back(objs in proptest::collection::vec(obj(), 0..40)) {
            let (mut d, mut m) = tape(1, Cartridge::Data);
            for o in &objs {
                let r = match o {
                    Obj::Block(b) => write_var(&mut d, &mut m, b),
                    Obj::Filemark => run(&mut d, &mut m, &WFM1, &[]),
                };
                prop_assert_eq!(r.sense, None);
            }
            good(&mut d, &mut m, &REWIND, &[]);
            let mut files = 0u64;
            for (i, o) in objs.iter().enumerate() {
                let p = good(&mut d, &mut m, &[0x34, 6, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
                prop_assert_eq!(u64::from_be_bytes(p[8..16].try_into().unwrap()), i as u64);
                prop_assert_eq!(u64::from_be_bytes(p[16..24].try_into().unwrap()), files);
                let r = read_var(&mut d, &mut m, 300, true);
                match o {
                    Obj::Block(b) => {
                        prop_assert_eq!(r.sense, None);
                        prop_assert_eq!(&r.data, b);
                    }
                    Obj::Filemark => {
                        prop_assert_eq!(r.sense.map(|s| s.stream), Some(STREAM_FILEMARK));
                        files += 1;
                    }
                }
            }
            let r = read_var(&mut d, &mut m, 1, false);
            prop_assert_eq!(r.sense.map(|s| s.key), Some(SenseKey::BlankCheck));
            good(&mut d, &mut m, &REWIND, &[]);
            good(&mut d, &mut m, &space(3, 0), &[]);
            let p = good(&mut d, &mut m, &[0x34, 6, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
            prop_assert_eq!(u64::from_be_bytes(p[8..16].try_into().unwrap()), objs.len() as u64);
            // Spacing back over every filemark reaches BOP exactly when there are some.
            let fms = objs.iter().filter(|o| matches!(o, Obj::Filemark)).count() as i32;
            if fms > 0 {
                good(&mut d, &mut m, &space(1, -fms), &[]);
                let r = run(&mut d, &mut m, &space(1, -1), &[]);
                prop_assert_eq!(r.sense.map(|s| s.asc), Some(0));
            }
        }

        /// Random CDBs never panic and always answer with the block length.
        #[test]
        fn random_cdbs(cdbs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 1..20)) {
            let (mut d, mut m) = two_files();
            for c in cdbs {
                let r = d.run(&c, &[0u8; 64], Some(&mut m));
                prop_assert_eq!(r.block_len, d.block_len());
            }
        }
    }
}
