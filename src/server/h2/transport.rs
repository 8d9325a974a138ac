//! A stream's transport: what the app's `read`, `try_read` and response path do on an HTTP/2
//! stream. The app's validated head comes from the response encoder as fields (`take_head`)
//! and becomes the HEADERS frame with no HTTP/1 bytes on the way; what the encoder writes after
//! it (the body's bytes as they are, HTTP/1.0 framing: never chunked) becomes DATA frames. An
//! error response the server makes in place of the app's comes as HTTP/1 bytes, parsed here.
//!
//! The frames themselves are read and written by the HTTP/2 thread; a serving thread only waits
//! on the stream's handles (`block_on`): for the next DATA frame when the app reads, for send
//! capacity (the client's WINDOW_UPDATE) when it writes. Each wait is bounded by `--io-timeout`
//! and stops the request's `--timeout` clock, as the HTTP/1.1 transport's waits do. Received
//! bytes are released to the client's window only once the app has read them: a client cannot
//! send more than the windows ahead of the app. A parked stream's `try_read` never waits: `h2`
//! wakes the stream when its next DATA frame comes (`park.rs`).
//!
//! On the HTTP/2 thread itself (a `WS_APP_NONBLOCKING` app's stream, `driver.rs`) nothing
//! waits, since this thread is the one that would read the frames waited for: past the tail's
//! limit `output_blocked` parks the stream and wakes it at once, so the rest of the response is
//! written from a serving thread, which waits for the window as above. A blocking `read` with
//! no DATA frame here fails.

use std::future::{poll_fn, Future};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};

use app_abi::raw::{WsPair, WS_ERR_CLIENT_GONE, WS_ERR_STATE, WS_ERR_TIMEOUT, WS_ERR_TOO_LARGE};
use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};

use super::fields;
use super::park::StreamWake;
use super::tail::{self, Tail};
use super::Queue;
use crate::app::call::Transport;
use crate::app::trailers::FieldList;
use crate::app::waker::{ThreadWake, Wake as AppWake};
use crate::http::encoder::FramedHead;
use crate::http::response::DateCache;
use crate::listen::Peer;
use crate::server::Shared;
use crate::static_files::FileBody;

/// Fields of an HTTP/1 response head that mean nothing in HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Response bytes a serving thread holds for a client whose window is shut, before it waits
/// for a WINDOW_UPDATE (the stream's receive window: what a stream may pin either way).
const TAIL_LIMIT: usize = 128 * 1024;

/// A stream's request body and response: what its transport works on, and what a parked
/// stream keeps between two stretches (`park.rs`).
pub(super) struct StreamState {
    body: RecvStream,
    /// Received and not yet read by the app (not yet released to the client's window).
    pending: Bytes,
    body_ended: bool,
    received: u64,
    max_body: u64,
    /// Until the head is sent.
    respond: Option<SendResponse<Bytes>>,
    /// Once the head is sent (and the body may follow).
    pub(super) send: Option<SendStream<Bytes>>,
    /// The encoder's output until its head is whole (an error response's head, which comes
    /// as bytes).
    head: Vec<u8>,
    /// The app's head, taken from the encoder as fields (`take_head`), until the first body
    /// bytes or the end go with it.
    ready_head: Option<http::Response<()>>,
    /// END_STREAM was sent.
    pub(super) ended: bool,
    /// What is left of `--body-timeout`.
    body_wait_left: Duration,
    /// The wake of a stream whose app blocks on its thread (`call::run`).
    wake: Option<Arc<ThreadWake>>,
    /// Where a stream that may park (an ABI 1.1 app's) is queued again when woken; `None` for
    /// one that runs to its end on its thread.
    parks_on: Option<Arc<Queue>>,
    /// Its wake (the app's wakers and `h2`'s), made when first needed: a stream answered in one
    /// go (a unary gRPC call) makes none.
    pub(super) park: Option<Arc<StreamWake>>,
    pub(super) peer: Peer,
    /// The request's trailing HEADERS as the app gets them (ABI 1.3), once the body ended.
    trailers_in: Option<FieldList>,
    /// The response's trailer fields (ABI 1.3): sent as a trailing HEADERS frame that ends the
    /// stream, in place of END_STREAM on the last DATA frame.
    trailers_out: Option<http::HeaderMap>,
    /// Body bytes written and waiting for the client's window (`send_body`).
    tail: BytesMut,
    /// The rest of a `--static` file, sent after `tail`.
    file: Option<FileBody>,
    /// The HTTP/2 thread's runtime, where a response's tail goes (`tail.rs`).
    runtime: tokio::runtime::Handle,
}

/// A stream's state as the app sees it through `read` and the response path, on the serving
/// thread running it.
pub(super) struct StreamTransport<'a> {
    pub(super) s: &'a mut StreamState,
    pub(super) shared: &'a Shared,
    pub(super) thread: usize,
    date: &'a mut DateCache,
    wall: SystemTime,
    /// Running on the HTTP/2 thread: never wait.
    inline: bool,
}

impl StreamState {
    pub(super) fn new(
        body: RecvStream,
        respond: SendResponse<Bytes>,
        config: &crate::server::Config,
        parks_on: Option<Arc<Queue>>,
        peer: Peer,
        runtime: tokio::runtime::Handle,
    ) -> StreamState {
        StreamState {
            body,
            pending: Bytes::new(),
            body_ended: false,
            received: 0,
            max_body: config.max_body,
            respond: Some(respond),
            send: None,
            head: Vec::new(),
            ready_head: None,
            ended: false,
            body_wait_left: config.body_timeout,
            wake: None,
            parks_on,
            park: None,
            peer,
            trailers_in: None,
            trailers_out: None,
            tail: BytesMut::new(),
            file: None,
            runtime,
        }
    }
}

impl StreamState {
    /// The stream may park (its app is an ABI 1.1 app's).
    pub(super) fn parks(&self) -> bool {
        self.parks_on.is_some()
    }

    /// The wake of a stream that may park, made now if it was not yet.
    pub(super) fn wake(&mut self) -> Option<&Arc<StreamWake>> {
        if self.park.is_none() {
            self.park = Some(StreamWake::new(self.parks_on.as_ref()?));
        }
        self.park.as_ref()
    }
}

impl<'a> StreamTransport<'a> {
    pub(super) fn new(
        s: &'a mut StreamState,
        shared: &'a Shared,
        thread: usize,
        date: &'a mut DateCache,
    ) -> Self {
        StreamTransport {
            s,
            shared,
            thread,
            date,
            wall: shared.coarse_wall(),
            inline: super::driver::on_http2_thread(),
        }
    }

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
        if self.s.ended {
            return Ok(());
        }
        if self.s.send.is_some() {
            return self.send_body(data, end);
        }
        if let Some(response) = self.s.ready_head.take() {
            return self.send_head(response, data, end);
        }
        if self.s.head.is_empty() {
            // Most responses: the head comes whole in one write, parsed where it is.
            if let Some((response, at)) = response_head(data)? {
                return self.send_head(response, &data[at..], end);
            }
        }
        self.s.head.extend_from_slice(data);
        let Some((response, at)) = response_head(&self.s.head)? else {
            if end {
                return Err(io::Error::other("the response ended inside its head"));
            }
            return Ok(());
        };
        let whole = std::mem::take(&mut self.s.head);
        self.send_head(response, &whole[at..], end)
    }

    /// The stream parks with the app's head taken but no body byte after it (an empty `write`,
    /// then a pending body): the HEADERS frame goes now, as it did when heads came as bytes,
    /// since the client may be waiting for it.
    pub(super) fn head_before_park(&mut self) {
        if let Some(response) = self.s.ready_head.take() {
            if let Err(e) = self.send_head(response, &[], false) {
                log::debug!("{}: HTTP/2 response head not sent: {e}", self.s.peer);
            }
        }
    }

    /// Sends the encoder's head, `response`, as the HEADERS frame, then `body`.
    fn send_head(
        &mut self,
        response: http::Response<()>,
        body: &[u8],
        end: bool,
    ) -> io::Result<()> {
        let Some(mut respond) = self.s.respond.take() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let end_now = end && body.is_empty() && self.s.trailers_out.is_none();
        let send = respond
            .send_response(response, end_now)
            .map_err(stream_error)?;
        if end_now {
            self.s.ended = true;
            return Ok(());
        }
        self.s.send = Some(send);
        self.send_body(body, end)
    }

    /// Sends body bytes: what the client's windows take now goes to `h2` at once, the rest
    /// waits in `tail`. The serving thread waits for a WINDOW_UPDATE (up to `--io-timeout` each)
    /// only while more than `TAIL_LIMIT` waits. `end`: the response is whole; what still waits
    /// then goes to the HTTP/2 thread (`tail.rs`), so a shut window holds no serving thread.
    fn send_body(&mut self, data: &[u8], end: bool) -> io::Result<()> {
        let last = end && self.s.file.is_none() && self.s.trailers_out.is_none();
        let Some(send) = self.s.send.as_mut() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let mut rest = data;
        // END_STREAM went out with the last byte.
        let mut ended = false;
        if self.s.tail.is_empty() && !rest.is_empty() {
            // Most responses: no copy into `tail` on the way.
            send.reserve_capacity(rest.len());
            let n = send.capacity().min(rest.len());
            if n > 0 {
                ended = last && n == rest.len();
                send.send_data(Bytes::copy_from_slice(&rest[..n]), ended)
                    .map_err(stream_error)?;
                rest = &rest[n..];
            }
        }
        self.s.tail.extend_from_slice(rest);
        ended |= tail::send_ready(send, &mut self.s.tail, last).map_err(stream_error)?;
        // The HTTP/2 thread never waits: past the limit, `output_blocked` moves the stream to a
        // serving thread before the app is asked for more.
        while !self.inline && self.s.tail.len() > TAIL_LIMIT {
            self.wait_for_window()?;
            let send = self.s.send.as_mut().expect("checked above");
            ended |= tail::send_ready(send, &mut self.s.tail, last).map_err(stream_error)?;
        }
        if ended {
            self.s.ended = true;
        }
        if !end || self.s.ended {
            return Ok(());
        }
        let mut send = self.s.send.take().expect("checked above");
        let trailers = self.s.trailers_out.take();
        self.s.ended = true;
        if self.s.tail.is_empty() && self.s.file.is_none() {
            return tail::end(&mut send, trailers).map_err(stream_error);
        }
        let rest = Tail {
            send,
            bytes: std::mem::take(&mut self.s.tail),
            file: self.s.file.take(),
            trailers,
            timeout: self.shared.config.io_timeout,
            peer: self.s.peer,
        };
        self.s.runtime.spawn(rest.send_rest());
        Ok(())
    }

    /// Waits up to `--io-timeout` for the client to open the stream's window.
    fn wait_for_window(&mut self) -> io::Result<()> {
        let timeout = self.shared.config.io_timeout;
        let (capacity, _) = self.waiting_for_client(|this| {
            let send = this.s.send.as_mut().expect("sending");
            block_on(poll_fn(|cx| send.poll_capacity(cx)), timeout)
        });
        match capacity {
            None => {
                if let Some(send) = self.s.send.as_mut() {
                    send.send_reset(Reason::CANCEL);
                }
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client's HTTP/2 window stayed closed for --io-timeout",
                ))
            }
            Some(None) => Err(io::ErrorKind::BrokenPipe.into()),
            Some(Some(Err(e))) => Err(stream_error(e)),
            Some(Some(Ok(_))) => Ok(()),
        }
    }

    /// Bytes written wait for the client's window: the serving thread should write no more
    /// it need not (`statics.rs` leaves the rest of its file to the HTTP/2 thread).
    pub(super) fn window_is_shut(&self) -> bool {
        !self.s.tail.is_empty()
    }

    /// The rest of a `--static` response is `file`, sent after what was written.
    pub(super) fn rest_from(&mut self, file: FileBody) {
        self.s.file = Some(file);
    }

    /// The exchange is over: sends what the encoder held and ends the stream, or resets it if
    /// the response did not go out whole. False if the stream was reset.
    pub(super) fn finish(&mut self, held: &[u8], complete: bool) -> bool {
        if complete {
            if let Err(e) = self.feed(held, true) {
                log::debug!("{}: HTTP/2 response not sent: {e}", self.s.peer);
            }
        }
        if self.s.ended {
            return true;
        }
        if let Some(send) = self.s.send.as_mut() {
            send.send_reset(Reason::INTERNAL_ERROR);
        } else if let Some(respond) = self.s.respond.as_mut() {
            respond.send_reset(Reason::INTERNAL_ERROR);
        }
        false
    }

    /// The client reset the stream.
    pub(super) fn client_left(&mut self) -> bool {
        let reset = match (&mut self.s.send, &mut self.s.respond) {
            (Some(send), _) => poll_once(|cx| send.poll_reset(cx)),
            (None, Some(respond)) => poll_once(|cx| respond.poll_reset(cx)),
            (None, None) => None,
        };
        matches!(reset, Some(Poll::Ready(Ok(_))))
    }

    /// Waits for the next DATA frame (`Ok(false)`: the body ended).
    fn receive(&mut self) -> Result<bool, i32> {
        if self.inline {
            return match poll_once(|cx| self.s.body.poll_data(cx)) {
                Some(Poll::Ready(got)) => self.take_data(got),
                _ => {
                    log::error!(
                        "{}: an app that declared it never blocks (WS_APP_NONBLOCKING) waited in `read` for an HTTP/2 body: it must use `try_read`",
                        self.s.peer
                    );
                    Err(WS_ERR_STATE)
                }
            };
        }
        if self.s.body_wait_left.is_zero() {
            return Err(WS_ERR_TIMEOUT);
        }
        let timeout = self.shared.config.io_timeout.min(self.s.body_wait_left);
        let (got, waited) = self
            .waiting_for_client(|this| block_on(poll_fn(|cx| this.s.body.poll_data(cx)), timeout));
        self.s.body_wait_left = self.s.body_wait_left.saturating_sub(waited);
        match got {
            None => {
                log::debug!("{}: HTTP/2 request body too slow", self.s.peer);
                Err(WS_ERR_TIMEOUT)
            }
            Some(got) => self.take_data(got),
        }
    }

    /// What `poll_data` gave: the next DATA frame's bytes (`Ok(true)`), the end (`Ok(false)`), or
    /// a failure.
    fn take_data(&mut self, got: Option<Result<Bytes, h2::Error>>) -> Result<bool, i32> {
        match got {
            None => {
                self.s.body_ended = true;
                // The trailing HEADERS (if any) came before the end `poll_data` reported, so
                // they wait in the stream now: no waiting here.
                let trailers = match poll_once(|cx| self.s.body.poll_trailers(cx)) {
                    Some(Poll::Ready(Ok(Some(trailers)))) => trailers,
                    _ => http::HeaderMap::new(),
                };
                let fields = trailers
                    .iter()
                    .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
                self.s.trailers_in = Some(FieldList::new(fields));
                Ok(false)
            }
            Some(Ok(data)) => {
                self.s.received += data.len() as u64;
                if self.s.received > self.s.max_body {
                    log::debug!("{}: HTTP/2 request body over --max-body", self.s.peer);
                    return Err(WS_ERR_TOO_LARGE);
                }
                self.s.pending = data;
                Ok(true)
            }
            Some(Err(e)) => {
                log::debug!("{}: HTTP/2 request body failed: {e}", self.s.peer);
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
            if !self.s.pending.is_empty() {
                let n = self.s.pending.len().min(out.len());
                out[..n].copy_from_slice(&self.s.pending[..n]);
                self.s.pending.advance(n);
                // Read by the app: the client may send that much more.
                let _ = self.s.body.flow_control().release_capacity(n);
                return Ok(n);
            }
            if self.s.body_ended || self.s.body.is_end_stream() {
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

    fn body_done(&mut self) -> bool {
        // As above: nothing of a stream's body decides whether its head may go out.
        true
    }

    fn body_buffered(&mut self) -> bool {
        true
    }

    fn date(&mut self) -> &[u8] {
        self.date.at(self.wall)
    }

    fn try_read_body(&mut self, out: &mut [u8], may_continue: bool) -> Result<Option<usize>, i32> {
        if !self.s.parks() {
            // An app run on its thread (`call::run`) may as well wait here.
            return self.read_body(out, may_continue).map(Some);
        }
        if out.is_empty() {
            return Ok(Some(0));
        }
        if self.s.pending.is_empty() && !self.s.body_ended && !self.s.body.is_end_stream() {
            // Mostly here already (a unary call's one DATA frame): a poll that needs no wake.
            let polled = match poll_once(|cx| self.s.body.poll_data(cx)) {
                Some(Poll::Ready(got)) => Poll::Ready(got),
                _ => {
                    // Not here yet: `h2` wakes the parked stream when a DATA frame (or the end)
                    // comes, through the waker of the latest poll.
                    let waker = Waker::from(Arc::clone(self.s.wake().expect("parks")));
                    self.s.body.poll_data(&mut Context::from_waker(&waker))
                }
            };
            match polled {
                Poll::Pending => return Ok(None),
                Poll::Ready(got) => {
                    self.take_data(got)?;
                }
            }
        }
        self.read_body(out, may_continue).map(Some)
    }

    fn output_blocked(&mut self) -> bool {
        if !self.inline || self.s.ended || self.s.tail.len() <= TAIL_LIMIT {
            return false;
        }
        // The client's window holds more than the limit back: the rest of the response goes
        // from a serving thread, which may wait for WINDOW_UPDATEs. The wake queues the stream
        // for one as soon as it parks.
        match self.s.wake() {
            Some(park) => {
                AppWake::wake(&**park);
                true
            }
            None => false,
        }
    }

    fn new_waker(&mut self) -> Option<Arc<dyn AppWake>> {
        if let Some(park) = self.s.wake() {
            return Some(Arc::clone(park) as Arc<dyn AppWake>);
        }
        let wake = self.s.wake.get_or_insert_with(Arc::default);
        Some(Arc::clone(wake) as Arc<dyn AppWake>)
    }

    fn wait_for_wake(&mut self, limit: Duration) -> bool {
        self.s.wake.as_ref().is_some_and(|wake| wake.wait(limit))
    }

    fn request_trailers(&mut self) -> Option<&[WsPair]> {
        if self.s.trailers_in.is_none() && self.s.body.is_end_stream() {
            // The body ended with its last DATA frame: no trailers came.
            self.s.trailers_in = Some(FieldList::default());
        }
        self.s.trailers_in.as_ref().map(FieldList::pairs)
    }

    fn take_head(&mut self, head: FramedHead<'_>) -> bool {
        let date = match head.add_date {
            true => Some(self.date.at(self.wall)),
            false => None,
        };
        match fields::framed_response(head, date) {
            Ok(response) => {
                self.s.ready_head = Some(response);
                true
            }
            Err(e) => {
                log::debug!("{}: {e}", self.s.peer);
                false
            }
        }
    }

    fn send_trailers(&mut self, lines: &[u8]) -> bool {
        self.s.trailers_out = Some(fields::trailers(lines));
        true
    }
}

/// The encoder's HTTP/1 head at the start of `bytes` as an HTTP/2 response head, and where the
/// head ends; `None` while it is not whole. The field values share one copy of the head (one
/// allocation, not one per field).
fn response_head(bytes: &[u8]) -> io::Result<Option<(http::Response<()>, usize)>> {
    let invalid = |e: &dyn std::fmt::Display| io::Error::other(format!("response head: {e}"));
    // Uninitialised: zeroing room for 128 fields cost more than parsing a short head.
    let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
    let mut parsed = httparse::Response::new(&mut []);
    let at = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        bytes,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(at)) => at,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&e)),
    };
    let head = Bytes::copy_from_slice(&bytes[..at]);
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
        // The value's place in `bytes` is its place in `head`.
        let from = field.value.as_ptr() as usize - bytes.as_ptr() as usize;
        let value =
            http::HeaderValue::from_maybe_shared(head.slice(from..from + field.value.len()))
                .map_err(|e| invalid(&e))?;
        map.append(name, value);
    }
    Ok(Some((response, at)))
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

/// Polls once without waiting (`None` if the poll did not apply). The waker does nothing (and
/// allocates nothing: this runs a few times per stream).
pub(super) fn poll_once<R>(poll: impl FnOnce(&mut Context<'_>) -> Poll<R>) -> Option<Poll<R>> {
    Some(poll(&mut Context::from_waker(Waker::noop())))
}
