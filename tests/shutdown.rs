//! Graceful shutdown: on SIGTERM/SIGINT the server stops accepting, finishes in-flight requests and
//! exits 0.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_finishes_the_in_flight_stream_then_exits_0() {
    let mut server = sample_server("stream").start();
    let mut conn = server.connect();
    conn.send("GET /?n=5&delay_ms=200 HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut resp = conn.read_head();
    assert_eq!(resp.status, 200);
    server.signal(libc::SIGTERM);
    let signalled = Instant::now();

    // A new client is not served any more (refused, or accepted by the kernel and then dropped).
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(mut late) = std::net::TcpStream::connect(server.addr()) {
        use std::io::{Read, Write};
        late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = late.write_all(b"GET /?n=1&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut got = Vec::new();
        let _ = late.read_to_end(&mut got);
        assert!(
            !got.starts_with(b"HTTP/1.1 200"),
            "served a new request after SIGTERM: {:?}",
            String::from_utf8_lossy(&got)
        );
    }

    conn.try_read_body(&mut resp, false)
        .unwrap_or_else(|e| panic!("in-flight response cut: {e}"));
    assert_eq!(resp.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server still running 5 s after the response");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

#[test]
fn sigint_when_idle_exits_0() {
    let mut server = sample_server("hello").start();
    assert_eq!(server.get("/").status, 200);
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("still running 3 s after SIGINT");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

#[test]
fn sigterm_does_not_wait_for_idle_keep_alive_connections() {
    // The server may give an idle connection a short grace window to send one more request
    // (closing it at the very instant a request is in flight loses that request), bounded by
    // --graceful-timeout — but not the whole 30 s keep-alive.
    let mut server = sample_server("hello")
        .args(["--keep-alive", "30", "--graceful-timeout", "1"])
        .start();
    let mut conn = server.connect();
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().status, 200);
    // The connection is idle between requests: nothing is in flight.
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("an idle keep-alive connection held the server past SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(conn.wait_closed(Duration::from_secs(1)).is_some());
}
