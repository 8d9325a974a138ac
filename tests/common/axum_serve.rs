//! The axum sample app's router on plain `axum::serve` (the `axum-serve` binary of
//! `sample-apps/axum-app`): the reference tests/axum.rs and tests/axum_ws.rs compare webserver
//! against.

use super::{debug_dir, START_TIMEOUT};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

/// `axum-serve 127.0.0.1:0`, killed on drop.
pub struct AxumServe {
    child: Child,
    pub addr: SocketAddr,
}

impl AxumServe {
    pub fn start() -> AxumServe {
        AxumServe::start_bin("axum-serve")
    }

    /// Another sample's reference server that prints `listening on ADDR` the same way
    /// (`grpc-serve`: the greeter on tonic's own server).
    pub fn start_bin(name: &str) -> AxumServe {
        let exe = debug_dir().join(name);
        assert!(
            exe.is_file(),
            "{} is missing: run `cargo build --workspace` first",
            exe.display()
        );
        let mut child = Command::new(&exe)
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| panic!("{name} printed no `listening on` line"));
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected {name} line {line:?}"));
        AxumServe { child, addr }
    }
}

impl Drop for AxumServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
