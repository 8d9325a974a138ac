//! What a gunicorn operator does from habit (issue 17 items 9 and 13), end to end with the real
//! binary: signals the master does not act on are logged and ignored, never fatal (USR2, the
//! binary upgrade, is tests/binary_upgrade.rs).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn winch_and_stray_signals_are_logged_and_ignored_and_hup_still_swaps() {
    let dir = fresh_dir("habit-signals");
    let pid_file = dir.join("ws.pid");
    let mut server = sample_server("hello")
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .start();
    let master = server.pid() as i32;
    poll(Duration::from_secs(10), "generation 1 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 1)
    });

    kill(master, libc::SIGWINCH);
    server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("SIGWINCH ignored"))
        .expect("a log line for WINCH");
    // Others whose default action would end the master.
    for signal in [libc::SIGALRM, libc::SIGVTALRM, libc::SIGPROF, libc::SIGIO] {
        kill(master, signal);
    }
    server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("SIGIO ignored"))
        .expect("a log line for IO");

    assert!(server.is_running(), "{}", server.stderr());
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
    // HUP still swaps.
    kill(master, libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
    assert!(server.is_running());
}

/// The permission bits of `path`.
fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn umask_covers_the_log_files_the_pid_file_and_the_sockets() {
    let dir = fresh_dir("habit-umask");
    let (access, error, pid, socket, stats) = (
        dir.join("access.log"),
        dir.join("error.log"),
        dir.join("ws.pid"),
        dir.join("ws.sock"),
        dir.join("stats.sock"),
    );
    let mut server = sample_server("hello")
        .args(["--umask", "077"])
        .args(["--access-logfile".as_ref(), access.as_os_str()])
        .args(["--error-logfile".as_ref(), error.as_os_str()])
        .args(["--pid".as_ref(), pid.as_os_str()])
        .args([format!("--bind=unix:{}", socket.display())])
        .args([format!("--stats=unix:{}", stats.display())])
        .start();
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
    poll(Duration::from_secs(10), "the status file", || {
        read_status(&pid).filter(|(state, _, _)| state == "ready")
    });
    for file in [&access, &error, &pid, &status_file(&pid)] {
        assert_eq!(mode_of(file), 0o600, "{}", file.display());
    }
    for file in [&socket, &stats] {
        assert_eq!(mode_of(file), 0o700, "{}", file.display());
    }
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(10)).expect("exit");
}

#[test]
fn planned_worker_exits_are_logged_at_info_not_error() {
    let dir = fresh_dir("habit-planned");
    let pid_file = dir.join("ws.pid");
    let mut server = quiet(sample_server("hello"))
        .args(["-w", "2", "--pid"])
        .args([pid_file.as_os_str()])
        .start();
    let master = server.pid();
    let workers = poll(Duration::from_secs(10), "2 workers", || {
        Some(child_pids(master)).filter(|p| p.len() == 2)
    });
    // gunicorn's way to restart one worker.
    kill(workers[0] as i32, libc::SIGTERM);
    server
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains(&format!("worker {} ", workers[0])) && l.contains("stopped from outside")
        })
        .expect("the worker's exit is logged");
    poll(Duration::from_secs(10), "the replacement", || {
        Some(child_pids(master))
            .filter(|p| p.len() == 2 && !p.contains(&workers[0]))
            .map(drop)
    });
    // Scale down, swap, stop.
    kill(master as i32, libc::SIGTTOU);
    server
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("recycled") || l.contains("retired")
        })
        .unwrap_or_else(|| panic!("the scale-down is logged: {}", server.stderr()));
    kill(master as i32, libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("drained and exited"))
        .expect("the old generation's exit is logged");
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(10)).expect("exit");
    let log = server.stderr();
    assert!(!log.contains("ERROR"), "{log}");
    // Any warning but the one about workers running as root (CI runs as root).
    let warnings = log
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("--user"));
    assert_eq!(warnings.count(), 0, "{log}");
}

#[test]
fn term_closes_idle_keep_alive_connections_at_once_while_in_flight_requests_finish() {
    let mut server = sample_server("crashy")
        .args(["-w", "1", "--keep-alive", "10", "--graceful-timeout", "30"])
        .start();
    let mut idle = server.connect();
    idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.read_response().status, 200);
    // Just answered: a drain now would give it a moment for the request its client may be
    // sending. Idle a while, it has none coming.
    let mut recent = server.connect();
    std::thread::sleep(Duration::from_millis(1500));
    recent.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(recent.read_response().status, 200);
    let mut busy = server.connect();
    busy.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));

    let stopped = Instant::now();
    server.signal(libc::SIGTERM);
    let closed = idle
        .wait_closed(Duration::from_secs(5))
        .expect("the idle connection is closed");
    assert!(
        closed < Duration::from_millis(600),
        "an idle keep-alive connection was closed {closed:?} after TERM"
    );
    let resp = busy.read_response();
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow done\n"));
    assert!(recent.wait_closed(Duration::from_secs(3)).is_some());
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("the server exits after TERM");
    assert_eq!(status.code(), Some(0));
    // Well before the 10 s keep-alive: the in-flight request and the linger of the
    // connection answered just before.
    assert!(
        stopped.elapsed() < Duration::from_millis(2500),
        "{:?}",
        stopped.elapsed()
    );
}

#[test]
fn gunicorn_bind_spellings_tcp_and_unix_slashes_are_served() {
    let dir = fresh_dir("habit-bind");
    let socket = dir.join("ws.sock");
    let server = sample_server("hello")
        .no_default_bind()
        .args(["-b", "tcp://127.0.0.1:0"])
        .args([format!("--bind=unix://{}", socket.display())])
        .start();
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
    let mut unix = std::os::unix::net::UnixStream::connect(&socket)
        .unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    use std::io::{Read, Write};
    unix.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    unix.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// What `ps -o args` shows for `pid`: its command line, NULs as spaces, trimmed.
fn process_title(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .to_owned()
}

#[test]
fn workers_are_titled_with_app_number_and_generation_in_ps() {
    let dir = fresh_dir("habit-title");
    let pid_file = dir.join("ws.pid");
    let server = sample_server("hello")
        .args(["-w", "2", "--pid"])
        .args([pid_file.as_os_str()])
        .app_args(["--some-app-flag"])
        .start();
    let master = server.pid();
    let app = format!("{}:app --some-app-flag", sample_app("hello").display());
    // The titles of the two workers, sorted, once both are `generation`'s.
    let titles = |generation: u64| {
        poll(Duration::from_secs(10), "2 titled workers", || {
            let mut titles: Vec<String> =
                child_pids(master).into_iter().map(process_title).collect();
            titles.sort();
            let want = format!("[gen {generation}] {app}");
            (titles.len() == 2 && titles.iter().all(|t| t.ends_with(&want))).then_some(titles)
        })
    };
    assert_eq!(
        titles(1),
        [
            format!("webserver: worker 0 [gen 1] {app}"),
            format!("webserver: worker 1 [gen 1] {app}"),
        ]
    );
    kill(master as i32, libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    // Started while generation 1 still served: the next free numbers (those of `--stats`).
    assert_eq!(
        titles(2),
        [
            format!("webserver: worker 2 [gen 2] {app}"),
            format!("webserver: worker 3 [gen 2] {app}"),
        ]
    );
    // `comm` is left alone: `pgrep webserver` still finds the workers.
    for pid in child_pids(master) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "webserver");
    }
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
}
