//! Driving a master the way an operator or a deploy script does: by its `--pid FILE`, the
//! `FILE.status` it keeps, signals, and the worker pid each response can name (`/pid`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{poll, Conn, Response, Server, ServerBuilder};

/// How long one swap (boot of a generation) may take before the test fails.
pub const SWAP_TIMEOUT: Duration = Duration::from_secs(15);

/// `FILE.status` beside the pid file.
pub fn status_file(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".status");
    PathBuf::from(name)
}

/// `FILE.status` split into (state, generation, rest).
pub fn read_status(pid_file: &Path) -> Option<(String, u64, String)> {
    let text = std::fs::read_to_string(status_file(pid_file)).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.splitn(3, ' ');
    let state = parts.next()?.to_owned();
    let generation = parts.next()?.parse().ok()?;
    Some((state, generation, parts.next().unwrap_or("").to_owned()))
}

/// The master's pid, as written to `--pid FILE`.
pub fn master_pid(pid_file: &Path) -> i32 {
    std::fs::read_to_string(pid_file)
        .unwrap_or_else(|e| panic!("read {pid_file:?}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

/// Sends `signal` to `pid`, which must be a process the test started (or one of its workers).
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) takes plain integers; pid is a process this test started.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Waits for the first generation to be ready; returns its number.
pub fn wait_first_ready(pid_file: &Path) -> u64 {
    poll(SWAP_TIMEOUT, "generation 1 ready", || {
        read_status(pid_file).filter(|(state, _, _)| state == "ready")
    })
    .1
}

/// `GET path` on a brand-new connection with `Connection: close`.
pub fn fresh_get(server: &Server, path: &str) -> Result<Response, String> {
    let mut conn = Conn::try_connect(server.addr())?;
    conn.try_send(format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    ))?;
    conn.try_read_response()
}

/// Reads `/pid` on a keep-alive connection: which worker process holds it.
pub fn pid_of(conn: &mut Conn) -> u32 {
    conn.send("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{resp:?}");
    resp.text().trim().parse().expect("a pid")
}

/// INFO logs without the access log (load tests make hundreds of thousands of requests).
pub fn quiet(builder: ServerBuilder) -> ServerBuilder {
    builder.env("RUST_LOG", "info,access=warn")
}

/// `--pid FILE` for a server builder.
pub trait ArgPid {
    fn arg_pid(self, pid_file: &Path) -> Self;
}

impl ArgPid for ServerBuilder {
    fn arg_pid(self, pid_file: &Path) -> Self {
        self.args([
            std::ffi::OsString::from("--pid"),
            pid_file.as_os_str().to_owned(),
        ])
    }
}
