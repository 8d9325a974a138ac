//! Trailers both ways (ABI 1.3, issue 22 item 3), end to end with `tests/fixtures/trailers.c`:
//! request trailers from an HTTP/1.1 chunked body and from HTTP/2's trailing HEADERS reach the
//! app once its body was read; the app's response trailers follow the last chunk (the body's
//! length hint gives way to chunked framing) or come as a trailing HEADERS frame; fields a
//! trailer must not carry are refused; hostile trailer sections are refused as bad bodies.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;

fn trailers_server() -> Server {
    let lib = c_app("tests/fixtures/trailers.c", "trailers");
    let mut target = lib.into_os_string();
    target.push(":app");
    server(target).args(["--http2", "on"]).start()
}

fn trailer<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response
        .trailers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const CHUNKED_WITH_TRAILERS: &str =
    "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
     5\r\nhello\r\n0\r\nX-Check: abc \r\nGrpc-Status: 0\r\n\r\n";

#[test]
fn http11_request_trailers_reach_the_app_and_its_trailers_follow_the_last_chunk() {
    let server = trailers_server();
    let mut conn = server.connect();
    conn.send(CHUNKED_WITH_TRAILERS);
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        "body=5 trailers=2 early=2\nX-Check: abc\nGrpc-Status: 0\n",
        "read to the end, the trailers are there (WS_PENDING = 2 before)"
    );
    assert_eq!(
        response.framing,
        Framing::Chunked,
        "trailers need chunked framing: the length hint gave way"
    );
    assert_eq!(trailer(&response, "x-body-length"), Some("5"));
    assert_eq!(trailer(&response, "x-echo-X-Check"), Some("abc"));
    assert_eq!(trailer(&response, "x-echo-Grpc-Status"), Some("0"));
    // The connection carries the next request: the trailer section was consumed exactly.
    conn.send("POST /none HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let plain = conn.read_response();
    assert_eq!(plain.text(), "body=3 trailers=0 early=2\n");
    assert_eq!(
        plain.framing,
        Framing::Length(plain.body.len() as u64),
        "no trailers set: the length hint stands"
    );
    assert!(plain.trailers.is_empty());
}

#[test]
fn a_field_that_must_not_be_a_trailer_is_refused_and_http10_gets_none() {
    let server = trailers_server();
    let mut conn = server.connect();
    conn.send("GET /bad HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = conn.read_response();
    assert!(response.text().ends_with("bad=-5\n"), "{}", response.text());
    assert_eq!(
        response.trailers,
        [("x-body-length".to_owned(), "0".to_owned())],
        "the refused field is not sent; the later call stands"
    );
    // HTTP/1.0 has no chunked framing: the trailers are dropped, the body is whole.
    let mut old = server.connect();
    old.send("GET /echo HTTP/1.0\r\n\r\n");
    let response = old.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        "body=0 trailers=0 early=0\n",
        "no body: it ended before the first read, and so the trailers are there at once"
    );
    assert!(response.trailers.is_empty());
}

#[test]
fn hostile_trailer_sections_are_refused_as_bad_bodies() {
    let server = trailers_server();
    let huge = format!("X-Big: {}\r\n", "a".repeat(9000));
    for (what, section) in [
        ("obs-fold", "X-A: a\r\n b\r\n".to_owned()),
        ("space before the colon", "X-A : a\r\n".to_owned()),
        ("a control byte", "X-A: a\x01b\r\n".to_owned()),
        ("over 8 KiB", huge),
    ] {
        let mut conn = server.connect();
        conn.send_lossy(format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n{section}\r\n"
        ));
        let response = conn.read_response();
        assert_eq!(response.status, 400, "{what}: {}", response.text());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One HTTP/2 request with a body and (optionally) trailers: the response's body and trailers.
async fn h2_exchange(
    addr: SocketAddr,
    path: &str,
    trailers: Option<http::HeaderMap>,
) -> (Vec<u8>, Option<http::HeaderMap>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let (response, mut stream) = send.send_request(request, false).unwrap();
    match trailers {
        Some(trailers) => {
            stream
                .send_data(Bytes::from_static(b"hello"), false)
                .unwrap();
            stream.send_trailers(trailers).unwrap();
        }
        None => stream
            .send_data(Bytes::from_static(b"hello"), true)
            .unwrap(),
    }
    let mut body = response.await.unwrap().into_body();
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    (all, trailers)
}

#[test]
fn http2_trailing_headers_both_ways() {
    let server = trailers_server();
    let addr = server.addr();
    runtime().block_on(async move {
        let mut sent = http::HeaderMap::new();
        sent.insert("x-check", "abc".parse().unwrap());
        let (body, trailers) = h2_exchange(addr, "/echo", Some(sent)).await;
        assert_eq!(
            String::from_utf8_lossy(&body),
            "body=5 trailers=1 early=2\nx-check: abc\n"
        );
        let trailers = trailers.expect("a trailing HEADERS frame");
        assert_eq!(trailers["x-body-length"], "5");
        assert_eq!(trailers["x-echo-x-check"], "abc");
        // A body that ends with its last DATA frame has no trailers; the app sets none on /none.
        let (body, trailers) = h2_exchange(addr, "/none", None).await;
        assert_eq!(
            String::from_utf8_lossy(&body),
            "body=5 trailers=0 early=2\n"
        );
        assert!(trailers.is_none(), "{trailers:?}");
    });
}
