//! 4 KiB reads and writes and 128 KiB reads on the memory and file stores: the per-command cost of the
//! backing store alone, without the pool or the protocol.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scsi_sbc::{BlockOp, BlockStore};

use backends::{FileStore, MemoryStore, OpenOptions};

const IO: u64 = 4096;
const SIZE: u64 = 64 << 20;
const BIG: u64 = 128 << 10;

/// Walk the store in 4 KiB steps so the benchmark is not one hot cache line.
fn offsets() -> impl FnMut() -> u64 {
    let mut next = 0u64;
    move || {
        let at = next;
        next = (next + 7 * IO) % SIZE;
        at
    }
}

fn bench_store(c: &mut Criterion, name: &str, store: &dyn BlockStore) {
    let data = Bytes::from(vec![0xa5u8; IO as usize]);
    // Fill the range so reads copy real data rather than shared zeros.
    for offset in (0..SIZE).step_by(IO as usize) {
        let op = BlockOp::Write {
            offset,
            data: data.clone(),
            fua: false,
        };
        store.execute(&op).unwrap();
    }

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(IO));
    let mut next = offsets();
    group.bench_function("read_4k", |b| {
        b.iter(|| {
            store
                .execute(&BlockOp::Read {
                    offset: next(),
                    len: IO,
                })
                .unwrap()
        })
    });
    let mut next = offsets();
    group.bench_function("write_4k", |b| {
        b.iter(|| {
            let op = BlockOp::Write {
                offset: next(),
                data: data.clone(),
                fua: false,
            };
            store.execute(&op).unwrap()
        })
    });
    group.finish();

    // A large read: what filling the buffer costs besides the copy from the cache.
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(BIG));
    let mut at = 0;
    group.bench_function("read_128k", |b| {
        b.iter(|| {
            at = (at + BIG) % SIZE;
            store
                .execute(&BlockOp::Read {
                    offset: at,
                    len: BIG,
                })
                .unwrap()
        })
    });
    group.finish();
}

fn stores(c: &mut Criterion) {
    let memory = MemoryStore::new(SIZE);
    bench_store(c, "memory", &memory);

    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(SIZE).unwrap();
    let store = FileStore::open(file.path(), &OpenOptions::default()).unwrap();
    bench_store(c, "file", &store);
}

criterion_group!(benches, stores);
criterion_main!(benches);
