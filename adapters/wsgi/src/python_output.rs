//! Python's own output into the server's error log, so that `--error-logfile` holds what the app
//! says and not only what it writes to `wsgi.errors`:
//!
//! - `sys.stderr` becomes a [`crate::streams::Errors`] on the worker's log (tagged with the worker
//!   and its generation like every line): `print(file=sys.stderr)`, `warnings`, tracebacks of
//!   threads, and the lines of a `logging.StreamHandler` (what `logging.basicConfig()` installs),
//!   which keep their record's level ([`record_level`]).
//! - `logging.lastResort`, the handler Python uses for a record no handler takes (an app that
//!   never configured logging), writes the record to the log at its own level (WARNING → warn),
//!   named by its logger. The app's own logging configuration is left alone: a root handler here
//!   would make `logging.basicConfig()` do nothing.
//! - `sys.stdout` stays the process's standard output (`--capture-output` sends that to the log,
//!   see the server's `logging/capture.rs`); when it is a pipe it is made line-buffered, so a
//!   `print()` arrives when printed, not when a block fills or the worker exits.
//!
//! Installed before the app is imported: a handler made at import time (`StreamHandler()` takes
//! `sys.stderr` when created) gets the log stream.

use crate::streams::Errors;
use app_abi::{LogLevel, Logger};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict};

/// The handler put in `logging.lastResort`: formats a record and hands it to [`RecordLog`].
const LAST_RESORT: &str = "
import logging

class ServerLog(logging.Handler):
    def __init__(self, write):
        super().__init__()
        self.write = write
        self.setFormatter(logging.Formatter('%(name)s: %(message)s'))

    def emit(self, record):
        try:
            self.write(record.levelno, self.format(record))
        except Exception:
            self.handleError(record)

logging.lastResort = ServerLog(write)
";

/// Routes `sys.stderr` and unhandled `logging` records into `logger`, and line-buffers a piped
/// `sys.stdout` (see the module docs).
pub(crate) fn install(py: Python<'_>, logger: Logger) -> PyResult<()> {
    let sys = py.import_bound("sys")?;
    sys.setattr("stderr", Py::new(py, Errors::new(logger))?)?;
    let globals = PyDict::new_bound(py);
    globals.set_item("write", Py::new(py, RecordLog { logger })?)?;
    py.run_bound(LAST_RESORT, Some(&globals), None)?;
    if stdout_is_a_pipe() {
        sys.getattr("stdout")?.call_method(
            "reconfigure",
            (),
            Some(&[("line_buffering", true)].into_py_dict_bound(py)),
        )?;
    }
    Ok(())
}

/// `write(levelno, text)`: one formatted `logging` record into the server's log.
#[pyclass(module = "webserver", name = "RecordLog")]
struct RecordLog {
    logger: Logger,
}

#[pymethods]
impl RecordLog {
    fn __call__(&self, levelno: i64, text: &str) {
        self.logger.log(level(levelno), text.trim_end());
    }
}

/// The server's level for a `logging` level number (`logging.WARNING` → warn, …).
fn level(levelno: i64) -> LogLevel {
    match levelno {
        40.. => LogLevel::Error,
        30..=39 => LogLevel::Warn,
        20..=29 => LogLevel::Info,
        _ => LogLevel::Debug,
    }
}

/// The level of the `logging` record being written, when the caller of a stream's `write` is a
/// `logging.StreamHandler` (it writes a formatted record whole, in one call, from its `emit`,
/// where the record is the local `record`); `None` for any other writer.
pub(crate) fn record_level(py: Python<'_>) -> Option<LogLevel> {
    let sys = py.import_bound("sys").ok()?;
    // Frame 0 is the caller of `write` (a Rust method has no frame of its own).
    let frame = sys.call_method1("_getframe", (0,)).ok()?;
    let code = frame.getattr("f_code").ok()?;
    if code.getattr("co_name").ok()?.extract::<String>().ok()? != "emit" {
        return None;
    }
    let record = frame.getattr("f_locals").ok()?.get_item("record").ok()?;
    let logging = py.import_bound("logging").ok()?;
    let record_type = logging.getattr("LogRecord").ok()?;
    if !record.is_instance(&record_type).ok()? {
        return None;
    }
    Some(level(record.getattr("levelno").ok()?.extract().ok()?))
}

fn stdout_is_a_pipe() -> bool {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat writes into the zeroed buffer it is given; descriptor 1 may be closed, which
    // it reports as an error.
    if unsafe { libc::fstat(1, stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so it filled the buffer.
    let mode = unsafe { stat.assume_init() }.st_mode;
    mode & libc::S_IFMT == libc::S_IFIFO
}
