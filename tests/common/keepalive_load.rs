//! Keep-alive load beside a test: HTTP clients that count every failed request (the hot-swap
//! tests' "nothing lost"), each on one connection, expecting one status.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{poll, Conn, Server};

/// Keep-alive load: `clients` threads each send `GET path` back to back on one connection and
/// reconnect whenever a response says `Connection: close` (as a well-behaved client does). Any
/// connect/write/read error or a status other than `status` is a failed request.
pub struct KeepAliveLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<std::collections::HashMap<String, u64>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl KeepAliveLoad {
    pub fn start(
        server: &Server,
        clients: usize,
        path: &'static str,
        status: u16,
    ) -> KeepAliveLoad {
        let load = KeepAliveLoad {
            stop: Arc::default(),
            ok: Arc::default(),
            failures: Arc::default(),
            bodies: Arc::default(),
            threads: Vec::new(),
        };
        let mut threads = Vec::new();
        for client in 0..clients {
            let addr = server.addr();
            let stop = Arc::clone(&load.stop);
            let ok = Arc::clone(&load.ok);
            let failures = Arc::clone(&load.failures);
            let bodies = Arc::clone(&load.bodies);
            threads.push(thread::spawn(move || {
                let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
                let mut conn: Option<Conn> = None;
                let mut sent_on_conn = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match Conn::try_connect(addr) {
                            Ok(c) => {
                                sent_on_conn = 0;
                                conn.insert(c)
                            }
                            Err(e) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("client {client}: {e}"));
                                thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let result = c.try_send(&request).and_then(|()| c.try_read_response());
                    sent_on_conn += 1;
                    match result {
                        Ok(resp) if resp.status == status => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            *bodies.lock().unwrap().entry(resp.text()).or_default() += 1;
                            if resp.header_has_token("connection", "close") {
                                conn = None;
                            }
                        }
                        Ok(resp) => {
                            failures.lock().unwrap().push(format!(
                                "client {client}: status {} {:?}",
                                resp.status,
                                String::from_utf8_lossy(&resp.body)
                            ));
                            conn = None;
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!(
                                "client {client}: request {sent_on_conn} on its connection: {e}"
                            ));
                            conn = None;
                        }
                    }
                }
            }));
        }
        KeepAliveLoad { threads, ..load }
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more requests succeeded than now.
    pub fn wait_progress(&self, n: u64) {
        let target = self.ok() + n;
        poll(Duration::from_secs(10), "load to make progress", || {
            (self.ok() >= target).then_some(())
        });
    }

    /// Stops the clients; returns (successful requests, failures, bodies seen).
    pub fn finish(self) -> (u64, Vec<String>, std::collections::HashMap<String, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load client panicked");
        }
        let failures = self.failures.lock().unwrap().clone();
        let bodies = self.bodies.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures, bodies)
    }
}
