//! HTTP load beside a test (the hot-swap and upgrade tests' "nothing lost"): client threads
//! that request one path until stopped, counting every failed request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{poll, Conn, Server};

/// Clients that send `GET path` back to back until stopped. A keep-alive client stays on one
/// connection and reconnects whenever a response says `Connection: close` (as a well-behaved
/// client does); a closing one asks `Connection: close` and connects anew per request. Any
/// connect/write/read error or a status other than the expected one is a failed request.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<HashMap<String, u64>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    /// The upgrade tests' mix: `clients` requesting `/` for 200, half of them kept alive, half
    /// on a new connection per request.
    pub fn start(addr: SocketAddr, clients: usize) -> Load {
        Load::spawn(addr, clients, "/", 200, |client| client % 2 == 0)
    }

    /// `clients` keep-alive clients requesting `path`, expecting `status`.
    pub fn keep_alive(server: &Server, clients: usize, path: &'static str, status: u16) -> Load {
        Load::spawn(server.addr(), clients, path, status, |_| true)
    }

    fn spawn(
        addr: SocketAddr,
        clients: usize,
        path: &'static str,
        status: u16,
        keep_alive: impl Fn(usize) -> bool,
    ) -> Load {
        let load = Load {
            stop: Arc::default(),
            ok: Arc::default(),
            failures: Arc::default(),
            bodies: Arc::default(),
            threads: Vec::new(),
        };
        let threads = (0..clients)
            .map(|client| {
                let stop = Arc::clone(&load.stop);
                let ok = Arc::clone(&load.ok);
                let failures = Arc::clone(&load.failures);
                let bodies = Arc::clone(&load.bodies);
                let keep_alive = keep_alive(client);
                let close = if keep_alive {
                    ""
                } else {
                    "Connection: close\r\n"
                };
                let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n");
                thread::spawn(move || {
                    let fail = |what: String| {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("client {client}: {what}"));
                    };
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
                                    fail(e);
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
                                if !keep_alive || resp.header_has_token("connection", "close") {
                                    conn = None;
                                }
                            }
                            Ok(resp) => {
                                fail(format!(
                                    "status {} {:?}",
                                    resp.status,
                                    String::from_utf8_lossy(&resp.body)
                                ));
                                conn = None;
                            }
                            Err(e) => {
                                fail(format!("request {sent_on_conn} on its connection: {e}"));
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Load { threads, ..load }
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
    pub fn finish(self) -> (u64, Vec<String>, HashMap<String, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("load client panicked");
        }
        let failures = self.failures.lock().unwrap().clone();
        let bodies = self.bodies.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures, bodies)
    }
}
