//! Faults an operator meets (issue 9), end to end with the real binary: a frozen worker, a
//! graceful stop while clients keep connecting, two masters on one pid file, a master killed
//! with -9. Each test keeps its flags' timeouts short so it runs in seconds.

mod common;

use std::fs::File;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Sends SIGCONT to a worker the test stopped, so that a failing test leaves no stopped process
/// behind (a stopped process ignores the SIGTERM its dying master sends it).
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        if process_exists(self.0) {
            kill(self.0 as i32, libc::SIGCONT);
        }
    }
}

/// One keep-alive connection on each of the master's two workers: `(pid, connection)`. Which
/// worker accepts is the kernel's choice; on a busy machine the one that just answered tends to
/// win again, so a connection that reached it is kept open and the next waits a moment.
fn a_connection_on_each_worker(server: &Server) -> Vec<(u32, Conn)> {
    let mut held: Vec<(u32, Conn)> = Vec::new();
    let mut extra = Vec::new();
    for _ in 0..200 {
        let mut conn = server.connect();
        let pid = pid_of(&mut conn);
        if held.iter().any(|(p, _)| *p == pid) {
            extra.push(conn);
            thread::sleep(Duration::from_millis(10));
        } else {
            held.push((pid, conn));
        }
        if held.len() == 2 {
            return held;
        }
    }
    panic!("200 connections all reached one worker");
}

// ---------------------------------------------------------------------------------------------
// A frozen worker (issue 9 item 1)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_frozen_worker_is_killed_and_replaced_after_timeout_and_a_busy_one_is_not() {
    let server = quiet(sample_server("crashy"))
        .args(["-w", "2", "--timeout", "2"])
        .start();
    let master = server.pid();
    poll(Duration::from_secs(5), "2 workers", || {
        (child_pids(master).len() == 2).then_some(())
    });
    let mut held = a_connection_on_each_worker(&server);
    let (busy, mut busy_conn) = held.pop().unwrap();
    let (frozen, mut frozen_conn) = held.pop().unwrap();

    kill(frozen as i32, libc::SIGSTOP);
    let stopped_at = Instant::now();
    let _guard = Continue(frozen);
    // A request on the frozen worker's connection: today it hangs for as long as the worker is
    // stopped; the kill must end it.
    frozen_conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // The other worker is busy for most of --timeout, but alive: it must not be touched.
    busy_conn.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = busy_conn.read_response();
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow done\n"));

    let line = server
        .wait_for_log(Duration::from_secs(8), |l| {
            l.contains(&format!("worker {frozen} ")) && l.contains("no heartbeat")
        })
        .unwrap_or_else(|| panic!("the frozen worker {frozen} was not killed within 8 s"));
    let killed_after = stopped_at.elapsed();
    assert!(line.contains("SIGKILL"), "{line}");
    // Its last heartbeat was at most a quarter of --timeout before the stop.
    assert!(
        killed_after >= Duration::from_millis(1400),
        "killed only {killed_after:?} after it stopped, before --timeout ran out: {line}"
    );
    assert!(
        frozen_conn.wait_closed(Duration::from_secs(3)).is_some(),
        "the frozen worker's connection still hangs"
    );
    poll(
        Duration::from_secs(5),
        "the frozen worker to be gone",
        || (!process_exists(frozen)).then_some(()),
    );
    let workers = poll(Duration::from_secs(5), "a replacement worker", || {
        let pids = child_pids(master);
        (pids.len() == 2).then_some(pids)
    });
    assert!(
        workers.contains(&busy),
        "the busy worker was replaced: {workers:?}"
    );
    assert!(process_exists(busy));
    for i in 0..10 {
        let resp = fresh_get(&server, "/").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status, 200, "{resp:?}");
    }
    // Exactly one line says why the worker went; its exit adds no second error.
    let stderr = server.stderr();
    let about_it: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&format!("worker {frozen} ")) && l.contains("ERROR"))
        .collect();
    assert_eq!(about_it.len(), 1, "{about_it:#?}");
}

// ---------------------------------------------------------------------------------------------
// A graceful stop stops listening at once (issue 9 item 6)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_graceful_stop_refuses_new_connections_at_once_while_in_flight_requests_finish() {
    let mut server = quiet(sample_server("crashy")).args(["-w", "2"]).start();
    let addr = server.addr();
    let mut conn = server.connect();
    conn.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
    thread::sleep(Duration::from_millis(300));
    let termed = Instant::now();
    server.signal(libc::SIGTERM);

    // New clients are refused, not left hanging in the backlog for the whole drain.
    let refused_after =
        poll(
            Duration::from_secs(2),
            "connect() to be refused",
            || match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(termed.elapsed()),
                _ => None,
            },
        );
    let resp = conn.read_response();
    let answered_after = termed.elapsed();
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow done\n"));
    assert!(
        refused_after < answered_after,
        "refused only after {refused_after:?}, once the in-flight request was done ({answered_after:?})"
    );
    eprintln!(
        "refused {refused_after:?} after SIGTERM; in-flight answered after {answered_after:?}"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("master still running 10 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_hot_swap_keeps_accepting() {
    // The other half of the rule: when a generation takes over, the listener stays open and a
    // connection made during the swap is served.
    let dir = fresh_dir("swap-accepts");
    let pid_file = dir.join("ws.pid");
    let server = quiet(sample_server("crashy"))
        .args(["-w", "1"])
        .arg_pid(&pid_file)
        .start();
    let generation = wait_first_ready(&pid_file);
    let mut slow = server.connect();
    slow.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    kill(master_pid(&pid_file), libc::SIGHUP);
    let swapped = Instant::now();
    while swapped.elapsed() < Duration::from_millis(1000) {
        let resp = fresh_get(&server, "/").unwrap_or_else(|e| panic!("during the swap: {e}"));
        assert_eq!(resp.status, 200, "{resp:?}");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(slow.read_response().status, 200);
    poll(SWAP_TIMEOUT, "the swap to be ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g > generation)
    });
}

// ---------------------------------------------------------------------------------------------
// The pid file is a lock (issue 9 item 8)
// ---------------------------------------------------------------------------------------------

/// Whether no process holds the flock on `path` (what a script checks with `flock -n FILE true`).
fn lock_is_free(path: &Path) -> bool {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    // SAFETY: flock on a descriptor this function owns; closing the file drops the lock.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc == 0
}

#[test]
fn a_second_master_on_the_same_pid_file_is_refused_and_a_stale_one_is_taken_over() {
    let dir = fresh_dir("pidlock");
    let pid_file = dir.join("ws.pid");
    let mut first = quiet(sample_server("hello"))
        .args(["-w", "1"])
        .arg_pid(&pid_file)
        .start();
    wait_first_ready(&pid_file);
    let first_pid = first.pid() as i32;
    assert_eq!(master_pid(&pid_file), first_pid);
    assert!(
        !lock_is_free(&pid_file),
        "a running master must hold its pid file's lock"
    );

    let second = quiet(sample_server("hello"))
        .args(["-w", "1"])
        .arg_pid(&pid_file)
        .run_to_exit();
    assert_load_error(
        &second,
        &[&first_pid.to_string(), &pid_file.to_string_lossy()],
    );
    // The first master's files are untouched and it serves on.
    assert_eq!(master_pid(&pid_file), first_pid);
    assert_eq!(
        read_status(&pid_file).map(|s| s.0),
        Some("ready".to_owned())
    );
    assert!(first.is_running());
    assert_eq!(fresh_get(&first, "/").unwrap().status, 200);

    // kill -9: the files stay, but nobody holds the lock: they are recognisably stale.
    first.signal(libc::SIGKILL);
    first
        .wait_exit(Duration::from_secs(5))
        .expect("master killed");
    assert_eq!(master_pid(&pid_file), first_pid);
    assert!(
        lock_is_free(&pid_file),
        "a dead master's pid file must not be locked"
    );

    // The next master takes the stale file over.
    let third = quiet(sample_server("hello"))
        .args(["-w", "1"])
        .arg_pid(&pid_file)
        .start();
    wait_first_ready(&pid_file);
    assert_eq!(master_pid(&pid_file), third.pid() as i32);
    assert!(!lock_is_free(&pid_file));
    drop(third);
}

#[test]
fn the_swap_script_refuses_a_pid_file_no_master_holds() {
    if !have_program("flock") {
        eprintln!("skipped: flock(1) is not installed");
        return;
    }
    let dir = fresh_dir("stale-script");
    let pid_file = dir.join("ws.pid");
    let live = dir.join("live.so");
    std::fs::copy(sample_app("hello"), &live).unwrap();
    let mut target = live.clone().into_os_string();
    target.push(":app");
    let mut master = quiet(server(target)).arg_pid(&pid_file).start();
    wait_first_ready(&pid_file);
    master.signal(libc::SIGKILL);
    master
        .wait_exit(Duration::from_secs(5))
        .expect("master killed");

    // The dead master's pid now belongs to someone else (pid reuse, simulated): the script must
    // not signal it, nor install the new library.
    let mut bystander = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    std::fs::write(&pid_file, format!("{}\n", bystander.id())).unwrap();
    let before = std::fs::read(&live).unwrap();
    let out = Command::new(workspace_dir().join("scripts/hot-swap.sh"))
        .arg(sample_app("crashy"))
        .arg(&pid_file)
        .arg(&live)
        .env("WEBSERVER", webserver_exe())
        .env("HOT_SWAP_TIMEOUT", "3")
        .output()
        .unwrap();
    let still_there = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        still_there,
        "the script signalled a process that is not the master: {stderr}"
    );
    assert!(stderr.contains("no master holds"), "{stderr}");
    assert_eq!(std::fs::read(&live).unwrap(), before, "LIVE was changed");
}
