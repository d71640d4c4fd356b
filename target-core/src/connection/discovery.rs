//! Text requests: SendTargets discovery (RFC 7143 §12.3, Appendix C), with long
//! answers split over several Text Responses (C bit, TTT continuation).

use super::Connection;
use bytes::Bytes;
use iscsi_proto::pdu::{reject_reason, Pdu, TextRequest, TextResponse};
use iscsi_proto::text::{self, Pair, TextAssembler};
use iscsi_proto::Ttt;
use std::net::SocketAddr;

/// Text exchange state of a connection.
#[derive(Debug, Default)]
pub(super) struct TextState {
    assembler: TextAssembler,
    /// Remaining pieces of a long answer, and the TTT the initiator continues it with.
    pending: Vec<Bytes>,
    pending_ttt: Option<Ttt>,
}

fn portal(addr: SocketAddr, tpgt: u16) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{},{}", a.ip(), a.port(), tpgt),
        SocketAddr::V6(a) => format!("[{}]:{},{}", a.ip(), a.port(), tpgt),
    }
}

impl Connection {
    pub(super) fn handle_text(&mut self, t: TextRequest) {
        // Continuing a long answer of ours: the initiator sends an empty request with our TTT.
        if t.ttt != Ttt::RESERVED {
            if self.text.pending_ttt == Some(t.ttt) {
                return self.send_text_chunk(&t);
            }
            return self.reject_pdu(reject_reason::INVALID_PDU_FIELD, &Pdu::TextRequest(t));
        }
        self.text.pending.clear();
        self.text.pending_ttt = None;
        let full = match self.text.assembler.push(&t.data, t.continue_bit) {
            Ok(Some(full)) => full,
            Ok(None) => {
                // Acknowledge a partial request with an empty response (RFC 7143 §11.10.2).
                return self.send_text_response(&t, Bytes::new(), false, Ttt(0x1));
            }
            Err(_) => return self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::TextRequest(t)),
        };
        let pairs = match text::parse(&full) {
            Ok(p) => p,
            Err(_) => return self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::TextRequest(t)),
        };
        let mut out: Vec<Pair> = Vec::new();
        for (k, v) in &pairs {
            if k == "SendTargets" {
                out.extend(self.send_targets(v));
            } else {
                out.push((k.clone(), "NotUnderstood".into()));
            }
        }
        let body = text::encode(&out);
        let max = self
            .session
            .as_ref()
            .map(|s| s.params.max_xmit_data_segment_length)
            .unwrap_or(8192)
            .max(512) as usize;
        self.text.pending = text::chunks(&body, max);
        self.send_text_chunk(&t);
    }

    fn send_text_chunk(&mut self, t: &TextRequest) {
        let chunk = if self.text.pending.is_empty() {
            Bytes::new()
        } else {
            self.text.pending.remove(0)
        };
        let more = !self.text.pending.is_empty();
        let ttt = if more {
            let ttt = self.alloc_ttt();
            self.text.pending_ttt = Some(ttt);
            ttt
        } else {
            self.text.pending_ttt = None;
            Ttt::RESERVED
        };
        self.send_text_response(t, chunk, more, ttt);
    }

    fn send_text_response(&mut self, t: &TextRequest, data: Bytes, more: bool, ttt: Ttt) {
        let final_bit = !more && !t.continue_bit;
        let stat_sn = self.take_stat_sn();
        let pdu = Pdu::TextResponse(TextResponse {
            final_bit,
            continue_bit: more,
            lun: t.lun,
            itt: t.itt,
            ttt: if final_bit { Ttt::RESERVED } else { ttt },
            stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data,
        });
        self.send(pdu);
    }

    /// `SendTargets=All` lists every target this initiator may see; `SendTargets=<name>`
    /// just that one; an empty value, the session's own target (RFC 7143 Appendix C).
    fn send_targets(&self, which: &str) -> Vec<Pair> {
        let ip = self.peer.peer.ip();
        let discovery = self
            .session
            .as_ref()
            .is_some_and(|s| s.session_type == iscsi_proto::keys::SessionType::Discovery);
        let targets: Vec<_> = match which {
            "All" if discovery => self.core.registry.targets(),
            "All" => return vec![("SendTargets".into(), "Reject".into())],
            "" => self
                .session
                .as_ref()
                .and_then(|s| s.target.clone())
                .into_iter()
                .collect(),
            name => self
                .core
                .registry
                .target_by_name(name)
                .into_iter()
                .collect(),
        };
        let mut out = Vec::new();
        let initiator = self.initiator_name();
        // tgt's `target_list_build`: the ACL, then iSNSAccessControl.
        let isns = &self.core.registry.isns;
        for t in targets.into_iter().filter(|t| {
            t.allows_initiator(ip, initiator) && isns.allows_initiator(&t.name, initiator)
        }) {
            out.push(("TargetName".into(), t.name.clone()));
            out.push((
                "TargetAddress".into(),
                portal(self.peer.local, self.config.tpgt),
            ));
        }
        out
    }
}
