//! HTTP/2 (`--http2 on`, issue 22) with real clients: curl with prior knowledge (h2c) on TCP and
//! unix listeners and with ALPN over TLS, nghttp and h2load (Debian's nghttp2-client), and the
//! `h2` crate's client for what the others cannot show (many streams on one connection, a small
//! flow-control window, resets, GOAWAY). The curl, nghttp and h2load tests say so and pass when
//! the tool is missing (`.ci/run` installs them).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;

/// A sample app served with HTTP/2 on.
fn h2_server(app: &str) -> ServerBuilder {
    sample_server(app).args(["--http2", "on"])
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("{tool} is not installed: test skipped");
    }
    found
}

fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `curl -sS --max-time 20 ARGS... -w '\n%{http_version} %{http_code}'`: the body and the last
/// line, split.
fn curl(args: &[&str]) -> (String, String) {
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-w", "\n%{http_version} %{http_code}"]);
    let out = run("curl", &all);
    let stdout = text(&out.stdout);
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    (body.to_owned(), status.to_owned())
}

/// The h2 crate's client on one TCP connection, driven by a current-thread runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn h2_connect(
    addr: SocketAddr,
    builder: &h2::client::Builder,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = builder.handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driver)
}

fn get(addr: SocketAddr, path: &str) -> http::Request<()> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap()
}

/// The whole body of a response, its window released as it is read.
async fn read_body(response: http::Response<h2::RecvStream>) -> Result<Vec<u8>, h2::Error> {
    let mut body = response.into_body();
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// The `"body_sha256"` the echo app reports.
fn echoed_sha(json: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    value["body_sha256"].as_str().unwrap().to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn curl_with_prior_knowledge_gets_http2_and_the_access_log_says_so() {
    if !have("curl") {
        return;
    }
    let server = h2_server("hello").args(["--access-logfile", "-"]).start();
    let url = format!("http://{}/hi?x=1", server.addr());
    let (body, status) = curl(&["--http2-prior-knowledge", &url]);
    assert_eq!(status, "2 200", "{body}\n{}", server.stderr());
    assert!(body.contains("Hello, world!"), "{body}");
    // Plain HTTP/1.1 on the same listener is unchanged.
    let (_, status) = curl(&["--http1.1", &url]);
    assert_eq!(status, "1.1 200");
    let logged = Instant::now();
    while !server.stdout().contains("\"GET /hi?x=1 HTTP/2\" 200") {
        assert!(
            logged.elapsed() < Duration::from_secs(5),
            "no HTTP/2 access-log line:\n{}",
            server.stdout()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_http2_the_preface_still_gets_505() {
    let server = sample_server("hello").start();
    let mut conn = server.connect();
    conn.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 505, "{resp:?}");
}

#[test]
fn curl_over_tls_chooses_h2_by_alpn_and_http1_still_works() {
    if !have("curl") {
        return;
    }
    let dir = fresh_dir("http2-tls");
    let (certfile, keyfile) = self_signed(&dir);
    let server = h2_server("echo")
        .args(["--certfile".as_ref(), certfile.as_os_str()])
        .args(["--keyfile".as_ref(), keyfile.as_os_str()])
        .start();
    let url = format!("https://localhost:{}/tls", server.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.port());
    let ca = certfile.to_str().unwrap();
    let (body, status) = curl(&["--http2", "--cacert", ca, "--resolve", &resolve, &url]);
    assert_eq!(status, "2 200", "{body}\n{}", server.stderr());
    assert!(body.contains("\"url_scheme\":\"https\""), "{body}");
    // A request body over TLS, larger than every window.
    let upload = dir.join("upload.bin");
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&upload, &data).unwrap();
    let at_upload = format!("@{}", upload.display());
    let (body, status) = curl(&[
        "--http2",
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        "--data-binary",
        &at_upload,
        &url,
    ]);
    assert_eq!(status, "2 200", "{body}");
    assert_eq!(echoed_sha(&body), sha256_hex(&data));
    let (_, status) = curl(&["--http1.1", "--cacert", ca, "--resolve", &resolve, &url]);
    assert_eq!(status, "1.1 200");
}

/// A self-signed certificate for localhost and 127.0.0.1: (certfile, keyfile).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (certfile, keyfile) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&certfile, cert.cert.pem()).unwrap();
    std::fs::write(&keyfile, cert.key_pair.serialize_pem()).unwrap();
    (certfile, keyfile)
}

#[test]
fn a_unix_listener_serves_h2c() {
    if !have("curl") {
        return;
    }
    let dir = fresh_dir("http2-unix");
    let socket = dir.join("h2.sock");
    let bind = format!("unix:{}", socket.display());
    let server = h2_server("hello")
        .no_default_bind()
        .args(["--bind", &bind])
        .start();
    let (body, status) = curl(&[
        "--http2-prior-knowledge",
        "--unix-socket",
        socket.to_str().unwrap(),
        "http://localhost/",
    ]);
    assert_eq!(status, "2 200", "{body}\n{}", server.stderr());
}

#[test]
fn request_and_response_bodies_stream_through_curl() {
    if !have("curl") {
        return;
    }
    let echo = h2_server("echo").start();
    let dir = fresh_dir("http2-bodies");
    let upload = dir.join("upload.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&upload, &data).unwrap();
    let (body, status) = curl(&[
        "--http2-prior-knowledge",
        "--data-binary",
        &format!("@{}", upload.display()),
        &format!("http://{}/up", echo.addr()),
    ]);
    assert_eq!(status, "2 200", "{body}");
    assert_eq!(echoed_sha(&body), sha256_hex(&data));

    let stream = h2_server("stream").start();
    let (body, status) = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/?n=3&delay_ms=50", stream.addr()),
    ]);
    assert_eq!(status, "2 200");
    assert_eq!(body, "chunk 0\nchunk 1\nchunk 2\n");
    let (body, status) = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/bytes?size=1000000", stream.addr()),
    ]);
    assert_eq!(status, "2 200");
    assert_eq!(body.len(), 1_000_000);
}

#[test]
fn nghttp_and_h2load_are_served() {
    if !have("nghttp") || !have("h2load") {
        return;
    }
    let server = h2_server("hello").args(["--threads", "2"]).start();
    let url = format!("http://{}/", server.addr());
    let out = run("nghttp", &["-nv", &url]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains(":status: 200"), "{said}");
    assert!(
        said.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100"),
        "{said}"
    );
    let out = run("h2load", &["-n", "2000", "-c", "4", "-m", "10", &url]);
    let said = text(&out.stdout);
    assert!(
        said.contains("2000 succeeded, 0 failed, 0 errored"),
        "{said}{}",
        text(&out.stderr)
    );
    assert!(said.contains("status codes: 2000 2xx"), "{said}");
}

#[test]
fn a_rust_client_runs_many_streams_on_one_connection() {
    let server = h2_server("echo").args(["--threads", "2"]).start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let mut pending = Vec::new();
        for i in 0..50 {
            let (response, _) = send
                .send_request(get(addr, &format!("/s{i}")), true)
                .unwrap();
            pending.push((i, response));
            send = send.ready().await.unwrap();
        }
        for (i, response) in pending {
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200);
            let body = text(&read_body(response).await.unwrap());
            assert!(body.contains(&format!("\"path\":\"/s{i}\"")), "{body}");
            assert!(body.contains("\"host\":\"127.0.0.1:"), "{body}");
        }
    });
}

#[test]
fn a_response_keeps_to_a_small_client_window() {
    let server = h2_server("stream").start();
    let addr = server.addr();
    runtime().block_on(async move {
        let mut builder = h2::client::Builder::new();
        // A window far smaller than the body: the server must wait for WINDOW_UPDATEs (one
        // DATA byte past the window would be a FLOW_CONTROL_ERROR here).
        builder
            .initial_window_size(4096)
            .initial_connection_window_size(8192);
        let (send, _driver) = h2_connect(addr, &builder).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send
            .send_request(get(addr, "/bytes?size=1000000"), true)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let body = read_body(response).await.unwrap();
        assert_eq!(body.len(), 1_000_000);
    });
}

#[test]
fn an_abi_1_1_app_reads_its_body_over_http2() {
    let mut target = fixture("deferred_echo").into_os_string();
    target.push(":app");
    let server = server(target).args(["--http2", "on"]).start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let request = http::Request::post(format!("http://{addr}/"))
            .body(())
            .unwrap();
        let (response, mut body) = send.send_request(request, false).unwrap();
        body.send_data(Bytes::from_static(b"hello "), false)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        body.send_data(Bytes::from_static(b"there"), true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            text(&read_body(response).await.unwrap()),
            "echo: hello there"
        );
    });
}

#[test]
fn a_graceful_stop_sends_goaway_and_lets_the_stream_in_flight_finish() {
    let mut server = h2_server("stream").start();
    let addr = server.addr();
    let pid = server.pid();
    runtime().block_on(async move {
        let (send, driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send
            .send_request(get(addr, "/?n=8&delay_ms=100"), true)
            .unwrap();
        let response = response.await.unwrap();
        // The stream is running: stop the server.
        // SAFETY: kill(2) on the server's pid, which this test started.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let body = text(&read_body(response).await.unwrap());
        assert_eq!(body.lines().count(), 8, "{body}");
        // GOAWAY came: the connection takes no new stream and ends.
        let refused = match send.ready().await {
            Err(_) => true,
            Ok(mut send) => match send.send_request(get(addr, "/"), true) {
                Err(_) => true,
                Ok((response, _)) => response.await.is_err(),
            },
        };
        assert!(refused, "a stream opened after the GOAWAY was served");
        tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .expect("the connection did not end after the GOAWAY")
            .unwrap();
    });
    assert!(server.wait_exit(Duration::from_secs(15)).is_some());
}

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
fn stats_count_http2_streams_as_requests() {
    let dir = fresh_dir("http2-stats");
    let socket = dir.join("stats.sock");
    let server = h2_server("hello")
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        for _ in 0..3 {
            let (response, _) = send.send_request(get(addr, "/"), true).unwrap();
            read_body(response.await.unwrap()).await.unwrap();
            send = send.ready().await.unwrap();
        }
    });
    // And one HTTP/1.1 request.
    assert_eq!(server.get("/").status, 200);
    let mut stats = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    use std::io::{Read, Write};
    stats
        .write_all(b"GET /stats HTTP/1.1\r\nHost: stats\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stats.read_to_string(&mut answer).unwrap();
    let json = answer.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(json["requests"]["served"], 4, "{json}");
    assert_eq!(json["requests"]["http2"], 3, "{json}");
}

/// One HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;

/// An HPACK literal field without indexing, new name (RFC 7541 §6.2.2).
fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    assert!(name.len() < 127 && value.len() < 127);
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out
}

/// Writes `frames` to a raw connection until the server stops taking them (it closed, or its
/// window is full) or `limit` passed; the number of frames written and what came back.
fn flood(
    addr: SocketAddr,
    first: &[u8],
    mut next: impl FnMut(u32) -> Vec<u8>,
    limit: Duration,
) -> (u32, Vec<u8>) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    tcp.write_all(PREFACE).unwrap();
    tcp.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    tcp.write_all(first).unwrap();
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < limit {
        if tcp.write_all(&next(sent)).is_err() {
            break;
        }
        sent += 1;
    }
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut back = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n) = tcp.read(&mut buf) {
        if n == 0 || back.len() > 16 << 20 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    (sent, back)
}

/// The frame types in `bytes` (after the server's preface-less start), in order.
fn frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16)
            | (usize::from(bytes[at + 1]) << 8)
            | usize::from(bytes[at + 2]);
        types.push(bytes[at + 3]);
        at += 9 + len;
    }
    types
}

/// A legitimate client's request on its own connection, answered within 5 s.
fn served_promptly(addr: SocketAddr) {
    let asked = Instant::now();
    let status = runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send.send_request(get(addr, "/"), true).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), response).await;
        response.expect("no answer within 5 s").unwrap().status()
    });
    assert_eq!(status, 200);
    assert!(asked.elapsed() < Duration::from_secs(5));
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
fn a_hot_swap_sends_goaway_and_the_old_generation_finishes_its_stream() {
    let dir = fresh_dir("http2-swap");
    let (server, _live, pid_file) =
        common::swap::live_server(&dir, &sample_app("stream"), &["--http2", "on"]);
    let addr = server.addr();
    runtime().block_on(async move {
        let (send, driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send
            .send_request(get(addr, "/?n=30&delay_ms=150"), true)
            .unwrap();
        let response = response.await.unwrap();
        let reading = tokio::spawn(read_body(response));
        // The swap is over (the old generation draining) while the stream still runs.
        let swapped = tokio::task::spawn_blocking(move || common::swap::hup(&pid_file));
        let (state, _, detail) = swapped.await.unwrap();
        assert_eq!(state, "ready", "{detail}");
        assert!(
            !reading.is_finished(),
            "the stream ended before the swap did"
        );
        let body = text(&reading.await.unwrap().unwrap());
        assert_eq!(body.lines().count(), 30, "{body}");
        let refused = match send.ready().await {
            Err(_) => true,
            Ok(mut send) => match send.send_request(get(addr, "/"), true) {
                Err(_) => true,
                Ok((response, _)) => response.await.is_err(),
            },
        };
        assert!(refused, "the old connection took a stream after the swap");
        tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .expect("the old connection did not end after its GOAWAY")
            .unwrap();
    });
    // A new connection reaches the new generation.
    served_promptly(addr);
}

#[test]
fn a_listener_h2_option_serves_http2_there_only() {
    if !have("curl") {
        return;
    }
    let dir = fresh_dir("http2-listener");
    let (certfile, keyfile) = self_signed(&dir);
    let server = sample_server("hello")
        .no_default_bind()
        .args(["--bind", "127.0.0.1:0,h2", "--bind", "127.0.0.1:0"])
        .args(["--bind", "127.0.0.1:0,tls,h2", "--bind", "127.0.0.1:0,tls"])
        .args(["--certfile".as_ref(), certfile.as_os_str()])
        .args(["--keyfile".as_ref(), keyfile.as_os_str()])
        .start();
    let addresses = serving_addresses(server.stdout().lines().next().unwrap_or_default());
    assert_eq!(addresses.len(), 4, "{}", server.stdout());
    let port = |i: usize| addresses[i].rsplit_once(':').unwrap().1.to_owned();
    let (_, status) = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/", addresses[0]),
    ]);
    assert_eq!(status, "2 200");
    let (_, status) = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/", addresses[1]),
    ]);
    assert_ne!(status, "2 200", "HTTP/2 on a listener without h2");
    let ca = certfile.to_str().unwrap();
    for (i, want) in [(2, "2 200"), (3, "1.1 200")] {
        let resolve = format!("localhost:{}:127.0.0.1", port(i));
        let url = format!("https://localhost:{}/", port(i));
        let (_, status) = curl(&["--http2", "--cacert", ca, "--resolve", &resolve, &url]);
        assert_eq!(status, want, "listener {}", addresses[i]);
    }
}

#[test]
fn a_stop_does_not_wait_for_an_idle_client_that_ignores_the_goaway() {
    use std::io::Write;
    let mut server = h2_server("hello")
        .args(["--graceful-timeout", "30"])
        .start();
    // A client that opened HTTP/2 and then reads nothing and answers nothing.
    let mut idle = std::net::TcpStream::connect(server.addr()).unwrap();
    idle.write_all(PREFACE).unwrap();
    idle.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    served_promptly(server.addr());
    let stopping = Instant::now();
    server.signal(libc::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(15)).is_some(),
        "still running 15 s after SIGTERM:\n{}",
        server.stderr()
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    drop(idle);
}

#[test]
fn split_cookie_fields_reach_the_app_as_one_cookie_header() {
    let server = h2_server("echo").start();
    let addr = server.addr();
    let body = runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        // Browsers send each cookie as its own field over HTTP/2 (RFC 9113 §8.2.3).
        let request = http::Request::get(format!("http://{addr}/c"))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        text(&read_body(response.await.unwrap()).await.unwrap())
    });
    assert!(body.contains("\"cookie\":\"a=1; b=2\""), "{body}");
}

#[test]
fn streams_of_a_deferred_app_park_instead_of_holding_threads() {
    // axum through the tower adapter is an ABI 1.1 app: its pending futures park.
    let server = h2_server("axum_app").args(["--threads", "1"]).start();
    let addr = server.addr();
    let took = runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let started = Instant::now();
        let mut pending = Vec::new();
        for _ in 0..20 {
            let (response, _) = send.send_request(get(addr, "/sleep?ms=500"), true).unwrap();
            pending.push(response);
            send = send.ready().await.unwrap();
        }
        for response in pending {
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200);
            read_body(response).await.unwrap();
        }
        started.elapsed()
    });
    // Held on the one thread they would take 10 s.
    assert!(
        took < Duration::from_secs(4),
        "20 sleeps of 0.5 s took {took:?}"
    );
}
