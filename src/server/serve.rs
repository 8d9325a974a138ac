//! Serving the requests buffered on one connection, on the thread an event woke: find each head
//! (`Conn::next_head`), parse it once, split its target, build the environ, run the app, and
//! hold the response so a batch of pipelined requests is answered in one write; then say
//! whether the connection should park (wait for its client) or close.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use app_abi::raw::{
    WS_ERR_BAD_BODY, WS_ERR_CLIENT_GONE, WS_ERR_TIMEOUT, WS_ERR_TOO_LARGE, WS_REQ_MULTIPROCESS,
    WS_REQ_MULTITHREAD,
};

use super::access_log::{log_rejected, AccessRecord};
use super::conn::{Conn, NextHead};
use super::Shared;
use crate::app::call::{self, Cancel, Progress, RequestFacts, Scratch, Transport};
use crate::app::environ::{Environ, RequestParts};
use crate::app::waker::Wake;
use crate::http::body::{BodyDecoder, BodyError};
use crate::http::error::ParseError;
use crate::http::request::{parse_scanned, RequestHead};
use crate::http::response::{encode_continue, DateCache};
use crate::http::target::parse_target;
use std::sync::Arc;

/// How much of a request body the app left unread is drained (from what is already buffered)
/// per step, so the connection can carry the next request.
const BODY_SINK: usize = 8 * 1024;

/// Per-thread buffers reused by every request this thread serves.
#[derive(Default)]
pub(crate) struct ThreadScratch {
    /// Index of the serving thread that owns this scratch (for the --timeout watch).
    thread: usize,
    head: RequestHead,
    buffers: Buffers,
}

/// What one exchange writes into, apart from the parsed head.
#[derive(Default)]
struct Buffers {
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
    let after = serve_buffered(conn, shared, scratch);
    // The responses to a batch of pipelined requests leave in one write.
    let call = &mut scratch.buffers.call;
    if !call.held().is_empty() {
        let sent = conn.write_all(&[call.held()], shared.config.io_timeout);
        call.clear_held();
        if let Err(e) = sent {
            log::debug!("{}: client gone while sending responses: {e}", conn.peer());
            return After::Close;
        }
    }
    after
}

fn serve_buffered(conn: &mut Conn, shared: &Shared, scratch: &mut ThreadScratch) -> After {
    let limits = &shared.config.limits;
    loop {
        let parsed = match conn.next_head(limits) {
            NextHead::Complete(end) => parse_scanned(conn.input(), &end, limits, &mut scratch.head),
            NextHead::Invalid(e) => Err(e),
            NextHead::Waiting => return After::Park,
            NextHead::Closed => return After::Close,
        };
        let reusable = match parsed {
            Ok(head_len) => serve_one(
                conn,
                &scratch.head,
                head_len,
                shared,
                scratch.thread,
                &mut scratch.buffers,
            ),
            Err(e) => {
                reject(conn.peer().ip(), &e, &mut scratch.buffers);
                false
            }
        };
        if !reusable {
            return After::Close;
        }
    }
}

/// One request whose head is `conn.input()[..head_len]`. True if the connection may carry
/// another request.
fn serve_one(
    conn: &mut Conn,
    head: &RequestHead,
    head_len: usize,
    shared: &Shared,
    thread: usize,
    buffers: &mut Buffers,
) -> bool {
    // Only the access log wants the duration: no clock read per request otherwise.
    let access_log = log::log_enabled!(target: "access", log::Level::Info);
    let started = access_log.then(Instant::now);
    let config = &shared.config;
    let peer = conn.peer();
    let buf = conn.input().get(..head_len).unwrap_or_default();
    let method = head.method(buf);
    let target = match parse_target(method, head.target(buf)) {
        Ok(target) => target,
        Err(e) => {
            reject(peer.ip(), &e, buffers);
            return false;
        }
    };
    let decoder = match BodyDecoder::new(&head.framing, config.max_body) {
        Ok(decoder) => decoder,
        Err(e) => {
            let reason = format_args!("{e} (over --max-body {})", config.max_body);
            reject_status(peer.ip(), e.status(), &reason, buffers);
            return false;
        }
    };
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
    buffers.environ.build(RequestParts {
        method,
        target,
        version_minor: head.version_minor,
        headers: head.header_iter(buf),
        local: conn.local(),
        remote: peer,
        flags,
    });
    conn.start_request(head_len);
    let mut transport = ConnTransport {
        conn,
        decoder,
        expect_continue: head.expect_continue,
        continue_sent: false,
        timeout: config.io_timeout,
        date: &mut buffers.date,
        wall: shared.coarse_wall(),
        sink: &mut buffers.body_sink,
    };
    shared.mark_busy(thread, true);
    let outcome = {
        let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
        match call::start(
            &shared.app,
            &mut buffers.environ,
            facts,
            &mut transport,
            &mut buffers.call,
        ) {
            Progress::Done(outcome) => outcome,
            Progress::Pending(parked) => call::resume(
                &shared.app,
                &buffers.environ,
                parked,
                &mut transport,
                Some(Cancel::Stopping),
            )
            .done(),
        }
    };
    shared.mark_busy(thread, false);
    if let Some(started) = started {
        let record = AccessRecord {
            peer: peer.ip(),
            request: buffers.environ.request_line(),
            version_minor: facts.version_minor,
            status: outcome.status,
            body_bytes: outcome.body_bytes,
            elapsed: started.elapsed(),
        };
        log::info!(target: "access", "{record}");
    }
    outcome.reusable
}

fn reject(peer: IpAddr, error: &ParseError, buffers: &mut Buffers) {
    reject_status(peer, error.status(), error, buffers);
}

/// Answer a request the app never saw with an error status and close (RFC 9112 §9.6 lets a
/// server close after an error; after a framing error it must, as the next request's start is
/// unknown).
fn reject_status(peer: IpAddr, status: u16, reason: &dyn std::fmt::Display, buffers: &mut Buffers) {
    log_rejected(peer, status, reason);
    // Held after any responses still held for this connection; `serve` sends them all.
    buffers.call.hold_error(status, buffers.date.get());
}

/// The request body and the socket, as the app sees them through `read` and the response path.
struct ConnTransport<'a> {
    conn: &'a mut Conn,
    decoder: BodyDecoder,
    expect_continue: bool,
    continue_sent: bool,
    timeout: Duration,
    date: &'a mut DateCache,
    wall: SystemTime,
    sink: &'a mut Vec<u8>,
}

impl ConnTransport<'_> {
    fn decode_buffered(&mut self, out: &mut [u8]) -> Result<usize, i32> {
        loop {
            let input = self.conn.input();
            if self.decoder.is_done() || input.is_empty() {
                return Ok(0);
            }
            let (consumed, produced) = self.decoder.decode(input, out).map_err(body_error_code)?;
            self.conn.consume(consumed);
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
            self.conn
                .write_all(&[&interim], self.timeout)
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
            match self.conn.read_more(self.timeout) {
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
        self.conn.write_all(parts, self.timeout)
    }

    fn body_consumed(&mut self) -> bool {
        // Drain only what is already buffered: waiting for an unread body would let a client
        // hold the thread, and closing the connection is always correct.
        let mut sink = std::mem::take(self.sink);
        sink.resize(BODY_SINK, 0);
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

    fn try_read_body(&mut self, out: &mut [u8], may_continue: bool) -> Result<Option<usize>, i32> {
        if out.is_empty() {
            return Ok(Some(0));
        }
        let produced = self.decode_buffered(out)?;
        if produced > 0 || self.decoder.is_done() {
            return Ok(Some(produced));
        }
        if may_continue {
            self.send_continue()?;
        }
        Ok(None)
    }

    fn new_waker(&mut self) -> Option<Arc<dyn Wake>> {
        None
    }
}
