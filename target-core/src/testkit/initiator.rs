//! [`Initiator`]: the initiator side of one connection, in memory, built on
//! [`iscsi_proto`]. It builds the PDUs a scenario sends (tracking CmdSN and ExpStatSN),
//! answers R2Ts and target pings by itself, and records everything the target sends so
//! a test can assert what a real initiator would see.

use bytes::{Bytes, BytesMut};
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::keys::SessionParams;
use iscsi_proto::login::negotiate::parse_number;
use iscsi_proto::pdu::{
    DataIn, DataOut, DecodeError, Digests, LoginRequest, LoginResponse, LogoutRequest, NopOut, Pdu,
    R2t, ScsiCommand, ScsiResponse, SnackRequest, Stage, TaskAttr, TaskMgmtRequest, TextRequest,
    TextResponse,
};
use iscsi_proto::text::{self, Pair};
use iscsi_proto::{Isid, Itt, LunField, SerialNumber, Tsih, Ttt};
use std::collections::BTreeMap;

/// What the initiator proposes during login (RFC 7143 §13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Offer `HeaderDigest=CRC32C` (else `None`).
    pub header_digest: bool,
    /// Offer `DataDigest=CRC32C` (else `None`).
    pub data_digest: bool,
    /// `InitialR2T`.
    pub initial_r2t: bool,
    /// `ImmediateData`.
    pub immediate_data: bool,
    /// Our `MaxRecvDataSegmentLength`: the largest Data-In segment we accept.
    pub max_recv_data_segment_length: u32,
    /// `MaxBurstLength`.
    pub max_burst_length: u32,
    /// `FirstBurstLength`.
    pub first_burst_length: u32,
    /// `MaxOutstandingR2T`.
    pub max_outstanding_r2t: u16,
    /// `MaxConnections` (offered only when above 1, the RFC default).
    pub max_connections: u16,
    /// `ErrorRecoveryLevel`.
    pub error_recovery_level: u8,
}

impl Default for Offer {
    /// What open-iscsi offers by default, minus digests.
    fn default() -> Self {
        Offer {
            header_digest: false,
            data_digest: false,
            initial_r2t: true,
            immediate_data: true,
            max_recv_data_segment_length: 262_144,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            max_outstanding_r2t: 1,
            max_connections: 1,
            error_recovery_level: 0,
        }
    }
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.into()
}

fn digest(on: bool) -> String {
    if on { "CRC32C" } else { "None" }.into()
}

impl Offer {
    /// The operational keys of this offer; a discovery session only offers the keys that
    /// are not irrelevant to it.
    pub fn pairs(&self, discovery: bool) -> Vec<Pair> {
        let mut v: Vec<Pair> = vec![
            ("HeaderDigest".into(), digest(self.header_digest)),
            ("DataDigest".into(), digest(self.data_digest)),
            (
                "MaxRecvDataSegmentLength".into(),
                self.max_recv_data_segment_length.to_string(),
            ),
        ];
        if !discovery {
            v.extend([
                ("InitialR2T".into(), yes_no(self.initial_r2t)),
                ("ImmediateData".into(), yes_no(self.immediate_data)),
                ("MaxBurstLength".into(), self.max_burst_length.to_string()),
                (
                    "FirstBurstLength".into(),
                    self.first_burst_length.to_string(),
                ),
                (
                    "MaxOutstandingR2T".into(),
                    self.max_outstanding_r2t.to_string(),
                ),
                (
                    "ErrorRecoveryLevel".into(),
                    self.error_recovery_level.to_string(),
                ),
            ]);
            if self.max_connections > 1 {
                v.push(("MaxConnections".into(), self.max_connections.to_string()));
            }
        }
        v
    }
}

/// Fixed-format sense data as the initiator decodes it (SPC-4 §4.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenseView {
    /// SENSE KEY.
    pub key: u8,
    /// ADDITIONAL SENSE CODE.
    pub asc: u8,
    /// ADDITIONAL SENSE CODE QUALIFIER.
    pub ascq: u8,
}

/// Everything the initiator saw of one SCSI task.
#[derive(Debug, Clone, Default)]
pub struct TaskView {
    /// CmdSN the command was sent with.
    pub cmd_sn: SerialNumber,
    /// The expected data transfer length sent.
    pub edtl: u32,
    /// Data this task writes.
    pub write_data: Bytes,
    /// Read data assembled from Data-In at their buffer offsets.
    pub data: Vec<u8>,
    /// Every Data-In received, in order.
    pub data_in: Vec<DataIn>,
    /// Every R2T received, in order.
    pub r2ts: Vec<R2t>,
    /// Every Data-Out sent (solicited and unsolicited), in order.
    pub data_out: Vec<DataOut>,
    /// Bytes of immediate data sent with the command.
    pub immediate_len: usize,
    /// The SCSI Response, when the status did not come in a Data-In.
    pub response: Option<ScsiResponse>,
    /// SCSI status, once known.
    pub status: Option<u8>,
    /// O bit of the final status.
    pub overflow: bool,
    /// U bit of the final status.
    pub underflow: bool,
    /// Residual count of the final status.
    pub residual: u32,
    /// Sense data from the SCSI Response.
    pub sense: Option<SenseView>,
    /// The command as first sent by [`Initiator::command`] (for a retry).
    pub command: Option<ScsiCommand>,
}

impl TaskView {
    /// Whether the status has arrived.
    pub fn done(&self) -> bool {
        self.status.is_some()
    }
}

/// The initiator end of a simulated connection.
#[derive(Debug)]
pub struct Initiator {
    /// InitiatorName.
    pub name: String,
    /// ISID of the session.
    pub isid: Isid,
    /// What to propose at login.
    pub offer: Offer,
    /// Parameters as this initiator understood the target's answers. From the
    /// initiator's side: `max_recv_data_segment_length` is ours, and
    /// `max_xmit_data_segment_length` the target's declaration.
    pub params: SessionParams,
    /// TSIH from the final login response.
    pub tsih: Tsih,
    /// The TSIH login requests carry: 0 for a new session, a live session's to add
    /// a connection to it (MC/S).
    pub login_tsih: Tsih,
    /// This connection's CID (logins and logouts carry it).
    pub cid: u16,
    /// The CmdSN the next non-immediate command takes.
    pub cmd_sn: SerialNumber,
    /// The next StatSN expected.
    pub exp_stat_sn: SerialNumber,
    /// The target's latest ExpCmdSN.
    pub exp_cmd_sn: SerialNumber,
    /// The target's latest MaxCmdSN.
    pub max_cmd_sn: SerialNumber,
    /// The final login response arrived: digests and limits are in force.
    pub full_feature: bool,
    /// Every key the target sent during login, in order.
    pub login_keys: Vec<Pair>,
    /// Every PDU received, in arrival order.
    pub received: Vec<Pdu>,
    /// Decode errors on what the target sent (a correct target causes none).
    pub decode_errors: Vec<DecodeError>,
    /// Protocol violations seen (StatSN gaps, DataSN disorder, R2T beyond EDTL...).
    pub protocol_errors: Vec<String>,
    /// Answer R2Ts with Data-Out automatically.
    pub auto_data_out: bool,
    /// Answer target NOP-In pings automatically.
    pub auto_ping_reply: bool,
    tasks: BTreeMap<u32, TaskView>,
    /// The next ITT [`Initiator::alloc_itt`] hands out (connections of one session
    /// must not reuse each other's).
    pub next_itt: u32,
    tx_digests: Digests,
    decoder: PduDecoder,
    rx: BytesMut,
    out: BytesMut,
}

/// The (ExpCmdSN, MaxCmdSN) a target PDU carries.
fn cmd_window(p: &Pdu) -> Option<(SerialNumber, SerialNumber)> {
    Some(match p {
        Pdu::NopIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::ScsiResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::TaskMgmtResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::LoginResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::TextResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::DataIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::LogoutResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::R2t(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::AsyncMessage(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Pdu::Reject(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        _ => return None,
    })
}

/// The StatSN of a PDU that consumes one (RFC 7143 §4.2.2.2).
fn status_sn(p: &Pdu) -> Option<SerialNumber> {
    match p {
        Pdu::ScsiResponse(x) => Some(x.stat_sn),
        Pdu::DataIn(x) if x.status_present => Some(x.stat_sn),
        Pdu::NopIn(x) if x.itt != Itt::RESERVED => Some(x.stat_sn),
        Pdu::TaskMgmtResponse(x) => Some(x.stat_sn),
        Pdu::LoginResponse(x) => Some(x.stat_sn),
        Pdu::TextResponse(x) => Some(x.stat_sn),
        Pdu::LogoutResponse(x) => Some(x.stat_sn),
        Pdu::Reject(x) => Some(x.stat_sn),
        _ => None,
    }
}

/// Decode the fixed-format sense in a SCSI Response data segment (2-byte length first,
/// RFC 7143 §11.4.7).
fn parse_sense(data: &[u8]) -> Option<SenseView> {
    let len = usize::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
    let s = data.get(2..2 + len)?;
    Some(SenseView {
        key: *s.get(2)? & 0x0f,
        asc: *s.get(12)?,
        ascq: *s.get(13)?,
    })
}

/// During login both sides accept data segments up to 8192 bytes (RFC 7143 §13.12).
const LOGIN_MAX_DATA_SEGMENT: usize = 8192;

impl Initiator {
    /// A fresh initiator named `name` that has sent nothing.
    pub fn new(name: &str) -> Self {
        Initiator {
            name: name.to_string(),
            // OUI format (RFC 7143 §11.12.5), as open-iscsi builds it.
            isid: Isid([0x80, 0x00, 0x02, 0x3d, 0x00, 0x01]),
            offer: Offer::default(),
            params: SessionParams::default(),
            tsih: Tsih(0),
            login_tsih: Tsih(0),
            cid: 1,
            cmd_sn: SerialNumber(1),
            exp_stat_sn: SerialNumber(0),
            exp_cmd_sn: SerialNumber(1),
            max_cmd_sn: SerialNumber(1),
            full_feature: false,
            login_keys: Vec::new(),
            received: Vec::new(),
            decode_errors: Vec::new(),
            protocol_errors: Vec::new(),
            auto_data_out: true,
            auto_ping_reply: true,
            tasks: BTreeMap::new(),
            next_itt: 0x10,
            tx_digests: Digests::default(),
            decoder: PduDecoder::new(LOGIN_MAX_DATA_SEGMENT),
            rx: BytesMut::new(),
            out: BytesMut::new(),
        }
    }

    // ----- wire -----

    /// Queue `pdu` for the target, encoded with the digests now in force.
    pub fn send(&mut self, pdu: &Pdu) {
        // A command built by hand (odd CmdSN, odd flags) is tracked like any other.
        if let Pdu::ScsiCommand(c) = pdu {
            self.tasks.entry(c.itt.0).or_insert_with(|| TaskView {
                cmd_sn: c.cmd_sn,
                edtl: c.expected_data_transfer_length,
                immediate_len: c.data.len(),
                ..TaskView::default()
            });
        }
        let e = pdu.encode(self.tx_digests);
        self.out.extend_from_slice(&e.header);
        self.out.extend_from_slice(&e.data);
        self.out.extend_from_slice(&e.trailer);
    }

    /// `pdu` as it would go on the wire now (to corrupt it and [`Initiator::send_raw`] it).
    pub fn encode(&self, pdu: &Pdu) -> Vec<u8> {
        pdu.encode(self.tx_digests).to_vec()
    }

    /// Queue raw bytes for the target.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes queued for the target.
    pub fn outgoing_len(&self) -> usize {
        self.out.len()
    }

    /// Take up to `max` queued bytes for the target.
    pub fn take_outgoing(&mut self, max: usize) -> BytesMut {
        let n = max.min(self.out.len());
        self.out.split_to(n)
    }

    /// Feed bytes the target sent.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.rx.extend_from_slice(bytes);
        loop {
            match self.decoder.decode(&mut self.rx) {
                Ok(Some(pdu)) => self.handle_pdu(pdu),
                Ok(None) => break,
                Err(e) => {
                    let fatal = e.is_fatal();
                    self.decode_errors.push(e);
                    if fatal {
                        self.rx.clear();
                        break;
                    }
                }
            }
        }
    }

    // ----- what was received -----

    /// The task with this ITT.
    pub fn task(&self, itt: Itt) -> Option<&TaskView> {
        self.tasks.get(&itt.0)
    }

    /// Received PDUs matching `f`.
    pub fn received_where<T>(&self, f: impl Fn(&Pdu) -> Option<T>) -> Vec<T> {
        self.received.iter().filter_map(f).collect()
    }

    /// The last login response received.
    pub fn last_login_response(&self) -> Option<&LoginResponse> {
        self.received.iter().rev().find_map(|p| match p {
            Pdu::LoginResponse(r) => Some(r),
            _ => None,
        })
    }

    /// Text responses received for `itt`.
    pub fn text_responses(&self, itt: Itt) -> Vec<TextResponse> {
        self.received_where(|p| match p {
            Pdu::TextResponse(t) if t.itt == itt => Some(t.clone()),
            _ => None,
        })
    }

    /// The value the target answered for `key` during login (last one wins).
    pub fn login_key(&self, key: &str) -> Option<&str> {
        self.login_keys
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    // ----- builders -----

    /// A fresh ITT.
    pub fn alloc_itt(&mut self) -> Itt {
        let i = Itt(self.next_itt);
        self.next_itt = self.next_itt.wrapping_add(1);
        if self.next_itt == Itt::RESERVED.0 {
            self.next_itt = 0;
        }
        i
    }

    /// The CmdSN for a new non-immediate command; advances it.
    pub fn next_cmd_sn(&mut self) -> SerialNumber {
        let s = self.cmd_sn;
        self.cmd_sn = s.next();
        s
    }

    /// A login request in `csg` carrying `pairs`, moving to `nsg` when `transit`.
    pub fn login_request(
        &mut self,
        csg: Stage,
        nsg: Stage,
        transit: bool,
        pairs: &[Pair],
    ) -> LoginRequest {
        if self.received.is_empty() {
            self.params = SessionParams {
                max_recv_data_segment_length: self.offer.max_recv_data_segment_length,
                ..SessionParams::default()
            };
        }
        LoginRequest {
            transit,
            continue_bit: false,
            csg,
            nsg: if transit { nsg } else { Stage::Security },
            version_max: 0,
            version_min: 0,
            isid: self.isid,
            tsih: self.login_tsih,
            itt: Itt(1),
            cid: self.cid,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            data: text::encode(pairs),
        }
    }

    /// The identity keys of a normal session's first login request.
    pub fn identity_keys(&self, target: &str) -> Vec<Pair> {
        vec![
            ("InitiatorName".into(), self.name.clone()),
            ("SessionType".into(), "Normal".into()),
            ("TargetName".into(), target.into()),
        ]
    }

    /// A SCSI command; reads expect `edtl` bytes, writes send `write_data` (EDTL is its
    /// length) as immediate data, unsolicited Data-Out and answers to R2Ts, as the
    /// negotiated ImmediateData/InitialR2T/FirstBurstLength allow.
    pub fn command(
        &mut self,
        lun: u64,
        cdb: &[u8],
        edtl: u32,
        read: bool,
        write_data: Option<Bytes>,
    ) -> Itt {
        let itt = self.alloc_itt();
        let cmd_sn = self.next_cmd_sn();
        let data = write_data.clone().unwrap_or_default();
        let edtl = if write_data.is_some() {
            data.len() as u32
        } else {
            edtl
        };
        let p = self.params;
        let seg = p.max_xmit_data_segment_length.max(1) as usize;
        let first_burst = (p.first_burst_length as usize).min(data.len());
        let imm = if p.immediate_data {
            first_burst.min(seg)
        } else {
            0
        };
        let unsolicited = if p.initial_r2t { imm } else { first_burst };
        let lun_field = LunField::from_lun(lun);
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: unsolicited <= imm,
            read,
            write: write_data.is_some(),
            attr: TaskAttr::Simple,
            lun: lun_field,
            itt,
            expected_data_transfer_length: edtl,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb: Bytes::copy_from_slice(cdb),
            data: data.slice(..imm),
        };
        self.tasks.insert(
            itt.0,
            TaskView {
                cmd_sn,
                edtl,
                write_data: data.clone(),
                immediate_len: imm,
                command: Some(cmd.clone()),
                ..TaskView::default()
            },
        );
        self.send(&Pdu::ScsiCommand(cmd));
        if unsolicited > imm {
            self.send_data_out(itt, lun_field, Ttt::RESERVED, imm, unsolicited);
        }
        itt
    }

    /// Retry a command sent by [`Initiator::command`] that has no status yet: the same
    /// PDU (ITT, CmdSN, immediate data) with the current ExpStatSN (RFC 7143 §6.2.1),
    /// and its unsolicited Data-Out again. False when there is nothing to retry.
    pub fn retry(&mut self, itt: Itt) -> bool {
        let Some(t) = self.tasks.get(&itt.0).filter(|t| !t.done()) else {
            return false;
        };
        let Some(mut cmd) = t.command.clone() else {
            return false;
        };
        let (imm, len) = (t.immediate_len, t.write_data.len());
        cmd.exp_stat_sn = self.exp_stat_sn;
        let unsolicited = !cmd.final_bit;
        let lun = cmd.lun;
        self.send(&Pdu::ScsiCommand(cmd));
        if unsolicited {
            let end = (self.params.first_burst_length as usize).min(len);
            self.send_data_out(itt, lun, Ttt::RESERVED, imm, end);
        }
        true
    }

    /// A read of `edtl` bytes.
    pub fn read(&mut self, lun: u64, cdb: &[u8], edtl: u32) -> Itt {
        self.command(lun, cdb, edtl, true, None)
    }

    /// A write of `data` (EDTL is `data.len()`).
    pub fn write(&mut self, lun: u64, cdb: &[u8], data: Bytes) -> Itt {
        self.command(lun, cdb, 0, false, Some(data))
    }

    /// Send the write data in `[from, to)` as Data-Out PDUs of at most the target's
    /// MaxRecvDataSegmentLength, DataSN from 0, F on the last (RFC 7143 §11.7).
    fn send_data_out(&mut self, itt: Itt, lun: LunField, ttt: Ttt, from: usize, to: usize) {
        let seg = self.params.max_xmit_data_segment_length.max(1) as usize;
        let Some(task) = self.tasks.get(&itt.0) else {
            return;
        };
        let data = task.write_data.clone();
        let to = to.min(data.len());
        let mut pdus = Vec::new();
        let mut off = from;
        let mut data_sn = 0;
        while off < to {
            let end = (off + seg).min(to);
            pdus.push(DataOut {
                final_bit: end == to,
                lun,
                itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                buffer_offset: off as u32,
                data: data.slice(off..end),
            });
            data_sn += 1;
            off = end;
        }
        for d in pdus {
            self.send(&Pdu::DataOut(d.clone()));
            if let Some(t) = self.tasks.get_mut(&itt.0) {
                t.data_out.push(d);
            }
        }
    }

    /// A NOP-Out ping the target must answer (RFC 7143 §11.18).
    pub fn nop_out(&mut self, data: Bytes) -> NopOut {
        NopOut {
            immediate: false,
            lun: LunField::default(),
            itt: self.alloc_itt(),
            ttt: Ttt::RESERVED,
            cmd_sn: self.next_cmd_sn(),
            exp_stat_sn: self.exp_stat_sn,
            data,
        }
    }

    /// A Logout Request with `reason` (0: close the session).
    pub fn logout(&mut self, reason: u8) -> LogoutRequest {
        LogoutRequest {
            immediate: true,
            reason,
            itt: self.alloc_itt(),
            cid: self.cid,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        }
    }

    /// An immediate ABORT TASK for `task` (RFC 7143 §11.5.1).
    pub fn abort_task(&mut self, lun: u64, task: Itt) -> TaskMgmtRequest {
        let ref_cmd_sn = self
            .tasks
            .get(&task.0)
            .map(|t| t.cmd_sn)
            .unwrap_or_default();
        TaskMgmtRequest {
            immediate: true,
            function: 1,
            lun: LunField::from_lun(lun),
            itt: self.alloc_itt(),
            referenced_task_tag: task,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn,
            exp_data_sn: 0,
        }
    }

    /// Take over task `itt` as another connection's initiator saw it (connection
    /// recovery at ErrorRecoveryLevel 2): Data-In and R2Ts continue its numbering.
    pub fn adopt(&mut self, itt: Itt, view: TaskView) {
        self.tasks.insert(itt.0, view);
    }

    /// An immediate TASK REASSIGN of `task` (RFC 7143 §11.5.1, function 8),
    /// ExpDataSN = the Data-In this initiator has of it.
    pub fn task_reassign(&mut self, lun: u64, task: Itt) -> TaskMgmtRequest {
        let exp_data_sn = self
            .tasks
            .get(&task.0)
            .map_or(0, |t| t.data_in.len() as u32);
        TaskMgmtRequest {
            function: 8,
            exp_data_sn,
            ..self.abort_task(lun, task)
        }
    }

    /// A final Text Request carrying `pairs`.
    pub fn text_request(&mut self, pairs: &[Pair]) -> TextRequest {
        TextRequest {
            immediate: false,
            final_bit: true,
            continue_bit: false,
            lun: LunField::default(),
            itt: self.alloc_itt(),
            ttt: Ttt::RESERVED,
            cmd_sn: self.next_cmd_sn(),
            exp_stat_sn: self.exp_stat_sn,
            data: text::encode(pairs),
        }
    }

    /// A status SNACK (RFC 7143 §11.16), which a target at ErrorRecoveryLevel 0 rejects.
    pub fn snack(&mut self) -> SnackRequest {
        SnackRequest {
            snack_type: 1,
            lun: LunField::default(),
            itt: Itt::RESERVED,
            ttt: Ttt::RESERVED,
            exp_stat_sn: self.exp_stat_sn,
            beg_run: 0,
            run_length: 0,
        }
    }

    // ----- receiving -----

    fn handle_pdu(&mut self, pdu: Pdu) {
        if let Some(sn) = status_sn(&pdu) {
            if sn != self.exp_stat_sn {
                self.protocol_errors.push(format!(
                    "StatSN {sn} where {} was expected in {pdu:?}",
                    self.exp_stat_sn
                ));
            }
            // A status sent again (SNACK, retry) does not move ExpStatSN back.
            if !sn.lt(self.exp_stat_sn) {
                self.exp_stat_sn = sn.next();
            }
        }
        if let Some((exp, max)) = cmd_window(&pdu) {
            self.exp_cmd_sn = exp;
            self.max_cmd_sn = max;
        }
        match &pdu {
            Pdu::LoginResponse(r) => self.on_login_response(r),
            Pdu::DataIn(d) => self.on_data_in(d),
            Pdu::ScsiResponse(r) => self.on_scsi_response(r),
            Pdu::R2t(r) => self.on_r2t(r),
            Pdu::NopIn(n)
                if n.itt == Itt::RESERVED && n.ttt != Ttt::RESERVED && self.auto_ping_reply =>
            {
                let reply = NopOut {
                    immediate: true,
                    lun: n.lun,
                    itt: Itt::RESERVED,
                    ttt: n.ttt,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                    data: Bytes::new(),
                };
                self.send(&Pdu::NopOut(reply));
            }
            _ => {}
        }
        self.received.push(pdu);
    }

    fn on_login_response(&mut self, r: &LoginResponse) {
        match text::parse(&r.data) {
            Ok(pairs) => {
                for (k, v) in &pairs {
                    self.apply_key(k, v);
                }
                self.login_keys.extend(pairs);
            }
            Err(e) => self
                .protocol_errors
                .push(format!("bad login response text: {e}")),
        }
        if r.status_class == 0 && r.transit && r.nsg == Stage::FullFeature {
            self.full_feature = true;
            self.tsih = r.tsih;
            // Digests start after the final login response (RFC 7143 §13.1).
            self.tx_digests = Digests {
                header: self.params.header_digest,
                data: self.params.data_digest,
            };
            self.decoder.digests = self.tx_digests;
            self.decoder.max_data_segment = self.params.max_recv_data_segment_length as usize;
        }
    }

    /// Record one negotiated key as the target answered it.
    fn apply_key(&mut self, k: &str, v: &str) {
        let p = &mut self.params;
        let num = parse_number(v);
        match (k, num) {
            ("HeaderDigest", _) => p.header_digest = v == "CRC32C",
            ("DataDigest", _) => p.data_digest = v == "CRC32C",
            ("InitialR2T", _) => p.initial_r2t = v == "Yes",
            ("ImmediateData", _) => p.immediate_data = v == "Yes",
            ("MaxRecvDataSegmentLength", Some(n)) => p.max_xmit_data_segment_length = n,
            ("MaxBurstLength", Some(n)) => p.max_burst_length = n,
            ("FirstBurstLength", Some(n)) => p.first_burst_length = n,
            ("MaxOutstandingR2T", Some(n)) => p.max_outstanding_r2t = n as u16,
            ("ErrorRecoveryLevel", Some(n)) => p.error_recovery_level = n as u8,
            _ => {}
        }
    }

    fn on_data_in(&mut self, d: &DataIn) {
        let Some(t) = self.tasks.get_mut(&d.itt.0) else {
            self.protocol_errors
                .push(format!("Data-In for unknown ITT {:#x}", d.itt.0));
            return;
        };
        if d.data_sn != t.data_in.len() as u32 {
            self.protocol_errors.push(format!(
                "Data-In DataSN {} where {} was expected",
                d.data_sn,
                t.data_in.len()
            ));
        }
        let off = d.buffer_offset as usize;
        let end = off + d.data.len();
        if end > t.edtl as usize {
            self.protocol_errors
                .push(format!("Data-In beyond EDTL: {off}..{end} > {}", t.edtl));
        } else {
            if t.data.len() < end {
                t.data.resize(end, 0);
            }
            t.data[off..end].copy_from_slice(&d.data);
        }
        if d.status_present {
            if t.status.is_some() {
                self.protocol_errors.push("second status for a task".into());
            }
            t.status = Some(d.status);
            t.overflow = d.overflow;
            t.underflow = d.underflow;
            t.residual = d.residual_count;
        }
        t.data_in.push(d.clone());
    }

    fn on_scsi_response(&mut self, r: &ScsiResponse) {
        let Some(t) = self.tasks.get_mut(&r.itt.0) else {
            self.protocol_errors
                .push(format!("SCSI Response for unknown ITT {:#x}", r.itt.0));
            return;
        };
        if t.status.is_some() {
            self.protocol_errors.push("second status for a task".into());
        }
        if r.exp_data_sn != t.data_in.len() as u32 {
            self.protocol_errors.push(format!(
                "ExpDataSN {} after {} Data-In",
                r.exp_data_sn,
                t.data_in.len()
            ));
        }
        t.status = Some(r.status);
        t.overflow = r.overflow;
        t.underflow = r.underflow;
        t.residual = r.residual_count;
        t.sense = parse_sense(&r.data);
        t.response = Some(r.clone());
    }

    fn on_r2t(&mut self, r: &R2t) {
        let Some(t) = self.tasks.get_mut(&r.itt.0) else {
            self.protocol_errors
                .push(format!("R2T for unknown ITT {:#x}", r.itt.0));
            return;
        };
        if r.r2t_sn != t.r2ts.len() as u32 {
            self.protocol_errors.push(format!(
                "R2TSN {} where {} was expected",
                r.r2t_sn,
                t.r2ts.len()
            ));
        }
        let end = u64::from(r.buffer_offset) + u64::from(r.desired_data_transfer_length);
        if end > u64::from(t.edtl) {
            self.protocol_errors
                .push(format!("R2T beyond EDTL: ends at {end} > {}", t.edtl));
        }
        if r.desired_data_transfer_length > self.params.max_burst_length {
            self.protocol_errors.push(format!(
                "R2T of {} bytes exceeds MaxBurstLength {}",
                r.desired_data_transfer_length, self.params.max_burst_length
            ));
        }
        t.r2ts.push(r.clone());
        if self.auto_data_out {
            let from = r.buffer_offset as usize;
            let to = end as usize;
            self.send_data_out(r.itt, r.lun, r.ttt, from, to);
        }
    }
}
