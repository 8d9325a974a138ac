//! `--capture-output` (gunicorn's option): what a worker writes to its standard output — an app's
//! `print()`, a C library's `printf`, a subprocess that inherited it — goes to the error log, one
//! record per line, tagged with the worker and its generation like every line and named
//! `stdout` (`--access-logfile -` keeps writing to the standard output the worker was given). With `--error-logfile FILE` the worker's standard error goes there too (named
//! `stderr`); with the error log on stderr it already is the error log.
//!
//! Each stream becomes the write end of a pipe (the same descriptor number, so every writer in
//! the process follows), and a thread turns what arrives into log lines until the last writer
//! closes it. [`Capture`], dropped at the worker's end, puts `/dev/null` in their place and gives
//! the threads a moment to log the last lines.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::mpsc::{channel, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::sys::logfile::redirect_std;
use crate::sys::process::{dup_at_or_above, pipe, set_blocking};

/// How long a worker's end waits for the last captured lines (a subprocess that inherited the
/// stream may keep it open for ever).
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 16 * 1024;

/// The captured streams; dropping it ends the capture (see the module docs).
pub(crate) struct Capture {
    streams: Vec<RawFd>,
    /// One message from each reader thread once its pipe is closed and its last line logged.
    drained: Receiver<()>,
}

/// The standard output as it was before the capture, for `--access-logfile -`: the access log
/// is the stdout the operator gave, not a part of the error log.
static ORIGINAL_STDOUT: OnceLock<File> = OnceLock::new();

/// The standard output from before `--capture-output`, if it is on.
pub(crate) fn original_stdout() -> Option<&'static File> {
    ORIGINAL_STDOUT.get()
}

/// Captures standard output, and standard error too if `stderr_too`.
pub(crate) fn start(stderr_too: bool) -> io::Result<Capture> {
    let original = dup_at_or_above(io::stdout().as_fd(), 0)?;
    let _ = ORIGINAL_STDOUT.set(File::from(original));
    let (done, drained) = channel();
    let mut streams = vec![(libc::STDOUT_FILENO, "stdout", log::Level::Info)];
    if stderr_too {
        streams.push((libc::STDERR_FILENO, "stderr", log::Level::Error));
    }
    for &(fd, name, level) in &streams {
        let (read_end, write_end) = pipe()?;
        // Writers (Python's `print` among them) expect a blocking stream, and so does the reader.
        set_blocking(write_end.as_fd())?;
        set_blocking(read_end.as_fd())?;
        let done = done.clone();
        std::thread::Builder::new()
            .name(format!("capture-{name}"))
            .spawn(move || {
                log_lines(read_end, name, level);
                let _ = done.send(());
            })?;
        redirect_std(write_end.as_fd(), fd)?;
    }
    Ok(Capture {
        streams: streams.iter().map(|&(fd, ..)| fd).collect(),
        drained,
    })
}

/// Logs each line that arrives on `pipe` until every write end is closed.
fn log_lines(pipe: OwnedFd, name: &'static str, level: log::Level) {
    let mut pipe = File::from(pipe);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let emit = |line: &[u8]| {
        let line = String::from_utf8_lossy(line);
        log::log!(target: name, level, "{}", line.trim_end_matches(['\n', '\r']));
    };
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("cannot read the captured {name}: {e}");
                break;
            }
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            emit(&pending[..end]);
            pending.drain(..=end);
        }
        if pending.len() >= MAX_LINE {
            emit(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        emit(&pending);
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let null = match File::options().write(true).open("/dev/null") {
            Ok(null) => null,
            Err(e) => return log::debug!("cannot end the output capture: {e}"),
        };
        for &fd in &self.streams {
            if let Err(e) = redirect_std(null.as_fd(), fd) {
                log::debug!("cannot end the capture of descriptor {fd}: {e}");
            }
        }
        let deadline = Instant::now() + DRAIN_WAIT;
        for _ in &self.streams {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.drained.recv_timeout(left).is_err() {
                log::debug!("captured output still open (a subprocess holds it?); not waiting");
                return;
            }
        }
    }
}
