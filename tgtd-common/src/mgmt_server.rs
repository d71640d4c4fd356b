//! The control socket: where `tgtadm` requests arrive.
//!
//! Management runs on its own thread with blocking std I/O, never on the data-path
//! event loop: a request is rare, may open a file, and must not stall initiators.
//! One request per connection, as tgt's tgtadm does: accept, check the peer, read one
//! frame, [`apply`], write the answer, close. Connections are served one at a time
//! with a timeout, so a stuck client delays other admins by at most that long.
//!
//! Who may talk: root and the daemon's own user, checked with `SO_PEERCRED` (tgt
//! checks the same socket option). Others get [`MgmtError::PermissionDenied`]; tgt
//! closes on them without a word, which leaves tgtadm guessing.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use target_core::mgmt::path::{
    resolve_socket_path, SocketEnv, ENV_CONTROL_SOCKET, ENV_TGT_IPC_SOCKET,
};
use target_core::mgmt::wire::{decode_request, encode_response};
use target_core::mgmt::{apply, MgmtError, Request, Response, StoreOpener};
use target_core::Core;

/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

type Hook = Box<dyn Fn() + Send>;

/// What the server thread shares with its owner.
struct Shared {
    /// Set by `Drop` to end the accept loop.
    stop: AtomicBool,
    /// Set once a `system delete` was accepted.
    shutdown: Arc<AtomicBool>,
    /// Called after `shutdown` is set, e.g. to wake the event loop.
    on_shutdown: Mutex<Option<Hook>>,
    /// Called after every request that changed something, so the adapter can
    /// re-check its connections (see `Registry::generation`).
    on_change: Mutex<Option<Hook>>,
    /// Held while a request is applied, so a request from the socket and one from
    /// the daemon itself ([`LocalAdmin`], e.g. a SIGHUP reload) never interleave.
    apply_lock: Mutex<()>,
}

/// A running control socket. Dropping it stops the thread and removes the socket
/// file.
pub struct MgmtServer {
    path: PathBuf,
    /// (device, inode) of the socket we bound, so drop never removes a file that a
    /// newer daemon put at the same path.
    identity: (u64, u64),
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    local: LocalAdmin,
}

/// Bind the control socket at `path` and serve it on a new thread.
///
/// Creates the parent directory (0755) if missing and replaces a stale socket
/// left by a daemon that died; refuses with `AddrInUse` if a daemon still answers
/// there, and refuses to touch a path that is not a socket. The socket is 0600.
pub fn spawn(
    path: &Path,
    core: Arc<Core>,
    opener: Arc<dyn StoreOpener + Send + Sync>,
) -> io::Result<MgmtServer> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    let meta = fs::symlink_metadata(path)?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        shutdown: Arc::new(AtomicBool::new(false)),
        on_shutdown: Mutex::new(None),
        on_change: Mutex::new(None),
        apply_lock: Mutex::new(()),
    });
    let thread_shared = shared.clone();
    let local = LocalAdmin {
        shared: shared.clone(),
        core: core.clone(),
        opener: opener.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("tgtd-mgmt".into())
        .spawn(move || serve(listener, &core, &*opener, &thread_shared))?;
    Ok(MgmtServer {
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
        shared,
        thread: Some(thread),
        local,
    })
}

/// Management requests made by the daemon itself (a SIGHUP reload), applied as if
/// they came through the socket: one at a time with the socket's requests, and the
/// change hook runs afterwards so the event loops re-check their connections.
#[derive(Clone)]
pub struct LocalAdmin {
    shared: Arc<Shared>,
    core: Arc<Core>,
    opener: Arc<dyn StoreOpener + Send + Sync>,
}

impl LocalAdmin {
    /// Apply `req` on the calling thread.
    pub fn apply(&self, req: Request) -> Result<Response, MgmtError> {
        let read_only = req.is_read_only();
        let answer = {
            let _one_at_a_time = self
                .shared
                .apply_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            catch_unwind(AssertUnwindSafe(|| apply(&self.core, req, &*self.opener)))
                .unwrap_or(Err(MgmtError::Unknown))
        };
        if !read_only {
            if let Some(hook) = &*self.shared.on_change.lock().expect("hook lock poisoned") {
                hook();
            }
        }
        answer
    }

    /// The daemon's shared state.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }
}

impl MgmtServer {
    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `tgtadm --mode system --op delete` was accepted: the daemon should
    /// stop (and drop this server).
    pub fn shutdown_requested(&self) -> bool {
        self.shared.shutdown.load(Ordering::Acquire)
    }

    /// The flag behind [`shutdown_requested`](Self::shutdown_requested), for an
    /// event loop that polls it.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shared.shutdown.clone()
    }

    /// Run `hook` on the management thread right after a shutdown is accepted, e.g.
    /// to wake a mio `Waker` or notify a tokio task.
    pub fn on_shutdown(&self, hook: impl Fn() + Send + 'static) {
        *self.shared.on_shutdown.lock().expect("hook lock poisoned") = Some(Box::new(hook));
    }

    /// A handle for requests the daemon makes itself.
    pub fn local(&self) -> LocalAdmin {
        self.local.clone()
    }
}

impl MgmtServer {
    /// Run `hook` on the management thread after every request that changed state
    /// (target deleted, session logged out, ACL narrowed, ...): the adapter wakes
    /// its loops, which compare `core.registry.generation()` with the value they
    /// last saw and feed every connection an empty input when it moved.
    pub fn on_change(&self, hook: impl Fn() + Send + 'static) {
        *self.shared.on_change.lock().expect("hook lock poisoned") = Some(Box::new(hook));
    }
}

impl Drop for MgmtServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // The thread blocks in accept(); a connection wakes it to see the flag. If
        // nothing can connect (the file was removed under us), the thread cannot be
        // woken: leave it blocked rather than hang here.
        if UnixStream::connect(&self.path).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
        let ours =
            fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Remove a socket nobody listens on; fail if a daemon answers or the path is not
/// a socket.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        let msg = format!("{} exists and is not a socket", path.display());
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, msg));
    }
    if UnixStream::connect(path).is_ok() {
        let msg = format!("another tgtd is using {}", path.display());
        return Err(io::Error::new(io::ErrorKind::AddrInUse, msg));
    }
    fs::remove_file(path)
}

fn serve(listener: UnixListener, core: &Core, opener: &dyn StoreOpener, shared: &Shared) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        match conn {
            Ok(stream) => {
                if let Err(e) = serve_one(stream, core, opener, shared) {
                    tracing::debug!("management connection: {e}");
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("management accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn serve_one(
    mut stream: UnixStream,
    core: &Core,
    opener: &dyn StoreOpener,
    shared: &Shared,
) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let uid = peer_uid(&stream)?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let own_uid = unsafe { libc::getuid() };
    if uid != 0 && uid != own_uid {
        tracing::warn!(uid, "management request refused: not root or uid {own_uid}");
        // Take the request off the socket first: answering before the client has
        // written makes its write fail (EPIPE) and it would never read why.
        let _ = read_request(&mut stream);
        return reply(&mut stream, &Err(MgmtError::PermissionDenied));
    }
    let req = match read_request(&mut stream)? {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!("bad management request: {e}");
            return reply(&mut stream, &Err(MgmtError::InvalidRequest));
        }
    };
    tracing::info!(
        mode = req.mode().name(),
        op = req.op().name(),
        "management request"
    );
    let shutdown = req.is_shutdown();
    let read_only = req.is_read_only();
    // A bug in apply must not take management down for the daemon's lifetime.
    let answer = {
        let _one_at_a_time = shared.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        catch_unwind(AssertUnwindSafe(|| apply(core, req, opener)))
            .unwrap_or(Err(MgmtError::Unknown))
    };
    if let Err(e) = &answer {
        tracing::info!("management request refused: {e}");
    }
    // CHAP secrets are root's to see (tgt-admin --dump --full, verbose commands).
    let answer = if uid == 0 {
        answer
    } else {
        answer.map(Response::without_secrets)
    };
    let sent = reply(&mut stream, &answer);
    if !read_only {
        if let Some(hook) = &*shared.on_change.lock().expect("hook lock poisoned") {
            hook();
        }
    }
    if shutdown && answer.is_ok() {
        crate::service::stopping();
        shared.shutdown.store(true, Ordering::Release);
        if let Some(hook) = &*shared.on_shutdown.lock().expect("hook lock poisoned") {
            hook();
        }
    }
    sent
}

/// Read until one whole frame arrived. The outer error is I/O (drop the client);
/// the inner one a malformed frame (answer it).
fn read_request(stream: &mut UnixStream) -> io::Result<Result<Request, String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match decode_request(&buf) {
            Ok(Some((req, _))) => return Ok(Ok(req)),
            Ok(None) => {}
            Err(e) => return Ok(Err(e.to_string())),
        }
        // The socket has a read timeout, so a signal (SIGHUP's reload) interrupts
        // the read even with SA_RESTART (signal(7)): read again.
        let n = match stream.read(&mut chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed mid-request",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn reply(stream: &mut UnixStream, answer: &Result<Response, MgmtError>) -> io::Result<()> {
    let mut frame = Vec::new();
    encode_response(answer, &mut frame);
    stream.write_all(&frame)
}

/// The uid of the process at the other end (`SO_PEERCRED`, Linux).
fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is a live socket owned by `stream`; `cred` and `len` are valid
    // for writes and `len` holds the size of `cred`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// The socket path the daemon should bind for `control_port` when no
/// `--control-socket` is given: `$TGTD_CONTROL_SOCKET`, tgt's `$TGT_IPC_SOCKET.N`,
/// `/var/run/tgtd/socket.N` when root or allowed to create it, else the per-user
/// fallback — the rule `tgtadm` follows to find it.
pub fn default_socket_path(explicit: Option<&Path>, control_port: u16) -> PathBuf {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let env = SocketEnv {
        control_socket: var(ENV_CONTROL_SOCKET).map(PathBuf::from),
        tgt_ipc_socket: var(ENV_TGT_IPC_SOCKET),
        xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
        // SAFETY: getuid has no preconditions and cannot fail.
        uid: unsafe { libc::getuid() },
    };
    resolve_socket_path(explicit, &env, control_port, |system| {
        system.parent().is_some_and(dir_writable)
    })
}

/// Whether this process may create files in `dir` (or create `dir` itself).
fn dir_writable(dir: &Path) -> bool {
    let target = if dir.exists() {
        dir
    } else {
        dir.parent().unwrap_or(dir)
    };
    let Ok(c) = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
#[path = "mgmt_server_tests.rs"]
mod tests;
