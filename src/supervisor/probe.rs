//! `webserver check LIB:SYMBOL [--probe PATH] [--expect STATUSES]`: load an app exactly as a
//! worker would, in a child process (so a crash is reported, not suffered), run init, one
//! synthetic `GET PATH` (default `/`) and shutdown. The app is healthy when the status is one of
//! STATUSES (codes and classes: `200,204`, `2xx`), or by default when it is not a server error
//! (5xx): an app whose `/` answers 503 by design names its health path and statuses. The child
//! loads the app in the worker sandbox (`crate::privilege::sandbox`, the same `--sandbox*`
//! options), so a file the app would be denied fails the check as it would fail a worker.
//!
//! The child (`__probe`) is this same executable: when it fails, its own `main` prints the one
//! error line and exits with [`exit::FAILURE`]; the parent then adds nothing. The parent speaks
//! only for a child that could not say why itself (killed by a signal, or any other status).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::str::FromStr;

use app_abi::raw::{WS_ABI_MAJOR, WS_REQ_MULTITHREAD};

use super::args::ProbeArgs;
use crate::app::call::{self, MemoryTransport, RequestFacts, Scratch};
use crate::app::environ::Environ;
use crate::app::loader::{LoadError, LoadedApp};
use crate::app::target::AppTarget;
use crate::exit;
use crate::http::target::{parse_target, Target};
use crate::logging::LogArgs;

/// Why `check` failed.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// The probe could not load the app.
    Load(LoadError),
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
    /// The app loaded but answered the probe with a status the caller does not accept.
    Unhealthy {
        spec: String,
        target: ProbeTarget,
        status: u16,
        expected: String,
    },
}

impl From<LoadError> for CheckError {
    fn from(e: LoadError) -> CheckError {
        CheckError::Load(e)
    }
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
            CheckError::Load(e) => write!(f, "{e}"),
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
            CheckError::Unhealthy {
                spec,
                target,
                status,
                expected,
            } => write!(
                f,
                "{spec} answered GET {target} with {status}, expected {expected}; see the log above"
            ),
        }
    }
}

/// The parent side: run the probe in a child and judge how it ended.
pub(crate) fn check(
    spec: &str,
    app_args: &[OsString],
    probe: &ProbeArgs,
) -> Result<(), CheckError> {
    let exe = std::env::current_exe().map_err(CheckError::NoExecutable)?;
    let status = Command::new(exe)
        .arg("__probe")
        .args(probe_args(probe))
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

/// `probe` as the child's command-line arguments.
fn probe_args(probe: &ProbeArgs) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--probe".into(), probe.probe.to_string().into()];
    if let Some(expect) = &probe.expect {
        args.extend(["--expect".into(), expect.to_string().into()]);
    }
    // The library's directory is added by the child, which resolves it.
    args.extend(probe.sandbox.to_args(None));
    args
}

/// The child side: load, probe, report on stdout. An error is returned for `main` to print.
pub(crate) fn probe(spec: &str, app_args: &[OsString], args: &ProbeArgs) -> Result<(), CheckError> {
    let target = AppTarget::parse(spec).map_err(LoadError::from)?;
    let path = target.resolve().map_err(LoadError::from)?;
    // As a worker is: in the sandbox, its library's directory readable.
    let mut sandbox = args.sandbox.clone();
    sandbox
        .sandbox_read
        .extend(path.parent().map(Path::to_owned));
    let mut enforced = String::new();
    let app = LoadedApp::load_path_then(&path, &target.symbol, app_args, || {
        enforced = sandbox.apply(&LogArgs::default(), app_args, std::iter::empty())?;
        Ok(())
    })?;
    println!("library: {}", app.path().display());
    println!("sandbox: {enforced}");
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
    let target = args.probe.target();
    let parts = call::parts_for(&app, &environ);
    let pairs =
        environ.build_synthetic_get_of(target, &headers, WS_REQ_MULTITHREAD, app.wants_parts());
    let facts = RequestFacts {
        is_head: false,
        version_minor: 1,
        keep_alive: false,
        flags: WS_REQ_MULTITHREAD,
        defer_flush: false,
        frames_heads: false,
    };
    let outcome = call::run(
        &app,
        (pairs, parts),
        facts,
        &mut transport,
        &mut Scratch::default(),
    );
    println!(
        "probe:   GET {} -> {} ({} body bytes)",
        args.probe, outcome.status, outcome.body_bytes
    );
    app.shutdown();
    println!("shutdown: ok");
    let healthy = match &args.expect {
        Some(expect) => expect.accepts(outcome.status),
        None => outcome.status < FIRST_SERVER_ERROR,
    };
    if !healthy {
        return Err(CheckError::Unhealthy {
            spec: spec.to_owned(),
            target: args.probe.clone(),
            status: outcome.status,
            expected: args.expect.as_ref().map_or_else(
                || {
                    "a status below 500 (when that fails by design, name the app's health \
                     check: --probe PATH --expect STATUSES)"
                        .to_owned()
                },
                |expect| format!("{expect} (--expect)"),
            ),
        });
    }
    Ok(())
}

/// Without `--expect`, a status from here on fails the check.
const FIRST_SERVER_ERROR: u16 = 500;
/// The statuses HTTP defines: 100 to 599.
const STATUS_CLASSES: std::ops::RangeInclusive<u16> = 1..=5;

/// The request target of the probe (`--probe`): an origin-form path with an optional query,
/// checked as the server checks a request line's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProbeTarget(String);

impl ProbeTarget {
    /// Split into path and query for the app's environ, as the server splits an origin-form
    /// target: at the first '?'.
    fn target(&self) -> Target<'_> {
        let (path, query) = self.0.split_once('?').unwrap_or((&self.0, ""));
        Target {
            path: path.as_bytes(),
            query: query.as_bytes(),
            authority: None,
        }
    }
}

impl FromStr for ProbeTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<ProbeTarget, String> {
        let visible = |b: u8| b.is_ascii_graphic();
        if !text.starts_with('/') || !text.bytes().all(visible) {
            return Err(format!(
                "{text:?} is not a path: give one that starts with '/', without spaces (e.g. /healthz or /status?full=1)"
            ));
        }
        parse_target(b"GET", text.as_bytes())
            .map_err(|e| format!("{text:?} is not a request path: {e}"))?;
        Ok(ProbeTarget(text.to_owned()))
    }
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One acceptable status (`200`) or class of statuses (`2xx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accept {
    Status(u16),
    Class(u16),
}

/// The statuses that pass the check (`--expect`), in the caller's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expect(Vec<Accept>);

impl Expect {
    fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|accept| match *accept {
            Accept::Status(code) => code == status,
            Accept::Class(class) => status / 100 == class,
        })
    }
}

impl FromStr for Expect {
    type Err = String;

    fn from_str(text: &str) -> Result<Expect, String> {
        let bad = |item: &str| {
            format!(
                "{item:?} is not a status: give codes from 100 to 599 or classes like 2xx, separated by commas (e.g. 200,204 or 2xx)"
            )
        };
        let accepts = text
            .split(',')
            .map(|item| {
                let item = item.trim();
                let (first, rest) = item.split_at(item.len().min(1));
                let class = first
                    .parse::<u16>()
                    .ok()
                    .filter(|c| STATUS_CLASSES.contains(c));
                if rest.eq_ignore_ascii_case("xx") {
                    return class.map(Accept::Class).ok_or_else(|| bad(item));
                }
                match (class, item.len(), item.parse::<u16>()) {
                    (Some(_), 3, Ok(code)) => Ok(Accept::Status(code)),
                    _ => Err(bad(item)),
                }
            })
            .collect::<Result<Vec<Accept>, String>>()?;
        Ok(Expect(accepts))
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, accept) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match accept {
                Accept::Status(code) => write!(f, "{code}")?,
                Accept::Class(class) => write!(f, "{class}xx")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_reads_codes_and_classes_and_says_them_back() {
        let expect: Expect = "200, 2XX,404".parse().unwrap();
        assert_eq!(expect.to_string(), "200,2xx,404");
        assert!(expect.accepts(200) && expect.accepts(204) && expect.accepts(404));
        assert!(!expect.accepts(301) && !expect.accepts(503));
        assert!(!"5xx".parse::<Expect>().unwrap().accepts(499));
        for bad in [
            "", "20", "2000", "600", "099", "6xx", "0xx", "2x", "abc", "200,", "+20",
        ] {
            assert!(bad.parse::<Expect>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn probe_targets_are_origin_form_paths() {
        let target: ProbeTarget = "/status?full=1".parse().unwrap();
        assert_eq!(target.target().path, b"/status");
        assert_eq!(target.target().query, b"full=1");
        assert_eq!(target.to_string(), "/status?full=1");
        for bad in ["", "healthz", "http://x/", "/a b", "/a#b", "*"] {
            assert!(bad.parse::<ProbeTarget>().is_err(), "{bad:?} was accepted");
        }
    }
}
