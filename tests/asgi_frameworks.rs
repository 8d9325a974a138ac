//! More frameworks on the ASGI bridge, unchanged: Django's async views through Django's own ASGI
//! handler, and asgiref's type definitions checking every scope and event the server gives an
//! app.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libasgi.so`).

mod asgi_support;
mod common;
mod wsgi_support;

use asgi_support::{asgi_server, request, sleep_one_second_at_once};
use std::time::Duration;

#[test]
fn django_async_views_through_djangos_asgi_handler() {
    // `django_async` alone: the module's `application`, as Django's asgi.py names it.
    let server = asgi_server("django_async")
        .args(["-w", "1", "--threads", "2"])
        .start();
    let hello = server.get("/hello/ada?q=x");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(
        hello.json(),
        serde_json::json!({"hello": "ada", "q": "x", "async": true})
    );
    let body = r#"{"a": [1, 2]}"#;
    let echo = request(
        &server,
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(
        echo.json(),
        serde_json::json!({"got": {"a": [1, 2]}, "method": "POST"})
    );
    assert_eq!(server.get("/stream").text(), "line 0\nline 1\nline 2\n");
    assert_eq!(server.get("/nowhere").status, 404);
    // Django does not speak lifespan: served without it.
    assert!(
        server
            .stderr()
            .contains("app django_async:application on uvloop"),
        "{}",
        server.stderr()
    );

    // Async views wait together on the worker's loop: 20 sleeps of 1 s on two threads.
    let took = sleep_one_second_at_once(&server, 20);
    assert!(
        took < Duration::from_secs(5),
        "20 async Django views sleeping 1 s took {took:?}"
    );
}

#[test]
fn every_scope_and_event_conforms_to_asgiref_typing() {
    let server = asgi_server("asgiref_checked:app").start();
    assert_eq!(server.get("/items/3?q=a").status, 200);
    let upload = request(
        &server,
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!(upload.json()["size"], 5);
    assert_eq!(server.get("/stream?lines=2").status, 200);
    // A client that leaves a stream: Starlette's receive() hears http.disconnect.
    let mut conn = server.connect();
    conn.send(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_head().status, 200);
    drop(conn);
    common::poll(Duration::from_secs(5), "the stream to stop", || {
        let events = server.get("/events").json();
        (events["events"] == serde_json::json!(["stream stopped"])).then_some(())
    });

    let report = server.get("/asgiref-report").json();
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    let checked = &report["checked"];
    for what in [
        "lifespan scope",
        "lifespan.startup event",
        "http scope",
        "http.request event",
        "http.disconnect event",
    ] {
        assert!(
            checked[what].as_u64().unwrap_or(0) > 0,
            "{what} not checked: {report}"
        );
    }
}
