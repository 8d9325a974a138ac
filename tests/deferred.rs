//! ABI 1.1 deferred responses, end to end: the C sample app `c-timer` answers each `/wait` from
//! its own timer thread through a waker, so with one serving thread many waiting requests are
//! answered together; a parked request is closed when its client leaves, answered 504 past
//! `--timeout`, and waited for (then closed) by a drain. `deferred_echo.c` reads its body with
//! `try_read`, so the server resumes it when bytes arrive.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{c_app, sample_server, server, Server};

/// Requests in flight at once against one serving thread.
const CONCURRENT: usize = 200;
/// What each of them waits for in the app.
const WAIT_MS: u64 = 500;
/// Far below CONCURRENT × WAIT_MS (100 s, one thread held per waiting request) and above one
/// WAIT_MS plus connection set-up on a loaded two-core machine.
const ALL_ANSWERED_WITHIN: Duration = Duration::from_secs(5);

fn timer_server(args: &[&str]) -> Server {
    sample_server("c_timer")
        .args(["--threads", "1"])
        .args(args.iter().copied())
        .start()
}

/// `fired=F closed_early=C` from `/stats`.
fn stats(server: &Server) -> (u64, u64) {
    let text = server.get("/stats").text();
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    (field("fired"), field("closed_early"))
}

fn wait_for_closed_early(server: &Server, want: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let (_, closed) = stats(server);
        if closed >= want || Instant::now() >= deadline {
            return closed;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn many_waiting_requests_hold_no_serving_thread() {
    let server = timer_server(&[]);
    let addr = server.addr();
    let start = Arc::new(Barrier::new(CONCURRENT));
    let began = Instant::now();
    let clients: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let mut conn = common::Conn::connect(addr);
                start.wait();
                // A few ask for no wait at all: their timer may fire while `next` still runs,
                // and such a wake must not be lost.
                let ms = if i % 10 == 0 { 0 } else { WAIT_MS };
                conn.send(format!(
                    "GET /wait?ms={ms} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                ));
                let response = conn.read_response();
                (response.status, response.text(), ms)
            })
        })
        .collect();
    for client in clients {
        let (status, text, ms) = client.join().expect("client thread");
        assert_eq!(status, 200, "{text}");
        assert_eq!(text, format!("waited {ms} ms\n"));
    }
    let elapsed = began.elapsed();
    assert!(
        elapsed < ALL_ANSWERED_WITHIN,
        "{CONCURRENT} requests waiting {WAIT_MS} ms each took {elapsed:?} on one serving thread"
    );
    assert_eq!(stats(&server), (CONCURRENT as u64, 0));
}

#[test]
fn keep_alive_continues_after_a_deferred_response() {
    let server = timer_server(&[]);
    let mut conn = server.connect();
    // Pipelined: the second request waits in the buffer while the first is parked.
    conn.send(
        "GET /wait?ms=100 HTTP/1.1\r\nHost: t\r\n\r\nGET /wait?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(conn.read_response().text(), "waited 100 ms\n");
    assert_eq!(conn.read_response().text(), "waited 50 ms\n");
    conn.send("GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response().text(), "fired=2 closed_early=0\n");
}

#[test]
fn a_client_that_leaves_while_parked_gets_its_request_closed() {
    let server = timer_server(&[]);
    let mut conn = server.connect();
    conn.send("GET /wait?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    drop(conn);
    // The app's close runs (its cancellation path) long before the timer would fire.
    assert_eq!(wait_for_closed_early(&server, 1, Duration::from_secs(3)), 1);
    assert_eq!(stats(&server).0, 0, "the timer must not have fired");
}

#[test]
fn a_parked_request_past_timeout_gets_504_and_close() {
    let server = timer_server(&["--timeout", "1"]);
    let mut conn = server.connect();
    let asked = Instant::now();
    conn.send("GET /wait?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 504, "{}", response.text());
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "504 after {took:?} with --timeout 1"
    );
    assert!(
        conn.wait_closed(Duration::from_secs(2)).is_some(),
        "the connection must close after a 504"
    );
    assert_eq!(stats(&server), (0, 1), "the app's close must have run");
    // The worker was not replaced (no harakiri): a parked request holds no thread.
    assert!(server
        .wait_for_log(Duration::from_millis(100), |l| l.contains("harakiri")
            || l.contains("past --timeout; exiting"))
        .is_none());
}

#[test]
fn drain_waits_for_parked_requests_and_closes_those_left() {
    let mut server = timer_server(&["--graceful-timeout", "2"]);
    let mut soon = server.connect();
    let mut never = server.connect();
    soon.send("GET /wait?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n");
    never.send("GET /wait?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(100));
    server.signal(libc::SIGTERM);
    let answered = soon.read_response();
    assert_eq!(
        answered.status, 200,
        "a parked request finishes during the drain"
    );
    assert_eq!(
        answered.header("Connection"),
        Some("close"),
        "no keep-alive while draining"
    );
    // At the graceful timeout the one still waiting is closed, not abandoned: 503, and the
    // worker exits after shutting the app down.
    let cut = never.read_response();
    assert_eq!(cut.status, 503);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("server exits after the drain");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.stderr()
    );
    assert!(
        !server.stderr().contains("abandon"),
        "parked requests must not be abandoned:\n{}",
        server.stderr()
    );
}

#[test]
fn try_read_pends_until_body_bytes_arrive() {
    let lib = c_app("tests/fixtures/deferred_echo.c", "deferred_echo");
    let mut target = lib.into_os_string();
    target.push(":app");
    let server = server(target).args(["--threads", "1"]).start();
    let mut slow = server.connect();
    slow.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
    thread::sleep(Duration::from_millis(300));
    // Meanwhile the only serving thread answers others: the slow upload holds none.
    let mut other = server.connect();
    other.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(other.read_response().text(), "echo: abc");
    slow.send(" body");
    let response = slow.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "echo: hello body");
    // Chunked, with a 100-continue: sent when try_read first finds nothing.
    let mut chunked = server.connect();
    chunked.send(
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = chunked.read_head();
    assert_eq!(interim.status, 100);
    chunked.send("3\r\nabc\r\n");
    thread::sleep(Duration::from_millis(100));
    chunked.send("2\r\nde\r\n0\r\n\r\n");
    assert_eq!(chunked.read_response().text(), "echo: abcde");
}

/// A response its client does not read: far more than the socket buffers on both ends hold.
const UNREAD_STREAM_BYTES: usize = 64 << 20;
/// Another request's answer must not wait for the unread stream: a write that waits for the
/// client on the only serving thread would hold it for up to --io-timeout (30 s).
const OTHER_ANSWERED_WITHIN: Duration = Duration::from_secs(5);

/// ABI 1.1: a deferred app's response chunks wait for the socket on epoll, like its `next` waits
/// for the app — a slow reader (an SSE client that stalls) holds no serving thread.
#[test]
fn a_client_that_does_not_read_a_deferred_stream_holds_no_serving_thread() {
    let server = sample_server("axum_app").args(["--threads", "1"]).start();
    let mut slow = server.connect();
    slow.send(format!(
        "GET /bytes?n={UNREAD_STREAM_BYTES} HTTP/1.1\r\nHost: t\r\n\r\n"
    ));
    // Long enough for the socket buffers to fill and the server's write to find no room.
    thread::sleep(Duration::from_millis(500));
    let addr = server.addr();
    let (answered, answer) = std::sync::mpsc::channel();
    let began = Instant::now();
    thread::spawn(move || {
        let mut conn = common::Conn::connect(addr);
        conn.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let _ = answered.send(conn.read_response().status);
    });
    let status = answer.recv_timeout(OTHER_ANSWERED_WITHIN);
    assert_eq!(
        status,
        Ok(200),
        "another request waited {:?} behind a client that does not read",
        began.elapsed()
    );
    // The stream itself still arrives whole once its client reads.
    let head = slow.read_head();
    assert_eq!(head.status, 200);
    let mut received = 0;
    while let Some(chunk) = slow.read_chunk() {
        received += chunk.len();
    }
    assert_eq!(received, UNREAD_STREAM_BYTES);
}
