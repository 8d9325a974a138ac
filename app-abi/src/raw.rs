//! The raw ABI: `#[repr(C)]` mirrors of `include/webserver_app.h`, field for field.
//!
//! Only fixed-width integers, pointers and function pointers cross the boundary: no Rust enums and
//! no `bool`, because an out-of-range value written by C would be undefined behaviour in Rust.
//! Ownership rules are those of the header; each type's doc repeats the part that concerns it.

use core::ffi::{c_char, c_void};

/// `"WSAP"` read as a little-endian `u32`: the first field of every descriptor.
pub const WS_APP_MAGIC: u32 = 0x5041_5357;
/// Changes with any change of layout or meaning of an existing field.
pub const WS_ABI_MAJOR: u16 = 1;
/// Grows when fields are appended (every struct starts with its `size`) or flags/codes are added.
pub const WS_ABI_MINOR: u16 = 3;

/// `WsApp::flags`: the server never runs two `call`s of this app at once.
pub const WS_APP_SINGLE_THREADED: u32 = 0x1;
/// `WsApp::flags`: a deferred app whose `call`, `next` and `close` never wait (waiting is
/// `WS_PENDING` and a wake): the server may run them on its event thread (the HTTP/2 thread).
/// A hint older servers ignore.
pub const WS_APP_NONBLOCKING: u32 = 0x2;
/// ABI 1.3. `WsApp::flags`: the app reads each request's head through `request_parts` (the
/// header's "Request parts"), so the server keeps the parsed parts for it. A hint older servers
/// ignore (they have no `request_parts`: the app reads the environ).
pub const WS_APP_REQUEST_PARTS: u32 = 0x4;
/// ABI 1.3. `WsApp::flags`, beside [`WS_APP_REQUEST_PARTS`]: the app reads nothing of the
/// environ, so the server builds none for it (`environ_len` is 0; the header's "Request
/// parts"). A hint: a server that does not know it hands the environ as before.
pub const WS_APP_NO_ENVIRON: u32 = 0x8;
/// ABI 1.3. `WsApp::flags` (read only from an app built against 1.3 or later): once a
/// response's body bytes reach its length (`length_hint`, or the app's Content-Length) where
/// nothing may follow them, the server ends the response without asking `next` for its end
/// (`close` follows as always). A hint older servers ignore (they ask).
pub const WS_APP_LENGTH_ENDS_BODY: u32 = 0x10;

/// `WsRequest::flags`: other requests may run on other threads of this process.
pub const WS_REQ_MULTITHREAD: u32 = 0x1;
/// `WsRequest::flags`: other processes serve the same app.
pub const WS_REQ_MULTIPROCESS: u32 = 0x2;
/// `WsRequest::flags`: this process serves one request and exits.
pub const WS_REQ_RUN_ONCE: u32 = 0x4;
/// ABI 1.2. `WsRequest::flags`: the request is a valid WebSocket opening handshake the server can
/// accept (`websocket_accept` will succeed). Set only for apps whose descriptor says minor >= 2.
pub const WS_REQ_WEBSOCKET: u32 = 0x8;
/// ABI 1.3. `WsRequest::flags`: the header fields are in `request_parts` only, not in the
/// environ (no `HTTP_*` variables): set for every request of an app whose descriptor sets
/// `WS_APP_REQUEST_PARTS`.
pub const WS_REQ_FIELDS_IN_PARTS: u32 = 0x10;

/// ABI 1.2. `on_event`: a read/recv that answered [`WS_PENDING`] may now give data, a message or
/// the end.
pub const WS_EV_READABLE: u32 = 0x1;
/// ABI 1.2. `on_event`: a write/send that answered [`WS_PENDING`] may now be accepted.
pub const WS_EV_WRITABLE: u32 = 0x2;
/// ABI 1.2. `on_event`: the connection ended (client, error, timeout, drain): reads report the
/// end, writes fail with [`WS_ERR_CLIENT_GONE`]; the app still calls `*_close` to release.
pub const WS_EV_CLOSED: u32 = 0x4;
/// ABI 1.2. `on_event`: the server drains (stop, hot swap) and closes this connection (1001 for a
/// WebSocket) after `--graceful-timeout`.
pub const WS_EV_GOING_AWAY: u32 = 0x8;

/// ABI 1.2. [`WsMessage::kind`] / `websocket_send` kind: text (valid UTF-8, checked).
pub const WS_MSG_TEXT: u32 = 1;
/// ABI 1.2. [`WsMessage::kind`] / `websocket_send` kind: binary.
pub const WS_MSG_BINARY: u32 = 2;
/// ABI 1.2. [`WsMessage::kind`]: the client's close (only from `websocket_recv` returning 0).
pub const WS_MSG_CLOSE: u32 = 8;

/// `start_response` flag: PEP 3333 `exc_info` — replace a response whose head was not sent yet.
pub const WS_RESPONSE_REPLACE: u32 = 0x1;
/// `start_response` flag: close the connection after this response (what an app's
/// `Connection: close` asks for; the header itself is the server's). A host that predates it
/// ignores it.
pub const WS_RESPONSE_CLOSE: u32 = 0x2;

/// `WsBody::length_hint` when the body length is not known in advance.
pub const WS_LENGTH_UNKNOWN: u64 = u64::MAX;

/// Log level: error.
pub const WS_LOG_ERROR: u32 = 1;
/// Log level: warning.
pub const WS_LOG_WARN: u32 = 2;
/// Log level: info.
pub const WS_LOG_INFO: u32 = 3;
/// Log level: debug.
pub const WS_LOG_DEBUG: u32 = 4;
/// Log level: trace.
pub const WS_LOG_TRACE: u32 = 5;

/// Success.
pub const WS_OK: i32 = 0;
/// The client closed the connection, or a write to it failed.
pub const WS_ERR_CLIENT_GONE: i32 = -1;
/// The request body exceeds the server's `--max-body`.
pub const WS_ERR_TOO_LARGE: i32 = -2;
/// The client was too slow.
pub const WS_ERR_TIMEOUT: i32 = -3;
/// Malformed chunked encoding, or a body shorter than its declared length.
pub const WS_ERR_BAD_BODY: i32 = -4;
/// Invalid status, header name or header value.
pub const WS_ERR_INVALID: i32 = -5;
/// A callback used out of order (e.g. `start_response` twice without `WS_RESPONSE_REPLACE`), or
/// `read`/`start_response`/`write` from `close` (see [`WsHost`]).
pub const WS_ERR_STATE: i32 = -6;
/// The app failed (returned by `next`, or by an entry point after a caught panic).
pub const WS_ERR_APP: i32 = -7;
/// ABI 1.1. From `WsBody::next`: no chunk yet, the app will make progress later (it calls
/// `waker_wake`, or waits for body bytes after `try_read` answered this). From
/// `WsHost::try_read`: no body byte is buffered now. Positive: not an error.
pub const WS_PENDING: i32 = 2;

/// `send_file` flags (ABI 1.2): the server answers the request's `Range` (and `If-Range`) from
/// the file range, for a 200.
pub const WS_FILE_RANGES: u32 = 0x1;
/// `send_file` flags (ABI 1.2): the server adds `ETag` and `Last-Modified` from the file's
/// metadata where the app set none (and answers `If-None-Match`/`If-Modified-Since` with 304).
pub const WS_FILE_VALIDATORS: u32 = 0x2;

/// A borrowed byte slice. Never assumed NUL-terminated or UTF-8; `ptr` may be null only if
/// `len == 0`. Who owns the bytes and for how long is said by the struct that holds it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsBytes {
    /// First byte.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl WsBytes {
    /// The empty slice.
    pub const EMPTY: WsBytes = WsBytes {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// Borrows a Rust slice; the result is valid as long as `bytes` is.
    pub const fn from_slice(bytes: &[u8]) -> WsBytes {
        WsBytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Views the bytes as a slice.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised bytes that stay valid and unmodified for `'a`
    /// (or `len` must be 0).
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        // Only null needs its own answer: any other pointer is valid for a read of 0 bytes, so
        // an empty span takes the same path as the rest (one test per slice, not two; a
        // request's head is read as a few dozen of these).
        if self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees ptr/len describe live bytes for 'a (for len 0, any
            // non-null pointer does, `u8` having no alignment); null was excluded.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// A (name, value) pair: one environ variable or one response header.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsPair {
    /// Variable or header name.
    pub name: WsBytes,
    /// Its value.
    pub value: WsBytes,
}

/// Host `read`: pull request-body bytes; see [`WsHost::read`].
pub type WsReadFn =
    unsafe extern "C" fn(io: *mut c_void, buf: *mut u8, cap: usize, n_read: *mut usize) -> i32;
/// Host `start_response`; see [`WsHost::start_response`].
pub type WsStartResponseFn = unsafe extern "C" fn(
    io: *mut c_void,
    status: u16,
    reason: WsBytes,
    headers: *const WsPair,
    n_headers: usize,
    flags: u32,
) -> i32;
/// Host `write`; see [`WsHost::write`].
pub type WsWriteFn = unsafe extern "C" fn(io: *mut c_void, buf: *const u8, len: usize) -> i32;
/// Host `log`; see [`WsHost::log`].
pub type WsLogFn =
    unsafe extern "C" fn(log_ctx: *const c_void, level: u32, msg: *const u8, len: usize);
/// Host `try_read` (ABI 1.1); see [`WsHost::try_read`].
pub type WsTryReadFn = WsReadFn;
/// Host `waker_new` (ABI 1.1); see [`WsHost::waker_new`].
pub type WsWakerNewFn = unsafe extern "C" fn(io: *mut c_void) -> *mut c_void;
/// Host `send_file` (ABI 1.2); see [`WsHost::send_file`].
pub type WsSendFileFn =
    unsafe extern "C" fn(io: *mut c_void, fd: i32, offset: u64, length: u64, flags: u32) -> i32;
/// Host `request_trailers` (ABI 1.3); see [`WsHost::request_trailers`].
pub type WsRequestTrailersFn =
    unsafe extern "C" fn(io: *mut c_void, fields: *mut *const WsPair, n_fields: *mut usize) -> i32;
/// Host `set_trailers` (ABI 1.3); see [`WsHost::set_trailers`].
pub type WsSetTrailersFn = unsafe extern "C" fn(
    io: *mut c_void,
    fields: *const WsPair,
    n_fields: usize,
    flags: u32,
) -> i32;
/// Host `request_parts` (ABI 1.3); see [`WsHost::request_parts`].
pub type WsRequestPartsFn =
    unsafe extern "C" fn(io: *mut c_void, parts: *mut *const WsRequestParts) -> i32;
/// Host `waker_wake` / `waker_free` (ABI 1.1); see [`WsHost::waker_wake`].
pub type WsWakerFn = unsafe extern "C" fn(waker: *mut c_void);

/// ABI 1.2. `on_event(ctx, events)`: readiness of an upgraded connection (`WS_EV_*` bits).
pub type WsOnEventFn = unsafe extern "C" fn(ctx: *mut c_void, events: u32);
/// ABI 1.2. `release(ctx)`: once, after the app's `*_close`, when no `on_event` runs.
pub type WsReleaseFn = unsafe extern "C" fn(ctx: *mut c_void);

/// ABI 1.2. What the app gives the server for an upgraded connection; copied during the
/// `upgrade`/`websocket_accept` call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsConnHandler {
    /// `size_of::<WsConnHandler>()` as the app knows it.
    pub size: u32,
    /// Zero.
    pub reserved: u32,
    /// The app's context, passed back to `on_event` and `release`.
    pub ctx: *mut c_void,
    /// Required. On a serving thread, never two at once for one connection, never before the
    /// call that created the handle returned; must not block for long.
    pub on_event: Option<WsOnEventFn>,
    /// Optional. Once, after the app's `*_close` and once no `on_event` runs: frees `ctx`.
    pub release: Option<WsReleaseFn>,
}

/// ABI 1.2. One received message; `data` is server-owned, valid until the next `websocket_recv`
/// or `websocket_close` on the same handle.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsMessage {
    /// `WS_MSG_*`.
    pub kind: u32,
    /// For [`WS_MSG_CLOSE`]: the client's code (1005 none given, 1006 no close frame).
    pub close_code: u16,
    /// Zero.
    pub reserved: u16,
    /// The payload; for [`WS_MSG_CLOSE`] the reason.
    pub data: WsBytes,
}

impl WsMessage {
    /// An empty message, for the server to fill.
    pub const EMPTY: WsMessage = WsMessage {
        kind: 0,
        close_code: 0,
        reserved: 0,
        data: WsBytes::EMPTY,
    };
}

/// ABI 1.3. A request's head as the server parsed it (`request_parts`, the header's "Request
/// parts"). Server-owned, as every byte and pair it points to, valid until `close` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsRequestParts {
    /// `size_of::<WsRequestParts>()` as the server knows it.
    pub size: u32,
    /// 10 (HTTP/1.0), 11 (HTTP/1.1) or 20 (HTTP/2).
    pub version: u16,
    /// Zero.
    pub reserved: u16,
    /// The method token.
    pub method: WsBytes,
    /// HTTP/2's `:scheme`; empty for HTTP/1.
    pub scheme: WsBytes,
    /// HTTP/2's `:authority` (empty when absent); empty for HTTP/1.
    pub authority: WsBytes,
    /// HTTP/1: the request-target as sent (not decoded); HTTP/2: `:path`.
    pub target: WsBytes,
    /// The header fields in order, as received (HTTP/2: lowercase names; repeats not joined),
    /// minus what the server's policy leaves out (underscore names; forwarding fields from an
    /// untrusted peer).
    pub fields: *const WsPair,
    /// Number of pairs in `fields`.
    pub n_fields: usize,
}

impl WsRequestParts {
    /// `fields` as a slice.
    ///
    /// # Safety
    /// `fields` must point to `n_fields` pairs that stay valid and unmodified for `'a` (or
    /// `n_fields` must be 0): true of parts a server gave, until the request's `close`.
    pub unsafe fn field_pairs<'a>(&self) -> &'a [WsPair] {
        if self.n_fields == 0 || self.fields.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees fields/n_fields describe live pairs for 'a; null
            // was excluded.
            unsafe { core::slice::from_raw_parts(self.fields, self.n_fields) }
        }
    }
}

/// Host `upgrade` (ABI 1.2); see [`WsHost::upgrade`].
pub type WsUpgradeFn = unsafe extern "C" fn(
    io: *mut c_void,
    headers: *const WsPair,
    n_headers: usize,
    flags: u32,
    handler: *const WsConnHandler,
    stream: *mut *mut c_void,
) -> i32;
/// Host `stream_read` (ABI 1.2); see [`WsHost::stream_read`].
pub type WsStreamReadFn =
    unsafe extern "C" fn(stream: *mut c_void, buf: *mut u8, cap: usize, n_read: *mut usize) -> i32;
/// Host `stream_write` (ABI 1.2); see [`WsHost::stream_write`].
pub type WsStreamWriteFn = unsafe extern "C" fn(
    stream: *mut c_void,
    buf: *const u8,
    len: usize,
    n_written: *mut usize,
) -> i32;
/// Host `stream_close` (ABI 1.2); see [`WsHost::stream_close`].
pub type WsStreamCloseFn = unsafe extern "C" fn(stream: *mut c_void);
/// Host `websocket_accept` (ABI 1.2); see [`WsHost::websocket_accept`].
pub type WsWebSocketAcceptFn = unsafe extern "C" fn(
    io: *mut c_void,
    protocol: WsBytes,
    headers: *const WsPair,
    n_headers: usize,
    flags: u32,
    handler: *const WsConnHandler,
    websocket: *mut *mut c_void,
) -> i32;
/// Host `websocket_recv` (ABI 1.2); see [`WsHost::websocket_recv`].
pub type WsWebSocketRecvFn =
    unsafe extern "C" fn(websocket: *mut c_void, message: *mut WsMessage) -> i32;
/// Host `websocket_send` (ABI 1.2); see [`WsHost::websocket_send`].
pub type WsWebSocketSendFn =
    unsafe extern "C" fn(websocket: *mut c_void, kind: u32, data: *const u8, len: usize) -> i32;
/// Host `websocket_close` (ABI 1.2); see [`WsHost::websocket_close`].
pub type WsWebSocketCloseFn =
    unsafe extern "C" fn(websocket: *mut c_void, code: u16, reason: WsBytes);

/// The callbacks the server gives every request and `init`. Server-owned and static for the life
/// of the process.
///
/// Host I/O phases (the header's rule): `read`, `start_response` and `write` are answered during
/// the app's `call` and the body's `next`, on the thread running it — so `start_response` may
/// come lazily from `next` (PEP 3333) while no body byte was sent, and `write` there goes out
/// before the chunk `next` returns. From `close` they return [`WS_ERR_STATE`] and do nothing.
/// `log` is answered at any time, from any thread. `io` must not be used after `close` returns.
///
/// ABI 1.1 appended `try_read` and the wakers (the header's "Deferred responses"): a host whose
/// `size` is [`WS_HOST_SIZE_V1_0`] does not have them — check with [`WsHost::has_wakers`].
/// `waker_wake` and `waker_free` may be called from any thread at any time.
///
/// ABI 1.2 appended the upgraded-connection calls (the header's "Upgraded connections"): check
/// with [`WsHost::has_upgrades`]. Later minors append after `websocket_close`: test each field
/// by its offset, never by the struct's full size.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsHost {
    /// `size_of::<WsHost>()` as the server knows it.
    pub size: u32,
    /// Zero.
    pub reserved: u32,
    /// Pull request-body bytes into `buf[..cap]`, setting `*n_read`: `WS_OK` with `*n_read > 0` for
    /// data, `WS_OK` with `*n_read == 0` at the end of the body (and forever after), a negative
    /// `WS_ERR_*` on failure. The body is de-chunked and limited to its declared length; the first
    /// read sends `100 Continue` if the client asked for it. A failure that is the client's
    /// decides the response whatever the app answers next: `WS_ERR_BAD_BODY` 400,
    /// `WS_ERR_TIMEOUT` 408, `WS_ERR_TOO_LARGE` 413, `WS_ERR_CLIENT_GONE` nothing more.
    pub read: Option<WsReadFn>,
    /// PEP 3333 `start_response`: validates and copies status and headers during the call. A second
    /// call needs `WS_RESPONSE_REPLACE` and succeeds only while no body byte was sent.
    pub start_response: Option<WsStartResponseFn>,
    /// PEP 3333's legacy `write()`: sends bytes now, before the body's (next) chunk; bytes
    /// beyond the head's Content-Length go out cut to it, and the connection closes. From a
    /// `WS_APP_NONBLOCKING` app, a write that completes a body of known length may be held until
    /// the call returns, and a first write longer than the Content-Length is `WS_ERR_INVALID`
    /// and a 500.
    pub write: Option<WsWriteFn>,
    /// The error stream: one message into the server's log, tagged with the app.
    pub log: Option<WsLogFn>,
    /// ABI 1.1. Like `read`, but never waits: `WS_OK` with `*n_read > 0`, `WS_OK` with
    /// `*n_read == 0` at the end of the body, [`WS_PENDING`] when no byte is buffered now (the app
    /// returns `WS_PENDING` from `next`; the server calls `next` again once bytes arrived).
    /// Answered where `read` is; sends `100 Continue` like `read`.
    pub try_read: Option<WsTryReadFn>,
    /// ABI 1.1. A waker for the request behind `io`, answered during `call` and `next`; null on
    /// failure. App-owned until `waker_free`.
    pub waker_new: Option<WsWakerNewFn>,
    /// ABI 1.1. Ask the server to call `next` again: any thread, any time, until `waker_free`;
    /// does nothing after the request ended. A wake during `next` is not lost.
    pub waker_wake: Option<WsWakerFn>,
    /// ABI 1.1. Release a waker, exactly once, from any thread, before or after the request ended.
    pub waker_free: Option<WsWakerFn>,
    /// ABI 1.2. Answer the request with 101 and take the connection as a byte stream; answered
    /// where `start_response` is, before any response byte, after the body was read. `headers`
    /// must name the protocol in `Upgrade`. `*stream` is the app's until `stream_close`.
    pub upgrade: Option<WsUpgradeFn>,
    /// ABI 1.2. Any thread, never waits: `WS_OK` with `*n_read > 0` data, `WS_OK` with 0 the
    /// client's end, [`WS_PENDING`] nothing now (`WS_EV_READABLE` follows).
    pub stream_read: Option<WsStreamReadFn>,
    /// ABI 1.2. Any thread, never waits: `WS_OK` with `*n_written > 0` (may be short),
    /// [`WS_PENDING`] no room (`WS_EV_WRITABLE` follows), `WS_ERR_CLIENT_GONE` once closed.
    pub stream_write: Option<WsStreamWriteFn>,
    /// ABI 1.2. Any thread, exactly once: flush what was accepted, close; `release` follows.
    pub stream_close: Option<WsStreamCloseFn>,
    /// ABI 1.2. Accept a WebSocket (the request has [`WS_REQ_WEBSOCKET`]): the server writes the
    /// 101 with `Sec-WebSocket-Accept`; `protocol` (may be empty) must be one the client offered.
    /// On an invalid handshake `WS_ERR_INVALID`, and the server answers 400 (426 for another
    /// version) whatever the app answers next.
    pub websocket_accept: Option<WsWebSocketAcceptFn>,
    /// ABI 1.2. Any thread, never waits: 1 a message in `*message`, [`WS_PENDING`] none now
    /// (`WS_EV_READABLE` follows), 0 closed (`*message` is [`WS_MSG_CLOSE`] with code and reason).
    pub websocket_recv: Option<WsWebSocketRecvFn>,
    /// ABI 1.2. Any thread, never waits: `WS_OK` queued, [`WS_PENDING`] not taken (earlier output
    /// waits; `WS_EV_WRITABLE` follows), `WS_ERR_TOO_LARGE`, `WS_ERR_INVALID`,
    /// `WS_ERR_CLIENT_GONE`.
    pub websocket_send: Option<WsWebSocketSendFn>,
    /// ABI 1.2. Any thread, exactly once: start the closing handshake with `code` (0: none) and
    /// `reason` (≤ 123 bytes UTF-8); `release` follows.
    pub websocket_close: Option<WsWebSocketCloseFn>,
    /// ABI 1.2. The response body is bytes `offset .. offset + length` of the open regular file
    /// `fd` (`length` [`WS_LENGTH_UNKNOWN`]: to its end), sent by the server (`sendfile(2)`).
    /// After a successful `start_response` and before any body byte, during `call` or `next`;
    /// it ends the response. The server duplicates `fd`: the app may close its own once the
    /// call returns. Flags [`WS_FILE_RANGES`], [`WS_FILE_VALIDATORS`]: the server answers Range
    /// and adds validators (for a 200). `WS_ERR_STATE` out of order, `WS_ERR_INVALID` for a bad
    /// fd, a range outside the file or unknown flags (nothing sent: the app may answer otherwise).
    pub send_file: Option<WsSendFileFn>,
    /// ABI 1.3. The request's trailer fields once its body was read to the end: `WS_OK` with
    /// `*fields`/`*n_fields` (server-owned until `close`; 0 fields when none came),
    /// [`WS_PENDING`] while the body has not ended. Answered where `read` is.
    pub request_trailers: Option<WsRequestTrailersFn>,
    /// ABI 1.3. The response's trailer fields, sent after the body (HTTP/2 trailing HEADERS,
    /// HTTP/1.1 chunked trailer section): checked and copied like `start_response`'s headers,
    /// minus the fields a trailer must not carry; replaces an earlier call. Answered where
    /// `start_response` is, until the body ended. `flags` is 0.
    pub set_trailers: Option<WsSetTrailersFn>,
    /// ABI 1.3. `waker_wake`, with the caller's promise that it is a serving thread in `call` or
    /// `next` of another request that returns soon and waits no more: the server may run the
    /// woken request's `next` on this thread once it is done there, instead of waking another
    /// thread. From any other thread it is `waker_wake`. Check with [`WsHost::has_wake_here`].
    pub waker_wake_here: Option<WsWakerFn>,
    /// ABI 1.3, appended after `waker_wake_here`. The request's parsed head, for an app whose
    /// descriptor sets [`WS_APP_REQUEST_PARTS`]: `WS_OK` with `*parts` (server-owned until
    /// `close`); [`WS_ERR_STATE`] without the flag, from `close` or from another thread.
    /// Answered where `read` is.
    pub request_parts: Option<WsRequestPartsFn>,
}

/// `size` of a 1.0 host vtable (it ends at `log`): a peer with this size has no 1.1 callbacks.
pub const WS_HOST_SIZE_V1_0: u32 = core::mem::offset_of!(WsHost, try_read) as u32;

/// `size` of a 1.1 host vtable (it ends at `waker_free`): a peer with this size has no
/// upgraded connections.
pub const WS_HOST_SIZE_V1_1: u32 = core::mem::offset_of!(WsHost, upgrade) as u32;

/// `size` of a 1.2 host vtable (it ends at `send_file`): a peer with this size has no trailers.
pub const WS_HOST_SIZE_V1_2: u32 = core::mem::offset_of!(WsHost, request_trailers) as u32;

impl WsHost {
    /// A vtable of this version's size with no callback: the base of a test's fake host
    /// (`WsHost { read: Some(..), ..WsHost::EMPTY }`).
    pub const EMPTY: WsHost = WsHost {
        size: core::mem::size_of::<WsHost>() as u32,
        reserved: 0,
        read: None,
        start_response: None,
        write: None,
        log: None,
        try_read: None,
        waker_new: None,
        waker_wake: None,
        waker_free: None,
        upgrade: None,
        stream_read: None,
        stream_write: None,
        stream_close: None,
        websocket_accept: None,
        websocket_recv: None,
        websocket_send: None,
        websocket_close: None,
        send_file: None,
        request_trailers: None,
        set_trailers: None,
        waker_wake_here: None,
        request_parts: None,
    };

    /// True if this host (as its `size` says) has the ABI 1.1 `try_read` and wakers.
    pub fn has_wakers(&self) -> bool {
        self.size as usize
            >= core::mem::offset_of!(WsHost, waker_free) + core::mem::size_of::<Option<WsWakerFn>>()
    }

    /// True if this host (as its `size` says) has the ABI 1.2 upgraded-connection calls
    /// (`upgrade` through `websocket_close`).
    pub fn has_upgrades(&self) -> bool {
        self.size as usize
            >= core::mem::offset_of!(WsHost, websocket_close)
                + core::mem::size_of::<Option<WsWebSocketCloseFn>>()
    }

    /// True if this host (as its `size` says) has the ABI 1.3 trailer calls.
    pub fn has_trailers(&self) -> bool {
        self.size as usize
            >= core::mem::offset_of!(WsHost, set_trailers)
                + core::mem::size_of::<Option<WsSetTrailersFn>>()
    }

    /// True if this host (as its `size` says) has the ABI 1.3 `waker_wake_here`.
    pub fn has_wake_here(&self) -> bool {
        self.size as usize
            >= core::mem::offset_of!(WsHost, waker_wake_here)
                + core::mem::size_of::<Option<WsWakerFn>>()
    }

    /// True if this host (as its `size` says) has the ABI 1.3 `request_parts`.
    pub fn has_request_parts(&self) -> bool {
        self.size as usize
            >= core::mem::offset_of!(WsHost, request_parts)
                + core::mem::size_of::<Option<WsRequestPartsFn>>()
    }

    /// True if this host (as its `size` says) has the ABI 1.2 `send_file`.
    pub fn has_send_file(&self) -> bool {
        self.size as usize
            >= core::mem::offset_of!(WsHost, send_file)
                + core::mem::size_of::<Option<WsSendFileFn>>()
    }
}

/// One request. Server-owned; valid from the start of `call` until the body's `close` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsRequest {
    /// `size_of::<WsRequest>()` as the server knows it.
    pub size: u32,
    /// `WS_REQ_*` bits.
    pub flags: u32,
    /// The CGI/WSGI variables: `environ_len` pairs.
    pub environ: *const WsPair,
    /// Number of pairs in `environ`.
    pub environ_len: usize,
    /// Opaque handle passed back to every `WsHost` request callback.
    pub io: *mut c_void,
    /// The callbacks.
    pub host: *const WsHost,
    /// Handle for `WsHost::log` (identifies the app); lives as long as the process.
    pub log_ctx: *const c_void,
}

/// Body `next`: `1` with `*chunk` set, `0` at the end, negative on error.
pub type WsNextFn = unsafe extern "C" fn(ctx: *mut c_void, chunk: *mut WsBytes) -> i32;
/// Body `close`: releases the body; called exactly once.
pub type WsCloseFn = unsafe extern "C" fn(ctx: *mut c_void);

/// The response body, filled by `call`. App-owned: `ctx` is released by `close`, which the server
/// calls exactly once whenever `call` returned `WS_OK` — after the last chunk, on client disconnect
/// and on error alike. A chunk is valid until the next `next` or `close`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsBody {
    /// Set by the server to `size_of::<WsBody>()` before `call`.
    pub size: u32,
    /// Zero.
    pub reserved: u32,
    /// The app's iterator state.
    pub ctx: *mut c_void,
    /// Next chunk; `None` means no chunks.
    pub next: Option<WsNextFn>,
    /// Release; `None` means nothing to release.
    pub close: Option<WsCloseFn>,
    /// Exact body length if known (it becomes Content-Length), else [`WS_LENGTH_UNKNOWN`].
    pub length_hint: u64,
}

impl WsBody {
    /// A body with no chunks and nothing to release, as the server pre-fills it before `call`.
    pub const EMPTY: WsBody = WsBody {
        size: core::mem::size_of::<WsBody>() as u32,
        reserved: 0,
        ctx: core::ptr::null_mut(),
        next: None,
        close: None,
        length_hint: WS_LENGTH_UNKNOWN,
    };
}

/// What `init` receives. Server-owned, valid during the `init` call (`host` and `log_ctx` for the
/// life of the process).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WsInit {
    /// `size_of::<WsInit>()` as the server knows it.
    pub size: u32,
    /// Zero.
    pub reserved: u32,
    /// The callbacks (only `log` is meaningful outside a request).
    pub host: *const WsHost,
    /// Handle for `WsHost::log`.
    pub log_ctx: *const c_void,
    /// On failure, write at most `error_cap` bytes of message here and set `*error_len`.
    pub error_buf: *mut u8,
    /// Capacity of `error_buf`.
    pub error_cap: usize,
    /// Where to store the message length.
    pub error_len: *mut usize,
    /// ABI 1.1: the words after `LIB:SYMBOL` on the command line; valid during `init` only.
    pub args: *const WsBytes,
    /// ABI 1.1: number of entries in `args`.
    pub n_args: usize,
}

/// `size` of a 1.0 `WsInit` (it ends at `error_len`): a peer with this size passes no arguments.
pub const WS_INIT_SIZE_V1_0: u32 = core::mem::offset_of!(WsInit, args) as u32;

impl WsInit {
    /// True if this `WsInit` (as its `size` says) carries `args` / `n_args`.
    pub fn has_args(&self) -> bool {
        self.size as usize >= core::mem::size_of::<WsInit>()
    }

    /// Copies `msg`, truncated to `error_cap` at a UTF-8 boundary, into the init error buffer
    /// and sets `*error_len`; does nothing if either pointer is null.
    ///
    /// # Safety
    /// `error_buf` must be null or writable for `error_cap` bytes; `error_len` null or writable
    /// (what the server promises of the `WsInit` it passes to `init`).
    pub unsafe fn write_error(&self, msg: &str) {
        if self.error_buf.is_null() || self.error_len.is_null() {
            return;
        }
        let mut n = msg.len().min(self.error_cap);
        while !msg.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: `error_buf` is writable for `error_cap >= n` bytes and cannot overlap `msg`
        // (server memory vs. the app's string); `error_len` is writable (the caller's contract).
        unsafe {
            core::ptr::copy_nonoverlapping(msg.as_ptr(), self.error_buf, n);
            *self.error_len = n;
        }
    }
}

/// App `init`: returns `WS_OK` and sets `*state`, or non-zero with a message in the `WsInit` buffer.
pub type WsInitFn = unsafe extern "C" fn(init: *const WsInit, state: *mut *mut c_void) -> i32;
/// App `call`: one request; fills `*body` and returns `WS_OK`, or non-zero (the server answers 500).
pub type WsCallFn =
    unsafe extern "C" fn(state: *mut c_void, request: *const WsRequest, body: *mut WsBody) -> i32;
/// App `shutdown`: releases the state after the last request.
pub type WsShutdownFn = unsafe extern "C" fn(state: *mut c_void);

/// The descriptor: the static the command line's `SYMBOL` names. App-owned and static.
#[repr(C)]
#[derive(Debug)]
pub struct WsApp {
    /// [`WS_APP_MAGIC`]. Fixed header: never changes in any version.
    pub magic: u32,
    /// [`WS_ABI_MAJOR`] the app was built against.
    pub abi_major: u16,
    /// [`WS_ABI_MINOR`] the app was built against.
    pub abi_minor: u16,
    /// `size_of::<WsApp>()` as the app knows it.
    pub size: u32,
    /// `WS_APP_*` bits.
    pub flags: u32,
    /// NUL-terminated static name.
    pub name: *const c_char,
    /// NUL-terminated static version.
    pub version: *const c_char,
    /// Optional initialiser.
    pub init: Option<WsInitFn>,
    /// The request entry point (required).
    pub call: Option<WsCallFn>,
    /// Optional finaliser.
    pub shutdown: Option<WsShutdownFn>,
}

// SAFETY: a descriptor is immutable static data (integers, pointers to static strings and function
// pointers); sharing it between threads cannot race.
unsafe impl Sync for WsApp {}

/// Size of a 1.0 descriptor: the server rejects anything smaller.
pub const WS_APP_SIZE_V1_0: u32 = core::mem::size_of::<WsApp>() as u32;

// The layout pinned from the Rust side (x86_64 / aarch64 LP64); the C side is checked in tests.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<WsBytes>() == 16);
    assert!(size_of::<WsPair>() == 32);
    assert!(size_of::<WsHost>() == 176);
    assert!(offset_of!(WsHost, waker_wake_here) == 160);
    assert!(offset_of!(WsHost, request_parts) == 168);
    assert!(size_of::<WsRequestParts>() == 88);
    assert!(offset_of!(WsRequestParts, method) == 8);
    assert!(offset_of!(WsRequestParts, fields) == 72);
    assert!(offset_of!(WsHost, send_file) == 136);
    assert!(WS_HOST_SIZE_V1_2 == 144);
    assert!(offset_of!(WsHost, set_trailers) == 152);
    assert!(WS_HOST_SIZE_V1_0 == 40);
    assert!(WS_HOST_SIZE_V1_1 == 72);
    assert!(offset_of!(WsHost, waker_free) == 64);
    assert!(offset_of!(WsHost, upgrade) == 72);
    assert!(offset_of!(WsHost, websocket_close) == 128);
    assert!(size_of::<WsConnHandler>() == 32);
    assert!(size_of::<WsMessage>() == 24);
    assert!(offset_of!(WsMessage, data) == 8);
    assert!(size_of::<WsRequest>() == 48);
    assert!(size_of::<WsBody>() == 40);
    assert!(size_of::<WsInit>() == 64);
    assert!(WS_INIT_SIZE_V1_0 == 48);
    assert!(offset_of!(WsInit, n_args) == 56);
    assert!(size_of::<WsApp>() == 56);
    assert!(offset_of!(WsApp, name) == 16);
    assert!(offset_of!(WsApp, call) == 40);
    assert!(offset_of!(WsBody, length_hint) == 32);
};
