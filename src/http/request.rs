//! Request head: parsed in one pass with `httparse` when it arrived whole and clean
//! ([`find_head`], [`parse_whole`]), else its end and line endings found by the head scanner
//! (`scan.rs`) and its syntax parsed once the scanner found it complete; then the RFC 9112 /
//! RFC 9110 rules `httparse` leaves to us (version here; Host, framing, Connection and Expect in
//! `fields.rs`). The parsed head ([`RequestHead`]) is byte ranges into the connection's input.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::error::ParseError;
use super::fields::{interpret, BodyFraming};
use super::grammar::trim_ows;
use super::scan::{HeadEnd, HeadScanner, Limits};

/// Hard cap on header fields per request: the `httparse` header array lives on the stack.
pub(crate) const MAX_HEADERS_CAP: usize = 100;

/// A parsed request head as byte ranges into the buffer given to [`parse_scanned`]. Reused across
/// requests of a connection: [`RequestHead::clear`] keeps the `headers` capacity.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub method: Range<usize>,
    pub target: Range<usize>,
    /// 0 or 1 (`HTTP/1.0`, `HTTP/1.1`).
    pub version_minor: u8,
    /// (name, value) ranges; values are trimmed of leading/trailing SP and HTAB.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// An upgrade request (`fields::FieldFacts::upgrade`).
    pub upgrade: bool,
    /// Bytes of the head, leading empty lines and the final CRLFCRLF included.
    pub head_len: usize,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: 0..0,
            target: 0..0,
            version_minor: 1,
            headers: Vec::with_capacity(32),
            framing: BodyFraming::None,
            keep_alive: false,
            expect_continue: false,
            upgrade: false,
            head_len: 0,
        }
    }
}

impl RequestHead {
    /// Resets every field; keeps the header vector's capacity.
    pub(crate) fn clear(&mut self) {
        self.method = 0..0;
        self.target = 0..0;
        self.version_minor = 1;
        self.headers.clear();
        self.framing = BodyFraming::None;
        self.keep_alive = false;
        self.expect_continue = false;
        self.upgrade = false;
        self.head_len = 0;
    }

    /// The method bytes (empty if `buf` is not the parsed buffer).
    pub(crate) fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.method.clone()).unwrap_or_default()
    }

    /// The request-target bytes.
    pub(crate) fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.target.clone()).unwrap_or_default()
    }

    /// Iterates over (name, value) pairs in request order.
    pub(crate) fn header_iter<'s, 'b: 's>(
        &'s self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + Clone + 's {
        self.headers.iter().map(move |(n, v)| {
            (
                buf.get(n.clone()).unwrap_or_default(),
                buf.get(v.clone()).unwrap_or_default(),
            )
        })
    }
}

/// Parses and validates a request head at the start of `buf` into `head`, for callers that
/// have the whole input at once (the connection resumes a `HeadScanner` as bytes arrive and
/// calls [`parse_scanned`] once).
///
/// `Ok(None)`: the head is incomplete and no limit is exceeded yet (read more).
/// `Ok(Some(head_len))`: complete; the body (or next request) starts at `buf[head_len..]`.
/// Limits are enforced on incomplete input too, so a caller never buffers beyond them.
/// The tests and the fuzz targets' self-checks compare the connection's way against this one.
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_head(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<Option<usize>, ParseError> {
    head.clear();
    match super::scan::HeadScanner::default().scan(buf, limits)? {
        Some(end) => parse_scanned(buf, &end, limits, head).map(Some),
        None => Ok(None),
    }
}

/// Parses and validates the head that a `HeadScanner` found complete at the start of `buf`
/// into `head`; returns its length. Runs once per head, however many reads brought it in.
pub(crate) fn parse_scanned(
    buf: &[u8],
    end: &HeadEnd,
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<usize, ParseError> {
    head.clear();
    let head_len = end.len;
    let bytes = buf
        .get(..head_len)
        .ok_or(ParseError::Malformed("internal length"))?;
    check_version(bytes.get(end.request_line.clone()).unwrap_or_default())?;

    // Left uninitialised: httparse writes the headers it finds, so a request of a few headers
    // does not pay for zeroing all MAX_HEADERS_CAP slots (3.2 KB) first.
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let n = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(bytes, storage.get_mut(..n).unwrap_or_default()) {
        Ok(httparse::Status::Complete(len)) if len == head_len => {}
        Ok(_) => return Err(ParseError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(ParseError::Malformed("invalid HTTP version")),
        Err(httparse::Error::Token) => {
            return Err(ParseError::Malformed("invalid method or request-target"))
        }
        Err(httparse::Error::HeaderName) => {
            return Err(ParseError::Malformed("invalid header name"))
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(ParseError::Malformed("invalid header value"))
        }
        Err(_) => return Err(ParseError::Malformed("invalid request line")),
    }
    fill(buf, &req, head_len, head)
}

/// What the connection found at the start of its unconsumed input ([`find_head`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Parsed into the caller's `RequestHead` in one pass: a head of this many bytes.
    Parsed(usize),
    /// The scanner found a complete head; [`parse_scanned`] parses it (after the caller looked
    /// whether it is HTTP/2's preface, which no HTTP/1 parse accepts).
    Scanned(HeadEnd),
}

/// One step of a connection's search for its next head in `input` (its unconsumed bytes,
/// which grow between calls; `scanner` is reset when a head is consumed). `Ok(None)`: read more.
///
/// A head that arrived whole and is clean is parsed in one pass ([`parse_whole`]), which is
/// every head of a well-behaved client. Anything else goes to the scanner, which resumes where
/// it stopped, and decides exactly as before; the one-pass parse is tried only while the
/// scanner has looked at nothing of this head (at most a lone CR of it), so a client dribbling
/// its head a byte at a time still costs O(n): one short attempt, then the scanner.
pub(crate) fn find_head(
    scanner: &mut HeadScanner,
    input: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<Option<Found>, ParseError> {
    if !input.is_empty() && scanner.is_fresh() {
        if let Some(parsed) = parse_whole(input, limits, head) {
            return parsed.map(|len| Some(Found::Parsed(len)));
        }
    }
    scanner
        .scan(input, limits)
        .map(|end| end.map(Found::Scanned))
}

/// Parses the head at the start of `buf` into `head` in one pass when it is complete and clean:
/// every line ends in CRLF and is within its limit, the head within `max_head`, and `httparse`
/// accepts it. On such a head the scanner and [`parse_scanned`] decide exactly this (the same
/// length, fields and errors). `None`: not decided here (incomplete, or something the scanner
/// must judge: a bare LF, a broken limit, a syntax error), so the caller scans.
///
/// `httparse` finds the lines; its slices give each line's start, and the two bytes before the
/// next line's start must be its CRLF (a CR inside a line is refused by `httparse`), so nothing
/// walks the head a second time.
pub(crate) fn parse_whole(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Option<Result<usize, ParseError>> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let n = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let Ok(httparse::Status::Complete(head_len)) =
        req.parse_with_uninit_headers(buf, storage.get_mut(..n)?)
    else {
        return None;
    };
    if head_len > limits.max_head || buf.get(head_len.checked_sub(2)?..head_len)? != b"\r\n" {
        return None;
    }
    let first = range_of(buf, req.method?.as_bytes()).start;
    // Leading empty lines: CRLFs only (httparse also skips bare LFs).
    if !buf.get(..first)?.chunks(2).all(|pair| pair == b"\r\n") {
        return None;
    }
    let starts = req
        .headers
        .iter()
        .map(|h| range_of(buf, h.name.as_bytes()).start)
        .chain(std::iter::once(head_len - 2));
    let (mut line, mut limit) = (first, limits.max_request_line);
    for next in starts {
        let eol = next.checked_sub(2)?;
        if eol < line || eol - line > limit || buf.get(eol..next)? != b"\r\n" {
            return None;
        }
        (line, limit) = (next, limits.max_header_line);
    }
    Some(fill(buf, &req, head_len, head))
}

/// Records what `httparse` parsed from `buf` into `head`, then interprets its fields.
fn fill(
    buf: &[u8],
    req: &httparse::Request<'_, '_>,
    head_len: usize,
    head: &mut RequestHead,
) -> Result<usize, ParseError> {
    head.clear();
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(ParseError::Malformed("incomplete request line"));
    };
    head.method = range_of(buf, method.as_bytes());
    head.target = range_of(buf, path.as_bytes());
    head.version_minor = version;
    head.head_len = head_len;
    for h in req.headers.iter() {
        let value = trim_ows(h.value);
        head.headers
            .push((range_of(buf, h.name.as_bytes()), range_of(buf, value)));
    }
    let facts = interpret(head.version_minor, head.header_iter(buf))?;
    head.framing = facts.framing;
    head.keep_alive = facts.keep_alive;
    head.expect_continue = facts.expect_continue;
    head.upgrade = facts.upgrade;
    Ok(head_len)
}

/// The first value of header `name` (ASCII case-insensitive), trimmed.
#[cfg(test)]
pub(crate) fn header_value<'b>(buf: &'b [u8], head: &RequestHead, name: &str) -> Option<&'b [u8]> {
    head.header_iter(buf)
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v)
}

/// RFC 9112 §2.3: a well-formed but unsupported major/minor version gets 505, not 400.
/// We accept "HTTP/" DIGIT+ ["." DIGIT+] as "well-formed" so `HTTP/2` and `HTTP/2.0` both get 505.
fn check_version(request_line: &[u8]) -> Result<(), ParseError> {
    let Some(sp) = request_line.iter().rposition(|&b| b == b' ') else {
        return Ok(()); // httparse reports the syntax error
    };
    let version = request_line.get(sp + 1..).unwrap_or_default();
    if version == b"HTTP/1.1" || version == b"HTTP/1.0" {
        return Ok(());
    }
    let Some(num) = version.strip_prefix(b"HTTP/") else {
        return Ok(());
    };
    let mut parts = num.splitn(2, |&b| b == b'.');
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    let major_ok = parts.next().is_some_and(digits);
    let minor_ok = match parts.next() {
        Some(p) => digits(p),
        None => true,
    };
    if major_ok && minor_ok {
        Err(ParseError::VersionNotSupported)
    } else {
        Ok(())
    }
}

/// The range `part` occupies inside `buf`. `httparse` only returns sub-slices of its input, so
/// the subtraction is exact; `saturating`/clamping keep a bug from ever panicking.
fn range_of(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize)
        .saturating_sub(buf.as_ptr() as usize)
        .min(buf.len());
    start..start.saturating_add(part.len()).min(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<usize>, ParseError> {
        let mut head = RequestHead::default();
        parse_head(s, &Limits::default(), &mut head)
    }

    fn status(s: &[u8]) -> u16 {
        match parse(s) {
            Ok(r) => panic!(
                "expected error for {:?}, got {r:?}",
                String::from_utf8_lossy(s)
            ),
            Err(e) => e.status(),
        }
    }

    #[test]
    fn valid_heads() {
        let buf = b"\r\n\r\nPOST /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nX-A:  v w \t\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\nhelloGET";
        let mut head = RequestHead::default();
        let n = parse_head(buf, &Limits::default(), &mut head)
            .unwrap()
            .unwrap();
        assert_eq!(&buf[n..], b"helloGET");
        assert_eq!(head.head_len, n);
        assert_eq!(head.method(buf), b"POST");
        assert_eq!(head.target(buf), b"/a?b=c");
        assert_eq!(head.version_minor, 1);
        assert_eq!(head.framing, BodyFraming::Length(5));
        assert!(head.keep_alive && head.expect_continue);
        assert_eq!(header_value(buf, &head, "x-a"), Some(&b"v w"[..]));
        assert_eq!(
            header_value(buf, &head, "HOST"),
            Some(&b"example.com:8080"[..])
        );
        assert_eq!(header_value(buf, &head, "missing"), None);
        assert_eq!(head.headers.len(), 4);
        let cap = head.headers.capacity();
        head.clear();
        assert!(head.headers.is_empty() && head.headers.capacity() == cap);
    }

    #[test]
    fn malformed_table() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400), // space before colon
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400), // obs-fold
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400), // ws after request-line
            (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400), // bare CR
            (b"GET / HTTP/1.1\nHost: a\n\n", 400),        // bare LF
            (b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400), // NUL
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400), // empty name
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", 400),   // no colon
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),        // method not token
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
            (b"GET /\r\n\r\n", 400), // HTTP/0.9
            (b"garbage\r\n\r\n", 400),
            (b"GET / FTP/1.1\r\n\r\n", 400),
            (b"GET / http/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.x\r\n\r\n", 400),
            (b"GET / HTTP/1.2\r\n\r\n", 505),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / HTTP/2\r\n\r\n", 505),
            (b"GET / HTTP/0.9\r\n\r\n", 505),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ];
        for (input, want) in cases {
            assert_eq!(status(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn incomplete_and_limits() {
        let full = b"\r\nGET /x HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(parse(full), Ok(Some(full.len())));

        let small = Limits {
            max_request_line: 20,
            max_headers: 2,
            max_header_line: 10,
            max_head: 60,
        };
        let run =
            |s: &[u8]| parse_head(s, &small, &mut RequestHead::default()).map_err(|e| e.status());
        assert_eq!(run(b"GET /aaaaaaaaaaaaaaaaaaaa"), Err(414)); // incomplete, already too long
        assert_eq!(run(b"GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\n"), Err(414));
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Some(27)));
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: abcd"), Ok(None)); // exactly 10: fine
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: abcde"), Err(431)); // partial field line > 10
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
            Err(431)
        ); // 3 > 2 fields
        assert_eq!(
            run(&[
                &b"GET / HTTP/1.1\r\nHost: a\r\n"[..],
                &[b"A: 1\r\n".as_slice(); 5].concat()
            ]
            .concat()),
            Ok(None)
        ); // 55 bytes
        assert_eq!(
            run(&[
                &b"GET / HTTP/1.1\r\nHost: a\r\n"[..],
                &[b"A: 1\r\n".as_slice(); 6].concat()
            ]
            .concat()),
            Err(431)
        ); // 61 > 60
        assert_eq!(run(&[b"\r\n".as_slice(); 31].concat()), Err(431)); // endless empty lines
        assert_eq!(run(&[b"\r\n".as_slice(); 30].concat()), Ok(None));

        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for _ in 0..100 {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 431);
    }

    /// Found by fuzzing: the decision must not depend on where the input was cut.
    #[test]
    fn limits_decided_by_byte_position() {
        let small = |max_request_line| Limits {
            max_request_line,
            max_headers: 10,
            max_header_line: 16,
            max_head: 40,
        };
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Aaaa: bbbbb";
        assert_eq!(head.len(), 38);
        let long_line = [&b"GET /"[..], &[b'a'; 50], b" HTTP/1.1\n"].concat();
        let cases: &[(Vec<u8>, usize, ParseError)] = &[
            // the field line crosses max_head, then a bare LF
            (
                [&head[..], b"ccc\n\r\n"].concat(),
                20,
                ParseError::HeadTooLarge,
            ),
            // a CR right at max_head, then a bare CR
            (
                [&head[..], b"cc\rx\r\n"].concat(),
                20,
                ParseError::HeadTooLarge,
            ),
            // max_head broken before the field-line limit
            (
                [&head[..], b"cccccc\r\n"].concat(),
                20,
                ParseError::HeadTooLarge,
            ),
            // the request-line limit broken before max_head, then a bare LF
            (long_line.clone(), 20, ParseError::UriTooLong),
            // max_head broken before the request-line limit
            (long_line, 100, ParseError::HeadTooLarge),
        ];
        for (input, line_limit, want) in cases {
            let limits = small(*line_limit);
            let name = String::from_utf8_lossy(input);
            let whole = parse_head(input, &limits, &mut RequestHead::default());
            assert_eq!(whole, Err(*want), "{name:?}");
            for cut in 0..input.len() {
                let got = parse_head(&input[..cut], &limits, &mut RequestHead::default());
                assert!(
                    got == Ok(None) || got == whole,
                    "{name:?} cut {cut}: {got:?}"
                );
            }
        }
    }

    /// The one-pass parse decides the clean heads a client sends whole, leaves every other
    /// head to the scanner, and where it decides, decides as the scanner and parser do (on
    /// every prefix of every head of the tables above, with default and small limits).
    #[test]
    fn one_pass_parse_agrees_with_scan_then_parse() {
        let clean: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\r\n\r\nGET /x?y HTTP/1.0\r\n\r\nBODY",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX: \t b \r\n\r\nhello",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", // decided: 400
        ];
        let left: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n",           // incomplete
            b"GET / HTTP/1.1\nHost: a\n\n",             // bare LF
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",         // bare LF ending a field line
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",         // bare LF ending the head
            b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",     // bare LF before the request-line
            b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", // the same after a CRLF
            b"GET / HTTP/2.0\r\n\r\n",                  // 505 is the scanner's path
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",        // HTTP/2's preface
        ];
        let small = Limits {
            max_request_line: 20,
            max_headers: 2,
            max_header_line: 10,
            max_head: 60,
        };
        let mut head = RequestHead::default();
        for input in clean {
            assert!(parse_whole(input, &Limits::default(), &mut head).is_some());
        }
        for input in left {
            assert!(parse_whole(input, &Limits::default(), &mut head).is_none());
        }
        // Each limit broken by a head that is otherwise clean: left to the scanner.
        for input in [
            b"GET /aaaaaaa HTTP/1.1\r\n\r\n".to_vec(), // request-line 21 > 20
            b"GET / HTTP/1.1\r\nHost: abcde\r\n\r\n".to_vec(), // field line 11 > 10
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n".to_vec(), // 3 fields > 2
            [&b"\r\n".repeat(20)[..], b"GET / HTTP/1.1\r\nA: 1\r\n\r\n"].concat(), // 64 > 60
        ] {
            assert!(parse_whole(&input, &small, &mut head).is_none());
            assert!(parse_head(&input, &small, &mut head).is_err());
        }
        let within = b"GET /aaaaaa HTTP/1.1\r\nHost: abcd\r\n\r\n"; // 20 and 10
        assert_eq!(
            parse_whole(within, &small, &mut head),
            Some(Ok(within.len()))
        );
        let mut inputs: Vec<&[u8]> = clean.iter().chain(left).copied().collect();
        inputs.push(within);
        for limits in [Limits::default(), small] {
            for input in &inputs {
                for cut in 0..=input.len() {
                    crate::http::selfcheck::check_head_splits(&input[..cut], &[], &limits);
                }
            }
        }
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        let alphabet = b"\r\n :/GET1.HTP\x00\xff";
        let mut head = RequestHead::default();
        let mut seed = 12345u32;
        for _ in 0..20000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                v.push(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            let _ = parse_head(&v, &Limits::default(), &mut head);
        }
    }
}
