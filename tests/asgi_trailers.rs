//! The ASGI HTTP trailers extension (`http.response.trailers`, ABI 1.3 `set_trailers`) end to
//! end with `tests/fixtures/asgi/raw_apps.py`'s `trailers` app: the scope offers it; a response
//! whose start said `trailers: True` waits after its body for the trailer messages, which follow
//! the last chunk on HTTP/1.1 (raw TCP) and come as a trailing HEADERS frame on HTTP/2 (h2); a
//! refused trailer field or an app that returns before its trailers cuts the response.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libasgi.so`).

mod asgi_support;
mod common;
mod wsgi_support;

use asgi_support::{asgi_server, request};
use common::h2_client::{h2_exchange, h2_runtime};
use common::Server;
use std::time::Duration;

fn trailers_server() -> Server {
    asgi_server("raw_apps:trailers")
        .args(["--http2", "on"])
        .start()
}

#[test]
fn the_scope_offers_trailers_and_they_follow_the_last_chunk_over_http11() {
    let server = trailers_server();
    let extensions = server.get("/extensions").json();
    assert!(
        extensions
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("http.response.trailers")),
        "{extensions}"
    );
    assert_eq!(server.get("/version").text(), "1.1");
    for (path, body) in [
        ("/", &b"hello world"[..]),
        (
            "/file",
            &std::fs::read("tests/fixtures/asgi/raw_apps.py").unwrap()[..],
        ),
    ] {
        let raw = request(
            &server,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        assert_eq!(raw.status, 200, "{path}: {}", server.stderr());
        assert!(raw.body == body, "{path}: the body differs");
        assert_eq!(
            raw.trailers,
            [
                ("x-checksum".to_owned(), "abc".to_owned()),
                ("grpc-status".to_owned(), "0".to_owned())
            ],
            "{path}: {}",
            server.stderr()
        );
    }
    // The raw wire: the trailer section after the last (zero-size) chunk.
    let mut conn = server.connect();
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut wire = Vec::new();
    std::io::Read::read_to_end(&mut conn.stream, &mut wire).unwrap();
    let wire = String::from_utf8_lossy(&wire);
    assert!(
        wire.ends_with("\r\n0\r\nx-checksum: abc\r\ngrpc-status: 0\r\n\r\n"),
        "{wire}"
    );
}

#[test]
fn trailers_come_as_a_trailing_headers_frame_over_http2() {
    let server = trailers_server();
    let addr = server.addr();
    let request = http::Request::get(format!("http://{addr}/"))
        .body(())
        .unwrap();
    let (body, trailers) = h2_runtime().block_on(h2_exchange(addr, request, None));
    assert_eq!(body, b"hello world", "{}", server.stderr());
    let trailers = trailers.expect("a trailing HEADERS frame");
    assert_eq!(trailers["x-checksum"], "abc");
    assert_eq!(trailers["grpc-status"], "0");
    // The scope names the protocol the request came over.
    let request = http::Request::get(format!("http://{addr}/version"))
        .body(())
        .unwrap();
    let (version, _) = h2_runtime().block_on(h2_exchange(addr, request, None));
    assert_eq!(version, b"2", "{}", server.stderr());
}

/// A field a trailer must not carry, and an app that returns before its trailers: the response
/// is cut (no last chunk), so the client does not take it for complete, and the log says why.
#[test]
fn refused_or_missing_trailers_cut_the_response() {
    let server = trailers_server();
    for (path, logged) in [
        ("/refused", "sent trailers the server refused"),
        (
            "/early",
            "no http.response.trailers with more_trailers false followed",
        ),
    ] {
        let mut conn = server.connect();
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        let outcome = conn.try_read_response();
        assert!(outcome.is_err(), "{path}: {outcome:?}");
        assert!(
            server
                .wait_for_log(Duration::from_secs(5), |log| log.contains(logged))
                .is_some(),
            "{path}: {}",
            server.stderr()
        );
    }
}
