//! Operational keys (RFC 7143 §13): their defaults, ranges and the typed parameters a
//! session ends up with.

/// Whether the session is a discovery or a normal session (`SessionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionType {
    /// Normal: SCSI commands to one target.
    #[default]
    Normal,
    /// Discovery: SendTargets only.
    Discovery,
}

/// The negotiated (or declared) parameters of a session and connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    /// HeaderDigest=CRC32C.
    pub header_digest: bool,
    /// DataDigest=CRC32C.
    pub data_digest: bool,
    /// MaxConnections.
    pub max_connections: u16,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// Our MaxRecvDataSegmentLength: the largest data segment the initiator may send us.
    pub max_recv_data_segment_length: u32,
    /// The initiator's MaxRecvDataSegmentLength: the largest data segment we may send.
    pub max_xmit_data_segment_length: u32,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// DefaultTime2Wait.
    pub default_time2wait: u16,
    /// DefaultTime2Retain.
    pub default_time2retain: u16,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u8,
}

impl Default for SessionParams {
    /// RFC 7143 §13 defaults: what holds for a key nobody negotiated.
    fn default() -> Self {
        SessionParams {
            header_digest: false,
            data_digest: false,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            max_recv_data_segment_length: 8192,
            max_xmit_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
        }
    }
}

/// What the target is willing to do: its side of every negotiation (tgt's
/// `tgtadm --mode target --op update --name KEY --value V` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLimits {
    /// Digests we accept, in preference order (`CRC32C`, `None`).
    pub header_digest: Vec<String>,
    /// Data digests we accept, in preference order.
    pub data_digest: Vec<String>,
    /// MaxConnections we allow.
    pub max_connections: u16,
    /// Our InitialR2T.
    pub initial_r2t: bool,
    /// Our ImmediateData.
    pub immediate_data: bool,
    /// Our MaxRecvDataSegmentLength (declared).
    pub max_recv_data_segment_length: u32,
    /// Our MaxBurstLength.
    pub max_burst_length: u32,
    /// Our FirstBurstLength.
    pub first_burst_length: u32,
    /// Our DefaultTime2Wait.
    pub default_time2wait: u16,
    /// Our DefaultTime2Retain.
    pub default_time2retain: u16,
    /// Our MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// Our DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// Our DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// Our ErrorRecoveryLevel.
    pub error_recovery_level: u8,
}

impl Default for TargetLimits {
    fn default() -> Self {
        TargetLimits {
            header_digest: vec!["None".into(), "CRC32C".into()],
            data_digest: vec!["None".into(), "CRC32C".into()],
            max_connections: 1,
            initial_r2t: false,
            immediate_data: true,
            max_recv_data_segment_length: 262_144,
            max_burst_length: 16_776_192,
            first_burst_length: 262_144,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 16,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
        }
    }
}

/// Legal range of a numerical key (RFC 7143 §13).
pub fn range(key: &str) -> Option<(u32, u32)> {
    Some(match key {
        "MaxConnections" => (1, 65_535),
        "MaxRecvDataSegmentLength" => (512, 16_777_215),
        "MaxBurstLength" | "FirstBurstLength" => (512, 16_777_215),
        "DefaultTime2Wait" | "DefaultTime2Retain" => (0, 3600),
        "MaxOutstandingR2T" => (1, 65_535),
        "ErrorRecoveryLevel" => (0, 2),
        "iSCSIProtocolLevel" => (0, 31),
        _ => return None,
    })
}
