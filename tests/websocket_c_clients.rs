//! Real WebSocket clients against the C echo (`tests/fixtures/ws_echo.c`), over plain and TLS
//! listeners: headless Chromium, on a page served by `--static`
//! (`tests/fixtures/ws_page/ws.html`) that echoes 100 messages and then requests
//! `/report?echoed=100`, which the test waits for in the access log (no DevTools protocol
//! needed); and tungstenite's own blocking client (the protocol core tokio-tungstenite and axum
//! use). A missing client fails the test with the command that installs it.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{c_app, fresh_dir, have_program, server, workspace_dir, Server};
use tungstenite::Message;

fn echo_with(args: &[std::ffi::OsString], log: &Path) -> Server {
    let mut target = c_app("tests/fixtures/ws_echo.c", "ws_echo").into_os_string();
    target.push(":app");
    let page = workspace_dir().join("tests/fixtures/ws_page");
    server(target)
        .args(["--static".into(), format!("/page/={}", page.display())])
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .args(args)
        .start()
}

/// Headless Chromium on `url`, killed on drop.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium(url: &str, profile: &Path) -> Browser {
    assert!(
        have_program("chromium"),
        "chromium is not installed: apt-get install -y chromium"
    );
    let child = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    Browser(child)
}

fn browser_echoes_100_messages(tls: bool) {
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
    let server = echo_with(&args, &log);
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{}/page/ws.html", server.port());
    let _browser = chromium(&url, &dir.join("profile"));
    let report = common::poll(Duration::from_secs(30), "the page's report", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("/report?"))
            .map(str::to_owned)
    });
    assert!(report.contains("/report?echoed=100 "), "{report}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("GET /ws ") && l.ends_with(" close=1000")),
        "{text}"
    );
}

#[test]
fn chromium_echoes_100_messages() {
    browser_echoes_100_messages(false);
}

#[test]
fn chromium_echoes_100_messages_over_tls() {
    browser_echoes_100_messages(true);
}

#[test]
fn tungstenites_client_echoes_and_closes() {
    let dir = fresh_dir("ws-tungstenite");
    let server = echo_with(&[], &dir.join("access.log"));
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
