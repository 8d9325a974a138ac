//! Request-target forms (RFC 9112 §3.2) and Host syntax (RFC 9110 §7.2, RFC 3986 §3.2.2): the
//! target is split once, into the path, query and authority every later stage reads.

use super::error::ParseError;
use super::grammar::is_reg_name_byte;

/// A request-target split into its parts (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target<'t> {
    /// Still percent-encoded; `/` for an absolute-form target with an empty path, `*` for the
    /// asterisk-form.
    pub(crate) path: &'t [u8],
    /// Without the `?`; empty when there is none.
    pub(crate) query: &'t [u8],
    /// The authority of an absolute-form target, which overrides Host (RFC 9112 §3.2.2).
    pub(crate) authority: Option<&'t [u8]>,
}

/// Splits the request-target of a `method` request, checking its form against the method:
///
/// - origin-form `/p?q` → path `/p`, query `q` (RFC 9112 §3.2.1);
/// - absolute-form `http://authority/p?q` → path `/p` (an empty path becomes `/`), query `q`,
///   and the authority (RFC 9112 §3.2.2; only `http` and `https`, a valid non-empty authority, no
///   userinfo);
/// - asterisk-form `*` → path `*`, only with OPTIONS (§3.2.4), else 400;
/// - CONNECT, whatever its target → [`ParseError::ConnectNotSupported`] (501); the
///   authority-form `host:port` with any other method → 400 (§3.2.3: it is "only used for
///   CONNECT requests", so it is a bad request, not an unimplemented feature);
/// - anything else, or a `#` fragment anywhere → [`ParseError::BadTarget`] (400).
pub(crate) fn parse_target<'t>(method: &[u8], target: &'t [u8]) -> Result<Target<'t>, ParseError> {
    if method == b"CONNECT" {
        return Err(ParseError::ConnectNotSupported);
    }
    let parts = split_form(target)?;
    if parts.path == b"*" && method != b"OPTIONS" {
        return Err(ParseError::BadTarget(
            "asterisk-form is only valid for OPTIONS",
        ));
    }
    Ok(parts)
}

/// [`parse_target`]'s answer for a target already split at its `?` by a parser that cut any
/// `#` fragment off (HTTP/2's `:path`, parsed by `http`): an origin-form `path` gives the same
/// [`Target`] without the bytes being scanned again. `None` for anything else (no leading `/`,
/// or CONNECT), which [`parse_target`] then judges.
pub(crate) fn split_origin_form<'t>(
    method: &[u8],
    path: &'t [u8],
    query: Option<&'t [u8]>,
) -> Option<Target<'t>> {
    (path.starts_with(b"/") && method != b"CONNECT").then(|| Target {
        path,
        query: query.unwrap_or_default(),
        authority: None,
    })
}

/// The split by form alone, for a method that is not CONNECT.
fn split_form(target: &[u8]) -> Result<Target<'_>, ParseError> {
    if target.contains(&b'#') {
        return Err(ParseError::BadTarget("fragment in request target"));
    }
    match target.first() {
        Some(b'/') => Ok(split_query(target, None)),
        Some(b'*') if target.len() == 1 => Ok(Target {
            path: target,
            query: b"",
            authority: None,
        }),
        Some(_) => {
            if let Some(after_scheme) = strip_http_scheme(target) {
                let end = after_scheme
                    .iter()
                    .position(|&b| b == b'/' || b == b'?')
                    .unwrap_or(after_scheme.len());
                let (authority, rest) = after_scheme.split_at(end);
                if authority.is_empty() || !valid_host(authority) {
                    return Err(ParseError::BadTarget("invalid authority in absolute-form"));
                }
                let mut parts = split_query(rest, Some(authority));
                if parts.path.is_empty() {
                    parts.path = b"/";
                }
                Ok(parts)
            } else if is_authority_form(target) {
                Err(ParseError::BadTarget(
                    "authority-form is only valid for CONNECT",
                ))
            } else {
                Err(ParseError::BadTarget("unknown request-target form"))
            }
        }
        None => Err(ParseError::BadTarget("empty request target")),
    }
}

fn split_query<'t>(s: &'t [u8], authority: Option<&'t [u8]>) -> Target<'t> {
    let (path, query) = match s.iter().position(|&b| b == b'?') {
        Some(i) => (
            s.get(..i).unwrap_or_default(),
            s.get(i + 1..).unwrap_or_default(),
        ),
        None => (s, &b""[..]),
    };
    Target {
        path,
        query,
        authority,
    }
}

/// `http://` or `https://` (scheme is case-insensitive, RFC 3986 §3.1) → the rest.
fn strip_http_scheme(t: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if let Some(prefix) = t.get(..scheme.len()) {
            if prefix.eq_ignore_ascii_case(scheme) {
                return t.get(scheme.len()..);
            }
        }
    }
    None
}

/// authority-form = uri-host ":" port, with a non-empty port.
fn is_authority_form(t: &[u8]) -> bool {
    valid_host(t)
        && t.iter()
            .rposition(|&b| b == b':')
            .is_some_and(|i| i + 1 < t.len())
}

/// Host field value / authority without userinfo: `uri-host [ ":" port ]` (RFC 9110 §7.2).
/// An empty value is allowed (RFC 9112 §3.2: "Host" with an empty value when the target
/// has no authority). Rejects whitespace, `/`, `@` and anything outside the grammar.
pub(crate) fn valid_host(v: &[u8]) -> bool {
    if v.is_empty() {
        return true;
    }
    let (host_ok, port) = if v.first() == Some(&b'[') {
        // IP-literal: "[" ( IPv6address / IPvFuture ) "]"
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = v.get(1..close).unwrap_or_default();
        let ok = !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.') || is_reg_name_byte(b));
        match v.get(close + 1..).unwrap_or_default() {
            [] => (ok, &b""[..]),
            [b':', port @ ..] => (ok, port),
            _ => return false,
        }
    } else {
        let (host, port) = match v.iter().rposition(|&b| b == b':') {
            Some(i) => (
                v.get(..i).unwrap_or_default(),
                v.get(i + 1..).unwrap_or_default(),
            ),
            None => (v, &b""[..]),
        };
        // Folds, not early exits: every request's Host is checked, and is valid.
        let host_ok = host
            .iter()
            .fold(!host.is_empty(), |ok, &b| ok & is_reg_name_byte(b));
        (host_ok, port)
    };
    let port_ok = port
        .iter()
        .fold(port.len() <= 5, |ok, b| ok & b.is_ascii_digit());
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (target, Ok((path, query, authority)) or Err(status)) for a GET.
    #[test]
    fn split_table() {
        type Want = Result<(&'static [u8], &'static [u8], Option<&'static [u8]>), u16>;
        let cases: &[(&[u8], Want)] = &[
            (b"/", Ok((b"/", b"", None))),
            (b"/a/b?x=1&y", Ok((b"/a/b", b"x=1&y", None))),
            (b"/a?", Ok((b"/a", b"", None))),
            (b"/a?b?c", Ok((b"/a", b"b?c", None))),
            (b"//x", Ok((b"//x", b"", None))),
            (b"/p?http://x", Ok((b"/p", b"http://x", None))),
            (b"http://example.com", Ok((b"/", b"", Some(b"example.com")))),
            (b"http://h", Ok((b"/", b"", Some(b"h")))),
            (
                b"HTTP://example.com:80/p?q",
                Ok((b"/p", b"q", Some(b"example.com:80"))),
            ),
            (
                b"http://example.com:8080/x?y",
                Ok((b"/x", b"y", Some(b"example.com:8080"))),
            ),
            (b"https://h?q", Ok((b"/", b"q", Some(b"h")))),
            (
                b"https://[::1]:8443?q",
                Ok((b"/", b"q", Some(b"[::1]:8443"))),
            ),
            (b"http:///p", Err(400)),
            (b"http://u@h/p", Err(400)),
            (b"ftp://h/p", Err(400)),
            (b"**", Err(400)),
            (b"*", Err(400)),               // asterisk-form with GET
            (b"example.com:443", Err(400)), // authority-form with GET
            (b"example.com:", Err(400)),
            (b"example.com", Err(400)),
            (b"a/b", Err(400)),
            (b"/a#frag", Err(400)),
            (b"", Err(400)),
        ];
        for (t, want) in cases {
            let got = parse_target(b"GET", t)
                .map(|p| (p.path, p.query, p.authority))
                .map_err(|e| e.status());
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(t));
        }
    }

    #[test]
    fn an_origin_form_split_by_http_is_what_parse_target_makes_of_it() {
        let targets = [
            "/",
            "/a/b",
            "/a?q=1",
            "/a?",
            "/%2F?x=%20&y",
            "/a#frag",
            "/a?q#f",
        ];
        for target in targets {
            let sent: http::uri::PathAndQuery = target.parse().unwrap();
            for method in [&b"GET"[..], b"OPTIONS", b"POST"] {
                let split = split_origin_form(
                    method,
                    sent.path().as_bytes(),
                    sent.query().map(str::as_bytes),
                );
                let parsed = parse_target(method, sent.as_str().as_bytes()).ok();
                assert_eq!(split, parsed, "{target}");
                assert!(split.is_some(), "{target}");
            }
        }
        for (method, path) in [
            (&b"CONNECT"[..], &b"/a"[..]),
            (b"GET", b"*"),
            (b"GET", b"a"),
        ] {
            assert_eq!(split_origin_form(method, path, None), None);
        }
    }

    #[test]
    fn method_rules() {
        type Want = Result<&'static [u8], u16>;
        let cases: &[(&[u8], &[u8], Want)] = &[
            (b"OPTIONS", b"*", Ok(b"*")),
            (b"OPTIONS", b"/x", Ok(b"/x")),
            (b"GET", b"*", Err(400)),
            (b"CONNECT", b"h:443", Err(501)),
            (b"CONNECT", b"/", Err(501)),
            (b"GET", b"h:443", Err(400)),
            (b"POST", b"/x?y", Ok(b"/x")),
        ];
        for (method, target, want) in cases {
            let got = parse_target(method, target)
                .map(|p| p.path)
                .map_err(|e| e.status());
            assert_eq!(
                got,
                *want,
                "{} {}",
                String::from_utf8_lossy(method),
                String::from_utf8_lossy(target)
            );
        }
        assert_eq!(
            parse_target(b"CONNECT", b"h:443"),
            Err(ParseError::ConnectNotSupported)
        );
    }

    #[test]
    fn host_table() {
        let good: &[&[u8]] = &[
            b"",
            b"a",
            b"a.b-c_d~e",
            b"a:80",
            b"a:",
            b"127.0.0.1:8080",
            b"[::1]",
            b"[::1]:1",
            b"xn--bcher-kva.example",
            b"a%20b",
        ];
        let bad: &[&[u8]] = &[
            b"a b",
            b"a/b",
            b"u@a",
            b"a:8x",
            b"a:123456",
            b":80",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"a\tb",
            b"a\"b",
            b"\xc3\xa9",
        ];
        for h in good {
            assert!(valid_host(h), "{:?}", String::from_utf8_lossy(h));
        }
        for h in bad {
            assert!(!valid_host(h), "{:?}", String::from_utf8_lossy(h));
        }
    }
}
