//! Real WebSocket clients against webserver, over plain and TLS listeners:
//! - headless Chromium, on a page served by `--static` (`tests/fixtures/ws_page/ws.html`) that
//!   echoes 100 messages and then requests `/report?echoed=100`, which the test waits for in the
//!   access log (no DevTools protocol needed);
//! - tungstenite's own blocking client (the protocol core tokio-tungstenite and axum use);
//! - tokio-tungstenite (a dev-dependency), as tokio programs use it;
//! - Python `websockets`, pinned in `tests/fixtures/ws_clients/requirements.txt` and installed
//!   into `target/ws-client-venv` on first use.
//!
//! The apps: the C echo (`tests/fixtures/ws_echo.c`), the Rust sample `ws-echo` (host-framed
//! WebSockets through the safe layer) and the axum sample (axum's own tokio-tungstenite over an
//! upgraded byte stream, through webserver-tower). A missing client fails the test with the
//! command that installs it.
//!
//! Needs `cargo build --workspace` first.

mod common;
#[path = "wsgi_support/mod.rs"]
mod wsgi_support;

use std::ffi::OsString;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    c_app, fresh_dir, pseudo_random_bytes, sample_app, server, workspace_dir, Server, TestTls,
    IO_TIMEOUT,
};
use futures_util::{SinkExt, StreamExt};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

/// The apps with a WebSocket echo on `/ws`: the C echo, the Rust sample, the axum sample.
fn echo_apps() -> [(&'static str, PathBuf); 3] {
    [
        ("c-echo", c_app("tests/fixtures/ws_echo.c", "ws_echo")),
        ("ws-echo", sample_app("ws_echo")),
        ("axum-app", sample_app("axum_app")),
    ]
}

/// `lib`'s `app` with the test page under `/page/`, an access log at `log`, and `args`.
fn echo_with(lib: &Path, args: &[OsString], log: &Path) -> Server {
    let mut target = lib.as_os_str().to_owned();
    target.push(":app");
    let page = workspace_dir().join("tests/fixtures/ws_page");
    server(target)
        .args(["--static".into(), format!("/page/={}", page.display())])
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .args(args)
        .start()
}

fn url(server: &Server, tls: bool, path: &str) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    format!("{scheme}://localhost:{}{path}", server.port())
}

fn browser_echoes_100_messages(name: &str, lib: &Path, tls: bool) {
    let dir = fresh_dir(if tls {
        "ws-chromium-tls"
    } else {
        "ws-chromium"
    });
    let log = dir.join("access.log");
    let args = if tls {
        common::TestTls::new("ws-chromium-cert").server_args()
    } else {
        Vec::new()
    };
    let server = echo_with(lib, &args, &log);
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{}/page/ws.html", server.port());
    let _browser = common::chromium(&url, &dir.join("profile"));
    let report = common::poll(Duration::from_secs(30), "the page's report", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("/report?"))
            .map(str::to_owned)
    });
    assert!(report.contains("/report?echoed=100 "), "{report}");
    // The close line is written once the closing handshake is done, which may be after the
    // report (for the axum app, on one of its tokio threads).
    let closed = common::poll(
        Duration::from_secs(10),
        "the WebSocket's close line",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .find(|l| l.contains("GET /ws ") && l.contains(" close="))
                .map(str::to_owned)
        },
    );
    assert!(closed.ends_with(" close=1000"), "{name}: {closed}");
}

#[test]
fn chromium_echoes_100_messages() {
    for (name, lib) in echo_apps() {
        browser_echoes_100_messages(name, &lib, false);
    }
}

#[test]
fn chromium_echoes_100_messages_over_tls() {
    for (name, lib) in echo_apps() {
        browser_echoes_100_messages(name, &lib, true);
    }
}

#[test]
fn tungstenites_client_echoes_and_closes() {
    let dir = fresh_dir("ws-tungstenite");
    let server = echo_with(&echo_apps()[0].1, &[], &dir.join("access.log"));
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/ws", server.port());
    let (mut socket, response) = tungstenite::client(url.as_str(), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    for i in 0..50 {
        let text = format!("message {i}");
        socket.send(Message::text(text.clone())).unwrap();
        assert_eq!(socket.read().unwrap(), Message::text(text));
    }
    let big = vec![42u8; 300_000];
    socket.send(Message::binary(big.clone())).unwrap();
    assert_eq!(socket.read().unwrap(), Message::binary(big));
    socket.close(None).unwrap();
    // The server answers the close; then the stream ends.
    loop {
        match socket.read() {
            Ok(Message::Close(_)) => continue,
            Ok(other) => panic!("after close: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Python websockets
// ---------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    workspace_dir().join("tests/fixtures/ws_clients")
}

/// `target/ws-client-venv` with the pinned `websockets`.
fn python() -> PathBuf {
    let venv = wsgi_support::make_venv(
        "ws-client-venv",
        &fixtures().join("requirements.txt"),
        "install the Python websockets client \
         (python3 -m venv target/ws-client-venv && target/ws-client-venv/bin/pip install \
         -r tests/fixtures/ws_clients/requirements.txt)",
    );
    venv.join("bin/python")
}

fn python_echo(python: &Path, url: &str, tls: Option<&TestTls>) -> String {
    let mut cmd = Command::new(python);
    cmd.arg(fixtures().join("echo_client.py")).arg(url);
    if let Some(tls) = tls {
        cmd.arg(tls.cert_file());
    }
    let out = cmd.output().expect("run the Python client");
    assert!(
        out.status.success(),
        "python websockets on {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn python_websockets_echoes_over_plain_and_tls_listeners() {
    let python = python();
    let cert = TestTls::new("ws-python");
    let dir = fresh_dir("ws-python");
    for (name, lib) in echo_apps() {
        for tls in [false, true] {
            let args = if tls { cert.server_args() } else { Vec::new() };
            let server = echo_with(&lib, &args, &dir.join("access.log"));
            let line = python_echo(&python, &url(&server, tls, "/ws"), tls.then_some(&cert));
            assert_eq!(line, "OK echoed=14 close=1000", "{name} tls={tls}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tokio-tungstenite
// ---------------------------------------------------------------------------------------------

/// The next frame, within the timeout.
async fn next<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(IO_TIMEOUT, ws.next())
        .await
        .expect("an answer within the timeout")
        .expect("the connection is open")
        .expect("a frame")
}

/// Echo of texts and binaries up to 1 MiB and a ping with tokio-tungstenite; closes with 1000.
async fn tokio_echo<S>(mut ws: tokio_tungstenite::WebSocketStream<S>) -> usize
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut echoed = 0;
    for len in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
        let text: String = "ü".repeat(len / 2);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::text(text));
        let bytes = pseudo_random_bytes(len, len as u64);
        ws.send(Message::binary(bytes.clone())).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::binary(bytes));
        echoed += 2;
    }
    ws.send(Message::Ping(b"ping".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await, Message::Pong(b"ping".to_vec().into()));
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected the close reply, got {other:?}"),
    }
    echoed
}

#[test]
fn tokio_tungstenite_echoes_over_plain_and_tls_listeners() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cert = TestTls::new("ws-tokio");
    let connector = tokio_rustls::TlsConnector::from(cert.client_config());
    let dir = fresh_dir("ws-tokio");
    for (name, lib) in echo_apps() {
        let plain = echo_with(&lib, &[], &dir.join("access.log"));
        let url_plain = url(&plain, false, "/ws");
        let echoed = rt.block_on(async {
            let (ws, resp) = tokio_tungstenite::connect_async(url_plain.as_str())
                .await
                .unwrap_or_else(|e| panic!("{name}: handshake on {url_plain}: {e}"));
            assert_eq!(resp.status(), 101);
            tokio_echo(ws).await
        });
        assert_eq!(echoed, 14, "{name} plain");

        let secure = echo_with(&lib, &cert.server_args(), &dir.join("access-tls.log"));
        let url_tls = url(&secure, true, "/ws");
        let addr = secure.addr();
        let echoed = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let host = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = connector.connect(host, tcp).await.expect("TLS handshake");
            let (ws, resp) = tokio_tungstenite::client_async(url_tls.as_str(), stream)
                .await
                .unwrap_or_else(|e| panic!("{name}: handshake on {url_tls}: {e}"));
            assert_eq!(resp.status(), 101);
            tokio_echo(ws).await
        });
        assert_eq!(echoed, 14, "{name} tls");
    }
}
