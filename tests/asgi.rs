//! The ASGI bridge (`libasgi.so`) end to end: a FastAPI app (path and query parameters, a pydantic
//! JSON body, dependency injection, a background task, StreamingResponse, server-sent events,
//! lifespan state) and a plain Starlette app served unchanged; the scope's `raw_path` as sent;
//! request bodies streamed in and large responses streamed out; `http.disconnect` when a client
//! leaves; 200 requests that each sleep 1 s answered together by one worker with two threads (no
//! serving thread waits for the app); `http.response.zerocopysend`. Errors are in `asgi_errors.rs`, hot swaps in
//! `asgi_swap.rs`.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libasgi.so`). The frameworks are
//! installed on first use into `target/asgi-venv` from `examples/asgi/requirements.txt`.

mod asgi_support;
mod common;
mod wsgi_support;

use asgi_support::{asgi_server, request, sleep_one_second_at_once};
use common::{fresh_dir, pattern, pseudo_random_bytes, sha256_hex, Server};
use std::time::Duration;

fn post_json(server: &Server, path: &str, json: &str) -> common::Response {
    request(
        server,
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{json}",
            json.len()
        )
        .as_bytes(),
    )
}

#[test]
fn fastapi_params_pydantic_body_dependencies_and_lifespan_state() {
    let server = asgi_server("fastapi_app:app").start();
    let item = server.get("/items/42?q=caf%C3%A9&limit=5");
    assert_eq!(item.status, 200, "{}", item.text());
    assert_eq!(
        item.json(),
        serde_json::json!({"item_id": 42, "q": "café", "page": {"limit": 5, "offset": 0}})
    );
    // FastAPI's own validation: a path parameter that is not an int is its 422.
    assert_eq!(server.get("/items/forty-two").status, 422);

    let created = post_json(
        &server,
        "/items",
        r#"{"name": "pen", "price": 1.25, "tags": ["a"]}"#,
    );
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(
        created.json(),
        serde_json::json!({"name": "pen", "total": 2.5, "tags": ["a"]})
    );
    let invalid = post_json(&server, "/items", r#"{"name": "pen"}"#);
    assert_eq!(invalid.status, 422, "{}", invalid.text());
    assert!(invalid.text().contains("price"), "{}", invalid.text());

    let state = server.get("/state");
    assert_eq!(
        state.json(),
        serde_json::json!({"greeting": "Hello from lifespan", "started": true})
    );
    assert!(
        server.stderr().contains("lifespan started"),
        "{}",
        server.stderr()
    );
}

#[test]
fn the_http_scope_is_asgi_3_spec_2_3() {
    let server = asgi_server("fastapi_app:app").start();
    let scope = request(
        &server,
        b"GET /scope/%7Ea%20b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nX-Tag: one\r\n\r\n",
    );
    // The route does not match /scope/~a b: ask /scope itself, then check the path decoding.
    assert_eq!(scope.status, 404);
    let scope = request(
        &server,
        b"GET /scope?x=1&y=%20 HTTP/1.0\r\nHost: example.com\r\nX-Tag: one\r\n\r\n",
    )
    .json();
    assert_eq!(
        scope["asgi"],
        serde_json::json!({"version": "3.0", "spec_version": "2.3"})
    );
    assert_eq!(scope["http_version"], "1.0");
    assert_eq!(scope["method"], "GET");
    assert_eq!(scope["scheme"], "http");
    assert_eq!(scope["path"], "/scope");
    assert_eq!(scope["raw_path"], "/scope");
    assert_eq!(scope["query_string"], "x=1&y=%20");
    assert_eq!(scope["root_path"], "");
    let headers = scope["headers"].as_array().unwrap();
    assert!(
        headers.contains(&serde_json::json!(["host", "example.com"])),
        "{headers:?}"
    );
    assert!(
        headers.contains(&serde_json::json!(["x-tag", "one"])),
        "{headers:?}"
    );
    assert_eq!(scope["client"][0], "127.0.0.1");
    assert!(scope["client"][1].as_u64().unwrap() > 0);
    assert_eq!(scope["server"][1], server.port());
}

#[test]
fn a_background_task_runs_after_the_response() {
    let server = asgi_server("fastapi_app:app").start();
    let queued = request(
        &server,
        b"POST /tasks/first HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(queued.json(), serde_json::json!({"queued": "first"}));
    common::poll(Duration::from_secs(5), "the background task", || {
        let done = server.get("/tasks").json();
        (done["done"] == serde_json::json!(["first"])).then_some(())
    });
}

#[test]
fn streaming_responses_and_uploads_pass_through_in_chunks() {
    let server = asgi_server("fastapi_app:app").start();
    let lines = server.get("/stream?lines=4");
    assert_eq!(lines.status, 200);
    assert_eq!(lines.text(), "line 0\nline 1\nline 2\nline 3\n");
    assert_eq!(lines.header("Transfer-Encoding"), Some("chunked"));

    let big = server.get("/big?mib=8");
    assert_eq!(big.body.len(), 8 << 20);
    assert!(big.body.iter().all(|&b| b == b'x'));

    // 3 MiB, chunked: reaches request.stream() whole, in more_body pieces.
    let body = pseudo_random_bytes(3 << 20, 20);
    let mut conn = server.connect();
    conn.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.chunks(100_000) {
        conn.send(format!("{:x}\r\n", piece.len()));
        conn.send(piece);
        conn.send(b"\r\n");
    }
    conn.send(b"0\r\n\r\n");
    let answer = conn.read_response();
    assert_eq!(
        answer.json(),
        serde_json::json!({"size": body.len(), "sha256": sha256_hex(&body)})
    );
}

#[test]
fn a_plain_starlette_app_and_an_asgi_2_app_are_served() {
    let server = asgi_server("starlette_app:app").start();
    assert_eq!(server.get("/").text(), "Hello, Starlette!");
    assert_eq!(
        server.get("/users/ada?q=1").json(),
        serde_json::json!({"user": "ada", "q": "1"})
    );
    let echo = request(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(echo.text(), "olleh");
    assert_eq!(echo.header("x-length"), Some("5"));

    // An ASGI 2 class that raises on the lifespan scope: served without lifespan.
    let server = asgi_server("raw_apps:asgi2")
        .app_args(["--loop", "asyncio"])
        .start();
    let hi = server.get("/");
    assert_eq!(hi.status, 200);
    assert_eq!(hi.text(), "ASGI 2 says hi");
    assert_eq!(hi.header("content-type"), Some("text/plain"));
    assert_eq!(hi.header("x-asgi"), Some("2"));
    // Waited for: the log is read on its own thread, which a loaded machine can delay past the
    // first answer (one run saw an empty log here).
    let line = "ASGI 2.0 app raw_apps:asgi2 on asyncio";
    assert!(
        server
            .wait_for_log(Duration::from_secs(10), |log| log.contains(line))
            .is_some(),
        "{}",
        server.stderr()
    );
}

#[test]
fn two_hundred_sleeping_requests_hold_no_serving_thread() {
    let server = asgi_server("fastapi_app:app")
        .args(["-w", "1", "--threads", "2"])
        .start();
    assert_eq!(server.get("/sleep?seconds=0").status, 200);
    let took = sleep_one_second_at_once(&server, 200);
    assert!(
        took < Duration::from_millis(2500),
        "200 requests sleeping 1 s each took {took:?} on 2 threads"
    );
}

#[test]
fn a_client_that_leaves_a_stream_stops_the_app_and_term_runs_the_lifespan_shutdown() {
    let dir = common::fresh_dir("asgi-shutdown");
    let marker = dir.join("shutdown.txt");
    let mut server = asgi_server("fastapi_app:app")
        .env("ASGI_SHUTDOWN_FILE", marker.to_str().unwrap())
        // The app writes its marker there (the sandbox allows no other writes).
        .args(["--sandbox-write", dir.to_str().unwrap()])
        .start();
    let mut conn = server.connect();
    conn.send(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    assert!(conn.read_chunk().is_some_and(|c| c.starts_with(b"tick 0")));
    drop(conn);
    common::poll(Duration::from_secs(5), "the stream to stop", || {
        let events = server.get("/events").json();
        (events["events"] == serde_json::json!(["stream stopped"])).then_some(())
    });

    assert!(!marker.exists());
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "lifespan shutdown ran"
    );
}

#[test]
fn raw_path_is_the_path_as_the_client_sent_it() {
    let server = asgi_server("fastapi_app:app").start();
    let raw = request(
        &server,
        b"GET /raw/%41%2Fb%20c/caf%C3%A9?x=1 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(
        raw.json(),
        serde_json::json!({"path": "/raw/A/b c/café", "raw_path": "/raw/%41%2Fb%20c/caf%C3%A9"})
    );
}

#[test]
fn server_sent_events_reach_the_client_as_they_are_sent() {
    let server = asgi_server("fastapi_app:app").start();
    let mut conn = server.connect();
    conn.send(b"GET /sse HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    assert!(head
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream")));
    assert_eq!(head.header("cache-control"), Some("no-cache"));
    // The app sends its second event only after this client asks for it: the first must be out.
    for n in 1..=2 {
        if n == 2 {
            let go = request(
                &server,
                b"POST /sse/go HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            );
            assert_eq!(go.status, 200);
        }
        let event = conn.read_chunk().expect("an event");
        assert_eq!(
            String::from_utf8_lossy(&event),
            format!("id: {n}\nevent: greeting\ndata: {{\"n\": {n}}}\n\n")
        );
    }
    assert_eq!(conn.read_chunk(), None, "the stream ends");
}

#[test]
fn an_app_waiting_on_receive_hears_http_disconnect_when_the_client_leaves() {
    let server = asgi_server("raw_apps:watches_disconnect").start();
    let mut conn = server.connect();
    conn.send(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    // Let the app reach its second receive() (it answers nothing, so nothing can be read).
    std::thread::sleep(Duration::from_millis(300));
    drop(conn);
    common::poll(Duration::from_secs(5), "http.disconnect recorded", || {
        let seen = server.get("/seen").json();
        (seen == serde_json::json!(["http.disconnect"])).then_some(())
    });
}

/// An app that sends its response head before it reads the request body gets every byte of the
/// body: the head going out while the app waits must not drain the body's buffered bytes.
#[test]
fn an_app_that_starts_its_response_before_reading_gets_the_whole_body() {
    let server = asgi_server("raw_apps:head_then_body").start();
    for size in [200_000usize, 1_000_000] {
        let body = pattern(size, 3);
        let mut conn = server.connect();
        conn.send(format!(
            "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"
        ));
        conn.send(&body[..]);
        let response = conn.read_response();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.text(),
            size.to_string(),
            "bytes the app read of {size}"
        );
    }
}

/// `http.response.zerocopysend` (offered in `scope["extensions"]`): a file range as the whole
/// body (handed to the server), a range between body chunks (read by the bridge), and a send
/// without an offset, from the file's position to its end, which moves the position there. The
/// app closes its file as soon as `send()` returns: the bridge keeps a descriptor of its own.
#[test]
fn zerocopysend_sends_a_file_range_alone_or_between_body_chunks() {
    let data = pattern(1 << 20, 5);
    let dir = fresh_dir("asgi-zerocopy");
    let file = dir.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let server = asgi_server("raw_apps:zerocopy")
        .args(["--sandbox-read", dir.to_str().unwrap()])
        .env("ZEROCOPY_FILE", file.to_str().unwrap())
        .start();
    let range = server.get("/range");
    assert_eq!(range.status, 200, "{}", server.stderr());
    assert!(range.body == data[10..100_010], "the range differs");
    let mixed = server.get("/mixed");
    assert_eq!(mixed.status, 200, "{}", server.stderr());
    assert_eq!(mixed.body, [&b"<"[..], &data[5..15], b">"].concat());
    let position = server.get("/position");
    assert_eq!(position.status, 200, "{}", server.stderr());
    assert!(
        position.body == data[1000..],
        "the rest of the file differs"
    );
}
