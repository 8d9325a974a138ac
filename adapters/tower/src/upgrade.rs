//! axum's `WebSocketUpgrade` (and any service that takes hyper's `OnUpgrade` from its request)
//! through the server's ABI 1.2 `upgrade`, with no fork of axum or hyper.
//!
//! hyper's `OnUpgrade` has no public constructor: only hyper's own server connection makes one,
//! for a request whose head asks for an upgrade, and fulfils it (with the connection's IO) once
//! the response was a 101. So for each upgrade request the adapter runs a hyper http1 server
//! connection over a [`ReplayIo`] that serves hyper a synthetic upgrade head, only to obtain that
//! `OnUpgrade` ([`probe`]):
//!
//! - the probe polls the connection once, inline: hyper parses the synthetic head and calls the
//!   probe's own service, which keeps the `OnUpgrade` and waits for a decision. The adapter puts
//!   the `OnUpgrade` into the *real* request (built from the environ, as for every request), and
//!   the connection is spawned on the app's runtime;
//! - the real service's future is polled inline as for every request (`exchange.rs`); its response
//!   goes to the server: a 101 through `BodyIo::upgrade` (the server writes the 101 and hands over
//!   the connection as a byte stream, which fills the [`StreamSlot`]), anything else through
//!   `start_response` as today;
//! - the decision reaches the probe's service, which answers hyper with a 101 (or not); hyper
//!   writes its own 101 head into the `ReplayIo`, which discards it, and then fulfils the
//!   `OnUpgrade` with hyper's `Upgraded` over the `ReplayIo` — whose reads and writes are from then
//!   on the server's `stream_read`/`stream_write`. The service's task (axum's `on_upgrade`) runs
//!   its WebSocket over that, on the runtime's threads.
//!
//! The byte stream never blocks: a read or write that answers "would block" leaves the task's
//! waker in the slot, and the server's readiness event (`on_event`, on a serving thread) wakes it.
//! The waker is stored *before* the stream is asked, so an event that comes between the answer and
//! the store is never lost (at worst the task is woken once for nothing).

use app_abi::raw::WS_EV_READABLE;
use app_abi::{Events, StreamIo, Upgraded};
use http::header::{self, HeaderMap};
use http::Method;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// What the probe's hyper connection parses: the smallest head for which hyper makes an
/// `OnUpgrade` (an HTTP/1.1 request with an `Upgrade` field, named in `Connection`).
const SYNTHETIC_HEAD: &[u8] =
    b"GET / HTTP/1.1\r\nhost: upgrade\r\nconnection: upgrade\r\nupgrade: upgrade\r\n\r\n";

/// One non-blocking step of the server's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    /// This many bytes were read or written (never 0).
    Done(usize),
    /// A read found the end: the client closed its side.
    End,
    /// Nothing now; a readiness event follows ([`StreamSlot::wake`]).
    Pending,
    /// The connection is gone.
    Failed,
}

/// The server's side of an upgraded connection, as [`ReplayIo`] uses it: the ABI 1.2 stream
/// (`app_abi::Upgraded`), or a pipe in tests. Answered from any thread, never waiting.
pub(crate) trait RawStream: Send + Sync + 'static {
    fn read(&self, buf: &mut [u8]) -> Io;
    fn write(&self, buf: &[u8]) -> Io;
    /// Ends the connection (what was written is still sent); later calls fail.
    fn close(&self);
}

/// Where the byte stream goes once the server hands it over, shared by the [`ReplayIo`] (in hyper,
/// then in axum's task) and the exchange that asks the server for the upgrade.
pub(crate) struct StreamSlot {
    state: Mutex<SlotState>,
}

struct SlotState {
    stream: Stream,
    /// The last task that found nothing to read (the gate, or the stream).
    reader: Option<Waker>,
    /// The last task whose write was not taken.
    writer: Option<Waker>,
}

enum Stream {
    /// The response is not known yet.
    Waiting,
    Open(Arc<dyn RawStream>),
    /// The response was not a 101, or the stream was closed: reads end, writes fail.
    Gone,
}

impl StreamSlot {
    pub(crate) fn new() -> Arc<StreamSlot> {
        Arc::new(StreamSlot {
            state: Mutex::new(SlotState {
                stream: Stream::Waiting,
                reader: None,
                writer: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server took the connection: reads and writes go to `stream` from now on. A slot whose
    /// IO is already gone (hyper's connection ended) closes `stream` at once.
    pub(crate) fn fill(&self, stream: Arc<dyn RawStream>) {
        let mut state = self.lock();
        if matches!(state.stream, Stream::Waiting) {
            state.stream = Stream::Open(stream);
            wake_both(state);
        } else {
            drop(state);
            stream.close();
        }
    }

    /// No upgrade (the response was not a 101, or the request ended first): reads end.
    pub(crate) fn refuse(&self) {
        let mut state = self.lock();
        if matches!(state.stream, Stream::Waiting) {
            state.stream = Stream::Gone;
            wake_both(state);
        }
    }

    /// The server's readiness event: wakes the task that waits for it (both on the end, which
    /// reads and writes then report).
    pub(crate) fn wake(&self, events: Events) {
        let mut state = self.lock();
        let end = events.closed();
        let reader = (events.readable() || end)
            .then(|| state.reader.take())
            .flatten();
        let writer = (events.writable() || end)
            .then(|| state.writer.take())
            .flatten();
        drop(state);
        reader.into_iter().chain(writer).for_each(Waker::wake);
    }

    /// Closes the stream (the last [`ReplayIo`] is gone).
    fn close(&self) {
        let stream = std::mem::replace(&mut self.lock().stream, Stream::Gone);
        if let Stream::Open(stream) = stream {
            stream.close();
        }
    }

    /// The stream if open, after leaving `waker` where the next event for `dir` finds it.
    fn park(&self, dir: Dir, waker: &Waker) -> Parked {
        let mut state = self.lock();
        let place = match dir {
            Dir::Read => &mut state.reader,
            Dir::Write => &mut state.writer,
        };
        match place {
            Some(w) if w.will_wake(waker) => {}
            _ => *place = Some(waker.clone()),
        }
        match &state.stream {
            Stream::Waiting => Parked::Waiting,
            Stream::Open(s) => Parked::Open(s.clone()),
            Stream::Gone => Parked::Gone,
        }
    }
}

fn wake_both(mut state: MutexGuard<'_, SlotState>) {
    let (r, w) = (state.reader.take(), state.writer.take());
    drop(state);
    r.into_iter().chain(w).for_each(Waker::wake);
}

#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

enum Parked {
    Waiting,
    Open(Arc<dyn RawStream>),
    Gone,
}

/// The IO under the probe's hyper connection, and then under hyper's `Upgraded`.
///
/// Reads give the synthetic head, then wait (never an end of file, which hyper would call an
/// incomplete message) until both the server handed over the stream and hyper wrote its 101
/// head, then come from the stream. Writes are discarded up to and including the end of hyper's
/// head (`\r\n\r\n`: the server wrote the real 101), then go to the stream. Dropping it closes the
/// stream.
pub(crate) struct ReplayIo {
    slot: Arc<StreamSlot>,
    /// How much of [`SYNTHETIC_HEAD`] hyper has read.
    head_read: usize,
    /// How many bytes of `\r\n\r\n` the discarded output ends with; 4 once hyper's head is out.
    head_end: u8,
}

impl ReplayIo {
    pub(crate) fn new(slot: Arc<StreamSlot>) -> ReplayIo {
        ReplayIo {
            slot,
            head_read: 0,
            head_end: 0,
        }
    }

    fn head_written(&self) -> bool {
        self.head_end == 4
    }

    /// Discards hyper's head; how many bytes of `buf` belonged to it.
    fn skip_head(&mut self, buf: &[u8]) -> usize {
        const END: &[u8; 4] = b"\r\n\r\n";
        for (i, &b) in buf.iter().enumerate() {
            self.head_end = if b == END[usize::from(self.head_end)] {
                self.head_end + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.head_written() {
                return i + 1;
            }
        }
        buf.len()
    }

    fn read_some(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.head_read < SYNTHETIC_HEAD.len() {
            let rest = &SYNTHETIC_HEAD[self.head_read..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.head_read += n;
            return Poll::Ready(Ok(n));
        }
        let stream = match self.slot.park(Dir::Read, cx.waker()) {
            Parked::Gone if !self.head_written() => return Poll::Pending,
            Parked::Gone => return Poll::Ready(Ok(0)),
            Parked::Waiting => return Poll::Pending,
            Parked::Open(_) if !self.head_written() => return Poll::Pending,
            Parked::Open(stream) => stream,
        };
        match stream.read(buf) {
            Io::Done(n) => Poll::Ready(Ok(n)),
            Io::End => Poll::Ready(Ok(0)),
            Io::Pending => Poll::Pending,
            Io::Failed => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
        }
    }

    fn write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if !self.head_written() {
            let n = self.skip_head(buf);
            if self.head_written() {
                // The gate may open now: the reader parked on it looks again.
                self.slot.wake(Events::from_bits(WS_EV_READABLE));
            }
            return Poll::Ready(Ok(n));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let stream = match self.slot.park(Dir::Write, cx.waker()) {
            Parked::Waiting => return Poll::Pending,
            Parked::Gone => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Parked::Open(stream) => stream,
        };
        match stream.write(buf) {
            Io::Done(n) => Poll::Ready(Ok(n)),
            Io::Pending => Poll::Pending,
            Io::End | Io::Failed => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
}

impl Drop for ReplayIo {
    fn drop(&mut self) {
        self.slot.close();
    }
}

impl hyper::rt::Read for ReplayIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: the bytes handed to `read_some` are only written (never read) before `advance`
        // says how many were filled; hyper's cursor contract allows exactly that.
        let unfilled = unsafe { buf.as_mut() };
        // SAFETY: `MaybeUninit<u8>` and `u8` have the same layout; the slice is only written to.
        let bytes = unsafe { &mut *(unfilled as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        match this.read_some(cx, bytes) {
            Poll::Ready(Ok(n)) => {
                // SAFETY: `read_some` initialised the first `n` bytes of the unfilled part.
                unsafe { buf.advance(n) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for ReplayIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_some(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The stream closes when the last owner drops it (`Drop`), after the close handshake the
        // WebSocket layer already wrote.
        Poll::Ready(Ok(()))
    }
}

/// Whether the adapter serves `req` through the probe: an HTTP/1.1 request (not `CONNECT`) with
/// an `Upgrade` field named in `Connection`, without a body.
pub(crate) fn wants_upgrade(req: &http::Request<()>, has_body: bool) -> bool {
    req.version() == http::Version::HTTP_11
        && req.method() != Method::CONNECT
        && !has_body
        && req.headers().contains_key(header::UPGRADE)
        && connection_has_upgrade(req.headers())
}

fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// An upgrade request's link to its hyper connection: the `OnUpgrade` for the real request, the
/// slot the stream goes into, and the decision hyper waits for.
pub(crate) struct Probe {
    pub(crate) slot: Arc<StreamSlot>,
    decide: Option<oneshot::Sender<bool>>,
}

impl Probe {
    /// The response was a 101 and the server took the connection (`stream`): hyper answers 101
    /// and fulfils the `OnUpgrade`.
    pub(crate) fn switch(&mut self, stream: Arc<dyn RawStream>) {
        self.slot.fill(stream);
        if let Some(decide) = self.decide.take() {
            let _ = decide.send(true);
        }
    }

    /// No upgrade: hyper's connection ends, and the `OnUpgrade` with it (an error for whoever
    /// awaits it).
    pub(crate) fn refuse(&mut self) {
        self.slot.refuse();
        if let Some(decide) = self.decide.take() {
            let _ = decide.send(false);
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // The request ended before its response (client gone, timeout): nothing is upgraded.
        self.refuse();
    }
}

/// Why no probe could be made.
#[derive(Debug)]
pub(crate) struct ProbeError(&'static str);

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Starts the hyper connection for one upgrade request and puts its `OnUpgrade` into `req`'s
/// extensions. The connection runs on `handle`'s runtime until the decision; it needs no timer
/// (`header_read_timeout(None)`) and no executor (HTTP/1).
pub(crate) fn probe<T>(req: &mut http::Request<T>, handle: &Handle) -> Result<Probe, ProbeError> {
    type Found = Arc<Mutex<Option<hyper::upgrade::OnUpgrade>>>;
    let found: Found = Arc::default();
    let (decide, decided) = oneshot::channel::<bool>();
    let decided = Mutex::new(Some(decided));
    let keep = found.clone();
    let service = hyper::service::service_fn(move |mut head: http::Request<_>| {
        *keep.lock().unwrap_or_else(|e| e.into_inner()) = Some(hyper::upgrade::on(&mut head));
        let decided = decided.lock().unwrap_or_else(|e| e.into_inner()).take();
        async move {
            let switch = match decided {
                Some(decided) => decided.await.unwrap_or(false),
                None => false,
            };
            let status = if switch {
                http::StatusCode::SWITCHING_PROTOCOLS
            } else {
                // Never seen by anyone: the server answered the real response already.
                http::StatusCode::NO_CONTENT
            };
            let mut response = http::Response::new(String::new());
            *response.status_mut() = status;
            if switch {
                response
                    .headers_mut()
                    .insert(header::UPGRADE, http::HeaderValue::from_static("upgrade"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let slot = StreamSlot::new();
    let mut conn = Box::pin(
        hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .header_read_timeout(None)
            .serve_connection(ReplayIo::new(slot.clone()), service)
            .with_upgrades(),
    );
    // One poll, here: hyper reads the synthetic head and calls the service above at once, so the
    // `OnUpgrade` is known before the real service runs. The runtime polls it from then on (with
    // its own waker, which the next poll registers).
    let mut cx = Context::from_waker(Waker::noop());
    if conn.as_mut().poll(&mut cx).is_ready() {
        return Err(ProbeError(
            "hyper's connection ended on the synthetic upgrade head",
        ));
    }
    let on_upgrade = found
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or(ProbeError("hyper made no OnUpgrade for the synthetic head"))?;
    req.extensions_mut().insert(on_upgrade);
    handle.spawn(async move {
        // Ends after the 101 (the OnUpgrade is fulfilled) or the refusal; errors are the
        // refusal's (the IO ended under a pending response) and mean nothing here.
        let _ = conn.await;
    });
    Ok(Probe {
        slot,
        decide: Some(decide),
    })
}

#[cfg(test)]
#[path = "upgrade_tests.rs"]
mod tests;

/// The server's `upgrade` (ABI 1.2) for `parts` (a 101): its readiness events go to `slot`.
pub(crate) fn upgrade_through(
    io: &mut app_abi::BodyIo<'_>,
    parts: &http::response::Parts,
    slot: &Arc<StreamSlot>,
) -> Result<Arc<dyn RawStream>, String> {
    let events = slot.clone();
    let stream = io
        .upgrade(
            crate::head_fields::upgrade_fields(parts),
            move |_: &Upgraded, ready: Events| {
                give_way();
                events.wake(ready)
            },
        )
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(AbiStream(stream)))
}

/// Marks the calling serving thread `SCHED_BATCH`, once per thread, the first time it passes an
/// upgraded connection's readiness on to the runtime.
///
/// Why: the stream's bytes are read and written by the app's task on a runtime thread, and each
/// readiness edge wakes a serving thread only to wake that task. On a busy CPU the woken serving
/// thread took the CPU from the runtime thread at once (wakeup preemption), for a few hundred
/// nanoseconds of work, then slept again: about 0.3 context switches per echoed message, where
/// `axum::serve` has 0.02. A `SCHED_BATCH` thread keeps its fair share of the CPU but, when woken,
/// waits until the running thread blocks or its slice ends, so it then passes on every edge that
/// came meanwhile in one go. No privilege is needed to leave `SCHED_OTHER` for `SCHED_BATCH`; an
/// error leaves the thread as it was.
///
/// The one `SCHED_BATCH` call of this crate. The server's own (`src/sys/process.rs`) is not
/// shared: an app links only against `app-abi`, never against the server that loads it.
fn give_way() {
    thread_local! {
        static MARKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if MARKED.with(|m| m.replace(true)) {
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param, only read.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
}

/// The ABI 1.2 byte stream as [`ReplayIo`] uses it.
struct AbiStream(Upgraded);

impl RawStream for AbiStream {
    fn read(&self, buf: &mut [u8]) -> Io {
        match self.0.read(buf) {
            StreamIo::Done(n) => Io::Done(n),
            StreamIo::End => Io::End,
            StreamIo::Pending => Io::Pending,
            StreamIo::Failed(_) => Io::Failed,
        }
    }

    fn write(&self, buf: &[u8]) -> Io {
        match self.0.write(buf) {
            StreamIo::Done(n) => Io::Done(n),
            StreamIo::End => Io::End,
            StreamIo::Pending => Io::Pending,
            StreamIo::Failed(_) => Io::Failed,
        }
    }

    fn close(&self) {
        self.0.close();
    }
}

/// Whether the server offers upgrades (ABI 1.2); on an older one, says once what that means.
pub(crate) fn offered(ctx: &app_abi::InitContext<'_>) -> bool {
    if ctx.host_is_1_2() {
        return true;
    }
    ctx.warn(
        "the server speaks webserver ABI 1.1: upgrade requests (axum's WebSocketUpgrade routes) \
         are answered 426 Upgrade Required; upgrade webserver to serve WebSockets",
    );
    false
}
