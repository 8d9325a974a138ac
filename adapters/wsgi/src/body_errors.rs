//! What `wsgi.input` raises when the request body fails: one exception class per cause, each a
//! subclass of what frameworks and apps already catch (`OSError`, as gunicorn's body errors are,
//! plus `ValueError`, `TimeoutError` or `ConnectionAbortedError` where that is what it is).
//!
//! These are the client's faults, and the server knows it: whatever the app makes of the
//! exception (a framework's catch-all 500, a traceback), the server answers the client's 4xx —
//! 400 malformed, 408 too slow, 413 over `--max-body` — or nothing when the client left (the
//! host's encoder decides). The bridge remembers the failure ([`crate::exchange::Exchange`]) so
//! that the app's exception is not logged as the app's error.

use app_abi::raw::{WS_ERR_BAD_BODY, WS_ERR_CLIENT_GONE, WS_ERR_TIMEOUT, WS_ERR_TOO_LARGE};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyModule;

/// The classes, defined in Python so that each can have two bases (PyO3's `create_exception!`
/// takes one).
const SOURCE: &str = r#"
class RequestBodyError(OSError):
    """Reading the request body failed by the client's fault; the server answers the client."""

class BadRequestBody(RequestBodyError, ValueError):
    """The request body is malformed (chunked framing): the server answers 400."""

class RequestBodyTooLarge(RequestBodyError):
    """The request body is over the server's --max-body: the server answers 413."""

class RequestBodyTimeout(RequestBodyError, TimeoutError):
    """The client was too slow sending the request body: the server answers 408."""

class ClientDisconnected(RequestBodyError, ConnectionAbortedError):
    """The client left before sending the whole body: nothing is answered."""
"#;

static MODULE: GILOnceCell<Py<PyModule>> = GILOnceCell::new();

/// The exception for a failed host `read` with code `rc`, or `None` if `rc` is not a body
/// failure of the client's (the caller raises its generic `OSError` then).
pub(crate) fn for_code(py: Python<'_>, rc: i32, message: &str) -> Option<PyErr> {
    let class = match rc {
        WS_ERR_BAD_BODY => "BadRequestBody",
        WS_ERR_TOO_LARGE => "RequestBodyTooLarge",
        WS_ERR_TIMEOUT => "RequestBodyTimeout",
        WS_ERR_CLIENT_GONE => "ClientDisconnected",
        _ => return None,
    };
    let module = MODULE.get_or_try_init(py, || {
        PyModule::from_code_bound(py, SOURCE, "webserver.py", "webserver").map(Bound::unbind)
    });
    let made = module.and_then(|m| {
        let class = m.bind(py).getattr(class)?;
        Ok(PyErr::from_value_bound(class.call1((message,))?))
    });
    Some(made.unwrap_or_else(|err| err))
}
