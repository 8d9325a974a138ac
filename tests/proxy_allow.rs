//! `--proxy-allow-from` (gunicorn's), end to end over raw TCP with the `echo` app: on a PROXY
//! listener, only the peers it names may speak; a connection from anyone else is closed
//! unanswered, even with a well-formed header, and logged once per address.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;

const HEADER: &[u8] = b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n";
const REQUEST: &[u8] = b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n";

/// Sends a PROXY header and a request; the response, or `None` if the server closed the
/// connection without one.
fn through_proxy(server: &Server) -> Option<serde_json::Value> {
    let mut conn = server.connect();
    conn.send([HEADER, REQUEST].concat());
    conn.try_read_response().ok().map(|r| r.json())
}

#[test]
fn a_peer_outside_proxy_allow_from_is_closed_unanswered() {
    let server = sample_server("echo")
        .args(["--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8"])
        .start();
    for _ in 0..3 {
        assert!(through_proxy(&server).is_none(), "127.0.0.1 was answered");
    }
    let line = server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("--proxy-allow-from"))
        .unwrap_or_else(|| panic!("no log line:\n{}", server.stderr()));
    assert!(line.contains("127.0.0.1"), "{line}");
    // Closed at once, not after the header timeout.
    let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(conn.read(&mut buf).unwrap(), 0, "closed without a byte");
}

#[test]
fn a_peer_in_proxy_allow_from_names_the_client() {
    // The default: a proxy on the same machine.
    let server = sample_server("echo").args(["--proxy-protocol"]).start();
    assert_eq!(through_proxy(&server).unwrap()["remote_addr"], "192.0.2.1");
    let server = sample_server("echo")
        .args(["--proxy-protocol"])
        .env("WEBSERVER_PROXY_ALLOW_FROM", "10.0.0.0/8, 127.0.0.0/8")
        .start();
    assert_eq!(through_proxy(&server).unwrap()["remote_addr"], "192.0.2.1");
}

#[test]
fn listeners_without_proxy_do_not_care() {
    let server = sample_server("echo")
        .args(["--proxy-allow-from", "10.0.0.0/8"])
        .start();
    let mut conn = server.connect();
    conn.send(REQUEST);
    assert_eq!(conn.read_response().json()["remote_addr"], "127.0.0.1");
}
