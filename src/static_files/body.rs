//! A file's byte range on its way to a client: the body of a `--static` answer too large to go
//! out with its head in one write.
//!
//! The connection keeps it (`Conn::send_file_body`) and sends what the socket takes without
//! waiting; when the socket is full the connection parks, watched for room to send, holding no
//! thread, and the next event sends more. On a plain socket the bytes go by `sendfile(2)`,
//! never through user space; on TLS they are read in chunks into rustls (`pread`, so the
//! position lives here and the file is shared with no one). The file stays open until the
//! range is out: a file replaced meanwhile (a new deploy) keeps sending the old bytes.
//!
//! One turn sends at most [`TURN`] bytes: a client that reads as fast as the disk cannot keep
//! a thread from the other connections; the connection then asks to be woken again behind the
//! events already waiting ([`Sent::Yield`]).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::sys::file::sendfile;
use crate::sys::socket::Stream;
use crate::tls::TlsSession;

/// Bytes one turn sends at most before letting other connections have the thread.
pub(crate) const TURN: u64 = 4 * 1024 * 1024;

/// Bytes read from the file per step on TLS (rustls makes records of up to 16 KiB).
const TLS_CHUNK: usize = 64 * 1024;

/// The rest of a file range to send.
#[derive(Debug)]
pub(crate) struct FileBody {
    /// Shared with the mount's cache of open files (`cache.rs`): reads and sends name their
    /// offsets, so no position is shared.
    file: Arc<File>,
    /// The next byte to send.
    offset: u64,
    /// One past the last byte to send.
    end: u64,
    /// The connection closes once the range is out (the response said so).
    close_after: bool,
    /// Where TLS reads go (allocated on the first TLS turn).
    chunk: Vec<u8>,
}

/// Where a turn left the body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Every byte went out.
    All,
    /// The socket is full: wait for room to send.
    Full,
    /// The turn's share went out and the socket has room: come back after the other events.
    Yield,
}

impl FileBody {
    /// Bytes `offset..end` of `file`.
    pub(crate) fn new(
        file: impl Into<Arc<File>>,
        offset: u64,
        end: u64,
        close_after: bool,
    ) -> FileBody {
        FileBody {
            file: file.into(),
            offset,
            end,
            close_after,
            chunk: Vec::new(),
        }
    }

    pub(crate) fn close_after(&self) -> bool {
        self.close_after
    }

    /// Sends what the socket takes now (through `tls` on a TLS connection), up to one turn.
    pub(crate) fn send(
        &mut self,
        sock: &mut Stream,
        tls: Option<&mut TlsSession>,
    ) -> io::Result<Sent> {
        match tls {
            None => self.send_plain(sock),
            Some(tls) => self.send_tls(sock, tls),
        }
    }

    fn send_plain(&mut self, sock: &Stream) -> io::Result<Sent> {
        let stop = self.end.min(self.offset.saturating_add(TURN));
        while self.offset < stop {
            let want = usize::try_from(stop - self.offset).unwrap_or(usize::MAX);
            match sendfile(sock.as_fd(), self.file.as_fd(), &mut self.offset, want) {
                Ok(0) => return Err(shrunk()),
                Ok(n) => crate::stats::bytes_out(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Sent::Full),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.after_turn())
    }

    /// Reads chunks into rustls until its buffer or the socket is full. `All` only once rustls
    /// has sent the last record too: nothing else would flush it.
    fn send_tls(&mut self, sock: &mut Stream, tls: &mut TlsSession) -> io::Result<Sent> {
        let stop = self.end.min(self.offset.saturating_add(TURN));
        if self.chunk.is_empty() {
            self.chunk = vec![0; TLS_CHUNK];
        }
        loop {
            if !tls.flush_nonblocking(sock)? {
                return Ok(Sent::Full);
            }
            if self.offset >= stop {
                return Ok(self.after_turn());
            }
            let want = usize::try_from(stop - self.offset)
                .unwrap_or(usize::MAX)
                .min(self.chunk.len());
            let chunk = self.chunk.get_mut(..want).unwrap_or_default();
            let read = match self.file.read_at(chunk, self.offset) {
                Ok(0) => return Err(shrunk()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let bytes = self.chunk.get(..read).unwrap_or_default();
            // What rustls did not take is read again next time: cheaper than keeping it.
            let taken = tls.write_nonblocking(sock, &[bytes])?;
            self.offset += taken as u64;
            if taken < read {
                return Ok(Sent::Full);
            }
        }
    }

    /// Reads the next bytes of the range into `buf` (0: all were read), for a transport that
    /// cannot `sendfile` (HTTP/2's DATA frames).
    pub(crate) fn read_next(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.offset)).unwrap_or(usize::MAX);
        let want = left.min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = loop {
            match self.file.read_at(&mut buf[..want], self.offset) {
                Ok(0) => return Err(shrunk()),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.offset += n as u64;
        Ok(n)
    }

    fn after_turn(&self) -> Sent {
        if self.offset >= self.end {
            Sent::All
        } else {
            Sent::Yield
        }
    }
}

/// The file ended before the range the head announced: the response cannot be completed.
fn shrunk() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file became shorter while it was sent",
    )
}
