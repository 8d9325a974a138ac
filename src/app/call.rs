//! One request through the app: `call`, body iteration and `close`, driven through the
//! response encoder (`http/encoder.rs`), which owns every decision about the response.
//!
//! The encoder lives in the request's [`Exchange`], which the app's host callbacks reach too
//! (on the thread running the request); this file borrows it only between calls into the app
//! and marks which app function runs, so that host I/O from `call` and `next` is answered and
//! from `close` refused (the header's "Deferred responses" and "Host I/O phases").
//!
//! Two drivers share the body loop: [`start`]/[`resume`] for the server, where a body `next`
//! that answers `WS_PENDING` (ABI 1.1) ends the stretch with [`Progress::Pending`] — the
//! request's state moves into a [`Parked`] the server keeps off any thread — and [`run`] for
//! `check` and the ABI benchmark, which waits on its own thread for the app's wake instead.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app_abi::raw::{
    WsBody, WsBytes, WsNextFn, WsPair, WsRequest, WsRequestParts, WS_LENGTH_UNKNOWN, WS_OK,
    WS_PENDING, WS_REQ_FIELDS_IN_PARTS,
};

use super::environ::Environ;
use super::exchange::{Exchange, Phase};
use super::host::HOST;
use super::loader::LoadedApp;
use super::waker::{ThreadWake, Wake};
use crate::http::encoder::{self, Encoder, Outcome, ResponseContext, BURST};
use crate::http::response::DateCache;

pub(crate) use super::exchange::Transport;
pub(crate) use crate::http::encoder::Scratch;

/// How long [`run`] waits for a pending app's wake before it gives up on the request.
const BLOCKING_WAKE_LIMIT: Duration = Duration::from_secs(30);

/// Facts about the request that shape the response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestFacts {
    pub(crate) is_head: bool,
    pub(crate) version_minor: u8,
    /// The client allows keep-alive and the server is not draining.
    pub(crate) keep_alive: bool,
    pub(crate) flags: u32,
    /// Leave the finished response in `Scratch::out` for the caller to send with the responses
    /// to further pipelined requests (one write per batch); the caller must flush it.
    pub(crate) defer_flush: bool,
    /// The transport frames response heads itself (HTTP/2): the encoder offers it the app's
    /// head as fields (`Wire::take_head`) instead of writing HTTP/1 bytes.
    pub(crate) frames_heads: bool,
}

impl RequestFacts {
    fn response_context(&self) -> ResponseContext {
        ResponseContext {
            is_head: self.is_head,
            version_minor: self.version_minor,
            keep_alive: self.keep_alive,
            defer_flush: self.defer_flush,
            frames_heads: self.frames_heads,
            keep_fields: crate::logging::access_log()
                .is_some_and(crate::logging::AccessLog::reads_response_fields),
            hold_completing_write: false,
        }
    }
}

/// Where a stretch of a request left it.
pub(crate) enum Progress {
    /// `close` was called: the response is complete (or the connection must close).
    Done(Outcome),
    /// The body's `next` answered `WS_PENDING`: the request waits, owning what it needs.
    Pending(Parked),
}

/// A request whose body's `next` pended: the app's body, the response's state and the buffers
/// it owns now (the head not sent yet). The environ (and the `ws_request` in it) is kept beside
/// it by the server, at the same address.
pub(crate) struct Parked {
    body: WsBody,
    response: encoder::Suspended,
    scratch: Scratch,
    /// The body ended; only its last bytes wait for the client to read them (then `close`).
    ended: bool,
}

// SAFETY: `body.ctx` is the app's; ABI 1.1 lets the server call a body's `next` and `close` on any
// serving thread (one at a time), which is all a `Parked` is used for after it moves.
unsafe impl Send for Parked {}

/// Why the server ends a parked request without asking the app for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// Past `--timeout`: 504 if nothing was sent.
    TimedOut,
    /// The client disconnected.
    ClientGone,
    /// A stop's `--graceful-timeout` ran out: 503 if nothing was sent.
    Stopping,
}

/// Run one request through `app`, waiting on this thread if its body pends (`check`, the ABI
/// benchmark, an HTTP/2 stream of an app that does not defer). `environ` is the request's
/// CGI/WSGI variables; `parts` what `request_parts` answers (null: none were kept).
pub(crate) fn run<'a>(
    app: &'a LoadedApp,
    (environ, parts): (&[WsPair], *const WsRequestParts),
    facts: RequestFacts,
    transport: &'a mut (dyn Transport + 'a),
    scratch: &'a mut Scratch,
) -> Outcome {
    let mut request = WsRequest {
        size: std::mem::size_of::<WsRequest>() as u32,
        flags: facts.flags | fields_flag(parts),
        environ: environ.as_ptr(),
        environ_len: if app.reads_environ() {
            environ.len()
        } else {
            0
        },
        io: std::ptr::null_mut(),
        host: &HOST,
        log_ctx: app.log_ctx(),
    };
    // The request's identity is its address, which does not move before close returns.
    request.io = &request as *const WsRequest as *mut _;
    match call_and_pull(
        app,
        (&request, parts),
        facts,
        transport,
        scratch,
        Drive::Wait,
    ) {
        Progress::Done(outcome) => outcome,
        Progress::Pending(_) => unreachable!("Drive::Wait never pends"),
    }
}

/// Start one request for the server: `call`, then the body until it ends or pends. `environ`
/// was built for this request; its `ws_request` (and so `io`) stays put while it is parked.
pub(crate) fn start(
    app: &LoadedApp,
    environ: &mut Environ,
    facts: RequestFacts,
    transport: &mut dyn Transport,
    scratch: &mut Scratch,
) -> Progress {
    let drive = if app.defers() {
        Drive::Park
    } else {
        Drive::Legacy
    };
    let parts = parts_for(app, environ);
    let flags = facts.flags | fields_flag(parts);
    let request = environ.request(flags, &HOST, app.log_ctx(), app.reads_environ());
    call_and_pull(app, (request, parts), facts, transport, scratch, drive)
}

/// Whether a request's environ has a reader: the app (all but a `WS_APP_NO_ENVIRON` one), or
/// the access log, which reads the request as the environ spells it.
pub(crate) fn environ_read(app: &LoadedApp) -> bool {
    app.reads_environ() || crate::logging::access_log().is_some()
}

/// The parts `request_parts` answers with, for an app that reads them (null otherwise). The
/// address stays put while `environ` lives, however often it is filled again.
pub(crate) fn parts_for(app: &LoadedApp, environ: &Environ) -> *const WsRequestParts {
    if app.wants_parts() {
        environ.parts.raw()
    } else {
        std::ptr::null()
    }
}

/// `WS_REQ_FIELDS_IN_PARTS` where parts are kept: the environ of an app that reads them is
/// built without its fields (`RequestParts::noted`).
fn fields_flag(parts: *const WsRequestParts) -> u32 {
    if parts.is_null() {
        0
    } else {
        WS_REQ_FIELDS_IN_PARTS
    }
}

/// Resume a parked request on this thread: call `next` again, or, if `cancel`, only `close`.
/// `environ` is the one it started with; `keep_alive` false withdraws keep-alive (a drain began
/// while it was parked). When it is done, `thread_scratch` (the serving thread's) gets its
/// response fields, where the access log looks for response headers.
pub(crate) fn resume(
    app: &LoadedApp,
    environ: &Environ,
    parked: Parked,
    transport: &mut dyn Transport,
    cancel: Option<Cancel>,
    keep_alive: bool,
    thread_scratch: &mut Scratch,
) -> Progress {
    let Parked {
        body,
        response,
        mut scratch,
        ended,
    } = parked;
    let encoder = Encoder::resume(
        shorten(transport),
        &mut scratch,
        response,
        app.name(),
        keep_alive,
    );
    let exchange =
        Exchange::new(encoder, app.name(), environ.io()).with_parts(parts_for(app, environ));
    let active = exchange.activate();
    let pulled = match (cancel, body.next) {
        (Some(Cancel::TimedOut), _) => Pulled::Cancelled(504),
        (Some(Cancel::Stopping), _) => Pulled::Cancelled(503),
        (Some(Cancel::ClientGone), _) => {
            exchange.drive(|encoder| encoder.client_gone());
            Pulled::Ended
        }
        (None, _) if ended => Pulled::Ended,
        (None, Some(next)) => pull(&exchange, &body, next, app, Drive::Park),
        (None, None) => Pulled::Ended,
    };
    if let Pulled::Cancelled(status) = pulled {
        exchange.drive(|encoder| encoder.give_up(status));
    }
    drop(active);
    match close_or_suspend(exchange, &body, pulled, Drive::Park) {
        Ok(outcome) => {
            thread_scratch.take_fields(&mut scratch);
            Progress::Done(outcome)
        }
        Err((response, ended)) => Progress::Pending(Parked {
            body,
            response,
            scratch,
            ended,
        }),
    }
}

/// The transport for one stretch of an exchange (trait-object lifetimes shorten only at a
/// coercion site like this return).
fn shorten<'s>(transport: &'s mut (dyn Transport + '_)) -> &'s mut (dyn Transport + 's) {
    transport
}

/// What the body loop does when `next` answers `WS_PENDING`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drive {
    /// Return [`Progress::Pending`] (the server parks the request).
    Park,
    /// Wait on this thread for the app's wake (`check`, the benchmark).
    Wait,
    /// A 1.0 app: `WS_PENDING` is no code at all, so it fails the request as any unknown code.
    Legacy,
}

/// How the body loop ended.
enum Pulled {
    /// The response ended (body end, error, client gone).
    Ended,
    /// `next` answered `WS_PENDING` under `Drive::Park`.
    Pending,
    /// The server gives up on the request with this status (if nothing was sent).
    Cancelled(u16),
}

fn call_and_pull(
    app: &LoadedApp,
    (request, parts): (&WsRequest, *const WsRequestParts),
    facts: RequestFacts,
    transport: &mut dyn Transport,
    scratch: &mut Scratch,
    drive: Drive,
) -> Progress {
    let mut context = facts.response_context();
    context.hold_completing_write = facts.defer_flush && app.never_blocks();
    let encoder = Encoder::new(shorten(transport), &mut *scratch, context, app.name());
    let exchange = Exchange::new(encoder, app.name(), request.io).with_parts(parts);
    let active = exchange.activate();
    let mut body = WsBody::EMPTY;
    exchange.enter(Phase::Call);
    // SAFETY: `request`, its environ and the exchange (reached through io on this thread)
    // outlive the call and the body's `close`, which `end` calls once when `call` returns WS_OK
    // (a parked request keeps them: the server's `Parked` and `Environ`); `body` is a valid
    // out-pointer. No borrow of the exchange is held while the app runs.
    let rc = unsafe { app.call(request, &mut body) };
    if rc != WS_OK {
        let level = exchange.drive(|encoder| app_failure_level(encoder));
        log::log!(target: "app", level, "[{}] call failed with code {rc}", app.name());
        exchange.drive(|encoder| encoder.fail());
        drop(active);
        return Progress::Done(exchange.finish());
    }
    let hint = (body.length_hint != WS_LENGTH_UNKNOWN).then_some(body.length_hint);
    exchange.drive(|encoder| encoder.set_length_hint(hint));
    let pulled = match body.next {
        // HEAD: the framing headers are those of GET, but no chunk is pulled — unless the app
        // starts its response from `next` (PEP 3333 allows it; an ABI 1.1 deferred body must):
        // then it is pulled like GET's, its chunks dropped by the body-less framing.
        Some(_) if facts.is_head && exchange.drive(|encoder| encoder.head_is_set()) => {
            exchange.drive(|encoder| encoder.end_unpulled());
            Pulled::Ended
        }
        Some(next) => pull(&exchange, &body, next, app, drive),
        // No chunks at all: whatever came by write() is the whole body.
        None => {
            exchange.drive(|encoder| encoder.end());
            Pulled::Ended
        }
    };
    drop(active);
    match close_or_suspend(exchange, &body, pulled, drive) {
        Ok(outcome) => Progress::Done(outcome),
        Err((response, ended)) => Progress::Pending(Parked {
            body,
            response,
            // The thread's buffers go with the request (only a parking request allocates anew).
            scratch: std::mem::take(scratch),
            ended,
        }),
    }
}

/// An app's failure is an error, unless the client caused it (a refused or abandoned request
/// body the app could not read): then the server answers the client, and it is a debug line.
fn app_failure_level<W: encoder::Wire + ?Sized>(encoder: &Encoder<'_, W>) -> log::Level {
    if encoder.clients_fault() {
        log::Level::Debug
    } else {
        log::Level::Error
    }
}

/// Ends the stretch: unless the body pended, the server's one `close` and the outcome; else the
/// response's state, flushed, and whether the body had ended (under `Drive::Park` a body that
/// ended while its last bytes wait for the client is suspended too: `close` once they are sent).
fn close_or_suspend(
    exchange: Exchange<'_>,
    body: &WsBody,
    pulled: Pulled,
    drive: Drive,
) -> Result<Outcome, (encoder::Suspended, bool)> {
    if let Pulled::Pending = pulled {
        return Err((exchange.suspend(), false));
    }
    if drive == Drive::Park && matches!(pulled, Pulled::Ended) {
        let blocked = exchange.drive(|encoder| {
            encoder.flush_unless_held();
            encoder.wire().output_blocked()
        });
        if blocked {
            return Err((exchange.suspend(), true));
        }
    }
    let active = exchange.activate();
    exchange.enter(Phase::Close);
    if let Some(close) = body.close {
        // SAFETY: call returned WS_OK, so the server owes exactly one close on this ctx, and
        // this is the only one (the body loop never calls it, and a request that pended gets
        // here exactly once, from its last resume). No borrow is held.
        unsafe { close(body.ctx) };
    }
    drop(active);
    Ok(exchange.finish())
}

/// Pulls the body's chunks into the encoder until the body ends or (`Drive::Park`) pends. The
/// encoder is borrowed between calls to `next`, never across one.
fn pull(
    exchange: &Exchange<'_>,
    body: &WsBody,
    next: WsNextFn,
    app: &LoadedApp,
    drive: Drive,
) -> Pulled {
    let app_name = app.name();
    let ends_at_length = app.ends_at_length();
    let mut burst = false;
    loop {
        // Flush before asking for more — the app may take its time producing the next chunk,
        // and what it already produced must reach the client meanwhile — unless the encoder
        // holds it back (a complete body, a burst of small chunks).
        let timed =
            exchange.drive(|encoder| encoder.before_next(burst).then(|| encoder.next_is_timed()));
        let Some(timed) = timed else {
            return Pulled::Ended;
        };
        if drive == Drive::Park && exchange.drive(|encoder| encoder.wire().output_blocked()) {
            // The client has not read what went before: wait for it on the event loop, not
            // here, and ask the app for more once it has.
            return Pulled::Pending;
        }
        let asked = timed.then(Instant::now);
        let mut chunk = WsBytes::EMPTY;
        exchange.enter(Phase::Next);
        // SAFETY: ctx/next come from a successful call; chunk is a valid out-pointer. No borrow
        // of the exchange is held while the app runs.
        let rc = unsafe { next(body.ctx, &mut chunk) };
        burst = asked.is_some_and(|t| t.elapsed() < BURST);
        if rc == WS_PENDING && drive != Drive::Legacy {
            match drive {
                Drive::Park | Drive::Legacy => return Pulled::Pending,
                Drive::Wait => {
                    if exchange.drive(|encoder| encoder.wire().wait_for_wake(BLOCKING_WAKE_LIMIT)) {
                        continue;
                    }
                    log::error!(target: "app", "[{app_name}] body pended and was not woken within {BLOCKING_WAKE_LIMIT:?}");
                    exchange.drive(|encoder| encoder.fail());
                    return Pulled::Ended;
                }
            }
        }
        let more = exchange.drive(|encoder| match rc {
            1 => {
                // SAFETY: the ABI keeps a chunk valid until the next `next` or `close`; the
                // encoder copies or writes it before either happens.
                let data = unsafe { chunk.as_slice() };
                if !encoder.chunk(data) {
                    false
                } else if ends_at_length && encoder.complete_by_length() {
                    // The usual one-chunk body of known length: its end is not asked for, which
                    // saves a `next` across the ABI per response (`WS_APP_LENGTH_ENDS_BODY`).
                    encoder.end();
                    false
                } else {
                    true
                }
            }
            0 => {
                encoder.end();
                false
            }
            code => {
                let level = app_failure_level(encoder);
                log::log!(target: "app", level, "[{app_name}] body iterator failed with code {code}");
                encoder.fail();
                false
            }
        });
        if !more {
            return Pulled::Ended;
        }
    }
}

/// An in-memory connection for `check` and the ABI benchmark: no request body; the response is
/// encoded and dropped (the outcome reports its status and size). A body that pends is waited
/// for on the calling thread.
#[derive(Default)]
pub(crate) struct MemoryTransport {
    date: DateCache,
    wake: Option<Arc<ThreadWake>>,
}

impl Transport for MemoryTransport {
    fn read_body(&mut self, _buf: &mut [u8], _may_continue: bool) -> Result<usize, i32> {
        Ok(0)
    }

    fn write_all(&mut self, _parts: &[&[u8]]) -> io::Result<()> {
        Ok(())
    }

    fn body_consumed(&mut self) -> bool {
        true
    }

    fn body_done(&mut self) -> bool {
        true
    }

    fn body_buffered(&mut self) -> bool {
        true
    }

    fn date(&mut self) -> &[u8] {
        self.date.get()
    }

    fn try_read_body(
        &mut self,
        _buf: &mut [u8],
        _may_continue: bool,
    ) -> Result<Option<usize>, i32> {
        Ok(Some(0))
    }

    fn new_waker(&mut self) -> Option<Arc<dyn Wake>> {
        let wake = self.wake.get_or_insert_with(Arc::default);
        Some(Arc::clone(wake) as Arc<dyn Wake>)
    }

    fn wait_for_wake(&mut self, limit: Duration) -> bool {
        self.wake.as_ref().is_some_and(|wake| wake.wait(limit))
    }
}
