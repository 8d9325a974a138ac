//! The master: owns the listening socket, starts generations of workers, swaps them
//! transactionally, replaces the dead, and never loads app code itself.
//!
//! ```text
//!  HUP / --reload ─▶ copy LIB (by hash) ─▶ gen N+1 workers boot ─▶ all "ready"? ─┬─ yes ─▶ USR1 (go) to N+1,
//!                                                                                 │        TERM (drain) to N
//!                                                                                 └─ no ──▶ stop N+1; N keeps serving
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU};

use super::artifact::{private_dir, remove_stale_dirs, Artifact};
use super::children::Worker;
use super::process::{describe_exit, high_fd, jitter, signal_pid, status_path};
use super::reload::FileWatch;
use crate::app::loader::LoadError;
use crate::app::target::AppTarget;
use crate::cli::ServeArgs;
use crate::exit::HARAKIRI;
use crate::server;

/// How often the master looks at its children, pipes, signals and the watched file.
const TICK: Duration = Duration::from_millis(50);
/// A changed library must stay unchanged this long before it is loaded (half-copied files).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a swap waits for the old workers to say they stopped accepting before it is
/// announced anyway (they were told; a wedged one is killed by its own graceful timeout).
const STOPPED_WAIT: Duration = Duration::from_secs(3);

/// Why the master could not start serving.
#[derive(Debug)]
pub(crate) enum MasterError {
    Load(LoadError),
    /// The first generation failed to boot; the worker's own message.
    Boot(String),
    Bind {
        addr: SocketAddr,
        source: io::Error,
    },
    Io(&'static str, io::Error),
}

impl fmt::Display for MasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterError::Load(e) => write!(f, "{e}"),
            MasterError::Boot(message) => write!(f, "{message}"),
            MasterError::Bind { addr, source } => write!(
                f,
                "cannot listen on {addr}: {source} (is another server using it? pick one with --bind)"
            ),
            MasterError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for MasterError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GenState {
    Booting,
    Live,
    Draining,
    Failed,
}

struct Generation {
    id: u64,
    artifact: Artifact,
    state: GenState,
    app: String,
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

/// Run the master until it is told to stop. Errors only before the first generation serves.
pub(crate) fn run(args: &ServeArgs) -> Result<(), MasterError> {
    let spec = args.app.as_deref().unwrap_or_default();
    let target = AppTarget::parse(spec).map_err(|e| MasterError::Load(e.into()))?;
    let source = target.resolve().map_err(|e| MasterError::Load(e.into()))?;
    let listener = server::bind(args.bind).map_err(|source| MasterError::Bind {
        addr: args.bind,
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| MasterError::Io("listener address", e))?;
    let signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGTTIN, SIGTTOU])
            .map_err(|e| MasterError::Io("cannot install signal handlers", e))?;
    remove_stale_dirs();
    let exe =
        std::env::current_exe().map_err(|e| MasterError::Io("cannot find my own executable", e))?;
    let mut master = Master {
        listen_fd: high_fd(listener).map_err(|e| MasterError::Io("listener", e))?,
        exe,
        args: args.clone(),
        symbol: target.symbol.clone(),
        source: source.clone(),
        dir: private_dir(),
        generations: Vec::new(),
        workers: Vec::new(),
        next_id: 1,
        want: args.workers.max(1),
        backoff: BACKOFF_MIN,
        next_spawn: Instant::now(),
        swap_queued: false,
        stop: None,
        watch: FileWatch::new(&source),
        last_failure: None,
        announce: None,
    };
    if let Some(pid_file) = &args.pid {
        fs::write(pid_file, format!("{}\n", std::process::id()))
            .map_err(|e| MasterError::Io("cannot write --pid file", e))?;
    }
    let result = master.serve(signals, local);
    master.cleanup();
    result
}

struct Master {
    listen_fd: RawFd,
    exe: PathBuf,
    args: ServeArgs,
    symbol: String,
    source: PathBuf,
    dir: PathBuf,
    generations: Vec<Generation>,
    workers: Vec<Worker>,
    next_id: u64,
    want: usize,
    backoff: Duration,
    next_spawn: Instant,
    swap_queued: bool,
    /// Set once a stop was asked: when to stop waiting and kill.
    stop: Option<Instant>,
    /// --reload: when LIB changed.
    watch: FileWatch,
    last_failure: Option<String>,
    announce: Option<Announce>,
}

impl Master {
    fn serve(
        &mut self,
        mut signals: signal_hook::iterator::Signals,
        local: SocketAddr,
    ) -> Result<(), MasterError> {
        self.start_generation().map_err(MasterError::Boot)?;
        let mut announced = false;
        loop {
            for signal in signals.pending() {
                self.on_signal(signal);
            }
            self.read_pipes();
            self.reap();
            self.announce_if_settled();
            if !announced && self.live().is_some() {
                announced = true;
                println!("Serving HTTP on {local} ...");
                use std::io::Write;
                let _ = io::stdout().flush();
            }
            if !announced && self.generations.iter().all(|g| g.state == GenState::Failed) {
                let message = self
                    .last_failure
                    .take()
                    .unwrap_or_else(|| "the app failed to start".into());
                return Err(MasterError::Boot(message));
            }
            match self.stop {
                Some(deadline) => {
                    if self.workers.is_empty() {
                        log::info!("all workers stopped; exiting");
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        log::warn!(
                            "{} worker(s) did not stop in time; killing them",
                            self.workers.len()
                        );
                        for worker in &self.workers {
                            signal_pid(worker.pid, libc::SIGKILL);
                        }
                        self.stop = Some(Instant::now() + Duration::from_secs(5));
                    }
                }
                None => {
                    self.watch_file();
                    self.reconcile();
                }
            }
            self.wait_for_input();
        }
    }

    fn live(&self) -> Option<&Generation> {
        self.generations.iter().find(|g| g.state == GenState::Live)
    }

    fn generation_mut(&mut self, id: u64) -> Option<&mut Generation> {
        self.generations.iter_mut().find(|g| g.id == id)
    }

    fn on_signal(&mut self, signal: i32) {
        match signal {
            SIGHUP if self.stop.is_none() => {
                log::info!("SIGHUP: hot swap of {}", self.source.display());
                self.request_swap();
            }
            SIGTERM | SIGINT if self.stop.is_none() => {
                log::info!("signal {signal}: graceful stop");
                for worker in &self.workers {
                    signal_pid(worker.pid, libc::SIGTERM);
                }
                let grace =
                    Duration::from_secs(self.args.tuning.graceful_timeout) + Duration::from_secs(2);
                self.stop = Some(Instant::now() + grace);
            }
            SIGQUIT => {
                log::info!("SIGQUIT: immediate stop");
                for worker in &self.workers {
                    signal_pid(worker.pid, libc::SIGQUIT);
                }
                self.stop = Some(Instant::now() + Duration::from_secs(1));
            }
            SIGTTIN if self.stop.is_none() => {
                self.want += 1;
                log::info!("SIGTTIN: {} worker(s)", self.want);
            }
            SIGTTOU if self.stop.is_none() => {
                self.want = (self.want - 1).max(1);
                log::info!("SIGTTOU: {} worker(s)", self.want);
            }
            _ => {}
        }
    }

    fn request_swap(&mut self) {
        if self.announce.is_some()
            || self
                .generations
                .iter()
                .any(|g| g.state == GenState::Booting)
        {
            // One swap at a time; the newest request runs once the current one settles.
            self.swap_queued = true;
            return;
        }
        if let Err(message) = self.start_generation() {
            self.swap_failed(self.next_id - 1, &message);
        }
    }

    /// Copy the live library and boot a full set of workers on the copy.
    fn start_generation(&mut self) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let source = AppTarget::parse(self.args.app.as_deref().unwrap_or_default())
            .and_then(|t| t.resolve())
            .map_err(|e| e.to_string())?;
        let artifact = Artifact::prepare(&source, &self.dir).map_err(|e| e.to_string())?;
        // The first boot is reported by its outcome alone: "Serving HTTP" or one error line.
        let level = if id == 1 {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "generation {id}: booting {} worker(s) on {} (sha {})",
            self.want,
            source.display(),
            artifact.hash
        );
        self.source = source;
        self.write_status(&format!("booting {id} {}", artifact.hash));
        self.generations.push(Generation {
            id,
            artifact,
            state: GenState::Booting,
            app: String::new(),
        });
        for _ in 0..self.want {
            if let Err(e) = self.spawn(id) {
                return Err(format!("cannot start a worker: {e}"));
            }
        }
        Ok(())
    }

    fn spawn(&mut self, id: u64) -> io::Result<()> {
        let Some(generation) = self.generations.iter().find(|g| g.id == id) else {
            return Ok(());
        };
        let tuning = &self.args.tuning;
        let max_requests = match tuning.max_requests {
            0 => 0,
            n => n + jitter(tuning.max_requests_jitter),
        };
        let mut args = vec![
            "--lib".into(),
            generation.artifact.copy.clone().into_os_string(),
            "--symbol".into(),
            self.symbol.clone().into(),
            "--generation".into(),
            id.to_string().into(),
        ];
        args.extend(tuning.to_args(max_requests).into_iter().map(Into::into));
        if self.want > 1 {
            args.push("--multiprocess".into());
        }
        let worker = Worker::spawn(&self.exe, &args, self.listen_fd, id)?;
        self.workers.push(worker);
        Ok(())
    }

    fn read_pipes(&mut self) {
        let mut lines = Vec::new();
        for worker in &mut self.workers {
            lines.extend(
                worker
                    .read_lines()
                    .into_iter()
                    .map(|line| (worker.pid, line)),
            );
        }
        for (pid, line) in lines {
            self.on_line(pid, &line);
        }
    }

    fn on_line(&mut self, pid: i32, line: &str) {
        let Some(worker) = self.workers.iter_mut().find(|w| w.pid == pid) else {
            return;
        };
        let id = worker.generation;
        let mut fields = line.splitn(3, '\t');
        match fields.next() {
            Some("ready") => {
                worker.ready = true;
                let app = format!(
                    "{} {}",
                    fields.next().unwrap_or("?"),
                    fields.next().unwrap_or("?")
                );
                let Some(generation) = self.generation_mut(id) else {
                    return;
                };
                generation.app = app;
                match generation.state {
                    GenState::Live => {
                        signal_pid(pid, libc::SIGUSR1);
                        self.backoff = BACKOFF_MIN;
                    }
                    GenState::Booting => self.promote_if_ready(id),
                    GenState::Draining | GenState::Failed => signal_pid(pid, libc::SIGTERM),
                }
            }
            Some("error") => {
                let message = self.user_facing(id, fields.next().unwrap_or("unknown error"));
                match self
                    .generations
                    .iter()
                    .find(|g| g.id == id)
                    .map(|g| g.state)
                {
                    Some(GenState::Booting) => self.swap_failed(id, &message),
                    Some(GenState::Live) => {
                        log::error!("replacement worker failed to start: {message}");
                        self.back_off();
                    }
                    _ => {}
                }
            }
            Some("stopped") => worker.stopped = true,
            Some("draining") => {
                worker.retiring = true;
                log::info!("worker {pid} is recycling; starting its replacement");
            }
            _ => log::debug!("worker {pid}: {line}"),
        }
    }

    /// Messages name the user's file, not our private copy.
    fn user_facing(&self, id: u64, message: &str) -> String {
        match self.generations.iter().find(|g| g.id == id) {
            Some(g) => message.replace(
                &*g.artifact.copy.to_string_lossy(),
                &g.artifact.source.to_string_lossy(),
            ),
            None => message.to_owned(),
        }
    }

    fn promote_if_ready(&mut self, id: u64) {
        let booting: Vec<&Worker> = self.workers.iter().filter(|w| w.generation == id).collect();
        if booting.len() < self.want || !booting.iter().all(|w| w.ready) {
            return;
        }
        for worker in &booting {
            signal_pid(worker.pid, libc::SIGUSR1);
        }
        let mut old = Vec::new();
        for generation in &mut self.generations {
            if generation.state == GenState::Live {
                generation.state = GenState::Draining;
                old.push(generation.id);
            }
        }
        for worker in self.workers.iter().filter(|w| old.contains(&w.generation)) {
            signal_pid(worker.pid, libc::SIGTERM);
        }
        let waiting = self
            .workers
            .iter()
            .filter(|w| old.contains(&w.generation))
            .map(|w| w.pid)
            .collect();
        let Some(generation) = self.generation_mut(id) else {
            return;
        };
        generation.state = GenState::Live;
        self.backoff = BACKOFF_MIN;
        self.announce = Some(Announce {
            id,
            waiting,
            old,
            deadline: Instant::now() + STOPPED_WAIT,
        });
        self.announce_if_settled();
    }

    /// Log the swap and write `ready G` once no old worker can accept any more (each said
    /// `stopped` or is gone), then run a swap that was asked meanwhile.
    fn announce_if_settled(&mut self) {
        let Some(announce) = &mut self.announce else {
            return;
        };
        let workers = &self.workers;
        announce
            .waiting
            .retain(|pid| workers.iter().any(|w| w.pid == *pid && !w.stopped));
        let late = Instant::now() >= announce.deadline;
        if !announce.waiting.is_empty() && !late {
            return;
        }
        let Some(announce) = self.announce.take() else {
            return;
        };
        if late && !announce.waiting.is_empty() {
            log::warn!(
                "old worker(s) {:?} did not confirm they stopped accepting within {STOPPED_WAIT:?}",
                announce.waiting
            );
        }
        let id = announce.id;
        let Some(generation) = self.generations.iter().find(|g| g.id == id) else {
            self.settle_swap();
            return;
        };
        let (app, hash) = (generation.app.clone(), generation.artifact.hash.clone());
        log::info!(
            "generation {id} ready: {} worker(s) serving {app} from {} (sha {hash}){}",
            self.want,
            self.source.display(),
            match announce.old.as_slice() {
                [] => String::new(),
                ids => format!("; draining generation {ids:?}"),
            }
        );
        self.write_status(&format!("ready {id} {hash}"));
        self.settle_swap();
    }

    fn swap_failed(&mut self, id: u64, message: &str) {
        if let Some(generation) = self.generation_mut(id) {
            generation.state = GenState::Failed;
        }
        for worker in self.workers.iter().filter(|w| w.generation == id) {
            signal_pid(worker.pid, libc::SIGTERM);
        }
        match self.live() {
            Some(live) => log::error!(
                "hot swap failed: {message}; generation {} keeps serving {}",
                live.id,
                live.app
            ),
            None => log::debug!("generation {id} failed: {message}"),
        }
        self.write_status(&format!("failed {id} {message}"));
        self.last_failure = Some(message.to_owned());
        self.settle_swap();
    }

    fn settle_swap(&mut self) {
        if std::mem::take(&mut self.swap_queued) && self.stop.is_none() {
            self.request_swap();
        }
    }

    /// Collect exited workers and decide what each exit means.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with WNOHANG on any child; status is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            self.read_pipes(); // a last "error" line must be seen before the exit is judged
            let Some(index) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let worker = self.workers.remove(index);
            let how = describe_exit(status);
            let state = self
                .generations
                .iter()
                .find(|g| g.id == worker.generation)
                .map(|g| g.state);
            let lib = self.source.display().to_string();
            match state {
                Some(GenState::Booting) => {
                    let message = format!(
                        "worker {pid} {how} while loading {lib}:{} (a crash in the library's initialisers or init)",
                        self.symbol
                    );
                    self.swap_failed(worker.generation, &message);
                }
                Some(GenState::Live) if self.stop.is_none() => {
                    if worker.retiring && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
                    {
                        log::info!("worker {pid} recycled");
                    } else if libc::WIFEXITED(status)
                        && libc::WEXITSTATUS(status) == i32::from(HARAKIRI)
                    {
                        log::error!("worker {pid} (generation {}, {lib}) was stuck in a request past --timeout and exited; replacing it", worker.generation);
                    } else {
                        log::error!(
                            "worker {pid} (generation {}, {lib}) {how}; replacing it",
                            worker.generation
                        );
                    }
                    if !worker.ready {
                        self.back_off();
                    }
                }
                Some(GenState::Draining) => {
                    log::info!(
                        "worker {pid} of generation {} drained and {how}",
                        worker.generation
                    );
                }
                _ => log::debug!("worker {pid} {how}"),
            }
            self.forget_finished_generations();
        }
    }

    fn back_off(&mut self) {
        self.next_spawn = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn forget_finished_generations(&mut self) {
        let workers = &self.workers;
        self.generations.retain(|g| {
            matches!(g.state, GenState::Live | GenState::Booting)
                || workers.iter().any(|w| w.generation == g.id)
        });
    }

    /// Keep the live generation at `want` serving workers (respawn, TTIN/TTOU).
    fn reconcile(&mut self) {
        let Some(live) = self.live().map(|g| g.id) else {
            return;
        };
        let serving: Vec<i32> = self
            .workers
            .iter()
            .filter(|w| w.generation == live && !w.retiring)
            .map(|w| w.pid)
            .collect();
        if serving.len() > self.want {
            for pid in &serving[self.want..] {
                signal_pid(*pid, libc::SIGTERM);
                if let Some(worker) = self.workers.iter_mut().find(|w| w.pid == *pid) {
                    worker.retiring = true;
                }
            }
        } else if serving.len() < self.want && Instant::now() >= self.next_spawn {
            if let Err(e) = self.spawn(live) {
                log::error!("cannot start a worker: {e}");
                self.back_off();
            }
        }
    }

    fn watch_file(&mut self) {
        if !self.args.reload {
            return;
        }
        let booting = self
            .generations
            .iter()
            .any(|g| g.state == GenState::Booting);
        if self.watch.changed(&self.source, !booting) {
            log::info!("--reload: {} changed", self.source.display());
            self.request_swap();
        }
    }

    fn wait_for_input(&self) {
        let mut fds: Vec<libc::pollfd> = self
            .workers
            .iter()
            .map(|w| libc::pollfd {
                fd: w.pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of fds.len() pollfds for the duration of the call.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                TICK.as_millis() as i32,
            )
        };
    }

    fn write_status(&self, status: &str) {
        let Some(pid_file) = &self.args.pid else {
            return;
        };
        let path = status_path(pid_file);
        let tmp = path.with_extension("status.tmp");
        let written = fs::write(&tmp, format!("{status}\n")).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            log::warn!("cannot write {}: {e}", path.display());
        }
    }

    fn cleanup(&mut self) {
        if let Some(pid_file) = &self.args.pid {
            let _ = fs::remove_file(pid_file);
            let _ = fs::remove_file(status_path(pid_file));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
