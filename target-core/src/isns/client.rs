//! [`Client`]: keeps the iSNS server's view of our entity equal to the wanted one.
//!
//! The adapter owns one TCP connection to the server and the clock:
//!
//! ```text
//! client.set_view(view, now)               // the registry changed (targets, portals)
//! if client.wants_connection(now) { connect; client.handle_connected(now) }
//! client.handle_input(&mut buf, now)       // bytes read from the server
//! client.handle_timeout(now)               // poll_timeout() passed
//! while let Some(b) = client.poll_transmit() { write b }
//! while let Some(e) = client.poll_event() { log e }
//! if client.should_close() { drop the connection; client.handle_disconnected(now) }
//! sleep until client.poll_timeout() or new bytes
//! ```
//!
//! One request is in flight at a time. Its order of work, each step after the
//! previous one's answer: deregister what the server holds and we no longer have
//! (DevDereg of the nodes, or of the whole entity when none is left or its
//! identifier changed), register the whole entity with the Replace flag when the
//! server's copy is unknown (new connection) or the portals changed, register added
//! targets, register each registered target for SCNs (SCNReg, when the view has an
//! SCN port), refresh the registration with a DevAttrQry for the Registration Period,
//! as tgt does, shortly before it expires (§6.2.6), and ask the server which
//! initiators may see each target (DevAttrQry sourced from the target, tgt's
//! `isns_attr_query`). A refused registration (status other than 0) is reported and
//! retried after a backoff with a full registration; a refused SCNReg or initiator
//! query is reported and not retried until the next registration or refresh (an
//! unanswered target keeps its last list). A missing answer closes the connection.
//!
//! The initiator lists ([`access`](Client::access)) are asked again after each
//! registration of a target, on each SCN naming one of our targets
//! ([`handle_scn`](Client::handle_scn), or an SCN on this connection, answered with
//! an SCNRsp), and at each refresh (tgt asks only at registration and on SCNs; the
//! periodic query keeps the lists right when an SCN is lost). We register no ESI
//! port, so the server keeps us by the registration period; an ESI arriving on our
//! connection is still answered.

use super::access::{initiators_in, AccessMap};
use super::codec::{FunctionId, Message, MessageDecoder, Tag};
use super::message::{self, EntityView, Node};
use super::response::{IsnsError, Response, Status};
use super::scn::Scn;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Timing of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long to wait for an answer before dropping the connection.
    pub response_timeout: Duration,
    /// Refresh interval until the server tells its Registration Period (tgt's
    /// `DEFAULT_ISNS_TIMEOUT`, 30 s).
    pub default_refresh: Duration,
    /// First retry delay after a failure; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            response_timeout: Duration::from_secs(10),
            default_refresh: Duration::from_secs(30),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// What happened, for the adapter to log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IsnsEvent {
    /// The server accepted a DevAttrReg.
    Registered {
        /// The nodes it carried.
        nodes: Vec<String>,
        /// Portals it carried (0 for an addition without Replace).
        portals: usize,
        /// Whether it replaced the whole entity.
        replace: bool,
    },
    /// The server removed these nodes.
    Deregistered {
        /// Their names.
        nodes: Vec<String>,
    },
    /// The server removed the whole entity.
    EntityDeregistered {
        /// Its identifier.
        entity_id: String,
    },
    /// The server told the Registration Period; refreshes now come this often.
    RegistrationPeriod {
        /// The period.
        period: Duration,
        /// Our refresh interval.
        refresh_every: Duration,
    },
    /// The server refused a request; it is retried after `retry_in`.
    Refused {
        /// The request's function.
        function: FunctionId,
        /// The status code.
        status: Status,
        /// Delay before the retry.
        retry_in: Duration,
    },
    /// No answer in time; the connection is to be dropped.
    NoResponse {
        /// The request's function.
        function: FunctionId,
        /// Its transaction ID.
        transaction_id: u16,
    },
    /// The server's bytes could not be used; the connection is to be dropped.
    Protocol(IsnsError),
    /// An Entity Status Inquiry was answered.
    EsiAnswered,
    /// The server accepted the SCN registration of a target.
    ScnRegistered {
        /// The target.
        node: String,
    },
    /// The server answered which initiators may see `target`.
    AccessUpdated {
        /// The target.
        target: String,
        /// The initiators, as the server named them.
        initiators: Vec<String>,
    },
    /// An SCN for one of our targets arrived; its initiators are asked again.
    ScnReceived {
        /// The target told.
        target: String,
    },
    /// The server refused an SCNReg or an initiator query for one target. It is not
    /// retried until the next registration or refresh; the target keeps its list.
    Declined {
        /// The request's function.
        function: FunctionId,
        /// The target.
        node: String,
        /// The status code.
        status: Status,
    },
    /// A message we do not act on (an unsolicited request, a stale response).
    Ignored {
        /// Its function.
        function: FunctionId,
        /// Its transaction ID.
        transaction_id: u16,
    },
}

/// One unit of work: what the request in flight does to the server's view.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Register {
        view: EntityView,
        nodes: Vec<Node>,
        replace: bool,
    },
    DeregNodes(Vec<String>),
    DeregEntity,
    QueryPeriod,
    ScnReg(String),
    QueryInitiators(String),
}

#[derive(Debug)]
struct InFlight {
    xid: u16,
    function: FunctionId,
    op: Op,
    deadline: Instant,
}

/// The sans-IO iSNS client of one daemon. See the [module docs](self).
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    /// What the server should hold.
    desired: EntityView,
    /// What the server holds as far as its answers told us (`None`: nothing).
    server: Option<EntityView>,
    /// Whether `server` was confirmed on the current connection.
    synced: bool,
    connected: bool,
    close: bool,
    decoder: MessageDecoder,
    next_xid: u16,
    in_flight: Option<InFlight>,
    refresh_every: Duration,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    transmit: VecDeque<Bytes>,
    events: VecDeque<IsnsEvent>,
    /// Registered targets still to register for SCNs.
    scn_pending: BTreeSet<String>,
    /// Registered targets whose initiators are to be asked.
    query_pending: BTreeSet<String>,
    /// What the server answered about who may see each target.
    access: AccessMap,
    /// Moves whenever `access` changes.
    access_version: u64,
}

impl Client {
    /// A client with nothing to register and no connection.
    pub fn new(config: ClientConfig) -> Self {
        Client {
            config,
            desired: EntityView::default(),
            server: None,
            synced: false,
            connected: false,
            close: false,
            decoder: MessageDecoder::default(),
            next_xid: 1,
            in_flight: None,
            refresh_every: config.default_refresh,
            refresh_at: None,
            retry_at: None,
            backoff: config.retry_min,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            scn_pending: BTreeSet::new(),
            query_pending: BTreeSet::new(),
            access: AccessMap::new(),
            access_version: 0,
        }
    }

    // ---- getters -------------------------------------------------------------

    /// The wanted view.
    pub fn view(&self) -> &EntityView {
        &self.desired
    }

    /// What the server holds as far as we know (`None`: nothing registered).
    pub fn registered(&self) -> Option<&EntityView> {
        self.server.as_ref()
    }

    /// Whether the adapter should connect now: there is work and no retry delay.
    pub fn wants_connection(&self, now: Instant) -> bool {
        let waiting = matches!(self.retry_at, Some(t) if now < t);
        !self.connected && !waiting && self.next_op(now).is_some()
    }

    /// Whether the adapter must drop the connection (protocol error, no answer);
    /// it then calls [`handle_disconnected`](Self::handle_disconnected).
    pub fn should_close(&self) -> bool {
        self.close
    }

    /// Whether nothing is in flight or waiting to be sent.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.transmit.is_empty()
    }

    /// Per registered target, the initiators the server lets see it (see
    /// [`access`](super::access)). Kept across reconnections, as tgt keeps its lists;
    /// a deregistered target loses its list.
    pub fn access(&self) -> &AccessMap {
        &self.access
    }

    /// A counter that moves whenever [`access`](Self::access) changes, so the adapter
    /// copies the map only then.
    pub fn access_version(&self) -> u64 {
        self.access_version
    }

    // ---- inputs --------------------------------------------------------------

    /// Set what the server should hold (targets, portals, entity identifier).
    pub fn set_view(&mut self, view: EntityView, now: Instant) {
        self.desired = view;
        self.drive(now);
    }

    /// A connection to the server is up. What it holds is unknown until it answers
    /// a full registration.
    pub fn handle_connected(&mut self, now: Instant) {
        self.reset_connection();
        self.connected = true;
        self.drive(now);
    }

    /// The connection failed, closed or was dropped. Reconnection waits a backoff.
    pub fn handle_disconnected(&mut self, now: Instant) {
        self.reset_connection();
        self.retry_later(now);
    }

    /// Bytes from the server: whole PDUs are taken off the front of `buf`.
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) {
        while !self.close {
            match self.decoder.decode(buf) {
                Ok(Some(msg)) => self.handle_message(msg, now),
                Ok(None) => break,
                Err(e) => {
                    self.events.push_back(IsnsEvent::Protocol(e));
                    self.close = true;
                    buf.clear();
                }
            }
        }
        self.drive(now);
    }

    /// An SCN arrived (on a connection the server opened to our SCN port; one on our
    /// own connection is handled by [`handle_input`](Self::handle_input)). When it
    /// names one of our registered targets, that target's initiators are asked again.
    pub fn handle_scn(&mut self, scn: &Scn, now: Instant) {
        let ours = self.server.as_ref().and_then(|s| {
            s.nodes
                .iter()
                .find(|n| n.name.eq_ignore_ascii_case(&scn.destination))
                .map(|n| n.name.clone())
        });
        match ours {
            Some(target) => {
                self.query_pending.insert(target.clone());
                self.events.push_back(IsnsEvent::ScnReceived { target });
            }
            None => self.events.push_back(IsnsEvent::Ignored {
                function: FunctionId::SCN,
                transaction_id: scn.transaction_id,
            }),
        }
        self.drive(now);
    }

    /// A deadline from [`poll_timeout`](Self::poll_timeout) passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(f) = &self.in_flight {
            if now >= f.deadline {
                self.events.push_back(IsnsEvent::NoResponse {
                    function: f.function,
                    transaction_id: f.xid,
                });
                self.in_flight = None;
                self.close = true;
            }
        }
        self.drive(now);
    }

    // ---- outputs -------------------------------------------------------------

    /// Bytes to write to the server, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// The next event to log.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<IsnsEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) (or try connecting):
    /// the answer's deadline while a request is in flight, else the end of a retry
    /// delay, else the next refresh.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(f) = &self.in_flight {
            return Some(f.deadline);
        }
        if self.retry_at.is_some() {
            return self.retry_at;
        }
        self.refresh_at.filter(|_| self.server.is_some())
    }

    // ---- internals -----------------------------------------------------------

    fn reset_connection(&mut self) {
        self.connected = false;
        self.close = false;
        self.synced = false;
        self.in_flight = None;
        self.transmit.clear();
        self.decoder = MessageDecoder::default();
    }

    fn retry_later(&mut self, now: Instant) -> Duration {
        let delay = self.backoff;
        self.retry_at = Some(now + delay);
        self.backoff = (self.backoff * 2).min(self.config.retry_max);
        delay
    }

    fn alloc_xid(&mut self) -> u16 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.checked_add(1).unwrap_or(1);
        xid
    }

    /// The next request to make, from the difference between the server's view and
    /// the wanted one.
    fn next_op(&self, now: Instant) -> Option<Op> {
        let Some(server) = &self.server else {
            return (!self.desired.nodes.is_empty()).then(|| Op::Register {
                view: self.desired.clone(),
                nodes: self.desired.nodes.clone(),
                replace: true,
            });
        };
        let removed: Vec<String> = server
            .nodes
            .iter()
            .filter(|n| !self.desired.nodes.iter().any(|d| d.name == n.name))
            .map(|n| n.name.clone())
            .collect();
        if self.desired.nodes.is_empty()
            || server.entity_id != self.desired.entity_id
            || removed.len() == server.nodes.len()
        {
            return Some(Op::DeregEntity);
        }
        if !removed.is_empty() {
            return Some(Op::DeregNodes(removed));
        }
        if !self.synced
            || server.portals != self.desired.portals
            || server.scn_port != self.desired.scn_port
        {
            return Some(Op::Register {
                view: self.desired.clone(),
                nodes: self.desired.nodes.clone(),
                replace: true,
            });
        }
        let added: Vec<Node> = self
            .desired
            .nodes
            .iter()
            .filter(|d| !server.nodes.contains(d))
            .cloned()
            .collect();
        if !added.is_empty() {
            return Some(Op::Register {
                view: self.desired.clone(),
                nodes: added,
                replace: false,
            });
        }
        // tgt's order after a registration: SCNReg, Registration Period, initiators.
        let held = |n: &String| server.nodes.iter().any(|s| &s.name == n);
        if let Some(n) = self.scn_pending.iter().find(|n| held(n)) {
            return Some(Op::ScnReg(n.clone()));
        }
        if self.refresh_at.is_some_and(|t| now >= t) {
            return Some(Op::QueryPeriod);
        }
        self.query_pending
            .iter()
            .find(|n| held(n))
            .map(|n| Op::QueryInitiators(n.clone()))
    }

    /// Send the next request when connected and nothing is in flight.
    fn drive(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
        }
        if !self.connected || self.close || self.in_flight.is_some() || self.retry_at.is_some() {
            return;
        }
        let Some(op) = self.next_op(now) else {
            return;
        };
        let xid = self.alloc_xid();
        let server = self.server.as_ref();
        // The Source of every request but a first registration is a node the server
        // holds (next_op only picks those ops with `server` set and non-empty).
        let held = server
            .and_then(|s| s.nodes.first())
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let msg = match &op {
            Op::Register {
                view,
                nodes,
                replace,
            } => {
                let source = if *replace || held.is_empty() {
                    nodes.first().map(|n| n.name.clone()).unwrap_or_default()
                } else {
                    held
                };
                message::dev_attr_reg(&source, view, nodes, *replace, xid)
            }
            Op::DeregNodes(names) => message::dev_dereg_nodes(names, xid),
            Op::DeregEntity => {
                let eid = server.map(|s| s.entity_id.as_str()).unwrap_or_default();
                message::dev_dereg_entity(&held, eid, xid)
            }
            Op::QueryPeriod => {
                let eid = server.map(|s| s.entity_id.as_str()).unwrap_or_default();
                message::dev_attr_qry_period(&held, eid, xid)
            }
            Op::ScnReg(name) => message::scn_reg(name, xid),
            Op::QueryInitiators(name) => message::dev_attr_qry_initiators(name, xid),
        };
        // Taken off the queue when sent: an SCN arriving while the query is in flight
        // asks again; a lost connection registers again, which queues every target.
        match &op {
            Op::ScnReg(name) => {
                self.scn_pending.remove(name);
            }
            Op::QueryInitiators(name) => {
                self.query_pending.remove(name);
            }
            _ => {}
        }
        let mut out = Vec::new();
        msg.encode(&mut out);
        self.transmit.push_back(out.into());
        self.in_flight = Some(InFlight {
            xid,
            function: msg.function,
            op,
            deadline: now + self.config.response_timeout,
        });
    }

    fn handle_message(&mut self, msg: Message, now: Instant) {
        if !msg.function.is_response() {
            if msg.function == FunctionId::ESI {
                let mut out = Vec::new();
                message::esi_rsp(&msg).encode(&mut out);
                self.transmit.push_back(out.into());
                self.events.push_back(IsnsEvent::EsiAnswered);
            } else if msg.function == FunctionId::SCN {
                // tgt re-queries without answering an SCN on this connection; RFC 4171
                // wants an SCNRsp for every SCN, so it gets one here too.
                match Scn::parse(&msg) {
                    Ok(Some(scn)) => {
                        self.transmit.push_back(scn.response_bytes());
                        self.handle_scn(&scn, now);
                    }
                    Ok(None) => self.ignored(&msg),
                    Err(e) => {
                        self.events.push_back(IsnsEvent::Protocol(e));
                        self.close = true;
                    }
                }
            } else {
                self.ignored(&msg);
            }
            return;
        }
        let ours = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.xid == msg.transaction_id && f.function.response() == msg.function);
        if !ours {
            self.ignored(&msg);
            return;
        }
        let Some(f) = self.in_flight.take() else {
            return;
        };
        match Response::parse(&msg) {
            Ok(rsp) => self.complete(f, &rsp, now),
            Err(e) => {
                self.events.push_back(IsnsEvent::Protocol(e));
                self.close = true;
            }
        }
    }

    fn ignored(&mut self, msg: &Message) {
        self.events.push_back(IsnsEvent::Ignored {
            function: msg.function,
            transaction_id: msg.transaction_id,
        });
    }

    fn complete(&mut self, f: InFlight, rsp: &Response, now: Instant) {
        // A refused SCNReg or initiator query concerns one target; the server still
        // holds our registration unless it says it does not know the Source.
        if let Op::ScnReg(node) | Op::QueryInitiators(node) = &f.op {
            if !rsp.status.is_success() && rsp.status != Status::SOURCE_UNKNOWN {
                self.events.push_back(IsnsEvent::Declined {
                    function: f.function,
                    node: node.clone(),
                    status: rsp.status,
                });
                return;
            }
        }
        let dereg = matches!(f.op, Op::DeregNodes(_) | Op::DeregEntity);
        // Deregistering what the server no longer has is done.
        let ok = rsp.status.is_success() || (dereg && rsp.status == Status::NO_SUCH_ENTRY);
        if !ok {
            // What the server holds is now uncertain: start over with a full
            // registration after the delay.
            self.synced = false;
            let retry_in = self.retry_later(now);
            self.events.push_back(IsnsEvent::Refused {
                function: f.function,
                status: rsp.status,
                retry_in,
            });
            return;
        }
        self.backoff = self.config.retry_min;
        match f.op {
            Op::Register {
                view,
                nodes,
                replace,
            } => {
                let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
                let portals = if replace { view.portals.len() } else { 0 };
                // tgt registers each new target for SCNs (when it listens) and asks
                // for its initiators right after registering it.
                if replace {
                    self.scn_pending.clear();
                    self.query_pending.clear();
                    let before = self.access.len();
                    self.access
                        .retain(|t| names.iter().any(|n| n.eq_ignore_ascii_case(t)));
                    if self.access.len() != before {
                        self.access_version += 1;
                    }
                }
                if view.scn_port.is_some() {
                    self.scn_pending.extend(names.iter().cloned());
                }
                self.query_pending.extend(names.iter().cloned());
                if replace {
                    self.server = Some(EntityView { nodes, ..view });
                    self.synced = true;
                    // tgt asks for the Registration Period right after registering.
                    self.refresh_at = Some(now);
                } else if let Some(s) = &mut self.server {
                    for n in nodes {
                        s.nodes.retain(|m| m.name != n.name);
                        s.nodes.push(n);
                    }
                }
                self.events.push_back(IsnsEvent::Registered {
                    nodes: names,
                    portals,
                    replace,
                });
            }
            Op::DeregNodes(names) => {
                if let Some(s) = &mut self.server {
                    s.nodes.retain(|n| !names.contains(&n.name));
                }
                for n in &names {
                    self.scn_pending.remove(n);
                    self.query_pending.remove(n);
                    if self.access.remove(n) {
                        self.access_version += 1;
                    }
                }
                self.events
                    .push_back(IsnsEvent::Deregistered { nodes: names });
            }
            Op::DeregEntity => {
                self.scn_pending.clear();
                self.query_pending.clear();
                if !self.access.is_empty() {
                    self.access.clear();
                    self.access_version += 1;
                }
                if let Some(s) = self.server.take() {
                    self.events.push_back(IsnsEvent::EntityDeregistered {
                        entity_id: s.entity_id,
                    });
                }
                self.refresh_at = None;
            }
            Op::QueryPeriod => {
                let period = rsp
                    .attr(Tag::REGISTRATION_PERIOD)
                    .and_then(|a| a.as_u32())
                    .filter(|p| *p > 0);
                if let Some(p) = period {
                    self.refresh_every = refresh_interval(p);
                    self.events.push_back(IsnsEvent::RegistrationPeriod {
                        period: Duration::from_secs(u64::from(p)),
                        refresh_every: self.refresh_every,
                    });
                }
                self.refresh_at = Some(now + self.refresh_every);
                // Ask again who may see each target (see the module docs).
                if let Some(s) = &self.server {
                    self.query_pending
                        .extend(s.nodes.iter().map(|n| n.name.clone()));
                }
            }
            Op::ScnReg(node) => self.events.push_back(IsnsEvent::ScnRegistered { node }),
            Op::QueryInitiators(target) => {
                let initiators = initiators_in(rsp);
                if self.access.set(&target, &initiators) {
                    self.access_version += 1;
                }
                self.events
                    .push_back(IsnsEvent::AccessUpdated { target, initiators });
            }
        }
    }
}

/// How often to refresh a registration that expires after `period` seconds: tgt
/// refreshes 10 s early; a short period is refreshed at half its length.
fn refresh_interval(period: u32) -> Duration {
    let secs = if period > 20 {
        period - 10
    } else {
        (period / 2).max(1)
    };
    Duration::from_secs(u64::from(secs))
}
