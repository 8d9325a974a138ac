//! HTTP/2 with more real clients (issue 22): Python's `httpx` (h2c with prior knowledge, and
//! `h2` by ALPN over TLS) and the bare `h2` state machine, both pinned in
//! `tests/fixtures/h2_clients/requirements.txt` and installed into `target/h2-client-venv` on
//! first use.

mod common;
mod http2_support;
mod wsgi_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use http2_support::*;

fn fixtures() -> PathBuf {
    workspace_dir().join("tests/fixtures/h2_clients")
}

/// `target/h2-client-venv` with the pinned clients.
fn python() -> PathBuf {
    let venv = wsgi_support::make_venv(
        "h2-client-venv",
        &fixtures().join("requirements.txt"),
        "install the Python HTTP/2 clients \
         (python3 -m venv target/h2-client-venv && target/h2-client-venv/bin/pip install \
         -r tests/fixtures/h2_clients/requirements.txt)",
    );
    venv.join("bin/python")
}

/// `client.py ARGS...`: what it printed, as JSON.
fn client(args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(fixtures().join("client.py"))
        .args(args)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "client.py {args:?}: {stdout}{}",
        text(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn httpx_is_served_over_h2c_and_over_tls() {
    let server = h2_server("echo").start();
    let answer = client(&["httpx", &format!("http://{}", server.addr())]);
    assert_eq!(
        answer["versions"],
        serde_json::json!(["HTTP/2", "HTTP/2"]),
        "{answer}"
    );
    assert_eq!(
        answer["statuses"],
        serde_json::json!([200, 200]),
        "{answer}"
    );
    assert_eq!(answer["query"], "x=1", "{answer}");
    assert_eq!(answer["body_ok"], true, "{answer}");

    let dir = fresh_dir("http2-httpx-tls");
    let (certfile, keyfile) = self_signed(&dir);
    let server = h2_server("echo")
        .args(["--certfile".as_ref(), certfile.as_os_str()])
        .args(["--keyfile".as_ref(), keyfile.as_os_str()])
        .start();
    let url = format!("https://localhost:{}", server.port());
    let answer = client(&["httpx", &url, certfile.to_str().unwrap()]);
    assert_eq!(
        answer["versions"],
        serde_json::json!(["HTTP/2", "HTTP/2"]),
        "{answer}"
    );
    assert_eq!(answer["scheme"], "https", "{answer}");
    assert_eq!(answer["body_ok"], true, "{answer}");
}

#[test]
fn python_h2_runs_ten_streams_at_once() {
    let server = h2_server("echo").start();
    let answer = client(&["h2", "127.0.0.1", &server.port().to_string()]);
    assert_eq!(answer["statuses"], serde_json::json!([200]), "{answer}");
    assert_eq!(answer["body_ok"], true, "{answer}");
    let paths: Vec<String> = (0..10).map(|i| format!("/stream/{i}")).collect();
    assert_eq!(answer["paths"], serde_json::json!(paths), "{answer}");
}

#[test]
fn chromium_uses_h2_on_the_tls_listener() {
    let dir = fresh_dir("http2-chromium");
    let log = dir.join("access.log");
    let tls = TestTls::new("http2-chromium-cert");
    let page = workspace_dir().join("tests/fixtures/h2_page");
    let server = h2_server("echo")
        .args(tls.server_args())
        .args(["--static".into(), format!("/page/={}", page.display())])
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .start();
    let url = format!("https://127.0.0.1:{}/page/h2.html", server.port());
    let _browser = chromium(&url, &dir.join("profile"));
    let report = poll(Duration::from_secs(60), "the page's report", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("/report?"))
            .map(str::to_owned)
    });
    // The page itself (from --static) and every fetch came over HTTP/2, and the uploads were
    // echoed whole.
    assert!(
        report.contains("/report?page=h2&fetches=h2&ok=true HTTP/2\""),
        "{report}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"GET /page/h2.html HTTP/2\" 200"), "{text}");
    assert_eq!(text.matches("\"POST /app/").count(), 20, "{text}");
}
