//! Faults an operator meets inside one worker (issue 9): a client that uploads slowly must not
//! look like a stuck app, and running out of descriptors must not stall the connections waiting
//! in the listen queue. Each test starts the real binary with short timeouts, so each takes
//! seconds, not the defaults' minutes.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The one worker of a `-w 1` server (waits until it is up).
fn only_worker(server: &Server) -> u32 {
    poll(Duration::from_secs(5), "one worker", || {
        let pids = child_pids(server.pid());
        (pids.len() == 1).then(|| pids[0])
    })
}

/// `GET /` on a new connection.
fn fresh_get(server: &Server) -> Result<Response, String> {
    let mut conn = Conn::try_connect(server.addr())?;
    conn.try_send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    conn.try_read_response()
}

/// Sends `body` one byte per `every` on a clone of `conn`'s socket, from a thread; stops at the
/// first failed write (the server may answer and close first). Returns how many bytes went out.
fn trickle(conn: &Conn, body: &'static [u8], every: Duration) -> thread::JoinHandle<usize> {
    let mut stream = conn.stream.try_clone().expect("clone the client socket");
    thread::spawn(move || {
        for (sent, byte) in body.iter().enumerate() {
            thread::sleep(every);
            if stream.write_all(std::slice::from_ref(byte)).is_err() {
                return sent;
            }
        }
        body.len()
    })
}

/// Issue 9 item 2: time spent waiting for a slow client is not the app being stuck. An upload
/// trickling in for three times `--timeout` (each wait within `--io-timeout`) completes, the
/// worker serves other requests meanwhile, and it is not killed.
#[test]
fn a_slow_upload_does_not_kill_the_worker() {
    let server = sample_server("echo")
        .args([
            "-w",
            "1",
            "--threads",
            "2",
            "--timeout",
            "2",
            "--io-timeout",
            "5",
        ])
        .start();
    let worker = only_worker(&server);
    const BODY: &[u8] = b"abcdef";
    let mut upload = server.connect();
    upload.send(format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    ));
    let writer = trickle(&upload, BODY, Duration::from_secs(1));
    let started = Instant::now();
    let mut others = 0;
    while !writer.is_finished() {
        let resp = fresh_get(&server).unwrap_or_else(|e| {
            panic!(
                "a request beside the slow upload failed after {:?}: {e}",
                started.elapsed()
            )
        });
        assert_eq!(resp.status, 200, "{resp:?}");
        others += 1;
        thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(writer.join().unwrap(), BODY.len(), "the upload was cut off");
    let resp = upload
        .try_read_response()
        .unwrap_or_else(|e| panic!("the slow upload got no answer: {e}"));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["body_len"], BODY.len());
    assert!(others >= 10, "only {others} requests beside the upload");
    assert_eq!(fresh_get(&server).map(|r| r.status), Ok(200));
    assert_eq!(
        child_pids(server.pid()),
        [worker],
        "the worker was replaced"
    );
    assert!(
        !server.stderr().contains("past --timeout"),
        "harakiri over a slow client:\n{}",
        server.stderr()
    );
}

/// Issue 9 item 2: a client that is too slow in total gets its own answer — 408 and a closed
/// connection once `--body-timeout` is spent waiting for its body — and the worker lives on.
#[test]
fn an_upload_past_the_body_timeout_gets_408_and_only_its_connection_closes() {
    let server = sample_server("echo")
        .args([
            "-w",
            "1",
            "--threads",
            "2",
            "--timeout",
            "2",
            "--io-timeout",
            "5",
        ])
        .args(["--body-timeout", "3"])
        .start();
    let worker = only_worker(&server);
    const BODY: &[u8] = b"0123456789abcdefghij";
    let mut upload = server.connect();
    upload.send(format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    ));
    let started = Instant::now();
    let writer = trickle(&upload, BODY, Duration::from_secs(1));
    let resp = upload
        .try_read_response()
        .unwrap_or_else(|e| panic!("no answer to the too-slow upload: {e}"));
    let answered = started.elapsed();
    assert_eq!(resp.status, 408, "{resp:?}");
    assert!(resp.header_has_token("connection", "close"), "{resp:?}");
    assert!(
        answered >= Duration::from_millis(2500) && answered < Duration::from_secs(8),
        "answered after {answered:?}, want about --body-timeout (3 s)"
    );
    assert!(
        upload.wait_closed(Duration::from_secs(3)).is_some(),
        "the connection stayed open after the 408"
    );
    let sent = writer.join().unwrap();
    assert!(sent < BODY.len(), "the whole body went out ({sent} bytes)");
    assert_eq!(fresh_get(&server).map(|r| r.status), Ok(200));
    assert_eq!(
        child_pids(server.pid()),
        [worker],
        "the worker was replaced"
    );
    assert!(
        !server.stderr().contains("past --timeout"),
        "harakiri over a slow client:\n{}",
        server.stderr()
    );
}

/// Issue 9 item 5: with every descriptor in use, connections wait in the listen queue; once
/// descriptors are free again they are accepted without another client having to arrive, and
/// the episode is logged once, not once per failed accept.
#[test]
fn queued_connections_are_served_after_descriptors_run_out_and_come_back() {
    const OPEN_FILES: u64 = 256;
    const IDLE: usize = 400;
    const QUEUED: usize = 20;
    let server = sample_server("echo")
        .open_files_limit(OPEN_FILES)
        .args(["-w", "1", "--threads", "2"])
        .args(["--header-timeout", "60", "--keep-alive", "60"])
        .start();
    only_worker(&server);
    let accept_warning = |line: &str| line.contains("WARN") && line.contains("accept");
    // More idle clients than the worker has descriptors: the rest wait in the listen queue.
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| {
            TcpStream::connect(server.addr()).unwrap_or_else(|e| panic!("idle client {i}: {e}"))
        })
        .collect();
    server
        .wait_for_log(Duration::from_secs(10), accept_warning)
        .unwrap_or_else(|| panic!("descriptors never ran out:\n{}", server.stderr()));
    let mut queued: Vec<Conn> = (0..QUEUED)
        .map(|_| {
            let mut conn = server.connect();
            conn.send("GET /queued HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            conn
        })
        .collect();
    // Several retry periods pass while nothing can be accepted.
    thread::sleep(Duration::from_millis(1500));
    drop(idle);
    // No new client arrives: the queued ones must be picked up on their own.
    for (i, conn) in queued.iter_mut().enumerate() {
        conn.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let resp = conn
            .try_read_response()
            .unwrap_or_else(|e| panic!("queued client {i} was never served: {e}"));
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(resp.json()["path"], "/queued");
    }
    let ended = server
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("accepting connections again")
        })
        .unwrap_or_else(|| {
            panic!(
                "the end of the episode was not logged:\n{}",
                server.stderr()
            )
        });
    assert!(ended.contains("failed accept"), "{ended}");
    let log = server.stderr();
    let warnings: Vec<&str> = log.lines().filter(|l| accept_warning(l)).collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning per episode, got {warnings:#?}"
    );
}
