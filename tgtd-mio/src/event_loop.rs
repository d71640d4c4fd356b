//! The mio event loops: accept, read, feed, drain, write, sleep until the next
//! readiness, deadline or completion.

use crate::conn::{Conn, ReadOutcome};
use backends::WorkerPool;
use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use target_core::connection::{ConnConfig, Connection, IoCompletion, PeerInfo, Wake};
use target_core::Core;
use tgtd_common::busy_poll::Window;
use tgtd_common::daemonize::Readiness;
use tgtd_common::{banner, Daemon, PortalChange, PortalHub};

const WAKER: Token = Token(0);
const FIRST_LISTENER: usize = 1;
const FIRST_CONN: usize = 1 << 20;
/// The loop's io_uring eventfd (`aio` completions), below the connections.
const RING: Token = Token(FIRST_CONN - 1);

/// What other threads hand a loop: new sockets and finished I/O.
struct Inbox {
    conns: Mutex<Vec<(TcpStream, SocketAddr)>>,
    completions: Mutex<Vec<(Token, IoCompletion)>>,
    /// Connections another connection of their session (maybe on another loop)
    /// asked to be fed an empty input (MC/S: requests released to them, a close).
    kicks: Mutex<Vec<Token>>,
    /// A worker has woken the loop and the loop has not taken its completions yet:
    /// later completions only queue (one eventfd write per batch, not per command).
    completion_wake: AtomicBool,
    /// The loop is in (or about to enter) a poll that may sleep. While it is not
    /// (busy, or busy-polling), it takes the queued completions on its next turn by
    /// itself and a worker saves the eventfd write.
    sleeping: AtomicBool,
    waker: Waker,
}

/// How a connection on a loop is woken from another thread (`Connection::set_waker`).
struct Kick {
    inbox: Arc<Inbox>,
    token: Token,
}

impl Wake for Kick {
    fn wake(&self) {
        self.inbox
            .kicks
            .lock()
            .expect("inbox lock")
            .push(self.token);
        let _ = self.inbox.waker.wake();
    }
}

impl Inbox {
    /// A worker's completion: queue it, and wake the loop unless a wake is pending.
    fn complete(&self, token: Token, c: IoCompletion, wake: bool) {
        self.completions
            .lock()
            .expect("inbox lock")
            .push((token, c));
        // SeqCst pairs with `may_sleep`: either the loop sees this completion before
        // it sleeps, or this sees it sleeping and wakes it.
        if wake
            && self.sleeping.load(Ordering::SeqCst)
            && !self.completion_wake.swap(true, Ordering::SeqCst)
        {
            let _ = self.waker.wake();
        }
    }

    /// The loop is about to poll with `timeout`: whether it may sleep in it. A poll
    /// that may sleep is announced (`sleeping`) before the completions are looked
    /// at, so one queued after the look finds the flag and wakes the loop.
    fn may_sleep(&self, timeout: Option<Duration>) -> bool {
        if timeout == Some(Duration::ZERO) {
            return false;
        }
        self.sleeping.store(true, Ordering::SeqCst);
        if self.completions.lock().expect("inbox lock").is_empty() {
            return true;
        }
        self.sleeping.store(false, Ordering::SeqCst);
        false
    }

    /// The loop's side: swap the queued completions into `into` (empty; its capacity
    /// is reused by the next batch). Clearing the flag first means a completion queued
    /// after the swap finds it clear and wakes the loop again.
    fn take_completions(&self, into: &mut Vec<(Token, IoCompletion)>) {
        self.completion_wake.store(false, Ordering::SeqCst);
        std::mem::swap(&mut *self.completions.lock().expect("inbox lock"), into);
    }
}

/// Run the daemon until `system delete`, SIGTERM or SIGINT (then drain: initiators are
/// asked to log out, for up to the shutdown grace), or a fatal error.
pub(crate) fn run(d: Daemon, readiness: &mut Readiness) -> Result<(), String> {
    // `stop`: end the loops now (a loop failed). `draining`: shut down gracefully.
    let stop = Arc::new(AtomicBool::new(false));
    let draining = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    let mut inboxes = Vec::new();
    let mut polls = Vec::new();
    for _ in 0..d.threads {
        let poll = Poll::new().map_err(|e| e.to_string())?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| e.to_string())?;
        let inbox = Arc::new(Inbox {
            conns: Mutex::new(Vec::new()),
            completions: Mutex::new(Vec::new()),
            kicks: Mutex::new(Vec::new()),
            completion_wake: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            waker,
        });
        inboxes.push(inbox.clone());
        polls.push((poll, inbox));
    }
    // Shutdown triggers: `system delete` (management thread) and SIGTERM/SIGINT
    // (the signal thread); both start the drain and wake every loop.
    let begin_drain = {
        let inboxes = inboxes.clone();
        let draining = draining.clone();
        move |why: &str| {
            tracing::info!("{why}: asking initiators to log out");
            draining.store(true, Ordering::SeqCst);
            for i in &inboxes {
                let _ = i.waker.wake();
            }
        }
    };
    {
        let begin = begin_drain.clone();
        d.mgmt.on_shutdown(move || begin("system delete"));
    }
    crate::signals::spawn_waiter(begin_drain).map_err(|e| e.to_string())?;
    // Admin hooks: portal changes go to loop 0 (it owns the listeners, including
    // the start-up ones waiting in the hub); any other change wakes every loop so
    // it re-checks its connections (`Loop::admin_changes`).
    {
        let first = inboxes[0].clone();
        d.hub.on_change(move || {
            let _ = first.waker.wake();
        });
        let all = inboxes.clone();
        d.mgmt.on_change(move || {
            for i in &all {
                let _ = i.waker.wake();
            }
        });
    }
    eprintln!("{}", banner(&d, "tgtd-mio", &d.portals));
    readiness.ready();
    let (done_tx, done_rx): (Sender<()>, Receiver<()>) = channel();
    for (i, (poll, inbox)) in polls.into_iter().enumerate() {
        let mut lp = Loop {
            poll,
            inbox,
            peers: inboxes.clone(),
            hub: (i == 0).then(|| d.hub.clone()),
            listeners: HashMap::new(),
            next_listener: 0,
            generation: d.core.registry.generation(),
            conns: HashMap::new(),
            spare_completions: Vec::new(),
            touched: Vec::new(),
            next_token: FIRST_CONN,
            next_peer: 0,
            core: d.core.clone(),
            pool: d.pool.clone(),
            config: d.conn_config.clone(),
            stop: stop.clone(),
            draining: draining.clone(),
            grace: d.shutdown_grace,
            drain_deadline: None,
            tx_stall: d.tx_stall,
            spin: Window::new(d.busy_poll),
        };
        let done = done_tx.clone();
        let h = std::thread::Builder::new()
            .name(format!("tgtd-loop-{i}"))
            .spawn(move || {
                if let Err(e) = lp.run() {
                    tracing::error!("event loop failed: {e}");
                }
                let _ = done.send(());
            })
            .map_err(|e| e.to_string())?;
        loops.push(h);
    }
    drop(done_tx);
    // A loop ending outside a drain failed: stop them all. While draining, each
    // ends by itself within the grace period.
    let _ = done_rx.recv();
    if !draining.load(Ordering::SeqCst) {
        stop.store(true, Ordering::SeqCst);
        for i in &inboxes {
            let _ = i.waker.wake();
        }
    }
    for h in loops {
        let _ = h.join();
    }
    // Dropping `d` (the management server) removes the control socket.
    Ok(())
}

struct Loop {
    poll: Poll,
    inbox: Arc<Inbox>,
    peers: Vec<Arc<Inbox>>,
    /// Loop 0 only: where listeners to start or stop come from.
    hub: Option<Arc<PortalHub>>,
    listeners: HashMap<usize, TcpListener>,
    next_listener: usize,
    /// `registry.generation()` last acted on.
    generation: u64,
    conns: HashMap<Token, Conn>,
    /// Buffers kept between turns: completions taken from the inbox, connections
    /// they touched.
    spare_completions: Vec<(Token, IoCompletion)>,
    touched: Vec<Token>,
    next_token: usize,
    next_peer: usize,
    core: Arc<Core>,
    pool: Arc<WorkerPool>,
    config: ConnConfig,
    stop: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    /// How long a drain waits for logouts.
    grace: Duration,
    /// Set when this loop started draining: it ends when its connections are gone
    /// or at this instant.
    drain_deadline: Option<Instant>,
    /// Drop a connection whose write queue has not moved for this long.
    tx_stall: Option<Duration>,
    /// `--busy-poll`: open for a while after the loop last had something to do (an
    /// event or a completion); the loop polls without sleeping while it is.
    spin: Window,
}

impl Loop {
    fn run(&mut self) -> std::io::Result<()> {
        // Kept open (our duplicate of the ring's eventfd) while the loop runs.
        let ring_fd = tgtd_common::ring::init_thread();
        if let Some(fd) = &ring_fd {
            use std::os::fd::AsRawFd;
            self.poll.registry().register(
                &mut SourceFd(&fd.as_raw_fd()),
                RING,
                Interest::READABLE,
            )?;
        }
        let result = self.turns();
        tgtd_common::ring::close_thread();
        result
    }

    fn turns(&mut self) -> std::io::Result<()> {
        self.admin_changes(Instant::now());
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::SeqCst) {
            // Everything this turn queued on the ring goes to the kernel at once.
            tgtd_common::ring::submit();
            let timeout = self
                .next_deadline()
                .into_iter()
                .chain(self.drain_deadline)
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            let timeout = if self.spin.is_open(Instant::now()) {
                // Now and then another runnable thread on this CPU (a store worker)
                // goes first.
                if self.spin.turn_yields() {
                    std::thread::yield_now();
                }
                Some(Duration::ZERO)
            } else {
                timeout
            };
            // Completions queued while the loop was awake are taken below without
            // a wake-up; if some wait already, it does not sleep.
            let timeout = if self.inbox.may_sleep(timeout) {
                timeout
            } else {
                Some(Duration::ZERO)
            };
            let polled = self.poll.poll(&mut events, timeout);
            self.inbox.sleeping.store(false, Ordering::SeqCst);
            if let Err(e) = polled {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            if !events.is_empty() {
                self.spin.touch(now);
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    RING => {
                        // Completions land in the inbox, taken below this turn.
                        tgtd_common::ring::reap();
                    }
                    t if t.0 >= FIRST_LISTENER && t.0 < FIRST_CONN => {
                        self.accept(t.0 - FIRST_LISTENER)
                    }
                    t => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            if ev.is_read_closed() || ev.is_error() {
                                if let Some(c) = self.conns.get_mut(&t) {
                                    c.peer_closed = true;
                                }
                            }
                            self.readable(t, now);
                        }
                        if ev.is_writable() {
                            self.service(t);
                        }
                    }
                }
            }
            self.take_inbox(now);
            self.admin_changes(now);
            self.expire(now);
            if self.drain(now) {
                break;
            }
        }
        Ok(())
    }

    /// Shutdown: on the first call after `draining` is set, stop listening and ask
    /// every connection's initiator to log out (Async Message; one still logging in
    /// is dropped). Returns true when the loop should end: its connections are gone
    /// or the grace period is over.
    fn drain(&mut self, now: Instant) -> bool {
        if self.drain_deadline.is_none() {
            if !self.draining.load(Ordering::SeqCst) {
                return false;
            }
            self.drain_deadline = Some(now + self.grace);
            for (_, mut l) in self.listeners.drain() {
                let _ = self.poll.registry().deregister(&mut l);
            }
            let tokens: Vec<Token> = self.conns.keys().copied().collect();
            for t in tokens {
                if let Some(c) = self.conns.get_mut(&t) {
                    c.conn.request_logout(now);
                }
                self.service(t);
            }
        }
        self.conns.is_empty() || self.drain_deadline.is_some_and(|d| now >= d)
    }

    /// Admin hook: start/stop listeners queued by `tgtadm --mode portal|lld` (loop
    /// 0), and when the registry generation moved, feed every connection an empty
    /// input so it re-checks its target and session (forced logout, deleted target).
    fn admin_changes(&mut self, now: Instant) {
        let changes = self.hub.as_ref().map(|h| h.take()).unwrap_or_default();
        for change in changes {
            match change {
                // Shutting down: a listener added now would never be served.
                PortalChange::Add(_) if self.drain_deadline.is_some() => {}
                PortalChange::Add(l) => {
                    let mut l = TcpListener::from_std(l);
                    let idx = self.next_listener;
                    self.next_listener += 1;
                    let token = Token(FIRST_LISTENER + idx);
                    match self
                        .poll
                        .registry()
                        .register(&mut l, token, Interest::READABLE)
                    {
                        Ok(()) => {
                            self.listeners.insert(idx, l);
                        }
                        Err(e) => tracing::warn!("cannot serve a new portal: {e}"),
                    }
                }
                PortalChange::Remove(addr) => {
                    let gone: Vec<usize> = self
                        .listeners
                        .iter()
                        .filter(|(_, l)| l.local_addr().ok() == Some(addr))
                        .map(|(i, _)| *i)
                        .collect();
                    for i in gone {
                        if let Some(mut l) = self.listeners.remove(&i) {
                            let _ = self.poll.registry().deregister(&mut l);
                        }
                    }
                }
            }
        }
        let generation = self.core.registry.generation();
        if generation != self.generation {
            self.generation = generation;
            let tokens: Vec<Token> = self.conns.keys().copied().collect();
            for t in tokens {
                if let Some(c) = self.conns.get_mut(&t) {
                    c.conn.handle_input(&mut BytesMut::new(), now);
                }
                self.service(t);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .flat_map(|c| [c.conn.poll_timeout(), c.stall.deadline(self.tx_stall)])
            .flatten()
            .min()
    }

    fn accept(&mut self, idx: usize) {
        loop {
            let Some(l) = self.listeners.get(&idx) else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    // Spread connections over the loops round-robin.
                    let target = self.next_peer % self.peers.len();
                    self.next_peer += 1;
                    let inbox = &self.peers[target];
                    inbox.conns.lock().expect("inbox lock").push((stream, peer));
                    let _ = inbox.waker.wake();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn take_inbox(&mut self, now: Instant) {
        let new: Vec<_> = std::mem::take(&mut *self.inbox.conns.lock().expect("inbox lock"));
        for (mut stream, peer) in new {
            let local = stream.local_addr().unwrap_or(peer);
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
            {
                tracing::warn!("cannot register connection from {peer}: {e}");
                continue;
            }
            tracing::info!("connection from {peer}");
            let conn = Connection::new(
                self.core.clone(),
                PeerInfo { peer, local },
                self.config.clone(),
                now,
            );
            let mut c = Conn::new(stream, conn);
            c.conn.set_waker(Arc::new(Kick {
                inbox: self.inbox.clone(),
                token,
            }));
            if self.drain_deadline.is_some() {
                // Accepted just before the listener went: dropped (still logging in).
                c.conn.request_logout(now);
            }
            self.conns.insert(token, c);
            // Data may already be waiting (edge-triggered readiness).
            self.readable(token, now);
        }
        let mut done = std::mem::take(&mut self.spare_completions);
        self.inbox.take_completions(&mut done);
        let mut touched = std::mem::take(&mut self.touched);
        if !done.is_empty() {
            // Taken without a wake-up while the loop was awake: activity all the same.
            self.spin.touch(now);
        }
        for (token, c) in done.drain(..) {
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.conn.handle_io_completion(c, now);
                touched.push(token);
            }
        }
        self.spare_completions = done;
        let kicks = std::mem::take(&mut *self.inbox.kicks.lock().expect("inbox lock"));
        for token in kicks {
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.conn.handle_input(&mut BytesMut::new(), now);
                touched.push(token);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for t in touched.drain(..) {
            self.service(t);
        }
        self.touched = touched;
    }

    fn expire(&mut self, now: Instant) {
        // Stalled readers: the queue cannot drain, so the socket goes without it.
        let stalled: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.stall.deadline(self.tx_stall).is_some_and(|at| at <= now))
            .map(|(t, _)| *t)
            .collect();
        for t in stalled {
            if let Some(mut c) = self.conns.remove(&t) {
                let secs = self.tx_stall.unwrap_or_default().as_secs_f64();
                let detail = format!(
                    "{} bytes of responses not read for {secs} s; connection dropped",
                    c.tx.len()
                );
                c.conn
                    .close_for_limit(target_core::limits::Limit::TxStall, &detail);
                tgtd_common::events::drain(&mut c.conn);
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
        }
        let due: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.conn.poll_timeout().is_some_and(|at| at <= now))
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            if let Some(c) = self.conns.get_mut(&t) {
                c.conn.handle_timeout(now);
            }
            self.service(t);
        }
    }

    fn readable(&mut self, token: Token, now: Instant) {
        let Some(mut c) = self.conns.get_mut(&token) else {
            return;
        };
        if c.tx.len() >= tgtd_common::limits::TX_PAUSE_BYTES {
            // The peer is not reading what we have for it: read no more requests
            // until the queue drains (`service` resumes; the edge is spent).
            c.read_paused = true;
            return;
        }
        // Read until the socket runs dry, servicing the connection after every read
        // so that what was read goes to the store and its answers go out while the
        // rest is still arriving.
        loop {
            let more = match c.read_once(now) {
                Ok(ReadOutcome::More) => true,
                Ok(ReadOutcome::Drained) => false,
                Ok(ReadOutcome::Eof) | Err(_) => {
                    c.conn.handle_close();
                    false
                }
            };
            if !more {
                break;
            }
            self.service_once(token);
            let Some(next) = self.conns.get_mut(&token) else {
                return;
            };
            if next.conn.is_closed() {
                break;
            }
            if next.tx.len() >= tgtd_common::limits::TX_PAUSE_BYTES {
                // `service_once` just flushed and could not write it all, so the
                // socket is registered for writability: that event's `service`
                // resumes reading. Returning here (not through `service`, which
                // would resume at once and call back into this function) keeps
                // a peer that never stops sending from nesting the two calls.
                next.read_paused = true;
                return;
            }
            c = next;
        }
        self.service(token);
    }

    /// Drain the connection's outputs: I/O to the pool, PDUs to the socket, events to
    /// the log; then close it if it is done.
    fn service(&mut self, token: Token) {
        self.service_once(token);
        // Reading was paused while the write queue was full and it has drained:
        // read what waits in the socket (its readiness edge was spent meanwhile).
        let resume = self
            .conns
            .get(&token)
            .is_some_and(|c| c.read_paused && c.tx.len() < tgtd_common::limits::TX_PAUSE_BYTES);
        if resume {
            if let Some(c) = self.conns.get_mut(&token) {
                c.read_paused = false;
            }
            self.readable(token, Instant::now());
        }
    }

    fn service_once(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        let inbox = &self.inbox;
        let home = std::thread::current().id();
        tgtd_common::io::dispatch(&mut c.conn, &self.pool, Instant::now(), |_tag| {
            let inbox = inbox.clone();
            move |c: IoCompletion| {
                // A worker wakes the loop; a ring completion is reaped on the loop
                // itself, which takes its inbox right after.
                let wake = std::thread::current().id() != home;
                inbox.complete(token, c, wake);
            }
        });
        let flushed = match c.flush(Instant::now()) {
            Ok(done) => done,
            Err(_) => {
                c.conn.handle_close();
                true
            }
        };
        // A target reset or reinstatement: every loop (this one included) re-checks its
        // connections, as after a management change.
        if tgtd_common::events::drain(&mut c.conn) {
            for p in &self.peers {
                let _ = p.waker.wake();
            }
        }
        if c.conn.is_closed() && (flushed || c.tx.is_empty()) {
            let mut c = self.conns.remove(&token).expect("present");
            let _ = self.poll.registry().deregister(&mut c.stream);
            return;
        }
        let want_write = !flushed;
        if want_write != c.writable_registered {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = reregister(self.poll.registry(), &mut c.stream, token, interest);
            c.writable_registered = want_write;
        }
    }
}

fn reregister(r: &Registry, s: &mut TcpStream, t: Token, i: Interest) -> std::io::Result<()> {
    r.reregister(s, t, i)
}
