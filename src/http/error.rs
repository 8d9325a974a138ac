//! Why a request head was rejected, and the status that says so. Shared by the head scanner,
//! the parser, the field rules and the target split, so none of them depends on another for it.

use std::fmt;

/// Why a request head was rejected; [`ParseError::status`] is the response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// 414: request-line longer than `max_request_line` (RFC 9112 §3).
    UriTooLong,
    /// 431: a field line or the whole head is too large (RFC 6585 §5).
    HeadTooLarge,
    /// 431: more than `max_headers` fields.
    TooManyHeaders,
    /// 400: syntax error; the text says which.
    Malformed(&'static str),
    /// 505: a well-formed version other than HTTP/1.0 or HTTP/1.1 (RFC 9110 §15.6.6).
    VersionNotSupported,
    /// 400: HTTP/1.1 request without Host, or several Host fields (RFC 9112 §3.2).
    BadHost(&'static str),
    /// 400: invalid or conflicting Content-Length (RFC 9112 §6.3 item 5).
    BadContentLength(&'static str),
    /// 400: Transfer-Encoding that cannot be framed safely (RFC 9112 §6.1, §6.3).
    BadTransferEncoding(&'static str),
    /// 501: a transfer coding we do not implement (RFC 9112 §6.1).
    UnsupportedTransferEncoding,
    /// 400: request-target of no known form (RFC 9112 §3.2).
    BadTarget(&'static str),
    /// 501: CONNECT / authority-form (RFC 9112 §3.2.3); the caller may choose otherwise.
    ConnectNotSupported,
}

impl ParseError {
    /// The status code to answer with.
    pub(crate) fn status(&self) -> u16 {
        match self {
            ParseError::UriTooLong => 414,
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::VersionNotSupported => 505,
            ParseError::UnsupportedTransferEncoding | ParseError::ConnectNotSupported => 501,
            ParseError::Malformed(_)
            | ParseError::BadHost(_)
            | ParseError::BadContentLength(_)
            | ParseError::BadTransferEncoding(_)
            | ParseError::BadTarget(_) => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UriTooLong => f.write_str("request line too long"),
            ParseError::HeadTooLarge => f.write_str("request header fields too large"),
            ParseError::TooManyHeaders => f.write_str("too many header fields"),
            ParseError::Malformed(m) => write!(f, "malformed request: {m}"),
            ParseError::VersionNotSupported => f.write_str("HTTP version not supported"),
            ParseError::BadHost(m) => write!(f, "bad Host: {m}"),
            ParseError::BadContentLength(m) => write!(f, "bad Content-Length: {m}"),
            ParseError::BadTransferEncoding(m) => write!(f, "bad Transfer-Encoding: {m}"),
            ParseError::UnsupportedTransferEncoding => f.write_str("unsupported transfer coding"),
            ParseError::BadTarget(m) => write!(f, "bad request target: {m}"),
            ParseError::ConnectNotSupported => f.write_str("CONNECT not supported"),
        }
    }
}

impl std::error::Error for ParseError {}
