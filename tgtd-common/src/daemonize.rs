//! Going to the background as tgtd does, without losing start-up errors: the parent
//! waits on a pipe until the child says it is serving (exit 0) or failed (exit 1 with
//! the child's message on stderr).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::Arc;
use target_core::Core;

/// The child's end of the readiness pipe, and the service manager's readiness
/// (`sd_notify`, see [`crate::service`]).
pub struct Readiness {
    pipe: Option<File>,
    /// Set by `start` once the core exists: what `READY=1`'s status counts.
    core: Option<Arc<Core>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("pipe", &self.pipe)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// No daemonizing (`-f`): readiness reports go nowhere.
    pub fn foreground() -> Self {
        Readiness {
            pipe: None,
            core: None,
        }
    }

    /// What the daemon serves, for the service manager's status line.
    pub(crate) fn attach(&mut self, core: Arc<Core>) {
        self.core = Some(core);
    }

    /// Tell the waiting parent we are serving (it exits 0) and the service manager
    /// (`READY=1` when `NOTIFY_SOCKET` is set). Call it once every portal listens
    /// and the start-up configuration is applied.
    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"\0");
        }
        if let Some(core) = self.core.take() {
            crate::service::ready(core);
        }
    }

    /// Tell the waiting parent start-up failed; it prints `msg` and exits 1.
    pub fn fail(&mut self, msg: &str) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(msg.as_bytes());
        }
    }
}

/// Fork into the background. Must run before any thread is started (a forked child
/// only keeps the calling thread). Returns in the child; the parent exits.
pub fn daemonize() -> std::io::Result<Readiness> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints for pipe(2) to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: no other thread exists yet (documented precondition), so fork is sound.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid > 0 {
        // Parent: wait for the child's verdict.
        // SAFETY: fds[1] is our open write end, closed once; fds[0] becomes owned by File.
        unsafe { libc::close(fds[1]) };
        let mut r = unsafe { File::from_raw_fd(fds[0]) };
        let mut msg = Vec::new();
        let _ = r.read_to_end(&mut msg);
        if msg.first() == Some(&0) {
            std::process::exit(0);
        }
        let text = String::from_utf8_lossy(&msg);
        if text.is_empty() {
            eprintln!("tgtd: the daemon exited during start-up");
        } else {
            eprintln!("{text}");
        }
        std::process::exit(1);
    }
    // Child: new session, stdio to /dev/null, keep the pipe's write end.
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        libc::close(fds[0]);
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            if null > 2 {
                libc::close(null);
            }
        }
    }
    // SAFETY: fds[1] is open and owned by nobody else.
    Ok(Readiness {
        pipe: Some(unsafe { File::from_raw_fd(fds[1]) }),
        core: None,
    })
}
