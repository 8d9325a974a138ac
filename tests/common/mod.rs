//! The end-to-end harness: start the real `webserver` binary on port 0 with a real cdylib, talk to it
//! over raw TCP so each test controls every byte, and parse responses strictly (CRLF only, exact
//! framing) so a framing bug in the server shows up as a parse failure here.
//!
//! Every test starts its own server; the child is killed on drop and its stderr (logs) is printed if
//! the test failed.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

mod axum_serve;
mod browser;
pub mod h2_client;
pub mod load;
mod master;
mod raw;
mod tls_client;
pub mod ws;
pub mod ws_client;
#[allow(unused_imports)] // each test file uses a different part of the harness
pub use axum_serve::*;
#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use load::Load;
#[allow(unused_imports)]
pub use master::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use tls_client::*;

/// How long any single read may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to print its `Serving HTTP on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Paths and builds
// ---------------------------------------------------------------------------------------------

/// The `webserver` binary cargo built for this test run.
pub fn webserver_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_webserver"))
}

/// `target/debug` (the directory holding the binary and the sample-app cdylibs).
pub fn debug_dir() -> PathBuf {
    webserver_exe()
        .parent()
        .expect("exe has a parent")
        .to_path_buf()
}

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where compiled C apps and scratch files go: `target/c-apps`.
pub fn scratch_dir() -> PathBuf {
    let dir = debug_dir()
        .parent()
        .map(|target| target.join("c-apps"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-apps"));
    std::fs::create_dir_all(&dir).expect("create target/c-apps");
    dir
}

/// Path of a sample app's cdylib, failing with a useful message when it was not built (a plain
/// `cargo test` does not build cdylib artifacts of other workspace members).
pub fn sample_app(name: &str) -> PathBuf {
    let lib = debug_dir().join(format!("lib{name}.so"));
    assert!(
        lib.is_file(),
        "{} is missing: run `cargo build --workspace` first (the end-to-end tests serve the sample \
         apps' cdylibs from target/debug)",
        lib.display()
    );
    lib
}

/// `len` bytes that differ at every offset a bug could shift (a 64-bit LCG's high bytes): a
/// file body whose misplaced or repeated byte shows.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// Compiles `src` (relative to the workspace root) into `target/c-apps/lib<name>.so` once per test
/// binary, exactly as the docs say a C app is built.
pub fn c_app(src: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let out = scratch_dir().join(format!("lib{name}.so"));
    // Several test binaries may build the same library at once: build privately, then rename.
    let tmp = scratch_dir().join(format!(".lib{name}.{}.so", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let output = Command::new(&cc)
        .current_dir(workspace_dir())
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Werror",
            "-I",
            "app-abi/include",
            "-o",
        ])
        .arg(&tmp)
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e} (the C-app tests need a C compiler)"));
    assert!(
        output.status.success(),
        "compiling {src} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&tmp, &out).expect("rename compiled library");
    built.insert(name.to_owned(), out.clone());
    out
}

/// `sample-apps/c-hello/hello.c`, compiled.
pub fn c_hello() -> PathBuf {
    c_app("sample-apps/c-hello/hello.c", "c_hello")
}

/// `tests/fixtures/<name>.c`, compiled to `lib<name>.so`.
pub fn fixture(name: &str) -> PathBuf {
    c_app(&format!("tests/fixtures/{name}.c"), name)
}

/// A fresh empty directory under `target/c-apps`.
pub fn fresh_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static PRUNE: std::sync::Once = std::sync::Once::new();
    PRUNE.call_once(prune_dirs_of_finished_runs);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = scratch_dir().join(format!("{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the `fresh_dir`s of test processes that have ended. They are kept until then so a
/// failed test's files can be looked at, but some hold a copy of the server binary, and left
/// alone they filled the disk of a machine that runs the suite all day.
fn prune_dirs_of_finished_runs() {
    let Ok(entries) = std::fs::read_dir(scratch_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let mut from_right = name.rsplitn(3, '-');
        let (Some(n), Some(pid), Some(_tag)) =
            (from_right.next(), from_right.next(), from_right.next())
        else {
            continue;
        };
        let numbered = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let ended = !Path::new(&format!("/proc/{pid}")).exists();
        if numbered && ended && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Starting the server
// ---------------------------------------------------------------------------------------------

/// Builder for a server child process.
pub struct ServerBuilder {
    target: Option<OsString>,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    bind: bool,
    open_files: Option<u64>,
    app_args: Vec<OsString>,
    /// `(from, to)`: the child finds the test's descriptor `from` at number `to`.
    inherited: Vec<(i32, i32)>,
    /// The executable, if not the one cargo built (a copy the test may replace).
    exe: Option<PathBuf>,
}

/// `webserver [args] TARGET`, bound to `127.0.0.1:0`, with `RUST_LOG=info`.
pub fn server(target: impl Into<OsString>) -> ServerBuilder {
    ServerBuilder {
        target: Some(target.into()),
        args: Vec::new(),
        cwd: None,
        env: vec![("RUST_LOG".into(), "info".into())],
        bind: true,
        open_files: None,
        app_args: Vec::new(),
        inherited: Vec::new(),
        exe: None,
    }
}

/// `webserver <target_dir>/lib<name>.so:app` for a sample app (absolute path).
pub fn sample_server(name: &str) -> ServerBuilder {
    let mut target = sample_app(name).into_os_string();
    target.push(":app");
    server(target)
}

impl ServerBuilder {
    /// Adds command-line arguments (placed before the target).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds the app's own arguments (placed after the target: `webserver LIB:SYMBOL ARGS...`).
    pub fn app_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.app_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Leaves LIB:SYMBOL off the command line (a `--config` file names the app).
    pub fn no_target(mut self) -> Self {
        self.target = None;
        self
    }

    /// Runs the server in `dir`.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Leaves an environment variable unset for the child (`RUST_LOG` is set by default).
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// Do not add `--bind 127.0.0.1:0` (the test passes its own `--bind`).
    pub fn no_default_bind(mut self) -> Self {
        self.bind = false;
        self
    }

    /// The server inherits this process's descriptor `fd` at number `at` (for `-b fd://AT`).
    /// `fd` must stay open until the server is started.
    pub fn inherit_fd(mut self, fd: i32, at: i32) -> Self {
        self.inherited.push((fd, at));
        self
    }

    /// Runs the server with this open-files limit (`ulimit -n`; its workers inherit it).
    /// Runs `exe` instead of the `webserver` cargo built.
    pub fn exe(mut self, exe: impl Into<PathBuf>) -> Self {
        self.exe = Some(exe.into());
        self
    }

    pub fn open_files_limit(mut self, limit: u64) -> Self {
        self.open_files = Some(limit);
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(self.exe.clone().unwrap_or_else(webserver_exe));
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: the closure runs in the forked child before exec and only calls
            // setrlimit(2), which is async-signal-safe, on a value captured by copy.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        if !self.inherited.is_empty() {
            use std::os::unix::process::CommandExt;
            let moves = self.inherited.clone();
            // SAFETY: the closure runs in the forked child before exec and only calls dup2(2)
            // and fcntl(2), which are async-signal-safe, on numbers captured by copy. dup2
            // clears the close-on-exec flag on the copy, so the server inherits it; but when the
            // descriptor already has the wanted number (the test's socket happened to get it),
            // dup2 does nothing, and the flag is cleared by fcntl instead.
            unsafe {
                cmd.pre_exec(move || {
                    for &(from, to) in &moves {
                        let done = if from == to {
                            libc::fcntl(to, libc::F_SETFD, 0)
                        } else {
                            libc::dup2(from, to)
                        };
                        if done < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        if self.bind {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        cmd.args(&self.args).args(&self.target).args(&self.app_args);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.env_remove("RUST_LOG").env("RUST_BACKTRACE", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The server process with stdout and stderr piped to the test, and its command line for
    /// failure messages.
    fn spawn_piped(&self) -> (Child, String) {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        (child, format!("{cmd:?}"))
    }

    /// Starts the server and waits for its `Serving HTTP on 127.0.0.1:PORT ...` line.
    pub fn start(self) -> Server {
        let (mut child, cmd) = self.spawn_piped();

        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let err_buf = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut reader = BufReader::new(err_pipe);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                err_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });

        let stdout = Arc::new(Mutex::new(String::new()));
        let out_pipe = child.stdout.take().unwrap();
        let out_buf = Arc::clone(&stdout);
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            let mut reader = BufReader::new(out_pipe);
            let mut line = String::new();
            let mut first = true;
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                out_buf.lock().unwrap().push_str(&line);
                if first {
                    let _ = tx.send(line.clone());
                    first = false;
                }
                line.clear();
            }
        });

        let first = rx.recv_timeout(START_TIMEOUT);
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            stderr,
            stdout,
            exited: None,
        };
        let line = match first {
            Ok(line) => line,
            Err(e) => {
                // Give stderr a moment to be collected, then report everything we know.
                thread::sleep(Duration::from_millis(100));
                let status = server.child.try_wait().ok().flatten();
                panic!(
                    "server did not print its `Serving HTTP on` line ({e:?}); exit status {status:?}\n\
                     command: {cmd:?}\nstderr:\n{}",
                    server.stderr()
                );
            }
        };
        if !line.starts_with("Serving HTTP on ") {
            panic!("unexpected first stdout line {line:?}");
        }
        // A server on unix sockets only has no TCP address: `addr` stays 127.0.0.1:0.
        if let Some(addr) = parse_serving_line(&line) {
            server.addr = addr;
        }
        server
    }

    /// Runs the server expecting it to exit on its own (a load error); kills it after 10 s.
    pub fn run_to_exit(self) -> Exited {
        let (mut child, cmd) = self.spawn_piped();
        let mut out_pipe = child.stdout.take().unwrap();
        let mut err_pipe = child.stderr.take().unwrap();
        let out = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out_pipe.read_to_end(&mut s);
            s
        });
        let err = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err_pipe.read_to_end(&mut s);
            s
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{cmd:?} was expected to exit but was still running after {START_TIMEOUT:?}\n\
                     stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.join().unwrap()),
                    String::from_utf8_lossy(&err.join().unwrap())
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        Exited {
            status,
            stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        }
    }
}

/// `Serving HTTP on 127.0.0.1:PORT, unix:/PATH ...` → the first TCP address.
pub fn parse_serving_line(line: &str) -> Option<SocketAddr> {
    serving_addresses(line)
        .into_iter()
        .find_map(|addr| addr.parse().ok())
}

/// `Serving HTTP on A, B, C ...` → `[A, B, C]`, as written (`unix:/PATH` included).
pub fn serving_addresses(line: &str) -> Vec<String> {
    let Some(rest) = line.strip_prefix("Serving HTTP on ") else {
        return Vec::new();
    };
    let list = rest.trim_end().trim_end_matches("...").trim_end();
    list.split(", ").map(str::to_owned).collect()
}

/// A finished process.
#[derive(Debug)]
pub struct Exited {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    exited: Option<ExitStatus>,
}

impl Server {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything the server wrote on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stderr contains a line for which `pred` holds; returns that line.
    pub fn wait_for_log(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.stderr().lines().find(|l| pred(l)) {
                return Some(line.to_owned());
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the server.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) takes plain integers; the pid is our own unreaped child, so it cannot
        // have been recycled for another process.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the server to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && self.child.try_wait().unwrap().is_none()
    }

    /// `GET path` on a new connection with `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        let mut conn = self.connect();
        conn.send(format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ));
        conn.read_response()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "---- server {} stdout ----\n{}---- server stderr ----\n{}----",
                self.addr,
                self.stdout(),
                self.stderr()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A strict HTTP/1.1 client over raw TCP
// ---------------------------------------------------------------------------------------------

/// How a response body was delimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body by definition (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Delimited by the server closing the connection.
    Close,
}

/// A parsed response.
#[derive(Clone, Debug)]
pub struct Response {
    /// `HTTP/1.1`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// How the body was delimited.
    pub framing: Framing,
    /// Chunked trailers.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a comma-separated header contains a token (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One client connection with its read buffer.
pub struct Conn {
    /// The socket (public so tests can shut it down or write raw bytes).
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    /// Connects with a 10 s read timeout.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all bytes (panics if the server already closed).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .expect("write to server");
    }

    /// Writes all bytes, ignoring errors (for requests the server may reject before reading all).
    pub fn send_lossy(&mut self, bytes: impl AsRef<[u8]>) {
        let _ = self.stream.write_all(bytes.as_ref());
    }

    /// Half-closes the write side.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads more bytes into the buffer; Ok(0) at EOF. A reset counts as EOF: the server may close
    /// with unread input (e.g. after a 4xx), and what it sent before is still in `buf`.
    fn fill(&mut self) -> Result<usize, String> {
        if self.eof {
            return Ok(0);
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.eof = true;
                Ok(0)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(format!(
                    "read timed out; buffered {:?}",
                    String::from_utf8_lossy(&self.buf)
                ))
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    /// Takes one CRLF-terminated line (without the CRLF) from the buffer, reading as needed.
    fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).take(pos).collect();
                if line.contains(&b'\n') || line.contains(&b'\r') {
                    return Err(format!(
                        "bare CR or LF in line {:?}",
                        String::from_utf8_lossy(&line)
                    ));
                }
                return String::from_utf8(line).map_err(|e| format!("non-UTF-8 line: {e}"));
            }
            if self.fill()? == 0 {
                return Err(format!(
                    "connection closed in the middle of a line; buffered {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        }
    }

    /// Takes exactly `n` bytes.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(format!(
                    "connection closed after {} of {n} body bytes",
                    self.buf.len()
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads a status line and headers (no body).
    pub fn try_read_head(&mut self) -> Result<Response, String> {
        let status_line = self.line()?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        if !version.starts_with("HTTP/1.") {
            return Err(format!("bad status line {status_line:?}"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| (s.len() == 3).then_some(s))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status code in {status_line:?}"))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
                return Err(format!("bad header name in {line:?}"));
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        Ok(Response {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
            framing: Framing::None,
            trailers: Vec::new(),
        })
    }

    /// Reads the body of `resp` (whose head was read by [`Conn::try_read_head`]).
    pub fn try_read_body(&mut self, resp: &mut Response, head_request: bool) -> Result<(), String> {
        let te = resp.header_all("transfer-encoding").join(",");
        let cls = resp.header_all("content-length");
        if head_request || resp.status / 100 == 1 || resp.status == 204 || resp.status == 304 {
            resp.framing = Framing::None;
            return Ok(());
        }
        if !te.is_empty() {
            if !cls.is_empty() {
                return Err("response has both Transfer-Encoding and Content-Length".into());
            }
            if !te.trim().eq_ignore_ascii_case("chunked") {
                return Err(format!("unexpected Transfer-Encoding {te:?}"));
            }
            resp.framing = Framing::Chunked;
            loop {
                let size_line = self.line()?;
                let size_hex = size_line.split(';').next().unwrap().trim();
                let size = usize::from_str_radix(size_hex, 16)
                    .map_err(|_| format!("bad chunk size line {size_line:?}"))?;
                if size == 0 {
                    break;
                }
                let data = self.take(size)?;
                resp.body.extend_from_slice(&data);
                if self.take(2)? != b"\r\n" {
                    return Err("chunk data not followed by CRLF".into());
                }
            }
            loop {
                let line = self.line()?;
                if line.is_empty() {
                    break;
                }
                let (n, v) = line
                    .split_once(':')
                    .ok_or_else(|| format!("bad trailer {line:?}"))?;
                resp.trailers.push((n.to_owned(), v.trim().to_owned()));
            }
        } else if let Some(first) = cls.first() {
            if cls.iter().any(|v| v != first) {
                return Err(format!("conflicting Content-Length headers {cls:?}"));
            }
            let n: u64 = first
                .parse()
                .map_err(|_| format!("bad Content-Length {first:?}"))?;
            resp.framing = Framing::Length(n);
            resp.body = self.take(usize::try_from(n).unwrap())?;
        } else {
            resp.framing = Framing::Close;
            while self.fill()? > 0 {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(())
    }

    /// Reads one whole response.
    pub fn try_read_response(&mut self) -> Result<Response, String> {
        let mut resp = self.try_read_head()?;
        match self.try_read_body(&mut resp, false) {
            Ok(()) => Ok(resp),
            Err(e) => Err(format!(
                "{e}\n  (in the body of `{} {} {}` {:?}, {} body bytes decoded: {:?})",
                resp.version,
                resp.status,
                resp.reason,
                resp.headers,
                resp.body.len(),
                String::from_utf8_lossy(&resp.body)
            )),
        }
    }

    /// Reads one whole response, panicking with details on any protocol error.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("reading response: {e}"))
    }

    /// Reads the head of a response to HEAD (no body follows by definition).
    pub fn read_head_response(&mut self) -> Response {
        let mut resp = self
            .try_read_head()
            .unwrap_or_else(|e| panic!("reading head: {e}"));
        self.try_read_body(&mut resp, true).unwrap();
        resp
    }

    /// Reads just the status line and headers (the body stays unread).
    pub fn read_head(&mut self) -> Response {
        self.try_read_head()
            .unwrap_or_else(|e| panic!("reading head: {e}"))
    }

    /// Reads exactly `n` raw bytes.
    pub fn read_exact_raw(&mut self, n: usize) -> Vec<u8> {
        self.take(n)
            .unwrap_or_else(|e| panic!("reading {n} raw bytes: {e}"))
    }

    /// Reads one chunk of a chunked body whose head was read with [`Conn::read_head`]; returns its
    /// data, or `None` for the last (zero-size) chunk, whose trailers are consumed too.
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self
            .line()
            .unwrap_or_else(|e| panic!("reading a chunk size: {e}"));
        let hex = size_line.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
        if size == 0 {
            while !self
                .line()
                .unwrap_or_else(|e| panic!("reading trailers: {e}"))
                .is_empty()
            {}
            return None;
        }
        let data = self.read_exact_raw(size);
        assert_eq!(
            self.read_exact_raw(2),
            b"\r\n",
            "chunk data not followed by CRLF"
        );
        Some(data)
    }

    /// Raw bytes already received but not consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Waits for the server to close the connection (EOF or reset), buffering whatever it sends
    /// meanwhile (see [`Conn::buffered`]). Returns how long it took, or `None` if still open after
    /// `within`.
    pub fn wait_closed(&mut self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let deadline = start + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .unwrap();
            match self.fill() {
                Ok(0) => {
                    self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    return Some(start.elapsed());
                }
                Ok(_) => continue, // data (e.g. a 408 response): keep waiting for the close
                Err(_) => continue,
            }
        }
    }

    /// Whether the peer has closed (EOF or reset) — checked without blocking long.
    pub fn is_closed_now(&mut self) -> bool {
        self.wait_closed(Duration::from_millis(50)).is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Polls `f` until it returns `Some`, or fails after `within`.
pub fn poll<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that a load error was reported as the CLI contract says: exit code 1, exactly one
/// stderr line starting with `webserver: error: `, containing every `needles` substring, no panic.
pub fn assert_load_error(exited: &Exited, needles: &[&str]) {
    let ctx = format!("stdout:\n{}\nstderr:\n{}", exited.stdout, exited.stderr);
    assert_eq!(exited.status.code(), Some(1), "exit code must be 1; {ctx}");
    let lines: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "expected exactly one stderr line; {ctx}");
    let line = lines[0];
    assert!(
        line.starts_with("webserver: error: "),
        "wrong prefix; {ctx}"
    );
    for needle in needles {
        assert!(line.contains(needle), "stderr line lacks {needle:?}; {ctx}");
    }
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(
            !exited.stderr.contains(bad),
            "stderr mentions {bad:?}; {ctx}"
        );
    }
    assert!(
        !exited.stdout.contains("Serving HTTP"),
        "server claimed to serve; {ctx}"
    );
}

/// Whether an executable can be run (`prog --version` succeeds).
pub fn have_program(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Relative path from `base` to `path` when `path` is under `base`.
pub fn relative_to(path: &Path, base: &Path) -> Option<PathBuf> {
    path.strip_prefix(base).ok().map(Path::to_path_buf)
}

// ---------------------------------------------------------------------------------------------
// Added for the process-model tests (tests/hot_swap.rs)
// ---------------------------------------------------------------------------------------------

impl Conn {
    /// Like [`Conn::connect`], but a refused or failed connect is an `Err`, not a panic (for load
    /// clients that count failures instead of aborting).
    pub fn try_connect(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("set_nodelay: {e}"))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        })
    }

    /// A client over a socket the test connected itself (e.g. from another source address),
    /// with the same 10 s read timeout as [`Conn::connect`].
    pub fn from_stream(stream: TcpStream) -> Conn {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all bytes, returning the error instead of panicking.
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), String> {
        self.stream
            .write_all(bytes.as_ref())
            .map_err(|e| format!("write to server: {e}"))
    }
}

/// The pids of the live children of `parent` (from /proc; Linux only).
pub fn child_pids(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces or parentheses, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(parent) && state != "Z" {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Whether a process with this pid exists (`kill(pid, 0)` does not fail with ESRCH).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The pid of the server's (first) worker, from its `[worker PID ...]` log line.
pub fn worker_pid(server: &Server) -> u32 {
    let line = server
        .wait_for_log(START_TIMEOUT, |l| l.contains("[worker "))
        .expect("a worker log line");
    let rest = &line[line.find("[worker ").unwrap() + "[worker ".len()..];
    rest.split_whitespace()
        .next()
        .unwrap()
        .parse()
        .expect("a worker pid")
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `RssAnon`, ...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("a {field}: line in /proc/{pid}/status"))
}

/// Driving swaps, `webserver check` and `scripts/hot-swap.sh` (`use common::swap::*`).
pub mod swap;

/// Raises this process's open-files soft limit to `want` if it is lower (the hard limit
/// permitting): the test holds more sockets than the common default of 1024 allows.
pub fn raise_open_files(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which lives across the call.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0);
    if limit.rlim_cur >= want {
        return;
    }
    assert!(
        limit.rlim_max >= want,
        "this test needs {want} open files; the hard limit is {}",
        limit.rlim_max
    );
    limit.rlim_cur = want;
    // SAFETY: setrlimit reads the struct it is given, which lives across the call.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0);
}
