//! Upgraded connections across a hot swap and a stop (ABI 1.2, design step 4): a WebSocket
//! stays with the generation that accepted it — the swap never cuts it — and that generation's
//! drain closes it with 1001 ("going away") when `--graceful-timeout` runs out, so its client
//! reconnects to the new generation; HTTP is answered throughout. Once with 40 sockets read one by
//! one, once with 1,000 tokio-tungstenite clients and HTTP load, counting every message.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::*;
use common::{c_app, poll, raise_open_files, server, Load, ServerBuilder};

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

/// Open WebSockets during the big swap.
const SOCKETS: usize = 1000;
/// How long an echo may take before the client counts it as lost.
const ECHO_TIMEOUT: Duration = Duration::from_secs(15);

/// What the 1,000 clients have done so far, for the test's thread to wait on.
#[derive(Default)]
struct Progress {
    connected: AtomicUsize,
    /// Set once the new generation is ready: from then on an echo is one served during the drain.
    swapped: AtomicBool,
    echoed_during_drain: AtomicUsize,
    going_away: AtomicUsize,
    reconnected: AtomicUsize,
    stop: AtomicBool,
}

/// One client's life: echo numbered messages, each sent only once the one before came back (so
/// a message is acknowledged by its echo, and every echo must be the one awaited: nothing lost,
/// repeated or reordered). Closed with 1001, it reconnects and resends the unacknowledged one.
/// Returns how many messages were acknowledged, or what went wrong.
async fn echo_client(
    id: usize,
    url: String,
    progress: Arc<Progress>,
) -> Result<(u64, bool), String> {
    // Staggered, so 1,000 handshakes do not arrive as one burst beyond the listen backlog.
    tokio::time::sleep(Duration::from_millis(id as u64 / 2)).await;
    let connect = || async {
        let (ws, resp) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| format!("client {id}: handshake: {e}"))?;
        match resp.status().as_u16() {
            101 => Ok(ws),
            other => Err(format!("client {id}: status {other}")),
        }
    };
    let mut ws = connect().await?;
    progress.connected.fetch_add(1, Ordering::Relaxed);
    let (mut acked, mut moved) = (0u64, false);
    // A different pace per client, so the sends spread over time.
    let pause = Duration::from_millis(150 + (id as u64 * 37) % 200);
    while !(progress.stop.load(Ordering::Relaxed)
        && (moved || !progress.swapped.load(Ordering::Relaxed)))
    {
        let text = format!("client {id} message {acked}");
        ws.send(Message::text(text.clone()))
            .await
            .map_err(|e| format!("client {id}: sending message {acked}: {e}"))?;
        let answer = loop {
            match tokio::time::timeout(ECHO_TIMEOUT, ws.next()).await {
                Err(_) => return Err(format!("client {id}: message {acked} not echoed")),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => break other,
            }
        };
        match answer {
            Some(Ok(Message::Text(echo))) if echo.as_str() == text => {
                acked += 1;
                if progress.swapped.load(Ordering::Relaxed) && !moved {
                    progress.echoed_during_drain.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Ok(Message::Close(Some(frame)))) if frame.code == CloseCode::Away && !moved => {
                progress.going_away.fetch_add(1, Ordering::Relaxed);
                // tokio-tungstenite answers the close; the server then ends the TCP connection.
                while let Some(Ok(_)) = ws.next().await {}
                ws = connect().await?;
                moved = true;
                progress.reconnected.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            other => {
                return Err(format!(
                    "client {id}: awaiting the echo of message {acked}, got {other:?}"
                ))
            }
        }
        tokio::time::sleep(pause).await;
    }
    ws.close(None)
        .await
        .map_err(|e| format!("client {id}: closing: {e}"))?;
    Ok((acked, moved))
}

#[test]
fn a_swap_under_1000_websockets_and_http_load_loses_no_request_and_no_acknowledged_message() {
    // Our 1,000 sockets and the server's 1,000 (plus what each holds besides).
    raise_open_files(4 * SOCKETS as u64);
    let started = Instant::now();
    let server = echo()
        .open_files_limit(4 * SOCKETS as u64)
        .args(["--workers", "2", "--graceful-timeout", "4"])
        .start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = (0..SOCKETS)
        .map(|id| {
            let url = format!("ws://{}/", server.addr());
            runtime.spawn(echo_client(id, url, progress.clone()))
        })
        .collect();
    poll(Duration::from_secs(20), "1,000 WebSockets open", || {
        (progress.connected.load(Ordering::Relaxed) == SOCKETS).then_some(())
    });
    let load = Load::keep_alive(&server, 2, "/", 426);
    load.wait_progress(20);
    server.signal(libc::SIGHUP);
    assert!(
        server
            .wait_for_log(Duration::from_secs(15), |l| l
                .contains("generation 2 ready"))
            .is_some(),
        "no swap:\n{}",
        server.stderr()
    );
    progress.swapped.store(true, Ordering::Relaxed);
    // The drain: the old generation serves all of them until the graceful timeout, then each is
    // told "going away" and its client moves to the new generation.
    poll(Duration::from_secs(25), "every client to reconnect", || {
        (progress.reconnected.load(Ordering::Relaxed) == SOCKETS).then_some(())
    });
    load.wait_progress(20);
    // A round of echoes on the new generation, then every client ends.
    std::thread::sleep(Duration::from_millis(500));
    progress.stop.store(true, Ordering::Relaxed);
    let results: Vec<_> = runtime.block_on(async {
        let mut results = Vec::new();
        for client in clients {
            results.push(client.await.expect("client task"));
        }
        results
    });
    let (ok, failures, _) = load.finish();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} clients failed: {errors:#?}",
        errors.len()
    );
    let acked: u64 = results.iter().map(|r| r.as_ref().unwrap().0).sum();
    eprintln!(
        "{SOCKETS} WebSockets: {acked} messages acknowledged, {} of them during the drain; \
         HTTP: {ok} answered, {} failed; {:.1} s",
        progress.echoed_during_drain.load(Ordering::Relaxed),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "failed HTTP requests: {failures:#?}");
    assert_eq!(progress.going_away.load(Ordering::Relaxed), SOCKETS);
    assert!(results.iter().all(|r| r.as_ref().unwrap().1));
    // Nothing was cut at the swap: the old generation went on echoing during the drain.
    assert!(
        progress.echoed_during_drain.load(Ordering::Relaxed) >= SOCKETS,
        "the old generation stopped serving at the swap"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
