//! What the ASGI tests share: the virtualenv with the frameworks (installed on first use from
//! `examples/asgi/requirements.txt`) and servers of `libasgi.so` running a fixture app.
#![allow(dead_code)] // each test file uses a different part

use crate::common::{debug_dir, server, workspace_dir, Response, Server, ServerBuilder};
use crate::wsgi_support;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `target/asgi-venv` with `examples/asgi/requirements.txt` (FastAPI, Starlette, Django, uvloop).
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        wsgi_support::make_venv(
            "asgi-venv",
            &workspace_dir().join("examples/asgi/requirements.txt"),
            "install the ASGI frameworks (FastAPI, Starlette, Django, uvloop) the tests serve",
        )
    })
}

/// `tests/fixtures/asgi`.
pub fn fixtures() -> PathBuf {
    workspace_dir().join("tests/fixtures/asgi")
}

/// `…/libasgi.so:app`, checked to exist.
pub fn asgi_lib() -> std::ffi::OsString {
    let lib = debug_dir().join("libasgi.so");
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build --workspace` before `cargo test`",
        lib.display()
    );
    let mut lib = lib.into_os_string();
    lib.push(":app");
    lib
}

/// `webserver …/libasgi.so:app TARGET --venv target/asgi-venv`, from `tests/fixtures/asgi`.
pub fn asgi_server(target: &str) -> ServerBuilder {
    server(asgi_lib()).cwd(fixtures()).app_args([
        target,
        "--venv",
        venv().to_str().expect("UTF-8 path"),
    ])
}

/// One request on a new connection.
pub fn request(server: &Server, raw: &[u8]) -> Response {
    let mut conn = server.connect();
    conn.send(raw);
    conn.read_response()
}

/// `GET /sleep?seconds=1` on `n` new connections at once; checks every answer is the app's
/// `{"slept": 1.0}` and returns how long all took.
pub fn sleep_one_second_at_once(server: &Server, n: usize) -> Duration {
    let began = Instant::now();
    let mut conns: Vec<_> = (0..n)
        .map(|_| {
            let mut conn = server.connect();
            conn.send(b"GET /sleep?seconds=1 HTTP/1.1\r\nHost: t\r\n\r\n");
            conn
        })
        .collect();
    for conn in &mut conns {
        let answer = conn.read_response();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json(), serde_json::json!({"slept": 1.0}));
    }
    began.elapsed()
}
