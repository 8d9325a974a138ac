//! Response bytes: status line, header block, framing choice, chunks, error responses, the
//! `100 Continue` interim response and the Date cache (RFC 9112 §4, §6, §7.1; RFC 9110 §6.6.1,
//! §8.6, §15). Stateless: which of these go out, and when, is decided by the encoder's state
//! machine (`encoder.rs`); the app's status line and fields are already in the output, written
//! and validated by `response_fields.rs`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::response_fields::ResponseFields;

/// The `Server` header value (RFC 9110 §10.2.4).
pub(crate) const SERVER_NAME: &str = concat!("webserver/", env!("CARGO_PKG_VERSION"));
pub(crate) const SERVER: &[u8] = SERVER_NAME.as_bytes();

/// Standard reason phrases (RFC 9110 §15, RFC 6585); "Unknown" otherwise.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients only).
    Chunked,
    /// Body ends when the connection closes (HTTP/1.0 client, unknown length).
    CloseDelimited,
    /// No body: HEAD, 1xx, 204, 304 (RFC 9110 §6.4.1).
    NoBody,
}

/// Picks the framing: no body where the status or HEAD forbid one, the app's Content-Length
/// when it gave one, else chunked for 1.1 and close-delimited for 1.0 (RFC 9112 §6.3, §7).
pub(crate) fn choose_framing(
    version_minor: u8,
    is_head: bool,
    status: u16,
    app_content_length: Option<u64>,
) -> Framing {
    if is_head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::NoBody
    } else if let Some(n) = app_content_length {
        Framing::Length(n)
    } else if version_minor >= 1 {
        Framing::Chunked
    } else {
        Framing::CloseDelimited
    }
}

/// What [`encode_head`] needs to know besides the app's fields.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// The request's minor version (the status line always says HTTP/1.1, RFC 9110 §6.2).
    pub version_minor: u8,
    pub status: u16,
    /// Forced to false for [`Framing::CloseDelimited`].
    pub keep_alive: bool,
    pub framing: Framing,
    /// With [`Framing::NoBody`]: the Content-Length a GET would have had (HEAD, 304),
    /// never sent for 1xx and 204 (RFC 9110 §8.6).
    pub content_length_for_head: Option<u64>,
}

impl Head {
    /// The Content-Length field the head carries, if any.
    pub(crate) fn content_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::NoBody if self.status >= 200 && self.status != 204 => {
                self.content_length_for_head
            }
            Framing::NoBody | Framing::Chunked | Framing::CloseDelimited => None,
        }
    }
}

/// Completes the head of an app's response after its status line and fields, which
/// [`ResponseFields::set`] wrote (validated) at the end of `out`: Content-Length or
/// Transfer-Encoding as `head.framing` says, Connection, Date and Server (the last two only if
/// the app did not send them), and the empty line.
pub(crate) fn finish_head(out: &mut Vec<u8>, head: &Head, fields: &ResponseFields, date: &[u8]) {
    let (has_date, has_server) = fields.has_date_and_server();
    write_tail(out, head, has_date, has_server, date);
}

/// The head of a response the server makes itself (a `--static` file), with `headers` the
/// caller vouches for (valid names and values), in their order.
pub(crate) fn encode_own_head<'h>(
    out: &mut Vec<u8>,
    head: &Head,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    date: &[u8],
) {
    write_status_line(out, head.status, b"");
    let (mut has_date, mut has_server) = (false, false);
    for (name, value) in headers {
        has_date |= name.eq_ignore_ascii_case(b"date");
        has_server |= name.eq_ignore_ascii_case(b"server");
        header(out, name, value);
    }
    write_tail(out, head, has_date, has_server, date);
}

/// `HTTP/1.1 {status} {reason}\r\n`, the standard reason if `reason` is empty.
pub(super) fn write_status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    // Most responses: one constant copied, no phrase looked up, no digit computed.
    if status == 200 && reason.is_empty() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    let reason = match reason {
        [] => reason_phrase(status).as_bytes(),
        _ => reason,
    };
    out.reserve(b"HTTP/1.1 200 ".len() + reason.len() + 2);
    if (100..1000).contains(&status) {
        // Every status sent has three digits (RFC 9110 §15): no division loop for them, and a
        // start of fixed length, copied without a call.
        let mut start = *b"HTTP/1.1 200 ";
        start[9] = b'0' + (status / 100) as u8;
        start[10] = b'0' + (status / 10 % 10) as u8;
        start[11] = b'0' + (status % 10) as u8;
        out.extend_from_slice(&start);
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        write_dec(out, u64::from(status));
        out.push(b' ');
    }
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// What follows the caller's header fields: framing, Connection, Date and Server unless the
/// caller sent them, and the empty line.
fn write_tail(out: &mut Vec<u8>, head: &Head, has_date: bool, has_server: bool, date: &[u8]) {
    let keep_alive = head.keep_alive && head.framing != Framing::CloseDelimited;
    if head.framing == Framing::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else if let Some(n) = head.content_length() {
        content_length(out, n);
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if head.version_minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if let (false, false, Ok(date)) = (has_date, has_server, <&[u8; 29]>::try_from(date)) {
        // The usual end of a head, in one piece: a copy into a template, one append.
        let mut end = DATE_SERVER_END;
        end[DATE_AT..DATE_AT + 29].copy_from_slice(date);
        out.extend_from_slice(&end);
        return;
    }
    if !has_date {
        header(out, b"Date", date);
    }
    if !has_server {
        header(out, b"Server", SERVER);
    }
    out.extend_from_slice(b"\r\n");
}

/// Where the date goes in [`DATE_SERVER_END`].
const DATE_AT: usize = b"Date: ".len();

/// `Date: {29 blanks}\r\nServer: {SERVER}\r\n\r\n`, spelled at compile time.
const DATE_SERVER_END: [u8; DATE_AT + 29 + 10 + SERVER.len() + 4] = {
    let mut end = [b' '; DATE_AT + 29 + 10 + SERVER.len() + 4];
    let mut at = 0;
    let parts: [&[u8]; 5] = [b"Date: ", &[b' '; 29], b"\r\nServer: ", SERVER, b"\r\n\r\n"];
    let mut p = 0;
    while p < parts.len() {
        let mut i = 0;
        while i < parts[p].len() {
            end[at] = parts[p][i];
            at += 1;
            i += 1;
        }
        p += 1;
    }
    end
};

/// `100 Continue` interim response (RFC 9110 §10.1.1, §15.2.1).
pub(crate) fn encode_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// One chunk: `{hex}\r\n{data}\r\n` (RFC 9112 §7.1). Empty data writes nothing, since an
/// empty chunk would be the last-chunk.
pub(crate) fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_hex(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// last-chunk with no trailers: `0\r\n\r\n`.
pub(crate) fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// A complete error response with body `"<status> <reason>\n"` and `Connection: close`.
pub(crate) fn encode_error(out: &mut Vec<u8>, status: u16, date: &[u8]) {
    encode_error_with(out, status, false, true, date);
}

/// An error response that may keep the connection (an app failure after a fully read request)
/// and may omit the body (the answer to HEAD, RFC 9110 §9.3.2).
pub(crate) fn encode_error_with(
    out: &mut Vec<u8>,
    status: u16,
    keep_alive: bool,
    with_body: bool,
    date: &[u8],
) {
    let reason = reason_phrase(status).as_bytes();
    let digits = if status >= 10_000 {
        5
    } else if status >= 1000 {
        4
    } else if status >= 100 {
        3
    } else if status >= 10 {
        2
    } else {
        1
    };
    let body_len = digits + 1 + reason.len() + 1;
    let head = Head {
        version_minor: 1,
        status,
        keep_alive,
        framing: if with_body {
            Framing::Length(body_len as u64)
        } else {
            Framing::NoBody
        },
        content_length_for_head: (!with_body).then_some(body_len as u64),
    };
    let ct: (&[u8], &[u8]) = (b"Content-Type", b"text/plain; charset=utf-8");
    // The server answers 426 only to a WebSocket handshake of another version: RFC 6455 §4.4
    // names the version it speaks.
    let version: (&[u8], &[u8]) = (b"Sec-WebSocket-Version", b"13");
    let fields = std::iter::once(ct).chain((status == 426).then_some(version));
    encode_own_head(out, &head, fields, date);
    if !with_body {
        return;
    }
    write_dec(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.push(b'\n');
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length: {n}\r\n`, spelled on the stack and appended in one piece.
fn content_length(out: &mut Vec<u8>, mut n: u64) {
    const NAME: &[u8; 16] = b"Content-Length: ";
    // The digits right-aligned before the CRLF, the name right before them: every copy has a
    // fixed length, so none is a call.
    let mut line = *b"................................................\r\n";
    let mut i = line.len() - 2;
    loop {
        i -= 1; // at most 20 digits for u64, after room for the name
        line[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = i - NAME.len();
    line[start..i].copy_from_slice(NAME);
    out.extend_from_slice(&line[start..]);
}

/// Decimal without allocation.
fn write_dec(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(&mut [0u8; 20], n));
}

/// `n` in decimal, spelled at the end of `buf` (a `u64` has at most 20 digits).
pub(crate) fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1; // at most 20 digits for u64, so i never underflows
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// Lower-case hex without allocation.
fn write_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1; // at most 16 hex digits for u64
        buf[i] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// IMF-fixdate (RFC 9110 §5.6.7) for the `Date` header (§6.6.1), formatted at most once per
/// second. Meant to live per thread (no locking).
#[derive(Debug, Clone)]
pub(crate) struct DateCache {
    /// `buf` spells the second `[from, until)`: a `now` inside it is two comparisons, not a
    /// subtraction from the epoch on every request.
    from: SystemTime,
    until: SystemTime,
    buf: [u8; 29],
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            // An empty second: the first call formats.
            from: UNIX_EPOCH,
            until: UNIX_EPOCH,
            buf: [b' '; 29],
        }
    }
}

impl DateCache {
    /// The current date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (always 29 bytes).
    pub(crate) fn get(&mut self) -> &[u8] {
        self.at(SystemTime::now())
    }

    /// The date of `now` (a caller that already knows the time saves a clock read).
    pub(crate) fn at(&mut self, now: SystemTime) -> &[u8] {
        if !(self.from <= now && now < self.until) {
            let second = now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            // Formatted straight into the buffer: `fmt_http_date` would allocate a String once
            // a second, on the request path.
            let mut dst = &mut self.buf[..];
            if let Err(e) = write!(dst, "{}", httpdate::HttpDate::from(now)) {
                log::debug!("cannot format the Date header: {e}");
            }
            self.from = UNIX_EPOCH + Duration::from_secs(second);
            self.until = self.from + Duration::from_secs(1);
        }
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn head(version_minor: u8, status: u16, keep_alive: bool, framing: Framing) -> Head {
        Head {
            version_minor,
            status,
            keep_alive,
            framing,
            content_length_for_head: None,
        }
    }

    fn enc(h: &Head, reason: &[u8], hdrs: &[(&[u8], &[u8])]) -> String {
        let mut fields = ResponseFields::default();
        let mut out = Vec::new();
        fields
            .set(&mut out, h.status, reason, hdrs.iter().copied())
            .unwrap();
        finish_head(&mut out, h, &fields, D);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn golden_heads() {
        let srv = format!("Server: webserver/{}\r\n", env!("CARGO_PKG_VERSION"));
        let date = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
        // The app's Content-Length is not among its fields: framing decides the one sent.
        let ct: Hdrs = &[(b"Content-Type", b"text/plain"), (b"content-length", b"99")];
        type Hdrs = &'static [(&'static [u8], &'static [u8])];
        let fine: &[u8] = b"Fine";
        let cases: Vec<(Head, &[u8], Hdrs, String)> = vec![
            (head(1, 200, true, Framing::Length(5)), b"", ct, format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n{date}{srv}\r\n")),
            (head(1, 200, true, Framing::Chunked), b"", &[], format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{date}{srv}\r\n")),
            (head(1, 404, false, Framing::Length(0)), b"", &[], format!("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n{date}{srv}\r\n")),
            (head(0, 200, true, Framing::Length(3)), b"", &[], format!("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n{date}{srv}\r\n")),
            (head(0, 200, true, Framing::CloseDelimited), b"", &[], format!("HTTP/1.1 200 OK\r\nConnection: close\r\n{date}{srv}\r\n")),
            (head(1, 204, true, Framing::NoBody), b"", &[], format!("HTTP/1.1 204 No Content\r\n{date}{srv}\r\n")),
            (Head { content_length_for_head: Some(42), ..head(1, 200, true, Framing::NoBody) }, b"", &[], format!("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n{date}{srv}\r\n")),
            (Head { content_length_for_head: Some(42), ..head(1, 204, true, Framing::NoBody) }, b"", &[], format!("HTTP/1.1 204 No Content\r\n{date}{srv}\r\n")),
            (head(1, 299, true, Framing::Length(0)), fine, &[(b"Date", b"x"), (b"Server", b"y")], "HTTP/1.1 299 Fine\r\nDate: x\r\nServer: y\r\nContent-Length: 0\r\n\r\n".to_string()),
            (head(1, 599, true, Framing::Length(0)), b"", &[], format!("HTTP/1.1 599 Unknown\r\nContent-Length: 0\r\n{date}{srv}\r\n")),
            // A 200 with the app's own phrase is not the constant line; a `date` of the app's in
            // any case keeps the server's out, and its `Server` still goes in.
            (head(1, 200, true, Framing::Length(0)), fine, &[(b"date", b"x")], format!("HTTP/1.1 200 Fine\r\ndate: x\r\nContent-Length: 0\r\n{srv}\r\n")),
        ];
        for (h, reason, hdrs, want) in cases {
            assert_eq!(enc(&h, reason, hdrs), want);
        }
    }

    #[test]
    fn error_and_chunks() {
        let mut out = Vec::new();
        encode_error(&mut out, 431, D);
        let want = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 36\r\nConnection: close\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: webserver/{}\r\n\r\n431 Request Header Fields Too Large\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);

        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        encode_chunk(&mut out, b"hello");
        encode_chunk(&mut out, &[b'x'; 255]);
        encode_last_chunk(&mut out);
        let mut want = b"5\r\nhello\r\nff\r\n".to_vec();
        want.extend_from_slice(&[b'x'; 255]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, want);

        for (n, d, h) in [
            (0u64, "0", "0"),
            (9, "9", "9"),
            (10, "10", "a"),
            (u64::MAX, "18446744073709551615", "ffffffffffffffff"),
        ] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            write_dec(&mut a, n);
            write_hex(&mut b, n);
            assert_eq!((a.as_slice(), b.as_slice()), (d.as_bytes(), h.as_bytes()));
            let mut c = Vec::new();
            content_length(&mut c, n);
            assert_eq!(c, format!("Content-Length: {d}\r\n").as_bytes());
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(413), "Content Too Large");
        assert_eq!(reason_phrase(999), "Unknown");
        assert_eq!(choose_framing(1, true, 200, Some(5)), Framing::NoBody);
        assert_eq!(choose_framing(1, false, 304, None), Framing::NoBody);
        assert_eq!(choose_framing(1, false, 101, None), Framing::NoBody);
        assert_eq!(choose_framing(0, false, 200, Some(5)), Framing::Length(5));
        assert_eq!(choose_framing(1, false, 200, None), Framing::Chunked);
        assert_eq!(choose_framing(0, false, 200, None), Framing::CloseDelimited);
        let mut out = Vec::new();
        encode_continue(&mut out);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        let mut dc = DateCache::default();
        let t = UNIX_EPOCH + Duration::from_millis(784_111_777_999);
        assert_eq!(dc.at(t), D);
        assert_eq!(dc.at(t - Duration::from_millis(999)), D);
        assert_eq!(
            dc.at(t + Duration::from_millis(1)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
        assert_eq!(
            dc.at(t - Duration::from_secs(1)),
            b"Sun, 06 Nov 1994 08:49:36 GMT"
        );
        let d = dc.get().to_vec();
        assert_eq!(d.len(), 29);
        assert!(
            d.ends_with(b" GMT")
                && httpdate::parse_http_date(std::str::from_utf8(&d).unwrap()).is_ok()
        );
    }
}
