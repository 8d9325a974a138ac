//! The ASGI `websocket` scope on the server's WebSockets (ABI 1.2), talked to with the Python
//! `websockets` client: FastAPI's `@app.websocket` echo (text, bytes, a 200 kB message), a
//! subprotocol chosen from those offered, close codes both ways, a denial response through the
//! `websocket.http.response` extension, a refusal before the accept (403), and Starlette's
//! `WebSocketEndpoint`; every scope and event checked against asgiref's definitions.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libasgi.so`).

mod asgi_support;
mod common;
mod wsgi_support;

use asgi_support::{asgi_server, fixtures, venv};
use std::process::Command;
use std::time::Duration;

#[test]
fn fastapi_and_starlette_websockets_with_the_websockets_client() {
    // ws_apps.py's app behind asgiref's type checks of every scope and event.
    let server = asgi_server("asgiref_checked:ws").start();
    let out = Command::new(venv().join("bin/python"))
        .arg(fixtures().join("ws_client.py"))
        .arg(server.port().to_string())
        .output()
        .expect("run the websockets client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {}\n{stdout}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["text"], "echo: hello");
    assert_eq!(seen["bytes"], serde_json::json!([3, 2, 1]));
    assert_eq!(seen["big"], true);
    assert_eq!(seen["server_close"], serde_json::json!([4001, "asked to"]));
    assert_eq!(
        seen["chat"],
        serde_json::json!({
            "chosen": "chat.v2",
            "offered": ["chat.v1", "chat.v2"],
            "scheme": "ws",
            "type": "websocket",
            "path": "/chat",
            "q": "1",
            "extensions": ["websocket.http.response"],
        })
    );
    assert_eq!(seen["negotiated"], "chat.v2");
    assert_eq!(seen["denied"], serde_json::json!([401, "no entry"]));
    assert_eq!(seen["private"], "welcome");
    assert_eq!(seen["refused"], 403);
    assert_eq!(seen["endpoint"], "endpoint: hi");
    assert_eq!(seen["last"], "echo: last");
    common::poll(Duration::from_secs(5), "the client's close seen", || {
        let closes = server.get("/client-closes").json();
        (closes["closes"] == serde_json::json!([[4321, "bye"]])).then_some(())
    });
    let report = server.get("/asgiref-report").json();
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    for what in [
        "websocket scope",
        "websocket.connect event",
        "websocket.receive event",
        "websocket.disconnect event",
    ] {
        assert!(
            report["checked"][what].as_u64().unwrap_or(0) > 0,
            "{what} not checked: {report}"
        );
    }
}
