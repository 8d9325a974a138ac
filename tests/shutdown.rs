//! Graceful shutdown: on SIGTERM/SIGINT the server stops accepting, finishes in-flight requests and
//! exits 0.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_finishes_the_in_flight_stream_then_exits_0() {
    let mut server = sample_server("stream").start();
    let mut conn = server.connect();
    conn.send("GET /?n=5&delay_ms=200 HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut resp = conn.read_head();
    assert_eq!(resp.status, 200);
    server.signal(libc::SIGTERM);
    let signalled = Instant::now();

    // A new client is not served any more (refused, or accepted by the kernel and then dropped).
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(mut late) = std::net::TcpStream::connect(server.addr()) {
        use std::io::{Read, Write};
        late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = late.write_all(b"GET /?n=1&delay_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut got = Vec::new();
        let _ = late.read_to_end(&mut got);
        assert!(
            !got.starts_with(b"HTTP/1.1 200"),
            "served a new request after SIGTERM: {:?}",
            String::from_utf8_lossy(&got)
        );
    }

    conn.try_read_body(&mut resp, false)
        .unwrap_or_else(|e| panic!("in-flight response cut: {e}"));
    assert_eq!(resp.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server still running 5 s after the response");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

#[test]
fn sigint_when_idle_exits_0() {
    let mut server = sample_server("hello").start();
    assert_eq!(server.get("/").status, 200);
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("still running 3 s after SIGINT");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

#[test]
fn sigterm_does_not_wait_for_idle_keep_alive_connections() {
    // The server may give an idle connection a short grace window to send one more request
    // (closing it at the very instant a request is in flight loses that request), bounded by
    // --graceful-timeout — but not the whole 30 s keep-alive.
    let mut server = sample_server("hello")
        .args(["--keep-alive", "30", "--graceful-timeout", "1"])
        .start();
    let mut conn = server.connect();
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().status, 200);
    // The connection is idle between requests: nothing is in flight.
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("an idle keep-alive connection held the server past SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(conn.wait_closed(Duration::from_secs(1)).is_some());
}

/// A C app that records, in the file named by `$SLOW_APP_RECORD`, every `call` start and end and
/// every `shutdown` with the number of calls still running at that moment. `call` sleeps for
/// `?ms=N` milliseconds, then checks whether `shutdown` ran meanwhile (its state is marked dead
/// and its buffer freed, as a real app's teardown would).
const SLOW_APP: &str = r#"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webserver_app.h"

#define ALIVE 0x5eed

typedef struct slow_state {
    _Atomic int alive;
    _Atomic int running;
    char *scratch;
} slow_state;

static void record(const char *line) {
    const char *path = getenv("SLOW_APP_RECORD");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f == NULL) return;
    fprintf(f, "%s\n", line);
    fclose(f);
}

static int32_t slow_init(const ws_init *init, void **state) {
    (void)init;
    slow_state *s = calloc(1, sizeof *s);
    if (s == NULL) return WS_ERR_APP;
    s->scratch = malloc(64);
    atomic_store(&s->alive, ALIVE);
    *state = s;
    return WS_OK;
}

static void slow_shutdown(void *state) {
    slow_state *s = state;
    char line[64];
    snprintf(line, sizeof line, "shutdown running=%d", atomic_load(&s->running));
    record(line);
    atomic_store(&s->alive, 0);
    free(s->scratch);
    s->scratch = NULL;
}

static int32_t slow_call(void *state, const ws_request *req, ws_body *body) {
    (void)body;
    slow_state *s = state;
    atomic_fetch_add(&s->running, 1);
    record("call start");
    ws_bytes query = {NULL, 0};
    long ms = 0;
    if (ws_getenv(req, "QUERY_STRING", &query) && query.len > 3 && query.len < 16 &&
        memcmp(query.ptr, "ms=", 3) == 0) {
        char digits[16];
        memcpy(digits, query.ptr + 3, query.len - 3);
        digits[query.len - 3] = 0;
        ms = atol(digits);
    }
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    record(atomic_load(&s->alive) == ALIVE ? "call end: state intact"
                                           : "call end: state was shut down under this call");
    atomic_fetch_sub(&s->running, 1);
    ws_bytes reason = {NULL, 0};
    return req->host->start_response(req->io, 200, reason, NULL, 0, 0);
}

const ws_app app = {WS_APP_HEADER(0), "slow", "1.0", slow_init, slow_call, slow_shutdown};
"#;

/// `SLOW_APP` compiled, and a fresh record file for one server.
fn slow_app(tag: &str) -> (std::ffi::OsString, std::path::PathBuf) {
    static SOURCE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let src = SOURCE.get_or_init(|| {
        let src = scratch_dir().join("slow_shutdown_app.c");
        // Other test binaries may read it meanwhile: write privately, then rename.
        let tmp = scratch_dir().join(format!(".slow_shutdown_app.{}.c", std::process::id()));
        std::fs::write(&tmp, SLOW_APP).expect("write the slow app's source");
        std::fs::rename(&tmp, &src).expect("rename the slow app's source");
        src
    });
    let mut target = c_app(src.to_str().expect("utf-8 path"), "slow_shutdown").into_os_string();
    target.push(":app");
    let record = fresh_dir(tag).join("record");
    (target, record)
}

fn read_record(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn graceful_timeout_with_a_call_still_running_skips_the_apps_shutdown() {
    let (target, record) = slow_app("slow-call-shutdown");
    let mut server = server(target)
        .args(["--graceful-timeout", "1", "--threads", "2"])
        .env("SLOW_APP_RECORD", record.to_str().unwrap())
        // The app writes its record there (the sandbox allows no other writes).
        .args([
            "--sandbox-write",
            record.parent().unwrap().to_str().unwrap(),
        ])
        .start();
    let mut conn = server.connect();
    conn.send("GET /?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
    poll(Duration::from_secs(5), "the call to start", || {
        read_record(&record)
            .contains(&"call start".to_owned())
            .then_some(())
    });
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(6))
        .expect("server still running 6 s after SIGTERM with --graceful-timeout 1");
    // Let a call that outlived the worker's exit (it cannot: the process is gone) write its end.
    std::thread::sleep(Duration::from_millis(200));
    let lines = read_record(&record);
    let stderr = server.stderr();
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("shutdown") && l != "shutdown running=0"),
        "the app's shutdown ran while a call was still running: {lines:?}\nstderr:\n{stderr}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("shut down under this call")),
        "a call saw the app shut down under it: {lines:?}\nstderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("Bad file descriptor"),
        "a thread outlived the descriptor it polls:\n{stderr}"
    );
    assert!(
        stderr.contains("without calling the app's shutdown"),
        "the worker did not say it skipped the app's shutdown:\n{stderr}"
    );
    assert!(status.code().is_some(), "exit status {status:?}");
}

#[test]
fn graceful_stop_runs_the_apps_shutdown_once_after_the_last_call() {
    let (target, record) = slow_app("slow-call-graceful");
    let mut server = server(target)
        .args(["--graceful-timeout", "10", "--threads", "2"])
        .env("SLOW_APP_RECORD", record.to_str().unwrap())
        // The app writes its record there (the sandbox allows no other writes).
        .args([
            "--sandbox-write",
            record.parent().unwrap().to_str().unwrap(),
        ])
        .start();
    let mut conn = server.connect();
    conn.send("GET /?ms=500 HTTP/1.1\r\nHost: x\r\n\r\n");
    poll(Duration::from_secs(5), "the call to start", || {
        read_record(&record)
            .contains(&"call start".to_owned())
            .then_some(())
    });
    server.signal(libc::SIGTERM);
    assert_eq!(conn.read_response().status, 200);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server still running 5 s after its last response");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let lines = read_record(&record);
    assert_eq!(
        lines,
        ["call start", "call end: state intact", "shutdown running=0"],
        "stderr:\n{}",
        server.stderr()
    );
}
