//! An app that reads the parsed head (ABI 1.3 `WS_APP_REQUEST_PARTS`: the tower adapter, and
//! the echo app's `app_parts` export) gets its header fields in the parts only: the server leaves
//! the `HTTP_*` variables out of its environ. What used to read them there must still see them:
//! the app's own `header`/`var("HTTP_…")`, the access log, the forwarding policy.
//!
//! Needs `cargo build --workspace` first (the cdylibs come from target/debug).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// How long an access-log line may take to reach its file on a loaded machine.
const LINE_WAIT: Duration = Duration::from_secs(10);

/// The echo app exported with `WS_APP_REQUEST_PARTS`.
fn echo_parts() -> ServerBuilder {
    let mut target = sample_app("echo").into_os_string();
    target.push(":app_parts");
    server(target)
}

/// The lines of `path` once it holds at least `count`.
fn lines_of(path: &Path, count: usize) -> Vec<String> {
    poll(
        LINE_WAIT,
        &format!("{count} line(s) in {}", path.display()),
        || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            (lines.len() >= count).then_some(lines)
        },
    )
}

/// `GET /who` with `headers`, after `prefix` (a PROXY header or nothing), on a new connection.
fn ask(server: &Server, prefix: &[u8], headers: &[&str]) -> Response {
    let mut conn = server.connect();
    let mut raw = String::from("GET /who?x=1 HTTP/1.1\r\nHost: app.example\r\n");
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    raw.push_str("Connection: close\r\n\r\n");
    conn.send([prefix, raw.as_bytes()].concat());
    conn.read_response()
}

/// The flagged app's environ holds no `HTTP_*`, yet `var("HTTP_X_PROBE")` and `headers()` find
/// the fields (from the parts); the same app unflagged gets them in its environ, as always.
#[test]
fn a_flagged_app_reads_its_fields_by_their_environ_names_from_the_parts() {
    let flagged = echo_parts().start();
    let plain = sample_server("echo").start();
    let fields = ["X-Probe: p-1", "Content-Type: text/plain", "X_Under: no"];
    let ours = ask(&flagged, b"", &fields).json();
    let theirs = ask(&plain, b"", &fields).json();
    assert_eq!(
        ours["http_vars"], 0,
        "the fields stay out of the environ: {ours}"
    );
    assert!(theirs["http_vars"].as_u64().unwrap() >= 2, "{theirs}");
    for seen in [&ours, &theirs] {
        assert_eq!(seen["http_x_probe"], "p-1", "{seen}");
        assert_eq!(seen["headers"]["x-probe"], "p-1", "{seen}");
        assert_eq!(seen["headers"]["host"], "app.example", "{seen}");
        assert_eq!(seen["headers"]["content-type"], "text/plain", "{seen}");
        assert!(seen["headers"]["x_under"].is_null(), "{seen}");
        assert_eq!(seen["query"], "x=1");
        assert_eq!(seen["remote_addr"], "127.0.0.1");
    }
}

/// The echo app exported with `WS_APP_REQUEST_PARTS | WS_APP_NO_ENVIRON`.
fn echo_no_environ() -> ServerBuilder {
    let mut target = sample_app("echo").into_os_string();
    target.push(":app_no_environ");
    server(target)
}

/// An app that declared it reads no environ gets none (not the last request's, not a partial
/// one), over HTTP/1 and HTTP/2, with and without the access log (which builds one for
/// itself), and still finds its fields in the parts.
#[test]
fn an_app_that_reads_no_environ_gets_none_and_its_fields_from_the_parts() {
    let dir = fresh_dir("parts-no-environ");
    let log = dir.join("access.log");
    let quiet = echo_no_environ().start();
    let logged = echo_no_environ()
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .start();
    for server in [&quiet, &logged] {
        let mut conn = server.connect();
        for round in 0..2 {
            conn.send(format!(
                "GET /who?x={round} HTTP/1.1\r\nHost: app.example\r\nX-Probe: p-{round}\r\n\r\n"
            ));
            let seen = conn.read_response().json();
            assert_eq!(seen["headers"]["x-probe"], format!("p-{round}"), "{seen}");
            assert_eq!(seen["headers"]["host"], "app.example", "{seen}");
            assert_eq!(seen["http_vars"], 0, "{seen}");
            assert_eq!(seen["method"], "", "no REQUEST_METHOD: {seen}");
            assert_eq!(seen["query"], "", "no QUERY_STRING: {seen}");
            assert!(seen["remote_addr"].is_null(), "{seen}");
            assert!(seen["url_scheme"].is_null(), "{seen}");
        }
    }
    if have_program("curl") {
        let server = echo_no_environ().args(["--http2", "on"]).start();
        let out = std::process::Command::new("curl")
            .args(["-s", "--http2-prior-knowledge", "-H", "X-Probe: p-h2"])
            .arg(format!("http://{}/who", server.addr()))
            .output()
            .expect("curl runs");
        let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(seen["headers"]["x-probe"], "p-h2", "{seen}");
        assert_eq!(seen["http_vars"], 0, "{seen}");
        assert!(seen["remote_addr"].is_null(), "{seen}");
    }
}

/// The access log reads a request the same whether its app reads the environ or none: the
/// server builds the environ for the log alone then.
#[test]
fn the_access_log_reads_the_same_for_an_app_that_reads_no_environ() {
    let dir = fresh_dir("parts-no-environ-log");
    let format =
        "%(h)s|%(r)s|%(s)s|%(a)s|%({X-Probe}i)s|%({SERVER_NAME}e)s|%({webserver.url_scheme}e)s";
    let mut lines = Vec::new();
    for (name, builder) in [("parts", echo_parts()), ("none", echo_no_environ())] {
        let log = dir.join(format!("{name}.log"));
        let server = builder
            .args(["--access-logfile".as_ref(), log.as_os_str()])
            .args(["--access-logformat", format])
            .args(["--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8"])
            .start();
        let resp = ask(
            &server,
            b"PROXY TCP4 10.0.0.5 10.0.0.1 5000 443\r\n",
            &[
                "User-Agent: probe/1.0",
                "X-Probe: p-3",
                "X-Forwarded-For: 203.0.113.9",
                "X-Forwarded-Proto: https",
            ],
        );
        assert_eq!(resp.status, 200);
        lines.push(lines_of(&log, 1)[0].clone());
    }
    assert_eq!(
        lines[0],
        "203.0.113.9|GET /who?x=1 HTTP/1.1|200|probe/1.0|p-3|app.example|https"
    );
    assert_eq!(lines[1], lines[0]);
}

/// Forwarding fields reach a flagged app from a trusted proxy and are dropped from an untrusted
/// peer, as for any app; the client a trusted proxy names is still the environ's REMOTE_ADDR.
#[test]
fn forwarding_fields_reach_a_flagged_app_only_from_a_trusted_proxy() {
    let server = echo_parts()
        .args(["--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8"])
        .start();
    let forwarded = ["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https"];
    let trusted = ask(
        &server,
        b"PROXY TCP4 10.0.0.5 10.0.0.1 5000 443\r\n",
        &forwarded,
    )
    .json();
    let untrusted = ask(
        &server,
        b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 443\r\n",
        &forwarded,
    )
    .json();
    assert_eq!(
        trusted["headers"]["x-forwarded-for"], "203.0.113.9",
        "{trusted}"
    );
    assert_eq!(trusted["remote_addr"], "203.0.113.9");
    assert_eq!(trusted["url_scheme"], "https");
    assert!(
        untrusted["headers"]["x-forwarded-for"].is_null(),
        "{untrusted}"
    );
    assert!(
        untrusted["headers"]["x-forwarded-proto"].is_null(),
        "{untrusted}"
    );
    assert_eq!(untrusted["remote_addr"], "192.0.2.1");
    assert_eq!(untrusted["url_scheme"], "http");

    // The same through the tower adapter: the router's /headers lists what it got.
    let server = sample_server("axum_app")
        .args(["--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8"])
        .start();
    let headers = |prefix: &[u8]| {
        let mut conn = server.connect();
        conn.send(
            [
                prefix,
                b"GET /headers HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\n\
                  Connection: close\r\n\r\n",
            ]
            .concat(),
        );
        conn.read_response().text()
    };
    let trusted = headers(b"PROXY TCP4 10.0.0.5 10.0.0.1 5000 443\r\n");
    let untrusted = headers(b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 443\r\n");
    assert!(
        trusted.contains("x-forwarded-for: 203.0.113.9"),
        "{trusted}"
    );
    assert!(!untrusted.contains("x-forwarded-for"), "{untrusted}");
}

/// The access log of a tower app shows the user agent, the referer, the user and any request
/// header, read from the parts (its environ has no `HTTP_*`), and the client a trusted proxy
/// named.
#[test]
fn an_axum_apps_access_log_shows_its_request_fields() {
    let dir = fresh_dir("parts-log");
    let combined = dir.join("combined.log");
    let custom = dir.join("custom.log");
    let mut body_len = 0;
    for (log, format) in [
        (&combined, None),
        (
            &custom,
            Some("%(h)s|%({x-request-id}i)s|%({X-Forwarded-For}i)s|%(a)s"),
        ),
    ] {
        let mut builder = sample_server("axum_app")
            .args(["--access-logfile".as_ref(), log.as_os_str()])
            .args(["--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8"]);
        if let Some(format) = format {
            builder = builder.args(["--access-logformat", format]);
        }
        let server = builder.start();
        let resp = ask(
            &server,
            b"PROXY TCP4 10.0.0.5 10.0.0.1 5000 443\r\n",
            &[
                "Referer: http://example.com/",
                "User-Agent: probe/1.0",
                "Authorization: Basic YWxpY2U6c2VjcmV0",
                "X-Request-Id: rid-7",
                "X-Forwarded-For: 203.0.113.9",
            ],
        );
        assert_eq!(resp.status, 404, "{}", resp.text());
        body_len = resp.body.len();
    }
    let line = &lines_of(&combined, 1)[0];
    assert!(line.starts_with("203.0.113.9 - alice ["), "{line}");
    let end =
        format!("\"GET /who?x=1 HTTP/1.1\" 404 {body_len} \"http://example.com/\" \"probe/1.0\"");
    assert!(line.ends_with(&end), "{line}");
    let line = &lines_of(&custom, 1)[0];
    assert_eq!(line, "203.0.113.9|rid-7|203.0.113.9|probe/1.0", "{line}");
}

/// A target `http::Uri` refuses takes the tower adapter's other way (the target escaped from
/// the parts): the fields still reach the router, and the client's own escapes stay.
#[test]
fn a_target_a_uri_cannot_hold_still_brings_its_fields_to_the_router() {
    let server = sample_server("axum_app").start();
    let mut conn = server.connect();
    conn.send(
        "GET /headers?q=\"<>\" HTTP/1.1\r\nHost: a\r\nX-Probe: p-2\r\nConnection: close\r\n\r\n",
    );
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", server.stderr());
    let text = resp.text();
    assert!(text.contains("x-probe: p-2\n"), "{text}");
    assert!(text.contains("host: a\n"), "{text}");
    let mut conn = server.connect();
    conn.send("GET /nope/a%2Fb?q=\"<>\" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(
        conn.read_response().text(),
        "no route for GET /nope/a%2Fb?q=%22%3C%3E%22\n"
    );
}

/// Over HTTP/2 the request's host comes as `:authority`, which the parts hold apart from the
/// fields: a flagged app still finds it as the Host header, and the access log as `Host`.
#[test]
fn over_http2_a_flagged_app_and_the_access_log_find_the_authority_as_host() {
    if !have_program("curl") {
        return;
    }
    let dir = fresh_dir("parts-h2-host");
    let log = dir.join("access.log");
    let server = echo_parts()
        .args(["--http2", "on", "--access-logformat", "%({Host}i)s|%(H)s"])
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .start();
    let authority = server.addr().to_string();
    let out = std::process::Command::new("curl")
        .args(["-s", "--http2-prior-knowledge"])
        .arg(format!("http://{authority}/who"))
        .output()
        .expect("curl runs");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(seen["headers"]["host"], authority.as_str(), "{seen}");
    assert_eq!(lines_of(&log, 1)[0], format!("{authority}|HTTP/2"));
}

/// The tower adapter remembers each thread's last URI for the next request with the same
/// target: one thread (`--threads 1`; HTTP/2's one thread, a connection per curl) serves
/// targets that differ only in their query, their path or their authority, and each reaches
/// the router as sent.
#[test]
fn each_request_reaches_the_router_with_its_own_uri() {
    let server = sample_server("axum_app")
        .args(["--threads", "1", "--http2", "on"])
        .start();
    let mut conn = server.connect();
    for target in [
        "/nowhere/a?x=1",
        "/nowhere/a?x=1",
        "/nowhere/a?x=2",
        "/nowhere/b?x=2",
        "/nowhere/b",
        "/nowhere/a?x=1",
    ] {
        conn.send(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n"));
        let resp = conn.read_response();
        assert_eq!(resp.status, 404, "{}", server.stderr());
        assert_eq!(resp.text(), format!("no route for GET {target}\n"));
    }
    if !have_program("curl") {
        return;
    }
    let port = server.port();
    let urls = [
        format!("http://127.0.0.1:{port}/nowhere/a"),
        format!("http://other.test:{port}/nowhere/a"),
        format!("http://other.test:{port}/nowhere/a?x=1"),
        format!("http://other.test:{port}/nowhere/c"),
        format!("http://127.0.0.1:{port}/nowhere/c"),
    ];
    for url in urls {
        let out = std::process::Command::new("curl")
            .args(["-s", "--http2-prior-knowledge", "--resolve"])
            .arg(format!("other.test:{port}:127.0.0.1"))
            .arg(&url)
            .output()
            .expect("curl runs");
        let seen = String::from_utf8_lossy(&out.stdout);
        assert_eq!(seen, format!("no route for GET {url}\n"));
    }
}
