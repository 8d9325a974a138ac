//! The request body, bridged from the server to the service with bounded buffering.
//!
//! The server's `try_read` is answered only on the serving thread, during `next`; the service
//! polls its body on the runtime's threads. Between them sits one slot under a lock ([`Slot`]):
//! [`Upload::pump`] (in `next`) fills it while it is empty, [`RequestBody`] (in the service)
//! empties it and wakes the server so `next` refills it. So at most one chunk waits in memory,
//! whichever side is slow: a slow service stops the server from reading the socket (TCP pushes
//! back on the uploader), a slow uploader leaves the service pending. (tokio's bounded channel,
//! used before, allocated a block of 32 slots per request, which one gRPC message never needs.)
//! Nothing is read before the service first polls its body, so `100 Continue` goes out
//! only to a handler that wants the body — except over HTTP/2 without `Expect`, where there is no
//! `100 Continue` to hold back and the body usually arrived with the head (a unary gRPC call's
//! one DATA frame): what the server holds then is read in `call` ([`for_request`]), and a body
//! that is there whole reaches the service as it is, with no bridge (no slot, no wakes, no
//! second poll of the service). The request's trailer fields (ABI 1.3: an HTTP/1.1
//! chunked trailer section, HTTP/2's trailing HEADERS — gRPC clients may send them) follow the
//! last data frame as an [`http_body::Frame::trailers`].

use app_abi::{AbiError, BodyIo, Request, TryRead, Waker};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

/// The largest chunk read from the server at once.
const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// A failure of the request body, as the service sees it (axum turns it into a 400 response).
#[derive(Debug)]
pub struct BodyError(AbiError);

impl BodyError {
    /// The host's error code behind it (e.g. [`AbiError::TooLarge`] past `--max-body`).
    pub fn abi_error(&self) -> AbiError {
        self.0
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body: {}", self.0)
    }
}

impl std::error::Error for BodyError {}

/// Where the pump reads from: the server's `try_read` ([`BodyIo`]), or a test double.
pub(crate) trait TryReadSource {
    fn try_read(&mut self, buf: &mut [u8]) -> TryRead;
    /// The request's trailer fields once the body ended (none from a server older than 1.3).
    fn trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }
}

impl TryReadSource for BodyIo<'_> {
    fn try_read(&mut self, buf: &mut [u8]) -> TryRead {
        BodyIo::try_read(self, buf)
    }

    fn trailers(&mut self) -> Option<http::HeaderMap> {
        trailer_map(self.request_trailers().ok().flatten()?)
    }
}

impl TryReadSource for Request<'_> {
    fn try_read(&mut self, buf: &mut [u8]) -> TryRead {
        Request::try_read(self, buf)
    }

    fn trailers(&mut self) -> Option<http::HeaderMap> {
        trailer_map(self.request_trailers().ok().flatten()?)
    }
}

/// The host's trailer fields as a header map (`None` if there are none); fields `http` refuses
/// are left out.
fn trailer_map(fields: Vec<(&[u8], &[u8])>) -> Option<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    (!map.is_empty()).then_some(map)
}

/// Told by the service side that `next` should run: a [`Waker`] in the server, or a test double.
pub(crate) trait Wake: Send + Sync + 'static {
    fn wake(&self);
}

impl Wake for Waker {
    fn wake(&self) {
        Waker::wake(self);
    }
}

/// The request body a tower service receives: an [`http_body::Body`] of [`Bytes`].
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Source>,
    size_hint: SizeHint,
}

/// Where a body's frames come from until it ends.
#[derive(Debug)]
enum Source {
    /// The server's pump, through the slot.
    Bridged(Stream),
    /// The whole body, read in `call`: its bytes (until taken), then its trailers.
    Arrived {
        data: Bytes,
        trailers: Option<http::HeaderMap>,
    },
}

/// What moves from the server's pump to the service: a frame or the server's failure.
type Item = Result<Frame<Bytes>, AbiError>;

/// The bridge between the two halves: one item in flight, and who is still there.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Set on the service's first poll: from then on the server may read the body for it.
    wanted: AtomicBool,
}

#[derive(Default)]
struct SlotState {
    item: Option<Item>,
    /// The server's half is gone: after `item`, the body ends.
    sender_gone: bool,
    /// The service dropped its body: the server reads no more.
    receiver_gone: bool,
    /// The service's task, waiting for an item.
    waiting: Option<std::task::Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The item, the end (`Ready(None)`), or `Pending` with `cx`'s waker kept for the next one.
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let mut state = self.lock();
        if let Some(item) = state.item.take() {
            return Poll::Ready(Some(item));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        match &mut state.waiting {
            Some(waker) => waker.clone_from(cx.waker()),
            waiting => *waiting = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// What the server's half finds in the slot before it reads.
enum Room {
    Free,
    Full,
    /// The service dropped its body.
    Closed,
}

/// The server's half of the slot; dropping it ends the body (after the item still in it).
struct Sender(Arc<Slot>);

impl Sender {
    fn room(&self) -> Room {
        let state = self.0.lock();
        if state.receiver_gone {
            Room::Closed
        } else if state.item.is_some() {
            Room::Full
        } else {
            Room::Free
        }
    }

    /// Puts `item` in the slot (which [`Sender::room`] found free: only this half fills it).
    fn send(&self, item: Item) {
        let waiting = {
            let mut state = self.0.lock();
            state.item = Some(item);
            state.waiting.take()
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.0.lock();
            state.sender_gone = true;
            state.waiting.take()
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

struct Stream {
    slot: Arc<Slot>,
    waker: Arc<dyn Wake>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.slot.lock().receiver_gone = true;
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

impl RequestBody {
    /// A body with no bytes (no Content-Length or 0, no Transfer-Encoding).
    pub(crate) fn empty() -> RequestBody {
        RequestBody {
            inner: None,
            size_hint: SizeHint::with_exact(0),
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let stream = match self.inner.as_mut() {
            None => return Poll::Ready(None),
            Some(Source::Bridged(stream)) => stream,
            Some(Source::Arrived { data, trailers }) => {
                let frame = if !data.is_empty() {
                    Frame::data(std::mem::take(data))
                } else if let Some(trailers) = trailers.take() {
                    Frame::trailers(trailers)
                } else {
                    self.inner = None;
                    return Poll::Ready(None);
                };
                // A body whose last frame this was ends with it, as h2's does with END_STREAM.
                if matches!(&self.inner, Some(Source::Arrived { trailers: None, .. })) {
                    self.inner = None;
                }
                self.size_hint = SizeHint::with_exact(0);
                return Poll::Ready(Some(Ok(frame)));
            }
        };
        if !stream.slot.wanted.swap(true, Ordering::AcqRel) {
            stream.waker.wake(); // the first demand: `next` starts reading
        }
        let polled = stream.slot.poll_take(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                // A slot is free again: let `next` read on.
                stream.waker.wake();
                let read = frame.data_ref().map_or(0, |bytes| bytes.len() as u64);
                let left = self.size_hint.upper().map(|u| u.saturating_sub(read));
                if let Some(left) = left {
                    self.size_hint = SizeHint::with_exact(left);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.inner = None;
                Poll::Ready(Some(Err(BodyError(err))))
            }
            Poll::Ready(None) => {
                self.inner = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.inner.is_none() {
            SizeHint::with_exact(0)
        } else {
            self.size_hint
        }
    }
}

/// The server side of the bridge: reads with `try_read` into the channel, as the service asks.
pub(crate) struct Upload {
    tx: Option<Sender>,
}

thread_local! {
    /// Where `pump` reads into before copying into the chunk it sends: one per serving thread,
    /// not one per request (a 64 KiB buffer zeroed per call was most of a small gRPC call's
    /// cost, every HTTP/2 request having a body).
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; UPLOAD_CHUNK_BYTES].into_boxed_slice());
}

/// A bridged request body: the service's half and the server's half.
pub(crate) fn channel(content_length: Option<u64>, waker: Arc<dyn Wake>) -> (RequestBody, Upload) {
    bridged(content_length, waker, Slot::default())
}

/// [`channel`] over `slot` (which may hold the body's first item already).
fn bridged(content_length: Option<u64>, waker: Arc<dyn Wake>, slot: Slot) -> (RequestBody, Upload) {
    let slot = Arc::new(slot);
    let body = RequestBody {
        inner: Some(Source::Bridged(Stream {
            slot: Arc::clone(&slot),
            waker,
        })),
        size_hint: content_length.map_or_else(SizeHint::new, SizeHint::with_exact),
    };
    let upload = Upload {
        tx: Some(Sender(slot)),
    };
    (body, upload)
}

/// The body of a request `call` starts: over HTTP/2 without `Expect`, what the server holds of
/// it already is read now (the whole body, usually: it came with the head), else bridged as
/// [`channel`]. `None` for the server's half: the body is read whole, or it failed.
pub(crate) fn for_request(
    req: &mut Request<'_>,
    (head, expect): (&http::Request<()>, bool),
    content_length: Option<u64>,
    waker: Arc<dyn Wake>,
) -> (RequestBody, Option<Upload>) {
    if head.version() != http::Version::HTTP_2 || expect {
        let (body, upload) = channel(content_length, waker);
        return (body, Some(upload));
    }
    with_read_buf(|buf| arrived(req, buf, content_length, waker))
}

/// Reads what `source` holds of the body now (at most `buf`'s length): the whole body if its
/// end is there, else a bridge whose slot holds what was read (or the failure).
fn arrived(
    source: &mut impl TryReadSource,
    buf: &mut [u8],
    content_length: Option<u64>,
    waker: Arc<dyn Wake>,
) -> (RequestBody, Option<Upload>) {
    let mut filled = 0;
    let first = loop {
        if filled == buf.len() {
            break None; // as much as one pump reads: the rest goes through the bridge
        }
        match source.try_read(&mut buf[filled..]) {
            TryRead::Data(n) => filled += n,
            TryRead::Pending => break None,
            TryRead::End => {
                let data = Bytes::copy_from_slice(&buf[..filled]);
                let trailers = source.trailers();
                if data.is_empty() && trailers.is_none() {
                    return (RequestBody::empty(), None);
                }
                let body = RequestBody {
                    size_hint: SizeHint::with_exact(data.len() as u64),
                    inner: Some(Source::Arrived { data, trailers }),
                };
                return (body, None);
            }
            // The body is broken: the service hears of it first (what came before is useless).
            TryRead::Failed(err) => break Some(Err(err)),
        }
    };
    let failed = matches!(first, Some(Err(_)));
    let item = first
        .or_else(|| (filled > 0).then(|| Ok(Frame::data(Bytes::copy_from_slice(&buf[..filled])))));
    let slot = Slot {
        state: Mutex::new(SlotState {
            item,
            ..SlotState::default()
        }),
        wanted: AtomicBool::new(false),
    };
    let (body, upload) = bridged(content_length, waker, slot);
    // After a failure the server's half is dropped: the body ends behind it.
    (body, (!failed).then_some(upload))
}

/// Runs `read` over this thread's read buffer.
fn with_read_buf<R>(read: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => read(&mut buf),
        // Never nested on one thread; if it were, a buffer of its own is still correct.
        Err(_) => read(&mut vec![0; UPLOAD_CHUNK_BYTES]),
    })
}

impl Upload {
    /// Moves what the server has buffered into the channel while the service wants the body and
    /// the channel has room. Never waits: a [`TryRead::Pending`] makes the server call `next`
    /// again when bytes arrive, a full channel gets a wake from [`RequestBody`] when drained.
    /// True if it moved anything (a chunk, the trailers, the end or a failure): the service has
    /// something new to poll.
    pub(crate) fn pump(&mut self, source: &mut impl TryReadSource) -> bool {
        match &self.tx {
            Some(tx) if tx.0.wanted.load(Ordering::Acquire) => {}
            _ => return false,
        }
        with_read_buf(|buf| self.pump_through(source, buf))
    }

    fn pump_through(&mut self, source: &mut impl TryReadSource, buf: &mut [u8]) -> bool {
        let mut finished = false;
        let mut moved = false;
        while let Some(tx) = &self.tx {
            match tx.room() {
                Room::Free => {}
                Room::Full => break,
                Room::Closed => {
                    finished = true; // the service dropped its body: read no more
                    break;
                }
            }
            match source.try_read(buf) {
                TryRead::Data(n) => tx.send(Ok(Frame::data(Bytes::copy_from_slice(&buf[..n])))),
                TryRead::Pending => break,
                TryRead::End => {
                    if let Some(trailers) = source.trailers() {
                        tx.send(Ok(Frame::trailers(trailers)));
                    }
                    finished = true;
                    break;
                }
                TryRead::Failed(err) => {
                    tx.send(Err(err));
                    finished = true;
                    break;
                }
            }
            moved = true;
        }
        if finished {
            self.tx = None; // dropping the sender ends the body
        }
        moved || finished
    }

    /// Whether the whole body went to the service (or was given up).
    #[cfg(test)]
    pub(crate) fn is_finished(&self) -> bool {
        self.tx.is_none()
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
