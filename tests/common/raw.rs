//! The raw requests of the request tables (tests/conformance.rs, tests/wsgi_errors.rs) and how
//! their final answer is read.

use super::{Conn, Response};

/// `POST /` with Host and the given extra header lines (each without CRLF) and raw body bytes.
pub fn post(headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut raw = b"POST / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for h in headers {
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw
}

/// `POST /` with `Transfer-Encoding: chunked` and the given raw chunked body.
pub fn chunked(body: &[u8]) -> Vec<u8> {
    post(&["Transfer-Encoding: chunked"], body)
}

/// Reads one final response, skipping any interim (1xx) responses.
pub fn read_final(conn: &mut Conn, head: bool) -> Result<Response, String> {
    loop {
        let mut resp = conn.try_read_head()?;
        if resp.status / 100 == 1 {
            continue;
        }
        conn.try_read_body(&mut resp, head)?;
        return Ok(resp);
    }
}
