//! systemd end to end without systemd as PID 1 (issue 12): Debian's `systemd-socket-activate`
//! opens the socket and starts the binary the way a `.socket` unit does (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`), and a unix datagram socket the test binds stands in for the
//! manager's `NOTIFY_SOCKET`: the test reads what the server tells systemd — `READY=1` once it
//! serves, `RELOADING=1` then `READY=1` around a hot swap, `STOPPING=1` on TERM, `STATUS=` with
//! the generation and library hash, `WATCHDOG=1` when `WATCHDOG_USEC` asks for it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::swap::*;
use common::*;

const LAUNCHER: &str = "/usr/bin/systemd-socket-activate";
/// How long a notification may take to arrive.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(15);

/// The stand-in for systemd's notification socket.
struct Notifications {
    socket: UnixDatagram,
    /// What `NOTIFY_SOCKET` says: a path, or `@name` (abstract).
    name: String,
    seen: Vec<String>,
}

impl Notifications {
    fn at_path(dir: &Path) -> Notifications {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Notifications {
            socket,
            name: path.display().to_string(),
            seen: Vec::new(),
        }
    }

    fn abstract_name(tag: &str) -> Notifications {
        let name = format!("webserver-test-{tag}-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        Notifications {
            socket,
            name: format!("@{name}"),
            seen: Vec::new(),
        }
    }

    /// The next notification that `pred` accepts (others are kept in `seen`).
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} notification within {NOTIFY_TIMEOUT:?}; saw {:?}",
                self.seen
            );
            self.socket.set_read_timeout(Some(left)).unwrap();
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(message.clone());
            if pred(&message) {
                return message;
            }
        }
    }
}

/// One notification's `KEY=VALUE` lines: the value of `key`.
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// `systemd-socket-activate -l ADDR --fdname=NAME -E ... webserver ARGS`, and the stdout lines
/// of the server it starts (once a first client connects).
struct Activated {
    child: Child,
    addr: SocketAddr,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Activated {
    fn start(fdname: &str, env: &[(&str, &str)], args: &[&str]) -> Activated {
        assert!(
            Path::new(LAUNCHER).exists(),
            "{LAUNCHER} is missing: apt-get install systemd (the .ci/run setup installs it)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(LAUNCHER);
        cmd.arg("-l")
            .arg(addr.to_string())
            .arg(format!("--fdname={fdname}"))
            .args(["-E", "RUST_LOG=info,access=warn", "-E", "RUST_BACKTRACE=1"]);
        for (key, value) in env {
            cmd.arg("-E").arg(format!("{key}={value}"));
        }
        cmd.arg(webserver_exe()).args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Activated {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// The launcher starts the server when the first client connects: connect (retrying until
    /// the launcher listens), then wait for the `Serving HTTP on` line.
    fn first_request(&self, path: &str) -> Response {
        let mut conn = poll(START_TIMEOUT, "the launcher to listen", || {
            std::net::TcpStream::connect(self.addr).ok()
        });
        std::io::Write::write_all(
            &mut conn,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        drop(conn);
        self.serving_line();
        self.get(path)
    }

    fn serving_line(&self) -> String {
        let line = self
            .stdout
            .recv_timeout(START_TIMEOUT)
            .expect("the activated server's `Serving HTTP on` line");
        assert!(line.starts_with("Serving HTTP on "), "{line}");
        line
    }

    fn get(&self, path: &str) -> Response {
        let mut conn = Conn::connect(self.addr);
        conn.send(format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        conn.read_response()
    }

    fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own unreaped child (the launcher exec'd the server in place).
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    fn wait_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- activated server stderr ----\n{}----",
                self.stderr.lock().unwrap()
            );
        }
    }
}

/// The processes `pid` started (its workers), from every thread's `children` list.
fn worker_pids(pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let children =
            std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids
}

/// A copy of `app`'s library in `dir` (so a swap can replace it), as `LIB:app`.
fn live_copy(dir: &Path, app: &str) -> (PathBuf, String) {
    let live = dir.join("live.so");
    install(&sample_app(app), &live);
    let target = format!("{}:app", live.display());
    (live, target)
}

#[test]
fn an_activated_server_serves_the_passed_socket_and_tells_systemd_ready_reloading_stopping() {
    let dir = fresh_dir("systemd-notify");
    let mut notify = Notifications::at_path(&dir);
    let (live, target) = live_copy(&dir, "pyramidish");
    let pid_file = dir.join("ws.pid");
    let pid_arg = pid_file.display().to_string();
    let mut server = Activated::start(
        "web",
        &[("NOTIFY_SOCKET", &notify.name)],
        &["--pid", &pid_arg, &target],
    );
    let resp = server.first_request("/hello");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("Pyramidish"), "{}", resp.text());

    let ready = notify.wait_for("READY=1", |m| field(m, "READY") == Some("1"));
    let (_, generation, hash) = read_status(&pid_file).expect("status file");
    assert_eq!(generation, 1);
    let status = field(&ready, "STATUS").expect("STATUS= with READY=1");
    assert!(
        status.contains("generation 1") && status.contains(&hash),
        "{status} (library {hash})"
    );

    // The variables are the master's: a worker (and its app) neither sees the passed socket
    // numbers nor speaks for the service.
    let workers = worker_pids(server.child.id());
    assert!(!workers.is_empty());
    for worker in workers {
        let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
        for variable in environ.split(|&b| b == 0) {
            let variable = String::from_utf8_lossy(variable);
            assert!(
                ![
                    "NOTIFY_SOCKET=",
                    "LISTEN_FDS=",
                    "LISTEN_PID=",
                    "LISTEN_FDNAMES="
                ]
                .iter()
                .any(|name| variable.starts_with(name)),
                "worker {worker} has {variable}"
            );
        }
    }

    install(&sample_app("flaskish"), &live);
    server.signal(libc::SIGHUP);
    let reloading = notify.wait_for("RELOADING=1", |m| field(m, "RELOADING") == Some("1"));
    let monotonic: u64 = field(&reloading, "MONOTONIC_USEC")
        .expect("RELOADING=1 carries MONOTONIC_USEC (Type=notify-reload)")
        .parse()
        .unwrap();
    assert!(monotonic > 0);
    let ready = notify.wait_for("READY=1 after the swap", |m| field(m, "READY") == Some("1"));
    let (state, generation, hash) = read_status(&pid_file).unwrap();
    assert_eq!((state.as_str(), generation), ("ready", 2));
    let status = field(&ready, "STATUS").unwrap();
    assert!(
        status.contains("generation 2") && status.contains(&hash),
        "{status}"
    );
    assert!(server.get("/hello").text().contains("Flaskish"));

    server.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1", |m| field(m, "STOPPING") == Some("1"));
    server.wait_exit();
}

#[test]
fn a_failed_swap_says_ready_again_with_the_old_generation_in_status() {
    let dir = fresh_dir("systemd-failed-swap");
    let mut notify = Notifications::at_path(&dir);
    let (live, target) = live_copy(&dir, "pyramidish");
    let server = Activated::start("web", &[("NOTIFY_SOCKET", &notify.name)], &[&target]);
    assert_eq!(server.first_request("/hello").status, 200);
    notify.wait_for("READY=1", |m| field(m, "READY") == Some("1"));

    install_bytes(b"not a library", &live);
    server.signal(libc::SIGHUP);
    let ready = notify.wait_for("READY=1 after the failed swap", |m| {
        field(m, "READY") == Some("1")
    });
    let status = field(&ready, "STATUS").unwrap();
    assert!(
        status.contains("generation 1 serving") && status.contains("failed"),
        "{status}"
    );
    assert!(server.get("/hello").text().contains("Pyramidish"));
}

#[test]
fn watchdog_usec_gets_watchdog_pings_on_an_abstract_notify_socket() {
    let dir = fresh_dir("systemd-watchdog");
    let mut notify = Notifications::abstract_name("watchdog");
    let (_live, target) = live_copy(&dir, "hello");
    // 400 ms: a ping every 200 ms.
    let server = Activated::start(
        "web",
        &[("NOTIFY_SOCKET", &notify.name), ("WATCHDOG_USEC", "400000")],
        &[&target],
    );
    assert_eq!(server.first_request("/").status, 200);
    let first = Instant::now();
    notify.wait_for("WATCHDOG=1", |m| field(m, "WATCHDOG") == Some("1"));
    notify.wait_for("a second WATCHDOG=1", |m| field(m, "WATCHDOG") == Some("1"));
    notify.wait_for("a third WATCHDOG=1", |m| field(m, "WATCHDOG") == Some("1"));
    assert!(first.elapsed() < NOTIFY_TIMEOUT);
}

#[test]
fn with_bind_the_passed_socket_is_chosen_by_name_and_an_unknown_name_is_refused() {
    let dir = fresh_dir("systemd-names");
    let (_live, target) = live_copy(&dir, "hello");
    let unix = dir.join("also.sock");
    let unix_bind = format!("unix:{}", unix.display());
    let server = Activated::start("web", &[], &["-b", "fd://web", "-b", &unix_bind, &target]);
    let mut conn = poll(START_TIMEOUT, "the launcher to listen", || {
        std::net::TcpStream::connect(server.addr).ok()
    });
    std::io::Write::write_all(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let line = server.serving_line();
    assert_eq!(
        serving_addresses(&line),
        ["fd://web".to_owned(), unix_bind.clone()]
    );
    assert_eq!(server.get("/").status, 200);
    drop(conn);
    drop(server);

    let mut refused = Activated::start("web", &[], &["-b", "fd://admin", &target]);
    let _trigger = poll(START_TIMEOUT, "the launcher to listen", || {
        std::net::TcpStream::connect(refused.addr).ok()
    });
    refused.wait_exit();
    let status = refused.child.wait().unwrap();
    assert!(!status.success());
    // The stderr thread has read everything once the pipe closed.
    let said = poll(IO_TIMEOUT, "the refusal on stderr", || {
        let stderr = refused.stderr.lock().unwrap().clone();
        stderr.contains("webserver: error").then_some(stderr)
    });
    assert!(
        said.contains("systemd passed no socket named 'admin' (LISTEN_FDNAMES: web)"),
        "{said}"
    );
}
