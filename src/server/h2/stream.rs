//! One HTTP/2 stream through the app, on a serving thread: the environ from its pseudo-headers
//! and fields, the app called through the same ABI and response encoder as an HTTP/1.1 request,
//! and a transport that turns what the encoder writes (an HTTP/1.0-framed response: a head,
//! then the body's bytes as they are, never chunked) into a HEADERS frame and DATA frames.
//!
//! The frames themselves are read and written by the HTTP/2 thread; this thread only waits on
//! the stream's handles (`block_on`): for the next DATA frame when the app reads, for send
//! capacity (the client's WINDOW_UPDATE) when it writes. Each wait is bounded by `--io-timeout`
//! and stops the request's `--timeout` clock, as the HTTP/1.1 transport's waits do. Received
//! bytes are released to the client's window only once the app has read them: a client cannot
//! send more than the windows ahead of the app.
//!
//! An ABI 1.1 app's body that pends is waited for on this thread (`call::run`): this slice does
//! not park HTTP/2 streams.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};

use app_abi::raw::{
    WS_ERR_CLIENT_GONE, WS_ERR_TIMEOUT, WS_ERR_TOO_LARGE, WS_REQ_MULTIPROCESS, WS_REQ_MULTITHREAD,
};
use bytes::{Buf, Bytes};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};

use super::driver::InFlight;
use crate::app::call::{self, RequestFacts, Transport};
use crate::app::environ::{AddrVars, RequestParts, HTTP2};
use crate::app::waker::{ThreadWake, Wake as AppWake};
use crate::http::encoder::CLIENT_LEFT;
use crate::http::response::DateCache;
use crate::http::target::parse_target;
use crate::listen::Peer;
use crate::server::conn::Conn;
use crate::server::proxied;
use crate::server::serve::{log_access, ThreadScratch};
use crate::server::Shared;
use crate::tls::ClientCert;

/// Fields of an HTTP/1 response head that mean nothing in HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// What every stream of a connection shares: who the client is.
pub(crate) struct ConnInfo {
    pub(super) peer: Peer,
    local: Option<SocketAddr>,
    tls: bool,
    client_cert: Option<ClientCert>,
    spelled: AddrVars,
}

impl ConnInfo {
    pub(super) fn of(conn: &mut Conn) -> ConnInfo {
        ConnInfo {
            peer: conn.peer(),
            local: conn.local(),
            tls: conn.is_tls(),
            client_cert: conn.client_cert().cloned(),
            spelled: conn.spelled_addrs().clone(),
        }
    }
}

/// A stream the HTTP/2 thread accepted, for a serving thread to run.
pub(crate) struct StreamJob {
    pub(super) request: http::Request<RecvStream>,
    pub(super) respond: SendResponse<Bytes>,
    pub(super) info: Arc<ConnInfo>,
    /// Counted against the connection's streams until the app is done with it.
    pub(super) _in_flight: InFlight,
}

/// Runs one stream through the app on serving thread `scratch.thread`.
pub(crate) fn serve_stream(job: StreamJob, shared: &Shared, scratch: &mut ThreadScratch) {
    let StreamJob {
        request,
        mut respond,
        info,
        _in_flight,
    } = job;
    // A stream the client reset while it was queued (rapid reset) never reaches the app.
    if let Some(Poll::Ready(_)) = poll_once(|cx| respond.poll_reset(cx)) {
        log::debug!("{}: HTTP/2 stream reset before it ran", info.peer);
        return;
    }
    let started = crate::stats::clock().or_else(|| crate::logging::access_log()?.start());
    let config = &shared.config;
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().as_bytes();
    let raw_target = match parts.uri.path_and_query() {
        Some(path) => path.as_str().as_bytes(),
        None => parts
            .uri
            .authority()
            .map_or(&b"/"[..], |a| a.as_str().as_bytes()),
    };
    let target = match parse_target(method, raw_target) {
        Ok(target) => target,
        Err(e) => {
            crate::logging::refused(info.peer.host(), e.status(), &e);
            crate::stats::rejected(e.status());
            let status =
                http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
            let mut response = http::Response::new(());
            *response.status_mut() = status;
            let _ = respond.send_response(response, true);
            return;
        }
    };
    // `:authority` stands for Host (RFC 9113 §8.3.1) unless the client sent both.
    let authority = parts
        .uri
        .authority()
        .filter(|_| !parts.headers.contains_key(http::header::HOST))
        .map(|authority| (&b"host"[..], authority.as_str().as_bytes()));
    let fields: Vec<(&[u8], &[u8])> = authority
        .into_iter()
        .chain(
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
        )
        .collect();
    let headers = fields.iter().copied();
    let mut flags = WS_REQ_MULTITHREAD;
    if config.multiprocess {
        flags |= WS_REQ_MULTIPROCESS;
    }
    let is_head = method == b"HEAD";
    let facts = RequestFacts {
        is_head,
        // HTTP/1.0's framing: the body's bytes as they are, never chunked.
        version_minor: 0,
        keep_alive: true,
        flags,
        defer_flush: true,
    };
    let client = proxied::client(info.peer, info.tls, headers.clone(), &config.proxies);
    let thread = scratch.thread;
    let buffers = &mut scratch.buffers;
    let environ = buffers.environ.build(RequestParts {
        method,
        target,
        version_minor: HTTP2,
        headers,
        local: info.local,
        remote: client.remote,
        url_scheme: client.scheme,
        strip_forwarding: client.strip_forwarding,
        flags,
        spelled: (client.remote == info.peer).then_some(&info.spelled),
        client_cert: info.client_cert.as_ref(),
    });
    let mut transport = StreamTransport {
        body,
        pending: Bytes::new(),
        body_ended: false,
        received: 0,
        max_body: config.max_body,
        respond: Some(respond),
        send: None,
        head: Vec::new(),
        ended: false,
        body_wait_left: config.body_timeout,
        shared,
        thread,
        date: &mut buffers.date,
        wall: shared.coarse_wall(),
        wake: None,
        peer: info.peer,
    };
    let mut outcome = {
        let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
        shared.mark_busy(thread, true);
        crate::stats::request_started();
        crate::stats::http2_stream();
        call::run(
            &shared.app,
            environ,
            facts,
            &mut transport,
            &mut buffers.call,
        )
    };
    let held = std::mem::take(buffers.call.hold());
    if !transport.finish(&held, outcome.complete) && outcome.status != CLIENT_LEFT {
        log::debug!("{}: HTTP/2 stream reset mid-response", info.peer);
    }
    *buffers.call.hold() = held;
    buffers.call.clear_held();
    if transport.client_left() && transport.send.is_none() && !transport.ended {
        outcome.status = CLIENT_LEFT;
    }
    shared.mark_busy(thread, false);
    crate::stats::response(outcome.status, started);
    log_access(&buffers.environ, &buffers.call, outcome, started);
}

/// A stream's request body and response, as the app sees them through `read` and the response
/// path.
struct StreamTransport<'a> {
    body: RecvStream,
    /// Received and not yet read by the app (not yet released to the client's window).
    pending: Bytes,
    body_ended: bool,
    received: u64,
    max_body: u64,
    /// Until the head is sent.
    respond: Option<SendResponse<Bytes>>,
    /// Once the head is sent (and the body may follow).
    send: Option<SendStream<Bytes>>,
    /// The encoder's output until its head is whole.
    head: Vec<u8>,
    /// END_STREAM was sent.
    ended: bool,
    /// What is left of `--body-timeout`.
    body_wait_left: Duration,
    shared: &'a Shared,
    thread: usize,
    date: &'a mut DateCache,
    wall: SystemTime,
    wake: Option<Arc<ThreadWake>>,
    peer: Peer,
}

impl StreamTransport<'_> {
    /// Runs `wait` with the request's `--timeout` clock stopped (the client is being waited
    /// for); returns its result and how long it took.
    fn waiting_for_client<R>(&mut self, wait: impl FnOnce(&mut Self) -> R) -> (R, Duration) {
        let paused = self.shared.begin_client_wait(self.thread);
        let result = wait(self);
        (result, self.shared.end_client_wait(paused))
    }

    /// Takes the encoder's output: the head, once whole, becomes the HEADERS frame; the rest is
    /// body. `end`: nothing follows (the exchange is over).
    fn feed(&mut self, data: &[u8], end: bool) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        if self.send.is_some() {
            return self.send_body(data, end);
        }
        self.head.extend_from_slice(data);
        let Some(head_len) = memchr::memmem::find(&self.head, b"\r\n\r\n").map(|at| at + 4) else {
            if end {
                return Err(io::Error::other("the response ended inside its head"));
            }
            return Ok(());
        };
        let whole = std::mem::take(&mut self.head);
        let response = response_head(&whole[..head_len])?;
        let body = &whole[head_len..];
        let Some(mut respond) = self.respond.take() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let end_now = end && body.is_empty();
        let send = respond
            .send_response(response, end_now)
            .map_err(stream_error)?;
        if end_now {
            self.ended = true;
            return Ok(());
        }
        self.send = Some(send);
        self.send_body(body, end)
    }

    /// Sends body bytes as DATA frames as the client's windows allow, waiting up to
    /// `--io-timeout` for each WINDOW_UPDATE.
    fn send_body(&mut self, data: &[u8], end: bool) -> io::Result<()> {
        let timeout = self.shared.config.io_timeout;
        let mut rest = data;
        while !rest.is_empty() {
            let Some(send) = self.send.as_mut() else {
                return Err(io::ErrorKind::BrokenPipe.into());
            };
            send.reserve_capacity(rest.len());
            let (capacity, _) = self.waiting_for_client(|this| {
                let send = this.send.as_mut().expect("checked above");
                block_on(poll_fn(|cx| send.poll_capacity(cx)), timeout)
            });
            let send = self.send.as_mut().expect("checked above");
            match capacity {
                None => {
                    send.send_reset(Reason::CANCEL);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client's HTTP/2 window stayed closed for --io-timeout",
                    ));
                }
                Some(None) => return Err(io::ErrorKind::BrokenPipe.into()),
                Some(Some(Err(e))) => return Err(stream_error(e)),
                Some(Some(Ok(0))) => {}
                Some(Some(Ok(n))) => {
                    let n = n.min(rest.len());
                    let last = end && n == rest.len();
                    send.send_data(Bytes::copy_from_slice(&rest[..n]), last)
                        .map_err(stream_error)?;
                    rest = &rest[n..];
                    self.ended = last;
                }
            }
        }
        if end && !self.ended {
            if let Some(send) = self.send.as_mut() {
                send.send_data(Bytes::new(), true).map_err(stream_error)?;
            }
            self.ended = true;
        }
        Ok(())
    }

    /// The exchange is over: sends what the encoder held and ends the stream, or resets it if
    /// the response did not go out whole. False if the stream was reset.
    fn finish(&mut self, held: &[u8], complete: bool) -> bool {
        if complete {
            if let Err(e) = self.feed(held, true) {
                log::debug!("{}: HTTP/2 response not sent: {e}", self.peer);
            }
        }
        if self.ended {
            return true;
        }
        if let Some(send) = self.send.as_mut() {
            send.send_reset(Reason::INTERNAL_ERROR);
        } else if let Some(respond) = self.respond.as_mut() {
            respond.send_reset(Reason::INTERNAL_ERROR);
        }
        false
    }

    /// The client reset the stream.
    fn client_left(&mut self) -> bool {
        let reset = match (&mut self.send, &mut self.respond) {
            (Some(send), _) => poll_once(|cx| send.poll_reset(cx)),
            (None, Some(respond)) => poll_once(|cx| respond.poll_reset(cx)),
            (None, None) => None,
        };
        matches!(reset, Some(Poll::Ready(Ok(_))))
    }

    /// Waits for the next DATA frame (`Ok(false)`: the body ended).
    fn receive(&mut self) -> Result<bool, i32> {
        if self.body_wait_left.is_zero() {
            return Err(WS_ERR_TIMEOUT);
        }
        let timeout = self.shared.config.io_timeout.min(self.body_wait_left);
        let (got, waited) = self
            .waiting_for_client(|this| block_on(poll_fn(|cx| this.body.poll_data(cx)), timeout));
        self.body_wait_left = self.body_wait_left.saturating_sub(waited);
        match got {
            None => {
                log::debug!("{}: HTTP/2 request body too slow", self.peer);
                Err(WS_ERR_TIMEOUT)
            }
            Some(None) => {
                self.body_ended = true;
                Ok(false)
            }
            Some(Some(Ok(data))) => {
                self.received += data.len() as u64;
                if self.received > self.max_body {
                    log::debug!("{}: HTTP/2 request body over --max-body", self.peer);
                    return Err(WS_ERR_TOO_LARGE);
                }
                self.pending = data;
                Ok(true)
            }
            Some(Some(Err(e))) => {
                log::debug!("{}: HTTP/2 request body failed: {e}", self.peer);
                Err(WS_ERR_CLIENT_GONE)
            }
        }
    }
}

impl Transport for StreamTransport<'_> {
    fn read_body(&mut self, out: &mut [u8], _may_continue: bool) -> Result<usize, i32> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(out.len());
                out[..n].copy_from_slice(&self.pending[..n]);
                self.pending.advance(n);
                // Read by the app: the client may send that much more.
                let _ = self.body.flow_control().release_capacity(n);
                return Ok(n);
            }
            if self.body_ended || self.body.is_end_stream() {
                return Ok(0);
            }
            self.receive()?;
        }
    }

    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        parts.iter().try_for_each(|part| self.feed(part, false))
    }

    fn body_consumed(&mut self) -> bool {
        // Streams are independent: an unread body does not stand in the next one's way.
        true
    }

    fn date(&mut self) -> &[u8] {
        self.date.at(self.wall)
    }

    fn try_read_body(&mut self, out: &mut [u8], may_continue: bool) -> Result<Option<usize>, i32> {
        // Waits, as `read_body` does: this slice runs deferred apps on the thread.
        self.read_body(out, may_continue).map(Some)
    }

    fn new_waker(&mut self) -> Option<Arc<dyn AppWake>> {
        let wake = self.wake.get_or_insert_with(Arc::default);
        Some(Arc::clone(wake) as Arc<dyn AppWake>)
    }

    fn wait_for_wake(&mut self, limit: Duration) -> bool {
        self.wake.as_ref().is_some_and(|wake| wake.wait(limit))
    }
}

/// The encoder's HTTP/1 head as an HTTP/2 response head.
fn response_head(head: &[u8]) -> io::Result<http::Response<()>> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut fields);
    let invalid = |e: &dyn std::fmt::Display| io::Error::other(format!("response head: {e}"));
    parsed.parse(head).map_err(|e| invalid(&e))?;
    let status = parsed.code.unwrap_or(500);
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(status).map_err(|e| invalid(&e))?;
    let map = response.headers_mut();
    for field in parsed.headers.iter() {
        if CONNECTION_SPECIFIC
            .iter()
            .any(|name| field.name.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let name = http::HeaderName::from_bytes(field.name.as_bytes()).map_err(|e| invalid(&e))?;
        let value = http::HeaderValue::from_bytes(field.value).map_err(|e| invalid(&e))?;
        map.append(name, value);
    }
    Ok(response)
}

fn stream_error(e: h2::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, e)
}

/// Unparks the waiting thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready (`Some`) or `timeout` passed (`None`); the
/// HTTP/2 thread wakes it when the stream can make progress.
fn block_on<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Polls once without waiting (`None` if the poll did not apply).
fn poll_once<R>(poll: impl FnOnce(&mut Context<'_>) -> Poll<R>) -> Option<Poll<R>> {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    Some(poll(&mut Context::from_waker(&waker)))
}
