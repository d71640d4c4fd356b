//! Reading targets.conf: line by line, blocks by hand, errors with file and line.
//!
//! tgt-admin reads the file with Perl's Config::General; we accept its subset that
//! targets.conf uses: `#` comments, `key value` or `key = value`, `<target NAME>`
//! blocks holding `<backing-store PATH>` / `<direct-store PATH>` blocks, and
//! `include PATTERN` at the top level. Where Config::General or tgt-admin decide
//! something, we decide the same: blocks of one target name merge, a store kind is
//! either lines or blocks, unknown directives are ignored (listed in
//! [`Config::ignored`]), and stores are numbered in tgt-admin's order.

use super::{Config, IsnsConfig, LunConfig, TargetConfig, UserConfig};
use crate::isns::IsnsSettings;
use crate::registry::{ALUA_KEYS, LIMIT_KEYS, PARAM_KEYS, REDIRECT_KEYS};
use std::collections::BTreeSet;

/// Resolves an `include` pattern (relative to nothing: the daemon decides) to the
/// files it names, with their contents: `(path, text)` in the order to read them.
/// The daemon implements it with a glob and file reads; tests with a map.
pub type IncludeFn<'a> = dyn FnMut(&str) -> Result<Vec<(String, String)>, String> + 'a;

/// Deepest include nesting accepted (a file including itself stops here).
const MAX_INCLUDE_DEPTH: usize = 8;

/// What is wrong, without where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A control character (other than a tab) in a line: a damaged or binary file.
    #[error("control character {0:#04x} in the line")]
    ControlCharacter(u32),
    /// A directive without its value.
    #[error("'{0}' needs a value")]
    MissingValue(String),
    /// A directive inside a target without its value: tgt-admin's own check
    /// (`Option KEY has a missing value!`), which stops it before anything is done.
    #[error("option {key} has a missing value (target: {target})")]
    MissingTargetValue {
        /// The directive.
        key: String,
        /// The target it is in.
        target: String,
    },
    /// A top-level key tgt-admin takes once (`default-driver`) given twice: it stops
    /// before doing anything.
    #[error("'{0}' is given more than once")]
    MultipleDefinitions(String),
    /// A `backing-store`/`direct-store` line and a block of the same kind in one
    /// target: Config::General, which tgt-admin reads the file with, refuses that.
    #[error("'{0}' is given both as a line and as a block")]
    LineAndBlock(String),
    /// A value the directive cannot take.
    #[error("invalid value '{value}' for '{key}'")]
    BadValue {
        /// The directive.
        key: String,
        /// The value given.
        value: String,
    },
    /// `</x>` without `<x>`.
    #[error("'</{0}>' without a matching opening tag")]
    UnexpectedClose(String),
    /// A block still open at the end of the file.
    #[error("'<{0}>' is not closed")]
    Unclosed(String),
    /// `<target>` inside `<target>`, or a LUN block outside a target.
    #[error("'<{0}>' is not allowed here")]
    Misplaced(String),
    /// Two LUNs with one number in a target.
    #[error("LUN {0} is defined twice")]
    DuplicateLun(u64),
    /// The include callback failed.
    #[error("include {pattern}: {reason}")]
    Include {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// Includes nested too deep (a loop).
    #[error("includes nested deeper than {MAX_INCLUDE_DEPTH} (an include loop?)")]
    IncludeDepth,
}

/// A parse error: file, 1-based line and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ConfigError {
    /// The file name as given to [`parse`] or returned by the include callback.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

/// LU settings that may be given per target (defaults for its LUNs) or per LUN.
#[derive(Debug, Clone, Default)]
struct LuSettings {
    bstype: Option<String>,
    bsopts: Option<String>,
    bsoflags: Option<String>,
    blocksize: Option<u32>,
    device_type: Option<String>,
    params: Vec<(String, String)>,
    /// Directives seen, to find one given twice.
    seen: BTreeSet<String>,
    /// The first single-valued directive given twice (see
    /// [`LunConfig::duplicate`](super::LunConfig::duplicate)).
    duplicate: Option<String>,
}

struct PendingLun {
    lun: Option<u64>,
    path: String,
    direct: bool,
    own: LuSettings,
    line: usize,
    allow_in_use: bool,
    /// Written as a `<backing-store>` block (not a line).
    block: bool,
}

struct PendingTarget {
    cfg: TargetConfig,
    defaults: LuSettings,
    luns: Vec<PendingLun>,
    line: usize,
}

impl PendingTarget {
    /// Config::General keeps a key either as values or as blocks, never both.
    fn check_kind(&self, direct: bool, block: bool) -> Result<(), ConfigErrorKind> {
        if self
            .luns
            .iter()
            .any(|l| l.direct == direct && l.block != block)
        {
            let key = if direct {
                "direct-store"
            } else {
                "backing-store"
            };
            return Err(ConfigErrorKind::LineAndBlock(key.into()));
        }
        Ok(())
    }
}

struct Parser<'a, 'b> {
    include: &'a mut IncludeFn<'b>,
    config: Config,
    /// Closed `<target>` blocks with the file they are in, finished at the end:
    /// Config::General merges blocks of one name, so a later block may add to one.
    closed: Vec<(PendingTarget, String)>,
}

/// Parse `text` (named `file` in errors), reading includes through `include`.
pub fn parse(text: &str, file: &str, include: &mut IncludeFn<'_>) -> Result<Config, ConfigError> {
    let mut p = Parser {
        include,
        config: Config::default(),
        closed: Vec::new(),
    };
    p.file(text, file, 0)?;
    for (t, file) in std::mem::take(&mut p.closed) {
        p.finish_target(t, &file)?;
    }
    Ok(p.config)
}

fn err(file: &str, line: usize, kind: ConfigErrorKind) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line,
        kind,
    }
}

/// `key value`, `key = value` or `key=value`; the value trimmed.
fn split_directive(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (key, rest)
}

/// A top-level iSNS key, checked with the rules `tgtadm --mode sys --op update`
/// applies to the same name (tgt-admin passes the value through).
fn isns_line(isns: &mut IsnsConfig, key: &str, value: &str) -> Result<(), ConfigErrorKind> {
    let mut probe = IsnsSettings {
        server_ip: "-".into(),
        ..IsnsSettings::default()
    };
    probe
        .update(key, value)
        .map_err(|_| ConfigErrorKind::BadValue {
            key: key.into(),
            value: value.into(),
        })?;
    match key {
        "iSNSServerIP" => isns.server_ip = Some(value.into()),
        "iSNSServerPort" => isns.server_port = Some(probe.server_port),
        "iSNSAccessControl" => isns.access_control = Some(probe.access_control),
        _ => isns.enabled = Some(probe.enabled),
    }
    Ok(())
}
fn user(key: &str, value: &str) -> Result<UserConfig, ConfigErrorKind> {
    let mut words = value.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(u), Some(p), None) => Ok(UserConfig {
            user: u.to_string(),
            password: p.to_string(),
        }),
        // The second word is a secret: the error (which reaches the log) names only
        // the user.
        (u, Some(_), _) => Err(ConfigErrorKind::BadValue {
            key: key.into(),
            value: format!("{} <secret hidden> ...", u.unwrap_or_default()),
        }),
        _ => Err(ConfigErrorKind::BadValue {
            key: key.into(),
            value: value.into(),
        }),
    }
}

/// An LU directive into `s`; `Ok(false)` when `key` is not one.
fn lu_directive(s: &mut LuSettings, key: &str, value: &str) -> Result<bool, ConfigErrorKind> {
    let bad = || ConfigErrorKind::BadValue {
        key: key.into(),
        value: value.into(),
    };
    match key {
        "bs-type" => s.bstype = Some(value.into()),
        "bsopts" => s.bsopts = Some(value.into()),
        "bsoflags" => s.bsoflags = Some(value.into()),
        "block-size" => s.blocksize = Some(value.parse().map_err(|_| bad())?),
        "device-type" => s.device_type = Some(value.into()),
        // tgt-admin: `off` sends the caching mode page with WCE clear, `on` (the
        // default) sends nothing, anything else only draws a warning comment.
        "write-cache" => {
            if value == "off" {
                s.params.push(("write_cache".into(), "0".into()))
            }
        }
        // tgt-admin hands these to `--params key="value"` as written (tgtd reads
        // the flags with atoi, so `readonly yes` is not read-only there; we refuse it).
        "readonly" | "removable" | "online" | "vendor_id" | "product_id" | "product_rev"
        | "scsi_id" | "scsi_sn" | "sense_format" | "lbppbe" | "la_lba" | "optimal_xfer_gran"
        | "optimal_xfer_len" | "mode_page" => s.params.push((key.into(), value.into())),
        // tgt-admin's raw `--params` string: its `key=value` items.
        "params" => {
            for item in value.split(',').filter(|i| !i.trim().is_empty()) {
                let (k, v) = item.split_once('=').ok_or_else(bad)?;
                let (k, v) = (k.trim(), v.trim());
                let word = |w: &str| {
                    !w.is_empty() && !w.chars().any(|c| c.is_whitespace() || c.is_control())
                };
                if !word(k) || !word(v) {
                    return Err(bad());
                }
                s.params.push((k.into(), v.into()));
            }
        }
        _ => return Ok(false),
    }
    // tgt-admin takes the others once per store (its check_if_hash_array).
    let repeatable = matches!(key, "params" | "mode_page");
    if !repeatable && !s.seen.insert(key.to_string()) && s.duplicate.is_none() {
        s.duplicate = Some(key.to_string());
    }
    Ok(true)
}

impl Parser<'_, '_> {
    fn file(&mut self, text: &str, file: &str, depth: usize) -> Result<(), ConfigError> {
        let mut target: Option<PendingTarget> = None;
        // Where a reopened target was among the closed ones (it keeps its place).
        let mut reopened: Option<usize> = None;
        let mut lun: Option<PendingLun> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let e = |kind| err(file, n, kind);
            if let Some(c) = raw.chars().find(|c| c.is_control() && *c != '\t') {
                return Err(e(ConfigErrorKind::ControlCharacter(u32::from(c))));
            }
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(tag) = line.strip_prefix("</") {
                let tag = tag.trim_end_matches('>').trim();
                match tag {
                    "backing-store" | "direct-store" if lun.is_some() => {
                        let l = lun.take().expect("checked is_some");
                        target
                            .as_mut()
                            .expect("a LUN block is inside a target")
                            .luns
                            .push(l);
                    }
                    "target" if lun.is_none() && target.is_some() => {
                        let t = target.take().expect("checked is_some");
                        let at = reopened.take().unwrap_or(self.closed.len());
                        self.closed.insert(at, (t, file.to_string()));
                    }
                    _ => return Err(e(ConfigErrorKind::UnexpectedClose(tag.into()))),
                }
                continue;
            }
            if let Some(open) = line.strip_prefix('<') {
                let open = open.trim_end_matches('>').trim();
                let (tag, arg) = split_directive(open);
                if arg.is_empty() {
                    return Err(e(ConfigErrorKind::MissingValue(tag.into())));
                }
                match tag {
                    "target" if target.is_none() => {
                        if let Some(i) = self.closed.iter().position(|(t, _)| t.cfg.name == arg) {
                            target = Some(self.closed.remove(i).0);
                            reopened = Some(i);
                            continue;
                        }
                        target = Some(PendingTarget {
                            cfg: TargetConfig {
                                name: arg.into(),
                                ..TargetConfig::default()
                            },
                            defaults: LuSettings::default(),
                            luns: Vec::new(),
                            line: n,
                        })
                    }
                    "backing-store" | "direct-store" if target.is_some() && lun.is_none() => {
                        let direct = tag == "direct-store";
                        if let Some(t) = &target {
                            t.check_kind(direct, true).map_err(e)?;
                        }
                        lun = Some(PendingLun {
                            lun: None,
                            path: arg.into(),
                            direct,
                            own: LuSettings::default(),
                            line: n,
                            allow_in_use: false,
                            block: true,
                        })
                    }
                    _ => return Err(e(ConfigErrorKind::Misplaced(tag.into()))),
                }
                continue;
            }
            let (key, value) = split_directive(line);
            if value.is_empty() {
                return Err(e(match &target {
                    Some(t) => ConfigErrorKind::MissingTargetValue {
                        key: key.into(),
                        target: t.cfg.name.clone(),
                    },
                    None => ConfigErrorKind::MissingValue(key.into()),
                }));
            }
            // `key = value` takes one `=`; a value that itself starts with one (or an
            // address/name list item holding one) is a typo, not a value.
            let list_key = matches!(key, "initiator-address" | "initiator-name");
            // A store path written back as `<backing-store PATH>` may not hold the
            // block brackets.
            let path_key = matches!(key, "backing-store" | "direct-store");
            if value.starts_with('=')
                || (list_key && value.contains('='))
                || (path_key && value.contains(['<', '>']))
            {
                return Err(e(ConfigErrorKind::BadValue {
                    key: key.into(),
                    value: value.into(),
                }));
            }
            let ignored = &mut self.config.ignored;
            let mut ignore = |why: &str| ignored.push(format!("{file}:{n}: {why}"));
            let res = if let Some(l) = lun.as_mut() {
                Self::lun_line(l, key, value, &mut ignore)
            } else if let Some(t) = target.as_mut() {
                Self::target_line(t, key, value, n, &mut ignore)
            } else {
                match self.global_line(key, value, file, n, depth) {
                    Err(Ok(fatal)) => return Err(fatal),
                    Err(Err(kind)) => Err(kind),
                    Ok(()) => Ok(()),
                }
            };
            res.map_err(e)?;
        }
        let open = if lun.is_some() {
            Some(("backing-store", lun.map(|l| l.line).unwrap_or(0)))
        } else {
            target.as_ref().map(|t| ("target", t.line))
        };
        if let Some((tag, line)) = open {
            return Err(err(file, line, ConfigErrorKind::Unclosed(tag.into())));
        }
        Ok(())
    }

    /// A top-level line. The error is either a whole error (from an include) or a
    /// kind for this line.
    fn global_line(
        &mut self,
        key: &str,
        value: &str,
        file: &str,
        n: usize,
        depth: usize,
    ) -> Result<(), Result<ConfigError, ConfigErrorKind>> {
        match key {
            "default-driver" => {
                if self.config.default_driver.is_some() {
                    return Err(Err(ConfigErrorKind::MultipleDefinitions(key.into())));
                }
                self.config.default_driver = Some(value.into())
            }
            "incomingdiscoveryuser" => self
                .config
                .discovery_incoming
                .push(user(key, value).map_err(Err)?),
            "outgoingdiscoveryuser" => {
                self.config.discovery_outgoing = Some(user(key, value).map_err(Err)?)
            }
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(Err(ConfigErrorKind::IncludeDepth));
                }
                let files = (self.include)(value).map_err(|reason| {
                    Err(ConfigErrorKind::Include {
                        pattern: value.into(),
                        reason,
                    })
                })?;
                for (name, text) in files {
                    self.file(&text, &name, depth + 1).map_err(Ok)?;
                }
            }
            "iSNSServerIP" | "iSNSServerPort" | "iSNSAccessControl" | "iSNS" => {
                isns_line(&mut self.config.isns, key, value).map_err(Err)?
            }
            "ignore-errors" => self.config.ignore_errors = value == "yes",
            // tgt-admin's own setting (which socket it talks to); the daemon is this one.
            "control-port" => {}
            _ => {
                let why = match key {
                    "incominguser" | "outgoinguser" => format!(
                        "'{key}' outside a target is ignored (as tgt-admin does); \
                         discovery CHAP is '{}discoveryuser'",
                        key.trim_end_matches("user")
                    ),
                    _ => format!("unknown directive '{key}' ignored (as tgt-admin does)"),
                };
                self.config.ignored.push(format!("{file}:{n}: {why}"));
            }
        }
        Ok(())
    }

    fn target_line(
        t: &mut PendingTarget,
        key: &str,
        value: &str,
        n: usize,
        ignore: &mut dyn FnMut(&str),
    ) -> Result<(), ConfigErrorKind> {
        if key == "block-size" {
            // tgt-admin takes block-size from a store's block only.
            ignore("'block-size' outside a store block is ignored (as tgt-admin does)");
            return Ok(());
        }
        if lu_directive(&mut t.defaults, key, value)? {
            return Ok(());
        }
        let cfg = &mut t.cfg;
        let list = |v: &str| -> Vec<String> {
            v.split([',', ' ', '\t'])
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        match key {
            "backing-store" | "direct-store" => {
                let direct = key == "direct-store";
                t.check_kind(direct, false)?;
                t.luns.push(PendingLun {
                    lun: None,
                    path: value.into(),
                    direct,
                    own: LuSettings::default(),
                    line: n,
                    allow_in_use: false,
                    block: false,
                })
            }
            "initiator-address" => cfg.initiator_addresses.extend(list(value)),
            "initiator-name" => cfg.initiator_names.extend(list(value)),
            "incominguser" => cfg.incoming.push(user(key, value)?),
            // tgt-admin uses the first one (and warns in a comment).
            "outgoinguser" => {
                let u = user(key, value)?;
                cfg.outgoing.get_or_insert(u);
            }
            "driver" => cfg.driver = Some(value.into()),
            "controller_tid" => {
                cfg.controller_tid = Some(value.parse().map_err(|_| ConfigErrorKind::BadValue {
                    key: key.into(),
                    value: value.into(),
                })?)
            }
            "allow-in-use" => cfg.allow_in_use = value == "yes",
            k if k == "nop_interval"
                || k == "nop_count"
                || PARAM_KEYS.iter().any(|(p, _)| *p == k)
                || REDIRECT_KEYS.contains(&k)
                || LIMIT_KEYS.contains(&k)
                || ALUA_KEYS.contains(&k) =>
            {
                cfg.params.push((k.into(), value.into()))
            }
            _ => ignore(&format!(
                "unknown directive '{key}' ignored (as tgt-admin does)"
            )),
        }
        Ok(())
    }

    fn lun_line(
        l: &mut PendingLun,
        key: &str,
        value: &str,
        ignore: &mut dyn FnMut(&str),
    ) -> Result<(), ConfigErrorKind> {
        if key == "allow-in-use" {
            l.allow_in_use = value == "yes";
            return Ok(());
        }
        if key == "lun" {
            let n: u64 = value.parse().map_err(|_| ConfigErrorKind::BadValue {
                key: key.into(),
                value: value.into(),
            })?;
            if n == 0 {
                return Err(ConfigErrorKind::BadValue {
                    key: key.into(),
                    value: value.into(),
                });
            }
            l.lun = Some(n);
            return Ok(());
        }
        // tgt-admin applies `path` with `--params path=` right after creating the LU:
        // the LU ends up on that file, so it is the LU's store.
        if key == "path" {
            if value.contains(['<', '>']) {
                return Err(ConfigErrorKind::BadValue {
                    key: key.into(),
                    value: value.into(),
                });
            }
            l.path = value.into();
            return Ok(());
        }
        if !lu_directive(&mut l.own, key, value)? {
            ignore(&format!(
                "unknown directive '{key}' ignored (as tgt-admin does)"
            ));
        }
        Ok(())
    }

    /// Resolve LUN numbers and merge target-level LU settings into each LUN.
    fn finish_target(&mut self, t: PendingTarget, file: &str) -> Result<(), ConfigError> {
        let mut used = BTreeSet::new();
        for l in &t.luns {
            if let Some(n) = l.lun {
                if !used.insert(n) {
                    return Err(err(file, l.line, ConfigErrorKind::DuplicateLun(n)));
                }
            }
        }
        // tgt-admin's order: its option keys sorted (`backing-store` before
        // `direct-store`), each key's stores sorted by path; a path given twice is
        // one store (Config::General merges them).
        let mut luns = t.luns;
        luns.sort_by(|a, b| (a.direct, &a.path).cmp(&(b.direct, &b.path)));
        luns.dedup_by(|b, a| a.direct == b.direct && a.path == b.path);
        let mut next = 1;
        let mut cfg = t.cfg;
        let d = &t.defaults;
        for l in luns {
            let lun = match l.lun {
                Some(n) => n,
                None => {
                    while used.contains(&next) {
                        next += 1;
                    }
                    used.insert(next);
                    next
                }
            };
            // Target-wide params first, so a LUN's own value (later) wins.
            let mut params = d.params.clone();
            for (k, v) in l.own.params {
                params.retain(|(pk, _)| *pk != k);
                params.push((k, v));
            }
            cfg.luns.push(LunConfig {
                lun,
                explicit_lun: l.lun.is_some(),
                allow_in_use: l.allow_in_use,
                path: l.path,
                direct: l.direct,
                bstype: l.own.bstype.or_else(|| d.bstype.clone()),
                bsopts: l.own.bsopts.or_else(|| d.bsopts.clone()),
                bsoflags: l.own.bsoflags.or_else(|| d.bsoflags.clone()),
                blocksize: l.own.blocksize.or(d.blocksize),
                device_type: l.own.device_type.or_else(|| d.device_type.clone()),
                duplicate: l.own.duplicate.or_else(|| d.duplicate.clone()),
                params,
            });
        }
        self.config.targets.push(cfg);
        Ok(())
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
