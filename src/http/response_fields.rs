//! The status line and header fields an app asks for, validated once when they are set (PEP 3333
//! `start_response`) and written in the same pass as the lines they become on the wire
//! (`Name: value\r\n`), kept in buffers reused across requests. [`encode_head`] copies those
//! lines into the output in one piece; nothing walks the fields again.
//!
//! The only way to fill a [`ResponseFields`] is [`ResponseFields::set`], which checks every field
//! (RFC 9110 §5: names are tokens, values carry no CR, LF, NUL or other control byte) and keeps
//! out what belongs to the server: hop-by-hop fields are refused, and Content-Length is taken out
//! of the list into [`ResponseFields::content_length`] because framing is the encoder's choice.
//! The lines are kept, not a copy of the pairs: the access log finds a field by reading them
//! back ([`ResponseFields::headers`]), which only it does.
//!
//! [`encode_head`]: super::response::encode_head

use std::fmt;

use super::grammar::{is_token, parse_decimal};

/// Statuses an app may answer with: final responses only (1xx interim responses are the
/// server's, RFC 9110 §15.2).
const APP_STATUSES: std::ops::RangeInclusive<u16> = 200..=599;

/// Why a response the app asked for cannot be sent. The texts are what the server logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InvalidResponse {
    Status(u16),
    Reason,
    Header { name: String, problem: &'static str },
    ContentLength,
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
        }
    }
}

/// An app's reason phrase and header fields, validated; reused across requests.
#[derive(Debug, Default)]
pub(crate) struct ResponseFields {
    reason: Vec<u8>,
    /// The fields as they go on the wire, `Name: value\r\n` each, in the app's order. Names are
    /// tokens (no `:`) and values hold no CR or LF, so the lines read back unambiguously.
    lines: Vec<u8>,
    content_length: Option<u64>,
    /// The app sent its own `Date` / `Server` (the server adds them otherwise).
    has_date: bool,
    has_server: bool,
}

impl ResponseFields {
    /// Replaces what was set before with `status`, `reason` and `headers`, all validated and
    /// copied. On error the fields are left empty.
    pub(crate) fn set<'h>(
        &mut self,
        status: u16,
        reason: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), InvalidResponse> {
        self.clear();
        let result = self.fill(status, reason, headers);
        if result.is_err() {
            self.clear();
        }
        result
    }

    fn fill<'h>(
        &mut self,
        status: u16,
        reason: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), InvalidResponse> {
        if !APP_STATUSES.contains(&status) {
            return Err(InvalidResponse::Status(status));
        }
        if !valid_header_value(reason) {
            return Err(InvalidResponse::Reason);
        }
        self.reason.extend_from_slice(reason);
        for (name, value) in headers {
            check_field(name, value)?;
            if name.eq_ignore_ascii_case(b"content-length") {
                // RFC 9110 §8.6: Content-Length = 1*DIGIT, parsed by the one decimal parser.
                match parse_decimal(value) {
                    Ok(n) if self.content_length.is_none_or(|m| m == n) => {
                        self.content_length = Some(n)
                    }
                    _ => return Err(InvalidResponse::ContentLength),
                }
                continue;
            }
            // By length first, as for hop-by-hop names.
            self.has_date |= name.len() == 4 && name.eq_ignore_ascii_case(b"date");
            self.has_server |= name.len() == 6 && name.eq_ignore_ascii_case(b"server");
            self.lines.reserve(name.len() + value.len() + 4);
            self.lines.extend_from_slice(name);
            self.lines.extend_from_slice(b": ");
            self.lines.extend_from_slice(value);
            self.lines.extend_from_slice(b"\r\n");
        }
        Ok(())
    }

    /// The server's own fields added to the app's, and the body length it decided (a file the
    /// app handed over: `static_files::handoff`). `status_changed`: the app's reason phrase
    /// was for another status, so the standard one is used.
    pub(crate) fn amend<'h>(
        &mut self,
        status_changed: bool,
        content_length: u64,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        if status_changed {
            self.reason.clear();
        }
        self.content_length = Some(content_length);
        for (name, value) in fields {
            self.lines.extend_from_slice(name);
            self.lines.extend_from_slice(b": ");
            self.lines.extend_from_slice(value);
            self.lines.extend_from_slice(b"\r\n");
        }
    }

    /// The value of the app's first field named `name` (ASCII case-insensitive).
    pub(crate) fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    pub(crate) fn clear(&mut self) {
        self.reason.clear();
        self.lines.clear();
        self.content_length = None;
        self.has_date = false;
        self.has_server = false;
    }

    /// The app's reason phrase; empty means the standard one.
    pub(crate) fn reason(&self) -> &[u8] {
        &self.reason
    }

    /// The app's Content-Length, if it gave one (never among [`ResponseFields::headers`]).
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The header fields' lines as they go on the wire (`Name: value\r\n` each).
    pub(crate) fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// Whether the app set `Date` and `Server` itself.
    pub(crate) fn has_date_and_server(&self) -> (bool, bool) {
        (self.has_date, self.has_server)
    }

    /// The header fields in the app's order, read back from [`ResponseFields::lines`].
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        read_lines(&self.lines)
    }
}

/// A field an app may set (in a head or as a trailer): a token name, a value without CR, LF,
/// NUL or other control byte, and not connection-specific.
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

/// The app's response trailer fields (ABI 1.3 `set_trailers`) as `Name: value\r\n` lines into
/// `out` (cleared first; left empty on error): checked as header fields are, and refused for
/// hop-by-hop fields and those a trailer must not carry.
pub(crate) fn encode_trailer_fields<'h>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
) -> Result<(), InvalidResponse> {
    out.clear();
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
            out.clear();
            return Err(invalid);
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// A field value we are willing to send (RFC 9110 §5.5): no CR, LF, NUL, nor any CTL but HTAB.
/// obs-text (0x80–0xFF) is allowed.
pub(crate) fn valid_header_value(bytes: &[u8]) -> bool {
    // No early exit: a fold over every byte is branch-free (values are short, and valid).
    bytes
        .iter()
        .fold(true, |ok, &b| ok & (b == b'\t' || (b >= 0x20 && b != 0x7f)))
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
mod tests {
    use super::*;

    #[test]
    fn field_grammar() {
        assert!(valid_header_value(b"a\tb \x80") && valid_header_value(b""));
        assert!(
            !valid_header_value(b"a\rb")
                && !valid_header_value(b"a\nb")
                && !valid_header_value(b"\0")
                && !valid_header_value(b"\x7f")
        );
        // Every hop-by-hop name in any case; other names of the same lengths are not.
        let names: [(&[u8], bool); 12] = [
            (b"Connection", true),
            (b"KEEP-ALIVE", true),
            (b"Transfer-Encoding", true),
            (b"TE", true),
            (b"trailer", true),
            (b"Upgrade", true),
            (b"Proxy-Connection", true),
            (b"Content-Length", false),
            (b"tx", false),
            (b"Trailed", false),
            (b"keep_alive", false),
            (b"transfer_encoding", false),
        ];
        for (name, hop) in names {
            assert_eq!(is_hop_by_hop(name), hop, "{name:?}");
        }
    }

    #[test]
    fn trailer_fields_are_checked_and_read_back() {
        let mut out = Vec::new();
        let ok: [(&[u8], &[u8]); 2] = [(b"grpc-status", b"0"), (b"Grpc-Message", b"a b")];
        encode_trailer_fields(&mut out, ok.iter().copied()).unwrap();
        assert_eq!(out, b"grpc-status: 0\r\nGrpc-Message: a b\r\n");
        assert_eq!(read_lines(&out).collect::<Vec<_>>(), ok);
        for bad in [
            (&b"Content-Length"[..], &b"3"[..]),
            (b"transfer-encoding", b"chunked"),
            (b"bad name", b"v"),
            (b"x", b"a\r\nInjected: 1"),
        ] {
            let fields = [(&b"x-ok"[..], &b"1"[..]), bad];
            assert!(encode_trailer_fields(&mut out, fields.into_iter()).is_err());
            assert!(out.is_empty(), "nothing half-kept");
        }
    }

    type Pairs<'a> = &'a [(&'a [u8], &'a [u8])];

    fn set(status: u16, reason: &[u8], headers: Pairs<'_>) -> Result<ResponseFields, String> {
        let mut fields = ResponseFields::default();
        fields
            .set(status, reason, headers.iter().copied())
            .map(|()| fields)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn valid_fields_are_kept_in_order_without_content_length() {
        let f = set(
            201,
            b"Made",
            &[
                (b"X-A", b"1"),
                (b"Content-Length", b"12"),
                (b"content-length", b"12"),
                (b"X-B", b"\tobs-text \x80"),
                (b"X-C", b""),
                (b"X-D", b" a: b:"),
            ],
        )
        .unwrap();
        assert_eq!(f.reason(), b"Made");
        assert_eq!(f.content_length(), Some(12));
        assert_eq!(
            f.lines(),
            b"X-A: 1\r\nX-B: \tobs-text \x80\r\nX-C: \r\nX-D:  a: b:\r\n"
        );
        let headers: Vec<_> = f.headers().collect();
        let want: Pairs<'_> = &[
            (b"X-A", b"1"),
            (b"X-B", b"\tobs-text \x80"),
            (b"X-C", b""),
            (b"X-D", b" a: b:"),
        ];
        assert_eq!(headers, want);
        assert_eq!(f.has_date_and_server(), (false, false));
        let g = set(
            200,
            b"",
            &[(b"DATE", b"x"), (b"server", b"y"), (b"Dates", b"z")],
        )
        .unwrap();
        assert_eq!(g.has_date_and_server(), (true, true));
    }

    #[test]
    fn each_rule_refuses_with_its_message() {
        let cases: &[(u16, &[u8], Pairs<'_>, &str)] = &[
            (199, b"", &[], "status 199 is not in 200..=599"),
            (600, b"", &[], "status 600 is not in 200..=599"),
            (200, b"a\r\nb", &[], "reason phrase contains CR, LF"),
            (
                200,
                b"",
                &[(b"X Bad", b"v")],
                "\"X Bad\": name is not a token",
            ),
            (200, b"", &[(b"", b"v")], "name is not a token"),
            (
                200,
                b"",
                &[(b"X", b"a\r\nSet-Cookie: y")],
                "value contains CR, LF",
            ),
            (200, b"", &[(b"X", b"a\0")], "value contains CR, LF, NUL"),
            (200, b"", &[(b"X", b"\x7f")], "value contains"),
            (200, b"", &[(b"Connection", b"close")], "hop-by-hop headers"),
            (
                200,
                b"",
                &[(b"Transfer-Encoding", b"chunked")],
                "hop-by-hop",
            ),
            (
                200,
                b"",
                &[(b"Content-Length", b"+5")],
                "not one decimal number",
            ),
            (
                200,
                b"",
                &[(b"Content-Length", b"")],
                "not one decimal number",
            ),
            (
                200,
                b"",
                &[(b"Content-Length", b"99999999999999999999")],
                "not one decimal",
            ),
            (
                200,
                b"",
                &[(b"Content-Length", b"1"), (b"Content-Length", b"2")],
                "not one decimal",
            ),
        ];
        for (status, reason, headers, want) in cases {
            let got = set(*status, reason, headers).err();
            assert!(
                got.as_deref().is_some_and(|e| e.contains(want)),
                "{status} {reason:?} {headers:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_refused_set_leaves_nothing_behind() {
        let mut f = ResponseFields::default();
        f.set(200, b"Fine", [(&b"X-A"[..], &b"1"[..])].into_iter())
            .unwrap();
        let bad = [(&b"Content-Length"[..], &b"3"[..]), (b"X\n", b"v")];
        assert!(f.set(200, b"", bad.into_iter()).is_err());
        assert_eq!((f.reason(), f.content_length()), (&b""[..], None));
        assert_eq!(f.headers().count(), 0);
    }
}
