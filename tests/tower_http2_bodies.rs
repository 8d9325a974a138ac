//! Request bodies over HTTP/2 through `webserver-tower`, against the same router on plain
//! `axum::serve` (h2c with prior knowledge, as hyper's auto builder takes it): a body that came
//! whole with its head (the adapter reads it in `call` and hands it over as it is), one whose
//! rest comes later (what came first goes ahead of the pumped rest), one larger than a read, one
//! with trailing HEADERS, and none at all must reach the handler byte for byte, as on hyper.
//!
//! Needs `cargo build --workspace` first (the cdylib and `axum-serve` come from target/debug).

mod common;
mod http2_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http2_support::{h2_connect, read_body, runtime};

/// How a request's body is sent: its parts (each a DATA frame, with a pause before every part
/// after the first) and its trailers.
struct Upload {
    parts: Vec<Vec<u8>>,
    trailers: Option<http::HeaderMap>,
}

/// What the router answered: status and body.
async fn send(addr: SocketAddr, method: &str, path: &str, upload: Option<Upload>) -> String {
    let (send, _driver) = h2_connect(addr, &h2::client::Builder::new()).await;
    let mut send = send.ready().await.unwrap();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let Some(upload) = upload else {
        let (response, _) = send.send_request(request, true).unwrap();
        return answer(response.await.unwrap()).await;
    };
    let (response, mut body) = send.send_request(request, false).unwrap();
    let last = upload.parts.len() - 1;
    for (i, part) in upload.parts.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let end = i == last && upload.trailers.is_none();
        if part.is_empty() {
            body.send_data(Bytes::new(), end).unwrap();
            continue;
        }
        let mut part = Bytes::from(part);
        while !part.is_empty() {
            body.reserve_capacity(part.len());
            let room = std::future::poll_fn(|cx| body.poll_capacity(cx))
                .await
                .unwrap()
                .unwrap();
            let chunk = part.split_to(room.min(part.len()));
            body.send_data(chunk, end && part.is_empty()).unwrap();
        }
    }
    if let Some(trailers) = upload.trailers {
        body.send_trailers(trailers).unwrap();
    }
    answer(response.await.unwrap()).await
}

async fn answer(response: http::Response<h2::RecvStream>) -> String {
    let status = response.status();
    let body = read_body(response).await.unwrap();
    format!("{status} {}", String::from_utf8_lossy(&body))
}

fn cases() -> Vec<(&'static str, &'static str, &'static str, Option<Upload>)> {
    let item = br#"{"name":"pen","tags":["a","b"],"price_cents":150}"#.to_vec();
    let large: Vec<u8> = (0..300 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-check", "abc".parse().unwrap());
    vec![
        (
            "a body whole with its head",
            "POST",
            "/json",
            Some(Upload {
                parts: vec![item.clone()],
                trailers: None,
            }),
        ),
        (
            "a body whose rest comes later",
            "POST",
            "/upload",
            Some(Upload {
                parts: vec![b"first part, ".to_vec(), b"then the rest".to_vec()],
                trailers: None,
            }),
        ),
        (
            "a body larger than one read",
            "POST",
            "/upload",
            Some(Upload {
                parts: vec![large],
                trailers: None,
            }),
        ),
        (
            "a body with trailing HEADERS",
            "POST",
            "/json",
            Some(Upload {
                parts: vec![item],
                trailers: Some(trailers),
            }),
        ),
        ("no body", "GET", "/", None),
        (
            "an empty body",
            "POST",
            "/upload",
            Some(Upload {
                parts: vec![Vec::new()],
                trailers: None,
            }),
        ),
    ]
}

#[test]
fn request_bodies_over_http2_reach_the_router_as_on_axum_serve() {
    let server = sample_server("axum_app")
        .args(["--http2", "on", "--threads", "2"])
        .start();
    let reference = AxumServe::start();
    let (ours, theirs) = (server.addr(), reference.addr);
    runtime().block_on(async move {
        for (what, method, path, upload) in cases() {
            let got = send(ours, method, path, upload).await;
            let expected = send(theirs, method, path, cases_upload(what)).await;
            assert_eq!(got, expected, "{what}");
            assert!(got.starts_with("20"), "{what}: {got}");
        }
    });
}

/// The upload of case `what` again (an `Upload` is consumed by sending it).
fn cases_upload(what: &str) -> Option<Upload> {
    cases()
        .into_iter()
        .find(|(name, ..)| *name == what)
        .and_then(|(.., upload)| upload)
}
