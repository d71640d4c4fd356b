//! The outgoing PDU queue of one connection, written with vectored writes.
//!
//! Each PDU is up to three buffers (header, data, trailer); READ payloads are the store's
//! own `Bytes`, so nothing is copied between the store and the socket. A payload
//! that is a file's own pages (a large read, `backends::mapped`) goes out with
//! `sendfile(2)` ([`TxQueue::write_to_socket`]): TCP takes the page-cache pages by
//! reference, so the daemon does not copy it at all.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};
use target_core::connection::Connection;

/// Most buffers handed to one `writev` (well under IOV_MAX).
const MAX_IOVECS: usize = 64;

/// Buffers shorter than this are never looked up as lent file pages (headers,
/// digests, small reads): the lookup takes a lock, and for a few KiB `sendfile`
/// saves nothing over the copy.
const LENT_MIN: usize = 16 * 1024;

/// The file and offset of `b` if it is lent file pages worth a `sendfile`.
fn lent(b: &Bytes) -> Option<(BorrowedFd<'_>, u64)> {
    if b.len() < LENT_MIN {
        return None;
    }
    backends::mapped::lent_file(b)
}

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

    /// Write as much as the non-blocking socket `sock` takes: lent file pages with
    /// `sendfile`, everything else with vectored `sendmsg` (`MSG_MORE` when file
    /// pages follow, so a PDU header does not leave alone in front of its data).
    /// `Ok(true)` when the queue is empty, `Ok(false)` when the socket would block.
    /// A file that shrank under its lent pages (`sendfile` sends nothing) is an
    /// error, as EFAULT is for a plain write of them: the PDU cannot be completed.
    #[allow(unsafe_code)]
    pub fn write_to_socket(&mut self, sock: BorrowedFd<'_>) -> io::Result<bool> {
        while let Some(front) = self.bufs.front() {
            let res = if let Some((file, offset)) = lent(front) {
                let mut off = libc::off_t::try_from(offset)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                // SAFETY: two open descriptors, a valid offset pointer, and a count
                // no larger than the bytes the lent buffer shows from `off`.
                let n = unsafe {
                    libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, front.len())
                };
                match n {
                    0 => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the backing file shrank under data being sent",
                        ))
                    }
                    n if n < 0 => Err(io::Error::last_os_error()),
                    n => Ok(n as usize),
                }
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
                let mut k = 0;
                let mut more = false;
                for b in self.bufs.iter().take(MAX_IOVECS) {
                    if k > 0 && lent(b).is_some() {
                        more = true;
                        break;
                    }
                    iov[k] = IoSlice::new(b);
                    k += 1;
                }
                // SAFETY: `msg` points at `k` initialised iovecs (IoSlice has the
                // layout of `struct iovec`) that live until the call returns.
                let n = unsafe {
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = iov.as_mut_ptr().cast();
                    msg.msg_iovlen = k;
                    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
                    libc::sendmsg(sock.as_raw_fd(), &msg, flags)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
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

    #[test]
    #[allow(clippy::disallowed_methods)] // the reader at the socket's other end
    fn lent_pages_go_by_sendfile_in_order() {
        use scsi_sbc::BlockStore;
        use std::io::Read;
        use std::os::fd::AsFd;
        let path = std::env::temp_dir().join(format!("txqueue-{}.img", std::process::id()));
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let store = backends::FileStore::open(&path, &backends::OpenOptions::default()).unwrap();
        let page = store.read_for_send(4096, 512 * 1024).unwrap();
        assert!(
            backends::mapped::lent_file(&page).is_some(),
            "a lent mapping"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut rx, _) = listener.accept().unwrap();
        tx.set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            rx.read_to_end(&mut out).unwrap();
            out
        });
        let parts = [
            Bytes::from_static(b"header one"),
            page.clone(),
            Bytes::from_static(b"digest"),
            page.slice(1000..300_000),
            Bytes::from_static(b"the end"),
        ];
        let mut q = TxQueue::new();
        for p in &parts {
            q.bytes += p.len();
            q.bufs.push_back(p.clone());
        }
        // The reader drains while the queue is written: the socket's buffer fills
        // and empties many times, so sendfile and sendmsg both stop part-way.
        while !q.write_to_socket(tx.as_fd()).unwrap() {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        drop(tx);
        let out = reader.join().unwrap();
        assert_eq!(out, parts.concat());
        drop((page, store));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_shrunk_under_lent_pages_fails_the_write() {
        use scsi_sbc::BlockStore;
        use std::os::fd::AsFd;
        let path = std::env::temp_dir().join(format!("txqueue-shrink-{}.img", std::process::id()));
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let store = backends::FileStore::open(&path, &backends::OpenOptions::default()).unwrap();
        let page = store.read_for_send(0, 512 * 1024).unwrap();
        assert!(backends::mapped::lent_file(&page).is_some());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _rx = listener.accept().unwrap();
        let mut q = TxQueue::new();
        q.bytes = page.len();
        q.bufs.push_back(page);
        let e = q.write_to_socket(tx.as_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        drop((q, store));
        std::fs::remove_file(&path).unwrap();
    }
}
