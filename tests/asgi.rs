//! The ASGI bridge (`libasgi.so`) end to end: a FastAPI app (path and query parameters, a pydantic
//! JSON body, dependency injection, a background task, StreamingResponse, lifespan state) and a
//! plain Starlette app served unchanged; request bodies streamed in and large responses streamed
//! out; 200 requests that each sleep 1 s answered together by one worker with two threads (no
//! serving thread waits for the app); an app's errors before and after its response started; a
//! failing lifespan startup and a WSGI app refused with one line.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libasgi.so`). The frameworks are
//! installed on first use into `target/asgi-venv` from `examples/asgi/requirements.txt`.

mod common;
mod wsgi_support;

use common::{
    assert_load_error, debug_dir, pseudo_random_bytes, server, sha256_hex, workspace_dir, Conn,
    Server, ServerBuilder,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `target/asgi-venv` with `examples/asgi/requirements.txt` (FastAPI, Starlette, uvloop).
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        wsgi_support::make_venv(
            "asgi-venv",
            &workspace_dir().join("examples/asgi/requirements.txt"),
            "install the ASGI frameworks (FastAPI, Starlette, uvloop) the tests serve",
        )
    })
}

fn fixtures() -> PathBuf {
    workspace_dir().join("tests/fixtures/asgi")
}

/// `webserver …/libasgi.so:app TARGET --venv target/asgi-venv`, from `tests/fixtures/asgi`.
fn asgi_server(target: &str) -> ServerBuilder {
    let lib = debug_dir().join("libasgi.so");
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build --workspace` before `cargo test`",
        lib.display()
    );
    let mut lib = lib.into_os_string();
    lib.push(":app");
    server(lib)
        .cwd(fixtures())
        .app_args([target, "--venv", venv().to_str().expect("UTF-8 path")])
}

fn request(server: &Server, raw: &[u8]) -> common::Response {
    let mut conn = server.connect();
    conn.send(raw);
    conn.read_response()
}

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
    assert!(
        server
            .stderr()
            .contains("ASGI 2.0 app raw_apps:asgi2 on asyncio"),
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
    let began = Instant::now();
    let mut conns: Vec<Conn> = (0..200)
        .map(|_| {
            let mut conn = server.connect();
            conn.send(b"GET /sleep?seconds=1 HTTP/1.1\r\nHost: t\r\n\r\n");
            conn
        })
        .collect();
    for conn in &mut conns {
        let answer = conn.read_response();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json(), serde_json::json!({"slept": 1.0}));
    }
    let took = began.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "200 requests sleeping 1 s each took {took:?} on 2 threads"
    );
}

#[test]
fn an_exception_before_the_response_is_a_500_with_its_traceback_after_it_a_cut() {
    let server = asgi_server("fastapi_app:app").start();
    let boom = server.get("/boom");
    assert_eq!(boom.status, 500);
    common::poll(Duration::from_secs(5), "the traceback", || {
        let log = server.stderr();
        (log.contains("Traceback") && log.contains("ZeroDivisionError")).then_some(())
    });

    let mut conn = server.connect();
    conn.send(b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut head = conn.read_head();
    assert_eq!(head.status, 200);
    let err = conn
        .try_read_body(&mut head, false)
        .expect_err("the body must not end cleanly");
    assert!(!err.is_empty());
    assert!(conn.wait_closed(Duration::from_secs(5)).is_some());
    // The server still serves.
    assert_eq!(server.get("/state").status, 200);
}

#[test]
fn an_app_that_never_answers_meets_the_timeout() {
    let server = asgi_server("fastapi_app:app")
        .args(["--timeout", "1"])
        .start();
    let began = Instant::now();
    let slow = server.get("/sleep?seconds=30");
    assert_eq!(slow.status, 504);
    assert!(began.elapsed() < Duration::from_secs(10));
    assert_eq!(server.get("/sleep?seconds=0").status, 200);
}

#[test]
fn a_failing_lifespan_startup_refuses_to_start_with_one_line() {
    let exited = asgi_server("failing_lifespan:app").run_to_exit();
    assert_load_error(
        &exited,
        &[
            "lifespan startup of failing_lifespan:app failed",
            "RuntimeError: cannot reach the database",
            "failing_lifespan.py:10",
        ],
    );
}

#[test]
fn a_wsgi_app_is_refused_with_the_command_that_serves_it() {
    let exited = asgi_server("raw_apps:wsgi").run_to_exit();
    assert_load_error(
        &exited,
        &[
            "raw_apps:wsgi is a WSGI app",
            "webserver wsgi:app raw_apps:wsgi",
        ],
    );
    let exited = asgi_server("no_such_module:app").run_to_exit();
    assert_load_error(
        &exited,
        &["cannot import no_such_module", "ModuleNotFoundError"],
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

fn fastapi_swap_app(version: usize, lifespan_fails: bool) -> String {
    let startup = if lifespan_fails {
        "    raise RuntimeError('the new version cannot start')\n"
    } else {
        ""
    };
    format!(
        "from contextlib import asynccontextmanager\nfrom fastapi import FastAPI\n\n\n\
         @asynccontextmanager\nasync def lifespan(app):\n{startup}    yield {{'version': {version}}}\n\n\n\
         app = FastAPI(lifespan=lifespan)\n\n\n@app.get('/version')\n\
         async def version(request: __import__('fastapi').Request):\n    \
         return {{'hello': 'from v{version}', 'state': request.state.version}}\n"
    )
}

/// `webserver asgi:app swapapp:app` from `dir`, with a pid file (hot swap status).
fn swap_server(dir: &Path, workers: &str) -> (Server, PathBuf) {
    let pid_file = dir.join("ws.pid");
    let mut lib = debug_dir().join("libasgi.so").into_os_string();
    lib.push(":app");
    let server = server(lib)
        .cwd(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-w", workers, "--pid"])
        .args([pid_file.as_os_str()])
        .app_args(["swapapp:app", "--venv", venv().to_str().unwrap()])
        .start();
    (server, pid_file)
}

#[test]
fn a_swap_to_an_app_whose_lifespan_fails_keeps_the_old_generation() {
    let dir = common::fresh_dir("asgi-swap");
    wsgi_support::write_app(&dir, &fastapi_swap_app(1, false));
    let (server, pid_file) = swap_server(&dir, "1");
    common::poll(wsgi_support::SWAP_TIMEOUT, "generation 1 ready", || {
        wsgi_support::status(&pid_file).filter(|(state, _, _)| state == "ready")
    });
    let v1 = serde_json::json!({"hello": "from v1", "state": 1});
    assert_eq!(server.get("/version").json(), v1);

    wsgi_support::write_app(&dir, &fastapi_swap_app(2, true));
    let (state, _, why) = wsgi_support::hup(&server, &pid_file);
    assert_eq!(state, "failed", "{why}");
    assert!(
        why.contains("lifespan startup of swapapp:app failed")
            && why.contains("the new version cannot start"),
        "{why}"
    );
    for _ in 0..5 {
        assert_eq!(
            server.get("/version").json(),
            v1,
            "the old generation serves on"
        );
    }
}

#[test]
fn swapping_a_fastapi_app_under_load_fails_no_request() {
    let dir = common::fresh_dir("asgi-swap-load");
    wsgi_support::write_app(&dir, &fastapi_swap_app(1, false));
    let (server, pid_file) = swap_server(&dir, "2");
    let ok = wsgi_support::swap_under_load(&server, &dir, &pid_file, "/version", &|version| {
        fastapi_swap_app(version, false)
    });
    eprintln!("4 swaps of a FastAPI app under 3 keep-alive clients: {ok} requests, 0 failed");
}

#[test]
fn a_bare_app_that_raises_or_returns_before_its_response_is_a_500() {
    let server = asgi_server("raw_apps:raises").start();
    assert_eq!(server.get("/raise").status, 500);
    assert_eq!(server.get("/nothing").status, 500);
    common::poll(Duration::from_secs(5), "both failures logged", || {
        let log = server.stderr();
        (log.contains("ASGI app raw_apps:raises raised:\nTraceback")
            && log.contains("ValueError: raw failure before the response")
            && log.contains("returned without starting a response"))
        .then_some(())
    });
}
