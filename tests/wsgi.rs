//! The WSGI bridge (`libwsgi.so`) end to end: the article's Pyramid, Flask and Django apps served
//! unchanged, with and without `wsgiref.validate.validator` around them; the echo app's contract
//! (environ and every way of reading `wsgi.input`); the PEP 3333 rules an app can break; load
//! errors; the GIL released while the bridge waits on a client.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libwsgi.so`). The frameworks are
//! installed on first use into `target/wsgi-venv` (see `wsgi_support::venv`).

mod common;
mod wsgi_support;

use common::{assert_load_error, pseudo_random_bytes, sha256_hex, Conn, Server};
use std::path::Path;
use std::time::Duration;
use wsgi_support::{examples_dir, fixtures_dir, wsgi_server};

/// Serves `target` from `examples/wsgi`, with `tests/fixtures/wsgi` importable too.
fn serve(target: &str) -> Server {
    wsgi_server(&examples_dir(), target)
        .env("PYTHONPATH", fixtures_dir().to_str().unwrap())
        .start()
}

/// Serves `target` wrapped in `wsgiref.validate.validator` (warnings are errors).
fn serve_validated(target: &str) -> Server {
    wsgi_server(&examples_dir(), "validated:app")
        .env("PYTHONPATH", fixtures_dir().to_str().unwrap())
        .env("WSGI_VALIDATE", target)
        .start()
}

/// No traceback, validator complaint or unclosed iterator in the server's log.
fn assert_clean_log(server: &Server) {
    let log = server.stderr();
    for bad in [
        "Traceback",
        "WSGIWarning",
        "AssertionError",
        "without being closed",
    ] {
        assert!(!log.contains(bad), "server log mentions {bad:?}:\n{log}");
    }
}

fn check_article_app(server: &Server, greeting: &str) {
    let hello = server.get("/hello");
    assert_eq!(
        hello.status,
        200,
        "{}",
        String::from_utf8_lossy(&hello.body)
    );
    assert_eq!(hello.text(), greeting);
    let content_type = hello.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "Content-Type {content_type:?}"
    );
    assert_eq!(
        hello.header("Content-Length"),
        Some(greeting.len().to_string().as_str())
    );
    assert_eq!(server.get("/nope").status, 404);
    assert_clean_log(server);
}

#[test]
fn the_articles_pyramid_app_is_served_unchanged() {
    check_article_app(&serve("pyramidapp:app"), "Hello world from Pyramid!\n");
    check_article_app(
        &serve_validated("pyramidapp:app"),
        "Hello world from Pyramid!\n",
    );
}

#[test]
fn the_articles_flask_app_is_served_unchanged() {
    check_article_app(&serve("flaskapp:app"), "Hello world from Flask!\n");
    check_article_app(
        &serve_validated("flaskapp:app"),
        "Hello world from Flask!\n",
    );
}

#[test]
fn the_articles_django_app_is_served_unchanged() {
    check_article_app(&serve("djangoapp:app"), "Hello world from Django!\n");
    check_article_app(
        &serve_validated("djangoapp:app"),
        "Hello world from Django!\n",
    );
}

#[test]
fn the_articles_bare_wsgi_app_is_served() {
    let server = serve_validated("wsgiapp:app");
    let hello = server.get("/anything");
    assert_eq!(hello.status, 200);
    assert_eq!(
        hello.text(),
        "Hello world from a simple WSGI application!\n"
    );
    assert_clean_log(&server);
}

fn post(server: &Server, path: &str, body: &[u8], chunked: bool) -> common::Response {
    let mut conn = server.connect();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    conn.send(format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         {framing}\r\nConnection: close\r\n\r\n"
    ));
    if chunked {
        for piece in body.chunks(10_007) {
            conn.send(format!("{:x}\r\n", piece.len()));
            conn.send(piece);
            conn.send("\r\n");
        }
        conn.send("0\r\n\r\n");
    } else {
        conn.send(body);
    }
    conn.read_response()
}

#[test]
fn the_echo_app_sees_the_request_through_the_environ() {
    for server in [serve("echoapp:app"), serve_validated("echoapp:app")] {
        let mut conn = server.connect();
        conn.send(
            "GET /caf%C3%A9/a%20b?x=1&y=%20 HTTP/1.1\r\nHost: localhost\r\nX-Thing: one\r\n\
             X-Thing: two\r\nConnection: close\r\n\r\n",
        );
        let resp = conn.read_response();
        assert_eq!(resp.status, 200);
        let echo = resp.json();
        assert_eq!(echo["method"], "GET");
        assert_eq!(echo["path"], "/café/a b");
        assert_eq!(echo["query"], "x=1&y=%20");
        assert_eq!(echo["headers"]["x-thing"], "one, two");
        assert_eq!(echo["body_len"], 0);
        assert_eq!(echo["script_name"], "");
        assert_eq!(echo["server_port"], server.port().to_string());
        assert_eq!(echo["server_protocol"], "HTTP/1.1");
        let wsgi = &echo["wsgi"];
        assert_eq!(wsgi["version"], serde_json::json!([1, 0]));
        assert_eq!(wsgi["url_scheme"], "http");
        assert_eq!(wsgi["multiprocess"], false);
        assert_eq!(wsgi["run_once"], false);
        assert_eq!(wsgi["input_terminated"], true);
        assert_eq!(wsgi["file_wrapper"], true);
        assert_eq!(wsgi["errors"], true);
        assert_clean_log(&server);
    }
}

/// The bridge reuses the strings of the previous environ where the bytes repeat
/// (`adapters/wsgi/src/environ.rs`): each request must still see exactly its own values, when
/// the same header changes value, when another header takes its place, and after a long value.
#[test]
fn each_request_on_a_connection_sees_its_own_environ() {
    let server = serve("echoapp:app");
    let mut conn = server.connect();
    let long = "v".repeat(200);
    let requests = [
        (
            "/a?q=1",
            "X-One: first\r\nX-Two: same\r\n",
            ("x-one", "first"),
        ),
        (
            "/b?q=2",
            "X-One: second\r\nX-Two: same\r\n",
            ("x-one", "second"),
        ),
        (
            "/b?q=2",
            "X-Other: first\r\nX-Two: same\r\n",
            ("x-other", "first"),
        ),
        (
            "/c",
            &format!("X-One: {long}\r\nX-Two: same\r\n"),
            ("x-one", long.as_str()),
        ),
        (
            "/a?q=1",
            "X-One: first\r\nX-Two: same\r\n",
            ("x-one", "first"),
        ),
    ];
    for (path, headers, (name, value)) in requests {
        conn.send(format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n"
        ));
        let echo = conn.read_response().json();
        let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
        assert_eq!(echo["path"], want_path);
        assert_eq!(echo["query"], want_query);
        assert_eq!(echo["headers"][name], value, "{path} {headers:?}");
        assert_eq!(echo["headers"]["x-two"], "same");
        let others = ["x-one", "x-other"].into_iter().filter(|h| *h != name);
        for other in others {
            assert!(
                echo["headers"].get(other).is_none(),
                "{other} leaked into {path} {headers:?}: {echo}"
            );
        }
    }
    assert_clean_log(&server);
}

#[test]
fn wsgi_input_streams_the_body_every_way_an_app_reads_it() {
    let body = pseudo_random_bytes(300_000, 11);
    let want = sha256_hex(&body);
    // The validator insists on read(size): `read()` without one is checked bare only.
    for (server, validated) in [
        (serve("echoapp:app"), false),
        (serve_validated("echoapp:app"), true),
    ] {
        for how in ["all", "readall", "chunks", "lines", "readlines", "iter"] {
            if how == "readall" && validated {
                continue;
            }
            for chunked in [false, true] {
                let resp = post(&server, &format!("/?read={how}"), &body, chunked);
                assert_eq!(resp.status, 200, "read={how} chunked={chunked}");
                let echo = resp.json();
                assert_eq!(echo["body_len"], body.len(), "read={how} chunked={chunked}");
                assert_eq!(echo["body_sha256"], want, "read={how} chunked={chunked}");
            }
        }
        assert_clean_log(&server);
    }
}

#[test]
fn apps_that_break_pep_3333_get_a_clear_500() {
    let server = serve("rules:app");
    for (path, needle) in [
        ("/str-body", "yielded a str"),
        ("/str-in-generator", "yielded a str"),
        ("/bytes-header", "a header name must be a str"),
        ("/not-latin1", "is not latin-1"),
        ("/bad-status", "is not a three-digit code"),
        ("/no-start", "without calling start_response"),
        ("/raise", "ZeroDivisionError: the app failed on purpose"),
    ] {
        let resp = server.get(path);
        assert_eq!(
            resp.status,
            500,
            "{path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert!(
            server
                .wait_for_log(Duration::from_secs(5), |l| l.contains(needle))
                .is_some(),
            "{path}: no {needle:?} in the log:\n{}",
            server.stderr()
        );
    }
    assert_eq!(server.get("/ping").text(), "pong", "the worker serves on");
}

#[test]
fn start_response_and_write_follow_pep_3333() {
    let server = serve("rules:app");
    let twice = server.get("/twice");
    assert!(
        twice
            .text()
            .starts_with("refused: start_response called a second time without exc_info"),
        "{}",
        twice.text()
    );
    let replaced = server.get("/exc-info");
    assert_eq!(replaced.status, 500);
    assert_eq!(replaced.text(), "replaced after an error\n");
    let late = server.get("/exc-info-after-body");
    assert_eq!(late.status, 200);
    assert_eq!(late.text(), "partial;re-raised:too late");
    assert_eq!(server.get("/write").text(), "written, then returned\n");
    assert!(server
        .get("/write-str")
        .text()
        .starts_with("refused: write() takes bytes"));
    assert_eq!(server.get("/lazy").text(), "started lazily\n");
    let file = server.get("/file");
    assert_eq!(file.status, 200);
    assert_eq!(file.body, b"0123456789".repeat(1000));
}

#[test]
fn the_iterables_close_is_called_whatever_happens() {
    let server = serve("rules:app");
    assert_eq!(server.get("/closing").text(), "one two\n");
    // Fails after the head and a chunk were sent: the connection is cut, close() still runs.
    let mut conn = server.connect();
    conn.send("GET /closing-fails HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(
        conn.try_read_response().is_err(),
        "a cut body must not parse"
    );
    // Fails before any byte: a 500, close() still runs.
    assert_eq!(server.get("/closing-fails-first").status, 500);
    assert_eq!(server.get("/closes").text(), "3");
}

#[test]
fn the_iterable_is_not_resumed_past_its_declared_length() {
    // PEP 3333: the server "should stop iterating over the response when enough data has been
    // sent". The response goes out at once, and the generator is closed, not resumed.
    let server = serve("rules:app");
    let mut conn = server.connect();
    let started = std::time::Instant::now();
    conn.send("GET /declared HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = conn.read_response();
    let took = started.elapsed();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello");
    assert!(
        took < Duration::from_millis(1500),
        "the complete response waited {took:?}: the generator was resumed"
    );
    conn.send("GET /declared-report HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().text(), "resumed=0 closed=1");
    assert_clean_log(&server);
}

#[test]
fn wsgi_errors_reach_the_server_log_line_by_line() {
    let server = serve("rules:app");
    assert_eq!(server.get("/errors").text(), "logged\n");
    for line in ["first line to wsgi.errors", "second line", "unterminated"] {
        assert!(
            server
                .wait_for_log(Duration::from_secs(5), |l| l.contains("[wsgi]")
                    && l.trim_end().ends_with(line))
                .is_some(),
            "no log line ending with {line:?}:\n{}",
            server.stderr()
        );
    }
}

#[test]
fn wsgi_input_refuses_other_threads() {
    let server = serve("rules:app");
    let text = server.get("/input-from-thread").text();
    assert!(text.contains("used outside its request"), "{text}");
}

#[test]
fn the_gil_is_released_while_a_client_is_slow() {
    // One request blocks in wsgi.input.read() waiting for body bytes; another must still be
    // served by the other threads' Python meanwhile.
    let server = wsgi_server(&examples_dir(), "rules:app")
        .env("PYTHONPATH", fixtures_dir().to_str().unwrap())
        .args(["--threads", "4"])
        .start();
    let mut slow = server.connect();
    slow.send("POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nfive!");
    std::thread::sleep(Duration::from_millis(300));
    let mut quick = Conn::connect(server.addr());
    quick.send("GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(quick.read_response().text(), "pong");
    slow.send("more!");
    assert_eq!(slow.read_response().text(), "got 10 bytes");
}

#[test]
fn wsgi_input_hands_out_what_arrived_without_waiting_for_the_whole_body() {
    let server = serve("rules:app");
    let mut conn = server.connect();
    conn.send("POST /first-line HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nfirst\nabc");
    // The app answers from 9 of 1,000,000 declared bytes: nothing waits for the rest.
    let resp = conn.read_response();
    assert_eq!(resp.text(), "line=b'first\\n' more=b'abc'");
    let mut conn = server.connect();
    conn.send(
        "POST /first-line HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\nfirst\nabc",
    );
    assert_eq!(conn.read_response().text(), "line=b'first\\n' more=b'abc'");
}

fn load_error(dir: &Path, target: &str, needles: &[&str]) {
    let exited = wsgi_server(dir, target)
        .env("PYTHONPATH", fixtures_dir().to_str().unwrap())
        .run_to_exit();
    assert_load_error(&exited, needles);
}

#[test]
fn a_broken_python_app_refuses_the_load_with_the_tracebacks_last_line() {
    let dir = examples_dir();
    load_error(
        &dir,
        "nope:app",
        &[
            "init failed",
            "cannot import nope",
            "ModuleNotFoundError: No module named 'nope'",
        ],
    );
    load_error(
        &dir,
        "rules:missing",
        &["AttributeError: module 'rules' has no attribute 'missing'"],
    );
    load_error(
        &dir,
        "rules:CLOSES",
        &["rules:CLOSES is a dict, not a WSGI callable"],
    );
    load_error(&dir, "not a target", &["is not a WSGI target"]);
    let broken = common::fresh_dir("wsgi-syntax");
    std::fs::write(broken.join("broken.py"), "def app(:\n").unwrap();
    load_error(
        &broken,
        "broken:app",
        &["cannot import broken", "SyntaxError"],
    );
    let exited = wsgi_server(&dir, "wsgiapp:app")
        .env("VIRTUAL_ENV", "/nonexistent-venv")
        .run_to_exit();
    assert_load_error(
        &exited,
        &["/nonexistent-venv is not a virtualenv", "python3 -m venv"],
    );
}

#[test]
fn the_target_and_the_virtualenv_come_from_app_arguments() {
    // `webserver wsgi:app flaskapp:app --venv PATH`, as the article's `webserver2.py flaskapp:app`.
    let mut lib = wsgi_support::wsgi_lib().into_os_string();
    lib.push(":app");
    let server = common::server(lib)
        .cwd(examples_dir())
        .env("WEBSERVER_WSGI_APP", "")
        .env("VIRTUAL_ENV", "")
        .app_args([
            "flaskapp:app".as_ref(),
            "--venv".as_ref(),
            wsgi_support::venv().as_os_str(),
        ])
        .start();
    check_article_app(&server, "Hello world from Flask!\n");
    let mut lib = wsgi_support::wsgi_lib().into_os_string();
    lib.push(":app");
    let exited = common::server(lib)
        .cwd(examples_dir())
        .env("WEBSERVER_WSGI_APP", "")
        .app_args(["flaskapp:app", "--workers", "2"])
        .run_to_exit();
    assert_load_error(
        &exited,
        &["unknown argument '--workers' for the WSGI bridge"],
    );
}
