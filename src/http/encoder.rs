//! The response side of one exchange as a state machine (hyper's `proto/h1` habit): what the app
//! asked for, when the head goes out, how the body is framed, and whether the connection
//! survives. `app/call.rs` drives it with the app's actions; this file owns every decision.
//!
//! ```text
//!   Head(Pending) ──first body byte / write / end──▶ Body(Framing) ──end──▶ Done
//!        │                                              │
//!        ├─app broke the rules, 400/408/413──▶ Done (an ├─too long / short, failed mid-body──▶ Broken
//!        │                 error response instead)       └─a write failed──▶ ClientGone
//!        └─the client left mid-body──▶ ClientGone (no response; 499 in the access log)
//! ```
//!
//! The head is sent lazily — at the first body byte, the first `write`, the end of the body, or
//! when a deferred body first pends (a stream's client sees it start) — so that PEP 3333's
//! `exc_info` replacement works until then, and so that an app that breaks the protocol before
//! that (no `start_response`, a bad header, a failed `next`) still gets a clean 500 rather than
//! half a response. Once bytes are on the wire the only honest signal left
//! is closing the connection (`Broken`).
//!
//! A request body that fails by the client's fault (malformed, over `--max-body`, too slow) is
//! the client's 4xx, and a client that left mid-body gets nothing and is logged as 499 (nginx's
//! "client closed request"), whatever the app answers after its read failed: the app only saw an
//! error code (a Python app an exception its framework may turn into a 500), the server knows
//! whose fault it was.
//!
//! Output is gathered in `Scratch::out` and written as late as is correct: small chunks produced
//! in a burst are coalesced (up to [`HOLD_LIMIT`]), chunks of [`COPY_LIMIT`] or more leave in one
//! `writev` straight from the app's memory, and with `defer_flush` a finished response stays
//! buffered for the caller to send with the next pipelined ones. A
//! `100 Continue` goes out only while [`Encoder::may_send_interim`] (no final head yet); the
//! transport sends it (its bytes are [`encode_continue`](super::response::encode_continue)) when
//! the app first waits for body bytes the client holds back, which only the transport can tell.

use std::io;
use std::time::Duration;

use super::response::{
    choose_framing, encode_chunk, encode_error_with, encode_last_chunk, finish_head, Framing, Head,
};
use super::response_fields::{encode_trailer_fields, FieldLines, ResponseFields};

/// Chunks at least this large are written straight from the app's memory instead of being copied
/// into the output buffer.
pub(crate) const COPY_LIMIT: usize = 16 * 1024;

/// Output held back (deferred responses, coalesced chunks) never grows past this.
pub(crate) const HOLD_LIMIT: usize = 64 * 1024;

/// A `next` that returned within this is producing chunks in a burst: keep coalescing them.
/// A slower one (a stream that waits for events) gets every chunk sent as soon as it exists.
pub(crate) const BURST: Duration = Duration::from_micros(100);

/// The status the access log and `--stats` give a request whose client left before any head
/// was sent (nginx's 499 "client closed request"): not the app's failure, and no response.
pub(crate) const CLIENT_LEFT: u16 = 499;

/// Longest chunk-size line: 16 hex digits for a `u64` and CRLF.
const CHUNK_SIZE_LINE: usize = 16 + 2;

/// The socket side the encoder writes to.
pub(crate) trait Wire {
    /// Write every part, in order, or fail (client gone or too slow).
    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()>;
    /// True if the request body has been consumed, so the connection can carry another request.
    /// May drain what is buffered of it: only once the app reads no more.
    fn body_consumed(&mut self) -> bool;
    /// True if the request body was read to its end; nothing is read or drained to find out.
    fn body_done(&mut self) -> bool;
    /// True if the rest of the request body is here (read to its end, or all of it buffered), so
    /// that draining it once the app is done waits for nothing; nothing is drained to find out.
    fn body_buffered(&mut self) -> bool;
    /// The cached `Date` header value.
    fn date(&mut self) -> &[u8];
    /// The response's trailer fields (`Name: value\r\n` lines) for a wire that frames them
    /// itself (an HTTP/2 stream: a trailing HEADERS frame after the body); false where they
    /// have no place (HTTP/1.x without chunked framing).
    fn trailers(&mut self, _lines: &[u8]) -> bool {
        false
    }
    /// The app's response head for a wire that frames heads itself (an HTTP/2 stream's HEADERS
    /// frame): taken there, it is not written as HTTP/1 bytes, which the wire would only parse
    /// back. False where heads are bytes (HTTP/1.x), or this one could not be taken (then the
    /// bytes follow).
    fn take_head(&mut self, _head: FramedHead<'_>) -> bool {
        false
    }
}

/// An app's validated response head, for [`Wire::take_head`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramedHead<'a> {
    pub(crate) status: u16,
    /// The app's fields, in its order: valid, and none of them framing or connection-specific.
    pub(crate) fields: FieldLines<'a>,
    /// The Content-Length the head carries (the framing's, as the HTTP/1 head would say it).
    pub(crate) content_length: Option<u64>,
    /// The server adds `Date` and `Server` unless the app sent its own.
    pub(crate) add_date: bool,
    pub(crate) add_server: bool,
}

/// The request facts that shape the response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseContext {
    pub(crate) is_head: bool,
    pub(crate) version_minor: u8,
    /// The client allows keep-alive and the server is not draining.
    pub(crate) keep_alive: bool,
    /// Leave the finished response in `Scratch::out` for the caller to send with the responses
    /// to further pipelined requests (one write per batch); the caller must flush it.
    pub(crate) defer_flush: bool,
    /// Offer the head to [`Wire::take_head`] (a transport that frames heads itself): HTTP/1
    /// transports never take it, so they are not asked.
    pub(crate) frames_heads: bool,
    /// Keep a copy of the app's field lines once its head is complete (`Scratch::fields`): the
    /// access log prints response fields.
    pub(crate) keep_fields: bool,
    /// A `write` that completes a body of known length is held like a last chunk from `next`
    /// (sent with the batch by the caller, `defer_flush`), not flushed at once: for an app whose
    /// calls never wait (`WS_APP_NONBLOCKING`), which returns right after it, so holding delays
    /// nothing and saves a write per response.
    pub(crate) hold_completing_write: bool,
}

/// Buffers reused across requests on one thread, so the hot path allocates nothing.
#[derive(Default)]
pub(crate) struct Scratch {
    fields: ResponseFields,
    /// Encoded output not yet written; may begin with earlier pipelined responses. While a head
    /// is pending, its status line and the app's fields are at the end, not to be sent yet.
    out: Vec<u8>,
    /// The app's trailer fields as lines (ABI 1.3 `set_trailers`), sent after the body once
    /// `trailers_set`; empty otherwise. Kept from one response to the next (a gRPC service sets
    /// trailers on every response) unless it grew past [`TRAILERS_KEPT`]. Boxed: only an app
    /// that sets trailers pays for them, and a parked request's buffers stay small.
    // One word where a `Vec` takes three: a parked request carries this scratch.
    #[allow(clippy::box_collection)]
    trailers: Option<Box<Vec<u8>>>,
    /// `set_trailers` was called for this response, even with no fields.
    trailers_set: bool,
}

/// The largest trailer buffer kept for the thread's next response.
const TRAILERS_KEPT: usize = 1024;

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

    /// The app's response fields of the exchange finished last, kept if its context asked
    /// (`keep_fields`); empty if the response was not the app's (an error response replaced it).
    pub(crate) fn fields(&self) -> FieldLines<'_> {
        self.fields.kept()
    }

    /// Takes the response fields of `other` (a parked request's buffers, done now).
    pub(crate) fn take_fields(&mut self, other: &mut Scratch) {
        std::mem::swap(&mut self.fields, &mut other.fields);
    }

    /// Where a response the server answers itself (a `--static` file) is held, after those
    /// already held.
    pub(crate) fn hold(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Holds the error response to a request the app never saw, after those already held.
    pub(crate) fn hold_error(&mut self, status: u16, date: &[u8]) {
        super::response::encode_error(&mut self.out, status, date);
    }
}

/// How one exchange ended, for the access log and the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    /// The connection may carry another request.
    pub(crate) reusable: bool,
    /// The response went out whole (an HTTP/2 stream ends cleanly; otherwise it is reset).
    pub(crate) complete: bool,
}

/// What the app has asked for while the head is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    /// No `start_response` yet.
    Unset,
    /// A valid status; its fields are in `Scratch::fields`.
    Set {
        status: u16,
        content_length: Option<u64>,
    },
    /// The last `start_response` was invalid (or `write` came before any): nothing valid is set.
    /// A later valid call still stands; otherwise the answer is 500.
    Invalid,
    /// A valid response was set, then `start_response` came again without the replace flag:
    /// 500 unless a later call replaces it.
    Conflict,
    /// Reading the request body failed by the client's fault: the answer is this status
    /// whatever the app sets, and the connection closes. 400: malformed (bad chunked framing);
    /// 408: too slow (`--io-timeout`, `--body-timeout`); 413: over `--max-body`.
    BodyRefused(u16),
}

/// Where the response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// The head has not been sent.
    Head(Pending),
    /// The head is out (or buffered); the body follows with this framing.
    Body(Framing),
    /// The response is complete: the body ended within its framing, or an error response went
    /// out in place of the app's.
    Done,
    /// Bytes went out that are not the response the app meant (a body longer or shorter than
    /// its length, a failure mid-body): the connection must close.
    Broken,
    /// A write failed: the client is gone.
    ClientGone,
}

/// Why the encoder refused an app action (the host maps these to `WS_ERR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Out of order: start_response twice without replace or after the head, write before
    /// start_response or after the response ended.
    OutOfOrder,
    /// Invalid status, reason or header.
    Invalid,
    /// The client is gone (or the connection must close).
    ClientGone,
}

/// One response being encoded onto `wire`.
pub(crate) struct Encoder<'a, W: Wire + ?Sized> {
    wire: &'a mut W,
    scratch: &'a mut Scratch,
    context: ResponseContext,
    /// Names the app in log lines about its mistakes.
    app_name: &'a str,
    state: State,
    /// The connection may carry another request (as far as the request and framing go).
    keep_alive: bool,
    /// The body's exact length if the app knows it (`ws_body.length_hint`).
    length_hint: Option<u64>,
    /// The status sent (an error response's, if it replaced the app's); [`CLIENT_LEFT`] until
    /// one is, which is what the access log says of a client that left before any head.
    status: u16,
    body_sent: u64,
    /// `Scratch::out[..base]` holds earlier pipelined responses not yet sent.
    base: usize,
}

impl<'a, W: Wire + ?Sized> Encoder<'a, W> {
    pub(crate) fn new(
        wire: &'a mut W,
        scratch: &'a mut Scratch,
        context: ResponseContext,
        app_name: &'a str,
    ) -> Self {
        let base = scratch.out.len();
        // Not the previous request's: an app that never sets a response leaves none.
        scratch.fields.clear();
        // Empty unless set (a refusal leaves what was there).
        if std::mem::take(&mut scratch.trailers_set) {
            if let Some(lines) = &mut scratch.trailers {
                lines.clear();
                if lines.capacity() > TRAILERS_KEPT {
                    scratch.trailers = None;
                }
            }
        }
        Encoder {
            wire,
            scratch,
            context,
            app_name,
            state: State::Head(Pending::Unset),
            keep_alive: context.keep_alive,
            length_hint: None,
            status: CLIENT_LEFT,
            body_sent: 0,
            base,
        }
    }

    /// The transport behind the encoder (the request body is read through it).
    pub(crate) fn wire(&mut self) -> &mut W {
        self.wire
    }

    /// Whether the app's `start_response` has been taken (or an error response replaced it).
    pub(crate) fn head_is_set(&self) -> bool {
        !matches!(self.state, State::Head(Pending::Unset))
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// PEP 3333 `start_response`: validated and written into the output once, here, as the
    /// pending head (sent once the body begins).
    pub(crate) fn start_response<'h>(
        &mut self,
        status: u16,
        reason: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        replace: bool,
    ) -> Result<(), Refusal> {
        let pending = match self.state {
            State::Head(pending) => pending,
            State::ClientGone => return Err(Refusal::ClientGone),
            _ => {
                log::error!(target: "app", "[{}] start_response after the response head was sent", self.app_name);
                return Err(Refusal::OutOfOrder);
            }
        };
        if matches!(pending, Pending::Set { .. } | Pending::Conflict) && !replace {
            log::error!(target: "app", "[{}] start_response called twice without the replace flag (exc_info)", self.app_name);
            self.state = State::Head(Pending::Conflict);
            return Err(Refusal::OutOfOrder);
        }
        // A replaced head (PEP 3333 `exc_info`) goes; a refused one leaves nothing.
        let out = &mut self.scratch.out;
        out.truncate(self.base);
        let result = self.scratch.fields.set(out, status, reason, headers);
        let next = match &result {
            Ok(()) => Pending::Set {
                status,
                content_length: self.scratch.fields.content_length(),
            },
            Err(problem) => {
                log::error!(target: "app", "[{}] invalid response: {problem}", self.app_name);
                Pending::Invalid
            }
        };
        if !matches!(pending, Pending::BodyRefused(_)) {
            self.state = State::Head(next);
        }
        result.map_err(|_| Refusal::Invalid)
    }

    /// ABI 1.3 `set_trailers`: the fields sent after the body, checked and kept (replacing
    /// earlier ones) until the body ends.
    pub(crate) fn set_trailers<'h>(
        &mut self,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), Refusal> {
        match self.state {
            State::Head(_) | State::Body(_) => {}
            State::ClientGone => return Err(Refusal::ClientGone),
            State::Done | State::Broken => {
                log::error!(target: "app", "[{}] set_trailers after the body ended", self.app_name);
                return Err(Refusal::OutOfOrder);
            }
        }
        // Replacing earlier ones, which stay if these are refused.
        let lines = self.scratch.trailers.get_or_insert_with(Box::default);
        let earlier = lines.len();
        match encode_trailer_fields(lines, fields) {
            Ok(()) => {
                if earlier > 0 {
                    lines.drain(..earlier);
                }
                self.scratch.trailers_set = true;
                Ok(())
            }
            Err(problem) => {
                log::error!(target: "app", "[{}] invalid trailers: {problem}", self.app_name);
                Err(Refusal::Invalid)
            }
        }
    }

    /// PEP 3333's legacy `write()`: the head if it is not out yet, then `data`, sent now (or held
    /// with the batch when it completes the body: [`ResponseContext::hold_completing_write`]).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), Refusal> {
        match self.state {
            State::Head(Pending::Unset | Pending::Invalid) => {
                log::error!(target: "app", "[{}] write() before start_response", self.app_name);
                self.state = State::Head(Pending::Invalid);
                return Err(Refusal::OutOfOrder);
            }
            State::ClientGone => return Err(Refusal::ClientGone),
            _ => {}
        }
        // Only where the write may be held: a held write cannot be cut short on the wire, and
        // any other app's over-long first write goes out cut to its length as it always did.
        if self.context.hold_completing_write && self.fails_first_bytes(data) {
            return Err(Refusal::Invalid);
        }
        if !self.ensure_head() {
            return Err(if self.state == State::ClientGone {
                Refusal::ClientGone
            } else {
                Refusal::OutOfOrder
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        if !self.send_body(data) {
            return Err(Refusal::ClientGone);
        }
        // A body-less response (HEAD, 204, 304) is complete as it is: its bytes were dropped.
        let complete = self.body_complete() || self.state == State::Body(Framing::NoBody);
        if self.context.hold_completing_write && complete && self.scratch.out.len() < HOLD_LIMIT {
            return Ok(());
        }
        if self.flush() {
            Ok(())
        } else {
            Err(Refusal::ClientGone)
        }
    }

    /// ABI 1.2: answer `101 Switching Protocols` with the app's `headers` (validated as for
    /// `start_response`: hop-by-hop fields stay the server's) and the server's own `lines`
    /// (`Upgrade`, `Sec-WebSocket-Accept`, ...), then `Connection: Upgrade` and `Date`. Only
    /// before any response byte, and once the request body was read to its end; the exchange
    /// is then over (the connection is the app's, not another request's).
    pub(crate) fn switching_protocols<'h>(
        &mut self,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        lines: &[u8],
    ) -> Result<(), Refusal> {
        match self.state {
            State::Head(Pending::BodyRefused(_)) => return Err(Refusal::OutOfOrder),
            State::Head(_) => {}
            State::ClientGone => return Err(Refusal::ClientGone),
            State::Body(_) | State::Done | State::Broken => {
                log::error!(target: "app", "[{}] upgrade after the response head was sent", self.app_name);
                return Err(Refusal::OutOfOrder);
            }
        }
        if !self.wire.body_consumed() {
            log::error!(target: "app", "[{}] upgrade before the request body was read to its end", self.app_name);
            return Err(Refusal::OutOfOrder);
        }
        let out = &mut self.scratch.out;
        out.truncate(self.base);
        let fields = &mut self.scratch.fields;
        if let Err(problem) = fields.set_switching_protocols(out, headers) {
            log::error!(target: "app", "[{}] invalid 101 response: {problem}", self.app_name);
            return Err(Refusal::Invalid);
        }
        if self.context.keep_fields {
            fields.keep(&out[self.base..]);
        }
        let (has_date, _) = fields.has_date_and_server();
        out.extend_from_slice(lines);
        out.extend_from_slice(b"Connection: Upgrade\r\n");
        if !has_date {
            out.extend_from_slice(b"Date: ");
            out.extend_from_slice(self.wire.date());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.status = 101;
        self.keep_alive = false;
        self.state = State::Done;
        Ok(())
    }

    /// Before the request body is read: reading may wait for the client, which may be waiting
    /// for the responses held here. False if the client is gone.
    pub(crate) fn flush_before_read(&mut self) -> bool {
        self.scratch.out.is_empty() || self.flush()
    }

    /// Whether an interim response (`100 Continue`) may still go out: only before the final
    /// head, which once encoded precedes anything written later (RFC 9110 §15.2).
    pub(crate) fn may_send_interim(&self) -> bool {
        matches!(self.state, State::Head(_))
    }

    /// Reading the request body failed by the client's fault: if the head is not out, the
    /// answer is `status` (400 malformed, 408 too slow — RFC 9110 §15.5.9 —, 413 over
    /// `--max-body`) whatever the app does next, and the connection closes.
    pub(crate) fn request_body_refused(&mut self, status: u16) {
        if let State::Head(_) = self.state {
            self.state = State::Head(Pending::BodyRefused(status));
        }
    }

    /// The client left while the app read its body: nothing more goes out, whatever the app
    /// answers; before any head the access log says [`CLIENT_LEFT`].
    pub(crate) fn request_body_abandoned(&mut self) {
        match self.state {
            State::Head(_) => {
                self.scratch.out.truncate(self.base);
                self.state = State::ClientGone;
            }
            State::Body(_) => self.state = State::ClientGone,
            State::Done | State::Broken | State::ClientGone => {}
        }
    }

    /// The request ended by the client's doing (its body was refused, or it left): an app that
    /// fails now most likely fails on that, which is not the app's error.
    pub(crate) fn clients_fault(&self) -> bool {
        matches!(
            self.state,
            State::Head(Pending::BodyRefused(_)) | State::ClientGone
        )
    }

    /// The app asked to close the connection after this response (an app's `Connection:
    /// close`, `WS_RESPONSE_CLOSE`).
    pub(crate) fn close_after(&mut self) {
        self.keep_alive = false;
    }

    /// The response the app set and nothing of which was sent: its status and fields (for a
    /// file it hands over, ABI 1.2 `send_file`).
    pub(crate) fn pending_response(&self) -> Option<(u16, FieldLines<'_>)> {
        match self.state {
            State::Head(Pending::Set { status, .. }) => {
                let head = &self.scratch.out[self.base..];
                Some((status, self.scratch.fields.lines_in(head)))
            }
            _ => None,
        }
    }

    /// The body is a file the caller sends after this head (ABI 1.2 `send_file`): the head goes
    /// out now, as the app set it but with `status`, `fields` added and a Content-Length of
    /// `length`, and the response is complete as far as the encoder goes. Returns whether the
    /// connection may carry another request after the file.
    pub(crate) fn file_head<'h>(
        &mut self,
        status: u16,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        length: u64,
    ) -> Result<bool, Refusal> {
        let Some((app_status, _)) = self.pending_response() else {
            log::error!(target: "app", "[{}] send_file without a response set by start_response, or after body bytes", self.app_name);
            return Err(Refusal::OutOfOrder);
        };
        let scratch = &mut *self.scratch;
        let new_status = (status != app_status).then_some(status);
        (scratch.fields).amend(&mut scratch.out, self.base, new_status, length, fields);
        self.state = State::Head(Pending::Set {
            status,
            content_length: Some(length),
        });
        if !self.ensure_head() {
            return Err(Refusal::ClientGone);
        }
        if let State::Body(Framing::Length(n)) = self.state {
            // The caller sends these bytes from the file.
            self.body_sent = n;
        }
        self.end_body();
        if self.flush() {
            Ok(self.keep_alive)
        } else {
            Err(Refusal::ClientGone)
        }
    }

    /// `ws_body.length_hint`: the body's exact length, if the app knows it.
    pub(crate) fn set_length_hint(&mut self, hint: Option<u64>) {
        self.length_hint = hint;
    }

    /// Before the app is asked for another chunk: send what is buffered, unless the body is
    /// complete by its length or the app is producing a burst of small chunks. False if the
    /// client is gone.
    pub(crate) fn before_next(&mut self, burst: bool) -> bool {
        let hold = self.body_complete() || (burst && self.scratch.out.len() < HOLD_LIMIT);
        // A pending head is not this response's to send yet.
        let own_bytes = self.scratch.out.len() > self.base && !matches!(self.state, State::Head(_));
        !own_bytes || hold || self.flush()
    }

    /// Whether the time the app takes for its next chunk matters (it decides coalescing): only
    /// while a body of unknown or unfinished length is going out, so the usual one-chunk body
    /// costs no clock read.
    pub(crate) fn next_is_timed(&self) -> bool {
        matches!(self.state, State::Body(_)) && !self.body_complete()
    }

    /// The body reached its declared length where nothing may follow it (HTTP/1: a
    /// Content-Length body has no place for trailers; an HTTP/2 stream's may still come), so
    /// the response is over without asking the app for its end.
    pub(crate) fn complete_by_length(&self) -> bool {
        !self.context.frames_heads && self.body_complete()
    }

    fn body_complete(&self) -> bool {
        matches!(self.state, State::Body(Framing::Length(n)) if self.body_sent >= n)
    }

    /// One chunk from the app's body. False if no more may follow (the response ended in an
    /// error or the connection must close).
    pub(crate) fn chunk(&mut self, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        !self.fails_first_bytes(data) && self.ensure_head() && self.send_body(data)
    }

    /// The first bytes of a body are longer than the app's Content-Length: as nothing is on the
    /// wire yet, the response fails (a clean 500 beats a truncated body). Inline: every chunk
    /// asks, and the usual answer is one comparison.
    #[inline]
    fn fails_first_bytes(&mut self, data: &[u8]) -> bool {
        let State::Head(Pending::Set {
            content_length: Some(declared),
            ..
        }) = self.state
        else {
            return false;
        };
        if data.len() as u64 <= declared {
            return false;
        }
        log::error!(target: "app", "[{}] body longer than its Content-Length {declared}", self.app_name);
        self.fail();
        true
    }

    /// The app's body ended (`next` returned 0, or there is no `next`).
    pub(crate) fn end(&mut self) {
        if let State::Head(pending) = self.state {
            if !matches!(
                pending,
                Pending::Set {
                    content_length: Some(_),
                    ..
                }
            ) {
                // Nothing was produced: the body is empty whatever the hint said.
                self.length_hint = Some(0);
            }
        }
        self.end_unpulled();
    }

    /// The response ends without its body being pulled (HEAD: the framing headers are those of
    /// GET, from the app's length or hint, but no chunk is asked for).
    pub(crate) fn end_unpulled(&mut self) {
        if self.ensure_head() {
            self.end_body();
        }
    }

    /// The app failed (`call` or `next`): a 500 if nothing was sent, else the connection must
    /// close mid-body.
    pub(crate) fn fail(&mut self) {
        match self.state {
            State::Head(Pending::BodyRefused(_)) => {
                self.ensure_head();
            }
            State::Head(_) => {
                self.state = State::Head(Pending::Invalid);
                self.ensure_head();
            }
            State::ClientGone => {}
            State::Body(_) | State::Done | State::Broken => self.state = State::Broken,
        }
    }

    /// Ends the exchange: sends the head if nothing did, flushes unless the caller batches.
    pub(crate) fn finish(mut self) -> Outcome {
        if let State::Head(_) = self.state {
            self.ensure_head();
        }
        if self.keep_alive && self.state == State::Done && !self.wire.body_consumed() {
            // The app is done: the rest of its body, buffered when the head went out, is drained
            // now so that the next request starts after it.
            self.keep_alive = false;
        }
        if !self.context.defer_flush || self.scratch.out.len() >= HOLD_LIMIT {
            self.flush();
        }
        Outcome {
            status: self.status,
            body_bytes: self.body_sent,
            reusable: self.keep_alive && self.state == State::Done,
            complete: self.state == State::Done,
        }
    }

    /// Sends the head if it is not out yet. False if no body may follow (an error response went
    /// out instead, the response is over, or the connection must close).
    fn ensure_head(&mut self) -> bool {
        let pending = match self.state {
            State::Head(pending) => pending,
            State::Body(_) => return true,
            State::Done | State::Broken | State::ClientGone => return false,
        };
        let (status, app_length) = match pending {
            Pending::Set {
                status,
                content_length,
            } => (status, content_length),
            Pending::BodyRefused(status) => return self.send_error(status),
            Pending::Unset => {
                log::error!(target: "app", "[{}] the app never called start_response", self.app_name);
                return self.send_error(500);
            }
            Pending::Invalid | Pending::Conflict => return self.send_error(500),
        };
        let context = self.context;
        // Trailers need chunked framing on HTTP/1.1: the body's length hint gives way to them
        // (the app's own Content-Length does not). HTTP/2 (framed as 1.0 here) keeps its length.
        let hint = self
            .length_hint
            .filter(|_| !(self.scratch.trailers_set && context.version_minor >= 1));
        let known_length = app_length.or(hint);
        let framing = choose_framing(context.version_minor, context.is_head, status, known_length);
        if framing == Framing::CloseDelimited {
            self.keep_alive = false;
        }
        if self.keep_alive && !self.wire.body_buffered() {
            // Part of the request body is still to come, and the app may leave it unread: the
            // next request's start may never be known. What is buffered stays for the app to read
            // (it may write before it reads); `finish` drains it.
            self.keep_alive = false;
        }
        let no_body_status = status == 204 || status == 304;
        let head = Head {
            version_minor: context.version_minor,
            status,
            keep_alive: self.keep_alive,
            framing,
            content_length_for_head: (context.is_head && !no_body_status)
                .then_some(known_length)
                .flatten(),
        };
        let scratch = &mut *self.scratch;
        if context.keep_fields {
            scratch.fields.keep(&scratch.out[self.base..]);
        }
        let taken = context.frames_heads && {
            let (has_date, has_server) = scratch.fields.has_date_and_server();
            self.wire.take_head(FramedHead {
                status,
                fields: scratch.fields.lines_in(&scratch.out[self.base..]),
                content_length: head.content_length(),
                add_date: !has_date,
                add_server: !has_server,
            })
        };
        if taken {
            scratch.out.truncate(self.base);
        } else {
            finish_head(&mut scratch.out, &head, &scratch.fields, self.wire.date());
        }
        self.status = status;
        self.state = State::Body(framing);
        true
    }

    /// An error response in place of the app's. The connection survives an app failure if the
    /// request was read whole; a refused request body (400, 408, 413: the only 4xx sent here)
    /// always closes it. Always false: no body of the app's follows.
    fn send_error(&mut self, status: u16) -> bool {
        self.status = status;
        self.scratch.fields.clear();
        let body_refused = status / 100 == 4;
        self.keep_alive = self.keep_alive && !body_refused && self.wire.body_consumed();
        self.scratch.out.truncate(self.base);
        encode_error_with(
            &mut self.scratch.out,
            status,
            self.keep_alive,
            !self.context.is_head,
            self.wire.date(),
        );
        self.state = State::Done;
        false
    }

    /// One body chunk, framed; small chunks are copied so head and body leave in one write.
    /// False if no more may follow.
    fn send_body(&mut self, mut data: &[u8]) -> bool {
        let State::Body(framing) = self.state else {
            return false;
        };
        match framing {
            Framing::NoBody => return true,
            Framing::Length(declared) => {
                let room = declared.saturating_sub(self.body_sent);
                if data.len() as u64 > room {
                    log::error!(target: "app", "[{}] body longer than its Content-Length {declared}; truncated and closing the connection", self.app_name);
                    self.state = State::Broken;
                    data = &data[..room as usize];
                }
            }
            Framing::Chunked | Framing::CloseDelimited => {}
        }
        self.body_sent += data.len() as u64;
        let out = &mut self.scratch.out;
        if data.len() < COPY_LIMIT {
            if framing == Framing::Chunked {
                encode_chunk(out, data);
            } else {
                out.extend_from_slice(data);
            }
            return self.state == State::Body(framing);
        }
        let mut size_line = [0u8; CHUNK_SIZE_LINE];
        let (prefix, suffix): (&[u8], &[u8]) = if framing == Framing::Chunked {
            (chunk_size_line(&mut size_line, data.len()), b"\r\n")
        } else {
            (&[], &[])
        };
        let written = self.wire.write_all(&[out, prefix, data, suffix]);
        out.clear();
        self.base = 0;
        if let Err(e) = written {
            log::debug!("client gone while sending the response: {e}");
            self.state = State::ClientGone;
        }
        self.state == State::Body(framing)
    }

    fn end_body(&mut self) {
        match self.state {
            State::Body(Framing::Length(declared)) if self.body_sent < declared => {
                log::error!(target: "app", "[{}] body of {} bytes is shorter than its Content-Length {declared}; closing the connection", self.app_name, self.body_sent);
                self.state = State::Broken;
            }
            State::Body(framing) => {
                let trailers = self
                    .scratch
                    .trailers
                    .as_deref()
                    .map_or(&[][..], Vec::as_slice);
                if framing == Framing::Chunked && !trailers.is_empty() {
                    // RFC 9112 §7.1.2: the trailer section follows the last chunk.
                    let out = &mut self.scratch.out;
                    out.extend_from_slice(b"0\r\n");
                    out.extend_from_slice(trailers);
                    out.extend_from_slice(b"\r\n");
                } else if framing == Framing::Chunked {
                    encode_last_chunk(&mut self.scratch.out);
                } else if !trailers.is_empty()
                    && (framing == Framing::NoBody || !self.wire.trailers(trailers))
                {
                    log::debug!(
                        "[{}] trailers dropped: this response's framing has no place for them",
                        self.app_name
                    );
                }
                self.state = State::Done;
            }
            _ => {}
        }
    }

    /// Writes everything buffered but a pending head (which stays, at the start of the
    /// output). False if the client is gone.
    fn flush(&mut self) -> bool {
        let ready = match self.state {
            State::Head(_) => self.base,
            _ => self.scratch.out.len(),
        };
        if ready == 0 {
            return self.state != State::ClientGone;
        }
        let result = if self.state == State::ClientGone {
            Ok(())
        } else {
            self.wire.write_all(&[&self.scratch.out[..ready]])
        };
        if ready == self.scratch.out.len() {
            self.scratch.out.clear();
        } else {
            self.scratch.out.drain(..ready);
        }
        self.base = 0;
        if let Err(e) = result {
            log::debug!("client gone while sending the response: {e}");
            self.state = State::ClientGone;
        }
        self.state != State::ClientGone
    }
}

/// `"{hex}\r\n"` into `buf`, for chunks written without copying.
fn chunk_size_line(buf: &mut [u8; CHUNK_SIZE_LINE], len: usize) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; CHUNK_SIZE_LINE - 2];
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

#[path = "encoder_deferred.rs"]
mod deferred;
pub(crate) use deferred::Suspended;

#[cfg(test)]
#[path = "encoder_tests.rs"]
mod tests;
