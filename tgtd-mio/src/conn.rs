//! One TCP connection on a mio loop: socket, read buffer, write queue, state machine.

use bytes::BytesMut;
use mio::net::TcpStream;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;
use target_core::connection::Connection;
use tgtd_common::limits::StallWatch;
use tgtd_common::txqueue::TxQueue;

/// Read window bounds: the window grows while reads fill it (large Data-Out) and
/// shrinks when they do not. The largest window is kept small enough that the PDUs
/// of one read are still in the CPU cache when they are decoded (data digest) and
/// written to the store.
const MIN_WINDOW: usize = 16 * 1024;
const MAX_WINDOW: usize = 256 * 1024;

/// What one read left in the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// The read filled the window: more may wait (the readiness edge is not spent).
    More,
    /// The socket's receive queue is empty (a short read or EAGAIN), or the
    /// connection closed: the next bytes raise a new edge.
    Drained,
    /// The peer closed its side.
    Eof,
}

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) conn: Connection,
    rbuf: BytesMut,
    pub(crate) tx: TxQueue,
    pub(crate) writable_registered: bool,
    window: usize,
    /// When the write queue last moved (stalled-reader limit).
    pub(crate) stall: StallWatch,
    /// Reading stopped because too much waits to be written (`TX_PAUSE_BYTES`).
    pub(crate) read_paused: bool,
    /// A readiness event said the peer closed its side (EPOLLRDHUP). Its FIN may
    /// sit behind data a short read returns, and no later edge will announce it:
    /// from then on reads go on until end of file or EAGAIN.
    pub(crate) peer_closed: bool,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, conn: Connection) -> Self {
        Conn {
            stream,
            conn,
            rbuf: BytesMut::with_capacity(MIN_WINDOW),
            tx: TxQueue::new(),
            writable_registered: false,
            window: MIN_WINDOW,
            stall: StallWatch::default(),
            read_paused: false,
            peer_closed: false,
        }
    }

    /// One `read(2)` of up to the window, fed to the state machine. The caller
    /// services the connection (I/O to the store, responses and R2Ts to the socket)
    /// between reads, so a socket that never runs dry (large Data-Out at depth) does
    /// not hold back the store writes and the answers of what was already read.
    pub(crate) fn read_once(&mut self, now: Instant) -> io::Result<ReadOutcome> {
        loop {
            let want = self.window;
            self.rbuf.reserve(want);
            match read_into_spare(&self.stream, &mut self.rbuf, want) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    if n == want {
                        self.window = (want * 2).min(MAX_WINDOW);
                    } else if n < want / 4 {
                        self.window = (want / 2).max(MIN_WINDOW);
                    }
                    self.conn.handle_input(&mut self.rbuf, now);
                    // A short read emptied the socket's receive queue: bytes that
                    // arrive later raise a new edge, so the read that would only
                    // return EAGAIN is skipped (one system call per wake-up). Not
                    // once the peer closed: its end of file raises no new edge.
                    let emptied = n < want && !self.peer_closed;
                    return Ok(if emptied || self.conn.is_closed() {
                        ReadOutcome::Drained
                    } else {
                        ReadOutcome::More
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Write what is queued. `Ok(true)` when all is written.
    pub(crate) fn flush(&mut self, now: Instant) -> io::Result<bool> {
        self.tx.fill_from(&mut self.conn);
        let before = self.tx.len();
        let r = self.tx.write_to(&mut self.stream);
        self.stall
            .update(self.tx.len() < before, self.tx.is_empty(), now);
        r
    }
}

/// `read(2)` of at most `max` bytes into `buf`'s spare capacity, appended to its
/// contents: the window is not zero-filled before every read (a pass over up to
/// `MAX_WINDOW` bytes that also pushes the data just read out of the cache).
fn read_into_spare(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    let max = max.min(spare.len());
    // SAFETY: `spare` is writable memory of at least `max` bytes owned by `buf`;
    // read(2) writes at most `max` bytes there and returns how many it wrote.
    #[allow(unsafe_code)]
    let n = unsafe { libc::read(stream.as_raw_fd(), spare.as_mut_ptr().cast(), max) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the first `n` bytes after `len` were just initialised by read(2).
    #[allow(unsafe_code)]
    unsafe {
        buf.set_len(len + n)
    };
    Ok(n)
}
