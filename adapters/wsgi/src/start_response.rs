//! PEP 3333's `start_response(status, response_headers, exc_info=None)` and the `write` callable
//! it returns. Status and headers must be `str` (PEP 3333's "native strings") holding latin-1 text;
//! anything else raises in the app with a message saying which rule was broken, and a response
//! never started becomes the server's 500. Hop-by-hop headers are dropped ([`python_embed::hop_by_hop`]).

// PyO3 0.22's #[pymethods] expansion converts PyErr into itself, outside any item an `allow`
// could be put on (a clippy false positive).
#![allow(clippy::useless_conversion)]

use crate::exchange::Exchange;
use app_abi::raw::{WS_RESPONSE_CLOSE, WS_RESPONSE_REPLACE};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::Arc;

/// `str` → latin-1 bytes, or a `ValueError` naming `what` (PEP 3333: headers are latin-1).
pub(crate) fn latin1(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let Ok(s) = value.downcast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a str (PEP 3333 native string), not {}",
            type_name(value)
        )));
    };
    let text = s.to_cow()?;
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "{what} {text:?} is not latin-1: encode other text (RFC 8187) before sending it"
            ))
        })
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// `"200 OK"` → (200, `b"OK"`).
fn parse_status(status: &[u8]) -> Option<(u16, &[u8])> {
    let digits = status.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match status.get(3) {
        None => Some((code, b"")),
        Some(b' ') => Some((code, &status[4..])),
        Some(_) => None,
    }
}

/// The `Content-Length` among `headers`, if there is exactly one and it is a number (the server
/// refuses any other).
fn content_length(headers: &[(Vec<u8>, Vec<u8>)]) -> Option<u64> {
    let mut values = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
        .map(|(_, value)| value.trim_ascii());
    let value = values.next()?;
    if values.next().is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[pyclass(module = "webserver", name = "start_response")]
pub(crate) struct StartResponse {
    exchange: Arc<Exchange>,
}

impl StartResponse {
    pub(crate) fn new(exchange: Arc<Exchange>) -> StartResponse {
        StartResponse { exchange }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, response_headers, exc_info = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        response_headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let head = self.exchange.head();
        let exc_info = exc_info.filter(|e| !e.is_none());
        let flags =
            match exc_info {
                Some(info) if head.body_sent => {
                    // PEP 3333: too late to replace the response; re-raise for the app to see.
                    let value = info.downcast::<PyTuple>()?.get_item(1)?;
                    return Err(PyErr::from_value_bound(value));
                }
                Some(_) => WS_RESPONSE_REPLACE,
                None if head.started => return Err(PyRuntimeError::new_err(
                    "start_response called a second time without exc_info (PEP 3333 allows that \
                     only to replace the response after an error)",
                )),
                None => 0,
            };
        let status = latin1(status, "the status")?;
        let (code, reason) = parse_status(&status).ok_or_else(|| {
            PyValueError::new_err(format!(
                "status {:?} is not a three-digit code and a reason, like '200 OK'",
                String::from_utf8_lossy(&status)
            ))
        })?;
        let list = response_headers.downcast::<PyList>().map_err(|_| {
            PyTypeError::new_err(format!(
                "response_headers must be a list of (name, value) tuples, not {}",
                type_name(response_headers)
            ))
        })?;
        let mut owned = Vec::with_capacity(list.len());
        for item in list.iter() {
            let pair = item.downcast::<PyTuple>().ok().filter(|t| t.len() == 2);
            let Some(pair) = pair else {
                return Err(PyTypeError::new_err(format!(
                    "each response header must be a (name, value) tuple, not {}",
                    item.repr()?
                )));
            };
            let name = latin1(&pair.get_item(0)?, "a header name")?;
            let value = latin1(&pair.get_item(1)?, "a header value")?;
            owned.push((name, value));
        }
        let close = python_embed::hop_by_hop::drop_from(&mut owned, self.exchange.logger(), true);
        let flags = if close {
            flags | WS_RESPONSE_CLOSE
        } else {
            flags
        };
        let declared_length = content_length(&owned);
        self.exchange
            .start_response(code, reason, &owned, declared_length, flags)?;
        Py::new(
            py,
            Write {
                exchange: Arc::clone(&self.exchange),
            },
        )
    }
}

/// PEP 3333's legacy `write(data)`: `data` must be bytes; it is sent before the iterable's chunks.
#[pyclass(module = "webserver", name = "write")]
pub(crate) struct Write {
    exchange: Arc<Exchange>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.downcast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() takes bytes (PEP 3333), not {}",
                type_name(data)
            ))
        })?;
        let bytes = bytes.as_bytes();
        if bytes.is_empty() {
            return Ok(());
        }
        self.exchange.write(py, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::{content_length, parse_status};

    #[test]
    fn the_declared_length_is_one_number() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
            pairs
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(content_length(&h(&[("Content-Length", "24")])), Some(24));
        assert_eq!(content_length(&h(&[("content-length", " 0 ")])), Some(0));
        assert_eq!(content_length(&h(&[("X-Other", "5")])), None);
        for bad in ["", "-1", "1e3", "5, 5", "99999999999999999999999"] {
            assert_eq!(
                content_length(&h(&[("Content-Length", bad)])),
                None,
                "{bad}"
            );
        }
        let twice = h(&[("Content-Length", "5"), ("Content-Length", "5")]);
        assert_eq!(content_length(&twice), None);
    }

    #[test]
    fn statuses_are_a_code_and_a_reason() {
        assert_eq!(parse_status(b"200 OK"), Some((200, &b"OK"[..])));
        assert_eq!(
            parse_status(b"404 Not Found"),
            Some((404, &b"Not Found"[..]))
        );
        assert_eq!(parse_status(b"204"), Some((204, &b""[..])));
        for bad in [&b"OK"[..], b"20", b"2000 x", b"099 x", b"20x OK", b""] {
            assert_eq!(parse_status(bad), None, "{bad:?}");
        }
    }
}
