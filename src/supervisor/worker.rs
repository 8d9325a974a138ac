//! A worker's life: load the app, report ready, wait for the go, serve, drain, shut the app down
//! (within the stop's `--graceful-timeout`: a shutdown that has not returned by then is abandoned
//! with the process), exit.
//!
//! The master passes the listening sockets from `FIRST_LISTEN_FD` up (one `--listener OPTIONS`
//! each, in order), the write end of its pipe as
//! `READY_FD` and the generation's library (a sealed in-memory file, see `artifact.rs`) as
//! `LIBRARY_FD`, which `--lib /proc/self/fd/LIBRARY_FD` names (and, with `--stats`, its counter
//! page as `crate::stats::STATS_FD`, flagged by `--stats-page`); the worker tells the master what happens in [`WorkerMessage`]s: `Ready` (loaded,
//! initialised) or `Error`, `Draining` (recycling on its own), `Stopped` (after SIGTERM: the
//! listeners are closed, so no new connection can reach this process). The worker accepts only
//! after SIGUSR1 (the master's go, sent once every worker of its generation is ready), so a
//! generation that fails half-way never served a request that would then be cut off; the master
//! announces a swap complete only once every old worker said `Stopped` (or exited), so a
//! connection made after that is served by the new library.
//!
//! From its first moment to its exit a worker also says `Alive` on a thread of its own, a few
//! times per `--timeout` (unless `--timeout 0`): a worker the master stops hearing from (stopped,
//! frozen) is killed and replaced, since its own `--timeout` watch cannot run either.

use std::os::fd::RawFd;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM, SIGUSR1};

use super::args::WorkerArgs;
use super::message::{heartbeat_interval, Reporter, WorkerMessage};
use super::source_pin::PIN_FD;
use crate::app::loader::LoadedApp;
use crate::listen::open::MAX_LISTENERS;
use crate::logging::{self, Served};
use crate::server::{self, Listener, Shutdown};
use crate::static_files::StaticFiles;
use crate::sys::logfile;
use crate::sys::process::{claim_inherited, exit_now, file_identity, FileIdentity};

/// Where a worker finds its first listening socket; the others follow.
pub(crate) const FIRST_LISTEN_FD: RawFd = 10;
/// The listeners' numbers stay below the statistics page's (and so below 64, the limit of
/// `sys::process::claim_inherited`).
const _: () = assert!(FIRST_LISTEN_FD as usize + MAX_LISTENERS <= crate::stats::STATS_FD as usize);
/// Where a worker finds the write end of the master's pipe.
pub(crate) const READY_FD: RawFd = 4;
/// Where a worker finds its generation's library.
pub(crate) const LIBRARY_FD: RawFd = 5;
/// After a SIGTERM, how often the worker looks whether its event loop closed the listener.
const LISTENER_CHECK_INTERVAL: Duration = Duration::from_millis(1);
/// ... and how long at most: only a wedged process takes that long (the master has its own
/// deadline for the announcement).
const LISTENER_CHECK_LIMIT: Duration = Duration::from_secs(5);

/// The app's `shutdown` always gets at least this long, even when the drain used the whole
/// `--graceful-timeout` (or it is 0); less than the master's `STOP_MARGIN`, so the worker still
/// ends before the master kills it.
const SHUTDOWN_FLOOR: Duration = Duration::from_secs(1);
const _: () = assert!(SHUTDOWN_FLOOR.as_secs() < super::generation::STOP_MARGIN.as_secs());

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Start {
    Waiting,
    Go,
    Stop,
}

/// Run as a worker; the exit status tells the master how it ended.
pub(crate) fn run(args: &WorkerArgs) -> i32 {
    if !args.title.is_empty() {
        // `ps` shows the app, the worker number and the generation instead of this process's
        // long internal command line, which has been parsed.
        if let Err(e) = crate::sys::proctitle::set(&args.title) {
            log::debug!("cannot set the process title: {e}");
        }
    }
    let report = match claim_inherited(READY_FD) {
        Ok(pipe) => Arc::new(Reporter::new(pipe)),
        Err(e) => {
            log::error!("no pipe to the master at descriptor {READY_FD} ({e}); only the master starts workers");
            return 1;
        }
    };
    if let Some(timeout) = args.tuning.timeout.duration() {
        // Before the library is loaded: a slow init is not silence, a frozen one is.
        if let Err(e) = start_heartbeat(&report, heartbeat_interval(timeout)) {
            report.send_or_log(&WorkerMessage::Error(format!(
                "cannot start the heartbeat thread: {e}"
            )));
            return 1;
        }
    }
    // Held to the end: dropping it logs the last captured lines.
    let _captured = match start_logs(args) {
        Ok(captured) => captured,
        Err(e) => {
            report.send_or_log(&WorkerMessage::Error(e));
            return 1;
        }
    };
    // The log files are open: from here on nothing needs the master's identity (the library,
    // the TLS key and the listeners are inherited descriptors), and the app must not have it.
    if let Some(run_as) = &args.privilege.run_as {
        if let Err(e) = run_as.take() {
            report.send_or_log(&WorkerMessage::Error(e));
            return 1;
        }
    }
    let graceful_timeout = Duration::from_secs(args.tuning.graceful_timeout);
    let start = Arc::new((Mutex::new(Start::Waiting), Condvar::new()));
    let shutdown = Arc::new(Shutdown::default());
    if let Err(e) = watch_signals(args.listeners.len(), &start, &shutdown, &report) {
        report.send_or_log(&WorkerMessage::Error(format!(
            "cannot install signal handlers: {e}"
        )));
        return 1;
    }

    // Claimed so that it is close-on-exec: processes the app starts do not inherit it. Kept
    // open for the worker's life: the loader knows the library by the name
    // /proc/self/fd/LIBRARY_FD, and whatever opens it by that name later (a backtrace's
    // symbolizer) must find the library there, not a socket that reused the number.
    let _library = match claim_inherited(LIBRARY_FD) {
        Ok(library) => library,
        Err(e) => {
            report.send_or_log(&WorkerMessage::Error(format!(
                "no library at descriptor {LIBRARY_FD} ({e}); only the master starts workers"
            )));
            return 1;
        }
    };
    // Kept open for the worker's life, close-on-exec, for the app to use (`source_pin.rs`).
    let _pin = claim_inherited(PIN_FD);
    args.stats.attach();
    let tls = if args.tls {
        match crate::tls::claim_server_config() {
            Ok(config) => Some(config),
            Err(e) => {
                report.send_or_log(&WorkerMessage::Error(e.to_string()));
                return 1;
            }
        }
    } else {
        None
    };
    let statics = match StaticFiles::open(&args.tuning.statics) {
        Ok(statics) => statics.map(Arc::new),
        Err(e) => {
            report.send_or_log(&WorkerMessage::Error(e));
            return 1;
        }
    };
    let mut sandbox = String::new();
    let loaded = LoadedApp::load_path_then(&args.lib, &args.symbol, &args.app_args, || {
        args.privilege.limits.apply()?;
        sandbox = args.privilege.sandbox.apply(
            &args.tuning.logging,
            &args.app_args,
            args.tuning.statics.mounts.iter().map(|m| m.dir.clone()),
        )?;
        Ok(())
    });
    let app = match loaded {
        Ok(app) => app,
        Err(e) => {
            report.send_or_log(&WorkerMessage::Error(e.to_string()));
            return 1;
        }
    };
    let ready = WorkerMessage::Ready {
        name: app.name().to_owned(),
        version: app.version().to_owned(),
    };
    if let Err(e) = report.send(&ready) {
        log::error!("the master is gone ({e}); exiting");
        return 1;
    }

    let (lock, changed) = &*start;
    let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
    while *state == Start::Waiting {
        state = changed.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    let go = *state == Start::Go;
    drop(state);
    if !go {
        shut_down_within(app, Instant::now() + graceful_timeout);
        return 0;
    }

    // Tell the master when this worker starts draining on its own (--max-requests), so a
    // replacement is accepting before this one stops.
    let pipe = Arc::clone(&report);
    shutdown.on_retire(Box::new(move || pipe.send_or_log(&WorkerMessage::Draining)));
    if let Err(e) = args.privilege.limits.watch_memory(&shutdown) {
        log::warn!("cannot watch the resident memory ({e}); --limit-memory is not enforced");
    }

    let mut listeners = Vec::with_capacity(args.listeners.len());
    for (fd, options) in (FIRST_LISTEN_FD..).zip(&args.listeners) {
        match claim_inherited(fd).and_then(|socket| Listener::new(socket, *options)) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                log::error!("no listening socket at descriptor {fd}: {e}");
                return 1;
            }
        }
    }
    log::info!(
        "generation {} serving {} {} (sandbox: {sandbox})",
        args.generation,
        app.name(),
        app.version()
    );
    let mut config = args.tuning.server_config(args.multiprocess);
    config.tls_h2 = tls.as_ref().map(server::offer_h2);
    config.tls = tls;
    config.statics = statics;
    // The app's shutdown runs only once `serve` gives the app back, which it does only when no
    // thread can call into it any more.
    let served = server::serve(listeners, app, config, Arc::clone(&shutdown));
    // Access-log lines still held by threads that did not end (abandoned ones).
    logging::flush_all();
    // The app's shutdown counts against the stop's graceful timeout too: a worker whose app
    // cannot finish (a tokio runtime waiting for a blocking task that never ends) would otherwise
    // never exit on a hot swap, and be killed by the master on a stop.
    let stop_deadline = shutdown.requested_at().unwrap_or_else(Instant::now) + graceful_timeout;
    match served {
        server::Served::Finished(app) => {
            shut_down_within(app, stop_deadline);
            0
        }
        server::Served::Failed(e, app) => {
            log::error!("serving failed: {e}");
            shut_down_within(app, stop_deadline);
            1
        }
        server::Served::Abandoned { open } => {
            log::warn!(
                "graceful timeout: {open} connection(s) still being served; exiting without calling the app's shutdown (raise --graceful-timeout to let requests finish)"
            );
            // Not through `exit`: its atexit handlers (the app's among them) would run under
            // the calls still in flight.
            exit_now(0)
        }
    }
}

/// Runs the app's `shutdown`; if it has not returned by `deadline` (or [`SHUTDOWN_FLOOR`] from
/// now, whichever is later), logs it and ends the process without waiting further (and without
/// `exit`'s atexit handlers, which would run under the app's code still running).
fn shut_down_within(app: LoadedApp, deadline: Instant) {
    let deadline = deadline.max(Instant::now() + SHUTDOWN_FLOOR);
    let (returned, watched) = mpsc::channel::<()>();
    let watch = std::thread::Builder::new()
        .name("shutdown-watch".into())
        .spawn(move || {
            let wait = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = watched.recv_timeout(wait) {
                log::warn!(
                    "graceful timeout: the app's shutdown has not returned; exiting without waiting for it (what it was still doing is abandoned; raise --graceful-timeout if it needs longer)"
                );
                logging::flush_all();
                exit_now(0);
            }
        });
    if let Err(e) = &watch {
        log::warn!("cannot watch the app's shutdown ({e}); it runs without a deadline");
    }
    app.shutdown();
    drop(returned);
    if let Ok(watch) = watch {
        let _ = watch.join();
    }
}

/// The descriptor of the last of `count` listeners.
fn last_listener_fd(count: usize) -> Option<RawFd> {
    let last = RawFd::try_from(count.checked_sub(1)?).ok()?;
    Some(FIRST_LISTEN_FD + last)
}

/// Opens the access log, then takes the master's reopen signal: it was blocked since this
/// process started (`sys::logfile::spawn_blocked`), so one sent before the files were open is
/// delivered now and reopens them. Then `--capture-output` starts, before the app can print.
fn start_logs(args: &WorkerArgs) -> Result<Option<logging::Capture>, String> {
    let served = Served {
        generation: args.generation,
        library: args.library_hash.clone(),
        pid: std::process::id(),
    };
    args.tuning
        .logging
        .install_access_log(served)
        .map_err(|e| e.to_string())?;
    logging::reopen_on(logging::WORKER_REOPEN_SIGNAL)
        .and_then(|()| logfile::unblock(logging::WORKER_REOPEN_SIGNAL))
        .map_err(|e| format!("cannot take the log reopen signal: {e}"))?;
    args.tuning
        .logging
        .capture()
        .map_err(|e| format!("cannot capture the output (--capture-output): {e}"))
}

/// USR1: go. TERM/INT: drain and exit (or exit at once before the go). QUIT: exit now.
fn watch_signals(
    listeners: usize,
    start: &Arc<(Mutex<Start>, Condvar)>,
    shutdown: &Arc<Shutdown>,
    report: &Arc<Reporter>,
) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGUSR1, SIGTERM, SIGINT, SIGQUIT])?;
    let start = Arc::clone(start);
    let shutdown = Arc::clone(shutdown);
    let report = Arc::clone(report);
    // Taken before the event loop can close the listeners; it closes them in order, so the last
    // one tells. Unknown (None) if the descriptor is not there: then there is none to wait for.
    let last_listener = last_listener_fd(listeners);
    let listener = last_listener.and_then(|fd| file_identity(fd).ok());
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let (lock, changed) = &*start;
                let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                match signal {
                    SIGUSR1 if *state == Start::Waiting => *state = Start::Go,
                    SIGQUIT => {
                        log::info!("SIGQUIT: exiting now");
                        exit_now(0)
                    }
                    SIGTERM | SIGINT if *state == Start::Waiting => {
                        *state = Start::Stop;
                        close_unused_listeners(listeners);
                    }
                    SIGTERM | SIGINT => {
                        shutdown.trigger();
                        report_stopped(last_listener.zip(listener), &report);
                    }
                    _ => {}
                }
                changed.notify_all();
            }
        })?;
    Ok(())
}

/// Told to stop before the go, maybe still inside a slow `init`: close the inherited listeners
/// now rather than at exit, since every open copy keeps a socket listening, and on a stop the
/// kernel should refuse new clients at once. Called under the start lock in the `Waiting` state,
/// so the main thread has not claimed them and never will.
fn close_unused_listeners(count: usize) {
    for fd in (FIRST_LISTEN_FD..).take(count) {
        match claim_inherited(fd) {
            Ok(listener) => drop(listener),
            Err(e) => log::debug!("no listener to close at descriptor {fd}: {e}"),
        }
    }
}

/// After a SIGTERM: once the event loop has closed its listeners (`begin_drain` drops them, the
/// last one last), this process can never accept again; tell the master, which announces the
/// swap complete only then. The descriptor number may be reused at once, so the file's identity
/// tells, not the number. Runs on its own thread so the signal thread stays free for QUIT.
fn report_stopped(listener: Option<(RawFd, FileIdentity)>, report: &Arc<Reporter>) {
    let report = Arc::clone(report);
    let spawned = std::thread::Builder::new()
        .name("stopped".into())
        .spawn(move || {
            let deadline = Instant::now() + LISTENER_CHECK_LIMIT;
            while let Some((fd, identity)) = listener {
                if file_identity(fd).ok() != Some(identity) || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(LISTENER_CHECK_INTERVAL);
            }
            report.send_or_log(&WorkerMessage::Stopped);
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread: {e}");
    }
}

/// Say `Alive` every `interval` for as long as this process runs. Runs on its own thread, so
/// a long request or a slow init does not keep it quiet; only a process that cannot run at all
/// (stopped, frozen) falls silent.
fn start_heartbeat(report: &Arc<Reporter>, interval: Duration) -> std::io::Result<()> {
    let report = Arc::clone(report);
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            if let Err(e) = report.send(&WorkerMessage::Alive) {
                // The master is gone (its death signal ends this process) or exiting.
                log::debug!("cannot tell the master this worker is alive ({e}); heartbeats stop");
                return;
            }
            std::thread::sleep(interval);
        })?;
    Ok(())
}
