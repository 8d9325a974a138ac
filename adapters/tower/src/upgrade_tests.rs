use super::*;
use crate::body::{TryReadSource, Wake};
use crate::context::AppRuntime;
use crate::exchange::{Exchange, StepHost};
use crate::head_fields::head_fields;
use app_abi::{Logger, Next, TryRead};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::Role;

#[test]
fn hypers_head_is_discarded_however_it_is_split() {
    let slot = StreamSlot::new();
    let mut io = ReplayIo::new(slot);
    let head = b"HTTP/1.1 101 Switching Protocols\r\ndate: x\r\n\r\nAFTER";
    for (at, chunk) in [&head[..20], &head[20..35], &head[35..]]
        .into_iter()
        .enumerate()
    {
        let n = io.skip_head(chunk);
        if at < 2 {
            assert_eq!(n, chunk.len());
            assert!(!io.head_written());
        } else {
            assert_eq!(
                &chunk[n..],
                b"AFTER",
                "the bytes after the head are not skipped"
            );
            assert!(io.head_written());
        }
    }
    let mut io = ReplayIo::new(StreamSlot::new());
    assert_eq!(
        io.skip_head(b"a\r\r\n\r\nb"),
        6,
        "a repeated CR restarts the match"
    );
}

#[test]
fn only_http11_upgrade_requests_without_a_body_take_the_probe() {
    let req = |method: &str, version, fields: &[(&str, &str)]| {
        let mut b = http::Request::builder().method(method).version(version);
        for (n, v) in fields {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    };
    let ws = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
    ];
    let v11 = http::Version::HTTP_11;
    assert!(wants_upgrade(&req("GET", v11, &ws), false));
    assert!(!wants_upgrade(&req("GET", v11, &ws), true));
    assert!(!wants_upgrade(
        &req("GET", http::Version::HTTP_10, &ws),
        false
    ));
    assert!(!wants_upgrade(&req("CONNECT", v11, &ws), false));
    assert!(!wants_upgrade(&req("GET", v11, &ws[1..]), false));
    assert!(!wants_upgrade(&req("GET", v11, &ws[..1]), false));
}

/// The server's stream as a test sees it: one end of a tokio pipe, polled without waiting, whose
/// wakes are the server's readiness events for the slot.
struct PipeStream {
    end: Mutex<Option<DuplexStream>>,
    slot: Arc<StreamSlot>,
}

struct EventWake(Arc<StreamSlot>, Events);

impl std::task::Wake for EventWake {
    fn wake(self: Arc<Self>) {
        self.0.wake(self.1);
    }
}

impl PipeStream {
    fn poll<R>(
        &self,
        events: Events,
        f: impl FnOnce(Pin<&mut DuplexStream>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Result<Option<R>, ()> {
        let waker = Waker::from(Arc::new(EventWake(self.slot.clone(), events)));
        let mut cx = Context::from_waker(&waker);
        let mut end = self.end.lock().unwrap();
        let Some(end) = end.as_mut() else {
            return Err(());
        };
        match f(Pin::new(end), &mut cx) {
            Poll::Ready(Ok(r)) => Ok(Some(r)),
            Poll::Ready(Err(_)) => Err(()),
            Poll::Pending => Ok(None),
        }
    }
}

const READABLE: Events = Events::from_bits(app_abi::raw::WS_EV_READABLE);
const WRITABLE: Events = Events::from_bits(app_abi::raw::WS_EV_WRITABLE);

impl RawStream for PipeStream {
    fn read(&self, buf: &mut [u8]) -> Io {
        let mut rb = ReadBuf::new(buf);
        match self.poll(READABLE, |end, cx| end.poll_read(cx, &mut rb)) {
            Ok(Some(())) if rb.filled().is_empty() => Io::End,
            Ok(Some(())) => Io::Done(rb.filled().len()),
            Ok(None) => Io::Pending,
            Err(()) => Io::Failed,
        }
    }

    fn write(&self, buf: &[u8]) -> Io {
        match self.poll(WRITABLE, |end, cx| end.poll_write(cx, buf)) {
            Ok(Some(n)) => Io::Done(n),
            Ok(None) => Io::Pending,
            Err(()) => Io::Failed,
        }
    }

    fn close(&self) {
        self.end.lock().unwrap().take();
    }
}

/// Plays the server: records the 101's fields and hands the client's end of the pipe to the test.
#[derive(Default)]
struct UpgradeHost {
    started: Vec<u16>,
    upgraded: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    client: Option<DuplexStream>,
}

impl TryReadSource for UpgradeHost {
    fn try_read(&mut self, _buf: &mut [u8]) -> TryRead {
        TryRead::End
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

impl StepHost for UpgradeHost {
    fn start(&mut self, parts: &http::response::Parts, _length: Option<u64>) -> Result<(), String> {
        let _ = head_fields(parts, None).count();
        self.started.push(parts.status.as_u16());
        Ok(())
    }

    fn waker(&mut self) -> Option<Box<dyn Wake>> {
        Some(Box::new(NoWake))
    }

    fn upgrade(
        &mut self,
        parts: &http::response::Parts,
        slot: &Arc<StreamSlot>,
    ) -> Result<Arc<dyn RawStream>, String> {
        let fields = crate::head_fields::upgrade_fields(parts)
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        self.upgraded.push(fields);
        let (client, server) = tokio::io::duplex(64);
        self.client = Some(client);
        Ok(Arc::new(PipeStream {
            end: Mutex::new(Some(server)),
            slot: slot.clone(),
        }))
    }
}

fn logger() -> Logger {
    // SAFETY: a null host makes the logger write to stderr; nothing is dereferenced.
    unsafe { Logger::from_raw(core::ptr::null(), core::ptr::null()) }
}

/// An unchanged axum WebSocket echo route.
fn echo_router() -> axum::Router {
    async fn echo(mut socket: WebSocket) {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) || socket.send(msg).await.is_err() {
                return;
            }
        }
    }
    axum::Router::new().route(
        "/ws",
        axum::routing::get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(echo) }),
    )
}

fn ws_request() -> http::Request<()> {
    http::Request::builder()
        .uri("/ws")
        .header("host", "localhost")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(())
        .unwrap()
}

/// Steps the exchange until it ends (a route that answers at once needs one step).
fn run<S, B>(ex: &mut Exchange<S, B>, host: &mut UpgradeHost) -> &'static str
where
    S: tower_service::Service<http::Request<crate::RequestBody>, Response = http::Response<B>>,
    S::Error: Into<crate::BoxError>,
    B: http_body::Body,
    B::Error: Into<crate::BoxError>,
{
    for _ in 0..100 {
        match ex.step(host) {
            Next::End => return "end",
            Next::Error => return "error",
            Next::Chunk(_) => {}
            Next::Pending => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    "still pending"
}

fn exchange_for(
    mut req: http::Request<()>,
    rt: &tokio::runtime::Runtime,
) -> Exchange<axum::Router, axum::body::Body> {
    let probe = probe(&mut req, rt.handle()).expect("a probe for an upgrade request");
    let req = req.map(|()| crate::RequestBody::empty());
    Exchange::new(
        echo_router(),
        req,
        None,
        None,
        Some(probe),
        AppRuntime::new(rt.handle().clone()),
        logger(),
    )
}

#[test]
fn an_axum_websocket_route_echoes_through_the_servers_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut ex = exchange_for(ws_request(), &rt);
    let mut host = UpgradeHost::default();
    assert_eq!(run(&mut ex, &mut host), "end");
    assert!(
        host.started.is_empty(),
        "a 101 goes through upgrade, not start_response"
    );
    let fields = &host.upgraded[0];
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(field("upgrade").as_deref(), Some("websocket"));
    // RFC 6455's example key and its accept value: axum computed it from the real request.
    assert_eq!(
        field("sec-websocket-accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(
        field("connection"),
        None,
        "the server writes Connection itself"
    );
    // axum's router adds Content-Length: 0 from the empty body; a 101 has none.
    assert_eq!(field("content-length"), None);
    let client = host.client.take().unwrap();
    rt.block_on(async move {
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        for i in 0..20 {
            let text = format!("message {i}");
            ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
                .await
                .unwrap();
            let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("an echo within 5 s")
                .unwrap()
                .unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
        // 200 KiB in one message: more than the pipe holds, so both directions pend and resume.
        let big = vec![7u8; 200 * 1024];
        ws.send(tokio_tungstenite::tungstenite::Message::binary(big.clone()))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_data().as_ref(), &big[..]);
        ws.close(None).await.unwrap();
    });
    drop(ex);
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn a_rejected_upgrade_is_answered_as_any_response_and_hyper_lets_go() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut req = ws_request();
    req.headers_mut().remove("sec-websocket-key");
    let mut ex = exchange_for(req, &rt);
    let mut host = UpgradeHost::default();
    // axum's 400 for the missing key goes out through start_response; a body follows.
    let _ = run(&mut ex, &mut host);
    assert_eq!(host.started, vec![400]);
    assert!(host.upgraded.is_empty());
    drop(ex);
    rt.shutdown_timeout(Duration::from_secs(1));
}
