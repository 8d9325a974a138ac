//! The master: owns the listening sockets (`crate::listen::open`), runs the generation state
//! machine (`generation.rs`, where every decision is made) and does its I/O: it turns signals,
//! the workers' pipe messages, their exits and `--reload` file changes into events, and carries
//! out the actions — reading the library into memory, starting workers, signalling them,
//! writing the status file, telling systemd (`crate::listen::notify`), closing its copies of
//! the listeners when a stop begins. It holds `--pid FILE` locked for its whole life
//! (`pid_file.rs`) and removes the unix socket files it created when it exits; with `--stats`
//! it gives each worker a counter page and answers scrapes from this same loop
//! (`crate::stats`). On USR2 it starts a new master and hands it all of these (`upgrade.rs`).
//! It never loads app code itself. Starting one worker is `master/spawn.rs`; which signals it
//! acts on or ignores is `master/signals.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use super::args::ServeArgs;
use super::artifact::{Artifact, FileStamp};
use super::children::{WorkerProcess, FD_FLOOR};
use super::effective::EffectiveConfig;
use super::generation::{Action, Config, Event, Generations, SwapCause};
use super::pid_file::{PidFile, PidFileError};
use super::process::status_path;
use super::reload::FileWatch;
use super::reload_paths::PathsWatch;
use super::reread::{reread, Reparse};
use super::upgrade::{Handoff, Upgrading};
use crate::app::loader::LoadError;
use crate::app::target::AppTarget;
use crate::listen::notify::Notifier;
use crate::listen::open::{open_all, ListenError, Listeners, SocketFile};
use crate::listen::{systemd, ListenerOptions};
use crate::privilege::{self, PrivilegeError, RunAs};
use crate::stats::{Latency, Stats, StatsAddr};
use crate::sys::process::{dup_at_or_above, kill, reap_any, wait_readable, Signal};
use crate::tls::TlsMaterial;

mod binary_upgrade;
mod signals;
mod spawn;

use signals::{event_for_signal, log_ignored, HANDLED_SIGNALS, IGNORED_SIGNALS};

/// The longest the master sleeps between looks at its signals, children and the watched file.
const TICK: Duration = Duration::from_millis(50);
/// How long the workers of a first generation that failed to boot may take to exit before the
/// master kills them and exits itself.
const BOOT_FAILURE_WAIT: Duration = Duration::from_secs(2);

/// Why the master could not start serving.
#[derive(Debug)]
pub(crate) enum MasterError {
    Load(LoadError),
    /// `--pid FILE` is another running master's (or cannot be written).
    PidFile(PidFileError),
    /// The first generation failed to boot; the worker's own message.
    Boot(String),
    Listen(ListenError),
    /// `--stats ADDR` cannot be listened on.
    Stats {
        addr: StatsAddr,
        source: io::Error,
    },
    Io(&'static str, io::Error),
    Logging(crate::logging::LogSetupError),
    /// A listener asks for TLS but no certificate is given.
    TlsWithoutCertificate(String),
    /// `--user`/`--group`.
    Privilege(PrivilegeError),
}

impl fmt::Display for MasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterError::Load(e) => write!(f, "{e}"),
            MasterError::PidFile(e) => write!(f, "{e}"),
            MasterError::Boot(message) => write!(f, "{message}"),
            MasterError::TlsWithoutCertificate(listener) => write!(
                f,
                "listener {listener} asks for tls, but no certificate is given: add --certfile and --keyfile"
            ),
            MasterError::Listen(e) => write!(f, "{e}"),
            MasterError::Stats { addr, source } => {
                let addr = match addr {
                    StatsAddr::Unix(path) => format!("unix:{}", path.display()),
                    StatsAddr::Tcp(addr) => addr.clone(),
                };
                write!(f, "cannot serve --stats on {addr}: {source}")
            }
            MasterError::Io(what, e) => write!(f, "{what}: {e}"),
            MasterError::Logging(e) => write!(f, "{e}"),
            MasterError::Privilege(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for MasterError {}

/// Run the master until it is told to stop. Errors only before the first generation serves.
pub(crate) fn run(
    args: &ServeArgs,
    effective: Option<&EffectiveConfig>,
    reparse: Reparse,
) -> Result<(), MasterError> {
    let spec = args.app.as_deref().unwrap_or_default();
    // The new master of a binary upgrade (USR2) binds nothing: the old one hands it all.
    let mut handoff = Handoff::from_env().map_err(|reason| {
        MasterError::Io(
            "binary upgrade",
            io::Error::new(io::ErrorKind::InvalidInput, reason),
        )
    })?;
    // First: a second master on the same --pid must be refused before it binds or copies.
    let pid_file = match (&args.pid, handoff.as_mut().and_then(|h| h.pid_file.take())) {
        (Some(path), Some(fd)) => Some(PidFile::adopt(path, fd).map_err(MasterError::PidFile)?),
        (Some(path), None) => Some(PidFile::acquire(path).map_err(MasterError::PidFile)?),
        (None, _) => None,
    };
    args.tuning
        .logging
        .check_access_logfile()
        .map_err(MasterError::Logging)?;
    let run_as = args.privilege.resolve().map_err(MasterError::Privilege)?;
    privilege::prepare_logs(run_as.as_ref(), &args.tuning.logging)
        .map_err(MasterError::Privilege)?;
    let target = AppTarget::parse(spec).map_err(|e| MasterError::Load(e.into()))?;
    let source = target.resolve().map_err(|e| MasterError::Load(e.into()))?;
    let activated = systemd::from_env().map_err(|reason| {
        MasterError::Io(
            "socket activation",
            io::Error::new(io::ErrorKind::InvalidInput, reason),
        )
    })?;
    let opened = match handoff.as_mut() {
        // The unix socket files stay the old master's until this one serves (`take_over`).
        Some(handoff) => Listeners {
            open: std::mem::take(&mut handoff.listeners),
            files: Vec::new(),
        },
        None => open_all(&args.listen, activated).map_err(MasterError::Listen)?,
    };
    if let Some(run_as) = &run_as {
        for file in &opened.files {
            run_as
                .hand_over_socket(file.path())
                .map_err(MasterError::Privilege)?;
        }
    }
    let stats = match Stats::start(&args.stats, handoff.as_mut().and_then(|h| h.stats.take())) {
        Ok(stats) => stats,
        Err(source) => {
            let addr = args
                .stats
                .stats
                .clone()
                .unwrap_or(StatsAddr::Tcp(String::new()));
            return Err(MasterError::Stats { addr, source });
        }
    };
    let signals = Signals::new(HANDLED_SIGNALS.iter().chain(IGNORED_SIGNALS))
        .map_err(|e| MasterError::Io("cannot install signal handlers", e))?;
    let exe =
        std::env::current_exe().map_err(|e| MasterError::Io("cannot find my own executable", e))?;
    let mut listeners = Vec::with_capacity(opened.open.len());
    let mut names = Vec::with_capacity(opened.open.len());
    let certificate = args.tls.files().is_some();
    if let Some(open) = opened.open.iter().find(|o| o.options.tls && !certificate) {
        return Err(MasterError::TlsWithoutCertificate(open.name.clone()));
    }
    // --certfile without a `tls` listener option means every listener (gunicorn's meaning);
    // with one, only the listeners that say `tls`.
    let every_listener_tls = certificate && !opened.open.iter().any(|o| o.options.tls);
    for mut open in opened.open {
        open.options.tls |= every_listener_tls;
        // --proxy-protocol: the `proxy` option on every listener.
        open.options.proxy_protocol |= args.tuning.proxy.proxy_protocol;
        // One copy only (the original closes here): a stop closes it, and a second one would
        // keep the socket listening.
        let socket = dup_at_or_above(open.socket.as_fd(), FD_FLOOR)
            .map_err(|e| MasterError::Io("cannot move a listener", e))?;
        listeners.push((socket, open.options));
        names.push(open.name);
    }
    let machine = Generations::new(Config {
        workers: args.workers,
        graceful_timeout: Duration::from_secs(args.tuning.graceful_timeout),
        symbol: target.symbol.clone(),
        source: source.clone(),
        heartbeat_timeout: args.tuning.timeout.duration(),
        canary: args.canary.plan(),
    });
    let mut master = Master {
        listeners,
        names,
        notifier: Notifier::from_env(),
        exe,
        args: args.clone(),
        argv: std::env::args_os().collect(),
        reparse,
        config: effective.cloned().map(Arc::new),
        configs: BTreeMap::new(),
        prepared_once: false,
        symbol: target.symbol.clone(),
        watch: FileWatch::new(FileStamp::of(&source), Instant::now()),
        paths_watch: PathsWatch::new(&args.reload_paths, args.pid.as_deref(), Instant::now()),
        source,
        workers: Vec::new(),
        machine,
        stats,
        run_as,
        canary_start: None,
        outcome: None,
        pid_file,
        socket_files: opened.files,
        handoff,
        upgrading: None,
        handed_over: false,
        held_status: None,
    };
    let result = master.serve(signals);
    // Removes the pid and status files, then releases the lock.
    drop(master.pid_file.take());
    result
}

struct Master {
    /// The listening sockets every worker accepts on, and their options, kept above the
    /// descriptors they inherit; empty once a stop closed them.
    listeners: Vec<(OwnedFd, ListenerOptions)>,
    /// What each listener listens on, for the `Serving HTTP on` line.
    names: Vec<String>,
    notifier: Notifier,
    exe: PathBuf,
    /// The options the master started with.
    args: ServeArgs,
    /// Its command line, which a swap parses again to re-read `--config` (`reread.rs`).
    argv: Vec<OsString>,
    reparse: Reparse,
    /// What the master started with, as `--print-config` describes it.
    config: Option<Arc<EffectiveConfig>>,
    /// Each generation's, when a swap re-read `--config` for it (`GET /config` on the stats
    /// socket shows the live generation's).
    configs: BTreeMap<u64, Arc<EffectiveConfig>>,
    /// The first generation's library was prepared: later ones re-read `--config`.
    prepared_once: bool,
    symbol: String,
    /// The library the user named, as last resolved (what `--reload` watches).
    source: PathBuf,
    workers: Vec<WorkerProcess>,
    machine: Generations,
    watch: FileWatch<FileStamp>,
    /// `--reload-path`s, if any.
    paths_watch: Option<PathsWatch>,
    /// `--stats`: the listener and the workers' counter pages.
    stats: Option<Stats>,
    /// `--user`: the identity every worker takes (resolved once, at startup).
    run_as: Option<RunAs>,
    /// Every generation's durations when the canary's window opened.
    canary_start: Option<BTreeMap<u64, Latency>>,
    /// Set by `Action::Exit`.
    outcome: Option<Result<(), String>>,
    /// `--pid FILE`, locked.
    pid_file: Option<PidFile>,
    /// The unix socket files of the listeners, removed when the master returns, after its
    /// workers are gone.
    socket_files: Vec<SocketFile>,
    /// This is the new master of a binary upgrade, not serving yet: what the old one handed.
    handoff: Option<Handoff>,
    /// A new master (USR2) started by this one, not serving yet.
    upgrading: Option<Upgrading>,
    /// A new master serves: this one drains and leaves every shared file to it.
    handed_over: bool,
    /// The new master's last status line, written into `FILE.status` once it serves.
    held_status: Option<String>,
}

impl Master {
    fn serve(&mut self, mut signals: Signals) -> Result<(), MasterError> {
        self.apply(Event::Start);
        loop {
            for signal in signals.pending() {
                if signal == SIGUSR1 {
                    self.reopen_logs();
                } else if signal == SIGUSR2 {
                    self.start_upgrade();
                } else if let Some(event) = event_for_signal(signal) {
                    self.apply(event);
                } else {
                    log_ignored(signal);
                }
            }
            self.reap();
            self.watch_upgrade();
            self.watch_file();
            // Right before the tick, which judges silence: whatever the workers said while the
            // master was busy above (a library copy can take a while) is news, not silence.
            self.read_pipes();
            self.apply(Event::Tick);
            self.notifier.tick(Instant::now());
            if let Some(stats) = &mut self.stats {
                let config = in_force(&self.machine, &self.configs, self.config.as_deref());
                stats.serve(&self.machine, config.map(EffectiveConfig::text));
            }
            // Summaries of repeated log lines whose window is over (crate::log_limit).
            log::logger().flush();
            if let Some(outcome) = self.outcome.take() {
                if outcome.is_err() {
                    // The workers of the failed first generation were told to exit: let them,
                    // so none writes to the terminal after the master's one error line.
                    self.wait_for_workers_to_exit();
                }
                return outcome.map_err(MasterError::Boot);
            }
            self.wait_for_input();
        }
    }

    /// Reaps workers until none is left, killing those still there after `BOOT_FAILURE_WAIT`.
    fn wait_for_workers_to_exit(&mut self) {
        let deadline = Instant::now() + BOOT_FAILURE_WAIT;
        while !self.workers.is_empty() {
            self.reap();
            if Instant::now() >= deadline {
                for worker in &self.workers {
                    if let Err(e) = kill(worker.pid, Signal::Kill) {
                        log::debug!("cannot kill worker {}: {e}", worker.pid);
                    }
                }
                std::thread::sleep(TICK);
                self.reap();
                return;
            }
            self.wait_for_input();
        }
    }

    /// Feed `event` to the state machine and carry out what follows, answering its questions
    /// (read the library, start a worker) with further events.
    fn apply(&mut self, event: Event) {
        let mut actions: VecDeque<Action> = self.machine.handle(event, Instant::now()).into();
        while let Some(action) = actions.pop_front() {
            let answer = match action {
                Action::PrepareLibrary => Some(Event::Prepared(self.prepare())),
                Action::Spawn {
                    generation,
                    library,
                    multiprocess,
                } => Some(Event::Spawned {
                    generation,
                    pid: self
                        .spawn(generation, &library, multiprocess)
                        .map_err(|e| e.to_string()),
                }),
                Action::Signal { pid, signal } => {
                    if let Err(e) = kill(pid, signal) {
                        // A worker that exited and is not reaped yet: its exit comes next.
                        log::debug!("cannot send {signal} to worker {pid}: {e}");
                    }
                    None
                }
                Action::ResetSourcePin(library) => {
                    if let Err(e) = library.pin.reset() {
                        log::warn!("cannot reset generation's source pin: {e}");
                    }
                    None
                }
                Action::Status(line) => {
                    self.write_status(&line);
                    self.notifier.status_line(&line);
                    None
                }
                Action::Log { level, text } => {
                    log::log!(level, "{text}");
                    None
                }
                Action::Serving => {
                    self.take_over();
                    println!("Serving HTTP on {} ...", self.names.join(", "));
                    if let Err(e) = io::stdout().flush() {
                        log::warn!("cannot write to stdout: {e}");
                    }
                    self.notifier.serving();
                    privilege::warn_if_root(self.run_as.as_ref());
                    None
                }
                Action::CloseListener => {
                    // The workers close theirs as they drain: then the sockets are closed, and
                    // the kernel refuses new clients instead of queueing them.
                    self.listeners.clear();
                    self.notifier.stopping();
                    None
                }
                Action::CanaryStarted { .. } => {
                    self.canary_start = self.stats.as_ref().map(Stats::latency);
                    None
                }
                Action::JudgeCanary { generation, old } => Some(Event::CanaryVerdict {
                    generation,
                    verdict: self.judge_canary(generation, old),
                }),
                Action::Exit(outcome) => {
                    self.outcome = Some(outcome);
                    None
                }
            };
            if let Some(event) = answer {
                actions.extend(self.machine.handle(event, Instant::now()));
            }
        }
    }

    /// Resolve the app again (LIB may name a new file) and read it for a new generation.
    /// Canary `generation` against `old` over the window since `CanaryStarted`.
    fn judge_canary(&mut self, generation: u64, old: u64) -> Result<String, String> {
        let (Some(stats), Some(start)) = (&self.stats, self.canary_start.take()) else {
            return Err("no statistics to judge the canary by".into());
        };
        let end = stats.latency();
        let window = |id: u64| {
            let zero = Latency::default();
            let at_end = end.get(&id).unwrap_or(&zero);
            at_end.since(start.get(&id).unwrap_or(&zero))
        };
        self.args
            .canary
            .judge((generation, &window(generation)), (old, &window(old)))
    }

    fn prepare(&mut self) -> Result<Artifact, String> {
        // Every swap but the first re-reads --config: the first generation runs with what the
        // master itself parsed a moment ago.
        let (settings, config) = match &self.args.config {
            Some(_) if self.prepared_once => {
                let running = in_force(&self.machine, &self.configs, self.config.as_deref());
                let (settings, config) = reread(&self.argv, self.reparse, &self.args, running)?;
                (Some(Arc::new(settings)), config.map(Arc::new))
            }
            _ => (None, None),
        };
        let args = settings.as_deref().unwrap_or(&self.args);
        let source = AppTarget::parse(args.app.as_deref().unwrap_or_default())
            .and_then(|t| t.resolve())
            .map_err(|e| e.to_string())?;
        let mut artifact = Artifact::prepare(&source).map_err(|e| e.to_string())?;
        // Re-read with every library, so HUP also picks up a renewed certificate, CA bundle or
        // revocation list; a bad one refuses the swap like a bad library.
        if let Some(material) = TlsMaterial::load(&args.tls, FD_FLOOR).map_err(|e| e.to_string())? {
            log::debug!("TLS: {}", material.summary);
            artifact.tls = Some(material);
        }
        self.source = source;
        self.prepared_once = true;
        artifact.settings = settings;
        artifact.config = config;
        Ok(artifact)
    }

    /// USR1 (logrotate): reopen the master's log files, then have every worker reopen its own.
    fn reopen_logs(&self) {
        log::info!("SIGUSR1: reopening the log files");
        crate::logging::reopen_all();
        // The workers, which reopen them next, may not create them (--user, --sandbox).
        if let Err(e) = privilege::prepare_logs(self.run_as.as_ref(), &self.args.tuning.logging) {
            log::error!("{e}");
        }
        for worker in &self.workers {
            if let Err(e) = kill(worker.pid, Signal::ReopenLogs) {
                log::debug!("cannot tell worker {} to reopen its logs: {e}", worker.pid);
            }
        }
    }

    fn read_pipes(&mut self) {
        let mut messages = Vec::new();
        for worker in &mut self.workers {
            let pid = worker.pid;
            messages.extend(worker.read_messages().into_iter().map(|m| (pid, m)));
        }
        for (pid, message) in messages {
            match message {
                Ok(message) => self.apply(Event::Message { pid, message }),
                Err(unknown) => log::debug!("worker {pid}: {unknown}"),
            }
        }
    }

    /// Collect exited workers.
    fn reap(&mut self) {
        loop {
            let (pid, how) = match reap_any() {
                Ok(Some(reaped)) => reaped,
                Ok(None) => return,
                Err(e) => {
                    log::warn!("cannot collect exited workers: {e}");
                    return;
                }
            };
            if let Some(upgrading) = self.upgrading.as_mut().filter(|u| u.pid == pid) {
                upgrading.exited(how);
                continue;
            }
            // A last `error` message must be seen before the exit is judged.
            self.read_pipes();
            let Some(index) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            self.workers.remove(index);
            if let Some(stats) = &mut self.stats {
                stats.exited(pid, how, self.machine.worker_fate(pid));
            }
            self.apply(Event::Exited { pid, how });
        }
    }

    fn watch_file(&mut self) {
        if !self.args.reload || self.machine.is_stopping() {
            return;
        }
        let can_start = !self.machine.is_booting();
        if self
            .watch
            .changed(FileStamp::of(&self.source), can_start, Instant::now())
        {
            self.apply(Event::SwapAsked(SwapCause::FileChanged));
        } else if let Some(paths) = &mut self.paths_watch {
            if paths.changed(can_start, Instant::now()) {
                log::info!("--reload-path: a file under {} changed", paths.describe());
                self.apply(Event::SwapAsked(SwapCause::PathChanged));
            }
        }
    }

    /// Sleep until a worker writes (or exits), a signal arrives, `TICK` passes or the
    /// watchdog is due.
    fn wait_for_input(&self) {
        let mut fds: Vec<BorrowedFd<'_>> = self.workers.iter().map(WorkerProcess::pipe).collect();
        if let Some(stats) = &self.stats {
            fds.push(stats.wake_fd());
        }
        if let Some(upgrading) = &self.upgrading {
            fds.push(upgrading.pipe());
        }
        let wait = self
            .notifier
            .next_due(Instant::now())
            .map_or(TICK, |due| due.min(TICK));
        if let Err(e) = wait_readable(&fds, wait) {
            log::warn!("cannot wait for the workers' pipes: {e}");
            std::thread::sleep(TICK);
        }
    }

    fn write_status(&mut self, status: &str) {
        let Some(pid_file) = &self.args.pid else {
            return;
        };
        if self.handed_over {
            // FILE.status is the new master's.
            return;
        }
        if self.handoff.is_some() {
            // FILE.status is the old master's until this one serves (`take_over`).
            self.held_status = Some(status.to_owned());
            return;
        }
        let path = status_path(pid_file);
        let tmp = path.with_extension("status.tmp");
        let written = fs::write(&tmp, format!("{status}\n")).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            log::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// The description of the settings in force: the live generation's (a swap may have re-read
/// `--config` for it), else the master's own.
fn in_force<'a>(
    machine: &Generations,
    configs: &'a BTreeMap<u64, Arc<EffectiveConfig>>,
    started: Option<&'a EffectiveConfig>,
) -> Option<&'a EffectiveConfig> {
    let live = machine
        .generation_views()
        .into_iter()
        .find(|g| g.state == "live")
        .map(|g| g.id);
    live.and_then(|id| configs.get(&id))
        .map(Arc::as_ref)
        .or(started)
}
