//! Where the control socket lives.
//!
//! tgt always uses `/var/run/tgtd/socket.N` (N = `--control-port`, default 0), or
//! `$TGT_IPC_SOCKET.N` when that variable is set. Only root can create
//! `/var/run/tgtd`, so an unprivileged daemon (tests, development) falls back to a
//! per-user directory. The daemon and `tgtadm` must pick the same path from the same
//! environment, so the rule lives here as pure functions: the caller reads the
//! environment and the filesystem and passes the facts in.

use std::path::{Path, PathBuf};

/// tgt's control directory (`TGT_IPC_DIR`).
pub const SYSTEM_SOCKET_DIR: &str = "/var/run/tgtd";

/// Environment variable naming the socket path in full; beats everything but an
/// explicit `--control-socket`.
pub const ENV_CONTROL_SOCKET: &str = "TGTD_CONTROL_SOCKET";

/// tgt's environment variable: a path *prefix* to which `.N` is appended.
pub const ENV_TGT_IPC_SOCKET: &str = "TGT_IPC_SOCKET";

/// The environment facts the choice depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketEnv {
    /// `$TGTD_CONTROL_SOCKET`, if set and non-empty.
    pub control_socket: Option<PathBuf>,
    /// `$TGT_IPC_SOCKET`, if set and non-empty.
    pub tgt_ipc_socket: Option<String>,
    /// `$XDG_RUNTIME_DIR`, if set.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// The real uid of the process.
    pub uid: u32,
}

/// `/var/run/tgtd/socket.N`.
pub fn system_socket_path(control_port: u16) -> PathBuf {
    Path::new(SYSTEM_SOCKET_DIR).join(format!("socket.{control_port}"))
}

/// The per-user fallback: `$XDG_RUNTIME_DIR/tgtd/socket.N` when the runtime dir is
/// set and absolute (the XDG spec says to ignore a relative one), else
/// `/tmp/tgtd-UID/socket.N`.
pub fn user_socket_path(uid: u32, xdg_runtime_dir: Option<&Path>, control_port: u16) -> PathBuf {
    let dir = match xdg_runtime_dir {
        Some(xdg) if xdg.is_absolute() => xdg.join("tgtd"),
        _ => PathBuf::from(format!("/tmp/tgtd-{uid}")),
    };
    dir.join(format!("socket.{control_port}"))
}

/// The default socket path when nothing names one: the system path for root or when
/// `system_path_usable` (for `tgtadm`: the system socket exists; for the daemon: it
/// can create it), else the per-user fallback.
pub fn default_socket_path(
    uid: u32,
    xdg_runtime_dir: Option<&Path>,
    control_port: u16,
    system_path_usable: bool,
) -> PathBuf {
    if uid == 0 || system_path_usable {
        system_socket_path(control_port)
    } else {
        user_socket_path(uid, xdg_runtime_dir, control_port)
    }
}

/// The full rule, in order: `explicit` (`--control-socket`), `$TGTD_CONTROL_SOCKET`,
/// tgt's `$TGT_IPC_SOCKET.N`, then [`default_socket_path`]. `system_path_usable` is
/// only consulted in the last case, with the system path as argument.
pub fn resolve_socket_path(
    explicit: Option<&Path>,
    env: &SocketEnv,
    control_port: u16,
    system_path_usable: impl FnOnce(&Path) -> bool,
) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = &env.control_socket {
        return p.clone();
    }
    if let Some(prefix) = &env.tgt_ipc_socket {
        return PathBuf::from(format!("{prefix}.{control_port}"));
    }
    let system = system_socket_path(control_port);
    let usable = env.uid == 0 || system_path_usable(&system);
    default_socket_path(
        env.uid,
        env.xdg_runtime_dir.as_deref(),
        control_port,
        usable,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_the_system_path() {
        let p = default_socket_path(0, Some(Path::new("/run/user/0")), 0, false);
        assert_eq!(p, Path::new("/var/run/tgtd/socket.0"));
    }

    #[test]
    fn users_fall_back_unless_the_system_socket_is_usable() {
        let xdg = Some(Path::new("/run/user/1000"));
        assert_eq!(
            default_socket_path(1000, xdg, 3, false),
            Path::new("/run/user/1000/tgtd/socket.3")
        );
        assert_eq!(
            default_socket_path(1000, xdg, 3, true),
            Path::new("/var/run/tgtd/socket.3")
        );
        assert_eq!(
            default_socket_path(1000, None, 0, false),
            Path::new("/tmp/tgtd-1000/socket.0")
        );
        // A relative XDG_RUNTIME_DIR is invalid per the spec and ignored.
        let rel = Some(Path::new("run"));
        assert_eq!(
            default_socket_path(7, rel, 0, false),
            Path::new("/tmp/tgtd-7/socket.0")
        );
    }

    #[test]
    fn precedence() {
        let mut env = SocketEnv {
            uid: 1000,
            ..SocketEnv::default()
        };
        let never = |_: &Path| -> bool { panic!("not consulted") };
        let explicit = Path::new("/x/sock");
        env.control_socket = Some("/env/sock".into());
        env.tgt_ipc_socket = Some("/tgt/socket".into());
        assert_eq!(
            resolve_socket_path(Some(explicit), &env, 0, never),
            explicit
        );
        assert_eq!(
            resolve_socket_path(None, &env, 0, never),
            Path::new("/env/sock")
        );
        env.control_socket = None;
        assert_eq!(
            resolve_socket_path(None, &env, 2, never),
            Path::new("/tgt/socket.2")
        );
        env.tgt_ipc_socket = None;
        assert_eq!(
            resolve_socket_path(None, &env, 0, |_| false),
            Path::new("/tmp/tgtd-1000/socket.0")
        );
        assert_eq!(
            resolve_socket_path(None, &env, 0, |p| p == Path::new("/var/run/tgtd/socket.0")),
            Path::new("/var/run/tgtd/socket.0")
        );
    }
}
