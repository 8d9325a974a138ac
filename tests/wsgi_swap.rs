//! Hot swap with a Python app: every generation is a new set of worker processes that start Python
//! and import the app afresh, so a HUP after editing the `.py` file serves the new code — and an
//! edit that breaks the import is refused like a broken library, the old generation serving on.

mod common;
mod wsgi_support;

use common::{poll, Server};
use std::path::Path;
use std::time::Duration;
use wsgi_support::wsgi_server;

/// A swap boots Python in new workers: give it time on a loaded machine.
const SWAP_TIMEOUT: Duration = Duration::from_secs(30);

const APP_V1: &str = "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'v1\\n']\n";
/// A different length than v1: Python trusts a cached .pyc whose source has the same size and
/// modification second, and an edit within the second the cache was written is not seen.
const APP_V2: &str = "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'version 2\\n']\n";
const APP_BROKEN: &str = "def app(environ, start_response:\n";

/// `FILE.status`: (state, generation, rest).
fn status(pid_file: &Path) -> Option<(String, u64, String)> {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".status");
    let text = std::fs::read_to_string(name).ok()?;
    let mut parts = text.lines().next()?.splitn(3, ' ');
    let state = parts.next()?.to_owned();
    let generation = parts.next()?.parse().ok()?;
    Some((state, generation, parts.next().unwrap_or("").to_owned()))
}

/// SIGHUP and wait for generation `after + 1` to be ready or failed.
fn hup(server: &Server, pid_file: &Path) -> (String, u64, String) {
    let before = status(pid_file).map_or(0, |(_, g, _)| g);
    server.signal(libc::SIGHUP);
    poll(SWAP_TIMEOUT, "the swap to settle", || {
        status(pid_file)
            .filter(|(state, g, _)| *g > before && (state == "ready" || state == "failed"))
    })
}

fn write_app(dir: &Path, source: &str) {
    let tmp = dir.join("swapapp.py.tmp");
    std::fs::write(&tmp, source).unwrap();
    std::fs::rename(&tmp, dir.join("swapapp.py")).unwrap();
}

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
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    const CLIENTS: usize = 3;
    const SWAPS: usize = 4;

    let dir = common::fresh_dir("wsgi-swap-load");
    write_app(&dir, &flask_app("Hello world from Flask v1!"));
    let pid_file = dir.join("ws.pid");
    let server = wsgi_server(&dir, "swapapp:app")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-w", "2", "--pid"])
        .args([pid_file.as_os_str()])
        .start();
    poll(SWAP_TIMEOUT, "generation 1 ready", || {
        status(&pid_file).filter(|(state, _, _)| state == "ready")
    });

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (addr, stop, ok, failures) = (
                server.addr(),
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failures),
            );
            std::thread::spawn(move || {
                let mut conn: Option<common::Conn> = None;
                while !stop.load(Ordering::Relaxed) {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match common::Conn::try_connect(addr) {
                            Ok(c) => conn.insert(c),
                            Err(e) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("client {client}: {e}"));
                                continue;
                            }
                        },
                    };
                    let sent = c.try_send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
                    match sent.and_then(|()| c.try_read_response()) {
                        Ok(resp)
                            if resp.status == 200
                                && resp.text().starts_with("Hello world from Flask v") =>
                        {
                            ok.fetch_add(1, Ordering::Relaxed);
                            // A draining generation answers with `Connection: close`.
                            if resp.header_has_token("connection", "close") {
                                conn = None;
                            }
                        }
                        Ok(resp) => {
                            failures.lock().unwrap().push(format!(
                                "client {client}: {} {:?}",
                                resp.status,
                                String::from_utf8_lossy(&resp.body)
                            ));
                            conn = None;
                        }
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("client {client}: {e}"));
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();

    for swap in 0..SWAPS {
        let version = if swap % 2 == 0 { 2 } else { 1 };
        // v1 and v2 have the same length: the bytecode cache is off (PYTHONDONTWRITEBYTECODE)
        // so that an edit within the second of the last import is read (see APP_V2).
        write_app(
            &dir,
            &flask_app(&format!("Hello world from Flask v{version}!")),
        );
        let (state, _, why) = hup(&server, &pid_file);
        assert_eq!(state, "ready", "swap {swap}: {why}");
        let want = format!("Hello world from Flask v{version}!\n");
        poll(SWAP_TIMEOUT, "the new version on a new connection", || {
            (server.get("/hello").text() == want).then_some(())
        });
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    let ok = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} failed of {ok} ok: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 0, "the load clients got no answer");
    eprintln!(
        "{SWAPS} swaps of a Flask app under {CLIENTS} keep-alive clients: {ok} requests, 0 failed"
    );
}
