//! Host callbacks made from inside the app's body (issue 8, bug 2). The header's rule ("Host I/O
//! phases" in app-abi/include/webserver_app.h): `read`, `start_response` and `write` are answered
//! during `call` and during `next`; during `close` they return WS_ERR_STATE (-6) and send
//! nothing; `log` works throughout. tests/fixtures/reentrant.c calls each of them from `next`
//! and from `close` and reports the answers in its body and its log.

mod common;

use std::time::Duration;

use common::*;

const WS_ERR_STATE: i32 = -6;

fn reentrant_server() -> Server {
    let mut target = fixture("reentrant").into_os_string();
    target.push(":app");
    server(target).args(["--threads", "2"]).start()
}

/// The log line `close` wrote for the request, which reports its host calls' answers.
fn close_report(server: &Server) -> String {
    server
        .wait_for_log(Duration::from_secs(3), |l| {
            l.contains("reentrant: close read=")
        })
        .expect("close logged what its host calls returned (log works during close)")
}

#[test]
fn host_calls_from_next_are_answered_and_from_close_refused() {
    let server = reentrant_server();
    let mut conn = server.connect();
    // A request body for `read` to find, then a second request on the same connection: nothing
    // a refused `write` from `close` could have sent may corrupt it.
    conn.send(
        "POST /lazy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
         GET /late HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let lazy = conn.read_response();
    assert_eq!(lazy.status, 200, "{lazy:?}");
    // start_response from `next` (PEP 3333's lazy start) sets the response.
    assert_eq!(lazy.header("x-started"), Some("in-next"), "{lazy:?}");
    // write from `next` goes out before the chunk `next` returns; read sees the whole body.
    assert_eq!(
        lazy.text(),
        "written;next: read=0 n=5 start=0 write=0\n",
        "{lazy:?}"
    );
    assert!(server
        .wait_for_log(Duration::from_secs(3), |l| l
            .contains("reentrant: log from next"))
        .is_some());
    let report = close_report(&server);
    assert!(
        report.ends_with(&format!(
            "reentrant: close read={WS_ERR_STATE} n=0 start={WS_ERR_STATE} write={WS_ERR_STATE}"
        )),
        "host I/O from close must be refused with WS_ERR_STATE: {report}"
    );

    // In `next` after the head went out: start_response is refused (no replace once the head
    // is sent), write still sends body bytes in order.
    let late = conn.read_response();
    assert_eq!(late.status, 200, "{late:?}");
    assert_eq!(late.header("x-started"), Some("in-call"), "{late:?}");
    assert_eq!(
        late.text(),
        format!("one\ntwo\nlate: start={WS_ERR_STATE} write=0\n"),
        "{late:?}"
    );

    // The connection still carries requests: close wrote nothing onto it.
    conn.send("GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    let again = conn.read_response();
    assert_eq!(again.status, 200, "{again:?}");
    assert!(
        !server.stderr().contains("from-close"),
        "nothing written in close reached anyone"
    );
}

/// RFC 9110 §15.2: interim responses come before the final one. An app that sends its head (by
/// `write`) and then reads a body the client holds back for `100 Continue` must not get a
/// An app that writes before it reads its request body still reads every byte of it, even when
/// the body came with the head: sending the head must not drain what the app has not read yet.
/// The head promises `Connection: close` only if the rest of the body is not here.
#[test]
fn an_app_that_writes_before_reading_reads_the_body_that_came_with_the_head() {
    let server = reentrant_server();
    let mut conn = server.connect();
    conn.send("POST /write-then-read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.text(), "w;read=0 n=3\n", "{resp:?}");
    assert!(!resp.header_has_token("connection", "close"), "{resp:?}");
    conn.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        conn.read_response().status,
        200,
        "the connection carries on"
    );
}

/// `100 Continue` into the middle of its response; the client sends the body anyway once it
/// sees the final response.
#[test]
fn no_100_continue_after_the_final_head() {
    let server = reentrant_server();
    let mut conn = server.connect();
    conn.send(
        "POST /write-then-read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\
         Expect: 100-continue\r\n\r\n",
    );
    let mut resp = conn.read_head();
    assert_eq!(resp.status, 200, "the final head comes first: {resp:?}");
    conn.send("abc");
    conn.try_read_body(&mut resp, false)
        .unwrap_or_else(|e| panic!("the body is one well-formed chunked stream: {e}"));
    assert_eq!(resp.text(), "w;read=0 n=3\n", "{resp:?}");
    // The head went out while the request body was unread, so it promised `Connection: close`
    // and the server keeps that promise after a complete response.
    assert!(resp.header_has_token("connection", "close"), "{resp:?}");
    assert!(
        conn.wait_closed(Duration::from_secs(3)).is_some() && conn.buffered().is_empty(),
        "nothing after the response: {:?}",
        String::from_utf8_lossy(conn.buffered())
    );
}
