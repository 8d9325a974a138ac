//! [`Response`] (status, headers, body) and [`Body`] (what becomes the `WsBody` the server pulls).

use super::deferred::DeferredBody;
use super::error::AbiError;
use super::request::{with_pairs, Request};
use crate::raw::WS_LENGTH_UNKNOWN;
use std::borrow::Cow;
use std::fmt;

type OnClose = Box<dyn FnOnce() + Send + 'static>;
/// An upgrade the call trampoline makes instead of `start_response` (ABI 1.2), with the
/// response's headers.
type TakeOver = Box<dyn FnOnce(&mut Request<'_>, &[(&str, &str)]) -> Result<(), AbiError> + Send>;
type ChunkIter = Box<dyn Iterator<Item = Vec<u8>> + Send + 'static>;

/// A closed body's bytes up to this capacity are kept for the thread's next
/// [`Body::copy_from_slice`]; larger ones are freed.
const SPARE_BYTES_LIMIT: usize = 16 * 1024;

thread_local! {
    /// The buffer of the last [`BodyKind::Bytes`] body closed on this thread, emptied.
    static SPARE_BYTES: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Keeps `bytes`, a closed body's, for the thread's next [`Body::copy_from_slice`] (if small).
pub(crate) fn recycle_bytes(mut bytes: Vec<u8>) {
    if bytes.capacity() <= SPARE_BYTES_LIMIT {
        bytes.clear();
        SPARE_BYTES.with(|spare| spare.set(bytes));
    }
}

/// The kinds of response body.
pub enum BodyKind {
    /// No bytes (`length_hint` 0, no `next`).
    Empty,
    /// Static bytes: one chunk, no copy, exact length.
    Static(&'static [u8]),
    /// Owned bytes: one chunk, exact length.
    Bytes(Vec<u8>),
    /// Chunks produced on demand (PEP 3333's iterable), length unknown: the server streams them
    /// (chunked transfer coding). Empty chunks are skipped, never passed to the server.
    Iter(ChunkIter),
    /// A body that may answer later (ABI 1.1, [`DeferredBody`]): its `next` may pend and starts
    /// the response itself. Length unknown unless its head sets Content-Length.
    Deferred(Box<dyn DeferredBody>),
}

/// A response body: a [`BodyKind`] plus an optional `on_close` hook (PEP 3333's `close()`).
///
/// Owned by the app: after `call` returns it lives in a heap box behind `WsBody::ctx` until the
/// server's `close`, which drops it. Dropping a `Body` — through `close`, or without it ever being
/// sent (e.g. the server rejected the headers) — first drops its bytes/iterator, then runs the
/// `on_close` hooks, exactly once. A body is `Send` because `next` and `close` may run on another
/// thread than `call`.
///
/// Convert from `&'static str`, `&'static [u8]`, `String`, `Vec<u8>`, or use the constructors.
pub struct Body {
    kind: BodyKind,
    on_close: Option<OnClose>,
}

impl Body {
    /// No bytes.
    pub const fn empty() -> Body {
        Body {
            kind: BodyKind::Empty,
            on_close: None,
        }
    }

    /// Static bytes, sent without copying or allocating.
    pub const fn from_static(bytes: &'static [u8]) -> Body {
        Body {
            kind: BodyKind::Static(bytes),
            on_close: None,
        }
    }

    /// Owned bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Body {
        BodyKind::Bytes(bytes).into()
    }

    /// A copy of `bytes` (owned bytes), for bytes the app cannot hand over (shared, borrowed):
    /// copied into the buffer of the last owned body closed on this thread, so a steady stream
    /// of small responses allocates none.
    pub fn copy_from_slice(bytes: &[u8]) -> Body {
        let mut buf = SPARE_BYTES.with(std::cell::Cell::take);
        buf.extend_from_slice(bytes);
        Body::from_vec(buf)
    }

    /// A streamed body: each item is one chunk (empty items are skipped). The iterator runs in the
    /// server's `next` calls, possibly on another thread, so it must be `Send + 'static`; a panic
    /// in it is caught, logged, and ends the response with an error.
    #[allow(clippy::should_implement_trait)] // FromIterator cannot require `Send + 'static`.
    pub fn from_iter<I, C>(chunks: I) -> Body
    where
        I: IntoIterator<Item = C>,
        I::IntoIter: Send + 'static,
        C: Into<Vec<u8>> + 'static,
    {
        BodyKind::Iter(Box::new(chunks.into_iter().map(Into::into))).into()
    }

    /// A body that answers later (ABI 1.1); see [`DeferredBody`]. Return it with
    /// [`Response::deferred`], which leaves starting the response to the body.
    pub fn deferred(body: impl DeferredBody) -> Body {
        BodyKind::Deferred(Box::new(body)).into()
    }

    /// Adds a hook run once when the body is released (after the last chunk, on client disconnect
    /// or on error alike; see the type's docs). Hooks added later run after earlier ones.
    pub fn with_on_close(mut self, f: impl FnOnce() + Send + 'static) -> Body {
        self.on_close = Some(match self.on_close.take() {
            None => Box::new(f),
            Some(prev) => Box::new(move || {
                prev();
                f();
            }),
        });
        self
    }

    /// The body's kind.
    pub fn kind(&self) -> &BodyKind {
        &self.kind
    }

    pub(crate) fn kind_mut(&mut self) -> &mut BodyKind {
        &mut self.kind
    }

    /// Whether an `on_close` hook is attached.
    pub fn has_on_close(&self) -> bool {
        self.on_close.is_some()
    }

    /// The exact length for `Empty`, `Static` and `Bytes`; `WS_LENGTH_UNKNOWN` for `Iter`.
    pub fn length_hint(&self) -> u64 {
        match &self.kind {
            BodyKind::Empty => 0,
            BodyKind::Static(b) => b.len() as u64,
            BodyKind::Bytes(b) => b.len() as u64,
            BodyKind::Iter(_) | BodyKind::Deferred(_) => WS_LENGTH_UNKNOWN,
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // Release the bytes/iterator before the hook, as WSGI's close() follows iteration.
        self.kind = BodyKind::Empty;
        if let Some(f) = self.on_close.take() {
            f();
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl From<BodyKind> for Body {
    fn from(kind: BodyKind) -> Body {
        Body {
            kind,
            on_close: None,
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::from_static(s.as_bytes())
    }
}

impl From<&'static [u8]> for Body {
    fn from(b: &'static [u8]) -> Body {
        Body::from_static(b)
    }
}

impl<const N: usize> From<&'static [u8; N]> for Body {
    fn from(b: &'static [u8; N]) -> Body {
        Body::from_static(b)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::from_vec(s.into_bytes())
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Body {
        Body::from_vec(b)
    }
}

impl fmt::Debug for BodyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyKind::Empty => f.write_str("Empty"),
            BodyKind::Static(b) => write!(f, "Static({} bytes)", b.len()),
            BodyKind::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            BodyKind::Iter(_) => f.write_str("Iter(..)"),
            BodyKind::Deferred(_) => f.write_str("Deferred(..)"),
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("kind", &self.kind)
            .field("on_close", &self.on_close.is_some())
            .finish()
    }
}

/// Response headers: a static list costs no allocation (the `hello` fast path).
enum HeaderList {
    Static(&'static [(&'static str, &'static str)]),
    Owned(Vec<(Cow<'static, str>, Cow<'static, str>)>),
}

/// What [`crate::App::call`] returns: status, headers and [`Body`] (PEP 3333's `start_response`
/// arguments plus the returned iterable), built with chained methods:
///
/// ```
/// use app_abi::Response;
///
/// let r = Response::new(201).header("Location", "/items/7").body("created\n");
/// assert_eq!(r.status_code(), 201);
/// assert_eq!(r.get_header("location"), Some("/items/7"));
/// assert_eq!(r.body_ref().length_hint(), 8); // becomes Content-Length
/// ```
///
/// Content-Length is not a header to set: the server derives it from [`Body::length_hint`] (or
/// streams with chunked coding). Hop-by-hop headers are rejected by the server.
pub struct Response {
    status: u16,
    reason: Cow<'static, str>,
    headers: HeaderList,
    body: Body,
    started: bool,
    take_over: Option<TakeOver>,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: Cow::Borrowed(""),
            headers: HeaderList::Static(&[]),
            body: Body::empty(),
            started: false,
            take_over: None,
        }
    }

    /// A response with a static header list (no allocation).
    pub fn with_static_headers(
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: impl Into<Body>,
    ) -> Response {
        Response {
            headers: HeaderList::Static(headers),
            body: body.into(),
            ..Response::new(status)
        }
    }

    /// `text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<Body>) -> Response {
        const H: &[(&str, &str)] = &[("Content-Type", "text/plain; charset=utf-8")];
        Response::with_static_headers(status, H, body)
    }

    /// `text/html; charset=utf-8`.
    pub fn html(status: u16, body: impl Into<Body>) -> Response {
        const H: &[(&str, &str)] = &[("Content-Type", "text/html; charset=utf-8")];
        Response::with_static_headers(status, H, body)
    }

    /// `application/json` (the body is sent as given; it is not validated).
    pub fn json(status: u16, body: impl Into<Body>) -> Response {
        const H: &[(&str, &str)] = &[("Content-Type", "application/json")];
        Response::with_static_headers(status, H, body)
    }

    /// 404 with a short text body.
    pub fn not_found() -> Response {
        Response::text(404, "Not Found\n")
    }

    /// For an app that already called [`crate::Request::start_response`] itself: only `body` is
    /// handed to the server; the trampoline does not call `start_response`.
    pub fn started(body: impl Into<Body>) -> Response {
        Response {
            body: body.into(),
            started: true,
            ..Response::new(200)
        }
    }

    /// A response answered later by `body` (ABI 1.1): `call` returns at once, and the body's
    /// `next` calls [`crate::BodyIo::start_response`] once the head is known. The app should
    /// check [`crate::InitContext::require_abi_1_1`] in `init`.
    pub fn deferred(body: impl DeferredBody) -> Response {
        Response::started(Body::deferred(body))
    }

    /// Accepts the request's WebSocket (ABI 1.2): the server answers 101 and `handler` runs the
    /// connection (see [`crate::WebSocketHandler`]). Headers added with [`Response::header`] go
    /// into the 101 (Set-Cookie, say). Check [`crate::Request::is_websocket`] first: on a request
    /// that is not a valid handshake the server answers 400 (or 426) itself. The app should
    /// call [`crate::InitContext::require_abi_1_2`] in `init`.
    pub fn websocket(handler: impl super::WebSocketHandler) -> Response {
        Response::websocket_with("", handler)
    }

    /// [`Response::websocket`] choosing `protocol`, one the client offered in
    /// `Sec-WebSocket-Protocol`.
    pub fn websocket_with(protocol: &str, handler: impl super::WebSocketHandler) -> Response {
        let protocol = protocol.to_owned();
        Response {
            started: true,
            take_over: Some(Box::new(move |req, headers| {
                req.websocket_accept(&protocol, headers, handler).map(drop)
            })),
            ..Response::new(101)
        }
    }

    /// Answers 101 switching to `protocol` (the `Upgrade` field; one the client offered) and
    /// gives the connection to `handler` as a byte stream (ABI 1.2; see
    /// [`crate::StreamHandler`]). Headers added with [`Response::header`] go into the 101.
    pub fn upgrade(protocol: &str, handler: impl super::StreamHandler) -> Response {
        let protocol = protocol.to_owned();
        Response {
            started: true,
            take_over: Some(Box::new(move |req, headers| {
                let mut all = vec![("Upgrade", protocol.as_str())];
                all.extend_from_slice(headers);
                req.upgrade(&all, handler).map(drop)
            })),
            ..Response::new(101)
        }
    }

    /// Sets the reason phrase (empty, the default, lets the server use the standard one).
    pub fn reason(mut self, reason: impl Into<Cow<'static, str>>) -> Response {
        self.reason = reason.into();
        self
    }

    /// Appends a header (repeats are allowed and sent as separate lines).
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        if let HeaderList::Static(list) = self.headers {
            let owned = list
                .iter()
                .map(|&(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)))
                .collect();
            self.headers = HeaderList::Owned(owned);
        }
        if let HeaderList::Owned(v) = &mut self.headers {
            v.push((name.into(), value.into()));
        }
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Body>) -> Response {
        self.body = body.into();
        self
    }

    /// Replaces the status.
    pub fn status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The reason phrase ("" = the server's standard phrase).
    pub fn reason_phrase(&self) -> &str {
        &self.reason
    }

    /// The headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let (stat, owned): (&[_], &[_]) = match &self.headers {
            HeaderList::Static(l) => (l, &[]),
            HeaderList::Owned(v) => (&[], v),
        };
        stat.iter()
            .map(|&(n, v)| (n, v))
            .chain(owned.iter().map(|(n, v)| (&**n, &**v)))
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        match &self.headers {
            HeaderList::Static(l) => l.len(),
            HeaderList::Owned(v) => v.len(),
        }
    }

    /// The body.
    pub fn body_ref(&self) -> &Body {
        &self.body
    }

    /// Whether this is a [`Response::started`] response.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Makes the upgrade of [`Response::websocket`] or [`Response::upgrade`], if this is one
    /// (`None` otherwise).
    pub(crate) fn take_over(&mut self, req: &mut Request<'_>) -> Option<Result<(), AbiError>> {
        let take_over = self.take_over.take()?;
        let headers: Vec<(&str, &str)> = self.headers().collect();
        Some(take_over(req, &headers))
    }

    /// Sends status and headers through the host's `start_response` (flags 0).
    pub(crate) fn send_head(&self, req: &Request<'_>) -> Result<(), AbiError> {
        let headers = self.headers().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        with_pairs(headers, |pairs| {
            req.start_response_raw(self.status, self.reason.as_bytes(), pairs, 0)
        })
    }

    /// Takes the body out (leaving an empty one).
    pub fn into_body(mut self) -> Body {
        std::mem::take(&mut self.body)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("body", &self.body)
            .field("started", &self.started)
            .field("take_over", &self.take_over.is_some())
            .finish()
    }
}
