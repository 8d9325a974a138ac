//! Hot swap with a Python app: every generation is a new set of worker processes that start Python
//! and import the app afresh, so a HUP after editing the `.py` file serves the new code — and an
//! edit that breaks the import is refused like a broken library, the old generation serving on.

mod common;
mod wsgi_support;

use common::poll;
use std::time::Duration;
use wsgi_support::{hup, status, swap_under_load, write_app, wsgi_server, SWAP_TIMEOUT};

const APP_V1: &str = "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'v1\\n']\n";
/// A different length than v1: Python trusts a cached .pyc whose source has the same size and
/// modification second, and an edit within the second the cache was written is not seen.
const APP_V2: &str = "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'version 2\\n']\n";
const APP_BROKEN: &str = "def app(environ, start_response:\n";

#[test]
fn a_hup_serves_the_edited_python_app_and_a_broken_edit_keeps_the_old_one() {
    let dir = common::fresh_dir("wsgi-swap");
    write_app(&dir, APP_V1);
    let pid_file = dir.join("ws.pid");
    let server = wsgi_server(&dir, "swapapp:app")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .start();
    poll(SWAP_TIMEOUT, "generation 1 ready", || {
        status(&pid_file).filter(|(state, _, _)| state == "ready")
    });
    assert_eq!(server.get("/").text(), "v1\n");

    write_app(&dir, APP_BROKEN);
    let (state, _, why) = hup(&server, &pid_file);
    assert_eq!(state, "failed", "{why}");
    assert!(
        why.contains("SyntaxError"),
        "the status names the Python error: {why}"
    );
    assert!(
        server
            .wait_for_log(Duration::from_secs(5), |l| l.contains("hot swap failed")
                && l.contains("SyntaxError"))
            .is_some(),
        "{}",
        server.stderr()
    );
    for _ in 0..5 {
        assert_eq!(
            server.get("/").text(),
            "v1\n",
            "the old generation serves on"
        );
    }

    write_app(&dir, APP_V2);
    let (state, _, why) = hup(&server, &pid_file);
    assert_eq!(state, "ready", "{why}");
    poll(SWAP_TIMEOUT, "the new generation to answer", || {
        (server.get("/").text() == "version 2\n").then_some(())
    });
}

#[test]
fn reload_path_swaps_when_the_python_source_changes_and_not_for_its_bytecode() {
    let dir = common::fresh_dir("wsgi-reload-path");
    write_app(&dir, APP_V1);
    let pid_file = dir.join("ws.pid");
    // Python writes __pycache__ into the watched directory as each generation imports the app:
    // that must not count as a change. (The sandbox lets it write there only when told to.)
    let server = wsgi_server(&dir, "swapapp:app")
        .env("PYTHONDONTWRITEBYTECODE", "")
        .args(["--sandbox-write".as_ref(), dir.as_os_str()])
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .args(["--reload", "--reload-path"])
        .args([dir.as_os_str()])
        .start();
    poll(SWAP_TIMEOUT, "generation 1 ready", || {
        status(&pid_file).filter(|(state, _, _)| state == "ready")
    });
    assert_eq!(server.get("/").text(), "v1\n");
    assert!(
        dir.join("__pycache__").is_dir(),
        "the test needs Python to write its cache"
    );

    write_app(&dir, APP_V2);
    poll(SWAP_TIMEOUT, "the edited app to be served", || {
        (server.get("/").text() == "version 2\n").then_some(())
    });
    // The new generation serves before the swap is announced: `ready` follows once the old
    // workers said they stopped accepting.
    let (state, generation, _) = poll(SWAP_TIMEOUT, "the swap to be announced", || {
        status(&pid_file).filter(|(state, _, _)| state != "booting")
    });
    assert_eq!((state.as_str(), generation), ("ready", 2));
    // The new generation's bytecode cache is not a change: no third generation follows.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(&pid_file).unwrap().1, 2, "{}", server.stderr());
    assert!(server.stderr().contains("--reload-path: a file under"));
    // The library did not change: no line may say it did.
    assert!(
        !server.stderr().contains("--reload: "),
        "{}",
        server.stderr()
    );
}

/// The article's Flask app, answering `/hello` with `greeting`.
fn flask_app(greeting: &str) -> String {
    format!(
        "from flask import Flask\nfrom flask import Response\nflask_app = Flask('flaskapp')\n\n\n\
         @flask_app.route('/hello')\ndef hello_world():\n    return Response(\n        \
         '{greeting}\\n',\n        mimetype='text/plain'\n    )\n\napp = flask_app.wsgi_app\n"
    )
}

#[test]
fn swapping_a_flask_app_under_load_fails_no_request() {
    let dir = common::fresh_dir("wsgi-swap-load");
    write_app(&dir, &flask_app("Hello world from Flask v1!"));
    let pid_file = dir.join("ws.pid");
    let server = wsgi_server(&dir, "swapapp:app")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-w", "2", "--pid"])
        .args([pid_file.as_os_str()])
        .start();
    let ok = swap_under_load(&server, &dir, &pid_file, "/hello", &|version| {
        flask_app(&format!("Hello world from Flask v{version}!"))
    });
    eprintln!("4 swaps of a Flask app under 3 keep-alive clients: {ok} requests, 0 failed");
}
