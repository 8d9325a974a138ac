//! One TLS connection's state and its I/O on a non-blocking socket, with the same contracts as
//! the plain socket's (`server::socket_io`), so `server::conn` can call either.
//!
//! The handshake is driven by reads: the first `read_append` of a new connection takes the
//! ClientHello, answers it and returns `WouldBlock` with no plaintext, so the connection parks
//! on the event loop like one whose client has not sent its head yet, under the same
//! `--header-timeout` (counted from the connect). No serving thread ever waits for a
//! handshake; handshake records are written without waiting (a new socket's send buffer holds
//! the server's flight; if it ever did not, the rest goes out with the next read).
//!
//! A read that returns fewer bytes than asked found the socket empty and no decrypted byte
//! left in rustls (as `socket::read_append`): with edge-triggered polling the caller may park
//! the connection then without losing input — unless [`TlsSession::ended`] says the client's
//! end (its close_notify, or the socket's end) came with those bytes: no new edge will announce
//! it, so the caller reads again instead, and finds the end.
//!
//! A client's close_notify ends its input only ([`TlsSession::half_closed`]): a request it sent
//! before is answered (a parked one is not taken for a client that left), then the connection
//! closes.
//!
//! Every TLS connection the server closes ends with a close_notify alert (RFC 8446 §6.1, and
//! RFC 9112 §9.8 for HTTP: a server MUST send one before it closes): [`TlsSession::close`], when
//! the connection is dropped, whatever the reason (`Connection: close`, a timeout, an error, a
//! drain, or the client's own close_notify, which is answered with one).

use std::io::{self, BufRead, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection};

use super::ClientCert;
use crate::sys::socket::{wait_ready, Ready, Stream};
use crate::write_parts::{slices_after, MAX_WRITE_SLICES};

/// What one step of reading from the socket gave.
enum Pulled {
    /// Records were read and processed (there may be plaintext now).
    Records,
    /// The socket is empty.
    Empty,
    /// The client closed its side.
    Closed,
}

/// The socket as rustls reads it, noting whether the read came back shorter than asked.
struct ShortRead<'a> {
    sock: &'a mut Stream,
    short: bool,
}

impl io::Read for ShortRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// A TLS server connection; the socket stays the caller's.
pub(crate) struct TlsSession {
    conn: ServerConnection,
    /// The client's end of the stream was seen after some plaintext in the same read: the next
    /// read returns it.
    ended: bool,
    /// The client sent close_notify: it sends nothing more, but may still read (RFC 8446 §6.1:
    /// a close_notify does not affect the read side).
    half_closed: bool,
    /// The client's certificate as environ variables, once the handshake completed.
    client: Option<ClientCert>,
    /// The last socket read of this `read_append` came back short or empty: the socket held
    /// nothing more then (a later arrival is a new edge for the poller).
    socket_drained: bool,
}

impl TlsSession {
    pub(crate) fn new(config: &Arc<ServerConfig>) -> io::Result<TlsSession> {
        let conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        Ok(TlsSession {
            conn,
            ended: false,
            half_closed: false,
            client: None,
            socket_drained: false,
        })
    }

    /// The last [`Self::read_append`] left the socket empty: its last socket read came back
    /// short (or found nothing).
    pub(crate) fn socket_drained(&self) -> bool {
        self.socket_drained
    }

    /// The last read's bytes came with the client's end of the stream (a read that returned
    /// fewer bytes than asked did not find the socket merely empty): read again to see it.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// The client sent close_notify (rather than just closing the socket): the end of its
    /// input, not of the connection, so a request it sent is still answered.
    pub(crate) fn half_closed(&self) -> bool {
        self.half_closed
    }

    /// Ends the TLS channel before the socket closes: a close_notify alert, sent without
    /// waiting, behind whatever encrypted bytes are still queued (best effort: a client that
    /// is gone or does not read does not get it). Nothing before the handshake completed.
    pub(crate) fn close(&mut self, sock: &mut Stream) {
        if self.conn.is_handshaking() {
            return;
        }
        self.conn.send_close_notify();
        if let Err(e) = self.flush(sock, None) {
            log::debug!("close_notify not sent: {e}");
        }
    }

    /// The client's certificate (verified in the handshake) as environ variables; `None` before
    /// the handshake completed.
    pub(crate) fn client_cert(&self) -> Option<&ClientCert> {
        self.client.as_ref()
    }

    /// The handshake is not finished: there is no TLS channel to answer on yet.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Up to `max` decrypted bytes appended to `buf`, without waiting. `Ok(0)` is the end of the
    /// stream; `WouldBlock` means no byte is available now (also mid-handshake).
    pub(crate) fn read_append(
        &mut self,
        sock: &mut Stream,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<usize> {
        let start = buf.len();
        self.socket_drained = false;
        loop {
            let got = buf.len() - start;
            if got == max {
                return Ok(got);
            }
            match self.append_decrypted(buf, max - got) {
                Ok(0) => {
                    self.ended = got > 0;
                    return Ok(got);
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Closed without close_notify: most HTTP clients do; the end of the stream all
                // the same (HTTP framing says whether a message was cut short).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.ended = got > 0;
                    return Ok(got);
                }
                Err(e) => return Err(e),
            }
            if got > 0 && self.socket_drained {
                // Another read would only find the socket empty (tokio's streams skip it too).
                return Ok(got);
            }
            match self.pull(sock)? {
                Pulled::Records | Pulled::Closed => {}
                Pulled::Empty if got > 0 => return Ok(got),
                Pulled::Empty => return Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    /// Appends up to `room` bytes of the plaintext rustls holds to `buf`, copied straight from
    /// its buffer (reading into a slice would first zero one as large as `room`, 16 KiB for an
    /// HTTP/2 read: that memset cost more than all of TLS's record work for a small request).
    /// `Ok(0)` is the end of the stream, as `Reader::read` says it.
    fn append_decrypted(&mut self, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        let mut reader = self.conn.reader();
        let chunk = reader.fill_buf()?;
        let n = chunk.len().min(room);
        buf.extend_from_slice(&chunk[..n]);
        reader.consume(n);
        Ok(n)
    }

    /// Some decrypted bytes into `out`, waiting up to `timeout` for them. `Ok(0)` is the end of
    /// the stream.
    pub(crate) fn read_with_timeout(
        &mut self,
        sock: &mut Stream,
        out: &mut [u8],
        timeout: Duration,
    ) -> io::Result<usize> {
        loop {
            match self.read_into(sock, out) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !wait_ready(sock.as_fd(), Ready::Readable, timeout)? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "client sent nothing within --io-timeout",
                        ));
                    }
                }
                read => return read,
            }
        }
    }

    /// Some decrypted bytes into `out`, without waiting (an upgraded connection's read, ABI 1.2).
    /// `Ok(0)` is the end of the stream; `WouldBlock` means no byte is available now.
    pub(crate) fn read_into(&mut self, sock: &mut Stream, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if let Pulled::Empty = self.pull(sock)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }

    /// Encrypts every part and sends it, waiting up to `timeout` each time the socket is full.
    pub(crate) fn write_all(
        &mut self,
        sock: &mut Stream,
        parts: &[&[u8]],
        timeout: Duration,
    ) -> io::Result<()> {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        let mut taken = 0;
        loop {
            taken += self.take_plaintext(parts, taken)?;
            self.flush(sock, Some(timeout))?;
            if taken >= total {
                return Ok(());
            }
        }
    }

    /// Encrypts as much of `parts` as rustls's outgoing buffer takes and sends what the socket
    /// takes now, without waiting; returns the plaintext bytes taken (a deferred request's
    /// output: the caller keeps the rest and waits for room on epoll).
    pub(crate) fn write_nonblocking(
        &mut self,
        sock: &mut Stream,
        parts: &[&[u8]],
    ) -> io::Result<usize> {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        let mut taken = 0;
        loop {
            taken += self.take_plaintext(parts, taken)?;
            self.flush(sock, None)?;
            // Stop when the socket is full (rustls still holds records: the caller waits for
            // room on epoll, which raises a new edge) or when everything was taken. Stopping
            // with an empty rustls buffer and plaintext left would wait for an edge that never
            // comes.
            if self.conn.wants_write() || taken == total {
                return Ok(taken);
            }
        }
    }

    /// Gives rustls the bytes of `parts` after the first `skip`, as far as its outgoing
    /// buffer's limit takes them; returns how many it took. The parts go in together, so a head
    /// and its body make one record.
    fn take_plaintext(&mut self, parts: &[&[u8]], skip: usize) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let count = slices_after(parts, skip + taken, &mut slices);
            if count == 0 {
                return Ok(taken);
            }
            match self.conn.writer().write_vectored(&slices[..count])? {
                // rustls's buffer limit: the rest waits until the socket took some.
                0 => return Ok(taken),
                n => taken += n,
            }
        }
    }

    /// Encrypted bytes wait for room in the socket.
    pub(crate) fn has_unsent(&self) -> bool {
        self.conn.wants_write()
    }

    /// Sends the encrypted bytes waiting, as far as the socket takes them now; true once none
    /// is left.
    pub(crate) fn flush_nonblocking(&mut self, sock: &mut Stream) -> io::Result<bool> {
        self.flush(sock, None)?;
        Ok(!self.conn.wants_write())
    }

    /// Sends what can be sent now (an error response on a connection being given up on).
    pub(crate) fn write_now(&mut self, sock: &mut Stream, bytes: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(bytes)?;
        self.flush(sock, None)
    }

    /// Reads what the socket holds into rustls and processes it; records to send in answer
    /// (handshake messages, session tickets, alerts) are written without waiting.
    fn pull(&mut self, sock: &mut Stream) -> io::Result<Pulled> {
        let pulled = loop {
            let mut counted = ShortRead { sock, short: false };
            let read = self.conn.read_tls(&mut counted);
            self.socket_drained = counted.short;
            match read.inspect(|&n| crate::stats::bytes_in(n)) {
                Ok(0) => break Pulled::Closed,
                Ok(_) => break Pulled::Records,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket_drained = true;
                    return Ok(Pulled::Empty);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.process(sock)?;
        Ok(pulled)
    }

    /// Takes TLS records that arrived before the session existed (after a PROXY protocol
    /// header, read from the raw socket) as if they had been read from the socket now.
    pub(crate) fn take_early_records(&mut self, sock: &mut Stream, early: &[u8]) -> io::Result<()> {
        let mut rest = early;
        while !rest.is_empty() {
            if self.conn.read_tls(&mut rest)? == 0 {
                break;
            }
            self.process(sock)?;
        }
        Ok(())
    }

    /// Processes the records rustls read; records to send in answer go out without waiting.
    fn process(&mut self, sock: &mut Stream) -> io::Result<()> {
        let handshaking = self.conn.is_handshaking();
        let processed = self.conn.process_new_packets();
        if self.conn.wants_write() {
            // The alert of a failure goes out too, best effort.
            if let Err(e) = self.flush(sock, None) {
                if processed.is_ok() {
                    return Err(e);
                }
            }
        }
        match processed {
            Ok(state) => {
                self.half_closed |= state.peer_has_closed();
                if handshaking && !self.conn.is_handshaking() {
                    let leaf = self
                        .conn
                        .peer_certificates()
                        .and_then(|chain| chain.first());
                    self.client = Some(ClientCert::new(leaf.map(|der| der.as_ref())));
                }
                Ok(())
            }
            Err(e) => {
                if handshaking {
                    // The same text for the same failure, so the log's repeat limit
                    // (crate::log_limit) summarises a flood of them in one line.
                    match e {
                        rustls::Error::NoCertificatesPresented
                        | rustls::Error::InvalidCertificate(_) => log::warn!(
                            "TLS client certificate refused: {e} (--cert-reqs, --ca-certs and --crl decide who may connect)"
                        ),
                        _ => log::warn!("TLS handshake failed: {e} (a client that does not speak TLS, or garbage, on a TLS listener)"),
                    }
                }
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    /// Writes the records rustls holds; with a `timeout`, waits that long each time the socket
    /// is full, without one gives up (`Ok`) when it is.
    fn flush(&mut self, sock: &mut Stream, timeout: Option<Duration>) -> io::Result<()> {
        while self.conn.wants_write() {
            match self
                .conn
                .write_tls(sock)
                .inspect(|&n| crate::stats::bytes_out(n))
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let Some(timeout) = timeout else {
                        return Ok(());
                    };
                    if !wait_ready(sock.as_fd(), Ready::Writable, timeout)? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "client read nothing within --io-timeout",
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
