//! Whose fault it is, through the WSGI bridge: a client's broken request body is the client's 4xx
//! (or, when the client left, no answer and no 5xx) whatever the Python app makes of the
//! exception; an exception of the app's own is logged with its whole traceback; hop-by-hop headers
//! from the app are dropped with one warning, and its `Connection: close` closes the connection.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libwsgi.so` and `libecho.so`).

mod common;
mod wsgi_support;

use common::{chunked, fresh_dir, poll, post, read_final, sample_server, Server, ServerBuilder};
use std::path::Path;
use std::time::Duration;
use wsgi_support::{examples_dir, fixtures_dir, wsgi_server};

/// `--max-body` of the servers compared: the conformance table's.
const MAX_BODY: usize = 64 * 1024;
/// A valid request pipelined after each vector: answered only if the connection survives.
const AFTER: &[u8] = b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n";

fn wsgi(target: &str) -> ServerBuilder {
    wsgi_server(&examples_dir(), target).env("PYTHONPATH", fixtures_dir().to_str().unwrap())
}

/// The request-body rows of the conformance table (tests/conformance.rs): framing headers,
/// chunk syntax, Content-Length and --max-body.
#[rustfmt::skip]
fn body_vectors() -> Vec<(&'static str, Vec<u8>)> {
    let half = MAX_BODY / 2;
    let chunked_at_max = [format!("{MAX_BODY:x}\r\n").into_bytes(), vec![b'm'; MAX_BODY], b"\r\n0\r\n\r\n".to_vec()].concat();
    let chunked_over_max = [
        format!("{half:x}\r\n").into_bytes(), vec![b'a'; half],
        format!("\r\n{:x}\r\n", half + 1).into_bytes(), vec![b'b'; half + 1],
        b"\r\n0\r\n\r\n".to_vec(),
    ].concat();
    let cl_at_max = post(&[&format!("Content-Length: {MAX_BODY}")], &vec![b'm'; MAX_BODY]);
    let cl_over_max = post(&[&format!("Content-Length: {}", MAX_BODY + 1)], b"");
    vec![
        ("Content-Length at --max-body", cl_at_max),
        ("Content-Length over --max-body", cl_over_max),
        ("chunked body at --max-body", chunked(&chunked_at_max)),
        ("chunked body over --max-body", chunked(&chunked_over_max)),
        ("Content-Length", post(&["Content-Length: 5"], b"hello")),
        ("Content-Length zero", post(&["Content-Length: 0"], b"")),
        ("Content-Length twice, same value", post(&["Content-Length: 5", "Content-Length: 5"], b"hello")),
        ("Content-Length negative", post(&["Content-Length: -5"], b"hello")),
        ("Content-Length hex", post(&["Content-Length: 0x5"], b"hello")),
        ("Content-Length list", post(&["Content-Length: 5, 6"], b"hello")),
        ("Content-Length u64::MAX", post(&["Content-Length: 18446744073709551615"], b"hello")),
        ("Transfer-Encoding and Content-Length", post(&["Transfer-Encoding: chunked", "Content-Length: 5"], b"0\r\n\r\n")),
        ("chunked not last", post(&["Transfer-Encoding: chunked, gzip"], b"0\r\n\r\n")),
        ("gzip then chunked", post(&["Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n")),
        ("chunked", chunked(b"5\r\nhello\r\n0\r\n\r\n")),
        ("chunked, two chunks", chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")),
        ("chunk size upper-case hex", chunked(b"A\r\n0123456789\r\n0\r\n\r\n")),
        ("chunk size leading zeros", chunked(b"0000000000000003\r\nabc\r\n000\r\n\r\n")),
        ("chunk extensions", chunked(b"3;a=b;c\r\nabc\r\n0;last\r\n\r\n")),
        ("chunk extension quoted", chunked(b"3;a=\"x;\\\"y\"\r\nabc\r\n0\r\n\r\n")),
        ("trailers are accepted and dropped", chunked(b"3\r\nabc\r\n0\r\nX-T: v\r\nY:\r\n\r\n")),
        ("chunk data containing CRLF", chunked(b"3\r\na\r\n\r\n0\r\n\r\n")),
        ("chunk size of 17 hex digits", chunked(b"00000000000000001\r\na\r\n0\r\n\r\n")),
        ("chunk size overflowing u64", chunked(b"10000000000000000\r\na\r\n0\r\n\r\n")),
        ("chunk size u64::MAX", chunked(b"FFFFFFFFFFFFFFFF\r\na\r\n0\r\n\r\n")),
        ("chunk size negative", chunked(b"-1\r\na\r\n0\r\n\r\n")),
        ("chunk size with plus", chunked(b"+1\r\na\r\n0\r\n\r\n")),
        ("chunk size 0x prefix", chunked(b"0x1\r\na\r\n0\r\n\r\n")),
        ("chunk size leading space", chunked(b" 1\r\na\r\n0\r\n\r\n")),
        ("chunk size trailing space", chunked(b"1 \r\na\r\n0\r\n\r\n")),
        ("chunk size missing", chunked(b"\r\na\r\n0\r\n\r\n")),
        ("chunk size not hex", chunked(b"g\r\na\r\n0\r\n\r\n")),
        ("chunk size line bare LF", chunked(b"1\na\r\n0\r\n\r\n")),
        ("chunk data without CRLF", chunked(b"1\r\na0\r\n\r\n")),
        ("chunk data longer than its size", chunked(b"1\r\nabc\r\n0\r\n\r\n")),
        ("chunk data ended by bare LF", chunked(b"1\r\na\n0\r\n\r\n")),
        ("chunk extension with control byte", chunked(b"1;a\x01\r\na\r\n0\r\n\r\n")),
        ("chunk extension with bare LF", chunked(b"1;a\nb\r\na\r\n0\r\n\r\n")),
        ("trailer without colon", chunked(b"0\r\nX-T v\r\n\r\n")),
        ("trailer with empty name", chunked(b"0\r\n: v\r\n\r\n")),
        ("trailer obs-fold", chunked(b"0\r\nX-T: v\r\n w\r\n\r\n")),
        ("trailer with NUL", chunked(b"0\r\nX-T: a\x00b\r\n\r\n")),
        ("last chunk ended by bare LF", chunked(b"0\r\n\n")),
        ("body then pipelined request", post(&["Content-Length: 3"], b"abcGET /x HTTP/1.1\r\nHost: x\r\n\r\n")),
        ("Expect 100-continue with the body sent", post(&["Expect: 100-continue", "Content-Length: 3"], b"abc")),
    ]
}

/// What became of one vector on `server`: its status, then whether the connection went on to
/// answer the pipelined request or closed.
fn outcome(server: &Server, raw: &[u8]) -> String {
    let mut conn = server.connect();
    conn.send_lossy([raw, AFTER].concat());
    let first = match read_final(&mut conn, false) {
        Ok(resp) => resp.status.to_string(),
        Err(e) => return format!("no response ({e})"),
    };
    let then = if first.starts_with('2') {
        match read_final(&mut conn, false) {
            Ok(next) => format!("then {}", next.status),
            Err(_) => "then closed".to_owned(),
        }
    } else if conn.wait_closed(Duration::from_secs(5)).is_some() {
        "then closed".to_owned()
    } else {
        "then left open".to_owned()
    };
    format!("{first} {then}")
}

/// ERROR lines of the server's log that carry a Python traceback.
fn error_tracebacks(server: &Server) -> Vec<String> {
    let log = server.stderr();
    let mut found = Vec::new();
    let mut entry: Option<String> = None;
    for line in log.lines() {
        if line.starts_with('[') {
            found.extend(entry.take().filter(|e| e.contains("Traceback")));
            entry = line.contains(" ERROR ").then(|| line.to_owned());
        } else if let Some(e) = &mut entry {
            e.push('\n');
            e.push_str(line);
        }
    }
    found.extend(entry.filter(|e| e.contains("Traceback")));
    found
}

#[test]
fn every_request_body_vector_gets_the_same_status_through_wsgi_as_through_echo() {
    let args = ["--threads", "4", "--max-body", &MAX_BODY.to_string()];
    let native = sample_server("echo").args(args).start();
    let python = wsgi("echoapp:app").args(args).start();
    let vectors = body_vectors();
    let mut rejected = 0;
    let mismatches: Vec<String> = vectors
        .iter()
        .filter_map(|(name, raw)| {
            let want = outcome(&native, raw);
            let got = outcome(&python, raw);
            rejected += usize::from(want.starts_with('4'));
            (got != want).then(|| format!("  {name}: through WSGI {got:?}, through echo {want:?}"))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} request-body vectors differ:\n{}\nserver log:\n{}",
        mismatches.len(),
        vectors.len(),
        mismatches.join("\n"),
        python.stderr()
    );
    assert!(rejected >= 20, "only {rejected} vectors were rejected");
    let blamed = error_tracebacks(&python);
    assert!(
        blamed.is_empty(),
        "a client's broken body was logged as the app's error:\n{}",
        blamed.join("\n")
    );
}

#[test]
fn an_app_that_turns_a_body_error_into_its_own_500_still_answers_the_clients_4xx() {
    let server = wsgi("failing:app")
        .args(["--max-body", &MAX_BODY.to_string()])
        .start();
    let malformed = b"POST /own-500 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5\r\nhello\r\nzz\r\n"
        .to_vec();
    // Chunked, so the server learns it is too large only while the app reads.
    let too_large = [
        b"POST /own-500 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        format!("{:x}\r\n", MAX_BODY + 1).into_bytes(),
        vec![b'x'; 1000],
    ]
    .concat();
    for (raw, status, classes) in [
        (
            malformed,
            400,
            "BadRequestBody RequestBodyError OSError ValueError",
        ),
        (
            too_large,
            413,
            "RequestBodyTooLarge RequestBodyError OSError",
        ),
    ] {
        let mut conn = server.connect();
        conn.send_lossy(&raw);
        let resp = conn.read_response();
        assert_eq!(resp.status, status, "{}", resp.text());
        assert!(resp.header_has_token("connection", "close"));
        assert!(
            server
                .wait_for_log(Duration::from_secs(5), |l| l
                    .contains(&format!("body error classes: {classes} ")))
                .is_some(),
            "no {classes:?} in the log:\n{}",
            server.stderr()
        );
    }
    // The app's own answer stands when the body was fine.
    let mut conn = server.connect();
    conn.send("POST /own-500 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(conn.read_response().text(), "read 3 bytes\n");
}

#[test]
fn a_body_that_stops_arriving_is_408_through_wsgi() {
    let server = wsgi("failing:app").args(["--body-timeout", "1"]).start();
    let mut conn = server.connect();
    conn.send("POST /own-500 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this");
    let resp = conn.read_response();
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert!(error_tracebacks(&server).is_empty(), "{}", server.stderr());
}

/// The JSON `/stats` page from the master's stats socket.
fn stats(socket: &Path) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("stats socket");
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").expect("a head").1;
    serde_json::from_str(body).expect("JSON stats")
}

#[test]
fn a_client_that_leaves_mid_upload_gets_no_answer_and_counts_no_5xx() {
    let dir = fresh_dir("wsgi-abort");
    let socket = dir.join("stats.sock");
    let access = dir.join("access.log");
    let server = wsgi("failing:app")
        .args([format!("--stats=unix:{}", socket.display())])
        .args(["--access-logfile".as_ref(), access.as_os_str()])
        .start();
    const ABORTS: usize = 10;
    for _ in 0..ABORTS {
        let mut conn = server.connect();
        conn.send("POST /own-500 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhalf of it");
        conn.shutdown_write();
        assert!(
            conn.wait_closed(Duration::from_secs(5)).is_some(),
            "the connection stays open"
        );
        assert!(
            conn.buffered().is_empty(),
            "answered a client that left: {:?}",
            String::from_utf8_lossy(conn.buffered())
        );
    }
    let lines = poll(Duration::from_secs(5), "access log lines", || {
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() >= ABORTS).then_some(lines)
    });
    for line in &lines {
        assert!(line.contains("\" 499 "), "{line}");
    }
    let json = stats(&socket);
    assert_eq!(json["responses"]["5xx"], 0, "{json:#}");
    assert_eq!(json["responses"]["4xx"], ABORTS, "{json:#}");
    assert_eq!(json["requests"]["in_flight"], 0, "{json:#}");
    assert!(error_tracebacks(&server).is_empty(), "{}", server.stderr());
}

#[test]
fn an_exception_in_the_app_is_logged_with_its_whole_traceback_rate_limited() {
    let server = wsgi("failing:app").start();
    for _ in 0..12 {
        assert_eq!(server.get("/deep").status, 500);
    }
    let file = fixtures_dir().join("failing.py");
    let source = std::fs::read_to_string(&file).unwrap();
    let frame = |code: &str, function: &str| {
        let line = 1 + source
            .lines()
            .position(|l| l.trim() == code)
            .unwrap_or_else(|| panic!("no {code:?} in {}", file.display()));
        format!(
            "File \"{}\", line {line}, in {function}\n    {code}\n",
            file.display()
        )
    };
    let frames = [
        frame("return route(environ, start_response)", "app"),
        frame("user = _load_user()", "_deep"),
        frame("return _connect_to_db()", "_load_user"),
        frame("raise RuntimeError('db down')", "_connect_to_db"),
        "RuntimeError: db down".to_owned(),
    ];
    let logged = poll(Duration::from_secs(5), "the traceback", || {
        let found = error_tracebacks(&server);
        (!found.is_empty()).then_some(found)
    });
    for frame in &frames {
        assert!(
            logged[0].contains(frame.as_str()),
            "no {frame:?} in:\n{}",
            logged[0]
        );
    }
    // Repeated identical tracebacks are summarised like any repeated error line.
    assert!(
        logged.len() <= 5,
        "{} tracebacks for 12 failures",
        logged.len()
    );
}

#[test]
fn hop_by_hop_headers_from_the_app_are_dropped_with_one_warning_and_connection_close_closes() {
    let server = wsgi("failing:app").start();
    let hop = "/hop?Keep-Alive=timeout%3D5&Proxy-Connection=keep-alive&Transfer-Encoding=chunked\
               &Upgrade=h2c&TE=trailers&Trailer=X-Sum&X-Kept=yes";
    for _ in 0..3 {
        let mut conn = server.connect();
        conn.send(format!(
            "GET {hop} HTTP/1.1\r\nHost: x\r\n\r\nGET {hop} HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
        for _ in 0..2 {
            let resp = conn.read_response();
            assert_eq!(resp.status, 200, "{}", resp.text());
            assert_eq!(resp.text(), "hop-by-hop headers dropped\n");
            assert_eq!(resp.header("X-Kept"), Some("yes"));
            for name in ["Keep-Alive", "Proxy-Connection", "Upgrade", "TE", "Trailer"] {
                assert_eq!(
                    resp.header(name),
                    None,
                    "{name} was sent: {:?}",
                    resp.headers
                );
            }
            assert!(!resp.header_has_token("connection", "close"));
        }
    }
    // The app's Connection: close ends the connection after its response.
    let mut conn = server.connect();
    conn.send(
        "GET /hop?Connection=close HTTP/1.1\r\nHost: x\r\n\r\nGET /hop HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header_has_token("connection", "close"),
        "{:?}",
        resp.headers
    );
    assert!(
        conn.wait_closed(Duration::from_secs(5)).is_some(),
        "still open"
    );
    assert!(
        conn.buffered().is_empty(),
        "the pipelined request was answered"
    );

    // The worker logs the access line after the response is written: wait for the last
    // request's line rather than racing it.
    server.wait_for_log(Duration::from_secs(5), |line| {
        line.contains("hop-by-hop header \"Connection\"")
    });
    server.wait_for_log(Duration::from_secs(5), |line| {
        line.contains("GET /hop?Connection=close")
    });
    let log = server.stderr();
    for name in [
        "Keep-Alive",
        "Proxy-Connection",
        "Transfer-Encoding",
        "Upgrade",
        "TE",
        "Trailer",
        "Connection",
    ] {
        let warnings = log
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains(&format!("hop-by-hop header {name:?}")))
            .count();
        assert_eq!(warnings, 1, "{name}: {warnings} warnings in:\n{log}");
    }
}
