//! `--static` over HTTP/2 (issue 22): the same answers as over HTTP/1.1 (status, headers,
//! Range, 304, HEAD), the file sent in DATA frames within the client's window. curl
//! `--http2-prior-knowledge` against curl over HTTP/1.1, and the `h2` crate's client with a
//! small window; the curl test passes, saying so, when curl is missing.

mod common;
mod http2_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use http2_support::*;

/// A `--static /static/=ROOT` server with HTTP/2 on; ROOT has `big.bin` (1 MiB and a bit) and
/// `site.css`.
fn static_server(tag: &str) -> (Server, PathBuf, Vec<u8>) {
    let root = fresh_dir(tag).join("root");
    std::fs::create_dir_all(&root).unwrap();
    let big = pattern(1024 * 1024 + 17, 3);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("site.css"), "body { color: teal }\n").unwrap();
    let server = h2_server("hello")
        .args(["--static", &format!("/static/={}", root.display())])
        .start();
    (server, root, big)
}

/// `curl -sS -D HEADERS -o BODY ARGS...` over `http`: the status, the headers (lower-case
/// names, without the ones that differ by nature: Date, and HTTP/1.1's connection fields) and
/// the body.
fn curl_exchange(
    dir: &Path,
    http2: bool,
    args: &[&str],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let headers = dir.join(if http2 { "h2.head" } else { "h1.head" });
    let body = dir.join(if http2 { "h2.body" } else { "h1.body" });
    let _ = std::fs::remove_file(&body);
    let mut all = vec!["-sS", "--max-time", "20", "-D"];
    all.push(headers.to_str().unwrap());
    all.extend(["-o", body.to_str().unwrap()]);
    all.push(if http2 {
        "--http2-prior-knowledge"
    } else {
        "--http1.1"
    });
    all.extend_from_slice(args);
    let out = run("curl", &all);
    assert!(out.status.success(), "curl {all:?}: {}", text(&out.stderr));
    let head = std::fs::read_to_string(&headers).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    let fields = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .filter(|(name, _)| !["date", "connection", "keep-alive"].contains(&name.as_str()))
        .collect();
    // With -I curl writes the head there too: a HEAD's body is none.
    let body = match args.contains(&"-I") {
        true => Vec::new(),
        false => std::fs::read(&body).unwrap_or_default(),
    };
    (status, fields, body)
}

#[test]
fn curl_gets_the_same_static_answers_over_http2_as_over_http1() {
    if !have("curl") {
        return;
    }
    let (server, root, big) = static_server("h2-static");
    let dir = root.parent().unwrap();
    let url = |path: &str| format!("http://{}{path}", server.addr());
    let (_, first, _) = curl_exchange(dir, false, &[&url("/static/site.css")]);
    let etag = first["etag"].clone();
    let modified = first["last-modified"].clone();
    let big_url = url("/static/big.bin");
    let css_url = url("/static/site.css");
    let (missing, outside) = (url("/static/nope.txt"), url("/static/../secret"));
    let if_none_match = format!("If-None-Match: {etag}");
    let if_modified_since = format!("If-Modified-Since: {modified}");
    let cases: Vec<(&str, Vec<&str>, u16)> = vec![
        ("a small file", vec![&css_url], 200),
        ("a file larger than the window", vec![&big_url], 200),
        ("HEAD", vec!["-I", &css_url], 200),
        ("a range", vec!["-r", "1000-1999", &big_url], 206),
        ("a range to the end", vec!["-r", "1048000-", &big_url], 206),
        (
            "a range past the end",
            vec!["-r", "9999999-", &big_url],
            416,
        ),
        ("If-None-Match", vec!["-H", &if_none_match, &css_url], 304),
        (
            "If-Modified-Since",
            vec!["-H", &if_modified_since, &css_url],
            304,
        ),
        ("a missing file", vec![&missing], 404),
        (
            "a path out of the root",
            vec!["--path-as-is", &outside],
            404,
        ),
    ];
    for (case, args, status) in cases {
        let (h1_status, h1_fields, h1_body) = curl_exchange(dir, false, &args);
        let (h2_status, h2_fields, h2_body) = curl_exchange(dir, true, &args);
        assert_eq!(h1_status, status, "{case} over HTTP/1.1");
        assert_eq!(h2_status, status, "{case} over HTTP/2");
        assert_eq!(h2_fields, h1_fields, "{case}: the headers differ");
        assert!(
            h2_body == h1_body,
            "{case}: the bodies differ ({} and {} bytes)",
            h2_body.len(),
            h1_body.len()
        );
    }
    let (_, _, body) = curl_exchange(dir, true, &[&big_url]);
    assert!(body == big, "the whole file over HTTP/2");
    // Each was logged and counted as an HTTP/2 request, without reaching the app.
    let log = server.stderr();
    assert!(log.contains("\"GET /static/big.bin HTTP/2\" 200"), "{log}");
}

#[test]
fn a_static_file_keeps_to_a_small_client_window() {
    let (server, _root, big) = static_server("h2-static-window");
    let addr = server.addr();
    let body = runtime().block_on(async move {
        let mut builder = h2::client::Builder::new();
        // 1 KiB windows: the 1 MiB file goes out a KiB at a time, as the client reads.
        builder.initial_window_size(1024);
        builder.initial_connection_window_size(1024);
        let (send, _driver) = h2_connect(addr, &builder).await;
        let mut send = send.ready().await.unwrap();
        let (response, _) = send
            .send_request(get(addr, "/static/big.bin"), true)
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
        read_body(response).await.unwrap()
    });
    assert!(body == big, "{} bytes of {}", body.len(), big.len());
}
