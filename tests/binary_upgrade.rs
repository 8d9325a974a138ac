//! `USR2`: the master upgrades the server binary itself without dropping a connection (issue 23
//! item 4). The server runs from a copy of the `webserver` binary in a temp directory, so a test
//! can put another build at that path — here one that exits at start.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::load::Load;
use common::swap::{install, install_bytes, run_script};
use common::*;

/// How long an upgrade may take: the new master boots its workers, the old one drains.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);

/// A server of a copy of `hello` at `live`, run from a copy of the binary at `exe`.
struct Upgradable {
    server: Server,
    exe: PathBuf,
    live: PathBuf,
    pid_file: PathBuf,
    stats: PathBuf,
    /// A unix listener beside the TCP one.
    unix: PathBuf,
    /// `--config`: `workers = 2`.
    config: PathBuf,
    /// The stand-in for systemd's `NOTIFY_SOCKET`.
    notify: UnixDatagram,
}

/// An [`Upgradable`] server in a fresh directory, with `--pid`, a unix `--stats` socket and
/// `NOTIFY_SOCKET`.
fn upgradable_server(tag: &str) -> Upgradable {
    upgradable_server_with(tag, &[])
}

/// [`upgradable_server`] with more arguments.
fn upgradable_server_with(tag: &str, more: &[&str]) -> Upgradable {
    let dir = fresh_dir(tag);
    let live = dir.join("live.so");
    install(&sample_app("hello"), &live);
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let exe = dir.join("webserver");
    std::fs::copy(webserver_exe(), &exe).unwrap();
    wait_executable(&exe, Some(0));
    let pid_file = dir.join("ws.pid");
    let stats = dir.join("stats.sock");
    let unix = dir.join("app.sock");
    let config = dir.join("ws.toml");
    std::fs::write(&config, "workers = 2\n").unwrap();
    let server = server(format!("{}:app", live.display()))
        .exe(&exe)
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .args([
            format!("--stats=unix:{}", stats.display()),
            format!("--config={}", config.display()),
            format!("--bind=unix:{}", unix.display()),
        ])
        .args(more.iter().copied())
        .env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .start();
    wait_first_ready(&pid_file);
    Upgradable {
        server,
        exe,
        live,
        pid_file,
        stats,
        unix,
        config,
        notify,
    }
}

/// `GET path` with `Connection: close` on the unix socket `socket`: the whole answer.
fn unix_get(socket: &Path, path: &str) -> Result<String, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    Ok(text)
}

/// The status of `GET /` on the unix listener.
fn unix_status(socket: &Path) -> Result<u16, String> {
    let text = unix_get(socket, "/")?;
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))
}

/// Every notification received so far.
fn notifications(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    seen
}

/// Waits until `exe --version` runs and exits with `code`: a file just written may be busy
/// for a moment (`ETXTBSY`) while a process forked meanwhile by another test still holds it open.
fn wait_executable(exe: &Path, code: Option<i32>) {
    poll(Duration::from_secs(10), "the executable to run", || {
        std::process::Command::new(exe)
            .arg("--version")
            .output()
            .ok()
            .filter(|out| out.status.code() == code)
    });
}

/// The `master_pid` the stats socket reports.
fn stats_master_pid(socket: &Path) -> Result<i32, String> {
    let text = unix_get(socket, "/stats")?;
    let rest = text
        .split_once("\"master_pid\":")
        .ok_or_else(|| format!("no master_pid in {text:?}"))?
        .1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().map_err(|e| format!("{e}: {text:?}"))
}

fn is_alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn usr2_under_load_hands_everything_to_a_new_master_and_loses_no_request() {
    let Upgradable {
        mut server,
        live,
        pid_file,
        stats,
        notify,
        unix,
        config,
        ..
    } = upgradable_server("upgrade-ok");
    // The new master reads --config again.
    std::fs::write(&config, "workers = 3\n").unwrap();
    let old = server.pid() as i32;
    assert_eq!(stats_master_pid(&stats), Ok(old));
    let load = Load::start(server.addr(), 4);
    load.wait_progress(200);

    kill(old, libc::SIGUSR2);
    let new = poll(UPGRADE_TIMEOUT, "the pid file to name a new master", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .filter(|&pid| pid != old)
    });
    let exited = server.wait_exit(UPGRADE_TIMEOUT);
    load.wait_progress(200);
    let (ok, failures, _) = load.finish();
    // Stop the new master whatever is asserted next: it is no child of this test.
    let stop_new = || {
        if is_alive(new) {
            kill(new, libc::SIGTERM);
            poll(UPGRADE_TIMEOUT, "the new master to stop", || {
                (!is_alive(new)).then_some(())
            });
        }
    };
    let stderr = server.stderr();
    let checks = || {
        assert!(
            exited.is_some_and(|status| status.success()),
            "the old master did not exit cleanly: {exited:?}"
        );
        assert!(
            failures.is_empty(),
            "{ok} requests served, failed: {failures:#?}"
        );
        assert_eq!(master_pid(&pid_file), new);
        assert!(stderr.contains(&format!(
            "binary upgrade: the new master (pid {new}) serves; this one (pid {old}) drains its workers and exits"
        )));
        assert_eq!(stats_master_pid(&stats), Ok(new), "the stats socket");
        assert!(
            stderr.contains("generation 1 ready: 3 worker(s)"),
            "the new master runs with the --config of now"
        );
        assert_eq!(
            unix_status(&unix),
            Ok(200),
            "the unix listener, left to the new master"
        );
        // systemd hears of one service: the new master's pid, and no stop from the old one.
        let told = notifications(&notify);
        let main_pid = format!("MAINPID={new}");
        assert!(
            told.iter().any(|m| m.lines().any(|l| l == main_pid)),
            "{told:?}"
        );
        assert!(!told.iter().any(|m| m.contains("STOPPING=1")), "{told:?}");
        assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
        // FILE.status is the new master's, and the hot-swap script works with it.
        assert_eq!(
            read_status(&pid_file).map(|(s, g, _)| (s, g)),
            Some(("ready".into(), 1))
        );
        let swapped = run_script(&sample_app("hello"), &pid_file, &live);
        assert!(
            swapped.status.success(),
            "{}{}",
            swapped.stdout,
            swapped.stderr
        );
        assert_eq!(
            read_status(&pid_file).map(|(s, g, _)| (s, g)),
            Some(("ready".into(), 2))
        );
    };
    eprintln!(
        "upgrade under load: {ok} requests served, {} failed",
        failures.len()
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(checks));
    stop_new();
    if let Err(panic) = outcome {
        eprintln!("{stderr}");
        std::panic::resume_unwind(panic);
    }
    // The new master removed the files it took over when it stopped.
    assert!(!pid_file.exists() && !stats.exists() && !unix.exists());
}

/// USR2 under load with a new master that will not serve: one `binary upgrade failed` line
/// containing `why`, no failed request, and the old master still in charge of everything — the
/// pid file, FILE.status, the stats socket and the unix listener's file. Returns the line.
fn upgrade_fails_under_load(up: &mut Upgradable, why: &str) -> String {
    let old = up.server.pid() as i32;
    let load = Load::start(up.server.addr(), 4);
    load.wait_progress(100);

    kill(old, libc::SIGUSR2);
    let line = up
        .server
        .wait_for_log(UPGRADE_TIMEOUT, |l| l.contains("binary upgrade failed"))
        .expect("a line saying the upgrade failed");
    assert!(
        line.contains("the new master (pid ")
            && line.contains(why)
            && line.ends_with("; still serving with this master"),
        "{line}"
    );
    load.wait_progress(100);
    let (ok, failures, _) = load.finish();
    eprintln!(
        "failed upgrade under load: {ok} requests served, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{ok} served, failed: {failures:#?}");
    assert!(up.server.is_running(), "{}", up.server.stderr());
    assert_eq!(master_pid(&up.pid_file), old);
    assert_eq!(
        read_status(&up.pid_file).map(|(s, g, _)| (s, g)),
        Some(("ready".into(), 1))
    );
    assert_eq!(stats_master_pid(&up.stats), Ok(old));
    assert_eq!(unix_status(&up.unix), Ok(200), "the unix listener's file");
    assert_eq!(fresh_get(&up.server, "/").unwrap().status, 200);
    assert_eq!(
        up.server
            .stderr()
            .lines()
            .filter(|l| l.contains("binary upgrade failed"))
            .count(),
        1
    );
    line
}

/// Puts `script` (a shell script) where the server's binary was: removed first, as the running
/// one is busy.
fn replace_binary(exe: &Path, script: &str, code: Option<i32>) {
    std::fs::remove_file(exe).unwrap();
    std::fs::write(exe, script).unwrap();
    std::fs::set_permissions(exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_executable(exe, code);
}

#[test]
fn a_new_binary_that_exits_at_start_leaves_the_old_master_serving() {
    let mut up = upgradable_server("upgrade-fails");
    replace_binary(
        &up.exe,
        "#!/bin/sh\necho 'broken build' >&2\nexit 1\n",
        Some(1),
    );
    upgrade_fails_under_load(&mut up, ") exited with status 1 before it served");
}

/// A new binary that starts but never serves (it hangs) is stopped after `--upgrade-timeout`,
/// and the old master keeps serving.
#[test]
fn a_new_binary_not_serving_in_time_is_stopped_and_the_old_master_serves_on() {
    let mut up = upgradable_server_with("upgrade-slow", &["--upgrade-timeout", "2"]);
    let pid_out = up.exe.with_extension("pid");
    // `--version` answers (the executable check), anything else hangs, as a master that never
    // gets its workers ready would.
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho $$ > {}\nexec sleep 600\n",
        pid_out.display()
    );
    replace_binary(&up.exe, &script, Some(0));
    let line = upgrade_fails_under_load(
        &mut up,
        "was not serving after 2s (--upgrade-timeout); it was stopped",
    );
    let hung: i32 = std::fs::read_to_string(&pid_out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(line.contains(&format!("(pid {hung})")), "{line}");
    poll(Duration::from_secs(5), "the hung master to be gone", || {
        (!is_alive(hung)).then_some(())
    });
}

/// A new binary that starts, takes the sockets over and then cannot serve — its first
/// generation fails to boot, because the library at the live path is broken by now — exits;
/// the old master, whose workers loaded the library long ago, keeps serving, and the new one
/// left the files it was handed in place.
#[test]
fn a_new_master_that_starts_but_cannot_serve_leaves_the_old_master_serving() {
    let mut up = upgradable_server("upgrade-no-serve");
    install_bytes(b"not a library\n", &up.live);
    upgrade_fails_under_load(&mut up, ") exited with status 1 before it served");
    // The new master's own error, one whole line: its first generation could not load the
    // library. (It was split by a worker's line written into the middle of it, about one run
    // in eight with the other upgrade tests in parallel, while `main` wrote it in three pieces.)
    let stderr = up.server.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("webserver: error: cannot load ") && l.ends_with(")")),
        "{stderr}"
    );
}
