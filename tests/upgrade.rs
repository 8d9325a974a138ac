//! ABI 1.2 raw upgrades, end to end, with a toy protocol (`tests/fixtures/upgrade_echo.c`:
//! `Upgrade: echo` turns the connection into a byte echo): the 101, bytes sent right behind the
//! head served first, output the app wrote before the connection was attached, no thread held
//! by an idle upgraded connection, a client that stops reading given up after `--io-timeout`,
//! the access log's two lines, `--stats`, TLS, and the drain (`WS_EV_GOING_AWAY`, then closed
//! at `--graceful-timeout`).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{c_app, fresh_dir, server, Conn, Server, ServerBuilder};

const UPGRADE: &str = "Host: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";

fn echo_server() -> ServerBuilder {
    let mut target = c_app("tests/fixtures/upgrade_echo.c", "upgrade_echo").into_os_string();
    target.push(":app");
    server(target)
}

/// Sends an upgrade request for `path` (and `after` in the same write); returns the 101's head.
fn upgrade(server: &Server, path: &str, after: &str) -> (Conn, common::Response) {
    let mut conn = server.connect();
    conn.send(format!("GET {path} HTTP/1.1\r\n{UPGRADE}{after}"));
    let head = conn.read_head();
    (conn, head)
}

fn echoed(conn: &mut Conn, text: &str) {
    conn.send(text);
    assert_eq!(
        String::from_utf8(conn.read_exact_raw(text.len())).unwrap(),
        text
    );
}

#[test]
fn upgrade_answers_101_and_serves_the_bytes_sent_behind_the_head_first() {
    let server = echo_server().args(["--threads", "1"]).start();
    let (mut conn, head) = upgrade(&server, "/", "early bytes|");
    assert_eq!(head.status, 101);
    assert_eq!(head.header("Upgrade"), Some("echo"));
    assert!(head.header_has_token("Connection", "upgrade"));
    assert_eq!(head.header("X-Toy"), Some("1"));
    assert!(head.header("Date").is_some());
    assert!(head.header("Content-Length").is_none() && head.header("Transfer-Encoding").is_none());
    // The bytes that came in the same packet as the head are the stream's first.
    assert_eq!(conn.read_exact_raw(12), b"early bytes|");
    echoed(&mut conn, "ping 1\n");
    // An idle upgraded connection holds no thread: with one serving thread, HTTP is answered.
    let started = Instant::now();
    assert_eq!(server.get("/plain").text(), "plain\n");
    assert!(started.elapsed() < Duration::from_secs(2));
    echoed(&mut conn, &"x".repeat(200_000));
    conn.shutdown_write();
    assert!(conn.wait_closed(Duration::from_secs(5)).is_some());
}

#[test]
fn output_written_in_call_follows_the_101() {
    let server = echo_server().start();
    let (mut conn, head) = upgrade(&server, "/hello", "");
    assert_eq!(head.status, 101);
    assert_eq!(conn.read_exact_raw(6), b"hello\n");
    echoed(&mut conn, "after\n");
}

#[test]
fn an_upgrade_from_a_deferred_body_works_the_same() {
    let server = echo_server().start();
    let (mut conn, head) = upgrade(&server, "/deferred", "queued|");
    assert_eq!(head.status, 101);
    assert_eq!(head.header("Upgrade"), Some("echo"));
    assert_eq!(conn.read_exact_raw(7), b"queued|");
    echoed(&mut conn, "from next\n");
}

#[test]
fn upgrades_are_refused_where_they_do_not_apply() {
    let server = echo_server().start();
    // A protocol the client did not offer: WS_ERR_INVALID (-5), the app answers itself.
    let (mut conn, head) = upgrade(&server, "/refuse", "");
    assert_eq!(head.status, 409);
    assert_eq!(head.header("X-Upgrade-Code"), Some("-5"));
    drop(conn.read_exact_raw(0));
    // Without `Connection: upgrade` it is no upgrade request: the app never gets to upgrade.
    let mut conn = server.connect();
    conn.send("GET / HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 409);
    assert_eq!(response.header("X-Upgrade-Code"), Some("-6"));
    // HTTP/1.0 cannot upgrade either.
    let mut conn = server.connect();
    conn.send("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n");
    assert_eq!(conn.read_response().header("X-Upgrade-Code"), Some("-6"));
}

#[test]
fn upgrade_after_the_head_or_from_close_is_out_of_order() {
    let server = echo_server().start();
    let mut conn = server.connect();
    conn.send(format!("GET /after-head HTTP/1.1\r\n{UPGRADE}"));
    let response = conn.read_response();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "plain\n")
    );
    assert!(server
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("upgrade after the head: -6"))
        .is_some());
    let mut conn = server.connect();
    conn.send(format!("GET /late HTTP/1.1\r\n{UPGRADE}"));
    let response = conn.read_response();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "plain\n")
    );
    assert!(server
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("upgrade from close: -6"))
        .is_some());
}

#[test]
fn a_client_that_does_not_read_is_given_up_after_the_io_timeout() {
    let server = echo_server()
        .args(["--threads", "1", "--io-timeout", "1"])
        .start();
    let (conn, head) = upgrade(&server, "/", "");
    assert_eq!(head.status, 101);
    // Send without ever reading: the echo fills the client's window, the app's writes pend.
    let mut stream = conn.stream.try_clone().unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let writer = std::thread::spawn(move || {
        let block = vec![b'z'; 64 * 1024];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if stream.write_all(&block).is_err() {
                return Some(started.elapsed());
            }
        }
        None
    });
    // Meanwhile the only serving thread answers HTTP: the stalled connection holds none.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.get("/plain").text(), "plain\n");
    let gave_up = writer.join().unwrap();
    assert!(
        gave_up.is_some_and(|t| t < Duration::from_secs(10)),
        "the server kept a client that reads nothing: {gave_up:?}"
    );
    drop(conn);
}

#[test]
fn the_access_log_has_the_101_and_a_close_line_and_stats_count_it() {
    let dir = fresh_dir("upgrade-log");
    let log = dir.join("access.log");
    let socket = dir.join("stats.sock");
    let server = echo_server()
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    let (mut conn, head) = upgrade(&server, "/logged", "");
    assert_eq!(head.status, 101);
    echoed(&mut conn, "12345");
    let stats = common::stats_json(&socket);
    assert_eq!(stats["upgraded"]["open"], 1, "{stats}");
    conn.shutdown_write();
    assert!(conn.wait_closed(Duration::from_secs(5)).is_some());
    let lines = common::poll(Duration::from_secs(5), "two access lines", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("/logged"))
            .map(str::to_owned)
            .collect();
        (lines.len() == 2).then_some(lines)
    });
    assert!(lines[0].contains("\" 101 - "), "{}", lines[0]);
    assert!(!lines[0].contains("close="), "{}", lines[0]);
    // The close line: status 101, the 5 bytes the app sent, the close code.
    assert!(lines[1].contains("\" 101 5 "), "{}", lines[1]);
    assert!(lines[1].ends_with(" close=1000"), "{}", lines[1]);
    let stats = common::poll(Duration::from_secs(5), "the gauge back at 0", || {
        let stats = common::stats_json(&socket);
        (stats["upgraded"]["open"] == 0).then_some(stats)
    });
    assert_eq!(stats["upgraded"]["total"], 1);
    assert_eq!(stats["upgraded"]["bytes"]["in"], 5);
    assert_eq!(stats["upgraded"]["bytes"]["out"], 5);
}

#[test]
fn a_drain_says_going_away_then_closes_at_the_graceful_timeout() {
    let mut server = echo_server().args(["--graceful-timeout", "2"]).start();
    let (mut conn, head) = upgrade(&server, "/", "");
    assert_eq!(head.status, 101);
    echoed(&mut conn, "before\n");
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(conn.read_exact_raw(11), b"going away\n");
    // Still served while the drain lasts.
    echoed(&mut conn, "during\n");
    let closed = conn.wait_closed(Duration::from_secs(10));
    assert!(closed.is_some(), "not closed at the graceful timeout");
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    // Closed, not abandoned: the app was shut down cleanly.
    assert!(
        !server.stderr().contains("still being served"),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_raw_websocket_stream_gets_1001_between_its_frames_at_the_drain() {
    let mut server = echo_server().args(["--graceful-timeout", "1"]).start();
    let ws = "Host: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    // The app's stack (here: the echo of what the client sends) wrote one whole frame.
    let mut whole = server.connect();
    whole.send(format!("GET / HTTP/1.1\r\n{ws}"));
    assert_eq!(whole.read_head().status, 101);
    whole.send(b"\x81\x02hi");
    assert_eq!(whole.read_exact_raw(4), b"\x81\x02hi");
    // This one stopped inside a frame (2 of 5 payload bytes).
    let mut partial = server.connect();
    partial.send(format!("GET / HTTP/1.1\r\n{ws}"));
    assert_eq!(partial.read_head().status, 101);
    partial.send(b"\x81\x05he");
    assert_eq!(partial.read_exact_raw(4), b"\x81\x05he");
    server.signal(libc::SIGTERM);
    // Between frames: the server's close frame, 1001, then the end.
    assert!(whole.wait_closed(Duration::from_secs(5)).is_some());
    assert_eq!(whole.buffered(), b"\x88\x02\x03\xe9");
    // Inside a frame: no close frame (it would corrupt the frame), only the end.
    assert!(partial.wait_closed(Duration::from_secs(5)).is_some());
    assert_eq!(partial.buffered(), b"");
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
}

#[test]
fn raw_upgrades_work_on_tls_listeners() {
    let tls = common::TestTls::new("upgrade-tls");
    let server = echo_server().args(tls.server_args()).start();
    let mut stream = tls.connect(server.addr());
    stream
        .write_all(format!("GET / HTTP/1.1\r\n{UPGRADE}first|").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"first|") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    stream.write_all(b"over tls").unwrap();
    let mut echo = [0u8; 8];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"over tls");
}
