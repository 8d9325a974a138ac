//! Real WebSocket clients against webserver, over plain and TLS listeners: Python `websockets`
//! (pinned in `tests/fixtures/ws_clients/requirements.txt`, installed into `target/ws-client-venv`
//! on first use), `tokio-tungstenite` (a dev-dependency) and headless Chromium (`chromium
//! --headless` on a page that echoes 100 messages and then reports to the test). The apps: the
//! Rust sample `ws-echo` (host-framed WebSockets through the safe layer) and the axum sample (its
//! own tokio-tungstenite stack over an upgraded byte stream, through webserver-tower).
//!
//! A client that is not installed fails its test with the command that installs it.
//!
//! Needs `cargo build --workspace` first.

mod common;
#[path = "wsgi_support/mod.rs"]
mod wsgi_support;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The two apps and their echo route.
const APPS: [(&str, &str); 2] = [("ws_echo", "/ws"), ("axum_app", "/ws")];

/// A CA and a certificate for localhost/127.0.0.1 it signed, as PEM files in a fresh directory.
struct Certs {
    ca_der: Vec<u8>,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl Certs {
    fn new(tag: &str) -> Certs {
        let dir = fresh_dir(tag);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "webserver test CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let certs = Certs {
            ca_der: ca.der().to_vec(),
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("cert.key"),
        };
        std::fs::write(&certs.ca_file, ca.pem()).unwrap();
        std::fs::write(&certs.cert_file, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(&certs.key_file, key.serialize_pem()).unwrap();
        certs
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone().into()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// `app` served plainly, or over TLS with `certs`.
fn serve(app: &str, certs: Option<&Certs>) -> Server {
    let mut builder = sample_server(app).args(["--threads", "2"]);
    if let Some(certs) = certs {
        builder = builder.args([
            "--certfile".as_ref(),
            certs.cert_file.as_os_str(),
            "--keyfile".as_ref(),
            certs.key_file.as_os_str(),
        ]);
    }
    builder.start()
}

fn url(server: &Server, tls: bool, path: &str) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    format!("{scheme}://localhost:{}{path}", server.port())
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

fn python_echo(python: &Path, url: &str, certs: Option<&Certs>) -> String {
    let mut cmd = Command::new(python);
    cmd.arg(fixtures().join("echo_client.py")).arg(url);
    if let Some(certs) = certs {
        cmd.arg(&certs.ca_file);
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
    let certs = Certs::new("ws-python");
    for (app, path) in APPS {
        for tls in [false, true] {
            let certs = tls.then_some(&certs);
            let server = serve(app, certs);
            let line = python_echo(&python, &url(&server, tls, path), certs);
            assert_eq!(line, "OK echoed=14 close=1000", "{app} tls={tls}");
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
    let certs = Certs::new("ws-tokio");
    let tls = tokio_rustls::TlsConnector::from(certs.client_config());
    for (app, path) in APPS {
        let plain = serve(app, None);
        let url_plain = url(&plain, false, path);
        let echoed = rt.block_on(async {
            let (ws, resp) = tokio_tungstenite::connect_async(url_plain.as_str())
                .await
                .unwrap_or_else(|e| panic!("{app}: handshake on {url_plain}: {e}"));
            assert_eq!(resp.status(), 101);
            tokio_echo(ws).await
        });
        assert_eq!(echoed, 14, "{app} plain");

        let secure = serve(app, Some(&certs));
        let url_tls = url(&secure, true, path);
        let addr = secure.addr();
        let echoed = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = tls.connect(name, tcp).await.expect("TLS handshake");
            let (ws, resp) = tokio_tungstenite::client_async(url_tls.as_str(), stream)
                .await
                .unwrap_or_else(|e| panic!("{app}: handshake on {url_tls}: {e}"));
            assert_eq!(resp.status(), 101);
            tokio_echo(ws).await
        });
        assert_eq!(echoed, 14, "{app} tls");
    }
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium
// ---------------------------------------------------------------------------------------------

/// The browser, or a failure that says how to install it.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!(
        "headless Chromium is not installed: `apt-get install chromium` (Debian) installs it; \
         this test drives a real browser's WebSocket and cannot pass without one"
    );
}

/// A one-page HTTP server for the browser: `/` is the page, `/report?...` is what it reports,
/// sent to the returned channel.
fn page_server(ws_url: &str) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let page = std::fs::read_to_string(fixtures().join("page.html"))
        .unwrap()
        .replace("WS_URL", ws_url)
        .replace("REPORT_URL", &format!("http://{addr}/report"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let body = if target == "/" { page.as_str() } else { "ok" };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Some(query) = target.strip_prefix("/report?") {
                if tx.send(query.to_owned()).is_err() {
                    return;
                }
            }
        }
    });
    (addr, rx)
}

/// What the page reported after echoing over `ws_url` in headless Chromium.
fn browser_echo(browser: &Path, ws_url: &str) -> String {
    let (page, reports) = page_server(ws_url);
    let profile = fresh_dir("ws-chromium");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{page}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let report = reports.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    report.unwrap_or_else(|_| "no report within 60 s".to_owned())
}

#[test]
fn headless_chromium_echoes_100_messages_over_plain_and_tls_listeners() {
    let browser = chromium();
    let certs = Certs::new("ws-chromium");
    for (app, path) in APPS {
        for tls in [false, true] {
            let server = serve(app, tls.then_some(&certs));
            let report = browser_echo(&browser, &url(&server, tls, path));
            assert_eq!(report, "echoed=100", "{app} tls={tls}\n{}", server.stderr());
        }
    }
}
