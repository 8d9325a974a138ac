//! ABI compatibility, proven both ways, and app arguments:
//! - apps compiled against the frozen 1.0, 1.1 and 1.2 headers (`tests/fixtures/webserver_app_1_0.h`,
//!   from commit 6771c85; `webserver_app_1_1.h`, the header before 1.2; `webserver_app_1_2.h`,
//!   the header before 1.3) load and serve on this 1.3 server unchanged;
//! - a 1.1 app that needs wakers (the `c-timer` sample) refuses, with a message that says what to
//!   do, a host that speaks only 1.0 — played by `tests/fixtures/host_1_0.c`, built against the
//!   frozen header — while a 1.1-built app that needs nothing new still loads there; likewise a
//!   1.2 app that upgrades connections (`tests/fixtures/ws_echo.c`) refuses the 1.1 host
//!   `tests/fixtures/host_1_1.c` with one line, and a 1.3 app that needs trailers
//!   (`tests/fixtures/trailers.c`) refuses the 1.2 host `tests/fixtures/host_1_2.c` so;
//! - the words after LIB:SYMBOL reach the app's init, in every worker and across a hot swap.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{c_app, c_hello, sample_app, sample_server, scratch_dir, server, workspace_dir};

/// `tests/fixtures/host_1_N.c` (`minor` 0, 1 or 2), built as an executable.
fn old_host(minor: u32) -> PathBuf {
    let exe = scratch_dir().join(format!("host_1_{minor}-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let output = Command::new(&cc)
        .current_dir(workspace_dir())
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(format!("tests/fixtures/host_1_{minor}.c"))
        .arg("-ldl")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        output.status.success(),
        "compiling host_1_{minor}.c failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Runs the 1.0 host on `lib`'s `app`: (exit code, stdout).
fn on_a_1_0_host(lib: &std::path::Path) -> (Option<i32>, String) {
    on_an_old_host(0, lib)
}

/// Runs the 1.`minor` host on `lib`'s `app`: (exit code, stdout).
fn on_an_old_host(minor: u32, lib: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(old_host(minor))
        .arg(lib)
        .arg("app")
        .output()
        .expect("run host_1_0");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn an_app_built_against_the_1_0_header_serves_unchanged() {
    let lib = c_app("tests/fixtures/app_1_0.c", "app_1_0");
    let mut target = lib.clone().into_os_string();
    target.push(":app");
    let server = server(target).start();
    let mut conn = server.connect();
    conn.send("POST /old HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "abi 1.0 app: path=/old body=5\n");
    // Keep-alive works as before.
    conn.send("GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        conn.read_response().text(),
        "abi 1.0 app: path=/again body=0\n"
    );
    // 2 from a 1.0 app's `next` is an unknown code, as it was: a 500 at once, not a parked request.
    conn.send("GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read_response().status, 500);
    assert!(server
        .wait_for_log(Duration::from_secs(2), |l| l
            .contains("app_1_0 initialised"))
        .is_some());
    // `check` reports the ABI the app was built against.
    let mut spec = lib.into_os_string();
    spec.push(":app");
    let check = Command::new(common::webserver_exe())
        .arg("check")
        .arg(&spec)
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(stdout.contains("abi:     1.0"), "{stdout}");
}

#[test]
fn an_app_that_needs_wakers_refuses_a_1_0_host_clearly() {
    let (code, stdout) = on_a_1_0_host(&sample_app("c_timer"));
    assert_eq!(code, Some(3), "{stdout}");
    assert!(
        stdout.contains("needs a webserver speaking ABI 1.1")
            && stdout.contains("this server speaks 1.0: upgrade webserver"),
        "{stdout}"
    );
    // The harness is not refusing everything: a 1.1-built app that needs nothing new loads.
    let (code, stdout) = on_a_1_0_host(&c_hello());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("accepted"), "{stdout}");
}

/// Serves the C app `src` (built as `name`) and asks it `GET /old`: 200, on a connection kept
/// for further requests.
fn old_app_answers(src: &str, name: &str) -> (common::Server, common::Conn, common::Response) {
    let mut target = c_app(src, name).into_os_string();
    target.push(":app");
    let server = server(target).start();
    let mut conn = server.connect();
    conn.send("GET /old HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    (server, conn, response)
}

#[test]
fn an_app_built_against_the_1_1_header_serves_unchanged() {
    let (server, mut conn, response) = old_app_answers("tests/fixtures/app_1_1.c", "app_1_1");
    let plain = response.text();
    assert!(
        plain.starts_with("abi 1.1 app: path=/old flags="),
        "{plain}"
    );
    assert!(plain.ends_with(" upgrade=-\n"), "{plain}");
    // A WebSocket handshake reaches a 1.1 app as any request (its deferred body, woken by its own
    // waker, answers it), with the flags it always saw: no WS_REQ_WEBSOCKET (0x8), no 101.
    conn.send(
        "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    let ws = response.text();
    assert_eq!(
        ws,
        plain
            .replace("path=/old", "path=/ws")
            .replace("upgrade=-", "upgrade=websocket"),
        "a 1.1 app sees an upgrade request's flags unchanged"
    );
    assert!(server
        .wait_for_log(Duration::from_secs(2), |l| l
            .contains("app_1_1 initialised"))
        .is_some());
}

#[test]
fn an_app_that_upgrades_refuses_a_1_1_host_with_one_line() {
    let echo = c_app("tests/fixtures/ws_echo.c", "ws_echo");
    let (code, stdout) = on_an_old_host(1, &echo);
    assert_eq!(code, Some(3), "{stdout}");
    assert_eq!(
        stdout,
        format!("refused: {}\n", app_abi::NEEDS_ABI_1_2),
        "the C echo and the Rust layer say the same one line"
    );
    // The harness is not refusing everything: 1.1 apps (one that needs wakers) load there.
    let (code, stdout) = on_an_old_host(1, &sample_app("c_timer"));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("accepted"), "{stdout}");
}

/// The Rust sample ws-echo refuses a 1.1 host with the safe layer's line; the axum app (through
/// webserver-tower) loads there, serving upgrade requests as before (axum answers 426: no
/// `OnUpgrade` is inserted) and saying so in one warning.
#[test]
fn rust_apps_on_a_1_1_host_refuse_or_warn_once() {
    let (code, stdout) = on_an_old_host(1, &sample_app("ws_echo"));
    assert_eq!(code, Some(3), "{stdout}");
    assert_eq!(stdout, format!("refused: {}\n", app_abi::NEEDS_ABI_1_2));
    let output = Command::new(old_host(1))
        .arg(sample_app("axum_app"))
        .arg("app")
        .output()
        .expect("run host_1_1");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("accepted"), "{stdout}");
    let warnings: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("ABI 1.1") && l.contains("426"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
}

#[test]
fn an_app_built_against_the_1_2_header_serves_unchanged() {
    let (server, _conn, response) = old_app_answers("tests/fixtures/app_1_2.c", "app_1_2");
    assert_eq!(response.text(), "abi 1.2 app: path=/old send_file=1\n");
    assert_eq!(response.framing, common::Framing::Chunked);
    assert!(response.trailers.is_empty(), "{:?}", response.trailers);
    assert!(server
        .wait_for_log(Duration::from_secs(2), |l| l
            .contains("app_1_2 initialised"))
        .is_some());
}

/// A bit of `ws_app.flags` that the 1.0 header does not define means nothing for a 1.0 app:
/// 0x10 (ABI 1.3's `WS_APP_LENGTH_ENDS_BODY`) must not stop the server from asking the app's
/// `next` for its body's end, as `WS_APP_REQUEST_PARTS`/`WS_APP_NO_ENVIRON` are ignored for an
/// app built before 1.3 (`tests/fixtures/app_1_0_stray_flag.c` counts the ends it was asked).
#[test]
fn a_stray_flag_bit_of_a_1_0_app_changes_nothing() {
    let (_server, mut conn, response) =
        old_app_answers("tests/fixtures/app_1_0_stray_flag.c", "app_1_0_stray_flag");
    assert_eq!(response.text(), "hello\n");
    conn.send("GET /ends HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        conn.read_response().text(),
        "ends=1\n",
        "the 1.0 app's `next` was not asked for the end of its first body"
    );
}

#[test]
fn an_app_that_needs_trailers_refuses_a_1_2_host_with_one_line() {
    let trailers = c_app("tests/fixtures/trailers.c", "trailers");
    let (code, stdout) = on_an_old_host(2, &trailers);
    assert_eq!(code, Some(3), "{stdout}");
    assert_eq!(
        stdout,
        format!("refused: {}\n", app_abi::NEEDS_ABI_1_3),
        "the C app and the Rust layer say the same one line"
    );
    // The harness is not refusing everything: a 1.2 app loads there.
    let (code, stdout) = on_an_old_host(2, &c_app("tests/fixtures/app_1_2.c", "app_1_2"));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("accepted"), "{stdout}");
}

#[test]
fn app_arguments_reach_init_in_every_worker_and_across_a_swap() {
    let words = ["250", "--config", "path with spaces.toml", "-x"];
    let server = sample_server("c_timer")
        .args(["--workers", "2"])
        .app_args(words)
        .start();
    let want: String = words.iter().map(|w| format!("{w}\n")).collect();
    // Both workers (connections land on either).
    for _ in 0..6 {
        assert_eq!(server.get("/args").text(), want);
    }
    // The first word is c-timer's default delay: the app really used it.
    assert_eq!(server.get("/wait").text(), "waited 250 ms\n");
    server.signal(libc::SIGHUP);
    assert!(
        server
            .wait_for_log(Duration::from_secs(10), |l| l
                .contains("generation 2 ready"))
            .is_some(),
        "no swap:\n{}",
        server.stderr()
    );
    assert_eq!(server.get("/args").text(), want);
}

#[test]
fn no_app_arguments_is_an_empty_list() {
    let server = sample_server("c_timer").start();
    assert_eq!(server.get("/args").text(), "");
    assert_eq!(server.get("/wait?ms=1").text(), "waited 1 ms\n");
}

/// `check` passes the app arguments to the probe's init, and waits on its own thread for a body
/// that pends: c-timer's `GET /` waits the default delay its first argument sets.
#[test]
fn check_passes_app_arguments_and_waits_for_a_deferred_body() {
    let probe = |args: &[&str]| {
        let out = Command::new(common::webserver_exe())
            .arg("check")
            .arg("c_timer:app")
            .args(args)
            .current_dir(common::debug_dir())
            .output()
            .expect("run check");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        stdout
    };
    // "waited 100 ms\n" (the default) is 14 bytes, "waited 5 ms\n" 12.
    assert!(probe(&[]).contains("GET / -> 200 (14 body bytes)"));
    assert!(probe(&["5"]).contains("GET / -> 200 (12 body bytes)"));
}
