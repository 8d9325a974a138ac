//! What an operator meets around hot swaps (issue 9, items 3, 4 and 11), end to end:
//!
//! - a generation's library lives in the master (a sealed in-memory file handed to each worker),
//!   so a temporary directory emptied under the server (a tmp cleaner, another master) cannot
//!   stop a replacement worker from loading it;
//! - swaps leave nothing behind: no file in `$TMPDIR`, and the master holds the library of the
//!   live and draining generations only;
//! - `webserver check --probe PATH --expect STATUSES` and `scripts/hot-swap.sh` passing them on.

mod common;

use std::path::Path;
use std::time::Duration;

use common::swap::*;
use common::*;

/// How long a replacement worker may take to answer after its predecessor was killed.
const REPLACEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a drained generation's worker may take to exit and be forgotten by the master.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything in `dir` (names), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {dir:?}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// How many libraries in memory (`memfd:` links) process `pid` holds open; a generation's
/// source pin is an in-memory file too, and goes with its library.
fn memfds_held(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            target.starts_with("/memfd:") && !target.starts_with("/memfd:webserver-pin-")
        })
        .count()
}

/// Waits until the master holds exactly one library (the live generation's).
fn wait_one_library_held(master: u32, context: &str) {
    poll(DRAIN_TIMEOUT, context, || {
        (memfds_held(master) == 1).then_some(())
    });
}

#[test]
fn an_emptied_tmpdir_does_not_stop_a_replacement_worker() {
    let tmp = fresh_dir("lost-tmpdir");
    let dir = fresh_dir("lost-copy");
    let tmp_env = tmp.to_str().unwrap();
    let (server, _live, _pid_file) = live_server_env(
        &dir,
        &sample_app("crashy"),
        &["-w", "1"],
        &[("TMPDIR", tmp_env)],
    );
    let first: i32 = fresh_get(&server, "/pid")
        .expect("the first worker serves")
        .text()
        .trim()
        .parse()
        .unwrap();

    // A tmp cleaner (or another master's exit) empties the temporary directory.
    for name in entries(&tmp) {
        let path = tmp.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    kill(first, libc::SIGKILL);

    let resp = poll(REPLACEMENT_TIMEOUT, "a replacement worker to serve", || {
        fresh_get(&server, "/pid").ok().filter(|r| r.status == 200)
    });
    let second: i32 = resp.text().trim().parse().unwrap();
    assert_ne!(second, first, "the killed worker answered");
    assert!(
        !server.stderr().contains("/proc/self/fd"),
        "a message names the descriptor instead of the user's file: {}",
        server.stderr()
    );
}

#[test]
fn distinct_swaps_leave_nothing_behind() {
    let tmp = fresh_dir("swaps-tmpdir");
    let dir = fresh_dir("swaps-leftovers");
    let tmp_env = tmp.to_str().unwrap();
    let pyramidish = std::fs::read(sample_app("pyramidish")).unwrap();
    let (server, live, pid_file) = live_server_env(
        &dir,
        &sample_app("pyramidish"),
        &["-w", "1", "--graceful-timeout", "2"],
        &[("TMPDIR", tmp_env)],
    );
    let master = server.pid();
    assert_eq!(entries(&tmp), Vec::<String>::new(), "after the first boot");
    wait_one_library_held(master, "the first generation's library only");

    for version in 1..=4 {
        // Trailing bytes make a distinct version (another hash) of the same library.
        let mut bytes = pyramidish.clone();
        bytes.resize(pyramidish.len() + version, 0);
        install_bytes(&bytes, &live);
        let (state, generation, message) = hup(&pid_file);
        assert_eq!(state, "ready", "swap {version}: {message}");
        assert_eq!(entries(&tmp), Vec::<String>::new(), "swap {version}");
        let held = memfds_held(master);
        assert!(
            held <= 2,
            "generation {generation}: the master holds {held} libraries (live + draining at most)"
        );
        wait_one_library_held(master, "the drained generation's library to be closed");
        let resp = fresh_get(&server, "/hello").expect("served after the swap");
        assert_eq!(resp.status, 200, "{resp:?}");
    }

    // A refused library: the message names the user's file, and the failed generation's
    // library is closed once its workers are gone.
    install(&fixture("no_app_symbol"), &live);
    let (state, _, message) = hup(&pid_file);
    assert_eq!(state, "failed", "{message}");
    assert!(message.contains("symbol 'app' not found"), "{message}");
    assert!(
        message.contains(&*live.to_string_lossy()),
        "the message does not name {live:?}: {message}"
    );
    assert!(!message.contains("/proc/self/fd"), "{message}");
    wait_one_library_held(master, "the failed generation's library to be closed");
    assert_eq!(entries(&tmp), Vec::<String>::new(), "after a failed swap");
}

#[test]
fn check_probes_the_path_and_statuses_it_is_given() {
    // panicky answers `/ok` with 200 and panics (500) on `/`.
    let panicky = sample_app("panicky");
    let default = run_check(&panicky);
    assert_eq!(default.status.code(), Some(1), "{default:?}");
    assert!(default.stderr.contains("GET / "), "{default:?}");
    assert!(default.stderr.contains("500"), "{default:?}");

    for expect in ["200", "2xx", "204,200"] {
        let probed = run_check_args(&panicky, &["--probe", "/ok", "--expect", expect]);
        assert_eq!(
            probed.status.code(),
            Some(0),
            "--expect {expect}: {probed:?}"
        );
        assert!(
            probed.stdout.contains("probe:   GET /ok -> 200"),
            "{probed:?}"
        );
    }

    // pyramidish answers an unknown path with 404: not a server error, so the default passes
    // it, but a caller that expects 200 does not.
    let pyramidish = sample_app("pyramidish");
    let lenient = run_check_args(&pyramidish, &["--probe", "/no-such-page"]);
    assert_eq!(lenient.status.code(), Some(0), "{lenient:?}");
    assert!(lenient.stdout.contains("-> 404"), "{lenient:?}");
    let strict = run_check_args(
        &pyramidish,
        &["--probe", "/no-such-page", "--expect", "200"],
    );
    assert_eq!(strict.status.code(), Some(1), "{strict:?}");
    let errors: Vec<&str> = strict
        .stderr
        .lines()
        .filter(|l| l.starts_with("webserver: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{strict:?}");
    for needle in ["GET /no-such-page", "404", "200"] {
        assert!(errors[0].contains(needle), "lacks {needle:?}: {strict:?}");
    }
    let query = run_check_args(&pyramidish, &["--probe", "/hello?x=1", "--expect", "200"]);
    assert_eq!(query.status.code(), Some(0), "{query:?}");

    // Malformed options are usage errors, before anything is loaded.
    for args in [
        &["--probe", "healthz"][..],
        &["--expect", "2x0"],
        &["--expect", "600"],
        &["--expect", ""],
    ] {
        let refused = run_check_args(&panicky, args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {refused:?}");
    }
}

#[test]
fn the_hot_swap_script_passes_the_probe_on() {
    let dir = fresh_dir("script-probe");
    let panicky = sample_app("panicky");
    let (server, live, pid_file) = live_server(&dir, &panicky, &["-w", "1"]);

    // `/` is a server error by design: the default check refuses the library.
    let refused = run_script(&panicky, &pid_file, &live);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("failed the check"), "{refused:?}");
    assert_eq!(read_status(&pid_file).unwrap().1, 1, "a swap was asked");

    let probe = [("HOT_SWAP_PROBE", "/ok"), ("HOT_SWAP_EXPECT", "200")];
    let swapped = run_script_env(&panicky, &pid_file, &live, None, &probe);
    assert_eq!(swapped.status.code(), Some(0), "{swapped:?}");
    assert!(swapped.stdout.contains("GET /ok -> 200"), "{swapped:?}");
    assert!(swapped.stdout.contains("ready 2"), "{swapped:?}");
    let resp = fresh_get(&server, "/ok").expect("served after the swap");
    assert_eq!(resp.status, 200, "{resp:?}");
}
