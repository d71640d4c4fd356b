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
    /// A request the initiator is still sending in pieces (its C bit): the ITT and the
    /// TTT our empty answers gave it to continue with.
    partial: Option<(iscsi_proto::Itt, Ttt)>,
}

fn portal(addr: SocketAddr, tpgt: u16) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{},{}", a.ip(), a.port(), tpgt),
        SocketAddr::V6(a) => format!("[{}]:{},{}", a.ip(), a.port(), tpgt),
    }
}

/// What a Text Request's key asks for.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// `SendTargets=All`.
    All,
    /// `SendTargets=` (empty): the session's own target.
    Own,
    /// `SendTargets=<iSCSI name>`.
    Named(String),
}

/// Whether `v` has the form of an iSCSI name (RFC 7143 §4.2.7.1: `iqn.`, `eui.`,
/// `naa.` types). A SendTargets value that is neither `All`, empty nor a name is
/// malformed (`Alle`, `A`).
fn is_iscsi_name(v: &str) -> bool {
    ["iqn.", "eui.", "naa."]
        .iter()
        .any(|p| v.len() > p.len() && v.starts_with(p))
}

/// Keys a Text Request may carry that we answer `NotUnderstood` (the RFC's operational
/// keys, which are not renegotiated in full feature phase here, and vendor extension
/// keys, RFC 7143 §13.5.2, which the RFC says to answer that way). Any other key (a
/// misspelled `SendTargetsPlease`, a wrong-case `sENDtARGETS`) makes the request
/// malformed: it is rejected as LIO does, so the initiator sees an error rather than an
/// empty, successful answer.
fn answerable_unknown_key(k: &str) -> bool {
    k.starts_with("X-") || k.starts_with("X#") || iscsi_proto::keys::range(k).is_some() || {
        matches!(
            k,
            "HeaderDigest"
                | "DataDigest"
                | "InitialR2T"
                | "ImmediateData"
                | "DataPDUInOrder"
                | "DataSequenceInOrder"
                | "IFMarker"
                | "OFMarker"
                | "OFMarkInt"
                | "IFMarkInt"
                | "TargetAlias"
                | "InitiatorAlias"
                | "TaskReporting"
        )
    }
}

impl Connection {
    pub(super) fn handle_text(&mut self, t: TextRequest) {
        // Continuing a long answer of ours: the initiator sends an empty request with our TTT.
        if t.ttt != Ttt::RESERVED {
            if self.text.pending_ttt == Some(t.ttt) {
                return self.send_text_chunk(&t);
            }
            // The next piece of a request sent in pieces, with the TTT we gave it.
            if self.text.partial != Some((t.itt, t.ttt)) {
                self.text.partial = None;
                self.text.assembler = TextAssembler::default();
                return self.reject_pdu(reject_reason::INVALID_PDU_FIELD, &Pdu::TextRequest(t));
            }
        } else if self.text.partial.is_some_and(|(itt, _)| itt != t.itt) {
            // A new request (reserved TTT, another ITT) drops a half-sent one
            // (RFC 7143 §11.10.4); one continued with the reserved TTT is accepted.
            self.text.assembler = TextAssembler::default();
        }
        self.text.partial = None;
        self.text.pending.clear();
        self.text.pending_ttt = None;
        let full = match self.text.assembler.push(&t.data, t.continue_bit) {
            Ok(Some(full)) => full,
            Ok(None) => {
                // Acknowledge a partial request with an empty response whose TTT the
                // initiator continues with (RFC 7143 §11.10.2, §11.11.4).
                let ttt = self.alloc_ttt();
                self.text.partial = Some((t.itt, ttt));
                return self.send_text_response(&t, Bytes::new(), false, ttt);
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
                let ask = match v.as_str() {
                    "All" => Ask::All,
                    "" => Ask::Own,
                    name if is_iscsi_name(name) => Ask::Named(name.to_string()),
                    // `SendTargets=Alle`, `SendTargets=A`: no such value.
                    _ => {
                        return self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::TextRequest(t))
                    }
                };
                out.extend(self.send_targets(ask));
            } else if answerable_unknown_key(k) {
                out.push((k.clone(), "NotUnderstood".into()));
            } else {
                return self.reject_pdu(reject_reason::PROTOCOL_ERROR, &Pdu::TextRequest(t));
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

    /// `SendTargets=All` lists every target this initiator may see in a discovery
    /// session and, in a normal session, the session's own target (RFC 7143 Appendix
    /// C); `SendTargets=<name>` just that one; an empty value, the session's own target.
    fn send_targets(&self, ask: Ask) -> Vec<Pair> {
        let ip = self.peer.peer.ip();
        let discovery = self
            .session
            .as_ref()
            .is_some_and(|s| s.session_type == iscsi_proto::keys::SessionType::Discovery);
        let own = || {
            self.session
                .as_ref()
                .and_then(|s| s.target.clone())
                .into_iter()
                .collect::<Vec<_>>()
        };
        let targets: Vec<_> = match ask {
            Ask::All if discovery => self.core.registry.targets(),
            Ask::All | Ask::Own => own(),
            Ask::Named(name) => self
                .core
                .registry
                .target_by_name(&name)
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
