//! One connection's life on an app thread: parse the head, run the app, write, keep alive.
//!
//! A connection reaches an app thread only once a whole request head is buffered (the event loop
//! reads heads), so a slow client never holds an app thread while it dribbles its headers. The
//! thread then serves every request already buffered (pipelining) and hands the connection back
//! to the loop when it would have to wait for the client.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use app_abi::raw::{
    WS_ERR_BAD_BODY, WS_ERR_CLIENT_GONE, WS_ERR_TIMEOUT, WS_ERR_TOO_LARGE, WS_REQ_MULTIPROCESS,
    WS_REQ_MULTITHREAD,
};
use mio::net::TcpStream;
use mio::Token;

use super::socket_io::{read_append, read_with_timeout, write_all_with_timeout};
use super::Shared;
use crate::app::call::{self, RequestFacts, Scratch, Transport};
use crate::app::environ::{Environ, RequestParts};
use crate::http::body::{BodyDecoder, BodyError};
use crate::http::request::{parse_head, BodyFraming, ParseError, RequestHead};
use crate::http::response::{encode_continue, encode_error, DateCache};
use crate::http::target::split_target_for;

/// Input buffer size a connection starts with; it grows up to the head limit when needed.
const INITIAL_BUFFER: usize = 4 * 1024;

/// A client connection and the bytes read from it that no request has consumed yet.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) token: Token,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    /// Unconsumed input is `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// Where the search for the end of the head resumes, so byte-at-a-time clients cost O(n).
    scanned: usize,
    /// The last read found the socket empty: with edge-triggered polling the connection may be
    /// parked without reading again.
    pub(crate) drained: bool,
    /// Registered with the poller (done when first parked).
    pub(crate) registered: bool,
    /// When the loop may close this connection if it is still parked.
    pub(crate) deadline: Instant,
    /// When the client started sending the head it has not finished (or connected, before its
    /// first request): the header timeout counts from here, however slowly bytes trickle in.
    pub(crate) head_since: Option<Instant>,
    /// At least one request was answered: between requests the keep-alive timeout applies.
    pub(crate) served_any: bool,
}

/// What a non-blocking read found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filled {
    /// A whole head (or more than a head's limit) is buffered: hand the connection to a thread.
    Ready,
    /// Nothing more to read now.
    Waiting,
    /// The client closed or the socket failed.
    Closed,
}

impl Conn {
    pub(crate) fn new(
        stream: TcpStream,
        token: Token,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
        header_timeout: Duration,
    ) -> Conn {
        Conn {
            stream,
            token,
            peer,
            local,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            drained: false,
            registered: false,
            deadline: now + header_timeout,
            head_since: Some(now),
            served_any: false,
        }
    }

    /// Drop the read buffer if it holds nothing (it is allocated again on the next read).
    pub(crate) fn release_buffer(&mut self) {
        if !self.has_partial_request() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
            self.start = 0;
            self.scanned = 0;
        }
    }

    pub(crate) fn has_partial_request(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Reads what the socket holds (without waiting) until a head is complete.
    pub(crate) fn fill(&mut self, max_head: usize) -> Filled {
        loop {
            if self.head_complete(max_head) {
                return Filled::Ready;
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.scanned = self.scanned.saturating_sub(self.start);
                self.start = 0;
            }
            match read_append(&self.stream, &mut self.buf, INITIAL_BUFFER) {
                Ok(0) => return Filled::Closed,
                Ok(n) => {
                    // A short read means the socket was emptied: a later arrival raises a new edge.
                    self.drained = n < INITIAL_BUFFER;
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.drained = true;
                        return Filled::Waiting;
                    }
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        log::debug!("{}: read failed: {e}", self.peer);
                        return Filled::Closed;
                    }
                },
            }
            if self.drained && !self.head_complete(max_head) {
                return Filled::Waiting;
            }
        }
    }

    /// True when `buf[start..]` holds a blank line ending the head (CRLF or bare LF, RFC 9112
    /// §2.2), or more bytes than a head may have (the parser then answers 414/431).
    fn head_complete(&mut self, max_head: usize) -> bool {
        let input = &self.buf[self.start..];
        if input.len() > max_head {
            return true;
        }
        let from = self.scanned.saturating_sub(self.start).saturating_sub(2);
        // Leading blank lines before a request line are skipped by the parser (RFC 9112 §2.2),
        // so a blank line only ends a head once something else was seen.
        let mut seen_content = input[..from.min(input.len())]
            .iter()
            .any(|&b| b != b'\r' && b != b'\n');
        let mut i = from;
        while i < input.len() {
            let b = input[i];
            if b == b'\n' && seen_content {
                let rest = &input[i + 1..];
                if rest.first() == Some(&b'\n') || rest.starts_with(b"\r\n") {
                    return true;
                }
            } else if b != b'\r' && b != b'\n' {
                seen_content = true;
            }
            i += 1;
        }
        self.scanned = self.start + input.len();
        false
    }
}

/// Per-thread buffers reused by every request this thread serves.
#[derive(Default)]
pub(crate) struct ThreadScratch {
    /// Index of the app thread that owns this scratch (for the --timeout watchdog).
    pub(crate) thread: usize,
    head: Option<RequestHead>,
    environ: Environ,
    call: Scratch,
    date: DateCache,
    body_sink: Vec<u8>,
}

impl ThreadScratch {
    pub(crate) fn new(thread: usize) -> ThreadScratch {
        ThreadScratch {
            thread,
            ..ThreadScratch::default()
        }
    }
}

/// What to do with a connection after serving what it had buffered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// Wait for more input on the event loop.
    Park,
    /// Done with it.
    Close,
}

/// Serve every complete request in `conn`'s buffer, reading more only while the socket has some.
pub(crate) fn serve(conn: &mut Conn, shared: &Shared, scratch: &mut ThreadScratch) -> After {
    let mut head = scratch.head.take().unwrap_or_default();
    let after = serve_buffered(conn, &mut head, shared, scratch);
    scratch.head = Some(head);
    // The responses to a batch of pipelined requests leave in one write.
    let out = &mut scratch.call.out;
    if !out.is_empty() {
        let sent = write_all_with_timeout(&mut conn.stream, &[out], shared.config.io_timeout);
        out.clear();
        if let Err(e) = sent {
            log::debug!("{}: client gone while sending responses: {e}", conn.peer);
            return After::Close;
        }
    }
    after
}

fn serve_buffered(
    conn: &mut Conn,
    head: &mut RequestHead,
    shared: &Shared,
    scratch: &mut ThreadScratch,
) -> After {
    let max_head = shared.config.limits.max_head;
    loop {
        head.clear();
        match parse_head(&conn.buf[conn.start..], &shared.config.limits, head) {
            Ok(Some(head_len)) => {
                if !serve_one(conn, head, head_len, shared, scratch) {
                    return After::Close;
                }
            }
            Ok(None) => {
                if conn.drained {
                    return After::Park;
                }
                let before = conn.buf.len() - conn.start;
                match conn.fill(max_head) {
                    Filled::Closed => return After::Close,
                    Filled::Waiting => return After::Park,
                    // The parser and the blank-line scan disagree only if no new byte came in.
                    Filled::Ready if conn.buf.len() - conn.start == before => return After::Park,
                    Filled::Ready => {}
                }
            }
            Err(e) => {
                reject(conn, &e, scratch);
                return After::Close;
            }
        }
    }
}

/// One request whose head is `conn.buf[start..start + head_len]`. True if the connection may
/// carry another request.
fn serve_one(
    conn: &mut Conn,
    head: &RequestHead,
    head_len: usize,
    shared: &Shared,
    scratch: &mut ThreadScratch,
) -> bool {
    // Only the access log wants the duration: no clock read per request otherwise.
    let access_log = log::log_enabled!(target: "access", log::Level::Info);
    let started = access_log.then(Instant::now);
    let config = &shared.config;
    let buf = &conn.buf[conn.start..conn.start + head_len];
    let method = head.method(buf);
    let target = head.target(buf);
    let (path, query) = match split_target_for(method, target) {
        Ok(parts) => parts,
        Err(e) => {
            reject(conn, &e, scratch);
            return false;
        }
    };
    if let BodyFraming::Length(n) = head.framing {
        if n > config.max_body {
            reject_status(
                conn,
                413,
                &format!("Content-Length {n} exceeds --max-body {}", config.max_body),
                scratch,
            );
            return false;
        }
    }
    let mut flags = WS_REQ_MULTITHREAD;
    if config.multiprocess {
        flags |= WS_REQ_MULTIPROCESS;
    }
    let facts = RequestFacts {
        is_head: method == b"HEAD",
        version_minor: head.version_minor,
        keep_alive: head.keep_alive && !shared.draining(),
        flags,
        defer_flush: true,
    };
    let environ = scratch.environ.build(RequestParts {
        method,
        raw_path: path,
        query,
        authority: absolute_form_authority(target),
        version_minor: head.version_minor,
        headers: head.header_iter(buf),
        local: conn.local,
        remote: conn.peer,
        flags,
    });
    conn.start += head_len;
    conn.head_since = None;
    conn.served_any = true;
    let mut transport = ConnTransport {
        decoder: BodyDecoder::new(&head.framing, config.max_body),
        conn: &mut *conn,
        expect_continue: head.expect_continue,
        continue_sent: false,
        timeout: config.io_timeout,
        date: &mut scratch.date,
        wall: shared.coarse_wall(),
        sink: &mut scratch.body_sink,
    };
    shared.mark_busy(scratch.thread, true);
    let outcome = {
        let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
        call::run(
            &shared.app,
            environ,
            facts,
            &mut transport,
            &mut scratch.call,
        )
    };
    shared.mark_busy(scratch.thread, false);
    if let Some(started) = started {
        // The environ arena still holds the method, path and query (its first variables).
        let var = |i: usize| {
            // SAFETY: the pairs point into scratch.environ, untouched since `build`.
            environ
                .get(i)
                .map(|p| String::from_utf8_lossy(unsafe { p.value.as_slice() }).into_owned())
        };
        let query = var(3)
            .filter(|q| !q.is_empty())
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        log::info!(
            target: "access",
            "{} \"{} {}{} HTTP/1.{}\" {} {} {:.3}ms",
            conn.peer.ip(),
            var(0).unwrap_or_default(),
            var(2).unwrap_or_default(),
            query,
            facts.version_minor,
            outcome.status,
            outcome.body_bytes,
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    outcome.reusable
}

/// `http://example.com:8080/x` → `example.com:8080`; `None` for other target forms.
fn absolute_form_authority(target: &[u8]) -> Option<&[u8]> {
    let scheme_end = target.windows(3).position(|w| w == b"://")?;
    if !target[..scheme_end].iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn reject(conn: &mut Conn, error: &ParseError, scratch: &mut ThreadScratch) {
    reject_status(conn, error.status(), &error.to_string(), scratch);
}

/// Answer a request the app never saw with an error status and close (RFC 9112 §9.6 lets a
/// server close after an error; after a framing error it must, as the next request's start is
/// unknown).
fn reject_status(conn: &mut Conn, status: u16, reason: &str, scratch: &mut ThreadScratch) {
    log::info!(target: "access", "{} \"-\" {status} 0 rejected: {reason}", conn.peer.ip());
    // Appended after any responses still held for this connection; `serve` sends them all.
    encode_error(&mut scratch.call.out, status, scratch.date.get());
}

/// The request body and the socket, as the app sees them through `read` and the response path.
struct ConnTransport<'a> {
    conn: &'a mut Conn,
    decoder: BodyDecoder,
    expect_continue: bool,
    continue_sent: bool,
    timeout: Duration,
    date: &'a mut DateCache,
    wall: std::time::SystemTime,
    sink: &'a mut Vec<u8>,
}

impl ConnTransport<'_> {
    fn decode_buffered(&mut self, out: &mut [u8]) -> Result<usize, i32> {
        loop {
            let input = &self.conn.buf[self.conn.start..];
            if self.decoder.is_done() || input.is_empty() {
                return Ok(0);
            }
            let (consumed, produced) = self.decoder.decode(input, out).map_err(body_error_code)?;
            self.conn.start += consumed;
            if produced > 0 || consumed == 0 {
                return Ok(produced);
            }
        }
    }

    /// RFC 9110 §10.1.1: the client waits for `100 Continue` before sending the body; send it
    /// when the app first asks for body bytes that are not here yet.
    fn send_continue(&mut self) -> Result<(), i32> {
        if self.expect_continue && !self.continue_sent {
            self.continue_sent = true;
            let mut interim = Vec::with_capacity(32);
            encode_continue(&mut interim);
            write_all_with_timeout(&mut self.conn.stream, &[&interim], self.timeout)
                .map_err(|_| WS_ERR_CLIENT_GONE)?;
        }
        Ok(())
    }
}

fn body_error_code(error: BodyError) -> i32 {
    log::debug!("request body rejected: {error}");
    if error.status() == 413 {
        WS_ERR_TOO_LARGE
    } else {
        WS_ERR_BAD_BODY
    }
}

impl Transport for ConnTransport<'_> {
    fn read_body(&mut self, out: &mut [u8], may_continue: bool) -> Result<usize, i32> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let produced = self.decode_buffered(out)?;
            if produced > 0 || self.decoder.is_done() {
                return Ok(produced);
            }
            if may_continue {
                self.send_continue()?;
            }
            let conn = &mut *self.conn;
            if conn.start > 0 {
                conn.buf.drain(..conn.start);
                conn.start = 0;
            }
            conn.scanned = 0;
            let len = conn.buf.len();
            conn.buf.resize(len + 16 * 1024, 0);
            let read = read_with_timeout(&mut conn.stream, &mut conn.buf[len..], self.timeout);
            conn.drained = false;
            match read {
                Ok(0) => {
                    conn.buf.truncate(len);
                    log::debug!("{}: client closed the connection mid-body", conn.peer);
                    return Err(WS_ERR_CLIENT_GONE);
                }
                Ok(n) => conn.buf.truncate(len + n),
                Err(e) => {
                    conn.buf.truncate(len);
                    log::debug!("{}: reading the body failed: {e}", conn.peer);
                    return Err(if e.kind() == io::ErrorKind::TimedOut {
                        WS_ERR_TIMEOUT
                    } else {
                        WS_ERR_CLIENT_GONE
                    });
                }
            }
        }
    }

    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        write_all_with_timeout(&mut self.conn.stream, parts, self.timeout)
    }

    fn body_consumed(&mut self) -> bool {
        // Drain only what is already buffered: waiting for an unread body would let a client
        // hold the thread, and closing the connection is always correct.
        let mut sink = std::mem::take(self.sink);
        sink.resize(8 * 1024, 0);
        while !self.decoder.is_done() {
            match self.decode_buffered(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        *self.sink = sink;
        self.decoder.is_done()
    }

    fn date(&mut self) -> &[u8] {
        self.date.at(self.wall)
    }
}

#[cfg(test)]
mod tests {
    use super::absolute_form_authority;

    #[test]
    fn authority_of_absolute_form_targets() {
        let cases: [(&[u8], Option<&[u8]>); 5] = [
            (b"http://example.com:8080/x?y", Some(b"example.com:8080")),
            (b"https://h?q", Some(b"h")),
            (b"http://h", Some(b"h")),
            (b"/path?http://x", None),
            (b"*", None),
        ];
        for (target, want) in cases {
            assert_eq!(absolute_form_authority(target), want, "{target:?}");
        }
    }
}
