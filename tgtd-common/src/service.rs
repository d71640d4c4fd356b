//! Running as a service: systemd's readiness protocol (`sd_notify`), the pid file and
//! re-reading targets.conf on SIGHUP. Both daemons use these the same way:
//!
//! - [`Readiness::ready`](crate::daemonize::Readiness::ready) (called once every
//!   portal listens and the start-up configuration is applied) sends `READY=1` with a
//!   `STATUS=` line and starts the `tgtd-notify` thread, which sends `WATCHDOG=1`
//!   when `WATCHDOG_USEC` asks for it and a new `STATUS=` when the counts of targets
//!   or sessions change (at most one per [`STATUS_EVERY`]);
//! - [`stopping`] sends `STOPPING=1` when a shutdown begins (signal or `system
//!   delete`);
//! - [`Reloader::reload`] is what SIGHUP does: `tgt-admin --update ALL` with the
//!   file given with `-c`.
//!
//! Nothing is sent unless `NOTIFY_SOCKET` is set, as with `sd_notify(3)`.
#![allow(clippy::disallowed_methods)] // the notify thread owns a clock and a thread

use crate::config_file::{self, DEFAULT_CONFIG};
use crate::mgmt_server::LocalAdmin;
use sd_notify::NotifyState;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use target_core::mgmt::redact::redact_text;
use target_core::mgmt::{ConfigAction, ConfigReport, Request};
use target_core::Core;

/// The shortest time between two `STATUS=` updates.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Set once `STOPPING=1` was sent.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
pub fn notify_enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

fn notify(states: &[NotifyState]) {
    if !notify_enabled() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// The `STATUS=` text for these counts.
pub fn status_text(targets: usize, sessions: usize) -> String {
    let plural = |n: usize, what: &str| {
        if n == 1 {
            format!("1 {what}")
        } else {
            format!("{n} {what}s")
        }
    };
    format!(
        "serving {}, {}",
        plural(targets, "target"),
        plural(sessions, "session")
    )
}

fn status_of(core: &Core) -> String {
    status_text(core.registry.targets().len(), core.sessions.len())
}

/// Decides when a new `STATUS=` goes out: when the text changed and the last one is
/// at least [`STATUS_EVERY`] old.
#[derive(Debug)]
pub struct StatusTracker {
    last: String,
    sent_at: Instant,
}

impl StatusTracker {
    /// `text` was sent at `now`.
    pub fn new(text: String, now: Instant) -> Self {
        StatusTracker {
            last: text,
            sent_at: now,
        }
    }

    /// The text to send at `now`, if any (and it counts as sent).
    pub fn next(&mut self, text: String, now: Instant) -> Option<String> {
        if text == self.last || now.duration_since(self.sent_at) < STATUS_EVERY {
            return None;
        }
        self.last = text.clone();
        self.sent_at = now;
        Some(text)
    }
}

/// How often the notify thread wakes: half the watchdog interval (as
/// `sd_watchdog_enabled(3)` advises), and often enough to keep `STATUS=` current.
pub fn tick(watchdog: Option<Duration>) -> Duration {
    let status = STATUS_EVERY / 2;
    match watchdog {
        Some(w) => (w / 2).clamp(Duration::from_millis(10), status),
        None => status,
    }
}

/// `READY=1` (with `MAINPID=` and the first `STATUS=`), then the `tgtd-notify`
/// thread. Called by [`Readiness::ready`](crate::daemonize::Readiness::ready).
pub(crate) fn ready(core: Arc<Core>) {
    if !notify_enabled() {
        return;
    }
    let status = status_of(&core);
    notify(&[
        NotifyState::Ready,
        NotifyState::MainPid(std::process::id()),
        NotifyState::Status(&status),
    ]);
    let watchdog = sd_notify::watchdog_enabled();
    let spawned = std::thread::Builder::new()
        .name("tgtd-notify".into())
        .spawn(move || {
            let mut tracker = StatusTracker::new(status, Instant::now());
            loop {
                std::thread::sleep(tick(watchdog));
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
                if STOPPING.load(Ordering::Acquire) {
                    continue;
                }
                if let Some(text) = tracker.next(status_of(&core), Instant::now()) {
                    notify(&[NotifyState::Status(&text)]);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the sd_notify thread: {e}");
    }
}

/// `STOPPING=1`, once, when a shutdown begins.
pub fn stopping() {
    if !STOPPING.swap(true, Ordering::AcqRel) {
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// The pid file (`-p/--pid-file`): written after going to the background, locked
/// while the daemon runs (a second daemon given the same file refuses to start),
/// removed at exit.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
    _file: File,
}

impl PidFile {
    /// Create (or take over a stale) `path` holding our pid.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                let other = std::fs::read_to_string(path).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another daemon (pid {}) holds it", other.trim()),
                ));
            }
            return Err(e);
        }
        let pid = std::process::id();
        file.set_len(0)?;
        file.write_all(format!("{pid}\n").as_bytes())?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
            _file: file,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own file: never one a newer daemon wrote at the same path.
        let ours =
            std::fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == self.pid.to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// `-c none`: there is no file to read.
    NoFile,
    /// The file could not be read or does not parse; nothing was changed.
    Unchanged(String),
    /// The file was applied; tgt-admin's report (its exit status may say a
    /// command failed and the update stopped there).
    Applied(ConfigReport),
}

/// SIGHUP: read targets.conf again and apply it as `tgt-admin --update ALL` does
/// (new targets and LUNs are added, targets no longer in the file deleted, changed
/// ones recreated, and any target in use is left as it is and logged).
#[derive(Clone)]
pub struct Reloader {
    admin: LocalAdmin,
    config: Option<PathBuf>,
}

impl Reloader {
    /// For the daemon's `-c` value (`None`: the default file).
    pub fn new(admin: LocalAdmin, config: Option<PathBuf>) -> Self {
        Reloader { admin, config }
    }

    /// The file a reload reads; `None` for `-c none`.
    pub fn path(&self) -> Option<PathBuf> {
        config_path(self.config.as_deref())
    }

    /// Re-read and apply the file, logging what happened; safe to call from any
    /// thread (it may block on file I/O and on a management request in progress).
    pub fn reload(&self) -> ReloadOutcome {
        let Some(path) = self.path() else {
            tracing::warn!("SIGHUP: started with -c none, no configuration file to reload");
            return ReloadOutcome::NoFile;
        };
        notify(&[
            NotifyState::Reloading,
            NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Custom("")),
        ]);
        let outcome = self.apply(&path);
        notify(&[
            NotifyState::Ready,
            NotifyState::Status(&status_of(self.admin.core())),
        ]);
        outcome
    }

    fn apply(&self, path: &Path) -> ReloadOutcome {
        let shown = path.display();
        tracing::info!("SIGHUP: reloading {shown}");
        let cfg = match config_file::load(path) {
            Ok(cfg) => cfg,
            Err(e) => {
                let msg = format!("{e}");
                tracing::error!("SIGHUP: {msg}; the running configuration is unchanged");
                return ReloadOutcome::Unchanged(msg);
            }
        };
        for w in &cfg.ignored {
            tracing::warn!("{shown}: {w}");
        }
        let wanted = cfg.targets.len();
        let req = Request::ConfigApply {
            config: cfg,
            action: ConfigAction::Update("ALL".into()),
            force: false,
            pretend: false,
            // tgt-admin's comments say which targets stay because they are in use.
            verbose: true,
            control_port: 0,
        };
        let report = match self.admin.apply(req) {
            Ok(resp) => ConfigReport::from_response(&resp).unwrap_or_default(),
            Err(e) => {
                tracing::error!("SIGHUP: {shown}: {e}");
                return ReloadOutcome::Unchanged(e.to_string());
            }
        };
        log_report(path, &report);
        if report.code == 0 {
            tracing::info!(
                "SIGHUP: {shown} applied ({wanted} targets in the file, {} running)",
                self.admin.core().registry.targets().len()
            );
        } else {
            tracing::error!(
                "SIGHUP: {shown}: a command failed (exit status {}), the update stopped there",
                report.code
            );
        }
        ReloadOutcome::Applied(report)
    }
}

/// `-c` to the file: `none` is no file, no `-c` the default one.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) if p == Path::new("none") => None,
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)),
    }
}

/// tgt-admin's verbose output to the log: targets kept because they are in use are
/// warnings, the commands run are info, other comments debug, failures errors.
fn log_report(path: &Path, report: &ConfigReport) {
    let shown = path.display();
    // The verbose commands include `--password=SECRET` (as tgt-admin prints them).
    let stdout = redact_text(&report.stdout);
    let stderr = redact_text(&report.stderr);
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix('#').map(str::trim) {
            Some(c) if c.contains("is in use") => tracing::warn!("SIGHUP: {shown}: {c}"),
            Some(c) => tracing::debug!("SIGHUP: {shown}: {c}"),
            None => tracing::info!("SIGHUP: {shown}: {line}"),
        }
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        tracing::error!("SIGHUP: {shown}: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_counts() {
        assert_eq!(status_text(0, 0), "serving 0 targets, 0 sessions");
        assert_eq!(status_text(1, 1), "serving 1 target, 1 session");
        assert_eq!(status_text(3, 2), "serving 3 targets, 2 sessions");
    }

    #[test]
    fn status_only_when_changed_and_not_too_often() {
        let t0 = Instant::now();
        let mut t = StatusTracker::new(status_text(1, 0), t0);
        // Same text: never.
        assert_eq!(t.next(status_text(1, 0), t0 + 10 * STATUS_EVERY), None);
        // Changed, but too soon after the last one.
        assert_eq!(t.next(status_text(2, 0), t0 + STATUS_EVERY / 2), None);
        // Changed and old enough.
        assert_eq!(
            t.next(status_text(2, 0), t0 + STATUS_EVERY),
            Some(status_text(2, 0))
        );
        // Counts from there.
        assert_eq!(t.next(status_text(3, 0), t0 + STATUS_EVERY * 3 / 2), None);
        assert_eq!(
            t.next(status_text(3, 0), t0 + STATUS_EVERY * 2),
            Some(status_text(3, 0))
        );
    }

    #[test]
    fn tick_follows_the_watchdog() {
        assert_eq!(tick(None), STATUS_EVERY / 2);
        assert_eq!(
            tick(Some(Duration::from_millis(400))),
            Duration::from_millis(200)
        );
        assert_eq!(tick(Some(Duration::from_secs(60))), STATUS_EVERY / 2);
        assert_eq!(
            tick(Some(Duration::from_micros(1))),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn config_path_rules() {
        assert_eq!(config_path(Some(Path::new("none"))), None);
        assert_eq!(
            config_path(Some(Path::new("/x/t.conf"))),
            Some(PathBuf::from("/x/t.conf"))
        );
        assert_eq!(config_path(None), Some(PathBuf::from(DEFAULT_CONFIG)));
    }

    /// A reload through a real management server: applied as `--update ALL`, the
    /// change hook runs, and a file that does not parse changes nothing.
    #[test]
    fn reload_applies_or_changes_nothing() {
        use std::sync::atomic::AtomicUsize;
        let dir = std::env::temp_dir().join(format!("tgtd-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("a.img");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(1 << 20))
            .unwrap();
        let conf = dir.join("targets.conf");
        let core = Arc::new(Core::new());
        let server = crate::mgmt_server::spawn(
            &dir.join("socket.0"),
            core.clone(),
            Arc::new(crate::BackendsOpener),
        )
        .unwrap();
        let changes = Arc::new(AtomicUsize::new(0));
        let c = changes.clone();
        server.on_change(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let names = || -> Vec<String> {
            core.registry
                .targets()
                .iter()
                .map(|t| t.name.clone())
                .collect()
        };
        let reloader = Reloader::new(server.local(), Some(conf.clone()));
        let target = |name: &str| {
            format!(
                "<target {name}>\n  backing-store {}\n</target>\n",
                img.display()
            )
        };
        std::fs::write(&conf, target("iqn.2026-11.org.example:a")).unwrap();
        assert!(matches!(reloader.reload(), ReloadOutcome::Applied(r) if r.code == 0));
        assert_eq!(names(), ["iqn.2026-11.org.example:a"]);
        assert_eq!(changes.load(Ordering::SeqCst), 1);
        std::fs::write(&conf, target("iqn.2026-11.org.example:b")).unwrap();
        assert!(matches!(reloader.reload(), ReloadOutcome::Applied(r) if r.code == 0));
        assert_eq!(names(), ["iqn.2026-11.org.example:b"]);
        // Unclosed block: nothing is applied, the error names file and line.
        std::fs::write(&conf, "<target iqn.2026-11.org.example:c>\n").unwrap();
        match reloader.reload() {
            ReloadOutcome::Unchanged(msg) => {
                assert!(msg.starts_with(&format!("{}:1:", conf.display())), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(names(), ["iqn.2026-11.org.example:b"]);
        assert_eq!(changes.load(Ordering::SeqCst), 2);
        let none = Reloader::new(server.local(), Some(PathBuf::from("none")));
        assert_eq!(none.reload(), ReloadOutcome::NoFile);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pid_file_written_locked_and_removed() {
        let dir = std::env::temp_dir().join(format!("tgtd-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tgtd.pid");
        std::fs::write(&path, "999999999 stale\n").unwrap();
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        // A second daemon given the same file refuses.
        let err = PidFile::create(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        drop(pf);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pid_file_of_another_daemon_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("tgtd-pidfile2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tgtd.pid");
        let pf = PidFile::create(&path).unwrap();
        std::fs::write(&path, "12345\n").unwrap();
        drop(pf);
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
