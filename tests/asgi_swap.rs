//! Hot swaps of an ASGI app: to a version whose lifespan startup fails or hangs (the old
//! generation serves on), and FastAPI v1 ⇄ v2 under load with no failed request.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libasgi.so`).

mod asgi_support;
mod common;
mod wsgi_support;

use asgi_support::{asgi_lib, venv};
use common::{server, Server};
use std::path::{Path, PathBuf};

/// How a version's lifespan startup goes.
#[derive(Clone, Copy)]
enum Startup {
    Succeeds,
    Fails,
    Hangs,
}

fn fastapi_swap_app(version: usize, startup: Startup) -> String {
    let startup = match startup {
        Startup::Succeeds => "",
        Startup::Fails => "    raise RuntimeError('the new version cannot start')\n",
        Startup::Hangs => "    await __import__('asyncio').sleep(3600)\n",
    };
    format!(
        "from contextlib import asynccontextmanager\nfrom fastapi import FastAPI\n\n\n\
         @asynccontextmanager\nasync def lifespan(app):\n{startup}    yield {{'version': {version}}}\n\n\n\
         app = FastAPI(lifespan=lifespan)\n\n\n@app.get('/version')\n\
         async def version(request: __import__('fastapi').Request):\n    \
         return {{'hello': 'from v{version}', 'state': request.state.version}}\n"
    )
}

/// `webserver asgi:app swapapp:app --startup-timeout 3` from `dir`, with a pid file (hot swap
/// status).
fn swap_server(dir: &Path, workers: &str) -> (Server, PathBuf) {
    let pid_file = dir.join("ws.pid");
    let server = server(asgi_lib())
        .cwd(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-w", workers, "--pid"])
        .args([pid_file.as_os_str()])
        .app_args(["swapapp:app", "--venv", venv().to_str().unwrap()])
        .app_args(["--startup-timeout", "3"])
        .start();
    (server, pid_file)
}

#[test]
fn a_swap_to_an_app_whose_lifespan_fails_or_hangs_keeps_the_old_generation() {
    let dir = common::fresh_dir("asgi-swap");
    wsgi_support::write_app(&dir, &fastapi_swap_app(1, Startup::Succeeds));
    let (server, pid_file) = swap_server(&dir, "1");
    common::poll(wsgi_support::SWAP_TIMEOUT, "generation 1 ready", || {
        wsgi_support::status(&pid_file).filter(|(state, _, _)| state == "ready")
    });
    let v1 = serde_json::json!({"hello": "from v1", "state": 1});
    assert_eq!(server.get("/version").json(), v1);

    wsgi_support::write_app(&dir, &fastapi_swap_app(2, Startup::Fails));
    let (state, _, why) = wsgi_support::hup(&server, &pid_file);
    assert_eq!(state, "failed", "{why}");
    assert!(
        why.contains("lifespan startup of swapapp:app failed")
            && why.contains("the new version cannot start"),
        "{why}"
    );
    for _ in 0..5 {
        assert_eq!(
            server.get("/version").json(),
            v1,
            "the old generation serves on"
        );
    }

    wsgi_support::write_app(&dir, &fastapi_swap_app(3, Startup::Hangs));
    let (state, _, why) = wsgi_support::hup(&server, &pid_file);
    assert_eq!(state, "failed", "{why}");
    assert!(
        why.contains("lifespan startup of swapapp:app did not finish within 3 s")
            && why.contains("swapapp.py:7 in lifespan"),
        "{why}"
    );
    assert_eq!(
        server.get("/version").json(),
        v1,
        "the old generation serves on"
    );
}

#[test]
fn swapping_a_fastapi_app_under_load_fails_no_request() {
    let dir = common::fresh_dir("asgi-swap-load");
    wsgi_support::write_app(&dir, &fastapi_swap_app(1, Startup::Succeeds));
    let (server, pid_file) = swap_server(&dir, "2");
    let ok = wsgi_support::swap_under_load(&server, &dir, &pid_file, "/version", &|version| {
        fastapi_swap_app(version, Startup::Succeeds)
    });
    eprintln!("4 swaps of a FastAPI app under 3 keep-alive clients: {ok} requests, 0 failed");
}
