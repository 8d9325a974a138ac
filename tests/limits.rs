//! Per-worker limits, end to end with crashy's `/leak` and `/spin`: a worker past
//! `--limit-memory` recycles after its in-flight requests without failing another request; one
//! past `--limit-cpu-seconds` is killed by the kernel and replaced; `--limit-open-files` is the
//! worker's descriptor limit.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;

fn only_worker(server: &Server) -> u32 {
    poll(Duration::from_secs(10), "one worker", || {
        let pids = child_pids(server.pid());
        (pids.len() == 1).then(|| pids[0])
    })
}

#[test]
fn a_worker_past_limit_memory_recycles_after_its_in_flight_requests() {
    let server = sample_server("crashy")
        .args(["-w", "1", "--limit-memory", &(64u64 << 20).to_string()])
        .start();
    let mut conn = server.connect();
    let before = pid_of(&mut conn);
    // Clients that keep asking on fresh connections through the recycle: none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut served = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut conn = Conn::connect(addr);
                    conn.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                    assert_eq!(conn.read_response().status, 200);
                    served += 1;
                }
                served
            })
        })
        .collect();
    // In flight when the limit is passed: it finishes.
    let mut slow = server.connect();
    slow.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    thread::sleep(Duration::from_millis(100));
    conn.send("GET /leak?mb=100 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().status, 200);
    let line = server
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("past --limit-memory")
        })
        .unwrap_or_else(|| panic!("no recycle line:\n{}", server.stderr()));
    assert!(line.contains(" WARN "), "{line}");
    assert_eq!(slow.read_response().text(), "slow done\n");
    let after = poll(Duration::from_secs(10), "a replacement", || {
        let mut conn = Conn::connect(server.addr());
        let pid = pid_of(&mut conn);
        (pid != before).then_some(pid)
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        assert!(client.join().expect("no request failed") > 0);
    }
    let log = server.stderr();
    assert_eq!(log.matches("past --limit-memory").count(), 1, "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    assert_ne!(after, before);
}

#[test]
fn a_worker_past_limit_cpu_seconds_is_killed_and_replaced() {
    let server = sample_server("crashy")
        .args(["-w", "1", "--limit-cpu-seconds", "1"])
        .start();
    let mut conn = server.connect();
    let before = pid_of(&mut conn);
    conn.send("GET /spin?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        conn.try_read_response().is_err(),
        "the spinning worker was killed"
    );
    let line = server
        .wait_for_log(Duration::from_secs(10), |l| l.contains("SIGXCPU"))
        .unwrap_or_else(|| panic!("no line names SIGXCPU:\n{}", server.stderr()));
    assert!(line.contains(&before.to_string()), "{line}");
    let after = poll(Duration::from_secs(10), "a replacement", || {
        let mut conn = Conn::try_connect(server.addr()).ok()?;
        conn.try_send("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let pid: u32 = conn.try_read_response().ok()?.text().trim().parse().ok()?;
        (pid != before).then_some(pid)
    });
    assert_ne!(after, before);
}

#[test]
fn limit_open_files_is_the_workers_descriptor_limit() {
    let server = sample_server("crashy")
        .args(["--limit-open-files", "100"])
        .start();
    assert_eq!(server.get("/").status, 200);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", only_worker(&server))).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[3..5], ["100", "100"], "{line}");
    // The master keeps its own.
    let master = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    assert!(
        !master.contains("Max open files            100 "),
        "{master}"
    );
}

#[test]
fn too_few_open_files_are_refused_as_a_usage_error() {
    let exited = sample_server("crashy")
        .args(["--limit-open-files", "10"])
        .run_to_exit();
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("at least 64"), "{}", exited.stderr);
}
