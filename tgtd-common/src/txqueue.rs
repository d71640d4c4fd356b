//! The outgoing PDU queue of one connection, written with vectored writes.
//!
//! Each PDU is up to three buffers (header, data, trailer); READ payloads are the store's
//! own `Bytes`, so nothing is copied between the store and the socket.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use target_core::connection::Connection;

/// Most buffers handed to one `writev` (well under IOV_MAX).
const MAX_IOVECS: usize = 64;

/// Buffers waiting to be written, in order.
#[derive(Debug, Default)]
pub struct TxQueue {
    bufs: VecDeque<Bytes>,
    bytes: usize,
}

impl TxQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move everything the connection wants to send into the queue.
    pub fn fill_from(&mut self, conn: &mut Connection) {
        while let Some(pdu) = conn.poll_transmit() {
            for b in [pdu.header, pdu.data, pdu.trailer] {
                if !b.is_empty() {
                    self.bytes += b.len();
                    self.bufs.push_back(b);
                }
            }
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Fill `iov` with slices for the next vectored write; returns how many.
    pub fn iovecs<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, b) in iov.iter_mut().zip(self.bufs.iter()) {
            *slot = IoSlice::new(b);
            n += 1;
        }
        n
    }

    /// Drop `n` written bytes from the front.
    pub fn advance(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.bufs.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.bufs.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Write as much as the (non-blocking) writer takes. `Ok(true)` when the queue is
    /// empty, `Ok(false)` when the socket would block.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<bool> {
        while !self.is_empty() {
            let res = {
                let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
                let n = self.iovecs(&mut iov);
                w.write_vectored(&iov[..n])
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call.
    struct Trickle {
        out: Vec<u8>,
        cap: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.cap);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order() {
        let mut q = TxQueue::new();
        for chunk in [&b"hello "[..], b"vectored ", b"world"] {
            q.bytes += chunk.len();
            q.bufs.push_back(Bytes::copy_from_slice(chunk));
        }
        let mut w = Trickle {
            out: Vec::new(),
            cap: 4,
        };
        assert!(q.write_to(&mut w).unwrap());
        assert_eq!(w.out, b"hello vectored world");
        assert_eq!(q.len(), 0);
    }
}
