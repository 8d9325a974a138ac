//! A real axum app: path and query extractors, JSON in and out, shared state, tower-http layers,
//! server-sent events, a handler that awaits a timer, a streamed upload, a blocking task that never
//! ends, a WebSocket echo (`/ws`) and a broadcast chat (`/chat`) on axum's own `WebSocketUpgrade`.
//!
//! [`router`] is the whole app. The same function is exported to webserver (the last line of this
//! file: `export_service!`) and served by plain `axum::serve` (`src/bin/axum-serve.rs`), and the
//! end-to-end tests (`tests/axum.rs`) compare the two answer for answer.

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// The interval between two server-sent events.
const EVENT_INTERVAL: Duration = Duration::from_millis(100);
/// `/events` sends this many events unless `?n=` says otherwise.
const DEFAULT_EVENTS: u32 = 5;
/// `/sleep` waits at most this long, whatever `?ms=` asks.
const MAX_SLEEP_MS: u64 = 60_000;
/// `/bytes` streams its body in chunks of this size.
const BYTES_CHUNK: usize = 64 * 1024;

/// Request bodies above this are refused with 413 (tower-http's limit layer).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// `/upload`'s own limit: it consumes its body chunk by chunk in constant memory, so it takes far
/// more than [`MAX_BODY_BYTES`] (bench/deferred.sh streams 1 GiB); the server's `--max-body` still
/// applies in front of it.
const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// Names this build. `tests/axum.rs` makes a second build of the library by rewriting the last
/// letter in a copy of the file, then hot-swaps between the two under load.
pub const BUILD: &str = "axum-app build A";

/// Messages a `/chat` subscriber that reads too slowly may fall behind by before it skips ahead.
const CHAT_BACKLOG: usize = 1024;

/// Shared state: one per process (each webserver worker process has its own).
struct AppState {
    hits: AtomicU64,
    /// `/sleep` requests dropped before their timer fired (the client left, a timeout).
    sleeps_cancelled: AtomicU64,
    /// What one `/chat` client says, every `/chat` client of this process hears.
    chat: broadcast::Sender<Message>,
}

impl Default for AppState {
    fn default() -> AppState {
        AppState {
            hits: AtomicU64::new(0),
            sleeps_cancelled: AtomicU64::new(0),
            chat: broadcast::channel(CHAT_BACKLOG).0,
        }
    }
}

/// The app. Every route is the same whichever server runs it.
pub fn router() -> Router {
    let state = Arc::new(AppState::default());
    Router::new()
        .route("/", get(|| async { "Hello, world!\n" }))
        .route("/build", get(|| async { BUILD }))
        .route("/hello/{name}", get(hello))
        .route("/headers", get(headers))
        .route("/json", post(echo_json))
        .route("/counter", get(counter).post(count))
        .route("/sleep", get(sleep))
        .route("/stats", get(stats))
        .route("/events", get(events))
        .route("/bytes", get(bytes))
        .route("/late-end", get(late_end))
        .route("/file", get(file))
        .route("/panic", get(panic))
        .route("/block-forever", get(block_forever))
        .route("/ws", get(ws))
        .route("/chat", get(chat))
        .fallback(no_route)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // Added after the layer above, so only its own limit applies (axum layers wrap the routes
        // that exist when `.layer` is called).
        .route(
            "/upload",
            post(upload).layer(RequestBodyLimitLayer::new(MAX_UPLOAD_BYTES)),
        )
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-app"),
            HeaderValue::from_static("axum-app"),
        ))
        .with_state(state)
}

/// The request's header fields as the router got them, one `name: value` line each in the map's
/// order (values as bytes, non-UTF-8 escaped): what a server hands a tower service.
async fn headers(headers: axum::http::HeaderMap) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", value.as_bytes().escape_ascii()))
        .collect()
}

/// 404 naming the method and the URI as the router got them (`OPTIONS *`, a raw query): how a
/// server hands the request target over shows here.
async fn no_route(method: Method, uri: Uri) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!("no route for {method} {uri}\n"),
    )
}

#[derive(Deserialize)]
struct Greeting {
    greeting: Option<String>,
}

async fn hello(Path(name): Path<String>, Query(q): Query<Greeting>) -> String {
    format!("{}, {name}!\n", q.greeting.as_deref().unwrap_or("Hello"))
}

#[derive(Deserialize, Serialize)]
struct Item {
    name: String,
    tags: Vec<String>,
    price_cents: u64,
}

#[derive(Serialize)]
struct Priced {
    item: Item,
    total_cents: u64,
}

/// JSON in, JSON out; malformed JSON is axum's 400/422.
async fn echo_json(Json(item): Json<Item>) -> (StatusCode, Json<Priced>) {
    let total_cents = item.price_cents * item.tags.len().max(1) as u64;
    (StatusCode::CREATED, Json(Priced { item, total_cents }))
}

#[derive(Serialize)]
struct Count {
    hits: u64,
}

async fn counter(State(state): State<Arc<AppState>>) -> Json<Count> {
    Json(Count {
        hits: state.hits.load(Ordering::SeqCst),
    })
}

async fn count(State(state): State<Arc<AppState>>) -> Json<Count> {
    Json(Count {
        hits: state.hits.fetch_add(1, Ordering::SeqCst) + 1,
    })
}

#[derive(Deserialize)]
struct SleepFor {
    ms: u64,
}

/// Awaits a timer: on webserver no serving thread waits meanwhile. A request dropped before its
/// timer fired (the server cancels it when the client leaves) is counted in `/stats`.
async fn sleep(State(state): State<Arc<AppState>>, Query(q): Query<SleepFor>) -> String {
    let ms = q.ms.min(MAX_SLEEP_MS);
    let guard = CountIfDropped(&state.sleeps_cancelled);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    std::mem::forget(guard);
    format!("slept {ms} ms\n")
}

/// Adds one to its counter when dropped (and not forgotten).
struct CountIfDropped<'a>(&'a AtomicU64);

impl Drop for CountIfDropped<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Serialize)]
struct Stats {
    sleeps_cancelled: u64,
}

async fn stats(State(state): State<Arc<AppState>>) -> Json<Stats> {
    Json(Stats {
        sleeps_cancelled: state.sleeps_cancelled.load(Ordering::SeqCst),
    })
}

#[derive(Deserialize)]
struct EventCount {
    n: Option<u32>,
}

/// Server-sent events: `n` events, one every [`EVENT_INTERVAL`], then the stream ends.
async fn events(Query(q): Query<EventCount>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let n = q.n.unwrap_or(DEFAULT_EVENTS);
    let ticks = stream::unfold(0u32, move |i| async move {
        if i >= n {
            return None;
        }
        tokio::time::sleep(EVENT_INTERVAL).await;
        let event = Event::default()
            .event("tick")
            .id(i.to_string())
            .data(format!("tick {i}"));
        Some((Ok(event), i + 1))
    });
    Sse::new(ticks)
}

#[derive(Serialize)]
struct Uploaded {
    bytes: u64,
    /// FNV-1a of the body: proves every byte arrived in order without keeping them.
    fnv1a: String,
}

#[derive(Deserialize)]
struct UploadPace {
    /// Pause this long after the first chunk (a slow consumer).
    pause_ms: Option<u64>,
}

/// Consumes the request body as a stream, chunk by chunk, never holding it whole.
async fn upload(
    Query(pace): Query<UploadPace>,
    body: Body,
) -> Result<Json<Uploaded>, (StatusCode, String)> {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    let mut bytes = 0u64;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")))?;
        if bytes == 0 {
            if let Some(ms) = pace.pause_ms {
                tokio::time::sleep(Duration::from_millis(ms.min(MAX_SLEEP_MS))).await;
            }
        }
        bytes += chunk.len() as u64;
        for &b in chunk.iter() {
            hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    Ok(Json(Uploaded {
        bytes,
        fnv1a: format!("{hash:016x}"),
    }))
}

#[derive(Deserialize)]
struct ByteCount {
    n: usize,
}

/// `n` bytes of `x`, produced chunk by chunk as fast as the server takes them: a client that does
/// not read must hold the producer back, not grow the server's memory.
async fn bytes(Query(q): Query<ByteCount>) -> Body {
    let chunks = (0..q.n).step_by(BYTES_CHUNK).map(move |at| {
        let len = BYTES_CHUNK.min(q.n - at);
        Ok::<_, Infallible>(vec![b'x'; len])
    });
    Body::from_stream(stream::iter(chunks))
}

/// How long `/late-end`'s body takes to end after its bytes.
const LATE_END: Duration = Duration::from_secs(10);

/// `done\n` under its own Content-Length, from a stream that ends only [`LATE_END`] later: the
/// response is whole with its five bytes, and the connection's next request need not wait for
/// the stream's end (webserver-tower declares `WS_APP_LENGTH_ENDS_BODY`).
async fn late_end() -> impl IntoResponse {
    let end = stream::once(async {
        tokio::time::sleep(LATE_END).await;
        Ok::<_, Infallible>("")
    });
    let body = stream::iter([Ok("done\n")]).chain(end);
    (
        [(axum::http::header::CONTENT_LENGTH, "5")],
        Body::from_stream(body),
    )
}

/// The file named by `AXUM_APP_FILE`, handed to webserver to send (ABI 1.2 `send_file`: Range,
/// ETag and 304 are the server's). Only webserver sends it: under plain `axum::serve` the body is
/// empty (use tower-http's `ServeFile` there).
async fn file() -> axum::response::Response {
    let Some(file) = std::env::var_os("AXUM_APP_FILE").and_then(|p| std::fs::File::open(p).ok())
    else {
        return (StatusCode::NOT_FOUND, "no AXUM_APP_FILE\n").into_response();
    };
    let mut response = webserver_tower::file_response(file);
    response.headers_mut().insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// Starts a blocking task that never returns (a stuck driver call, say) and answers at once: the
/// worker must still stop within `--graceful-timeout` (tokio cannot cancel a blocking task).
async fn block_forever() -> &'static str {
    drop(tokio::task::spawn_blocking(|| loop {
        std::thread::sleep(Duration::from_secs(3600));
    }));
    "a blocking task now runs forever\n"
}

/// A WebSocket echo: every text or binary message comes back as it came; a close ends it.
async fn ws(upgrade: WebSocketUpgrade) -> axum::response::Response {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let echo = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                // tungstenite answers pings and the client's close itself; the next `recv` sends
                // the close reply and ends the loop.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
            };
            if socket.send(echo).await.is_err() {
                return;
            }
        }
    })
}

/// A broadcast chat: each text or binary message a client sends goes to every client connected
/// to `/chat` in this process, the sender included (so a client knows when it went out).
async fn chat(
    upgrade: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
) -> axum::response::Response {
    upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        let mut heard = state.chat.subscribe();
        loop {
            tokio::select! {
                said = socket.recv() => match said {
                    Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                        // No receiver can only mean none is left; this client's own is.
                        let _ = state.chat.send(msg);
                    }
                    // The close reply goes out with the next `recv`, which then ends.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => {}
                    Some(Err(_)) | None => return,
                },
                heard_msg = heard.recv() => match heard_msg {
                    Ok(msg) => {
                        if socket.send(msg).await.is_err() {
                            return;
                        }
                    }
                    // Fell behind by more than the backlog: skip ahead, as a chat may.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    })
}

async fn panic() -> &'static str {
    panic!("the /panic route panics on purpose");
}

webserver_tower::export_service!(app, router);
