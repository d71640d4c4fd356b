//! State Change Notifications (RFC 4171 §5.6.5.8) and the answers to them.
//!
//! tgt registers an SCN Port with its portals and an SCN Bitmap for each target
//! (SCNReg); the server then opens a TCP connection to that port and sends an SCN
//! whenever an initiator in a Discovery Domain of the target comes, goes or changes
//! (or a domain's membership changes). tgt answers each SCN with an SCNRsp and asks
//! the server again which initiators the target may see (DevAttrQry), which is how
//! its iSNSAccessControl list follows the server. An SCN may also come on the
//! connection we opened; [`Client`](super::Client) handles that one itself.
//!
//! [`ScnConnection`] is the sans-IO side of one accepted SCN connection: bytes in,
//! SCNRsp bytes out and the [`Scn`]s to hand to [`Client::handle_scn`]
//! (super::Client::handle_scn).
//!
//! ```text
//! SCN payload: Destination iSCSI Name | Source attributes (iSCSI Name, Timestamp,
//!              iSCSI SCN Bitmap, ...)
//! ```

use super::codec::{decode_attrs, FunctionId, Message, MessageDecoder, Tag};
use super::message;
use super::response::IsnsError;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// One State Change Notification as far as we use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scn {
    /// The SCN Destination Attribute: the node told (one of our targets).
    pub destination: String,
    /// iSCSI Names of the objects that changed, after the destination.
    pub changed: Vec<String>,
    /// The SCN Bitmap of the change, when given.
    pub bitmap: Option<u32>,
    /// Transaction ID, for the SCNRsp.
    pub transaction_id: u16,
}

impl Scn {
    /// Read an SCN message; `Ok(None)` when it names no destination (tgt ignores
    /// those and answers nothing).
    pub fn parse(msg: &Message) -> Result<Option<Scn>, IsnsError> {
        let attrs = decode_attrs(&msg.payload)?;
        let mut names = attrs
            .iter()
            .filter(|a| a.tag == Tag::ISCSI_NAME)
            .filter_map(|a| a.as_str())
            .map(String::from);
        let Some(destination) = names.next().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(Scn {
            destination,
            changed: names.collect(),
            bitmap: attrs
                .iter()
                .find(|a| a.tag == Tag::ISCSI_SCN_BITMAP)
                .and_then(|a| a.as_u32()),
            transaction_id: msg.transaction_id,
        }))
    }

    /// The SCNRsp to this SCN, encoded.
    pub fn response_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        message::scn_rsp(&self.destination, self.transaction_id).encode(&mut out);
        out.into()
    }
}

/// One connection the iSNS server opened to our SCN port.
#[derive(Debug, Default)]
pub struct ScnConnection {
    decoder: MessageDecoder,
    transmit: VecDeque<Bytes>,
    scns: VecDeque<Scn>,
    ignored: usize,
    close: bool,
}

impl ScnConnection {
    /// A fresh connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes from the server: whole messages are taken off the front of `buf`. Each
    /// SCN is answered (SCNRsp) and queued for [`poll_scn`](Self::poll_scn); other
    /// messages are counted and dropped. Bad bytes close the connection.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), IsnsError> {
        while !self.close {
            let msg = match self.decoder.decode(buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    self.close = true;
                    buf.clear();
                    return Err(e);
                }
            };
            if msg.function != FunctionId::SCN {
                self.ignored += 1;
                continue;
            }
            match Scn::parse(&msg) {
                Ok(Some(scn)) => {
                    self.transmit.push_back(scn.response_bytes());
                    self.scns.push_back(scn);
                }
                Ok(None) => self.ignored += 1,
                Err(e) => {
                    self.close = true;
                    buf.clear();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Bytes to write back, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// The next SCN received.
    #[must_use]
    pub fn poll_scn(&mut self) -> Option<Scn> {
        self.scns.pop_front()
    }

    /// Messages that were not SCNs (or named no destination).
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// Whether the adapter must drop the connection.
    pub fn should_close(&self) -> bool {
        self.close
    }
}
