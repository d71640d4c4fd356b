//! The control socket end to end, with a direct client on the wire format.

use super::*;
use backends::{open_store, BsType, OpenOptions};
use scsi_sbc::BlockStore;
use std::sync::atomic::AtomicUsize;
use target_core::mgmt::wire::{decode_response, encode_request};

/// Opens through `backends`, the way a daemon would.
struct Opener;

impl StoreOpener for Opener {
    fn open(&self, spec: &target_core::mgmt::StoreSpec<'_>) -> Result<Arc<dyn BlockStore>, String> {
        let bstype: BsType = spec.bstype.parse().map_err(|e| format!("{e}"))?;
        let opts = OpenOptions {
            readonly: spec.readonly,
            ..OpenOptions::default()
        };
        open_store(bstype, spec.path, &opts).map_err(|e| e.to_string())
    }
}

fn temp_socket(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir()
        .join(format!("tgtd-mgmt-test-{}-{tag}-{n}", std::process::id()))
        .join("socket.0")
}

fn start(path: &Path) -> (MgmtServer, Arc<Core>) {
    let core = Arc::new(Core::new());
    let server = spawn(path, core.clone(), Arc::new(Opener)).expect("spawn");
    (server, core)
}

fn call(path: &Path, req: &Request) -> Result<Response, MgmtError> {
    let mut s = UnixStream::connect(path).expect("connect");
    let mut frame = Vec::new();
    encode_request(req, &mut frame);
    s.write_all(&frame).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let (answer, used) = decode_response(&buf).unwrap().expect("a whole answer");
    assert_eq!(used, buf.len(), "one answer, then close");
    answer
}

#[test]
fn serves_requests_and_cleans_up() {
    let path = temp_socket("serve");
    let (server, core) = start(&path);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o755);

    let new = Request::TargetNew {
        tid: 1,
        name: "iqn.2024-01.test:t1".into(),
    };
    assert_eq!(call(&path, &new), Ok(Response::ok()));
    assert_eq!(call(&path, &new), Err(MgmtError::TargetExists));
    let lu = Request::LuNew {
        tid: 1,
        lun: 1,
        backing_store: "16M".into(),
        bstype: Some("memory".into()),
        blocksize: None,
        params: None,
        bsoflags: None,
        bsopts: None,
        device_type: None,
    };
    assert_eq!(call(&path, &lu), Ok(Response::ok()));
    assert_eq!(core.registry.target(1).unwrap().lun_numbers(), vec![0, 1]);
    let bad = Request::LuNew {
        tid: 1,
        lun: 2,
        backing_store: "/nonexistent/tgtd-test.img".into(),
        bstype: None,
        blocksize: None,
        params: None,
        bsoflags: None,
        bsopts: None,
        device_type: None,
    };
    assert_eq!(call(&path, &bad).unwrap_err().code(), 17);
    let shown = call(&path, &Request::TargetShow).unwrap().output.unwrap();
    assert!(
        shown.starts_with("Target 1: iqn.2024-01.test:t1\n"),
        "{shown}"
    );
    assert!(
        shown.contains("            Size: 17 MB, Block size: 512\n"),
        "{shown}"
    );

    drop(server);
    assert!(!path.exists(), "drop removes the socket");
    let _ = fs::remove_dir(path.parent().unwrap());
}

#[test]
fn garbage_gets_an_answer_not_a_hang() {
    let path = temp_socket("garbage");
    let (_server, _core) = start(&path);
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let (answer, _) = decode_response(&buf).unwrap().unwrap();
    assert_eq!(answer, Err(MgmtError::InvalidRequest));
    // The server is still there for the next client.
    assert!(call(&path, &Request::SystemShow).is_ok());
}

#[test]
fn stale_sockets_are_replaced_live_ones_are_not() {
    let path = temp_socket("stale");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A socket file nobody listens on, as a crashed daemon leaves it.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (server, _core) = start(&path);
    let err = spawn(&path, Arc::new(Core::new()), Arc::new(Opener))
        .err()
        .expect("in use");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    drop(server);
    // A regular file is never deleted.
    fs::write(&path, b"data").unwrap();
    let err = spawn(&path, Arc::new(Core::new()), Arc::new(Opener))
        .err()
        .expect("not a socket");
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    fs::remove_file(&path).unwrap();
}

#[test]
fn system_delete_raises_the_shutdown_flag() {
    let path = temp_socket("shutdown");
    let (server, _core) = start(&path);
    let hooked = Arc::new(AtomicBool::new(false));
    let h = hooked.clone();
    server.on_shutdown(move || h.store(true, Ordering::Release));
    let new = Request::TargetNew {
        tid: 1,
        name: "iqn.x".into(),
    };
    assert_eq!(call(&path, &new), Ok(Response::ok()));
    assert_eq!(
        call(&path, &Request::SystemDelete),
        Err(MgmtError::InvalidRequest)
    );
    assert!(!server.shutdown_requested());
    call(
        &path,
        &Request::TargetDelete {
            tid: 1,
            force: false,
        },
    )
    .unwrap();
    assert_eq!(call(&path, &Request::SystemDelete), Ok(Response::ok()));
    assert!(server.shutdown_requested() && hooked.load(Ordering::Acquire));
    assert!(server.shutdown_flag().load(Ordering::Acquire));
}

#[test]
fn peer_credentials_are_ours() {
    let (a, _b) = UnixStream::pair().unwrap();
    // SAFETY: getuid has no preconditions.
    assert_eq!(peer_uid(&a).unwrap(), unsafe { libc::getuid() });
}
