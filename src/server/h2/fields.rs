//! The app's response fields as `h2` takes them: the `http` header maps of a stream's HEADERS
//! frame ([`framed_response`]) and of its trailing HEADERS ([`trailers`]), made from the lines
//! the response encoder validated.
//!
//! Names and values repeat from one response to the next (a gRPC service answers
//! `content-type: application/grpc` and ends with `grpc-status: 0` every time), so each thread
//! keeps the last few short ones it made and shares them: a repeated field costs a comparison
//! and a reference count instead of an allocation and a copy (and `http`'s lower-casing of a
//! name it does not know). The Date, which changes once a second, is kept apart: one value,
//! this second's.

use std::cell::RefCell;

use http::header::{InvalidHeaderName, InvalidHeaderValue};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::http::encoder::FramedHead;
use crate::http::response::{decimal, SERVER_NAME};
use crate::http::response_fields::read_lines;

/// How many names and values a thread keeps (each; the oldest goes first).
const KEPT: usize = 16;

/// The longest name or value kept: longer ones are rarely the same twice.
const KEPT_LEN: usize = 64;

/// A thread's recently made names and values.
#[derive(Default)]
struct Kept {
    names: Vec<HeaderName>,
    values: Vec<HeaderValue>,
    /// Where the next name and value kept go once the lists are full.
    next_name: usize,
    next_value: usize,
    /// The Date of this second, apart from `values`: a new one every second would push the
    /// values that repeat for good out of the list, and lengthen every search in it.
    date: Option<HeaderValue>,
}

thread_local! {
    static KEPT_FIELDS: RefCell<Kept> = const {
        RefCell::new(Kept {
            names: Vec::new(),
            values: Vec::new(),
            next_name: 0,
            next_value: 0,
            date: None,
        })
    };
}

impl Kept {
    /// `name` as a header name (which `http` spells in lower case).
    fn name(&mut self, name: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
        // Apps mostly spell names in lower case, as `http` keeps them: an exact comparison
        // (a `memcmp`) finds those; the byte-by-byte case-blind one only runs for the others.
        fn spelled(kept: &HeaderName) -> &[u8] {
            kept.as_str().as_bytes()
        }
        let names = &self.names;
        let found = names.iter().find(|kept| spelled(kept) == name).or_else(|| {
            names
                .iter()
                .find(|kept| spelled(kept).eq_ignore_ascii_case(name))
        });
        if let Some(kept) = found {
            return Ok(kept.clone());
        }
        let made = HeaderName::from_bytes(name)?;
        if name.len() <= KEPT_LEN {
            keep(&mut self.names, &mut self.next_name, made.clone());
        }
        Ok(made)
    }

    /// `date` as a header value: this second's, shared until the next second's comes.
    fn date(&mut self, date: &[u8]) -> Result<HeaderValue, InvalidHeaderValue> {
        match &self.date {
            Some(kept) if kept.as_bytes() == date => Ok(kept.clone()),
            _ => Ok(self.date.insert(HeaderValue::from_bytes(date)?).clone()),
        }
    }

    fn value(&mut self, value: &[u8]) -> Result<HeaderValue, InvalidHeaderValue> {
        if let Some(kept) = self.values.iter().find(|kept| kept.as_bytes() == value) {
            return Ok(kept.clone());
        }
        let made = HeaderValue::from_bytes(value)?;
        if value.len() <= KEPT_LEN {
            keep(&mut self.values, &mut self.next_value, made.clone());
        }
        Ok(made)
    }
}

/// Adds `item` to `list`, in place of the oldest once `list` holds [`KEPT`].
fn keep<T>(list: &mut Vec<T>, next: &mut usize, item: T) {
    if list.len() < KEPT {
        list.push(item);
        return;
    }
    list[*next] = item;
    *next = (*next + 1) % KEPT;
}

/// The app's head as an HTTP/2 response head, with `date` and the server's name added unless
/// the app sent its own.
pub(super) fn framed_response(
    head: FramedHead<'_>,
    date: Option<&[u8]>,
) -> Result<http::Response<()>, String> {
    let invalid = |e: &dyn std::fmt::Display| format!("response head: {e}");
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(head.status).map_err(|e| invalid(&e))?;
    let map = response.headers_mut();
    KEPT_FIELDS.with_borrow_mut(|kept| {
        for (name, value) in head.fields.headers() {
            let name = kept.name(name).map_err(|e| invalid(&e))?;
            map.append(name, kept.value(value).map_err(|e| invalid(&e))?);
        }
        if let Some(length) = head.content_length {
            let mut digits = [0; 20];
            let value = kept
                .value(decimal(&mut digits, length))
                .map_err(|e| invalid(&e))?;
            map.append(http::header::CONTENT_LENGTH, value);
        }
        if let Some(date) = date {
            let value = kept.date(date).map_err(|e| invalid(&e))?;
            map.append(http::header::DATE, value);
        }
        Ok::<_, String>(())
    })?;
    if head.add_server {
        map.append(http::header::SERVER, HeaderValue::from_static(SERVER_NAME));
    }
    Ok(response)
}

/// The response's trailer fields (`Name: value\r\n` lines, checked by `set_trailers` as header
/// fields are) as the trailing HEADERS frame's map.
pub(super) fn trailers(lines: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    KEPT_FIELDS.with_borrow_mut(|kept| {
        for (name, value) in read_lines(lines) {
            if let (Ok(name), Ok(value)) = (kept.name(name), kept.value(value)) {
                map.append(name, value);
            }
        }
    });
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_value_is_shared_and_the_oldest_kept_goes_first() {
        let first = trailers(b"Grpc-Status: 0\r\nx-n: 0\r\n");
        let again = trailers(b"grpc-status: 0\r\n");
        assert_eq!(first.get("grpc-status"), again.get("grpc-status"));
        assert_eq!(first.get("x-n").map(HeaderValue::as_bytes), Some(&b"0"[..]));
        // The same bytes: the kept copy, not a new one.
        let (a, b) = (&first["grpc-status"], &again["grpc-status"]);
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
        for n in 0..2 * KEPT {
            let lines = format!("x-{n}: v{n}\r\n");
            let map = trailers(lines.as_bytes());
            assert_eq!(map[format!("x-{n}").as_str()], format!("v{n}").as_str());
        }
        KEPT_FIELDS.with_borrow(|kept| {
            assert_eq!((kept.names.len(), kept.values.len()), (KEPT, KEPT));
            assert!(kept.values.iter().all(|v| v.as_bytes() != b"0"));
        });
        let long = format!("x-long: {}\r\n", "v".repeat(KEPT_LEN + 1));
        let map = trailers(long.as_bytes());
        assert_eq!(map["x-long"].len(), KEPT_LEN + 1);
        KEPT_FIELDS.with_borrow(|kept| assert!(kept.values.iter().all(|v| v.len() <= KEPT_LEN)));
    }

    #[test]
    fn the_date_is_shared_within_its_second_and_leaves_the_kept_values_alone() {
        let mut kept = Kept::default();
        let first = kept.date(b"Mon, 07 Dec 2026 13:00:00 GMT").unwrap();
        let again = kept.date(b"Mon, 07 Dec 2026 13:00:00 GMT").unwrap();
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        let next = kept.date(b"Mon, 07 Dec 2026 13:00:01 GMT").unwrap();
        assert_eq!(next, "Mon, 07 Dec 2026 13:00:01 GMT");
        assert!(kept.values.is_empty(), "dates kept among the values");
    }

    #[test]
    fn a_kept_name_is_shared_whatever_the_case_it_comes_in() {
        let spelled = |map: &HeaderMap| map.keys().next().unwrap().as_str().as_ptr();
        let lower = trailers(b"x-case: 1\r\n");
        for again in [&b"x-case: 2\r\n"[..], b"X-Case: 3\r\n"] {
            let map = trailers(again);
            assert_eq!(map.keys().next().unwrap(), "x-case");
            assert_eq!(
                spelled(&map),
                spelled(&lower),
                "made again, not the kept one"
            );
        }
    }
}
