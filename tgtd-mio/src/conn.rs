//! One TCP connection on a mio loop: socket, read buffer, write queue, state machine.

use bytes::BytesMut;
use mio::net::TcpStream;
use std::io::{self, Read};
use std::time::Instant;
use target_core::connection::Connection;
use tgtd_common::txqueue::TxQueue;

/// Read window bounds: the window grows while reads fill it (large Data-Out) and
/// shrinks when they do not, so zero-filling the buffer costs about what is read.
const MIN_WINDOW: usize = 16 * 1024;
const MAX_WINDOW: usize = 1024 * 1024;

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) conn: Connection,
    rbuf: BytesMut,
    pub(crate) tx: TxQueue,
    pub(crate) writable_registered: bool,
    window: usize,
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
        }
    }

    /// Read until the socket would block, feeding the state machine. `Ok(false)` on EOF.
    pub(crate) fn read_ready(&mut self, now: Instant) -> io::Result<bool> {
        loop {
            let len = self.rbuf.len();
            let want = self.window;
            self.rbuf.resize(len + want, 0);
            match self.stream.read(&mut self.rbuf[len..]) {
                Ok(0) => {
                    self.rbuf.truncate(len);
                    return Ok(false);
                }
                Ok(n) => {
                    self.rbuf.truncate(len + n);
                    if n == want {
                        self.window = (want * 2).min(MAX_WINDOW);
                    } else if n < want / 4 {
                        self.window = (want / 2).max(MIN_WINDOW);
                    }
                    self.conn.handle_input(&mut self.rbuf, now);
                    if self.conn.is_closed() {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rbuf.truncate(len);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.rbuf.truncate(len),
                Err(e) => {
                    self.rbuf.truncate(len);
                    return Err(e);
                }
            }
        }
    }

    /// Write what is queued. `Ok(true)` when all is written.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        self.tx.fill_from(&mut self.conn);
        self.tx.write_to(&mut self.stream)
    }
}
