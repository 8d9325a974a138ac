//! The ASGI `http` scope (spec 2.3), or `websocket` scope (spec 2.3) for a request the server
//! flags as a WebSocket handshake, of one request, from the server's environ: `path` is the
//! server's percent-decoded `PATH_INFO` (as UTF-8, invalid bytes replaced), `raw_path` the path
//! as the client sent it (`webserver.raw_path`), so `%2F` and `/` stay apart there.

use app_abi::Request;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// The scope, and whether the request has no body (no Content-Length or 0, not chunked).
pub(crate) fn build<'py>(
    py: Python<'py>,
    req: &Request<'_>,
    asgi_version: &str,
    state: &Bound<'py, PyDict>,
    websocket: bool,
) -> PyResult<(Bound<'py, PyDict>, bool)> {
    let mut method: &[u8] = b"GET";
    let mut path: &[u8] = b"/";
    let mut raw_path: Option<&[u8]> = None;
    let mut query: &[u8] = b"";
    let mut root_path: &[u8] = b"";
    let mut http_version = "1.1";
    let mut scheme: &[u8] = b"http";
    let (mut server_name, mut server_port): (&[u8], &[u8]) = (b"", b"");
    let (mut remote_addr, mut remote_port): (&[u8], &[u8]) = (b"", b"");
    let mut body_empty = true;
    let mut subprotocols: Option<&[u8]> = None;
    let headers = PyList::empty_bound(py);
    for (name, value) in req.vars() {
        match name {
            b"REQUEST_METHOD" => method = value,
            b"PATH_INFO" => path = value,
            b"webserver.raw_path" => raw_path = Some(value),
            b"QUERY_STRING" => query = value,
            b"SCRIPT_NAME" => root_path = value,
            b"SERVER_PROTOCOL" if value == b"HTTP/1.0" => http_version = "1.0",
            b"webserver.url_scheme" => scheme = value,
            b"SERVER_NAME" => server_name = value,
            b"SERVER_PORT" => server_port = value,
            b"REMOTE_ADDR" => remote_addr = value,
            b"REMOTE_PORT" => remote_port = value,
            b"HTTP_SEC_WEBSOCKET_PROTOCOL" => subprotocols = Some(value),
            _ => {}
        }
        let header = match name {
            b"CONTENT_TYPE" => Some(b"content-type".to_vec()),
            b"CONTENT_LENGTH" => {
                body_empty &= value == b"0";
                Some(b"content-length".to_vec())
            }
            _ => name.strip_prefix(b"HTTP_").map(|n| {
                if n == b"TRANSFER_ENCODING" {
                    body_empty = false;
                }
                n.iter()
                    .map(|&b| {
                        if b == b'_' {
                            b'-'
                        } else {
                            b.to_ascii_lowercase()
                        }
                    })
                    .collect()
            }),
        };
        if let Some(header) = header {
            let pair = (
                PyBytes::new_bound(py, &header),
                PyBytes::new_bound(py, value),
            );
            headers.append(PyTuple::new_bound(
                py,
                [pair.0.into_any(), pair.1.into_any()],
            ))?;
        }
    }
    let text = |b: &[u8]| PyString::new_bound(py, &String::from_utf8_lossy(b));
    let port = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
    };
    let scope = PyDict::new_bound(py);
    let asgi = PyDict::new_bound(py);
    asgi.set_item("version", asgi_version)?;
    asgi.set_item("spec_version", "2.3")?;
    scope.set_item("asgi", asgi)?;
    scope.set_item("http_version", http_version)?;
    let extensions = PyDict::new_bound(py);
    if websocket {
        scope.set_item("type", "websocket")?;
        scope.set_item("scheme", if scheme == b"https" { "wss" } else { "ws" })?;
        // The offered subprotocols, in the client's order (one field, joined with ", ").
        let offered = PyList::empty_bound(py);
        for name in subprotocols.unwrap_or_default().split(|&b| b == b',') {
            let name = name.trim_ascii();
            if !name.is_empty() {
                offered.append(text(name))?;
            }
        }
        scope.set_item("subprotocols", offered)?;
        // A denial may be any HTTP response (uvicorn offers it too).
        extensions.set_item("websocket.http.response", PyDict::new_bound(py))?;
    } else {
        scope.set_item("type", "http")?;
        scope.set_item("method", text(method))?;
        scope.set_item("scheme", text(scheme))?;
    }
    scope.set_item("path", text(path))?;
    match raw_path {
        Some(raw) => scope.set_item("raw_path", PyBytes::new_bound(py, raw))?,
        None => scope.set_item("raw_path", py.None())?,
    }
    scope.set_item("query_string", PyBytes::new_bound(py, query))?;
    scope.set_item("root_path", text(root_path))?;
    scope.set_item("headers", headers)?;
    match port(remote_port) {
        Some(p) if !remote_addr.is_empty() => scope.set_item("client", (text(remote_addr), p))?,
        _ => scope.set_item("client", py.None())?,
    }
    scope.set_item("server", (text(server_name), port(server_port)))?;
    scope.set_item("state", state.copy()?)?;
    if !websocket {
        // The server sends a file by path itself (ABI 1.2 `send_file`).
        extensions.set_item("http.response.pathsend", PyDict::new_bound(py))?;
    }
    // asgiref's scopes require the key.
    scope.set_item("extensions", extensions)?;
    Ok((scope, body_empty))
}
