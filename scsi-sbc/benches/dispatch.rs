//! CDB dispatch costs per command: `prepare_in` + `execute_in` + `complete_in` for
//! READ(16) and WRITE(16) of 4 KiB (what every data command pays before and after the
//! store), and INQUIRY answered without a store.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use scsi_sbc::{
    complete_in, execute_in, prepare_in, DeviceType, LuConfig, LuContext, LuIdentity, LuState,
    Nexus, Plan,
};

fn disk() -> LuConfig {
    LuConfig {
        device_type: DeviceType::Disk,
        block_size: 512,
        num_blocks: 2 * 1024 * 1024,
        identity: LuIdentity {
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-DISK".into(),
            product_rev: "0001".into(),
            scsi_id: "IET     00010001".into(),
            scsi_sn: "beaf11".into(),
        },
        readonly: false,
        removable: false,
        write_cache: true,
        thin_provisioning: false,
        descriptor_sense: false,
        sanitize: false,
        geometry: Default::default(),
    }
}

const CTX: LuContext<'static> = LuContext {
    lun: 1,
    luns: &[0, 1],
    target_name: "iqn.2026-11.org.example:bench",
    tpgt: 1,
    nexus: Nexus {
        id: 7,
        initiator_port: 7,
        initiator: "iqn.2026-11.org.example:initiator",
    },
    peers: &[],
    alua: None,
};

fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = op;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// A state past the power-on unit attention of `CTX`'s nexus.
fn settled(lu: &LuConfig) -> LuState {
    let mut state = LuState::new();
    let tur = [0u8; 6];
    while prepare_in(&tur, lu, &CTX, &mut state).is_err() {}
    state
}

/// One data command through the three calls; the store's answer is `result`.
fn command(lu: &LuConfig, state: &mut LuState, cdb: &[u8], out: Bytes, result: Bytes) {
    let prepared = prepare_in(cdb, lu, &CTX, state).expect("admitted");
    black_box(prepared);
    match execute_in(cdb, lu, &CTX, state, out) {
        Plan::Io(op) => {
            let outcome = complete_in(cdb, lu, CTX.nexus.id, state, &op, Ok(result));
            black_box(outcome);
        }
        Plan::Done(o) => panic!("expected I/O, got {o:?}"),
    }
}

fn dispatch(c: &mut Criterion) {
    let lu = disk();
    let mut state = settled(&lu);
    let data = Bytes::from(vec![0x5au8; 4096]);
    let read = rw16(0x88, 4096, 8);
    let write = rw16(0x8a, 4096, 8);
    c.bench_function("dispatch/read16_4k", |b| {
        b.iter(|| {
            command(
                &lu,
                &mut state,
                black_box(&read),
                Bytes::new(),
                data.clone(),
            )
        })
    });
    c.bench_function("dispatch/write16_4k", |b| {
        b.iter(|| {
            command(
                &lu,
                &mut state,
                black_box(&write),
                data.clone(),
                Bytes::new(),
            )
        })
    });
    let inquiry = [0x12u8, 0, 0, 0, 96, 0];
    c.bench_function("dispatch/inquiry", |b| {
        b.iter(
            || match execute_in(black_box(&inquiry), &lu, &CTX, &mut state, Bytes::new()) {
                Plan::Done(o) => black_box(o),
                Plan::Io(op) => panic!("INQUIRY asked the store: {op:?}"),
            },
        )
    });
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
