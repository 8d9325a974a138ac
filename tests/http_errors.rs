//! Malformed, oversized, ambiguous and slow requests: the right status code, connections closed
//! when the framing can no longer be trusted, timeouts — and the server keeps serving others.

mod common;

use std::time::Duration;

use common::*;

/// Sends `request` on a new connection and returns the response; the connection must then close.
fn reject(server: &Server, request: &[u8]) -> Response {
    let mut conn = server.connect();
    conn.send_lossy(request);
    let resp = conn.try_read_response().unwrap_or_else(|e| {
        panic!(
            "no error response to {:?}: {e}",
            String::from_utf8_lossy(&request[..request.len().min(80)])
        )
    });
    assert!(
        conn.wait_closed(Duration::from_secs(3)).is_some(),
        "connection not closed after a {} for an unparseable request",
        resp.status
    );
    resp
}

/// The server still answers a fresh, valid request.
fn assert_still_serving(server: &Server) {
    let resp = server.get("/");
    assert_eq!(resp.status, 200, "server stopped serving: {resp:?}");
}

#[test]
fn malformed_request_lines_are_400() {
    let server = sample_server("hello").start();
    for bad in [
        &b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"NOSPACESATALL\r\n\r\n",
        b"GET / HTTP/1.1 trailing\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
    ] {
        let resp = reject(&server, bad);
        assert_eq!(resp.status, 400, "for {:?}", String::from_utf8_lossy(bad));
    }
    assert_still_serving(&server);
}

#[test]
fn request_line_over_8k_is_414() {
    let server = sample_server("hello").start();
    let request = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9 * 1024));
    assert_eq!(reject(&server, request.as_bytes()).status, 414);
    // A long but legal request line (just under 8 KiB) is fine.
    let mut conn = server.connect();
    conn.send(format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "b".repeat(7 * 1024)
    ));
    assert_eq!(conn.read_response().status, 200);
}

#[test]
fn headers_over_64k_are_431() {
    let server = sample_server("hello").start();
    let mut request = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..70 {
        request.push_str(&format!("X-Fill-{i}: {}\r\n", "v".repeat(1000)));
    }
    request.push_str("\r\n");
    assert_eq!(reject(&server, request.as_bytes()).status, 431);
    assert_still_serving(&server);
}

#[test]
fn body_over_max_body_is_413() {
    let server = sample_server("echo").args(["--max-body", "1000"]).start();
    // At the limit: accepted.
    let mut conn = server.connect();
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    conn.send(vec![b'x'; 1000]);
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["body_len"], 1000);
    // One byte over: refused from the declared length alone.
    let mut conn = server.connect();
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n");
    conn.send_lossy(vec![b'x'; 1001]);
    let resp = conn.read_response();
    assert_eq!(resp.status, 413);
    assert_still_serving(&server);
}

#[test]
fn unknown_transfer_coding_is_501() {
    let server = sample_server("echo").start();
    let resp = reject(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
    );
    assert_eq!(resp.status, 501);
    assert_still_serving(&server);
}

#[test]
fn http2_request_line_is_505() {
    let server = sample_server("hello").start();
    let resp = reject(&server, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_eq!(resp.status, 505);
    assert_still_serving(&server);
}

#[test]
fn content_length_with_transfer_encoding_is_400_and_closes() {
    // RFC 9112 §6.3: a request smuggling vector; the server must not guess.
    let server = sample_server("echo").start();
    let resp = reject(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(resp.status, 400);
    assert_still_serving(&server);
}

#[test]
fn conflicting_content_lengths_are_400() {
    let server = sample_server("echo").start();
    let resp = reject(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    );
    assert_eq!(resp.status, 400);
    let resp = reject(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 5\r\n\r\nabcde",
    );
    assert_eq!(resp.status, 400);
    let resp = reject(
        &server,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    );
    assert_eq!(resp.status, 400);
    assert_still_serving(&server);
}

#[test]
fn malformed_chunked_body_does_not_reach_the_next_request() {
    let server = sample_server("echo").start();
    let mut conn = server.connect();
    conn.send(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n\
         GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    // Whatever the app answers (it sees WS_ERR_BAD_BODY), the connection must not be reused.
    if let Ok(resp) = conn.try_read_response() {
        assert!(
            resp.status >= 400,
            "a malformed chunk size was accepted: {resp:?}"
        );
    }
    assert!(
        conn.wait_closed(Duration::from_secs(3)).is_some(),
        "connection reused after a bad chunk"
    );
    assert_still_serving(&server);
}

#[test]
fn body_shorter_than_declared_then_close_does_not_hurt_the_server() {
    let server = sample_server("echo").start();
    for _ in 0..3 {
        let mut conn = server.connect();
        conn.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a few bytes");
        conn.shutdown_write();
        // The server may answer (e.g. 400) or just close; either way the connection ends.
        let _ = conn.try_read_response();
        assert!(
            conn.wait_closed(Duration::from_secs(3)).is_some(),
            "half-open connection kept"
        );
    }
    assert_still_serving(&server);
    let resp = server.get("/again");
    assert_eq!(resp.json()["path"], "/again");
}

#[test]
fn bytes_after_the_declared_body_are_the_next_request() {
    let server = sample_server("echo").start();
    let mut conn = server.connect();
    conn.send(
        "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
         GET /second HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let first = conn.read_response().json();
    assert_eq!(first["path"], "/first");
    assert_eq!(first["body_len"], 5);
    assert_eq!(first["body_sha256"], sha256_hex(b"hello"));
    let second = conn.read_response().json();
    assert_eq!(second["path"], "/second");
    assert_eq!(second["method"], "GET");
    assert_eq!(second["body_len"], 0);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_timeout() {
    let server = sample_server("hello").args(["--keep-alive", "1"]).start();
    let mut conn = server.connect();
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().status, 200);
    let closed_after = conn
        .wait_closed(Duration::from_secs(3))
        .expect("idle connection not closed within 3 s");
    // The connection was kept alive for a while, not closed right after the response.
    assert!(
        closed_after >= Duration::from_millis(500),
        "closed after only {closed_after:?}"
    );
    assert!(
        conn.buffered().is_empty(),
        "unexpected bytes on an idle connection: {:?}",
        conn.buffered()
    );
}

#[test]
fn slow_header_times_out_while_others_are_served() {
    let server = sample_server("hello")
        .args(["--header-timeout", "1", "--keep-alive", "30"])
        .start();
    let mut slow = server.connect();
    slow.send("GET / HTTP/1.1\r\nHost: x\r\nX-Half: ");
    // Meanwhile another client is served promptly.
    let start = std::time::Instant::now();
    let resp = server.get("/");
    assert_eq!(resp.status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "other client waited {:?}",
        start.elapsed()
    );
    assert!(
        slow.wait_closed(Duration::from_secs(3)).is_some(),
        "a connection with half a head was not closed within 3 s of --header-timeout 1"
    );
    // If the server said anything, it was a 408.
    if !slow.buffered().is_empty() {
        let text = String::from_utf8_lossy(slow.buffered()).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "unexpected reply to a slow head: {text:?}"
        );
    }
    assert_still_serving(&server);
}

#[test]
fn slowloris_drip_does_not_extend_the_header_timeout() {
    // One byte every 300 ms never lets the head complete; --header-timeout bounds the whole head.
    let server = sample_server("hello")
        .args(["--header-timeout", "1", "--keep-alive", "30"])
        .start();
    let mut slow = server.connect();
    let start = std::time::Instant::now();
    let mut closed = false;
    for byte in b"GET / HTTP/1.1\r\nHost: xxxxxxxxxxxx".iter() {
        if std::io::Write::write_all(&mut slow.stream, &[*byte]).is_err() {
            closed = true;
            break;
        }
        if slow.wait_closed(Duration::from_millis(300)).is_some() {
            closed = true;
            break;
        }
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        closed,
        "a dripping head kept the connection open for {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "closed only after {:?}",
        start.elapsed()
    );
}

/// A head the parser has already rejected (a bare LF or bare CR before its end) is answered at
/// once: the connection must not wait for a blank line that the parser would reject anyway, nor
/// leave the client to the header timeout (issue 8: one end-of-head rule).
#[test]
fn head_rejected_before_its_end_is_answered_without_waiting() {
    let server = sample_server("hello")
        .args(["--header-timeout", "60"])
        .start();
    for unfinished in [
        &b"GET / HTTP/1.1\nHost: x\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2",
        b"\nGET / HTTP/1.1\r\n",
    ] {
        let mut conn = server.connect();
        conn.send(unfinished);
        let resp = conn.try_read_response().unwrap_or_else(|e| {
            panic!(
                "no answer to the unfinished head {:?}: {e}",
                String::from_utf8_lossy(unfinished)
            )
        });
        assert_eq!(
            resp.status,
            400,
            "for {:?}",
            String::from_utf8_lossy(unfinished)
        );
        assert!(conn.wait_closed(Duration::from_secs(3)).is_some());
    }
    assert_still_serving(&server);
}
