//! What the initiator asks for at login.

use iscsi_proto::keys::SessionParams;
use iscsi_proto::Isid;
use std::time::Duration;

/// CHAP credentials (RFC 7143 §12.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chap {
    /// `CHAP_N` we answer with.
    pub user: String,
    /// Our secret.
    pub secret: Vec<u8>,
    /// Mutual CHAP: also make the target prove itself.
    pub mutual: Option<MutualChap>,
}

/// The target's side of mutual CHAP, and the challenge we send it.
///
/// The challenge comes from the caller because this crate reads no OS randomness
/// (sans-IO); it must be unpredictable (a CSPRNG) and at least 16 bytes long, or
/// targets refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutualChap {
    /// The `CHAP_N` the target must answer with (`None`: any name).
    pub target_user: Option<String>,
    /// The target's secret.
    pub target_secret: Vec<u8>,
    /// `CHAP_I` we send.
    pub id: u8,
    /// `CHAP_C` we send.
    pub challenge: Vec<u8>,
}

/// Login settings: identity, authentication and the operational keys we offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `InitiatorName`.
    pub initiator_name: String,
    /// `TargetName` for a normal session; `None` for a discovery session.
    pub target_name: Option<String>,
    /// ISID (with the initiator name, names the SCSI initiator port).
    pub isid: Isid,
    /// CHAP credentials; `None` offers `AuthMethod=None` only.
    pub chap: Option<Chap>,
    /// Offer `HeaderDigest=CRC32C` (only; else `None`).
    pub header_digest: bool,
    /// Offer `DataDigest=CRC32C` (only; else `None`).
    pub data_digest: bool,
    /// `InitialR2T` offered.
    pub initial_r2t: bool,
    /// `ImmediateData` offered.
    pub immediate_data: bool,
    /// Our `MaxRecvDataSegmentLength`: the largest Data-In segment we accept.
    pub max_recv_data_segment_length: u32,
    /// `MaxBurstLength` offered.
    pub max_burst_length: u32,
    /// `FirstBurstLength` offered.
    pub first_burst_length: u32,
    /// How long the whole login may take.
    pub login_timeout: Duration,
    /// `MaxConnections` offered (connections the session may have, MC/S).
    pub max_connections: u16,
    /// ErrorRecoveryLevel to offer (0 to 2; the target answers the lower of its
    /// maximum and this). At 1 and above the session recovers from digest errors
    /// (`recovery.rs`); level 2's connection recovery is not implemented, so 1 is
    /// what it can use.
    pub error_recovery_level: u8,
}

impl Config {
    /// A normal session to `target` with open-iscsi's defaults (no digests).
    pub fn normal(initiator_name: &str, target: &str) -> Config {
        Config {
            target_name: Some(target.to_string()),
            ..Config::discovery(initiator_name)
        }
    }

    /// A discovery session.
    pub fn discovery(initiator_name: &str) -> Config {
        Config {
            initiator_name: initiator_name.to_string(),
            target_name: None,
            // OUI format (RFC 7143 §11.12.5), random qualifier left to the caller.
            isid: Isid([0x80, 0x00, 0x02, 0x3d, 0x00, 0x01]),
            chap: None,
            header_digest: false,
            data_digest: false,
            initial_r2t: true,
            immediate_data: true,
            max_recv_data_segment_length: 262_144,
            max_burst_length: 16_776_192,
            first_burst_length: 262_144,
            login_timeout: Duration::from_secs(15),
            max_connections: 1,
            error_recovery_level: 0,
        }
    }

    /// Whether this is a discovery session.
    pub fn is_discovery(&self) -> bool {
        self.target_name.is_none()
    }

    /// The operational keys of the first operational-stage request. We offer every
    /// key a target might otherwise have to offer itself, so the login normally ends
    /// in one round trip.
    pub(crate) fn offer(&self) -> Vec<(String, String)> {
        let digest = |on: bool| if on { "CRC32C" } else { "None" }.to_string();
        let yn = |b: bool| if b { "Yes" } else { "No" }.to_string();
        let mut v = vec![
            ("HeaderDigest".to_string(), digest(self.header_digest)),
            ("DataDigest".to_string(), digest(self.data_digest)),
            (
                "MaxRecvDataSegmentLength".to_string(),
                self.max_recv_data_segment_length.to_string(),
            ),
        ];
        if !self.is_discovery() {
            v.extend([
                ("InitialR2T".to_string(), yn(self.initial_r2t)),
                ("ImmediateData".to_string(), yn(self.immediate_data)),
                (
                    "MaxBurstLength".to_string(),
                    self.max_burst_length.to_string(),
                ),
                (
                    "FirstBurstLength".to_string(),
                    self.first_burst_length.to_string(),
                ),
                (
                    "MaxConnections".to_string(),
                    self.max_connections.max(1).to_string(),
                ),
                ("MaxOutstandingR2T".to_string(), "1".to_string()),
                ("DefaultTime2Wait".to_string(), "2".to_string()),
                // Connection recovery (level 2) needs the target to keep a failed
                // connection's tasks: the RFC default of 20 s then; else none.
                (
                    "DefaultTime2Retain".to_string(),
                    if self.error_recovery_level >= 2 {
                        "20"
                    } else {
                        "0"
                    }
                    .to_string(),
                ),
                (
                    "ErrorRecoveryLevel".to_string(),
                    self.error_recovery_level.min(2).to_string(),
                ),
                ("DataPDUInOrder".to_string(), "Yes".to_string()),
                ("DataSequenceInOrder".to_string(), "Yes".to_string()),
            ]);
        }
        v
    }

    /// Parameters before the target answers: the RFC defaults with our declaration.
    pub(crate) fn initial_params(&self) -> SessionParams {
        SessionParams {
            max_recv_data_segment_length: self.max_recv_data_segment_length,
            ..SessionParams::default()
        }
    }
}
