//! Load for the upgrade tests: clients that request `/` until stopped, counting every failure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{poll, Conn};

/// Clients that keep requesting `/` until stopped: half of them on one keep-alive connection
/// (reconnecting after `Connection: close`, as a well-behaved client does), half on a new
/// connection per request. Any error or non-200 status is a failed request.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|client| {
                let (stop, ok, failures) =
                    (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failures));
                let keep_alive = client % 2 == 0;
                thread::spawn(move || {
                    let mut conn: Option<Conn> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let result = (|| {
                            let c = match conn.as_mut() {
                                Some(c) => c,
                                None => conn.insert(Conn::try_connect(addr)?),
                            };
                            let close = if keep_alive {
                                ""
                            } else {
                                "Connection: close\r\n"
                            };
                            c.try_send(format!("GET / HTTP/1.1\r\nHost: x\r\n{close}\r\n"))?;
                            c.try_read_response()
                        })();
                        let failure = match result {
                            Ok(resp) if resp.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if !keep_alive || resp.header_has_token("connection", "close") {
                                    conn = None;
                                }
                                continue;
                            }
                            Ok(resp) => format!("status {}", resp.status),
                            Err(e) => e,
                        };
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("client {client}: {failure}"));
                        conn = None;
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    pub fn wait_progress(&self, n: u64) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        poll(Duration::from_secs(10), "load to make progress", || {
            (self.ok.load(Ordering::Relaxed) >= target).then_some(())
        });
    }

    /// Stops the clients: (successful requests, failures).
    pub fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("load client panicked");
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}
