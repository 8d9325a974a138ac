//! One client connection's own state: its socket, addresses and listener options (on a
//! PROXY-protocol listener, the peer is the client its PROXY header names, read before the first
//! head), the input read from it that no request has consumed yet, where the next request head
//! ends in that input, and its timing —
//! when the coordinator may close it while it waits parked (header timeout, keep-alive, drain).
//!
//! Reads for a head never wait: a thread reads what the socket holds, and the connection is
//! parked on the poller when that is not a whole head, so a client dribbling its head holds no
//! thread. Only body reads wait, bounded by `--io-timeout`. Serving the requests in the buffer
//! is `serve.rs`'s. A connection may also hold a deferred request that waits for the app
//! (`parked`, ABI 1.1; see `deferred.rs`): then its deadline is that request's `--timeout`, and
//! the response bytes its client has no room for yet (`unsent`).
//!
//! A TLS connection (`tls`) reads and writes through its `TlsSession` instead of the socket
//! (one branch per read or write; the plain path is otherwise untouched). Its handshake runs
//! inside the first head reads and parks like a head that has not arrived, under the same
//! header timeout. On a listener with both `proxy` and `tls`, the PROXY header is read from the
//! raw socket first and whatever followed it is handed to the TLS session.
//!
//! A `--static` answer's body too large to hold (`file`) is sent from its file as the client
//! reads, before the next request on the connection is served; while the client's window is
//! full the connection parks, watched for room to send, with `--io-timeout` as its deadline.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::deferred::ParkedRequest;
use super::listener::Accepted;
use super::slots::Token;
use super::socket_io::{read_append, read_with_timeout, write_all_with_timeout, write_nonblocking};
use super::Config;
use crate::app::call::Cancel;
use crate::app::environ::AddrVars;
use crate::http::error::ParseError;
use crate::http::proxy_protocol;
use crate::http::request::{find_head, Found, RequestHead};
use crate::http::scan::{HeadEnd, HeadScanner, Limits};
use crate::listen::{ListenerOptions, Peer};
use crate::static_files::{FileBody, Sent};
use crate::sys::socket::Stream;
use crate::tls::TlsSession;

/// Bytes asked of the socket per read while a head arrives; also the size of the read buffer a
/// serving thread starts with (it grows up to the head limit when needed).
pub(crate) const HEAD_READ: usize = 4 * 1024;

/// Bytes asked of the socket per read while the app reads the request body.
const BODY_READ: usize = 16 * 1024;

/// While draining, how long a connection whose last response promised keep-alive (it began
/// before the drain) waits for the request its client may already be sending.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// While draining, how long an idle connection may wait for its next request.
fn drain_linger(config: &Config) -> Duration {
    config
        .keep_alive
        .min(config.graceful_timeout)
        .min(DRAIN_LINGER)
}

/// A client connection and the bytes read from it that no request has consumed yet.
pub(crate) struct Conn {
    stream: Stream,
    token: Token,
    peer: Peer,
    /// `None` on a unix socket.
    local: Option<SocketAddr>,
    /// What the listener it came from does besides HTTP (TLS, PROXY protocol).
    options: ListenerOptions,
    /// Unconsumed input is `buf[start..]`. While a thread serves the connection this is the
    /// thread's read buffer (`borrow_buffer`); parked, it is empty or an exact-size copy of a
    /// partial request (`return_buffer`).
    buf: Vec<u8>,
    start: usize,
    /// The end of the next head, searched for in `buf[start..]` as bytes arrive when it did not
    /// come whole: resumed after each read, so a byte-at-a-time client costs O(n).
    scanner: HeadScanner,
    /// The last read found the socket empty: with edge-triggered polling the connection may be
    /// parked without reading again.
    drained: bool,
    /// Registered with the poller (done when first parked).
    registered: bool,
    /// When the coordinator may close this connection if it is still parked.
    deadline: Instant,
    /// When the client started sending the head it has not finished (or connected, before its
    /// first request): the header timeout counts from here, however slowly bytes trickle in.
    head_since: Option<Instant>,
    /// At least one request was answered: between requests the keep-alive timeout applies.
    served_any: bool,
    /// A request whose body's `next` pended, waiting for its app (allocated only when one parks).
    pub(crate) parked: Option<Box<ParkedRequest>>,
    /// Response bytes of a deferred request that the socket had no room for: sent, in order,
    /// before anything else once the client reads (`deferred.rs`); empty otherwise.
    unsent: Vec<u8>,
    /// Registered for room to send as well as for input (once output had to wait).
    write_interest: bool,
    /// A PROXY protocol header must come before the first request and has not yet (the
    /// listener's `proxy` option): its source address then replaces `peer`.
    awaiting_proxy_header: bool,
    /// The TLS state of a connection to a TLS listener (boxed: a plain one pays a pointer).
    tls: Option<Box<TlsSession>>,
    /// The addresses as the environ spells them, written for the first request (after any
    /// PROXY header) and reused by the next ones.
    spelled: Option<AddrVars>,
    /// The rest of a `--static` file being sent (`crate::static_files::FileBody`).
    file: Option<Box<FileBody>>,
}

impl Drop for Conn {
    /// However the connection ends, a TLS one says so first (close_notify, `tls::session`).
    fn drop(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.close(&mut self.stream);
        }
    }
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

/// What the input holds for the next request, after reading what the socket had.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextHead {
    /// A whole head of this many bytes, parsed into the caller's `RequestHead` in one pass.
    Parsed(usize),
    /// A whole head the scanner found, not parsed yet: `input()[..end.len]`.
    Complete(HeadEnd),
    /// The head is invalid whatever follows (answered with the error's status, then closed).
    Invalid(ParseError),
    /// Not a whole head, and nothing more to read now: park.
    Waiting,
    /// The client closed, the socket failed, or the connection was refused before any HTTP (a
    /// malformed PROXY header, logged): close without an answer.
    Closed,
}

impl Conn {
    pub(crate) fn new(
        accepted: Accepted,
        token: Token,
        now: Instant,
        header_timeout: Duration,
    ) -> Conn {
        Conn {
            stream: accepted.stream,
            token,
            peer: accepted.peer,
            local: accepted.local,
            options: accepted.options,
            buf: Vec::new(),
            start: 0,
            scanner: HeadScanner::default(),
            drained: false,
            registered: false,
            deadline: now + header_timeout,
            head_since: Some(now),
            served_any: false,
            parked: None,
            unsent: Vec::new(),
            write_interest: false,
            awaiting_proxy_header: accepted.options.proxy_protocol,
            tls: None,
            spelled: None,
            file: None,
        }
    }

    /// Speak TLS on this connection (before its first read).
    pub(crate) fn set_tls(&mut self, session: TlsSession) {
        self.tls = Some(Box::new(session));
    }

    /// The connection is TLS (`webserver.url_scheme` is `https`).
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS client's certificate as environ variables (`None`: not TLS).
    pub(crate) fn client_cert(&self) -> Option<&crate::tls::ClientCert> {
        self.tls.as_ref()?.client_cert()
    }

    /// One non-blocking read of up to `max` bytes of input (decrypted, on TLS once the PROXY
    /// header, if one is expected, was read) appended to the buffer; a short read found nothing
    /// more to read.
    fn read_available(&mut self, max: usize) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) if !self.awaiting_proxy_header => {
                tls.read_append(&mut self.stream, &mut self.buf, max)
            }
            _ => read_append(&self.stream, &mut self.buf, max),
        }
    }

    /// Sends `bytes` as far as the socket takes them now, without waiting: the last words to a
    /// connection being given up on. Nothing is sent before a TLS handshake completed.
    pub(crate) fn send_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        match &mut self.tls {
            None => {
                let sent = self.stream.write_all(bytes);
                sent.inspect(|()| crate::stats::bytes_out(bytes.len()))
            }
            // Counted by the session, as the bytes it puts on the wire.
            Some(tls) if tls.is_handshaking() => Ok(()),
            Some(tls) => tls.write_now(&mut self.stream, bytes),
        }
    }

    /// Gives the socket (a duplicate of its descriptor: this `Conn` closes its own when
    /// dropped), the TLS session and the unread input to a new owner (`server::h2`).
    pub(crate) fn hand_over(&mut self) -> io::Result<(Stream, Option<Box<TlsSession>>, Vec<u8>)> {
        let fd = self.stream.as_fd().try_clone_to_owned()?;
        let input = self.input().to_vec();
        self.consume(input.len());
        Ok((Stream::from(fd), self.tls.take(), input))
    }

    /// No request has been served on this connection yet.
    pub(crate) fn is_fresh(&self) -> bool {
        !self.served_any
    }

    /// The wake number of the request parked here (0 if it made no waker), if one is.
    pub(crate) fn parked_request(&self) -> Option<u64> {
        self.parked.as_ref().map(|parked| parked.body.wake_id)
    }

    /// A waker of the parked request was woken: call its `next` again.
    pub(crate) fn mark_woken(&mut self) {
        if let Some(parked) = &mut self.parked {
            parked.woken = true;
        }
    }

    /// The parked request is to be closed without another `next`.
    pub(crate) fn cancel_parked(&mut self, cancel: Cancel) {
        if let Some(parked) = &mut self.parked {
            parked.cancel.get_or_insert(cancel);
        }
    }

    /// Set the deadline directly (a parked request's `--timeout`).
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Reads what the socket holds without waiting, up to `limit` bytes buffered: for a parked
    /// request, whose client may send body bytes or hang up. False if the client closed (or
    /// the socket failed).
    pub(crate) fn poll_input(&mut self, limit: usize) -> bool {
        if self.drained {
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
                    self.drained = true;
                    return true;
                }
                Ok(_) => {}
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.drained = true;
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

    pub(crate) fn token(&self) -> Token {
        self.token
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> Peer {
        self.peer
    }

    /// The connection's addresses as the environ spells them (written on first use).
    pub(crate) fn spelled_addrs(&mut self) -> &AddrVars {
        let (local, peer) = (self.local, self.peer);
        self.spelled
            .get_or_insert_with(|| AddrVars::new(local, peer))
    }

    /// The address the client connected to (`None` on a unix socket).
    pub(crate) fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The options of the listener this connection came from.
    pub(crate) fn listener_options(&self) -> ListenerOptions {
        self.options
    }

    /// The socket, for registering it with the poller.
    pub(crate) fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered
    }

    pub(crate) fn mark_registered(&mut self) {
        self.registered = true;
    }

    /// The poller announced input: read before concluding there is none.
    pub(crate) fn mark_readable(&mut self) {
        self.drained = false;
    }

    /// Past its deadline, whether this connection is only waiting for a serving thread: its
    /// client sent bytes that no thread has read yet. A connection whose output waits for the
    /// client does not count (a client that sends but never reads must not keep it open).
    pub(crate) fn has_request_waiting(&mut self) -> bool {
        !self.sending_file() && !self.write_interest() && self.stream_mut().has_input()
    }

    /// When the coordinator may close this connection if it is still parked.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The process began draining at `now` while this connection was parked. A head in
    /// progress gets at most one more keep-alive period. An idle connection waits for its
    /// client's next request no longer than the drain linger after its last response (or its
    /// connect): one idle that long is closed at once, and one that just got a response can still
    /// have the request its client is sending answered (with `Connection: close`), so a reload
    /// loses none.
    /// A `--static` file body being sent keeps its `--io-timeout` deadline: the graceful
    /// timeout still ends it.
    pub(crate) fn begin_drain(&mut self, now: Instant, config: &Config) {
        if self.file.is_some() {
            return;
        }
        let limit = if self.has_partial_request() {
            now + config.keep_alive.min(config.graceful_timeout)
        } else if self.served_any {
            if self.deadline <= now + drain_linger(config) {
                // Parked once the drain had begun (`set_parked_deadline`), or due anyway.
                return;
            }
            // Parked with the keep-alive timeout when its last response was sent.
            let parked_at = self.deadline.checked_sub(config.keep_alive).unwrap_or(now);
            parked_at + drain_linger(config)
        } else {
            self.head_since.unwrap_or(now) + drain_linger(config)
        };
        self.deadline = self.deadline.min(limit);
    }

    /// The deadline policy, applied when the connection is parked at `now`: a head in progress
    /// (or none yet on a new connection) gets the header timeout counted from its first byte,
    /// an idle connection between requests the keep-alive timeout. While `draining`, a
    /// connection parked after its response promised keep-alive still gets a request its client
    /// sends right behind that response answered (with `Connection: close`), but an idle client
    /// cannot hold the process for a whole keep-alive period.
    pub(crate) fn set_parked_deadline(&mut self, now: Instant, config: &Config, draining: bool) {
        if self.file.is_some() {
            // Output waits for the client: one wait, as a blocking write has (a drain does not
            // cut a download short; the graceful timeout still ends it).
            self.deadline = now + config.io_timeout;
            return;
        }
        self.deadline = if self.has_partial_request() || !self.served_any {
            *self.head_since.get_or_insert(now) + config.header_timeout
        } else {
            now + config.keep_alive
        };
        if draining {
            self.deadline = self.deadline.min(now + drain_linger(config));
        }
    }

    /// Bytes of a request that has not been served yet are buffered. (A PROXY header still
    /// arriving is not a request: a timeout closes it without an HTTP answer to the proxy.)
    pub(crate) fn has_partial_request(&self) -> bool {
        self.start < self.buf.len() && !self.awaiting_proxy_header
    }

    /// Lends the serving thread's read buffer (`spare`, empty) to this connection while the
    /// thread serves it; what the connection kept of a partial request moves into it.
    pub(crate) fn borrow_buffer(&mut self, spare: &mut Vec<u8>) {
        if !self.input().is_empty() {
            spare.clear();
            spare.extend_from_slice(self.input());
        }
        // The connection's own copy (if any) is freed here.
        self.buf = std::mem::take(spare);
        self.start = 0;
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
        *spare = std::mem::replace(&mut self.buf, kept);
        spare.clear();
        self.start = 0;
    }

    /// The unconsumed input.
    pub(crate) fn input(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// A TLS client's end (its close_notify) came with the bytes just read: no new edge will
    /// announce it, so the next head read must look for it instead of parking.
    fn tls_ended(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.ended())
    }

    /// A TLS client sent close_notify: nothing more will arrive, but it may still read.
    pub(crate) fn tls_half_closed(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.half_closed())
    }

    /// Looks for the next head in the input, reading what the socket holds (without waiting)
    /// until it is decided or the socket is empty (`request::find_head`: a head that came whole
    /// is parsed into `head` at once).
    pub(crate) fn next_head(&mut self, limits: &Limits, head: &mut RequestHead) -> NextHead {
        loop {
            let input = self.buf.get(self.start..).unwrap_or_default();
            if self.awaiting_proxy_header {
                match self.take_proxy_header() {
                    ProxyHeaderState::Taken => continue,
                    ProxyHeaderState::Incomplete if self.drained => return NextHead::Waiting,
                    ProxyHeaderState::Incomplete => {}
                    ProxyHeaderState::Refused => return NextHead::Closed,
                }
            } else {
                match find_head(&mut self.scanner, input, limits, head) {
                    Ok(Some(Found::Parsed(len))) => return NextHead::Parsed(len),
                    Ok(Some(Found::Scanned(end))) => return NextHead::Complete(end),
                    Err(e) => return NextHead::Invalid(e),
                    Ok(None) if self.drained => return NextHead::Waiting,
                    Ok(None) => {}
                }
            }
            self.compact();
            match self.read_available(HEAD_READ) {
                Ok(0) => return NextHead::Closed,
                // A short read means the socket was emptied: a later arrival raises a new edge.
                Ok(n) => self.drained = n < HEAD_READ && !self.tls_ended(),
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.drained = true;
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
                self.awaiting_proxy_header = false;
                self.consume(header.len);
                if let Some(tls) = &mut self.tls {
                    // What followed the header is the start of the TLS handshake.
                    let early = self.buf.get(self.start..).unwrap_or_default();
                    if let Err(e) = tls.take_early_records(&mut self.stream, early) {
                        log::debug!("{}: TLS after the PROXY header: {e}", self.peer);
                        return ProxyHeaderState::Refused;
                    }
                    self.start = self.buf.len();
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

    /// The head of `head_len` bytes at the start of the input is being served: its body (or
    /// the next request) starts after it, and the header timeout no longer runs.
    pub(crate) fn start_request(&mut self, head_len: usize) {
        self.consume(head_len);
        self.head_since = None;
        self.served_any = true;
    }

    /// `n` bytes at the start of the input were used (a head or body bytes); whatever follows
    /// them starts the next head.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.buf.len());
        self.scanner.reset();
    }

    /// Waits up to `timeout` for more input (request body bytes) and appends it. `Ok(0)`: the
    /// client closed.
    pub(crate) fn read_more(&mut self, timeout: Duration) -> io::Result<usize> {
        self.compact();
        let len = self.buf.len();
        self.buf.resize(len + BODY_READ, 0);
        let read = match &mut self.tls {
            None => read_with_timeout(&mut self.stream, &mut self.buf[len..], timeout),
            Some(tls) => tls.read_with_timeout(&mut self.stream, &mut self.buf[len..], timeout),
        };
        self.drained = false;
        self.buf.truncate(len + read.as_ref().map_or(0, |&n| n));
        read
    }

    /// Writes every part, waiting up to `timeout` each time the socket is full (after what a
    /// deferred request left unsent, which goes first).
    pub(crate) fn write_all(&mut self, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
        if !self.unsent.is_empty() {
            let unsent = std::mem::take(&mut self.unsent);
            match &mut self.tls {
                None => write_all_with_timeout(&mut self.stream, &[&unsent], timeout)?,
                Some(tls) => tls.write_all(&mut self.stream, &[&unsent], timeout)?,
            }
        }
        match &mut self.tls {
            // The head of a file body (`set_file_body`) goes with `MSG_MORE`: it shares its
            // segments with the body's first bytes instead of leaving alone, which would cost
            // the client a wake-up and a read per file.
            None if self.file.is_some() => {
                write_all_with_timeout(&mut self.stream.more_follows(), parts, timeout)
            }
            None => write_all_with_timeout(&mut self.stream, parts, timeout),
            Some(tls) => tls.write_all(&mut self.stream, parts, timeout),
        }
    }

    /// Writes the last bytes this connection carries: the caller closes it right after. On
    /// plain TCP they go with `MSG_MORE` and are followed by `shutdown(SHUT_WR)`, so the FIN
    /// leaves in their last segment instead of a segment of its own: one packet fewer, to send
    /// and to receive, per `Connection: close` exchange, for one cheap system call. The
    /// shutdown, not the close, pushes them out: a close with input unread (an unread body, a
    /// request pipelined behind the last one) resets the connection and would drop output still
    /// held back, where now the reset only follows it, as before.
    pub(crate) fn write_last(&mut self, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
        if self.tls.is_some() || self.file.is_some() || !self.unsent.is_empty() {
            return self.write_all(parts, timeout);
        }
        write_all_with_timeout(&mut self.stream.more_follows(), parts, timeout)?;
        if let Err(e) = self.stream.shutdown_write() {
            // The client is gone: the close that follows ends the connection all the same.
            log::debug!("{}: shutdown: {e}", self.peer);
        }
        Ok(())
    }

    /// Writes what the socket takes now and keeps the rest, in order, for [`Conn::flush_unsent`]
    /// (a deferred request's output: it waits for the client on epoll, not on a thread). On TLS
    /// what rustls's buffer takes is encrypted at once and the plaintext beyond it is kept.
    pub(crate) fn write_or_keep(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut skip = match &mut self.tls {
            _ if !self.unsent.is_empty() => 0,
            None => write_nonblocking(&mut self.stream, parts)?,
            Some(tls) => tls.write_nonblocking(&mut self.stream, parts)?,
        };
        for part in parts {
            let kept = part.get(skip.min(part.len())..).unwrap_or_default();
            skip = skip.saturating_sub(part.len());
            self.unsent.extend_from_slice(kept);
        }
        Ok(())
    }

    /// Sends what [`Conn::write_or_keep`] kept, as far as the socket takes it now; true once
    /// nothing is left.
    pub(crate) fn flush_unsent(&mut self) -> io::Result<bool> {
        if let Some(tls) = &mut self.tls {
            if !tls.flush_nonblocking(&mut self.stream)? {
                return Ok(false);
            }
        }
        if self.unsent.is_empty() {
            return Ok(true);
        }
        let written = match &mut self.tls {
            None => write_nonblocking(&mut self.stream, &[&self.unsent])?,
            Some(tls) => tls.write_nonblocking(&mut self.stream, &[&self.unsent])?,
        };
        self.unsent.drain(..written);
        if self.unsent.is_empty() {
            // The largest chunk's copy is not kept for the life of the connection.
            self.unsent = Vec::new();
        }
        Ok(!self.has_unsent())
    }

    /// Output waits for the client to read (on TLS, also encrypted bytes in rustls's buffer;
    /// or a file body).
    pub(crate) fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
            || self.file.is_some()
            || self.tls.as_ref().is_some_and(|tls| tls.has_unsent())
    }

    /// The body of a `--static` answer follows the held output: sent by `send_file_body`.
    pub(crate) fn set_file_body(&mut self, body: FileBody) {
        self.file = Some(Box::new(body));
    }

    /// A file body is being sent.
    pub(crate) fn sending_file(&self) -> bool {
        self.file.is_some()
    }

    /// Sends the file body as far as the socket takes it now (one turn, without waiting):
    /// `Some(close_after)` once it is all out, `None` while it waits for the client or for its
    /// next turn.
    pub(crate) fn send_file_body(&mut self) -> io::Result<Option<bool>> {
        let Some(body) = &mut self.file else {
            return Ok(Some(false));
        };
        // A deferred app's head (ABI 1.2 `send_file`) may wait here: it goes first.
        if !self.unsent.is_empty() {
            let written = match &mut self.tls {
                None => write_nonblocking(&mut self.stream, &[&self.unsent]),
                Some(tls) => tls.write_nonblocking(&mut self.stream, &[&self.unsent]),
            };
            match written {
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.unsent.is_empty() {
                return Ok(None);
            }
        }
        match body.send(&mut self.stream, self.tls.as_deref_mut())? {
            Sent::All => {
                let close_after = body.close_after();
                self.file = None;
                Ok(Some(close_after))
            }
            Sent::Full => Ok(None),
            Sent::Yield => {
                // The socket has room, so no edge will come: parking re-arms the registration,
                // which reports it again behind the events already waiting.
                self.write_interest = false;
                Ok(None)
            }
        }
    }

    /// The client is given up on: what it did not read is dropped.
    pub(crate) fn drop_unsent(&mut self) {
        self.unsent = Vec::new();
    }

    /// Whether the connection is (to be) registered for room to send too.
    pub(crate) fn write_interest(&self) -> bool {
        self.write_interest
    }

    pub(crate) fn mark_write_interest(&mut self) {
        self.write_interest = true;
    }

    /// An upgraded connection's read (ABI 1.2), never waiting: what is buffered first (the bytes
    /// the client sent after the request head), then one read from the socket (through TLS on
    /// a TLS connection). `Ok(0)`: the client ended its side; `WouldBlock`: nothing now.
    pub(crate) fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        let input = self.input();
        if !input.is_empty() {
            let n = input.len().min(out.len());
            out[..n].copy_from_slice(&input[..n]);
            self.consume(n);
            if self.start == self.buf.len() {
                // Idle upgraded connections keep no buffer.
                self.buf = Vec::new();
                self.start = 0;
            }
            return Ok(n);
        }
        match &mut self.tls {
            Some(tls) => tls.read_into(&mut self.stream, out),
            None => loop {
                match self.stream.read(out) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    read => break read.inspect(|&n| crate::stats::bytes_in(n)),
                }
            },
        }
    }

    /// TCP keep-alive probes after `idle` without traffic, then every third of it: how a raw
    /// upgraded stream, which the server never pings, finds a peer that vanished.
    pub(crate) fn set_keepalive(&self, idle: Duration) -> io::Result<()> {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 3).max(Duration::from_secs(1)));
        socket2::SockRef::from(&self.stream).set_tcp_keepalive(&keepalive)
    }

    /// An upgraded connection's write (ABI 1.2), never waiting: what earlier output left unsent
    /// goes first; returns how much of `data` the socket (or rustls's bounded buffer) took, 0
    /// when it has no room now.
    pub(crate) fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.has_unsent() && !self.flush_unsent()? {
            return Ok(0);
        }
        match &mut self.tls {
            None => write_nonblocking(&mut self.stream, &[data]),
            Some(tls) => tls.write_nonblocking(&mut self.stream, &[data]),
        }
    }

    /// Moves the unconsumed input to the front of the buffer (the scanner's offsets are
    /// relative to it, so they stay valid).
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::http::request::parse_head;

    /// A connection over a real loopback socket, and the client's end.
    fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let local = server.local_addr().unwrap();
        let accepted = Accepted {
            stream: Stream::from(server),
            peer: Peer::Tcp(peer),
            local: Some(local),
            options: ListenerOptions::default(),
        };
        let conn = Conn::new(accepted, Token(7), Instant::now(), Duration::from_secs(10));
        (conn, client)
    }

    /// Reads until the connection holds `want` bytes or decides; what it decided last.
    fn settle(conn: &mut Conn, want: usize) -> NextHead {
        let limits = Limits::default();
        for _ in 0..1000 {
            conn.mark_readable();
            let next = conn.next_head(&limits, &mut RequestHead::default());
            if next != NextHead::Waiting || conn.input().len() >= want {
                return next;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the socket never delivered {want} bytes");
    }

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

    #[test]
    fn keepalive_is_set_with_the_idle_time() {
        let (conn, _client) = pair();
        conn.set_keepalive(Duration::from_secs(20)).unwrap();
        let sock = socket2::SockRef::from(&conn.stream);
        assert!(sock.keepalive().unwrap());
    }

    fn config(keep_alive: u64, header_timeout: u64, graceful: u64) -> Config {
        Config {
            threads: 1,
            keep_alive: Duration::from_secs(keep_alive),
            header_timeout: Duration::from_secs(header_timeout),
            io_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            request_timeout: None,
            max_requests: None,
            graceful_timeout: Duration::from_secs(graceful),
            max_body: 1 << 20,
            limits: Limits::default(),
            multiprocess: false,
            proxies: Default::default(),
            tls: None,
            statics: None,
            websocket: Default::default(),
            http2: false,
            tls_h2: None,
            http2_limits: Default::default(),
        }
    }

    /// The deadline a parked connection gets, by what it is waiting for.
    #[test]
    fn parked_deadline_table() {
        let secs = Duration::from_secs;
        // (served a request, bytes of the next one buffered, draining, deadline after `now`)
        let cases = [
            (false, false, false, secs(10)), // new connection: header timeout from connect
            (true, false, false, secs(5)),   // idle between requests: keep-alive
            (true, true, false, secs(10)),   // a head in progress: header timeout
            (true, false, true, secs(1)),    // draining: at most the linger
            (false, false, true, secs(1)),
        ];
        for (served, partial, draining, want) in cases {
            let (mut conn, mut client) = pair();
            let connected = conn.head_since.unwrap();
            if served {
                conn.start_request(0);
            }
            if partial {
                client.write_all(b"GET").unwrap();
                settle(&mut conn, 3);
            }
            conn.set_parked_deadline(connected, &config(5, 10, 30), draining);
            assert_eq!(
                conn.deadline() - connected,
                want,
                "served {served} partial {partial} draining {draining}"
            );
        }
    }
}
