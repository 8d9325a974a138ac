//! The ASGI bridge's errors end to end: an app's exception before its response (500, traceback
//! logged) and after it started (the connection cut); an app that never answers (`--timeout`
//! 504); a loop blocked by CPU work (reported with where, the worker lives on); lifespan startups
//! that fail or hang, a WSGI app and a missing module refused with one line.
//!
//! Needs `cargo build --workspace` first (for `target/debug/libasgi.so`).

mod asgi_support;
mod common;
mod wsgi_support;

use asgi_support::asgi_server;
use common::assert_load_error;
use std::time::{Duration, Instant};

#[test]
fn an_exception_before_the_response_is_a_500_with_its_traceback_after_it_a_cut() {
    let server = asgi_server("fastapi_app:app").start();
    let boom = server.get("/boom");
    assert_eq!(boom.status, 500);
    common::poll(Duration::from_secs(5), "the traceback", || {
        let log = server.stderr();
        (log.contains("Traceback") && log.contains("ZeroDivisionError")).then_some(())
    });

    let mut conn = server.connect();
    conn.send(b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut head = conn.read_head();
    assert_eq!(head.status, 200);
    let err = conn
        .try_read_body(&mut head, false)
        .expect_err("the body must not end cleanly");
    assert!(!err.is_empty());
    assert!(conn.wait_closed(Duration::from_secs(5)).is_some());
    // The server still serves.
    assert_eq!(server.get("/state").status, 200);
}

#[test]
fn an_app_that_never_answers_meets_the_timeout() {
    let server = asgi_server("fastapi_app:app")
        .args(["--timeout", "1"])
        .start();
    let began = Instant::now();
    let slow = server.get("/sleep?seconds=30");
    assert_eq!(slow.status, 504);
    assert!(began.elapsed() < Duration::from_secs(10));
    assert_eq!(server.get("/sleep?seconds=0").status, 200);
}

#[test]
fn a_failing_lifespan_startup_refuses_to_start_with_one_line() {
    let exited = asgi_server("failing_lifespan:app").run_to_exit();
    assert_load_error(
        &exited,
        &[
            "lifespan startup of failing_lifespan:app failed",
            "RuntimeError: cannot reach the database",
            "failing_lifespan.py:10",
        ],
    );
}

#[test]
fn a_wsgi_app_is_refused_with_the_command_that_serves_it() {
    let exited = asgi_server("raw_apps:wsgi").run_to_exit();
    assert_load_error(
        &exited,
        &[
            "raw_apps:wsgi is a WSGI app",
            "webserver wsgi:app raw_apps:wsgi",
        ],
    );
    let exited = asgi_server("no_such_module:app").run_to_exit();
    assert_load_error(
        &exited,
        &["cannot import no_such_module", "ModuleNotFoundError"],
    );
}

#[test]
fn a_bare_app_that_raises_or_returns_before_its_response_is_a_500() {
    let server = asgi_server("raw_apps:raises").start();
    assert_eq!(server.get("/raise").status, 500);
    assert_eq!(server.get("/nothing").status, 500);
    common::poll(Duration::from_secs(5), "both failures logged", || {
        let log = server.stderr();
        (log.contains("ASGI app raw_apps:raises raised:\nTraceback")
            && log.contains("ValueError: raw failure before the response")
            && log.contains("returned without starting a response"))
        .then_some(())
    });
}

#[test]
fn a_lifespan_startup_that_hangs_fails_after_startup_timeout_saying_where() {
    let began = Instant::now();
    let exited = asgi_server("hanging_lifespan:app")
        .app_args(["--startup-timeout", "1"])
        .run_to_exit();
    assert_load_error(
        &exited,
        &[
            "lifespan startup of hanging_lifespan:app did not finish within 1 s",
            "--startup-timeout",
            "hanging_lifespan.py:11 in lifespan",
        ],
    );
    assert!(began.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_loop_blocked_by_cpu_work_is_reported_with_where_and_the_worker_lives_on() {
    let server = asgi_server("fastapi_app:app")
        .args(["-w", "1", "--threads", "2", "--timeout", "2"])
        .start();
    let pid = server.get("/pid").json()["pid"].clone();
    let mut spinner = server.connect();
    spinner.send(b"GET /spin?seconds=4 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300));
    // The serving threads are free; the request waits for the loop and meets --timeout.
    let began = Instant::now();
    let waiting = server.get("/state");
    assert_eq!(waiting.status, 504, "{}", waiting.text());
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(spinner.read_response().status, 504);
    common::poll(Duration::from_secs(10), "the blockage reported", || {
        let log = server.stderr();
        (log.contains("ASGI event loop of fastapi_app:app has not run for")
            && log.contains("fastapi_app.py:")
            && log.contains("in spin")
            && log.contains("runs again after"))
        .then_some(())
    });
    // The same worker serves on: its heartbeat never stopped.
    assert_eq!(server.get("/pid").json()["pid"], pid);
    assert!(
        !server.stderr().contains("sent no heartbeat"),
        "{}",
        server.stderr()
    );
}
