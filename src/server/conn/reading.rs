//! A connection's input: the bytes read from it that no request has consumed yet, and the
//! reads that fill them — the next head (with the PROXY header before the first), a parked
//! request's body bytes, a body the app waits for, an upgraded connection's stream.
//!
//! Reads for a head never wait: a thread reads what the socket holds, and the connection is
//! parked on the poller when that is not a whole head, so a client dribbling its head holds no
//! thread. Only body reads wait, bounded by `--io-timeout`. A TLS handshake runs inside the
//! first head reads and parks like a head that has not arrived.
//!
//! While a thread serves the connection the input lives in the thread's read buffer
//! ([`Conn::borrow_buffer`]); parked, it is empty or an exact-size copy of a partial request
//! ([`Conn::return_buffer`]), so an idle connection holds no read buffer at all.

use std::io;
use std::time::Duration;

use super::{Conn, NextHead};
use crate::http::proxy_protocol;
use crate::http::request::{find_head, Found, RequestHead};
use crate::http::scan::{HeadScanner, Limits};
use crate::listen::Peer;

/// Bytes asked of the socket per read while a head arrives; also the size of the read buffer a
/// serving thread starts with (it grows up to the head limit when needed).
pub(crate) const HEAD_READ: usize = 4 * 1024;

/// Bytes asked of the socket per read while the app reads the request body.
const BODY_READ: usize = 16 * 1024;

/// The unconsumed input.
#[derive(Default)]
pub(super) struct Input {
    /// Unconsumed input is `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// The end of the next head, searched for in `buf[start..]` as bytes arrive when it did not
    /// come whole: resumed after each read, so a byte-at-a-time client costs O(n).
    scanner: HeadScanner,
}

/// Where the PROXY header a connection must start with stands.
enum ProxyHeaderState {
    /// Read: the peer is its client, HTTP follows.
    Taken,
    /// Not all there yet.
    Incomplete,
    /// Malformed (logged): close the connection without an answer.
    Refused,
}

impl Conn {
    /// The unconsumed input.
    pub(crate) fn input(&self) -> &[u8] {
        self.input.buf.get(self.input.start..).unwrap_or_default()
    }

    /// `n` bytes at the start of the input were used (a head or body bytes); whatever follows
    /// them starts the next head.
    pub(crate) fn consume(&mut self, n: usize) {
        let input = &mut self.input;
        input.start = input.start.saturating_add(n).min(input.buf.len());
        input.scanner.reset();
    }

    /// Moves the unconsumed input to the front of the buffer (the scanner's offsets are
    /// relative to it, so they stay valid).
    fn compact(&mut self) {
        if self.input.start > 0 {
            self.input.buf.drain(..self.input.start);
            self.input.start = 0;
        }
    }

    /// Bytes of a request that has not been served yet are buffered. (A PROXY header still
    /// arriving is not a request: a timeout closes it without an HTTP answer to the proxy.)
    pub(crate) fn has_partial_request(&self) -> bool {
        self.input.start < self.input.buf.len() && !self.awaits_proxy_header()
    }

    /// Lends the serving thread's read buffer (`spare`, empty) to this connection while the
    /// thread serves it; what the connection kept of a partial request moves into it.
    pub(crate) fn borrow_buffer(&mut self, spare: &mut Vec<u8>) {
        if !self.input().is_empty() {
            spare.clear();
            spare.extend_from_slice(self.input());
        }
        // The connection's own copy (if any) is freed here.
        self.input.buf = std::mem::take(spare);
        self.input.start = 0;
    }

    /// Gives the lent buffer back to the thread (`spare`) before the connection parks or
    /// closes: an idle connection holds no read buffer at all, and one that parks with part of
    /// a request (a head still arriving, body bytes its parked app has not read) keeps an
    /// exact-size copy of just those bytes (nginx's way). The scanner's offsets are relative to
    /// the unconsumed input, so they stay valid.
    pub(crate) fn return_buffer(&mut self, spare: &mut Vec<u8>) {
        let kept = match self.input() {
            [] => Vec::new(),
            partial => partial.to_vec(),
        };
        *spare = std::mem::replace(&mut self.input.buf, kept);
        spare.clear();
        self.input.start = 0;
    }

    /// One non-blocking read of up to `max` bytes of input appended to the buffer: from the
    /// raw socket while a PROXY header is expected, else through the transport's layers; a
    /// short read found nothing more to read.
    fn read_available(&mut self, max: usize) -> io::Result<usize> {
        if self.awaits_proxy_header() {
            self.transport.read_raw_append(&mut self.input.buf, max)
        } else {
            self.transport.read_append(&mut self.input.buf, max)
        }
    }

    /// The poller announced input: read before concluding there is none.
    pub(crate) fn mark_readable(&mut self) {
        self.transport.drained = false;
    }

    /// A TLS client sent close_notify: nothing more will arrive, but it may still read.
    pub(crate) fn tls_half_closed(&self) -> bool {
        self.transport.tls_half_closed()
    }

    /// Looks for the next head in the input, reading what the socket holds (without waiting)
    /// until it is decided or the socket is empty (`request::find_head`: a head that came whole
    /// is parsed into `head` at once).
    pub(crate) fn next_head(&mut self, limits: &Limits, head: &mut RequestHead) -> NextHead {
        loop {
            if self.awaits_proxy_header() {
                match self.take_proxy_header() {
                    ProxyHeaderState::Taken => continue,
                    ProxyHeaderState::Incomplete if self.transport.drained => {
                        return NextHead::Waiting
                    }
                    ProxyHeaderState::Incomplete => {}
                    ProxyHeaderState::Refused => return NextHead::Closed,
                }
            } else {
                let input = self.input.buf.get(self.input.start..).unwrap_or_default();
                match find_head(&mut self.input.scanner, input, limits, head) {
                    Ok(Some(Found::Parsed(len))) => return NextHead::Parsed(len),
                    Ok(Some(Found::Scanned(end))) => return NextHead::Complete(end),
                    Err(e) => return NextHead::Invalid(e),
                    Ok(None) if self.transport.drained => return NextHead::Waiting,
                    Ok(None) => {}
                }
            }
            self.compact();
            match self.read_available(HEAD_READ) {
                Ok(0) => return NextHead::Closed,
                // A short read means the socket was emptied: a later arrival raises a new edge.
                Ok(n) => self.transport.drained = n < HEAD_READ && !self.transport.tls_ended(),
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.transport.drained = true;
                        return NextHead::Waiting;
                    }
                    io::ErrorKind::Interrupted => {}
                    _ => {
                        log::debug!("{}: read failed: {e}", self.peer);
                        return NextHead::Closed;
                    }
                },
            }
        }
    }

    /// Reads the PROXY header from the input if it is all there, and makes its source the
    /// peer. A malformed one is logged (repeats are summarised by `log_limit`) and refused.
    fn take_proxy_header(&mut self) -> ProxyHeaderState {
        match proxy_protocol::parse(self.input()) {
            Ok(None) => ProxyHeaderState::Incomplete,
            Ok(Some(header)) => {
                log::debug!(
                    "{}: PROXY header names client {:?}",
                    self.peer,
                    header.source
                );
                if let Some(source) = header.source {
                    self.peer = Peer::Tcp(source);
                    self.spelled = None;
                }
                self.proxy_header_taken();
                self.consume(header.len);
                if self.transport.is_tls() {
                    // What followed the header is the start of the TLS handshake.
                    let early = self.input.buf.get(self.input.start..).unwrap_or_default();
                    if let Err(e) = self.transport.take_early_records(early) {
                        log::debug!("{}: TLS after the PROXY header: {e}", self.peer);
                        return ProxyHeaderState::Refused;
                    }
                    self.input.start = self.input.buf.len();
                    self.compact();
                }
                ProxyHeaderState::Taken
            }
            Err(e) => {
                // The peer's address only (not its port), so one misconfigured proxy makes
                // one summarised line, not one per connection.
                log::warn!(
                    "closed a connection from {} on a PROXY-protocol listener: {e} (only a proxy sending PROXY headers may connect there; drop --proxy-protocol / the listener's `proxy` option otherwise)",
                    self.peer.host()
                );
                ProxyHeaderState::Refused
            }
        }
    }

    /// Reads what the socket holds without waiting, up to `limit` bytes buffered: for a parked
    /// request, whose client may send body bytes or hang up. False if the client closed (or
    /// the socket failed).
    pub(crate) fn poll_input(&mut self, limit: usize) -> bool {
        if self.transport.drained {
            return true;
        }
        loop {
            if self.input().len() >= limit {
                // Back-pressure: the rest stays in the kernel until the app reads.
                return true;
            }
            self.compact();
            match self.read_available(BODY_READ) {
                // A TLS client's close_notify ends its input, not the connection: it still
                // reads the response (`tls_half_closed`).
                Ok(0) => return self.tls_half_closed(),
                Ok(n) if n < BODY_READ => {
                    self.transport.drained = true;
                    return true;
                }
                Ok(_) => {}
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.transport.drained = true;
                        return true;
                    }
                    io::ErrorKind::Interrupted => {}
                    _ => {
                        log::debug!("{}: read failed: {e}", self.peer);
                        return false;
                    }
                },
            }
        }
    }

    /// Waits up to `timeout` for more input (request body bytes) and appends it. `Ok(0)`: the
    /// client closed.
    pub(crate) fn read_more(&mut self, timeout: Duration) -> io::Result<usize> {
        self.compact();
        let buf = &mut self.input.buf;
        let len = buf.len();
        buf.resize(len + BODY_READ, 0);
        let read = self.transport.read_with_timeout(&mut buf[len..], timeout);
        self.transport.drained = false;
        buf.truncate(len + read.as_ref().map_or(0, |&n| n));
        read
    }

    /// An upgraded connection's read (ABI 1.2), never waiting: what is buffered first (the bytes
    /// the client sent after the request head), then one read from the socket (through TLS on
    /// a TLS connection). `Ok(0)`: the client ended its side; `WouldBlock`: nothing now.
    pub(crate) fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let input = self.input();
        if !input.is_empty() {
            let n = input.len().min(out.len());
            out[..n].copy_from_slice(&input[..n]);
            self.consume(n);
            if self.input.start == self.input.buf.len() {
                // Idle upgraded connections keep no buffer.
                self.input = Input::default();
            }
            return Ok(n);
        }
        self.transport.read_into(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::tests::{pair, settle};
    use super::*;
    use crate::http::request::parse_head;

    /// The connection, fed a byte at a time over a socket, decides each prefix exactly as the
    /// parser decides it whole: the same end of head, the same bare CR / bare LF / obs-fold
    /// rejections, at the same byte.
    #[test]
    fn connection_and_parser_agree_byte_by_byte() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next",
            b"\r\n\r\nGET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\n",
            b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
        ];
        for input in cases {
            let (mut conn, mut client) = pair();
            let name = String::from_utf8_lossy(input);
            let mut decided = None;
            for end in 1..=input.len() {
                client.write_all(&input[end - 1..end]).unwrap();
                let got = settle(&mut conn, end);
                let mut head = RequestHead::default();
                let want = parse_head(&input[..end], &Limits::default(), &mut head);
                match (&got, want) {
                    (NextHead::Waiting, Ok(None)) => {}
                    (NextHead::Parsed(found), Ok(Some(len))) => assert_eq!(*found, len),
                    // The parser's syntax errors inside a complete head come after the scan.
                    (NextHead::Complete(found), Ok(Some(len))) => assert_eq!(found.len, len),
                    (NextHead::Complete(found), Err(_)) => assert_eq!(found.len, end),
                    (NextHead::Invalid(e), Err(w)) => assert_eq!(*e, w, "{name:?} at {end}"),
                    (got, want) => panic!("{name:?} at {end}: connection {got:?}, parser {want:?}"),
                }
                if got != NextHead::Waiting {
                    decided = Some(got);
                    break;
                }
            }
            assert!(decided.is_some(), "{name:?}: never decided");
        }
    }

    #[test]
    fn consumed_head_starts_the_next_scan() {
        let (mut conn, mut client) = pair();
        let two = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(two).unwrap();
        let NextHead::Parsed(first) = settle(&mut conn, two.len()) else {
            panic!("first head not parsed");
        };
        conn.start_request(first);
        let mut head = RequestHead::default();
        assert_eq!(
            conn.next_head(&Limits::default(), &mut head),
            NextHead::Parsed(first)
        );
        assert_eq!(head.target(conn.input()), b"/2");
        conn.start_request(first);
        assert!(!conn.has_partial_request());
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(settle(&mut conn, usize::MAX), NextHead::Closed);
    }
}
