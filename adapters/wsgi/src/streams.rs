//! The two small file-like objects of the environ besides `wsgi.input`: `wsgi.errors` (lines into
//! the server's log, tagged with the app; also the worker's `sys.stderr`, see
//! [`crate::python_output`]) and `wsgi.file_wrapper` (a file served in blocks).

// PyO3 0.22's #[pymethods] expansion converts PyErr into itself, outside any item an `allow`
// could be put on (a clippy false positive).
#![allow(clippy::useless_conversion)]

use app_abi::{LogLevel, Logger};

use crate::exchange::Exchange;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The block size `wsgi.file_wrapper` reads when the app does not give one.
const FILE_BLOCK: usize = 8192;

/// `wsgi.errors`: text written here reaches the server's log one line per message, so a
/// traceback printed with `print(..., file=environ['wsgi.errors'])` keeps its lines together in
/// order. A partial line waits for its newline, `flush()`, or the end of the request.
#[pyclass(module = "webserver", name = "Errors")]
pub(crate) struct Errors {
    logger: Logger,
    pending: String,
}

impl Errors {
    pub(crate) fn new(logger: Logger) -> Errors {
        Errors {
            logger,
            pending: String::new(),
        }
    }

    fn emit_lines(&mut self, level: LogLevel) {
        while let Some(i) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=i).collect();
            self.logger.log(level, line.trim_end_matches(['\n', '\r']));
        }
    }
}

#[pymethods]
impl Errors {
    /// Lines at error level, or at their record's level when a `logging.StreamHandler` writes.
    fn write(&mut self, py: Python<'_>, text: &str) -> usize {
        self.pending.push_str(text);
        self.emit_lines(crate::python_output::record_level(py).unwrap_or(LogLevel::Error));
        text.chars().count()
    }

    fn writelines(&mut self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.iter()? {
            self.write(py, line?.extract()?);
        }
        Ok(())
    }

    /// Not a terminal (as `sys.stderr` replaced by it, colour and progress bars stay off).
    fn isatty(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        true
    }

    /// The process's standard error, for code that writes below Python (`faulthandler`, a
    /// subprocess's `stderr=sys.stderr`).
    fn fileno(&self) -> i32 {
        libc::STDERR_FILENO
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    fn flush(&mut self) {
        self.emit_lines(LogLevel::Error);
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.logger.log(LogLevel::Error, &rest);
        }
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `wsgi.file_wrapper(filelike, block_size=8192)`: iterates the file in blocks; the server calls
/// its `close()`, which closes the file (PEP 3333 "Optional Platform-Specific File Handling").
/// Returned as the response body of a file with a real descriptor, it is not iterated at all:
/// the server sends the file (ABI 1.2 `send_file`, [`FileWrapper::hand_over`]).
#[pyclass(module = "webserver", name = "FileWrapper")]
pub(crate) struct FileWrapper {
    filelike: PyObject,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = FILE_BLOCK))]
    fn new(filelike: PyObject, block_size: usize) -> FileWrapper {
        FileWrapper {
            filelike,
            block_size: block_size.max(1),
        }
    }

    /// Whether the file can be sent by the server: 1.0 `seekable()` as werkzeug's range
    /// wrapper asks, so that it seeks rather than reads and drops the bytes before a range.
    fn seekable(&self, py: Python<'_>) -> bool {
        let file = self.filelike.bind(py);
        file.hasattr("seek").unwrap_or(false)
            && file
                .call_method0("seekable")
                .and_then(|s| s.is_truthy())
                .unwrap_or(false)
    }

    fn seek(&self, py: Python<'_>, offset: u64) -> PyResult<PyObject> {
        Ok(self
            .filelike
            .bind(py)
            .call_method1("seek", (offset,))?
            .unbind())
    }

    fn tell(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(self.filelike.bind(py).call_method0("tell")?.unbind())
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.block_size,))?;
        let empty = match block.downcast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => block.len().map(|n| n == 0).unwrap_or(false),
        };
        Ok((!empty).then_some(block))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let file = self.filelike.bind(py);
        if file.hasattr("close")? {
            file.call_method0("close")?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// The file's descriptor and the position the body starts at, if it has a real one (a
    /// `BytesIO` has none: it is iterated).
    fn descriptor(&self, py: Python<'_>) -> Option<(i32, u64)> {
        let file = self.filelike.bind(py);
        let fd: i32 = file.call_method0("fileno").ok()?.extract().ok()?;
        let position: u64 = match file.call_method0("tell") {
            Ok(position) => position.extract().ok()?,
            Err(_) => 0,
        };
        Some((fd, position))
    }

    /// Hands `length` bytes of the file (from `at`, else from its position; `length`
    /// `WS_LENGTH_UNKNOWN`: to its end) to the server. False when the server cannot take it
    /// (older than ABI 1.2, no descriptor, not a regular file): the caller iterates the wrapper
    /// as before.
    pub(crate) fn hand_over(
        &self,
        py: Python<'_>,
        exchange: &Exchange,
        at: Option<u64>,
        length: u64,
        flags: u32,
    ) -> bool {
        let Some((fd, position)) = self.descriptor(py) else {
            return false;
        };
        let offset = at.unwrap_or(position);
        exchange.send_file(fd, offset, length, flags) == Some(app_abi::raw::WS_OK)
    }
}
