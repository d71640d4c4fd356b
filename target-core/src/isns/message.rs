//! The messages the target sends (RFC 4171 §5.6.5), laid out as tgt 1.0.85 lays them
//! out (captured from Debian's tgtd against a recording server; see the tests).
//!
//! Every request is `Source attribute | Message Key attributes | Delimiter |
//! Operating attributes` (§5.6.5). The Source is one of our Storage Nodes' iSCSI
//! Names; the Message Key is our Entity Identifier.

use super::codec::{encode_attrs, Attr, Flags, FunctionId, Message, Tag};
use super::{ENTITY_PROTOCOL_ISCSI, NODE_TYPE_TARGET};
use crate::registry::Registry;
use bytes::{BufMut, BytesMut};
use std::net::{IpAddr, SocketAddr};

/// One iSCSI Storage Node (a target) as registered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    /// iSCSI Name.
    pub name: String,
    /// iSCSI Alias, when the target has one.
    pub alias: Option<String>,
}

/// What the server should hold for us: one Network Entity with its Portals and
/// Storage Nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityView {
    /// Entity Identifier (tgt: the local address of the connection to the server).
    pub entity_id: String,
    /// Listening portals, with wildcard addresses already replaced.
    pub portals: Vec<SocketAddr>,
    /// Targets, by name.
    pub nodes: Vec<Node>,
    /// The port our SCN listener took (tgt: an ephemeral port), registered on every
    /// portal; `None` registers no SCN port and makes no SCNReg.
    pub scn_port: Option<u16>,
}

impl EntityView {
    /// The registry's targets and portals as seen by a server we reach from
    /// `local_ip`. The Entity Identifier is that address, as tgt does. A portal on a
    /// wildcard address is registered as `local_ip` when the families match and left
    /// out otherwise (tgt's rule: an initiator can reach us where the server did).
    pub fn from_registry(reg: &Registry, local_ip: IpAddr) -> EntityView {
        let mut portals = Vec::new();
        for p in reg.portals.list() {
            let ip = if p.ip().is_unspecified() {
                if p.is_ipv4() != local_ip.is_ipv4() {
                    continue;
                }
                local_ip
            } else {
                p.ip()
            };
            let p = SocketAddr::new(ip, p.port());
            if !portals.contains(&p) {
                portals.push(p);
            }
        }
        // tgt lists portals oldest first in its registration; the registry keeps them
        // newest first.
        portals.reverse();
        let nodes = reg
            .targets()
            .iter()
            .map(|t| Node {
                name: t.name.clone(),
                alias: None,
            })
            .collect();
        EntityView {
            entity_id: local_ip.to_string(),
            portals,
            nodes,
            scn_port: None,
        }
    }

    /// The same view with SCN port `port`.
    pub fn with_scn_port(self, port: Option<u16>) -> EntityView {
        EntityView {
            scn_port: port,
            ..self
        }
    }
}

fn request(function: FunctionId, flags: Flags, transaction_id: u16, attrs: &[Attr]) -> Message {
    let mut payload = BytesMut::new();
    encode_attrs(attrs, &mut payload);
    Message {
        function,
        flags: Flags::CLIENT | flags,
        transaction_id,
        payload: payload.freeze(),
    }
}

/// DevAttrReg (§5.6.5.1) of `nodes` under `view`'s entity. With `replace` (the first
/// registration on a connection, or a portal change) it carries the whole entity:
/// Entity Protocol and every Portal, and the server replaces what it held; without,
/// it adds `nodes` to the registered entity.
///
/// `source` is a node of the message (first registration) or one the server already
/// holds (tgt sources additions from its first target).
pub fn dev_attr_reg(
    source: &str,
    view: &EntityView,
    nodes: &[Node],
    replace: bool,
    xid: u16,
) -> Message {
    let mut attrs = vec![
        Attr::string(Tag::ISCSI_NAME, source),
        Attr::string(Tag::ENTITY_IDENTIFIER, &view.entity_id),
        Attr::empty(Tag::DELIMITER),
        Attr::string(Tag::ENTITY_IDENTIFIER, &view.entity_id),
    ];
    if replace {
        attrs.push(Attr::u32(Tag::ENTITY_PROTOCOL, ENTITY_PROTOCOL_ISCSI));
        for p in &view.portals {
            attrs.push(Attr::ip(Tag::PORTAL_IP_ADDRESS, p.ip()));
            // §6.3.2: bits 16..31 the port, bit 15 clear for TCP.
            attrs.push(Attr::u32(Tag::PORTAL_PORT, u32::from(p.port())));
            // tgt puts its SCN Port once, after the last portal, so only that portal
            // has one; it belongs to each (§6.3: a Portal attribute) and our listener
            // takes connections on every address, so each portal gets it. With one
            // portal the bytes are tgt's.
            if let Some(port) = view.scn_port {
                attrs.push(Attr::u32(Tag::SCN_PORT, u32::from(port)));
            }
        }
    }
    for n in nodes {
        attrs.push(Attr::string(Tag::ISCSI_NAME, &n.name));
        attrs.push(Attr::u32(Tag::ISCSI_NODE_TYPE, NODE_TYPE_TARGET));
        if let Some(alias) = &n.alias {
            attrs.push(Attr::string(Tag::ISCSI_ALIAS, alias));
        }
    }
    let flags = if replace { Flags::REPLACE } else { Flags(0) };
    request(FunctionId::DEV_ATTR_REG, flags, xid, &attrs)
}

/// DevDereg (§5.6.5.4) of the Storage Nodes `names` (not empty), sourced from the
/// first: `Source | Delimiter | iSCSI Name...`.
pub fn dev_dereg_nodes(names: &[String], xid: u16) -> Message {
    let source = names.first().map(String::as_str).unwrap_or_default();
    let mut attrs = vec![
        Attr::string(Tag::ISCSI_NAME, source),
        Attr::empty(Tag::DELIMITER),
    ];
    attrs.extend(names.iter().map(|n| Attr::string(Tag::ISCSI_NAME, n)));
    request(FunctionId::DEV_DEREG, Flags(0), xid, &attrs)
}

/// DevDereg of the whole entity (its Portals and Nodes go with it), sourced from
/// `source`, one of its registered nodes: `Source | Delimiter | Entity Identifier`.
pub fn dev_dereg_entity(source: &str, entity_id: &str, xid: u16) -> Message {
    let attrs = [
        Attr::string(Tag::ISCSI_NAME, source),
        Attr::empty(Tag::DELIMITER),
        Attr::string(Tag::ENTITY_IDENTIFIER, entity_id),
    ];
    request(FunctionId::DEV_DEREG, Flags(0), xid, &attrs)
}

/// DevAttrQry (§5.6.5.2) for our entity's Registration Period. tgt sends it after
/// registering and then periodically: any message refreshes the registration
/// (§6.2.6), and the answer tells how often that must happen.
pub fn dev_attr_qry_period(source: &str, entity_id: &str, xid: u16) -> Message {
    let attrs = [
        Attr::string(Tag::ISCSI_NAME, source),
        Attr::string(Tag::ENTITY_IDENTIFIER, entity_id),
        Attr::empty(Tag::DELIMITER),
        Attr::empty(Tag::REGISTRATION_PERIOD),
    ];
    request(FunctionId::DEV_ATTR_QRY, Flags(0), xid, &attrs)
}

/// ESIRsp (§5.7.5.13) to an Entity Status Inquiry: status 0 followed by the ESI's own
/// attributes (Entity Identifier, Portal IP Address, Portal Port), same transaction.
pub fn esi_rsp(esi: &Message) -> Message {
    let mut payload = BytesMut::with_capacity(4 + esi.payload.len());
    payload.put_u32(0);
    payload.put_slice(&esi.payload);
    Message {
        function: FunctionId::ESI.response(),
        flags: Flags::CLIENT,
        transaction_id: esi.transaction_id,
        payload: payload.freeze(),
    }
}

/// The SCN Bitmap tgt registers its targets with (RFC 4171 §6.4.4, bits numbered from
/// the most significant, 0..31): INITIATOR AND SELF INFORMATION ONLY (24), OBJECT
/// REMOVED (27), OBJECT ADDED (28), OBJECT UPDATED (29). tgt builds it as
/// `1 << 24 | 1 << 27 | ...` and bit-reverses it: the same 0x9c on the wire.
pub const SCN_BITMAP: u32 =
    (1 << (31 - 24)) | (1 << (31 - 27)) | (1 << (31 - 28)) | (1 << (31 - 29));

/// SCNReg (§5.6.5.5) of target `name`: `Source | iSCSI Name (key) | Delimiter | iSCSI
/// SCN Bitmap`, the node registering for itself, as tgt does after each DevAttrReg.
pub fn scn_reg(name: &str, xid: u16) -> Message {
    let attrs = [
        Attr::string(Tag::ISCSI_NAME, name),
        Attr::string(Tag::ISCSI_NAME, name),
        Attr::empty(Tag::DELIMITER),
        Attr::u32(Tag::ISCSI_SCN_BITMAP, SCN_BITMAP),
    ];
    request(FunctionId::SCN_REG, Flags(0), xid, &attrs)
}

/// DevAttrQry (§5.6.5.2) for the initiators that share a Discovery Domain with target
/// `name` (tgt's `isns_attr_query`): the target is the Source, so the server answers
/// only with nodes it may see (§5.6.5.2: the query is scoped by the Source's
/// Discovery Domains); the key asks for initiators (iSCSI Node Type 2), and the
/// operating attributes ask for their iSCSI Name, Node Type and Portal IP Address.
pub fn dev_attr_qry_initiators(name: &str, xid: u16) -> Message {
    let attrs = [
        Attr::string(Tag::ISCSI_NAME, name),
        Attr::u32(Tag::ISCSI_NODE_TYPE, super::NODE_TYPE_INITIATOR),
        Attr::empty(Tag::DELIMITER),
        Attr::empty(Tag::ISCSI_NAME),
        Attr::empty(Tag::ISCSI_NODE_TYPE),
        Attr::empty(Tag::PORTAL_IP_ADDRESS),
    ];
    request(FunctionId::DEV_ATTR_QRY, Flags(0), xid, &attrs)
}

/// SCNRsp (§5.7.5.8) to an SCN for `destination` (the node that received it): status
/// 0, then the SCN Destination Attribute, same transaction.
pub fn scn_rsp(destination: &str, transaction_id: u16) -> Message {
    let mut payload = BytesMut::new();
    payload.put_u32(0);
    Attr::string(Tag::ISCSI_NAME, destination).encode(&mut payload);
    Message {
        function: FunctionId::SCN.response(),
        flags: Flags::CLIENT,
        transaction_id,
        payload: payload.freeze(),
    }
}
