use super::*;
use crate::body::TryReadSource;
use crate::context::AppRuntime;
use app_abi::TryRead;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
struct CountingWake(AtomicUsize);

impl Wake for CountingWake {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The server's waker as the test sees it: counts the wakes that reached "the server".
struct ServerWake(Arc<CountingWake>);

impl Wake for ServerWake {
    fn wake(&self) {
        self.0.wake();
    }
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Plays the server for `step`: records heads, makes wakers, has no request body.
#[derive(Default)]
struct TestHost {
    started: Vec<(u16, Fields)>,
    trailers: Vec<http::HeaderMap>,
    wakers_made: usize,
    server: Arc<CountingWake>,
}

impl TryReadSource for TestHost {
    fn try_read(&mut self, _buf: &mut [u8]) -> TryRead {
        TryRead::End
    }
}

impl StepHost for TestHost {
    fn start(&mut self, parts: &http::response::Parts, length: Option<u64>) -> Result<(), String> {
        let mut digits = LengthDigits::default();
        let fields = head_fields(parts, content_length(parts, length, &mut digits))
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        self.started.push((parts.status.as_u16(), fields));
        Ok(())
    }

    fn send_trailers(&mut self, trailers: &http::HeaderMap) -> Result<(), String> {
        self.trailers.push(trailers.clone());
        Ok(())
    }

    fn waker(&mut self) -> Option<Box<dyn Wake>> {
        self.wakers_made += 1;
        Some(Box::new(ServerWake(self.server.clone())))
    }

    fn upgrade(
        &mut self,
        _parts: &http::response::Parts,
        _slot: &Arc<StreamSlot>,
    ) -> Result<Arc<dyn RawStream>, String> {
        Err("no upgrades here".to_owned())
    }
}

fn logger() -> Logger {
    // SAFETY: a null host makes the logger write to stderr; nothing is dereferenced.
    unsafe { Logger::from_raw(core::ptr::null(), core::ptr::null()) }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn exchange<F, Fut, B>(svc: ServiceFn<F>, rt: &tokio::runtime::Runtime) -> Exchange<ServiceFn<F>, B>
where
    F: FnMut(http::Request<crate::RequestBody>) -> Fut,
    Fut: Future<Output = Result<http::Response<B>, Infallible>>,
    B: Body,
    B::Error: Into<crate::BoxError>,
{
    // As for a request without a body: the `LazyWake` is made once a poll pends.
    let req = http::Request::new(crate::RequestBody::empty());
    Exchange::new(
        svc,
        req,
        None,
        None,
        None,
        AppRuntime::new(rt.handle().clone()),
        logger(),
    )
}

/// What one step answered, owned.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Chunk(Vec<u8>),
    End,
    Pending,
    Error,
}

fn step<S, B>(exchange: &mut Exchange<S, B>, host: &mut TestHost) -> Step
where
    S: Service<http::Request<crate::RequestBody>, Response = http::Response<B>>,
    S::Error: Into<crate::BoxError>,
    B: Body,
    B::Error: Into<crate::BoxError>,
{
    match exchange.step(host) {
        Next::Chunk(c) => Step::Chunk(c.to_vec()),
        Next::End => Step::End,
        Next::Pending => Step::Pending,
        Next::Error => Step::Error,
    }
}

#[test]
fn a_ready_response_is_answered_in_the_first_step_without_a_waker() {
    let rt = runtime();
    let svc = service_fn(|_req| async {
        Ok::<_, Infallible>(
            http::Response::builder()
                .status(201)
                .header("x-a", "1")
                .header("connection", "close")
                .body(http_body_util::Full::new(Bytes::from_static(b"hello")))
                .unwrap(),
        )
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"hello".to_vec()));
    assert_eq!(step(&mut ex, &mut host), Step::End);
    assert_eq!(host.wakers_made, 0, "nothing pended: no server waker");
    assert_eq!(host.started.len(), 1);
    assert_eq!(host.started[0].0, 201);
    let names: Vec<_> = host.started[0]
        .1
        .iter()
        .map(|(n, _)| n.as_slice())
        .collect();
    assert_eq!(
        names,
        [&b"x-a"[..], b"content-length"],
        "hop-by-hop dropped"
    );
    assert_eq!(host.started[0].1[1].1, b"5");
}

#[test]
fn a_pending_future_parks_and_its_wake_reaches_the_server() {
    let rt = runtime();
    let (tx, rx) = tokio::sync::oneshot::channel::<&'static str>();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let svc = service_fn(move |_req| {
        let rx = rx.lock().unwrap().take().unwrap();
        async move {
            let text = rx.await.unwrap();
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from_static(text.as_bytes()),
            )))
        }
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Pending);
    assert_eq!(host.wakers_made, 1);
    assert_eq!(host.server.0.load(Ordering::SeqCst), 0);
    std::thread::spawn(move || tx.send("later").unwrap())
        .join()
        .unwrap();
    assert_eq!(
        host.server.0.load(Ordering::SeqCst),
        1,
        "the wake reached the server"
    );
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"later".to_vec()));
    assert_eq!(step(&mut ex, &mut host), Step::End);
    assert_eq!(host.wakers_made, 1, "one server waker per request");
}

#[test]
fn a_wake_before_the_server_waker_exists_is_not_lost() {
    let rt = runtime();
    // Pends once after waking itself (tokio's yield_now does the same).
    let svc = service_fn(|_req| async {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
            Bytes::from_static(b"ok"),
        )))
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"ok".to_vec()));
}

#[test]
fn a_future_that_always_wakes_itself_parks_and_is_queued_again() {
    let rt = runtime();
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let svc = service_fn(move |_req| {
        let counter = counter.clone();
        async move {
            std::future::poll_fn(|cx| {
                counter.fetch_add(1, Ordering::SeqCst);
                cx.waker().wake_by_ref();
                Poll::<()>::Pending
            })
            .await;
            Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<Bytes>::new()))
        }
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Pending);
    // Once with the waker that does nothing (a request without a body has no `LazyWake` yet),
    // once before the server's waker existed (the wake is noted, polled again), once after (the
    // wake goes to the server, which queues the request behind the others).
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    assert!(
        host.server.0.load(Ordering::SeqCst) >= 1,
        "the server is asked to come back"
    );
}

#[test]
fn a_streamed_body_is_polled_one_chunk_per_step() {
    let rt = runtime();
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let svc = service_fn(move |_req| {
        let counter = counter.clone();
        async move { Ok::<_, Infallible>(http::Response::new(CountingBody(counter, 100))) }
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    for i in 1..=10 {
        assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"x".to_vec()));
        assert_eq!(
            produced.load(Ordering::SeqCst),
            i,
            "produced ahead of the server"
        );
    }
    let mut rest = 0;
    while step(&mut ex, &mut host) != Step::End {
        rest += 1;
    }
    assert_eq!(rest, 90);
    assert!(
        host.started[0].1.is_empty(),
        "length unknown: no Content-Length"
    );
}

#[test]
fn a_body_that_ends_with_its_last_chunk_is_dropped_then_and_not_polled_again() {
    let rt = runtime();
    let polls = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (p, d) = (polls.clone(), dropped.clone());
    let svc = service_fn(move |_req| {
        let hello = http_body::Frame::data(Bytes::from_static(b"hello"));
        let body = Frames::new([hello], p.clone()).counting_drop(d.clone());
        async move { Ok::<_, Infallible>(http::Response::new(body)) }
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"hello".to_vec()));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "dropped with its last chunk"
    );
    assert_eq!(step(&mut ex, &mut host), Step::End);
    assert_eq!(polls.load(Ordering::SeqCst), 1, "not polled past its end");
    assert_eq!(
        step(&mut ex, &mut host),
        Step::End,
        "and the end stays the end"
    );
}

/// Serves a response whose body is `frames` (taken by the one call); counts its polls.
type FramesService = ServiceFn<
    Box<
        dyn FnMut(
            http::Request<crate::RequestBody>,
        ) -> std::future::Ready<Result<http::Response<Frames>, Infallible>>,
    >,
>;

fn answering_frames(
    frames: Vec<http_body::Frame<Bytes>>,
    rt: &tokio::runtime::Runtime,
) -> (Exchange<FramesService, Frames>, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    let body = std::cell::Cell::new(Some(Frames::new(frames, polls.clone())));
    let svc: FramesService = service_fn(Box::new(move |_req| {
        let body = body.take().expect("one call");
        std::future::ready(Ok(http::Response::new(body)))
    }));
    (exchange(svc, rt), polls)
}

#[test]
fn trailers_ready_after_the_first_chunk_are_sent_by_the_look_ahead_and_end_the_body() {
    let rt = runtime();
    let mut status = http::HeaderMap::new();
    status.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = vec![
        http_body::Frame::data(Bytes::from_static(b"reply")),
        http_body::Frame::trailers(status),
    ];
    let (mut ex, polls) = answering_frames(frames, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"reply".to_vec()));
    assert!(!ex.is_finished(), "trailers still to come");
    assert!(host.trailers.is_empty());
    ex.look_ahead(&mut host);
    assert!(ex.is_finished(), "the trailers ended the body");
    assert_eq!(host.trailers.len(), 1);
    assert_eq!(host.trailers[0]["grpc-status"], "0");
    assert_eq!(ex.take_chunk(), Bytes::from_static(b"reply"));
    assert_eq!(
        polls.load(Ordering::SeqCst),
        2,
        "not polled for the end its trailers announced"
    );
}

#[test]
fn a_chunk_the_look_ahead_polled_is_given_after_the_first() {
    let rt = runtime();
    let chunk = |c: &'static [u8]| http_body::Frame::data(Bytes::from_static(c));
    let (mut ex, polls) = answering_frames(vec![chunk(b"a"), chunk(b"b"), chunk(b"c")], &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"a".to_vec()));
    ex.look_ahead(&mut host);
    assert!(!ex.is_finished(), "a chunk is ahead");
    ex.replay_chunk();
    for chunk in [&b"a"[..], b"b", b"c"] {
        assert_eq!(step(&mut ex, &mut host), Step::Chunk(chunk.to_vec()));
    }
    assert_eq!(step(&mut ex, &mut host), Step::End);
    assert_eq!(polls.load(Ordering::SeqCst), 3, "each frame polled once");
    assert!(host.trailers.is_empty());
}

#[test]
fn a_failure_the_look_ahead_polled_comes_after_the_first_chunk() {
    let rt = runtime();
    let svc = service_fn(|_req| async {
        let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"a"))),
            Err(std::io::Error::other("gone")),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        Ok::<_, Infallible>(http::Response::new(body))
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"a".to_vec()));
    ex.look_ahead(&mut host);
    assert!(!ex.is_finished(), "the failure is still to be said");
    ex.replay_chunk();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"a".to_vec()));
    assert_eq!(step(&mut ex, &mut host), Step::Error);
    assert_eq!(step(&mut ex, &mut host), Step::End, "and nothing after it");
}

/// The look-ahead (in `call`) finds the body's next frame not ready, as for a stream, a
/// server-streaming gRPC call or server-sent events: the server's waker is made then, the
/// frame's arrival reaches the server, and its `next`s give the first chunk, then that frame,
/// each polled for once it is ready, with no second server waker.
#[test]
fn a_frame_not_ready_for_the_look_ahead_wakes_the_server_when_it_comes() {
    let rt = runtime();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let polls = Arc::new(AtomicUsize::new(0));
    let body = std::cell::Cell::new(Some(Channel {
        first: Some(Bytes::from_static(b"a")),
        rx,
        polls: polls.clone(),
    }));
    let svc = service_fn(move |_req| {
        let body = body.take().expect("one call");
        std::future::ready(Ok::<_, Infallible>(http::Response::new(body)))
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"a".to_vec()));
    ex.look_ahead(&mut host);
    assert!(!ex.is_finished(), "the body goes on");
    assert_eq!(
        host.wakers_made, 1,
        "made in call, as the server's next would"
    );
    ex.replay_chunk();
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"a".to_vec()));
    let polled = polls.load(Ordering::SeqCst);
    assert_eq!(host.server.0.load(Ordering::SeqCst), 0);
    std::thread::spawn(move || {
        tx.try_send(Bytes::from_static(b"b")).unwrap();
        tx
    })
    .join()
    .map(drop)
    .unwrap();
    assert!(
        host.server.0.load(Ordering::SeqCst) >= 1,
        "the frame's arrival reached the server"
    );
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"b".to_vec()));
    assert_eq!(
        polls.load(Ordering::SeqCst),
        polled + 1,
        "polled once for the frame that came"
    );
    assert_eq!(step(&mut ex, &mut host), Step::End);
    assert_eq!(host.wakers_made, 1, "one server waker per request");
}

#[test]
fn a_panicking_service_is_an_error_before_the_head() {
    let rt = runtime();
    let svc = service_fn(|_req| async {
        if true {
            panic!("boom");
        }
        Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<Bytes>::new()))
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Error);
    assert!(host.started.is_empty());
}

#[test]
fn dropping_the_exchange_drops_the_pending_future() {
    let rt = runtime();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    let svc = service_fn(move |_req| {
        let guard = DropCount(counter.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(http::Response::new(http_body_util::Empty::<Bytes>::new()))
        }
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Pending);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(ex);
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "close cancels the work");
}

#[test]
fn timers_work_when_polled_from_a_thread_outside_the_runtime() {
    let rt = runtime();
    let svc = service_fn(|_req| async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
            Bytes::from_static(b"slept"),
        )))
    });
    let mut ex = exchange(svc, &rt);
    let mut host = TestHost::default();
    assert_eq!(step(&mut ex, &mut host), Step::Pending);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while host.server.0.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timer never woke the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(step(&mut ex, &mut host), Step::Chunk(b"slept".to_vec()));
}

struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A body of `n` one-byte chunks, counting what it produced.
struct CountingBody(Arc<AtomicUsize>, usize);

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = Infallible;

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

/// Its frames in order, ending with the last, which it reports as soon as that frame is taken
/// (as `Full` does); counts its polls.
struct Frames {
    frames: std::collections::VecDeque<http_body::Frame<Bytes>>,
    polls: Arc<AtomicUsize>,
    _dropped: Option<DropCount>,
}

impl Frames {
    fn new(
        frames: impl IntoIterator<Item = http_body::Frame<Bytes>>,
        polls: Arc<AtomicUsize>,
    ) -> Frames {
        Frames {
            frames: frames.into_iter().collect(),
            polls,
            _dropped: None,
        }
    }

    /// Counts its drop into `dropped`.
    fn counting_drop(self, dropped: Arc<AtomicUsize>) -> Frames {
        Frames {
            _dropped: Some(DropCount(dropped)),
            ..self
        }
    }
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(self.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}

/// A first chunk ready at once, then the chunks sent on `rx` as they come, ending when its
/// sender is dropped; counts its polls.
struct Channel {
    first: Option<Bytes>,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    polls: Arc<AtomicUsize>,
}

impl http_body::Body for Channel {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(first))));
        }
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}

/// `tower::service_fn` without depending on tower.
fn service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

struct ServiceFn<F>(F);

impl<F, Fut, R> Service<http::Request<crate::RequestBody>> for ServiceFn<F>
where
    F: FnMut(http::Request<crate::RequestBody>) -> Fut,
    Fut: Future<Output = Result<R, Infallible>>,
{
    type Response = R;
    type Error = Infallible;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<crate::RequestBody>) -> Fut {
        (self.0)(req)
    }
}
