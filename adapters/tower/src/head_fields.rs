//! A tower response's head as the server takes it (`start_response`, `upgrade`): its fields
//! without the hop-by-hop ones the server owns, and the Content-Length hyper would add from the
//! body's exact length, all without allocating.

use http::header::{self, HeaderName};
use http::StatusCode;

/// The head's fields as the server takes them, without allocating: hop-by-hop fields left out,
/// then `content_length` if given.
pub(crate) fn head_fields<'a>(
    parts: &'a http::response::Parts,
    content_length: Option<&'a [u8]>,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    parts
        .headers
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name))
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        .chain(content_length.map(|v| (&b"content-length"[..], v)))
}

/// A 101's fields as the server's `upgrade` takes them: [`head_fields`] plus `Upgrade` (the
/// protocol switched to; the server adds `Connection: Upgrade` itself), without the
/// `Content-Length` axum's router adds from the empty body's size (a 1xx has none: hyper drops it
/// too).
pub(crate) fn upgrade_fields(
    parts: &http::response::Parts,
) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    parts
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .map(|v| (&b"upgrade"[..], v.as_bytes()))
        .chain(
            head_fields(parts, None)
                .filter(|(name, _)| !name.eq_ignore_ascii_case(b"content-length")),
        )
}

/// The Content-Length to add from the body's exact length (as hyper does): only where the status
/// allows a body and the app sent none.
pub(crate) fn content_length<'d>(
    parts: &http::response::Parts,
    length: Option<u64>,
    digits: &'d mut LengthDigits,
) -> Option<&'d [u8]> {
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    if bodiless || has_field(&parts.headers, &header::CONTENT_LENGTH) {
        return None;
    }
    length.map(|n| digits.format(n))
}

/// `headers.contains_key(name)`, by a walk for the few fields a response usually has (cheaper
/// than hashing the name).
fn has_field(headers: &http::HeaderMap, name: &HeaderName) -> bool {
    if headers.keys_len() <= 8 {
        headers.keys().any(|key| key == name)
    } else {
        headers.contains_key(name)
    }
}

/// Fields the server owns (RFC 9110 §7.6.1 hop-by-hop, plus framing): it refuses them from apps.
/// Matched on the name's text (lower-case in a `HeaderName`), which builds no `HeaderName` per
/// field.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "keep-alive"
            | "proxy-connection"
    )
}

/// A decimal `u64` formatted without allocating.
#[derive(Default)]
pub(crate) struct LengthDigits([u8; 20]);

impl LengthDigits {
    pub(crate) fn format(&mut self, mut n: u64) -> &[u8] {
        let mut at = self.0.len();
        loop {
            at -= 1;
            self.0[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return &self.0[at..];
            }
        }
    }
}
