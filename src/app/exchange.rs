//! What `ws_request.io` points to: one request's response encoder, reachable both from the
//! server (which drives the app, `call.rs`) and from the app's host callbacks (`host.rs`).
//!
//! Both sides only ever hold a shared `&Exchange`. The encoder sits in a `RefCell` that each
//! side borrows briefly — a host callback for its own duration, the server between two calls
//! into the app — so no `&mut` is ever live across a call into app code, and a callback made
//! from inside `next` (PEP 3333 lets an app call `start_response` lazily from its iterable, and
//! `write` then) borrows a state nobody else holds. The `Phase` says which app function is
//! running, which is what the header's rule ("Host I/O phases") turns on: host I/O is answered
//! during `call` and `next`, refused with `WS_ERR_STATE` from `close` on. A borrow that would
//! conflict (impossible today: no host callback calls into the app) is refused the same way,
//! never undefined behaviour.
//!
//! `ws_request.io` is the request's identity, not the exchange's address: a deferred request
//! (ABI 1.1) keeps its `io` while its exchange is rebuilt on whichever thread resumes it. A host
//! callback finds the exchange through the thread's *current* exchange ([`Exchange::activate`],
//! set while the server runs the request's `call`, `next` or `close` on this thread) and is
//! answered only if `io` is that request's — so a callback from any other thread is refused
//! rather than racing the thread that runs the request.

use std::cell::{Cell, RefCell, RefMut};
use std::ffi::c_void;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use app_abi::raw::{
    WsPair, WsRequest, WsRequestParts, WS_ERR_BAD_BODY, WS_ERR_CLIENT_GONE, WS_ERR_INVALID,
    WS_ERR_STATE, WS_ERR_TIMEOUT, WS_ERR_TOO_LARGE, WS_OK, WS_PENDING,
};

use super::host_upgrade::ConnHandler;
use super::upgraded::{Handle, Mode, TakenConnection};
use super::waker::Wake;
use crate::http::encoder::{Encoder, FramedHead, Outcome, Refusal, Suspended, Wire};
use crate::http::upgrade_offer::UpgradeOffer;
use crate::static_files::{hand_off, AppHead, Conditions, FileBody};

thread_local! {
    /// The request this thread runs app code for: its `io` and its exchange (type-erased), or
    /// nulls. Set by `Exchange::activate` for as long as the exchange is borrowed.
    static CURRENT: Cell<(*mut c_void, *const ())> =
        const { Cell::new((std::ptr::null_mut(), std::ptr::null())) };
}

/// What the connection layer provides to one exchange: the request body and the socket.
pub(crate) trait Transport {
    /// De-chunked body bytes; `Ok(0)` at the end. Errors are `WS_ERR_*` codes. `may_continue`
    /// says whether a `100 Continue` may still precede the final response (the encoder's
    /// answer): if it may and the client expects one, the transport sends it before it first
    /// waits for body bytes; once the final head is out it must not (RFC 9110 §15.2).
    fn read_body(&mut self, buf: &mut [u8], may_continue: bool) -> Result<usize, i32>;
    /// Write every part, in order, or fail (client gone or too slow).
    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()>;
    /// True if the request body has been consumed (draining what is cheap to drain), so the
    /// connection can carry another request.
    fn body_consumed(&mut self) -> bool;
    /// True if the request body was read to its end, without reading or draining any of it.
    fn body_done(&mut self) -> bool;
    /// True if the rest of the request body is here (see [`Wire::body_buffered`]).
    fn body_buffered(&mut self) -> bool;
    /// The cached `Date` header value.
    fn date(&mut self) -> &[u8];
    /// `try_read` (ABI 1.1): like `read_body` but never waits; `Ok(None)` when no byte is here
    /// now (the transport then resumes the request once some arrive).
    fn try_read_body(&mut self, buf: &mut [u8], may_continue: bool) -> Result<Option<usize>, i32>;
    /// The server's side of a new waker for this request, if it can resume requests.
    fn new_waker(&mut self) -> Option<Arc<dyn Wake>>;
    /// Output waits for the client to read (a transport that parks requests keeps what the
    /// socket had no room for): the body's `next` must not be called before it was sent.
    fn output_blocked(&mut self) -> bool {
        false
    }
    /// ABI 1.2: what the request offers to upgrade to (`None`: not an upgrade request).
    fn upgrade_offer(&self) -> Option<&UpgradeOffer> {
        None
    }
    /// ABI 1.2: the connection the app takes (the encoder wrote the 101); `None` where
    /// connections cannot be taken (`check`).
    fn take_connection(
        &mut self,
        _handler: ConnHandler,
        _mode: Mode,
    ) -> Option<Arc<dyn TakenConnection>> {
        None
    }
    /// For a transport whose requests cannot park (`check`): wait up to `limit` on this thread
    /// for a wake; false if none came (or this transport parks instead).
    fn wait_for_wake(&mut self, _limit: std::time::Duration) -> bool {
        false
    }
    /// Whether [`Transport::send_file`] is served (an HTTP/1 connection): elsewhere (HTTP/2
    /// streams, `check`) `send_file` answers `WS_ERR_STATE` before anything is sent, and the
    /// app sends chunks instead (every user in this repository falls back so).
    fn takes_files(&self) -> bool {
        false
    }
    /// The rest of the response is this file range (ABI 1.2 `send_file`), after what was
    /// written: the connection sends it as the client reads.
    fn send_file(&mut self, _body: FileBody) {}
    /// ABI 1.3: the request's trailer fields once its body was read to the end (`None` before;
    /// empty for a body that had none), kept until the request ends.
    fn request_trailers(&mut self) -> Option<&[WsPair]> {
        Some(&[])
    }
    /// ABI 1.3: the response's trailer fields (`Name: value\r\n` lines), where the transport
    /// frames them itself (HTTP/2); false where they have no place.
    fn send_trailers(&mut self, _lines: &[u8]) -> bool {
        false
    }
    /// The app's validated response head, where the transport frames heads itself (HTTP/2);
    /// false where heads go out as HTTP/1 bytes (see [`Wire::take_head`]).
    fn take_head(&mut self, _head: FramedHead<'_>) -> bool {
        false
    }
}

impl<T: Transport + ?Sized> Wire for T {
    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        Transport::write_all(self, parts)
    }

    fn body_consumed(&mut self) -> bool {
        Transport::body_consumed(self)
    }

    fn body_done(&mut self) -> bool {
        Transport::body_done(self)
    }

    fn body_buffered(&mut self) -> bool {
        Transport::body_buffered(self)
    }

    fn date(&mut self) -> &[u8] {
        Transport::date(self)
    }

    fn trailers(&mut self, lines: &[u8]) -> bool {
        Transport::send_trailers(self, lines)
    }

    fn take_head(&mut self, head: FramedHead<'_>) -> bool {
        Transport::take_head(self, head)
    }
}

/// Which side runs on the request's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The app's `call`: host I/O allowed.
    Call,
    /// The server, between calls into the app.
    Server,
    /// The body's `next`: host I/O allowed.
    Next,
    /// The body's `close`, and everything after: host I/O refused (`WS_ERR_STATE`).
    Close,
}

/// The state behind `ws_request.io` for one request (for one stretch on one thread, if the
/// request is deferred).
pub(crate) struct Exchange<'a> {
    encoder: RefCell<Encoder<'a, dyn Transport + 'a>>,
    phase: Cell<Phase>,
    app_name: &'a str,
    /// The request's `ws_request.io`.
    io: *mut c_void,
    /// Its parsed head for `request_parts` (ABI 1.3), null where none was kept.
    parts: *const WsRequestParts,
}

/// While alive, host callbacks on this thread reach the exchange it was made from.
pub(crate) struct Active<'e> {
    previous: (*mut c_void, *const ()),
    _exchange: std::marker::PhantomData<&'e ()>,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

impl<'a> Exchange<'a> {
    /// `io` is the request's identity (`ws_request.io`), the same for its whole life.
    pub(crate) fn new(
        encoder: Encoder<'a, dyn Transport + 'a>,
        app_name: &'a str,
        io: *mut c_void,
    ) -> Self {
        Exchange {
            encoder: RefCell::new(encoder),
            phase: Cell::new(Phase::Server),
            app_name,
            io,
            parts: std::ptr::null(),
        }
    }

    /// The request's parsed head, answered by `request_parts` (null: none was kept, the app
    /// reads the environ). It must stay where it is until the body's `close` returns.
    pub(crate) fn with_parts(mut self, parts: *const WsRequestParts) -> Self {
        self.parts = parts;
        self
    }

    /// Makes this the exchange host callbacks on this thread answer for, until the guard drops.
    pub(crate) fn activate(&self) -> Active<'_> {
        let this = (self.io, self as *const Exchange as *const ());
        Active {
            previous: CURRENT.with(|current| current.replace(this)),
            _exchange: std::marker::PhantomData,
        }
    }

    /// Runs `f` with the exchange of the request behind `io`, if this thread runs that request
    /// now; `None` (and a log line) otherwise.
    pub(crate) fn with_current<R>(
        io: *mut c_void,
        what: &str,
        f: impl FnOnce(&Exchange<'_>) -> R,
    ) -> Option<R> {
        let (current_io, exchange) = CURRENT.with(Cell::get);
        if exchange.is_null() || current_io != io {
            log::error!(target: "app", "{what} with an io that is not the request this thread runs: host I/O is answered only during call and next, on their thread");
            return None;
        }
        // SAFETY: CURRENT points to a live exchange while its `Active` guard lives, and the guard
        // lives on this thread's stack around the app code that made this callback; the
        // exchange is only ever borrowed shared. Its lifetime parameter is not used past `f`.
        let exchange = unsafe { &*(exchange as *const Exchange<'_>) };
        Some(f(exchange))
    }

    /// The server's side: `f` runs with the encoder while no app code runs (it must not call
    /// into the app). The phase is `Server` afterwards.
    pub(crate) fn drive<R>(&self, f: impl FnOnce(&mut Encoder<'a, dyn Transport + 'a>) -> R) -> R {
        self.phase.set(Phase::Server);
        // Cannot be borrowed already: host callbacks hold their borrow only for their own
        // duration, and no app code (hence no callback) runs on this thread now.
        f(&mut self.encoder.borrow_mut())
    }

    /// Marks which app function is about to run (the server holds no borrow while it does).
    pub(crate) fn enter(&self, phase: Phase) {
        self.phase.set(phase);
    }

    /// Ends the exchange; no app code may run after this.
    pub(crate) fn finish(self) -> Outcome {
        self.encoder.into_inner().finish()
    }

    /// The body's `next` pended: flush, and keep the response's state for the resume.
    pub(crate) fn suspend(self) -> Suspended {
        self.encoder.into_inner().suspend()
    }

    /// The encoder for a host callback named `what`, if the phase allows host I/O and nobody
    /// else holds it.
    fn for_app(&self, what: &str) -> Option<RefMut<'_, Encoder<'a, dyn Transport + 'a>>> {
        let phase = self.phase.get();
        if !matches!(phase, Phase::Call | Phase::Next) {
            let during = match phase {
                Phase::Close => "during close",
                _ => "while the server runs (not from the thread running call or next?)",
            };
            log::error!(target: "app", "[{}] {what} {during}: read, start_response and write are answered only during call and next", self.app_name);
            return None;
        }
        let borrowed = self.encoder.try_borrow_mut().ok();
        if borrowed.is_none() {
            log::error!(target: "app", "[{}] {what} re-entered a host callback", self.app_name);
        }
        borrowed
    }

    /// `host.start_response`.
    pub(crate) fn start_response<'h>(
        &self,
        status: u16,
        reason: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        replace: bool,
        close: bool,
    ) -> i32 {
        let Some(mut encoder) = self.for_app("start_response") else {
            return WS_ERR_STATE;
        };
        let result = encoder.start_response(status, reason, headers, replace);
        if close && result.is_ok() {
            encoder.close_after();
        }
        code(result)
    }

    /// `host.write`.
    pub(crate) fn write(&self, data: &[u8]) -> i32 {
        let Some(mut encoder) = self.for_app("write") else {
            return WS_ERR_STATE;
        };
        code(encoder.write(data))
    }

    /// `host.read`: flushes held output first (the client may wait for it before sending more).
    pub(crate) fn read_body(&self, buf: &mut [u8]) -> Result<usize, i32> {
        let Some(mut encoder) = self.for_app("read") else {
            return Err(WS_ERR_STATE);
        };
        if !encoder.flush_before_read() {
            return Err(WS_ERR_CLIENT_GONE);
        }
        let may_continue = encoder.may_send_interim();
        let result = encoder.wire().read_body(buf, may_continue);
        body_failed(&mut encoder, result)
    }

    /// `host.try_read` (ABI 1.1): `Ok(None)` when no body byte is buffered now.
    pub(crate) fn try_read_body(&self, buf: &mut [u8]) -> Result<Option<usize>, i32> {
        let Some(mut encoder) = self.for_app("try_read") else {
            return Err(WS_ERR_STATE);
        };
        if !encoder.flush_before_read() {
            return Err(WS_ERR_CLIENT_GONE);
        }
        let may_continue = encoder.may_send_interim();
        let result = encoder.wire().try_read_body(buf, may_continue);
        body_failed(&mut encoder, result)
    }

    /// `host.upgrade` (ABI 1.2): the 101 naming the app's `Upgrade`, and the connection's handle.
    pub(crate) fn upgrade(
        &self,
        headers: &[(&[u8], &[u8])],
        handler: ConnHandler,
    ) -> Result<*mut c_void, i32> {
        let Some(mut encoder) = self.for_app("upgrade") else {
            return Err(WS_ERR_STATE);
        };
        let Some(offer) = encoder.wire().upgrade_offer().cloned() else {
            log::error!(target: "app", "[{}] upgrade on a request that is not an upgrade request (HTTP/1.1 with Upgrade and Connection: upgrade)", self.app_name);
            return Err(WS_ERR_STATE);
        };
        let is_upgrade = |name: &[u8]| name.eq_ignore_ascii_case(b"upgrade");
        let mut named = headers.iter().filter(|(name, _)| is_upgrade(name));
        let (Some((_, protocol)), None) = (named.next(), named.next()) else {
            log::error!(target: "app", "[{}] upgrade needs exactly one Upgrade header naming the protocol", self.app_name);
            return Err(WS_ERR_INVALID);
        };
        if !offer.offers(protocol) || !crate::http::response_fields::valid_header_value(protocol) {
            log::error!(target: "app", "[{}] upgrade to {:?}, which the client did not offer", self.app_name, String::from_utf8_lossy(protocol));
            return Err(WS_ERR_INVALID);
        }
        let mut lines = Vec::with_capacity(protocol.len() + 12);
        lines.extend_from_slice(b"Upgrade: ");
        lines.extend_from_slice(protocol);
        lines.extend_from_slice(b"\r\n");
        let others = headers
            .iter()
            .copied()
            .filter(|(name, _)| !is_upgrade(name));
        encoder
            .switching_protocols(others, &lines)
            .map_err(|refusal| code(Err(refusal)))?;
        let websocket = protocol.eq_ignore_ascii_case(b"websocket");
        encoder
            .wire()
            .take_connection(handler, Mode::Raw { websocket })
            .map(Handle::give)
            .ok_or(WS_ERR_STATE)
    }

    /// `host.websocket_accept` (ABI 1.2): checks the opening handshake, writes the 101 with
    /// `Sec-WebSocket-Accept`, and gives the handle. A request that is not a valid handshake is
    /// the client's fault: its answer is 400 (426 for another version) whatever the app does.
    pub(crate) fn websocket_accept(
        &self,
        protocol: &[u8],
        headers: &[(&[u8], &[u8])],
        handler: ConnHandler,
    ) -> Result<*mut c_void, i32> {
        let Some(mut encoder) = self.for_app("websocket_accept") else {
            return Err(WS_ERR_STATE);
        };
        let offer = encoder.wire().upgrade_offer().cloned();
        let ws = match offer.and_then(|offer| offer.websocket) {
            Some(Ok(ws)) => ws,
            Some(Err(status)) => {
                encoder.request_body_refused(status);
                return Err(WS_ERR_INVALID);
            }
            None => {
                log::debug!(
                    "[{}] websocket_accept on a request that is not a WebSocket handshake: 400",
                    self.app_name
                );
                encoder.request_body_refused(400);
                return Err(WS_ERR_INVALID);
            }
        };
        if !protocol.is_empty() && !ws.offers_subprotocol(protocol) {
            log::error!(target: "app", "[{}] websocket_accept with subprotocol {:?}, which the client did not offer", self.app_name, String::from_utf8_lossy(protocol));
            return Err(WS_ERR_INVALID);
        }
        let mut lines = Vec::with_capacity(96);
        lines.extend_from_slice(b"Upgrade: websocket\r\nSec-WebSocket-Accept: ");
        lines.extend_from_slice(ws.accept.as_bytes());
        lines.extend_from_slice(b"\r\n");
        if !protocol.is_empty() {
            lines.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            lines.extend_from_slice(protocol);
            lines.extend_from_slice(b"\r\n");
        }
        encoder
            .switching_protocols(headers.iter().copied(), &lines)
            .map_err(|refusal| code(Err(refusal)))?;
        encoder
            .wire()
            .take_connection(handler, Mode::WebSocket)
            .map(Handle::give)
            .ok_or(WS_ERR_STATE)
    }

    /// `host.send_file` (ABI 1.2): the head now, then bytes `range` of `fd` (the rules are
    /// `static_files::handoff`'s; the request headers they need come from the environ).
    pub(crate) fn send_file(&self, fd: BorrowedFd<'_>, range: (u64, u64), flags: u32) -> i32 {
        let Some(mut encoder) = self.for_app("send_file") else {
            return WS_ERR_STATE;
        };
        if !encoder.wire().takes_files() {
            log::debug!(
                "[{}] send_file: this connection sends no files (HTTP/2): the app sends chunks",
                self.app_name
            );
            return WS_ERR_STATE;
        }
        let Some((status, fields)) = encoder.pending_response() else {
            log::error!(target: "app", "[{}] send_file before start_response, or after body bytes", self.app_name);
            return WS_ERR_STATE;
        };
        let app = AppHead {
            status,
            etag: fields.get(b"etag").map(<[u8]>::to_vec),
            last_modified: fields.get(b"last-modified").map(<[u8]>::to_vec),
        };
        // SAFETY: an exchange's `io` is its request's `ws_request` (`Environ::request`,
        // `call::run`), alive with its environ until `close` returns, which is after this.
        let request = unsafe { &*(self.io as *const WsRequest) };
        // SAFETY: as above; every environ slice stays valid as long as the request.
        let environ = unsafe { std::slice::from_raw_parts(request.environ, request.environ_len) };
        // SAFETY: as above.
        let pairs = environ
            .iter()
            .map(|pair| unsafe { (pair.name.as_slice(), pair.value.as_slice()) });
        let mut conditions = Conditions::from_environ(pairs);
        // SAFETY: parts kept for this request live with its environ, until `close` returns.
        if let Some(parts) = unsafe { self.parts.as_ref() } {
            // SAFETY: as above: `n_fields` pairs, server-owned.
            let fields = unsafe { parts.field_pairs() };
            // SAFETY: as above.
            let fields = fields
                .iter()
                .map(|pair| unsafe { (pair.name.as_slice(), pair.value.as_slice()) });
            // SAFETY: as above.
            let method = unsafe { parts.method.as_slice() };
            conditions = conditions.with_parts(method, fields);
        }
        let handoff = match hand_off(fd, range, flags, &app, &conditions) {
            Ok(handoff) => handoff,
            Err(refused) => {
                log::error!(target: "app", "[{}] send_file refused: {refused}", self.app_name);
                return WS_ERR_INVALID;
            }
        };
        let added = handoff
            .headers
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()));
        match encoder.file_head(handoff.status, added, handoff.length) {
            Ok(keep_alive) => {
                if let Some((file, first, end)) = handoff.body {
                    let body = FileBody::new(file, first, end, !keep_alive);
                    encoder.wire().send_file(body);
                }
                WS_OK
            }
            Err(refusal) => code(Err(refusal)),
        }
    }

    /// `host.request_trailers` (ABI 1.3): the pairs' address and count, or `WS_PENDING` while
    /// the body has not ended.
    pub(crate) fn request_trailers(&self) -> Result<(*const WsPair, usize), i32> {
        let Some(mut encoder) = self.for_app("request_trailers") else {
            return Err(WS_ERR_STATE);
        };
        match encoder.wire().request_trailers() {
            Some(pairs) => Ok((pairs.as_ptr(), pairs.len())),
            None => Err(WS_PENDING),
        }
    }

    /// `host.request_parts` (ABI 1.3): where `read` is answered, if parts were kept.
    pub(crate) fn request_parts(&self) -> Result<*const WsRequestParts, i32> {
        if self.parts.is_null() {
            log::error!(target: "app", "[{}] request_parts without WS_APP_REQUEST_PARTS in the descriptor's flags: read the environ", self.app_name);
            return Err(WS_ERR_STATE);
        }
        self.for_app("request_parts").ok_or(WS_ERR_STATE)?;
        Ok(self.parts)
    }

    /// `host.set_trailers` (ABI 1.3).
    pub(crate) fn set_trailers<'h>(
        &self,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> i32 {
        let Some(mut encoder) = self.for_app("set_trailers") else {
            return WS_ERR_STATE;
        };
        code(encoder.set_trailers(fields))
    }

    /// `host.waker_new` (ABI 1.1).
    pub(crate) fn new_waker(&self) -> Option<Arc<dyn Wake>> {
        self.for_app("waker_new")?.wire().new_waker()
    }
}

/// A failed body read is the client's fault, whatever the app makes of it: the response becomes
/// the client's 4xx, or nothing at all when the client left (the encoder decides the details).
fn body_failed<T>(
    encoder: &mut Encoder<'_, dyn Transport + '_>,
    result: Result<T, i32>,
) -> Result<T, i32> {
    match result {
        Err(WS_ERR_BAD_BODY) => encoder.request_body_refused(400),
        Err(WS_ERR_TIMEOUT) => encoder.request_body_refused(408),
        Err(WS_ERR_TOO_LARGE) => encoder.request_body_refused(413),
        Err(WS_ERR_CLIENT_GONE) => encoder.request_body_abandoned(),
        _ => {}
    }
    result
}

fn code(result: Result<(), Refusal>) -> i32 {
    match result {
        Ok(()) => WS_OK,
        Err(Refusal::OutOfOrder) => WS_ERR_STATE,
        Err(Refusal::Invalid) => WS_ERR_INVALID,
        Err(Refusal::ClientGone) => WS_ERR_CLIENT_GONE,
    }
}
