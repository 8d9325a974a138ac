//! The status line and header fields an app asks for, validated while they are written where
//! they go: at the end of the response's output buffer, as the head's first lines
//! (`HTTP/1.1 200 OK\r\n`, then `Name: value\r\n` each). That is the one pass over the app's
//! fields and the one copy of them; [`finish_head`] then adds the server's lines after them
//! (an HTTP/2 stream takes the lines as fields instead, `encoder::Wire::take_head`).
//!
//! The only way to write them is [`ResponseFields::set`], which checks every field (RFC 9110
//! §5: names are tokens, values carry no CR, LF, NUL or other control byte) and keeps out what
//! belongs to the server: hop-by-hop fields are refused, and Content-Length is left out of the
//! lines and kept in [`ResponseFields::content_length`] because framing is the encoder's choice.
//! A [`ResponseFields`] keeps only facts and lengths, not the bytes: while the head waits, the
//! fields are read back from the output ([`FieldLines`], for a file the app hands over); once it
//! is complete, a copy is kept only for an access log that prints response fields
//! ([`ResponseFields::keep`]).
//!
//! [`finish_head`]: super::response::finish_head

use std::fmt;

use super::grammar::{is_field_name, is_token, parse_decimal};
use super::response::write_status_line;

/// Statuses an app may answer with: final responses only (1xx interim responses are the
/// server's, RFC 9110 §15.2).
const APP_STATUSES: std::ops::RangeInclusive<u16> = 200..=599;

/// Why a response the app asked for cannot be sent. The texts are what the server logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InvalidResponse {
    Status(u16),
    Reason,
    Header {
        name: String,
        problem: &'static str,
    },
    ContentLength,
    /// A Content-Length on a response that has no body (a 101).
    NoBody,
}

impl fmt::Display for InvalidResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidResponse::Status(status) => write!(
                f,
                "status {status} is not in {}..={}",
                APP_STATUSES.start(),
                APP_STATUSES.end()
            ),
            InvalidResponse::Reason => {
                f.write_str("reason phrase contains CR, LF or a control byte")
            }
            InvalidResponse::Header { name, problem } => write!(f, "header {name:?}: {problem}"),
            InvalidResponse::ContentLength => {
                f.write_str("Content-Length is not one decimal number")
            }
            InvalidResponse::NoBody => f.write_str("a 101 has no Content-Length"),
        }
    }
}

/// What the app's fields said, and where they are in its pending head; reused across requests.
#[derive(Debug, Default)]
pub(crate) struct ResponseFields {
    /// Bytes of the status line at the start of the head, then of the field lines after it.
    status_line: usize,
    lines: usize,
    content_length: Option<u64>,
    /// The app sent its own `Date` / `Server` (the server adds them otherwise).
    has_date: bool,
    has_server: bool,
    /// The field lines copied out of the complete head for the access log ([`Self::keep`]);
    /// empty unless it asked.
    kept: Vec<u8>,
}

impl ResponseFields {
    /// Forgets what was set before, and writes the status line of `status` and `reason` (empty:
    /// the standard phrase) and the lines of `headers` at the end of `out`, validated as they
    /// are written. On error `out` is as it was and nothing is set.
    pub(crate) fn set<'h>(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        reason: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), InvalidResponse> {
        self.clear();
        if !APP_STATUSES.contains(&status) {
            return Err(InvalidResponse::Status(status));
        }
        // An empty reason (the standard phrase, the usual case) is valid without the call.
        if !reason.is_empty() && !valid_header_value(reason) {
            return Err(InvalidResponse::Reason);
        }
        let start = out.len();
        write_status_line(out, status, reason);
        self.status_line = out.len() - start;
        self.write_lines(out, start, headers)
    }

    /// As [`Self::set`] for the head of a `101 Switching Protocols` (ABI 1.2 upgrade): the app's
    /// fields after the status line, refused if one is a Content-Length (a 101 has no body).
    pub(crate) fn set_switching_protocols<'h>(
        &mut self,
        out: &mut Vec<u8>,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), InvalidResponse> {
        self.clear();
        let start = out.len();
        write_status_line(out, 101, b"");
        self.status_line = out.len() - start;
        self.write_lines(out, start, headers)?;
        if self.content_length.is_some() {
            out.truncate(start);
            self.clear();
            return Err(InvalidResponse::NoBody);
        }
        Ok(())
    }

    /// The lines of `headers` after the status line that begins at `out[start]`; on error
    /// `out` is cut back to `start` and nothing is set.
    fn write_lines<'h>(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), InvalidResponse> {
        let lines_start = out.len();
        let result = self.fill(out, headers);
        if result.is_err() {
            out.truncate(start);
            self.clear();
            return result;
        }
        self.lines = out.len() - lines_start;
        Ok(())
    }

    fn fill<'h>(
        &mut self,
        out: &mut Vec<u8>,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), InvalidResponse> {
        for (name, value) in headers {
            // By length first, as for hop-by-hop names: the usual names match none, and one
            // dispatch on it serves all three.
            match name.len() {
                14 if is_field_name(name, b"content-length") => {
                    // RFC 9110 §8.6: Content-Length = 1*DIGIT, parsed by the one decimal parser.
                    match parse_decimal(value) {
                        Ok(n) if self.content_length.is_none_or(|m| m == n) => {
                            self.content_length = Some(n)
                        }
                        _ => return Err(InvalidResponse::ContentLength),
                    }
                    continue;
                }
                4 => self.has_date |= name.eq_ignore_ascii_case(b"date"),
                6 => self.has_server |= name.eq_ignore_ascii_case(b"server"),
                _ => {}
            }
            check_field(name, value)?;
            push_line(out, name, value);
        }
        Ok(())
    }

    /// The server's own fields added to the app's in the pending `head` (the output from the
    /// head's start on), and the body length it decided (a file the app handed over:
    /// `static_files::handoff`). With `status` not the app's, the status line is rewritten
    /// with its standard phrase, since the app's phrase was for another status.
    pub(crate) fn amend<'h>(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        status: Option<u16>,
        content_length: u64,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        if let Some(status) = status {
            let mut line = Vec::new();
            write_status_line(&mut line, status, b"");
            let old = std::mem::replace(&mut self.status_line, line.len());
            out.splice(start..start + old, line);
        }
        self.content_length = Some(content_length);
        let end = out.len();
        for (name, value) in fields {
            push_line(out, name, value);
        }
        self.lines += out.len() - end;
    }

    /// The field lines of the pending `head` (the output from the head's start on).
    pub(crate) fn lines_in<'o>(&self, head: &'o [u8]) -> FieldLines<'o> {
        let lines = head
            .get(self.status_line..self.status_line + self.lines)
            .unwrap_or_default();
        FieldLines(lines)
    }

    /// Keeps a copy of the field lines of the complete `head`, which may leave the output
    /// before the access log reads them ([`Self::kept`]).
    pub(crate) fn keep(&mut self, head: &[u8]) {
        let lines = self.lines_in(head).0;
        self.kept.clear();
        self.kept.extend_from_slice(lines);
    }

    pub(crate) fn clear(&mut self) {
        self.status_line = 0;
        self.lines = 0;
        self.content_length = None;
        self.has_date = false;
        self.has_server = false;
        self.kept.clear();
    }

    /// The app's Content-Length, if it gave one (never among the lines).
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Whether the app set `Date` and `Server` itself.
    pub(crate) fn has_date_and_server(&self) -> (bool, bool) {
        (self.has_date, self.has_server)
    }

    /// The lines [`Self::keep`] kept (none unless it was called for this response).
    pub(crate) fn kept(&self) -> FieldLines<'_> {
        FieldLines(&self.kept)
    }
}

/// Header field lines this file wrote (`Name: value\r\n` each). Names are tokens (no `:`) and
/// values hold no CR or LF, so they read back unambiguously.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FieldLines<'a>(&'a [u8]);

impl<'a> FieldLines<'a> {
    /// The value of the first field named `name` (ASCII case-insensitive).
    pub(crate) fn get(self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The fields in the app's order.
    pub(crate) fn headers(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        read_lines(self.0)
    }

    #[cfg(test)]
    pub(crate) fn bytes(self) -> &'a [u8] {
        self.0
    }
}

/// A field an app may set (in a head or as a trailer): a token name, a value without CR, LF,
/// NUL or other control byte, and not connection-specific. Inlined into the loops over an
/// app's fields (its call cost a fifth of the check for a short field); the refusal is not.
/// `always`: a plain `#[inline]` left it a call (about 20 of the ~140 instructions per field were
/// its entry and exit, with the registers it saved).
#[inline(always)]
fn check_field(name: &[u8], value: &[u8]) -> Result<(), InvalidResponse> {
    let problem = if !is_token(name) {
        "name is not a token"
    } else if !valid_header_value(value) {
        "value contains CR, LF, NUL or a control byte"
    } else if is_hop_by_hop(name) {
        "hop-by-hop headers are set by the server"
    } else {
        return Ok(());
    };
    Err(field_error(name, problem))
}

/// `Name: value\r\n`, with room made once.
#[inline]
fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cold]
#[inline(never)]
fn field_error(name: &[u8], problem: &'static str) -> InvalidResponse {
    let name = String::from_utf8_lossy(name).into_owned();
    InvalidResponse::Header { name, problem }
}

/// `(name, value)` pairs read back from `Name: value\r\n` lines this file wrote.
pub(crate) fn read_lines(lines: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    lines
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_suffix(b"\r"))
        .filter_map(|line| {
            // The first `:` ends the name (a token has none); one space was written after it.
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], line.get(colon + 2..).unwrap_or_default()))
        })
}

/// Fields a trailer must not carry (RFC 9110 §6.5.1): framing, routing, authentication, the
/// content's own description and response control. A recipient may drop a trailer section or
/// merge it into the header section only for fields that allow it, so these are refused rather
/// than sent where nobody may act on them.
fn is_header_only(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 11] = [
        b"content-length",
        b"content-type",
        b"content-encoding",
        b"content-range",
        b"host",
        b"authorization",
        b"www-authenticate",
        b"proxy-authenticate",
        b"set-cookie",
        b"cache-control",
        b"location",
    ];
    NAMES.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The app's response trailer fields (ABI 1.3 `set_trailers`) as `Name: value\r\n` lines
/// appended to `out` (left as it was on error): checked as header fields are, and refused for
/// hop-by-hop fields and those a trailer must not carry.
pub(crate) fn encode_trailer_fields<'h>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
) -> Result<(), InvalidResponse> {
    let start = out.len();
    for (name, value) in fields {
        let checked = check_field(name, value).and_then(|()| {
            if is_header_only(name) {
                Err(field_error(
                    name,
                    "this field must not be a trailer (RFC 9110 §6.5.1)",
                ))
            } else {
                Ok(())
            }
        });
        if let Err(invalid) = checked {
            out.truncate(start);
            return Err(invalid);
        }
        push_line(out, name, value);
    }
    Ok(())
}

/// A field value we are willing to send (RFC 9110 §5.5): no CR, LF, NUL, nor any CTL but HTAB.
/// obs-text (0x80–0xFF) is allowed.
///
/// Eight bytes at a time: a word with no byte below 0x20 and none equal to 0x7F is fine as it
/// is, which is every word of the usual value; only a word that has one (a tab, or a byte to
/// refuse) is looked at byte by byte.
pub(crate) fn valid_header_value(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let byte_ok = |b: u8| b == b'\t' || (b >= 0x20 && b != 0x7f);
    let mut words = bytes.chunks_exact(8);
    let mut ok = true;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_ne_bytes(eight);
        // Classic SWAR tests (nonzero exactly when some byte is < 0x20, or == 0x7F; a borrow
        // only flags bytes above one that really matches, so a clean word gives zero).
        let below_space = x.wrapping_sub(0x20 * ONES) & !x & HIGH;
        let del = x ^ (0x7f * ONES);
        let is_del = del.wrapping_sub(ONES) & !del & HIGH;
        if below_space | is_del != 0 {
            ok &= word.iter().all(|&b| byte_ok(b));
        }
    }
    words.remainder().iter().fold(ok, |ok, &b| ok & byte_ok(b))
}

/// Connection-specific fields (RFC 9110 §7.6.1) that only the server may set.
/// Content-Length is not one of them; framing still decides it.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    // By length first: most names an app sets match none of the lengths.
    let candidates: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"trailer", b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        16 => &[b"proxy-connection"],
        17 => &[b"transfer-encoding"],
        _ => &[],
    };
    candidates.iter().any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
#[path = "response_fields_tests.rs"]
mod tests;
