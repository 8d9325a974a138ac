//! RFC 9112 conformance table (issue #4): named raw requests over raw TCP against the `echo` app,
//! each with its exact expected outcome.
//!
//! Every case is sent in one write followed by a valid pipelined request (`GET /after`), so each
//! row also checks what happens next on the connection:
//! - a rejected request gets exactly one error response, the connection closes, and the pipelined
//!   request is never answered (RFC 9112 §9.6: after a framing error the next request's start is
//!   unknown, so nothing after it may be processed);
//! - an accepted request is echoed, then the pipelined request is answered too (persistent
//!   connection, §9.3), unless the request ended the connection (`Connection: close`, HTTP/1.0).
//!
//! One server serves the whole table, so the table also shows that no case disturbs the next.
//! A second table (`proxy_protocol_table`) sends PROXY protocol headers (v1 text, v2 binary)
//! to a server started with `--proxy-protocol`: a valid header names the client the app sees
//! (`REMOTE_ADDR`), a malformed one closes the connection without any answer.

mod common;

use std::time::Duration;

use common::*;

/// `--max-body` of the table's server.
const MAX_BODY: usize = 64 * 1024;
/// The pipelined request sent after every case.
const AFTER: &[u8] = b"GET /after?pipelined HTTP/1.1\r\nHost: after.example\r\n\r\n";

/// What must happen to one case.
#[derive(Debug, Clone)]
enum Want {
    /// `200` from echo with these fields; then the pipelined request is answered if `keep_alive`.
    Echo(Echoed),
    /// A `HEAD` answered `200` (no body); the pipelined request is answered too.
    Head,
    /// Exactly this (non-2xx) status, `Connection: close`, the connection closes, nothing more.
    Reject(u16),
    /// The connection closes without a byte of answer (a malformed PROXY header).
    Refused,
}

/// The echo app's view of an accepted request.
#[derive(Debug, Clone)]
struct Echoed {
    method: &'static str,
    path: &'static str,
    query: &'static str,
    /// (lower-case-dashed name, Some(value) or None for "must be absent").
    headers: Vec<(&'static str, Option<String>)>,
    body: Vec<u8>,
    keep_alive: bool,
    /// `REMOTE_ADDR`, when the case decides it.
    remote_addr: Option<&'static str>,
}

fn echo(method: &'static str, path: &'static str, query: &'static str) -> Echoed {
    Echoed {
        method,
        path,
        query,
        headers: Vec::new(),
        body: Vec::new(),
        keep_alive: true,
        remote_addr: None,
    }
}

fn get(path: &'static str) -> Echoed {
    echo("GET", path, "")
}

impl Echoed {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, Some(value.into())));
        self
    }
    fn no_header(mut self, name: &'static str) -> Self {
        self.headers.push((name, None));
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn close(mut self) -> Self {
        self.keep_alive = false;
        self
    }
    fn remote_addr(mut self, addr: &'static str) -> Self {
        self.remote_addr = Some(addr);
        self
    }
}

impl From<Echoed> for Want {
    fn from(e: Echoed) -> Want {
        Want::Echo(e)
    }
}

/// One row: a name, the raw bytes, the outcome.
struct Case {
    name: &'static str,
    raw: Vec<u8>,
    want: Want,
}

fn case(name: &'static str, raw: impl AsRef<[u8]>, want: impl Into<Want>) -> Case {
    Case {
        name,
        raw: raw.as_ref().to_vec(),
        want: want.into(),
    }
}

fn reject(status: u16) -> Want {
    Want::Reject(status)
}

/// `GET /` with Host and `extra` raw header bytes (each line CRLF-terminated by the caller).
fn get_with(extra: &[u8]) -> Vec<u8> {
    [&b"GET / HTTP/1.1\r\nHost: x\r\n"[..], extra, b"\r\n"].concat()
}

fn posted(body: &[u8]) -> Echoed {
    echo("POST", "/", "").body(body)
}

#[rustfmt::skip]
fn table() -> Vec<Case> {
    let long_target_ok = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(8192 - 14));
    let long_target_bad = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(8192 - 13));
    let header_line_ok = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "v".repeat(8192 - 8));
    let header_line_bad = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "v".repeat(8192 - 7));
    let many = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 1..n {
            s.push_str(&format!("X-H{i}: {i}\r\n"));
        }
        s + "\r\n"
    };
    let big_head = {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..70 {
            s.push_str(&format!("X-Fill-{i}: {}\r\n", "f".repeat(1000)));
        }
        s + "\r\n"
    };
    let at_max = pseudo_random_bytes(MAX_BODY, 4);
    let chunked_at_max = [
        format!("{:x}\r\n", MAX_BODY).into_bytes(),
        at_max.clone(),
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    let chunked_over_max = [
        format!("{:x}\r\n", MAX_BODY / 2).into_bytes(),
        vec![b'a'; MAX_BODY / 2],
        format!("\r\n{:x}\r\n", MAX_BODY / 2 + 1).into_bytes(),
        vec![b'b'; MAX_BODY / 2 + 1],
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    let cl_at_max = [
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY}\r\n\r\n").into_bytes(),
        at_max.clone(),
    ]
    .concat();
    let cl_over_max = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);

    vec![
        // ---- request-line forms (RFC 9112 §3.2) ----
        case("origin-form root", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", get("/")),
        case("origin-form path and query", "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: x\r\n\r\n", echo("GET", "/a/b", "x=1&y=2")),
        case("origin-form percent-decoded path, raw query", "GET /a%20b%2Fc?q=%20 HTTP/1.1\r\nHost: x\r\n\r\n", echo("GET", "/a b/c", "q=%20")),
        case("origin-form empty query", "GET /a? HTTP/1.1\r\nHost: x\r\n\r\n", get("/a")),
        case("origin-form second ? stays in query", "GET /a?b?c HTTP/1.1\r\nHost: x\r\n\r\n", echo("GET", "/a", "b?c")),
        case("origin-form double slash", "GET //x HTTP/1.1\r\nHost: x\r\n\r\n", get("//x")),
        case("absolute-form", "GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", echo("GET", "/p", "q=1")),
        case("absolute-form without path", "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", get("/")),
        case("absolute-form https, upper-case scheme, port", "GET HTTPS://example.com:8443/x HTTP/1.1\r\nHost: example.com:8443\r\n\r\n", get("/x")),
        case("absolute-form with userinfo", "GET http://u@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", reject(400)),
        case("absolute-form other scheme", "GET ftp://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n", reject(400)),
        case("absolute-form empty authority", "GET http:///p HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("CONNECT authority-form is 501", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", reject(501)),
        case("CONNECT origin-form is 501", "CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", reject(501)),
        case("authority-form with GET is 400", "GET example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", reject(400)),
        case("asterisk-form OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", echo("OPTIONS", "*", "")),
        case("asterisk-form with GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("fragment in target", "GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("relative target", "GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("control byte in target", "GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("tab inside target", "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("double space before target", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("tabs as separators", "GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("missing target", "GET HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("leading empty line skipped", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", get("/")),
        case("leading bare LF", "\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),

        // ---- versions (RFC 9112 §2.3, RFC 9110 §15.6.6) ----
        case("HTTP/1.0 without Host closes", "GET /v HTTP/1.0\r\n\r\n", get("/v").close()),
        case("HTTP/1.0 keep-alive", "GET /v HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", get("/v").header("connection", "keep-alive")),
        case("HTTP/1.1 Connection: close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", get("/").close()),
        case("HTTP/1.1 Connection list with close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, CLOSE\r\n\r\n", get("/").close()),
        case("HTTP/1.2 is 505", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", reject(505)),
        case("HTTP/2.0 is 505", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", reject(505)),
        case("HTTP/3 is 505", "GET / HTTP/3\r\nHost: x\r\n\r\n", reject(505)),
        case("HTTP/0.9 version is 505", "GET / HTTP/0.9\r\n\r\n", reject(505)),
        case("HTTP/2 preface is 505", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", reject(505)),
        case("HTTP/0.9 request line is 400", "GET /\r\n\r\n", reject(400)),
        case("lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("non-numeric version", "GET / HTTP/1.x\r\nHost: x\r\n\r\n", reject(400)),
        case("other protocol name", "GET / FTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("space after version", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", reject(400)),
        case("extra word after version", "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", reject(400)),

        // ---- methods and tokens (RFC 9110 §9.1, §5.6.2) ----
        case("extension method", "M-SEARCH / HTTP/1.1\r\nHost: x\r\n\r\n", echo("M-SEARCH", "/", "")),
        case("method of every tchar", "!#$%&'*+-.^_`|~09AZaz / HTTP/1.1\r\nHost: x\r\n\r\n", echo("!#$%&'*+-.^_`|~09AZaz", "/", "")),
        case("lower-case method passed through", "get / HTTP/1.1\r\nHost: x\r\n\r\n", echo("get", "/", "")),
        case("DELETE with body", "DELETE /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", echo("DELETE", "/d", "").body("abc")),
        case("HEAD has no body", "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", Want::Head),
        case("method with @", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("method with (", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("empty method", " / HTTP/1.1\r\nHost: x\r\n\r\n", reject(400)),
        case("no spaces at all", "GARBAGE\r\n\r\n", reject(400)),

        // ---- Host (RFC 9112 §3.2, RFC 9110 §7.2) ----
        case("Host missing in 1.1", "GET / HTTP/1.1\r\n\r\n", reject(400)),
        case("Host twice", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", reject(400)),
        case("Host twice, same value", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", reject(400)),
        case("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", reject(400)),
        case("Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", reject(400)),
        case("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", reject(400)),
        case("Host with bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", reject(400)),
        case("Host with port only", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", reject(400)),
        case("Host empty is allowed", "GET / HTTP/1.1\r\nHost:\r\n\r\n", get("/").header("host", "")),
        case("Host IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", get("/").header("host", "[::1]:8080")),
        case("Host name and port", "GET / HTTP/1.1\r\nHost: Example.COM:80\r\n\r\n", get("/").header("host", "Example.COM:80")),

        // ---- field syntax (RFC 9112 §5, RFC 9110 §5.5) ----
        case("space before colon", get_with(b"X-A : 1\r\n"), reject(400)),
        case("tab before colon", get_with(b"X-A\t: 1\r\n"), reject(400)),
        case("space before colon on Host", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", reject(400)),
        case("obs-fold", get_with(b"X-A: 1\r\n 2\r\n"), reject(400)),
        case("obs-fold with tab", get_with(b"X-A: 1\r\n\t2\r\n"), reject(400)),
        case("whitespace line after request-line", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", reject(400)),
        case("bare CR in value", get_with(b"X-A: 1\r2\r\n"), reject(400)),
        case("bare CR ending a line", get_with(b"X-A: 1\r"), reject(400)),
        case("bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n", reject(400)),
        case("bare LF ending one field", get_with(b"X-A: 1\n"), reject(400)),
        case("bare LF ending the head", "GET / HTTP/1.1\r\nHost: x\r\n\n", reject(400)),
        case("NUL in value", get_with(b"X-A: a\x00b\r\n"), reject(400)),
        case("control byte in value", get_with(b"X-A: a\x01b\r\n"), reject(400)),
        case("DEL in value", get_with(b"X-A: a\x7fb\r\n"), reject(400)),
        case("vertical tab in value", get_with(b"X-A: a\x0bb\r\n"), reject(400)),
        case("NUL in name", get_with(b"X-\x00A: 1\r\n"), reject(400)),
        case("non-token name (parenthesis)", get_with(b"X(A): 1\r\n"), reject(400)),
        case("non-token name (space inside)", get_with(b"X A: 1\r\n"), reject(400)),
        case("non-token name (quote)", get_with(b"X\"A: 1\r\n"), reject(400)),
        case("non-ASCII name", get_with(b"X-\xc3\xa9: 1\r\n"), reject(400)),
        case("empty name", get_with(b": 1\r\n"), reject(400)),
        case("line without colon", get_with(b"X-A\r\n"), reject(400)),
        case("obs-text value is kept", get_with(b"X-A: caf\xe9\r\n"), get("/").header("x-a", "caf\u{fffd}")),
        case("tab inside value is kept", get_with(b"X-A: a\tb\r\n"), get("/").header("x-a", "a\tb")),
        case("OWS around value is trimmed", get_with(b"X-A: \t v w \t\r\n"), get("/").header("x-a", "v w")),
        case("empty value", get_with(b"X-Empty:\r\n"), get("/").header("x-empty", "")),
        case("repeated field is combined", get_with(b"X-A: 1\r\nx-a: 2\r\n"), get("/").header("x-a", "1, 2")),
        case("name case is folded", get_with(b"x-MiXeD: v\r\n"), get("/").header("x-mixed", "v")),
        case("underscore name is dropped", get_with(b"X_A: 1\r\n"), get("/").no_header("x-a")),

        // ---- limits (RFC 9112 §3, RFC 6585 §5, RFC 9110 §15.5.14) ----
        case("request line of 8192 bytes", long_target_ok, Want::Echo(Echoed { path: "", ..get("/") })),
        case("request line over 8192 bytes is 414", long_target_bad, reject(414)),
        case("100 header fields", many(100), get("/").header("x-h99", "99")),
        case("101 header fields is 431", many(101), reject(431)),
        case("field line of 8192 bytes", header_line_ok, get("/")),
        case("field line over 8192 bytes is 431", header_line_bad, reject(431)),
        case("head over 64 KiB is 431", big_head, reject(431)),
        case("Content-Length at --max-body", cl_at_max, posted(&at_max)),
        case("Content-Length over --max-body is 413", cl_over_max, reject(413)),
        case("chunked body at --max-body", chunked(&chunked_at_max), posted(&at_max)),
        case("chunked body over --max-body is 413", chunked(&chunked_over_max), reject(413)),

        // ---- Content-Length (RFC 9112 §6.2, §6.3; RFC 9110 §8.6) ----
        case("Content-Length", post(&["Content-Length: 5"], b"hello"), posted(b"hello").header("content-length", "5")),
        case("Content-Length zero", post(&["Content-Length: 0"], b""), posted(b"")),
        case("Content-Length leading zeros", post(&["Content-Length: 005"], b"hello"), posted(b"hello")),
        case("Content-Length trailing OWS", post(&["Content-Length: 5 \t"], b"hello"), posted(b"hello")),
        case("Content-Length twice, same value", post(&["Content-Length: 5", "Content-Length: 5"], b"hello"), posted(b"hello")),
        case("Content-Length on GET", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", get("/").body("hi")),
        case("no Content-Length on POST is an empty body", post(&[], b""), posted(b"")),
        case("Content-Length with plus sign", post(&["Content-Length: +5"], b"hello"), reject(400)),
        case("Content-Length negative", post(&["Content-Length: -5"], b"hello"), reject(400)),
        case("Content-Length with inner space", post(&["Content-Length: 1 2"], b"hello"), reject(400)),
        case("Content-Length list, same values", post(&["Content-Length: 5, 5"], b"hello"), reject(400)),
        case("Content-Length list, different values", post(&["Content-Length: 5, 6"], b"hello"), reject(400)),
        case("Content-Length twice, different values", post(&["Content-Length: 5", "Content-Length: 6"], b"hello"), reject(400)),
        case("Content-Length hex", post(&["Content-Length: 0x5"], b"hello"), reject(400)),
        case("Content-Length decimal point", post(&["Content-Length: 5.0"], b"hello"), reject(400)),
        case("Content-Length empty", post(&["Content-Length:"], b"hello"), reject(400)),
        case("Content-Length overflowing u64", post(&["Content-Length: 18446744073709551616"], b"hello"), reject(400)),
        case("Content-Length u64::MAX is 413", post(&["Content-Length: 18446744073709551615"], b"hello"), reject(413)),

        // ---- Transfer-Encoding (RFC 9112 §6.1, §6.3) ----
        case("chunked", chunked(b"5\r\nhello\r\n0\r\n\r\n"), posted(b"hello").header("transfer-encoding", "chunked").no_header("content-length")),
        case("chunked, two chunks", chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), posted(b"hello world")),
        case("Chunked in mixed case", post(&["Transfer-Encoding: ChUnKeD"], b"1\r\na\r\n0\r\n\r\n"), posted(b"a")),
        case("chunked with OWS", post(&["Transfer-Encoding: \t chunked \t"], b"1\r\na\r\n0\r\n\r\n"), posted(b"a")),
        case("chunked with empty list elements", post(&["Transfer-Encoding: , chunked,"], b"1\r\na\r\n0\r\n\r\n"), posted(b"a")),
        case("Transfer-Encoding and Content-Length", post(&["Transfer-Encoding: chunked", "Content-Length: 5"], b"0\r\n\r\n"), reject(400)),
        case("Content-Length then Transfer-Encoding", post(&["Content-Length: 5", "Transfer-Encoding: chunked"], b"0\r\n\r\n"), reject(400)),
        case("chunked not last", post(&["Transfer-Encoding: chunked, gzip"], b"0\r\n\r\n"), reject(400)),
        case("chunked twice in one field", post(&["Transfer-Encoding: chunked, chunked"], b"0\r\n\r\n"), reject(400)),
        case("chunked twice in two fields", post(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], b"0\r\n\r\n"), reject(400)),
        case("gzip then chunked is 501", post(&["Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"), reject(501)),
        case("identity is 501", post(&["Transfer-Encoding: identity"], b"0\r\n\r\n"), reject(501)),
        case("obfuscated xchunked is 501", post(&["Transfer-Encoding: xchunked"], b"0\r\n\r\n"), reject(501)),
        case("obfuscated chunked-false is 501", post(&["Transfer-Encoding: chunked-false"], b"0\r\n\r\n"), reject(501)),
        case("chunked with parameter is 501", post(&["Transfer-Encoding: chunked;q=1"], b"0\r\n\r\n"), reject(501)),
        case("quoted chunked is 501", post(&["Transfer-Encoding: \"chunked\""], b"0\r\n\r\n"), reject(501)),
        case("vertical tab before chunked", post(&["Transfer-Encoding: \x0bchunked"], b"0\r\n\r\n"), reject(400)),
        case("Transfer-Encoding empty", post(&["Transfer-Encoding:"], b"0\r\n\r\n"), reject(400)),
        case("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", reject(400)),
        case("Transfer-Encoding with space before colon", post(&["Transfer-Encoding : chunked"], b"0\r\n\r\n"), reject(400)),

        // ---- chunk syntax (RFC 9112 §7.1) ----
        case("chunk size upper-case hex", chunked(b"A\r\n0123456789\r\n0\r\n\r\n"), posted(b"0123456789")),
        case("chunk size leading zeros", chunked(b"0000000000000003\r\nabc\r\n000\r\n\r\n"), posted(b"abc")),
        case("chunk extensions", chunked(b"3;a=b;c\r\nabc\r\n0;last\r\n\r\n"), posted(b"abc")),
        case("chunk extension quoted", chunked(b"3;a=\"x;\\\"y\"\r\nabc\r\n0\r\n\r\n"), posted(b"abc")),
        case("chunk extension after BWS", chunked(b"3 ;a = b\r\nabc\r\n0\r\n\r\n"), posted(b"abc")),
        case("trailers are accepted and dropped", chunked(b"3\r\nabc\r\n0\r\nX-T: v\r\nY:\r\n\r\n"), posted(b"abc").no_header("x-t")),
        case("chunk data containing CRLF", chunked(b"3\r\na\r\n\r\n0\r\n\r\n"), posted(b"a\r\n")),
        case("chunk size of 17 hex digits", chunked(b"00000000000000001\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size overflowing u64", chunked(b"10000000000000000\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size u64::MAX is 413", chunked(b"FFFFFFFFFFFFFFFF\r\na\r\n0\r\n\r\n"), reject(413)),
        case("chunk size negative", chunked(b"-1\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size with plus", chunked(b"+1\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size 0x prefix", chunked(b"0x1\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size leading space", chunked(b" 1\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size trailing space", chunked(b"1 \r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size missing", chunked(b"\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size not hex", chunked(b"g\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk size line bare LF", chunked(b"1\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk data without CRLF", chunked(b"1\r\na0\r\n\r\n"), reject(400)),
        case("chunk data longer than its size", chunked(b"1\r\nabc\r\n0\r\n\r\n"), reject(400)),
        case("chunk data ended by bare LF", chunked(b"1\r\na\n0\r\n\r\n"), reject(400)),
        case("chunk extension with control byte", chunked(b"1;a\x01\r\na\r\n0\r\n\r\n"), reject(400)),
        case("chunk extension with bare LF", chunked(b"1;a\nb\r\na\r\n0\r\n\r\n"), reject(400)),
        case("trailer without colon", chunked(b"0\r\nX-T v\r\n\r\n"), reject(400)),
        case("trailer with empty name", chunked(b"0\r\n: v\r\n\r\n"), reject(400)),
        case("trailer obs-fold", chunked(b"0\r\nX-T: v\r\n w\r\n\r\n"), reject(400)),
        case("trailer with NUL", chunked(b"0\r\nX-T: a\x00b\r\n\r\n"), reject(400)),
        case("last chunk ended by bare LF", chunked(b"0\r\n\n"), reject(400)),

        // ---- pipelining and Expect (RFC 9112 §9.3.2, RFC 9110 §10.1.1) ----
        case("two requests in one write", [&b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"].concat(), get("/first")),
        case("body then pipelined request", post(&["Content-Length: 3"], b"abcGET /x HTTP/1.1\r\nHost: x\r\n\r\n"), posted(b"abc")),
        case("Expect 100-continue with the body already sent", post(&["Expect: 100-continue", "Content-Length: 3"], b"abc"), posted(b"abc")),
    ]
}

/// A PROXY protocol v2 header: signature, version 2 with `command`, `family`, the body.
fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// v2 addresses for TCP over IPv4: 192.0.2.1:56324 → 10.0.0.1:443.
const V2_INET: [u8; 12] = [192, 0, 2, 1, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb];

/// v2 addresses for TCP over IPv6: [2001:db8::1]:4660 → [::1]:80.
fn v2_inet6() -> Vec<u8> {
    let mut body = vec![0x20, 0x01, 0x0d, 0xb8];
    body.extend_from_slice(&[0; 11]);
    body.push(1);
    body.extend_from_slice(&[0; 15]);
    body.push(1);
    body.extend_from_slice(&[0x12, 0x34, 0, 80]);
    body
}

/// `header` then `GET /`.
fn proxied(header: impl AsRef<[u8]>) -> Vec<u8> {
    [header.as_ref(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"].concat()
}

/// PROXY protocol headers before a request, on a `--proxy-protocol` server.
#[rustfmt::skip]
fn proxy_table() -> Vec<Case> {
    let refused = || Want::Refused;
    let from = |addr: &'static str| get("/").remote_addr(addr);
    let v1_at_limit = format!("PROXY UNKNOWN {}\r\n", "x".repeat(107 - 16));
    let v1_over_limit = format!("PROXY UNKNOWN {}\r\n", "x".repeat(107 - 15));
    let with_tlvs = [&V2_INET[..], &[0x04, 0, 3, b'a', b'b', b'c', 0x01, 0, 0]].concat();
    vec![
        // ---- valid (HAProxy's spec, v1 §2.1, v2 §2.2) ----
        case("v1 TCP4", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n"), from("192.0.2.1")),
        case("v1 TCP6", proxied("PROXY TCP6 2001:db8::1 ::1 4660 80\r\n"), from("2001:db8::1")),
        case("v1 TCP4 extreme values", proxied("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n"), from("255.255.255.255")),
        case("v1 UNKNOWN keeps the socket's peer", proxied("PROXY UNKNOWN\r\n"), from("127.0.0.1")),
        case("v1 UNKNOWN ignores the rest of its line", proxied("PROXY UNKNOWN a b c\r\n"), from("127.0.0.1")),
        case("v1 of exactly 107 bytes", proxied(&v1_at_limit), from("127.0.0.1")),
        case("v2 PROXY TCP4", proxied(v2(1, 0x11, &V2_INET)), from("192.0.2.1")),
        case("v2 PROXY TCP6", proxied(v2(1, 0x21, &v2_inet6())), from("2001:db8::1")),
        case("v2 with TLVs", proxied(v2(1, 0x11, &with_tlvs)), from("192.0.2.1")),
        case("v2 LOCAL keeps the socket's peer", proxied(v2(0, 0x00, &[])), from("127.0.0.1")),
        case("v2 LOCAL ignores its addresses", proxied(v2(0, 0x11, &V2_INET)), from("127.0.0.1")),
        case("v2 PROXY UNSPEC keeps the socket's peer", proxied(v2(1, 0x00, &[])), from("127.0.0.1")),
        case("v2 PROXY UNIX keeps the socket's peer", proxied(v2(1, 0x31, &[0; 216])), from("127.0.0.1")),
        case("PROXY header twice: the second is no HTTP", proxied("PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n"), reject(400)),

        // ---- malformed: closed without an answer ----
        case("no PROXY header", proxied(""), refused()),
        case("v1 lower-case proxy", proxied("proxy TCP4 192.0.2.1 10.0.0.1 1 2\r\n"), refused()),
        case("v1 ended by bare LF", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n"), refused()),
        case("v1 ended by bare CR", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 1 2\rX"), refused()),
        case("v1 double space", proxied("PROXY TCP4  192.0.2.1 10.0.0.1 1 2\r\n"), refused()),
        case("v1 trailing space", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 1 2 \r\n"), refused()),
        case("v1 tab separator", proxied("PROXY TCP4\t192.0.2.1 10.0.0.1 1 2\r\n"), refused()),
        case("v1 missing port", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 1\r\n"), refused()),
        case("v1 TCP4 with an IPv6 address", proxied("PROXY TCP4 ::1 10.0.0.1 1 2\r\n"), refused()),
        case("v1 TCP6 with an IPv4 address", proxied("PROXY TCP6 192.0.2.1 ::1 1 2\r\n"), refused()),
        case("v1 address octet over 255", proxied("PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n"), refused()),
        case("v1 address with a leading zero", proxied("PROXY TCP4 192.0.02.1 10.0.0.1 1 2\r\n"), refused()),
        case("v1 port 65536", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 65536 2\r\n"), refused()),
        case("v1 port with a leading zero", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 080 2\r\n"), refused()),
        case("v1 port with a sign", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 +80 2\r\n"), refused()),
        case("v1 unknown protocol", proxied("PROXY UDP4 192.0.2.1 10.0.0.1 1 2\r\n"), refused()),
        case("v1 control byte", proxied("PROXY TCP4 192.0.2.1 10.0.0.1 1 2\x00\r\n"), refused()),
        case("v1 of 108 bytes", proxied(&v1_over_limit), refused()),
        case("v2 version 1", proxied({ let mut h = v2(1, 0x11, &V2_INET); h[12] = 0x11; h }), refused()),
        case("v2 command 2", proxied(v2(2, 0x11, &V2_INET)), refused()),
        case("v2 over UDP", proxied(v2(1, 0x12, &V2_INET)), refused()),
        case("v2 unknown family", proxied(v2(1, 0x41, &V2_INET)), refused()),
        case("v2 unknown transport", proxied(v2(1, 0x13, &V2_INET)), refused()),
        case("v2 TCP6 with IPv4-sized addresses", proxied(v2(1, 0x21, &V2_INET)), refused()),
        case("v2 TLV overrunning the header", proxied(v2(1, 0x11, &[&V2_INET[..], &[0x04, 0, 9, b'a']].concat())), refused()),
        case("v2 truncated TLV", proxied(v2(1, 0x11, &[&V2_INET[..], &[0x04, 0]].concat())), refused()),
        case("v2 damaged signature", proxied([&b"\r\n\r\n\0\r\nQUIT\r"[..], &[0x21, 0x11, 0, 12], &V2_INET].concat()), refused()),
    ]
}

/// Runs one case; `Err` describes what went wrong.
fn run(server: &Server, case: &Case) -> Result<(), String> {
    let mut conn = server.connect();
    // The server may reject and close before reading everything: ignore write errors.
    conn.send_lossy([&case.raw[..], AFTER].concat());
    if let Want::Refused = case.want {
        if conn.wait_closed(Duration::from_secs(5)).is_none() {
            return Err("connection still open".into());
        }
        if !conn.buffered().is_empty() {
            return Err(format!(
                "answered: {:?}",
                String::from_utf8_lossy(conn.buffered())
            ));
        }
        return Ok(());
    }
    let head = matches!(case.want, Want::Head);
    let resp = read_final(&mut conn, head).map_err(|e| format!("no response: {e}"))?;
    let keep_alive = match &case.want {
        Want::Reject(status) => {
            if resp.status != *status {
                return Err(format!(
                    "status {} {} (body {:?}), want {status}",
                    resp.status,
                    resp.reason,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
            if !resp.header_has_token("connection", "close") {
                return Err(format!("{status} without Connection: close"));
            }
            false
        }
        Want::Head => {
            if resp.status != 200 || !resp.body.is_empty() {
                return Err(format!("HEAD: {resp:?}"));
            }
            true
        }
        Want::Refused => unreachable!("handled above"),
        Want::Echo(want) => {
            if resp.status != 200 {
                return Err(format!(
                    "status {} {} (body {:?}), want 200",
                    resp.status,
                    resp.reason,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
            check_echo(&resp, want)?;
            want.keep_alive
        }
    };
    if keep_alive {
        let next = read_final(&mut conn, false)
            .map_err(|e| format!("pipelined request not answered: {e}"))?;
        if next.status != 200 {
            return Err(format!("pipelined request got {}", next.status));
        }
        let json = next.json();
        // "two requests in one write" / "body then pipelined request" put a request before AFTER.
        if json["path"] != "/after" && json["path"] != "/second" && json["path"] != "/x" {
            return Err(format!("pipelined response is for {}", json["path"]));
        }
    } else {
        if conn.wait_closed(Duration::from_secs(5)).is_none() {
            return Err("connection still open".into());
        }
        if !conn.buffered().is_empty() {
            return Err(format!(
                "bytes after the response (a later request was processed): {:?}",
                String::from_utf8_lossy(conn.buffered())
            ));
        }
    }
    Ok(())
}

fn check_echo(resp: &Response, want: &Echoed) -> Result<(), String> {
    let json = resp.json();
    let mut problems = Vec::new();
    let mut field = |name: &str, want: &str| {
        if json[name] != want {
            problems.push(format!("{name} = {}, want {want:?}", json[name]));
        }
    };
    field("method", want.method);
    if !want.path.is_empty() {
        field("path", want.path);
    }
    field("query", want.query);
    field("body_sha256", &sha256_hex(&want.body));
    if let Some(remote_addr) = want.remote_addr {
        field("remote_addr", remote_addr);
    }
    if json["body_len"] != want.body.len() {
        problems.push(format!(
            "body_len = {}, want {}",
            json["body_len"],
            want.body.len()
        ));
    }
    for (name, value) in &want.headers {
        let got = &json["headers"][*name];
        match value {
            Some(v) if got != v.as_str() => {
                problems.push(format!("header {name} = {got}, want {v:?}"))
            }
            None if !got.is_null() => problems.push(format!("header {name} = {got}, want absent")),
            _ => {}
        }
    }
    let closes = resp.header_has_token("connection", "close");
    if closes == want.keep_alive {
        problems.push(format!(
            "Connection: close is {closes}, keep-alive expected {}",
            want.keep_alive
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn conformance_table() {
    let cases = table();
    assert!(
        cases.len() >= 80,
        "the table has only {} cases",
        cases.len()
    );
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {:?}", c.name);
    }
    let server = sample_server("echo")
        .args(["--threads", "4", "--max-body", &MAX_BODY.to_string()])
        .start();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            run(&server, c).err().map(|e| {
                let shown = String::from_utf8_lossy(&c.raw[..c.raw.len().min(120)]).into_owned();
                format!("  {}: {e}\n      request {shown:?}", c.name)
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The server survived the whole table.
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn proxy_protocol_table() {
    let cases = proxy_table();
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {:?}", c.name);
    }
    let server = sample_server("echo")
        .args(["--threads", "4", "--proxy-protocol"])
        .start();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            run(&server, c).err().map(|e| {
                let shown = String::from_utf8_lossy(&c.raw[..c.raw.len().min(120)]).into_owned();
                format!("  {}: {e}\n      request {shown:?}", c.name)
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
