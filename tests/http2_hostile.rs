//! Hostile HTTP/2 clients (issue 22, item 4), each with a legitimate client served meanwhile:
//! rapid reset, CONTINUATION floods, HPACK bombs, SETTINGS and PING floods (with a latency
//! bound for the other connections on the same HTTP/2 thread), zero-window stalls, and stream
//! ids run out.

mod common;
mod http2_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http2_support::*;

#[test]
fn a_rapid_reset_flood_reaches_no_app_while_another_client_is_served() {
    let server = h2_server("stream").args(["--threads", "2"]).start();
    let addr = server.addr();
    let started = Instant::now();
    let flood = std::thread::spawn(move || {
        runtime().block_on(async move {
            let (send, driver) = h2_connect(addr, &h2::client::Builder::new()).await;
            let mut resets = 0u32;
            let mut send = Some(send);
            while let Some(ready) = send.take() {
                let Ok(mut ready) = ready.ready().await else {
                    break;
                };
                let Ok((_, mut stream)) = ready.send_request(get(addr, "/?n=1&delay_ms=0"), false)
                else {
                    break;
                };
                stream.send_reset(h2::Reason::CANCEL);
                resets += 1;
                if resets >= 20_000 || started.elapsed() > Duration::from_secs(20) {
                    break;
                }
                send = Some(ready);
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
            resets
        })
    });
    // Meanwhile another client is served, promptly.
    let mut served = 0;
    while !flood.is_finished() && served < 20 {
        let asked = Instant::now();
        let response = runtime().block_on(async move {
            let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
            let mut send = send.ready().await.unwrap();
            let (response, _) = send.send_request(get(addr, "/closes"), true).unwrap();
            tokio::time::timeout(Duration::from_secs(5), response).await
        });
        let response = response
            .expect("no answer within 5 s during the flood")
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(asked.elapsed() < Duration::from_secs(5));
        served += 1;
    }
    let resets = flood.join().unwrap();
    assert!(served > 0);
    let closes = closes_over_h2(addr);
    let opened: u64 = closes
        .split_whitespace()
        .find_map(|word| word.strip_prefix("opened="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    // Streams reset as soon as they were opened cost the app nothing (h2 drops those it had
    // not handed over yet; a queued one is dropped before its app call).
    assert!(
        opened < 1000,
        "{resets} resets sent, the app opened {opened} streams"
    );
    assert!(server.stderr().lines().count() < 200, "{}", server.stderr());
}

/// `GET /closes` of the stream app over HTTP/2.
fn closes_over_h2(addr: SocketAddr) -> String {
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send.send_request(get(addr, "/closes"), true).unwrap();
        text(&read_body(response.await.unwrap()).await.unwrap())
    })
}

#[test]
fn a_continuation_flood_is_cut_off_while_another_client_is_served() {
    let server = h2_server("hello").args(["--threads", "1"]).start();
    let addr = server.addr();
    // A HEADERS frame without END_HEADERS, then CONTINUATION frames that never end it, each
    // full of fields: without a bound, the server would buffer them all (CVE-2024-27316).
    let mut block = literal(b":method", b"GET");
    block.extend(literal(b":path", b"/"));
    block.extend(literal(b":scheme", b"http"));
    let headers = frame(HEADERS, 0, 1, &block);
    let fields: Vec<u8> = (0..60)
        .flat_map(|i| literal(format!("x-flood-{i}").as_bytes(), &[b'a'; 100]))
        .collect();
    let flooder = std::thread::spawn(move || {
        flood(
            addr,
            &headers,
            |_| frame(CONTINUATION, 0, 1, &fields),
            Duration::from_secs(5),
        )
    });
    for _ in 0..5 {
        served_promptly(addr);
    }
    let (sent, back) = flooder.join().unwrap();
    // 64 KiB of header list is the bound: the flood (about 7 KiB a frame) ends long before
    // 5 s of writing, with a GOAWAY or a closed connection.
    assert!(sent < 1000, "the server took {sent} CONTINUATION frames");
    let types = frame_types(&back);
    assert!(
        types.contains(&GOAWAY) || types.is_empty() || sent < 100,
        "{types:?}"
    );
    served_promptly(addr);
}

#[test]
fn settings_and_ping_floods_leave_another_client_served() {
    let server = h2_server("hello").args(["--threads", "1"]).start();
    let addr = server.addr();
    let settings = std::thread::spawn(move || {
        // SETTINGS_MAX_CONCURRENT_STREAMS = 100, over and over, never reading the ACKs.
        let setting = [0, 3, 0, 0, 0, 100];
        flood(
            addr,
            &[],
            |_| frame(SETTINGS, 0, 0, &setting),
            Duration::from_secs(3),
        )
    });
    let pings = std::thread::spawn(move || {
        flood(
            addr,
            &[],
            |n| frame(PING, 0, 0, &u64::from(n).to_be_bytes()),
            Duration::from_secs(3),
        )
    });
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(3) {
        served_promptly(addr);
        served += 1;
    }
    let (settings_sent, _) = settings.join().unwrap();
    let (pings_sent, _) = pings.join().unwrap();
    assert!(
        served >= 3,
        "only {served} requests served during the floods"
    );
    // The server stops reading a client that does not read its answers: a bounded number of
    // frames is taken (the socket buffers', and h2's queue's), not an unbounded stream.
    assert!(settings_sent > 0 && pings_sent > 0);
    // Nor does a flood flood the error log (the access lines of the requests served meanwhile
    // are counted apart: more of them only means the server kept up).
    let stderr = server.stderr();
    let complaints = stderr.lines().filter(|l| !l.contains("INFO  access]"));
    assert!(complaints.count() < 100, "{stderr}");
    served_promptly(addr);
}

#[test]
fn a_zero_window_stall_is_reset_after_the_io_timeout() {
    let server = h2_server("stream")
        .args(["--threads", "1", "--io-timeout", "1"])
        .start();
    let addr = server.addr();
    let asked = Instant::now();
    let stalled = runtime().block_on(async move {
        let mut builder = h2::client::Builder::new();
        // A window of 0: the response's DATA can never be sent.
        builder.initial_window_size(0);
        let (send, _driver) = h2_connect(addr, &builder).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send
            .send_request(get(addr, "/bytes?size=100000"), true)
            .unwrap();
        let response = response.await.unwrap();
        let mut body = response.into_body();
        // Never released: the stream ends with a reset when the server gives up.
        tokio::time::timeout(Duration::from_secs(10), body.data()).await
    });
    let ended = stalled.expect("the stalled stream was still open after 10 s");
    assert!(matches!(ended, Some(Err(_))), "{ended:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    // The serving thread the stall held is free again.
    served_promptly(addr);
}

#[test]
fn zero_window_streams_hold_no_serving_thread_while_another_client_is_served() {
    let root = common::fresh_dir("h2-zero-window").join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("big.bin"), vec![7u8; 4 * 1024 * 1024]).unwrap();
    // One serving thread, and an --io-timeout far longer than the bound asserted below: a
    // thread waiting on a closed window would keep the other client waiting that long.
    let server = h2_server("stream")
        .args(["--threads", "1", "--io-timeout", "8"])
        .args(["--static", &format!("/static/={}", root.display())])
        .start();
    let addr = server.addr();
    let stalls = std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut builder = h2::client::Builder::new();
            // Windows of 0: no DATA can be sent on either stream, ever.
            builder.initial_window_size(0);
            let (send, _driver) = h2_connect(addr, &builder).await;
            let mut send = send.ready().await.unwrap();
            let mut bodies = Vec::new();
            for path in ["/static/big.bin", "/bytes?size=100000", "/static/big.bin"] {
                let (response, _) = send.send_request(get(addr, path), true).unwrap();
                bodies.push(tokio::spawn(async move {
                    let mut body = response.await.unwrap().into_body();
                    // Never released: the stream ends when the server gives up on it.
                    tokio::time::timeout(Duration::from_secs(30), body.data()).await
                }));
                send = send.ready().await.unwrap();
            }
            let mut ends = Vec::new();
            for body in bodies {
                ends.push(body.await.unwrap());
            }
            ends
        })
    });
    // Let the stalled streams reach the serving thread first.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let waited = time_to_serve(addr, Duration::from_secs(20));
        assert!(
            waited < Duration::from_secs(3),
            "the other client waited {waited:?} behind the zero-window streams"
        );
    }
    // Each stalled stream still ends, reset, once its window stayed closed for --io-timeout.
    for (n, ended) in stalls.join().unwrap().into_iter().enumerate() {
        let ended = ended.unwrap_or_else(|_| panic!("stalled stream {n} was open after 30 s"));
        assert!(matches!(ended, Some(Err(_))), "stream {n}: {ended:?}");
    }
}

/// Floods the server with `frames` (a batch written again and again) on a raw connection that
/// reads everything the server answers, so the server is never held back by its own writes:
/// the worst case for the other connections on its HTTP/2 thread. Runs until `stop` is set or
/// the server closes; the batches written and what came back.
fn reading_flood(
    addr: SocketAddr,
    batch: Vec<u8>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u32, Vec<u8>)> {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        let mut reader = tcp.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            // The first 64 KiB are kept (they hold the GOAWAY if one comes early), the rest read
            // and dropped.
            let mut kept = Vec::new();
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if kept.len() < 64 * 1024 {
                    kept.extend_from_slice(&buf[..n]);
                }
                if let Some(goaway) = find_goaway(&kept) {
                    // Keep the GOAWAY in view however much came before it.
                    kept.drain(..goaway);
                }
            }
            kept
        });
        tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = tcp.write_all(PREFACE);
        let _ = tcp.write_all(&frame(SETTINGS, 0, 0, &[]));
        let mut sent = 0;
        while !stop.load(Ordering::SeqCst) {
            if tcp.write_all(&batch).is_err() {
                break;
            }
            sent += 1;
        }
        let _ = tcp.shutdown(std::net::Shutdown::Both);
        (sent, drain.join().unwrap())
    })
}

/// Where a GOAWAY frame starts in what a server sent, if it sent one.
fn find_goaway(bytes: &[u8]) -> Option<usize> {
    frames(bytes)
        .into_iter()
        .find_map(|frame| (frame.kind == GOAWAY).then_some(frame.at))
}

/// RFC 9113 §7.
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The error code of the GOAWAY `bytes` hold, if they hold one.
fn goaway_reason(bytes: &[u8]) -> Option<u32> {
    let at = find_goaway(bytes)? + 9;
    Some(u32::from_be_bytes(
        bytes.get(at + 4..at + 8)?.try_into().ok()?,
    ))
}

/// Requests on one HTTP/2 connection opened before `during` starts, one after another while
/// it runs; their latencies, sorted.
fn latencies_during(addr: SocketAddr, during: impl FnOnce() -> Box<dyn FnOnce()>) -> Vec<Duration> {
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        // Warm: the connection's first stream.
        let (response, _) = send.send_request(get(addr, "/"), true).unwrap();
        read_body(response.await.unwrap()).await.unwrap();
        let stop = during();
        let mut took = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            send = send.ready().await.unwrap();
            let asked = Instant::now();
            let (response, _) = send.send_request(get(addr, "/"), true).unwrap();
            let response = tokio::time::timeout(Duration::from_secs(10), response)
                .await
                .expect("no answer within 10 s")
                .unwrap();
            assert_eq!(response.status(), 200);
            read_body(response).await.unwrap();
            took.push(asked.elapsed());
        }
        stop();
        took.sort();
        took
    })
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Two flooders (the worst case: they read every answer, so nothing holds them back) on the
/// HTTP/2 thread another client's connection shares: that client's p99 latency.
fn p99_during_flood(addr: SocketAddr, batch: Vec<u8>) -> (Duration, Vec<Vec<u8>>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let stop = Arc::new(AtomicBool::new(false));
    let floods = Arc::new(Mutex::new(Vec::new()));
    let took = latencies_during(addr, || {
        let (stop, floods) = (Arc::clone(&stop), Arc::clone(&floods));
        for _ in 0..2 {
            let flood = reading_flood(addr, batch.clone(), Arc::clone(&stop));
            floods.lock().unwrap().push(flood);
        }
        // Let the floods get going before the first measured request.
        std::thread::sleep(Duration::from_millis(200));
        Box::new(move || stop.store(true, Ordering::SeqCst))
    });
    let answers = std::mem::take(&mut *floods.lock().unwrap())
        .into_iter()
        .map(|flood| flood.join().unwrap().1)
        .collect();
    eprintln!(
        "{} requests during the flood: median {:?}, p99 {:?}, max {:?}",
        took.len(),
        took[took.len() / 2],
        p99(&took),
        took.last().unwrap()
    );
    (p99(&took), answers)
}

/// The latency bound other clients keep during a flood: a request takes about a millisecond
/// on a quiet machine; the margin is for a loaded one.
const FLOOD_P99: Duration = Duration::from_millis(100);

#[test]
fn a_ping_flood_leaves_other_connections_a_low_latency() {
    let server = h2_server("hello").args(["--threads", "1"]).start();
    let addr = server.addr();
    let batch: Vec<u8> = (0..1000u64)
        .flat_map(|n| frame(PING, 0, 0, &n.to_be_bytes()))
        .collect();
    let (p99, answers) = p99_during_flood(addr, batch);
    assert!(p99 < FLOOD_P99, "p99 {p99:?} during a PING flood");
    for answer in answers {
        assert_eq!(goaway_reason(&answer), Some(ENHANCE_YOUR_CALM));
    }
    served_promptly(addr);
}

#[test]
fn a_settings_flood_leaves_other_connections_a_low_latency() {
    let server = h2_server("hello").args(["--threads", "1"]).start();
    let addr = server.addr();
    // SETTINGS_MAX_CONCURRENT_STREAMS = 100, over and over.
    let batch: Vec<u8> = (0..1000)
        .flat_map(|_| frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]))
        .collect();
    let (p99, answers) = p99_during_flood(addr, batch);
    assert!(p99 < FLOOD_P99, "p99 {p99:?} during a SETTINGS flood");
    for answer in answers {
        assert_eq!(goaway_reason(&answer), Some(ENHANCE_YOUR_CALM));
    }
    served_promptly(addr);
}

#[test]
fn a_flood_of_frames_h2_ignores_leaves_other_connections_a_low_latency() {
    // PRIORITY frames (deprecated, RFC 9113 §5.3.2) cost a parse and nothing else, and are
    // answered with nothing: the connection's read budget per turn is what keeps the others
    // served.
    let server = h2_server("hello").args(["--threads", "1"]).start();
    let addr = server.addr();
    let batch: Vec<u8> = (0..1000u32)
        .flat_map(|n| frame(PRIORITY, 0, 2 * n + 1, &[0, 0, 0, 0, 16]))
        .collect();
    let (p99, _) = p99_during_flood(addr, batch);
    assert!(p99 < FLOOD_P99, "p99 {p99:?} during a PRIORITY flood");
    served_promptly(addr);
}

/// An HPACK string literal without Huffman coding (RFC 7541 §5.2), its length an integer with
/// a 7-bit prefix (§5.1).
fn hpack_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut len = bytes.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push((len % 128) as u8 | 0x80);
            len /= 128;
        }
        out.push(len as u8);
    }
    out.extend_from_slice(bytes);
    out
}

/// `GET /` on stream `id`, its block complete in one HEADERS frame that ends the stream.
fn get_headers(id: u32, extra: &[u8]) -> Vec<u8> {
    let mut block = literal(b":method", b"GET");
    block.extend(literal(b":path", b"/"));
    block.extend(literal(b":scheme", b"http"));
    block.extend(literal(b":authority", b"localhost"));
    block.extend_from_slice(extra);
    // END_STREAM | END_HEADERS
    frame(HEADERS, 0x5, id, &block)
}

/// A raw connection that sent `bytes` after the preface; what the server sent back until it
/// closed or was quiet for `quiet`.
fn exchange(addr: SocketAddr, bytes: &[u8], quiet: Duration) -> (Vec<u8>, bool) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(PREFACE).unwrap();
    tcp.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    tcp.write_all(bytes).unwrap();
    tcp.set_read_timeout(Some(quiet)).unwrap();
    let mut back = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return (back, true),
            Ok(n) => back.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (back, true),
            Err(_) => return (back, false),
        }
    }
}

/// The stream got a response whose HEADERS hold `status`: 200 (indexed, 0x88) or 431 (a
/// literal string, Huffman-coded as `h2` sends it: 0x83 then 011010 011001 00001 and padding).
fn answered_with(back: &[u8], stream: u32, status: u16) -> bool {
    let literal_431: &[u8] = &[0x83, 0x69, 0x90, 0xff];
    frames(back).iter().any(|frame| {
        frame.kind == HEADERS
            && frame.stream == stream
            && match status {
                200 => frame.payload.first() == Some(&0x88),
                431 => frame.payload.windows(4).any(|w| w == literal_431),
                _ => unimplemented!("status {status}"),
            }
    })
}

#[test]
fn hpack_bombs_are_cut_off_and_an_oversized_list_gets_431() {
    let server = h2_server("stream")
        .args(["--threads", "1", "--keep-alive", "30"])
        .start();
    let addr = server.addr();
    // A field put in the dynamic table (literal with incremental indexing, new name: 0x40),
    // then referenced by one byte each (indexed field 62, the newest entry: 0xbe): a 16 KiB
    // block (one frame) decodes to 48 MiB (a 4000-byte field 12,000 times), to 400 KiB (a tiny
    // field, each counted with 32 bytes of overhead, RFC 7541 §4.1) or to 100 KiB. The list's
    // bound is 64 KiB: past four times that, `h2` stops decoding and ends the connection with
    // GOAWAY(ENHANCE_YOUR_CALM); below, the stream is refused with 431 and the connection
    // serves on.
    for (value, refs, cut_off) in [
        (vec![b'a'; 4000], 12_000, true),
        (Vec::new(), 12_000, true),
        (Vec::new(), 3_000, false),
    ] {
        let mut bomb = vec![0x40];
        bomb.extend(hpack_string(b"x-bomb"));
        bomb.extend(hpack_string(&value));
        bomb.extend(std::iter::repeat_n(0xbe, refs));
        let mut sent = get_headers(1, &bomb);
        // The same connection asks again, politely.
        sent.extend(get_headers(3, &[]));
        let mut served = None;
        let (back, closed) = std::thread::scope(|scope| {
            scope.spawn(|| {
                served_promptly(addr);
                served = Some(());
            });
            exchange(addr, &sent, Duration::from_secs(2))
        });
        assert!(served.is_some());
        let case = format!("{refs} times a {}-byte field", value.len());
        if cut_off {
            assert_eq!(goaway_reason(&back), Some(ENHANCE_YOUR_CALM), "{case}");
            assert!(closed, "{case}");
        } else {
            assert!(
                answered_with(&back, 1, 431),
                "{case}: {:?}",
                frame_types(&back)
            );
            assert!(
                answered_with(&back, 3, 200),
                "{case}: {:?}",
                frame_types(&back)
            );
        }
    }
    // No bomb reached the app: it opened the three other clients' streams and the polite
    // one.
    let closes = closes_over_h2(addr);
    assert!(closes.contains("opened=4 "), "{closes}");
}

#[test]
fn stream_ids_run_out_the_server_says_goaway_and_a_new_connection_is_served() {
    let server = h2_server("hello")
        .args(["--threads", "1", "--keep-alive", "30"])
        .start();
    let addr = server.addr();
    // Stream ids only have to grow: the last one a client may open (2^31 - 1) right after the
    // first. No stream can follow it on this connection, so the server says so (GOAWAY with
    // that id) and closes once it is answered, instead of holding the connection until
    // --keep-alive.
    const LAST_ID: u32 = (1 << 31) - 1;
    let mut sent = get_headers(1, &[]);
    sent.extend(get_headers(LAST_ID, &[]));
    let asked = Instant::now();
    let (back, closed) = exchange(addr, &sent, Duration::from_secs(10));
    assert!(answered_with(&back, 1, 200), "{:?}", frame_types(&back));
    assert!(
        answered_with(&back, LAST_ID, 200),
        "{:?}",
        frame_types(&back)
    );
    let goaway = find_goaway(&back).expect("no GOAWAY after the last stream id");
    let last = u32::from_be_bytes(back[goaway + 9..goaway + 13].try_into().unwrap());
    assert_eq!(last & !(1 << 31), LAST_ID);
    assert_eq!(goaway_reason(&back), Some(0), "NO_ERROR");
    assert!(closed, "the connection stayed open");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "{:?}",
        asked.elapsed()
    );
    // A stream id that goes back is a protocol error for the whole connection.
    let mut sent = get_headers(LAST_ID, &[]);
    sent.extend(get_headers(5, &[]));
    let (back, closed) = exchange(addr, &sent, Duration::from_secs(10));
    assert_eq!(goaway_reason(&back), Some(1), "PROTOCOL_ERROR");
    assert!(closed);
    // The client reconnects and is served.
    served_promptly(addr);
}

/// The SETTINGS values of the server's first SETTINGS frame in `back`: (identifier, value).
fn server_settings(back: &[u8]) -> Vec<(u16, u32)> {
    let first = frames(back)
        .into_iter()
        .find(|frame| frame.kind == SETTINGS)
        .expect("the server sends its SETTINGS first");
    first
        .payload
        .chunks_exact(6)
        .map(|s| {
            let id = u16::from_be_bytes([s[0], s[1]]);
            (id, u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
        })
        .collect()
}

#[test]
fn lowered_flood_thresholds_bite_and_the_defaults_stay_as_they_were() {
    // Twenty PINGs at once: a client that pings like that is past a bound of 10 a second, far
    // below the default's 1,000.
    let pings: Vec<u8> = (0..20u64)
        .flat_map(|n| frame(PING, 0, 0, &n.to_be_bytes()))
        .collect();
    // A 3 KiB header list (one literal field without indexing, new name: 0x00), then a polite
    // request on the same connection.
    let mut big = vec![0x00];
    big.extend(hpack_string(b"x-big"));
    big.extend(hpack_string(&[b'a'; 3000]));
    let mut sent = get_headers(1, &big);
    sent.extend(get_headers(3, &[]));
    // (options, SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_HEADER_LIST_SIZE, cut off by the
    // PINGs, the big list's status)
    let lowered = [
        "--http2-max-streams=3",
        "--http2-max-header-list=2048",
        "--http2-max-control-frames=10",
    ];
    for (options, streams, list, cut_off, status) in [
        (&lowered[..], 3, 2048, true, 431),
        (&[][..], 100, 64 * 1024, false, 200),
    ] {
        let server = h2_server("hello")
            .args(["--threads", "1", "--keep-alive", "30"])
            .args(options)
            .start();
        let quiet = Duration::from_millis(500);
        let (back, closed) = exchange(server.addr(), &pings, quiet);
        let settings = server_settings(&back);
        // RFC 9113 §6.5.2: 0x3 and 0x6.
        assert!(
            settings.contains(&(0x3, streams)),
            "{options:?}: {settings:?}"
        );
        assert!(settings.contains(&(0x6, list)), "{options:?}: {settings:?}");
        let reason = cut_off.then_some(ENHANCE_YOUR_CALM);
        assert_eq!(goaway_reason(&back), reason, "{options:?}");
        assert_eq!(closed, cut_off, "{options:?}");
        let (back, _) = exchange(server.addr(), &sent, quiet);
        let types = frame_types(&back);
        assert!(answered_with(&back, 1, status), "{options:?}: {types:?}");
        assert!(answered_with(&back, 3, 200), "{options:?}: {types:?}");
        served_promptly(server.addr());
    }
}
