//! ws-load URL CONNS SECS SIZE: CONNS WebSocket connections to URL, each sending one SIZE-byte
//! binary message and awaiting its echo before the next, for SECS seconds after all connected.
//! Prints {"conns":..,"messages":..,"rate":..,"p50_us":..,"p99_us":..,"errors":..}.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: ws-load URL CONNS SECS SIZE");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let conns: usize = args[2].parse().expect("CONNS");
    let secs: u64 = args[3].parse().expect("SECS");
    let size: usize = args[4].parse().expect("SIZE");
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        sockets.push(ws);
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let payload = vec![b'x'; size];
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    if ws.send(Message::binary(payload.clone())).await.is_err() {
                        errors += 1;
                        break;
                    }
                    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                        Ok(Some(Ok(Message::Binary(b)))) if b.len() == size => {
                            latencies.push(sent.elapsed().as_micros() as u64)
                        }
                        _ => {
                            errors += 1;
                            break;
                        }
                    }
                }
                let _ = ws.close(None).await;
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"conns\":{conns},\"messages\":{},\"rate\":{:.0},\"p50_us\":{},\"p99_us\":{},\"errors\":{errors}}}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}
