//! Serving the requests buffered on one connection, on the thread an event woke: find each head
//! (`Conn::next_head`), parse it once, split its target, build the environ, run the app, and
//! hold the response so a batch of pipelined requests is answered in one write; then say
//! whether the connection should park (wait for its client) or close. A request whose body
//! pends (ABI 1.1) moves its state into the connection (`deferred.rs`) and the connection parks.
//!
//! `--timeout` measures the app, not the client: whenever the transport waits for the client
//! (body bytes, room to send, the `100 Continue`), the request's busy clock stands still
//! (`Shared::begin_client_wait`), so a slow upload cannot get the worker killed. Body waits add
//! up against `--body-timeout` instead; past it the app's read fails with `WS_ERR_TIMEOUT` and
//! the answer is 408 (the encoder's decision), closing only that connection.

use std::time::{Duration, Instant, SystemTime};

use app_abi::raw::{
    WsPair, WS_ERR_BAD_BODY, WS_ERR_CLIENT_GONE, WS_ERR_TIMEOUT, WS_ERR_TOO_LARGE,
    WS_REQ_MULTIPROCESS, WS_REQ_MULTITHREAD, WS_REQ_WEBSOCKET,
};

use super::conn::{Conn, NextHead};
use super::deferred::{self, Due, ParkedRequest, RequestWaker};
use super::proxied;
use super::slots::Slots;
use super::static_route;
use super::upgraded::{Mode, TakenConnection, Upgraded};
use super::ws::handshake::UpgradeOffer;
use super::Shared;
use crate::app::call::{self, Progress, RequestFacts, Scratch, Transport};
use crate::app::environ::{Environ, RequestParts};
use crate::app::host_upgrade::ConnHandler;
use crate::app::parts;
use crate::app::trailers::FieldList;
use crate::app::waker::Wake;
use crate::http::body::{BodyDecoder, BodyError};
use crate::http::encoder::Outcome;
use crate::http::error::ParseError;
use crate::http::request::{parse_scanned, RequestHead};
use crate::http::response::{encode_continue, DateCache};
use crate::http::target::parse_target;
use crate::listen::PeerHost;
use crate::logging;
use crate::static_files::{FileBody, Request as StaticRequest};
use std::sync::Arc;

/// How much of a request body the app left unread is drained (from what is already buffered)
/// per step, so the connection can carry the next request.
const BODY_SINK: usize = 8 * 1024;

/// Per-thread buffers reused by every request this thread serves.
#[derive(Default)]
pub(crate) struct ThreadScratch {
    /// Index of the serving thread that owns this scratch (for the --timeout watch).
    pub(super) thread: usize,
    head: RequestHead,
    pub(super) buffers: Buffers,
    /// The read buffer, lent to the connection this thread serves (`Conn::borrow_buffer`).
    pub(super) read_buf: Vec<u8>,
}

/// What one exchange writes into, apart from the parsed head. A request that parks takes its
/// `environ` and `call` along (the thread starts afresh with empty ones).
#[derive(Default)]
pub(super) struct Buffers {
    pub(super) environ: Environ,
    pub(super) call: Scratch,
    pub(super) date: DateCache,
    pub(super) body_sink: Vec<u8>,
}

impl ThreadScratch {
    pub(crate) fn new(thread: usize) -> ThreadScratch {
        ThreadScratch {
            thread,
            read_buf: Vec::with_capacity(super::conn::HEAD_READ),
            ..ThreadScratch::default()
        }
    }
}

/// What to do with a connection after serving what it had buffered.
#[derive(Debug)]
pub(crate) enum After {
    /// Wait for more input on the event loop (or, with a parked request, for its app).
    Park,
    /// Done with it.
    Close,
    /// Its app took it (ABI 1.2, the 101 is out): it becomes this upgraded connection's.
    Upgrade(Arc<Upgraded>),
    /// Its first head is HTTP/2's connection preface: hand it over (`server::h2`).
    Http2,
}

/// What a request left the connection fit for.
#[derive(Debug)]
pub(super) enum Then {
    /// Carry the next request.
    Next,
    /// Close.
    Close,
    /// The request parked (its body pended): wait for the app.
    Wait,
    /// The app took the connection.
    Upgrade(Arc<Upgraded>),
}

/// Serve every complete request in `conn`'s buffer, reading more only while the socket has some
/// (after the rest of a `--static` file body, which goes first).
pub(crate) fn serve(
    conn: &mut Conn,
    shared: &Shared,
    slots: &Arc<Slots>,
    scratch: &mut ThreadScratch,
) -> After {
    loop {
        if let Some(after) = static_route::send_file_body(conn) {
            return after;
        }
        let after = serve_buffered(conn, shared, slots, scratch);
        // The responses to a batch of pipelined requests leave in one write (with the FIN
        // when the connection closes next).
        let call = &mut scratch.buffers.call;
        if !call.held().is_empty() {
            let timeout = shared.config.io_timeout;
            let sent = match after {
                After::Close => conn.write_last(&[call.held()], timeout),
                _ => conn.write_all(&[call.held()], timeout),
            };
            call.clear_held();
            if let Err(e) = sent {
                log::debug!("{}: client gone while sending responses: {e}", conn.peer());
                if let After::Upgrade(upgraded) = after {
                    upgraded.abandon();
                }
                return After::Close;
            }
        }
        // A file body follows its head.
        if !conn.sending_file() {
            return after;
        }
    }
}

fn serve_buffered(
    conn: &mut Conn,
    shared: &Shared,
    slots: &Arc<Slots>,
    scratch: &mut ThreadScratch,
) -> After {
    let limits = &shared.config.limits;
    loop {
        let parsed = match conn.next_head(limits, &mut scratch.head) {
            NextHead::Parsed(head_len) => Ok(head_len),
            NextHead::Complete(_) if super::h2::wanted(conn, &shared.config) => {
                return After::Http2
            }
            NextHead::Complete(end) => parse_scanned(conn.input(), &end, limits, &mut scratch.head),
            NextHead::Invalid(e) => Err(e),
            NextHead::Waiting => return After::Park,
            NextHead::Closed => return After::Close,
        };
        let then = match parsed {
            Ok(head_len) => serve_one(
                conn,
                &scratch.head,
                head_len,
                shared,
                slots,
                scratch.thread,
                &mut scratch.buffers,
            ),
            Err(e) => {
                reject(conn.peer().host(), &e, &mut scratch.buffers);
                Then::Close
            }
        };
        match then {
            Then::Next => {}
            Then::Close => return After::Close,
            Then::Wait => return After::Park,
            Then::Upgrade(upgraded) => return After::Upgrade(upgraded),
        }
    }
}

/// One request whose head is `conn.input()[..head_len]`.
#[allow(clippy::too_many_arguments)] // each is one independent input of a request's life
fn serve_one(
    conn: &mut Conn,
    head: &RequestHead,
    head_len: usize,
    shared: &Shared,
    slots: &Arc<Slots>,
    thread: usize,
    buffers: &mut Buffers,
) -> Then {
    // Only the statistics and the access log want the duration: no clock read otherwise (the
    // statistics' is the serving thread's wake-up reading, for the first request after it).
    let started = crate::stats::request_clock().or_else(|| logging::access_log()?.start());
    let config = &shared.config;
    let peer = conn.peer();
    let spelled = conn.spelled_addrs().clone();
    let buf = conn.input().get(..head_len).unwrap_or_default();
    let method = head.method(buf);
    let target = match parse_target(method, head.target(buf)) {
        Ok(target) => target,
        Err(e) => {
            reject(peer.host(), &e, buffers);
            return Then::Close;
        }
    };
    let decoder = match BodyDecoder::new(&head.framing, config.max_body) {
        Ok(decoder) => decoder,
        Err(e) => {
            let reason = format_args!("{e} (over --max-body {})", config.max_body);
            reject_status(peer.host(), e.status(), &reason, buffers);
            return Then::Close;
        }
    };
    let mut flags = WS_REQ_MULTITHREAD;
    if config.multiprocess {
        flags |= WS_REQ_MULTIPROCESS;
    }
    // Only upgrade requests pay for reading what they offer (ABI 1.2).
    let upgrade = head
        .upgrade
        .then(|| Box::new(UpgradeOffer::read(method, head.header_iter(buf))));
    if upgrade
        .as_ref()
        .is_some_and(|offer| offer.websocket().is_some())
        && shared.app.abi_version().1 >= 2
    {
        flags |= WS_REQ_WEBSOCKET;
    }
    let facts = RequestFacts {
        is_head: method == b"HEAD",
        version_minor: head.version_minor,
        keep_alive: head.keep_alive && !shared.draining(),
        flags,
        defer_flush: true,
        frames_heads: false,
    };
    // Built only where it is read: by the app (not one that reads only the parts), or by the
    // access log (of a `--static` answer too).
    let build_environ = |environ: &mut Environ, read: bool| {
        let client = proxied::client(peer, conn.is_tls(), head.header_iter(buf), &config.proxies);
        // An app that reads the parts gets its fields there only (the one walk over them).
        let noted = shared.app.wants_parts().then(|| {
            environ.parts.fill(parts::Head {
                version: 10 + u16::from(head.version_minor.min(1)),
                method,
                scheme: b"",
                authority: b"",
                target: head.target(buf),
                fields: head.header_iter(buf),
                strip_forwarding: client.strip_forwarding,
                block: buf,
            })
        });
        if !read {
            environ.leave_out(client.remote, noted.is_some());
            return;
        }
        environ.build(RequestParts {
            method,
            target,
            version_minor: head.version_minor,
            headers: head.header_iter(buf),
            local: conn.local(),
            remote: client.remote,
            url_scheme: client.scheme,
            strip_forwarding: client.strip_forwarding,
            flags,
            // A client a trusted proxy named is spelled afresh.
            spelled: (client.remote == peer).then_some(&spelled),
            client_cert: conn.client_cert(),
            noted,
        });
    };
    if let Some(statics) = &config.statics {
        // Whatever follows an unread request body cannot be told from it: close after.
        let keep_alive = facts.keep_alive && decoder.is_done();
        let request = StaticRequest::new(method, target.path, head.version_minor, keep_alive)
            .with_headers(head.header_iter(buf));
        let date = buffers.date.at(shared.coarse_wall());
        if let Some(answer) = statics.answer(&request, buffers.call.hold(), date) {
            if logging::access_log().is_some() {
                build_environ(&mut buffers.environ, true);
            }
            conn.start_request(head_len);
            return static_route::answered(conn, answer, keep_alive, buffers, started);
        }
    }
    build_environ(&mut buffers.environ, call::environ_read(&shared.app));
    conn.start_request(head_len);
    let body = BodyProgress {
        decoder,
        expect_continue: head.expect_continue,
        continue_sent: false,
        body_wait_left: config.body_timeout,
        wake_id: 0,
        upgrade,
        upgraded: None,
        trailers: None,
    };
    let mut transport = ConnTransport::new(
        conn,
        body,
        shared,
        thread,
        (&mut buffers.date, &mut buffers.body_sink),
        slots,
    );
    let progress = {
        let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
        // The --timeout clock starts once the app may run: a single-threaded app's lock may be
        // held by a request waiting for a slow client, which is not this request being stuck.
        shared.mark_busy(thread, true);
        crate::stats::request_started();
        call::start(
            &shared.app,
            &mut buffers.environ,
            facts,
            &mut transport,
            &mut buffers.call,
        )
    };
    match progress {
        Progress::Done(mut outcome) => {
            transport.end();
            let upgraded = transport.body.upgraded.take();
            shared.mark_busy(thread, false);
            let sent = send_unsent(conn, shared);
            if !sent {
                outcome.reusable = false;
            }
            crate::stats::response(outcome.status, started);
            log_access(&buffers.environ, &buffers.call, outcome, started);
            if let Some(upgraded) = upgraded {
                return take_over(upgraded, sent && outcome.status == 101, &buffers.environ);
            }
            if conn.sending_file() {
                // `serve` sends the file, then closes unless the body says it may go on.
                Then::Wait
            } else if outcome.reusable {
                Then::Next
            } else {
                Then::Close
            }
        }
        Progress::Pending(call) => {
            shared.mark_idle(thread);
            let parked = ParkedRequest {
                call: Some(call),
                // The app keeps pointers into it until close: it goes with the request.
                environ: std::mem::take(&mut buffers.environ),
                body: transport.body,
                started,
                due: Due::Waiting,
                wants_input: transport.wants_input,
                deadline: shared.request_deadline(thread),
                output_waits_since: None,
            };
            deferred::park(conn, parked, shared.config.io_timeout, slots);
            Then::Wait
        }
    }
}

/// The request that took its connection ended: the connection becomes the app's if its 101 is
/// out (`ok`); else the app is told the connection closed.
pub(super) fn take_over(upgraded: Arc<Upgraded>, ok: bool, environ: &Environ) -> Then {
    if !ok {
        upgraded.abandon();
        return Then::Close;
    }
    upgraded.set_access(crate::logging::UpgradeSeed::new(
        environ.remote_host(),
        environ,
    ));
    Then::Upgrade(upgraded)
}

/// A deferred request that ended sends what it kept unsent (only the last few bytes can be: its
/// body's `close` waits for the rest to be read), waiting for the client as a blocking write
/// does; false if the client is gone.
pub(super) fn send_unsent(conn: &mut Conn, shared: &Shared) -> bool {
    if !conn.has_unsent() {
        return true;
    }
    match conn.write_all(&[], shared.config.io_timeout) {
        Ok(()) => true,
        Err(e) => {
            log::debug!(
                "{}: client gone while sending the response: {e}",
                conn.peer()
            );
            false
        }
    }
}

/// The access-log line of a request the app answered (if the access log is on).
/// It names the client as the app saw it (`REMOTE_ADDR`).
pub(super) fn log_access(
    environ: &Environ,
    response: &Scratch,
    outcome: Outcome,
    started: Option<Instant>,
) {
    if let Some(log) = logging::access_log() {
        log.served(
            environ.remote_host(),
            environ,
            &response.fields(),
            outcome.status,
            outcome.body_bytes,
            started,
        );
    }
}

fn reject(peer: PeerHost, error: &ParseError, buffers: &mut Buffers) {
    reject_status(peer, error.status(), error, buffers);
}

/// Answer a request the app never saw with an error status and close (RFC 9112 §9.6 lets a
/// server close after an error; after a framing error it must, as the next request's start is
/// unknown).
fn reject_status(
    peer: PeerHost,
    status: u16,
    reason: &dyn std::fmt::Display,
    buffers: &mut Buffers,
) {
    logging::refused(peer, status, &format_args!("rejected: {reason}"));
    crate::stats::rejected(status);
    // Held after any responses still held for this connection; `serve` sends them all.
    buffers.call.hold_error(status, buffers.date.get());
}

/// The request body and the socket, as the app sees them through `read` and the response path.
pub(super) struct ConnTransport<'a> {
    pub(super) conn: &'a mut Conn,
    /// Where the request's body stands (kept by a parked request between its `next`s).
    pub(super) body: BodyProgress,
    /// `--io-timeout`: one wait for the client.
    timeout: Duration,
    /// For taking waits for the client out of the request's --timeout clock.
    shared: &'a Shared,
    thread: usize,
    date: &'a mut DateCache,
    wall: SystemTime,
    sink: &'a mut Vec<u8>,
    /// Where the request's wakes go.
    slots: &'a Arc<Slots>,
    /// The app's last `try_read` found nothing: `next` is due again when bytes arrive.
    pub(super) wants_input: bool,
    /// A deferred (ABI 1.1) app's request: output the socket has no room for is kept in the
    /// connection and waits on epoll, instead of holding the thread (`deferred.rs`).
    park_writes: bool,
}

/// Where one request's body stands: what its transport works on, and what a parked request
/// keeps until its next `next` (`deferred.rs`).
pub(super) struct BodyProgress {
    pub(super) decoder: BodyDecoder,
    pub(super) expect_continue: bool,
    pub(super) continue_sent: bool,
    /// What is left of `--body-timeout`: the time this request may still wait for body bytes.
    pub(super) body_wait_left: Duration,
    /// The number wakes name this request by (0 until its first waker).
    pub(super) wake_id: u64,
    /// What an upgrade request offers (ABI 1.2); `None` for every other request.
    pub(super) upgrade: Option<Box<UpgradeOffer>>,
    /// The connection its app took, attached once the request ends.
    pub(super) upgraded: Option<Arc<Upgraded>>,
    /// The body's trailer fields as the app got them (ABI 1.3), made on its first ask.
    pub(super) trailers: Option<FieldList>,
}

impl<'a> ConnTransport<'a> {
    /// The transport of a request on `conn`, run by serving thread `thread`.
    pub(super) fn new(
        conn: &'a mut Conn,
        body: BodyProgress,
        shared: &'a Shared,
        thread: usize,
        buffers: (&'a mut DateCache, &'a mut Vec<u8>),
        slots: &'a Arc<Slots>,
    ) -> Self {
        let (date, sink) = buffers;
        ConnTransport {
            conn,
            body,
            timeout: shared.config.io_timeout,
            shared,
            thread,
            date,
            wall: shared.coarse_wall(),
            sink,
            slots,
            wants_input: false,
            park_writes: shared.app.defers(),
        }
    }

    /// The request ended (close was called): wakes naming it do nothing from now on.
    pub(super) fn end(&self) {
        if self.body.wake_id != 0 {
            self.slots.end_request(self.conn.token());
        }
    }

    /// Runs `wait`, which may wait for the client, with the request's --timeout clock stopped;
    /// returns its result and how long it took.
    fn waiting_for_client<R>(&mut self, wait: impl FnOnce(&mut Conn) -> R) -> (R, Duration) {
        let paused = self.shared.begin_client_wait(self.thread);
        let result = wait(self.conn);
        (result, self.shared.end_client_wait(paused))
    }

    /// Writes every part, waiting up to --io-timeout each time the client's window is full; a
    /// deferred app's request keeps what does not fit instead (its request then parks until
    /// the client read it: `call.rs` asks `output_blocked` before each `next`).
    fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        if self.park_writes {
            return self.conn.write_or_keep(parts);
        }
        let timeout = self.timeout;
        self.waiting_for_client(|conn| conn.write_all(parts, timeout))
            .0
    }

    /// Waits (up to --io-timeout, and no longer than what is left of --body-timeout) for more
    /// body bytes and buffers them. `Ok(0)`: the client closed.
    fn read_body_bytes(&mut self) -> std::io::Result<usize> {
        let past_deadline = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the body did not arrive within --body-timeout",
            )
        };
        if self.body.body_wait_left.is_zero() {
            return Err(past_deadline());
        }
        let timeout = self.timeout.min(self.body.body_wait_left);
        let (read, waited) = self.waiting_for_client(|conn| conn.read_more(timeout));
        self.body.body_wait_left = self.body.body_wait_left.saturating_sub(waited);
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && timeout < self.timeout => {
                Err(past_deadline())
            }
            read => read,
        }
    }

    fn decode_buffered(&mut self, out: &mut [u8]) -> Result<usize, i32> {
        loop {
            let input = self.conn.input();
            if self.body.decoder.is_done() || input.is_empty() {
                return Ok(0);
            }
            let (consumed, produced) = self
                .body
                .decoder
                .decode(input, out)
                .map_err(body_error_code)?;
            self.conn.consume(consumed);
            if produced > 0 || consumed == 0 {
                return Ok(produced);
            }
        }
    }

    /// RFC 9110 §10.1.1: the client waits for `100 Continue` before sending the body; send it
    /// when the app first asks for body bytes that are not here yet.
    fn send_continue(&mut self) -> Result<(), i32> {
        if self.body.expect_continue && !self.body.continue_sent {
            self.body.continue_sent = true;
            let mut interim = Vec::with_capacity(32);
            encode_continue(&mut interim);
            self.send(&[&interim]).map_err(|_| WS_ERR_CLIENT_GONE)?;
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
            if produced > 0 || self.body.decoder.is_done() {
                return Ok(produced);
            }
            if may_continue {
                self.send_continue()?;
            }
            match self.read_body_bytes() {
                Ok(0) => {
                    log::debug!(
                        "{}: client closed the connection mid-body",
                        self.conn.peer()
                    );
                    return Err(WS_ERR_CLIENT_GONE);
                }
                Ok(_) => {}
                Err(e) => {
                    log::debug!("{}: reading the body failed: {e}", self.conn.peer());
                    return Err(if e.kind() == std::io::ErrorKind::TimedOut {
                        WS_ERR_TIMEOUT
                    } else {
                        WS_ERR_CLIENT_GONE
                    });
                }
            }
        }
    }

    fn write_all(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        self.send(parts)
    }

    fn body_consumed(&mut self) -> bool {
        if self.body.decoder.is_done() {
            // Every keep-alive response asks; most requests have no body left to drain.
            return true;
        }
        // Drain only what is already buffered: waiting for an unread body would let a client
        // hold the thread, and closing the connection is always correct.
        let mut sink = std::mem::take(self.sink);
        sink.resize(BODY_SINK, 0);
        while !self.body.decoder.is_done() {
            match self.decode_buffered(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        *self.sink = sink;
        self.body.decoder.is_done()
    }

    fn body_done(&mut self) -> bool {
        self.body.decoder.is_done()
    }

    fn body_buffered(&mut self) -> bool {
        // A chunked body's rest cannot be told without decoding it: counted as not here.
        let buffered = self.conn.input().len() as u64;
        self.body.decoder.is_done()
            || matches!(self.body.decoder.remaining_hint(), Some(n) if n <= buffered)
    }

    fn date(&mut self) -> &[u8] {
        self.date.at(self.wall)
    }

    fn try_read_body(&mut self, out: &mut [u8], may_continue: bool) -> Result<Option<usize>, i32> {
        if out.is_empty() {
            return Ok(Some(0));
        }
        let produced = self.decode_buffered(out)?;
        if produced > 0 || self.body.decoder.is_done() {
            return Ok(Some(produced));
        }
        if may_continue {
            self.send_continue()?;
        }
        // What the socket holds now, without waiting (bounded: the app reads at its pace).
        if !self.conn.poll_input(deferred::PARKED_INPUT_LIMIT) {
            log::debug!(
                "{}: client closed the connection mid-body",
                self.conn.peer()
            );
            return Err(WS_ERR_CLIENT_GONE);
        }
        let produced = self.decode_buffered(out)?;
        if produced > 0 || self.body.decoder.is_done() {
            return Ok(Some(produced));
        }
        if self.conn.tls_half_closed() {
            log::debug!("{}: client ended its input mid-body", self.conn.peer());
            return Err(WS_ERR_CLIENT_GONE);
        }
        self.wants_input = true;
        Ok(None)
    }

    fn output_blocked(&mut self) -> bool {
        // A file body (ABI 1.2 `send_file`) ends the response: the app is not asked for more,
        // and what waits before it goes first (`Conn::send_file_body`).
        self.conn.has_unsent() && !self.conn.sending_file()
    }

    fn takes_files(&self) -> bool {
        true
    }

    fn send_file(&mut self, body: FileBody) {
        self.conn.set_file_body(body);
    }

    fn upgrade_offer(&self) -> Option<&UpgradeOffer> {
        self.body.upgrade.as_deref()
    }

    fn request_trailers(&mut self) -> Option<&[WsPair]> {
        let BodyProgress {
            decoder, trailers, ..
        } = &mut self.body;
        if !decoder.is_done() {
            return None;
        }
        Some(
            trailers
                .get_or_insert_with(|| FieldList::new(decoder.trailers()))
                .pairs(),
        )
    }

    fn take_connection(
        &mut self,
        handler: ConnHandler,
        mode: Mode,
    ) -> Option<Arc<dyn TakenConnection>> {
        if self.body.upgraded.is_some() {
            return None;
        }
        let upgraded = Upgraded::new(
            self.conn.token(),
            Arc::clone(self.slots),
            handler,
            mode,
            &self.shared.config,
            None,
        );
        self.body.upgraded = Some(Arc::clone(&upgraded));
        Some(upgraded)
    }

    fn new_waker(&mut self) -> Option<Arc<dyn Wake>> {
        if self.body.wake_id == 0 {
            self.body.wake_id = self.slots.request_id(self.conn.token());
        }
        Some(Arc::new(RequestWaker {
            slots: Arc::clone(self.slots),
            token: self.conn.token(),
            request: self.body.wake_id,
        }))
    }
}
