//! `--canary`: a hot swap tries the new library on one worker beside the old generation's two,
//! for a window, and judges it by its answers there (`src/supervisor/canary.rs`). Built-in bad
//! versions, under a steady load of fresh connections: `panicky` answers 500 to the one request
//! in ten that asks for `/boom` (`hello`, the old version, answers it 200), `c_timer` takes 50 ms
//! where `hello` takes well under one, `crashy` segfaults on `/segv`. Each canary is rolled back — the status file, `/stats`
//! and the log say why with both generations' figures — and no request fails beyond the
//! canary's own 500s; an unchanged `hello` passes and takes over.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::swap::{hup, install, live_server, run_script_env, wait_settled};
use common::*;

/// Requests made by a [`Load`]: answers by status, and failures (no complete answer).
#[derive(Debug, Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    boom_requests: u64,
    failures: Vec<String>,
}

impl Tally {
    /// Failures other than requests for `path`.
    fn failures_but(&self, path: &str) -> Vec<&String> {
        self.failures
            .iter()
            .filter(|f| !f.starts_with(&format!("{path}: ")))
            .collect()
    }
}

/// `clients` clients asking for `paths` in turn, each request on a new connection, until
/// finished.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize, paths: &'static [&'static str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut tally = Tally::default();
                    for path in paths.iter().cycle() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let answer = Conn::try_connect(addr).and_then(|mut conn| {
                            conn.try_send(format!(
                                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                            ))?;
                            conn.try_read_response()
                        });
                        match answer {
                            Ok(response) => {
                                *tally.statuses.entry(response.status).or_default() += 1;
                                tally.boom_requests += u64::from(*path == "/boom");
                            }
                            Err(e) => tally.failures.push(format!("{path}: {e}")),
                        }
                    }
                    tally
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for thread in self.threads {
            let tally = thread.join().expect("a load thread");
            for (status, n) in tally.statuses {
                *all.statuses.entry(status).or_default() += n;
            }
            all.boom_requests += tally.boom_requests;
            all.failures.extend(tally.failures);
        }
        all
    }
}

/// `hello` on two workers with a one-worker canary judged after 3 s, `--stats` on a socket.
fn canary_server(tag: &str) -> (Server, PathBuf, PathBuf, PathBuf) {
    let dir = fresh_dir(tag);
    let socket = dir.join("stats.sock");
    let stats = format!("--stats=unix:{}", socket.display());
    let (server, live, pid_file) = live_server(
        &dir,
        &sample_app("hello"),
        &["-w", "2", "--canary", "1", "--canary-window", "3", &stats],
    );
    (server, live, pid_file, socket)
}

fn stats_json(socket: &Path) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(socket)
        .arg("http://stats/stats")
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).expect("JSON from /stats")
}

/// Swaps `live` to `new` under `paths` as load; the swap's status line and the load's tally.
fn swap_under_load(
    server: &Server,
    live: &Path,
    pid_file: &Path,
    new: &Path,
    (clients, paths): (usize, &'static [&'static str]),
) -> ((String, u64, String), Tally) {
    let load = Load::start(server.addr(), clients, paths);
    std::thread::sleep(Duration::from_millis(300));
    install(new, live);
    let outcome = hup(pid_file);
    // Go on a little after the outcome: the old generation serves everything again.
    std::thread::sleep(Duration::from_millis(300));
    (outcome, load.finish())
}

fn assert_rolled_back(server: &Server, socket: &Path, why: &str, threshold: &str) {
    assert!(
        why.starts_with(&format!("canary failed: {threshold}")),
        "{why}"
    );
    assert!(
        why.contains("generation 2: ") && why.contains("generation 1: "),
        "both generations' figures: {why}"
    );
    let line = server
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("hot swap failed: canary failed")
        })
        .unwrap_or_else(|| panic!("no rollback line:\n{}", server.stderr()));
    assert!(line.contains("generation 1 keeps serving"), "{line}");
    let json = stats_json(socket);
    assert_eq!(json["generation"], 1, "{json:#}");
    assert_eq!(json["swaps"]["failed"], 1, "{json:#}");
    assert!(
        json["swaps"]["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("canary failed"),
        "{json:#}"
    );
    // Generation 2's canary drains and exits; generation 1 keeps its two workers.
    poll(Duration::from_secs(10), "only generation 1 left", || {
        let json = stats_json(socket);
        let workers = json["workers"].as_array().unwrap().clone();
        (workers.len() == 2 && workers.iter().all(|w| w["generation"] == 1)).then_some(())
    });
}

#[test]
fn a_canary_answering_500_to_one_request_in_ten_is_rolled_back() {
    let (server, live, pid_file, socket) = canary_server("canary-5xx");
    const PATHS: &[&str] = &[
        "/ok", "/ok", "/ok", "/ok", "/boom", "/ok", "/ok", "/ok", "/ok", "/ok",
    ];
    let ((state, generation, why), tally) = swap_under_load(
        &server,
        &live,
        &pid_file,
        &sample_app("panicky"),
        (2, PATHS),
    );
    assert_eq!((state.as_str(), generation), ("failed", 2), "{why}");
    assert_rolled_back(&server, &socket, &why, "5xx ");
    assert!(tally.failures.is_empty(), "{tally:?}");
    let bad = tally.statuses.get(&500).copied().unwrap_or(0);
    assert!(bad > 0, "the canary answered some: {tally:?}");
    assert!(bad <= tally.boom_requests, "only /boom fails: {tally:?}");
    assert_eq!(
        tally.statuses.keys().copied().collect::<Vec<_>>(),
        [200, 500],
        "{tally:?}"
    );
}

#[test]
fn a_canary_50_ms_slower_is_rolled_back() {
    let (server, live, pid_file, socket) = canary_server("canary-p99");
    let ((state, generation, why), tally) = swap_under_load(
        &server,
        &live,
        &pid_file,
        &sample_app("c_timer"),
        (2, &["/wait?ms=50"]),
    );
    assert_eq!((state.as_str(), generation), ("failed", 2), "{why}");
    assert_rolled_back(&server, &socket, &why, "p99 ");
    assert!(tally.failures.is_empty(), "{tally:?}");
    assert_eq!(
        tally.statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "{tally:?}"
    );
}

#[test]
fn a_good_canary_passes_and_takes_over() {
    let (server, live, pid_file, socket) = canary_server("canary-good");
    let ((state, generation, why), tally) = swap_under_load(
        &server,
        &live,
        &pid_file,
        &sample_app("hello"),
        (2, &["/", "/x"]),
    );
    assert_eq!((state.as_str(), generation), ("ready", 2), "{why}");
    assert!(tally.failures.is_empty(), "{tally:?}");
    assert_eq!(
        tally.statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "{tally:?}"
    );
    assert!(
        server.stderr().contains("generation 2: canary passed"),
        "{}",
        server.stderr()
    );
    poll(
        Duration::from_secs(10),
        "two workers of generation 2",
        || {
            let json = stats_json(&socket);
            let workers = json["workers"].as_array().unwrap().clone();
            (workers.len() == 2 && workers.iter().all(|w| w["generation"] == 2)).then_some(())
        },
    );
}

#[test]
fn a_canary_needs_the_statistics_it_is_judged_by() {
    let exited = sample_server("hello").args(["--canary", "1"]).run_to_exit();
    assert_eq!(exited.status.code(), Some(2), "{exited:?}");
    assert!(exited.stderr.contains("--stats"), "{}", exited.stderr);
}

/// `scripts/hot-swap.sh` waits out the window the status line announces (`canary G HASH SECS`)
/// beyond its own timeout, exits 1 with the rollback's reason and puts the previous library
/// back; a good canary exits 0.
#[test]
fn the_hot_swap_script_waits_for_the_verdict_and_fails_on_a_rollback() {
    let (server, live, pid_file, _socket) = canary_server("canary-script");
    let load = Load::start(server.addr(), 2, &["/ok", "/ok", "/ok", "/ok", "/boom"]);
    // Shorter than the window: only the announced window lets the script see the verdict.
    // panicky's health check is /ok (its / panics).
    let env = [("HOT_SWAP_TIMEOUT", "2"), ("HOT_SWAP_PROBE", "/ok")];
    let serving = std::fs::read(&live).unwrap();
    let refused = run_script_env(&sample_app("panicky"), &pid_file, &live, None, &env);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stdout.contains("judged after 3s"), "{refused:?}");
    assert!(
        refused.stderr.contains("failed 2 canary failed: 5xx"),
        "{refused:?}"
    );
    assert!(
        std::fs::read(&live).unwrap() == serving,
        "the previous library is back"
    );
    let good = run_script_env(&sample_app("hello"), &pid_file, &live, None, &env);
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    assert!(good.stdout.contains("ready 3"), "{good:?}");
    let tally = load.finish();
    assert!(tally.failures.is_empty(), "{tally:?}");
}

/// A canary whose worker dies while serving (crashy segfaults on `/segv`, which `hello` answers
/// 200) fails at once, before its window ends; only requests for `/segv` fail.
#[test]
fn a_canary_that_crashes_is_rolled_back_at_once() {
    let (server, live, pid_file, socket) = canary_server("canary-crash");
    const PATHS: &[&str] = &[
        "/pid", "/pid", "/pid", "/pid", "/pid", "/pid", "/pid", "/pid", "/pid", "/segv",
    ];
    // One client: the request for /segv is the only one in flight when the canary dies.
    let ((state, generation, why), tally) =
        swap_under_load(&server, &live, &pid_file, &sample_app("crashy"), (1, PATHS));
    assert_eq!((state.as_str(), generation), ("failed", 2), "{why}");
    assert!(why.starts_with("canary failed: worker "), "{why}");
    assert!(why.contains("SIGSEGV"), "{why}");
    assert!(tally.failures_but("/segv").is_empty(), "{tally:?}");
    let json = stats_json(&socket);
    assert_eq!(json["generation"], 1, "{json:#}");
    assert!(json["crashes"].as_u64().unwrap() >= 1, "{json:#}");
}

/// During its window the status file says `canary G HASH SECS` and `/stats` shows the canary
/// generation and its one worker as `canary` beside generation 1's two live workers.
#[test]
fn the_status_file_and_stats_show_the_canary_during_its_window() {
    let (_server, live, pid_file, socket) = canary_server("canary-window");
    install(&sample_app("hello"), &live);
    kill(master_pid(&pid_file), libc::SIGHUP);
    let (_, _, rest) = poll(SWAP_TIMEOUT, "the canary status", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "canary" && *g == 2)
    });
    assert!(rest.ends_with(" 3"), "the window in seconds: {rest}");
    let json = stats_json(&socket);
    let states: Vec<(u64, String)> = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["generation"].as_u64().unwrap(),
                w["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(1, "live".into()), (1, "live".into()), (2, "canary".into())],
        "{json:#}"
    );
    assert_eq!(json["generation"], 1, "{json:#}");
    assert_eq!(wait_settled(&pid_file, 1).0, "ready");
}
