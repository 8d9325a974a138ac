//! What the WSGI tests share: the virtualenv with the article's frameworks (installed on first use,
//! so the README's test command does all the set-up on a fresh machine) and servers of
//! `libwsgi.so` running a Python app.
#![allow(dead_code)] // each test file uses a different part

use crate::common::{debug_dir, poll, server, workspace_dir, Server, ServerBuilder};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// `examples/wsgi`: the article's apps, the echo app, `requirements.txt`.
pub fn examples_dir() -> PathBuf {
    workspace_dir().join("examples/wsgi")
}

/// `tests/fixtures/wsgi`: `rules.py`, `validated.py`.
pub fn fixtures_dir() -> PathBuf {
    workspace_dir().join("tests/fixtures/wsgi")
}

/// The interpreter that makes the virtualenv: the one PyO3 linked `libwsgi.so` against.
fn base_python() -> String {
    std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// `target/wsgi-venv` with `examples/wsgi/requirements.txt` installed ([`make_venv`]).
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        make_venv(
            "wsgi-venv",
            &examples_dir().join("requirements.txt"),
            "install the WSGI frameworks (Flask, Pyramid, Django) the tests serve",
        )
    })
}

/// `target/NAME` with `requirements` installed: made once, then reused while the requirements
/// file is unchanged (a stamp inside holds its contents). Several test processes may ask at once:
/// an exclusive lock on a file beside it makes one of them install.
pub fn make_venv(name: &str, requirements: &Path, what: &str) -> PathBuf {
    let target = debug_dir().parent().expect("target dir").to_path_buf();
    let venv = target.join(name);
    let wanted = std::fs::read_to_string(requirements)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", requirements.display()));
    let stamp = venv.join("installed-requirements.txt");
    let lock = File::create(target.join(format!("{name}.lock"))).expect("create the venv lock");
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {name}.lock: {}",
        std::io::Error::last_os_error()
    );
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv;
    }
    let python = base_python();
    if !venv.join("bin/python").exists() {
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            "create the virtualenv",
        );
    }
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--quiet", "-r"])
            .arg(requirements),
        what,
    );
    std::fs::write(&stamp, &wanted).expect("write the virtualenv stamp");
    venv
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot {what}: {cmd:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "cannot {what}: {cmd:?} failed ({}); the Python bridges' tests need python3 with venv and pip, and \
         PyPI (or a pip cache) reachable\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `libwsgi.so`, failing with what to do when it was not built.
pub fn wsgi_lib() -> PathBuf {
    let lib = debug_dir().join("libwsgi.so");
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build --workspace` before `cargo test`",
        lib.display()
    );
    lib
}

/// `webserver …/libwsgi.so:app` serving `target` (module:callable) from `dir` with the test
/// virtualenv. The target travels in WEBSERVER_WSGI_APP, which the bridge reads when the server
/// passes no app arguments.
pub fn wsgi_server(dir: &Path, target: &str) -> ServerBuilder {
    let mut lib = wsgi_lib().into_os_string();
    lib.push(":app");
    server(lib)
        .cwd(dir)
        .env("WEBSERVER_WSGI_APP", target)
        .env("VIRTUAL_ENV", venv().to_str().expect("UTF-8 path"))
}

/// A swap boots Python in new workers: give it time on a loaded machine.
pub const SWAP_TIMEOUT: Duration = Duration::from_secs(30);

/// `FILE.status`: (state, generation, rest).
pub fn status(pid_file: &Path) -> Option<(String, u64, String)> {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".status");
    let text = std::fs::read_to_string(name).ok()?;
    let mut parts = text.lines().next()?.splitn(3, ' ');
    let state = parts.next()?.to_owned();
    let generation = parts.next()?.parse().ok()?;
    Some((state, generation, parts.next().unwrap_or("").to_owned()))
}

/// SIGHUP and wait for generation `after + 1` to be ready or failed.
pub fn hup(server: &Server, pid_file: &Path) -> (String, u64, String) {
    let before = status(pid_file).map_or(0, |(_, g, _)| g);
    server.signal(libc::SIGHUP);
    poll(SWAP_TIMEOUT, "the swap to settle", || {
        status(pid_file)
            .filter(|(state, g, _)| *g > before && (state == "ready" || state == "failed"))
    })
}

pub fn write_app(dir: &Path, source: &str) {
    let tmp = dir.join("swapapp.py.tmp");
    std::fs::write(&tmp, source).unwrap();
    std::fs::rename(&tmp, dir.join("swapapp.py")).unwrap();
}

/// Swaps `server` (serving `swapapp.py` from `dir`) 4 times between versions 2 and 1 of
/// `source(version)` under 3 keep-alive clients asking `path`. Version N answers what version 1
/// does with every `1` an N, and every answer must start like version 1's up to its first `1`:
/// asserts that no request failed and returns how many were answered.
pub fn swap_under_load(
    server: &Server,
    dir: &Path,
    pid_file: &Path,
    path: &'static str,
    source: &dyn Fn(usize) -> String,
) -> u64 {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    const CLIENTS: usize = 3;
    const SWAPS: usize = 4;

    poll(SWAP_TIMEOUT, "generation 1 ready", || {
        status(pid_file).filter(|(state, _, _)| state == "ready")
    });

    let want_v1 = server.get(path).text();
    let prefix: Arc<str> = Arc::from(want_v1.split('1').next().unwrap_or_default());
    assert!(!prefix.is_empty(), "version 1 answers {want_v1:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (addr, stop, ok, failures, prefix) = (
                server.addr(),
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failures),
                Arc::clone(&prefix),
            );
            std::thread::spawn(move || {
                let mut conn: Option<crate::common::Conn> = None;
                while !stop.load(Ordering::Relaxed) {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match crate::common::Conn::try_connect(addr) {
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
                    let sent =
                        c.try_send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
                    match sent.and_then(|()| c.try_read_response()) {
                        Ok(resp) if resp.status == 200 && resp.text().starts_with(&*prefix) => {
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
        write_app(dir, &source(version));
        let (state, _, why) = hup(server, pid_file);
        assert_eq!(state, "ready", "swap {swap}: {why}");
        let want = want_v1.replace('1', &version.to_string());
        poll(SWAP_TIMEOUT, "the new version on a new connection", || {
            (server.get(path).text() == want).then_some(())
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
    ok
}
