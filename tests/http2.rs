//! HTTP/2 (`--http2 on`, issue 22) with real clients: curl with prior knowledge (h2c) on TCP and
//! unix listeners and with ALPN over TLS, nghttp and h2load (Debian's nghttp2-client), and the
//! `h2` crate's client for what the others cannot show (many streams on one connection, a small
//! flow-control window, resets, GOAWAY). The curl, nghttp and h2load tests say so and pass when
//! the tool is missing (`.ci/run` installs them).

mod common;
mod http2_support;

use std::net::SocketAddr;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http2_support::*;

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

/// The response head an app sets reaches an HTTP/2 client as a HEADERS frame with its fields
/// as set, the body's Content-Length, and the server's Date and Server; a HEAD request gets the
/// same length and no body.
#[test]
fn the_apps_head_reaches_an_http2_client_with_length_date_and_server() {
    let server = h2_server("hello").start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send.send_request(get(addr, "/"), true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let head = response.headers().clone();
        let body = read_body(response).await.unwrap();
        assert!(text(&body).contains("Hello, world!"));
        let field = |name: &str| head.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            field("content-type").as_deref(),
            Some("text/plain; charset=utf-8"),
            "{head:?}"
        );
        assert_eq!(
            field("content-length"),
            Some(body.len().to_string()),
            "{head:?}"
        );
        let date = field("date").unwrap_or_default();
        assert!(date.len() == 29 && date.ends_with(" GMT"), "{head:?}");
        assert!(
            field("server").is_some_and(|s| s.starts_with("webserver/")),
            "{head:?}"
        );
        assert_eq!(head.len(), 4, "{head:?}");

        let mut send = send.ready().await.unwrap();
        let mut head_request = get(addr, "/");
        *head_request.method_mut() = http::Method::HEAD;
        let (response, _) = send.send_request(head_request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let length = response.headers().get("content-length").cloned();
        assert_eq!(length, Some(body.len().into()), "{:?}", response.headers());
        assert!(read_body(response).await.unwrap().is_empty());
    });
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

/// Uploads queued behind a busy serving thread must not take the connection's window from the
/// one being served: twenty 100 KB bodies sent side by side to one serving thread (what
/// Chromium does with twenty `fetch` uploads) all arrive, instead of the served stream starving
/// until the body timeout.
#[test]
fn uploads_queued_behind_a_busy_thread_do_not_starve_the_one_being_served() {
    let server = h2_server("echo").args(["--threads", "1"]).start();
    let addr = server.addr();
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let mut uploads = Vec::new();
        for i in 0..20 {
            let request = http::Request::post(format!("http://{addr}/up{i}"))
                .body(())
                .unwrap();
            let (response, body) = send.send_request(request, false).unwrap();
            uploads.push((i, response, body));
            send = send.ready().await.unwrap();
        }
        // Round-robin, as a browser interleaves them.
        let chunk = Bytes::from(vec![b'x'; 10_000]);
        for round in 0..10 {
            for (_, _, body) in &mut uploads {
                body.send_data(chunk.clone(), round == 9).unwrap();
            }
        }
        let answers = uploads.into_iter().map(|(i, response, _)| async move {
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200, "/up{i}");
            text(&read_body(response).await.unwrap())
        });
        let all = tokio::time::timeout(
            Duration::from_secs(15),
            futures_util::future::join_all(answers),
        )
        .await
        .expect("every upload answered within 15 s");
        for (i, body) in all.iter().enumerate() {
            assert!(body.contains(&format!("\"path\":\"/up{i}\"")), "{body}");
            assert!(body.contains("\"body_len\":100000"), "{body}");
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

#[test]
fn a_tower_app_run_on_the_http2_thread_keeps_to_small_windows_and_reads_late_bodies() {
    // webserver-tower apps are WS_APP_NONBLOCKING: their streams run on the HTTP/2 thread, which
    // must neither wait for the client's window (it is the thread that reads the WINDOW_UPDATEs)
    // nor send a byte past it, and whose streams park for a body still on its way.
    let server = h2_server("axum_app").args(["--threads", "1"]).start();
    let addr = server.addr();
    runtime().block_on(async move {
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(1024)
            .initial_connection_window_size(4096);
        let (send, _driver) = h2_connect(addr, &builder).await;
        let mut send = send.ready().await.unwrap();
        let mut big = Vec::new();
        for _ in 0..2 {
            let (response, _) = send
                .send_request(get(addr, "/bytes?n=100000"), true)
                .unwrap();
            big.push(response);
            send = send.ready().await.unwrap();
        }
        let request = http::Request::post(format!("http://{addr}/json"))
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (late, mut upload) = send.send_request(request, false).unwrap();
        upload
            .send_data(Bytes::from_static(b"{\"name\":\"late\","), false)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        upload
            .send_data(Bytes::from_static(b"\"tags\":[],\"price_cents\":7}"), true)
            .unwrap();
        for response in big {
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200);
            let body = read_body(response).await.unwrap();
            assert_eq!(body.len(), 100_000);
            assert!(body.iter().all(|&b| b == b'x'));
        }
        let late = late.await.unwrap();
        assert_eq!(late.status(), 201);
        let body = text(&read_body(late).await.unwrap());
        assert!(body.contains("\"total_cents\":7"), "{body}");
    });
}

/// One GET over its own HTTP/2 connection: the status and the body (`None`: no answer within
/// `within`).
fn h2_get(addr: SocketAddr, path: &str, within: Duration) -> Option<(u16, String)> {
    runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send.send_request(get(addr, path), true).unwrap();
        let response = tokio::time::timeout(within, response).await.ok()?.unwrap();
        let status = response.status().as_u16();
        Some((status, text(&read_body(response).await.unwrap())))
    })
}

#[test]
fn a_parked_stream_past_the_timeout_gets_504_and_the_app_is_cancelled() {
    let server = h2_server("axum_app")
        .args(["--threads", "1", "--timeout", "1"])
        .start();
    let addr = server.addr();
    let asked = Instant::now();
    let (status, body) =
        h2_get(addr, "/sleep?ms=20000", Duration::from_secs(10)).expect("no answer in 10 s");
    let took = asked.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "504 after {took:?} with --timeout 1"
    );
    // The app's sleep was dropped (its close ran), not left to fire.
    let (_, stats) = h2_get(addr, "/stats", Duration::from_secs(5)).unwrap();
    assert!(stats.contains("\"sleeps_cancelled\":1"), "{stats}");
}

#[test]
fn the_graceful_timeout_cancels_parked_streams_with_503_and_the_worker_exits_cleanly() {
    let mut server = h2_server("axum_app")
        .args(["--graceful-timeout", "1"])
        .start();
    let addr = server.addr();
    let pid = server.pid();
    let asked = Instant::now();
    let answer =
        std::thread::spawn(move || h2_get(addr, "/sleep?ms=30000", Duration::from_secs(15)));
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the server's pid, which this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let (status, body) = answer.join().unwrap().expect("no answer in 15 s");
    assert_eq!(status, 503, "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "{:?}",
        asked.elapsed()
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server exits after the graceful timeout");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    assert!(!server.stderr().contains("abandon"), "{}", server.stderr());
}

/// `--keep-alive` closes an idle HTTP/2 connection (GOAWAY, then the close) once it has had no
/// stream for that long, and not while streams keep coming for longer than that: the
/// connection's idle check fires again and again.
#[test]
fn an_idle_connection_is_closed_after_the_keep_alive_and_a_busy_one_is_not() {
    let server = h2_server("hello").args(["--keep-alive", "2"]).start();
    let addr = server.addr();
    let idle_for = runtime().block_on(async move {
        let (send, driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let busy = Instant::now();
        while busy.elapsed() < Duration::from_millis(3500) {
            let (response, _) = send.send_request(get(addr, "/"), true).unwrap();
            assert_eq!(response.await.unwrap().status(), 200);
            send = send.ready().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let idle = Instant::now();
        // `send` is kept: a client whose handles are all gone closes the connection itself.
        tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .expect("still open 10 s after its last stream")
            .unwrap();
        drop(send);
        idle.elapsed()
    });
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(6)).contains(&idle_for),
        "closed after {idle_for:?} idle (--keep-alive 2)"
    );
}
