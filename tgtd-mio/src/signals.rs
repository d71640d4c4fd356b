//! SIGTERM and SIGINT without a signal handler: both are blocked in every thread
//! (call [`block`] before any thread starts, so they all inherit the mask) and one
//! dedicated thread takes them with `sigwait(2)`, then runs ordinary code: set a flag,
//! wake the event loops. Nothing runs in signal context.

use std::io;

fn shutdown_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the local set; the signal numbers are
    // valid constants.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Block SIGTERM and SIGINT in the calling thread and every thread it starts later.
pub(crate) fn block() -> io::Result<()> {
    let set = shutdown_set();
    // SAFETY: `set` is an initialised signal set; a null old-mask pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Start the thread that waits for SIGTERM or SIGINT and then calls `on_signal` with
/// the signal's name (once; later signals are taken and ignored).
pub(crate) fn spawn_waiter(on_signal: impl Fn(&'static str) + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name("tgtd-signals".into())
        .spawn(move || {
            let set = shutdown_set();
            let mut fired = false;
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is initialised and `sig` is valid for writes.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                if !fired {
                    fired = true;
                    on_signal(if sig == libc::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    });
                }
            }
        })?;
    Ok(())
}
