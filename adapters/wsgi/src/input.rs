//! `wsgi.input` (PEP 3333): the request body as a file-like object that pulls bytes from the host's
//! `read` as the app asks — `read(n)`, `read()`, `readline()`, `readlines()` and iteration — never
//! holding more of the body than one line or one `read` needs.

// PyO3 0.22's #[pymethods] expansion converts PyErr into itself, outside any item an `allow`
// could be put on (a clippy false positive).
#![allow(clippy::useless_conversion)]

use crate::exchange::Exchange;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::sync::Arc;

/// How much one host `read` asks for when the app did not say how much it wants.
const READ_CHUNK: usize = 64 * 1024;
/// How much `readline` pulls at a time while looking for the end of a line.
const LINE_CHUNK: usize = 8 * 1024;

#[pyclass(module = "webserver", name = "Input")]
pub(crate) struct Input {
    exchange: Arc<Exchange>,
    /// Bytes pulled from the host but not handed to the app yet (`buf[pos..]`): what `readline`
    /// read past the end of a line.
    buf: Vec<u8>,
    pos: usize,
    /// The host said: end of the body.
    eof: bool,
}

impl Input {
    pub(crate) fn new(exchange: Arc<Exchange>) -> Input {
        Input {
            exchange,
            buf: Vec::new(),
            pos: 0,
            eof: false,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Moves up to `n` buffered bytes into `out`.
    fn take_buffered(&mut self, n: usize, out: &mut Vec<u8>) {
        let n = n.min(self.buf.len() - self.pos);
        out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Appends up to `want` bytes from the host to `out`; 0 at the end of the body.
    fn pull(&mut self, py: Python<'_>, want: usize, out: &mut Vec<u8>) -> PyResult<usize> {
        if self.eof || want == 0 {
            return Ok(0);
        }
        let start = out.len();
        out.resize(start + want, 0);
        let result = self.exchange.read(py, &mut out[start..]);
        let n = *result.as_ref().unwrap_or(&0);
        out.truncate(start + n);
        let n = result?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// `read(size)`: `size` bytes, fewer only at the end of the body; all of it when `size` is
    /// `None` or negative.
    fn read_bytes(&mut self, py: Python<'_>, size: Option<isize>) -> PyResult<Vec<u8>> {
        let limit = size.and_then(|s| usize::try_from(s).ok());
        let mut out = Vec::new();
        self.take_buffered(limit.unwrap_or(usize::MAX), &mut out);
        loop {
            let want = match limit {
                Some(limit) if out.len() >= limit => break,
                Some(limit) => limit - out.len(),
                None => READ_CHUNK,
            };
            if self.pull(py, want, &mut out)? == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// `readline(size)`: through the next `\n` (included), at most `size` bytes.
    fn read_line(&mut self, py: Python<'_>, size: Option<isize>) -> PyResult<Vec<u8>> {
        let limit = size
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            let found = self.buffered()[scanned..].iter().position(|&b| b == b'\n');
            let end = match found {
                Some(i) => Some(scanned + i + 1),
                None if self.buffered().len() >= limit || self.eof => Some(self.buffered().len()),
                None => None,
            };
            if let Some(end) = end {
                let mut line = Vec::new();
                self.take_buffered(end.min(limit), &mut line);
                return Ok(line);
            }
            scanned = self.buffered().len();
            // Compact, then pull more behind what is buffered.
            self.buf.drain(..self.pos);
            self.pos = 0;
            let want = LINE_CHUNK.min(limit - self.buf.len());
            let mut more = std::mem::take(&mut self.buf);
            let pulled = self.pull(py, want, &mut more);
            self.buf = more;
            pulled?;
        }
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.read_bytes(py, size)?;
        Ok(PyBytes::new_bound(py, &bytes))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, size)?;
        Ok(PyBytes::new_bound(py, &line))
    }

    /// All remaining lines; with a positive `hint`, stops once that many bytes were read.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = hint
            .and_then(|h| usize::try_from(h).ok())
            .filter(|&h| h > 0);
        let lines = PyList::empty_bound(py);
        let mut total = 0;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new_bound(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new_bound(py, &line)))
    }
}
