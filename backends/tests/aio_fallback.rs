//! `--bstype aio` where io_uring cannot be had: the store runs on the worker pool
//! (no ring file), says why, and keeps the store contract. Its own test binary, so
//! that io_uring can be switched off for the whole process before it is probed.

use backends::{open_store, BlockOp, BsType, OpenOptions};
use bytes::Bytes;

#[test]
fn aio_falls_back_to_the_pool_and_says_why() {
    // SAFETY-free in edition 2021; this binary has one test, so no other thread
    // reads the environment meanwhile.
    std::env::set_var("TGTD_NO_IO_URING", "1");
    assert_eq!(
        backends::uring::availability(),
        &Err("disabled by TGTD_NO_IO_URING".to_string())
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("lun.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let store = open_store(BsType::Aio, path.to_str().unwrap(), &OpenOptions::default()).unwrap();
    assert!(store.ring_file().is_none());
    assert_eq!(
        store.backend_note().as_deref(),
        Some("thread pool: io_uring unavailable: disabled by TGTD_NO_IO_URING")
    );
    let data = Bytes::from(vec![0x5a; 4096]);
    store
        .execute(&BlockOp::Write {
            offset: 8192,
            data: data.clone(),
            fua: true,
        })
        .unwrap();
    let back = store
        .execute(&BlockOp::Read {
            offset: 8192,
            len: 4096,
        })
        .unwrap();
    assert_eq!(back, data);
}
