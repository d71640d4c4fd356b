//! Whole configurations: apply a parsed targets.conf to the registry, changing only
//! what differs (tgt-admin `--execute` / `--update`), and build the running state
//! back into a [`Config`] (tgt-admin `--dump`).

use super::{Request, Response, StoreOpener};
use crate::config::{Config, IsnsConfig, LunConfig, TargetConfig, UserConfig};
use crate::isns::IsnsSettings;
use crate::registry::{default_product_id, default_scsi_id, default_scsi_sn, Lun, Target, Tid};
use crate::Core;
use scsi_sbc::DeviceType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The running state as a [`Config`]: every target with its LUNs (not LUN 0), ACLs,
/// accounts (with their secrets: the dump is for root) and changed parameters.
pub fn running_config(core: &Core) -> Config {
    let reg = &core.registry;
    let user = |name: &String| {
        reg.account(name).map(|a| UserConfig {
            user: a.user,
            password: a.password,
        })
    };
    let disc = reg.discovery_accounts();
    Config {
        default_driver: Some("iscsi".into()),
        ignore_errors: false,
        ignored: Vec::new(),
        discovery_incoming: disc.incoming.iter().filter_map(user).collect(),
        discovery_outgoing: disc.outgoing.as_ref().and_then(user),
        isns: isns_config(&reg.isns.get()),
        targets: reg
            .targets()
            .iter()
            .map(|t| TargetConfig {
                name: t.name.clone(),
                driver: None,
                luns: t
                    .luns()
                    .iter()
                    .filter(|l| l.lun != 0)
                    .map(|l| lun_config(t.tid, l))
                    .collect(),
                initiator_addresses: t.acl().iter().map(|a| a.to_string()).collect(),
                initiator_names: t.initiator_name_acl(),
                incoming: t.incoming_users().iter().filter_map(user).collect(),
                outgoing: t.outgoing_user().as_ref().and_then(user),
                params: {
                    let mut p = t.params().changed();
                    p.extend(t.alua_params());
                    p
                },
                controller_tid: None,
                allow_in_use: false,
            })
            .collect(),
    }
}

/// The iSNS settings that differ from tgt's defaults, for the dump.
fn isns_config(s: &IsnsSettings) -> IsnsConfig {
    let d = IsnsSettings::default();
    IsnsConfig {
        server_ip: Some(s.server_ip.clone()).filter(|ip| *ip != d.server_ip),
        server_port: Some(s.server_port).filter(|p| *p != d.server_port),
        access_control: Some(s.access_control).filter(|a| *a != d.access_control),
        enabled: Some(s.enabled).filter(|e| *e != d.enabled),
    }
}

/// The file's iSNS keys, applied as tgt-admin does: only while iSNS is off (it
/// skips them, saying "iSNS already enabled", otherwise), server settings first.
fn apply_isns(core: &Core, c: &IsnsConfig) {
    let mut s = core.registry.isns.get();
    if s.enabled || c.is_empty() {
        return;
    }
    if let Some(ip) = &c.server_ip {
        s.server_ip = ip.clone();
    }
    if let Some(port) = c.server_port {
        s.server_port = port;
    }
    if let Some(ac) = c.access_control {
        s.access_control = ac;
    }
    if let Some(on) = c.enabled {
        // Same rule as `--name iSNS --value On`: no server address, no iSNS.
        s.enabled = on && !s.server_ip.is_empty();
    }
    core.registry.isns.set(s);
}

fn lun_config(tid: Tid, l: &Lun) -> LunConfig {
    let c = &l.config;
    let id = &c.identity;
    let mut params = Vec::new();
    // A cd LU's own defaults (read-only, removable, no write cache, 2048-byte blocks,
    // "VIRTUAL-CDROM") are what `--device-type cd` gives, so they are not restated.
    let cd = c.device_type == DeviceType::Cd;
    // Tapes and changers: removable, no write cache, block size 1 by default.
    let stream = matches!(c.device_type, DeviceType::Tape | DeviceType::Changer);
    let mut flag = |k: &str, on: bool, default: bool| {
        if on != default {
            params.push((k.to_string(), if on { "1" } else { "0" }.to_string()));
        }
    };
    flag("readonly", c.readonly, cd);
    flag("removable", c.removable, cd || stream);
    flag("online", l.online, true);
    flag("write_cache", c.write_cache, !cd && !stream);
    flag("thin_provisioning", c.thin_provisioning, false);
    flag("sense_format", c.descriptor_sense, false);
    flag("sanitize", c.sanitize, false);
    let g = &c.geometry;
    let mut number = |k: &str, v: u64| {
        if v != 0 {
            params.push((k.to_string(), v.to_string()));
        }
    };
    number("sanitize_rate", l.sanitize_rate >> 20);
    number("lbppbe", u64::from(g.lbppbe));
    number("la_lba", u64::from(g.la_lba));
    number("optimal_xfer_gran", u64::from(g.optimal_xfer_gran));
    number("optimal_xfer_len", u64::from(g.optimal_xfer_len));
    if let Some(r) = g.rotation_rate {
        params.push(("rotation_rate".to_string(), r.to_string()));
    }
    for (k, v, d) in [
        ("vendor_id", &id.vendor_id, "IET".to_string()),
        (
            "product_id",
            &id.product_id,
            default_product_id(c.device_type).to_string(),
        ),
        ("product_rev", &id.product_rev, "0001".to_string()),
        ("scsi_id", &id.scsi_id, default_scsi_id(tid, l.lun)),
        ("scsi_sn", &id.scsi_sn, default_scsi_sn(tid, l.lun)),
    ] {
        if *v != d {
            params.push((k.to_string(), v.clone()));
        }
    }
    LunConfig {
        lun: l.lun,
        explicit_lun: true,
        allow_in_use: false,
        duplicate: None,
        path: l.backing.path.clone().unwrap_or_default(),
        direct: false,
        bstype: Some(l.backing.bstype.clone()),
        bsopts: Some(l.backing.bsopts.clone()).filter(|o| !o.is_empty()),
        bsoflags: Some(l.backing.oflags.clone()).filter(|f| !f.is_empty()),
        blocksize: Some(c.block_size).filter(|b| {
            let default = match c.device_type {
                DeviceType::Cd => scsi_mmc::BLOCK_SIZE,
                DeviceType::Tape | DeviceType::Changer => 1,
                _ => 512,
            };
            *b != default
        }),
        device_type: match c.device_type {
            DeviceType::Cd => Some("cd".to_string()),
            DeviceType::Tape => Some("tape".to_string()),
            DeviceType::Changer => Some("changer".to_string()),
            _ => None,
        },
        params,
    }
}

/// Which tgt-admin action a [`Request::ConfigApply`] performs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigAction {
    /// `--execute` (and the daemon's `-c`): create the file's targets that do not
    /// exist yet, leave existing ones alone, then delete the targets the file lacks
    /// (when it has any target at all), except those in use.
    #[default]
    Execute,
    /// `--update ALL|NAME`: delete and recreate (same tid) what is not in use, add
    /// what is new; `ALL` also deletes targets the file lacks.
    Update(String),
    /// `--delete ALL|NAME|tid=N`.
    Delete(String),
}

/// What tgt-admin would print for a [`Request::ConfigApply`], and its exit status.
/// Lines starting with `#` are tgt-admin's comments, printed with `--pretend` or
/// `--verbose` only, as there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// tgt-admin's stdout (its own messages).
    pub stdout: String,
    /// stderr (the messages of the tgtadm commands that failed).
    pub stderr: String,
    /// Exit status: 0, or that of the first failed command (tgtadm's 22).
    pub code: i32,
}

impl ConfigReport {
    /// The report a [`Request::ConfigApply`] answer carries.
    pub fn from_response(resp: &Response) -> Option<ConfigReport> {
        resp.data
            .as_ref()
            .and_then(|d| serde_json::from_value(d.clone()).ok())
    }
}

/// tgt-admin's switches that change what a [`Request::ConfigApply`] does.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Options {
    pub force: bool,
    pub pretend: bool,
    pub verbose: bool,
    pub control_port: u32,
}

/// A failed command ended the run (tgt-admin exits at once).
struct Stop;

/// One tgt-admin run: the commands it would give tgtadm, carried out in order on
/// the registry, with its output.
struct Admin<'a> {
    core: &'a Core,
    opener: &'a dyn StoreOpener,
    opts: Options,
    ignore_errors: bool,
    report: ConfigReport,
}

/// tgt-admin's iSCSI target keys (its `process_options` regex), which it sends
/// with `--mode target --op update`.
const TARGET_KEYS: &[&str] = &[
    "MaxRecvDataSegmentLength",
    "MaxXmitDataSegmentLength",
    "HeaderDigest",
    "DataDigest",
    "InitialR2T",
    "MaxOutstandingR2T",
    "ImmediateData",
    "FirstBurstLength",
    "MaxBurstLength",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "ErrorRecoveryLevel",
    "IFMarker",
    "OFMarker",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "OFMarkInt",
    "IFMarkInt",
    "MaxConnections",
];

/// The caching mode page tgt-admin sends for `write-cache off` (WCE clear).
const WRITE_CACHE_OFF: &str =
    "mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0";

impl Admin<'_> {
    /// tgt-admin's `execute` of a comment: shown with --pretend or --verbose.
    fn comment(&mut self, text: &str) {
        if self.opts.pretend || self.opts.verbose {
            self.report.stdout.push_str(text);
            self.report.stdout.push('\n');
        }
    }

    /// tgt-admin's `execute` of a tgtadm command line `text`, which `req` is.
    fn cmd(&mut self, text: String, req: Request) -> Result<(), Stop> {
        if self.opts.pretend || self.opts.verbose {
            self.report.stdout.push_str(&text);
            self.report.stdout.push('\n');
        }
        if self.opts.pretend {
            return Ok(());
        }
        match super::apply(self.core, req, self.opener) {
            Ok(_) => Ok(()),
            Err(e) => {
                // tgtadm prints the daemon's text and exits EINVAL.
                self.report.stderr.push_str(&format!("tgtadm: {e}\n"));
                if self.ignore_errors {
                    return Ok(());
                }
                self.report
                    .stdout
                    .push_str(&format!("Command:\n\t{text}\nexited with code: 22.\n"));
                self.report.code = 22;
                Err(Stop)
            }
        }
    }

    fn tgtadm(&self) -> String {
        format!("tgtadm -C {}", self.opts.control_port)
    }

    fn account_exists(&self, user: &str) -> bool {
        self.core.registry.account(user).is_some()
    }

    /// A CHAP account: created when it does not exist, then bound (`tid` `None`:
    /// discovery, which tgt-admin binds without `--lld`).
    fn account(&mut self, u: &UserConfig, tid: Option<Tid>, outgoing: bool) -> Result<(), Stop> {
        let adm = self.tgtadm();
        let lld = if tid.is_some() { " --lld iscsi" } else { "" };
        if !self.account_exists(&u.user) {
            self.cmd(
                format!(
                    "{adm}{lld} --mode account --op new --user={} --password={}",
                    u.user, u.password
                ),
                Request::AccountNew {
                    user: u.user.clone(),
                    password: u.password.clone(),
                },
            )?;
        }
        let text = match tid {
            Some(t) => format!(
                "{adm}{lld} --mode account --op bind --tid={t} --user={}{}",
                u.user,
                if outgoing { " --outgoing" } else { "" }
            ),
            None => format!(
                "{adm} --mode account --op bind --user={} {}",
                u.user,
                if outgoing { " --outgoing" } else { "" }
            ),
        };
        self.cmd(
            text,
            Request::AccountBind {
                tid,
                user: u.user.clone(),
                outgoing,
            },
        )
    }

    /// Whether another LUN already has `path` open (tgt-admin asks lsof).
    fn in_use(&self, path: &str) -> bool {
        self.core.registry.targets().iter().any(|t| {
            t.luns()
                .iter()
                .any(|l| l.backing.path.as_deref() == Some(path))
        })
    }

    /// tgt-admin's `add_backing_direct`: one store, skipped (and not numbered)
    /// when missing or in use. `taken` holds the LUNs reserved by blocks and
    /// those already given.
    fn store(
        &mut self,
        t: &TargetConfig,
        tid: Tid,
        l: &LunConfig,
        taken: &mut BTreeSet<u64>,
    ) -> Result<(), Stop> {
        let bstype = l.bstype.as_deref().unwrap_or("");
        let path = &l.path;
        let network = bstype.contains("rbd") || bstype.contains("glfs");
        let check = !bstype.contains("rbd") && !self.opts.force && !t.allow_in_use;
        if check && !l.allow_in_use && self.opener.store_exists(path) && self.in_use(path) {
            self.comment(&format!("# Device {path} is used (already tgtd target?)."));
            self.comment(&format!("# Run 'lsof {path}' to see the details."));
            self.comment(&format!("# Skipping device {path} - it is in use."));
            self.comment("# You can override it with --force or 'allow-in-use yes' config option.");
            self.comment(
                "# Note - do so only if you know what you're doing, you may damage your data.",
            );
            return Ok(());
        }
        if !network && !self.opener.store_exists(path) {
            self.comment(&format!("# Skipping device: {path}"));
            self.comment(&format!(
                "# {path} does not exist - please check the configuration file"
            ));
            return Ok(());
        }
        if let Some(key) = &l.duplicate {
            let kind = if l.direct {
                "direct-store"
            } else {
                "backing-store"
            };
            self.report.stdout.push_str(&format!(
                "Multiple '{key}' definitions in '{kind}' not allowed!\n\
                 Check your config file for errors (target: {}).\n",
                t.name
            ));
            self.report.code = 1;
            return Err(Stop);
        }
        let lun = if l.explicit_lun {
            l.lun
        } else {
            (1..).find(|n| !taken.contains(n)).unwrap_or(u64::MAX)
        };
        taken.insert(lun);
        let opt = |flag: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| format!("{flag} {v}"))
                .unwrap_or_default()
        };
        let text = format!(
            "{} --lld iscsi --op new --mode logicalunit --tid {tid} --lun {lun} -b \"{path}\" {} {} {} {} {}",
            self.tgtadm(),
            opt("--device-type", &l.device_type),
            opt("--bstype", &l.bstype),
            opt("--bsopts", &l.bsopts),
            opt("--bsoflags", &l.bsoflags),
            opt("--blocksize", &l.blocksize.map(|b| b.to_string())),
        );
        self.cmd(
            text,
            Request::LuNew {
                tid,
                lun,
                backing_store: path.clone(),
                bstype: l.bstype.clone(),
                blocksize: l.blocksize,
                params: None,
                bsoflags: l.bsoflags.clone(),
                bsopts: l.bsopts.clone(),
                device_type: l.device_type.clone(),
            },
        )?;
        // Mode pages first, then the other parameters, as tgt-admin orders them.
        let mut params: Vec<String> = Vec::new();
        for (k, v) in &l.params {
            match k.as_str() {
                "write_cache" if v == "0" => params.insert(0, WRITE_CACHE_OFF.to_string()),
                "write_cache" => {}
                "mode_page" => params.insert(0, format!("mode_page={v}")),
                _ => params.push(format!("{k}={v}")),
            }
        }
        // tgt-admin's order for the others: its lists of LU settings.
        const ORDER: &[&str] = &[
            "scsi_id",
            "sense_format",
            "removable",
            "online",
            "path",
            "readonly",
            "vendor_id",
            "product_id",
            "product_rev",
            "scsi_sn",
            "lbppbe",
            "la_lba",
            "optimal_xfer_gran",
            "optimal_xfer_len",
        ];
        let rank = |p: &String| {
            let k = p.split('=').next().unwrap_or_default();
            match k {
                "mode_page" => 0,
                _ => 1 + ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len()),
            }
        };
        params.sort_by_key(rank);
        let cache_on = !params.iter().any(|p| p == WRITE_CACHE_OFF);
        for p in params {
            let (k, v) = p.split_once('=').unwrap_or((&p, ""));
            let shown = if k == "mode_page" {
                p.clone()
            } else {
                format!("{k}=\"{v}\"")
            };
            let text = format!(
                "{} --lld iscsi --op update --mode logicalunit --tid {tid} --lun={lun} --params {shown}",
                self.tgtadm()
            );
            self.cmd(
                text,
                Request::LuUpdate {
                    tid,
                    lun,
                    params: Some(p.clone()),
                },
            )?;
        }
        if cache_on {
            self.comment(&format!(
                "# Write cache is enabled (default) for lun {lun}."
            ));
        }
        Ok(())
    }

    /// tgt-admin's target creation: the target, then its options in the order of
    /// their sorted keys (iSCSI keys, which are capitalized, first; then stores,
    /// `incominguser`, `initiator-address`, `initiator-name`, `outgoinguser`), then
    /// `-I ALL` unless an `initiator-address` was given.
    fn add_target(&mut self, t: &TargetConfig, tid: Tid) -> Result<(), Stop> {
        let adm = self.tgtadm();
        self.comment(&format!("# Adding target: {}", t.name));
        self.cmd(
            format!(
                "{adm} --lld iscsi --op new --mode target --tid {tid} -T {}",
                t.name
            ),
            Request::TargetNew {
                tid,
                name: t.name.clone(),
            },
        )?;
        // One value per key (tgt-admin warns and takes the first), keys sorted.
        let mut params: Vec<&(String, String)> = Vec::new();
        for p in &t.params {
            // `alua_state` names one group a line: every line counts, in order.
            if p.0 == "alua_state" || !params.iter().any(|q| q.0 == p.0) {
                params.push(p);
            }
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let (upper, lower): (Vec<_>, Vec<_>) = params
            .into_iter()
            .partition(|(k, _)| TARGET_KEYS.contains(&k.as_str()));
        for (k, v) in upper {
            self.target_update(tid, k, v)?;
        }
        let mut taken: BTreeSet<u64> = t
            .luns
            .iter()
            .filter(|l| l.explicit_lun)
            .map(|l| l.lun)
            .collect();
        for l in &t.luns {
            self.store(t, tid, l, &mut taken)?;
        }
        for u in &t.incoming {
            self.account(u, Some(tid), false)?;
        }
        for a in &t.initiator_addresses {
            self.bind(tid, Some(a), None)?;
        }
        for n in &t.initiator_names {
            self.bind(tid, None, Some(n))?;
        }
        if let Some(u) = &t.outgoing {
            self.account(u, Some(tid), true)?;
        }
        // Our extra keys (nop_interval, nop_count, redirects) after tgt-admin's.
        for (k, v) in lower {
            self.target_update(tid, k, v)?;
        }
        if t.initiator_addresses.is_empty() {
            self.bind(tid, Some("ALL"), None)?;
        }
        Ok(())
    }

    fn target_update(&mut self, tid: Tid, k: &str, v: &str) -> Result<(), Stop> {
        self.cmd(
            format!(
                "{} --lld iscsi --mode target --op update --tid {tid} --name {k} --value {v}",
                self.tgtadm()
            ),
            Request::TargetUpdate {
                tid,
                name: k.into(),
                value: v.into(),
            },
        )
    }

    fn bind(&mut self, tid: Tid, address: Option<&str>, name: Option<&str>) -> Result<(), Stop> {
        let what = match (address, name) {
            (Some(a), _) => format!("-I {a}"),
            (None, n) => format!("-Q {}", n.unwrap_or_default()),
        };
        self.cmd(
            format!(
                "{} --lld iscsi --op bind --mode target --tid {tid} {what}",
                self.tgtadm()
            ),
            Request::TargetBind {
                tid,
                address: address.map(String::from),
                initiator_name: name.map(String::from),
            },
        )
    }

    /// tgt-admin's `main_delete`: a target in use stays unless `--force`.
    /// `Ok(true)` when it is in use and stays.
    fn delete(&mut self, target: &Target, updating: bool) -> Result<bool, Stop> {
        let tid = target.tid;
        if !target.sessions().is_empty() && !self.opts.force {
            let what = if updating { "updated" } else { "deleted" };
            self.comment(&format!(
                "# Target with tid {tid} ({}) is in use, it won't be {what}.",
                target.name
            ));
            return Ok(true);
        }
        self.comment(&format!("# Removing target: {}", target.name));
        self.cmd(
            format!("{} --mode target --op delete --tid={tid}", self.tgtadm()),
            Request::TargetDelete {
                tid,
                force: self.opts.force,
            },
        )?;
        self.comment("");
        Ok(false)
    }

    /// The top-level keys: iSNS (only while iSNS is off) and discovery accounts.
    fn globals(&mut self, cfg: &Config) -> Result<(), Stop> {
        if !self.opts.pretend {
            apply_isns(self.core, &cfg.isns);
        }
        for u in &cfg.discovery_incoming {
            self.account(u, None, false)?;
        }
        if let Some(u) = &cfg.discovery_outgoing {
            self.account(u, None, true)?;
        }
        if cfg.default_driver.is_none() {
            self.comment("# default-driver not defined, defaulting to iscsi.\n");
        }
        Ok(())
    }

    fn max_tid(&self) -> Tid {
        self.core
            .registry
            .targets()
            .iter()
            .map(|t| t.tid)
            .max()
            .unwrap_or(0)
    }

    /// `--execute`: new targets in name order (tids after the largest one, or
    /// `controller_tid`), then remove the ones the file lacks.
    fn execute(&mut self, cfg: &Config) -> Result<(), Stop> {
        self.globals(cfg)?;
        let mut next = self.max_tid();
        for t in sorted(cfg) {
            if self
                .core
                .registry
                .target_by_name(&t.name)
                .is_some_and(|x| x.name == t.name)
            {
                self.comment(&format!("# Target {} already exists!", t.name));
                continue;
            }
            next = t.controller_tid.unwrap_or(next + 1);
            self.add_target(t, next)?;
        }
        if !cfg.targets.is_empty() {
            self.comment("");
            for have in self.core.registry.targets() {
                if !cfg.targets.iter().any(|t| t.name == have.name) {
                    self.delete(&have, false)?;
                }
            }
        }
        Ok(())
    }

    /// `--update ALL|NAME|tid=N`.
    fn update(&mut self, cfg: &Config, which: &str) -> Result<(), Stop> {
        let existing: Vec<Arc<Target>> = self.core.registry.targets();
        let by_tid;
        let which = match which.strip_prefix("tid=") {
            Some(tid) => {
                let Some(t) = existing.iter().find(|t| tid.parse() == Ok(t.tid)) else {
                    self.report.stdout.push_str(&format!(
                        "There is no target with tid {tid}, can't continue!\n"
                    ));
                    self.report.code = 1;
                    return Err(Stop);
                };
                by_tid = t.name.clone();
                by_tid.as_str()
            }
            None => which,
        };
        let in_file = |name: &str| cfg.targets.iter().any(|t| t.name == name);
        let mut names: Vec<String> = existing
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| !in_file(n))
            .collect();
        names.extend(sorted(cfg).map(|t| t.name.clone()));
        if which != "ALL" {
            names.retain(|n| n == which);
            if names.is_empty() {
                self.report.stdout.push_str(&format!(
                    "Target {which} is currently not configured\n\
                     and does not exist in the config file - can't continue!\n"
                ));
                self.report.code = 1;
                return Err(Stop);
            }
        }
        self.globals(cfg)?;
        let mut next = self.max_tid();
        for name in names {
            let have = existing.iter().find(|t| t.name == name).cloned();
            let Some(want) = cfg.targets.iter().find(|t| t.name == name) else {
                if let Some(have) = have {
                    self.delete(&have, true)?;
                }
                continue;
            };
            let tid = match &have {
                Some(h) => {
                    if self.delete(h, true)? {
                        self.comment(&format!("# Target {name} already exists!"));
                        self.comment("");
                        continue;
                    }
                    h.tid
                }
                None => {
                    self.comment(&format!("# Target with name {name} does not exist!"));
                    next = next.max(self.max_tid()) + 1;
                    next
                }
            };
            self.add_target(want, want.controller_tid.unwrap_or(tid))?;
            self.comment("");
        }
        Ok(())
    }

    /// `--delete ALL|NAME|tid=N`; a target that does not exist is only a comment.
    fn remove(&mut self, which: &str) -> Result<(), Stop> {
        let targets = self.core.registry.targets();
        let chosen: Vec<&Arc<Target>> = match which {
            "ALL" => targets.iter().collect(),
            w => match w.strip_prefix("tid=") {
                Some(tid) => targets
                    .iter()
                    .filter(|t| tid.parse() == Ok(t.tid))
                    .collect(),
                None => targets.iter().filter(|t| t.name == w).collect(),
            },
        };
        if chosen.is_empty() && which != "ALL" {
            match which.strip_prefix("tid=") {
                Some(tid) => self.comment(&format!("# Target with tid {tid} does not exist!")),
                None => self.comment(&format!("# Target with name {which} does not exist!")),
            }
        }
        for t in chosen {
            self.delete(t, false)?;
        }
        Ok(())
    }
}

/// The file's targets in tgt-admin's order: by name (Perl's `sort keys`).
fn sorted(cfg: &Config) -> impl Iterator<Item = &TargetConfig> {
    let mut v: Vec<&TargetConfig> = cfg.targets.iter().collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v.into_iter()
}

/// Do what tgt-admin does for `action` with `cfg`; tgt-admin's output and exit
/// status come back as a [`ConfigReport`] in the response's `data`.
pub(super) fn apply(
    core: &Core,
    cfg: &Config,
    action: &ConfigAction,
    opts: Options,
    opener: &dyn StoreOpener,
) -> Response {
    let mut admin = Admin {
        core,
        opener,
        opts,
        ignore_errors: cfg.ignore_errors,
        report: ConfigReport::default(),
    };
    let _ = match action {
        ConfigAction::Execute => admin.execute(cfg),
        ConfigAction::Update(which) => admin.update(cfg, which),
        ConfigAction::Delete(which) => admin.remove(which),
    };
    let report = admin.report;
    let data = serde_json::to_value(&report).unwrap_or_default();
    Response {
        output: None,
        data: Some(data),
    }
}
