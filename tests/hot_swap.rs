//! The process model end to end: worker processes, crash isolation, fail-safe hot swap, signals,
//! `webserver check` and `scripts/hot-swap.sh` — real processes, real sockets.
//!
//! Swaps are driven the way a deploy script drives them: copy the new library over one live path
//! (temp file + rename), SIGHUP the master named by `--pid FILE`, and wait for `FILE.status` to say
//! `ready G` (or `failed G ...`) for a generation newer than before (helpers: tests/common/swap.rs).

mod common;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::swap::*;
use common::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Asserts that `n` new connections are all answered by the app whose `/hello` names `who`.
fn assert_new_connections_served_by(server: &Server, who: &str, n: usize, context: &str) {
    for i in 0..n {
        let resp = fresh_get(server, "/hello")
            .unwrap_or_else(|e| panic!("{context}: new connection {i} failed: {e}"));
        assert_eq!(resp.status, 200, "{context}: {resp:?}");
        let body = resp.text();
        assert!(
            body.contains(who),
            "{context}: new connection {i} answered by the wrong library: {body:?} (want {who})"
        );
    }
}

/// Counts log lines containing `needle`.
fn count_lines(server: &Server, needle: &str) -> usize {
    server
        .stderr()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

// ---------------------------------------------------------------------------------------------
// 1. Twenty swaps under load
// ---------------------------------------------------------------------------------------------

#[test]
fn twenty_swaps_under_keep_alive_load_lose_no_request() {
    let pyramidish = sample_app("pyramidish");
    let flaskish = sample_app("flaskish");
    let dir = fresh_dir("swap20");
    let (server, live, pid_file) = live_server(&dir, &pyramidish, &["-w", "2"]);
    assert_new_connections_served_by(&server, "Pyramidish", 2, "before any swap");

    let load = Load::keep_alive(&server, 4, "/hello", 200);
    load.wait_progress(50);
    let started = Instant::now();
    let mut generation = read_status(&pid_file).unwrap().1;
    for swap in 1..=20 {
        let (lib, who) = if swap % 2 == 1 {
            (&flaskish, "Flaskish")
        } else {
            (&pyramidish, "Pyramidish")
        };
        install(lib, &live);
        let (state, settled, rest) = hup(&pid_file);
        assert_eq!(state, "ready", "swap {swap} to {who} failed: {rest}");
        assert_eq!(settled, generation + 1, "one generation per swap");
        generation = settled;
        assert_new_connections_served_by(&server, who, 3, &format!("after swap {swap}"));
        // Keep the clients busy across the swap boundary, not only between swaps.
        load.wait_progress(20);
    }
    let elapsed = started.elapsed();
    let (ok, failures, bodies) = load.finish();
    eprintln!(
        "20 swaps under 4 keep-alive clients: {ok} requests, {} failed, in {:.1} s; bodies {bodies:?}",
        failures.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "failed requests during swaps: {failures:#?}"
    );
    assert!(ok > 200, "too little load to prove anything: {ok} requests");
    for who in ["Pyramidish", "Flaskish"] {
        assert!(
            bodies.keys().any(|b| b.contains(who)),
            "the load never saw {who}: {bodies:?}"
        );
    }
    assert!(
        bodies
            .keys()
            .all(|b| b.contains("Pyramidish") || b.contains("Flaskish")),
        "unexpected bodies: {bodies:?}"
    );
    assert_eq!(count_lines(&server, "hot swap failed"), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Broken swaps are refused; the old generation keeps serving
// ---------------------------------------------------------------------------------------------

#[test]
fn broken_swaps_keep_the_old_generation_serving_then_a_good_swap_works() {
    let pyramidish = sample_app("pyramidish");
    let flaskish = sample_app("flaskish");
    let dir = fresh_dir("swapbad");
    let (server, live, pid_file) = live_server(&dir, &pyramidish, &["-w", "2"]);
    let load = Load::keep_alive(&server, 3, "/hello", 200);
    load.wait_progress(20);

    enum Broken {
        Bytes(Vec<u8>),
        Lib(PathBuf),
        Missing,
    }
    let cases: Vec<(&str, Broken, Vec<&str>)> = vec![
        (
            "garbage bytes",
            Broken::Bytes(pseudo_random_bytes(64 * 1024, 7)),
            vec!["live.so"],
        ),
        ("empty file", Broken::Bytes(Vec::new()), vec!["live.so"]),
        (
            "no `app` symbol",
            Broken::Lib(fixture("no_app_symbol")),
            vec!["symbol 'app' not found"],
        ),
        (
            "wrong ABI major",
            Broken::Lib(fixture("abi_major2")),
            vec!["ABI 2", "ABI 1"],
        ),
        (
            "init fails",
            Broken::Lib(fixture("init_fails")),
            vec!["database unreachable"],
        ),
        (
            "init crashes",
            Broken::Lib(fixture("init_crash")),
            vec!["signal 11", "SIGSEGV"],
        ),
        ("missing file", Broken::Missing, vec!["live.so"]),
    ];
    for (attempt, (what, broken, needles)) in cases.into_iter().enumerate() {
        match &broken {
            Broken::Bytes(bytes) => install_bytes(bytes, &live),
            Broken::Lib(lib) => install(lib, &live),
            Broken::Missing => std::fs::remove_file(&live).unwrap(),
        }
        let (state, generation, message) = hup(&pid_file);
        assert_eq!(state, "failed", "{what}: the swap did not fail: {message}");
        for needle in &needles {
            assert!(
                message.contains(needle),
                "{what}: status message lacks {needle:?}: {message:?}"
            );
        }
        // Exactly one clear line per attempt, naming what keeps serving. The master logs it
        // before it writes the status, but the test reads the server's stderr on a thread of
        // its own, which may not have caught up yet.
        let failed_lines = || -> Vec<String> {
            server
                .stderr()
                .lines()
                .filter(|l| l.contains("hot swap failed"))
                .map(str::to_owned)
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = failed_lines();
        while lines.len() <= attempt && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            lines = failed_lines();
        }
        assert_eq!(
            lines.len(),
            attempt + 1,
            "{what}: want one `hot swap failed` line per attempt: {lines:#?}"
        );
        let line = lines.last().unwrap();
        assert!(
            line.contains("generation 1 keeps serving pyramidish"),
            "{what}: {line}"
        );
        assert!(
            !line.contains("webserver-") && !line.contains("/proc/self/fd"),
            "{what}: the message names the private copy, not the user's file: {line}"
        );
        assert!(generation > 1);
        assert_new_connections_served_by(&server, "Pyramidish", 2, what);
        load.wait_progress(10);
    }
    // A late second line for any attempt (e.g. the other worker's error) would show up here.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        count_lines(&server, "hot swap failed"),
        7,
        "{}",
        server.stderr()
    );
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());

    // The next good swap works.
    install(&flaskish, &live);
    let (state, _, rest) = hup(&pid_file);
    assert_eq!(state, "ready", "good swap after failures: {rest}");
    assert_new_connections_served_by(&server, "Flaskish", 3, "after the good swap");
    load.wait_progress(10);
    let (ok, failures, _) = load.finish();
    assert!(failures.is_empty(), "{ok} ok, failed: {failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// 3. A segfault kills one worker only
// ---------------------------------------------------------------------------------------------

#[test]
fn segfault_drops_only_its_connection_and_the_worker_is_replaced() {
    let mut server = quiet(sample_server("crashy")).args(["-w", "2"]).start();
    let master = server.pid();
    let workers = poll(Duration::from_secs(5), "2 workers", || {
        let pids = child_pids(master);
        (pids.len() == 2).then_some(pids)
    });

    // Keep-alive connections, each pinned to a worker: find one on each worker.
    let mut by_worker: std::collections::HashMap<u32, Vec<Conn>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while by_worker.len() < 2 || by_worker.values().any(|v| v.len() < 2) {
        assert!(
            Instant::now() < deadline,
            "could not reach both workers: {:?}",
            by_worker.keys()
        );
        let mut conn = server.connect();
        let pid = pid_of(&mut conn);
        assert!(workers.contains(&pid), "{pid} not in {workers:?}");
        by_worker.entry(pid).or_default().push(conn);
    }
    let victim = workers[0];
    let survivor = workers[1];
    let mut slow_victim = by_worker.get_mut(&victim).unwrap().pop().unwrap();
    let mut crash_conn = by_worker.get_mut(&victim).unwrap().pop().unwrap();
    let mut slow = by_worker.remove(&survivor).unwrap();

    // In flight on the surviving worker (and one on the victim, which dies with it).
    for conn in &mut slow {
        conn.send("GET /slow?ms=700 HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    slow_victim.send("GET /slow?ms=700 HTTP/1.1\r\nHost: x\r\n\r\n");
    thread::sleep(Duration::from_millis(100));
    crash_conn.send("GET /segv HTTP/1.1\r\nHost: x\r\n\r\n");
    let crashed = Instant::now();
    let got = crash_conn.try_read_response();
    assert!(
        got.is_err(),
        "the segfaulting request got a response: {got:?}"
    );

    // The service answers at once (the other worker), and a replacement runs within 1 s.
    let resp = fresh_get(&server, "/").expect("service answers right after the crash");
    assert_eq!(resp.text(), "crashy ok\n");
    let replaced = poll(
        Duration::from_secs(1),
        "a replacement worker within 1 s",
        || {
            let pids = child_pids(master);
            (pids.len() == 2 && !pids.contains(&victim)).then_some(pids)
        },
    );
    assert!(replaced.contains(&survivor));
    let replacement = *replaced.iter().find(|p| **p != survivor).unwrap();
    // ... and it serves: new connections reach it (poll: the kernel picks the accepting worker).
    poll(
        Duration::from_secs(5),
        "the replacement worker to serve",
        || {
            let mut conn = server.connect();
            (pid_of(&mut conn) == replacement).then_some(())
        },
    );
    eprintln!(
        "worker {victim} segfaulted; replacement {replacement} serving {:?} after the crash",
        crashed.elapsed()
    );

    // Every in-flight request on the other worker completed.
    for conn in &mut slow {
        let resp = conn.read_response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "slow done\n"));
    }
    // The in-flight request on the crashed worker was lost with it (nothing can save it).
    assert!(slow_victim.try_read_response().is_err());

    let line = server
        .wait_for_log(Duration::from_secs(2), |l| {
            l.contains(&format!("worker {victim} ")) && l.contains("killed by signal 11 (SIGSEGV)")
        })
        .unwrap_or_else(|| panic!("crash not logged:\n{}", server.stderr()));
    assert!(
        line.contains("libcrashy.so"),
        "the log names the library: {line}"
    );

    // SIGABRT is reported the same way.
    let mut conn = server.connect();
    let pid = pid_of(&mut conn);
    conn.send("GET /abort HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(conn.try_read_response().is_err());
    server
        .wait_for_log(Duration::from_secs(2), |l| {
            l.contains(&format!("worker {pid} ")) && l.contains("signal 6 (SIGABRT)")
        })
        .unwrap_or_else(|| panic!("abort not logged:\n{}", server.stderr()));
    assert!(server.is_running());
}

#[test]
fn a_single_worker_that_segfaults_is_back_within_one_second() {
    let server = quiet(sample_server("crashy")).args(["-w", "1"]).start();
    let mut conn = server.connect();
    conn.send("GET /segv HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(conn.try_read_response().is_err());
    let crashed = Instant::now();
    poll(
        Duration::from_secs(1),
        "the service to answer within 1 s",
        || fresh_get(&server, "/").ok().filter(|r| r.status == 200),
    );
    eprintln!("single worker back after {:?}", crashed.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 4. SIGTERM during a slow request
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_during_a_slow_request_completes_it_and_leaves_no_worker() {
    let mut server = quiet(sample_server("crashy")).args(["-w", "2"]).start();
    let master = server.pid();
    let workers = poll(Duration::from_secs(5), "2 workers", || {
        let pids = child_pids(master);
        (pids.len() == 2).then_some(pids)
    });
    let mut conn = server.connect();
    let serving = pid_of(&mut conn); // the connection is accepted and owned by a worker
    assert!(workers.contains(&serving));
    conn.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    let resp = conn.read_response();
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow done\n"));
    if !resp.header_has_token("connection", "close") {
        // The response was begun before the drain and promised keep-alive: a request the client
        // sends on that connection now is still answered, with `Connection: close`.
        conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(resp.header_has_token("connection", "close"), "{resp:?}");
    }
    assert!(
        conn.wait_closed(Duration::from_secs(5)).is_some(),
        "connection left open"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("master still running 10 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    for pid in workers {
        assert!(!process_exists(pid), "worker {pid} outlived the master");
    }
    // stderr is read on a thread of the test's, which may still be catching up with the exit.
    assert!(
        server
            .wait_for_log(Duration::from_secs(5), |l| l
                .contains("all workers stopped; exiting"))
            .is_some(),
        "{}",
        server.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. webserver check
// ---------------------------------------------------------------------------------------------

fn error_lines(exited: &Exited) -> Vec<String> {
    exited
        .stderr
        .lines()
        .filter(|l| l.starts_with("webserver: error: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn check_reports_good_broken_and_crashing_libraries() {
    let good = run_check(&sample_app("crashy"));
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    for needle in [
        "app:     crashy 1.0",
        "abi:     1.",
        "init:    ok",
        "probe:   GET / -> 200",
        "shutdown: ok",
    ] {
        assert!(good.stdout.contains(needle), "lacks {needle:?}: {good:?}");
    }

    let dir = fresh_dir("check");
    let garbage = dir.join("libgarbage.so");
    std::fs::write(&garbage, pseudo_random_bytes(4096, 3)).unwrap();
    let broken = run_check(&garbage);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let errors = error_lines(&broken);
    assert_eq!(errors.len(), 1, "{broken:?}");
    assert!(errors[0].contains("libgarbage.so"), "{broken:?}");
    assert_eq!(
        broken
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        1,
        "{broken:?}"
    );

    let no_symbol = run_check(&fixture("no_app_symbol"));
    assert_eq!(no_symbol.status.code(), Some(1), "{no_symbol:?}");
    assert!(
        error_lines(&no_symbol)[0].contains("symbol 'app' not found"),
        "{no_symbol:?}"
    );

    let crashing = run_check(&fixture("init_crash"));
    assert_ne!(crashing.status.code(), Some(0), "{crashing:?}");
    let errors = error_lines(&crashing);
    assert_eq!(errors.len(), 1, "{crashing:?}");
    assert!(errors[0].contains("crashed"), "{crashing:?}");
    assert!(errors[0].contains("signal 11, SIGSEGV"), "{crashing:?}");
}

// ---------------------------------------------------------------------------------------------
// Harakiri, TTIN/TTOU, --max-requests, --reload, the script
// ---------------------------------------------------------------------------------------------

#[test]
fn timeout_kills_a_stuck_worker_and_the_service_answers_again() {
    let server = quiet(sample_server("crashy"))
        .args(["-w", "1", "--timeout", "1"])
        .start();
    let mut conn = server.connect();
    conn.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
    let sent = Instant::now();
    assert!(
        conn.try_read_response().is_err(),
        "the stuck request was answered"
    );
    let dropped = sent.elapsed();
    assert!(
        dropped < Duration::from_millis(2900),
        "dropped only after {dropped:?}"
    );
    server
        .wait_for_log(Duration::from_secs(2), |l| l.contains("past --timeout"))
        .unwrap_or_else(|| panic!("harakiri not logged:\n{}", server.stderr()));
    poll(
        Duration::from_secs(2),
        "the service to answer again",
        || fresh_get(&server, "/").ok().filter(|r| r.status == 200),
    );
}

#[test]
fn ttin_and_ttou_change_the_worker_count() {
    let server = quiet(sample_server("crashy")).args(["-w", "1"]).start();
    let master = server.pid();
    let count_is = |n: usize| {
        poll(Duration::from_secs(5), &format!("{n} worker(s)"), || {
            let pids = child_pids(master);
            (pids.len() == n).then_some(pids)
        })
    };
    count_is(1);
    server.signal(libc::SIGTTIN);
    count_is(2);
    server.signal(libc::SIGTTIN);
    let three = count_is(3);
    // All three serve.
    let mut seen = std::collections::HashSet::new();
    poll(Duration::from_secs(10), "all 3 workers to serve", || {
        let mut conn = server.connect();
        seen.insert(pid_of(&mut conn));
        (seen.len() == 3).then_some(())
    });
    assert_eq!(seen, three.iter().copied().collect());
    server.signal(libc::SIGTTOU);
    count_is(2);
    server.signal(libc::SIGTTOU);
    server.signal(libc::SIGTTOU); // never below 1
    count_is(1);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(child_pids(master).len(), 1);
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
}

#[test]
fn max_requests_recycles_workers_without_failed_requests() {
    let server = quiet(sample_server("crashy"))
        .args(["-w", "2", "--max-requests", "5"])
        .start();
    let load = Load::keep_alive(&server, 2, "/pid", 200);
    load.wait_progress(60);
    let (ok, failures, bodies) = load.finish();
    assert!(failures.is_empty(), "{ok} ok; failed: {failures:#?}");
    // 60+ requests at 5 per worker: many distinct worker processes answered. A retiring worker
    // still answers (with `Connection: close`) a request already arriving on each of its open
    // connections, and may accept a reconnect in the instant before it stops accepting, so a
    // worker may serve a few more than 5 — never many more.
    assert!(
        bodies.len() >= 6,
        "only {} distinct workers: {bodies:?}",
        bodies.len()
    );
    assert!(
        bodies.values().all(|&n| n <= 3 * 5),
        "a worker served far more than --max-requests: {bodies:?}"
    );
    server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("recycled"))
        .unwrap_or_else(|| panic!("no worker recycled:\n{}", server.stderr()));
}

#[test]
fn reload_swaps_when_the_file_changes() {
    let dir = fresh_dir("reload");
    let (server, live, pid_file) =
        live_server(&dir, &sample_app("pyramidish"), &["-w", "2", "--reload"]);
    assert_new_connections_served_by(&server, "Pyramidish", 2, "before the change");
    let load = Load::keep_alive(&server, 2, "/hello", 200);
    install(&sample_app("flaskish"), &live);
    let (state, generation, rest) = wait_settled(&pid_file, 1);
    assert_eq!((state.as_str(), generation), ("ready", 2), "{rest}");
    assert_new_connections_served_by(&server, "Flaskish", 3, "after --reload");
    // A broken file is refused the same way, and the good one keeps serving.
    install_bytes(b"not a library", &live);
    let (state, _, rest) = wait_settled(&pid_file, 2);
    assert_eq!(state, "failed", "{rest}");
    assert_new_connections_served_by(&server, "Flaskish", 2, "after a broken --reload");
    load.wait_progress(10);
    let (_, failures, _) = load.finish();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(server.stderr().contains("--reload:"), "{}", server.stderr());
}

#[test]
fn hot_swap_script_checks_copies_signals_and_waits() {
    let dir = fresh_dir("script");
    let (server, live, pid_file) = live_server(&dir, &sample_app("pyramidish"), &["-w", "2"]);
    let load = Load::keep_alive(&server, 2, "/hello", 200);

    // A good library: swapped, and the script returns once the new generation serves.
    let good = run_script(&sample_app("flaskish"), &pid_file, &live);
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    assert!(good.stdout.contains("ready 2"), "{good:?}");
    assert_new_connections_served_by(&server, "Flaskish", 3, "after the script");

    // A broken library: refused by `check` before the live file is touched.
    let garbage = dir.join("libgarbage.so");
    std::fs::write(&garbage, b"garbage").unwrap();
    let before = std::fs::read(&live).unwrap();
    let refused = run_script(&garbage, &pid_file, &live);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("webserver: error:"), "{refused:?}");
    assert_eq!(
        std::fs::read(&live).unwrap(),
        before,
        "the live file was touched"
    );
    assert_eq!(read_status(&pid_file).unwrap().0, "ready");

    // A library that passes `check` (for the SYMBOL the caller named) but that the master cannot
    // serve (it serves `live.so:app`): the swap fails in the master and the script reports the
    // `failed G ...` status with exit 1; the old generation keeps serving.
    // The live path gets the previous library back, so a restart or `--reload` cannot pick up
    // the refused one.
    let serving = std::fs::read(&live).unwrap();
    let refused = run_script_symbol(&fixture("no_app_symbol"), &pid_file, &live, Some("other"));
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("failed 3"), "{refused:?}");
    assert!(
        refused.stderr.contains("symbol 'app' not found"),
        "{refused:?}"
    );
    assert!(
        refused.stderr.contains("restored the previous"),
        "{refused:?}"
    );
    assert!(
        std::fs::read(&live).unwrap() == serving,
        "the live path still holds the refused library"
    );
    assert_new_connections_served_by(&server, "Flaskish", 2, "after a failed scripted swap");

    let back = run_script(&sample_app("pyramidish"), &pid_file, &live);
    assert_eq!(back.status.code(), Some(0), "{back:?}");
    assert_new_connections_served_by(&server, "Pyramidish", 2, "after swapping back");
    load.wait_progress(10);
    let (_, failures, _) = load.finish();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        !dir.read_dir().unwrap().any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.contains(".tmp.") || name.contains(".previous.")
        }),
        "the script left a temp file"
    );
}

/// A library caught half-written — by a HUP, or by `--reload` when the writer pauses longer than
/// the debounce — is refused (its ELF headers announce more bytes than it has); the finished file
/// is then swapped in.
#[test]
fn a_half_written_library_is_refused_then_the_whole_one_is_served() {
    let dir = fresh_dir("halfwritten");
    let (server, live, pid_file) = live_server(&dir, &sample_app("pyramidish"), &["--reload"]);
    let flaskish = std::fs::read(sample_app("flaskish")).unwrap();
    let half = &flaskish[..flaskish.len() / 2];

    // Written in place (no rename), pausing past the debounce half-way.
    std::fs::write(&live, half).unwrap();
    let (state, generation, message) = wait_settled(&pid_file, 1);
    assert_eq!(
        state, "failed",
        "a half-written library was served: {message}"
    );
    assert!(message.contains("is incomplete"), "{message}");
    assert!(message.contains("rename it into place"), "{message}");
    assert_new_connections_served_by(&server, "Pyramidish", 2, "after the half-written file");

    std::fs::write(&live, &flaskish).unwrap();
    let (state, _, message) = wait_settled(&pid_file, generation);
    assert_eq!(state, "ready", "{message}");
    assert_new_connections_served_by(&server, "Flaskish", 2, "once the file is whole");
}
