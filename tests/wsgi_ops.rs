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
                &format!("serve it with the ASGI bridge, `webserver asgi:app {target}`"),
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
        (vec!["--capture-output", "--access-logfile", "-"], None),
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
        if n == 0 {
            // The access log on stdout stays there.
            common::poll(Duration::from_secs(5), "the access line on stdout", || {
                server
                    .stdout()
                    .contains("\"GET / HTTP/1.1\" 200")
                    .then_some(())
            });
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(
                !text
                    .lines()
                    .any(|l| l.contains("stdout] [worker") && l.contains("GET / HTTP")),
                "{text}"
            );
        }
        // The master's own line stays on stdout.
        assert!(
            server.stdout().contains("Serving HTTP on"),
            "{}",
            server.stdout()
        );
    }
}

/// `GET /stats` from the master's `--stats unix:SOCKET`, as JSON.
fn stats(socket: &Path) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect to --stats");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: stats\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn status(pid_file: &Path) -> String {
    let mut path = pid_file.as_os_str().to_owned();
    path.push(".status");
    std::fs::read_to_string(path).unwrap_or_default()
}

const PINNED_APP: &str = "
VERSION = '%s'

def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [VERSION.encode()]
";

#[test]
fn a_generation_keeps_the_python_code_it_started_with() {
    let dir = common::fresh_dir("wsgi-ops-pin");
    let source = dir.join("pinned.py");
    std::fs::write(&source, PINNED_APP.replace("%s", "v1")).unwrap();
    let pid_file = dir.join("ws.pid");
    let socket = dir.join("stats.sock");
    let mut server = system_python_server(&dir, "pinned:app")
        .args(["-w", "2"])
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    assert_eq!(server.get("/").text(), "v1");
    let workers = common::poll(Duration::from_secs(10), "two workers", || {
        let pids = common::child_pids(server.pid());
        (pids.len() == 2).then_some(pids)
    });

    // An edit, not deployed; then a worker dies and is replaced.
    std::fs::write(&source, PINNED_APP.replace("%s", "v2")).unwrap();
    // SAFETY: kill(2) on a worker of the server this test started.
    assert_eq!(unsafe { libc::kill(workers[0] as i32, libc::SIGKILL) }, 0);
    let refused = log_line(&server, "the source changed; HUP to deploy it");
    assert!(
        refused.contains("replacement worker failed to start")
            && refused.contains("pinned.py is not what this generation's first worker imported"),
        "{refused}"
    );
    // Each replacement is refused: a crash loop, in the log, the status file and --stats.
    let looping = log_line(&server, "crash loop: 3 replacement workers of generation 1");
    assert!(
        looping.contains("the source changed; HUP to deploy it"),
        "{looping}"
    );
    let line = common::poll(Duration::from_secs(10), "crash-loop status", || {
        let line = status(&pid_file);
        line.starts_with("crash-loop 1 ").then_some(line)
    });
    assert!(
        line.contains("the source changed; HUP to deploy it"),
        "{line}"
    );
    let crash_loop = &stats(&socket)["crash_loop"];
    assert_eq!(crash_loop["generation"], 1, "{crash_loop}");
    assert!(
        crash_loop["failures"].as_u64().unwrap() >= 3,
        "{crash_loop}"
    );
    assert!(
        crash_loop["last_failure"]
            .as_str()
            .unwrap()
            .contains("the source changed"),
        "{crash_loop}"
    );
    // Generation 1 serves on with its own code only, on its other worker.
    for _ in 0..20 {
        assert_eq!(server.get("/").text(), "v1");
    }
    assert!(common::process_exists(workers[1]));

    // HUP deploys the edit.
    server.signal(libc::SIGHUP);
    common::poll(Duration::from_secs(20), "generation 2 ready", || {
        status(&pid_file).starts_with("ready 2 ").then_some(())
    });
    for _ in 0..10 {
        assert_eq!(server.get("/").text(), "v2");
    }
    assert_eq!(stats(&socket)["crash_loop"], serde_json::Value::Null);

    // Another edit, and then no worker of generation 2 is left serving: rather than serve
    // nothing until a HUP, its replacements load the code on disk, with a warning.
    let generation_2 = common::poll(Duration::from_secs(10), "generation 2's workers", || {
        let pids = common::child_pids(server.pid());
        (pids.len() == 2 && !pids.contains(&workers[1])).then_some(pids)
    });
    std::fs::write(&source, PINNED_APP.replace("%s", "v3")).unwrap();
    for pid in generation_2 {
        // SAFETY: kill(2) on a worker of the server this test started.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    }
    log_line(&server, "generation 2 has no worker left serving");
    common::poll(Duration::from_secs(20), "the code on disk served", || {
        let mut conn = common::Conn::try_connect(server.addr()).ok()?;
        conn.try_send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let text = conn.try_read_response().ok()?.text();
        (text == "v3").then_some(())
    });
    assert!(server.is_running());
}
