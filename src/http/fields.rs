//! Field semantics of a parsed request head: Host (RFC 9112 §3.2), message framing
//! (Content-Length / Transfer-Encoding, RFC 9112 §6), persistence (Connection, §9.3) and
//! Expect (RFC 9110 §10.1.1).

use super::error::ParseError;
use super::grammar::{is_field_name, parse_decimal, trim_ows, DecimalError};
use super::target::valid_host;

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body (neither Content-Length nor Transfer-Encoding).
    None,
    /// Exactly this many octets (`Content-Length`, may be 0).
    Length(u64),
    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1).
    Chunked,
}

/// What the fields of a valid head say about its message and connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldFacts {
    pub(crate) framing: BodyFraming,
    /// The client allows another request on this connection (RFC 9112 §9.3).
    pub(crate) keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body (HTTP/1.1 only).
    pub(crate) expect_continue: bool,
    /// An HTTP/1.1 request with an `Upgrade` field named in `Connection` (RFC 9110 §7.8): the
    /// app may take the connection (ABI 1.2).
    pub(crate) upgrade: bool,
}

/// Framing, Host and connection rules over the fields of a head of HTTP/1.`version_minor`.
pub(crate) fn interpret<'h>(
    version_minor: u8,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
) -> Result<FieldFacts, ParseError> {
    let http11 = version_minor == 1;
    let mut host_count = 0u32;
    let mut content_length: Option<u64> = None;
    let mut te = TeState::default();
    let (mut close, mut keep_alive_token) = (false, false);
    let (mut upgrade_token, mut upgrade_field) = (false, false);
    let mut expect_continue = false;
    for (name, value) in headers {
        if is_field_name(name, b"host") {
            host_count += 1;
            if host_count > 1 {
                return Err(ParseError::BadHost("more than one Host field"));
            }
            if !valid_host(value) {
                return Err(ParseError::BadHost("invalid host"));
            }
        } else if is_field_name(name, b"content-length") {
            let n = parse_content_length(value)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(ParseError::BadContentLength("conflicting values"));
            }
            content_length = Some(n);
        } else if is_field_name(name, b"transfer-encoding") {
            te.add(value)?;
        } else if is_field_name(name, b"connection") {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                upgrade_token |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if is_field_name(name, b"upgrade") {
            upgrade_field = true;
        } else if is_field_name(name, b"expect") {
            // RFC 9110 §10.1.1; other expectations are ignored (a MAY-417).
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if http11 && host_count == 0 {
        return Err(ParseError::BadHost("missing Host in HTTP/1.1 request"));
    }
    let framing = match (te.finish()?, content_length) {
        (Some(_), _) if !http11 => {
            // RFC 9112 §6.1: TE in a 1.0 request indicates a faulty or smuggling intermediary.
            return Err(ParseError::BadTransferEncoding(
                "Transfer-Encoding in HTTP/1.0 request",
            ));
        }
        (Some(_), Some(_)) => {
            // RFC 9112 §6.1 / §6.3 item 3: a classic smuggling vector; reject rather than guess.
            return Err(ParseError::BadTransferEncoding(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        (Some(framing), None) => framing,
        (None, Some(n)) => BodyFraming::Length(n),
        (None, None) => BodyFraming::None,
    };
    Ok(FieldFacts {
        framing,
        // RFC 9112 §9.3: 1.1 is persistent unless "close"; 1.0 only with "keep-alive".
        keep_alive: !close && (http11 || keep_alive_token),
        expect_continue: http11 && expect_continue,
        upgrade: http11 && upgrade_token && upgrade_field,
    })
}

/// RFC 9112 §6.3 item 5 / RFC 9110 §8.6: `1*DIGIT`; lists are rejected outright.
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    parse_decimal(value).map_err(|e| {
        ParseError::BadContentLength(match e {
            DecimalError::NotDigits => "not a decimal number",
            DecimalError::Overflow => "overflow",
        })
    })
}

/// Accumulates the Transfer-Encoding list across field lines (RFC 9110 §5.3 combining).
#[derive(Default)]
struct TeState {
    present: bool,
    chunked: bool,
    chunked_not_last: bool,
    other: bool,
}

impl TeState {
    fn add(&mut self, value: &[u8]) -> Result<(), ParseError> {
        self.present = true;
        // Empty list elements are ignored (RFC 9110 §5.6.1).
        for coding in value
            .split(|&b| b == b',')
            .map(trim_ows)
            .filter(|c| !c.is_empty())
        {
            if coding.eq_ignore_ascii_case(b"chunked") {
                if self.chunked {
                    return Err(ParseError::BadTransferEncoding("chunked applied twice"));
                }
                self.chunked = true;
            } else {
                self.chunked_not_last |= self.chunked;
                self.other = true;
            }
        }
        Ok(())
    }

    /// RFC 9112 §6.3 item 4: chunked must be final, else the length is unknowable → 400.
    fn finish(self) -> Result<Option<BodyFraming>, ParseError> {
        if !self.present {
            Ok(None)
        } else if self.chunked_not_last {
            Err(ParseError::BadTransferEncoding(
                "chunked is not the final coding",
            ))
        } else if self.other {
            Err(ParseError::UnsupportedTransferEncoding)
        } else if self.chunked {
            Ok(Some(BodyFraming::Chunked))
        } else {
            Err(ParseError::BadTransferEncoding("empty Transfer-Encoding"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::request::{parse_head, RequestHead};
    use super::super::scan::Limits;
    use super::*;

    #[test]
    fn framing_and_connection_table() {
        use BodyFraming::*;
        let cases: &[(&[u8], BodyFraming, bool, bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", None, true, false),
            (b"GET / HTTP/1.0\r\n\r\n", None, false, false),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                None,
                true,
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                None,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
                None,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
                None,
                false,
                false,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
                None,
                true,
                true,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                Length(0),
                true,
                false,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n",
                Length(7),
                true,
                false,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
                Length(u64::MAX),
                true,
                false,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n",
                Chunked,
                true,
                false,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n",
                Chunked,
                true,
                false,
            ),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", None, true, false),
            (
                b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
                None,
                true,
                false,
            ),
        ];
        for (input, framing, ka, expect) in cases {
            let mut head = RequestHead::default();
            let r = parse_head(input, &Limits::default(), &mut head);
            let name = String::from_utf8_lossy(input);
            assert_eq!(r, Ok(Some(input.len())), "{name}");
            assert_eq!(
                (head.framing, head.keep_alive, head.expect_continue),
                (*framing, *ka, *expect),
                "{name}"
            );
        }
    }

    #[test]
    fn field_errors_table() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", 400),                                  // no Host
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),            // two Host
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"P / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked x\r\n\r\n", 501),
            (b"P / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501),
        ];
        for (input, want) in cases {
            let got = parse_head(input, &Limits::default(), &mut RequestHead::default());
            assert_eq!(
                got.map_err(|e| e.status()),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
