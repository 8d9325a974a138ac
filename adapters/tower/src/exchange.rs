//! One request's life: the task that runs the service on the runtime ([`drive`]) and the deferred
//! body the server pulls ([`Exchange`]), joined by a channel of response [`Frame`]s.
//!
//! The task sends the head, then the body's data frames, then [`Frame::End`], through a channel of
//! [`RESPONSE_FRAMES_BUFFERED`] frames: a slow client leaves the channel full (the server writes
//! each chunk before it calls `next` again), which parks the task. It wakes the server only when it
//! is about to wait (channel full, body pending, task over), so a small response costs one park and
//! one wake. `next` runs on a serving thread: it pumps the request body ([`Upload`]), then takes
//! what the channel holds — or answers [`Next::Pending`].
//!
//! Ending: a task that finishes without [`Frame::End`] (service error, body error, panic) drops
//! its sender, which `next` reads as a failure: 500 if nothing was sent, else a cut connection.
//! Dropping the [`Exchange`] (the server's `close`: end, disconnect, timeout, drain) aborts the
//! task, which drops the service's future — that is how the app's work is cancelled.

use crate::body::{Upload, Wake};
use app_abi::{BodyIo, DeferredBody, Logger, Next};
use bytes::{Buf, Bytes};
use http::header::{self, HeaderName};
use http::StatusCode;
use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::task::AbortHandle;
use tower_service::Service;

/// Frames the task may produce ahead of the server: head, one data frame and the end fit, so a
/// small response needs a single wake; a streamed body is at most two chunks ahead of the socket.
const RESPONSE_FRAMES_BUFFERED: usize = 3;

/// What the task tells `next`.
#[derive(Debug)]
pub(crate) enum Frame {
    Head {
        parts: http::response::Parts,
        /// The body's exact length when it knows it: sent as Content-Length.
        length: Option<u64>,
    },
    Data(Bytes),
    End,
}

/// The task's end of the response channel.
pub(crate) struct Outlet {
    tx: Option<mpsc::Sender<Frame>>,
    waker: Arc<dyn Wake>,
    /// Frames were sent since the last wake.
    unannounced: bool,
}

/// The server is gone (the request was closed): stop producing.
struct Closed;

impl Outlet {
    async fn send(&mut self, frame: Frame) -> Result<(), Closed> {
        let full = match self.tx.as_ref().ok_or(Closed)?.try_send(frame) {
            Ok(()) => None,
            Err(TrySendError::Closed(_)) => return Err(Closed),
            Err(TrySendError::Full(frame)) => Some(frame),
        };
        if let Some(frame) = full {
            self.announce(); // about to wait for `next` to drain: it must run
            let tx = self.tx.as_ref().ok_or(Closed)?;
            tx.send(frame).await.map_err(|_| Closed)?;
        }
        self.unannounced = true;
        Ok(())
    }

    /// Wakes the server if it has frames it was not told about.
    fn announce(&mut self) {
        if std::mem::take(&mut self.unannounced) {
            self.waker.wake();
        }
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        // Close the channel before the wake: a `next` that runs on it must see the end.
        drop(self.tx.take());
        self.waker.wake();
    }
}

/// Runs one request through `svc` and streams the response into `outlet`.
pub(crate) async fn drive<S, B>(
    mut svc: S,
    req: http::Request<crate::RequestBody>,
    mut outlet: Outlet,
    logger: Logger,
) where
    S: Service<http::Request<crate::RequestBody>, Response = http::Response<B>>,
    S::Error: Into<crate::BoxError> + Send,
    B: http_body::Body,
    B::Error: Into<crate::BoxError> + Send,
{
    let response = match poll_fn(|cx| svc.poll_ready(cx)).await {
        Ok(()) => svc.call(req).await,
        Err(err) => Err(err),
    };
    let response = match response {
        Ok(response) => response,
        Err(err) => {
            logger.error(&format!("service failed: {}", err.into()));
            return;
        }
    };
    let (parts, body) = response.into_parts();
    let length = body.size_hint().exact();
    if outlet.send(Frame::Head { parts, length }).await.is_err() {
        return;
    }
    let mut body = pin!(body);
    loop {
        let frame = poll_fn(|cx| {
            let polled = body.as_mut().poll_frame(cx);
            if polled.is_pending() {
                outlet.announce(); // the body waits: let the server send what it has
            }
            polled
        })
        .await;
        match frame {
            None => break,
            Some(Ok(frame)) => {
                // Trailers are dropped: HTTP/1.1 responses here are not chunked with trailers.
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                if !data.has_remaining() {
                    continue;
                }
                let bytes = data.copy_to_bytes(data.remaining());
                if outlet.send(Frame::Data(bytes)).await.is_err() {
                    return;
                }
            }
            Some(Err(err)) => {
                logger.error(&format!("response body failed: {}", err.into()));
                return;
            }
        }
    }
    let _ = outlet.send(Frame::End).await;
}

/// The deferred body the server pulls for one request.
pub(crate) struct Exchange {
    rx: mpsc::Receiver<Frame>,
    task: Option<AbortHandle>,
    upload: Option<Upload>,
    /// The chunk last handed to the server, kept until the next `next`.
    current: Bytes,
    logger: Logger,
}

/// The two ends of a response channel.
pub(crate) fn channel(waker: Arc<dyn Wake>, logger: Logger) -> (Outlet, Exchange) {
    let (tx, rx) = mpsc::channel(RESPONSE_FRAMES_BUFFERED);
    let outlet = Outlet {
        tx: Some(tx),
        waker,
        unannounced: false,
    };
    let exchange = Exchange {
        rx,
        task: None,
        upload: None,
        current: Bytes::new(),
        logger,
    };
    (outlet, exchange)
}

impl Exchange {
    /// The task to abort when the request ends, and the request body to pump.
    pub(crate) fn attach(&mut self, task: AbortHandle, upload: Option<Upload>) {
        self.task = Some(task);
        self.upload = upload;
    }

    /// One step, with the head handed to `start` (testable without a host).
    fn step(
        &mut self,
        mut start: impl FnMut(&http::response::Parts, Option<u64>) -> Result<(), String>,
    ) -> Next<'_> {
        loop {
            match self.rx.try_recv() {
                Ok(Frame::Head { parts, length }) => {
                    if let Err(err) = start(&parts, length) {
                        self.logger.error(&format!(
                            "response head rejected by the server: {err} (status {})",
                            parts.status
                        ));
                        return Next::Error;
                    }
                }
                Ok(Frame::Data(bytes)) => {
                    self.current = bytes;
                    return Next::Chunk(&self.current);
                }
                Ok(Frame::End) => return Next::End,
                Err(TryRecvError::Empty) => return Next::Pending,
                // The task ended without `End`; it logged why (or the runtime is shutting down).
                Err(TryRecvError::Disconnected) => return Next::Error,
            }
        }
    }
}

impl DeferredBody for Exchange {
    fn next<'s>(&'s mut self, io: &mut BodyIo<'_>) -> Next<'s> {
        if let Some(upload) = &mut self.upload {
            upload.pump(io);
        }
        self.step(|parts, length| {
            let headers = response_headers(parts, length);
            io.start_response(
                parts.status.as_u16(),
                "",
                headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
            )
            .map_err(|e| e.to_string())
        })
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Fields the server owns (RFC 9110 §7.6.1 hop-by-hop, plus framing): it refuses them from apps.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
];

/// The head's headers as the server takes them: hop-by-hop fields left out, Content-Length
/// added from the body's exact length (as hyper does) where the status allows a body.
fn response_headers(parts: &http::response::Parts, length: Option<u64>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(name) && name.as_str() != "proxy-connection")
        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    if let Some(length) = length {
        if !bodiless && !parts.headers.contains_key(header::CONTENT_LENGTH) {
            out.push((b"content-length".to_vec(), length.to_string().into_bytes()));
        }
    }
    out
}

/// A future whose panic is caught and reported as `Err(message)`; the inner future is dropped at
/// once then (which drops the [`Outlet`] inside it and so tells `next`).
pub(crate) struct CatchUnwind<F> {
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> Self {
        CatchUnwind {
            inner: Some(Box::pin(future)),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err("polled after a panic".to_owned()));
        };
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                self.inner = None;
                Poll::Ready(Ok(out))
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                let inner = self.inner.take();
                // A destructor that panics as well: forget the rest rather than unwind further.
                if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(inner))) {
                    std::mem::forget(again);
                }
                if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                    std::mem::forget(again);
                }
                Poll::Ready(Err(message))
            }
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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct CountingWake(AtomicUsize);

    impl Wake for CountingWake {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn logger() -> Logger {
        // SAFETY: a null host makes the logger write to stderr; nothing is dereferenced.
        unsafe { Logger::from_raw(core::ptr::null(), core::ptr::null()) }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    type Started = Vec<(u16, Vec<(Vec<u8>, Vec<u8>)>)>;

    /// Plays the server: steps until the end, collecting the head and the chunks.
    fn collect(exchange: &mut Exchange) -> (Started, Vec<u8>, bool) {
        let mut started = Vec::new();
        let mut body = Vec::new();
        for _ in 0..1000 {
            let step = exchange.step(|parts, length| {
                started.push((parts.status.as_u16(), response_headers(parts, length)));
                Ok(())
            });
            match step {
                Next::Chunk(c) => body.extend_from_slice(c),
                Next::End => return (started, body, true),
                Next::Error => return (started, body, false),
                Next::Pending => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        panic!("the exchange never ended");
    }

    fn request() -> http::Request<crate::RequestBody> {
        http::Request::new(crate::RequestBody::empty())
    }

    #[test]
    fn a_small_response_is_one_wake() {
        let wake = Arc::new(CountingWake::default());
        let (outlet, mut exchange) = channel(wake.clone(), logger());
        let svc = tower_service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(201)
                    .header("x-a", "1")
                    .header("connection", "close")
                    .body(http_body_util::Full::new(Bytes::from_static(b"hello")))
                    .unwrap(),
            )
        });
        runtime().block_on(drive(svc, request(), outlet, logger()));
        assert_eq!(
            wake.0.load(Ordering::SeqCst),
            1,
            "one wake for head, data and end"
        );
        let (started, body, ok) = collect(&mut exchange);
        assert!(ok);
        assert_eq!(body, b"hello");
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].0, 201);
        let names: Vec<_> = started[0].1.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(
            names,
            [&b"x-a"[..], b"content-length"],
            "hop-by-hop dropped"
        );
        assert_eq!(started[0].1[1].1, b"5");
    }

    #[test]
    fn a_streamed_body_stays_a_few_frames_ahead_of_the_server() {
        let wake = Arc::new(CountingWake::default());
        let (outlet, mut exchange) = channel(wake, logger());
        let produced = Arc::new(AtomicUsize::new(0));
        let counter = produced.clone();
        let svc = tower_service_fn(move |_req| {
            let counter = counter.clone();
            async move {
                let body = CountingBody(counter, 100);
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            }
        });
        let rt = runtime();
        let task = rt.spawn(drive(svc, request(), outlet, logger()));
        rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(50)).await });
        let ahead = produced.load(Ordering::SeqCst);
        assert!(
            ahead <= RESPONSE_FRAMES_BUFFERED + 1,
            "{ahead} chunks produced while nobody read"
        );
        let drained = std::thread::spawn(move || collect(&mut exchange));
        rt.block_on(task).unwrap();
        let (started, body, ok) = drained.join().unwrap();
        assert!(ok);
        assert_eq!(started.len(), 1);
        assert_eq!(
            started[0].1,
            Vec::<(Vec<u8>, Vec<u8>)>::new(),
            "length unknown"
        );
        assert_eq!(body.len(), 100);
    }

    #[test]
    fn a_panicking_service_is_an_error_before_the_head() {
        let wake = Arc::new(CountingWake::default());
        let (outlet, mut exchange) = channel(wake.clone(), logger());
        let svc = tower_service_fn(|_req| async {
            if true {
                panic!("boom");
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(
                http_body_util::Empty::<Bytes>::new(),
            ))
        });
        let out = runtime().block_on(CatchUnwind::new(drive(svc, request(), outlet, logger())));
        assert_eq!(out.unwrap_err(), "boom");
        assert!(
            wake.0.load(Ordering::SeqCst) >= 1,
            "the end must wake the server"
        );
        let (started, _, ok) = collect(&mut exchange);
        assert!(!ok && started.is_empty());
    }

    #[test]
    fn closing_the_exchange_stops_the_producer() {
        let wake = Arc::new(CountingWake::default());
        let (outlet, exchange) = channel(wake, logger());
        let produced = Arc::new(AtomicUsize::new(0));
        let counter = produced.clone();
        let svc = tower_service_fn(move |_req| {
            let counter = counter.clone();
            async move {
                Ok::<_, std::convert::Infallible>(http::Response::new(CountingBody(
                    counter,
                    usize::MAX,
                )))
            }
        });
        drop(exchange);
        runtime().block_on(drive(svc, request(), outlet, logger()));
        assert!(produced.load(Ordering::SeqCst) <= 1);
    }

    /// A body of `n` one-byte chunks, counting what it produced.
    struct CountingBody(Arc<AtomicUsize>, usize);

    impl http_body::Body for CountingBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            if n >= self.1 {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"x")))))
        }
    }

    /// `tower::service_fn` without depending on tower.
    fn tower_service_fn<F, Fut, R>(f: F) -> ServiceFn<F>
    where
        F: FnMut(http::Request<crate::RequestBody>) -> Fut,
        Fut: Future<Output = Result<R, std::convert::Infallible>>,
    {
        ServiceFn(f)
    }

    struct ServiceFn<F>(F);

    impl<F, Fut, R> Service<http::Request<crate::RequestBody>> for ServiceFn<F>
    where
        F: FnMut(http::Request<crate::RequestBody>) -> Fut,
        Fut: Future<Output = Result<R, std::convert::Infallible>>,
    {
        type Response = R;
        type Error = std::convert::Infallible;
        type Future = Fut;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<crate::RequestBody>) -> Fut {
            (self.0)(req)
        }
    }
}
