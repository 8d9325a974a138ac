//! What the WSGI tests share: the virtualenv with the article's frameworks (installed on first use,
//! so the README's test command does all the set-up on a fresh machine) and servers of
//! `libwsgi.so` running a Python app.
#![allow(dead_code)] // each test file uses a different part

use crate::common::{debug_dir, server, workspace_dir, ServerBuilder};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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
