//! The ASGI `http` scope (spec 2.3) of one request, from the server's environ.
//!
//! The environ has no raw request target: `path` is the server's percent-decoded `PATH_INFO` (as
//! UTF-8, invalid bytes replaced) and `raw_path` is that path percent-encoded again, so a path
//! that spelled a byte `%41` where `A` would do reads back as `A`, and `%2F` as `/`.

use app_abi::Request;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// The scope, and whether the request has no body (no Content-Length or 0, not chunked).
pub(crate) fn build<'py>(
    py: Python<'py>,
    req: &Request<'_>,
    asgi_version: &str,
    state: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyDict>, bool)> {
    let mut method: &[u8] = b"GET";
    let mut path: &[u8] = b"/";
    let mut query: &[u8] = b"";
    let mut root_path: &[u8] = b"";
    let mut http_version = "1.1";
    let mut scheme: &[u8] = b"http";
    let (mut server_name, mut server_port): (&[u8], &[u8]) = (b"", b"");
    let (mut remote_addr, mut remote_port): (&[u8], &[u8]) = (b"", b"");
    let mut body_empty = true;
    let headers = PyList::empty_bound(py);
    for (name, value) in req.vars() {
        match name {
            b"REQUEST_METHOD" => method = value,
            b"PATH_INFO" => path = value,
            b"QUERY_STRING" => query = value,
            b"SCRIPT_NAME" => root_path = value,
            b"SERVER_PROTOCOL" if value == b"HTTP/1.0" => http_version = "1.0",
            b"webserver.url_scheme" => scheme = value,
            b"SERVER_NAME" => server_name = value,
            b"SERVER_PORT" => server_port = value,
            b"REMOTE_ADDR" => remote_addr = value,
            b"REMOTE_PORT" => remote_port = value,
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
    scope.set_item("type", "http")?;
    scope.set_item("asgi", asgi)?;
    scope.set_item("http_version", http_version)?;
    scope.set_item("method", text(method))?;
    scope.set_item("scheme", text(scheme))?;
    scope.set_item("path", text(path))?;
    scope.set_item("raw_path", PyBytes::new_bound(py, &percent_encode(path)))?;
    scope.set_item("query_string", PyBytes::new_bound(py, query))?;
    scope.set_item("root_path", text(root_path))?;
    scope.set_item("headers", headers)?;
    match port(remote_port) {
        Some(p) if !remote_addr.is_empty() => scope.set_item("client", (text(remote_addr), p))?,
        _ => scope.set_item("client", py.None())?,
    }
    scope.set_item("server", (text(server_name), port(server_port)))?;
    scope.set_item("state", state.copy()?)?;
    // The server sends a file by path itself (ABI 1.2 `send_file`; read in chunks by an older one).
    let extensions = PyDict::new_bound(py);
    extensions.set_item("http.response.pathsend", PyDict::new_bound(py))?;
    scope.set_item("extensions", extensions)?;
    Ok((scope, body_empty))
}

/// `path` with every byte outside RFC 3986's `pchar` and `/` percent-encoded.
fn percent_encode(path: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_path_escapes_what_a_path_segment_cannot_hold() {
        assert_eq!(
            super::percent_encode(b"/items/a b/%/caf\xc3\xa9"),
            b"/items/a%20b/%25/caf%C3%A9"
        );
        assert_eq!(super::percent_encode(b"/a:b@c;d=e"), b"/a:b@c;d=e");
    }
}
