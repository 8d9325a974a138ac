//! One request's life: the deferred body the server pulls ([`Exchange`]), which polls the
//! service's future and then its response body *inline*, on the serving thread that calls `next`,
//! inside the app runtime's context (`Handle::enter`, so timers, I/O and `tokio::spawn` work).
//!
//! Its first step runs in `call` (`answer.rs`), the later ones in the server's `next`s. A
//! response that is ready at once (a hello route) is answered within that first step: no task
//! is spawned, no thread is woken, nothing crosses to the runtime's threads and back —
//! which is how hyper serves a tower service too (on the thread that runs the connection). Only a
//! future that is really pending parks the request: the server calls `next` again when the
//! future's waker is woken (a timer fired, a reply came, body bytes arrived), and `next` polls it
//! again, on whichever serving thread resumes the request. So the runtime's own threads only drive
//! timers and I/O, and run what handlers spawn themselves.
//!
//! The waker handed to the future is lazy ([`LazyWake`]): the server's waker (an ABI `waker_new`)
//! is made only when a poll pends, so a request answered at once costs none; a wake that comes
//! before it exists is remembered and answered by polling again. A request without a body does
//! not even make the [`LazyWake`] before it needs one: its first poll gets a waker that does
//! nothing, and a poll that pends is followed by one with the [`LazyWake`] (a future registers
//! the waker of its latest poll), which then parks the request.
//!
//! Ending: a service error, a body error or a panic ends the response with [`Next::Error`] (the
//! server answers 500 if nothing was sent, else cuts the connection) and a log line. Dropping the
//! [`Exchange`] (the server's `close`: end, disconnect, timeout, drain) drops the service's future
//! or body — that is how the app's work is cancelled.

use crate::body::{TryReadSource, Upload, Wake};
use crate::context::AppRuntime;
use crate::file::SendFile;
use crate::head_fields::{content_length, head_fields, LengthDigits};
use crate::upgrade::{Probe, RawStream, StreamSlot};
use app_abi::{BodyIo, DeferredBody, FileSend, Logger, Next};
use bytes::{Buf, Bytes};
use http::header;
use http::StatusCode;
use http_body::Body;
use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tower_service::Service;

/// Where the response stands.
// The `Ready` stage is the large one, and it is not boxed on purpose: boxing the request would
// cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Stage<S: Service<http::Request<crate::RequestBody>>, B> {
    /// Waiting for the service to be ready for the request.
    Ready(S, Option<http::Request<crate::RequestBody>>),
    /// The service's future runs.
    Calling(Pin<Box<S::Future>>),
    /// The head went out; the body's frames follow.
    Streaming(Pin<Box<B>>),
    /// The head went out; a chunk polled ahead ([`Exchange::look_ahead`]) is the next step's,
    /// then the body's other frames follow (none if it ended with that chunk).
    Ahead(Option<Pin<Box<B>>>, Bytes),
    /// The body failed after the chunk before (polled ahead): the next step says so.
    Failed,
    /// The head went out; the body is a file the server sends ([`crate::file_response`]).
    File(Box<FileSend>),
    /// The body ended or failed: nothing more is polled.
    Finished,
}

/// What the server offers one `next` step: the head's `start_response`, the request body's
/// `try_read` (for the [`Upload`] pump) and a waker (`BodyIo` in the server, a double in tests).
pub(crate) trait StepHost: TryReadSource {
    /// Sends the response head; an error says why the server refused it.
    fn start(&mut self, parts: &http::response::Parts, length: Option<u64>) -> Result<(), String>;
    /// The server's waker for this request: wakes make it call `next` again.
    fn waker(&mut self) -> Option<Box<dyn Wake>>;
    /// Answers 101 with the head's fields and takes the connection as a byte stream (ABI 1.2
    /// `upgrade`), whose readiness events go to `slot`.
    fn upgrade(
        &mut self,
        parts: &http::response::Parts,
        slot: &Arc<StreamSlot>,
    ) -> Result<Arc<dyn RawStream>, String>;

    /// One step of a file body: the server takes the file, or a chunk of it read here.
    fn file_step(&mut self, _file: &mut FileSend) -> FileStep {
        FileStep::Error
    }

    /// The response's trailer fields, sent after the body (ABI 1.3 `set_trailers`).
    fn send_trailers(&mut self, _trailers: &http::HeaderMap) -> Result<(), String> {
        Err("this host takes no trailers".to_owned())
    }
}

/// What one step of a file body gave.
pub(crate) enum FileStep {
    Chunk(Bytes),
    End,
    Error,
}

impl StepHost for BodyIo<'_> {
    fn start(&mut self, parts: &http::response::Parts, length: Option<u64>) -> Result<(), String> {
        let mut digits = LengthDigits::default();
        let fields = head_fields(parts, content_length(parts, length, &mut digits));
        self.start_response(parts.status.as_u16(), "", fields)
            .map_err(|e| e.to_string())
    }

    fn waker(&mut self) -> Option<Box<dyn Wake>> {
        BodyIo::waker(self).map(|w| Box::new(w) as Box<dyn Wake>)
    }

    fn file_step(&mut self, file: &mut FileSend) -> FileStep {
        match file.next(self) {
            Next::Chunk(chunk) => FileStep::Chunk(Bytes::copy_from_slice(chunk)),
            Next::End | Next::Pending => FileStep::End,
            Next::Error => FileStep::Error,
        }
    }

    fn upgrade(
        &mut self,
        parts: &http::response::Parts,
        slot: &Arc<StreamSlot>,
    ) -> Result<Arc<dyn RawStream>, String> {
        crate::upgrade::upgrade_through(self, parts, slot)
    }

    fn send_trailers(&mut self, trailers: &http::HeaderMap) -> Result<(), String> {
        let fields = trailers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
        self.set_trailers(fields).map_err(|e| e.to_string())
    }
}

/// The future's waker: the server's once a poll pended, else a note that a wake came.
#[derive(Default)]
pub(crate) struct LazyWake {
    state: Mutex<WakeState>,
}

#[derive(Default)]
struct WakeState {
    server: Option<Box<dyn Wake>>,
    /// Woken while there was no server waker yet.
    woken: bool,
}

impl LazyWake {
    fn lock(&self) -> MutexGuard<'_, WakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a poll pended: make sure a wake reaches the server from now on (its waker is made
    /// now, once).
    fn arm(&self, host: &mut impl StepHost) -> Armed {
        let mut state = self.lock();
        if state.server.is_none() {
            state.server = host.waker();
            if state.server.is_none() {
                return Armed::NoWaker;
            }
        }
        if std::mem::take(&mut state.woken) {
            Armed::WokenMeanwhile
        } else {
            Armed::Parked
        }
    }
}

/// What [`LazyWake::arm`] found.
#[derive(PartialEq, Eq)]
enum Armed {
    /// Wakes go to the server: the request may park.
    Parked,
    /// A wake came before the server's waker existed: poll again.
    WokenMeanwhile,
    /// The server gave no waker: the request could never resume.
    NoWaker,
}

impl Wake for LazyWake {
    fn wake(&self) {
        let mut state = self.lock();
        match &state.server {
            Some(server) => server.wake(),
            None => state.woken = true,
        }
    }
}

impl std::task::Wake for LazyWake {
    fn wake(self: Arc<Self>) {
        Wake::wake(&*self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Wake::wake(&**self);
    }
}

/// The deferred body the server pulls for one request.
pub(crate) struct Exchange<S: Service<http::Request<crate::RequestBody>>, B> {
    stage: Stage<S, B>,
    upload: Option<Upload>,
    /// Made up front only when the request body's channel needs it, else once a poll pends.
    wake: Option<Arc<LazyWake>>,
    /// `wake` as a task waker (made once: it is what the future's wakers are cloned from), or
    /// one that does nothing while there is no `wake`.
    task_waker: std::task::Waker,
    runtime: AppRuntime,
    /// The chunk last handed to the server, kept until the next `next`.
    current: Bytes,
    /// `current` was produced in `call` and not handed over there: the next step gives it.
    replay: bool,
    /// An upgrade request's hyper connection (`upgrade.rs`): a 101 response hands it the stream.
    probe: Option<Probe>,
    /// The response body's exact length as its head went out (`size_hint`), if it had one.
    exact_length: Option<u64>,
    /// The request came over HTTP/2, where a `write` is not a system call of its own
    /// (`answer.rs`).
    over_http2: bool,
    /// The body's trailers went to the server: its end is their HEADERS frame over HTTP/2.
    sent_trailers: bool,
    logger: Logger,
}

/// One poll's result, before it is turned into a [`Next`].
enum Polled {
    Chunk,
    End,
    Pending,
    Error,
}

impl<S, B> Exchange<S, B>
where
    S: Service<http::Request<crate::RequestBody>, Response = http::Response<B>>,
    S::Error: Into<crate::BoxError>,
    B: Body,
    B::Error: Into<crate::BoxError>,
{
    /// A request for `svc`; `upload` is the server's half of its body, whose service half wakes
    /// `wake` (`None` without a body: made once a poll pends); `probe` for an upgrade request
    /// (it carries the probe's `OnUpgrade`: a 101 response upgrades the connection). Built in
    /// place, as it is then moved whole (it holds the request).
    pub(crate) fn new(
        svc: S,
        req: http::Request<crate::RequestBody>,
        upload: Option<Upload>,
        wake: Option<Arc<LazyWake>>,
        probe: Option<Probe>,
        runtime: AppRuntime,
        logger: Logger,
    ) -> Self {
        let over_http2 = req.version() == http::Version::HTTP_2;
        Exchange {
            stage: Stage::Ready(svc, Some(req)),
            upload,
            task_waker: wake
                .clone()
                .map_or_else(|| std::task::Waker::noop().clone(), std::task::Waker::from),
            wake,
            runtime,
            current: Bytes::new(),
            replay: false,
            probe,
            exact_length: None,
            over_http2,
            sent_trailers: false,
            logger,
        }
    }

    /// One step: pump the request body, poll, and answer what the poll produced.
    pub(crate) fn step(&mut self, host: &mut impl StepHost) -> Next<'_> {
        if std::mem::take(&mut self.replay) {
            return Next::Chunk(&self.current);
        }
        if matches!(self.stage, Stage::Finished) {
            // The body was seen to end with its last chunk (the usual one-chunk body): the
            // server's `next` after that chunk costs no runtime context and no poll.
            return Next::End;
        }
        let _runtime = self.runtime.enter();
        self.pump(host);
        let polled = loop {
            let polled = self.poll_caught(host);
            if !matches!(polled, Polled::Pending) {
                break polled;
            }
            // The poll asked for the body, or took what the channel held: what the server has
            // buffered already (a small gRPC call's whole body) goes in now and the service is
            // polled again, instead of parking for a wake this thread would answer itself. Each
            // turn moves the body on, so this ends with it.
            if self.pump(host) {
                continue;
            }
            let Some(wake) = &self.wake else {
                // Polled with a waker that does nothing: again with one that reaches the server.
                let wake = Arc::new(LazyWake::default());
                self.task_waker = std::task::Waker::from(wake.clone());
                self.wake = Some(wake);
                continue;
            };
            match wake.arm(host) {
                Armed::Parked => break Polled::Pending,
                // At most once per request: from now on wakes reach the server, which calls
                // `next` again behind the requests already waiting (a future that keeps waking
                // itself cannot hold the thread).
                Armed::WokenMeanwhile => {
                    self.pump(host);
                }
                Armed::NoWaker => {
                    self.logger
                        .error("the server gave no waker for a pending request");
                    break Polled::Error;
                }
            }
        };
        match polled {
            Polled::Chunk => Next::Chunk(&self.current),
            Polled::End => Next::End,
            Polled::Error => Next::Error,
            Polled::Pending => Next::Pending,
        }
    }

    /// After the body's first chunk (in `call`): its next frame, if it is ready now, as hyper polls
    /// a body's ready frames before it writes. Trailers that end the body (gRPC's status after a
    /// unary reply) go to the server at once, so the whole response is answered in `call`; a
    /// data frame, or a failure, is given by the step after the first chunk's.
    pub(crate) fn look_ahead(&mut self, host: &mut impl StepHost) {
        if !matches!(self.stage, Stage::Streaming(_)) {
            return;
        }
        let first = std::mem::take(&mut self.current);
        // A step as the server's next `next` would take: a frame that is not ready makes the
        // server's waker now, as that `next` would.
        let polled = match self.step(host) {
            Next::Chunk(_) => Polled::Chunk,
            Next::Error => Polled::Error,
            Next::End => Polled::End,
            Next::Pending => Polled::Pending,
        };
        let next = std::mem::replace(&mut self.current, first);
        match polled {
            Polled::Chunk => {
                let body = match std::mem::replace(&mut self.stage, Stage::Finished) {
                    Stage::Streaming(body) => Some(body),
                    _ => None,
                };
                self.stage = Stage::Ahead(body, next);
            }
            Polled::Error => self.stage = Stage::Failed,
            Polled::End | Polled::Pending => {}
        }
    }

    /// Moves the request body's buffered bytes to the service; true if any moved.
    fn pump(&mut self, host: &mut impl StepHost) -> bool {
        self.upload.as_mut().is_some_and(|upload| upload.pump(host))
    }

    /// [`Exchange::poll`] with a panic turned into an error and a log line.
    fn poll_caught(&mut self, host: &mut impl StepHost) -> Polled {
        match catch_unwind(AssertUnwindSafe(|| self.poll(host))) {
            Ok(polled) => polled,
            Err(payload) => {
                self.logger
                    .error(&format!("panic in app: {}", panic_message(&*payload)));
                let stage = std::mem::replace(&mut self.stage, Stage::Finished);
                // A destructor that panics as well: forget the rest rather than unwind further.
                if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(stage))) {
                    std::mem::forget(again);
                }
                if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                    std::mem::forget(again);
                }
                Polled::Error
            }
        }
    }

    /// Drives the stage as far as it goes without waiting.
    fn poll(&mut self, host: &mut impl StepHost) -> Polled {
        let mut cx = Context::from_waker(&self.task_waker);
        loop {
            match &mut self.stage {
                Stage::Ready(svc, req) => match svc.poll_ready(&mut cx) {
                    Poll::Pending => return Polled::Pending,
                    Poll::Ready(Err(err)) => return self.fail("service failed", err.into()),
                    Poll::Ready(Ok(())) => {
                        let Some(req) = req.take() else {
                            return Polled::Error;
                        };
                        self.stage = Stage::Calling(Box::pin(svc.call(req)));
                    }
                },
                Stage::Calling(future) => match future.as_mut().poll(&mut cx) {
                    Poll::Pending => return Polled::Pending,
                    Poll::Ready(Err(err)) => return self.fail("service failed", err.into()),
                    Poll::Ready(Ok(response)) => {
                        let (mut parts, body) = response.into_parts();
                        if let Some(polled) = switch(&mut self.probe, host, &parts, &self.logger) {
                            self.stage = Stage::Finished;
                            return polled;
                        }
                        let file = parts.extensions.remove::<SendFile>().and_then(|f| f.take());
                        // A file's length is the server's to say (it may answer a range), and
                        // the empty body's own (axum says 0) is not the file's.
                        let length = if file.is_some() {
                            parts.headers.remove(header::CONTENT_LENGTH);
                            None
                        } else {
                            body.size_hint().exact()
                        };
                        if let Err(err) = host.start(&parts, length) {
                            self.logger.error(&format!(
                                "response head rejected by the server: {err} (status {})",
                                parts.status
                            ));
                            self.stage = Stage::Finished;
                            return Polled::Error;
                        }
                        self.exact_length = length;
                        crate::request::recycle_headers(std::mem::take(&mut parts.headers));
                        self.stage = match file {
                            Some(file) => Stage::File(Box::new(file)),
                            None => Stage::Streaming(Box::pin(body)),
                        };
                    }
                },
                Stage::File(file) => {
                    return match host.file_step(file) {
                        FileStep::Chunk(chunk) => {
                            self.current = chunk;
                            Polled::Chunk
                        }
                        FileStep::End => {
                            self.stage = Stage::Finished;
                            Polled::End
                        }
                        FileStep::Error => {
                            self.stage = Stage::Finished;
                            Polled::Error
                        }
                    };
                }
                Stage::Streaming(body) => match body.as_mut().poll_frame(&mut cx) {
                    Poll::Pending => return Polled::Pending,
                    Poll::Ready(None) => {
                        self.stage = Stage::Finished;
                        return Polled::End;
                    }
                    Poll::Ready(Some(Err(err))) => {
                        return self.fail("response body failed", err.into())
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        let mut data = match frame.into_data() {
                            Ok(data) => data,
                            Err(frame) => {
                                // gRPC's status travels here: a server without trailers (older
                                // than ABI 1.3) cannot send it, which the client must hear of.
                                if let Ok(trailers) = frame.into_trailers() {
                                    match host.send_trailers(&trailers) {
                                        Ok(()) => self.sent_trailers = true,
                                        Err(err) => self
                                            .logger
                                            .error(&format!("response trailers not sent: {err}")),
                                    }
                                }
                                if body.is_end_stream() {
                                    // Trailers end a body (tonic says so): no poll for the end.
                                    self.stage = Stage::Finished;
                                    return Polled::End;
                                }
                                continue;
                            }
                        };
                        if !data.has_remaining() {
                            continue;
                        }
                        self.current = data.copy_to_bytes(data.remaining());
                        if body.is_end_stream() {
                            // No frame follows (no trailers either): the body is dropped here,
                            // inside the runtime's context, and the next step answers the end.
                            self.stage = Stage::Finished;
                        }
                        return Polled::Chunk;
                    }
                },
                Stage::Ahead(..) => {
                    let Stage::Ahead(body, chunk) =
                        std::mem::replace(&mut self.stage, Stage::Finished)
                    else {
                        unreachable!("matched Ahead above")
                    };
                    if let Some(body) = body {
                        self.stage = Stage::Streaming(body);
                    }
                    self.current = chunk;
                    return Polled::Chunk;
                }
                Stage::Failed => {
                    self.stage = Stage::Finished;
                    return Polled::Error;
                }
                Stage::Finished => return Polled::End,
            }
        }
    }

    fn fail(&mut self, what: &str, err: crate::BoxError) -> Polled {
        self.logger.error(&format!("{what}: {err}"));
        self.stage = Stage::Finished;
        Polled::Error
    }
}

impl<S, B> DeferredBody for Exchange<S, B>
where
    S: Service<http::Request<crate::RequestBody>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<crate::BoxError>,
    B: Body + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    fn next<'s>(&'s mut self, io: &mut BodyIo<'_>) -> Next<'s> {
        self.step(io)
    }
}

impl<S: Service<http::Request<crate::RequestBody>>, B> Exchange<S, B> {
    /// Whether nothing of the response is left to poll or to give (its last chunk may still be
    /// `current`).
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Finished)
    }

    /// The request came over HTTP/2 and the body's trailers went to the server: a last chunk
    /// written now goes out between the head and the trailers' HEADERS frame, which ends the
    /// stream.
    pub(crate) fn ends_with_http2_trailers(&self) -> bool {
        self.over_http2 && self.sent_trailers
    }

    /// The chunk the last step gave, taken out of the exchange.
    pub(crate) fn take_chunk(&mut self) -> Bytes {
        std::mem::take(&mut self.current)
    }

    /// The response body's exact length, known when its head went out.
    pub(crate) fn exact_length(&self) -> Option<u64> {
        self.exact_length
    }

    /// The chunk the last step gave was not handed over: the next step gives it again.
    pub(crate) fn replay_chunk(&mut self) {
        self.replay = true;
    }
}

impl<S: Service<http::Request<crate::RequestBody>>, B> Drop for Exchange<S, B> {
    fn drop(&mut self) {
        if matches!(self.stage, Stage::Finished) {
            return; // nothing of the app's is left to drop (the usual end)
        }
        // The future or body may hold runtime resources (timers, sockets) that deregister
        // themselves as they drop: inside the runtime's context, as they were made.
        let _runtime = self.runtime.enter();
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(stage))) {
            self.logger.error(&format!(
                "panic in app while cancelling a request: {}",
                panic_message(&*payload)
            ));
            std::mem::forget(payload);
        }
    }
}

/// For an upgrade request: a 101 hands the connection to hyper's `OnUpgrade` (the request ends
/// here), anything else lets hyper's connection go and is answered as usual (`None`).
fn switch(
    probe: &mut Option<Probe>,
    host: &mut impl StepHost,
    parts: &http::response::Parts,
    logger: &Logger,
) -> Option<Polled> {
    let mut probe = probe.take()?;
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        probe.refuse();
        return None;
    }
    match host.upgrade(parts, &probe.slot) {
        Ok(stream) => {
            probe.switch(stream);
            Some(Polled::End)
        }
        Err(err) => {
            logger.error(&format!("the server refused the upgrade: {err}"));
            Some(Polled::Error)
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
