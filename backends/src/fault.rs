//! `fault`: a store that wraps another and fails, slows down or holds the operations
//! its rules pick. For tests, and for administrators who rehearse failures (what does
//! the database do when a write fails, when a flush fails, when the disk stalls?).
//!
//! # Opening
//!
//! ```text
//! tgtadm --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 \
//!     --bstype fault --backing-store /srv/disk.img \
//!     --bsopts "inner=rdwr;rules=read:eio@100-199+flush:eio"
//! ```
//!
//! `--bsopts` is `key=value` items joined by `;`:
//! - `inner=TYPE`: the wrapped store's type (`rdwr`, `memory`, `null`; default `rdwr`).
//!   `--backing-store` and `--bsoflags` mean what they mean for that type.
//! - `rules=RULES`: the rules to start with (default none: the store behaves as its
//!   inner store).
//!
//! # Rules
//!
//! `RULES` is rules joined by `+` (no spaces; `+` is free in both `--bsopts`, whose
//! items are split at `;`, and `--params`, split at `,`). One rule:
//!
//! ```text
//! OP:ACTION[@FIRST-LAST|@LBA][:after=N][:p=P][:times=N][:seed=N]
//! ```
//!
//! | part | values |
//! |---|---|
//! | `OP` | `read` (READ, VERIFY, the read of COMPARE AND WRITE / ORWRITE), `write` (WRITE, WRITE SAME, UNMAP, COMPARE AND WRITE, ORWRITE), `flush` (SYNCHRONIZE CACHE and the flush of a FUA write), `any` |
//! | `ACTION` | `eio` (medium error), `enospc` (out of space; `write` only), `delay=D` (wait `D`, e.g. `50ms`, `2s`, `500us`, then go on), `hang` (hold the operation until the rules are changed) |
//! | `@FIRST-LAST` | only operations touching these LBAs (inclusive, in the LU's blocks); `@LBA` for one block; none: the whole LU (`flush` takes no range) |
//! | `after=N` | let the first `N` matching operations through, then act |
//! | `p=P` | act on a matching operation with probability `P` (0 to 1), drawn from a xorshift generator seeded from the rule's text (or `seed=N`), so a run can be replayed |
//! | `times=N` | act at most `N` times |
//!
//! Examples: `read:eio@100-199`, `write:enospc@100-199`, `flush:eio`,
//! `write:eio@0-9:after=5`, `read:eio:p=0.01`, `read:delay=50ms@0-1023`,
//! `write:hang@500`.
//!
//! The first rule that acts on an operation decides it; delays add up and the
//! operation goes on. An `eio` on a read is reported with the first failing LBA
//! (MEDIUM ERROR, UNRECOVERED READ ERROR, INFORMATION = that LBA); on a write a WRITE
//! ERROR the same way; `enospc` is out of space (SPACE ALLOCATION FAILED on a thin LU).
//! A failed flush behaves like a real failed `fdatasync`: every later flush (and FUA
//! write) fails too, until the LU is opened again.
//!
//! Delays and holds run on the I/O worker that runs the operation: a held operation
//! keeps its worker (`--io-threads`, default 16) until released, so holding as many
//! operations as there are workers stalls every LU of the daemon. Release held
//! operations (`fault=`) before deleting the LU: nothing else does. EXTENDED COPY and
//! GET LBA STATUS are not subject to rules.
//!
//! # At run time
//!
//! `tgtadm --mode logicalunit --op update --tid T --lun L --params fault=RULES` replaces
//! the rules (`fault=` clears them); either releases every held (`hang`) operation,
//! which then meets the new rules. A rule that does not parse is refused with the
//! reason ([`RuleError`]) and the old rules stay.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use scsi_sbc::{BlockOp, BlockStore, IoErrorKind};

use crate::{open_store, BackendError, BsType, OpenOptions};

/// Longest `delay=`: one that long is a hang, and `hang` says so.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Why a fault rule did not parse. The text says which rule and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A rule without `OP:ACTION`.
    #[error("fault rule '{rule}': expected OP:ACTION, e.g. read:eio@100-199")]
    Incomplete {
        /// The rule as given.
        rule: String,
    },
    /// The operation is not one of `read`, `write`, `flush`, `any`.
    #[error("fault rule '{rule}': unknown operation '{op}' (expected read, write, flush or any)")]
    UnknownOp {
        /// The rule as given.
        rule: String,
        /// The operation as given.
        op: String,
    },
    /// The action is not one of `eio`, `enospc`, `delay=D`, `hang`.
    #[error(
        "fault rule '{rule}': unknown action '{action}' (expected eio, enospc, delay=DURATION or hang)"
    )]
    UnknownAction {
        /// The rule as given.
        rule: String,
        /// The action as given.
        action: String,
    },
    /// `enospc` on something other than writes.
    #[error("fault rule '{rule}': enospc applies to write only")]
    NoSpaceNotWrite {
        /// The rule as given.
        rule: String,
    },
    /// An LBA range that is not `FIRST-LAST` with `FIRST <= LAST`, or one on `flush`.
    #[error("fault rule '{rule}': bad LBA range '{range}' (expected FIRST-LAST or LBA; flush takes none)")]
    BadRange {
        /// The rule as given.
        rule: String,
        /// The range as given.
        range: String,
    },
    /// A modifier other than `after=`, `p=`, `times=`, `seed=`, or one with a bad value.
    #[error(
        "fault rule '{rule}': bad modifier '{modifier}' (expected after=N, p=0..1, times=N or seed=N)"
    )]
    BadModifier {
        /// The rule as given.
        rule: String,
        /// The modifier as given.
        modifier: String,
    },
    /// A `delay=` that is not a number with `us`, `ms` or `s`, or longer than an hour.
    #[error("fault rule '{rule}': bad duration '{duration}' (expected e.g. 500us, 50ms or 2s, at most 1h)")]
    BadDuration {
        /// The rule as given.
        rule: String,
        /// The duration as given.
        duration: String,
    },
}

/// Which operations a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// Reads (and the read half of read-modify-write operations).
    Read,
    /// Writes of every kind.
    Write,
    /// Flushes (SYNCHRONIZE CACHE, FUA).
    Flush,
    /// All of them.
    Any,
}

/// What a rule does to an operation it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Fail with a medium error.
    Eio,
    /// Fail with out of space.
    NoSpace,
    /// Wait, then go on.
    Delay(Duration),
    /// Hold until the rules change.
    Hang,
}

/// One parsed rule (see the module documentation for the syntax).
#[derive(Debug)]
pub struct FaultRule {
    text: String,
    /// The operations it looks at.
    pub op: FaultOp,
    /// What it does.
    pub action: FaultAction,
    /// Inclusive LBA range; `None`: every LBA.
    pub lbas: Option<(u64, u64)>,
    /// Matching operations let through first.
    pub after: u64,
    /// Probability of acting, when not always.
    pub probability: Option<f64>,
    /// Most times it acts.
    pub times: Option<u64>,
    seen: AtomicU64,
    fired: AtomicU64,
    rng: Mutex<u64>,
}

impl FaultRule {
    /// The rule as it was written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many times the rule has acted.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    fn looks_at(&self, op: FaultOp) -> bool {
        self.op == FaultOp::Any || self.op == op
    }

    /// The first byte of `offset .. offset + len` inside the rule's range, if any.
    fn overlap(&self, offset: u64, len: u64, block: u64) -> Option<u64> {
        let Some((first, last)) = self.lbas else {
            return Some(offset);
        };
        let lo = first.saturating_mul(block);
        let hi = last.saturating_add(1).saturating_mul(block);
        let end = offset.saturating_add(len.max(1));
        (offset < hi && end > lo).then(|| offset.max(lo))
    }

    /// Count a matching operation and decide whether the rule acts on it.
    fn decide(&self) -> bool {
        let seen = self.seen.fetch_add(1, Ordering::Relaxed);
        if seen < self.after {
            return false;
        }
        if let Some(p) = self.probability {
            let mut x = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            // xorshift64*: deterministic from the seed, good enough to spread faults.
            *x ^= *x >> 12;
            *x ^= *x << 25;
            *x ^= *x >> 27;
            let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
            if (r as f64) / ((1u64 << 53) as f64) >= p {
                return false;
            }
        }
        if let Some(max) = self.times {
            let ok = self
                .fired
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok();
            return ok;
        }
        self.fired.fetch_add(1, Ordering::Relaxed);
        true
    }
}

impl FromStr for FaultRule {
    type Err = RuleError;

    fn from_str(rule: &str) -> Result<Self, RuleError> {
        let text = rule.to_owned();
        let mut parts = rule.split(':');
        let op_text = parts.next().unwrap_or_default();
        let Some(action_text) = parts.next().filter(|a| !a.is_empty()) else {
            return Err(RuleError::Incomplete { rule: text });
        };
        let op = match op_text.to_ascii_lowercase().as_str() {
            "read" => FaultOp::Read,
            "write" => FaultOp::Write,
            "flush" => FaultOp::Flush,
            "any" => FaultOp::Any,
            _ => {
                return Err(RuleError::UnknownOp {
                    op: op_text.to_owned(),
                    rule: text,
                })
            }
        };
        let (action_word, range) = match action_text.split_once('@') {
            Some((a, r)) => (a, Some(r)),
            None => (action_text, None),
        };
        let action = match action_word.to_ascii_lowercase().as_str() {
            "eio" => FaultAction::Eio,
            "enospc" => FaultAction::NoSpace,
            "hang" => FaultAction::Hang,
            a => match a.strip_prefix("delay=") {
                Some(d) => {
                    FaultAction::Delay(parse_duration(d).ok_or_else(|| RuleError::BadDuration {
                        rule: text.clone(),
                        duration: d.to_owned(),
                    })?)
                }
                None => {
                    return Err(RuleError::UnknownAction {
                        rule: text,
                        action: action_word.to_owned(),
                    })
                }
            },
        };
        if action == FaultAction::NoSpace && op != FaultOp::Write {
            return Err(RuleError::NoSpaceNotWrite { rule: text });
        }
        let lbas = match range {
            None => None,
            Some(r) => {
                let bad = || RuleError::BadRange {
                    rule: text.clone(),
                    range: r.to_owned(),
                };
                if op == FaultOp::Flush {
                    return Err(bad());
                }
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                let a: u64 = a.trim().parse().map_err(|_| bad())?;
                let b: u64 = b.trim().parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                Some((a, b))
            }
        };
        let mut after = 0;
        let mut probability = None;
        let mut times = None;
        let mut seed = None;
        for m in parts {
            let bad = || RuleError::BadModifier {
                rule: text.clone(),
                modifier: m.to_owned(),
            };
            let (k, v) = m.split_once('=').ok_or_else(bad)?;
            match k {
                "after" => after = v.parse().map_err(|_| bad())?,
                "times" => times = Some(v.parse().map_err(|_| bad())?),
                "seed" => seed = Some(v.parse::<u64>().map_err(|_| bad())?),
                "p" => {
                    let p: f64 = v.parse().map_err(|_| bad())?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(bad());
                    }
                    probability = Some(p);
                }
                _ => return Err(bad()),
            }
        }
        // Seeded from the rule (FNV-1a of its text) unless told: the same rules fail
        // the same operations on every run.
        let seed = seed.unwrap_or_else(|| {
            rule.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
        });
        Ok(FaultRule {
            text,
            op,
            action,
            lbas,
            after,
            probability,
            times,
            seen: AtomicU64::new(0),
            fired: AtomicU64::new(0),
            // xorshift has a fixed point at 0.
            rng: Mutex::new(seed.max(1)),
        })
    }
}

/// `50ms`, `2s`, `500us` (a bare number is milliseconds), at most [`MAX_DELAY`].
fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..end].parse().ok()?;
    let d = match &t[end..] {
        "us" => Duration::from_micros(n),
        "ms" | "" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        _ => return None,
    };
    (d <= MAX_DELAY).then_some(d)
}

/// Parse rules joined by `+` (empty text: no rules).
pub fn parse_rules(text: &str) -> Result<Vec<FaultRule>, RuleError> {
    text.split('+')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::parse)
        .collect()
}

/// The fault-injecting store (`--bstype fault`); see the module documentation.
pub struct FaultStore {
    inner: Arc<dyn BlockStore>,
    inner_type: BsType,
    block: u64,
    rules: RwLock<Arc<Vec<FaultRule>>>,
    /// Moves whenever the rules are replaced; held operations wait for it.
    generation: Mutex<u64>,
    changed: Condvar,
    /// An injected flush failure happened: flushes fail from now on.
    flush_failed: AtomicBool,
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultStore")
            .field("inner", &self.inner)
            .field("rules", &self.rules_text())
            .finish()
    }
}

/// One piece of an operation as the rules see it.
struct Touch {
    op: FaultOp,
    offset: u64,
    len: u64,
}

impl FaultStore {
    /// Wrap `inner` (of type `inner_type`, whose blocks are `block_size` bytes) with
    /// `rules` (see [`parse_rules`]).
    pub fn new(
        inner: Arc<dyn BlockStore>,
        inner_type: BsType,
        block_size: u32,
        rules: &str,
    ) -> Result<FaultStore, RuleError> {
        Ok(FaultStore {
            inner,
            inner_type,
            block: u64::from(block_size.max(512)),
            rules: RwLock::new(Arc::new(parse_rules(rules)?)),
            generation: Mutex::new(0),
            changed: Condvar::new(),
            flush_failed: AtomicBool::new(false),
        })
    }

    /// Open the inner store named by `bsopts` (`inner=TYPE;rules=RULES`) on `path`
    /// with `opts`, and wrap it.
    pub fn open(path: &str, bsopts: &str, opts: &OpenOptions) -> Result<FaultStore, BackendError> {
        let bad = |why: String| BackendError::BadOptions {
            text: bsopts.to_owned(),
            why,
        };
        let mut inner_type = BsType::Rdwr;
        let mut rules = "";
        for item in bsopts.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some(("inner", t)) => {
                    inner_type = t.parse()?;
                    if inner_type == BsType::Fault {
                        return Err(bad("a fault store cannot wrap another fault store".into()));
                    }
                }
                Some(("rules", r)) => rules = r,
                _ => {
                    return Err(bad(format!(
                        "unknown option '{item}' (the fault store takes inner=TYPE and rules=RULES)"
                    )))
                }
            }
        }
        let inner = open_store(inner_type, path, opts)?;
        FaultStore::new(inner, inner_type, opts.block_size, rules).map_err(|source| {
            BackendError::FaultRules {
                text: rules.to_owned(),
                source,
            }
        })
    }

    /// The wrapped store's type.
    pub fn inner_type(&self) -> BsType {
        self.inner_type
    }

    /// Replace the rules and release every held operation. Bad rules leave the old
    /// ones in place.
    pub fn set_rules(&self, text: &str) -> Result<(), RuleError> {
        let rules = Arc::new(parse_rules(text)?);
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = rules;
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
        Ok(())
    }

    /// The rules in force, joined by `+`.
    pub fn rules_text(&self) -> String {
        let rules = self.current();
        rules.iter().map(|r| r.text()).collect::<Vec<_>>().join("+")
    }

    fn current(&self) -> Arc<Vec<FaultRule>> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the rules look at in `op`, in the order the operation does it.
    fn touches(op: &BlockOp) -> Vec<Touch> {
        let t = |op, offset, len| Touch { op, offset, len };
        let flush = |fua: bool| fua.then(|| t(FaultOp::Flush, 0, 0));
        match op {
            BlockOp::Read { offset, len } => vec![t(FaultOp::Read, *offset, *len)],
            BlockOp::Compare { offset, data } => {
                vec![t(FaultOp::Read, *offset, data.len() as u64)]
            }
            BlockOp::Write { offset, data, fua } => [t(FaultOp::Write, *offset, data.len() as u64)]
                .into_iter()
                .chain(flush(*fua))
                .collect(),
            BlockOp::WriteSame {
                offset, len, fua, ..
            } => [t(FaultOp::Write, *offset, *len)]
                .into_iter()
                .chain(flush(*fua))
                .collect(),
            BlockOp::CompareAndWrite {
                offset, data, fua, ..
            }
            | BlockOp::OrWrite { offset, data, fua } => {
                let len = data.len() as u64;
                [
                    t(FaultOp::Read, *offset, len),
                    t(FaultOp::Write, *offset, len),
                ]
                .into_iter()
                .chain(flush(*fua))
                .collect()
            }
            BlockOp::Unmap { ranges } => ranges
                .iter()
                .map(|&(o, l)| t(FaultOp::Write, o, l))
                .collect(),
            BlockOp::Flush => vec![t(FaultOp::Flush, 0, 0)],
            BlockOp::Copy { .. }
            | BlockOp::Provisioning { .. }
            | BlockOp::SaveState { .. }
            | BlockOp::PrOut { .. }
            | BlockOp::LuEvent { .. }
            | BlockOp::Device { .. } => Vec::new(),
        }
    }

    /// Apply the rules to `op`: `Err` is the injected failure; delays are slept and
    /// holds waited out here.
    fn inject(&self, op: &BlockOp) -> Result<(), IoErrorKind> {
        let touches = Self::touches(op);
        if touches.iter().any(|t| t.op == FaultOp::Flush)
            && self.flush_failed.load(Ordering::Acquire)
        {
            return Err(IoErrorKind::WriteError);
        }
        'again: loop {
            let generation = *self
                .generation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let rules = self.current();
            for touch in &touches {
                for rule in rules.iter().filter(|r| r.looks_at(touch.op)) {
                    let at = match touch.op {
                        FaultOp::Flush => Some(0),
                        _ => rule.overlap(touch.offset, touch.len, self.block),
                    };
                    let Some(at) = at else { continue };
                    if !rule.decide() {
                        continue;
                    }
                    match rule.action {
                        FaultAction::Delay(d) => std::thread::sleep(d),
                        FaultAction::Hang => {
                            let mut g = self
                                .generation
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner);
                            while *g == generation {
                                g = self.changed.wait(g).unwrap_or_else(PoisonError::into_inner);
                            }
                            continue 'again;
                        }
                        FaultAction::NoSpace => return Err(IoErrorKind::NoSpace),
                        FaultAction::Eio => {
                            return Err(match touch.op {
                                FaultOp::Read => IoErrorKind::ReadErrorAt { offset: at },
                                FaultOp::Flush => {
                                    self.flush_failed.store(true, Ordering::Release);
                                    IoErrorKind::WriteError
                                }
                                _ => IoErrorKind::WriteErrorAt { offset: at },
                            })
                        }
                    }
                }
            }
            return Ok(());
        }
    }
}

impl BlockStore for FaultStore {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn execute(&self, op: &BlockOp) -> Result<Bytes, IoErrorKind> {
        self.inject(op)?;
        self.inner.execute(op)
    }

    /// Only while there are no rules: a rule may have to sleep or hold.
    fn execute_nowait(&self, op: &BlockOp) -> Option<Result<Bytes, IoErrorKind>> {
        if !self.current().is_empty() || self.flush_failed.load(Ordering::Acquire) {
            return None;
        }
        self.inner.execute_nowait(op)
    }

    fn physical_block_size(&self) -> Option<u32> {
        self.inner.physical_block_size()
    }

    fn saves_state(&self) -> bool {
        self.inner.saves_state()
    }

    fn saved_state(&self) -> Option<Bytes> {
        self.inner.saved_state()
    }

    fn refresh_size(&self) -> Option<u64> {
        self.inner.refresh_size()
    }

    /// `fault=RULES` replaces the rules; other keys go to the inner store.
    fn configure(&self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "fault" => self.set_rules(value).map_err(|e| e.to_string()),
            _ => self.inner.configure(key, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use std::sync::mpsc;

    fn store(rules: &str) -> Arc<FaultStore> {
        let inner: Arc<dyn BlockStore> = Arc::new(MemoryStore::new(1 << 20));
        Arc::new(FaultStore::new(inner, BsType::Memory, 512, rules).unwrap())
    }

    fn read(lba: u64, blocks: u64) -> BlockOp {
        BlockOp::Read {
            offset: lba * 512,
            len: blocks * 512,
        }
    }

    fn write(lba: u64, blocks: u64, fua: bool) -> BlockOp {
        BlockOp::Write {
            offset: lba * 512,
            data: Bytes::from(vec![1u8; (blocks * 512) as usize]),
            fua,
        }
    }

    #[test]
    fn rules_parse() {
        let r: FaultRule = "read:eio@100-199".parse().unwrap();
        assert_eq!(
            (r.op, r.action, r.lbas, r.after),
            (FaultOp::Read, FaultAction::Eio, Some((100, 199)), 0)
        );
        let r: FaultRule = "write:eio@0-9:after=5".parse().unwrap();
        assert_eq!((r.lbas, r.after), (Some((0, 9)), 5));
        let r: FaultRule = "read:eio:p=0.01".parse().unwrap();
        assert_eq!((r.lbas, r.probability), (None, Some(0.01)));
        let r: FaultRule = "read:delay=50ms@7".parse().unwrap();
        assert_eq!(
            (r.action, r.lbas),
            (FaultAction::Delay(Duration::from_millis(50)), Some((7, 7)))
        );
        let r: FaultRule = "write:hang@3-4:times=1".parse().unwrap();
        assert_eq!((r.action, r.times), (FaultAction::Hang, Some(1)));
        let r: FaultRule = "flush:eio".parse().unwrap();
        assert_eq!((r.op, r.lbas), (FaultOp::Flush, None));
        assert_eq!(
            "write:enospc@100-199".parse::<FaultRule>().unwrap().action,
            FaultAction::NoSpace
        );
        let all = parse_rules("read:eio@1+flush:eio+ +any:delay=1us").unwrap();
        assert_eq!(all.len(), 3);
        assert!(parse_rules("").unwrap().is_empty());
    }

    #[test]
    fn bad_rules_say_why() {
        let err = |t: &str| t.parse::<FaultRule>().unwrap_err();
        assert!(matches!(err("read"), RuleError::Incomplete { .. }));
        assert!(matches!(err("read:"), RuleError::Incomplete { .. }));
        assert!(matches!(err("erase:eio"), RuleError::UnknownOp { op, .. } if op == "erase"));
        assert!(
            matches!(err("read:boom"), RuleError::UnknownAction { action, .. } if action == "boom")
        );
        assert!(matches!(
            err("read:enospc"),
            RuleError::NoSpaceNotWrite { .. }
        ));
        assert!(matches!(err("read:eio@9-1"), RuleError::BadRange { range, .. } if range == "9-1"));
        assert!(matches!(err("read:eio@x"), RuleError::BadRange { .. }));
        assert!(matches!(err("flush:eio@1-2"), RuleError::BadRange { .. }));
        assert!(matches!(err("read:eio:p=2"), RuleError::BadModifier { .. }));
        assert!(matches!(
            err("read:eio:after=x"),
            RuleError::BadModifier { .. }
        ));
        assert!(matches!(
            err("read:eio:often"),
            RuleError::BadModifier { .. }
        ));
        assert!(matches!(
            err("read:delay=5h"),
            RuleError::BadDuration { .. }
        ));
        assert!(matches!(
            err("read:delay=9999s"),
            RuleError::BadDuration { .. }
        ));
        assert_eq!(
            err("read:boom").to_string(),
            "fault rule 'read:boom': unknown action 'boom' (expected eio, enospc, delay=DURATION or hang)"
        );
        // One bad rule refuses the set.
        assert!(parse_rules("read:eio+write:oops").is_err());
    }

    #[test]
    fn errors_hit_their_range_with_the_first_failing_lba() {
        let s = store("read:eio@100-199+write:enospc@300-399");
        assert!(s.execute(&read(0, 100)).is_ok());
        assert_eq!(
            s.execute(&read(90, 20)),
            Err(IoErrorKind::ReadErrorAt { offset: 100 * 512 })
        );
        assert_eq!(
            s.execute(&read(150, 1)),
            Err(IoErrorKind::ReadErrorAt { offset: 150 * 512 })
        );
        assert!(s.execute(&read(200, 8)).is_ok());
        assert!(s.execute(&write(100, 1, false)).is_ok(), "reads only");
        assert_eq!(s.execute(&write(399, 4, false)), Err(IoErrorKind::NoSpace));
        assert!(s.execute(&BlockOp::Flush).is_ok());
    }

    #[test]
    fn after_times_and_probability() {
        let s = store("write:eio@0-9:after=5");
        for _ in 0..5 {
            assert!(s.execute(&write(3, 1, false)).is_ok());
        }
        assert!(s.execute(&write(20, 1, false)).is_ok(), "not in the range");
        assert_eq!(
            s.execute(&write(0, 4, false)),
            Err(IoErrorKind::WriteErrorAt { offset: 0 })
        );
        let s = store("read:eio:times=2");
        let fails = (0..10).filter(|_| s.execute(&read(0, 1)).is_err()).count();
        assert_eq!(fails, 2);
        // p=0.25 over 4000 reads: about 1000, and the same on every run.
        let count = || {
            let s = store("read:eio:p=0.25");
            (0..4000)
                .filter(|_| s.execute(&read(0, 1)).is_err())
                .count()
        };
        let n = count();
        assert!((800..1200).contains(&n), "{n}");
        assert_eq!(count(), n, "seeded: replays");
    }

    #[test]
    fn a_failed_flush_stays_failed() {
        let s = store("flush:eio:times=1");
        assert!(s.execute(&write(0, 1, false)).is_ok());
        assert_eq!(s.execute(&BlockOp::Flush), Err(IoErrorKind::WriteError));
        s.set_rules("").unwrap();
        assert_eq!(s.execute(&BlockOp::Flush), Err(IoErrorKind::WriteError));
        assert_eq!(s.execute(&write(0, 1, true)), Err(IoErrorKind::WriteError));
        assert!(s.execute(&write(0, 1, false)).is_ok());
        assert!(s.execute_nowait(&BlockOp::Flush).is_none());
    }

    #[test]
    fn delay_and_hang_until_released() {
        let s = store("read:delay=30ms@5");
        let t = std::time::Instant::now();
        s.execute(&read(5, 1)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(30));
        s.configure("fault", "write:hang@10").unwrap();
        assert_eq!(s.rules_text(), "write:hang@10");
        let (tx, rx) = mpsc::channel();
        let held = s.clone();
        let worker = std::thread::spawn(move || {
            let r = held.execute(&write(10, 1, false));
            tx.send(r).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "held");
        // Other operations go on meanwhile.
        assert!(s.execute(&write(11, 1, false)).is_ok());
        // Bad rules leave it held; clearing releases it.
        assert!(s.configure("fault", "write:nope").is_err());
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        s.configure("fault", "").unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Ok(Bytes::new())
        );
        worker.join().unwrap();
        assert!(s.configure("bogus", "1").is_err());
    }

    #[test]
    fn opens_its_inner_store_from_bsopts() {
        let opts = OpenOptions::default();
        let s = FaultStore::open("1M", "inner=memory;rules=read:eio@1", &opts).unwrap();
        assert_eq!(s.size(), 1 << 20);
        assert_eq!(s.inner_type(), BsType::Memory);
        assert!(s.execute(&read(1, 1)).is_err());
        assert!(matches!(
            FaultStore::open("1M", "inner=memory;rules=read:what", &opts),
            Err(BackendError::FaultRules { .. })
        ));
        assert!(matches!(
            FaultStore::open("1M", "inner=memory;colour=red", &opts),
            Err(BackendError::BadOptions { .. })
        ));
        assert!(matches!(
            FaultStore::open("1M", "inner=fault", &opts),
            Err(BackendError::BadOptions { .. })
        ));
        let e = FaultStore::open("1M", "inner=memory;rules=read:what", &opts).unwrap_err();
        assert!(e.to_string().contains("unknown action 'what'"), "{e}");
    }
}
