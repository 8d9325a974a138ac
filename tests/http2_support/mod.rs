//! What the HTTP/2 tests share: servers with `--http2 on`, the `h2` crate's client on one
//! connection, the external tools (curl, nghttp, h2load: a test says so and passes when one is
//! missing) and raw frames for the hostile cases.
#![allow(dead_code)] // each test file uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::common::{sample_server, ServerBuilder};

pub fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("{tool} is not installed: test skipped");
    }
    found
}

pub fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `curl -sS --max-time 20 ARGS... -w '\n%{http_version} %{http_code}'`: the body and the last
/// line, split.
pub fn curl(args: &[&str]) -> (String, String) {
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-w", "\n%{http_version} %{http_code}"]);
    let out = run("curl", &all);
    let stdout = text(&out.stdout);
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    (body.to_owned(), status.to_owned())
}

/// The h2 crate's client on one TCP connection, driven by a current-thread runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn h2_connect(
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

pub fn get(addr: SocketAddr, path: &str) -> http::Request<()> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap()
}

/// The whole body of a response, its window released as it is read.
pub async fn read_body(response: http::Response<h2::RecvStream>) -> Result<Vec<u8>, h2::Error> {
    let mut body = response.into_body();
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// One HTTP/2 frame (RFC 9113 §4.1).
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;

pub const SETTINGS: u8 = 0x4;

pub const PING: u8 = 0x6;

pub const GOAWAY: u8 = 0x7;

pub const CONTINUATION: u8 = 0x9;

/// An HPACK literal field without indexing, new name (RFC 7541 §6.2.2).
pub fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    assert!(name.len() < 127 && value.len() < 127);
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out
}

/// Writes `frames` to a raw connection until the server stops taking them (it closed, or its
/// window is full) or `limit` passed; the number of frames written and what came back.
pub fn flood(
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

/// A frame in what a server sent.
pub struct Frame<'a> {
    /// Where it starts.
    pub at: usize,
    pub kind: u8,
    pub stream: u32,
    pub payload: &'a [u8],
}

/// The frames in `bytes` (the server's frames, from its first), in order.
pub fn frames(bytes: &[u8]) -> Vec<Frame<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16)
            | (usize::from(bytes[at + 1]) << 8)
            | usize::from(bytes[at + 2]);
        let stream = u32::from_be_bytes(bytes[at + 5..at + 9].try_into().unwrap()) & !(1 << 31);
        let end = (at + 9 + len).min(bytes.len());
        out.push(Frame {
            at,
            kind: bytes[at + 3],
            stream,
            payload: &bytes[at + 9..end],
        });
        at += 9 + len;
    }
    out
}

/// The frame types in `bytes`, in order.
pub fn frame_types(bytes: &[u8]) -> Vec<u8> {
    frames(bytes).iter().map(|frame| frame.kind).collect()
}

/// A legitimate client's request on its own connection, answered within 5 s.
pub fn served_promptly(addr: SocketAddr) {
    let limit = Duration::from_secs(5);
    assert!(time_to_serve(addr, limit) < limit);
}

/// How long a legitimate client's request on its own connection took to get its 200, which
/// must come within `limit`.
pub fn time_to_serve(addr: SocketAddr, limit: Duration) -> Duration {
    let asked = Instant::now();
    let status = runtime().block_on(async move {
        let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send.send_request(get(addr, "/"), true).unwrap();
        let response = tokio::time::timeout(limit, response).await;
        response
            .unwrap_or_else(|_| panic!("no answer within {limit:?}"))
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    asked.elapsed()
}

/// A sample app served with HTTP/2 on.
pub fn h2_server(app: &str) -> ServerBuilder {
    sample_server(app).args(["--http2", "on"])
}

/// A self-signed certificate for localhost and 127.0.0.1: (certfile, keyfile).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (certfile, keyfile) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&certfile, cert.cert.pem()).unwrap();
    std::fs::write(&keyfile, cert.key_pair.serialize_pem()).unwrap();
    (certfile, keyfile)
}
