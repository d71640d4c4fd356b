//! The store contract itself (see `contract.rs` for what it promises), shared by
//! the test binaries that run it: `backends/tests/contract.rs` on the local stores
//! and `tests/tests/rbd.rs` on an rbd image of a real Ceph cluster (which includes
//! this file by path, being another package).
#![allow(dead_code)] // each includer uses a part

use backends::{BlockOp, BlockStore, IoErrorKind};
use bytes::Bytes;
use std::sync::Arc;

pub const SIZE: u64 = 8 << 20;
pub const BLOCK: u64 = 512;

/// A small deterministic generator: the contract runs are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn pattern(seed: u64, len: usize) -> Bytes {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next() as u8).collect::<Vec<u8>>().into()
}

pub fn read(s: &dyn BlockStore, offset: u64, len: u64) -> Bytes {
    s.execute(&BlockOp::Read { offset, len }).expect("read")
}

pub fn write(s: &dyn BlockStore, offset: u64, data: Bytes) {
    s.execute(&BlockOp::Write {
        offset,
        data,
        fua: false,
    })
    .expect("write");
}

/// Whether the store keeps what is written (null does not).
#[derive(Clone, Copy, PartialEq)]
pub enum Keeps {
    Data,
    Nothing,
}

pub fn contract(store: Arc<dyn BlockStore>, keeps: Keeps) {
    assert_eq!(store.size(), SIZE);
    let s = &*store;

    // Read after write at random block-aligned offsets and sizes (1 block..256 KiB),
    // checked against a model of the whole store.
    // The model starts as what the store holds now (a device may have old data).
    let mut model = match keeps {
        Keeps::Data => read(s, 0, SIZE).to_vec(),
        Keeps::Nothing => vec![0u8; SIZE as usize],
    };
    let mut rng = Rng(0x5eed_1234);
    for i in 0..200 {
        let blocks = 1 + rng.below(512);
        let lba = rng.below(SIZE / BLOCK - blocks);
        let (off, len) = (lba * BLOCK, blocks * BLOCK);
        let data = pattern(i, len as usize);
        write(s, off, data.clone());
        if keeps == Keeps::Data {
            model[off as usize..(off + len) as usize].copy_from_slice(&data);
        }
        let (rlba, rblocks) = (rng.below(SIZE / BLOCK - 64), 1 + rng.below(64));
        let (roff, rlen) = (rlba * BLOCK, rblocks * BLOCK);
        same(
            &read(s, roff, rlen),
            &model[roff as usize..(roff + rlen) as usize],
            &format!("read of {rlen} at {roff} after write {i}"),
        );
    }
    assert_eq!(s.execute(&BlockOp::Flush), Ok(Bytes::new()));
    same(&read(s, 0, SIZE), &model, "the whole store");

    // Concurrent writes to distinct blocks from several threads.
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..64u64 {
                    let lba = (i * 4 + t) * 8; // 4 KiB apart, interleaved between threads
                    write(&*store, lba * BLOCK, pattern(t * 1000 + i, 4096));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    for t in 0..4u64 {
        for i in 0..64u64 {
            let lba = (i * 4 + t) * 8;
            let want = match keeps {
                Keeps::Data => pattern(t * 1000 + i, 4096),
                Keeps::Nothing => Bytes::from(vec![0u8; 4096]),
            };
            same(
                &read(s, lba * BLOCK, 4096),
                &want,
                &format!("thread {t} write {i}"),
            );
        }
    }

    // Discard, then the range reads as zeros; its neighbours keep their data.
    write(s, 1 << 20, pattern(77, 1 << 20));
    s.execute(&BlockOp::Unmap {
        ranges: vec![((1 << 20) + 65536, 131072)],
    })
    .expect("unmap");
    same(
        &read(s, (1 << 20) + 65536, 131072),
        &[0u8; 131072],
        "unmapped range",
    );
    if keeps == Keeps::Data {
        same(
            &read(s, 1 << 20, 65536),
            &pattern(77, 1 << 20)[..65536],
            "before the unmapped range",
        );
    }
    assert_eq!(s.execute(&BlockOp::Flush), Ok(Bytes::new()));

    // Past the end: an error or zeros, never a panic (the SCSI layer refuses such
    // LBAs before they get here; a store must still not fall over).
    let past = s.execute(&BlockOp::Read {
        offset: SIZE,
        len: BLOCK,
    });
    assert!(
        past.as_ref().map_or(true, |b| b.iter().all(|&x| x == 0)),
        "{past:?}"
    );
}

/// Equal bytes, or a failure that says where they first differ (not a dump).
pub fn same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i}: got {:#04x}, want {:#04x}",
            got[i], want[i]
        );
    }
}

pub fn readonly_contract(store: Arc<dyn BlockStore>) {
    let w = BlockOp::Write {
        offset: 0,
        data: Bytes::from(vec![1u8; 512]),
        fua: false,
    };
    assert_eq!(store.execute(&w), Err(IoErrorKind::ReadOnly));
    assert_eq!(
        store.execute(&BlockOp::Unmap {
            ranges: vec![(0, 512)]
        }),
        Err(IoErrorKind::ReadOnly)
    );
    assert_eq!(read(&*store, 0, 512), Bytes::from(vec![0u8; 512]));
}
