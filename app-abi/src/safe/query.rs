//! The query string as decoded `(name, value)` pairs (`application/x-www-form-urlencoded`, as
//! browsers send forms and as Python's `parse_qsl` reads them), and request headers as text.
//!
//! Kept apart from `request.rs`: everything here is built on `Request`'s public accessors.

use super::request::Request;
use std::borrow::Cow;
use std::str::FromStr;

/// Decoded `(name, value)` pairs of a query string, in order; see [`Request::query_pairs`].
///
/// Pairs are split at `&`, name from value at the first `=` (a bare `name` has the value `""`),
/// and empty pairs are skipped. `+` is a space and `%XX` a byte; an invalid escape stays literal,
/// and bytes that do not form UTF-8 become U+FFFD. A pair that needs no decoding is borrowed.
///
/// ```
/// use app_abi::QueryPairs;
///
/// let pairs: Vec<_> = QueryPairs::new(b"name=J%C3%BCrgen&q=a+b&flag&&x=%zz").collect();
/// assert_eq!(pairs, [("name", "Jürgen"), ("q", "a b"), ("flag", ""), ("x", "%zz")]
///     .map(|(k, v)| (k.into(), v.into())));
/// ```
#[derive(Clone, Debug)]
pub struct QueryPairs<'a> {
    rest: &'a [u8],
}

impl<'a> QueryPairs<'a> {
    /// The pairs of a raw query string (without the `?`).
    pub fn new(query: &'a [u8]) -> QueryPairs<'a> {
        QueryPairs { rest: query }
    }
}

impl<'a> Iterator for QueryPairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (pair, rest) = match self.rest.iter().position(|&b| b == b'&') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &b""[..]),
            };
            self.rest = rest;
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            return Some((form_decode(name), form_decode(value)));
        }
    }
}

/// One `application/x-www-form-urlencoded` component: `+` → space, `%XX` → byte, then UTF-8
/// (lossy). Borrowed when nothing needed decoding.
pub fn form_decode(raw: &[u8]) -> Cow<'_, str> {
    if !raw.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8_lossy(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (raw.get(i + 1).and_then(hex), raw.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

impl<'a> Request<'a> {
    /// The query string as decoded pairs (see [`QueryPairs`]).
    pub fn query_pairs(&self) -> QueryPairs<'a> {
        QueryPairs::new(self.query())
    }

    /// The decoded value of the first query pair whose decoded name is `name`:
    /// `?name=J%C3%BCrgen` gives `Some("Jürgen")`, `?flag` gives `Some("")`.
    pub fn query_get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// [`Request::query_get`] parsed with [`FromStr`]: `None` when absent, `Some(Err(_))` when it
    /// does not parse (`?n=5` → `query_parse::<u32>("n") == Some(Ok(5))`).
    pub fn query_parse<T: FromStr>(&self, name: &str) -> Option<Result<T, T::Err>> {
        self.query_get(name).map(|v| v.parse())
    }

    /// A request header as text (see [`Request::header`]); bytes that are not UTF-8 become
    /// U+FFFD (HTTP header values are ASCII in practice; obs-text is rare).
    pub fn header_str(&self, name: &str) -> Option<Cow<'a, str>> {
        self.header(name).map(String::from_utf8_lossy)
    }

    /// The request headers as `(lower-case name, text value)` pairs, in environ order (see
    /// [`Request::headers`]).
    pub fn headers_str(&self) -> impl Iterator<Item = (String, Cow<'a, str>)> {
        self.headers()
            .map(|(name, value)| (name, String::from_utf8_lossy(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{WsBytes, WsPair, WsRequest};

    #[test]
    fn query_and_headers_as_text() {
        let pairs = [
            (
                "QUERY_STRING",
                &b"name=J%C3%BCrgen&n=5&n=6&bad=x&pct=100%25"[..],
            ),
            ("HTTP_X_TRACE", &b"abc"[..]),
            ("HTTP_X_BYTES", &b"caf\xe9"[..]),
        ];
        let environ: Vec<WsPair> = pairs
            .iter()
            .map(|(n, v)| WsPair {
                name: WsBytes::from_slice(n.as_bytes()),
                value: WsBytes::from_slice(v),
            })
            .collect();
        let raw = WsRequest {
            size: core::mem::size_of::<WsRequest>() as u32,
            flags: 0,
            environ: environ.as_ptr(),
            environ_len: environ.len(),
            io: core::ptr::null_mut(),
            host: core::ptr::null(),
            log_ctx: core::ptr::null(),
        };
        // SAFETY: the environ outlives `req`; a null host is allowed.
        let req = unsafe { Request::from_raw(&raw) };
        assert_eq!(req.query_get("name").as_deref(), Some("Jürgen"));
        assert_eq!(
            req.query_parse::<u32>("n"),
            Some(Ok(5)),
            "the first of repeats"
        );
        assert!(req.query_parse::<u32>("bad").unwrap().is_err());
        assert_eq!(req.query_parse::<u32>("missing"), None);
        assert_eq!(req.query_get("pct").as_deref(), Some("100%"));
        assert_eq!(req.query_pairs().count(), 5);
        assert_eq!(req.header_str("x-trace").as_deref(), Some("abc"));
        assert_eq!(req.header_str("X-Bytes").as_deref(), Some("caf\u{fffd}"));
        let all: Vec<(String, String)> = req
            .headers_str()
            .map(|(n, v)| (n, v.into_owned()))
            .collect();
        assert_eq!(all[0], ("x-trace".to_owned(), "abc".to_owned()));
    }
}
