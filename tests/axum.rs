//! The axum sample app (`sample-apps/axum-app`) on webserver — through `webserver-tower` and the
//! ABI 1.1 deferred path — against the very same `router()` on plain `axum::serve` (the crate's
//! `axum-serve` binary): the same requests must get the same answers, and the async parts (timers,
//! server-sent events, streamed uploads) must work without a serving thread per waiting request.
//!
//! Needs `cargo build --workspace` first (the cdylib and `axum-serve` come from target/debug).

mod common;
mod http2_support;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The sample app's pause between server-sent events.
const EVENT_INTERVAL: Duration = Duration::from_millis(100);
/// Requests that await a timer, sent at once to a server with two serving threads.
const CONCURRENT_SLEEPS: usize = 200;
/// How long each of them sleeps.
const SLEEP_MS: u64 = 500;
/// The bound for all of them: a thread per waiting request would need
/// CONCURRENT_SLEEPS × SLEEP_MS / 2 threads = 50 s; parked requests need about SLEEP_MS.
const CONCURRENT_SLEEPS_WITHIN: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The two servers
// ---------------------------------------------------------------------------------------------

/// webserver serving the axum app with two serving threads (as the issue's numbers ask).
fn webserver() -> ServerBuilder {
    sample_server("axum_app").args(["--threads", "2"])
}

/// One request on a fresh connection (`Connection: close`); Content-Length when there is a body.
fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut conn = Conn::connect(addr);
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    conn.send(head);
    conn.send(body);
    if method == "HEAD" {
        conn.read_head_response()
    } else {
        conn.read_response()
    }
}

/// What both servers must agree on: status, the headers the app sets (and the length hyper
/// derives from the body), the body.
fn essence(resp: &Response) -> String {
    let header = |name: &str| resp.header(name).unwrap_or("-").to_owned();
    format!(
        "{} content-type={} content-length={} x-app={} allow={} cache-control={}\n{}",
        resp.status,
        header("content-type"),
        header("content-length"),
        header("x-app"),
        header("allow"),
        header("cache-control"),
        String::from_utf8_lossy(&resp.body)
    )
}

/// FNV-1a, as `/upload` computes it.
fn fnv1a(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

// ---------------------------------------------------------------------------------------------
// Same answers
// ---------------------------------------------------------------------------------------------

/// The header fields reach the router as `axum::serve` hands them over: the usual names, custom
/// ones in any case, a long one, more fields than the adapter gathers on its stack, empty values,
/// tabs and obs-text bytes in values; a name with an underscore is the server's to drop.
#[test]
fn header_fields_reach_the_router_as_axum_serve_hands_them_over() {
    let ws = webserver().start();
    let axum = AxumServe::start();
    let long = format!("X-{}", "Long".repeat(30));
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("X-Field-{i}"), format!("value {i}")))
        .collect();
    let mut fields: Vec<(&str, &str)> = vec![
        ("User-Agent", "test/1.0"),
        ("Accept", "*/*"),
        ("Accept-Encoding", "gzip, br"),
        ("Cookie", "a=1; b=2"),
        ("Authorization", "Bearer x.y.z"),
        ("If-None-Match", "\"abc\""),
        ("Range", "bytes=0-9"),
        ("x-lower", "lower"),
        ("X-UPPER", "UPPER"),
        ("X-Empty", ""),
        ("X-Tab", "a\tb"),
        ("X-Obs", "caf\u{e9}"),
        (&long, "long"),
    ];
    fields.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let ours = send(ws.addr(), "GET", "/headers", &fields, b"");
    let theirs = send(axum.addr, "GET", "/headers", &fields, b"");
    assert_eq!(ours.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&ours.body),
        String::from_utf8_lossy(&theirs.body),
        "webserver (left) and axum::serve (right) differ"
    );
    assert!(
        String::from_utf8_lossy(&ours.body).contains("x-field-39: value 39\n"),
        "{}",
        String::from_utf8_lossy(&ours.body)
    );
    let underscore = send(ws.addr(), "GET", "/headers", &[("X_Under", "1")], b"");
    assert!(
        !String::from_utf8_lossy(&underscore.body).contains("x_under"),
        "{}",
        String::from_utf8_lossy(&underscore.body)
    );
}

#[test]
fn repeated_fields_and_an_encoded_slash_reach_the_router_as_axum_serve_hands_them_over() {
    // The adapter builds the request from the head the server parsed (ABI 1.3 request_parts):
    // repeated fields stay separate (the environ joins them with ", " and "; ") and the target
    // is the one sent (PATH_INFO decodes %2F to /).
    let ws = webserver().start();
    let axum = AxumServe::start();
    let fields = [
        ("X-Tag", "a"),
        ("Cookie", "c=1"),
        ("x-tag", "b"),
        ("Cookie", "d=2"),
        ("Accept", "text/html"),
        ("ACCEPT", "*/*"),
    ];
    for (target, fields) in [("/headers", &fields[..]), ("/nope/a%2Fb%2f?x=%2F", &[])] {
        let ours = send(ws.addr(), "GET", target, fields, b"");
        let theirs = send(axum.addr, "GET", target, fields, b"");
        assert_eq!(
            String::from_utf8_lossy(&ours.body),
            String::from_utf8_lossy(&theirs.body),
            "{target}: webserver (left) and axum::serve (right) differ"
        );
    }
    let ours = send(ws.addr(), "GET", "/headers", &fields, b"").text();
    assert!(ours.contains("x-tag: a\nx-tag: b\n"), "{ours}");
    assert_eq!(
        send(ws.addr(), "GET", "/nope/a%2Fb", &[], b"").text(),
        "no route for GET /nope/a%2Fb\n"
    );
}

#[test]
fn over_http2_the_router_gets_the_fields_and_uri_as_hyper_hands_them_over() {
    // hyper's HTTP/2 server hands a service the URI h2 made of :scheme, :authority and :path,
    // no Host field made up from :authority, and the fields one by one, lowercase, as sent.
    use http2_support::{h2_connect, read_body, runtime};
    let server = webserver().args(["--http2", "on"]).start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (mut send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let request = http::Request::get(format!("http://{addr}/headers"))
            .header("x-tag", "a")
            .header("user-agent", "h2-test")
            .header("x-tag", "b")
            .header("x_under", "dropped")
            .header("x-empty", "")
            .body(())
            .unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let body = String::from_utf8(read_body(response).await.unwrap()).unwrap();
        assert_eq!(body, "x-tag: a\nx-tag: b\nuser-agent: h2-test\nx-empty: \n");

        let mut send = send.ready().await.unwrap();
        let (response, _) = send
            .send_request(http2_support::get(addr, "/nope/a%2Fb?q=1"), true)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 404);
        let body = String::from_utf8(read_body(response).await.unwrap()).unwrap();
        assert_eq!(
            body,
            format!("no route for GET http://{addr}/nope/a%2Fb?q=1\n")
        );
    });
}

/// Over HTTP/2, a streamed body that is whole after its first chunk (and has no trailers) goes
/// out with its length in the HEADERS frame, as one DATA frame, as hyper sends it; it is not
/// written ahead of its end, which would send the head without a length and end the stream
/// with an empty DATA frame.
#[test]
fn over_http2_a_one_chunk_stream_is_answered_with_its_length() {
    use http2_support::{h2_connect, read_body, runtime};
    let server = webserver().args(["--http2", "on"]).start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (mut send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let (response, _) = send
            .send_request(http2_support::get(addr, "/bytes?n=10"), true)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-length")
                .map(|v| v.as_bytes()),
            Some(&b"10"[..]),
            "{:?}",
            response.headers()
        );
        assert_eq!(read_body(response).await.unwrap(), b"xxxxxxxxxx");
    });
}

/// Over HTTP/2, a streamed response's HEADERS frame goes out when the handler returns, not with
/// its first body byte: an SSE client sees the response start before the first event, which comes
/// [`EVENT_INTERVAL`] later (the stream parks with its head taken and no body yet).
#[test]
fn over_http2_a_streamed_response_starts_before_its_first_event() {
    use http2_support::{h2_connect, runtime};
    let server = webserver().args(["--http2", "on"]).start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (mut send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let (response, _) = send
            .send_request(http2_support::get(addr, "/events?n=1"), true)
            .unwrap();
        let response = response.await.unwrap();
        let head_at = Instant::now();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = body.data().await.expect("an event").unwrap();
        let gap = head_at.elapsed();
        assert_first_event_came_well_after_the_head(&first, gap);
    });
}

#[test]
fn the_same_requests_get_the_same_answers_from_webserver_and_axum_serve() {
    let ws = webserver().start();
    let axum = AxumServe::start();
    let item = br#"{"name":"lamp","tags":["home","light"],"price_cents":1250}"#;
    let json = [("Content-Type", "application/json")];
    let upload = pseudo_random_bytes(300_000, 7);
    #[allow(clippy::type_complexity)]
    let requests: Vec<(&str, &str, &[(&str, &str)], &[u8])> = vec![
        ("GET", "/", &[], b""),
        ("HEAD", "/", &[], b""),
        ("POST", "/", &[], b""),
        ("GET", "/hello/world", &[], b""),
        (
            "GET",
            "/hello/J%C3%BCrgen%20X?greeting=Gr%C3%BC%C3%9F%20dich",
            &[],
            b"",
        ),
        ("GET", "/nope", &[], b""),
        ("POST", "/json", &json, item),
        ("POST", "/json", &json, br#"{"name": "lamp", "#),
        ("POST", "/json", &json, br#"{"name":"lamp"}"#),
        ("POST", "/json", &[], item),
        ("GET", "/counter", &[], b""),
        ("POST", "/counter", &[], b""),
        ("POST", "/counter", &[], b""),
        ("GET", "/counter", &[], b""),
        ("GET", "/sleep?ms=20", &[], b""),
        ("GET", "/sleep", &[], b""),
        ("GET", "/events?n=3", &[], b""),
        // Its first chunk is produced in `call` and handed over by the server's first `next`.
        ("GET", "/bytes?n=150000", &[], b""),
        ("POST", "/upload", &[], &upload),
    ];
    for (method, target, headers, body) in requests {
        let ours = send(ws.addr(), method, target, headers, body);
        let theirs = send(axum.addr, method, target, headers, body);
        assert_eq!(
            essence(&ours),
            essence(&theirs),
            "{method} {target}: webserver (left) and axum::serve (right) differ"
        );
    }
    // And a few of them spelled out, so that "both wrong the same way" cannot pass.
    let created = send(ws.addr(), "POST", "/json", &json, item);
    assert_eq!(created.status, 201);
    assert_eq!(
        created.header("x-app"),
        Some("axum-app"),
        "the tower-http layer ran"
    );
    let v = created.json();
    assert_eq!(v["item"]["name"], "lamp");
    assert_eq!(v["item"]["tags"][1], "light");
    assert_eq!(v["total_cents"], 2500);
    let hello = send(
        ws.addr(),
        "GET",
        "/hello/J%C3%BCrgen%20X?greeting=Servus",
        &[],
        b"",
    );
    assert_eq!(hello.text(), "Servus, Jürgen X!\n");
    let uploaded = send(ws.addr(), "POST", "/upload", &[], &upload).json();
    assert_eq!(uploaded["bytes"], upload.len());
    assert_eq!(uploaded["fnv1a"], fnv1a(&upload));
}

/// A body whose bytes reach its Content-Length is over then (`WS_APP_LENGTH_ENDS_BODY`): the
/// connection's next request is answered without waiting for the stream behind it to end.
#[test]
fn a_body_is_over_at_its_length_without_waiting_for_its_stream_to_end() {
    let ws = webserver().start();
    let mut conn = ws.connect();
    let started = Instant::now();
    conn.send("GET /late-end HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = conn.read_response();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.text(), "done\n");
    conn.send("GET /hello/next HTTP/1.1\r\nHost: x\r\n\r\n");
    let second = conn.read_response();
    assert_eq!(second.text(), "Hello, next!\n");
    assert!(
        // The stream ends 10 s after its bytes (the app's `LATE_END`).
        started.elapsed() < Duration::from_secs(5),
        "the next request waited {:?} for the first body's end",
        started.elapsed()
    );
}

#[test]
fn keep_alive_connections_serve_request_after_request() {
    let ws = webserver().start();
    let mut conn = ws.connect();
    for i in 0..5 {
        conn.send(format!("GET /hello/n{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(resp.text(), format!("Hello, n{i}!\n"));
        assert!(!resp.header_has_token("connection", "close"));
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting without a thread
// ---------------------------------------------------------------------------------------------

/// `Threads:` of /proc/PID/status.
fn thread_count(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

#[test]
fn two_hundred_concurrent_sleeps_on_two_serving_threads_all_answer_together() {
    let ws = webserver().env("RUST_LOG", "info,access=warn").start();
    let pid = worker_pid(&ws);
    // Warm up (the runtime's threads start lazily), then count the worker's threads.
    assert_eq!(ws.get("/sleep?ms=1").status, 200);
    let threads_idle = thread_count(pid);

    let started = Instant::now();
    let clients: Vec<_> = (0..CONCURRENT_SLEEPS)
        .map(|_| {
            let addr = ws.addr();
            thread::spawn(move || {
                let mut conn = Conn::connect(addr);
                conn.send(format!(
                    "GET /sleep?ms={SLEEP_MS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                ));
                conn.try_read_response()
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(SLEEP_MS / 2));
    let threads_busy = thread_count(pid);
    let mut failures = Vec::new();
    for client in clients {
        match client.join().unwrap() {
            Ok(resp) if resp.status == 200 && resp.text() == format!("slept {SLEEP_MS} ms\n") => {}
            Ok(resp) => failures.push(format!("{} {:?}", resp.status, resp.text())),
            Err(e) => failures.push(e),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(
        elapsed < CONCURRENT_SLEEPS_WITHIN,
        "{CONCURRENT_SLEEPS} sleeps of {SLEEP_MS} ms took {elapsed:?} on 2 threads: requests wait on threads"
    );
    assert_eq!(
        threads_busy, threads_idle,
        "the worker grew threads while {CONCURRENT_SLEEPS} requests waited"
    );
}

/// `VmRSS:` of /proc/PID/status, in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// A streamed download far larger than the memory it may cost while its client does not read.
const UNREAD_DOWNLOAD_BYTES: usize = 96 << 20;
/// What the worker may grow by while a peer is slow (socket buffers, a few chunks in flight).
const RSS_GROWTH_LIMIT_KIB: u64 = 24 << 10;

#[test]
fn a_client_that_does_not_read_holds_the_producer_back() {
    let ws = webserver().start();
    let pid = worker_pid(&ws);
    assert_eq!(ws.get("/bytes?n=100000").body.len(), 100_000);
    let rss_before = rss_kib(pid);
    let mut conn = ws.connect();
    conn.send(format!(
        "GET /bytes?n={UNREAD_DOWNLOAD_BYTES} HTTP/1.1\r\nHost: x\r\n\r\n"
    ));
    thread::sleep(Duration::from_secs(1));
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(
        grown < RSS_GROWTH_LIMIT_KIB,
        "the worker grew by {grown} KiB while a client left a {UNREAD_DOWNLOAD_BYTES}-byte body unread"
    );
    // Then everything arrives.
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    let mut received = 0;
    while let Some(chunk) = conn.read_chunk() {
        received += chunk.len();
    }
    assert_eq!(received, UNREAD_DOWNLOAD_BYTES);
}

/// Above the app's general body limit (64 MiB, tower-http's layer): `/upload` has its own.
const LARGE_UPLOAD_BYTES: usize = (64 << 20) + 1;

/// `/upload` streams its body in constant memory, so the app's 64 MiB limit for the other routes
/// must not refuse it (bench/deferred.sh streams 1 GiB); the server's `--max-body` still applies.
#[test]
fn an_upload_beyond_the_apps_general_body_limit_reaches_the_streaming_handler() {
    let ws = webserver().args(["--max-body", "100000000"]).start();
    let mut conn = ws.connect();
    conn.send(format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {LARGE_UPLOAD_BYTES}\r\n\r\n"
    ));
    let mut writer = conn.stream.try_clone().unwrap();
    let uploader = thread::spawn(move || {
        use std::io::Write;
        let piece = vec![b'u'; 1 << 20];
        let mut left = LARGE_UPLOAD_BYTES;
        while left > 0 {
            let n = left.min(piece.len());
            // A refusal answers early and closes: the rest of the body has nowhere to go.
            if writer.write_all(&piece[..n]).is_err() {
                break;
            }
            left -= n;
        }
    });
    let resp = conn.read_response();
    uploader.join().unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["bytes"], LARGE_UPLOAD_BYTES);
}

/// An upload far larger than the memory it may cost while its handler does not read.
const SLOW_UPLOAD_BYTES: usize = 48 << 20;

#[test]
fn a_handler_that_reads_slowly_holds_the_uploader_back() {
    let ws = webserver().args(["--max-body", "100000000"]).start();
    let pid = worker_pid(&ws);
    let rss_before = rss_kib(pid);
    let mut conn = ws.connect();
    conn.send(format!(
        "POST /upload?pause_ms=1500 HTTP/1.1\r\nHost: x\r\nContent-Length: {SLOW_UPLOAD_BYTES}\r\n\r\n"
    ));
    let mut writer = conn.stream.try_clone().unwrap();
    let uploader = thread::spawn(move || {
        use std::io::Write;
        let piece = vec![b'u'; 1 << 20];
        for _ in 0..SLOW_UPLOAD_BYTES / piece.len() {
            writer.write_all(&piece).unwrap();
        }
    });
    thread::sleep(Duration::from_secs(1));
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(
        grown < RSS_GROWTH_LIMIT_KIB,
        "the worker grew by {grown} KiB while its handler paused a {SLOW_UPLOAD_BYTES}-byte upload"
    );
    uploader.join().unwrap();
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["bytes"], SLOW_UPLOAD_BYTES);
}

#[test]
fn server_sent_events_arrive_one_by_one() {
    let ws = webserver().start();
    let mut conn = ws.connect();
    conn.send("GET /events?n=5 HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    let mut events = Vec::new();
    while let Some(chunk) = conn.read_chunk() {
        events.push(String::from_utf8(chunk).unwrap());
    }
    let expected: Vec<String> = (0..5)
        .map(|i| format!("event: tick\nid: {i}\ndata: tick {i}\n\n"))
        .collect();
    assert_eq!(events, expected, "one event per chunk, in order");
    // The connection stays usable after the stream ended.
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().text(), "Hello, world!\n");
}

/// A streamed response's head goes out when the handler returns, not with its first event,
/// which comes [`EVENT_INTERVAL`] later: an SSE client sees the stream open at once.
#[test]
fn a_streamed_response_starts_before_its_first_event() {
    let ws = webserver().start();
    let mut conn = ws.connect();
    conn.send("GET /events?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head();
    let head_at = Instant::now();
    assert_eq!(head.status, 200);
    let first = conn.read_chunk().expect("an event");
    let gap = head_at.elapsed();
    assert_first_event_came_well_after_the_head(&first, gap);
}

/// `first` is `/events`' first event, which came `gap` after the head: had the head waited for
/// it, they would have come together.
fn assert_first_event_came_well_after_the_head(first: &[u8], gap: Duration) {
    assert!(
        String::from_utf8_lossy(first).contains("tick 0"),
        "{first:?}"
    );
    assert!(
        gap >= EVENT_INTERVAL / 3,
        "the head came {gap:?} before the first event, which comes {EVENT_INTERVAL:?} after the handler returns"
    );
}

#[test]
fn a_chunked_upload_streams_through_to_the_handler() {
    let ws = webserver().start();
    let body = pseudo_random_bytes(4 << 20, 11);
    let mut conn = ws.connect();
    conn.send("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.chunks(100_000) {
        conn.send(format!("{:x}\r\n", piece.len()));
        conn.send(piece);
        conn.send("\r\n");
    }
    conn.send("0\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{resp:?}");
    let v = resp.json();
    assert_eq!(v["bytes"], body.len());
    assert_eq!(v["fnv1a"], fnv1a(&body));
}

#[test]
fn a_panicking_handler_is_a_500_and_one_log_line_and_the_app_serves_on() {
    let ws = webserver().start();
    let resp = ws.get("/panic");
    assert_eq!(resp.status, 500);
    assert!(
        ws.wait_for_log(IO_TIMEOUT, |l| l
            .contains("panic in app: the /panic route panics on purpose"))
            .is_some(),
        "no panic log line:\n{}",
        ws.stderr()
    );
    assert_eq!(ws.get("/").text(), "Hello, world!\n");
}

#[test]
fn timeout_answers_504_for_a_parked_request_and_cancels_it() {
    let ws = webserver().args(["--timeout", "1"]).start();
    let started = Instant::now();
    let resp = ws.get("/sleep?ms=20000");
    assert_eq!(resp.status, 504, "{resp:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    poll(
        IO_TIMEOUT,
        "the timed-out handler's future to be dropped",
        || (ws.get("/stats").json()["sleeps_cancelled"] == 1).then_some(()),
    );
    assert_eq!(ws.get("/sleep?ms=10").status, 200, "the app serves on");
}

#[test]
fn a_client_that_leaves_cancels_its_parked_request() {
    let ws = webserver().start();
    let cancelled = || {
        ws.get("/stats").json()["sleeps_cancelled"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(cancelled(), 0);
    let mut conn = ws.connect();
    conn.send("GET /sleep?ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(cancelled(), 0, "the sleep is still parked");
    drop(conn);
    poll(IO_TIMEOUT, "the handler's future to be dropped", || {
        (cancelled() == 1).then_some(())
    });
}

#[test]
fn app_arguments_set_the_runtime_threads() {
    let ws = webserver().app_args(["--worker-threads", "3"]).start();
    assert!(
        ws.wait_for_log(START_TIMEOUT, |l| l
            .contains("tokio runtime with 3 worker threads"))
            .is_some(),
        "{}",
        ws.stderr()
    );
    assert_eq!(ws.get("/").status, 200);
    let refused = webserver()
        .app_args(["--worker-threads=none"])
        .run_to_exit();
    assert_load_error(&refused, &["--worker-threads needs a positive number"]);
}

// ---------------------------------------------------------------------------------------------
// Hot swap under load
// ---------------------------------------------------------------------------------------------

/// Load clients during the swaps.
const SWAP_CLIENTS: usize = 6;
/// Swaps A → B → A → B.
const SWAPS: usize = 4;

/// A second build of the axum library: the copy's `BUILD` marker ends in `letter` instead of `A`
/// (same length, so nothing else in the file moves).
fn axum_build(letter: u8) -> Vec<u8> {
    let mut bytes = std::fs::read(sample_app("axum_app")).unwrap();
    let marker = b"axum-app build A";
    let mut found = 0;
    let mut from = 0;
    while let Some(pos) = bytes[from..]
        .windows(marker.len())
        .position(|w| w == marker)
    {
        let end = from + pos + marker.len();
        bytes[end - 1] = letter;
        found += 1;
        from = end;
    }
    assert!(found > 0, "the BUILD marker is not in libaxum_app.so");
    bytes
}

/// What the load saw: (successful requests, builds that answered `/build`, failures).
type Tally = (u64, Vec<String>, Vec<String>);

/// Keep-alive clients alternating a parked request (`/sleep`) and `/build`; they count the
/// builds that answered and record every failure.
struct SwapLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<thread::JoinHandle<Tally>>,
}

impl SwapLoad {
    fn start(addr: SocketAddr) -> SwapLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = (0..SWAP_CLIENTS)
            .map(|client| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let (mut ok, mut builds, mut failures) = (0, Vec::new(), Vec::new());
                    let mut conn: Option<Conn> = None;
                    let mut ask_build = false;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        ask_build = !ask_build;
                        let target = if ask_build { "/build" } else { "/sleep?ms=30" };
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => match Conn::try_connect(addr) {
                                Ok(c) => conn.insert(c),
                                Err(e) => {
                                    failures.push(format!("client {client}: {e}"));
                                    continue;
                                }
                            },
                        };
                        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
                        match c.try_send(request).and_then(|()| c.try_read_response()) {
                            Ok(resp) if resp.status == 200 => {
                                ok += 1;
                                if target == "/build" {
                                    builds.push(resp.text());
                                }
                                if resp.header_has_token("connection", "close") {
                                    conn = None;
                                }
                            }
                            Ok(resp) => {
                                failures.push(format!("client {client}: {target}: {resp:?}"));
                                conn = None;
                            }
                            Err(e) => {
                                failures.push(format!("client {client}: {target}: {e}"));
                                conn = None;
                            }
                        }
                    }
                    (ok, builds, failures)
                })
            })
            .collect();
        SwapLoad { stop, clients }
    }

    /// Stops the clients: (successful requests, builds seen, failures).
    fn finish(self) -> Tally {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = (0, Vec::new(), Vec::new());
        for client in self.clients {
            let (ok, builds, failures) = client.join().expect("a load client panicked");
            all.0 += ok;
            all.1.extend(builds);
            all.2.extend(failures);
        }
        all
    }
}

#[test]
fn hot_swaps_between_two_axum_builds_under_load_lose_no_request() {
    use common::swap::{hup, install_bytes};
    let builds = [axum_build(b'A'), axum_build(b'B')];
    let dir = fresh_dir("axum-swap");
    let live = dir.join("live.so");
    install_bytes(&builds[0], &live);
    let pid_file = dir.join("ws.pid");
    let mut target = live.into_os_string();
    target.push(":app");
    let ws = server(target)
        .args(["--threads", "2", "-w", "2", "--pid"])
        .args([pid_file.as_os_str()])
        .env("RUST_LOG", "info,access=warn")
        .start();
    wait_first_ready(&pid_file);
    assert_eq!(ws.get("/build").text(), "axum-app build A");

    let load = SwapLoad::start(ws.addr());
    thread::sleep(Duration::from_millis(300));
    for swap in 1..=SWAPS {
        let (bytes, name) = if swap % 2 == 1 {
            (&builds[1], "axum-app build B")
        } else {
            (&builds[0], "axum-app build A")
        };
        install_bytes(bytes, &dir.join("live.so"));
        let (state, _, rest) = hup(&pid_file);
        assert_eq!(state, "ready", "swap {swap} failed: {rest}");
        assert_eq!(ws.get("/build").text(), name, "after swap {swap}");
        thread::sleep(Duration::from_millis(300));
    }
    let (ok, seen, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "failed requests during swaps: {failures:#?}"
    );
    assert!(ok > 100, "too little load to prove anything: {ok} requests");
    for name in ["axum-app build A", "axum-app build B"] {
        assert!(seen.iter().any(|b| b == name), "the load never saw {name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Stopping with a blocking task that never ends
// ---------------------------------------------------------------------------------------------

/// The graceful timeout of the stop tests.
const GRACEFUL_SECS: u64 = 2;
/// How much later than the graceful timeout the stop may end: less than the master's own margin
/// (2 s) before it kills the workers, so a worker killed by the master does not pass.
const STOP_SLACK: Duration = Duration::from_millis(1500);

/// The log lines of a shutdown that abandoned a blocking task: the adapter's and the worker's.
fn assert_abandoned_logged(ws: &Server) {
    for needle in [
        "thread(s) of the app's tokio runtime still running",
        "the app's shutdown has not returned; exiting without waiting for it",
    ] {
        assert!(
            ws.wait_for_log(IO_TIMEOUT, |l| l.contains(needle))
                .is_some(),
            "no {needle:?} line:\n{}",
            ws.stderr()
        );
    }
}

#[test]
fn term_stops_within_the_graceful_timeout_despite_a_blocking_task_that_never_ends() {
    let mut ws = webserver()
        .args(["-w", "1", "--graceful-timeout", &GRACEFUL_SECS.to_string()])
        .start();
    let worker = worker_pid(&ws);
    assert_eq!(ws.get("/block-forever").status, 200);
    let stopped = Instant::now();
    ws.signal(libc::SIGTERM);
    let limit = Duration::from_secs(GRACEFUL_SECS) + STOP_SLACK;
    let status = ws.wait_exit(limit + Duration::from_secs(5));
    let took = stopped.elapsed();
    assert!(
        status.is_some(),
        "the server did not stop:\n{}",
        ws.stderr()
    );
    assert!(
        took < limit,
        "the stop took {took:?} (graceful timeout {GRACEFUL_SECS} s):\n{}",
        ws.stderr()
    );
    assert!(
        !process_exists(worker),
        "the worker {worker} is still there"
    );
    assert!(
        !ws.stderr().contains("did not stop in time; killing"),
        "the master had to kill the worker:\n{}",
        ws.stderr()
    );
    assert_abandoned_logged(&ws);
}

#[test]
fn a_hot_swap_retires_a_worker_with_a_blocking_task_that_never_ends() {
    use common::swap::hup;
    let dir = fresh_dir("axum-stuck-swap");
    let pid_file = dir.join("ws.pid");
    let mut target = sample_app("axum_app").into_os_string();
    target.push(":app");
    let ws = server(target)
        .args(["-w", "1", "--graceful-timeout", &GRACEFUL_SECS.to_string()])
        .args([std::ffi::OsStr::new("--pid"), pid_file.as_os_str()])
        .start();
    wait_first_ready(&pid_file);
    let old = worker_pid(&ws);
    assert_eq!(ws.get("/block-forever").status, 200);
    let (state, _, rest) = hup(&pid_file);
    // The old workers are told to stop once the new generation is ready, about now (however
    // long the new one took to start).
    let swapped = Instant::now();
    assert_eq!(state, "ready", "the swap failed: {rest}");
    let limit = Duration::from_secs(GRACEFUL_SECS) + STOP_SLACK;
    poll(
        limit + Duration::from_secs(5),
        "the old worker to exit",
        || (!process_exists(old)).then_some(()),
    );
    let took = swapped.elapsed();
    assert!(
        took < limit,
        "the old worker took {took:?} to exit (graceful timeout {GRACEFUL_SECS} s):\n{}",
        ws.stderr()
    );
    assert_abandoned_logged(&ws);
    assert_eq!(ws.get("/").status, 200, "the new generation serves");
}

// ---------------------------------------------------------------------------------------------
// The request target as the router gets it
// ---------------------------------------------------------------------------------------------

#[test]
fn the_request_target_reaches_the_router_as_axum_serve_hands_it_over() {
    let ws = webserver().start();
    let axum = AxumServe::start();
    for (method, target) in [
        ("OPTIONS", "*"),
        ("GET", "/nope?q=caf\u{e9}&r=caf%C3%A9&s=a/b?c"),
        ("GET", "/hello/x?greeting=Gr\u{fc}\u{df}+dich"),
    ] {
        let ours = send(ws.addr(), method, target, &[], b"");
        let theirs = send(axum.addr, method, target, &[], b"");
        assert_eq!(
            essence(&ours),
            essence(&theirs),
            "{method} {target}: webserver (left) and axum::serve (right) differ"
        );
    }
    assert_eq!(
        send(ws.addr(), "OPTIONS", "*", &[], b"").text(),
        "no route for OPTIONS *\n"
    );
    assert_eq!(
        send(ws.addr(), "GET", "/nope?q=caf\u{e9}", &[], b"").text(),
        "no route for GET /nope?q=caf\u{e9}\n",
        "a UTF-8 query reaches the router as sent"
    );
}

#[test]
fn a_query_with_bytes_a_uri_cannot_hold_reaches_the_router_escaped() {
    // axum::serve (hyper) answers 400 to these; the server accepted the request, so the router
    // gets it, with those bytes percent-encoded: the Query extractor decodes the same value.
    let ws = webserver().start();
    let hello = send(ws.addr(), "GET", r#"/hello/x?greeting="<hi>""#, &[], b"");
    assert_eq!(hello.status, 200, "{hello:?}\n{}", ws.stderr());
    assert_eq!(hello.text(), "\"<hi>\", x!\n");
    let echoed = send(ws.addr(), "GET", r#"/nope?q="<>"&r=1"#, &[], b"");
    assert_eq!(echoed.text(), "no route for GET /nope?q=%22%3C%3E%22&r=1\n");
    assert!(
        !ws.stderr().contains("ERROR"),
        "a request the server accepted is no error:\n{}",
        ws.stderr()
    );
}

/// `webserver check` runs the router once through the ABI: the adapter asks for the request's
/// parsed parts there too, and gets them, instead of an ERROR saying its descriptor lacks the flag.
#[test]
fn check_hands_the_router_its_request_parts_without_an_error() {
    let lib = sample_app("axum_app");
    let out = std::process::Command::new(webserver_exe())
        .args(["check", &format!("{}:app", lib.display())])
        .output()
        .expect("run webserver check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check failed: {stdout}{stderr}");
    assert!(stdout.contains("GET / -> 200"), "{stdout}");
    assert!(
        !stderr.contains("ERROR"),
        "check logged an error for a healthy app: {stderr}"
    );
}
