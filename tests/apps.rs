//! Every sample app served over real HTTP: the Rust ones, the C one, and the failure modes
//! (panics in `call` and in the body, clients leaving mid-stream).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn hello_answers_every_path() {
    let server = sample_server("hello").start();
    for path in ["/", "/anything/else?x=1", "/%E2%9C%93"] {
        let resp = server.get(path);
        assert_eq!(resp.status, 200, "{path}");
        assert!(resp.text().contains("Hello"), "{path}: {:?}", resp.text());
    }
}

#[test]
fn pyramidish_routes() {
    let server = sample_server("pyramidish").start();
    let resp = server.get("/hello");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Pyramidish"), "{:?}", resp.text());
    let resp = server.get("/hello/ada");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("ada"), "{:?}", resp.text());
    assert_eq!(server.get("/nope").status, 404);
}

#[test]
fn flaskish_routes_json_and_methods() {
    let server = sample_server("flaskish").start();
    let resp = server.get("/hello");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Flaskish"), "{:?}", resp.text());
    assert_eq!(server.get("/nope").status, 404);

    let resp = server.get("/api/info");
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json")));
    let info = resp.json();
    assert_eq!(info["framework"], "flaskish");
    assert_eq!(info["path"], "/api/info");
    assert_eq!(info["method"], "GET");

    let mut conn = server.connect();
    conn.send("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n\"quote\"");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["received"], "\"quote\"");

    let resp = server.get("/api/echo");
    assert_eq!(resp.status, 405);
    assert!(
        resp.header("allow").is_some_and(|a| a.contains("POST")),
        "{:?}",
        resp.headers
    );
}

#[test]
fn djangoish_routes_and_middleware() {
    let server = sample_server("djangoish").start();
    let resp = server.get("/hello");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Djangoish"), "{:?}", resp.text());
    assert_eq!(
        resp.header("x-frame-options"),
        Some("DENY"),
        "{:?}",
        resp.headers
    );
    assert_eq!(server.get("/nope").status, 404);
}

#[test]
fn c_hello_over_http() {
    let mut target = c_hello().into_os_string();
    target.push(":app");
    let server = server(target).start();
    let mut conn = server.connect();
    for path in ["/", "/some/where"] {
        conn.send(format!("GET {path}?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"));
        let resp = conn.read_response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("Hello from C! path={path}\n"));
        // length_hint became Content-Length.
        assert_eq!(resp.framing, Framing::Length(resp.body.len() as u64));
        assert!(resp
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/plain")));
    }
}

#[test]
fn stream_sends_chunks_as_they_are_produced() {
    let server = sample_server("stream").start();
    let mut conn = server.connect();
    let start = Instant::now();
    conn.send("GET /?n=4&delay_ms=250 HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    assert!(
        head.header_has_token("transfer-encoding", "chunked"),
        "{:?}",
        head.headers
    );
    // The first chunk arrives long before the last one is produced (~1 s): no buffering.
    let first = conn.read_chunk().expect("a first chunk");
    let first_at = start.elapsed();
    assert_eq!(first, b"chunk 0\n");
    assert!(
        first_at < Duration::from_millis(800),
        "first chunk only after {first_at:?}"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = conn.read_chunk() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"chunk 1\nchunk 2\nchunk 3\n");
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[test]
fn stream_close_is_called_when_the_client_leaves_mid_body() {
    let server = sample_server("stream").start();
    let mut conn = server.connect();
    conn.send("GET /?n=1000&delay_ms=20 HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    assert_eq!(conn.read_chunk().expect("a first chunk"), b"chunk 0\n");
    drop(conn);
    let closes = || {
        let text = server.get("/closes").text();
        let nums: Vec<u64> = text
            .split_whitespace()
            .map(|kv| kv.split_once('=').expect("k=v").1.parse().expect("number"))
            .collect();
        (nums[0], nums[1], text)
    };
    // `close` must run soon after the disconnect, not only after the 1000 chunks (20 s).
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (opened, closed, text) = closes();
        assert_eq!(opened, 1, "{text}");
        if closed == opened {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "body not closed 2 s after the client left: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn panic_in_call_is_500_and_the_server_keeps_serving() {
    let server = sample_server("panicky").start();
    let resp = server.get("/boom");
    assert_eq!(resp.status, 500);
    assert!(
        !resp.text().contains("panicked on purpose"),
        "panic message leaked to the client"
    );
    let resp = server.get("/ok");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "ok\n");
    // On a keep-alive connection the server may close after the 500, but must say so.
    let mut conn = server.connect();
    conn.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 500);
    if resp.header_has_token("connection", "close") {
        assert!(
            conn.wait_closed(Duration::from_secs(2)).is_some(),
            "Connection: close but left open"
        );
    } else {
        conn.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            conn.read_response().status,
            200,
            "connection unusable after a 500 without Connection: close"
        );
    }
    assert!(
        server
            .wait_for_log(Duration::from_secs(2), |l| l
                .contains("panicked on purpose"))
            .is_some(),
        "the panic message should be logged"
    );
}

/// An app that fails on every request cannot flood the log: a few copies of each line, then one
/// "repeated N more time(s)" summary per window.
#[test]
fn a_panic_on_every_request_is_logged_a_few_times_then_summarised() {
    let server = sample_server("panicky").start();
    let mut conn = server.connect();
    for _ in 0..100 {
        conn.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = conn.read_response();
        assert_eq!(resp.status, 500);
        if resp.header_has_token("connection", "close") {
            conn = server.connect();
        }
    }
    let count = |needle: &str| {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains(needle) && !l.contains("repeated"))
            .count()
    };
    let panics = count("panicked on purpose");
    assert!(
        (1..=5).contains(&panics),
        "{panics} panic lines for 100 panics:\n{}",
        server.stderr()
    );
    // The summary is written once the window is over (at the next failure or log flush).
    let summary = poll(Duration::from_secs(10), "the repeat summary", || {
        let _ = server.get("/boom");
        std::thread::sleep(Duration::from_millis(500));
        server
            .stderr()
            .lines()
            .find(|l| l.contains("panicked on purpose") && l.contains("repeated"))
            .map(str::to_owned)
    });
    let suppressed: u64 = summary
        .split("repeated ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary}"));
    assert!(suppressed >= 95 - 5, "{summary}");
    assert!(count("panicked on purpose") <= 10, "{}", server.stderr());
}

#[test]
fn panic_in_body_closes_the_connection_and_the_server_keeps_serving() {
    let server = sample_server("panicky").start();
    let mut conn = server.connect();
    conn.send("GET /panic-in-body HTTP/1.1\r\nHost: x\r\n\r\n");
    match conn.try_read_response() {
        // The head went out with the first chunk; the body must end abruptly (no terminating
        // zero-size chunk), so the client can tell the response is incomplete.
        Ok(resp) if resp.status == 200 => panic!("a body that panicked looked complete: {resp:?}"),
        // Or the server noticed before sending anything and answered 500.
        Ok(resp) => assert_eq!(resp.status, 500, "{resp:?}"),
        Err(e) => assert!(e.contains("closed"), "{e}"),
    }
    assert!(
        conn.wait_closed(Duration::from_secs(2)).is_some(),
        "connection not closed"
    );
    let resp = server.get("/ok");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "ok\n");
}

#[test]
fn threads_serve_slow_requests_concurrently() {
    let server = sample_server("stream").args(["--threads", "4"]).start();
    let start = Instant::now();
    let addr = server.addr();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = Conn::connect(addr);
                conn.send(
                    "GET /?n=2&delay_ms=300 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                conn.read_response().text()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "chunk 0\nchunk 1\n");
    }
    // Serially this is 4 × 600 ms = 2.4 s.
    assert!(
        start.elapsed() < Duration::from_millis(1800),
        "took {:?}",
        start.elapsed()
    );
}

/// A request that reaches an idle keep-alive connection before its deadline is answered, even
/// when every serving thread is busy past that deadline: the connection is not idle any more.
/// (The keep-alive sweep closed it, and the client saw its request go unanswered.)
#[test]
fn a_request_sent_before_the_keep_alive_deadline_is_answered_when_a_thread_frees_up() {
    let server = sample_server("crashy")
        .args(["--threads", "1", "--keep-alive", "1"])
        .start();
    let mut waiting = server.connect();
    waiting.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(waiting.read_response().text(), "crashy ok\n");
    // The only serving thread is busy for 3 s from now.
    let mut slow = server.connect();
    slow.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300));
    // Well within the 1 s keep-alive.
    waiting.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = waiting
        .try_read_response()
        .unwrap_or_else(|e| panic!("the request sent in time went unanswered: {e}"));
    assert_eq!((resp.status, resp.text().as_str()), (200, "crashy ok\n"));
    assert_eq!(slow.read_response().text(), "slow done\n");
}

/// `webserver target/c-apps/libmulti.so:<symbol>`.
fn multi_server(symbol: &str) -> Server {
    let mut target = fixture("multi").into_os_string();
    target.push(format!(":{symbol}"));
    // A short keep-alive: a response the client cannot see the end of fails fast.
    server(target).args(["--keep-alive", "2"]).start()
}

#[test]
fn legacy_write_without_next_is_a_complete_response() {
    // The body is sent by host->write() alone and `next` is NULL ("no chunks"): the response must
    // still be properly terminated, on a connection that stays usable.
    let server = multi_server("writer");
    let mut conn = server.connect();
    for _ in 0..2 {
        conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = conn
            .try_read_response()
            .unwrap_or_else(|e| panic!("response to a write()-only app is not terminated: {e}"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "written\n");
    }
}

#[test]
fn body_without_next_is_an_empty_complete_response() {
    // `call` only calls start_response: the pre-filled body has no chunks.
    let server = multi_server("empty");
    let mut conn = server.connect();
    for _ in 0..2 {
        conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = conn
            .try_read_response()
            .unwrap_or_else(|e| panic!("response with no chunks is not terminated: {e}"));
        assert_eq!(resp.status, 200);
        assert!(resp.body.is_empty(), "{resp:?}");
    }
}

#[test]
fn cargo_build_puts_c_hello_beside_the_server() {
    // sample-apps/c-hello/build.rs compiles hello.c during `cargo build`; the bare name
    // resolves to libc_hello.so beside the webserver executable.
    let server = server("c_hello:app").start();
    let resp = server.get("/from-cargo");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "Hello from C! path=/from-cargo\n");
}
