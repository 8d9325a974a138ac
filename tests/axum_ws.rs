//! axum's own WebSocket routes (`sample-apps/axum-app`: `/ws` echo, `/chat` broadcast, on
//! `axum::extract::ws::WebSocketUpgrade`) through webserver-tower, against the very same router on
//! plain `axum::serve`: the same client must observe the same things on both, byte for byte where
//! the protocol leaves the server a choice (how it reacts to a protocol error).
//!
//! Needs `cargo build --workspace` first (the cdylib and `axum-serve` come from target/debug).

mod common;

use common::ws_client::{connect, digest, next_event};
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket};
use tokio_tungstenite::tungstenite::Message;

/// webserver serving the axum app (two serving threads, as tests/axum.rs).
fn webserver() -> Server {
    sample_server("axum_app").args(["--threads", "2"]).start()
}

/// Echo of texts and binaries across the frame-length encodings (7-bit, 16-bit, 64-bit), a ping,
/// and the closing handshake.
fn echo_observations(addr: SocketAddr) -> Vec<String> {
    let mut ws = connect(addr, "/ws");
    let mut seen = Vec::new();
    for len in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
        let text: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        ws.send(Message::text(text)).unwrap();
        seen.push(next_event(&mut ws));
        ws.send(Message::binary(pseudo_random_bytes(len, len as u64)))
            .unwrap();
        seen.push(next_event(&mut ws));
    }
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    seen.push(next_event(&mut ws));
    ws.send(Message::text("é, ü and 🦀")).unwrap();
    seen.push(next_event(&mut ws));
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    seen.push(next_event(&mut ws));
    seen.push(next_event(&mut ws));
    seen
}

#[test]
fn the_echo_route_answers_the_same_on_webserver_and_axum_serve() {
    let reference = AxumServe::start();
    let expected = echo_observations(reference.addr);
    // The echo itself, not only the agreement: every message came back whole.
    for (i, len) in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20]
        .into_iter()
        .enumerate()
    {
        assert!(
            expected[2 * i].starts_with(&format!("text {len} ")),
            "{expected:?}"
        );
        assert!(
            expected[2 * i + 1].starts_with(&format!("binary {len} ")),
            "{expected:?}"
        );
    }
    assert_eq!(expected[14], "pong \"are you there\"");
    let ws = webserver();
    assert_eq!(echo_observations(ws.addr()), expected);
}

/// A masked client frame whose first byte (FIN, RSV, opcode) is `first_byte`.
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    common::ws::encode(
        first_byte & 0x80 != 0,
        (first_byte >> 4) & 0x7,
        first_byte & 0xf,
        payload,
        true,
    )
}

/// The opening handshake by hand, with `then` in the same write; the client over what follows
/// the 101 head (whatever of the server's first frames came with it included).
fn handshake_with(addr: SocketAddr, path: &str, then: &[u8]) -> WebSocket<TcpStream> {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut bytes = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes();
    bytes.extend_from_slice(then);
    sock.write_all(&bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = sock.read(&mut buf).expect("the 101 head");
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    WebSocket::from_partially_read(sock, got[head_end..].to_vec(), Role::Client, None)
}

/// Frames sent in the same packet as the handshake, then protocol errors: what the client sees.
fn edge_observations(addr: SocketAddr) -> Vec<String> {
    let mut seen = Vec::new();
    // Two text frames right behind the head: the server must not lose them.
    let mut early = masked_frame(0x81, b"early one");
    early.extend(masked_frame(0x81, b"early two"));
    let mut ws = handshake_with(addr, "/ws", &early);
    seen.push(next_event(&mut ws));
    seen.push(next_event(&mut ws));
    // A fragmented text with a ping between its fragments.
    let mut fragmented = masked_frame(0x01, "frag".as_bytes());
    fragmented.extend(masked_frame(0x89, b"in between"));
    fragmented.extend(masked_frame(0x80, "mented ✓".as_bytes()));
    ws.get_mut().write_all(&fragmented).unwrap();
    seen.push(next_event(&mut ws));
    seen.push(next_event(&mut ws));
    drop(ws);
    // Protocol errors each end the connection as the WebSocket layer decides: the same on both.
    for (what, frame) in [
        ("unmasked", vec![0x81, 0x02, b'h', b'i']),
        ("invalid utf-8", masked_frame(0x81, &[0xff, 0xfe])),
        ("rsv1", masked_frame(0xc1, b"x")),
        ("opcode 3", masked_frame(0x83, b"x")),
        ("126-byte ping", masked_frame(0x89, &[b'p'; 126])),
    ] {
        let mut ws = handshake_with(addr, "/ws", &frame);
        seen.push(format!("{what}: {}", next_event(&mut ws)));
    }
    seen
}

#[test]
fn early_frames_and_protocol_errors_are_seen_the_same_on_webserver_and_axum_serve() {
    let reference = AxumServe::start();
    let expected = edge_observations(reference.addr);
    assert_eq!(
        &expected[..2],
        [
            format!("text 9 {}", digest(b"early one")),
            format!("text 9 {}", digest(b"early two"))
        ]
    );
    assert_eq!(expected[2], "pong \"in between\"");
    assert_eq!(
        expected[3],
        format!("text 14 {}", digest("fragmented ✓".as_bytes()))
    );
    let ws = webserver();
    assert_eq!(edge_observations(ws.addr()), expected);
}

/// Three `/chat` clients each say one line; what each hears, sorted.
fn chat_observations(addr: SocketAddr) -> Vec<Vec<String>> {
    let mut clients: Vec<_> = (0..3).map(|_| connect(addr, "/chat")).collect();
    // Each subscribes when its connection is upgraded; a round trip proves all three are in.
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::text(format!("hello from {i}"))).unwrap();
        // A client hears its own line once it went out, so it is subscribed by then.
        let mut heard = next_event(ws);
        while heard != format!("text 12 {}", digest(format!("hello from {i}").as_bytes())) {
            heard = next_event(ws);
        }
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::text(format!("line {i}"))).unwrap();
    }
    clients
        .iter_mut()
        .map(|ws| {
            let mut heard: Vec<String> = Vec::new();
            while heard.iter().filter(|h| h.starts_with("text 6 ")).count() < 3 {
                let event = next_event(ws);
                assert!(event.starts_with("text "), "{event}");
                heard.push(event);
            }
            heard.retain(|h| h.starts_with("text 6 "));
            heard.sort();
            heard
        })
        .collect()
}

#[test]
fn the_chat_route_broadcasts_to_every_client_on_webserver_as_on_axum_serve() {
    let mut lines: Vec<String> = (0..3)
        .map(|i| format!("text 6 {}", digest(format!("line {i}").as_bytes())))
        .collect();
    lines.sort();
    let reference = AxumServe::start();
    assert_eq!(chat_observations(reference.addr), vec![lines.clone(); 3]);
    let ws = webserver();
    assert_eq!(chat_observations(ws.addr()), vec![lines; 3]);
}

#[test]
fn a_plain_request_to_a_websocket_route_is_refused_the_same_way() {
    let reference = AxumServe::start();
    let ws = webserver();
    let ask = |addr| {
        let mut conn = Conn::connect(addr);
        conn.send("GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let resp = conn.read_response();
        (resp.status, resp.text())
    };
    let expected = ask(reference.addr);
    assert_eq!(expected.0, 400, "{expected:?}");
    assert_eq!(ask(ws.addr()), expected);
}

#[test]
fn many_websockets_stay_open_on_two_serving_threads() {
    // Each open WebSocket holds no serving thread: 100 of them, then all still echo, and a plain
    // request is answered meanwhile.
    let ws = webserver();
    let mut clients: Vec<_> = (0..100).map(|_| connect(ws.addr(), "/ws")).collect();
    assert_eq!(ws.get("/").status, 200);
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(Message::text(format!("{i}"))).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let text = format!("{i}");
        assert_eq!(
            next_event(c),
            format!("text {} {}", text.len(), digest(text.as_bytes()))
        );
    }
    std::thread::sleep(Duration::from_millis(100));
}
