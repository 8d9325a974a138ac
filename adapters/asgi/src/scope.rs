//! The ASGI `http` scope (spec 2.3), or `websocket` scope (spec 2.3) for a request the server
//! flags as a WebSocket handshake, of one request, from the server's environ: `path` is the
//! server's percent-decoded `PATH_INFO` (as UTF-8, invalid bytes replaced), `raw_path` the path
//! as the client sent it (`webserver.raw_path`), so `%2F` and `/` stay apart there.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// Whether a request with these variables has no body (no Content-Length or 0, not chunked).
pub(crate) fn body_empty<'a>(mut vars: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    vars.all(|(name, value)| match name {
        b"CONTENT_LENGTH" => value == b"0",
        b"HTTP_TRANSFER_ENCODING" => false,
        _ => true,
    })
}

/// The scope of the request with these variables.
pub(crate) fn build<'py, 'a>(
    py: Python<'py>,
    vars: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    asgi_version: &str,
    state: &Bound<'py, PyDict>,
    websocket: bool,
    trailers: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut method: &[u8] = b"GET";
    let mut path: &[u8] = b"/";
    let mut raw_path: Option<&[u8]> = None;
    let mut query: &[u8] = b"";
    let mut root_path: &[u8] = b"";
    let mut http_version = "1.1";
    let mut scheme: &[u8] = b"http";
    let (mut server_name, mut server_port): (&[u8], &[u8]) = (b"", b"");
    let (mut remote_addr, mut remote_port): (&[u8], &[u8]) = (b"", b"");
    let mut subprotocols: Option<&[u8]> = None;
    let headers = PyList::empty_bound(py);
    // One buffer for every header name's lowercase form.
    let mut lower = Vec::with_capacity(64);
    for (name, value) in vars {
        match name {
            b"REQUEST_METHOD" => method = value,
            b"PATH_INFO" => path = value,
            b"webserver.raw_path" => raw_path = Some(value),
            b"QUERY_STRING" => query = value,
            b"SCRIPT_NAME" => root_path = value,
            b"SERVER_PROTOCOL" if value == b"HTTP/1.0" => http_version = "1.0",
            b"SERVER_PROTOCOL" if value == b"HTTP/2" => http_version = "2",
            b"webserver.url_scheme" => scheme = value,
            b"SERVER_NAME" => server_name = value,
            b"SERVER_PORT" => server_port = value,
            b"REMOTE_ADDR" => remote_addr = value,
            b"REMOTE_PORT" => remote_port = value,
            b"HTTP_SEC_WEBSOCKET_PROTOCOL" => subprotocols = Some(value),
            _ => {}
        }
        let header: &[u8] = match name {
            b"CONTENT_TYPE" => b"content-type",
            b"CONTENT_LENGTH" => b"content-length",
            _ => match name.strip_prefix(b"HTTP_") {
                Some(n) => {
                    lower.clear();
                    lower.extend(n.iter().map(|&b| match b {
                        b'_' => b'-',
                        b => b.to_ascii_lowercase(),
                    }));
                    &lower
                }
                None => continue,
            },
        };
        let pair = [
            PyBytes::new_bound(py, header).into_any(),
            PyBytes::new_bound(py, value).into_any(),
        ];
        headers.append(PyTuple::new_bound(py, pair))?;
    }
    // Keys and the usual values are interned: made once per worker, not per request.
    let text = |b: &[u8]| PyString::new_bound(py, &String::from_utf8_lossy(b));
    let port = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
    };
    let scope = PyDict::new_bound(py);
    let asgi = PyDict::new_bound(py);
    let asgi_version = match asgi_version {
        "2.0" => intern!(py, "2.0"),
        _ => intern!(py, "3.0"),
    };
    asgi.set_item(intern!(py, "version"), asgi_version)?;
    asgi.set_item(intern!(py, "spec_version"), intern!(py, "2.3"))?;
    scope.set_item(intern!(py, "asgi"), asgi)?;
    let http_version = match http_version {
        "1.0" => intern!(py, "1.0"),
        "2" => intern!(py, "2"),
        _ => intern!(py, "1.1"),
    };
    scope.set_item(intern!(py, "http_version"), http_version)?;
    let extensions = PyDict::new_bound(py);
    if websocket {
        scope.set_item(intern!(py, "type"), intern!(py, "websocket"))?;
        let scheme = match scheme {
            b"https" => intern!(py, "wss"),
            _ => intern!(py, "ws"),
        };
        scope.set_item(intern!(py, "scheme"), scheme)?;
        // The offered subprotocols, in the client's order (one field, joined with ", ").
        let offered = PyList::empty_bound(py);
        for name in subprotocols.unwrap_or_default().split(|&b| b == b',') {
            let name = name.trim_ascii();
            if !name.is_empty() {
                offered.append(text(name))?;
            }
        }
        scope.set_item(intern!(py, "subprotocols"), offered)?;
        // A denial may be any HTTP response (uvicorn offers it too).
        extensions.set_item(
            intern!(py, "websocket.http.response"),
            PyDict::new_bound(py),
        )?;
    } else {
        scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
        let method = match method {
            b"GET" => intern!(py, "GET").clone(),
            b"POST" => intern!(py, "POST").clone(),
            b"HEAD" => intern!(py, "HEAD").clone(),
            b"PUT" => intern!(py, "PUT").clone(),
            b"DELETE" => intern!(py, "DELETE").clone(),
            b"PATCH" => intern!(py, "PATCH").clone(),
            b"OPTIONS" => intern!(py, "OPTIONS").clone(),
            other => text(other),
        };
        scope.set_item(intern!(py, "method"), method)?;
        let scheme = match scheme {
            b"http" => intern!(py, "http").clone(),
            b"https" => intern!(py, "https").clone(),
            other => text(other),
        };
        scope.set_item(intern!(py, "scheme"), scheme)?;
    }
    scope.set_item(intern!(py, "path"), text(path))?;
    match raw_path {
        Some(raw) => scope.set_item(intern!(py, "raw_path"), PyBytes::new_bound(py, raw))?,
        None => scope.set_item(intern!(py, "raw_path"), py.None())?,
    }
    scope.set_item(intern!(py, "query_string"), PyBytes::new_bound(py, query))?;
    let root_path = match root_path {
        b"" => intern!(py, "").clone(),
        other => text(other),
    };
    scope.set_item(intern!(py, "root_path"), root_path)?;
    scope.set_item(intern!(py, "headers"), headers)?;
    match port(remote_port) {
        Some(p) if !remote_addr.is_empty() => {
            scope.set_item(intern!(py, "client"), (text(remote_addr), p))?
        }
        _ => scope.set_item(intern!(py, "client"), py.None())?,
    }
    scope.set_item(
        intern!(py, "server"),
        (text(server_name), port(server_port)),
    )?;
    scope.set_item(intern!(py, "state"), state.copy()?)?;
    if !websocket {
        // The server sends a file by path or descriptor itself (ABI 1.2 `send_file`).
        extensions.set_item(intern!(py, "http.response.pathsend"), PyDict::new_bound(py))?;
        extensions.set_item(
            intern!(py, "http.response.zerocopysend"),
            PyDict::new_bound(py),
        )?;
        if trailers {
            // The server sends response trailers (ABI 1.3 `set_trailers`).
            extensions.set_item(intern!(py, "http.response.trailers"), PyDict::new_bound(py))?;
        }
    }
    // asgiref's scopes require the key.
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
}
