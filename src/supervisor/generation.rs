//! Where a swap is decided: the generation state machine. Which generation serves, when a new one
//! is promoted, announced or failed, when a dead worker is replaced and how soon.
//!
//! Pure logic: [`Generations::handle`] takes an [`Event`] and the time it happened and returns the
//! [`Action`]s that follow. `master.rs` turns signals, pipe messages and exits into events and
//! carries the actions out (reading the library, spawning, signalling, writing the status file),
//! answering `PrepareLibrary` with `Prepared` and `Spawn` with `Spawned`.
//!
//! ```text
//!  Start / HUP / --reload ─▶ PrepareLibrary ─▶ Prepared ─▶ Spawn × -w ─▶ every worker Ready?
//!     ├─ yes ─▶ USR1 (go) to N+1 · TERM (drain) to N ─▶ N's workers Stopped (or STOPPED_WAIT)
//!     │         ─▶ status `ready N+1`; a swap asked meanwhile starts now
//!     └─ Error or exit while booting ─▶ TERM to N+1 · status `failed N+1 <why>`; N keeps serving
//! ```
//!
//! A generation is `Booting` (loading, not accepting), then `Live` (accepting; at most one is) and
//! later `Draining` (told to finish and exit), or `Failed` (told to exit). A generation is
//! forgotten once it is neither booting nor live and has no worker left; its library (held by its
//! [`Artifact`]) is closed then.
//!
//! A stop (TERM/INT/QUIT) tells every worker and closes the master's listener (no generation
//! takes over, so new clients are refused at once); a swap never closes it.
//!
//! Every worker says `alive` on its pipe a few times per `--timeout`, in every state; on each
//! `Tick` a worker silent for `--timeout` is killed (SIGKILL) and replaced (`liveness.rs`).
//! What an exit means and how the live generation is kept at `-w` workers is in `replace.rs`;
//! replacements that keep dying before they are ready are a crash loop (`crash_loop.rs`).
//! With `--canary N` a swap boots N workers first, lets them accept beside the old generation
//! for a window and asks the master for a verdict before the rest boot (`trial.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::artifact::{worker_library_path, Artifact};
use super::canary::CanaryPlan;
use super::message::WorkerMessage;
use crate::sys::process::Signal;

mod crash_loop;
mod event;
mod liveness;
mod replace;
mod trial;
mod view;
pub(crate) use event::{Action, Event, SwapCause};
// What it tells the stats: facts defined below both.
use crate::stats::facts::{CrashLoopView, GenerationView, SwapCounts, WorkerFate, WorkerView};

/// The first wait before replacing a worker that died before it was ready; it doubles with each
/// such death up to `BACKOFF_MAX` and is reset by a worker that gets ready.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a swap waits for the old workers to say they stopped accepting before it is
/// announced anyway (they were told; a wedged one is killed by its own graceful timeout).
pub(crate) const STOPPED_WAIT: Duration = Duration::from_secs(3);
/// A graceful stop waits `--graceful-timeout` plus this for the workers (which stop on their own
/// at `--graceful-timeout`) before it kills them.
pub(crate) const STOP_MARGIN: Duration = Duration::from_secs(2);
/// An immediate stop (QUIT) waits this long for the workers before it kills them.
pub(crate) const QUIT_WAIT: Duration = Duration::from_secs(1);
/// After killing the workers that did not stop, how long to wait before killing them again.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);
/// The generation the master starts with; its boot is reported by its outcome alone.
const FIRST_GENERATION: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Booting,
    Live,
    Draining,
    Failed,
}

/// What the state machine needs to know of the command line.
pub(crate) struct Config {
    /// `-w`.
    pub(crate) workers: usize,
    pub(crate) graceful_timeout: Duration,
    /// The app's symbol, for messages.
    pub(crate) symbol: String,
    /// The library the user named, for messages before the first one is read.
    pub(crate) source: PathBuf,
    /// `--timeout`: a worker not heard from for this long is killed (`None`: never).
    pub(crate) heartbeat_timeout: Option<Duration>,
    /// `--canary`: swaps try the new generation on a few workers first.
    pub(crate) canary: Option<CanaryPlan>,
}

struct Generation {
    id: u64,
    artifact: Artifact,
    state: State,
    /// `NAME VERSION` from the first worker's `Ready`.
    app: String,
}

struct Worker {
    pid: i32,
    generation: u64,
    ready: bool,
    /// Told to go (TTOU, spawned for a generation no longer wanted) or recycling on its own
    /// (`--max-requests`): already replaced.
    retiring: bool,
    /// Said `Stopped`: its listener is closed, it accepts no new connection.
    stopped: bool,
    /// When it last said anything (spawned, for one that has not spoken yet).
    last_heard: Instant,
    /// It said something: it is past its process start-up.
    heard: bool,
    /// Killed for its silence: its exit needs no second log line.
    silenced: bool,
}

/// A promoted generation whose swap is announced (log line, `ready` status) only once the old
/// workers stopped accepting, so a connection made after the announcement reaches the new code.
struct Announce {
    id: u64,
    /// Old workers that may still accept.
    waiting: Vec<i32>,
    /// Generations being drained, for the log line.
    old: Vec<u64>,
    deadline: Instant,
}

/// The state machine; see the module docs.
pub(crate) struct Generations {
    generations: Vec<Generation>,
    workers: Vec<Worker>,
    /// One entry per `Spawn` out without its `Spawned` answer yet: the worker's generation.
    spawning: Vec<u64>,
    /// The generation whose library is being copied (`PrepareLibrary` out, no `Prepared` yet).
    preparing: Option<u64>,
    next_id: u64,
    want: usize,
    backoff: Duration,
    /// No replacement worker is started before this (back-off).
    next_spawn: Option<Instant>,
    /// Replacements that died before they were ready, in a row (`crash_loop.rs`).
    start_failures: crash_loop::StartFailures,
    swap_queued: bool,
    /// Set once a stop was asked: when to stop waiting and kill.
    stop_deadline: Option<Instant>,
    announce: Option<Announce>,
    canary: Option<CanaryPlan>,
    trial: Option<trial::Trial>,
    /// A generation has been live (the banner is out; a failure no longer ends the master).
    served: bool,
    /// `Exit` was returned; later events are ignored.
    finished: bool,
    graceful_timeout: Duration,
    heartbeat_timeout: Option<Duration>,
    symbol: String,
    /// The library the user named, as last resolved.
    source: PathBuf,
    /// Swaps announced and failed since the first generation served (for `--stats`).
    swaps: SwapCounts,
    actions: Vec<Action>,
}

impl Generations {
    pub(crate) fn new(config: Config) -> Generations {
        Generations {
            generations: Vec::new(),
            workers: Vec::new(),
            spawning: Vec::new(),
            preparing: None,
            next_id: FIRST_GENERATION,
            want: config.workers.max(1),
            backoff: BACKOFF_MIN,
            next_spawn: None,
            start_failures: Default::default(),
            swap_queued: false,
            stop_deadline: None,
            announce: None,
            canary: config.canary,
            trial: None,
            served: false,
            finished: false,
            graceful_timeout: config.graceful_timeout,
            heartbeat_timeout: config.heartbeat_timeout,
            symbol: config.symbol,
            source: config.source,
            swaps: SwapCounts::default(),
            actions: Vec::new(),
        }
    }

    /// A new generation is being prepared or is booting: a changed file waits for it.
    pub(crate) fn is_booting(&self) -> bool {
        self.preparing.is_some() || self.generations.iter().any(|g| g.state == State::Booting)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stop_deadline.is_some()
    }

    /// What `event`, happening at `now`, makes the master do.
    pub(crate) fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        if !self.finished {
            self.on_event(event, now);
            self.settle(now);
        }
        std::mem::take(&mut self.actions)
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        let stopping = self.is_stopping();
        match event {
            Event::Start => self.request_swap(),
            Event::SwapAsked(cause) if !stopping => {
                let text = match cause {
                    SwapCause::Hup => format!("SIGHUP: hot swap of {}", self.source.display()),
                    SwapCause::FileChanged => {
                        format!("--reload: {} changed", self.source.display())
                    }
                    SwapCause::PathChanged => {
                        format!("--reload-path: hot swap of {}", self.source.display())
                    }
                };
                self.log(log::Level::Info, text);
                self.request_swap();
            }
            Event::GracefulStop { signal } if !stopping => {
                self.log(log::Level::Info, format!("{signal}: graceful stop"));
                self.emit(Action::CloseListener);
                self.signal_all(Signal::Term);
                self.stop_deadline = Some(now + self.graceful_timeout + STOP_MARGIN);
            }
            Event::ImmediateStop => {
                self.log(log::Level::Info, "SIGQUIT: immediate stop".into());
                if !stopping {
                    self.emit(Action::CloseListener);
                }
                self.signal_all(Signal::Quit);
                self.stop_deadline = Some(now + QUIT_WAIT);
            }
            Event::MoreWorkers if !stopping => {
                self.want += 1;
                self.log(
                    log::Level::Info,
                    format!("SIGTTIN: {} worker(s)", self.want),
                );
            }
            Event::FewerWorkers if !stopping => {
                self.want = self.want.saturating_sub(1).max(1);
                self.log(
                    log::Level::Info,
                    format!("SIGTTOU: {} worker(s)", self.want),
                );
            }
            Event::Prepared(result) => self.on_prepared(result),
            Event::CanaryVerdict {
                generation,
                verdict,
            } => {
                self.on_verdict(generation, verdict, now);
            }
            Event::Spawned { generation, pid } => self.on_spawned(generation, pid, now),
            Event::Message { pid, message } => self.on_message(pid, message, now),
            Event::Exited { pid, how } => self.on_exit(pid, how, now),
            Event::SwapAsked(_)
            | Event::GracefulStop { .. }
            | Event::MoreWorkers
            | Event::FewerWorkers => {}
            Event::Tick => self.kill_silent_workers(now),
        }
    }

    /// What follows from the state whatever the event: an announcement due, a stop finished or
    /// overdue, the live generation short of (or over) its workers.
    fn settle(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.announce_if_settled(now);
        match self.stop_deadline {
            Some(_) if self.workers.is_empty() && self.spawning.is_empty() => {
                self.log(log::Level::Info, "all workers stopped; exiting".into());
                self.finish(Ok(()));
            }
            Some(deadline) if now >= deadline => {
                let count = self.workers.len();
                self.log(
                    log::Level::Warn,
                    format!("{count} worker(s) did not stop in time; killing them"),
                );
                self.signal_all(Signal::Kill);
                self.stop_deadline = Some(now + KILL_WAIT);
            }
            Some(_) => {}
            None => {
                self.judge_canary_if_due(now);
                self.reconcile(now);
            }
        }
    }

    fn request_swap(&mut self) {
        if self.announce.is_some() || self.is_booting() {
            // One swap at a time; the newest request runs once the current one settles.
            self.swap_queued = true;
            return;
        }
        self.preparing = Some(self.next_id);
        self.next_id += 1;
        self.emit(Action::PrepareLibrary);
    }

    fn on_prepared(&mut self, result: Result<Artifact, String>) {
        let Some(id) = self.preparing.take() else {
            self.log(log::Level::Debug, "a library was prepared unasked".into());
            return;
        };
        let artifact = match result {
            Ok(artifact) => artifact,
            Err(message) => return self.swap_failed(id, &message),
        };
        let level = if id == FIRST_GENERATION {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        let live = self
            .generations
            .iter()
            .find(|g| g.state == State::Live)
            .map(|g| g.id);
        let (count, canary) = match (self.canary, live) {
            (Some(plan), Some(old)) => {
                let workers = plan.workers(self.want);
                self.trial = Some(trial::Trial {
                    id,
                    old,
                    workers,
                    ends: None,
                    judging: false,
                    passed: false,
                });
                (workers, format!(" as a canary beside generation {old}"))
            }
            _ => (self.want, String::new()),
        };
        self.log(
            level,
            format!(
                "generation {id}: booting {count} worker(s){canary} on {} (sha {})",
                artifact.source.display(),
                artifact.hash
            ),
        );
        self.source.clone_from(&artifact.source);
        self.emit(Action::Status(format!("booting {id} {}", artifact.hash)));
        for _ in 0..count {
            self.spawn(id, &artifact);
        }
        self.generations.push(Generation {
            id,
            artifact,
            state: State::Booting,
            app: String::new(),
        });
    }

    fn spawn(&mut self, generation: u64, library: &Artifact) {
        self.spawning.push(generation);
        self.emit(Action::Spawn {
            generation,
            library: library.clone(),
            multiprocess: self.want > 1,
        });
    }

    fn on_spawned(&mut self, generation: u64, pid: Result<i32, String>, now: Instant) {
        if let Some(index) = self.spawning.iter().position(|&g| g == generation) {
            self.spawning.remove(index);
        }
        let state = self.state_of(generation);
        match pid {
            Ok(pid) => {
                let wanted =
                    !self.is_stopping() && matches!(state, Some(State::Booting | State::Live));
                self.workers.push(Worker {
                    pid,
                    generation,
                    ready: false,
                    retiring: !wanted,
                    stopped: false,
                    last_heard: now,
                    heard: false,
                    silenced: false,
                });
                if !wanted {
                    self.signal(pid, Signal::Term);
                }
            }
            Err(e) => {
                let message = format!("cannot start a worker: {e}");
                match state {
                    Some(State::Booting) => self.swap_failed(generation, &message),
                    Some(State::Live) => {
                        self.log(log::Level::Error, message);
                        self.back_off(now);
                    }
                    _ => self.log(log::Level::Debug, message),
                }
            }
        }
    }

    fn on_message(&mut self, pid: i32, message: WorkerMessage, now: Instant) {
        let Some(index) = self.workers.iter().position(|w| w.pid == pid) else {
            return;
        };
        self.workers[index].last_heard = now;
        self.workers[index].heard = true;
        let id = self.workers[index].generation;
        match message {
            WorkerMessage::Ready { name, version } => {
                self.workers[index].ready = true;
                let Some(generation) = self.generations.iter_mut().find(|g| g.id == id) else {
                    return;
                };
                generation.app = format!("{name} {version}");
                match generation.state {
                    State::Live => {
                        self.signal(pid, Signal::Usr1);
                        self.backoff = BACKOFF_MIN;
                        self.start_succeeded();
                    }
                    State::Booting => self.promote_if_ready(id, now),
                    State::Draining | State::Failed => self.signal(pid, Signal::Term),
                }
            }
            WorkerMessage::Error(message) => {
                let message = self.user_facing(id, &message);
                match self.state_of(id) {
                    Some(State::Booting) => self.swap_failed(id, &message),
                    // The worker exits next; its exit starts the back-off.
                    Some(State::Live) => {
                        self.log(
                            log::Level::Error,
                            format!("replacement worker failed to start: {message}"),
                        );
                        self.start_failure_reason(&message);
                    }
                    _ => {}
                }
            }
            WorkerMessage::Stopped => self.workers[index].stopped = true,
            WorkerMessage::Draining => {
                self.workers[index].retiring = true;
                self.log(
                    log::Level::Info,
                    format!("worker {pid} is recycling; starting its replacement"),
                );
            }
            WorkerMessage::Alive => {}
        }
    }

    /// Messages name the user's file, on one line, not the descriptor the worker loaded.
    fn user_facing(&self, id: u64, message: &str) -> String {
        let message = match self.generations.iter().find(|g| g.id == id) {
            Some(g) => message.replace(
                &*worker_library_path().to_string_lossy(),
                &g.artifact.source.to_string_lossy(),
            ),
            None => message.to_owned(),
        };
        message.replace(['\n', '\r'], " ")
    }

    fn promote_if_ready(&mut self, id: u64, now: Instant) {
        if self.trial.as_ref().is_some_and(|t| t.id == id && !t.passed) {
            return self.start_canary_if_ready(id, now);
        }
        if !self.go_if_ready(id, self.want) {
            return;
        }
        let mut old = Vec::new();
        for generation in &mut self.generations {
            if generation.state == State::Live {
                generation.state = State::Draining;
                old.push(generation.id);
            }
        }
        let waiting: Vec<i32> = self
            .workers
            .iter()
            .filter(|w| old.contains(&w.generation))
            .map(|w| w.pid)
            .collect();
        for &pid in &waiting {
            self.signal(pid, Signal::Term);
        }
        if let Some(generation) = self.generations.iter_mut().find(|g| g.id == id) {
            generation.state = State::Live;
        }
        if self.trial.as_ref().is_some_and(|t| t.id == id) {
            self.trial = None;
        }
        self.backoff = BACKOFF_MIN;
        // A new generation is a new start: its predecessor's crash loop is not its own.
        self.start_failures = Default::default();
        self.announce = Some(Announce {
            id,
            waiting,
            old,
            deadline: now + STOPPED_WAIT,
        });
        let first = !self.served;
        self.served = true;
        self.announce_if_settled(now);
        if first {
            self.emit(Action::Serving);
        }
    }

    /// If generation `id` has at least `count` workers, none still being spawned, all ready:
    /// tell them to accept (USR1) and return true.
    fn go_if_ready(&mut self, id: u64, count: usize) -> bool {
        let booting: Vec<&Worker> = self.workers.iter().filter(|w| w.generation == id).collect();
        if booting.len() < count || self.spawning.contains(&id) || !booting.iter().all(|w| w.ready)
        {
            return false;
        }
        let go: Vec<i32> = booting.iter().map(|w| w.pid).collect();
        for pid in go {
            self.signal(pid, Signal::Usr1);
        }
        true
    }

    /// Log the swap and write `ready G` once no old worker can accept any more (each said
    /// `Stopped` or is gone) or `STOPPED_WAIT` passed, then run a swap that was asked meanwhile.
    fn announce_if_settled(&mut self, now: Instant) {
        let Some(announce) = &mut self.announce else {
            return;
        };
        let workers = &self.workers;
        announce
            .waiting
            .retain(|pid| workers.iter().any(|w| w.pid == *pid && !w.stopped));
        let late = now >= announce.deadline;
        if !announce.waiting.is_empty() && !late {
            return;
        }
        let Some(announce) = self.announce.take() else {
            return;
        };
        if !announce.waiting.is_empty() {
            self.log(
                log::Level::Warn,
                format!(
                    "old worker(s) {:?} did not confirm they stopped accepting within {STOPPED_WAIT:?}",
                    announce.waiting
                ),
            );
        }
        let id = announce.id;
        if let Some(generation) = self.generations.iter().find(|g| g.id == id) {
            let hash = generation.artifact.hash.clone();
            let text = format!(
                "generation {id} ready: {} worker(s) serving {} from {} (sha {hash}){}",
                self.want,
                generation.app,
                generation.artifact.source.display(),
                match announce.old.as_slice() {
                    [] => String::new(),
                    ids => format!("; draining generation {ids:?}"),
                }
            );
            self.log(log::Level::Info, text);
            self.emit(Action::Status(format!("ready {id} {hash}")));
            if id != FIRST_GENERATION {
                self.swaps.ok += 1;
            }
        }
        self.run_queued_swap();
    }

    fn swap_failed(&mut self, id: u64, message: &str) {
        if self.trial.as_ref().is_some_and(|t| t.id == id) {
            self.trial = None;
        }
        if let Some(generation) = self.generations.iter_mut().find(|g| g.id == id) {
            generation.state = State::Failed;
        }
        let doomed: Vec<i32> = self
            .workers
            .iter()
            .filter(|w| w.generation == id)
            .map(|w| w.pid)
            .collect();
        for pid in doomed {
            self.signal(pid, Signal::Term);
        }
        let (level, text) = match self.generations.iter().find(|g| g.state == State::Live) {
            Some(live) => (
                log::Level::Error,
                format!(
                    "hot swap failed: {message}; generation {} keeps serving {}",
                    live.id, live.app
                ),
            ),
            // Nothing served yet: the failure is the master's exit message, not a log line.
            None => (
                log::Level::Debug,
                format!("generation {id} failed: {message}"),
            ),
        };
        self.log(level, text);
        if self.served {
            self.swaps.failed += 1;
            self.swaps.last_failure = Some(message.to_owned());
        }
        self.emit(Action::Status(format!("failed {id} {message}")));
        self.run_queued_swap();
        let serving = self.generations.iter().any(|g| g.state == State::Live);
        if !self.served && !serving && !self.is_booting() {
            self.finish(Err(message.to_owned()));
        }
    }

    fn run_queued_swap(&mut self) {
        if std::mem::take(&mut self.swap_queued) && !self.is_stopping() {
            self.request_swap();
        }
    }

    fn state_of(&self, id: u64) -> Option<State> {
        self.generations
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.state)
    }

    fn signal_all(&mut self, signal: Signal) {
        let pids: Vec<i32> = self.workers.iter().map(|w| w.pid).collect();
        for pid in pids {
            self.signal(pid, signal);
        }
    }

    fn finish(&mut self, outcome: Result<(), String>) {
        self.finished = true;
        self.emit(Action::Exit(outcome));
    }

    fn signal(&mut self, pid: i32, signal: Signal) {
        self.emit(Action::Signal { pid, signal });
    }

    fn log(&mut self, level: log::Level, text: String) {
        self.emit(Action::Log { level, text });
    }

    fn emit(&mut self, action: Action) {
        self.actions.push(action);
    }
}

#[cfg(test)]
mod tests;
