//! The mio event loop: one TCP connection and one `iscsi_initiator::Session` per
//! session connection, set up (login, TEST UNIT READY, READ CAPACITY(16) on each
//! session's first connection, then the other connections of the session join it),
//! then driven at the requested queue depth (spread over a session's connections)
//! until the time or the command budget runs out, then logged out.

use crate::report::{ErrorKey, Stats};
use crate::workload::{Mismatches, Op, Workload};
use crate::{Args, SetupError};
use bytes::{Buf, Bytes, BytesMut};
use iscsi_initiator::cdb::{self, Capacity};
use iscsi_initiator::{
    Chap, Command, Completion, Config, DataDirection, Event, MutualChap, Session, SessionParams,
    State,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io::{IoSlice, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `--busy-poll`: a `sched_yield` every this many turns without events.
const SPIN_YIELD_EVERY: u32 = 8;

/// How long commands still in flight when the run ends may take to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// What the run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Measured phase length.
    pub elapsed: Duration,
    /// Counters and histograms.
    pub stats: Stats,
    /// Verify mismatches.
    pub mismatches: Mismatches,
    /// Blocks verify checked.
    pub checked: u64,
    /// Blocks verify could not judge.
    pub unchecked: u64,
    /// Journal records written (or, with --verify-only, blocks it names).
    pub journaled: u64,
    /// SYNCHRONIZE CACHE commands that completed GOOD (--sync-every).
    pub syncs: u64,
    /// Why the run broke off, if it did.
    pub fatal: Option<String>,
    /// Negotiated parameters of the first session.
    pub params: SessionParams,
    /// Commands retried and SNACKs sent (ErrorRecoveryLevel > 0), all sessions.
    pub recovery: (u64, u64),
    /// Connections replaced after a failure (ErrorRecoveryLevel 2).
    pub reconnects: u64,
    /// Waits for socket events that could sleep (a poll with a timeout) before the
    /// run ended; none with `--busy-poll`.
    pub event_waits: u64,
    /// The LU.
    pub capacity: Capacity,
    /// First LBA of the range.
    pub lba_start: u64,
    /// Blocks in the range.
    pub lba_count: u64,
}

impl Outcome {
    /// Whether the run passed: no break, no command error, no mismatch.
    pub fn success(&self) -> bool {
        self.fatal.is_none() && self.mismatches.total == 0 && self.stats.errors_total() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Login,
    /// TEST UNIT READY until GOOD (the unit attention a new nexus gets).
    Tur(u32),
    Capacity,
    Ready,
    LoggingOut,
    Done,
    /// ErrorRecoveryLevel 2: the connection failed; a new one replaces it at this
    /// time (DefaultTime2Wait after the failure).
    Reconnect(Instant),
    /// Its replacement is logging in (then it takes the commands over with TASK
    /// REASSIGN, `iscsi_initiator::Session::recover`).
    Recovering,
}

struct Conn {
    /// Its mio token (its index in the connection list).
    token: usize,
    stream: TcpStream,
    sess: Session,
    /// Joined an existing session (not its first connection): ready at login.
    joined: bool,
    /// Commands this connection keeps in flight (its share of the session's --qd).
    qd: usize,
    out: VecDeque<Bytes>,
    phase: Phase,
    inflight: HashMap<u32, (Op, Instant)>,
    capacity: Option<Capacity>,
    eof: bool,
    /// A readiness event said the target closed its side (EPOLLRDHUP): its end of
    /// file may sit behind data a short read returns, and no later edge announces
    /// it, so reads go on until end of file or EAGAIN.
    peer_closed: bool,
    /// What was read and not yet decoded: the session splits whole PDUs off it and
    /// keeps their data as slices of it (`Session::handle_input_buf`).
    rbuf: BytesMut,
    /// The socket's SO_RCVLOWAT as last set.
    lowat: usize,
}

/// Free space offered to each read: a 256 KiB Data-In PDU arrives in one or two.
const READ_WINDOW: usize = 256 * 1024;

/// Most bytes a connection waits for before it is woken (SO_RCVLOWAT): the rest
/// of a large Data-In PDU up to this, instead of a wake-up and a read for every few
/// segments of it.
const MAX_LOWAT: usize = 1024 * 1024;

/// Allocation step of a connection's read buffer: several windows, so the
/// incomplete PDU left at the end of a read is moved to the front of the buffer
/// only once every few reads.
const READ_BUFFER: usize = 4 * READ_WINDOW;

impl Conn {
    fn new(token: usize, stream: TcpStream, sess: Session, joined: bool, qd: usize) -> Conn {
        Conn {
            token,
            stream,
            sess,
            joined,
            qd,
            out: VecDeque::new(),
            phase: Phase::Login,
            inflight: HashMap::new(),
            capacity: None,
            eof: false,
            peer_closed: false,
            rbuf: BytesMut::with_capacity(READ_BUFFER),
            lowat: 1,
        }
    }

    /// ErrorRecoveryLevel 2: whether a failure of this connection is recovered by
    /// a new connection rather than ending the run.
    fn recoverable(&self) -> bool {
        self.sess.params().error_recovery_level == 2
            && matches!(self.phase, Phase::Ready | Phase::Recovering)
    }

    /// The connection failed: replace it after DefaultTime2Wait.
    fn failed(&mut self, poll: &Poll, now: Instant) {
        let _ = poll.registry().deregister(&mut self.stream);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.out.clear();
        let wait = Duration::from_secs(u64::from(self.sess.params().default_time2wait));
        self.phase = Phase::Reconnect(now + wait);
    }

    /// Connect again and log in as the failed connection's replacement (same CID:
    /// connection reinstatement), which takes its commands over.
    fn reconnect(
        &mut self,
        poll: &Poll,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), String> {
        let stream = connect(poll, addr, timeout, self.token).map_err(|e| e.to_string())?;
        let now = Instant::now();
        let config = self.sess.config().clone();
        let dead = std::mem::replace(&mut self.sess, Session::new(config, now));
        let cid = dead.cid();
        self.sess = Session::recover(dead, cid, now);
        self.stream = stream;
        self.eof = false;
        self.peer_closed = false;
        // A partial PDU of the dead connection is not the start of the new one's.
        self.rbuf.clear();
        self.lowat = 1;
        self.phase = Phase::Recovering;
        Ok(())
    }

    /// Move PDUs from the session to the socket until it would block.
    fn flush(&mut self) -> std::io::Result<()> {
        while let Some(p) = self.sess.poll_transmit() {
            self.out.push_back(p.header);
            if !p.data.is_empty() {
                self.out.push_back(p.data);
            }
            if !p.trailer.is_empty() {
                self.out.push_back(p.trailer);
            }
        }
        while !self.out.is_empty() {
            let slices: Vec<IoSlice<'_>> =
                self.out.iter().take(64).map(|b| IoSlice::new(b)).collect();
            match self.stream.write_vectored(&slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    while n > 0 {
                        let front = self.out.front_mut().expect("written bytes were queued");
                        if n >= front.len() {
                            n -= front.len();
                            self.out.pop_front();
                        } else {
                            front.advance(n);
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read until the socket would block, feeding the session.
    fn fill(&mut self) -> Result<(), String> {
        loop {
            // The rest of the PDU under way fits in one read.
            let missing = self.sess.input_missing(&self.rbuf);
            let window = missing.max(READ_WINDOW);
            if self.rbuf.capacity() - self.rbuf.len() < window && !self.rbuf.try_reclaim(window) {
                // The incomplete PDU moves to the front of a buffer the session
                // recycled (completions still hold slices of this one).
                let mut next = self.sess.take_buffer(self.rbuf.len() + window);
                next.extend_from_slice(&self.rbuf);
                self.rbuf = next;
            }
            match read_into_spare(&self.stream, &mut self.rbuf, window) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.sess
                        .handle_input_buf(&mut self.rbuf)
                        .map_err(|e| e.to_string())?;
                    // A short read emptied the socket: the next bytes raise a new
                    // edge, so the read that would only say EAGAIN is skipped
                    // (not once the target closed: see `peer_closed`).
                    if n < window && !self.peer_closed {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        // Sleep until the PDU under way is whole: the target already sends it.
        let lowat = self.sess.input_missing(&self.rbuf).clamp(1, MAX_LOWAT);
        if lowat != self.lowat {
            set_rcvlowat(&self.stream, lowat).map_err(|e| format!("SO_RCVLOWAT: {e}"))?;
            self.lowat = lowat;
        }
        Ok(())
    }
}

/// Set SO_RCVLOWAT: readiness (and epoll's edge) only once this many bytes wait.
/// The kernel checks readiness again when it changes, so bytes already queued are
/// not missed.
#[allow(unsafe_code)]
fn set_rcvlowat(stream: &TcpStream, bytes: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `v` is a live c_int and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `read(2)` of at most `max` bytes appended to `buf`, into its spare capacity: the
/// window is not zero-filled before every read.
#[allow(unsafe_code)]
fn read_into_spare(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    let max = max.min(spare.len());
    // SAFETY: `spare` is writable memory of at least `max` bytes owned by `buf`;
    // read(2) writes at most `max` bytes there and returns how many it wrote.
    let n = unsafe { libc::read(stream.as_raw_fd(), spare.as_mut_ptr().cast(), max) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the first `n` bytes after `len` were just initialised by read(2).
    unsafe { buf.set_len(len + n) };
    Ok(n)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .is_err()
    {
        // No /dev/urandom: fall back to the clock (only CHAP challenges and seeds
        // come from here).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in v.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    v
}

fn session_config(args: &Args, index: u32, qualifier: &[u8]) -> Config {
    let mut c = Config::normal(&args.initiator_name, &args.target);
    // One ISID per session so each is its own I_T nexus (random qualifier: two
    // benchmark processes do not reinstate each other's sessions).
    c.isid = iscsi_proto_isid(index, qualifier);
    c.header_digest = args.header_digest;
    c.data_digest = args.data_digest;
    c.initial_r2t = args.initial_r2t.on();
    c.immediate_data = args.immediate_data.on();
    c.max_recv_data_segment_length = args.max_recv_data_segment_length as u32;
    c.max_burst_length = args.max_burst as u32;
    c.first_burst_length = args.first_burst as u32;
    c.error_recovery_level = args.erl;
    c.login_timeout = Duration::from_secs_f64(args.connect_timeout);
    if let (Some(user), Some(secret)) = (&args.chap_user, &args.chap_secret) {
        c.chap = Some(Chap {
            user: user.clone(),
            secret: secret.as_bytes().to_vec(),
            mutual: args.chap_target_secret.as_ref().map(|ts| {
                let r = random_bytes(33);
                MutualChap {
                    target_user: args.chap_target_user.clone(),
                    target_secret: ts.as_bytes().to_vec(),
                    id: r[0],
                    challenge: r[1..].to_vec(),
                }
            }),
        });
    }
    c
}

fn iscsi_proto_isid(index: u32, q: &[u8]) -> iscsi_initiator::Isid {
    // Random format (type 0b10, RFC 7143 §11.12.5): A=0x80 | 6 random bits...
    iscsi_initiator::Isid([
        0x80 | (q[0] & 0x3f),
        q[1],
        q[2],
        q[3],
        (index >> 8) as u8,
        index as u8,
    ])
}

/// The INFORMATION field of a failed command's sense data (the LBA a medium error
/// names), fixed or descriptor format, when it is valid.
fn information(c: &Completion) -> Option<u64> {
    let s = &c.sense.as_ref()?.raw;
    match s.first()? & 0x7f {
        0x70 | 0x71 if s[0] & 0x80 != 0 => {
            Some(u64::from(u32::from_be_bytes(s.get(3..7)?.try_into().ok()?)))
        }
        0x72 | 0x73 => {
            // Descriptors after the 8-byte header; the information descriptor is 00h.
            let mut at = 8;
            while at + 2 <= s.len() {
                let (kind, len) = (s[at], usize::from(s[at + 1]));
                if kind == 0 && s.get(at + 2)? & 0x80 != 0 {
                    return Some(u64::from_be_bytes(s.get(at + 4..at + 12)?.try_into().ok()?));
                }
                at += 2 + len;
            }
            None
        }
        _ => None,
    }
}

fn sense_key(c: &Completion) -> ErrorKey {
    ErrorKey {
        response: c.response,
        status: c.status,
        sense: c.sense.as_ref().map(|s| (s.key, s.asc, s.ascq)),
        ..ErrorKey::default()
    }
}

/// A non-blocking connection to `addr`, registered with `poll` as `token`.
fn connect(
    poll: &Poll,
    addr: SocketAddr,
    timeout: Duration,
    token: usize,
) -> Result<TcpStream, SetupError> {
    let std_stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|err| SetupError::Connect { addr, err })?;
    let _ = std_stream.set_nodelay(true);
    std_stream
        .set_nonblocking(true)
        .map_err(|err| SetupError::Connect { addr, err })?;
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry()
        .register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|err| SetupError::Connect { addr, err })?;
    Ok(stream)
}

/// Connection `k` (0 the first) of a session's `n` gets this share of its `qd`.
fn share(qd: u32, n: u16, k: u16) -> usize {
    let (qd, n, k) = (qd as usize, usize::from(n), usize::from(k));
    qd / n + usize::from(k < qd % n)
}

/// Connect, set up and run. Errors before the measured phase are [`SetupError`]s.
pub fn run(args: &Args, addr: SocketAddr) -> Result<Outcome, SetupError> {
    let timeout = Duration::from_secs_f64(args.connect_timeout.max(0.1));
    let mut poll = Poll::new().map_err(|e| SetupError::Target(format!("mio: {e}")))?;
    let qualifier = random_bytes(4);
    let setup_start = Instant::now();
    let mut conns: Vec<Conn> = Vec::new();
    let n = args.connections.max(1);
    for i in 0..args.sessions {
        let stream = connect(&poll, addr, timeout, conns.len())?;
        let mut config = session_config(args, i, &qualifier);
        config.max_connections = n;
        conns.push(Conn::new(
            conns.len(),
            stream,
            Session::new(config, setup_start),
            false,
            share(args.qd, n, 0),
        ));
    }
    let mut events = Events::with_capacity(1024);

    // ----- setup: login, TEST UNIT READY, READ CAPACITY(16) -----
    let setup_deadline = setup_start + timeout;
    setup(
        &mut conns,
        &mut poll,
        &mut events,
        args,
        addr,
        setup_deadline,
    )?;
    // The other connections of each session join it (MC/S).
    if n > 1 {
        let leads = conns.len();
        for lead in 0..leads {
            let negotiated = conns[lead].sess.params().max_connections;
            if negotiated < n {
                return Err(SetupError::Target(format!(
                    "{} allows {negotiated} connection(s) per session, not {n}",
                    args.target
                )));
            }
            for cid in 1..n {
                let stream = connect(&poll, addr, timeout, conns.len())?;
                let sess = Session::join(&conns[lead].sess, cid, Instant::now());
                conns.push(Conn::new(
                    conns.len(),
                    stream,
                    sess,
                    true,
                    share(args.qd, n, cid),
                ));
            }
        }
        setup(
            &mut conns,
            &mut poll,
            &mut events,
            args,
            addr,
            setup_deadline,
        )?;
    }
    measure(args, addr, conns, poll, events)
}

/// Drive every connection until all are ready (logged in; a session's first
/// connection has also cleared its unit attention and read the capacity).
fn setup(
    conns: &mut [Conn],
    poll: &mut Poll,
    events: &mut Events,
    args: &Args,
    addr: SocketAddr,
    setup_deadline: Instant,
) -> Result<(), SetupError> {
    loop {
        for c in conns.iter_mut() {
            c.flush()
                .map_err(|e| SetupError::Target(format!("write to {addr}: {e}")))?;
        }
        if conns.iter().all(|c| c.phase == Phase::Ready) {
            break;
        }
        let now = Instant::now();
        if now >= setup_deadline {
            return Err(SetupError::Target(format!(
                "login to {} at {addr} timed out",
                args.target
            )));
        }
        poll.poll(
            events,
            Some((setup_deadline - now).min(Duration::from_millis(100))),
        )
        .map_err(|e| SetupError::Target(format!("poll: {e}")))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.peer_closed |= ev.is_read_closed() || ev.is_error();
                c.fill()
                    .map_err(|e| SetupError::Target(format!("login to {}: {e}", args.target)))?;
            }
        }
        for c in conns.iter_mut() {
            setup_events(c, args)?;
            if c.eof && c.phase != Phase::Ready {
                return Err(SetupError::Target(format!(
                    "{addr} closed the connection during login"
                )));
            }
        }
    }
    Ok(())
}

/// The measured phase, then logout.
fn measure(
    args: &Args,
    addr: SocketAddr,
    mut conns: Vec<Conn>,
    mut poll: Poll,
    mut events: Events,
) -> Result<Outcome, SetupError> {
    let capacity = conns[0].capacity.expect("Ready sessions read the capacity");
    let params = *conns[0].sess.params();
    let bl = u64::from(capacity.block_len);
    if bl < 64 {
        return Err(SetupError::Target(format!("block size {bl} is too small")));
    }
    for size in [args.bs.min, args.bs.max] {
        if !size.is_multiple_of(bl) {
            return Err(SetupError::Args(format!(
                "--bs {size} is not a multiple of the LU's block size {bl}"
            )));
        }
    }
    let io_blocks = args.bs.max / bl;
    let (lba_start, lba_count) = args.lba_range.unwrap_or((0, capacity.blocks));
    if lba_start
        .checked_add(lba_count)
        .is_none_or(|end| end > capacity.blocks)
    {
        return Err(SetupError::Args(format!(
            "--lba-range {lba_start}:{lba_count} goes beyond the LU's {} blocks",
            capacity.blocks
        )));
    }
    if lba_count < io_blocks {
        return Err(SetupError::Args(format!(
            "--lba-range of {lba_count} blocks is smaller than --bs ({io_blocks} blocks)"
        )));
    }
    let seed = args
        .seed
        .unwrap_or_else(|| u64::from_le_bytes(random_bytes(8).try_into().expect("8 bytes")));
    let mut work = Workload::new(args, lba_start, lba_count, capacity.block_len, seed)?;
    let duration = match (args.duration, args.ops) {
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        // --verify-only runs until the journal is read back.
        (None, None) if args.verify_only => None,
        (None, None) => Some(Duration::from_secs(10)),
    };

    // ----- measured phase -----
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut stats = Stats::new(args.expect_errors);
    let mut mismatches = Mismatches::default();
    let mut fatal: Option<String> = None;
    let mut next_progress = start + Duration::from_secs(1);
    let mut stopping = false;
    let mut drain_deadline: Option<Instant> = None;
    let mut logout_deadline: Option<Instant> = None;
    let mut elapsed = Duration::ZERO;
    let mut reconnects = 0u64;
    let mut event_waits = 0u64;
    let mut idle_spins = 0u32;
    loop {
        let now = Instant::now();
        if !stopping && (work.exhausted() || duration.is_some_and(|d| now - start >= d)) {
            stopping = true;
            drain_deadline = Some(now + DRAIN_LIMIT);
        }
        if drain_deadline.is_some_and(|d| now >= d) && conns.iter().any(|c| !c.inflight.is_empty())
        {
            fatal.get_or_insert(format!(
                "commands still outstanding {} s after the run ended",
                DRAIN_LIMIT.as_secs()
            ));
        }
        // Issue, complete, flush.
        for c in conns.iter_mut() {
            if c.phase == Phase::Done {
                continue;
            }
            if let Phase::Reconnect(at) = c.phase {
                if now < at {
                    continue;
                }
                let timeout = Duration::from_secs_f64(args.connect_timeout.max(0.1));
                if let Err(e) = c.reconnect(&poll, addr, timeout) {
                    fatal.get_or_insert(format!("reconnect: {e}"));
                    c.phase = Phase::Done;
                    continue;
                }
                reconnects += 1;
            }
            // Another connection of the session may have seen the window open.
            c.sess.resume();
            // ErrorRecoveryLevel > 0: command retries and SNACKs run off this timer.
            if let Err(e) = c.sess.handle_timeout(now) {
                fatal.get_or_insert(format!("session timer: {e}"));
            }
            if c.recoverable() && (c.eof || c.sess.state() == State::Failed) {
                c.failed(&poll, now);
                continue;
            }
            if let Err(e) = run_events(c, &mut work, &mut stats, &mut mismatches, start) {
                fatal.get_or_insert(e);
            }
            if c.phase == Phase::Ready && !stopping && fatal.is_none() {
                while c.inflight.len() < c.qd && c.sess.window_open() {
                    let Some(op) = work.next() else { break };
                    match c.sess.submit(work.command(args.lun, &op)) {
                        Ok(itt) => {
                            c.inflight.insert(itt.0, (op, Instant::now()));
                        }
                        Err(e) => {
                            work.abandon(&op);
                            fatal.get_or_insert(format!("submit: {e}"));
                            break;
                        }
                    }
                }
            }
            if let Err(e) = c.flush() {
                if c.recoverable() {
                    c.failed(&poll, now);
                    continue;
                }
                fatal.get_or_insert(format!("write: {e}"));
            }
            if c.eof && c.phase != Phase::LoggingOut && c.phase != Phase::Done {
                fatal.get_or_insert("the target closed a connection mid-run".into());
                c.phase = Phase::Done;
            } else if c.eof || matches!(c.sess.state(), State::Closed | State::Failed) {
                c.phase = Phase::Done;
            }
        }
        if fatal.is_some() {
            for c in conns.iter_mut() {
                for (_, (op, _)) in c.inflight.drain() {
                    work.abandon(&op);
                }
            }
            if elapsed.is_zero() {
                elapsed = start.elapsed();
            }
            break;
        }
        // Drained: log out every session.
        if stopping
            && conns.iter().all(|c| {
                c.inflight.is_empty() && !matches!(c.phase, Phase::Reconnect(_) | Phase::Recovering)
            })
        {
            if elapsed.is_zero() {
                elapsed = start.elapsed();
            }
            if logout_deadline.is_none() {
                logout_deadline = Some(Instant::now() + Duration::from_secs(3));
                // A joined connection leaves (Logout reason 1); the first one ends
                // the session (reason 0).
                for c in conns.iter_mut() {
                    let sent = c.phase == Phase::Ready
                        && if c.joined {
                            c.sess.logout_connection().is_ok()
                        } else {
                            c.sess.logout().is_ok()
                        };
                    if sent {
                        c.phase = Phase::LoggingOut;
                        let _ = c.flush();
                    } else {
                        c.phase = Phase::Done;
                    }
                }
            }
            if conns.iter().all(|c| c.phase == Phase::Done)
                || logout_deadline.is_some_and(|d| Instant::now() >= d)
            {
                break;
            }
        }
        let now = Instant::now();
        if tty && now >= next_progress {
            stats.progress_line(now - start);
            next_progress = now + Duration::from_secs(1);
        }
        let mut wait = Duration::from_millis(50);
        // Until the run's end, wake for it; once stopping, only socket events (and
        // the 50 ms tick) matter: a wait of zero here would spin while draining.
        if let (Some(d), false) = (duration, stopping) {
            wait = wait.min((start + d).saturating_duration_since(now));
        }
        if args.busy_poll && !stopping {
            wait = Duration::ZERO;
            // Now and then another thread that wants this CPU (a target's, when they
            // share the machine) goes first.
            if events.is_empty() {
                idle_spins = idle_spins.wrapping_add(1);
                if idle_spins.is_multiple_of(SPIN_YIELD_EVERY) {
                    std::thread::yield_now();
                }
            }
        } else if !stopping {
            event_waits += 1;
        }
        match poll.poll(&mut events, Some(wait)) {
            // A signal (a terminal resize, a stop and continue) is no event: go round.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => events.clear(),
            r => r.map_err(|e| SetupError::Target(format!("poll: {e}")))?,
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if matches!(c.phase, Phase::Done | Phase::Reconnect(_)) {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.peer_closed |= ev.is_read_closed() || ev.is_error();
                if let Err(e) = c.fill() {
                    if c.recoverable() {
                        c.failed(&poll, Instant::now());
                        continue;
                    }
                    if c.phase != Phase::LoggingOut {
                        fatal.get_or_insert(format!("session {}: {e}", ev.token().0));
                    }
                    c.phase = Phase::Done;
                }
            }
        }
    }
    if tty {
        eprint!("\r\x1b[K");
    }
    if let Err(e) = work.finish() {
        fatal.get_or_insert(e);
    }
    let recovery = conns.iter().fold((0, 0), |(r, s), c| {
        (r + c.sess.commands_retried(), s + c.sess.snacks_sent())
    });
    Ok(Outcome {
        recovery,
        reconnects,
        event_waits,
        elapsed,
        stats,
        mismatches,
        checked: work.checked,
        unchecked: work.unchecked,
        journaled: work.journaled,
        syncs: work.syncs,
        fatal,
        params,
        capacity,
        lba_start,
        lba_count,
    })
}

fn setup_events(c: &mut Conn, args: &Args) -> Result<(), SetupError> {
    let fail = |m: String| SetupError::Target(m);
    if c.sess.state() == State::Failed {
        return Err(fail(format!("login to {} failed", args.target)));
    }
    while let Some(ev) = c.sess.poll_event() {
        match ev {
            // The session's nexus and capacity are known from its first connection.
            Event::LoginComplete { .. } if c.joined => c.phase = Phase::Ready,
            Event::LoginComplete { .. } => {
                c.phase = Phase::Tur(0);
                c.sess
                    .submit(Command::new(
                        args.lun,
                        &cdb::test_unit_ready(),
                        DataDirection::None,
                    ))
                    .map_err(|e| fail(e.to_string()))?;
            }
            Event::CommandComplete(done) => match c.phase {
                Phase::Tur(n) => {
                    if done.status == 0 {
                        c.phase = Phase::Capacity;
                        c.sess
                            .submit(Command::new(
                                args.lun,
                                &cdb::read_capacity16(),
                                DataDirection::Read(cdb::READ_CAPACITY16_LEN),
                            ))
                            .map_err(|e| fail(e.to_string()))?;
                    } else if n < 5 && done.sense.as_ref().is_some_and(|s| s.key == 6) {
                        // UNIT ATTENTION (power on, nexus loss): ask again.
                        c.phase = Phase::Tur(n + 1);
                        c.sess
                            .submit(Command::new(
                                args.lun,
                                &cdb::test_unit_ready(),
                                DataDirection::None,
                            ))
                            .map_err(|e| fail(e.to_string()))?;
                    } else {
                        return Err(fail(format!(
                            "LUN {} of {} is not ready: {}",
                            args.lun,
                            args.target,
                            sense_key(&done)
                        )));
                    }
                }
                Phase::Capacity => {
                    let cap = (done.status == 0)
                        .then(|| cdb::parse_read_capacity16(&done.data))
                        .flatten()
                        .ok_or_else(|| {
                            fail(format!("READ CAPACITY(16) failed: {}", sense_key(&done)))
                        })?;
                    c.capacity = Some(cap);
                    c.phase = Phase::Ready;
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(())
}

fn run_events(
    c: &mut Conn,
    work: &mut Workload,
    stats: &mut Stats,
    mismatches: &mut Mismatches,
    start: Instant,
) -> Result<(), String> {
    if c.sess.state() == State::Failed && c.phase != Phase::Done {
        c.phase = Phase::Done;
        return Err("a session failed mid-run".into());
    }
    let now = Instant::now();
    while let Some(ev) = c.sess.poll_event() {
        match ev {
            Event::CommandComplete(done) => {
                let Some((op, t0)) = c.inflight.remove(&done.task.0) else {
                    continue;
                };
                let good = done.status == 0 && done.response == 0;
                let lat = now.saturating_duration_since(t0);
                let bytes = if good {
                    u64::from(work.io_bytes(&op))
                } else {
                    0
                };
                if !op.sync {
                    stats.record(op.read, lat, bytes, now - start);
                }
                if !good {
                    stats.command_failed(&op, sense_key(&done), information(&done));
                }
                work.complete(&op, good, &done.data, mismatches);
                c.sess.recycle(done.data);
            }
            Event::CommandRejected { task, reason } => {
                if let Some((op, _)) = c.inflight.remove(&task.0) {
                    work.abandon(&op);
                    stats.error(ErrorKey {
                        rejected: Some(reason),
                        ..ErrorKey::default()
                    });
                }
            }
            Event::CommandAborted { task } => {
                if let Some((op, _)) = c.inflight.remove(&task.0) {
                    work.abandon(&op);
                    stats.error(ErrorKey {
                        aborted: true,
                        ..ErrorKey::default()
                    });
                }
            }
            Event::LoggedOut { .. } => c.phase = Phase::Done,
            Event::LoginComplete { .. } if c.phase == Phase::Recovering => c.phase = Phase::Ready,
            Event::Async(a) if a.async_event == 1 => {
                return Err("the target asked for logout mid-run".into());
            }
            _ => {}
        }
    }
    Ok(())
}
