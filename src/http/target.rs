//! Request-target forms (RFC 9112 §3.2) and Host syntax (RFC 9110 §7.2, RFC 3986 §3.2.2).

use super::request::ParseError;

/// Splits a request-target into (path, query) without the `?`.
///
/// - origin-form `/p?q` → (`/p`, `q`) (RFC 9112 §3.2.1);
/// - absolute-form `http://authority/p?q` → (`/p`, `q`), an empty path becomes `/`
///   (RFC 9112 §3.2.2; only `http` and `https`, non-empty authority, no userinfo);
/// - asterisk-form `*` → (`*`, ``) — valid only for OPTIONS, which this function cannot see:
///   use [`split_target_for`] to have the method checked too (RFC 9112 §3.2.4);
/// - authority-form `host:port` → [`ParseError::ConnectNotSupported`] (RFC 9112 §3.2.3);
/// - anything else, or a `#` fragment anywhere → [`ParseError::BadTarget`] (400).
pub(crate) fn split_target(target: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    if target.contains(&b'#') {
        return Err(ParseError::BadTarget("fragment in request target"));
    }
    match target.first() {
        Some(b'/') => Ok(split_query(target)),
        Some(b'*') if target.len() == 1 => Ok((target, b"")),
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
                let (path, query) = split_query(rest);
                Ok((if path.is_empty() { b"/" } else { path }, query))
            } else if is_authority_form(target) {
                Err(ParseError::ConnectNotSupported)
            } else {
                Err(ParseError::BadTarget("unknown request-target form"))
            }
        }
        None => Err(ParseError::BadTarget("empty request target")),
    }
}

/// [`split_target`] plus the method rules: CONNECT → [`ParseError::ConnectNotSupported`]
/// whatever its target; authority-form with any other method → 400 (RFC 9112 §3.2.3: it is
/// "only used for CONNECT requests", so it is a bad request, not an unimplemented feature);
/// `*` only with OPTIONS (§3.2.4).
pub(crate) fn split_target_for<'t>(
    method: &[u8],
    target: &'t [u8],
) -> Result<(&'t [u8], &'t [u8]), ParseError> {
    if method == b"CONNECT" {
        return Err(ParseError::ConnectNotSupported);
    }
    let (path, query) = split_target(target).map_err(|e| match e {
        ParseError::ConnectNotSupported => {
            ParseError::BadTarget("authority-form is only valid for CONNECT")
        }
        e => e,
    })?;
    if path == b"*" && method != b"OPTIONS" {
        return Err(ParseError::BadTarget(
            "asterisk-form is only valid for OPTIONS",
        ));
    }
    Ok((path, query))
}

fn split_query(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b'?') {
        Some(i) => (
            s.get(..i).unwrap_or_default(),
            s.get(i + 1..).unwrap_or_default(),
        ),
        None => (s, b""),
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
        (
            !host.is_empty() && host.iter().all(|&b| is_reg_name_byte(b)),
            port,
        )
    };
    host_ok && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

/// reg-name = *( unreserved / pct-encoded / sub-delims ) (RFC 3986 §3.2.2); `%` let through.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        type Want = Result<(&'static [u8], &'static [u8]), u16>;
        let cases: &[(&[u8], Want)] = &[
            (b"/", Ok((b"/", b""))),
            (b"/a/b?x=1&y", Ok((b"/a/b", b"x=1&y"))),
            (b"/a?", Ok((b"/a", b""))),
            (b"/a?b?c", Ok((b"/a", b"b?c"))),
            (b"//x", Ok((b"//x", b""))),
            (b"http://example.com", Ok((b"/", b""))),
            (b"HTTP://example.com:80/p?q", Ok((b"/p", b"q"))),
            (b"https://[::1]:8443?q", Ok((b"/", b"q"))),
            (b"http:///p", Err(400)),
            (b"http://u@h/p", Err(400)),
            (b"ftp://h/p", Err(400)),
            (b"*", Ok((b"*", b""))),
            (b"**", Err(400)),
            (b"example.com:443", Err(501)),
            (b"example.com:", Err(400)),
            (b"example.com", Err(400)),
            (b"a/b", Err(400)),
            (b"/a#frag", Err(400)),
            (b"", Err(400)),
        ];
        for (t, want) in cases {
            let got = split_target(t).map_err(|e| e.status());
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(t));
        }
    }

    #[test]
    fn method_rules() {
        assert_eq!(
            split_target_for(b"OPTIONS", b"*"),
            Ok((&b"*"[..], &b""[..]))
        );
        assert_eq!(
            split_target_for(b"GET", b"*").map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            split_target_for(b"CONNECT", b"h:443"),
            Err(ParseError::ConnectNotSupported)
        );
        assert_eq!(
            split_target_for(b"CONNECT", b"/"),
            Err(ParseError::ConnectNotSupported)
        );
        assert_eq!(
            split_target_for(b"GET", b"h:443").map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            split_target_for(b"GET", b"/x?y"),
            Ok((&b"/x"[..], &b"y"[..]))
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
