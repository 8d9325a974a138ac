//! Behind proxies, end to end with the real binary and the `echo` app (which reports
//! REMOTE_ADDR, REMOTE_PORT and webserver.url_scheme): `--forwarded-allow-ips` believes
//! `Forwarded` / `X-Forwarded-*` from trusted peers only and strips them from anyone else;
//! `--proxy-protocol` takes the client from a PROXY v1/v2 header and closes connections whose
//! header is malformed. (The conformance table, tests/conformance.rs, has one row per PROXY
//! header shape.)

mod common;

use std::time::Duration;

use common::*;

/// `GET /` with the given extra header lines.
fn get_with(headers: &[&str]) -> Vec<u8> {
    let mut raw = String::from("GET /who HTTP/1.1\r\nHost: app.example\r\n");
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.into_bytes()
}

/// What the echo app saw for one request sent on a fresh connection after `prefix`.
fn ask(server: &Server, prefix: &[u8], headers: &[&str]) -> serde_json::Value {
    let mut conn = server.connect();
    conn.send([prefix, &get_with(headers)].concat());
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

const SPOOFS: &[&str] = &[
    "X-Forwarded-For: 198.51.100.7, 203.0.113.9",
    "X-Forwarded-Proto: https",
    "Forwarded: for=192.0.2.66;proto=https",
    "X-Forwarded-Host: evil.example",
    "X-Real-IP: 192.0.2.99",
];

#[test]
fn a_trusted_peer_names_the_client_and_the_scheme() {
    // The default trusts 127.0.0.1 and ::1: the test client.
    let server = sample_server("echo").start();
    let seen = ask(
        &server,
        b"",
        &[
            "X-Forwarded-For: 198.51.100.7, 203.0.113.9",
            "X-Forwarded-Proto: https",
        ],
    );
    // The right-most untrusted hop; the client's own claim on the left is not believed.
    assert_eq!(seen["remote_addr"], "203.0.113.9");
    assert_eq!(seen["remote_port"], "0");
    assert_eq!(seen["url_scheme"], "https");
    // A trusted proxy's headers reach the app as they were.
    assert_eq!(
        seen["headers"]["x-forwarded-for"],
        "198.51.100.7, 203.0.113.9"
    );

    let seen = ask(
        &server,
        b"",
        &["Forwarded: for=\"[2001:db8::5]:4711\";proto=https"],
    );
    assert_eq!(seen["remote_addr"], "2001:db8::5");
    assert_eq!(seen["remote_port"], "4711");
    assert_eq!(seen["url_scheme"], "https");

    // Without forwarding headers: the socket's peer.
    let seen = ask(&server, b"", &[]);
    assert_eq!(seen["remote_addr"], "127.0.0.1");
    assert_ne!(seen["remote_port"], "0");
    assert_eq!(seen["url_scheme"], "http");

    // The access log names the client the app saw.
    server
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("2001:db8::5 - ") && l.contains("\"GET /who HTTP/1.1\" 200")
        })
        .unwrap_or_else(|| {
            panic!(
                "no access line for the forwarded client:\n{}",
                server.stderr()
            )
        });
}

#[test]
fn an_untrusted_peer_cannot_spoof_and_its_forwarding_headers_are_removed() {
    // Two workers: the list travels on each worker's command line.
    let server = sample_server("echo")
        .args(["-w", "2", "--forwarded-allow-ips", "10.0.0.0/8, fd00::/8"])
        .start();
    for _ in 0..4 {
        let seen = ask(&server, b"", SPOOFS);
        assert_eq!(seen["remote_addr"], "127.0.0.1", "{seen}");
        assert_eq!(seen["url_scheme"], "http");
        for name in [
            "x-forwarded-for",
            "x-forwarded-proto",
            "forwarded",
            "x-forwarded-host",
            "x-real-ip",
        ] {
            assert!(
                seen["headers"][name].is_null(),
                "{name} reached the app: {seen}"
            );
        }
        assert_eq!(seen["headers"]["host"], "app.example");
    }
}

#[test]
fn the_list_comes_from_the_environment_and_nonsense_is_refused() {
    let server = sample_server("echo")
        .env("WEBSERVER_FORWARDED_ALLOW_IPS", "")
        .start();
    let seen = ask(&server, b"", SPOOFS);
    assert_eq!(seen["remote_addr"], "127.0.0.1");
    assert!(seen["headers"]["x-forwarded-for"].is_null());

    let star = sample_server("echo")
        .env("WEBSERVER_FORWARDED_ALLOW_IPS", "*")
        .start();
    // `*` trusts every hop, so the left-most X-Forwarded-For entry is the client: only for
    // listeners nothing but proxies can reach.
    assert_eq!(ask(&star, b"", SPOOFS)["remote_addr"], "198.51.100.7");

    let exited = sample_server("echo")
        .args(["--forwarded-allow-ips", "10.0.0.0/33"])
        .run_to_exit();
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(
        exited
            .stderr
            .contains("'10.0.0.0/33' has a prefix length over 32"),
        "{}",
        exited.stderr
    );
}

/// A PROXY v2 header for TCP over IPv6.
fn v2_inet6(source: [u8; 16], source_port: u16, destination: [u8; 16], port: u16) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x21, 0, 36]);
    out.extend_from_slice(&source);
    out.extend_from_slice(&destination);
    out.extend_from_slice(&source_port.to_be_bytes());
    out.extend_from_slice(&port.to_be_bytes());
    out
}

#[test]
fn proxy_protocol_headers_name_the_client_for_the_whole_connection() {
    let server = sample_server("echo").args(["--proxy-protocol"]).start();

    // v1, then a second request on the same connection: still that client.
    let mut conn = server.connect();
    conn.send(b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n");
    conn.send(get_with(&[]));
    let first = conn.read_response().json();
    assert_eq!(first["remote_addr"], "192.0.2.1");
    assert_eq!(first["remote_port"], "56324");
    conn.send(get_with(&[]));
    assert_eq!(conn.read_response().json()["remote_addr"], "192.0.2.1");

    // v2 over IPv6, sent a byte at a time (the header is read as it arrives).
    let mut source = [0u8; 16];
    source[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    source[15] = 0x42;
    let header = v2_inet6(source, 4711, [0; 16], 80);
    let mut conn = server.connect();
    for byte in &header {
        conn.send([*byte]);
        std::thread::sleep(Duration::from_millis(1));
    }
    conn.send(get_with(&[]));
    let seen = conn.read_response().json();
    assert_eq!(seen["remote_addr"], "2001:db8::42");
    assert_eq!(seen["remote_port"], "4711");

    // The PROXY client is the peer that --forwarded-allow-ips judges: 192.0.2.1 is not
    // trusted, so its X-Forwarded-For is stripped...
    let seen = ask(
        &server,
        b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 443\r\n",
        &["X-Forwarded-For: 203.0.113.9"],
    );
    assert_eq!(seen["remote_addr"], "192.0.2.1");
    assert!(seen["headers"]["x-forwarded-for"].is_null());
    // ...and a proxy's own health check (v1 UNKNOWN) keeps the socket's peer.
    let seen = ask(&server, b"PROXY UNKNOWN\r\n", &[]);
    assert_eq!(seen["remote_addr"], "127.0.0.1");
}

#[test]
fn proxy_protocol_and_a_trusted_proxy_behind_it() {
    // HAProxy (PROXY header, 10.0.0.5) in front of an app proxy that adds X-Forwarded-For.
    let server = sample_server("echo")
        .args(["--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8"])
        .start();
    let seen = ask(
        &server,
        b"PROXY TCP4 10.0.0.5 10.0.0.1 5000 443\r\n",
        &["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https"],
    );
    assert_eq!(seen["remote_addr"], "203.0.113.9");
    assert_eq!(seen["url_scheme"], "https");
}

#[test]
fn malformed_proxy_headers_close_the_connection_and_are_logged_without_flooding() {
    let server = sample_server("echo").args(["--proxy-protocol"]).start();
    const ATTEMPTS: usize = 20;
    for _ in 0..ATTEMPTS {
        let mut conn = server.connect();
        // Plain HTTP on a PROXY listener: refused, no HTTP answer.
        conn.send_lossy(get_with(&[]));
        assert!(
            conn.wait_closed(Duration::from_secs(5)).is_some(),
            "connection left open"
        );
        assert!(
            conn.buffered().is_empty(),
            "answered: {:?}",
            conn.buffered()
        );
    }
    let needle = "closed a connection from 127.0.0.1 on a PROXY-protocol listener: the connection does not start with a PROXY protocol header";
    server
        .wait_for_log(Duration::from_secs(5), |l| l.contains(needle))
        .unwrap_or_else(|| panic!("no warning:\n{}", server.stderr()));
    let lines = server.stderr().matches(needle).count();
    assert!(
        (1..ATTEMPTS).contains(&lines),
        "{lines} warnings for {ATTEMPTS} refused connections (repeats should be summarised)"
    );
    // Still serving.
    let seen = ask(&server, b"PROXY TCP4 192.0.2.1 10.0.0.1 1 2\r\n", &[]);
    assert_eq!(seen["remote_addr"], "192.0.2.1");
}

#[test]
fn a_proxy_header_that_never_completes_times_out_without_an_http_answer() {
    let server = sample_server("echo")
        .args(["--proxy-protocol", "--header-timeout", "1"])
        .start();
    let mut conn = server.connect();
    conn.send(b"PROXY TCP4 192.0.2.1");
    let closed = conn.wait_closed(Duration::from_secs(5));
    assert!(closed.is_some(), "still open after the header timeout");
    assert!(
        conn.buffered().is_empty(),
        "a proxy got an HTTP answer: {:?}",
        String::from_utf8_lossy(conn.buffered())
    );
}

#[test]
fn proxy_protocol_from_the_environment_reaches_every_worker() {
    let off = sample_server("echo")
        .env("WEBSERVER_PROXY_PROTOCOL", "0")
        .start();
    assert_eq!(ask(&off, b"", &[])["remote_addr"], "127.0.0.1");
    let on = sample_server("echo")
        .args(["-w", "2"])
        .env("WEBSERVER_PROXY_PROTOCOL", "1")
        .start();
    for _ in 0..4 {
        let seen = ask(&on, b"PROXY TCP6 2001:db8::9 ::1 1234 80\r\n", &[]);
        assert_eq!(seen["remote_addr"], "2001:db8::9");
    }
}

/// What the echo app saw for a request sent after `prefix` on a unix socket (`None`: the
/// connection was closed without an answer).
fn ask_unix(path: &std::path::Path, prefix: &[u8], headers: &[&str]) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut headers = headers.to_vec();
    headers.push("Connection: close");
    // The server may close before reading everything.
    let _ = stream.write_all(&[prefix, &get_with(&headers)].concat());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    if answer.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body).unwrap();
    Some(serde_json::from_str(body).unwrap())
}

#[test]
fn the_proxy_option_applies_to_its_own_listener_only() {
    let dir = fresh_dir("proxy-option");
    let path = dir.join("app.sock");
    // The default TCP listener without, a unix socket with the `proxy` option.
    let server = sample_server("echo")
        .args(["-b", &format!("unix:{},proxy", path.display())])
        .start();
    assert_eq!(ask(&server, b"", &[])["remote_addr"], "127.0.0.1");
    let seen = ask_unix(&path, b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 443\r\n", &[]).unwrap();
    assert_eq!(seen["remote_addr"], "192.0.2.1");
    assert_eq!(seen["remote_port"], "5000");
    assert!(
        ask_unix(&path, b"", &[]).is_none(),
        "plain HTTP answered on a proxy listener"
    );
}

#[test]
fn unix_socket_peers_are_trusted_only_when_named() {
    let dir = fresh_dir("proxy-unix-trust");
    let forwarded = &["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https"];

    let default_path = dir.join("default.sock");
    let _default = sample_server("echo")
        .args(["-b", &format!("unix:{}", default_path.display())])
        .start();
    let seen = ask_unix(&default_path, b"", forwarded).unwrap();
    assert_eq!(seen["remote_addr"], "", "{seen}");
    assert_eq!(seen["url_scheme"], "http");
    assert!(seen["headers"]["x-forwarded-for"].is_null(), "{seen}");

    let named_path = dir.join("named.sock");
    let _named = sample_server("echo")
        .args(["-b", &format!("unix:{}", named_path.display())])
        .args(["--forwarded-allow-ips", "unix"])
        .start();
    let seen = ask_unix(&named_path, b"", forwarded).unwrap();
    assert_eq!(seen["remote_addr"], "203.0.113.9", "{seen}");
    assert_eq!(seen["url_scheme"], "https");
}
