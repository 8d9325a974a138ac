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

/// The line of `log` that contains `needle`, waiting for it to be written.
fn file_line(log: &Path, needle: &str) -> String {
    common::poll(
        Duration::from_secs(10),
        &format!("{needle:?} in {}", log.display()),
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.lines().find(|l| l.contains(needle)).map(str::to_owned)
        },
    )
}

/// `[… LEVEL target] [worker PID gen 1] …`: the line's level and that it names a worker of
/// generation 1.
fn assert_tagged(line: &str, level: &str, target: &str) {
    assert!(
        line.contains(&format!(" {level:5} {target}] [worker ")),
        "{line}"
    );
    assert!(line.contains(" gen 1] "), "{line}");
}

#[test]
fn pythons_own_output_reaches_the_error_log_with_its_level() {
    let dir = common::fresh_dir("wsgi-ops-output");
    let log = dir.join("error.log");
    let server = system_python_server(&fixtures_dir(), "outputs:app")
        .args(["--error-logfile".as_ref(), log.as_os_str()])
        .start();
    assert_eq!(server.get("/").text(), "talked");
    assert_tagged(
        &file_line(&log, "outputs: warned while importing"),
        "WARN",
        "app",
    );
    assert_tagged(&file_line(&log, "[wsgi] shop: low stock"), "WARN", "app");
    // logging.error() itself runs basicConfig(): a StreamHandler on sys.stderr, level kept.
    assert_tagged(
        &file_line(&log, "[wsgi] ERROR:root:root error"),
        "ERROR",
        "app",
    );
    assert_tagged(&file_line(&log, "[wsgi] written to stderr"), "ERROR", "app");
    // stdout stays the process's without --capture-output (gunicorn's default).
    common::poll(Duration::from_secs(5), "print() on stdout", || {
        server.stdout().contains("printed to stdout").then_some(())
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("not shown") && !text.contains("printed to stdout"),
        "{text}"
    );
    assert!(
        !server.stderr().contains("low stock"),
        "{}",
        server.stderr()
    );

    // A logging configuration of the app's own keeps working, levels included.
    let log = dir.join("configured.log");
    let server = system_python_server(&fixtures_dir(), "configured:app")
        .args(["--error-logfile".as_ref(), log.as_os_str()])
        .start();
    assert_eq!(server.get("/").text(), "configured");
    assert_tagged(
        &file_line(&log, "INFO:configured:an info record"),
        "INFO",
        "app",
    );
    assert_tagged(
        &file_line(&log, "WARNING:configured:a warning record"),
        "WARN",
        "app",
    );
}

#[test]
fn capture_output_sends_print_to_the_error_log() {
    let dir = common::fresh_dir("wsgi-ops-capture");
    // The flag, its variable and its --config key.
    let config = dir.join("webserver.toml");
    std::fs::write(&config, "capture-output = true\n").unwrap();
    for (n, (args, env)) in [
        (vec!["--capture-output"], None),
        (vec![], Some("1")),
        (vec!["--config", config.to_str().unwrap()], None),
    ]
    .into_iter()
    .enumerate()
    {
        let log = dir.join(format!("error-{n}.log"));
        let mut builder = system_python_server(&fixtures_dir(), "outputs:app")
            .args(["--error-logfile".as_ref(), log.as_os_str()])
            .args(args);
        if let Some(value) = env {
            builder = builder.env("WEBSERVER_CAPTURE_OUTPUT", value);
        }
        let server = builder.start();
        assert_eq!(server.get("/").text(), "talked");
        assert_tagged(&file_line(&log, "] printed to stdout"), "INFO", "stdout");
        assert_tagged(&file_line(&log, "[wsgi] shop: low stock"), "WARN", "app");
        assert!(!server.stdout().contains("printed to stdout"));
        // The master's own line stays on stdout.
        assert!(
            server.stdout().contains("Serving HTTP on"),
            "{}",
            server.stdout()
        );
    }
}
