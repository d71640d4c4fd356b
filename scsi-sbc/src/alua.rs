//! Asymmetric logical unit access (SPC-4 5.15), implicit only (TPGS = 01b).
//!
//! Several gateways serve one logical unit; each gateway's iSCSI portal group is one
//! SCSI target port, and the ports are grouped into target port groups whose access
//! state the administrator sets (ceph-iscsi's layout: one gateway active/optimized,
//! the others active/non-optimized). The device server changes states only by its own
//! (administrator-driven) decision, never at an initiator's request: SET TARGET PORT
//! GROUPS stays an unsupported command, as SPC-4 6.43 says for TPGS = 01b.
//!
//! What this module answers, from a [`PortGroups`] configuration handed in through
//! [`crate::LuContext::alua`] (none: no ALUA, today's single-port answers):
//! - the TPGS field of standard INQUIRY ([`TPGS_IMPLICIT`]);
//! - the relative target port and target port group designators of VPD 83h;
//! - REPORT TARGET PORT GROUPS (A3h/0Ah) in both parameter data formats;
//! - which commands a port in standby, unavailable or transitioning state refuses
//!   ([`check_access`], SPC-4 5.15.2.4 to 5.15.2.6).
//!
//! The unit attention ASYMMETRIC ACCESS STATE CHANGED ([`crate::asc::ASYMMETRIC_ACCESS_STATE_CHANGED`])
//! is raised by whoever changes the configuration, on every LU of the target.

use crate::asc;
use crate::cdb::Cdb;
use crate::cdb_ext::ExtCdb;
use crate::sense::{Sense, SenseKey};

/// TPGS field of standard INQUIRY byte 5 (bits 5:4) for implicit ALUA.
pub const TPGS_IMPLICIT: u8 = 0x10;

/// Asymmetric access state of a target port group (SPC-4 table 36).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessState {
    /// 0h: every command, the preferred path.
    ActiveOptimized,
    /// 1h: every command, slower path.
    ActiveNonOptimized,
    /// 2h: management commands only; media access is refused (NOT READY 04h/0Bh).
    Standby,
    /// 3h: almost nothing runs (NOT READY 04h/0Ch).
    Unavailable,
    /// Fh: the state is changing (NOT READY 04h/0Ah).
    Transitioning,
}

impl AccessState {
    /// Every state, in code order.
    pub const ALL: [AccessState; 5] = [
        AccessState::ActiveOptimized,
        AccessState::ActiveNonOptimized,
        AccessState::Standby,
        AccessState::Unavailable,
        AccessState::Transitioning,
    ];

    /// ASYMMETRIC ACCESS STATE code.
    pub fn code(self) -> u8 {
        match self {
            AccessState::ActiveOptimized => 0x0,
            AccessState::ActiveNonOptimized => 0x1,
            AccessState::Standby => 0x2,
            AccessState::Unavailable => 0x3,
            AccessState::Transitioning => 0xf,
        }
    }

    /// The name used by tgtadm, targets.conf and `--op show`.
    pub fn name(self) -> &'static str {
        match self {
            AccessState::ActiveOptimized => "active/optimized",
            AccessState::ActiveNonOptimized => "active/non-optimized",
            AccessState::Standby => "standby",
            AccessState::Unavailable => "unavailable",
            AccessState::Transitioning => "transitioning",
        }
    }

    /// Read a state by its name or short form (`ao`, `an`, `s`, `u`, `t`), any case.
    pub fn parse(s: &str) -> Option<AccessState> {
        let s = s.trim().to_ascii_lowercase();
        AccessState::ALL.into_iter().find(|st| {
            st.name() == s
                || match st {
                    AccessState::ActiveOptimized => s == "ao" || s == "optimized",
                    AccessState::ActiveNonOptimized => s == "an" || s == "non-optimized",
                    AccessState::Standby => s == "s",
                    AccessState::Unavailable => s == "u",
                    AccessState::Transitioning => s == "t",
                }
        })
    }
}

/// One target port group: its id, state and the relative target ports it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroup {
    /// TARGET PORT GROUP (1..=65535; 0 is not used when ALUA is on).
    pub id: u16,
    /// Current asymmetric access state.
    pub state: AccessState,
    /// RELATIVE TARGET PORT IDENTIFIERs of the ports in the group.
    pub ports: Vec<u16>,
    /// The state was last set by the device server's implicit behaviour (STATUS CODE
    /// 02h in REPORT TARGET PORT GROUPS); false until it is changed once.
    pub changed: bool,
}

/// The ALUA configuration of one target as seen from this gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroups {
    /// Every group of the logical unit (all gateways'), in report order.
    pub groups: Vec<PortGroup>,
    /// The group this gateway's port belongs to.
    pub local_group: u16,
    /// This gateway's RELATIVE TARGET PORT IDENTIFIER.
    pub local_port: u16,
}

impl PortGroups {
    /// Every relative target port of the target (each group's and this gateway's),
    /// ascending.
    pub fn all_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .groups
            .iter()
            .flat_map(|g| g.ports.iter().copied())
            .chain([self.local_port])
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The access state of the port commands arrive on. A local group missing from
    /// the list is active/optimized (the configuration builder always lists it).
    pub fn local_state(&self) -> AccessState {
        self.groups
            .iter()
            .find(|g| g.id == self.local_group)
            .map_or(AccessState::ActiveOptimized, |g| g.state)
    }
}

/// PARAMETER DATA FORMAT of REPORT TARGET PORT GROUPS (CDB byte 1 bits 7:5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpgFormat {
    /// 000b: a 4-byte RETURN DATA LENGTH header.
    Length,
    /// 001b: RETURN DATA LENGTH, FORMAT TYPE and IMPLICIT TRANSITION TIME.
    Extended,
}

/// Supported-state bits of each descriptor (byte 1): T_SUP, U_SUP, S_SUP, AN_SUP,
/// AO_SUP; not O_SUP (offline), which we never report.
const SUPPORTED_STATES: u8 = 0x80 | 0x08 | 0x04 | 0x02 | 0x01;

/// IMPLICIT TRANSITION TIME in seconds (extended header): states change at once.
const TRANSITION_TIME: u8 = 0;

/// REPORT TARGET PORT GROUPS parameter data (SPC-4 6.37), untruncated.
pub fn report_target_port_groups(pg: &PortGroups, format: RtpgFormat) -> Vec<u8> {
    let mut d = vec![0u8; 4];
    if format == RtpgFormat::Extended {
        // FORMAT TYPE 001b in bits 6:4 of byte 4, IMPLICIT TRANSITION TIME in byte 5.
        d.extend_from_slice(&[0x10, TRANSITION_TIME, 0, 0]);
    }
    for g in &pg.groups {
        let ports = g.ports.get(..255).unwrap_or(&g.ports);
        d.push(g.state.code()); // PREF 0, ASYMMETRIC ACCESS STATE
        d.push(SUPPORTED_STATES);
        d.extend_from_slice(&g.id.to_be_bytes());
        d.push(0);
        d.push(if g.changed { 0x02 } else { 0x00 }); // STATUS CODE
        d.push(0); // vendor specific
        d.push(ports.len() as u8); // TARGET PORT COUNT
        for p in ports {
            d.extend_from_slice(&[0, 0]);
            d.extend_from_slice(&p.to_be_bytes());
        }
    }
    // RETURN DATA LENGTH: the bytes after the first four.
    let len = u32::try_from(d.len() - 4).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&len.to_be_bytes());
    d
}

/// REPORT TARGET PORT GROUPS on a target without port groups: an unknown service
/// action (INVALID FIELD IN CDB at byte 1 bit 4), exactly as before ALUA existed.
pub(crate) fn unsupported_without_alua() -> Sense {
    crate::cdb::CdbError::UnknownServiceAction {
        opcode: 0xa3,
        service_action: 0x0a,
    }
    .into()
}

/// Commands every state admits: INQUIRY, REPORT LUNS, REQUEST SENSE and REPORT
/// TARGET PORT GROUPS (SPC-4 5.15.2.4.4 to .6 have them in each list).
fn always_allowed(c: &Cdb) -> bool {
    matches!(
        c,
        Cdb::Inquiry { .. }
            | Cdb::ReportLuns { .. }
            | Cdb::RequestSense { .. }
            | Cdb::Ext(ExtCdb::ReportTargetPortGroups { .. })
    )
}

/// What a port in standby still runs (SPC-4 5.15.2.4.4): management of the LU, not
/// access to its medium (MODE and LOG pages, reservations, the REPORT commands).
fn standby_allowed(c: &Cdb) -> bool {
    always_allowed(c)
        || matches!(
            c,
            Cdb::ModeSense(_)
                | Cdb::Ext(
                    ExtCdb::ModeSelect { .. }
                        | ExtCdb::LogSense { .. }
                        | ExtCdb::PrIn { .. }
                        | ExtCdb::PrOut { .. }
                        | ExtCdb::ReportOpcodes { .. }
                        | ExtCdb::ReportTmf { .. }
                )
        )
}

/// Refuse a command the local port's access state does not admit: NOT READY with
/// LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE (04h/0Bh), ... IN
/// UNAVAILABLE STATE (04h/0Ch), or ASYMMETRIC ACCESS STATE TRANSITION (04h/0Ah).
pub fn check_access(pg: &PortGroups, c: &Cdb) -> Result<(), Sense> {
    let (allowed, code) = match pg.local_state() {
        AccessState::ActiveOptimized | AccessState::ActiveNonOptimized => return Ok(()),
        AccessState::Standby => (standby_allowed(c), asc::NOT_ACCESSIBLE_STANDBY),
        AccessState::Unavailable => (always_allowed(c), asc::NOT_ACCESSIBLE_UNAVAILABLE),
        AccessState::Transitioning => (always_allowed(c), asc::NOT_ACCESSIBLE_TRANSITIONING),
    };
    if allowed {
        Ok(())
    } else {
        Err(Sense::new(SenseKey::NotReady, code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{execute_in, prepare_in, Plan, ScsiStatus};
    use crate::lu::LuContext;
    use crate::state::LuState;
    use crate::test_util::{controller, disk, run_check, run_good, CTX};
    use bytes::Bytes;

    /// Gateway A (group 1, port 1) optimized, gateway B (group 2, port 2) not.
    fn two_gateways(local: u16) -> PortGroups {
        PortGroups {
            groups: vec![
                PortGroup {
                    id: 1,
                    state: AccessState::ActiveOptimized,
                    ports: vec![1],
                    changed: false,
                },
                PortGroup {
                    id: 2,
                    state: AccessState::ActiveNonOptimized,
                    ports: vec![2],
                    changed: false,
                },
            ],
            local_group: local,
            local_port: local,
        }
    }

    const RTPG: [u8; 12] = [0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];

    #[test]
    fn report_length_format_exact_bytes() {
        let pg = two_gateways(1);
        let ctx = LuContext {
            alua: Some(&pg),
            ..CTX
        };
        let d = run_good(&disk(), &ctx, &RTPG);
        assert_eq!(
            d,
            vec![
                0, 0, 0, 24, // RETURN DATA LENGTH
                0x00, 0x8f, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, // group 1 AO, port 1
                0x01, 0x8f, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, // group 2 AN, port 2
            ]
        );
        // Allocation length 6 cuts the answer.
        let mut short = RTPG;
        short[9] = 6;
        short[8] = 0;
        assert_eq!(run_good(&disk(), &ctx, &short), vec![0, 0, 0, 24, 0, 0x8f]);
    }

    #[test]
    fn report_extended_format_exact_bytes() {
        let mut pg = two_gateways(2);
        pg.groups[0].state = AccessState::Standby;
        pg.groups[0].changed = true;
        pg.groups[1].state = AccessState::Transitioning;
        pg.groups[1].ports = vec![2, 3];
        let ctx = LuContext {
            alua: Some(&pg),
            ..CTX
        };
        let mut cdb = RTPG;
        cdb[1] = 0x2a; // PARAMETER DATA FORMAT 001b
        let d = run_good(&controller(), &ctx, &cdb);
        assert_eq!(
            d,
            vec![
                0, 0, 0, 32, // RETURN DATA LENGTH
                0x10, 0, 0, 0, // FORMAT TYPE 1, IMPLICIT TRANSITION TIME 0
                0x02, 0x8f, 0, 1, 0, 0x02, 0, 1, 0, 0, 0, 1, // standby, implicit change
                0x0f, 0x8f, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
            ]
        );
        for (st, code) in [
            (AccessState::Unavailable, 0x03),
            (AccessState::ActiveNonOptimized, 0x01),
        ] {
            pg.groups[0].state = st;
            let ctx = LuContext {
                alua: Some(&pg),
                ..CTX
            };
            assert_eq!(run_good(&disk(), &ctx, &RTPG)[4], code);
        }
    }

    #[test]
    fn without_alua_nothing_changes() {
        // REPORT TARGET PORT GROUPS stays an unknown service action (INVALID FIELD
        // IN CDB, byte 1 bit 4), INQUIRY keeps TPGS 0 and VPD 83h port 1, group 0.
        let s = run_check(&disk(), &CTX, &RTPG);
        assert_eq!((s.key, s.asc, s.ascq), (SenseKey::IllegalRequest, 0x24, 0));
        let std = run_good(&disk(), &CTX, &[0x12, 0, 0, 0, 96, 0]);
        assert_eq!(std[5], 0x08, "3PC only");
        let vpd = run_good(&disk(), &CTX, &[0x12, 1, 0x83, 0, 255, 0]);
        assert!(contains(&vpd, &[0x51, 0x94, 0, 4, 0, 0, 0, 1]));
        assert!(contains(&vpd, &[0x51, 0x95, 0, 4, 0, 0, 0, 0]));
    }

    #[test]
    fn without_alua_refused_before_unit_attentions_as_before() {
        let mut state = LuState::new();
        state.ua.see(CTX.nexus.id); // POWER ON pending
        let o = prepare_in(&RTPG, &disk(), &CTX, &mut state).unwrap_err();
        let s = o.sense.unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (SenseKey::IllegalRequest, 0x24, 0));
        assert!(
            state.ua.has(CTX.nexus.id),
            "the unit attention stays pending"
        );
        // PARAMETER DATA FORMAT 010b: INVALID FIELD IN CDB, byte 1 bit 7.
        let pg = two_gateways(1);
        let ctx = LuContext {
            alua: Some(&pg),
            ..CTX
        };
        let mut cdb = RTPG;
        cdb[1] = 0x4a;
        assert_eq!(
            run_check(&disk(), &ctx, &cdb),
            Sense::invalid_cdb_field(1, 7)
        );
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn inquiry_reports_tpgs_and_port_designators() {
        let pg = two_gateways(2);
        let ctx = LuContext {
            alua: Some(&pg),
            ..CTX
        };
        let std = run_good(&disk(), &ctx, &[0x12, 0, 0, 0, 96, 0]);
        assert_eq!(std[5], 0x18, "3PC | TPGS=01b");
        let std = run_good(&controller(), &ctx, &[0x12, 0, 0, 0, 96, 0]);
        assert_eq!(std[5], 0x10, "TPGS=01b");
        let vpd = run_good(&disk(), &ctx, &[0x12, 1, 0x83, 0, 255, 0]);
        // Relative target port 2, target port group 2 (SPC-4 7.8.6.7, 7.8.6.8).
        assert!(contains(&vpd, &[0x51, 0x94, 0, 4, 0, 0, 0, 2]));
        assert!(contains(&vpd, &[0x51, 0x95, 0, 4, 0, 0, 0, 2]));
    }

    #[test]
    fn listed_in_report_supported_operation_codes_only_with_alua() {
        // REPORTING OPTIONS 010b: opcode A3h, service action 000Ah.
        let cdb = [0xa3, 0x0c, 0x02, 0xa3, 0x00, 0x0a, 0, 0, 1, 0, 0, 0];
        let pg = two_gateways(1);
        let ctx = LuContext {
            alua: Some(&pg),
            ..CTX
        };
        assert_eq!(
            run_good(&disk(), &ctx, &cdb),
            vec![
                0, 0x03, 0, 12, // SUPPORT 011b, CDB SIZE 12
                0xa3, 0x2a, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0,
            ]
        );
        let d = run_good(&disk(), &CTX, &cdb);
        assert_eq!(d[1] & 0x07, 0x01, "not supported without ALUA: {d:02x?}");
    }

    #[test]
    fn set_target_port_groups_is_unsupported() {
        // SPC-4 6.43: TPGS 01b, no explicit ALUA: INVALID COMMAND OPERATION CODE.
        let pg = two_gateways(1);
        let ctx = LuContext {
            alua: Some(&pg),
            ..CTX
        };
        let stpg = [0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0];
        let s = run_check(&disk(), &ctx, &stpg);
        assert_eq!((s.key, s.asc, s.ascq), (SenseKey::IllegalRequest, 0x20, 0));
    }

    fn outcome(pg: &PortGroups, cdb: &[u8]) -> (ScsiStatus, Option<(u8, u8, u8)>) {
        let ctx = LuContext {
            alua: Some(pg),
            ..CTX
        };
        let mut state = LuState::new();
        state.ua.see(ctx.nexus.id);
        let _ = state.ua.take(ctx.nexus.id);
        let lu = disk();
        let o = match prepare_in(cdb, &lu, &ctx, &mut state) {
            Err(o) => o,
            Ok(_) => match execute_in(cdb, &lu, &ctx, &mut state, Bytes::new()) {
                Plan::Done(o) => o,
                Plan::Io(_) => return (ScsiStatus::Good, None),
            },
        };
        (o.status, o.sense.map(|s| (s.key as u8, s.asc, s.ascq)))
    }

    #[test]
    fn inaccessible_states_refuse_media_access() {
        let read10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let tur = [0u8; 6];
        let mode_sense = [0x1a, 0, 0x3f, 0, 0xff, 0];
        let inquiry = [0x12, 0, 0, 0, 96, 0];
        let not_ready = |ascq| Some((SenseKey::NotReady as u8, 0x04, ascq));
        let mut pg = two_gateways(2);
        assert_eq!(outcome(&pg, &read10), (ScsiStatus::Good, None), "AN reads");
        for (state, ascq) in [
            (AccessState::Standby, 0x0b),
            (AccessState::Unavailable, 0x0c),
            (AccessState::Transitioning, 0x0a),
        ] {
            pg.groups[1].state = state;
            for cdb in [&read10[..], &tur[..]] {
                assert_eq!(
                    outcome(&pg, cdb),
                    (ScsiStatus::CheckCondition, not_ready(ascq)),
                    "{state:?} {cdb:02x?}"
                );
            }
            assert_eq!(outcome(&pg, &inquiry).0, ScsiStatus::Good);
            assert_eq!(outcome(&pg, &RTPG).0, ScsiStatus::Good);
            let ms = outcome(&pg, &mode_sense);
            if state == AccessState::Standby {
                assert_eq!(ms.0, ScsiStatus::Good, "standby keeps MODE SENSE");
            } else {
                assert_eq!(ms, (ScsiStatus::CheckCondition, not_ready(ascq)));
            }
        }
        // The other gateway's state does not matter here.
        pg.groups[1].state = AccessState::ActiveOptimized;
        pg.groups[0].state = AccessState::Unavailable;
        assert_eq!(outcome(&pg, &read10), (ScsiStatus::Good, None));
    }

    #[test]
    fn state_names_parse() {
        for st in AccessState::ALL {
            assert_eq!(AccessState::parse(st.name()), Some(st));
        }
        assert_eq!(AccessState::parse("AO"), Some(AccessState::ActiveOptimized));
        assert_eq!(
            AccessState::parse("an"),
            Some(AccessState::ActiveNonOptimized)
        );
        assert_eq!(AccessState::parse("offline"), None);
        assert_eq!(AccessState::parse(""), None);
    }
}
