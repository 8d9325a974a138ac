//! What connections cost the worker in memory: an idle keep-alive connection holds no read
//! buffer (the serving thread lends its own while it serves one), and nothing stays resident
//! once they are gone (issue 18 item 4). The worker's allocator keeps freed memory unless it is told to give it back
//! (`src/sys/heap.rs`, `src/server/heap_trim.rs`); this shows that it is.
//!
//! Needs `cargo build --workspace` first (the hello cdylib comes from target/debug).

mod common;

use std::time::Duration;

use common::*;

/// Connections opened at once, each holding a partial head (kept by the worker while the
/// connection waits for the rest). Below the default limit of 1,024 open files.
const CONNS: usize = 800;
/// Bytes of each partial head: CONNS × this is what the burst makes the worker hold (~2.3 MiB).
const PARTIAL_HEAD: usize = 3_000;

/// The resident memory the process allocated, in KiB (`RssAnon`: not the pages of its binary and
/// libraries, which grow as new code paths run for the first time).
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon")
}

#[test]
fn memory_a_burst_of_connections_held_is_given_back_after_they_close() {
    let ws = sample_server("hello")
        .args(["-w", "1", "--threads", "2", "--header-timeout", "60"])
        .start();
    let pid = worker_pid(&ws);
    assert_eq!(ws.get("/").status, 200);
    let before = rss_kib(pid);
    let head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n",
        "a".repeat(PARTIAL_HEAD)
    );
    let mut conns: Vec<Conn> = (0..CONNS).map(|_| ws.connect()).collect();
    for conn in &mut conns {
        conn.send(&head);
    }
    // Held once the worker has read them all: its memory stops growing.
    let expected_kib = (CONNS * PARTIAL_HEAD / 1024) as u64;
    let mut last = before;
    let held = poll(
        Duration::from_secs(20),
        "the worker to hold the partial heads",
        || {
            std::thread::sleep(Duration::from_millis(200));
            let rss = rss_kib(pid);
            let steady = rss == last;
            last = rss;
            (steady && rss.saturating_sub(before) >= expected_kib / 2).then_some(rss)
        },
    );
    let grown = held - before;
    drop(conns);
    let back = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        last = rss_kib(pid);
        last.saturating_sub(before) <= grown / 4
    });
    assert!(
        back,
        "the worker grew by {grown} KiB for {CONNS} partial heads and still held {} KiB of it 5 s \
         after they closed",
        last.saturating_sub(before)
    );
    eprintln!(
        "grew by {grown} KiB, {} KiB of it left after the connections closed",
        last.saturating_sub(before)
    );
    // And it still serves.
    assert_eq!(ws.get("/").status, 200);
}

/// Idle keep-alive connections, each answered once. Below the default limit of 1,024 open files.
const IDLE_CONNS: usize = 800;

/// An idle connection costs the worker ≤ 1 KiB (the target; a read buffer kept per
/// connection alone would be 4 KiB, `conn::HEAD_READ`).
const IDLE_BYTES_PER_CONN: u64 = 1024;

#[test]
fn memory_an_idle_keep_alive_connection_holds_no_read_buffer() {
    let ws = sample_server("hello")
        .args(["-w", "1", "--threads", "2", "--keep-alive", "60"])
        .start();
    let pid = worker_pid(&ws);
    // Every serving thread has served (and grown its own buffer) before the baseline.
    let mut warm: Vec<Conn> = (0..8).map(|_| ws.connect()).collect();
    for conn in &mut warm {
        conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for conn in &mut warm {
        assert_eq!(conn.read_response().status, 200);
    }
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(pid);
    let mut conns: Vec<Conn> = (0..IDLE_CONNS).map(|_| ws.connect()).collect();
    for conn in &mut conns {
        conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for conn in &mut conns {
        assert_eq!(conn.read_response().status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    let grown = rss_kib(pid).saturating_sub(before);
    let per_conn = grown * 1024 / IDLE_CONNS as u64;
    eprintln!("{IDLE_CONNS} idle connections: +{grown} KiB, {per_conn} B each");
    assert!(
        per_conn <= IDLE_BYTES_PER_CONN,
        "{IDLE_CONNS} idle keep-alive connections grew the worker by {grown} KiB, {per_conn} B \
         each (at most {IDLE_BYTES_PER_CONN}): does a parked connection keep its read buffer?"
    );
    // They are still open and served.
    for conn in conns.iter_mut().step_by(100) {
        conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(conn.read_response().status, 200);
    }
}
