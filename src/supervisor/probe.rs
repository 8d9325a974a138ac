//! `webserver check LIB:SYMBOL`: load an app exactly as a worker would, in a child process (so a
//! crash is reported, not suffered), run init, one synthetic `GET /` and shutdown.
//!
//! The child (`__probe`) is this same executable: when it fails, its own `main` prints the one
//! error line and exits with [`exit::FAILURE`]; the parent then adds nothing. The parent speaks
//! only for a child that could not say why itself (killed by a signal, or any other status).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};

use app_abi::raw::{WS_ABI_MAJOR, WS_REQ_MULTITHREAD};

use crate::app::call::{self, MemoryTransport, RequestFacts, Scratch};
use crate::app::environ::Environ;
use crate::app::loader::{LoadError, LoadedApp};
use crate::app::target::AppTarget;
use crate::error::Error;
use crate::exit;

/// Why `check` failed.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// The executable to run the probe in could not be found.
    NoExecutable(io::Error),
    /// The probe's child process could not be started.
    CannotStart(io::Error),
    /// The probe failed and said why on stderr itself (it exited with `exit::FAILURE`).
    ProbeFailed,
    /// The app killed the probe's process.
    Crashed { spec: String, signal: i32 },
    /// The probe ended with a status nobody gave a reason for (a panic, for one).
    ProbeExited { spec: String, status: ExitStatus },
    /// The app loaded but answered the synthetic `GET /` with a server error.
    Unhealthy { spec: String, status: u16 },
}

impl CheckError {
    /// True when the probe child already printed the one error line.
    pub(crate) fn already_reported(&self) -> bool {
        matches!(self, CheckError::ProbeFailed)
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NoExecutable(e) => write!(
                f,
                "cannot find my own executable to run the check in: {e}; run it by its path"
            ),
            CheckError::CannotStart(e) => write!(
                f,
                "cannot start the check's child process: {e}; retry when the system has free processes and memory"
            ),
            CheckError::ProbeFailed => write!(f, "the check failed; its reason is printed above"),
            CheckError::Crashed { spec, signal } => write!(
                f,
                "{spec} crashed while being checked (killed by signal {signal}, {}); a worker loading it would crash too",
                super::process::signal_name(*signal)
            ),
            CheckError::ProbeExited { spec, status } => write!(
                f,
                "the check of {spec} ended with {status}; see the messages above"
            ),
            CheckError::Unhealthy { spec, status } => write!(
                f,
                "{spec} answered GET / with {status}; see the log above"
            ),
        }
    }
}

/// The parent side: run the probe in a child and judge how it ended.
pub(crate) fn check(spec: &str, app_args: &[OsString]) -> Result<(), CheckError> {
    let exe = std::env::current_exe().map_err(CheckError::NoExecutable)?;
    let status = Command::new(exe)
        .arg("__probe")
        .arg(spec)
        .args(app_args)
        .stdin(Stdio::null())
        .status()
        .map_err(CheckError::CannotStart)?;
    if status.success() {
        return Ok(());
    }
    if let Some(signal) = status.signal() {
        return Err(CheckError::Crashed {
            spec: spec.to_owned(),
            signal,
        });
    }
    if status.code() == Some(i32::from(exit::FAILURE)) {
        return Err(CheckError::ProbeFailed);
    }
    Err(CheckError::ProbeExited {
        spec: spec.to_owned(),
        status,
    })
}

/// The child side: load, probe, report on stdout. An error is returned for `main` to print.
pub(crate) fn probe(spec: &str, app_args: &[OsString]) -> Result<(), Error> {
    let target = AppTarget::parse(spec).map_err(LoadError::from)?;
    let app = LoadedApp::load(&target, app_args)?;
    println!("library: {}", app.path().display());
    println!("app:     {} {}", app.name(), app.version());
    let (major, minor) = app.abi_version();
    println!("abi:     {major}.{minor} (server speaks {WS_ABI_MAJOR}.x)");
    println!("init:    ok");
    let mut transport = MemoryTransport::default();
    let mut environ = Environ::default();
    let headers = [
        (&b"Host"[..], &b"localhost"[..]),
        (b"User-Agent", b"webserver-check"),
    ];
    let pairs = environ.build_synthetic_get(&headers, WS_REQ_MULTITHREAD);
    let facts = RequestFacts {
        is_head: false,
        version_minor: 1,
        keep_alive: false,
        flags: WS_REQ_MULTITHREAD,
        defer_flush: false,
    };
    let outcome = call::run(&app, pairs, facts, &mut transport, &mut Scratch::default());
    println!(
        "probe:   GET / -> {} ({} body bytes)",
        outcome.status, outcome.body_bytes
    );
    app.shutdown();
    println!("shutdown: ok");
    if outcome.status >= 500 {
        return Err(CheckError::Unhealthy {
            spec: spec.to_owned(),
            status: outcome.status,
        }
        .into());
    }
    Ok(())
}
