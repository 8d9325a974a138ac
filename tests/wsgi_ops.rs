//! Running a WSGI app as an operator sees it (`libwsgi.so`, end to end): an ASGI app is refused at
//! load, the startup line says which Python and which packages, Python's own output reaches the
//! error log, and a generation keeps the Python code it started with.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libwsgi.so`). The apps here use only
//! the standard library, so no virtualenv is made: that is also the case the startup line
//! describes.

mod common;
mod wsgi_support;

use common::{assert_load_error, Server, ServerBuilder};
use std::path::Path;
use std::time::Duration;
use wsgi_support::{fixtures_dir, wsgi_lib};

/// `webserver libwsgi.so:app` serving `target` from `dir` with the system Python's packages.
fn system_python_server(dir: &Path, target: &str) -> ServerBuilder {
    let mut lib = wsgi_lib().into_os_string();
    lib.push(":app");
    common::server(lib)
        .cwd(dir)
        .env("WEBSERVER_WSGI_APP", target)
        .env("VIRTUAL_ENV", "")
}

fn log_line(server: &Server, needle: &str) -> String {
    server
        .wait_for_log(Duration::from_secs(10), |l| l.contains(needle))
        .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{}", server.stderr()))
}

#[test]
fn an_asgi_app_is_refused_at_load_with_what_it_is() {
    for (target, kind) in [
        ("asgiapps:app", "an async function"),
        (
            "asgiapps:framework",
            "a asgiapps.Framework instance with an async __call__",
        ),
        (
            "asgiapps:Asgi2",
            "class asgiapps.Asgi2 with an async __call__ (ASGI 2)",
        ),
    ] {
        let exited = system_python_server(&fixtures_dir(), target).run_to_exit();
        assert_load_error(
            &exited,
            &[
                &format!("{target} is an ASGI app ({kind}"),
                "the WSGI bridge does not serve ASGI apps yet",
                &format!("uvicorn {target}"),
            ],
        );
    }
    // A class is a WSGI app too when it is called as one.
    let server = system_python_server(&fixtures_dir(), "asgiapps:WsgiClass").start();
    assert_eq!(server.get("/").text(), "a WSGI class");
}

#[test]
fn the_startup_line_names_the_python_and_its_packages() {
    let server = system_python_server(&fixtures_dir(), "asgiapps:WsgiClass").start();
    let line = log_line(&server, "WSGI app asgiapps:WsgiClass on Python 3.");
    assert!(
        line.contains(
            "packages from the system Python's site-packages (no --venv or VIRTUAL_ENV): /"
        ),
        "{line}"
    );
    assert!(
        line.contains("-packages"),
        "no package directory named: {line}"
    );
    // A virtualenv without pip is enough: the line names it and its site-packages.
    let venv = common::fresh_dir("wsgi-ops-venv").join("venv");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let made = std::process::Command::new(python)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python3 runs");
    assert!(made.success(), "python3 -m venv failed");
    let server = system_python_server(&fixtures_dir(), "asgiapps:WsgiClass")
        .env("VIRTUAL_ENV", venv.to_str().unwrap())
        .start();
    let line = log_line(&server, "WSGI app asgiapps:WsgiClass on Python 3.");
    let expected = format!(
        "packages from virtualenv {} (VIRTUAL_ENV): {}/lib/python3.",
        venv.display(),
        venv.display()
    );
    assert!(line.contains(&expected), "{line}\nlacks {expected}");
}
