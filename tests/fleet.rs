//! The deployment of issue 12, with the real programs: Debian's nginx (`/usr/sbin/nginx`, run
//! as the test's user with its own prefix and configuration in a scratch directory) in front of
//! two `webserver` instances — one on TCP, one on a unix socket trusted as `unix` — passing
//! requests with the shipped header snippet (`deploy/nginx/webserver-proxy.conf`).
//!
//! - The client is 127.0.0.2 (its socket is bound there) and nginx 127.0.0.1: the app must
//!   see 127.0.0.2 as REMOTE_ADDR through nginx, whatever `X-Forwarded-For` / `Forwarded` the
//!   client sends, and `https` as the scheme through nginx's TLS listener (curl).
//! - The same spoofed headers sent straight to an instance (127.0.0.2 is not in
//!   `--forwarded-allow-ips`) are removed before the app sees them.
//! - `scripts/fleet-swap.sh` then swaps both instances, one after the other, from the `echo` app
//!   to `hello`, while client threads keep requesting through nginx: not one request may fail.
//! - With `--canary` on both instances, a fleet swap to a library whose canary fails stops at the
//!   first instance (rolled back, the second untouched), and a good library passes both.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const NGINX: &str = "/usr/sbin/nginx";
/// The client's address: not nginx's (127.0.0.1), so pass-through can be told from the peer.
const CLIENT_IP: [u8; 4] = [127, 0, 0, 2];
/// Client threads requesting through nginx during the fleet swap.
const LOAD_THREADS: usize = 3;

/// A port nothing listens on right now (nginx binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A connection to `addr` from 127.0.0.2.
fn connect_from_client_ip(addr: SocketAddr) -> Conn {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((CLIENT_IP, 0)).into())
        .unwrap();
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect {addr} from 127.0.0.2: {e}"));
    Conn::from_stream(TcpStream::from(socket))
}

/// What the echo app saw for `GET /who` with `headers`, sent from 127.0.0.2 to `addr`.
fn who(addr: SocketAddr, headers: &[&str]) -> serde_json::Value {
    let mut conn = connect_from_client_ip(addr);
    let mut raw = String::from("GET /who HTTP/1.1\r\nHost: fleet.example\r\nConnection: close\r\n");
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    conn.send(raw);
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

const SPOOFS: &[&str] = &[
    "X-Forwarded-For: 6.6.6.6",
    "Forwarded: for=6.6.6.6;proto=https",
    "X-Forwarded-Proto: https",
    "X-Real-IP: 6.6.6.6",
];

/// nginx, run in the foreground by the test; stopped (TERM, then KILL) on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    http: SocketAddr,
    https: SocketAddr,
}

impl Nginx {
    /// nginx with an HTTP and a TLS listener, both proxying to `upstreams` (nginx's
    /// `server` syntax: `127.0.0.1:8000`, `unix:/path`).
    fn start(dir: &Path, upstreams: &[String]) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run openssl (apt install openssl)");
        assert!(
            made.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let snippet = workspace_dir().join("deploy/nginx/webserver-proxy.conf");
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a};\n"))
            .collect();
        // As root (CI containers), nginx would switch its workers to `nobody`, which may not
        // reach this directory; as anyone else the directive does not apply.
        // SAFETY: geteuid(2) cannot fail and has no side effects.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\n{user}\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
                 access_log off;\n\
                 client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
                 upstream fleet {{\n{servers}        keepalive 16;\n        keepalive_timeout 4s;\n    }}\n\
                 server {{\n        listen {http};\n        location / {{ proxy_pass http://fleet; include {snippet}; }}\n    }}\n\
                 server {{\n        listen {https} ssl;\n        ssl_certificate {cert};\n        ssl_certificate_key {key};\n\
                         location / {{ proxy_pass http://fleet; include {snippet}; }}\n    }}\n\
             }}\n",
            snippet = snippet.display(),
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {NGINX} (apt install nginx): {e}"));
        let mut nginx = Nginx {
            child,
            dir: dir.to_owned(),
            http,
            https,
        };
        let started = Instant::now();
        while TcpStream::connect(http).is_err() || TcpStream::connect(https).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "nginx does not listen:\n{}",
                nginx.error_log()
            );
            thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own unreaped child: the pid cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        if thread::panicking() {
            eprintln!("---- nginx error.log ----\n{}----", self.error_log());
        }
    }
}

/// One instance: a master with `--pid`, serving its own copy of a library.
struct Instance {
    server: Server,
    pid_file: PathBuf,
    live: PathBuf,
    /// Where nginx reaches it.
    upstream: String,
}

/// Where an instance listens for nginx.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Tcp,
    /// A unix socket, its peers trusted with `--forwarded-allow-ips unix` (it also keeps the
    /// harness's TCP listener, which trusts nobody then: the spoof check goes there).
    Unix,
}

fn instance(dir: &Path, name: &str, app: &Path, via: Via) -> Instance {
    instance_with(dir, name, app, via, &[])
}

/// [`instance`] with more arguments for the server.
fn instance_with(dir: &Path, name: &str, app: &Path, via: Via, more: &[String]) -> Instance {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let live = home.join("libapp.so");
    std::fs::copy(app, &live).unwrap();
    let pid_file = home.join("webserver.pid");
    let mut target = live.clone().into_os_string();
    target.push(":app");
    let socket = home.join("webserver.sock");
    let mut builder = server(target)
        .arg_pid(&pid_file)
        .args(["-w", "2", "--threads", "4"])
        .args(more);
    if via == Via::Unix {
        builder = builder
            .args(["-b", &format!("unix:{}", socket.display())])
            .args(["--forwarded-allow-ips", "unix"]);
    }
    // Otherwise the default --forwarded-allow-ips (127.0.0.1,::1) trusts nginx and not the
    // client.
    let server = builder.start();
    wait_first_ready(&pid_file);
    let upstream = match via {
        Via::Tcp => server.addr().to_string(),
        Via::Unix => format!("unix:{}", socket.display()),
    };
    Instance {
        server,
        pid_file,
        live,
        upstream,
    }
}

#[test]
fn nginx_in_front_of_two_instances_passes_the_client_through_and_a_fleet_swap_fails_nothing() {
    let dir = fresh_dir("fleet");
    let a = instance(&dir, "a", &sample_app("echo"), Via::Tcp);
    let b = instance(&dir, "b", &sample_app("echo"), Via::Unix);
    let nginx = Nginx::start(
        &dir.join("nginx"),
        &[a.upstream.clone(), b.upstream.clone()],
    );

    // ---- REMOTE_ADDR and scheme through nginx ----
    for _ in 0..4 {
        let seen = who(nginx.http, &[]);
        assert_eq!(seen["remote_addr"], "127.0.0.2", "{seen}");
        assert_eq!(seen["url_scheme"], "http");
        assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.2");
        // A client's own claims do not survive nginx + webserver.
        let seen = who(nginx.http, SPOOFS);
        assert_eq!(seen["remote_addr"], "127.0.0.2", "{seen}");
        assert_eq!(seen["url_scheme"], "http", "{seen}");
        assert!(seen["headers"]["forwarded"].is_null(), "{seen}");
    }
    // Both instances served the client (nginx balances round-robin).
    for instance in [&a, &b] {
        instance
            .server
            .wait_for_log(Duration::from_secs(5), |l| {
                l.contains("127.0.0.2 - ") && l.contains("\"GET /who HTTP/1.1\" 200")
            })
            .unwrap_or_else(|| panic!("instance {} never saw the client", instance.server.addr()));
    }
    // Through nginx's TLS listener the app's scheme is https (curl is the TLS client).
    let curl = Command::new("curl")
        .args([
            "-sSk",
            "--interface",
            "127.0.0.2",
            "-H",
            "X-Forwarded-Proto: http",
        ])
        .arg(format!("https://{}/who", nginx.https))
        .output()
        .expect("run curl (apt install curl)");
    assert!(
        curl.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(seen["url_scheme"], "https", "{seen}");
    assert_eq!(seen["remote_addr"], "127.0.0.2", "{seen}");

    // ---- the same headers straight from an untrusted peer are removed ----
    for instance in [&a, &b] {
        let seen = who(instance.server.addr(), SPOOFS);
        assert_eq!(seen["remote_addr"], "127.0.0.2", "{seen}");
        assert_eq!(seen["url_scheme"], "http");
        for name in [
            "x-forwarded-for",
            "forwarded",
            "x-forwarded-proto",
            "x-real-ip",
        ] {
            assert!(
                seen["headers"][name].is_null(),
                "{name} reached the app: {seen}"
            );
        }
    }

    // ---- fleet-swap.sh under load through nginx ----
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let last_body = Arc::new(Mutex::new(String::new()));
    let clients: Vec<_> = (0..LOAD_THREADS)
        .map(|_| {
            let (stop, served, failures, last_body) = (
                Arc::clone(&stop),
                Arc::clone(&served),
                Arc::clone(&failures),
                Arc::clone(&last_body),
            );
            let target = nginx.http;
            thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                while !stop.load(Ordering::Relaxed) {
                    let attempt = (|| {
                        let conn = match &mut conn {
                            Some(conn) => conn,
                            None => conn.insert(Conn::try_connect(target)?),
                        };
                        conn.try_send("GET /load HTTP/1.1\r\nHost: fleet.example\r\n\r\n")?;
                        conn.try_read_response()
                    })();
                    match attempt {
                        Ok(resp) if resp.status == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                            *last_body.lock().unwrap() = resp.text();
                            if resp.header_has_token("connection", "close") {
                                conn = None;
                            }
                        }
                        Ok(resp) => {
                            failures.lock().unwrap().push(format!(
                                "{} {}",
                                resp.status,
                                resp.text()
                            ));
                            conn = None;
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(e);
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    // Load runs before, during and after the swaps.
    thread::sleep(Duration::from_millis(300));
    let before = served.load(Ordering::Relaxed);
    let instance_arg = |i: &Instance| {
        format!(
            "{},{},http://{}/ready",
            i.pid_file.display(),
            i.live.display(),
            i.server.addr()
        )
    };
    let swap = Command::new(workspace_dir().join("scripts/fleet-swap.sh"))
        .arg(sample_app("hello"))
        .arg(instance_arg(&a))
        .arg(instance_arg(&b))
        .env("WEBSERVER", webserver_exe())
        .output()
        .unwrap();
    let during = served.load(Ordering::Relaxed) - before;
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let out = String::from_utf8_lossy(&swap.stdout);
    let err = String::from_utf8_lossy(&swap.stderr);
    assert!(swap.status.success(), "fleet-swap failed:\n{out}\n{err}");

    // Each instance was swapped only once the one before reported ready.
    let position = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{out}"))
    };
    assert!(
        position("[1/2] ready") < position("[2/2] swapping"),
        "{out}"
    );
    for instance in [&a, &b] {
        let (state, generation, _) = read_status(&instance.pid_file).unwrap();
        assert_eq!((state.as_str(), generation), ("ready", 2));
    }

    let failures = failures.lock().unwrap();
    let total = served.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed through nginx during the fleet swap, e.g. {:?}",
        failures.len(),
        total + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(during > 0, "no request was served while the fleet swapped");
    // Both instances now serve the new library.
    assert!(
        last_body.lock().unwrap().contains("Hello"),
        "still the old app: {}",
        last_body.lock().unwrap()
    );
    for instance in [&a, &b] {
        assert!(
            instance.server.get("/").text().contains("Hello"),
            "{} still serves the old app",
            instance.server.addr()
        );
    }
    eprintln!(
        "fleet swap: {total} requests through nginx ({during} during the swaps), 0 failed\n{out}"
    );
}

/// The script refuses a list with a dead instance before touching any, and stops at the first
/// instance that refuses the library: the rest keep the old one untouched.
#[test]
fn a_fleet_swap_checks_every_instance_first_and_stops_at_the_first_refusal() {
    let dir = fresh_dir("fleet-refusal");
    let a = instance(&dir, "a", &sample_app("hello"), Via::Tcp);
    let b = instance(&dir, "b", &sample_app("hello"), Via::Tcp);
    let arg = |i: &Instance| format!("{},{}", i.pid_file.display(), i.live.display());
    let fleet_swap = |new: &Path, instances: &[String]| {
        Command::new(workspace_dir().join("scripts/fleet-swap.sh"))
            .arg(new)
            .args(instances)
            .env("WEBSERVER", webserver_exe())
            .output()
            .unwrap()
    };

    let gone = dir.join("gone.pid");
    std::fs::write(&gone, "999999\n").unwrap();
    let out = fleet_swap(
        &sample_app("echo"),
        &[arg(&a), format!("{},{}", gone.display(), b.live.display())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no master holds"), "{err}");

    // Not a library: the first instance's check refuses it, the second is never touched.
    let broken = dir.join("libbroken.so");
    std::fs::write(&broken, "not an ELF file").unwrap();
    let out = fleet_swap(&broken, &[arg(&a), arg(&b)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("[1/2]") && err.contains("stopped here"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("[2/2]"));
    for instance in [&a, &b] {
        let (state, generation, _) = read_status(&instance.pid_file).unwrap();
        assert_eq!((state.as_str(), generation), ("ready", 1));
        assert!(instance.server.get("/").text().contains("Hello"));
    }
}

/// `--canary 1` on both instances behind nginx: `fleet-swap.sh` to `panicky` (500 on `/boom`,
/// which `hello` answers 200; one request in ten under load) stops at the first instance, whose
/// canary fails and is rolled back, and never touches the second; no request fails beyond that
/// canary's own 500s. Then a fleet swap to an unchanged `hello` passes both canaries. Load goes
/// through nginx and straight to each instance: nginx keeps its upstream connections open, so
/// a canary gets only the connections nginx opens anew (4 to 25 % of the answers here, too few
/// to judge at times: `--canary-min-answers 50` refuses to pass a canary on those).
#[test]
fn a_fleet_swap_with_canaries_stops_at_the_first_instance_whose_canary_fails() {
    let dir = fresh_dir("fleet-canary");
    let canary = |name: &str| {
        let stats = dir.join(format!("{name}-stats.sock"));
        [
            "--canary".to_owned(),
            "1".to_owned(),
            "--canary-window".to_owned(),
            "3".to_owned(),
            "--canary-min-answers".to_owned(),
            "50".to_owned(),
            format!("--stats=unix:{}", stats.display()),
        ]
    };
    let a = instance_with(&dir, "a", &sample_app("hello"), Via::Tcp, &canary("a"));
    let b = instance_with(&dir, "b", &sample_app("hello"), Via::Tcp, &canary("b"));
    let nginx = Nginx::start(
        &dir.join("nginx"),
        &[a.upstream.clone(), b.upstream.clone()],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(Vec::<(String, u16)>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..LOAD_THREADS as u64)
        .map(|n: u64| {
            let (stop, statuses, failures) = (
                Arc::clone(&stop),
                Arc::clone(&statuses),
                Arc::clone(&failures),
            );
            // Through nginx, which keeps its upstream connections (a canary gets only the new
            // ones), and straight to each instance with a connection per request.
            let target = [nginx.http, a.server.addr(), b.server.addr()][n as usize % 3];
            thread::spawn(move || {
                // One request in ten for /boom, at random: nginx's round robin must not send
                // every /boom to the same instance.
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (n + 1) << 32 ^ u64::from(std::process::id());
                loop {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let path = if seed.is_multiple_of(10) { "/boom" } else { "/ok" };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let answer = Conn::try_connect(target).and_then(|mut conn| {
                        conn.try_send(format!(
                            "GET {path} HTTP/1.1\r\nHost: fleet.example\r\nConnection: close\r\n\r\n"
                        ))?;
                        conn.try_read_response()
                    });
                    match answer {
                        Ok(resp) => statuses.lock().unwrap().push((path.to_string(), resp.status)),
                        Err(e) => failures.lock().unwrap().push(format!("{path}: {e}")),
                    }
                }
            })
        })
        .collect();
    let arg = |i: &Instance| format!("{},{}", i.pid_file.display(), i.live.display());
    let fleet_swap = |new: &Path| {
        Command::new(workspace_dir().join("scripts/fleet-swap.sh"))
            .arg(new)
            .arg(arg(&a))
            .arg(arg(&b))
            .env("WEBSERVER", webserver_exe())
            // panicky's `/` panics: its health check is /ok.
            .env("HOT_SWAP_PROBE", "/ok")
            .output()
            .unwrap()
    };
    thread::sleep(Duration::from_millis(300));
    let refused = fleet_swap(&sample_app("panicky"));
    let passed = fleet_swap(&sample_app("hello"));
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    let (out, err) = (
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr),
    );
    assert_eq!(refused.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("canary failed: 5xx"), "{out}\n{err}");
    assert!(
        err.contains("[1/2]") && err.contains("stopped here"),
        "{err}"
    );
    assert!(
        !out.contains("[2/2]"),
        "the second instance is not touched:\n{out}"
    );
    let (out, err) = (
        String::from_utf8_lossy(&passed.stdout),
        String::from_utf8_lossy(&passed.stderr),
    );
    assert!(passed.status.success(), "{out}\n{err}");
    for instance in [&a, &b] {
        assert!(
            instance.server.stderr().contains("canary passed"),
            "{}",
            instance.server.stderr()
        );
    }
    // a: failed 2, then ready 3; b: ready 2 (the failed swap never reached it).
    assert_eq!(
        read_status(&a.pid_file).map(|(s, g, _)| (s, g)),
        Some(("ready".into(), 3))
    );
    assert_eq!(
        read_status(&b.pid_file).map(|(s, g, _)| (s, g)),
        Some(("ready".into(), 2))
    );

    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let statuses = statuses.lock().unwrap();
    let bad: Vec<_> = statuses.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        bad.iter()
            .all(|(path, status)| path == "/boom" && *status == 500),
        "only the canary's own 500s: {bad:?}"
    );
    assert!(!bad.is_empty(), "the canary served some /boom");
    eprintln!(
        "fleet canary: {} requests (through nginx and straight), {} of them the canary's 500s, 0 failed",
        statuses.len(),
        bad.len()
    );
}
