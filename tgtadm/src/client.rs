//! Talking to the daemon: one request per connection, as tgt's tgtadm does.

use crate::cli::{Exit, Invocation, EXIT_EINVAL};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use target_core::mgmt::path::{
    resolve_socket_path, SocketEnv, ENV_CONTROL_SOCKET, ENV_TGT_IPC_SOCKET,
};
use target_core::mgmt::wire::{decode_response, encode_request};
use target_core::mgmt::{Request, Response};

/// ENOTCONN: tgt's exit status when the daemon is not there (see [`send`]).
const EXIT_ENOTCONN: i32 = 107;
/// How long `system delete` waits for the daemon to go away.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The socket to talk to: `--control-socket`, the environment, or the default,
/// by the same rule the daemon uses.
pub(crate) fn socket_path(inv: &Invocation) -> PathBuf {
    let env = SocketEnv {
        control_socket: env_nonempty(ENV_CONTROL_SOCKET).map(PathBuf::from),
        tgt_ipc_socket: env_nonempty(ENV_TGT_IPC_SOCKET),
        xdg_runtime_dir: env_nonempty("XDG_RUNTIME_DIR").map(PathBuf::from),
        // SAFETY: getuid has no preconditions and cannot fail.
        uid: unsafe { libc::getuid() },
    };
    resolve_socket_path(inv.control_socket.as_deref(), &env, inv.control_port, |p| {
        p.exists()
    })
}

/// C's `%m`: the error text without Rust's " (os error N)" suffix.
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn os_code(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(1)
}

/// Send `req` to the daemon at `path` and wait for its answer.
///
/// Failures print what tgt prints. When the daemon is not running tgt's tgtadm
/// ignores the failed `connect`, then fails to write on the unconnected socket, so
/// the message is about sending and the status is ENOTCONN (107); we keep both.
pub(crate) fn send(path: &Path, req: &Request) -> Result<Response, Exit> {
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            let msg = format!("management path too long: {}", path.display());
            return Err(Exit::error(&msg, EXIT_EINVAL));
        }
        Err(_) => {
            let msg =
                "failed to send request hdr to tgt daemon, Transport endpoint is not connected";
            return Err(Exit::error(msg, EXIT_ENOTCONN));
        }
    };
    let mut frame = Vec::new();
    encode_request(req, &mut frame);
    if let Err(e) = stream.write_all(&frame) {
        let msg = format!("failed to send request hdr to tgt daemon, {}", strerror(&e));
        return Err(Exit::error(&msg, os_code(&e)));
    }
    let answer = read_answer(&mut stream)?;
    match answer {
        Ok(resp) => {
            if req.is_shutdown() {
                wait_until_gone(path);
            }
            Ok(resp)
        }
        // tgt prints the daemon's text and exits EINVAL whatever the code.
        Err(e) => Err(Exit::error(&e.to_string(), EXIT_EINVAL)),
    }
}

fn read_answer(
    stream: &mut UnixStream,
) -> Result<Result<Response, target_core::mgmt::MgmtError>, Exit> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match decode_response(&buf) {
            Ok(Some((answer, _))) => return Ok(answer),
            Ok(None) => {}
            Err(e) => return Err(Exit::error(&format!("bad response from tgtd: {e}"), 1)),
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let msg = format!("can't get the response, {}", strerror(&e));
                return Err(Exit::error(&msg, os_code(&e)));
            }
        };
        if n == 0 {
            // tgt prints these and exits 0; a lost answer is a failure, so we exit 1.
            let msg = if buf.is_empty() {
                "tgtd closed the socket"
            } else {
                "a partial response"
            };
            return Err(Exit::error(msg, 1));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// After `system delete`, tgt's tgtadm polls every 100 ms until the daemon no
/// longer accepts connections, so a script can restart it right away. tgt waits
/// forever; we give up after [`SHUTDOWN_WAIT`].
fn wait_until_gone(path: &Path) {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while waited < SHUTDOWN_WAIT && UnixStream::connect(path).is_ok() {
        std::thread::sleep(step);
        waited += step;
    }
}
