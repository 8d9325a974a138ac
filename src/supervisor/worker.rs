//! A worker's life: load the app, report ready, wait for the go, serve, drain, exit.
//!
//! The master passes the listening socket as fd 3 and the write end of the ready pipe as fd 4.
//! Lines on the pipe: `ready\tNAME\tVERSION`, `error\tMESSAGE`, `draining` (recycling on its own),
//! `stopped` (after SIGTERM: the listener is closed, so no new connection can reach this process).
//! The worker accepts only after SIGUSR1 (the master's go, sent once every worker of its generation
//! is ready), so a generation that fails half-way never served a request that would then be cut
//! off; the master announces a swap complete only once every old worker said `stopped` (or exited),
//! so a connection made after that is served by the new library.

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM, SIGUSR1};

use crate::app::loader::LoadedApp;
use crate::cli::WorkerArgs;
use crate::server::{self, Shutdown};
use crate::sys::exit::exit_now;

/// Where a worker finds the listening socket.
pub(crate) const LISTEN_FD: RawFd = 3;
/// Where a worker finds the ready pipe.
pub(crate) const READY_FD: RawFd = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Start {
    Waiting,
    Go,
    Stop,
}

/// Run as a worker; the exit status tells the master how it ended.
pub(crate) fn run(args: &WorkerArgs) -> i32 {
    // SAFETY: the master opened READY_FD for this process (dup2 in pre_exec) and nothing else in
    // this process owns it.
    let report = Arc::new(Mutex::new(unsafe { File::from_raw_fd(READY_FD) }));
    let say = |line: &str| -> std::io::Result<()> {
        let mut pipe = report.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(pipe, "{line}")
    };
    let start = Arc::new((Mutex::new(Start::Waiting), Condvar::new()));
    let shutdown = Arc::new(Shutdown::default());
    if let Err(e) = watch_signals(&start, &shutdown, &report) {
        let _ = say(&format!("error\tcannot install signal handlers: {e}"));
        return 1;
    }

    let app = match LoadedApp::load_path(&args.lib, &args.symbol) {
        Ok(app) => app,
        Err(e) => {
            let message = e.to_string().replace(['\n', '\r'], " ");
            let _ = say(&format!("error\t{message}"));
            return 1;
        }
    };
    if say(&format!("ready\t{}\t{}", app.name(), app.version())).is_err() {
        log::error!("the master is gone; exiting");
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
        app.shutdown();
        return 0;
    }

    // Tell the master when this worker starts draining on its own (--max-requests), so a
    // replacement is accepting before this one stops.
    let pipe = Arc::clone(&report);
    shutdown.on_retire(Box::new(move || {
        let mut pipe = pipe.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(pipe, "draining");
    }));

    // SAFETY: the master passed the listening socket as LISTEN_FD; this is its only owner here.
    let listener = unsafe { TcpListener::from_raw_fd(LISTEN_FD) };
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("listener: {e}");
        return 1;
    }
    log::info!(
        "generation {} serving {} {}",
        args.generation,
        app.name(),
        app.version()
    );
    let config = args.tuning.server_config(args.multiprocess);
    // The app's shutdown runs only once `serve` gives the app back, which it does only when no
    // thread can call into it any more.
    match server::serve(listener, app, config, shutdown) {
        server::Served::Finished(app) => {
            app.shutdown();
            0
        }
        server::Served::Failed(e, app) => {
            log::error!("serving failed: {e}");
            app.shutdown();
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

/// USR1: go. TERM/INT: drain and exit (or exit at once before the go). QUIT: exit now.
fn watch_signals(
    start: &Arc<(Mutex<Start>, Condvar)>,
    shutdown: &Arc<Shutdown>,
    report: &Arc<Mutex<File>>,
) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGUSR1, SIGTERM, SIGINT, SIGQUIT])?;
    let start = Arc::clone(start);
    let shutdown = Arc::clone(shutdown);
    let report = Arc::clone(report);
    let listener = FdIdentity::of(LISTEN_FD);
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
                        // SAFETY: immediate exit is what QUIT asks for; nothing runs after it.
                        unsafe { libc::_exit(0) }
                    }
                    SIGTERM | SIGINT if *state == Start::Waiting => *state = Start::Stop,
                    SIGTERM | SIGINT => {
                        shutdown.trigger();
                        report_stopped(listener, &report);
                    }
                    _ => {}
                }
                changed.notify_all();
            }
        })?;
    Ok(())
}

/// Which open file a descriptor refers to (device and inode), to tell when the listener is closed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FdIdentity {
    dev: u64,
    ino: u64,
}

impl FdIdentity {
    fn of(fd: RawFd) -> Option<FdIdentity> {
        // SAFETY: `libc::stat` is plain old data, for which all-zero bytes are a valid value.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat only writes into `stat`, which we own; a closed fd is just EBADF.
        if unsafe { libc::fstat(fd, &mut stat) } != 0 {
            return None;
        }
        Some(FdIdentity {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }
}

/// After a SIGTERM: once the event loop has closed its listener (`begin_drain` drops it), this
/// process can never accept again; tell the master, which announces the swap complete only then.
/// Runs on its own thread so the signal thread stays free for QUIT.
fn report_stopped(listener: Option<FdIdentity>, report: &Arc<Mutex<File>>) {
    let report = Arc::clone(report);
    let spawned = std::thread::Builder::new()
        .name("stopped".into())
        .spawn(move || {
            // The coordinator answers the wake-up at once (it never runs app code); the deadline
            // only keeps a wedged process from hiding forever — the master has its own.
            let deadline = Instant::now() + Duration::from_secs(5);
            while listener.is_some()
                && FdIdentity::of(LISTEN_FD) == listener
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut pipe = report.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(pipe, "stopped");
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread: {e}");
    }
}
