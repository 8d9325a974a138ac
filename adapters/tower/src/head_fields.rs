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
    let fields = parts
        .headers
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name))
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        .chain(content_length.map(|v| (&b"content-length"[..], v)));
    AtMost {
        fields,
        most: parts.headers.len() + usize::from(content_length.is_some()),
    }
}

/// An iterator with an upper bound told (a `HeaderMap`'s own iterator has none), by which
/// `start_response` passes a usual head from its small array of pairs instead of the large one
/// it clears first (a `memset` call of 50 instructions per response). Not `take`, whose `next`
/// was not inlined (200 instructions per response).
struct AtMost<I> {
    fields: I,
    most: usize,
}

impl<I: Iterator> Iterator for AtMost<I> {
    type Item = I::Item;

    #[inline(always)]
    fn next(&mut self) -> Option<I::Item> {
        self.fields.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.most))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound the walk tells must hold for a head past the small array of pairs, with
    /// repeated fields (each value is one field) and a hop-by-hop field left out.
    #[test]
    fn every_field_comes_once_in_order_within_the_told_bound() {
        let mut response = http::Response::new(());
        let headers = response.headers_mut();
        for cookie in ["a=1", "b=2", "c=3"] {
            headers.append(header::SET_COOKIE, cookie.parse().unwrap());
        }
        headers.insert(header::CONNECTION, "close".parse().unwrap());
        for (i, name) in ["x-1", "x-2", "x-3", "x-4"].into_iter().enumerate() {
            headers.insert(name, i.to_string().parse().unwrap());
        }
        let (parts, ()) = response.into_parts();
        let fields = head_fields(&parts, Some(b"5"));
        let (_, most) = fields.size_hint();
        let got: Vec<(&[u8], &[u8])> = fields.collect();
        let want: Vec<(&[u8], &[u8])> = vec![
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"set-cookie", b"c=3"),
            (b"x-1", b"0"),
            (b"x-2", b"1"),
            (b"x-3", b"2"),
            (b"x-4", b"3"),
            (b"content-length", b"5"),
        ];
        assert_eq!(got, want);
        assert!(most.is_some_and(|most| most >= got.len()));
    }
}
