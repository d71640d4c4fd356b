use super::*;
use std::collections::BTreeMap;

#[derive(Default)]
struct Bay {
    loaded: BTreeMap<(u32, u64), String>,
    prevent: bool,
    fail: bool,
}

impl DriveBay for Bay {
    fn load(&mut self, drive: (u32, u64), path: &str) -> Result<(), String> {
        if self.fail {
            return Err("no such file".into());
        }
        self.loaded.insert(drive, path.to_owned());
        Ok(())
    }
    fn unload(&mut self, drive: (u32, u64)) -> Result<(), String> {
        self.loaded.remove(&drive);
        Ok(())
    }
    fn prevented(&self, _drive: (u32, u64)) -> bool {
        self.prevent
    }
}

/// tgt's example library: 2 drives at 1-2, a picker at 16, 10 slots from 1024 with
/// two tapes, 2 mail slots at 32.
fn library() -> Library {
    let mut l = Library::default();
    for p in [
        "element_type=4,start_address=1,quantity=2",
        "element_type=4,address=1,tid=1,lun=1",
        "element_type=4,address=2,tid=1,lun=2",
        "element_type=1,start_address=16,quantity=1",
        "element_type=2,start_address=1024,quantity=10",
        "element_type=2,address=1024,barcode=TAPE01,sides=1",
        "element_type=2,address=1026,barcode=TAPE02",
        "element_type=3,start_address=32,quantity=2",
        "media_home=/vtl",
    ] {
        l.configure(p).unwrap();
    }
    l
}

fn res(cdb_flags: u8, start: u16, count: u16, dvcid: bool) -> [u8; 12] {
    let s = start.to_be_bytes();
    let n = count.to_be_bytes();
    [
        0xb8,
        cdb_flags,
        s[0],
        s[1],
        n[0],
        n[1],
        u8::from(dvcid),
        0,
        0x40,
        0,
        0,
        0,
    ]
}

#[test]
fn configuration_errors() {
    let mut l = library();
    assert_eq!(
        l.configure("colour=red"),
        Err(ConfigError::UnknownParam("colour".into()))
    );
    assert!(l
        .configure("element_type=2,start_address=1030,quantity=2")
        .is_err());
    assert!(l.configure("element_type=2,address=999,barcode=X").is_err());
    assert!(l.configure("element_type=4,address=1").is_err());
    // One drive LU for one element.
    assert!(l.configure("element_type=4,address=2,tid=1,lun=1").is_err());
    assert!(l
        .configure("element_type=9,start_address=5000,quantity=1")
        .is_err());
    assert!(l
        .configure("element_type=2,address=1025,barcode=ABCDEFGHIJKL")
        .is_err());
    assert_eq!(l.assignment(ElementType::Storage), (1024, 10));
}

#[test]
fn read_element_status_layout() {
    let l = library();
    // All elements with volume tags: header, then pages in type order.
    let d = read_element_status(&l, true, 0, 0, 0xffff, false);
    assert_eq!(u16::from_be_bytes([d[0], d[1]]), 16);
    assert_eq!(u16::from_be_bytes([d[2], d[3]]), 15);
    let total = u32::from_be_bytes([0, d[5], d[6], d[7]]) as usize;
    assert_eq!(total, d.len() - 8);
    let mut at = 8;
    let mut types = vec![];
    while at < d.len() {
        let (t, flags) = (d[at], d[at + 1]);
        let len = usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        let bytes = u32::from_be_bytes([0, d[at + 5], d[at + 6], d[at + 7]]) as usize;
        assert_eq!((flags, len), (0x80, 52));
        types.push((t, bytes / len));
        if t == 2 {
            // Slot 1024: full, ACCESS, the barcode as volume tag.
            let e = &d[at + 8..at + 8 + len];
            assert_eq!(&e[0..3], &[0x04, 0x00, 0x09]);
            assert_eq!(&e[12..44], format!("{:<32}", "TAPE01").as_bytes());
            // Slot 1025: empty, tag blank.
            let e = &d[at + 8 + len..at + 8 + 2 * len];
            assert_eq!(e[2], 0x08);
            assert_eq!(&e[12..44], &[b' '; 32]);
        }
        at += 8 + bytes;
    }
    assert_eq!(types, vec![(1, 1), (2, 10), (3, 2), (4, 2)]);
    // Only drives, with DVCID: descriptor length 50 without volume tags.
    let d = read_element_status(&l, false, 4, 0, 10, true);
    assert_eq!((d[8], u16::from_be_bytes([d[10], d[11]])), (4, 50));
    // Start address and count limit.
    let d = read_element_status(&l, false, 2, 1030, 3, false);
    assert_eq!(u16::from_be_bytes([d[0], d[1]]), 1030);
    assert_eq!(u16::from_be_bytes([d[2], d[3]]), 3);
}

#[test]
fn move_between_slots_and_drives() {
    let mut l = library();
    let mut bay = Bay::default();
    // Slot 1024 to drive 1: the drive LU gets /vtl/TAPE01.
    l.move_medium(1024, 1, false, &mut bay).unwrap();
    assert_eq!(
        bay.loaded.get(&(1, 1)).map(String::as_str),
        Some("/vtl/TAPE01")
    );
    let d = read_element_status(&l, true, 4, 0, 10, false);
    let e = &d[16..16 + 52];
    assert_eq!(e[2] & 1, 1);
    assert_eq!(
        (e[9] & 0x80, u16::from_be_bytes([e[10], e[11]])),
        (0x80, 1024)
    );
    // Errors: source empty, destination full, bad address, removal prevented.
    let empty = Sense::illegal_request(library::SOURCE_EMPTY);
    assert_eq!(l.move_medium(1024, 1025, false, &mut bay), Err(empty));
    let full = Sense::illegal_request(library::DESTINATION_FULL);
    assert_eq!(l.move_medium(1026, 1, false, &mut bay), Err(full));
    let bad = Sense::illegal_request(library::INVALID_ELEMENT_ADDRESS);
    assert_eq!(l.move_medium(7, 1, false, &mut bay), Err(bad));
    bay.prevent = true;
    assert_eq!(
        l.move_medium(1, 1029, false, &mut bay),
        Err(Sense::illegal_request(asc::MEDIUM_REMOVAL_PREVENTED))
    );
    bay.prevent = false;
    // Drive 1 to slot 1029: unloaded, the slot full.
    l.move_medium(1, 1029, false, &mut bay).unwrap();
    assert!(bay.loaded.is_empty());
    assert!(l
        .elements
        .iter()
        .any(|e| e.addr == 1029 && e.full && e.barcode == "TAPE01"));
    // A drive that will not take the image.
    bay.fail = true;
    let e = l.move_medium(1026, 2, false, &mut bay).unwrap_err();
    assert_eq!(
        (e.key, e.asc, e.ascq),
        (SenseKey::HardwareError, 0x15, 0x01)
    );
    assert!(l.elements.iter().any(|e| e.addr == 1026 && e.full));
}

#[test]
fn commands_through_run() {
    let mut l = library();
    let mut bay = Bay::default();
    let r = run(&res(0x12, 0, 100, false), &mut l, &mut bay);
    assert_eq!(r.sense, None);
    assert_eq!(r.data[8], 2);
    let r = run(
        &[0xa5, 0, 0, 16, 0x04, 0x00, 0, 2, 0, 0, 0, 0],
        &mut l,
        &mut bay,
    );
    assert_eq!(r.sense, None);
    assert_eq!(bay.loaded.len(), 1);
    // Element address assignment page.
    let r = run(&[0x1a, 0x08, 0x1d, 0, 0xff, 0], &mut l, &mut bay);
    let p = &r.data[4..];
    assert_eq!(
        &p[..18],
        &[0x1d, 0x12, 0, 16, 0, 1, 0x04, 0x00, 0, 10, 0, 32, 0, 2, 0, 1, 0, 2]
    );
    // SBC and SSC opcodes are not a changer's.
    for op in [0x28u8, 0x08, 0x0a, 0x25] {
        let mut cdb = [0u8; 16];
        cdb[0] = op;
        assert_eq!(SmcCdb::parse(&cdb), Err(Sense::invalid_opcode()));
    }
    assert_eq!(
        SmcCdb::parse(&[0xb8, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(Sense::invalid_cdb_field(1, 3))
    );
    assert!(SmcCdb::parse(&[0xa5, 0, 0]).is_err());
}
