//! Loading targets.conf at start (`-c FILE`, default `/etc/tgt/targets.conf`): the
//! file reading and `include` globbing for [`target_core::config::parse`].

use std::path::{Path, PathBuf};
use target_core::config::{self, Config, ConfigError};
use target_core::mgmt::{apply, ConfigAction, ConfigReport, Request, StoreOpener};
use target_core::Core;

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file itself could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It (or an include) does not parse.
    #[error("{0}")]
    Parse(#[from] ConfigError),
}

/// tgt's configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/tgt/targets.conf";

/// `*` and `?` matching of one file name.
fn glob(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|i| glob(&pat[1..], &name[i..])),
        Some('?') => !name.is_empty() && glob(&pat[1..], &name[1..]),
        Some(c) => name.first() == Some(c) && glob(&pat[1..], &name[1..]),
    }
}

/// An `include` pattern (wildcards in the file name only) to `(path, text)`,
/// sorted; a pattern over a missing directory matches nothing, as in a shell.
pub fn read_include(pattern: &str) -> Result<Vec<(String, String)>, String> {
    let path = Path::new(pattern);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("not a file pattern")?;
    if !name.contains(['*', '?']) {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        return Ok(vec![(pattern.to_string(), text)]);
    }
    let pat: Vec<char> = name.chars().collect();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| glob(&pat, &n.chars().collect::<Vec<_>>()))
                })
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|t| (p.display().to_string(), t))
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

/// Read and parse `path` with its includes; errors name file and line. Used by
/// tgt-admin and by the daemon's `-c`, so both read a file the same way.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: name.clone(),
        source,
    })?;
    Ok(config::parse(&text, &name, &mut read_include)?)
}

/// Load the start-up configuration: `explicit` (`-c`; `none` for nothing), else the
/// default file when it exists, as `tgt-admin -e` loads it (the same request, so
/// the same rules: ACL ALL by default, LUN numbering, skipped stores, ...). A file
/// that does not parse stops the daemon; what tgt-admin would print is logged, and
/// a failed command stops the loading where tgt-admin would stop, but not the
/// daemon.
pub fn load_at_start(
    core: &Core,
    explicit: Option<&Path>,
    opener: &dyn StoreOpener,
) -> Result<(), String> {
    let path = match explicit {
        Some(p) if p == Path::new("none") => return Ok(()),
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(()),
    };
    let cfg = load(&path).map_err(|e| format!("tgtd: {e}"))?;
    for w in &cfg.ignored {
        tracing::warn!("{w}");
        eprintln!("tgtd: warning: {w}");
    }
    let req = Request::ConfigApply {
        config: cfg,
        action: ConfigAction::Execute,
        force: false,
        pretend: false,
        verbose: false,
        control_port: 0,
    };
    let report = apply(core, req, opener)
        .ok()
        .and_then(|r| ConfigReport::from_response(&r))
        .unwrap_or_default();
    let stdout = target_core::mgmt::redact::redact_text(&report.stdout);
    let stderr = target_core::mgmt::redact::redact_text(&report.stderr);
    for line in stdout.lines().chain(stderr.lines()) {
        tracing::error!("{}: {line}", path.display());
        eprintln!("tgtd: {}: {line}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod glob_tests {
    use super::glob;

    fn g(p: &str, n: &str) -> bool {
        glob(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn globbing() {
        assert!(g("*.conf", "a.conf"));
        assert!(!g("*.conf", "a.conf.bak"));
        assert!(g("t?.conf", "t1.conf"));
    }
}
