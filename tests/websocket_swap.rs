//! Upgraded connections across a hot swap and a stop (ABI 1.2, design step 4): a WebSocket
//! stays with the generation that accepted it — the swap never cuts it — and that generation's
//! drain closes it with 1001 ("going away") when `--graceful-timeout` runs out, so its client
//! reconnects to the new generation; HTTP is answered throughout.

mod common;

use std::time::{Duration, Instant};

use common::ws::*;
use common::{c_app, server, ServerBuilder};

fn echo() -> ServerBuilder {
    let mut target = c_app("tests/fixtures/ws_echo.c", "ws_echo").into_os_string();
    target.push(":app");
    server(target)
}

fn echoes(client: &mut WsClient, text: &str) {
    client.send(OP_TEXT, text.as_bytes());
    let frame = client.read();
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (OP_TEXT, text.as_bytes())
    );
}

#[test]
fn a_swap_keeps_websockets_on_their_generation_then_closes_them_with_1001() {
    let server = echo()
        .args(["--workers", "2", "--graceful-timeout", "3"])
        .start();
    let mut old: Vec<WsClient> = (0..40)
        .map(|_| WsClient::connect(server.addr(), "/"))
        .collect();
    for (i, client) in old.iter_mut().enumerate() {
        echoes(client, &format!("before {i}"));
    }
    server.signal(libc::SIGHUP);
    assert!(
        server
            .wait_for_log(Duration::from_secs(10), |l| l
                .contains("generation 2 ready"))
            .is_some(),
        "no swap:\n{}",
        server.stderr()
    );
    let swapped = Instant::now();
    // The old generation still serves every one of them: nothing was cut.
    for (i, client) in old.iter_mut().enumerate() {
        echoes(client, &format!("during {i}"));
    }
    // New connections and HTTP go to the new generation meanwhile.
    let mut fresh = WsClient::connect(server.addr(), "/");
    echoes(&mut fresh, "new generation");
    for _ in 0..10 {
        assert_eq!(
            server.get("/").status,
            426,
            "the echo's answer to plain HTTP"
        );
    }
    // At the graceful timeout every old one is told "going away" and closed.
    for (i, client) in old.iter_mut().enumerate() {
        let frame = client.read();
        assert_eq!(
            (frame.opcode, frame.close_code()),
            (OP_CLOSE, 1001),
            "connection {i}: {frame:?}"
        );
        client.send(OP_CLOSE, &close_payload(1001, b""));
        client.expect_tcp_close();
    }
    let waited = swapped.elapsed();
    assert!(waited < Duration::from_secs(8), "closed after {waited:?}");
    // The one on the new generation was not touched; clients reconnect there.
    echoes(&mut fresh, "still open");
    let mut again = WsClient::connect(server.addr(), "/");
    echoes(&mut again, "reconnected");
}
