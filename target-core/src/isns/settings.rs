//! The `iSNS*` administration settings: `tgtadm --mode sys --op update --name
//! iSNS|iSNSServerIP|iSNSServerPort|iSNSAccessControl --value V` and the same keys at
//! the top of targets.conf, with tgt 1.0.85's acceptance rules (`isns_update` in
//! `usr/iscsi/isns.c`).

use super::access::AccessMap;
use super::ISNS_PORT;
use serde::{Deserialize, Serialize};
use std::sync::RwLock;

/// The iSNS settings as `tgtadm --mode sys --op show` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsnsSettings {
    /// `iSNS On|Off`: whether the daemon registers with the server.
    pub enabled: bool,
    /// `iSNSServerIP`: the server's address or host name; empty until set.
    pub server_ip: String,
    /// `iSNSServerPort`: tgt stores any C `int` here and only fails when it connects;
    /// so do we (the adapter refuses a port outside 1..=65535 and logs it).
    pub server_port: i32,
    /// `iSNSAccessControl On|Off`: with `iSNS On`, only initiators the server lets
    /// see a target may log in to it or find it with SendTargets
    /// ([`IsnsState::allows_initiator`]).
    pub access_control: bool,
}

impl Default for IsnsSettings {
    fn default() -> Self {
        IsnsSettings {
            enabled: false,
            server_ip: String::new(),
            server_port: i32::from(ISNS_PORT),
            access_control: false,
        }
    }
}

/// Why a setting was refused (tgtadm reports both as "invalid request").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingError {
    /// Not one of the four iSNS names (they are case-sensitive, as in tgt).
    #[error("unknown iSNS setting '{0}'")]
    UnknownName(String),
    /// A value the setting cannot take (`iSNS` other than On/Off, a port that is not
    /// an integer).
    #[error("invalid value '{value}' for {name}")]
    BadValue {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: String,
    },
}

impl IsnsSettings {
    /// The setting names, in the order tgt shows them.
    pub const NAMES: [&'static str; 4] = [
        "iSNS",
        "iSNSServerIP",
        "iSNSServerPort",
        "iSNSAccessControl",
    ];

    /// Apply one `--name NAME --value V`. tgt's rules: `iSNS` takes `On` or `Off`
    /// only, and `On` without a server address is accepted but leaves iSNS off (tgt's
    /// `isns_init` fails on the empty address and the update still succeeds);
    /// `iSNSServerPort` takes any integer in C's `strtol` base-0 syntax;
    /// `iSNSAccessControl` is on for `On` and off for anything else; `iSNSServerIP`
    /// takes any text.
    pub fn update(&mut self, name: &str, value: &str) -> Result<(), SettingError> {
        match name {
            "iSNS" => match value {
                "On" => self.enabled = !self.server_ip.is_empty(),
                "Off" => self.enabled = false,
                _ => {
                    return Err(SettingError::BadValue {
                        name: "iSNS",
                        value: value.into(),
                    })
                }
            },
            "iSNSServerIP" => self.server_ip = value.into(),
            "iSNSServerPort" => {
                self.server_port = parse_c_int(value).ok_or_else(|| SettingError::BadValue {
                    name: "iSNSServerPort",
                    value: value.into(),
                })?
            }
            "iSNSAccessControl" => self.access_control = value == "On",
            _ => return Err(SettingError::UnknownName(name.into())),
        }
        Ok(())
    }

    /// The server port when it is a usable TCP port.
    pub fn port(&self) -> Option<u16> {
        u16::try_from(self.server_port).ok().filter(|p| *p != 0)
    }

    /// `On`/`Off` as tgt prints a flag.
    pub fn on_off(flag: bool) -> &'static str {
        if flag {
            "On"
        } else {
            "Off"
        }
    }
}

/// C `strtol(s, &end, 0)` over the whole string (leading blanks skipped) into an `int`: optional sign, `0x`
/// hex, leading-`0` octal, else decimal (the kernel-style `match_int` tgt uses).
fn parse_c_int(s: &str) -> Option<i32> {
    // strtol skips leading white space.
    let s = s.trim_start();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, h)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    i32::try_from(if neg { -v } else { v }).ok()
}

/// The live settings, shared by the management path (writes) and the daemon's iSNS
/// thread (reads), and the access lists the iSNS thread learns from the server
/// (read by login and SendTargets).
#[derive(Debug, Default)]
pub struct IsnsState {
    settings: RwLock<IsnsSettings>,
    access: RwLock<AccessMap>,
}

impl IsnsState {
    /// The current settings.
    pub fn get(&self) -> IsnsSettings {
        self.settings.read().expect("isns lock poisoned").clone()
    }

    /// Replace every setting.
    pub fn set(&self, settings: IsnsSettings) {
        *self.settings.write().expect("isns lock poisoned") = settings;
    }

    /// [`IsnsSettings::update`] on the live settings.
    pub fn update(&self, name: &str, value: &str) -> Result<(), SettingError> {
        self.settings
            .write()
            .expect("isns lock poisoned")
            .update(name, value)
    }

    /// tgt's `isns_scn_access`: whether `initiator` may log in to (and discover)
    /// `target`. Always when iSNS or iSNSAccessControl is off; otherwise only when
    /// the server listed the initiator for the target. Until the server has answered
    /// for a target (not reachable yet, just registered) nobody is admitted, as in
    /// tgt, whose list starts empty.
    pub fn allows_initiator(&self, target: &str, initiator: &str) -> bool {
        let enforced = {
            let s = self.settings.read().expect("isns lock poisoned");
            s.enabled && s.access_control
        };
        !enforced
            || self
                .access
                .read()
                .expect("isns lock poisoned")
                .allows(target, initiator)
    }

    /// The access lists as last learnt.
    pub fn access(&self) -> AccessMap {
        self.access.read().expect("isns lock poisoned").clone()
    }

    /// Replace the access lists (the iSNS thread, after the server answered).
    pub fn set_access(&self, map: AccessMap) {
        *self.access.write().expect("isns lock poisoned") = map;
    }
}
