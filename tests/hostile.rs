//! Hostile clients and misbehaving apps (issue #4): each must cost nothing beyond its own
//! connection. Slow heads are cut off by --header-timeout, a client that stops reading by
//! --io-timeout, a client that leaves mid-body makes the app's read fail (and `close` still
//! runs), idle connections hold no thread, and an app that breaks the protocol gets a logged
//! 500 — or, once bytes are on the wire, a closed connection.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The misbehaving C app, compiled from tests/fixtures/misbehave.c.
fn misbehave_server(args: &[&str]) -> Server {
    let mut target = fixture("misbehave").into_os_string();
    target.push(":app");
    server(target).args(args).start()
}

/// `GET path` on a fresh connection: answered 200 within `within`.
fn served_quickly(server: &Server, path: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let resp = server.get(path);
    let took = start.elapsed();
    assert_eq!(resp.status, 200, "{path}: {resp:?}");
    assert!(took < within, "{path} took {took:?}");
    took
}

/// A client dripping one header byte per second is cut off by --header-timeout (408 or a plain
/// close), while other clients are served promptly all along.
#[test]
fn one_header_byte_per_second_is_cut_off_while_others_are_served() {
    let server = sample_server("echo")
        .args([
            "--header-timeout",
            "2",
            "--keep-alive",
            "30",
            "--threads",
            "2",
        ])
        .start();
    let addr = server.addr();
    let done = Arc::new(AtomicBool::new(false));
    let slow = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut conn = Conn::connect(addr);
            let start = Instant::now();
            let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            let mut sent = 0;
            let closed_after = loop {
                if sent < head.len() && conn.stream.write_all(&head[sent..=sent]).is_ok() {
                    sent += 1;
                }
                if conn.wait_closed(Duration::from_secs(1)).is_some() {
                    break start.elapsed();
                }
                assert!(start.elapsed() < Duration::from_secs(10), "never cut off");
            };
            done.store(true, Ordering::SeqCst);
            (closed_after, sent, conn.buffered().to_vec())
        })
    };
    let mut served = 0;
    while !done.load(Ordering::SeqCst) {
        served_quickly(&server, "/meanwhile", Duration::from_millis(500));
        served += 1;
        thread::sleep(Duration::from_millis(100));
    }
    let (closed_after, sent, reply) = slow.join().unwrap();
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&closed_after),
        "the dripping client was cut off after {closed_after:?} ({sent} bytes sent)"
    );
    assert!(
        sent < 8,
        "{sent} bytes were sent: the timeout is not per head"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408 "),
        "reply to a slow head: {reply:?}"
    );
    assert!(served >= 5, "only {served} requests served meanwhile");
    assert!(server
        .wait_for_log(Duration::from_secs(1), |l| l
            .contains("408 0 header timeout"))
        .is_some());
}

/// A client with a tiny receive window that stops reading a long streamed response holds no
/// serving thread (an ABI 1.1 app's unsent output waits for the client on epoll, not on a
/// thread): the next client is served at once on the only thread. Past --io-timeout without
/// room to send, the stalled stream is given up: its `close` runs and the connection is dropped
/// (not all ten pipelined streams were sent).
#[test]
fn client_that_stops_reading_holds_no_thread_and_is_dropped_after_io_timeout() {
    const IO_TIMEOUT_SECS: u64 = 4;
    let server = sample_server("stream")
        .args(["--threads", "1", "--timeout", "30"])
        .args(["--io-timeout", &IO_TIMEOUT_SECS.to_string()])
        .start();
    // SO_RCVBUF before connect keeps the advertised window small, so the server's writes find
    // no room soon instead of filling megabytes of loopback buffers.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    // Ten pipelined streams of ~1.2 MB each: more than the kernel buffers hold (the server's
    // send buffer alone may grow to 4 MB), so the server's output must end up waiting.
    let one = b"GET /?n=100000&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n";
    stalled.write_all(&one.repeat(10)).unwrap();
    // Let the streams start and the buffers fill; then another client asks, and is answered
    // well before --io-timeout (a write waiting on the thread would hold it that long).
    thread::sleep(Duration::from_millis(500));
    served_quickly(&server, "/closes", Duration::from_secs(IO_TIMEOUT_SECS / 2));
    // Every stream started on the stalled connection gets closed once --io-timeout passed,
    // the waiting one included; and the connection was dropped there.
    let deadline = Instant::now() + Duration::from_secs(IO_TIMEOUT_SECS + 5);
    let (opened, closed) = loop {
        let counts = server.get("/closes").text();
        let (opened, closed) = counts
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("{counts:?}"));
        let opened: u32 = opened.trim_start_matches("opened=").parse().unwrap();
        let closed: u32 = closed.trim_start_matches("closed=").parse().unwrap();
        if opened == closed || Instant::now() > deadline {
            break (opened, closed);
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(opened, closed, "a stalled stream body was not closed");
    assert!(opened < 10, "all ten streams were sent: opened={opened}");
    drop(stalled);
    served_quickly(&server, "/closes", Duration::from_secs(1));
}

/// A client that leaves in the middle of its request body: the app's read fails (here with
/// WS_ERR_CLIENT_GONE), the app's answer is dropped, the body's `close` still runs.
#[test]
fn client_leaving_mid_body_fails_the_read_and_close_still_runs() {
    let chunked_partial: Vec<u8> = [&b"3e8\r\n"[..], &[b'y'; 1000]].concat();
    for (framing, partial) in [
        ("Content-Length: 100000", vec![b'x'; 1000]),
        ("Transfer-Encoding: chunked", chunked_partial),
    ] {
        let server = misbehave_server(&["--threads", "2"]);
        let mut conn = server.connect();
        conn.send(format!(
            "POST /read-body HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n"
        ));
        conn.send(&partial);
        thread::sleep(Duration::from_millis(200));
        drop(conn);
        let line = server
            .wait_for_log(Duration::from_secs(5), |l| {
                l.contains("misbehave: read-body got")
            })
            .unwrap_or_else(|| panic!("{framing}: no read-body log line"));
        assert!(
            line.ends_with("got 1000 bytes, rc -1"),
            "{framing}: the read did not fail as WS_ERR_CLIENT_GONE after 1000 bytes: {line}"
        );
        assert!(
            server
                .wait_for_log(Duration::from_secs(5), |l| l
                    .ends_with("misbehave: close /read-body"))
                .is_some(),
            "{framing}: close did not run"
        );
        served_quickly(&server, "/ok", Duration::from_secs(1));
    }
}

/// The same with the echo app (the test contract): its body read returns an error, it logs it.
#[test]
fn echo_read_fails_when_the_client_leaves_mid_body() {
    for framing in ["Content-Length: 100000", "Transfer-Encoding: chunked"] {
        let server = sample_server("echo").start();
        let mut conn = server.connect();
        conn.send(format!("POST / HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n"));
        conn.send(if framing.contains("chunked") {
            &b"3e8\r\nabc"[..]
        } else {
            &b"abc"[..]
        });
        thread::sleep(Duration::from_millis(200));
        drop(conn);
        assert!(
            server
                .wait_for_log(Duration::from_secs(5), |l| l
                    .contains("echo: reading the request body failed"))
                .is_some(),
            "{framing}: echo did not see a failed read"
        );
        served_quickly(&server, "/", Duration::from_secs(1));
    }
}

/// 500 connections that never send a byte (and 100 more with half a head) hold no app thread:
/// with two threads a new client is served at once. They are closed by --header-timeout.
#[test]
fn many_silent_connections_do_not_stop_new_clients() {
    let server = sample_server("echo")
        .args(["--threads", "2", "--header-timeout", "3"])
        .start();
    let mut idle: Vec<Conn> = (0..500).map(|_| server.connect()).collect();
    for conn in idle.iter_mut().take(100) {
        conn.send("GET / HTTP/1.1\r\nHost: x\r\n");
    }
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        worst = worst.max(served_quickly(&server, "/new", Duration::from_millis(500)));
    }
    eprintln!("slowest request beside 500 idle connections: {worst:?}");
    // All of them are cut off by the header timeout, the silent ones and the half-sent ones.
    for (i, conn) in idle.iter_mut().enumerate().step_by(50) {
        assert!(
            conn.wait_closed(Duration::from_secs(8)).is_some(),
            "idle connection {i} still open"
        );
    }
    served_quickly(&server, "/after", Duration::from_millis(500));
}

/// What a misbehaving route must produce.
enum Outcome {
    /// A 500 (the app's own head never went out); `Connection: close` or not, the next request
    /// on the same connection, if it stays open, is served.
    Status500,
    /// Bytes were sent before the problem showed: the connection closes after at most `max_body`
    /// body bytes, and the response is never a complete lie (no more bytes than declared).
    Closed { max_body: usize },
}

#[test]
fn misbehaving_app_gets_a_logged_500_or_a_closed_connection() {
    use Outcome::*;
    let server = misbehave_server(&["--threads", "2"]);
    let cases: &[(&str, Outcome, &str)] = &[
        ("/no-start", Status500, "never called start_response"),
        ("/twice", Status500, "start_response called twice"),
        ("/status-99", Status500, "status 99 is not in 200..=599"),
        ("/status-600", Status500, "status 600 is not in 200..=599"),
        ("/crlf-value", Status500, "value contains CR, LF"),
        ("/lf-value", Status500, "value contains CR, LF"),
        ("/cr-value", Status500, "value contains CR, LF"),
        ("/nul-value", Status500, "value contains CR, LF"),
        ("/bad-name", Status500, "name is not a token"),
        (
            "/hop-by-hop",
            Status500,
            "hop-by-hop headers are set by the server",
        ),
        ("/next-fails", Status500, "body iterator failed"),
        ("/call-fails", Status500, "call failed"),
        (
            "/longer",
            Closed { max_body: 5 },
            "body longer than its Content-Length 5",
        ),
        // The first chunk already overflows and nothing is on the wire yet: a clean 500.
        (
            "/longer-one-chunk",
            Status500,
            "body longer than its Content-Length 5",
        ),
        (
            "/hint-longer",
            Closed { max_body: 3 },
            "body longer than its Content-Length 3",
        ),
        (
            "/shorter",
            Closed { max_body: 5 },
            "shorter than its Content-Length 10",
        ),
        (
            "/next-fails-late",
            Closed { max_body: 8 },
            "body iterator failed",
        ),
    ];
    for (path, outcome, log) in cases {
        let mut conn = server.connect();
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        match outcome {
            Status500 => {
                let resp = conn
                    .try_read_response()
                    .unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(resp.status, 500, "{path}: {resp:?}");
                assert!(
                    resp.header("set-cookie").is_none() && resp.header("x-bad").is_none(),
                    "{path}: the app's headers leaked into the 500: {resp:?}"
                );
                if !resp.header_has_token("connection", "close") {
                    conn.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
                    let next = conn.read_response();
                    assert_eq!(
                        (next.status, next.text()),
                        (200, "ok\n".into()),
                        "{path}: the same connection's next request"
                    );
                }
            }
            Closed { max_body } => {
                let got = conn.try_read_response();
                if let Ok(resp) = &got {
                    assert!(resp.body.len() <= *max_body, "{path}: {resp:?}");
                }
                assert!(
                    conn.wait_closed(Duration::from_secs(3)).is_some(),
                    "{path}: connection left open after {got:?}"
                );
                assert!(
                    conn.buffered().len() <= *max_body,
                    "{path}: more bytes than declared: {:?}",
                    String::from_utf8_lossy(conn.buffered())
                );
            }
        }
        assert!(
            server
                .wait_for_log(Duration::from_secs(2), |l| l.contains(log))
                .is_some(),
            "{path}: no log line containing {log:?}"
        );
        // Every body handed to the server was released.
        if *path != "/call-fails" {
            assert!(
                server
                    .wait_for_log(Duration::from_secs(2), |l| l
                        .ends_with(&format!("misbehave: close {path}")))
                    .is_some(),
                "{path}: the body was not closed"
            );
        }
        // And the next request on a new connection is fine.
        let ok = server.get("/ok");
        assert_eq!((ok.status, ok.text()), (200, "ok\n".into()), "after {path}");
    }
    // Controls: a replaced response (PEP 3333 exc_info) is allowed; an early write is refused
    // but the app's later, valid response stands.
    let replaced = server.get("/replace");
    assert_eq!(replaced.status, 201, "{replaced:?}");
    assert_eq!(replaced.header("x-replaced"), Some("yes"));
    let late = server.get("/write-before-start");
    assert_eq!((late.status, late.text()), (200, "late\n".into()));
    assert!(server
        .wait_for_log(Duration::from_secs(2), |l| l
            .contains("write() before start_response"))
        .is_some());
}
