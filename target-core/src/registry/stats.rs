//! Per I_T_L nexus I/O counters (`tgtadm --op stat`), as tgt keeps them in
//! `struct lu_stat` for each (session, LU) pair.
//!
//! A connection takes the `Arc<LuStats>` of a (session, LU) pair once and then
//! counts with relaxed atomics: the command path takes no lock.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one (session, LU) pair.
#[derive(Debug, Default)]
pub struct LuStats {
    rd_subm_bytes: AtomicU64,
    rd_subm_cmds: AtomicU64,
    rd_done_bytes: AtomicU64,
    rd_done_cmds: AtomicU64,
    wr_subm_bytes: AtomicU64,
    wr_subm_cmds: AtomicU64,
    wr_done_bytes: AtomicU64,
    wr_done_cmds: AtomicU64,
    errs: AtomicU64,
}

/// Which way a command moves data, as tgt's `scsi_get_data_dir` sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// No data phase: counted only when it fails.
    None,
    /// Data-in of this many bytes (the expected data transfer length).
    Read(u64),
    /// Data-out of this many bytes.
    Write(u64),
    /// Both: bytes are counted, commands are not (tgt counts them apart, unshown).
    Bidi {
        /// Data-in bytes.
        read: u64,
        /// Data-out bytes.
        write: u64,
    },
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl LuStats {
    /// A command was handed to the LU (tgt: `scsi_cmd_perform`).
    pub fn submitted(&self, dir: DataDir) {
        match dir {
            DataDir::None => {}
            DataDir::Read(n) => {
                add(&self.rd_subm_bytes, n);
                add(&self.rd_subm_cmds, 1);
            }
            DataDir::Write(n) => {
                add(&self.wr_subm_bytes, n);
                add(&self.wr_subm_cmds, 1);
            }
            DataDir::Bidi { read, write } => {
                add(&self.rd_subm_bytes, read);
                add(&self.wr_subm_bytes, write);
            }
        }
    }

    /// A command finished, `good` when its status is GOOD (tgt: `target_cmd_io_done`).
    pub fn done(&self, dir: DataDir, good: bool) {
        match dir {
            DataDir::None => {}
            DataDir::Read(n) => {
                add(&self.rd_done_bytes, n);
                add(&self.rd_done_cmds, 1);
            }
            DataDir::Write(n) => {
                add(&self.wr_done_bytes, n);
                add(&self.wr_done_cmds, 1);
            }
            DataDir::Bidi { read, write } => {
                add(&self.rd_done_bytes, read);
                add(&self.wr_done_bytes, write);
            }
        }
        if !good {
            add(&self.errs, 1);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> LuStatSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LuStatSnapshot {
            rd_subm_bytes: get(&self.rd_subm_bytes),
            rd_subm_cmds: get(&self.rd_subm_cmds),
            rd_done_bytes: get(&self.rd_done_bytes),
            rd_done_cmds: get(&self.rd_done_cmds),
            wr_subm_bytes: get(&self.wr_subm_bytes),
            wr_subm_cmds: get(&self.wr_subm_cmds),
            wr_done_bytes: get(&self.wr_done_bytes),
            wr_done_cmds: get(&self.wr_done_cmds),
            errs: get(&self.errs),
        }
    }
}

/// Counters of one (session, LU) pair at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LuStatSnapshot {
    /// Bytes of read commands submitted.
    pub rd_subm_bytes: u64,
    /// Read commands submitted.
    pub rd_subm_cmds: u64,
    /// Bytes of read commands done.
    pub rd_done_bytes: u64,
    /// Read commands done.
    pub rd_done_cmds: u64,
    /// Bytes of write commands submitted.
    pub wr_subm_bytes: u64,
    /// Write commands submitted.
    pub wr_subm_cmds: u64,
    /// Bytes of write commands done.
    pub wr_done_bytes: u64,
    /// Write commands done.
    pub wr_done_cmds: u64,
    /// Commands that ended with a status other than GOOD.
    pub errs: u64,
}

/// What one connection carried, as tgt's `struct iscsi_stats` counts it for
/// `--mode session|connection --op stat`: octets both ways (every PDU from the first
/// login request on), SCSI Command and Data-Out PDUs received, Data-In and SCSI
/// Response PDUs sent. Counted with relaxed atomics by the connection's own thread.
#[derive(Debug, Default)]
pub struct ConnStats {
    rx_octets: AtomicU64,
    tx_octets: AtomicU64,
    dataout_pdus: AtomicU64,
    datain_pdus: AtomicU64,
    cmd_pdus: AtomicU64,
    rsp_pdus: AtomicU64,
}

/// Which counted PDU went by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnPdu {
    /// SCSI Command received.
    Command,
    /// Data-Out received.
    DataOut,
    /// Data-In sent.
    DataIn,
    /// SCSI Response sent.
    Response,
}

/// A copy of a connection's counters, named as tgt's header names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnStatSnapshot {
    /// Octets received.
    pub rxdata_octets: u64,
    /// Octets sent.
    pub txdata_octets: u64,
    /// Data-Out PDUs received.
    pub dataout_pdus: u64,
    /// Data-In PDUs sent.
    pub datain_pdus: u64,
    /// SCSI Command PDUs received.
    pub cmd_pdus: u64,
    /// SCSI Response PDUs sent.
    pub rsp_pdus: u64,
}

impl ConnStats {
    /// `n` octets were taken off the socket.
    pub fn received(&self, n: u64) {
        add(&self.rx_octets, n);
    }

    /// `n` octets were queued for the socket.
    pub fn sent(&self, n: u64) {
        add(&self.tx_octets, n);
    }

    /// One PDU of a counted kind.
    pub fn pdu(&self, kind: ConnPdu) {
        let c = match kind {
            ConnPdu::Command => &self.cmd_pdus,
            ConnPdu::DataOut => &self.dataout_pdus,
            ConnPdu::DataIn => &self.datain_pdus,
            ConnPdu::Response => &self.rsp_pdus,
        };
        add(c, 1);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ConnStatSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnStatSnapshot {
            rxdata_octets: get(&self.rx_octets),
            txdata_octets: get(&self.tx_octets),
            dataout_pdus: get(&self.dataout_pdus),
            datain_pdus: get(&self.datain_pdus),
            cmd_pdus: get(&self.cmd_pdus),
            rsp_pdus: get(&self.rsp_pdus),
        }
    }
}

/// Compared by value, so that session records holding them stay comparable.
impl PartialEq for ConnStats {
    fn eq(&self, other: &Self) -> bool {
        self.snapshot() == other.snapshot()
    }
}

impl Eq for ConnStats {}
