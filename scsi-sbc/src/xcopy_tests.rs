use super::*;
use crate::dispatch::{complete_in, execute_in, ScsiStatus};
use crate::test_util::{disk, CTX};
use crate::vpd::naa6;

/// EXTENDED COPY (LID1) CDB with PARAMETER LIST LENGTH `len` (SPC-4 table 101).
fn xcopy_cdb(len: usize) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

/// An identification CSCD descriptor naming the LU with SCSI ID `scsi_id` by its NAA
/// designator, as libiscsi's populate_tgt_desc builds it (block size 512).
fn cscd(scsi_id: &str) -> Vec<u8> {
    let mut d = vec![0u8; 32];
    d[0] = 0xe4;
    d[4] = 0x01; // code set binary
    d[5] = 0x03; // association LU, type NAA
    d[7] = 16;
    d[8..24].copy_from_slice(&naa6(scsi_id));
    d[29..32].copy_from_slice(&[0, 2, 0]);
    d
}

/// A block-to-block segment descriptor (SPC-4 table 121).
fn b2b(src: u16, dst: u16, blocks: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
    let mut d = vec![0u8; 28];
    d[0] = 0x02;
    d[3] = 0x18;
    d[4..6].copy_from_slice(&src.to_be_bytes());
    d[6..8].copy_from_slice(&dst.to_be_bytes());
    d[10..12].copy_from_slice(&blocks.to_be_bytes());
    d[12..20].copy_from_slice(&src_lba.to_be_bytes());
    d[20..28].copy_from_slice(&dst_lba.to_be_bytes());
    d
}

/// A parameter list: header with list id 1 and `usage`, then the descriptors.
fn list(usage: u8, cscds: &[Vec<u8>], segs: &[Vec<u8>]) -> Vec<u8> {
    list_id(1, usage, cscds, segs)
}

/// A parameter list with list identifier `id`.
fn list_id(id: u8, usage: u8, cscds: &[Vec<u8>], segs: &[Vec<u8>]) -> Vec<u8> {
    let c: Vec<u8> = cscds.concat();
    let s: Vec<u8> = segs.concat();
    let mut d = vec![0u8; 16];
    d[0] = id;
    d[1] = usage << 3;
    d[2..4].copy_from_slice(&(c.len() as u16).to_be_bytes());
    d[8..12].copy_from_slice(&(s.len() as u32).to_be_bytes());
    d.extend_from_slice(&c);
    d.extend_from_slice(&s);
    d
}

fn run(ctx: &LuContext<'_>, st: &mut LuState, data: &[u8]) -> Plan {
    let cdb = xcopy_cdb(data.len());
    execute_in(&cdb, &disk(), ctx, st, Bytes::copy_from_slice(data))
}

fn sense_of(p: Plan) -> (SenseKey, u8, u8) {
    match p {
        Plan::Done(o) => {
            let s = o.sense.expect("CHECK CONDITION");
            (s.key, s.asc, s.ascq)
        }
        other => panic!("expected an answer, got {other:?}"),
    }
}

const ME: &str = "IET     00010001";

#[test]
fn copy_within_the_lu() {
    let mut st = LuState::settled(&[1, 2, 3]);
    let d = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 996)]);
    let op = match run(&CTX, &mut st, &d) {
        Plan::Io(op) => op,
        other => panic!("{other:?}"),
    };
    let seg = CopySegment {
        src: 1,
        dst: 1,
        src_offset: 0,
        dst_offset: 996 * 512,
        len: 2048,
    };
    assert_eq!(
        op,
        BlockOp::Copy {
            segments: vec![seg],
            fua: false,
            held: Some(1),
        }
    );
    // Held (LIST ID USAGE 00b): in progress, then completed after the store is done.
    let rcr = [0x84, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0];
    let lu = disk();
    let o = complete_in(&[0x83], &lu, CTX.nexus.id, &mut st, &op, Ok(Bytes::new()));
    assert_eq!(o.status, ScsiStatus::Good);
    match execute_in(&rcr, &lu, &CTX, &mut st, Bytes::new()) {
        Plan::Done(o) => assert_eq!(&o.data[..], &[0, 0, 0, 8, 1, 0, 1, 0, 0, 0, 8, 0]),
        other => panic!("{other:?}"),
    }
    // Reported once; another list id was never held.
    let (key, asc, _) = sense_of(execute_in(&rcr, &lu, &CTX, &mut st, Bytes::new()));
    assert_eq!((key, asc), (SenseKey::IllegalRequest, 0x24));
}

#[test]
fn copy_between_lus_names_the_peer() {
    let mut other = disk();
    other.identity.scsi_id = "IET     00010002".into();
    other.num_blocks = 10;
    let peers = [(2u64, &other)];
    let ctx = LuContext {
        peers: &peers,
        alua: None,
        ..CTX
    };
    let mut st = LuState::settled(&[1, 2, 3]);
    let d = list(
        2,
        &[cscd(ME), cscd("IET     00010002")],
        &[b2b(0, 1, 2, 5, 8)],
    );
    match run(&ctx, &mut st, &d) {
        Plan::Io(BlockOp::Copy { segments, .. }) => {
            assert_eq!((segments[0].src, segments[0].dst), (1, 2));
            assert_eq!(segments[0].dst_offset, 8 * 512);
        }
        other => panic!("{other:?}"),
    }
    assert!(st.copies.is_empty(), "LIST ID USAGE 10b holds nothing");
    // Past the peer's 10 blocks: COPY ABORTED.
    let d = list(
        2,
        &[cscd(ME), cscd("IET     00010002")],
        &[b2b(0, 1, 3, 5, 8)],
    );
    assert_eq!(
        sense_of(run(&ctx, &mut st, &d)),
        (SenseKey::CopyAborted, 0, 0)
    );
    // Without the peer, the designator names nothing here.
    let d = list(
        2,
        &[cscd(ME), cscd("IET     00010002")],
        &[b2b(0, 1, 2, 5, 8)],
    );
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::CopyAborted, 0x0d, 0x02)
    );
}

#[test]
fn parameter_list_errors() {
    let mut st = LuState::settled(&[1, 2, 3]);
    let full = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 996)]);
    // libiscsi ExtendedCopy.ParamHdr: truncated descriptors.
    for cut in [47, 16 + 32 + 27, 10] {
        assert_eq!(
            sense_of(run(&CTX, &mut st, &full[..cut])),
            (SenseKey::IllegalRequest, 0x1a, 0x00)
        );
    }
    assert!(matches!(run(&CTX, &mut st, &[]), Plan::Done(o) if o.status == ScsiStatus::Good));
    // Unsupported CSCD (FC N_Port_Name, E0h) and segment (stream-to-stream, 03h).
    let mut fc = cscd(ME);
    fc[0] = 0xe0;
    let d = list(0, &[fc], &[b2b(0, 0, 4, 0, 996)]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::IllegalRequest, 0x26, 0x07)
    );
    let mut stream = vec![0u8; 20];
    stream[0] = 0x03;
    stream[3] = 0x10;
    let d = list(0, &[cscd(ME)], &[stream]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::IllegalRequest, 0x26, 0x09)
    );
    // Too many descriptors of either kind, and too long a list.
    let d = list(0, &vec![cscd(ME); 9], &[b2b(0, 0, 4, 0, 996)]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::IllegalRequest, 0x26, 0x06)
    );
    let d = list(0, &[cscd(ME)], &vec![b2b(0, 0, 4, 0, 996); 9]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::IllegalRequest, 0x26, 0x08)
    );
    let d = list(0, &vec![cscd(ME); 9], &vec![b2b(0, 0, 4, 0, 996); 30]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::IllegalRequest, 0x1a, 0x00)
    );
    // A segment naming a CSCD that is not there, or blocks past the end.
    let d = list(0, &[cscd(ME)], &[b2b(0, 1, 4, 0, 996)]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::CopyAborted, 0x08, 0x04)
    );
    let d = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 999)]);
    assert_eq!(
        sense_of(run(&CTX, &mut st, &d)),
        (SenseKey::CopyAborted, 0, 0)
    );
}

#[test]
fn failed_copy_is_copy_aborted() {
    let mut st = LuState::settled(&[1, 2, 3]);
    let d = list(0, &[cscd(ME)], &[b2b(0, 0, 4, 0, 8)]);
    let Plan::Io(op) = run(&CTX, &mut st, &d) else {
        panic!("expected a copy");
    };
    let o = complete_in(
        &[0x83],
        &disk(),
        1,
        &mut st,
        &op,
        Err(IoErrorKind::WriteError),
    );
    let s = o.sense.expect("sense");
    assert_eq!((s.key, s.asc), (SenseKey::CopyAborted, 0x0c));
    assert_eq!(st.copies[&1][0].status, COMPLETED_WITH_ERRORS);
}

#[test]
fn operating_parameters_and_vpd_page() {
    let d = operating_parameters(&disk());
    // libiscsi reads at least 40 bytes of AVAILABLE DATA and the descriptor codes.
    assert_eq!(
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize,
        d.len() - 4
    );
    assert_eq!(&d[8..12], &[0, 8, 0, 8]);
    assert_eq!(&d[43..], &[2, 0x02, 0xe4]);
    let p = third_party_copy_page();
    assert_eq!(
        &p[..16],
        &[0, 1, 0, 12, 8, 0x83, 1, 0, 0x84, 3, 0, 3, 4, 0, 0, 0],
        "Supported Commands descriptor"
    );
    // MAXIMUM and TOTAL CONCURRENT COPIES: the held results of one nexus.
    assert_eq!(
        &d[34..37],
        &[0, MAX_HELD_COPIES as u8, MAX_HELD_COPIES as u8]
    );
    assert_eq!(p.len() % 4, 0);
}

#[path = "xcopy_held_tests.rs"]
mod held;
