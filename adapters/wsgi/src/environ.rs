//! The PEP 3333 `environ` dict: the server's CGI variables as latin-1 `str` (bytes-as-unicode,
//! PEP 3333's "native strings"), plus every `wsgi.*` key.
//!
//! Most of an environ is the same from one request to the next: every key, and values such as
//! `SERVER_PROTOCOL`, `REQUEST_METHOD` or the client's `User-Agent`. Making, hashing and freeing a
//! `str` for each of them was about a third of a bare WSGI hello's instructions (callgrind), so
//! the strings of the last environ are kept ([`Recent`]) and handed out again when the same
//! bytes come at the same place: keys interned (their hash kept, and the same object as the
//! literals an app compares them with), short values that carry no credentials. Python strings
//! are immutable, so sharing one between requests is invisible to the app.

use crate::exchange::Exchange;
use crate::input::Input;
use crate::streams::Errors;
use app_abi::raw::{WsRequest, WS_REQ_MULTIPROCESS, WS_REQ_MULTITHREAD, WS_REQ_RUN_ONCE};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILProtected;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use std::cell::RefCell;
use std::sync::Arc;

/// The server's environ spells these facts `webserver.*`; WSGI apps read the `wsgi.*` keys (from
/// `ws_request.flags`), so these are not copied.
const SERVER_FLAG_VARS: [&[u8]; 3] = [
    b"webserver.multithread",
    b"webserver.multiprocess",
    b"webserver.run_once",
];
const URL_SCHEME_VAR: &[u8] = b"webserver.url_scheme";

/// Variables of the last environ kept for the next (more are made afresh every time).
const RECENT_VARS: usize = 48;
/// Longer values are made afresh every time: they are rarely repeated (and not worth keeping).
const RECENT_VALUE_MAX: usize = 64;
/// Values never kept between requests, whatever their length: they may carry credentials or
/// tokens, which should not outlive their request in the bridge's memory.
const NEVER_KEPT: [&[u8]; 5] = [
    b"HTTP_AUTHORIZATION",
    b"HTTP_PROXY_AUTHORIZATION",
    b"HTTP_COOKIE",
    b"QUERY_STRING",
    b"REQUEST_URI",
];

/// What every environ shares, made once per worker.
pub(crate) struct Constants {
    /// `(1, 0)`.
    version: Py<PyTuple>,
    file_wrapper: Py<PyType>,
    /// The strings of the last environ built, by position.
    recent: GILProtected<RefCell<Recent>>,
}

impl Constants {
    pub(crate) fn new(py: Python<'_>) -> Constants {
        Constants {
            version: PyTuple::new_bound(py, [1, 0]).unbind(),
            file_wrapper: py.get_type_bound::<crate::streams::FileWrapper>().unbind(),
            recent: GILProtected::new(RefCell::new(Recent::default())),
        }
    }
}

/// One variable of a recent environ: its name and (if kept) value, as bytes and as `str`.
struct Kept {
    name: Box<[u8]>,
    key: Py<PyString>,
    value: Option<(Box<[u8]>, Py<PyString>)>,
}

/// The variables of the last environ, by position: requests from the same kind of client send
/// the same headers in the same order, so a variable is compared with the one at its own place.
#[derive(Default)]
struct Recent {
    vars: Vec<Kept>,
}

impl Recent {
    /// The `str` pair for variable `index`, reusing the kept key and value when the bytes match
    /// and keeping the new ones otherwise.
    fn pair<'py>(
        &mut self,
        py: Python<'py>,
        index: usize,
        name: &[u8],
        value: &[u8],
    ) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        if index >= RECENT_VARS {
            return (latin1_str(py, name), latin1_str(py, value));
        }
        let keep_value = value.len() <= RECENT_VALUE_MAX && !NEVER_KEPT.contains(&name);
        if index == self.vars.len() {
            let key = interned_key(py, name);
            self.vars.push(Kept {
                name: name.into(),
                key: key.clone().unbind(),
                value: None,
            });
        } else if *self.vars[index].name != *name {
            let key = interned_key(py, name);
            self.vars[index] = Kept {
                name: name.into(),
                key: key.unbind(),
                value: None,
            };
        }
        let kept = &mut self.vars[index];
        let key = kept.key.bind(py).clone();
        let value = match &kept.value {
            Some((bytes, string)) if keep_value && **bytes == *value => string.bind(py).clone(),
            _ => {
                let string = latin1_str(py, value);
                kept.value = keep_value.then(|| (value.into(), string.clone().unbind()));
                string
            }
        };
        (key, value)
    }
}

/// A variable name as an interned `str`: the same object as equal literals in the app's code,
/// and its hash computed once.
fn interned_key<'py>(py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(name) {
        Ok(ascii) if name.is_ascii() => PyString::intern_bound(py, ascii),
        _ => latin1_str(py, name),
    }
}

/// Bytes as a `str` of the same code points (latin-1 decoding never fails).
pub(crate) fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        // ASCII is UTF-8: no second check.
        if let Ok(ascii) = std::str::from_utf8(bytes) {
            return PyString::new_bound(py, ascii);
        }
    }
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    PyString::new_bound(py, &text)
}

/// Builds the environ of one request.
pub(crate) fn build<'py>(
    py: Python<'py>,
    req: &WsRequest,
    vars: impl Iterator<Item = (&'py [u8], &'py [u8])>,
    exchange: &Arc<Exchange>,
    constants: &Constants,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = PyDict::new_bound(py);
    let mut url_scheme = None;
    // Only while this thread holds the GIL: were it released inside (a finaliser run by the
    // collector may do that) and another thread build an environ meanwhile, that one makes its
    // strings afresh instead of waiting.
    let mut recent = constants.recent.get(py).try_borrow_mut().ok();
    // Counted over the variables that become environ items only: the skipped ones (the
    // scheme, the server's flags) come first on some requests and not on others, and the kept
    // strings must stay at their positions.
    let mut index = 0;
    for (name, value) in vars {
        if name == URL_SCHEME_VAR {
            url_scheme = Some(value);
        } else if !SERVER_FLAG_VARS.contains(&name) {
            let (key, value) = match recent.as_mut() {
                Some(recent) => recent.pair(py, index, name, value),
                None => (latin1_str(py, name), latin1_str(py, value)),
            };
            index += 1;
            environ.set_item(key, value)?;
        }
    }
    drop(recent);
    let flag = |bit: u32| req.flags & bit != 0;
    environ.set_item(intern!(py, "wsgi.version"), constants.version.bind(py))?;
    let url_scheme = match url_scheme {
        None | Some(b"http") => intern!(py, "http").clone(),
        Some(b"https") => intern!(py, "https").clone(),
        Some(other) => latin1_str(py, other),
    };
    environ.set_item(intern!(py, "wsgi.url_scheme"), url_scheme)?;
    environ.set_item(
        intern!(py, "wsgi.input"),
        Input::new(Arc::clone(exchange)).into_py(py),
    )?;
    environ.set_item(
        intern!(py, "wsgi.errors"),
        Errors::new(exchange.logger()).into_py(py),
    )?;
    environ.set_item(intern!(py, "wsgi.multithread"), flag(WS_REQ_MULTITHREAD))?;
    environ.set_item(intern!(py, "wsgi.multiprocess"), flag(WS_REQ_MULTIPROCESS))?;
    environ.set_item(intern!(py, "wsgi.run_once"), flag(WS_REQ_RUN_ONCE))?;
    environ.set_item(
        intern!(py, "wsgi.file_wrapper"),
        constants.file_wrapper.bind(py),
    )?;
    // The body is de-chunked and ends where the request's does: reading to EOF is safe even
    // without CONTENT_LENGTH (the convention Werkzeug and others check).
    environ.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    Ok(environ)
}
