//! What a static file's request headers ask beyond the file itself: `If-None-Match` and
//! `If-Modified-Since` (RFC 9110 §13.1.2, §13.1.3: the file is not sent again), `Range` with
//! `If-Range` (RFC 9110 §14.2, §13.1.5: one part of it), and `Accept-Encoding` (§12.5.3: which
//! precompressed sibling the client takes). Pure functions over header values, so every rule
//! has a table test; a malformed header is ignored, as the RFC allows, never an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators of the file being answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    /// Strong, nginx's form: `"{mtime seconds in hex}-{size in hex}"`.
    pub(crate) etag: String,
    /// Modification time in whole seconds since the epoch (what `Last-Modified` can say).
    pub(crate) modified: u64,
}

impl Validators {
    pub(crate) fn new(modified: SystemTime, size: u64) -> Validators {
        let modified = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        Validators {
            etag: format!("\"{modified:x}-{size:x}\""),
            modified,
        }
    }

    /// The `Last-Modified` value (IMF-fixdate).
    pub(crate) fn last_modified(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.modified))
    }
}

/// True if the client's copy is current: `If-None-Match` lists the ETag (weak comparison) or is
/// `*`; without `If-None-Match`, `If-Modified-Since` is no earlier than the file's time.
pub(crate) fn not_modified(
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<&[u8]>,
    file: &Validators,
) -> bool {
    if let Some(list) = if_none_match {
        return list_matches(list, &file.etag);
    }
    if_modified_since
        .and_then(parse_date)
        .is_some_and(|since| file.modified <= since)
}

/// What to send of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// All of it (200): no Range, one that is malformed or not in bytes, several ranges, or an
    /// `If-Range` that does not match the file any more.
    Whole,
    /// `first..=last` (206).
    Range { first: u64, last: u64 },
    /// A range that starts past the end (416).
    Unsatisfiable,
}

/// The part of a file of `size` bytes that `Range` (valid while `If-Range` matches) asks for.
pub(crate) fn part(
    range: Option<&[u8]>,
    if_range: Option<&[u8]>,
    size: u64,
    file: &Validators,
) -> Part {
    let Some(range) = range else {
        return Part::Whole;
    };
    if let Some(validator) = if_range {
        let validator = trim(validator);
        let current = if validator.starts_with(b"\"") || validator.starts_with(b"W/") {
            // A strong comparison: a weak tag never matches.
            !validator.starts_with(b"W/") && validator == file.etag.as_bytes()
        } else {
            parse_date(validator) == Some(file.modified)
        };
        if !current {
            return Part::Whole;
        }
    }
    let Some(set) = strip_prefix_ignore_case(trim(range), b"bytes=") else {
        return Part::Whole;
    };
    let mut specs = set
        .split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        // Several ranges: the whole file, rather than a multipart/byteranges body.
        return Part::Whole;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Part::Whole;
    };
    let (first, last) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
    match (number(first), number(last)) {
        // `-N`: the last N bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                Part::Unsatisfiable
            } else {
                Part::Range {
                    first: size - suffix.min(size),
                    last: size - 1,
                }
            }
        }
        (Some(first), _) if first >= size && (last.is_empty() || number(last).is_some()) => {
            match number(last) {
                Some(last) if last < first => Part::Whole,
                _ => Part::Unsatisfiable,
            }
        }
        (Some(first), None) if last.is_empty() => Part::Range {
            first,
            last: size - 1,
        },
        (Some(first), Some(last)) if last >= first => Part::Range {
            first,
            last: last.min(size - 1),
        },
        _ => Part::Whole,
    }
}

/// A precompressed sibling a client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Br,
    Gzip,
}

impl Coding {
    /// The sibling's suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// Its `Content-Encoding`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// The codings `Accept-Encoding` accepts, best first (higher q, then br before gzip); `*`
/// stands for each not named; `q=0` refuses.
pub(crate) fn accepted_codings(accept_encoding: Option<&[u8]>) -> Vec<Coding> {
    let Some(header) = accept_encoding else {
        return Vec::new();
    };
    let (mut br, mut gzip, mut any) = (None, None, None);
    for item in header.split(|&b| b == b',') {
        let mut params = item.split(|&b| b == b';');
        let coding = trim(params.next().unwrap_or_default());
        let q = params
            .map(trim)
            .find_map(|p| strip_prefix_ignore_case(p, b"q="))
            .map_or(Some(1000), quality);
        let Some(q) = q else { continue };
        if coding.eq_ignore_ascii_case(b"br") {
            br = Some(q);
        } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            gzip = Some(q);
        } else if coding == b"*" {
            any = Some(q);
        }
    }
    let mut accepted: Vec<(u16, Coding)> = [(br, Coding::Br), (gzip, Coding::Gzip)]
        .into_iter()
        .filter_map(|(q, coding)| q.or(any).filter(|&q| q > 0).map(|q| (q, coding)))
        .collect();
    // Stable: br stays before gzip at equal q.
    accepted.sort_by_key(|&(q, _)| std::cmp::Reverse(q));
    accepted.into_iter().map(|(_, coding)| coding).collect()
}

/// A qvalue (RFC 9110 §12.4.2) in thousandths; `None` if malformed.
fn quality(value: &[u8]) -> Option<u16> {
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison: `W/` is ignored on both
/// sides). An empty `etag` (an app's file answer without one) matches only `*`.
fn list_matches(list: &[u8], etag: &str) -> bool {
    let list = trim(list);
    if list == b"*" {
        return true;
    }
    let etag = etag.strip_prefix("W/").unwrap_or(etag).as_bytes();
    !etag.is_empty()
        && list
            .split(|&b| b == b',')
            .map(trim)
            .any(|tag| tag.strip_prefix(b"W/").unwrap_or(tag) == etag)
}

/// An HTTP date as whole seconds since the epoch.
pub(crate) fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(trim(value)).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Decimal digits only (no sign, no spaces), as a byte position.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..).unwrap_or_default())
}

/// Without surrounding spaces and tabs (OWS).
fn trim(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Validators {
        // 1_700_000_000 = Tue, 14 Nov 2023 22:13:20 GMT
        Validators::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000), 1000)
    }

    #[test]
    fn validators_are_nginx_style() {
        let file = file();
        assert_eq!(file.etag, "\"6553f100-3e8\"");
        assert_eq!(file.last_modified(), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn not_modified_table() {
        let etag = file().etag;
        let cases: &[(Option<&str>, Option<&str>, bool)] = &[
            (None, None, false),
            (Some(&etag), None, true),
            (Some("\"other\""), None, false),
            (Some(&format!("\"a\", W/{etag}")), None, true),
            (Some("*"), None, true),
            // If-None-Match decides alone when present.
            (
                Some("\"other\""),
                Some("Tue, 14 Nov 2023 22:13:20 GMT"),
                false,
            ),
            (None, Some("Tue, 14 Nov 2023 22:13:20 GMT"), true),
            (None, Some("Wed, 15 Nov 2023 00:00:00 GMT"), true),
            (None, Some("Tue, 14 Nov 2023 22:13:19 GMT"), false),
            (None, Some("yesterday"), false),
        ];
        for (inm, ims, want) in cases {
            let got = not_modified(inm.map(str::as_bytes), ims.map(str::as_bytes), &file());
            assert_eq!(got, *want, "{inm:?} {ims:?}");
        }
    }

    #[test]
    fn range_table() {
        let range = |first, last| Part::Range { first, last };
        let cases: &[(&str, Part)] = &[
            ("bytes=0-99", range(0, 99)),
            ("bytes=500-", range(500, 999)),
            ("bytes=-100", range(900, 999)),
            ("bytes=-5000", range(0, 999)),
            ("bytes=990-2000", range(990, 999)),
            ("BYTES = 1-1", Part::Whole),
            ("Bytes=1-1", range(1, 1)),
            ("bytes= 2-3 ", range(2, 3)),
            ("bytes=1000-", Part::Unsatisfiable),
            ("bytes=1000-1001", Part::Unsatisfiable),
            ("bytes=-0", Part::Unsatisfiable),
            ("bytes=0-1,5-6", Part::Whole),
            ("bytes=5-1", Part::Whole),
            ("bytes=1500-1", Part::Whole),
            ("bytes=a-b", Part::Whole),
            ("bytes=-", Part::Whole),
            ("bytes=+1-2", Part::Whole),
            ("items=0-1", Part::Whole),
            ("bytes=99999999999999999999-", Part::Whole),
        ];
        for (header, want) in cases {
            let got = part(Some(header.as_bytes()), None, 1000, &file());
            assert_eq!(got, *want, "{header}");
        }
        assert_eq!(part(None, None, 1000, &file()), Part::Whole);
        assert_eq!(
            part(Some(b"bytes=0-"), None, 0, &file()),
            Part::Unsatisfiable
        );
        assert_eq!(
            part(Some(b"bytes=-1"), None, 0, &file()),
            Part::Unsatisfiable
        );
    }

    #[test]
    fn if_range_keeps_the_range_only_while_the_file_is_the_same() {
        let file = file();
        let etag = file.etag.clone();
        let cases: &[(&str, bool)] = &[
            (&etag, true),
            ("\"stale\"", false),
            (&format!("W/{etag}"), false),
            ("Tue, 14 Nov 2023 22:13:20 GMT", true),
            ("Tue, 14 Nov 2023 22:13:21 GMT", false),
            ("garbage", false),
        ];
        for (if_range, kept) in cases {
            let got = part(Some(b"bytes=0-0"), Some(if_range.as_bytes()), 1000, &file);
            let want = if *kept {
                Part::Range { first: 0, last: 0 }
            } else {
                Part::Whole
            };
            assert_eq!(got, want, "{if_range}");
        }
    }

    #[test]
    fn accepted_codings_table() {
        use Coding::{Br, Gzip};
        let cases: &[(Option<&str>, &[Coding])] = &[
            (None, &[]),
            (Some(""), &[]),
            (Some("gzip"), &[Gzip]),
            (Some("gzip, deflate, br"), &[Br, Gzip]),
            (Some("br;q=0.5, gzip"), &[Gzip, Br]),
            (Some("br;q=0, gzip"), &[Gzip]),
            (Some("*"), &[Br, Gzip]),
            (Some("*;q=0.1, gzip;q=0.2"), &[Gzip, Br]),
            (Some("*, br;q=0"), &[Gzip]),
            (Some("identity"), &[]),
            (Some("GZIP ; Q=1.0"), &[Gzip]),
            (Some("gzip;q=2"), &[]),
            (Some("gzip;q=0.0001"), &[]),
            (Some("x-gzip"), &[Gzip]),
        ];
        for (header, want) in cases {
            assert_eq!(
                accepted_codings(header.map(str::as_bytes)),
                *want,
                "{header:?}"
            );
        }
    }
}
