//! SIGTERM, SIGINT and SIGHUP without a signal handler: all are blocked in every
//! thread (call [`block`] before any thread starts, so they all inherit the mask) and
//! dedicated threads take them with `sigwait(2)`, then run ordinary code: set a flag,
//! wake the event loops, re-read targets.conf. Nothing runs in signal context.

use std::io;

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the local set; the signal numbers are
    // valid constants.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

fn shutdown_set() -> libc::sigset_t {
    signal_set(&[libc::SIGTERM, libc::SIGINT])
}

/// Block SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it starts
/// later.
pub(crate) fn block() -> io::Result<()> {
    let set = signal_set(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
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
                    tgtd_common::service::stopping();
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

/// Start the thread that takes SIGHUP and reloads the configuration each time (one
/// reload at a time; a SIGHUP during a reload is taken after it).
pub(crate) fn spawn_reloader(reloader: tgtd_common::service::Reloader) -> io::Result<()> {
    std::thread::Builder::new()
        .name("tgtd-sighup".into())
        .spawn(move || {
            let set = signal_set(&[libc::SIGHUP]);
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is initialised and `sig` is valid for writes.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                    reloader.reload();
                }
            }
        })?;
    Ok(())
}
