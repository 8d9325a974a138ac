//! The state machine driven by scripts: each step is a time (ms since the start), an event, and
//! every action that must follow, in order (log lines apart; some tests look at those too).
//! `Sim` plays the master: it answers `PrepareLibrary` with a library hashed `hN` for the N-th
//! preparation and `Spawn` with the next pid from 100 on.

use std::collections::VecDeque;

use std::path::Path;

use super::*;
use crate::sys::process::ChildExit;

const SOURCE: &str = "/srv/live.so";

struct Sim {
    machine: Generations,
    start: Instant,
    next_pid: i32,
    prepared: u32,
    /// The next preparation fails with this.
    fail_prepare: Option<String>,
    /// The next spawn fails with this.
    fail_spawn: Option<String>,
    logs: Vec<String>,
}

fn artifact(n: u32) -> Artifact {
    Artifact::for_tests(Path::new(SOURCE), &format!("h{n}"))
}

/// `--timeout` of the simulations that watch heartbeats.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

impl Sim {
    /// A master that does not watch heartbeats (`--timeout 0`).
    fn new(workers: usize) -> Sim {
        Sim::with_heartbeat_timeout(workers, None)
    }

    /// A master that kills workers silent for `HEARTBEAT_TIMEOUT`.
    fn watching(workers: usize) -> Sim {
        Sim::with_heartbeat_timeout(workers, Some(HEARTBEAT_TIMEOUT))
    }

    fn with_heartbeat_timeout(workers: usize, heartbeat_timeout: Option<Duration>) -> Sim {
        Sim {
            machine: Generations::new(Config {
                workers,
                graceful_timeout: Duration::from_secs(10),
                symbol: "app".into(),
                source: PathBuf::from(SOURCE),
                heartbeat_timeout,
                canary: None,
            }),
            start: Instant::now(),
            next_pid: 100,
            prepared: 0,
            fail_prepare: None,
            fail_spawn: None,
            logs: Vec::new(),
        }
    }

    /// Feeds `event` at `ms`, answers the master's questions, and returns every other action.
    fn at(&mut self, ms: u64, event: Event) -> Vec<String> {
        let now = self.start + Duration::from_millis(ms);
        let mut queue: VecDeque<Action> = self.machine.handle(event, now).into();
        let mut seen = Vec::new();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::PrepareLibrary => {
                    seen.push("prepare".to_owned());
                    self.prepared += 1;
                    let result = match self.fail_prepare.take() {
                        Some(why) => Err(why),
                        None => Ok(artifact(self.prepared)),
                    };
                    queue.extend(self.machine.handle(Event::Prepared(result), now));
                }
                Action::Spawn {
                    generation,
                    library,
                    multiprocess: _,
                } => {
                    let pid = match self.fail_spawn.take() {
                        Some(why) => {
                            seen.push(format!("spawn {generation} failed"));
                            Err(why)
                        }
                        None => {
                            let pid = self.next_pid;
                            self.next_pid += 1;
                            let file = library.source.file_name().unwrap().to_string_lossy();
                            let hash = &library.hash;
                            seen.push(format!("spawn {generation} {hash}-{file} = {pid}"));
                            Ok(pid)
                        }
                    };
                    queue.extend(self.machine.handle(Event::Spawned { generation, pid }, now));
                }
                Action::Signal { pid, signal } => seen.push(format!("{signal} {pid}")),
                Action::Status(line) => seen.push(format!("status {line}")),
                Action::Log { level, text } => self.logs.push(format!("{level}: {text}")),
                Action::Serving => seen.push("serving".to_owned()),
                Action::CloseListener => seen.push("close listener".to_owned()),
                Action::Exit(outcome) => seen.push(format!("exit {outcome:?}")),
                Action::ResetSourcePin(library) => seen.push(format!("reset pin {}", library.hash)),
                Action::CanaryStarted { generation } => {
                    seen.push(format!("canary started {generation}"));
                }
                Action::JudgeCanary { generation, old } => {
                    seen.push(format!("judge {generation} against {old}"));
                }
            }
        }
        seen
    }

    /// Runs `steps`, checking each step's actions.
    fn run(&mut self, steps: &[(u64, Event, &[&str])]) {
        for (ms, event, want) in steps {
            let got = self.at(*ms, event.clone());
            assert_eq!(
                got, *want,
                "at {ms} ms after {event:?}; log so far: {:#?}",
                self.logs
            );
        }
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.contains(needle))
    }
}

fn ready(pid: i32) -> Event {
    Event::Message {
        pid,
        message: WorkerMessage::Ready {
            name: "app".into(),
            version: "1.0".into(),
        },
    }
}

fn error(pid: i32, text: &str) -> Event {
    Event::Message {
        pid,
        message: WorkerMessage::Error(text.into()),
    }
}

fn stopped(pid: i32) -> Event {
    Event::Message {
        pid,
        message: WorkerMessage::Stopped,
    }
}

fn draining(pid: i32) -> Event {
    Event::Message {
        pid,
        message: WorkerMessage::Draining,
    }
}

fn exited(pid: i32, code: i32) -> Event {
    Event::Exited {
        pid,
        how: ChildExit::Exited(code),
    }
}

fn segfault(pid: i32) -> Event {
    Event::Exited {
        pid,
        how: ChildExit::Signaled(libc::SIGSEGV),
    }
}

const HUP: Event = Event::SwapAsked(SwapCause::Hup);
const TICK: Event = Event::Tick;

fn alive(pid: i32) -> Event {
    Event::Message {
        pid,
        message: WorkerMessage::Alive,
    }
}

/// Generation 1 serving with `workers` workers, pids 100 on.
fn serving(workers: usize) -> Sim {
    boot(Sim::new(workers), workers)
}

/// Like [`serving`], with heartbeats watched; every worker was last heard at 10 ms.
fn serving_watched(workers: usize) -> Sim {
    boot(Sim::watching(workers), workers)
}

fn boot(mut sim: Sim, workers: usize) -> Sim {
    let mut boot = vec!["prepare".to_owned(), "status booting 1 h1".to_owned()];
    boot.extend((0..workers).map(|i| format!("spawn 1 h1-live.so = {}", 100 + i)));
    assert_eq!(sim.at(0, Event::Start), boot);
    for i in 0..workers as i32 - 1 {
        assert_eq!(sim.at(10, ready(100 + i)), Vec::<String>::new());
    }
    let mut promote: Vec<String> = (0..workers)
        .map(|i| format!("SIGUSR1 {}", 100 + i))
        .collect();
    promote.extend(["status ready 1 h1".to_owned(), "serving".to_owned()]);
    assert_eq!(sim.at(10, ready(100 + workers as i32 - 1)), promote);
    assert!(sim.logged(&format!(
        "generation 1 ready: {workers} worker(s) serving app 1.0 from /srv/live.so (sha h1)"
    )));
    sim
}

#[test]
fn a_swap_goes_live_when_all_new_workers_are_ready_and_is_announced_when_the_old_stopped() {
    let mut sim = serving(2);
    sim.run(&[
        (
            1000,
            HUP,
            &[
                "prepare",
                "status booting 2 h2",
                "spawn 2 h2-live.so = 102",
                "spawn 2 h2-live.so = 103",
            ],
        ),
        (1010, ready(102), &[]),
        (1020, TICK, &[]),
        (
            1030,
            ready(103),
            &["SIGUSR1 102", "SIGUSR1 103", "SIGTERM 100", "SIGTERM 101"],
        ),
        (1040, stopped(100), &[]),
        (1050, TICK, &[]),
        (1060, stopped(101), &["status ready 2 h2"]),
        (1500, exited(100, 0), &[]),
        (1600, exited(101, 0), &[]),
        (1700, TICK, &[]),
    ]);
    assert!(sim.logged("generation 2 ready: 2 worker(s) serving app 1.0 from /srv/live.so (sha h2); draining generation [1]"));
    assert!(sim.logged("worker 100 of generation 1 drained and exited with status 0"));
    assert!(!sim.logged("hot swap failed"));
}

#[test]
fn an_old_worker_that_exits_counts_as_stopped() {
    let mut sim = serving(1);
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 101"],
        ),
        (1010, ready(101), &["SIGUSR1 101", "SIGTERM 100"]),
        (1020, exited(100, 0), &["status ready 2 h2"]),
    ]);
}

#[test]
fn the_announcement_waits_for_stopped_until_its_deadline() {
    let mut sim = serving(1);
    let wait = STOPPED_WAIT.as_millis() as u64;
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 101"],
        ),
        (1010, ready(101), &["SIGUSR1 101", "SIGTERM 100"]),
        (1010 + wait - 1, TICK, &[]),
        (1010 + wait, TICK, &["status ready 2 h2"]),
        (1010 + wait + 1, stopped(100), &[]),
    ]);
    assert!(sim.logged("old worker(s) [100] did not confirm they stopped accepting within 3s"));
}

#[test]
fn a_worker_error_while_booting_fails_the_swap_and_the_old_generation_serves_on() {
    let mut sim = serving(2);
    sim.run(&[
        (
            1000,
            HUP,
            &[
                "prepare",
                "status booting 2 h2",
                "spawn 2 h2-live.so = 102",
                "spawn 2 h2-live.so = 103",
            ],
        ),
        (1010, ready(102), &[]),
        (
            1020,
            // The descriptor the worker loaded is replaced by the user's file; the message is
            // one line.
            error(103, "cannot load /proc/self/fd/5:\ninvalid ELF header"),
            &[
                "SIGTERM 102",
                "SIGTERM 103",
                "status failed 2 cannot load /srv/live.so: invalid ELF header",
            ],
        ),
        // The failed generation's exits mean nothing more; the live one is untouched.
        (1030, exited(103, 1), &[]),
        (1040, exited(102, 0), &[]),
        (1050, TICK, &[]),
    ]);
    assert!(sim.logged(
        "ERROR: hot swap failed: cannot load /srv/live.so: invalid ELF header; generation 1 keeps serving app 1.0"
    ));
    assert_eq!(
        sim.logs
            .iter()
            .filter(|l| l.contains("hot swap failed"))
            .count(),
        1
    );
}

#[test]
fn a_crash_while_booting_fails_the_swap() {
    let mut sim = serving(2);
    sim.run(&[
        (
            1000,
            HUP,
            &[
                "prepare",
                "status booting 2 h2",
                "spawn 2 h2-live.so = 102",
                "spawn 2 h2-live.so = 103",
            ],
        ),
        (
            1010,
            segfault(102),
            &[
                "SIGTERM 103",
                "status failed 2 worker 102 was killed by signal 11 (SIGSEGV) while loading /srv/live.so:app (a crash in the library's initialisers or init)",
            ],
        ),
        // A late ready from the failed generation is told to go away, not to serve.
        (1020, ready(103), &["SIGTERM 103"]),
        (1030, exited(103, 0), &[]),
    ]);
    assert!(sim.logged("generation 1 keeps serving app 1.0"));
}

#[test]
fn a_library_that_cannot_be_copied_or_a_worker_that_cannot_start_fails_the_swap() {
    let mut sim = serving(1);
    sim.fail_prepare = Some("cannot read /srv/live.so: No such file".into());
    sim.run(&[(
        1000,
        HUP,
        &[
            "prepare",
            "status failed 2 cannot read /srv/live.so: No such file",
        ],
    )]);
    sim.fail_spawn = Some("out of processes".into());
    sim.run(&[(
        2000,
        HUP,
        &[
            "prepare",
            "status booting 3 h3",
            "spawn 3 failed",
            "status failed 3 cannot start a worker: out of processes",
        ],
    )]);
    // The next swap works.
    sim.run(&[
        (
            3000,
            HUP,
            &["prepare", "status booting 4 h4", "spawn 4 h4-live.so = 101"],
        ),
        (3010, ready(101), &["SIGUSR1 101", "SIGTERM 100"]),
        (3020, stopped(100), &["status ready 4 h4"]),
    ]);
}

#[test]
fn swaps_asked_during_a_swap_run_once_it_settles() {
    let mut sim = serving(1);
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 101"],
        ),
        // Two more while booting: one queued swap.
        (1010, HUP, &[]),
        (1020, Event::SwapAsked(SwapCause::FileChanged), &[]),
        (1030, ready(101), &["SIGUSR1 101", "SIGTERM 100"]),
        // Still waiting for the old worker's stopped: the queue waits too.
        (1040, HUP, &[]),
        (
            1050,
            stopped(100),
            &[
                "status ready 2 h2",
                "prepare",
                "status booting 3 h3",
                "spawn 3 h3-live.so = 102",
            ],
        ),
        (1060, ready(102), &["SIGUSR1 102", "SIGTERM 101"]),
        (1070, stopped(101), &["status ready 3 h3"]),
        (1080, TICK, &[]),
    ]);
    assert!(sim.logged("--reload: /srv/live.so changed"));
}

#[test]
fn a_swap_asked_during_a_failing_swap_runs_after_the_failure() {
    let mut sim = serving(1);
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 101"],
        ),
        (1010, HUP, &[]),
        (
            1020,
            error(101, "init failed"),
            &[
                "SIGTERM 101",
                "status failed 2 init failed",
                "prepare",
                "status booting 3 h3",
                "spawn 3 h3-live.so = 102",
            ],
        ),
    ]);
}

#[test]
fn a_crashed_worker_is_replaced_at_once() {
    let mut sim = serving(2);
    sim.run(&[
        (1000, segfault(100), &["spawn 1 h1-live.so = 102"]),
        (1010, ready(102), &["SIGUSR1 102"]),
        (1020, TICK, &[]),
    ]);
    assert!(sim.logged(
        "ERROR: worker 100 (generation 1, /srv/live.so) was killed by signal 11 (SIGSEGV); replacing it"
    ));
    sim.run(&[(
        2000,
        exited(101, i32::from(crate::exit::HARAKIRI)),
        &["spawn 1 h1-live.so = 103"],
    )]);
    assert!(
        sim.logged("worker 101 (generation 1, /srv/live.so) was stuck in a request past --timeout")
    );
}

#[test]
fn replacements_that_die_before_ready_back_off_doubling_to_the_cap_then_reset() {
    let mut sim = serving(1);
    // A worker that was ready is replaced at once.
    assert_eq!(sim.at(1000, segfault(100)), ["spawn 1 h1-live.so = 101"]);
    let mut now = 1000;
    let mut pid = 101;
    let mut expected = BACKOFF_MIN;
    let mut waits = Vec::new();
    for n in 1..=9 {
        // The replacement dies before it is ready (its error line first, then its exit).
        assert_eq!(sim.at(now, error(pid, "init failed")), Vec::<String>::new());
        // The third in a row is a crash loop, said once.
        let status: &[&str] = match n {
            3 => &["status crash-loop 1 h1 init failed"],
            _ => &[],
        };
        assert_eq!(sim.at(now, exited(pid, 1)), status, "failure {n}");
        let wait = expected.as_millis() as u64;
        assert_eq!(sim.at(now + wait - 1, TICK), Vec::<String>::new());
        now += wait;
        pid += 1;
        // With no worker serving, each replacement starts from an empty source pin.
        assert_eq!(
            sim.at(now, TICK),
            [
                "reset pin h1".to_owned(),
                format!("spawn 1 h1-live.so = {pid}")
            ]
        );
        waits.push(wait);
        expected = (expected * 2).min(BACKOFF_MAX);
    }
    assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    assert!(sim.logged("replacement worker failed to start: init failed"));
    assert!(sim.logged(
        "ERROR: crash loop: 3 replacement workers of generation 1 in a row died before they \
         were ready; retrying with back-off (next in 400ms): init failed"
    ));
    let view = sim
        .machine
        .crash_loop(sim.start + Duration::from_millis(now))
        .unwrap();
    assert_eq!((view.generation, view.failures), (1, 9));
    assert_eq!(view.last_failure.as_deref(), Some("init failed"));
    // A replacement that gets ready resets the back-off and ends the crash loop.
    assert_eq!(
        sim.at(now + 1, ready(pid)),
        [format!("SIGUSR1 {pid}"), "status ready 1 h1".to_owned()]
    );
    assert!(sim.logged("crash loop over: a replacement worker of generation 1 is ready after 9"));
    assert!(sim.logged("WARN: generation 1 has no worker left serving and its replacements fail"));
    assert_eq!(
        sim.machine
            .crash_loop(sim.start + Duration::from_millis(now)),
        None
    );
    assert_eq!(
        sim.at(now + 2, exited(pid, 1)),
        [format!("spawn 1 h1-live.so = {}", pid + 1)]
    );
    assert_eq!(sim.at(now + 3, exited(pid + 1, 1)), Vec::<String>::new());
    assert_eq!(sim.at(now + 3 + 99, TICK), Vec::<String>::new());
    assert_eq!(
        sim.at(now + 3 + 100, TICK),
        [
            "reset pin h1".to_owned(),
            format!("spawn 1 h1-live.so = {}", pid + 2)
        ]
    );
}

#[test]
fn a_replacement_that_cannot_be_spawned_backs_off() {
    let mut sim = serving(1);
    sim.fail_spawn = Some("out of processes".into());
    sim.run(&[
        (1000, segfault(100), &["spawn 1 failed"]),
        (1099, TICK, &[]),
        (1100, TICK, &["reset pin h1", "spawn 1 h1-live.so = 101"]),
    ]);
    assert!(sim.logged("ERROR: cannot start a worker: out of processes"));
}

#[test]
fn ttin_adds_a_worker_and_ttou_retires_one_but_never_the_last() {
    let mut sim = serving(1);
    sim.run(&[
        (1000, Event::MoreWorkers, &["spawn 1 h1-live.so = 101"]),
        (1010, ready(101), &["SIGUSR1 101"]),
        (1020, Event::FewerWorkers, &["SIGTERM 101"]),
        (1030, TICK, &[]),
        (1040, exited(101, 0), &[]),
        (1050, Event::FewerWorkers, &[]),
        (1060, TICK, &[]),
    ]);
    assert!(sim.logged("SIGTTIN: 2 worker(s)"));
    assert!(sim.logged("worker 101 recycled"));
    assert!(sim.logged("SIGTTOU: 1 worker(s)"));
    // A swap boots as many workers as are wanted now.
    sim.run(&[
        (2000, Event::MoreWorkers, &["spawn 1 h1-live.so = 102"]),
        (
            2010,
            HUP,
            &[
                "prepare",
                "status booting 2 h2",
                "spawn 2 h2-live.so = 103",
                "spawn 2 h2-live.so = 104",
            ],
        ),
    ]);
}

#[test]
fn a_recycling_worker_is_replaced_before_it_exits() {
    let mut sim = serving(2);
    sim.run(&[
        (1000, draining(100), &["spawn 1 h1-live.so = 102"]),
        (1010, ready(102), &["SIGUSR1 102"]),
        (1020, exited(100, 0), &[]),
        (1030, TICK, &[]),
    ]);
    assert!(sim.logged("worker 100 is recycling; starting its replacement"));
    assert!(sim.logged("worker 100 recycled"));
}

#[test]
fn a_graceful_stop_waits_for_the_workers_then_kills_the_late_ones() {
    let mut sim = serving(2);
    let grace = (Duration::from_secs(10) + STOP_MARGIN).as_millis() as u64;
    sim.run(&[
        (
            1000,
            Event::GracefulStop { signal: "SIGTERM" },
            &["close listener", "SIGTERM 100", "SIGTERM 101"],
        ),
        // Neither swaps nor replacements while stopping.
        (1010, HUP, &[]),
        (1020, exited(100, 0), &[]),
        (1000 + grace - 1, TICK, &[]),
        (1000 + grace, TICK, &["SIGKILL 101"]),
        (1000 + grace + 1, TICK, &[]),
        (
            1000 + grace + KILL_WAIT.as_millis() as u64,
            TICK,
            &["SIGKILL 101"],
        ),
        (1000 + grace + 5001, segfault(101), &["exit Ok(())"]),
        (1000 + grace + 5002, TICK, &[]),
    ]);
    assert!(sim.logged("all workers stopped; exiting"));
}

#[test]
fn an_immediate_stop_quits_the_workers() {
    let mut sim = serving(1);
    sim.run(&[
        (
            1000,
            Event::ImmediateStop,
            &["close listener", "SIGQUIT 100"],
        ),
        (1000 + QUIT_WAIT.as_millis() as u64, TICK, &["SIGKILL 100"]),
        (2500, exited(100, 0), &["exit Ok(())"]),
    ]);
}

#[test]
fn a_first_generation_that_fails_ends_the_master_with_its_reason() {
    let mut sim = Sim::new(2);
    sim.run(&[
        (
            0,
            Event::Start,
            &[
                "prepare",
                "status booting 1 h1",
                "spawn 1 h1-live.so = 100",
                "spawn 1 h1-live.so = 101",
            ],
        ),
        (10, ready(100), &[]),
        (
            20,
            error(101, "symbol 'app' not found"),
            &[
                "SIGTERM 100",
                "SIGTERM 101",
                "status failed 1 symbol 'app' not found",
                "exit Err(\"symbol 'app' not found\")",
            ],
        ),
        (30, TICK, &[]),
    ]);
    assert!(!sim.logged("hot swap failed"));

    let mut missing = Sim::new(1);
    missing.fail_prepare = Some("cannot read /srv/live.so".into());
    missing.run(&[(
        0,
        Event::Start,
        &[
            "prepare",
            "status failed 1 cannot read /srv/live.so",
            "exit Err(\"cannot read /srv/live.so\")",
        ],
    )]);
}

#[test]
fn events_about_unknown_workers_change_nothing() {
    let mut sim = serving(1);
    sim.run(&[
        (1000, ready(999), &[]),
        (1010, error(999, "x"), &[]),
        (1020, exited(999, 1), &[]),
        (1030, stopped(999), &[]),
        (1040, TICK, &[]),
    ]);
}

#[test]
fn a_replacement_due_while_a_swap_starts_is_started_once() {
    let mut sim = serving(1);
    sim.run(&[
        (1000, segfault(100), &["spawn 1 h1-live.so = 101"]),
        (1010, exited(101, 1), &[]),
        // The back-off ends as a swap is asked: one replacement, and the new generation.
        (
            1110,
            HUP,
            &[
                "prepare",
                // Nothing serves generation 1 and its replacement failed: it is repinned.
                "reset pin h1",
                "spawn 1 h1-live.so = 102",
                "status booting 2 h2",
                "spawn 2 h2-live.so = 103",
            ],
        ),
        (1120, TICK, &[]),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Heartbeats (liveness.rs)
// ---------------------------------------------------------------------------------------------

const PATIENCE: u64 = HEARTBEAT_TIMEOUT.as_millis() as u64;

fn killed_for_silence(pid: i32) -> Event {
    Event::Exited {
        pid,
        how: ChildExit::Signaled(libc::SIGKILL),
    }
}

#[test]
fn a_silent_worker_is_killed_after_timeout_and_replaced_at_once_with_one_log_line() {
    let mut sim = serving_watched(2);
    sim.run(&[
        // 100 keeps beating; 101 (ready at 10 ms) falls silent.
        (500, alive(100), &[]),
        (1000, alive(100), &[]),
        (1500, alive(100), &[]),
        (10 + PATIENCE - 1, TICK, &[]),
        (
            10 + PATIENCE,
            TICK,
            &["SIGKILL 101", "spawn 1 h1-live.so = 102"],
        ),
        (10 + PATIENCE + 1, TICK, &[]),
        // Its exit neither starts a second replacement nor says more.
        (10 + PATIENCE + 5, killed_for_silence(101), &[]),
        (2100, ready(102), &["SIGUSR1 102"]),
        (2400, alive(100), &[]),
        (2500, TICK, &[]),
    ]);
    assert!(sim.logged(
        "ERROR: worker 101 (generation 1, /srv/live.so) sent no heartbeat for 2.0s (stopped or frozen; --timeout 2s); killing it with SIGKILL and replacing it"
    ));
    let about_101: Vec<&String> = sim
        .logs
        .iter()
        .filter(|l| l.contains("worker 101") && !l.starts_with("DEBUG"))
        .collect();
    assert_eq!(about_101.len(), 1, "{about_101:#?}");
}

#[test]
fn any_message_counts_as_a_heartbeat_and_a_busy_worker_that_beats_is_never_killed() {
    let mut sim = serving_watched(1);
    let mut now = 10;
    // A long request: the worker says nothing but `alive` for a minute.
    for _ in 0..120 {
        now += 500;
        assert_eq!(sim.at(now, alive(100)), Vec::<String>::new());
        assert_eq!(sim.at(now + 1, TICK), Vec::<String>::new());
    }
    // `draining` (recycling) is news too: the clock restarts from it.
    now += PATIENCE - 1;
    assert_eq!(sim.at(now, draining(100)), ["spawn 1 h1-live.so = 101"]);
    assert_eq!(sim.at(now + PATIENCE - 1, TICK), Vec::<String>::new());
    assert!(!sim.logged("no heartbeat"));
}

#[test]
fn draining_workers_are_watched_too_but_not_replaced() {
    let mut sim = serving_watched(1);
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 101"],
        ),
        (1010, ready(101), &["SIGUSR1 101", "SIGTERM 100"]),
        (1020, stopped(100), &["status ready 2 h2"]),
        // 100 drains a long request and keeps beating; 101 serves and beats.
        (1500, alive(100), &[]),
        (2000, alive(101), &[]),
        (3000, alive(100), &[]),
        (3400, alive(101), &[]),
        (3499, TICK, &[]),
        // Then 100 freezes mid-drain: killed, and nothing replaces a draining worker.
        (5000, alive(101), &[]),
        (3000 + PATIENCE, TICK, &["SIGKILL 100"]),
        (5010, killed_for_silence(100), &[]),
        (5020, TICK, &[]),
    ]);
    assert!(sim.logged(
        "ERROR: worker 100 (generation 1, /srv/live.so) sent no heartbeat for 2.0s (stopped or frozen; --timeout 2s); killing it with SIGKILL"
    ));
    assert!(!sim.logged("worker 101 (generation"));
}

#[test]
fn a_booting_worker_that_falls_silent_fails_the_swap() {
    let mut sim = serving_watched(2);
    sim.run(&[
        (
            1000,
            HUP,
            &[
                "prepare",
                "status booting 2 h2",
                "spawn 2 h2-live.so = 102",
                "spawn 2 h2-live.so = 103",
            ],
        ),
        // 102 is slow in init but alive; 103 froze after its first heartbeat.
        (1000, alive(103), &[]),
        (1500, alive(100), &[]),
        (1500, alive(101), &[]),
        (1600, alive(102), &[]),
        (2200, alive(102), &[]),
        (2500, alive(100), &[]),
        (2500, alive(101), &[]),
        (
            1000 + PATIENCE,
            TICK,
            &[
                "SIGKILL 103",
                "SIGTERM 102",
                "SIGTERM 103",
                "status failed 2 worker 103 (generation 2, /srv/live.so) sent no heartbeat for 2.0s (stopped or frozen; --timeout 2s) while loading; killed it with SIGKILL",
            ],
        ),
        (3010, killed_for_silence(103), &[]),
        (3020, exited(102, 0), &[]),
    ]);
    assert!(sim.logged("hot swap failed: worker 103"));
    assert!(sim.logged("generation 1 keeps serving app 1.0"));
}

#[test]
fn without_a_timeout_silence_is_never_punished() {
    let mut sim = serving(1);
    sim.run(&[(3_600_000, TICK, &[])]);
}

#[test]
fn a_stop_closes_the_listener_once_and_a_swap_never_does() {
    let mut sim = serving(1);
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 101"],
        ),
        (1010, ready(101), &["SIGUSR1 101", "SIGTERM 100"]),
        (1020, stopped(100), &["status ready 2 h2"]),
        // A stop while a swap boots: nothing takes over, every worker is told.
        (
            2000,
            HUP,
            &["prepare", "status booting 3 h3", "spawn 3 h3-live.so = 102"],
        ),
        (
            2010,
            Event::GracefulStop { signal: "SIGINT" },
            &[
                "close listener",
                "SIGTERM 100",
                "SIGTERM 101",
                "SIGTERM 102",
            ],
        ),
        (
            2020,
            Event::ImmediateStop,
            &["SIGQUIT 100", "SIGQUIT 101", "SIGQUIT 102"],
        ),
    ]);
}

#[test]
fn a_worker_gets_a_grace_period_for_its_first_word() {
    let mut sim = serving_watched(1);
    let grace = liveness::FIRST_WORD_GRACE.as_millis() as u64;
    sim.run(&[(1000, segfault(100), &["spawn 1 h1-live.so = 101"])]);
    // Silent since its spawn, but it has never spoken: its process may still be starting.
    let mut now = 1000;
    while now < 1000 + grace - 500 {
        now += 500;
        sim.run(&[(now, TICK, &[])]);
    }
    sim.run(&[
        (1000 + grace - 1, TICK, &[]),
        (
            1000 + grace,
            TICK,
            &["SIGKILL 101", "spawn 1 h1-live.so = 102"],
        ),
        // Once it spoke, --timeout is the patience.
        (1000 + grace + 10, alive(102), &[]),
        (
            1000 + grace + 10 + PATIENCE,
            TICK,
            &["SIGKILL 102", "spawn 1 h1-live.so = 103"],
        ),
    ]);
    assert!(sim.logged("worker 101 (generation 1, /srv/live.so) sent no heartbeat for 5.0s"));
}

#[test]
fn views_for_stats_follow_swaps_and_workers() {
    let mut sim = serving(1);
    assert_eq!(sim.machine.swap_counts(), &SwapCounts::default());
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 101"],
        ),
        (1010, ready(101), &["SIGUSR1 101", "SIGTERM 100"]),
    ]);
    let states: Vec<(u64, &str, String)> = sim
        .machine
        .generation_views()
        .into_iter()
        .map(|g| (g.id, g.state, g.hash))
        .collect();
    assert_eq!(
        states,
        [(1, "draining", "h1".into()), (2, "live", "h2".into())]
    );
    // Counted once announced, not when promoted.
    assert_eq!(sim.machine.swap_counts().ok, 0);
    sim.run(&[(1020, stopped(100), &["status ready 2 h2"])]);
    assert_eq!(sim.machine.swap_counts().ok, 1);
    let fate = sim
        .machine
        .worker_fate(100)
        .expect("still known before its exit");
    assert!(fate.ready && !fate.silenced && !fate.stopping);
    sim.run(&[(1030, exited(100, 0), &[])]);
    assert_eq!(sim.machine.worker_fate(100), None);

    sim.fail_prepare = Some("cannot read /srv/live.so".into());
    sim.run(&[(
        2000,
        HUP,
        &["prepare", "status failed 3 cannot read /srv/live.so"],
    )]);
    let swaps = sim.machine.swap_counts();
    assert_eq!((swaps.ok, swaps.failed), (1, 1));
    assert_eq!(
        swaps.last_failure.as_deref(),
        Some("cannot read /srv/live.so")
    );
    let workers = sim.machine.worker_views();
    assert_eq!(
        workers,
        [WorkerView {
            pid: 101,
            generation: 2,
            ready: true
        }]
    );
}

/// Generation 1 serving on two workers (pids 100, 101), swaps tried on a one-worker canary for
/// three seconds.
fn serving_with_canary() -> Sim {
    let mut sim = Sim::new(2);
    sim.machine = Generations::new(Config {
        workers: 2,
        graceful_timeout: Duration::from_secs(10),
        symbol: "app".into(),
        source: PathBuf::from(SOURCE),
        heartbeat_timeout: None,
        canary: Some(crate::supervisor::canary::CanaryPlan {
            share: crate::supervisor::canary::CanaryShare::Workers(1),
            window: Duration::from_secs(3),
        }),
    });
    boot(sim, 2)
}

fn verdict(generation: u64, verdict: Result<&str, &str>) -> Event {
    Event::CanaryVerdict {
        generation,
        verdict: verdict.map(str::to_owned).map_err(str::to_owned),
    }
}

/// The canary window opens when the canary worker is ready and is judged once at its end; the
/// old generation is never told anything until the verdict.
fn canary_judged(sim: &mut Sim) {
    canary_open(sim);
    sim.run(&[
        (2000, TICK, &[]),
        (4010, TICK, &["judge 2 against 1"]),
        (4100, TICK, &[]),
    ]);
}

/// A HUP at 1 s; generation 2's one canary worker (pid 102) ready 10 ms later.
fn canary_open(sim: &mut Sim) {
    sim.run(&[
        (
            1000,
            HUP,
            &["prepare", "status booting 2 h2", "spawn 2 h2-live.so = 102"],
        ),
        (
            1010,
            ready(102),
            &["SIGUSR1 102", "status canary 2 h2 3", "canary started 2"],
        ),
    ]);
}

#[test]
fn a_canary_that_fails_its_verdict_drains_and_the_old_generation_serves_on() {
    let mut sim = serving_with_canary();
    canary_judged(&mut sim);
    sim.run(&[
        (
            4200,
            verdict(2, Err("5xx 10.0 % over --canary-max-5xx 1 % (...)")),
            &[
                "SIGTERM 102",
                "status failed 2 canary failed: 5xx 10.0 % over --canary-max-5xx 1 % (...)",
            ],
        ),
        (4300, exited(102, 0), &[]),
        (4400, TICK, &[]),
    ]);
    assert!(sim.logged("hot swap failed: canary failed: 5xx 10.0 %"));
    assert!(sim.logged("generation 1 keeps serving"));
}

#[test]
fn a_canary_that_passes_boots_the_rest_and_swaps_as_usual() {
    let mut sim = serving_with_canary();
    canary_judged(&mut sim);
    sim.run(&[
        (
            4200,
            verdict(2, Ok("figures")),
            &["spawn 2 h2-live.so = 103"],
        ),
        (
            4300,
            ready(103),
            &["SIGUSR1 102", "SIGUSR1 103", "SIGTERM 100", "SIGTERM 101"],
        ),
        (4310, stopped(100), &[]),
        (4320, stopped(101), &["status ready 2 h2"]),
    ]);
    assert!(sim.logged("generation 2: canary passed (figures); booting the rest"));
}

#[test]
fn a_canary_worker_that_crashes_fails_the_swap_at_once_and_a_hup_meanwhile_waits() {
    let mut sim = serving_with_canary();
    canary_open(&mut sim);
    sim.run(&[
        // A second swap waits for this one's outcome.
        (1500, HUP, &[]),
    ]);
    let after = sim.at(2000, segfault(102));
    assert!(
        after
            .iter()
            .any(|a| a.starts_with("status failed 2 canary failed: worker 102 ")),
        "{after:?}"
    );
    // The queued swap runs now, as a canary again.
    assert!(after.contains(&"prepare".to_owned()), "{after:?}");
    assert!(
        after.contains(&"spawn 3 h3-live.so = 103".to_owned()),
        "{after:?}"
    );
    // No verdict is asked for the failed canary.
    assert_eq!(sim.at(5000, TICK), Vec::<String>::new());
}

#[test]
fn a_stop_during_a_canary_stops_both_generations_and_asks_no_verdict() {
    let mut sim = serving_with_canary();
    canary_open(&mut sim);
    sim.run(&[
        (
            1500,
            Event::GracefulStop { signal: "SIGTERM" },
            &[
                "close listener",
                "SIGTERM 100",
                "SIGTERM 101",
                "SIGTERM 102",
            ],
        ),
        (5000, TICK, &[]),
        (5100, exited(100, 0), &[]),
        (5200, exited(101, 0), &[]),
        (5300, exited(102, 0), &["exit Ok(())"]),
    ]);
}
