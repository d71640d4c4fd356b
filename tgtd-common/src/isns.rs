//! The daemon's iSNS registration: one plain thread with a blocking TCP connection to
//! the server, driven by the sans-IO [`target_core::isns::Client`].
//!
//! The thread polls the registry every [`POLL`]: the iSNS settings (`tgtadm --mode
//! sys --op update --name iSNS...`) say whether and where to register; the registry
//! generation says when targets or portals may have changed, and the client turns
//! the difference into DevAttrReg / DevDereg requests. Turning iSNS off, or pointing
//! it at another server, deregisters the entity from the old server (waiting at most
//! [`SHUTDOWN_GRACE`]) before forgetting it; so does the daemon's exit (dropping the
//! [`IsnsThread`]). An unreachable server is logged and retried with the client's
//! backoff; nothing here blocks I/O or management.
//!
//! SCN: on the first connection to a server the thread listens for State Change
//! Notifications on an ephemeral port of the wildcard address of the connection's
//! family (tgt calls `listen` on an unbound socket, which gets the same), registers
//! that SCN Port with the portals, and serves the connections the server opens there:
//! each SCN is answered and makes the client ask again which initiators may see the
//! target. The lists the client learns are copied into the registry's
//! [`IsnsState`](target_core::isns::IsnsState), where login and SendTargets read them
//! (`iSNSAccessControl On`).
#![allow(clippy::disallowed_methods)] // an adapter owns its clock and thread

use bytes::BytesMut;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use target_core::isns::{AccessMap, Client, ClientConfig, EntityView, IsnsEvent, ScnConnection};
use target_core::Core;

/// How often settings and the registry generation are looked at.
pub const POLL: Duration = Duration::from_millis(100);
/// Longest wait for the deregistration when iSNS is turned off or moved.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The running iSNS thread. Dropping it (the daemon exits: SIGTERM, SIGINT, `system
/// delete`) deregisters the entity from the server, as `iSNS Off` does, waiting at
/// most [`SHUTDOWN_GRACE`] (plus a little) for the server's answer.
pub struct IsnsThread {
    stop: Arc<AtomicBool>,
    done: Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for IsnsThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            // Bounded: a server that does not answer must not hold the exit.
            if self
                .done
                .recv_timeout(SHUTDOWN_GRACE + Duration::from_millis(500))
                .is_ok()
            {
                let _ = h.join();
            }
        }
    }
}

/// Start the iSNS thread for `core`; it runs until the returned handle is dropped.
pub fn spawn(core: Arc<Core>) -> std::io::Result<IsnsThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, done) = channel();
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("isns".into())
        .spawn(move || {
            run(&core, &flag);
            let _ = tx.send(());
        })?;
    Ok(IsnsThread {
        stop,
        done,
        handle: Some(handle),
    })
}

fn run(core: &Core, stop: &AtomicBool) {
    let mut link: Option<Link> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            if let Some(old) = link.take() {
                old.shutdown(core);
            }
            return;
        }
        let s = core.registry.isns.get();
        let want = s.enabled.then(|| (s.server_ip.clone(), s.server_port));
        if link.as_ref().map(|l| &l.server) != want.as_ref() {
            if let Some(old) = link.take() {
                old.shutdown(core);
            }
            link = want.map(Link::new);
        }
        match link.as_mut() {
            Some(l) => l.step(core),
            // Woken early by the exit (`IsnsThread::drop`).
            None => std::thread::park_timeout(POLL),
        }
    }
}

/// One server and our connection to it.
struct Link {
    server: (String, i32),
    client: Client,
    stream: Option<TcpStream>,
    /// Our address on the last connection: the Entity Identifier and the address
    /// wildcard portals are registered as.
    local: Option<IpAddr>,
    seen_generation: Option<u64>,
    rx: BytesMut,
    /// Deregistering before forgetting this server: the wanted view stays empty.
    closing: bool,
    /// Where the server sends SCNs (bound on the first connection) and the
    /// connections it opened there.
    scn: Option<TcpListener>,
    scn_conns: Vec<ScnLink>,
    /// The client's access version last copied into the registry.
    access_seen: u64,
}

/// One connection from the server to our SCN port.
struct ScnLink {
    stream: TcpStream,
    conn: ScnConnection,
    rx: BytesMut,
}

impl Link {
    fn new(server: (String, i32)) -> Link {
        tracing::info!("iSNS: registering with {}:{}", server.0, server.1);
        Link {
            server,
            client: Client::new(ClientConfig::default()),
            stream: None,
            local: None,
            seen_generation: None,
            rx: BytesMut::with_capacity(4096),
            closing: false,
            scn: None,
            scn_conns: Vec::new(),
            access_seen: 0,
        }
    }

    fn scn_port(&self) -> Option<u16> {
        self.scn
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Listen for SCNs on the wildcard address of `local`'s family, port 0.
    fn listen_scn(&mut self, local: IpAddr) {
        if self.scn.is_some() {
            return;
        }
        let any = match local {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        match TcpListener::bind((any, 0)).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(l) => {
                tracing::info!("iSNS: SCN listener on {:?}", l.local_addr().ok());
                self.scn = Some(l);
            }
            // tgt carries on without SCNs when its listener fails; so do we.
            Err(e) => tracing::warn!("iSNS: cannot listen for SCNs: {e}"),
        }
    }

    /// Take new SCN connections and whatever they sent; answer each SCN and hand it
    /// to the client. Never blocks.
    fn serve_scn(&mut self, now: Instant) {
        if let Some(l) = &self.scn {
            loop {
                match l.accept() {
                    Ok((stream, peer)) => {
                        tracing::debug!("iSNS: SCN connection from {peer}");
                        if stream.set_nonblocking(true).is_ok() {
                            let _ = stream.set_nodelay(true);
                            self.scn_conns.push(ScnLink {
                                stream,
                                conn: ScnConnection::new(),
                                rx: BytesMut::new(),
                            });
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!("iSNS: SCN accept: {e}");
                        break;
                    }
                }
            }
        }
        let client = &mut self.client;
        self.scn_conns.retain_mut(|c| {
            let mut buf = [0u8; 4096];
            let mut open = true;
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(n) => c.rx.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            }
            if let Err(e) = c.conn.handle_input(&mut c.rx) {
                tracing::warn!("iSNS: SCN connection: {e}");
            }
            // Answers are a few dozen bytes: a short blocking write is fine.
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.set_write_timeout(Some(WRITE_TIMEOUT));
            while let Some(b) = c.conn.poll_transmit() {
                if c.stream.write_all(&b).is_err() {
                    open = false;
                    break;
                }
            }
            let _ = c.stream.set_nonblocking(true);
            while let Some(scn) = c.conn.poll_scn() {
                tracing::info!("iSNS: SCN for {}", scn.destination);
                client.handle_scn(&scn, now);
            }
            open && !c.conn.should_close()
        });
    }

    /// Copy the client's access lists into the registry when they changed.
    fn publish_access(&mut self, core: &Core) {
        let v = self.client.access_version();
        if v != self.access_seen {
            self.access_seen = v;
            core.registry.isns.set_access(self.client.access().clone());
        }
    }

    fn set_view(&mut self, core: &Core, now: Instant) {
        let view = if self.closing {
            EntityView::default()
        } else {
            // Before the first connection the address is a placeholder: nothing is
            // sent until `connect` sets the real one.
            let local = self.local.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            EntityView::from_registry(&core.registry, local).with_scn_port(self.scn_port())
        };
        self.client.set_view(view, now);
    }

    /// Connect when the client wants to, send, wait up to [`POLL`] for an answer,
    /// then feed the clock.
    fn step(&mut self, core: &Core) {
        let now = Instant::now();
        let generation = core.registry.generation();
        if self.seen_generation != Some(generation) {
            self.seen_generation = Some(generation);
            self.set_view(core, now);
        }
        if self.stream.is_none() && self.client.wants_connection(now) {
            self.connect(core, now);
        }
        self.serve_scn(now);
        self.flush();
        let wait = self
            .client
            .poll_timeout()
            .map_or(POLL, |t| t.saturating_duration_since(now).min(POLL))
            .max(Duration::from_millis(1));
        match &mut self.stream {
            Some(stream) => {
                let _ = stream.set_read_timeout(Some(wait));
                let mut buf = [0u8; 4096];
                match stream.read(&mut buf) {
                    Ok(0) => self.disconnected("server closed the connection"),
                    Ok(n) => {
                        self.rx.extend_from_slice(&buf[..n]);
                        self.client.handle_input(&mut self.rx, Instant::now());
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => self.disconnected(&e.to_string()),
                }
            }
            None => std::thread::sleep(wait),
        }
        let now = Instant::now();
        if self.client.poll_timeout().is_some_and(|t| now >= t) {
            self.client.handle_timeout(now);
        }
        self.flush();
        if self.stream.is_some() && self.client.should_close() {
            self.disconnected("protocol error");
        }
        self.publish_access(core);
        self.log_events();
    }

    fn connect(&mut self, core: &Core, now: Instant) {
        match self.open() {
            Ok(stream) => {
                self.local = stream.local_addr().ok().map(|a| a.ip());
                if let Some(local) = self.local {
                    self.listen_scn(local);
                }
                tracing::info!(
                    "iSNS: connected to {}:{} from {:?}",
                    self.server.0,
                    self.server.1,
                    self.local
                );
                self.stream = Some(stream);
                self.rx.clear();
                // The entity identifier and wildcard portals depend on `local`.
                self.set_view(core, now);
                self.client.handle_connected(now);
            }
            Err(e) => {
                tracing::warn!(
                    "iSNS: cannot reach {}:{}: {e}",
                    self.server.0,
                    self.server.1
                );
                self.client.handle_disconnected(now);
            }
        }
    }

    fn open(&self) -> std::io::Result<TcpStream> {
        let port = u16::try_from(self.server.1)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "invalid port"))?;
        let addrs: Vec<SocketAddr> = (self.server.0.as_str(), port).to_socket_addrs()?.collect();
        let mut last = std::io::Error::new(ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            let Some(stream) = &mut self.stream else {
                return;
            };
            if let Err(e) = stream.write_all(&bytes) {
                self.disconnected(&e.to_string());
                return;
            }
        }
    }

    fn disconnected(&mut self, why: &str) {
        if self.stream.take().is_some() {
            tracing::warn!(
                "iSNS: connection to {}:{} lost: {why}",
                self.server.0,
                self.server.1
            );
        }
        self.rx.clear();
        self.client.handle_disconnected(Instant::now());
        self.log_events();
    }

    fn log_events(&mut self) {
        let server = format!("{}:{}", self.server.0, self.server.1);
        while let Some(ev) = self.client.poll_event() {
            match ev {
                IsnsEvent::Registered {
                    nodes,
                    portals,
                    replace,
                } => tracing::info!(
                    "iSNS {server}: registered {nodes:?} ({portals} portals, replace {replace})"
                ),
                IsnsEvent::Deregistered { nodes } => {
                    tracing::info!("iSNS {server}: deregistered {nodes:?}")
                }
                IsnsEvent::EntityDeregistered { entity_id } => {
                    tracing::info!("iSNS {server}: deregistered entity {entity_id}")
                }
                IsnsEvent::Refused {
                    function,
                    status,
                    retry_in,
                } => tracing::warn!(
                    "iSNS {server}: {function} refused with status {status}; retry in {retry_in:?}"
                ),
                IsnsEvent::NoResponse {
                    function,
                    transaction_id,
                } => tracing::warn!(
                    "iSNS {server}: no answer to {function} (transaction {transaction_id})"
                ),
                IsnsEvent::Protocol(e) => tracing::warn!("iSNS {server}: {e}"),
                IsnsEvent::AccessUpdated { target, initiators } => {
                    tracing::info!("iSNS {server}: {target} may be seen by {initiators:?}")
                }
                IsnsEvent::Declined {
                    function,
                    node,
                    status,
                } => tracing::warn!("iSNS {server}: {function} for {node} refused: {status}"),
                other => tracing::debug!("iSNS {server}: {other:?}"),
            }
        }
    }

    /// Deregister the entity (bounded by [`SHUTDOWN_GRACE`]) and close.
    fn shutdown(mut self, core: &Core) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        self.closing = true;
        self.set_view(core, Instant::now());
        while self.client.registered().is_some() && Instant::now() < deadline {
            self.step(core);
        }
        // tgt frees every list with iSNS (`isns_exit`); with iSNS off nothing is
        // enforced anyway, and another server starts from nothing.
        core.registry.isns.set_access(AccessMap::new());
        tracing::info!(
            "iSNS: stopped registering with {}:{}",
            self.server.0,
            self.server.1
        );
    }
}
