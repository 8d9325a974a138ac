//! The PEP 3333 `environ` dict: the server's CGI variables as latin-1 `str` (bytes-as-unicode,
//! PEP 3333's "native strings"), plus every `wsgi.*` key.

use crate::exchange::Exchange;
use crate::input::Input;
use crate::streams::Errors;
use app_abi::raw::{WsRequest, WS_REQ_MULTIPROCESS, WS_REQ_MULTITHREAD, WS_REQ_RUN_ONCE};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use std::sync::Arc;

/// The server's environ spells these facts `webserver.*`; WSGI apps read the `wsgi.*` keys (from
/// `ws_request.flags`), so these are not copied.
const SERVER_FLAG_VARS: [&[u8]; 3] = [
    b"webserver.multithread",
    b"webserver.multiprocess",
    b"webserver.run_once",
];
const URL_SCHEME_VAR: &[u8] = b"webserver.url_scheme";

/// What every environ shares, made once per worker.
pub(crate) struct Constants {
    /// `(1, 0)`.
    version: Py<PyTuple>,
    file_wrapper: Py<PyType>,
}

impl Constants {
    pub(crate) fn new(py: Python<'_>) -> Constants {
        Constants {
            version: PyTuple::new_bound(py, [1, 0]).unbind(),
            file_wrapper: py.get_type_bound::<crate::streams::FileWrapper>().unbind(),
        }
    }
}

/// Bytes as a `str` of the same code points (latin-1 decoding never fails).
pub(crate) fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(ascii) if bytes.is_ascii() => PyString::new_bound(py, ascii),
        _ => {
            let text: String = bytes.iter().map(|&b| char::from(b)).collect();
            PyString::new_bound(py, &text)
        }
    }
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
    for (name, value) in vars {
        if name == URL_SCHEME_VAR {
            url_scheme = Some(value);
        } else if !SERVER_FLAG_VARS.contains(&name) {
            environ.set_item(latin1_str(py, name), latin1_str(py, value))?;
        }
    }
    let flag = |bit: u32| req.flags & bit != 0;
    environ.set_item("wsgi.version", constants.version.bind(py))?;
    environ.set_item(
        "wsgi.url_scheme",
        latin1_str(py, url_scheme.unwrap_or(b"http")),
    )?;
    environ.set_item("wsgi.input", Input::new(Arc::clone(exchange)).into_py(py))?;
    environ.set_item("wsgi.errors", Errors::new(exchange.logger()).into_py(py))?;
    environ.set_item("wsgi.multithread", flag(WS_REQ_MULTITHREAD))?;
    environ.set_item("wsgi.multiprocess", flag(WS_REQ_MULTIPROCESS))?;
    environ.set_item("wsgi.run_once", flag(WS_REQ_RUN_ONCE))?;
    environ.set_item("wsgi.file_wrapper", constants.file_wrapper.bind(py))?;
    // The body is de-chunked and ends where the request's does: reading to EOF is safe even
    // without CONTENT_LENGTH (the convention Werkzeug and others check).
    environ.set_item("wsgi.input_terminated", true)?;
    Ok(environ)
}
