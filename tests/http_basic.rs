//! HTTP/1.1 semantics over real sockets: persistent connections, pipelining, request bodies
//! (Content-Length, chunked, 100-continue), HEAD, response framing and standard headers.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

const GET_HELLO: &str = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn hello_has_content_length_date_and_server_headers() {
    let server = sample_server("hello").start();
    let resp = server.get("/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, "HTTP/1.1");
    assert_eq!(resp.reason, "OK");
    assert!(resp.text().contains("Hello"), "{:?}", resp.text());
    assert_eq!(resp.framing, Framing::Length(resp.body.len() as u64));
    let ct = resp.header("content-type").expect("Content-Type");
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(
        resp.header("server").is_some_and(|s| !s.is_empty()),
        "{:?}",
        resp.headers
    );
    // RFC 9110 §6.6.1: an origin server with a clock MUST send Date, as an IMF-fixdate.
    let date = resp.header("date").expect("Date header");
    let date = httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("bad Date {date:?}: {e}"));
    let skew = SystemTime::now()
        .duration_since(date)
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(60), "Date is {skew:?} off");
    assert_eq!(resp.header_all("date").len(), 1);
    assert_eq!(resp.header_all("content-length").len(), 1);
}

#[test]
fn curl_gets_hello() {
    if !have_program("curl") {
        eprintln!("curl not installed: skipping the curl cross-check");
        return;
    }
    let server = sample_server("hello").start();
    let out = std::process::Command::new("curl")
        .args(["-sv", "--max-time", "10"])
        .arg(format!("http://{}/from-curl", server.addr()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hello"),
        "{out:?}"
    );
    assert!(stderr.contains("< HTTP/1.1 200"), "{stderr}");
    assert!(
        stderr.to_ascii_lowercase().contains("< content-length:"),
        "{stderr}"
    );
}

#[test]
fn access_log_line_per_request() {
    let server = sample_server("hello").start();
    assert_eq!(server.get("/logged-path?x=1").status, 200);
    let line = server.wait_for_log(Duration::from_secs(2), |l| l.contains("/logged-path"));
    let line = line.expect("no access log line mentioning /logged-path with RUST_LOG=info");
    assert!(line.contains("GET"), "{line}");
    assert!(line.contains("200"), "{line}");
}

#[test]
fn http11_keep_alive_two_requests_on_one_connection() {
    let server = sample_server("hello").start();
    let mut conn = server.connect();
    for _ in 0..2 {
        conn.send(GET_HELLO);
        let resp = conn.read_response();
        assert_eq!(resp.status, 200);
        assert!(resp.text().contains("Hello"));
        assert!(
            !resp.header_has_token("connection", "close"),
            "{:?}",
            resp.headers
        );
    }
    assert!(
        !conn.is_closed_now(),
        "server closed a persistent connection"
    );
}

#[test]
fn http11_connection_close_is_honoured() {
    let server = sample_server("hello").start();
    let mut conn = server.connect();
    conn.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert!(
        resp.header_has_token("connection", "close"),
        "{:?}",
        resp.headers
    );
    assert!(
        conn.wait_closed(Duration::from_secs(2)).is_some(),
        "connection left open"
    );
}

#[test]
fn http10_without_keep_alive_closes_after_one_response() {
    let server = sample_server("hello").start();
    let mut conn = server.connect();
    conn.send("GET / HTTP/1.0\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Hello"));
    assert!(
        conn.wait_closed(Duration::from_secs(2)).is_some(),
        "1.0 connection left open"
    );
}

#[test]
fn http10_with_keep_alive_stays_open() {
    let server = sample_server("hello").start();
    let mut conn = server.connect();
    for _ in 0..2 {
        conn.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = conn.read_response();
        assert_eq!(resp.status, 200);
        // A 1.0 client only keeps the connection if told so (RFC 9112 §9.3, RFC 2068 §19.7.1).
        assert!(
            resp.header_has_token("connection", "keep-alive"),
            "{:?}",
            resp.headers
        );
        assert!(
            matches!(resp.framing, Framing::Length(_)),
            "{:?}",
            resp.framing
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = sample_server("echo").start();
    let mut conn = server.connect();
    conn.send(
        "GET /one HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
         GET /three?q=3 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let one = conn.read_response().json();
    let two = conn.read_response().json();
    let three = conn.read_response().json();
    assert_eq!(one["path"], "/one");
    assert_eq!(two["path"], "/two");
    assert_eq!(two["method"], "POST");
    assert_eq!(two["body_len"], 3);
    assert_eq!(two["body_sha256"], sha256_hex(b"abc"));
    assert_eq!(three["path"], "/three");
    assert_eq!(three["query"], "q=3");
}

#[test]
fn post_with_content_length_reaches_the_app_intact() {
    let server = sample_server("echo").start();
    let body = pseudo_random_bytes(300_000, 7);
    let mut conn = server.connect();
    conn.send(format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    ));
    conn.send(&body);
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    let json = resp.json();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["body_len"], body.len());
    assert_eq!(json["body_sha256"], sha256_hex(&body));
    assert_eq!(json["headers"]["content-type"], "application/octet-stream");
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let server = sample_server("echo").start();
    let mut conn = server.connect();
    conn.send(
        "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
         5;name=value\r\nhello\r\n\
         1;ext;quoted=\"a b\"\r\n \r\n\
         A\r\n0123456789\r\n\
         0;last=1\r\nX-Checksum: abc\r\n\r\n",
    );
    // ...and the connection stays usable after the trailers.
    conn.send(GET_HELLO);
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    let json = resp.json();
    let expected = b"hello 0123456789";
    assert_eq!(json["body_len"], expected.len());
    assert_eq!(json["body_sha256"], sha256_hex(expected));
    let next = conn.read_response().json();
    assert_eq!(next["path"], "/");
    assert_eq!(next["body_len"], 0);
}

#[test]
fn large_chunked_body_reaches_the_app_intact() {
    let server = sample_server("echo").start();
    let body = pseudo_random_bytes(200_000, 11);
    let mut wire = b"PUT /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in body.chunks(7_777) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let mut conn = server.connect();
    conn.send(&wire);
    let json = conn.read_response().json();
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["body_len"], body.len());
    assert_eq!(json["body_sha256"], sha256_hex(&body));
}

#[test]
fn expect_100_continue() {
    let server = sample_server("echo").start();
    let mut conn = server.connect();
    conn.send(
        "POST /expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n",
    );
    let interim = conn.read_response();
    assert_eq!(
        interim.status, 100,
        "expected 100 Continue before sending the body: {interim:?}"
    );
    assert_eq!(interim.version, "HTTP/1.1");
    conn.send("hello world");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    let json = resp.json();
    assert_eq!(json["body_len"], 11);
    assert_eq!(json["body_sha256"], sha256_hex(b"hello world"));
}

#[test]
fn expect_100_continue_is_not_sent_when_the_app_does_not_read_the_body() {
    // hello never reads the body: the server answers finally without inviting the upload
    // (RFC 9110 §10.1.1: a server MAY omit 100 Continue when it responds with a final status).
    let server = sample_server("hello").start();
    let mut conn = server.connect();
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.text().contains("Hello"));
}

#[test]
fn head_has_headers_but_no_body() {
    let server = sample_server("hello").start();
    let get = server.get("/");
    let mut conn = server.connect();
    conn.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str()),
        "HEAD must announce the length GET would send: {:?}",
        head.headers
    );
    // If any body byte followed the HEAD response, this second response would not parse.
    conn.send(GET_HELLO);
    let resp = conn.read_response();
    assert_eq!(
        resp.status, 200,
        "garbage after the HEAD response? {resp:?}"
    );
    assert_eq!(resp.body, get.body);
}

#[test]
fn head_of_a_streamed_response_has_no_body() {
    let server = sample_server("stream").start();
    let mut conn = server.connect();
    conn.send("HEAD /?n=3&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!(head.status, 200);
    // Not even the terminating zero-size chunk may follow: the next response must parse.
    conn.send("GET /?n=1&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(
        resp.status, 200,
        "garbage after the HEAD response? {resp:?}"
    );
    assert_eq!(resp.text(), "chunk 0\n");
}

#[test]
fn stream_is_chunked_for_http11() {
    let server = sample_server("stream").start();
    let mut conn = server.connect();
    conn.send("GET /?n=3&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, Framing::Chunked);
    assert_eq!(resp.text(), "chunk 0\nchunk 1\nchunk 2\n");
    // Chunked framing keeps the connection reusable.
    conn.send("GET /?n=1&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().text(), "chunk 0\n");
}

#[test]
fn stream_is_close_delimited_for_http10() {
    let server = sample_server("stream").start();
    let mut conn = server.connect();
    conn.send("GET /?n=3&delay_ms=0 HTTP/1.0\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, Framing::Close, "{:?}", resp.headers);
    assert_eq!(resp.text(), "chunk 0\nchunk 1\nchunk 2\n");
}

#[test]
fn echo_reports_method_path_query_and_headers() {
    let server = sample_server("echo").start();
    let mut conn = server.connect();
    conn.send(
        "DELETE /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.test\r\nX-Multi: one\r\n\
         X-Multi: two\r\nX-Mixed-Case: Value\r\n\r\n",
    );
    let json = conn.read_response().json();
    assert_eq!(json["method"], "DELETE");
    assert_eq!(json["path"], "/a b/c");
    assert_eq!(json["query"], "x=1&y=%20");
    assert_eq!(json["headers"]["x-multi"], "one, two");
    assert_eq!(json["headers"]["x-mixed-case"], "Value");
    assert_eq!(json["headers"]["host"], "example.test");
    assert_eq!(json["body_len"], 0);
    assert_eq!(json["body_sha256"], sha256_hex(b""));
}
