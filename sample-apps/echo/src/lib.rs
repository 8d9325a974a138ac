//! `echo`: the end-to-end tests' contract — reflects the request as JSON.
//!
//! Any request gets `200`, `Content-Type: application/json` and an object:
//! `{"method", "path" (PATH_INFO, lossy UTF-8), "query" (raw QUERY_STRING), "headers"
//! ({lower-case-dashed name: value}, HTTP_* plus content-type/content-length), "body_len",
//! "body_sha256" (lowercase hex), "remote_addr", "remote_port", "url_scheme" (REMOTE_ADDR,
//! REMOTE_PORT and webserver.url_scheme: who the server says the client is), "ssl_client"
//! ({SSL_CLIENT_* name: value}: the TLS client certificate's variables), "http_x_probe"
//! (`var("HTTP_X_PROBE")`), "http_vars" (how many HTTP_* variables the environ holds)}`.
//! `app_parts` is the same app flagged `WS_APP_REQUEST_PARTS`; `app_no_environ` flagged
//! `WS_APP_REQUEST_PARTS | WS_APP_NO_ENVIRON` (its environ is empty). The body is read in full through the input stream; if that
//! fails the answer is `400 {"error": "..."}` (and the failure is logged).

use app_abi::{export_app, App, InitContext, Request, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::Read;

/// The app: no state.
pub struct Echo;

/// Streams the request body through SHA-256: (length, hex digest).
fn hash_body(req: &mut Request<'_>) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut body = req.body();
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((len, hex))
}

impl App for Echo {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        Ok(Echo)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        let (body_len, body_sha256) = match hash_body(req) {
            Ok(r) => r,
            Err(e) => {
                req.warn(&format!("echo: reading the request body failed: {e}"));
                let body = json!({ "error": e.to_string() });
                return Response::json(400, body.to_string());
            }
        };
        let headers: Map<String, Value> = req
            .headers()
            .map(|(name, value)| (name, Value::from(String::from_utf8_lossy(value))))
            .collect();
        let var = |name: &[u8]| {
            req.var(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let ssl_client: Map<String, Value> = req
            .vars()
            .filter(|(name, _)| name.starts_with(b"SSL_CLIENT_"))
            .map(|(name, value)| {
                (
                    String::from_utf8_lossy(name).into_owned(),
                    Value::from(String::from_utf8_lossy(value)),
                )
            })
            .collect();
        let body = json!({
            "method": req.method(),
            "path": req.path_str(),
            "query": String::from_utf8_lossy(req.query()),
            "headers": headers,
            "body_len": body_len,
            "body_sha256": body_sha256,
            "remote_addr": var(b"REMOTE_ADDR"),
            "remote_port": var(b"REMOTE_PORT"),
            "url_scheme": var(b"webserver.url_scheme"),
            "ssl_client": ssl_client,
            // A field read as an environ variable, and how many HTTP_ variables the environ
            // holds (none for `app_parts`: its fields are in the request parts).
            "http_x_probe": var(b"HTTP_X_PROBE"),
            "http_vars": req.vars().filter(|(name, _)| name.starts_with(b"HTTP_")).count(),
        });
        Response::json(200, body.to_string())
    }
}

export_app!(app, Echo, name = "echo", version = "1.0");

/// The same app exported with `WS_APP_REQUEST_PARTS` (`libecho.so:app_parts`): the server keeps
/// the parsed head for it and leaves the header fields out of its environ, and `Request`'s
/// `headers`, `header` and `var("HTTP_…")` answer from the parts.
pub struct EchoParts(Echo);

impl App for EchoParts {
    fn init(ctx: &InitContext<'_>) -> Result<Self, String> {
        Echo::init(ctx).map(EchoParts)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        self.0.call(req)
    }
}

export_app!(
    app_parts,
    EchoParts,
    name = "echo",
    version = "1.0",
    flags = app_abi::raw::WS_APP_REQUEST_PARTS
);

// The same app exported with `WS_APP_REQUEST_PARTS | WS_APP_NO_ENVIRON`
// (`libecho.so:app_no_environ`): the server builds no environ for it, so what it reads there
// (method, path, `REMOTE_ADDR`...) is empty, and its fields come from the parts.
export_app!(
    app_no_environ,
    Echo,
    name = "echo",
    version = "1.0",
    flags = app_abi::raw::WS_APP_REQUEST_PARTS | app_abi::raw::WS_APP_NO_ENVIRON
);
