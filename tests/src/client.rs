//! A small blocking iSCSI initiator over TCP, built on `iscsi-proto`, for tests that
//! need exact bytes, exact login statuses or deliberately bad input.

use bytes::{Bytes, BytesMut};
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::pdu::{
    DataOut, Digests, LoginRequest, LogoutRequest, Pdu, ScsiCommand, Stage, TaskAttr,
    TaskMgmtRequest, TextRequest,
};
use iscsi_proto::text;
use iscsi_proto::{Isid, Itt, LunField, SerialNumber, Tsih, Ttt};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The initiator name the client logs in with.
pub const INITIATOR: &str = "iqn.2026-11.org.example:test-client";

/// One login exchange's answer: status class, status detail, keys, T bit.
pub type LoginStep = (u8, u8, Vec<(String, String)>, bool);

/// The answer to a SCSI command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResult {
    /// SCSI status byte.
    pub status: u8,
    /// Data-In, concatenated.
    pub data: Vec<u8>,
    /// Sense data (fixed format), when present.
    pub sense: Vec<u8>,
    /// Residual count and its kind (U or O bit).
    pub residual: u32,
    /// Underflow bit.
    pub underflow: bool,
    /// Overflow bit.
    pub overflow: bool,
}

impl ScsiResult {
    /// (sense key, ASC, ASCQ) of fixed-format sense data.
    pub fn sense_key_asc(&self) -> Option<(u8, u8, u8)> {
        (self.sense.len() >= 14).then(|| (self.sense[2] & 0x0f, self.sense[12], self.sense[13]))
    }
}

/// A connection from the test to a target.
pub struct Client {
    /// The ISID logins use; give two clients different ones for two sessions.
    pub isid: Isid,
    /// The TSIH logins carry (0: a new session; a live session's: add a
    /// connection to it). Set from the final login response.
    pub tsih: Tsih,
    /// The CID logins and logouts carry.
    pub cid: u16,
    /// MaxConnections to offer at login (not offered when `None`).
    pub max_connections: Option<u16>,
    /// More operational keys to offer at login (ErrorRecoveryLevel, Time2Retain...).
    pub extra_keys: Vec<(String, String)>,
    stream: TcpStream,
    rbuf: BytesMut,
    decoder: PduDecoder,
    cmd_sn: u32,
    exp_stat_sn: u32,
    itt: u32,
    max_burst: u32,
}

impl Client {
    /// Connect (no login yet).
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        Client::from_stream(TcpStream::connect(addr)?)
    }

    /// A client on a connected socket (one bound to a chosen source address).
    pub fn from_stream(stream: TcpStream) -> io::Result<Client> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            isid: Isid([0x80, 0, 0x23, 0x45, 0, 1]),
            tsih: Tsih(0),
            cid: 0,
            max_connections: None,
            extra_keys: Vec::new(),
            stream,
            rbuf: BytesMut::new(),
            decoder: PduDecoder::new(1 << 24),
            cmd_sn: 1,
            exp_stat_sn: 0,
            itt: 1,
            max_burst: 262_144,
        })
    }

    /// Send one PDU.
    pub fn send(&mut self, pdu: &Pdu) -> io::Result<()> {
        self.stream
            .write_all(&pdu.encode(Digests::default()).to_vec())
    }

    /// Send raw bytes (malformed input tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Receive one PDU; `Ok(None)` when the target closed the connection.
    pub fn recv(&mut self) -> io::Result<Option<Pdu>> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(p)) => {
                    self.track(&p);
                    return Ok(Some(p));
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            let mut tmp = [0u8; 65536];
            // A socket with a read timeout is never restarted after a signal, nor
            // after a stop and SIGCONT of the test process (signal(7)): read again.
            let n = match self.stream.read(&mut tmp) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            if n == 0 {
                return Ok(None);
            }
            self.rbuf.extend_from_slice(&tmp[..n]);
        }
    }

    fn track(&mut self, p: &Pdu) {
        let sn = match p {
            Pdu::ScsiResponse(r) => Some(r.stat_sn),
            Pdu::LoginResponse(r) => Some(r.stat_sn),
            Pdu::TextResponse(r) => Some(r.stat_sn),
            Pdu::LogoutResponse(r) => Some(r.stat_sn),
            Pdu::NopIn(r) if r.itt != Itt::RESERVED => Some(r.stat_sn),
            Pdu::DataIn(r) if r.status_present => Some(r.stat_sn),
            Pdu::Reject(r) => Some(r.stat_sn),
            _ => None,
        };
        if let Some(sn) = sn {
            self.exp_stat_sn = sn.get().wrapping_add(1);
        }
    }

    fn next_itt(&mut self) -> Itt {
        self.itt += 1;
        Itt(self.itt)
    }

    /// One login request/response exchange; returns (status class, detail, keys, T bit).
    pub fn login_step(
        &mut self,
        csg: Stage,
        nsg: Stage,
        transit: bool,
        keys: &[(&str, &str)],
    ) -> io::Result<LoginStep> {
        let req = Pdu::LoginRequest(LoginRequest {
            transit,
            continue_bit: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.isid,
            tsih: self.tsih,
            itt: Itt(0),
            cid: self.cid,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
            data: text::encode(keys),
        });
        self.send(&req)?;
        match self.recv()? {
            Some(Pdu::LoginResponse(r)) => {
                if r.transit && r.nsg == Stage::FullFeature {
                    self.tsih = r.tsih;
                }
                let pairs = text::parse(&r.data).unwrap_or_default();
                Ok((r.status_class, r.status_detail, pairs, r.transit))
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected a login response, got {other:?}"),
            )),
        }
    }

    /// A whole login to `target` (or a discovery session when `None`), operational keys
    /// offered in one step, then, for a normal session, what libiscsi and Linux do next:
    /// clear the power-on unit attention of every LUN ([`Client::clear_unit_attentions`]).
    /// Returns the login status of the first failure, or (0, 0).
    pub fn login(&mut self, target: Option<&str>) -> io::Result<(u8, u8)> {
        let status = self.login_only(target)?;
        if status == (0, 0) && target.is_some() {
            self.clear_unit_attentions()?;
        }
        Ok(status)
    }

    /// REPORT LUNS, then TEST UNIT READY to each LUN until it answers GOOD (at most 8
    /// tries), as libiscsi does after connecting.
    pub fn clear_unit_attentions(&mut self) -> io::Result<()> {
        let mut cdb = vec![0xa0, 0, 0, 0, 0, 0];
        cdb.extend_from_slice(&4096u32.to_be_bytes());
        cdb.extend_from_slice(&[0, 0]);
        let r = self.scsi(0, &cdb, &[], 4096)?;
        let luns: Vec<u64> = r
            .data
            .get(8..)
            .unwrap_or_default()
            .chunks_exact(8)
            .map(|e| (u64::from(e[0] & 0x3f) << 8) | u64::from(e[1]))
            .collect();
        for lun in luns {
            let mut tries = 0;
            loop {
                let r = self.scsi(lun, &[0; 6], &[], 0)?;
                tries += 1;
                match (r.status, r.sense_key_asc()) {
                    (0, _) => break,
                    (2, Some((6, _, _))) if tries < 8 => continue,
                    other => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("TEST UNIT READY to LUN {lun}: {other:?}"),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Client::login`] without clearing unit attentions.
    pub fn login_only(&mut self, target: Option<&str>) -> io::Result<(u8, u8)> {
        let mut keys = vec![("InitiatorName", INITIATOR), ("AuthMethod", "None")];
        match target {
            Some(t) => {
                keys.push(("SessionType", "Normal"));
                keys.push(("TargetName", t));
            }
            None => keys.push(("SessionType", "Discovery")),
        }
        let (c, d, _, _) = self.login_step(Stage::Security, Stage::Operational, true, &keys)?;
        if (c, d) != (0, 0) {
            return Ok((c, d));
        }
        let mc = self.max_connections.map(|n| n.to_string());
        let mut ops: Vec<(&str, &str)> = if target.is_some() {
            vec![
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("InitialR2T", "Yes"),
                ("ImmediateData", "Yes"),
                ("MaxRecvDataSegmentLength", "65536"),
                ("MaxBurstLength", "262144"),
                ("FirstBurstLength", "65536"),
            ]
        } else {
            vec![
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxRecvDataSegmentLength", "65536"),
            ]
        };
        if let Some(mc) = &mc {
            ops.push(("MaxConnections", mc));
        }
        let extra = self.extra_keys.clone();
        for (k, v) in &extra {
            ops.push((k, v));
        }
        let (c, d, pairs, _) =
            self.login_step(Stage::Operational, Stage::FullFeature, true, &ops)?;
        for (k, v) in &pairs {
            if k == "MaxBurstLength" {
                self.max_burst = v.parse().unwrap_or(262_144);
            }
        }
        Ok((c, d))
    }

    /// SendTargets=All; the pairs of the answer.
    pub fn send_targets(&mut self) -> io::Result<Vec<(String, String)>> {
        let itt = self.next_itt();
        let req = Pdu::TextRequest(TextRequest {
            immediate: true,
            final_bit: true,
            continue_bit: false,
            lun: LunField::default(),
            itt,
            ttt: Ttt::RESERVED,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
            data: text::encode(&[("SendTargets", "All")]),
        });
        self.send(&req)?;
        match self.recv()? {
            Some(Pdu::TextResponse(r)) => Ok(text::parse(&r.data).unwrap_or_default()),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{other:?}"),
            )),
        }
    }

    /// An immediate, final Text Request carrying `data` as is; the next PDU the
    /// target sends (a Text Response or a Reject), `None` when it closed.
    pub fn text(&mut self, data: &[u8]) -> io::Result<Option<Pdu>> {
        let itt = self.next_itt();
        let req = Pdu::TextRequest(TextRequest {
            immediate: true,
            final_bit: true,
            continue_bit: false,
            lun: LunField::default(),
            itt,
            ttt: Ttt::RESERVED,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
            data: Bytes::copy_from_slice(data),
        });
        self.send(&req)?;
        self.recv()
    }

    /// A non-immediate SCSI Command PDU without data (the caller sends it and any
    /// Data-Out): the next ITT and CmdSN (advanced), the current ExpStatSN.
    pub fn command_pdu(&mut self, lun: u64, cdb: &[u8], edtl: u32, write: bool) -> ScsiCommand {
        let itt = self.next_itt();
        let mut cdb16 = cdb.to_vec();
        cdb16.resize(cdb.len().max(16), 0);
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: true,
            read: !write && edtl > 0,
            write,
            attr: TaskAttr::Simple,
            lun: LunField::from_lun(lun),
            itt,
            expected_data_transfer_length: edtl,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
            cdb: Bytes::from(cdb16),
            data: Bytes::new(),
        };
        self.cmd_sn += 1;
        cmd
    }

    /// Set the CmdSN the next non-immediate command takes (connections of one
    /// session share the sequence: hand it over from [`Client::cmd_sn`]).
    pub fn set_cmd_sn(&mut self, sn: u32) {
        self.cmd_sn = sn;
    }

    /// Use ITTs from `base` on (connections of one session must not share ITTs).
    pub fn set_itt_base(&mut self, base: u32) {
        self.itt = base;
    }

    /// A Logout Request with `reason` for connection `cid`; the Logout Response's
    /// response code, or `None` when another PDU or the close came first.
    pub fn logout_cid(&mut self, reason: u8, cid: u16) -> io::Result<Option<u8>> {
        let itt = self.next_itt();
        let req = Pdu::LogoutRequest(LogoutRequest {
            immediate: true,
            reason,
            itt,
            cid,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
        });
        self.send(&req)?;
        Ok(match self.recv()? {
            Some(Pdu::LogoutResponse(r)) => Some(r.response),
            _ => None,
        })
    }

    /// Run a SCSI command: `cdb`, data-out (sent as immediate data up to 64 KiB, the rest
    /// on R2T), `read_len` expected data-in.
    pub fn scsi(
        &mut self,
        lun: u64,
        cdb: &[u8],
        data_out: &[u8],
        read_len: u32,
    ) -> io::Result<ScsiResult> {
        let itt = self.next_itt();
        let mut cdb16 = cdb.to_vec();
        cdb16.resize(cdb.len().max(16), 0);
        let write = !data_out.is_empty();
        let imm = data_out.len().min(65536);
        let edtl = if write {
            data_out.len() as u32
        } else {
            read_len
        };
        let cmd = Pdu::ScsiCommand(ScsiCommand {
            immediate: false,
            final_bit: true,
            read: read_len > 0,
            write,
            attr: TaskAttr::Simple,
            lun: LunField::from_lun(lun),
            itt,
            expected_data_transfer_length: edtl,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
            cdb: Bytes::from(cdb16),
            data: Bytes::copy_from_slice(&data_out[..imm]),
        });
        self.cmd_sn += 1;
        self.send(&cmd)?;
        let mut res = ScsiResult {
            status: 0xff,
            data: Vec::new(),
            sense: Vec::new(),
            residual: 0,
            underflow: false,
            overflow: false,
        };
        loop {
            match self.recv()? {
                Some(Pdu::R2t(r)) => {
                    // Answer with Data-Out PDUs of at most 64 KiB.
                    let mut off = r.buffer_offset as usize;
                    let end = off + r.desired_data_transfer_length as usize;
                    let mut data_sn = 0;
                    while off < end {
                        let chunk_end = (off + 65536).min(end);
                        let d = Pdu::DataOut(DataOut {
                            final_bit: chunk_end == end,
                            lun: LunField::from_lun(lun),
                            itt: r.itt,
                            ttt: r.ttt,
                            exp_stat_sn: SerialNumber(self.exp_stat_sn),
                            data_sn,
                            buffer_offset: off as u32,
                            data: Bytes::copy_from_slice(
                                &data_out[off.min(data_out.len())..chunk_end.min(data_out.len())],
                            ),
                        });
                        self.send(&d)?;
                        data_sn += 1;
                        off = chunk_end;
                    }
                }
                Some(Pdu::DataIn(d)) => {
                    res.data.extend_from_slice(&d.data);
                    if d.status_present {
                        res.status = d.status;
                        res.residual = d.residual_count;
                        res.underflow = d.underflow;
                        res.overflow = d.overflow;
                        return Ok(res);
                    }
                }
                Some(Pdu::ScsiResponse(r)) => {
                    res.status = r.status;
                    res.residual = r.residual_count;
                    res.underflow = r.underflow;
                    res.overflow = r.overflow;
                    if r.data.len() >= 2 {
                        let n = u16::from_be_bytes([r.data[0], r.data[1]]) as usize;
                        res.sense = r.data[2..(2 + n).min(r.data.len())].to_vec();
                    }
                    return Ok(res);
                }
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected {other:?}"),
                    ))
                }
            }
        }
    }

    /// Logout (close the session); true when the target answered "closed".
    pub fn logout(&mut self) -> io::Result<bool> {
        let itt = self.next_itt();
        let req = Pdu::LogoutRequest(LogoutRequest {
            immediate: true,
            reason: 0,
            itt,
            cid: 0,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
        });
        self.send(&req)?;
        Ok(matches!(self.recv()?, Some(Pdu::LogoutResponse(r)) if r.response == 0))
    }

    /// An immediate task management request `function` (RFC 7143 §11.5.1) for `lun`;
    /// the response code, or `None` when the target closed the connection first.
    pub fn task_mgmt(&mut self, function: u8, lun: u64) -> io::Result<Option<u8>> {
        let itt = self.next_itt();
        let req = Pdu::TaskMgmtRequest(TaskMgmtRequest {
            immediate: true,
            function,
            lun: LunField::from_lun(lun),
            itt,
            referenced_task_tag: Itt::RESERVED,
            cmd_sn: SerialNumber(self.cmd_sn),
            exp_stat_sn: SerialNumber(self.exp_stat_sn),
            ref_cmd_sn: SerialNumber(0),
            exp_data_sn: 0,
        });
        self.send(&req)?;
        loop {
            match self.recv()? {
                Some(Pdu::TaskMgmtResponse(r)) if r.itt == itt => return Ok(Some(r.response)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    /// The negotiated MaxBurstLength.
    pub fn max_burst(&self) -> u32 {
        self.max_burst
    }

    /// Our address on the connection (the daemon's logs name it).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// The CmdSN for the next non-immediate request (advances it); hand-built
    /// commands use it.
    pub fn take_cmd_sn(&mut self) -> SerialNumber {
        let sn = SerialNumber(self.cmd_sn);
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        sn
    }

    /// The CmdSN the next request will carry, without advancing it.
    pub fn cmd_sn(&self) -> SerialNumber {
        SerialNumber(self.cmd_sn)
    }

    /// ExpStatSN to put in hand-built requests.
    pub fn exp_stat_sn(&self) -> SerialNumber {
        SerialNumber(self.exp_stat_sn)
    }

    /// The socket, for timeouts and shutdowns in hostile tests.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// READ(10) CDB.
pub fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![0x28, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

/// WRITE(10) CDB.
pub fn write10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = read10(lba, blocks);
    c[0] = 0x2a;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::thread::JoinHandleExt;
    use std::time::Instant;

    extern "C" fn nothing(_: libc::c_int) {}

    /// A signal delivered while `recv` waits on its timed socket read makes the
    /// read fail with EINTR (never restarted, signal(7)); `recv` must wait on.
    /// CI met this as "Interrupted system call" in a tape test.
    #[test]
    fn recv_waits_on_through_a_signal() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // SAFETY: installs a handler that does nothing, without SA_RESTART, for a
        // signal nothing else in this test binary uses.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = nothing as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        }
        let reader = std::thread::spawn(move || {
            let mut c = Client::connect(addr).unwrap();
            c.recv().map(|p| p.is_none())
        });
        let (peer, _) = listener.accept().unwrap();
        let pthread = reader.as_pthread_t();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: the reader thread is alive until `peer` closes below.
            unsafe { libc::pthread_kill(pthread, libc::SIGUSR2) };
        }
        drop(peer);
        let closed = reader.join().unwrap().expect("recv through signals");
        assert!(closed, "the peer's close is seen as Ok(None)");
    }
}
