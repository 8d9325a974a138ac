//! `ws-peer serve PORT` | `ws-peer load PORT CONNS SECS SIZE` | `ws-peer subscribe PORT N SECS`
//! (see Cargo.toml).

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as ClientMessage;

async fn echo(ws: WebSocketUpgrade) -> axum::response::Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            let reply = match message {
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

async fn serve(port: u16) {
    let app = axum::Router::new().route("/ws", get(echo));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

/// One connection's round trips until `until`: (count, latencies in µs).
async fn client(port: u16, size: usize, until: Instant) -> (u64, Vec<u32>) {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let payload = vec![b'x'; size];
    let (mut n, mut lat) = (0, Vec::new());
    while Instant::now() < until {
        let t = Instant::now();
        ws.send(ClientMessage::binary(payload.clone())).await.expect("send");
        match ws.next().await {
            Some(Ok(ClientMessage::Binary(b))) if b.len() == size => {}
            other => panic!("no echo: {other:?}"),
        }
        lat.push(t.elapsed().as_micros() as u32);
        n += 1;
    }
    let _ = ws.close(None).await;
    (n, lat)
}

async fn load(port: u16, conns: usize, secs: u64, size: usize) {
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(client(port, size, until)))
        .collect();
    let (mut total, mut lat) = (0u64, Vec::new());
    for task in tasks {
        let (n, l) = task.await.expect("client");
        total += n;
        lat.extend(l);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    println!(
        "{{\"messages\": {total}, \"per_sec\": {:.0}, \"p50_us\": {}, \"p99_us\": {}}}",
        total as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}

/// One subscriber: the "tick N" numbers it received in `secs` seconds after `start`: (count,
/// gaps in the sequence).
async fn subscriber(port: u16, start: Instant, secs: u64) -> (u64, u64) {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let until = start + Duration::from_secs(secs);
    let (mut count, mut gaps, mut last) = (0u64, 0u64, None::<u64>);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(message))) = tokio::time::timeout(left, ws.next()).await else {
            break;
        };
        if let ClientMessage::Text(text) = message {
            let n: u64 = text.trim_start_matches("tick ").parse().expect("tick N");
            if Instant::now() >= start {
                count += 1;
                if last.is_some_and(|l| n != l + 1) {
                    gaps += 1;
                }
            }
            last = Some(n);
        }
    }
    let _ = ws.close(None).await;
    (count, gaps)
}

/// `n` subscribers connect, then every one counts for `secs` seconds.
async fn subscribe(port: u16, n: usize, secs: u64) {
    let start = Instant::now() + Duration::from_secs(2);
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(subscriber(port, start, secs)))
        .collect();
    let (mut total, mut gaps, mut min, mut max) = (0u64, 0u64, u64::MAX, 0u64);
    for task in tasks {
        let (count, g) = task.await.expect("subscriber");
        total += count;
        gaps += g;
        min = min.min(count);
        max = max.max(count);
    }
    println!(
        "{{\"subscribers\": {n}, \"received\": {total}, \"per_subscriber_min\": {min}, \"per_subscriber_max\": {max}, \"gaps\": {gaps}}}"
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| -> usize {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let port = arg(2, 0) as u16;
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(port).await,
        Some("load") => load(port, arg(3, 50), arg(4, 5) as u64, arg(5, 64)).await,
        Some("subscribe") => subscribe(port, arg(3, 1000), arg(4, 5) as u64).await,
        _ => eprintln!(
            "usage: ws-peer serve PORT | ws-peer load PORT CONNS SECS SIZE | ws-peer subscribe PORT N SECS"
        ),
    }
}
