//! What a gunicorn operator does from habit (issue 17 items 9 and 13), end to end with the real
//! binary: signals the master does not act on are logged and ignored, never fatal.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn usr2_and_winch_are_logged_and_ignored_and_hup_still_swaps() {
    let dir = fresh_dir("habit-signals");
    let pid_file = dir.join("ws.pid");
    let mut server = sample_server("hello")
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .start();
    let master = server.pid() as i32;
    poll(Duration::from_secs(10), "generation 1 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 1)
    });

    kill(master, libc::SIGUSR2);
    server
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("USR2 (binary upgrade) is not supported yet; use HUP to swap the app")
        })
        .expect("a log line for USR2");
    kill(master, libc::SIGWINCH);
    server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("SIGWINCH ignored"))
        .expect("a log line for WINCH");
    // Others whose default action would end the master.
    for signal in [libc::SIGALRM, libc::SIGVTALRM, libc::SIGPROF, libc::SIGIO] {
        kill(master, signal);
    }
    server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("SIGIO ignored"))
        .expect("a log line for IO");

    assert!(server.is_running(), "{}", server.stderr());
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
    // HUP still swaps.
    kill(master, libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
    assert!(server.is_running());
}
