//! Logging: the error log (`log` records, `--error-logfile`, `--log-level`, `RUST_LOG`, the
//! workers' output with `--capture-output`, `capture.rs`) and the access log (`--access-logfile`, `--access-logformat`: one line per request, written by the
//! workers), and reopening both files on a signal for logrotate.
//!
//! ```text
//!   logrotate: mv access.log access.log.1; kill -USR1 MASTER
//!   master: reopen its files ─USR2─▶ each worker: reopen its files
//! ```
//! A file keeps its descriptor number when reopened (`dup2`, `file.rs`), so a line written at the
//! same moment lands whole in the old file or in the new one. The access lines each serving
//! thread holds (`access.rs`) are written first, so they land in the file they were made for. Workers start with the reopen signal
//! blocked (`sys::logfile::spawn_blocked`): one sent while a worker is still starting waits until
//! it can reopen instead of killing it.

mod access;
mod capture;
mod error_log;
mod file;
mod format;
mod record;
mod upgrade;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

pub(crate) use access::{flush_all, flush_thread, get as access_log, refused, AccessLog};
pub(crate) use capture::Capture;
pub(crate) use file::reopen_all;
pub(crate) use format::AccessFormat;
pub(crate) use record::{Lookup, Served};
pub(crate) use upgrade::UpgradeSeed;

use file::{LogFile, Output};
use format::COMBINED;

/// The signal the master forwards to its workers to have them reopen their log files.
pub(crate) use crate::sys::process::WORKER_REOPEN_SIGNAL;

/// Logging options; the workers get them too ([`LogArgs::to_args`]).
#[derive(Args, Debug, Clone)]
pub(crate) struct LogArgs {
    /// Write one line per request to FILE ('-': stdout); off by default. Appended to; reopened
    /// on USR1 (logrotate: rename, then `kill -USR1 MASTER`).
    #[arg(
        long,
        value_name = "FILE|-",
        env = "WEBSERVER_ACCESS_LOGFILE",
        help_heading = "Logging",
        value_parser = Destination::parse
    )]
    pub(crate) access_logfile: Option<Destination>,

    /// The access log line, with gunicorn's atoms: %(h)s remote address, %(l)s '-', %(u)s user,
    /// %(t)s time, %(r)s request line, %(m)s method, %(U)s path, %(q)s query, %(H)s protocol,
    /// %(s)s status, %(B)s / %(b)s body bytes, %(f)s referer, %(a)s user agent, %(T)s / %(D)s /
    /// %(M)s / %(L)s duration in s / µs / ms / decimal s, %(p)s pid, %({header}i)s request
    /// header, %({header}o)s response header, %({variable}e)s environ variable, and
    /// %(generation)s, %(library)s (hash) of the app that served it. `json`: JSON lines.
    /// Default: Apache combined, %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s".
    #[arg(
        long,
        value_name = "FORMAT",
        env = "WEBSERVER_ACCESS_LOGFORMAT",
        help_heading = "Logging",
        default_value = COMBINED,
        value_parser = AccessFormat::parse,
        hide_default_value = true
    )]
    pub(crate) access_logformat: AccessFormat,

    /// Write the error log (everything but the access log) to FILE ('-': stderr, the default).
    /// Appended to; reopened on USR1.
    #[arg(
        long,
        value_name = "FILE|-",
        env = "WEBSERVER_ERROR_LOGFILE",
        help_heading = "Logging",
        value_parser = Destination::parse
    )]
    pub(crate) error_logfile: Option<Destination>,

    /// Send the workers' standard output (an app's print(), a library's printf) to the error
    /// log, one line each, and with --error-logfile FILE their standard error too.
    #[arg(
        long,
        env = "WEBSERVER_CAPTURE_OUTPUT",
        value_parser = clap::builder::BoolishValueParser::new(),
        help_heading = "Logging"
    )]
    pub(crate) capture_output: bool,

    /// What the error log shows; RUST_LOG, when set, wins (env_logger's syntax, per module:
    /// RUST_LOG=info,webserver::server=debug).
    #[arg(
        long,
        value_enum,
        value_name = "LEVEL",
        env = "WEBSERVER_LOG_LEVEL",
        help_heading = "Logging",
        default_value_t = LogLevel::Info
    )]
    pub(crate) log_level: LogLevel,
}

impl Default for LogArgs {
    fn default() -> Self {
        LogArgs {
            access_logfile: None,
            access_logformat: AccessFormat::default(),
            error_logfile: None,
            capture_output: false,
            log_level: LogLevel::Info,
        }
    }
}

/// `--log-level`: gunicorn's names, and Rust's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogLevel {
    Trace,
    Debug,
    Info,
    #[value(alias = "warning")]
    Warn,
    #[value(alias = "critical")]
    Error,
    Off,
}

impl LogLevel {
    fn filter(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

/// `FILE` or `-` (the standard stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    Std,
    File(PathBuf),
}

impl Destination {
    fn parse(arg: &str) -> Result<Destination, String> {
        match arg {
            "" => Err("an empty path; name a file, or '-' for the standard stream".into()),
            "-" => Ok(Destination::Std),
            // Absolute, so a worker opens the same file whatever its directory.
            path => std::path::absolute(path)
                .map(Destination::File)
                .map_err(|e| format!("{path}: {e}")),
        }
    }

    fn to_arg(&self) -> String {
        match self {
            Destination::Std => "-".into(),
            // Parsed from a &str, so the path is UTF-8.
            Destination::File(path) => path.to_string_lossy().into_owned(),
        }
    }
}

/// A log file that cannot be opened.
#[derive(Debug)]
pub(crate) struct LogSetupError {
    flag: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for LogSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open {} {}: {} (check that its directory exists and is writable)",
            self.flag,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for LogSetupError {}

impl LogArgs {
    /// The same options for a worker's command line.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--access-logformat={}", self.access_logformat.source),
            format!("--log-level={}", self.log_level.filter()),
        ];
        if let Some(dest) = &self.access_logfile {
            args.push(format!("--access-logfile={}", dest.to_arg()));
        }
        if let Some(dest) = &self.error_logfile {
            args.push(format!("--error-logfile={}", dest.to_arg()));
        }
        if self.capture_output {
            args.push("--capture-output".into());
        }
        args
    }

    /// `--capture-output` in a worker: its standard output (and standard error, when the error
    /// log is a file) into the error log until the returned guard is dropped; `None` without it.
    pub(crate) fn capture(&self) -> io::Result<Option<capture::Capture>> {
        if !self.capture_output {
            return Ok(None);
        }
        let stderr_too = matches!(self.error_logfile, Some(Destination::File(_)));
        capture::start(stderr_too).map(Some)
    }

    /// Refuses an `--access-logfile` that cannot be opened before any worker starts (the master
    /// writes no access log itself).
    pub(crate) fn check_access_logfile(&self) -> Result<(), LogSetupError> {
        match &self.access_logfile {
            Some(Destination::File(path)) => crate::sys::logfile::open_append(path)
                .map(drop)
                .map_err(|source| open_error("--access-logfile", path, source)),
            _ => Ok(()),
        }
    }

    /// Turns this worker's access log on (if asked for), naming `served` in its lines.
    pub(crate) fn install_access_log(&self, served: Served) -> Result<(), LogSetupError> {
        let output = match &self.access_logfile {
            None => None,
            Some(Destination::Std) => Some(Output::Stdout),
            Some(Destination::File(path)) => {
                Some(Output::File(LogFile::open(path).map_err(|source| {
                    open_error("--access-logfile", path, source)
                })?))
            }
        };
        access::install(self.access_logformat.clone(), output, served);
        Ok(())
    }
}

fn open_error(flag: &'static str, path: &Path, source: io::Error) -> LogSetupError {
    LogSetupError {
        flag,
        path: path.to_owned(),
        source,
    }
}

/// Installs this process's error log: `args` for the master and workers, the defaults (stderr,
/// info) for the other commands. If `--error-logfile` cannot be opened, the log goes to stderr
/// and the error says why.
pub(crate) fn init(role: String, args: Option<&LogArgs>) -> Result<(), LogSetupError> {
    let level = args.map_or(LogLevel::Info, |args| args.log_level);
    let filter = error_log::default_filter(level.filter());
    let file = match args.and_then(|args| args.error_logfile.as_ref()) {
        Some(Destination::File(path)) => match LogFile::open(path) {
            Ok(file) => Some(file),
            Err(source) => {
                error_log::install(role, &filter, None);
                return Err(open_error("--error-logfile", path, source));
            }
        },
        _ => None,
    };
    error_log::install(role, &filter, file);
    Ok(())
}

/// Reopens this process's log files whenever `signal` arrives, on a thread of its own.
pub(crate) fn reopen_on(signal: i32) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal])?;
    std::thread::Builder::new()
        .name("log-reopen".into())
        .spawn(move || {
            for _ in signals.forever() {
                reopen_all();
            }
        })?;
    Ok(())
}
