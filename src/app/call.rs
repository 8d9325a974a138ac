//! One request through the app: `call`, the host callbacks' state, body iteration and `close`.
//!
//! The response head is sent lazily — at the first body byte, the first `write`, or the end of the
//! body — so that PEP 3333's `exc_info` replacement works until then, and so that a misbehaving
//! app (no `start_response`, a bad header, a failed `next`) still gets a clean 500 instead of
//! half a response. Once bytes are on the wire the only honest signal left is closing the
//! connection.

use std::ffi::c_void;
use std::io;
use std::ops::Range;

use app_abi::raw::{
    WsBody, WsBytes, WsPair, WsRequest, WS_ERR_CLIENT_GONE, WS_ERR_INVALID, WS_ERR_STATE,
    WS_ERR_TOO_LARGE, WS_LENGTH_UNKNOWN, WS_OK,
};

use super::host::HOST;
use super::loader::LoadedApp;
use crate::http::response::{
    choose_framing, encode_chunk, encode_error_with, encode_head, encode_last_chunk, is_hop_by_hop,
    is_token, valid_header_value, DateCache, Framing, Head,
};

/// Chunks at least this large are written straight from the app's memory instead of being copied
/// into the output buffer.
const COPY_LIMIT: usize = 16 * 1024;

/// Output held back (deferred responses, coalesced chunks) never grows past this.
const HOLD_LIMIT: usize = 64 * 1024;

/// A `next` that returned within this is producing chunks in a burst: keep coalescing them.
/// A slower one (a stream that waits for events) gets every chunk sent as soon as it exists.
const BURST: std::time::Duration = std::time::Duration::from_micros(100);

/// What the connection layer provides to one exchange: the request body and the socket.
pub(crate) trait Transport {
    /// De-chunked body bytes; `Ok(0)` at the end. Errors are `WS_ERR_*` codes.
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, i32>;
    /// Write every part, in order, or fail (client gone or too slow).
    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()>;
    /// True if the request body has been consumed (draining what is cheap to drain), so the
    /// connection can carry another request.
    fn body_consumed(&mut self) -> bool;
    /// The cached `Date` header value.
    fn date(&mut self) -> &[u8];
}

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
}

/// Buffers reused across requests on one thread, so the hot path allocates nothing.
#[derive(Default)]
pub(crate) struct Scratch {
    reason: Vec<u8>,
    header_bytes: Vec<u8>,
    header_ranges: Vec<(Range<usize>, Range<usize>)>,
    out: Vec<u8>,
}

// The output buffer has one owner: the connection reaches it only through these.
impl Scratch {
    /// Responses finished with `defer_flush` and not sent yet, in order: the connection sends
    /// them in one write once its batch of pipelined requests is served.
    pub(crate) fn held(&self) -> &[u8] {
        &self.out
    }

    /// The held responses were sent, or never will be (the client is gone).
    pub(crate) fn clear_held(&mut self) {
        self.out.clear();
    }

    /// Holds the error response to a request the app never saw, after those already held.
    pub(crate) fn hold_error(&mut self, status: u16, date: &[u8]) {
        crate::http::response::encode_error(&mut self.out, status, date);
    }
}

/// How one exchange ended, for the access log and the connection.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    /// The connection may carry another request.
    pub(crate) reusable: bool,
}

/// The state behind `ws_request.io` for one request.
pub(crate) struct Exchange<'a> {
    transport: &'a mut dyn Transport,
    scratch: &'a mut Scratch,
    facts: RequestFacts,
    app_name: &'a str,
    status: Option<u16>,
    app_content_length: Option<u64>,
    /// Set when the app broke the protocol before the head went out: answer 500 instead.
    misbehaved: bool,
    head_sent: bool,
    framing: Framing,
    /// The body's exact length if the app knows it (`ws_body.length_hint`).
    length_hint: Option<u64>,
    body_sent: u64,
    /// The body could not be read because it is over `--max-body`: answer 413.
    body_too_large: bool,
    /// Bytes went out that the app did not finish properly: close after this response.
    broken: bool,
    client_gone: bool,
    reusable: bool,
    /// `Scratch::out[..base]` holds earlier pipelined responses not yet sent.
    base: usize,
}

/// Run one request through `app`. `environ` is the request's CGI/WSGI variables.
pub(crate) fn run(
    app: &LoadedApp,
    environ: &[WsPair],
    facts: RequestFacts,
    transport: &mut dyn Transport,
    scratch: &mut Scratch,
) -> Outcome {
    let base = scratch.out.len();
    let mut exchange = Exchange {
        transport,
        scratch,
        facts,
        app_name: app.name(),
        status: None,
        app_content_length: None,
        misbehaved: false,
        head_sent: false,
        framing: Framing::NoBody,
        length_hint: None,
        body_sent: 0,
        body_too_large: false,
        broken: false,
        client_gone: false,
        reusable: facts.keep_alive,
        base,
    };
    let request = WsRequest {
        size: std::mem::size_of::<WsRequest>() as u32,
        flags: facts.flags,
        environ: environ.as_ptr(),
        environ_len: environ.len(),
        io: &mut exchange as *mut Exchange as *mut c_void,
        host: &HOST,
        log_ctx: app.log_ctx(),
    };
    let mut body = WsBody::EMPTY;
    // SAFETY: `request`, its environ and `exchange` (behind io) outlive the call and the body's
    // `close` below, which runs once if the call returns WS_OK; single-threaded apps are
    // serialised by the caller.
    let rc = unsafe { app.call(&request, &mut body) };
    if rc != WS_OK {
        log::error!(target: "app", "[{}] call failed with code {rc}", app.name());
        exchange.fail();
    } else {
        exchange.drive_body(&body);
        if let Some(close) = body.close {
            // SAFETY: call returned WS_OK, so the server owes exactly one close on this ctx, and
            // this is the only one (drive_body never calls it).
            unsafe { close(body.ctx) };
        }
    }
    exchange.finish()
}

impl Exchange<'_> {
    fn drive_body(&mut self, body: &WsBody) {
        self.length_hint = (body.length_hint != WS_LENGTH_UNKNOWN).then_some(body.length_hint);
        let next = match body.next {
            // HEAD: the framing headers are those of GET, but no chunk is ever pulled.
            Some(next) if !self.facts.is_head => next,
            next => {
                if next.is_none() && !self.head_sent && self.app_content_length.is_none() {
                    // No chunks at all: whatever came by write() is the whole body.
                    self.length_hint = Some(0).filter(|_| self.body_sent == 0);
                }
                if self.ensure_head() {
                    self.end_body();
                }
                return;
            }
        };
        let mut burst = false;
        loop {
            // Flush before asking for more — the app may take its time producing the next chunk,
            // and what it already produced must reach the client meanwhile — unless the body is
            // complete by its length, or the app is producing a burst of small chunks.
            let complete = matches!(self.framing, Framing::Length(n) if self.body_sent >= n);
            let own_bytes = self.scratch.out.len() > self.base;
            let hold = complete || (burst && self.scratch.out.len() < HOLD_LIMIT);
            if own_bytes && !hold && !self.flush() {
                return;
            }
            let mut chunk = WsBytes::EMPTY;
            // Timing only matters for bodies of unknown or unfinished length (no clock read for
            // the usual one-chunk body).
            let asked = (self.head_sent && !complete).then(std::time::Instant::now);
            // SAFETY: ctx/next come from a successful call; chunk is a valid out-pointer.
            let rc = unsafe { next(body.ctx, &mut chunk) };
            burst = asked.is_some_and(|t| t.elapsed() < BURST);
            match rc {
                1 => {
                    // SAFETY: the ABI keeps a chunk valid until the next `next` or `close`; it is
                    // copied or written before either happens.
                    let data = unsafe { chunk.as_slice() };
                    if data.is_empty() {
                        continue;
                    }
                    let declared = self.app_content_length.filter(|_| !self.head_sent);
                    if declared.is_some_and(|n| data.len() as u64 > n) {
                        // Nothing is on the wire yet: a clean 500 beats a truncated body.
                        log::error!(target: "app", "[{}] body longer than its Content-Length {}", self.app_name, declared.unwrap_or(0));
                        self.fail();
                        return;
                    }
                    if !self.ensure_head() || !self.send_body(data) {
                        return;
                    }
                }
                0 => {
                    if !self.head_sent && self.app_content_length.is_none() {
                        // Nothing was produced: the body is empty whatever the hint said.
                        self.length_hint = Some(0);
                    }
                    if self.ensure_head() {
                        self.end_body();
                    }
                    return;
                }
                code => {
                    log::error!(target: "app", "[{}] body iterator failed with code {code}", self.app_name);
                    self.fail();
                    return;
                }
            }
        }
    }

    /// PEP 3333 `start_response`, validated and copied (RFC 9110 §5: names are tokens, values
    /// carry no CR, LF or NUL). Hop-by-hop headers belong to the server.
    pub(crate) fn start_response<'h>(
        &mut self,
        status: u16,
        reason: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        replace: bool,
    ) -> i32 {
        if self.head_sent {
            log::error!(target: "app", "[{}] start_response after the response head was sent", self.app_name);
            return WS_ERR_STATE;
        }
        if self.status.is_some() && !replace {
            log::error!(target: "app", "[{}] start_response called twice without the replace flag (exc_info)", self.app_name);
            self.misbehaved = true;
            return WS_ERR_STATE;
        }
        let scratch = &mut *self.scratch;
        scratch.reason.clear();
        scratch.header_bytes.clear();
        scratch.header_ranges.clear();
        self.status = None;
        self.app_content_length = None;
        let invalid = |what: String| {
            log::error!(target: "app", "[{}] invalid response: {what}", self.app_name);
            WS_ERR_INVALID
        };
        if !(200..=599).contains(&status) {
            self.misbehaved = true;
            return invalid(format!("status {status} is not in 200..=599"));
        }
        if !valid_header_value(reason) {
            self.misbehaved = true;
            return invalid("reason phrase contains CR, LF or a control byte".into());
        }
        scratch.reason.extend_from_slice(reason);
        for (name, value) in headers {
            let problem = if !is_token(name) {
                Some("name is not a token")
            } else if !valid_header_value(value) {
                Some("value contains CR, LF, NUL or a control byte")
            } else if is_hop_by_hop(name) {
                Some("hop-by-hop headers are set by the server")
            } else {
                None
            };
            if let Some(problem) = problem {
                self.misbehaved = true;
                let shown = String::from_utf8_lossy(name).into_owned();
                return invalid(format!("header {shown:?}: {problem}"));
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                match parse_decimal(value) {
                    Some(n) if self.app_content_length.is_none_or(|m| m == n) => {
                        self.app_content_length = Some(n)
                    }
                    _ => {
                        self.misbehaved = true;
                        return invalid("Content-Length is not one decimal number".into());
                    }
                }
                continue;
            }
            let start = scratch.header_bytes.len();
            scratch.header_bytes.extend_from_slice(name);
            let mid = scratch.header_bytes.len();
            scratch.header_bytes.extend_from_slice(value);
            let end = scratch.header_bytes.len();
            scratch.header_ranges.push((start..mid, mid..end));
        }
        self.status = Some(status);
        self.misbehaved = false;
        WS_OK
    }

    /// PEP 3333's legacy `write()`: the bytes go out now.
    pub(crate) fn write(&mut self, data: &[u8]) -> i32 {
        if self.status.is_none() {
            log::error!(target: "app", "[{}] write() before start_response", self.app_name);
            self.misbehaved = true;
            return WS_ERR_STATE;
        }
        if !self.ensure_head() {
            return if self.client_gone {
                WS_ERR_CLIENT_GONE
            } else {
                WS_ERR_STATE
            };
        }
        if data.is_empty() {
            return WS_OK;
        }
        if self.send_body(data) && self.flush() {
            WS_OK
        } else {
            WS_ERR_CLIENT_GONE
        }
    }

    pub(crate) fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        // Reading may wait for the client, which may be waiting for the responses we hold.
        if !self.scratch.out.is_empty() && !self.flush() {
            return Err(WS_ERR_CLIENT_GONE);
        }
        let result = self.transport.read_body(buf);
        if result == Err(WS_ERR_TOO_LARGE) {
            self.body_too_large = true;
        }
        result
    }

    /// Sends the head if it is not out yet. False if no body may follow (an error response went
    /// out instead, or the client is gone).
    fn ensure_head(&mut self) -> bool {
        if self.head_sent {
            return !self.client_gone && !self.broken;
        }
        let status = match self.status {
            _ if self.body_too_large => return self.send_error(413),
            Some(status) if !self.misbehaved => status,
            None if !self.misbehaved => {
                log::error!(target: "app", "[{}] the app never called start_response", self.app_name);
                return self.send_error(500);
            }
            _ => return self.send_error(500),
        };
        let known_length = self.app_content_length.or(self.length_hint);
        let no_body_status = status == 204 || status == 304;
        let framing = choose_framing(
            self.facts.version_minor,
            self.facts.is_head,
            status,
            known_length,
        );
        if framing == Framing::CloseDelimited {
            self.reusable = false;
        }
        if self.reusable && !self.transport.body_consumed() {
            // The app left part of the request body unread: the next request's start is unknown.
            self.reusable = false;
        }
        let scratch = &mut *self.scratch;
        let head = Head {
            version_minor: self.facts.version_minor,
            status,
            reason: &scratch.reason,
            keep_alive: self.reusable,
            framing,
            content_length_for_head: if self.facts.is_head && !no_body_status {
                known_length
            } else {
                None
            },
        };
        let bytes = &scratch.header_bytes;
        let headers = scratch
            .header_ranges
            .iter()
            .map(|(name, value)| (&bytes[name.clone()], &bytes[value.clone()]));
        encode_head(&mut scratch.out, &head, headers, self.transport.date());
        self.framing = framing;
        self.head_sent = true;
        true
    }

    /// An error response in place of the app's. The connection survives an app failure if the
    /// request was read whole; a body over the limit (413) always closes it.
    fn send_error(&mut self, status: u16) -> bool {
        self.status = Some(status);
        self.reusable = self.reusable && status != 413 && self.transport.body_consumed();
        self.head_sent = true;
        self.framing = Framing::NoBody;
        self.scratch.out.truncate(self.base);
        let with_body = !self.facts.is_head;
        encode_error_with(
            &mut self.scratch.out,
            status,
            self.reusable,
            with_body,
            self.transport.date(),
        );
        false
    }

    /// One body chunk, framed; small chunks are copied so head and body leave in one write.
    fn send_body(&mut self, mut data: &[u8]) -> bool {
        match self.framing {
            Framing::NoBody => return true,
            Framing::Length(declared) => {
                let room = declared.saturating_sub(self.body_sent);
                if data.len() as u64 > room {
                    log::error!(target: "app", "[{}] body longer than its Content-Length {declared}; truncated and closing the connection", self.app_name);
                    self.broken = true;
                    data = &data[..room as usize];
                }
            }
            Framing::Chunked | Framing::CloseDelimited => {}
        }
        self.body_sent += data.len() as u64;
        let out = &mut self.scratch.out;
        if data.len() < COPY_LIMIT {
            if self.framing == Framing::Chunked {
                encode_chunk(out, data);
            } else {
                out.extend_from_slice(data);
            }
            return !self.broken;
        }
        let mut prefix = [0u8; 20];
        let (prefix, suffix): (&[u8], &[u8]) = if self.framing == Framing::Chunked {
            (chunk_size_line(&mut prefix, data.len()), b"\r\n")
        } else {
            (&[], &[])
        };
        let written = self.transport.write_all(&[out, prefix, data, suffix]);
        out.clear();
        self.base = 0;
        if written.is_err() {
            self.client_gone = true;
        }
        !self.client_gone && !self.broken
    }

    fn end_body(&mut self) {
        match self.framing {
            Framing::Length(declared) if self.body_sent < declared => {
                log::error!(target: "app", "[{}] body of {} bytes is shorter than its Content-Length {declared}; closing the connection", self.app_name, self.body_sent);
                self.broken = true;
            }
            Framing::Chunked => encode_last_chunk(&mut self.scratch.out),
            _ => {}
        }
    }

    fn flush(&mut self) -> bool {
        if self.scratch.out.is_empty() {
            return !self.client_gone;
        }
        if self.client_gone {
            self.scratch.out.clear();
            self.base = 0;
            return false;
        }
        let result = self.transport.write_all(&[&self.scratch.out]);
        self.scratch.out.clear();
        self.base = 0;
        if let Err(e) = result {
            log::debug!("client gone while sending the response: {e}");
            self.client_gone = true;
        }
        !self.client_gone
    }

    /// The app failed: a 500 if nothing was sent, else the connection must close mid-body.
    fn fail(&mut self) {
        if self.head_sent {
            self.broken = true;
        } else {
            self.misbehaved = true;
            self.ensure_head();
        }
    }

    fn finish(mut self) -> Outcome {
        if !self.head_sent {
            self.ensure_head();
        }
        if !self.facts.defer_flush || self.scratch.out.len() >= HOLD_LIMIT {
            self.flush();
        }
        Outcome {
            status: self.status.unwrap_or(500),
            body_bytes: self.body_sent,
            reusable: self.reusable && !self.broken && !self.client_gone,
        }
    }
}

/// An in-memory connection for `check` and the ABI benchmark: no request body; the response is
/// encoded and dropped (the outcome reports its status and size).
#[derive(Default)]
pub(crate) struct MemoryTransport {
    date: DateCache,
}

impl Transport for MemoryTransport {
    fn read_body(&mut self, _buf: &mut [u8]) -> Result<usize, i32> {
        Ok(0)
    }

    fn write_all(&mut self, _parts: &[&[u8]]) -> io::Result<()> {
        Ok(())
    }

    fn body_consumed(&mut self) -> bool {
        true
    }

    fn date(&mut self) -> &[u8] {
        self.date.get()
    }
}

/// `"{hex}\r\n"` into `buf`, for chunks written without copying.
fn chunk_size_line(buf: &mut [u8; 20], len: usize) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut count = 0;
    loop {
        digits[count] = HEX[n & 0xf];
        count += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    for (slot, digit) in buf.iter_mut().zip(digits[..count].iter().rev()) {
        *slot = *digit;
    }
    buf[count..count + 2].copy_from_slice(b"\r\n");
    &buf[..count + 2]
}

/// RFC 9110 §8.6: Content-Length = 1*DIGIT.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}
