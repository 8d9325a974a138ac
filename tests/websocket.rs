//! RFC 6455 conformance of the server's WebSockets, one case list run against three apps:
//!
//! - the C echo (`tests/fixtures/ws_echo.c`) and the native Rust sample (`sample-apps/ws-echo`),
//!   both in ABI 1.2 message mode: the server's own RFC 6455 layer frames their messages;
//! - the axum sample (`sample-apps/axum-app`, `/ws` on axum's `WebSocketUpgrade`): the app frames
//!   with its own tungstenite over an upgraded byte stream, and the server carries the bytes.
//!
//! The client builds every frame itself (`tests/common/ws.rs`): bytes sent behind the head,
//! lengths across the 7/16/64-bit encodings, fragmentation, control frames between fragments, the
//! closing handshake, and each violation's close code. A violation is the WebSocket layer's to
//! answer, so for the axum app the expected answer is what the same router answers on plain
//! `axum::serve`; the two message-mode apps must answer each with its RFC code. Then the server's
//! duties of its own WebSocket layer (the handshake check, pings and liveness, the access log and
//! `--stats`, back-pressure) on the two message-mode apps, and TLS and the drain on all three.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ws::*;
use common::{c_app, fresh_dir, sample_server, server, AxumServe, Server, ServerBuilder};

/// The app a case runs against.
#[derive(Clone, Copy, Debug, PartialEq)]
enum App {
    /// `tests/fixtures/ws_echo.c`: echoes on every path.
    C,
    /// `sample-apps/ws-echo`: the safe Rust API's `Response::websocket`, echo on `/ws`.
    Rust,
    /// `sample-apps/axum-app`: axum's `WebSocketUpgrade`, echo on `/ws`.
    Axum,
}

impl App {
    fn builder(self) -> ServerBuilder {
        match self {
            App::C => {
                let mut target = c_app("tests/fixtures/ws_echo.c", "ws_echo").into_os_string();
                target.push(":app");
                server(target)
            }
            App::Rust => sample_server("ws_echo"),
            App::Axum => sample_server("axum_app"),
        }
    }

    fn start(self) -> Server {
        self.builder().start()
    }

    /// The echo route.
    fn path(self) -> &'static str {
        match self {
            App::C => "/",
            App::Rust | App::Axum => "/ws",
        }
    }

    /// What a plain GET of `/` gets: the echoes' 426, the axum app's hello.
    fn plain_status(self) -> u16 {
        match self {
            App::C | App::Rust => 426,
            App::Axum => 200,
        }
    }

    /// An echo client on `server`.
    fn connect(self, server: &Server) -> WsClient {
        WsClient::connect(server.addr(), self.path())
    }
}

/// `case(App)` as one test per app: `case::c_app`, `case::rust_app`, `case::axum_app`.
macro_rules! on_apps {
    ($($case:ident: [$($app:ident),+];)*) => {$(
        mod $case {
            $(
                #[test]
                #[allow(non_snake_case)]
                fn $app() {
                    super::$case(super::on_apps!(@app $app));
                }
            )+
        }
    )*};
    (@app c_app) => { super::App::C };
    (@app rust_app) => { super::App::Rust };
    (@app axum_app) => { super::App::Axum };
}
use on_apps;

on_apps! {
    a_frame_sent_behind_the_head_is_echoed_first: [c_app, rust_app, axum_app];
    text_and_binary_of_every_length_encoding_are_echoed: [c_app, rust_app, axum_app];
    fragments_are_reassembled_with_utf8_split_across_them: [c_app, rust_app, axum_app];
    pings_are_answered_with_their_payload_even_between_fragments: [c_app, rust_app, axum_app];
    the_client_close_is_echoed_and_the_server_closes_tcp: [c_app, rust_app, axum_app];
    violations_get_their_close_codes: [c_app, rust_app, axum_app];
    term_closes_websockets_with_1001_after_the_graceful_timeout: [c_app, rust_app, axum_app];
    websockets_work_on_tls_listeners: [c_app, rust_app, axum_app];
    idle_websockets_hold_no_thread: [c_app, rust_app, axum_app];
    handshake_accepts_with_the_rfc_key_and_refuses_invalid_ones: [c_app, rust_app];
    an_idle_client_is_pinged_and_one_that_never_answers_is_closed: [c_app, rust_app];
    access_log_and_stats_count_messages_and_the_close_code: [c_app, rust_app];
    a_client_that_vanishes_is_logged_1006: [c_app, rust_app];
    a_client_that_does_not_read_holds_no_thread_and_is_closed_after_the_io_timeout: [c_app, rust_app];
}

fn echoes(client: &mut WsClient, opcode: u8, payload: &[u8]) {
    client.send(opcode, payload);
    let frame = client.read();
    assert_eq!(
        (frame.fin, frame.opcode, frame.payload.len()),
        (true, opcode, payload.len())
    );
    assert!(frame.payload == payload, "payload differs");
}

const VALID: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn handshake_accepts_with_the_rfc_key_and_refuses_invalid_ones(app: App) {
    let server = app.start();
    let (_client, head) = WsClient::open(server.addr(), app.path(), VALID, b"");
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: Upgrade\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nSec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n")));
    // No key: the server's 400, whatever the app does next.
    let (_c, head) = WsClient::open(
        server.addr(),
        app.path(),
        "Sec-WebSocket-Version: 13\r\n",
        b"",
    );
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    // Another version: 426.
    let eight = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n";
    let (_c, head) = WsClient::open(server.addr(), app.path(), eight, b"");
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{head}");
    // An ordinary request is the app's own (the echo answers 426).
    assert_eq!(server.get("/").status, app.plain_status());
}

fn a_frame_sent_behind_the_head_is_echoed_first(app: App) {
    let server = app.start();
    let frame = encode(true, 0, OP_TEXT, b"right behind", true);
    let (mut client, head) = WsClient::open(server.addr(), app.path(), VALID, &frame);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(client.read().payload, b"right behind");
}

fn text_and_binary_of_every_length_encoding_are_echoed(app: App) {
    let server = app.start();
    let mut client = app.connect(&server);
    for len in [0, 1, 125, 126, 127, 65_535, 65_536, 1 << 20] {
        let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        echoes(&mut client, OP_TEXT, &text);
        let binary: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        echoes(&mut client, OP_BINARY, &binary);
    }
}

fn fragments_are_reassembled_with_utf8_split_across_them(app: App) {
    let server = app.start();
    let mut client = app.connect(&server);
    // "héllo wörld": é (c3 a9) split across the first two fragments.
    let text = "héllo wörld".as_bytes();
    client.send_raw(&encode(false, 0, OP_TEXT, &text[..2], true));
    client.send_raw(&encode(false, 0, OP_CONT, &text[2..6], true));
    client.send_raw(&encode(true, 0, OP_CONT, &text[6..], true));
    let frame = client.read();
    assert_eq!((frame.opcode, frame.payload.as_slice()), (OP_TEXT, text));
    client.send_raw(&encode(false, 0, OP_BINARY, &[1, 2], true));
    client.send_raw(&encode(true, 0, OP_CONT, &[3], true));
    assert_eq!(client.read().payload, [1, 2, 3]);
}

fn pings_are_answered_with_their_payload_even_between_fragments(app: App) {
    let server = app.start();
    let mut client = app.connect(&server);
    client.send_raw(&encode(false, 0, OP_TEXT, b"first ", true));
    client.send(OP_PING, b"between");
    client.send_raw(&encode(true, 0, OP_CONT, b"second", true));
    let pong = client.read();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"between"[..])
    );
    assert_eq!(client.read().payload, b"first second");
    let big = vec![b'p'; 125];
    client.send(OP_PING, &big);
    let pong = client.read();
    assert_eq!((pong.opcode, pong.payload), (OP_PONG, big));
}

fn the_client_close_is_echoed_and_the_server_closes_tcp(app: App) {
    let server = app.start();
    let mut client = app.connect(&server);
    echoes(&mut client, OP_TEXT, b"before");
    client.send(OP_CLOSE, &close_payload(1000, b"bye"));
    let reply = client.read();
    assert_eq!((reply.opcode, reply.close_code()), (OP_CLOSE, 1000));
    let started = Instant::now();
    client.expect_tcp_close();
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Each violation, on a fresh connection, gets its close code.
fn violations_get_their_close_codes(app: App) {
    let server = app.builder().args(["--ws-max-message", "65536"]).start();
    let ping_126 = encode(true, 0, OP_PING, &[0; 126], true);
    let mut fragmented_ping = encode(false, 0, OP_PING, b"a", true);
    fragmented_ping.extend(encode(true, 0, OP_CONT, b"b", true));
    let mut split_bad_utf8 = encode(false, 0, OP_TEXT, b"ok \xf0\x9f", true);
    split_bad_utf8.extend(encode(true, 0, OP_CONT, b"\x41", true));
    let mut text_inside = encode(false, 0, OP_TEXT, b"a", true);
    text_inside.extend(encode(true, 0, OP_TEXT, b"b", true));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("126-byte ping", ping_126, 1002),
        ("fragmented ping", fragmented_ping, 1002),
        (
            "close 1005 on the wire",
            encode(true, 0, OP_CLOSE, &close_payload(1005, b""), true),
            1002,
        ),
        (
            "close 999",
            encode(true, 0, OP_CLOSE, &close_payload(999, b""), true),
            1002,
        ),
        (
            "invalid UTF-8",
            encode(true, 0, OP_TEXT, b"\xff\xfe", true),
            1007,
        ),
        ("invalid UTF-8 across fragments", split_bad_utf8, 1007),
        (
            "invalid UTF-8 close reason",
            encode(true, 0, OP_CLOSE, &close_payload(1000, b"\xff"), true),
            1007,
        ),
        (
            "unmasked frame",
            encode(true, 0, OP_TEXT, b"hi", false),
            1002,
        ),
        ("RSV1", encode(true, 4, OP_TEXT, b"hi", true), 1002),
        ("opcode 3", encode(true, 0, 3, b"hi", true), 1002),
        ("opcode 11", encode(true, 0, 11, b"hi", true), 1002),
        (
            "continuation without a start",
            encode(true, 0, OP_CONT, b"x", true),
            1002,
        ),
        ("text inside a fragmented message", text_inside, 1002),
        (
            "over --ws-max-message",
            encode(true, 0, OP_BINARY, &vec![0; 70_000], true),
            1009,
        ),
    ];
    // The axum app's WebSocket layer is its own tungstenite: it must answer as on axum::serve.
    let reference = (app == App::Axum).then(AxumServe::start);
    for (name, bytes, code) in cases {
        let expected = match &reference {
            Some(axum_serve) => violation_answer(axum_serve.addr, app.path(), &bytes),
            None => format!("close {code}"),
        };
        assert_eq!(
            violation_answer(server.addr(), app.path(), &bytes),
            expected,
            "{name}"
        );
    }
}

/// What a fresh connection to `path` answers to `bytes`: its close code (after which it must
/// end the TCP connection once the client answers), an echo, or a TCP close.
fn violation_answer(addr: SocketAddr, path: &str, bytes: &[u8]) -> String {
    let mut client = WsClient::connect(addr, path);
    client.send_raw(bytes);
    match client.try_read() {
        Some(frame) if frame.opcode == OP_CLOSE => {
            let code = frame.close_code();
            client.send(OP_CLOSE, &close_payload(code, b""));
            client.expect_tcp_close();
            format!("close {code}")
        }
        Some(frame) => format!(
            "a frame (opcode {}, {} bytes)",
            frame.opcode,
            frame.payload.len()
        ),
        None => "TCP closed without a close frame".to_owned(),
    }
}

fn an_idle_client_is_pinged_and_one_that_never_answers_is_closed(app: App) {
    let server = app.builder().args(["--ws-ping-interval", "1"]).start();
    let mut client = app.connect(&server);
    let ping = client.read();
    assert_eq!(ping.opcode, OP_PING);
    // Answer this one: the connection lives on, and is pinged again.
    client.send(OP_PONG, &ping.payload);
    let again = client.read();
    assert_eq!(again.opcode, OP_PING);
    // Answer nothing: given up within another interval or two (TCP closed, no close frame).
    let started = Instant::now();
    client.expect_tcp_close();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

fn access_log_and_stats_count_messages_and_the_close_code(app: App) {
    let dir = fresh_dir("ws-log");
    let log = dir.join("access.log");
    let socket = dir.join("stats.sock");
    let server = app
        .builder()
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    let mut client = app.connect(&server);
    echoes(&mut client, OP_TEXT, b"one");
    echoes(&mut client, OP_BINARY, b"two!");
    let stats = common::stats_json(&socket);
    assert_eq!(stats["upgraded"]["open"], 1, "{stats}");
    client.send(OP_CLOSE, &close_payload(4000, b"done"));
    client.read();
    client.expect_tcp_close();
    let stats = common::poll(Duration::from_secs(5), "the gauge back at 0", || {
        let stats = common::stats_json(&socket);
        (stats["upgraded"]["open"] == 0).then_some(stats)
    });
    assert_eq!(stats["upgraded"]["messages"]["in"], 2, "{stats}");
    assert_eq!(stats["upgraded"]["messages"]["out"], 2, "{stats}");
    assert_eq!(stats["upgraded"]["bytes"]["in"], 7, "{stats}");
    let close_line = common::poll(Duration::from_secs(5), "the close line", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains(&format!("GET {} ", app.path())) && l.contains("close="))
            .map(str::to_owned)
    });
    assert!(close_line.ends_with(" close=4000"), "{close_line}");
    assert!(close_line.contains("\" 101 7 "), "{close_line}");
}

fn a_client_that_vanishes_is_logged_1006(app: App) {
    let dir = fresh_dir("ws-vanish");
    let log = dir.join("access.log");
    let server = app
        .builder()
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .start();
    let mut client = app.connect(&server);
    echoes(&mut client, OP_TEXT, b"hi");
    drop(client);
    let line = common::poll(Duration::from_secs(5), "the close line", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains(&format!("GET {} ", app.path())) && l.contains("close="))
            .map(str::to_owned)
    });
    assert!(line.ends_with(" close=1006"), "{line}");
}

fn term_closes_websockets_with_1001_after_the_graceful_timeout(app: App) {
    let mut server = app.builder().args(["--graceful-timeout", "1"]).start();
    let mut client = app.connect(&server);
    echoes(&mut client, OP_TEXT, b"before");
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    // Served while the drain lasts.
    echoes(&mut client, OP_TEXT, b"during");
    let frame = client.read();
    assert_eq!(
        (frame.opcode, frame.close_code()),
        (OP_CLOSE, 1001),
        "{frame:?}"
    );
    assert!(
        asked.elapsed() >= Duration::from_millis(800),
        "{:?}",
        asked.elapsed()
    );
    client.send(OP_CLOSE, &close_payload(1001, b""));
    client.expect_tcp_close();
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    // Closed, not abandoned: the app was shut down cleanly.
    assert!(
        !server.stderr().contains("still being served"),
        "{}",
        server.stderr()
    );
}

fn websockets_work_on_tls_listeners(app: App) {
    let tls = common::TestTls::new("ws-tls");
    let server = app.builder().args(tls.server_args()).start();
    let mut stream = tls.connect(server.addr());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{VALID}\r\n",
        app.path()
    );
    let mut bytes = request.into_bytes();
    bytes.extend(encode(true, 0, OP_TEXT, b"over tls", true));
    stream.write_all(&bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The 101, then the echo: a text frame of 8 bytes (2 bytes of header).
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + 10 {
                assert!(got.starts_with(b"HTTP/1.1 101 "));
                assert_eq!(&got[end + 4..end + 14], b"\x81\x08over tls");
                break;
            }
        }
    }
}

fn a_client_that_does_not_read_holds_no_thread_and_is_closed_after_the_io_timeout(app: App) {
    let server = app
        .builder()
        .args(["--threads", "1", "--io-timeout", "1"])
        .start();
    let client = app.connect(&server);
    let mut stream = client.stream.try_clone().unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Messages the echo answers but the client never reads: the app's sends pend, it stops
    // receiving, the server stops reading, the client's writes stall.
    let writer = std::thread::spawn(move || {
        let frame = encode(true, 0, OP_BINARY, &[7; 16 * 1024], true);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if stream.write_all(&frame).is_err() {
                return Some(started.elapsed());
            }
        }
        None
    });
    std::thread::sleep(Duration::from_millis(300));
    // The only serving thread is free meanwhile.
    let started = Instant::now();
    assert_eq!(server.get("/").status, app.plain_status());
    assert!(started.elapsed() < Duration::from_secs(1));
    let gave_up = writer.join().unwrap();
    assert!(
        gave_up.is_some_and(|t| t < Duration::from_secs(10)),
        "a client that reads nothing was kept: {gave_up:?}"
    );
    drop(client);
}

fn idle_websockets_hold_no_thread(app: App) {
    let server = app.builder().args(["--threads", "1"]).start();
    let mut idle: Vec<WsClient> = (0..200).map(|_| app.connect(&server)).collect();
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(server.get("/").status, app.plain_status());
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    // And every one of them still answers.
    for client in idle.iter_mut().step_by(20) {
        echoes(client, OP_TEXT, b"still here");
    }
}

#[test]
fn an_app_thread_sends_and_closes_while_the_app_is_single_threaded() {
    let mut target = c_app("tests/fixtures/ws_ticker.c", "ws_ticker").into_os_string();
    target.push(":app");
    let server = server(target).start();
    let offer = format!("{VALID}Sec-WebSocket-Protocol: chat, ticker.v1\r\n");
    let (mut client, head) = WsClient::open(server.addr(), "/", &offer, b"");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: ticker.v1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nX-Ticker: 1\r\n"), "{head}");
    // What the client sends meanwhile is drained by on_event.
    client.send(OP_TEXT, b"ignored");
    for i in 0..5 {
        let frame = client.read();
        assert_eq!(
            (frame.opcode, frame.payload),
            (OP_TEXT, format!("tick {i}").into_bytes())
        );
    }
    let close = client.read();
    assert_eq!((close.opcode, close.close_code()), (OP_CLOSE, 1000));
    assert_eq!(&close.payload[2..], b"done");
    client.send(OP_CLOSE, &close_payload(1000, b""));
    client.expect_tcp_close();
}
