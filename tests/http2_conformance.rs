//! The conformance table's cases that apply to HTTP/2 (`tests/conformance.rs` is HTTP/1.1's
//! byte-level table: request-line forms, versions and framing do not exist in HTTP/2), run with
//! the `h2` crate's client against the echo app, each on one connection with `--max-body`: the
//! target's path decoded and its query raw, the method, the fields, the body up to and past
//! the limit, HEAD.

mod common;
mod http2_support;

use bytes::Bytes;
use common::*;
use http2_support::*;

/// `--max-body` of the server.
const MAX_BODY: usize = 64 * 1024;

/// One request: method, target (after `http://x`), extra fields, body.
struct Ask {
    method: &'static str,
    target: &'static str,
    fields: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

fn ask(method: &'static str, target: &'static str) -> Ask {
    Ask {
        method,
        target,
        fields: Vec::new(),
        body: Vec::new(),
    }
}

/// What must come back: the status, and for 200 what the echo app saw (path, query, a field).
struct Want {
    status: u16,
    path: &'static str,
    query: &'static str,
    field: Option<(&'static str, &'static str)>,
}

fn echoed(path: &'static str, query: &'static str) -> Want {
    Want {
        status: 200,
        path,
        query,
        field: None,
    }
}

#[test]
fn the_conformance_cases_that_apply_to_http2() {
    let server = h2_server("echo")
        .args(["--max-body", &MAX_BODY.to_string()])
        .start();
    let addr = server.addr();
    let with = |mut ask: Ask, name, value| {
        ask.fields.push((name, value));
        ask
    };
    let posting = |body: Vec<u8>| Ask {
        body,
        ..ask("POST", "/")
    };
    let cases: Vec<(&str, Ask, Want)> = vec![
        ("root", ask("GET", "/"), echoed("/", "")),
        (
            "path and query",
            ask("GET", "/a/b?x=1&y=2"),
            echoed("/a/b", "x=1&y=2"),
        ),
        (
            "percent-decoded path, raw query",
            ask("GET", "/a%20b%2Fc?q=%20"),
            echoed("/a b/c", "q=%20"),
        ),
        ("empty query", ask("GET", "/a?"), echoed("/a", "")),
        (
            "second ? stays in query",
            ask("GET", "/a?b?c"),
            echoed("/a", "b?c"),
        ),
        ("double slash", ask("GET", "//x"), echoed("//x", "")),
        ("OPTIONS", ask("OPTIONS", "/o"), echoed("/o", "")),
        ("DELETE", ask("DELETE", "/d"), echoed("/d", "")),
        (
            ":authority is the Host",
            ask("GET", "/h"),
            Want {
                field: Some(("host", "x")),
                ..echoed("/h", "")
            },
        ),
        (
            "a field reaches the app",
            with(ask("GET", "/f"), "x-custom", "v a l"),
            Want {
                field: Some(("x-custom", "v a l")),
                ..echoed("/f", "")
            },
        ),
        (
            "a body at --max-body",
            posting(pseudo_random_bytes(MAX_BODY, 4)),
            echoed("/", ""),
        ),
        (
            "a body past --max-body is 413",
            posting(vec![b'a'; MAX_BODY + 1]),
            Want {
                status: 413,
                ..echoed("", "")
            },
        ),
        ("HEAD", ask("HEAD", "/head"), echoed("", "")),
    ];
    let mut failures = Vec::new();
    for (name, ask, want) in cases {
        let body = ask.body.clone();
        let (status, answer) = runtime().block_on(async move {
            let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
            let mut send = send.ready().await.unwrap();
            let mut request = http::Request::builder()
                .method(ask.method)
                .uri(format!("http://x{}", ask.target));
            for (name, value) in &ask.fields {
                request = request.header(*name, *value);
            }
            let request = request.body(()).unwrap();
            let (response, mut stream) = send.send_request(request, ask.body.is_empty()).unwrap();
            if !ask.body.is_empty() {
                // The window is 256 KiB: the whole body goes at once.
                stream.reserve_capacity(ask.body.len());
                stream.send_data(Bytes::from(ask.body), true).unwrap();
            }
            let response = response.await.unwrap();
            let status = response.status().as_u16();
            (status, read_body(response).await.unwrap_or_default())
        });
        if status != want.status {
            failures.push(format!("{name}: status {status}, not {}", want.status));
            continue;
        }
        if name == "HEAD" {
            if !answer.is_empty() {
                failures.push(format!("{name}: {} bytes of body", answer.len()));
            }
            continue;
        }
        if status != 200 {
            continue;
        }
        let json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        let mut check = |what: &str, got: &serde_json::Value, wanted: &str| {
            if got != wanted {
                failures.push(format!("{name}: {what} {got}, not {wanted:?}"));
            }
        };
        check("path", &json["path"], want.path);
        check("query", &json["query"], want.query);
        if let Some((field, value)) = want.field {
            check(field, &json["headers"][field], value);
        }
        check("body_sha256", &json["body_sha256"], &sha256_hex(&body));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
