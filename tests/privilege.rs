//! Least privilege, end to end: `--user`/`--group` make the workers (and so the app) another
//! user, with that user's groups, while the master keeps root for what it does for them; hot
//! swaps (HUP and `--reload`), USR1's log reopen and unix socket listeners keep working; a master whose workers stay
//! root says so once.
//!
//! Changing identity needs root (CI runs as root): those tests say they were skipped otherwise.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use common::*;

/// nobody's uid and gid on Debian and most Linux distributions.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: changing the workers' user needs root (CI runs as root)");
    }
    root
}

/// A `Name:` line of /proc/PID/status, its fields split.
fn status_line(pid: u32, name: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
    line.split_whitespace().map(str::to_owned).collect()
}

/// The master's workers, once there are `count`.
fn workers(server: &Server, count: usize) -> Vec<u32> {
    poll(Duration::from_secs(10), "the workers", || {
        let pids = child_pids(server.pid());
        (pids.len() == count).then_some(pids)
    })
}

fn assert_runs_as(pid: u32, uid: u32, gid: u32) {
    let id = |n: u32| vec![n.to_string(); 4];
    assert_eq!(
        status_line(pid, "Uid"),
        id(uid),
        "real, effective, saved, fs uid"
    );
    assert_eq!(
        status_line(pid, "Gid"),
        id(gid),
        "real, effective, saved, fs gid"
    );
}

#[test]
fn workers_run_as_the_user_with_its_groups_and_the_master_stays_root() {
    if !is_root() {
        return;
    }
    let server = sample_server("hello")
        .args(["-w", "2", "--user", "nobody"])
        .start();
    assert_eq!(server.get("/").status, 200);
    for pid in workers(&server, 2) {
        assert_runs_as(pid, NOBODY, NOBODY);
        // Root's supplementary groups are gone: only nobody's own (nogroup).
        assert_eq!(status_line(pid, "Groups"), vec![NOBODY.to_string()]);
        // Leaving root clears every capability.
        assert_eq!(status_line(pid, "CapEff"), vec!["0000000000000000"]);
    }
    assert_runs_as(server.pid(), 0, 0);
    assert!(
        !server.stderr().contains("run as root"),
        "{}",
        server.stderr()
    );
}

/// A worker that became another user still dies with its master: a credential change clears the
/// parent-death signal the master gave it, so it must set it again (a master killed with -9
/// otherwise leaves its workers serving, as orphans, with the listeners).
#[test]
fn workers_run_as_the_user_die_with_a_master_killed_with_sigkill() {
    if !is_root() {
        return;
    }
    let mut server = sample_server("hello")
        .args(["-w", "2", "--user", "nobody"])
        .start();
    assert_eq!(server.get("/").status, 200);
    let pids = workers(&server, 2);
    server.signal(libc::SIGKILL);
    server
        .wait_exit(Duration::from_secs(5))
        .expect("the master dies");
    for pid in pids {
        poll(Duration::from_secs(5), "the orphaned worker to end", || {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            // Gone, or a zombie its new parent has yet to reap.
            state
                .is_none_or(|stat| stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z')))
                .then_some(())
        });
    }
}

#[test]
fn numeric_user_and_group_from_the_environment() {
    if !is_root() {
        return;
    }
    let server = sample_server("hello")
        .env("WEBSERVER_USER", "65534")
        .env("WEBSERVER_GROUP", "0")
        .start();
    assert_eq!(server.get("/").status, 200);
    let pid = workers(&server, 1)[0];
    assert_runs_as(pid, NOBODY, 0);
}

#[test]
fn workers_left_as_root_get_one_warning_naming_user() {
    if !is_root() {
        return;
    }
    let server = sample_server("hello").args(["-w", "2"]).start();
    assert_eq!(server.get("/").status, 200);
    let is_warning = |l: &str| l.contains(" WARN ") && l.contains("--user");
    // The log is read by another thread, which may lag the first answer.
    server.wait_for_log(Duration::from_secs(5), is_warning);
    // Both workers are serving: a second warning would have come with their start.
    workers(&server, 2);
    thread::sleep(Duration::from_millis(200));
    let log = server.stderr();
    let warnings: Vec<&str> = log.lines().filter(|l| is_warning(l)).collect();
    assert_eq!(warnings.len(), 1, "{log}");
}

#[test]
fn unknown_user_or_group_is_refused_at_startup_in_one_line() {
    for (flags, says) in [
        (&["--user", "no-such-user-xyz"][..], "no such user"),
        (
            &["--user", "root", "--group", "no-such-group-xyz"],
            "no such group",
        ),
    ] {
        let exited = sample_server("hello").args(flags).run_to_exit();
        assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
        assert!(exited.stderr.contains(says), "{}", exited.stderr);
    }
}

#[test]
fn reload_swaps_to_a_new_library_run_as_the_user() {
    if !is_root() {
        return;
    }
    let dir = fresh_dir("privilege-reload");
    let live = dir.join("libapp.so");
    swap::install(&sample_app("hello"), &live);
    let pid_file = dir.join("ws.pid");
    let mut target = live.clone().into_os_string();
    target.push(":app");
    let server = server(target)
        .args(["--user", "nobody", "--reload", "--pid"])
        .args([pid_file.as_os_str()])
        .start();
    wait_first_ready(&pid_file);
    swap::install(&sample_app("crashy"), &live);
    let (state, generation, rest) = swap::wait_settled(&pid_file, 1);
    assert_eq!((state.as_str(), generation), ("ready", 2), "{rest}");
    let mut conn = server.connect();
    assert_runs_as(pid_of(&mut conn), NOBODY, NOBODY);
}

#[test]
fn hot_swap_starts_the_new_generation_as_the_user_too() {
    if !is_root() {
        return;
    }
    let dir = fresh_dir("privilege-swap");
    let pid_file = dir.join("ws.pid");
    let server = sample_server("crashy")
        .args(["--user", "nobody", "--pid"])
        .args([pid_file.as_os_str()])
        .start();
    wait_first_ready(&pid_file);
    let before = workers(&server, 1)[0];
    server.signal(libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    let mut conn = server.connect();
    let after = pid_of(&mut conn);
    assert_ne!(after, before, "a new worker serves");
    assert_runs_as(after, NOBODY, NOBODY);
}

/// The directory is root's: without the master handing the fresh files to nobody, the workers
/// could not reopen them after the rotation.
#[test]
fn usr1_reopen_works_for_workers_that_are_not_root() {
    if !is_root() {
        return;
    }
    let dir = fresh_dir("privilege-logs");
    let (access, errors) = (dir.join("access.log"), dir.join("error.log"));
    let server = sample_server("hello")
        .args(["--user", "nobody", "--access-logfile"])
        .args([access.as_os_str()])
        .args(["--error-logfile".as_ref(), errors.as_os_str()])
        .args(["--access-logformat", "%(U)s %(p)s"])
        .start();
    assert_eq!(server.get("/before").status, 200);
    poll(Duration::from_secs(5), "the first line", || {
        read_to_string(&access).contains("/before").then_some(())
    });
    std::fs::rename(&access, dir.join("access.log.1")).unwrap();
    std::fs::rename(&errors, dir.join("error.log.1")).unwrap();
    server.signal(libc::SIGUSR1);
    poll(Duration::from_secs(5), "a line in the new file", || {
        // Each request may race the reopen: ask until one lands in the new file.
        assert_eq!(server.get("/after").status, 200);
        read_to_string(&access).contains("/after").then_some(())
    });
    for file in [&access, &errors] {
        assert_eq!(std::fs::metadata(file).unwrap().uid(), NOBODY, "{file:?}");
    }
    let log = read_to_string(&errors) + &read_to_string(&dir.join("error.log.1"));
    assert!(!log.contains("ERROR"), "{log}");
}

fn read_to_string(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_unix_socket_listener_serves_and_is_the_users() {
    if !is_root() {
        return;
    }
    let dir = fresh_dir("privilege-unix");
    let path = dir.join("ws.sock");
    let server = sample_server("hello")
        .no_default_bind()
        .args(["--user", "nobody", "-b"])
        .args([format!("unix:{}", path.display())])
        .start();
    let mut stream = UnixStream::connect(&path).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    assert_runs_as(workers(&server, 1)[0], NOBODY, NOBODY);
}

/// A master that is not root may name itself (nothing changes) but no other user.
#[test]
fn a_master_that_is_not_root_may_not_name_another_user() {
    if !is_root() {
        return;
    }
    let as_nobody = |user: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(webserver_exe())
            .args(["--user", user, "-b", "127.0.0.1:0"])
            .arg(format!("{}:app", sample_app("hello").display()))
            .env("RUST_LOG", "off")
            .output()
    };
    let Ok(refused) = as_nobody("root") else {
        eprintln!("skipped: no setpriv (util-linux)");
        return;
    };
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("only a master started as root"), "{stderr}");
}
