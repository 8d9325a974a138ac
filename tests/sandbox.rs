//! The worker sandbox, end to end: on by default, workers have `NoNewPrivs: 1` and no
//! capabilities; with Landlock, an app (crashy's `/read` and `/write`, which answer the errno)
//! is refused files outside the paths it was given, and the library's directory for writing,
//! while it serves normally; a WSGI app still serves from its virtualenv; `--seccomp` refuses
//! `keyctl` (crashy's `/keyctl`) on every thread; `--sandbox off` turns it all off.

mod common;
mod wsgi_support;

use std::path::Path;
use std::time::Duration;

use common::*;
use wsgi_support::{examples_dir, wsgi_server};

/// EACCES: what Landlock answers.
const REFUSED: &str = "errno 13";

fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

fn only_worker(server: &Server) -> u32 {
    poll(Duration::from_secs(10), "the worker", || {
        let pids = child_pids(server.pid());
        (pids.len() == 1).then(|| pids[0])
    })
}

/// The worker's serving line, once it is logged.
fn serving_line(server: &Server) -> String {
    server
        .wait_for_log(Duration::from_secs(10), |l| {
            l.contains("generation 1 serving")
        })
        .unwrap_or_else(|| panic!("no serving line:\n{}", server.stderr()))
}

/// `GET /read?path=P` or `/write?path=P`: `ok` or `errno N`.
fn try_open(server: &Server, how: &str, path: &Path) -> String {
    let resp = server.get(&format!("/{how}?path={}", path.display()));
    let text = resp.text().trim().to_owned();
    assert_eq!(resp.status == 200, text == "ok", "{resp:?}");
    text
}

#[test]
fn workers_have_no_new_privs_and_no_capabilities_by_default() {
    let server = sample_server("crashy").start();
    assert_eq!(server.get("/").status, 200);
    let pid = only_worker(&server);
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(status_field(pid, set), "0000000000000000", "{set}");
    }
    let line = serving_line(&server);
    assert!(
        line.contains("sandbox: no_new_privs, no capabilities"),
        "{line}"
    );
}

#[test]
fn sandbox_off_leaves_the_worker_as_it_was() {
    let server = sample_server("crashy").args(["--sandbox", "off"]).start();
    assert_eq!(server.get("/").status, 200);
    assert_eq!(status_field(only_worker(&server), "NoNewPrivs"), "0");
    assert!(serving_line(&server).contains("(sandbox: off)"));
}

/// Files for the app in a directory of their own: one it may read, one it may write, one it was
/// not given, and the working directory (readable by default) elsewhere.
struct Layout {
    readable: std::path::PathBuf,
    writable: std::path::PathBuf,
    outside: std::path::PathBuf,
    cwd: std::path::PathBuf,
}

fn layout() -> Layout {
    let dir = fresh_dir("sandbox");
    let layout = Layout {
        readable: dir.join("data"),
        writable: dir.join("uploads"),
        outside: dir.join("elsewhere"),
        cwd: dir.join("cwd"),
    };
    for d in [
        &layout.readable,
        &layout.writable,
        &layout.outside,
        &layout.cwd,
    ] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("file"), "x").unwrap();
    }
    layout
}

fn sandboxed_crashy(layout: &Layout, sandbox: &str) -> Server {
    sample_server("crashy")
        .cwd(&layout.cwd)
        .args(["--sandbox", sandbox, "--sandbox-read"])
        .args([layout.readable.as_os_str()])
        .args(["--sandbox-write".as_ref(), layout.writable.as_os_str()])
        .start()
}

#[test]
fn the_app_is_refused_what_it_was_not_given_and_serves_normally() {
    let layout = layout();
    let server = sandboxed_crashy(&layout, "on");
    let line = serving_line(&server);
    if !line.contains("landlock ABI") || line.contains("not enforced") {
        eprintln!("skipped: this kernel has no Landlock ({line})");
        return;
    }
    assert_eq!(server.get("/").text(), "crashy ok\n");
    // Given: read beneath --sandbox-read and the working directory, write beneath --sandbox-write.
    assert_eq!(
        try_open(&server, "read", &layout.readable.join("file")),
        "ok"
    );
    assert_eq!(try_open(&server, "read", &layout.cwd.join("file")), "ok");
    assert_eq!(
        try_open(&server, "write", &layout.writable.join("new")),
        "ok"
    );
    assert_eq!(try_open(&server, "read", Path::new("/etc/hosts")), "ok");
    // Not given: anything else, and writing anywhere else (the library's directory included).
    assert_eq!(
        try_open(&server, "read", &layout.outside.join("file")),
        REFUSED
    );
    assert_eq!(try_open(&server, "read", Path::new("/etc/shadow")), REFUSED);
    assert_eq!(
        try_open(&server, "write", &layout.readable.join("new")),
        REFUSED
    );
    assert_eq!(try_open(&server, "write", &layout.cwd.join("new")), REFUSED);
    let library_dir = sample_app("crashy").parent().unwrap().to_owned();
    assert_eq!(
        try_open(&server, "write", &library_dir.join("sandbox-probe")),
        REFUSED
    );
    assert!(!library_dir.join("sandbox-probe").exists());
    // And it still serves.
    assert_eq!(server.get("/pid").status, 200);
}

#[test]
fn sandbox_off_lets_the_same_requests_through() {
    let layout = layout();
    let server = sandboxed_crashy(&layout, "off");
    assert_eq!(
        try_open(&server, "read", &layout.outside.join("file")),
        "ok"
    );
    assert_eq!(
        try_open(&server, "write", &layout.readable.join("new")),
        "ok"
    );
}

#[test]
fn a_wsgi_app_serves_from_its_virtualenv_in_the_sandbox() {
    let server = wsgi_server(&examples_dir(), "flaskapp:app").start();
    let line = serving_line(&server);
    assert!(line.contains("sandbox: no_new_privs"), "{line}");
    let hello = server.get("/hello");
    assert_eq!(hello.status, 200, "{}\n{}", hello.text(), server.stderr());
    assert_eq!(status_field(only_worker(&server), "NoNewPrivs"), "1");
}

#[test]
fn seccomp_refuses_process_level_calls_with_eperm_and_the_app_serves() {
    let server = sample_server("crashy").args(["--seccomp"]).start();
    assert!(
        serving_line(&server).contains(", seccomp)"),
        "{}",
        server.stderr()
    );
    assert_eq!(server.get("/keyctl").text(), "errno 1\n");
    assert_eq!(server.get("/").text(), "crashy ok\n");
    let pid = only_worker(&server);
    assert_eq!(status_field(pid, "Seccomp"), "2");
    // Every thread of the worker, those started before the filter too.
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert!(status.contains("Seccomp:\t2"), "{status}");
    }
}

#[test]
fn without_seccomp_the_same_call_is_answered_by_the_kernel() {
    let server = sample_server("crashy").start();
    assert_ne!(server.get("/keyctl").text(), "errno 1\n");
    assert_eq!(status_field(only_worker(&server), "Seccomp"), "0");
}

/// The same refusals for a Python app, which reports the errno of its own `open`.
const PROBE_APP: &str = r#"
def app(environ, start_response):
    path = environ["QUERY_STRING"]
    try:
        open(path, "w" if environ["PATH_INFO"] == "/write" else "r").close()
        body = b"ok\n"
    except OSError as e:
        body = ("errno %d\n" % e.errno).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"#;

#[test]
fn a_wsgi_app_is_refused_what_it_was_not_given() {
    let layout = layout();
    std::fs::write(layout.cwd.join("probeapp.py"), PROBE_APP).unwrap();
    let server = wsgi_server(&layout.cwd, "probeapp:app").start();
    let line = serving_line(&server);
    if !line.contains("landlock ABI") || line.contains("not enforced") {
        eprintln!("skipped: this kernel has no Landlock ({line})");
        return;
    }
    let ask = |how: &str, path: &Path| {
        let resp = server.get(&format!("/{how}?{}", path.display()));
        assert_eq!(resp.status, 200, "{}", server.stderr());
        resp.text().trim().to_owned()
    };
    assert_eq!(ask("read", &layout.cwd.join("file")), "ok");
    assert_eq!(ask("read", &layout.outside.join("file")), REFUSED);
    assert_eq!(ask("read", Path::new("/etc/shadow")), REFUSED);
    assert_eq!(ask("write", &layout.cwd.join("new")), REFUSED);
    let library_dir = wsgi_support::wsgi_lib().parent().unwrap().to_owned();
    assert_eq!(ask("write", &library_dir.join("sandbox-probe")), REFUSED);
}

/// `webserver check` probes the app in the same sandbox: a file the app would be denied fails
/// the check as it would fail a worker (crashy's `/read` answers 500 when refused).
#[test]
fn check_probes_the_app_in_the_sandbox() {
    let check = |sandbox: &str| {
        std::process::Command::new(webserver_exe())
            .args([
                "check",
                "--sandbox",
                sandbox,
                "--probe",
                "/read?path=/etc/shadow",
            ])
            .arg(format!("{}:app", sample_app("crashy").display()))
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let sandboxed = check("on");
    let stdout = String::from_utf8_lossy(&sandboxed.stdout);
    assert!(
        stdout.contains("sandbox: no_new_privs, no capabilities"),
        "{stdout}"
    );
    if !stdout.contains("landlock ABI") || stdout.contains("not enforced") {
        eprintln!("skipped: this kernel has no Landlock ({stdout})");
        return;
    }
    assert_eq!(sandboxed.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("-> 500"), "{stdout}");
    let open = check("off");
    let stdout = String::from_utf8_lossy(&open.stdout);
    assert_eq!(open.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("sandbox: off"), "{stdout}");
}

/// A C app: the same refusals, and no raw socket (no CAP_NET_RAW left, even as root).
#[test]
fn a_c_app_is_refused_files_outside_its_paths_and_raw_sockets() {
    let layout = layout();
    let mut target = fixture("sandbox_probe").into_os_string();
    target.push(":app");
    let start = |sandbox: &str| {
        server(target.clone())
            .cwd(&layout.cwd)
            .args(["--sandbox", sandbox])
            .start()
    };
    let server = start("on");
    let ask = |server: &Server, what: &str| {
        let resp = server.get(what);
        assert_eq!(resp.status, 200, "{}", server.stderr());
        resp.text().trim().to_owned()
    };
    // Not a file of `layout`: the C library is built beside it (target/c-apps), and the
    // library's directory is readable.
    let outside = "/read?/etc/shadow";
    let library_dir = fixture("sandbox_probe").parent().unwrap().to_owned();
    let in_library_dir = format!("/write?{}", library_dir.join("sandbox-probe").display());
    assert_eq!(
        ask(
            &server,
            &format!("/read?{}", layout.cwd.join("file").display())
        ),
        "ok"
    );
    // EPERM: socket(2) checks the capability.
    assert_eq!(ask(&server, "/socket"), "errno 1");
    if serving_line(&server).contains("landlock ABI") {
        assert_eq!(ask(&server, outside), REFUSED);
        assert_eq!(ask(&server, &in_library_dir), REFUSED);
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // The same requests without the sandbox: the kernel lets root do all of it.
        let open = start("off");
        assert_eq!(ask(&open, "/socket"), "ok");
        assert_eq!(ask(&open, outside), "ok");
    }
}
