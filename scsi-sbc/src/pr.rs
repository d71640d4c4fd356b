//! Reservations: SPC-2 RESERVE/RELEASE and SPC-4 persistent reservations (5.13).
//!
//! [`Reservations`] is the state machine; `handle_out` applies one PERSISTENT RESERVE
//! OUT and `read_in` answers PERSISTENT RESERVE IN. Unit attentions a change causes for
//! other nexuses are returned as `(nexus, code)` pairs for the caller to queue.

use crate::asc::{self, AscAscq};
use crate::lu::Nexus;
use crate::sense::Sense;

/// Reservation types (SPC-4 table 169).
pub const WRITE_EXCLUSIVE: u8 = 1;
/// Exclusive access.
pub const EXCLUSIVE_ACCESS: u8 = 3;
/// Write exclusive, registrants only.
pub const WRITE_EXCLUSIVE_RO: u8 = 5;
/// Exclusive access, registrants only.
pub const EXCLUSIVE_ACCESS_RO: u8 = 6;
/// Write exclusive, all registrants.
pub const WRITE_EXCLUSIVE_AR: u8 = 7;
/// Exclusive access, all registrants.
pub const EXCLUSIVE_ACCESS_AR: u8 = 8;

fn valid_type(t: u8) -> bool {
    matches!(t, 1 | 3 | 5 | 6 | 7 | 8)
}

fn all_registrants(t: u8) -> bool {
    matches!(t, WRITE_EXCLUSIVE_AR | EXCLUSIVE_ACCESS_AR)
}

fn registrants_only(t: u8) -> bool {
    matches!(t, WRITE_EXCLUSIVE_RO | EXCLUSIVE_ACCESS_RO)
}

/// At most this many registrations per LU (bounds memory).
const MAX_REGISTRATIONS: usize = 128;

/// One registered I_T nexus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The nexus.
    pub nexus: u64,
    /// Its initiator name (TransportID).
    pub initiator: String,
    /// Its reservation key.
    pub key: u64,
    /// The RELATIVE TARGET PORT IDENTIFIER it registered through, when the target
    /// names its ports (ALUA configured: one port per gateway); 0: not known, READ
    /// FULL STATUS then reports the port it is asked through.
    pub port: u16,
}

/// The persistent reservation held, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The holding nexus (ignored for all-registrants types: every registrant holds).
    pub nexus: u64,
    /// The reservation type.
    pub typ: u8,
}

/// How a command touches the medium, for the conflict rules (SPC-4 table 66).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Always allowed (INQUIRY, REPORT LUNS, TEST UNIT READY, PR IN/OUT, ...).
    Any,
    /// Reads the medium or its metadata.
    Read,
    /// Changes the medium or LU state.
    Write,
    /// SPC-2 RESERVE / RELEASE.
    Spc2,
}

/// Reservation state of one logical unit.
#[derive(Debug, Clone, Default)]
pub struct Reservations {
    /// SPC-2 RESERVE holder.
    pub spc2: Option<u64>,
    /// PRgeneration.
    pub generation: u32,
    /// Registered nexuses.
    pub registrations: Vec<Registration>,
    /// The persistent reservation.
    pub holder: Option<Holder>,
    /// Activate persist through power loss.
    pub aptpl: bool,
    /// The LU can persist this state (PTPL_C): its store keeps saved state.
    pub ptpl_capable: bool,
    /// Sequence number of the last [`Reservations::saved`] state, so a store can drop
    /// a save that arrives after a newer one.
    pub save_seq: u64,
    /// The state lives with the store, shared by every gateway of the medium
    /// ([`crate::pr_shared`]): PERSISTENT RESERVE OUT goes to the store instead of
    /// changing this copy, which follows the store's updates.
    pub shared: bool,
    /// Version of the shared state this copy is (0: none seen yet).
    pub shared_version: u64,
}

/// Unit attentions to queue: (nexus, condition).
pub type Uas = Vec<(u64, AscAscq)>;

fn conflict() -> Result<Uas, PrError> {
    Err(PrError::Conflict)
}

/// Why a reservation command or access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrError {
    /// RESERVATION CONFLICT status.
    Conflict,
    /// CHECK CONDITION with this sense.
    Check(Sense),
}

fn bad_param() -> PrError {
    PrError::Check(Sense::illegal_request(asc::INVALID_FIELD_IN_PARAMETER_LIST))
}

fn bad_cdb() -> PrError {
    PrError::Check(Sense::invalid_field_in_cdb())
}

impl Reservations {
    /// Record that `nexus` registered through relative target port `port` (0: the
    /// target does not name its ports; nothing is recorded).
    pub fn note_port(&mut self, nexus: u64, port: u16) {
        if port == 0 {
            return;
        }
        if let Some(r) = self.registrations.iter_mut().find(|r| r.nexus == nexus) {
            r.port = port;
        }
    }

    fn reg(&self, nexus: u64) -> Option<&Registration> {
        self.registrations.iter().find(|r| r.nexus == nexus)
    }

    fn is_holder(&self, nexus: u64) -> bool {
        match self.holder {
            Some(h) if all_registrants(h.typ) => self.reg(nexus).is_some(),
            Some(h) => h.nexus == nexus,
            None => false,
        }
    }

    /// May `nexus` run a command of class `access`? (SPC-4 5.13.1 table 66, SPC-2 5.5.1)
    pub fn check(&self, nexus: u64, access: Access) -> Result<(), PrError> {
        if let Some(owner) = self.spc2 {
            if owner != nexus && access != Access::Any {
                return Err(PrError::Conflict);
            }
        }
        if access == Access::Spc2 && self.holder.is_some() {
            return Err(PrError::Conflict);
        }
        let Some(h) = self.holder else {
            return Ok(());
        };
        if self.is_holder(nexus) {
            return Ok(());
        }
        let registered = self.reg(nexus).is_some();
        let ok = match (access, h.typ) {
            (Access::Any, _) => true,
            (Access::Spc2, _) => false,
            (Access::Read, WRITE_EXCLUSIVE | WRITE_EXCLUSIVE_RO | WRITE_EXCLUSIVE_AR) => true,
            (Access::Read | Access::Write, t) if registrants_only(t) => registered,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(PrError::Conflict)
        }
    }

    /// A nexus went away: its SPC-2 reservation ends (PR registrations persist).
    pub fn nexus_lost(&mut self, nexus: u64) {
        if self.spc2 == Some(nexus) {
            self.spc2 = None;
        }
    }

    /// RESERVE (6)/(10).
    pub fn reserve(&mut self, nexus: u64) -> Result<(), PrError> {
        self.check(nexus, Access::Spc2)?;
        self.spc2 = Some(nexus);
        Ok(())
    }

    /// RELEASE (6)/(10): only the holder releases; anyone else gets GOOD.
    pub fn release(&mut self, nexus: u64) -> Result<(), PrError> {
        if self.holder.is_some() && !self.is_holder(nexus) && self.reg(nexus).is_none() {
            return Err(PrError::Conflict);
        }
        if self.spc2 == Some(nexus) {
            self.spc2 = None;
        }
        Ok(())
    }

    fn others(&self, nexus: u64) -> impl Iterator<Item = u64> + '_ {
        self.registrations
            .iter()
            .map(|r| r.nexus)
            .filter(move |n| *n != nexus)
    }

    /// Remove the registration of `nexus`; release the reservation it held.
    fn unregister(&mut self, nexus: u64, uas: &mut Uas) {
        let held = self.is_holder(nexus);
        self.registrations.retain(|r| r.nexus != nexus);
        if !held {
            return;
        }
        match self.holder {
            Some(h) if all_registrants(h.typ) && self.registrations.is_empty() => {
                self.holder = None;
            }
            Some(h) if all_registrants(h.typ) => {}
            Some(h) => {
                self.holder = None;
                if registrants_only(h.typ) {
                    uas.extend(self.others(nexus).map(|n| (n, asc::RESERVATIONS_RELEASED)));
                }
            }
            None => {}
        }
    }

    /// PERSISTENT RESERVE OUT (SPC-4 6.14) with its parameter list, on a target with
    /// one port.
    pub fn handle_out(
        &mut self,
        nexus: &Nexus<'_>,
        sa: u8,
        scope: u8,
        typ: u8,
        param: &[u8],
    ) -> Result<Uas, PrError> {
        self.handle_out_at(nexus, &[], sa, scope, typ, param)
    }

    /// [`Reservations::handle_out`] on a target whose relative target ports are
    /// `all_ports` (ALUA: one per gateway; empty: one port). A REGISTER with
    /// ALL_TG_PT then registers the initiator port through each of them: one
    /// registration per I_T nexus, as if each had registered (SPC-4 5.14.7).
    pub fn handle_out_at(
        &mut self,
        nexus: &Nexus<'_>,
        all_ports: &[u16],
        sa: u8,
        scope: u8,
        typ: u8,
        param: &[u8],
    ) -> Result<Uas, PrError> {
        let length_error =
            || PrError::Check(Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR));
        if param.len() < 24 {
            return Err(length_error());
        }
        let flags = param[20];
        // REGISTER AND MOVE has its own layout, a REGISTER with SPEC_I_PT carries
        // TransportIDs after the 24 bytes; everything else is 24 bytes.
        let spec_i_pt = matches!(sa, 0 | 6) && flags & 0x08 != 0;
        if sa != 7 && !spec_i_pt && param.len() != 24 {
            return Err(length_error());
        }
        let key = u64::from_be_bytes(param[0..8].try_into().unwrap_or([0; 8]));
        let sa_key = u64::from_be_bytes(param[8..16].try_into().unwrap_or([0; 8]));
        let id = nexus.id;
        let mut uas = Uas::new();
        let reg_key = self.reg(id).map(|r| r.key);
        match sa {
            // REGISTER, REGISTER AND IGNORE EXISTING KEY.
            0 | 6 => {
                // SPEC_I_PT: only a REGISTER of an I_T nexus not registered yet may
                // name other initiator ports (SPC-4 6.15.3).
                let specified = if spec_i_pt {
                    if sa != 0 || reg_key.is_some() {
                        return Err(bad_param());
                    }
                    let tpdl = param.get(24..28).ok_or_else(length_error)?;
                    let tpdl = u32::from_be_bytes(tpdl.try_into().unwrap_or([0; 4])) as usize;
                    if param.len() != 28 + tpdl {
                        return Err(length_error());
                    }
                    transport_id_ports(&param[28..]).ok_or_else(bad_param)?
                } else {
                    Vec::new()
                };
                if flags & 0x01 != 0 && !self.ptpl_capable {
                    // SPC-4 6.15.3: APTPL=1 without persist through power loss support.
                    return Err(bad_param());
                }
                match reg_key {
                    None if sa == 0 && key != 0 => return conflict(),
                    None if sa_key == 0 => {}
                    None => {
                        // ALL_TG_PT (an unregistered nexus only; ignored when
                        // changing a key): every port's nexus of this initiator
                        // port that is not registered yet, this one first.
                        let all_tg_pt = flags & 0x04 != 0;
                        let local = all_ports
                            .iter()
                            .copied()
                            .find(|&p| crate::lu::nexus_at_port(nexus.initiator_port, p) == id);
                        let mut nexuses = vec![(id, local.unwrap_or(0), nexus.initiator)];
                        if all_tg_pt {
                            for &p in all_ports {
                                let n = crate::lu::nexus_at_port(nexus.initiator_port, p);
                                if n != id && self.reg(n).is_none() {
                                    nexuses.push((n, p, nexus.initiator));
                                }
                            }
                        }
                        // SPEC_I_PT: each named initiator port through this target
                        // port (or, with ALL_TG_PT, every port). One already
                        // registered fails the whole command, which changes nothing.
                        for (name, iport) in &specified {
                            let through: Vec<Option<u16>> = match (all_tg_pt, local) {
                                (true, _) if !all_ports.is_empty() => {
                                    all_ports.iter().map(|&p| Some(p)).collect()
                                }
                                (_, Some(p)) => vec![Some(p)],
                                _ => vec![None],
                            };
                            for p in through {
                                let n = p.map_or(*iport, |p| crate::lu::nexus_at_port(*iport, p));
                                if self.reg(n).is_some() {
                                    return Err(bad_param());
                                }
                                if !nexuses.iter().any(|(m, _, _)| *m == n) {
                                    nexuses.push((n, p.unwrap_or(0), name.as_str()));
                                }
                            }
                        }
                        if self.registrations.len() + nexuses.len() > MAX_REGISTRATIONS {
                            return Err(PrError::Check(Sense::illegal_request(
                                asc::INSUFFICIENT_REGISTRATION_RESOURCES,
                            )));
                        }
                        for (n, port, initiator) in nexuses {
                            self.registrations.push(Registration {
                                nexus: n,
                                initiator: initiator.to_string(),
                                key: sa_key,
                                port,
                            });
                        }
                    }
                    Some(k) if sa == 0 && k != key => return conflict(),
                    Some(_) if sa_key == 0 => self.unregister(id, &mut uas),
                    Some(_) => {
                        if let Some(r) = self.registrations.iter_mut().find(|r| r.nexus == id) {
                            r.key = sa_key;
                        }
                    }
                }
                self.aptpl = flags & 0x01 != 0;
                self.generation = self.generation.wrapping_add(1);
            }
            // RESERVE.
            1 => {
                if reg_key != Some(key) {
                    return conflict();
                }
                if scope != 0 || !valid_type(typ) {
                    return Err(bad_cdb());
                }
                match self.holder {
                    None => self.holder = Some(Holder { nexus: id, typ }),
                    Some(h) if self.is_holder(id) && h.typ == typ => {}
                    Some(_) => return conflict(),
                }
            }
            // RELEASE.
            2 => {
                if reg_key != Some(key) {
                    return conflict();
                }
                match self.holder {
                    Some(h) if self.is_holder(id) => {
                        if scope != 0 || h.typ != typ {
                            return Err(PrError::Check(Sense::illegal_request(
                                asc::INVALID_RELEASE_OF_PR,
                            )));
                        }
                        self.holder = None;
                        if h.typ != WRITE_EXCLUSIVE && h.typ != EXCLUSIVE_ACCESS {
                            uas.extend(self.others(id).map(|n| (n, asc::RESERVATIONS_RELEASED)));
                        }
                    }
                    _ => {}
                }
            }
            // CLEAR.
            3 => {
                if reg_key != Some(key) {
                    return conflict();
                }
                uas.extend(self.others(id).map(|n| (n, asc::RESERVATIONS_PREEMPTED)));
                self.registrations.clear();
                self.holder = None;
                self.generation = self.generation.wrapping_add(1);
            }
            // PREEMPT, PREEMPT AND ABORT.
            4 | 5 => {
                if reg_key != Some(key) {
                    return conflict();
                }
                self.preempt(id, sa_key, scope, typ, &mut uas)?;
                self.generation = self.generation.wrapping_add(1);
            }
            // REGISTER AND MOVE.
            7 => return self.register_and_move(id, key, sa_key, typ, param),
            _ => return Err(bad_cdb()),
        }
        Ok(uas)
    }

    fn preempt(
        &mut self,
        id: u64,
        sa_key: u64,
        scope: u8,
        typ: u8,
        uas: &mut Uas,
    ) -> Result<(), PrError> {
        let remove_key = |this: &mut Self, k: u64, uas: &mut Uas| -> bool {
            let gone: Vec<u64> = this
                .registrations
                .iter()
                .filter(|r| r.key == k && r.nexus != id)
                .map(|r| r.nexus)
                .collect();
            this.registrations.retain(|r| !gone.contains(&r.nexus));
            uas.extend(gone.iter().map(|&n| (n, asc::REGISTRATIONS_PREEMPTED)));
            !gone.is_empty()
        };
        let Some(h) = self.holder else {
            if sa_key == 0 {
                return Err(bad_param());
            }
            return if remove_key(self, sa_key, uas) {
                Ok(())
            } else {
                Err(PrError::Conflict)
            };
        };
        if scope != 0 || !valid_type(typ) {
            return Err(bad_cdb());
        }
        if all_registrants(h.typ) {
            if sa_key == 0 {
                // Preempt every other registration and take the reservation.
                let gone: Vec<u64> = self.others(id).collect();
                self.registrations.retain(|r| r.nexus == id);
                uas.extend(gone.iter().map(|&n| (n, asc::REGISTRATIONS_PREEMPTED)));
                self.holder = Some(Holder { nexus: id, typ });
                return Ok(());
            }
            return if remove_key(self, sa_key, uas) {
                Ok(())
            } else {
                Err(PrError::Conflict)
            };
        }
        let holder_key = self.reg(h.nexus).map(|r| r.key);
        if holder_key == Some(sa_key) {
            let old = h.nexus;
            remove_key(self, sa_key, uas);
            self.holder = Some(Holder { nexus: id, typ });
            if h.typ != typ {
                uas.extend(
                    self.others(id)
                        .filter(|&n| n != old)
                        .map(|n| (n, asc::RESERVATIONS_RELEASED)),
                );
            }
            Ok(())
        } else if sa_key == 0 {
            Err(bad_param())
        } else if remove_key(self, sa_key, uas) {
            Ok(())
        } else {
            Err(PrError::Conflict)
        }
    }

    /// REGISTER AND MOVE (SPC-4 6.14.4): the reservation moves to the nexus whose
    /// registration has the TransportID's initiator name.
    fn register_and_move(
        &mut self,
        id: u64,
        key: u64,
        sa_key: u64,
        typ: u8,
        param: &[u8],
    ) -> Result<Uas, PrError> {
        if self.reg(id).map(|r| r.key) != Some(key) {
            return conflict();
        }
        if !self.is_holder(id) {
            return conflict();
        }
        if sa_key == 0 {
            return Err(bad_param());
        }
        let tid_len = u32::from_be_bytes(param[20..24].try_into().unwrap_or([0; 4])) as usize;
        let tid = param.get(24..24 + tid_len).ok_or_else(bad_param)?;
        let name = transport_id_name(tid).ok_or_else(bad_param)?;
        let Some(dest) = self
            .registrations
            .iter()
            .find(|r| r.initiator == name && r.nexus != id)
            .map(|r| r.nexus)
        else {
            return Err(bad_param());
        };
        if let Some(r) = self.registrations.iter_mut().find(|r| r.nexus == dest) {
            r.key = sa_key;
        }
        self.holder = Some(Holder { nexus: dest, typ });
        if param[17] & 0x02 != 0 {
            self.registrations.retain(|r| r.nexus != id);
        }
        self.generation = self.generation.wrapping_add(1);
        Ok(Uas::new())
    }

    /// PERSISTENT RESERVE IN (SPC-4 6.13) parameter data, untruncated; `tpgt` is the
    /// relative target port asked through.
    pub fn read_in(&self, sa: u8, tpgt: u16) -> Result<Vec<u8>, Sense> {
        let mut d = self.generation.to_be_bytes().to_vec();
        match sa {
            // READ KEYS.
            0 => {
                let n = (self.registrations.len() * 8) as u32;
                d.extend_from_slice(&n.to_be_bytes());
                for r in &self.registrations {
                    d.extend_from_slice(&r.key.to_be_bytes());
                }
            }
            // READ RESERVATION.
            1 => match self.holder {
                Some(h) => {
                    d.extend_from_slice(&16u32.to_be_bytes());
                    let key = if all_registrants(h.typ) {
                        0
                    } else {
                        self.reg(h.nexus).map_or(0, |r| r.key)
                    };
                    d.extend_from_slice(&key.to_be_bytes());
                    d.extend_from_slice(&[0, 0, 0, 0, 0, h.typ & 0x0f, 0, 0]);
                }
                None => d.extend_from_slice(&0u32.to_be_bytes()),
            },
            // REPORT CAPABILITIES (SPC-4 table 174): CRH=1, SIP_C=1, ATP_C=1,
            // PTPL_C when the store keeps saved state, TMV=1, ALLOW COMMANDS 001b,
            // PTPL_A, every type in the mask.
            2 => {
                let ptpl_c = u8::from(self.ptpl_capable);
                let ptpl_a = u8::from(self.aptpl);
                return Ok(vec![
                    0,
                    8,
                    0x10 | 0x08 | 0x04 | ptpl_c,
                    0x80 | 0x10 | ptpl_a,
                    0xea,
                    0x01,
                    0,
                    0,
                ]);
            }
            // READ FULL STATUS.
            3 => {
                let mut body = Vec::new();
                for r in &self.registrations {
                    let holder = self.is_holder(r.nexus);
                    body.extend_from_slice(&r.key.to_be_bytes());
                    body.extend_from_slice(&[0; 4]);
                    body.push(u8::from(holder));
                    body.push(if holder {
                        self.holder.map_or(0, |h| h.typ)
                    } else {
                        0
                    });
                    body.extend_from_slice(&[0; 4]);
                    let port = if r.port != 0 { r.port } else { tpgt.max(1) };
                    body.extend_from_slice(&port.to_be_bytes());
                    let tid = transport_id(&r.initiator);
                    body.extend_from_slice(&(tid.len() as u32).to_be_bytes());
                    body.extend_from_slice(&tid);
                }
                d.extend_from_slice(&(body.len() as u32).to_be_bytes());
                d.extend_from_slice(&body);
            }
            _ => return Err(Sense::invalid_field_in_cdb()),
        }
        Ok(d)
    }
}

/// iSCSI TransportID, format 00b (SPC-4 table 506 / RFC 7143): protocol 5, name,
/// NUL terminated, padded to a multiple of 4 (at least 20 bytes).
fn transport_id(name: &str) -> Vec<u8> {
    let mut n = name.as_bytes().to_vec();
    n.truncate(220);
    n.push(0);
    n.resize(n.len().div_ceil(4).max(4) * 4, 0);
    let mut t = vec![0x05, 0];
    t.extend_from_slice(&(n.len() as u16).to_be_bytes());
    t.extend_from_slice(&n);
    t
}

/// The initiator name of an iSCSI TransportID (format 00b or 01b: name up to the
/// first NUL or ",i,0x").
fn transport_id_name(tid: &[u8]) -> Option<String> {
    let s = transport_id_text(tid)?;
    Some(s.split(",i,").next().unwrap_or(s).to_string())
}

/// The text of an iSCSI TransportID (protocol 5): the name, with `,i,0xISID` in
/// format 01b, up to its NUL.
fn transport_id_text(tid: &[u8]) -> Option<&str> {
    if tid.len() < 4 || tid[0] & 0x0f != 0x05 {
        return None;
    }
    let text = tid.get(4..)?;
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    std::str::from_utf8(&text[..end]).ok()
}

/// The initiator ports a SPEC_I_PT list names, as (iSCSI name, initiator port id),
/// in order; `None` if one is not an iSCSI TransportID of format 01b (name and ISID:
/// format 00b names an initiator device, not a port, so it cannot say which I_T
/// nexus to register), or the list does not parse.
fn transport_id_ports(mut list: &[u8]) -> Option<Vec<(String, u64)>> {
    let mut ports = Vec::new();
    while !list.is_empty() {
        let head = list.get(..4)?;
        let len = 4 + usize::from(u16::from_be_bytes([head[2], head[3]]));
        let tid = list.get(..len)?;
        // Format 01b only (bits 7:6 of byte 0).
        if tid[0] >> 6 != 1 {
            return None;
        }
        let text = transport_id_text(tid)?;
        let (name, isid) = text
            .split_once(",i,0x")
            .or_else(|| text.split_once(",i,0X"))?;
        if name.is_empty() || isid.len() != 12 {
            return None;
        }
        let mut id = [0u8; 6];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(isid.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        ports.push((name.to_string(), crate::lu::initiator_port_id(name, id)));
        list = &list[len..];
    }
    Some(ports)
}

#[cfg(test)]
#[path = "pr_tests.rs"]
mod tests;
