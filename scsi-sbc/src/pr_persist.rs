//! Persist through power loss (APTPL, SPC-4 5.13.5): the persistent reservation state
//! as bytes to keep across a restart, and back.
//!
//! Sans-IO: [`Reservations::saved`] gives the bytes after a PERSISTENT RESERVE OUT
//! changed something worth keeping; the caller stores them durably (the command's
//! [`crate::BlockOp::SaveState`]) and hands them to [`Reservations::restore`] when the
//! LU is created again. Nexus ids must be stable across restarts for the restored
//! registrations to find their I_T nexus (the target derives them from the initiator
//! port name). Empty bytes mean "nothing to keep" (APTPL was turned off).
//!
//! The format is text, one item a line, so an administrator can read it:
//!
//! ```text
//! tgtd-pr 1
//! generation 7
//! register 3f2a9c0d11e4b5a1 00000000000000ab iqn.1994-05.com.example:host1
//! reserve 3f2a9c0d11e4b5a1 1
//! ```

use crate::pr::{Holder, Registration, Reservations};

const MAGIC: &str = "tgtd-pr 1";

/// Why saved reservation state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// Not UTF-8 text or not our first line.
    #[error("not a tgtd persistent reservation file")]
    NotOurs,
    /// A line that does not parse.
    #[error("line {line}: cannot parse {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

impl Reservations {
    /// The state to persist after a PERSISTENT RESERVE OUT that left APTPL as `aptpl`
    /// (`None` when nothing needs saving: persistence is unsupported or APTPL was off
    /// before and after). Empty bytes ask the caller to forget what it kept.
    pub fn saved(&mut self, aptpl_before: bool) -> Option<(u64, Vec<u8>)> {
        if !self.ptpl_capable || !(aptpl_before || self.aptpl) {
            return None;
        }
        self.save_seq += 1;
        Some((
            self.save_seq,
            if self.aptpl {
                self.encode()
            } else {
                Vec::new()
            },
        ))
    }

    fn encode(&self) -> Vec<u8> {
        self.encode_with(String::new())
    }

    /// The state as kept in a cluster object shared by several gateways
    /// ([`crate::pr_shared`]): the lines of [`Reservations::saved`] plus the object's
    /// `version` and the APTPL bit (the cluster keeps the state whether or not APTPL
    /// is set, so it has to say which).
    pub fn encode_shared(&self, version: u64) -> Vec<u8> {
        self.encode_with(format!(
            "version {version}\naptpl {}\n",
            u8::from(self.aptpl)
        ))
    }

    fn encode_with(&self, head: String) -> Vec<u8> {
        let mut s = format!("{MAGIC}\n{head}generation {}\n", self.generation);
        for r in &self.registrations {
            s += &format!("register {:016x} {:016x} {}\n", r.nexus, r.key, r.initiator);
        }
        // Only when known (ALUA configured): without it the text is as it always was.
        for r in self.registrations.iter().filter(|r| r.port != 0) {
            s += &format!("port {:016x} {}\n", r.nexus, r.port);
        }
        if let Some(h) = self.holder {
            s += &format!("reserve {:016x} {}\n", h.nexus, h.typ);
        }
        s.into_bytes()
    }

    /// Restore state saved by [`Reservations::saved`]: registrations, the reservation,
    /// PRgeneration, and APTPL on. Empty bytes restore nothing.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), RestoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| RestoreError::NotOurs)?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(RestoreError::NotOurs);
        }
        let mut next = Reservations {
            ptpl_capable: self.ptpl_capable,
            shared: self.shared,
            save_seq: self.save_seq,
            aptpl: true,
            ..Reservations::default()
        };
        for (i, line) in lines.enumerate() {
            let bad = || RestoreError::BadLine {
                line: i + 2,
                text: line.to_string(),
            };
            let hex = |s: Option<&str>| u64::from_str_radix(s.unwrap_or(""), 16).map_err(|_| bad());
            let mut w = line.splitn(4, ' ');
            match w.next() {
                Some("version") => {
                    next.shared_version = w.next().and_then(|g| g.parse().ok()).ok_or_else(bad)?;
                }
                Some("aptpl") => {
                    next.aptpl = match w.next() {
                        Some("0") => false,
                        Some("1") => true,
                        _ => return Err(bad()),
                    };
                }
                Some("generation") => {
                    next.generation = w.next().and_then(|g| g.parse().ok()).ok_or_else(bad)?;
                }
                Some("register") => {
                    let nexus = hex(w.next())?;
                    let key = hex(w.next())?;
                    let initiator = w.next().ok_or_else(bad)?.to_string();
                    next.registrations.push(Registration {
                        nexus,
                        initiator,
                        key,
                        port: 0,
                    });
                }
                Some("port") => {
                    let nexus = hex(w.next())?;
                    let port = w.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                    next.note_port(nexus, port);
                }
                Some("reserve") => {
                    let nexus = hex(w.next())?;
                    let typ = w.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                    next.holder = Some(Holder { nexus, typ });
                }
                // Unit attentions of a shared update ([`crate::pr_shared`]): not state.
                Some("ua") => {}
                Some("") | None => {}
                Some(_) => return Err(bad()),
            }
        }
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lu::Nexus;

    fn param(key: u64, sa_key: u64, aptpl: bool) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[0..8].copy_from_slice(&key.to_be_bytes());
        p[8..16].copy_from_slice(&sa_key.to_be_bytes());
        p[20] = u8::from(aptpl);
        p
    }

    const N: Nexus<'static> = Nexus {
        id: 0x1234,
        initiator_port: 0x1234,
        initiator: "iqn.2001-04.com.example:i1",
    };

    #[test]
    fn round_trip_registration_and_reservation() {
        let mut r = Reservations {
            ptpl_capable: true,
            ..Reservations::default()
        };
        r.handle_out(&N, 0, 0, 0, &param(0, 0xab, true)).unwrap();
        assert!(r.aptpl);
        r.handle_out(&N, 1, 0, 1, &param(0xab, 0, false)).unwrap();
        let (seq, bytes) = r.saved(true).unwrap();
        assert_eq!(seq, 1);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "tgtd-pr 1\ngeneration 1\n\
             register 0000000000001234 00000000000000ab iqn.2001-04.com.example:i1\n\
             reserve 0000000000001234 1\n"
        );
        let mut back = Reservations {
            ptpl_capable: true,
            ..Reservations::default()
        };
        back.restore(&bytes).unwrap();
        assert_eq!(back.registrations, r.registrations);
        assert_eq!(back.holder, r.holder);
        assert_eq!((back.generation, back.aptpl), (1, true));
        // CRH, SIP_C, ATP_C, PTPL_C and PTPL_A in REPORT CAPABILITIES (SPC-4
        // table 174).
        assert_eq!(back.read_in(2, 1).unwrap()[2..4], [0x1d, 0x91]);
    }

    #[test]
    fn nothing_saved_without_aptpl_or_capability() {
        let mut r = Reservations::default();
        assert_eq!(r.saved(true), None, "not PTPL capable");
        r.ptpl_capable = true;
        assert_eq!(r.saved(false), None, "APTPL off before and after");
        // APTPL turned off: empty bytes, forget the saved state.
        assert_eq!(r.saved(true), Some((1, Vec::new())));
        assert_eq!(r.restore(&[]), Ok(()));
        assert_eq!(r.restore(b"garbage"), Err(RestoreError::NotOurs));
        assert!(matches!(
            r.restore(b"tgtd-pr 1\nregister zz 1 x\n"),
            Err(RestoreError::BadLine { line: 2, .. })
        ));
    }

    #[test]
    fn aptpl_refused_when_not_capable() {
        let mut r = Reservations::default();
        let e = r
            .handle_out(&N, 0, 0, 0, &param(0, 0xab, true))
            .unwrap_err();
        assert_eq!(
            e,
            crate::pr::PrError::Check(crate::Sense::illegal_request(
                crate::asc::INVALID_FIELD_IN_PARAMETER_LIST
            ))
        );
    }
}
