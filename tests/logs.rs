//! Issue 13 "Logs", end to end: the real binary, real sockets, real files. The access log's
//! atoms and JSON lines, the error log file, `--log-level` and `RUST_LOG` over it, and USR1's
//! reopen (logrotate: rename, signal) without losing or repeating a line.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;

/// How long a line may take to reach its file (it is written before the response is sent; this
/// only covers a loaded machine).
const LINE_WAIT: Duration = Duration::from_secs(10);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The lines of `path` once it holds at least `count`.
fn lines_of(path: &Path, count: usize) -> Vec<String> {
    poll(
        LINE_WAIT,
        &format!("{count} line(s) in {}", path.display()),
        || {
            let lines: Vec<String> = read(path).lines().map(str::to_owned).collect();
            (lines.len() >= count).then_some(lines)
        },
    )
}

/// `GET target` with extra header lines, on a new connection.
fn request(server: &Server, target: &str, headers: &str) -> Response {
    let mut conn = server.connect();
    conn.send(format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
    ));
    conn.read_response()
}

/// The library hash the master announced (`… (sha HASH)`).
fn announced_hash(server: &Server) -> String {
    let line = server
        .wait_for_log(LINE_WAIT, |l| l.contains("ready") && l.contains("(sha "))
        .expect("the master announces the generation with its hash");
    let start = line.find("(sha ").unwrap() + "(sha ".len();
    line[start..].split(')').next().unwrap().to_owned()
}

#[test]
fn default_format_is_apache_combined() {
    let dir = fresh_dir("logs-combined");
    let log = dir.join("access.log");
    let server = sample_server("hello")
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .start();
    let resp = request(
        &server,
        "/hello?x=1",
        "Referer: http://example.com/\r\nUser-Agent: probe/1.0\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n",
    );
    assert_eq!(resp.status, 200);
    let line = &lines_of(&log, 1)[0];
    // 127.0.0.1 - alice [25/Nov/2026:22:47:33 +0000] "GET /hello?x=1 HTTP/1.1" 200 33 "…" "…"
    let (head, rest) = line.split_once(" [").expect("a [time]");
    assert_eq!(head, "127.0.0.1 - alice");
    let (time, rest) = rest.split_once("] ").expect("time closed");
    assert!(time.ends_with(" +0000") && time.len() == 26, "{time:?}");
    assert_eq!(
        rest,
        format!(
            "\"GET /hello?x=1 HTTP/1.1\" 200 {} \"http://example.com/\" \"probe/1.0\"",
            resp.body.len()
        )
    );
}

#[test]
fn every_atom_renders_what_the_request_and_response_were() {
    let dir = fresh_dir("logs-atoms");
    let log = dir.join("access.log");
    let format = "%(h)s|%(l)s|%(u)s|%(r)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(f)s|%(a)s|\
                  %(T)s|%(D)s|%(M)s|%(L)s|%(p)s|%({x-request-id}i)s|%({content-type}o)s|\
                  %({REMOTE_PORT}e)s|%(generation)s|%(library)s|100%%";
    let server = sample_server("hello")
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .args(["--access-logformat", format])
        .start();
    let mut conn = server.connect();
    conn.send("HEAD /a%20b%22c?q=%22 HTTP/1.0\r\nHost: localhost\r\nX-Request-Id: rid-7\r\n\r\n");
    let resp = conn.read_head_response();
    assert_eq!(resp.status, 200);
    let local_port = conn_local_port(&conn);
    let line = &lines_of(&log, 1)[0];
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields.len(), 24, "{line}");
    let hash = announced_hash(&server);
    let worker_pid = child_pids(server.pid())[0];
    let expect: [(usize, String); 20] = [
        (0, "127.0.0.1".into()),
        (1, "-".into()),
        (2, "-".into()),
        // The path as the app saw it (decoded); a quote escaped so the line stays parseable.
        (3, r#"HEAD /a b\"c?q=%22 HTTP/1.0"#.into()),
        (4, "HEAD".into()),
        (5, r#"/a b\"c"#.into()),
        (6, "q=%22".into()),
        (7, "HTTP/1.0".into()),
        (8, "200".into()),
        (9, "0".into()),
        (10, "-".into()),
        (11, "-".into()),
        (12, "-".into()),
        (13, "0".into()),
        (17, format!("<{worker_pid}>")),
        (18, "rid-7".into()),
        (20, local_port.to_string()),
        (21, "1".into()),
        (22, hash),
        (23, "100%".into()),
    ];
    for (index, want) in expect {
        assert_eq!(fields[index], want, "atom #{index} of {line}");
    }
    let micros: u64 = fields[14].parse().expect("%(D)s is a number");
    let millis: u64 = fields[15].parse().expect("%(M)s is a number");
    assert!(micros > 0 && millis == micros / 1000, "{line}");
    let (secs, fraction) = fields[16].split_once('.').expect("%(L)s has decimals");
    assert_eq!((secs, fraction.len()), ("0", 6), "{line}");
    assert!(
        fields[19].starts_with("text/plain"),
        "the app's Content-Type: {line}"
    );
}

/// The client's port, which the server sees as REMOTE_PORT.
fn conn_local_port(conn: &Conn) -> u16 {
    conn.stream.local_addr().unwrap().port()
}

#[test]
fn json_lines_parse_and_carry_every_field() {
    let dir = fresh_dir("logs-json");
    let log = dir.join("access.log");
    let server = sample_server("hello")
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .args(["--access-logformat", "json"])
        .start();
    assert_eq!(request(&server, "/one", "").status, 200);
    assert_eq!(
        request(
            &server,
            "/two%22%5C%0A?k=%22v",
            "User-Agent: ag\"ent\\x\r\n"
        )
        .status,
        200
    );
    // A request the app never saw is a line too.
    let mut bad = server.connect();
    bad.send("GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert_eq!(bad.read_response().status, 400);
    let lines = lines_of(&log, 3);
    let hash = announced_hash(&server);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let by_path = |path: &str| {
        parsed
            .iter()
            .find(|v| v["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path:?} in {lines:?}"))
    };
    let one = by_path("/one");
    assert_eq!(one["method"], "GET");
    assert_eq!(one["status"], 200);
    assert_eq!(one["protocol"], "HTTP/1.1");
    assert_eq!(one["remote_addr"], "127.0.0.1");
    assert_eq!(one["generation"], 1);
    assert_eq!(one["library"], hash.as_str());
    assert!(one["bytes"].as_u64().unwrap() > 0);
    assert!(one["duration_us"].as_u64().is_some());
    assert!(one["time"].as_str().unwrap().ends_with('Z'));
    let two = by_path("/two\"\\\n");
    assert_eq!(two["query"], "k=%22v");
    assert_eq!(two["user_agent"], "ag\"ent\\x");
    let refused = parsed
        .iter()
        .find(|v| v["status"] == 400)
        .expect("the 400 is logged");
    assert_eq!(refused["method"], serde_json::Value::Null);
}

#[test]
fn response_header_atoms_work_for_deferred_requests_too() {
    let dir = fresh_dir("logs-deferred");
    let log = dir.join("access.log");
    let server = sample_server("axum_app")
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .args(["--access-logformat", "%(U)s %(s)s %({content-type}o)s"])
        .start();
    // /sleep parks (its handler is pending) and ends on another stretch.
    assert_eq!(request(&server, "/sleep?ms=20", "").status, 200);
    assert_eq!(request(&server, "/", "").status, 200);
    // The deferred line is written after its response went out: in either order.
    let lines = lines_of(&log, 2);
    for path in ["/sleep", "/"] {
        let line = lines.iter().find(|l| l.starts_with(&format!("{path} ")));
        assert!(
            line.is_some_and(|l| l.starts_with(&format!("{path} 200 text/plain"))),
            "{path}: {lines:?}"
        );
    }
}

#[test]
fn access_log_to_stdout() {
    let server = sample_server("hello")
        .args(["--access-logfile", "-"])
        .start();
    assert_eq!(request(&server, "/to-stdout", "").status, 200);
    poll(LINE_WAIT, "the access line on stdout", || {
        server
            .stdout()
            .lines()
            .find(|l| l.contains("\"GET /to-stdout HTTP/1.1\" 200"))
            .map(drop)
    });
    assert!(!server.stderr().contains("/to-stdout"));
}

#[test]
fn error_log_goes_to_its_file() {
    let dir = fresh_dir("logs-error");
    let log = dir.join("error.log");
    let server = sample_server("hello")
        .args(["-w", "2", "--error-logfile"])
        .args([log.as_os_str()])
        .start();
    assert_eq!(request(&server, "/", "").status, 200);
    poll(LINE_WAIT, "master and worker lines in the file", || {
        let text = read(&log);
        (text.contains("[master] generation 1 ready")
            && text.matches("] generation 1 serving hello").count() == 2)
            .then_some(())
    });
    assert!(
        !server.stderr().contains("generation 1 ready"),
        "stderr: {}",
        server.stderr()
    );
}

#[test]
fn log_level_filters_and_rust_log_wins() {
    // --log-level warn: no INFO line.
    let quiet = sample_server("hello")
        .env_remove("RUST_LOG")
        .args(["--log-level", "warn"])
        .start();
    assert_eq!(request(&quiet, "/", "").status, 200);
    // The same server at the default level says the generation is ready: give it that long.
    thread::sleep(Duration::from_millis(300));
    assert!(!quiet.stderr().contains(" INFO "), "{}", quiet.stderr());

    // The default is info.
    let default = sample_server("hello").env_remove("RUST_LOG").start();
    assert!(default
        .wait_for_log(LINE_WAIT, |l| l.contains(" INFO ") && l.contains("ready"))
        .is_some());

    // RUST_LOG, when set, wins over --log-level (and over WEBSERVER_LOG_LEVEL).
    let loud = sample_server("hello")
        .env("RUST_LOG", "info")
        .env("WEBSERVER_LOG_LEVEL", "error")
        .args(["--log-level", "error"])
        .start();
    assert!(loud
        .wait_for_log(LINE_WAIT, |l| l.contains(" INFO ") && l.contains("ready"))
        .is_some());

    // The level comes from the environment too.
    let env_quiet = sample_server("hello")
        .env_remove("RUST_LOG")
        .env("WEBSERVER_LOG_LEVEL", "error")
        .start();
    thread::sleep(Duration::from_millis(300));
    assert!(
        !env_quiet.stderr().contains(" INFO "),
        "{}",
        env_quiet.stderr()
    );
}

#[test]
fn help_lists_the_logging_flags_and_rust_log() {
    let out = std::process::Command::new(webserver_exe())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let section = help
        .split("Logging:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Logging heading in --help:\n{help}"));
    for flag in [
        "--access-logfile",
        "--access-logformat",
        "--error-logfile",
        "--log-level",
        "RUST_LOG",
        "WEBSERVER_ACCESS_LOGFILE",
    ] {
        assert!(section.contains(flag), "{flag} not under Logging:\n{help}");
    }
}

#[test]
fn bad_formats_and_unwritable_files_are_refused_in_one_line() {
    let bad = sample_server("hello")
        .args(["--access-logformat", "%(h)s %(zz)s"])
        .run_to_exit();
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("unknown atom %(zz)s") && bad.stderr.contains("{header}i"),
        "{}",
        bad.stderr
    );

    let missing = PathBuf::from("/nonexistent-dir/access.log");
    for flag in ["--access-logfile", "--error-logfile"] {
        let exited = sample_server("hello")
            .args([flag.as_ref(), missing.as_os_str()])
            .run_to_exit();
        assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
        let wanted = format!("webserver: error: cannot open {flag} /nonexistent-dir/access.log");
        assert!(
            exited.stderr.lines().any(|l| l.starts_with(&wanted)),
            "{}",
            exited.stderr
        );
    }
}

/// logrotate's flow under load: requests keep coming while the file is renamed and the master
/// gets USR1; every request is in exactly one of the two files, and after the reopen new lines
/// go to the new file (from every worker, and the error log too).
#[test]
fn usr1_reopens_without_losing_or_repeating_a_line() {
    let dir = fresh_dir("logs-rotate");
    let (access, errors) = (dir.join("access.log"), dir.join("error.log"));
    let server = sample_server("hello")
        .args(["-w", "2", "--access-logfile"])
        .args([access.as_os_str()])
        .args(["--error-logfile".as_ref(), errors.as_os_str()])
        .args(["--access-logformat", "%(U)s %(p)s"])
        .start();
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            thread::spawn(move || {
                let mut served = Vec::new();
                let mut conn = Conn::connect(addr);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Keep-alive, with a new connection now and then (both workers serve).
                    if n % 20 == 19 {
                        conn = Conn::connect(addr);
                    }
                    let path = format!("/r/{client}/{n}");
                    conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
                    assert_eq!(conn.read_response().status, 200);
                    served.push(path);
                    sent.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                served
            })
        })
        .collect();
    poll(LINE_WAIT, "lines before the rotation", || {
        (read(&access).lines().count() >= 200).then_some(())
    });
    let rotated = dir.join("access.log.1");
    let rotated_errors = dir.join("error.log.1");
    std::fs::rename(&access, &rotated).unwrap();
    std::fs::rename(&errors, &rotated_errors).unwrap();
    server.signal(libc::SIGUSR1);
    // Until both workers wrote to the new file.
    let workers = poll(LINE_WAIT, "both workers writing to the new file", || {
        let pids: std::collections::HashSet<String> = read(&access)
            .lines()
            .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
            .collect();
        (pids.len() == 2).then_some(pids)
    });
    let before = sent.load(Ordering::Relaxed);
    poll(LINE_WAIT, "more requests after the reopen", || {
        (sent.load(Ordering::Relaxed) > before + 200).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let served: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();

    let mut seen: HashMap<String, usize> = HashMap::new();
    let (old, new) = (
        read(&rotated),
        poll(LINE_WAIT, "every line written", || {
            let new = read(&access);
            (read(&rotated).lines().count() + new.lines().count() >= served.len()).then_some(new)
        }),
    );
    for line in old.lines().chain(new.lines()) {
        let path = line.split(' ').next().unwrap().to_owned();
        *seen.entry(path).or_default() += 1;
    }
    for path in &served {
        assert_eq!(seen.get(path), Some(&1), "{path} in old+new files");
    }
    assert_eq!(seen.len(), served.len(), "lines for requests never sent");
    assert!(old.lines().count() >= 200 && new.lines().count() >= 200);
    assert_eq!(workers.len(), 2);

    // The error log was reopened too: the master's note went to the old file, later lines of
    // the master and of the workers go to the new one.
    assert!(read(&rotated_errors).contains("SIGUSR1: reopening the log files"));
    server.signal(libc::SIGTTIN);
    poll(LINE_WAIT, "a line in the new error log", || {
        read(&errors).contains("serving hello").then_some(())
    });
}

/// A worker being started when USR1 arrives is not killed by the forwarded signal, and ends up
/// writing to the new file.
#[test]
fn usr1_during_a_worker_start_does_not_kill_it() {
    let dir = fresh_dir("logs-start");
    let access = dir.join("access.log");
    let mut server = sample_server("hello")
        .args(["--access-logfile".as_ref(), access.as_os_str()])
        .args(["--access-logformat", "%(U)s %(generation)s"])
        .start();
    let pid = server.pid();
    // A hot swap starts a worker; signal at once, several times, while it boots.
    server.signal(libc::SIGHUP);
    for _ in 0..20 {
        server.signal(libc::SIGUSR1);
        thread::sleep(Duration::from_millis(5));
    }
    assert!(server.is_running());
    poll(Duration::from_secs(15), "generation 2 serving", || {
        (request(&server, "/after", "").status == 200 && read(&access).contains("/after 2"))
            .then_some(())
    });
    assert!(
        !server.stderr().contains("signal 12") && !server.stderr().contains("SIGUSR2"),
        "{}",
        server.stderr()
    );
    poll(Duration::from_secs(15), "the old worker gone", || {
        (child_pids(pid).len() == 1).then_some(())
    });
    assert!(server.is_running());
}

/// Lines a serving thread holds (it writes them when it next waits for events) are written
/// when the worker kills itself over `--timeout`: here two pipelined requests are served and
/// logged, then the third holds the only thread past `--timeout`.
#[test]
fn lines_held_by_a_thread_survive_a_timeout_exit() {
    let dir = fresh_dir("logs-harakiri");
    let access = dir.join("access.log");
    let server = sample_server("crashy")
        .args(["--timeout", "1", "--threads", "1", "--access-logfile"])
        .args([access.as_os_str()])
        .args(["--access-logformat", "%(U)s %(s)s"])
        .start();
    let mut conn = server.connect();
    conn.send(
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /second HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /slow?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    server
        .wait_for_log(Duration::from_secs(10), |l| l.contains("past --timeout"))
        .expect("the worker exits over --timeout");
    let lines = lines_of(&access, 2);
    assert_eq!(lines[..2], ["/first 200", "/second 200"], "{lines:?}");
}

#[test]
fn a_unix_socket_client_is_named_unix_not_a_blank_field() {
    use std::io::{Read, Write};
    let dir = fresh_dir("logs-unix");
    let log = dir.join("access.log");
    let socket = dir.join("web.sock");
    let _server = sample_server("hello")
        .no_default_bind()
        .args(["--bind".to_owned(), format!("unix:{}", socket.display())])
        .args(["--access-logfile".as_ref(), log.as_os_str()])
        .start();
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .write_all(b"GET /u HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let line = &lines_of(&log, 1)[0];
    assert!(line.starts_with("unix - - ["), "{line}");
}
