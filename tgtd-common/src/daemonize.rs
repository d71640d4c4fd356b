//! Going to the background as tgtd does, without losing start-up errors: the parent
//! waits on a pipe until the child says it is serving (exit 0) or failed (exit 1 with
//! the child's message on stderr).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;

/// The child's end of the readiness pipe.
#[derive(Debug)]
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// No daemonizing (`-f`): readiness reports go nowhere.
    pub fn foreground() -> Self {
        Readiness { pipe: None }
    }

    /// Tell the waiting parent we are serving; it exits 0.
    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"\0");
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
    })
}
