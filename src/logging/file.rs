//! Where log lines go: a file by path (reopened on request: logrotate renames it, then signals),
//! or a standard stream. Every line is one `write` to a descriptor opened for appending, so the
//! lines of the master and of every worker sharing a file never mix.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::sys::logfile;

/// A log destination.
#[derive(Debug)]
pub(crate) enum Output {
    File(Arc<LogFile>),
    Stdout,
}

impl Output {
    /// Writes `line` (one or more whole lines) at once.
    pub(crate) fn write_lines(&self, line: &[u8]) -> io::Result<()> {
        match self {
            Output::File(file) => file.write_all(line),
            Output::Stdout => match super::capture::original_stdout() {
                Some(mut stdout) => stdout.write_all(line),
                None => io::stdout().lock().write_all(line),
            },
        }
    }
}

/// A file opened by path whose descriptor stays the same when it is reopened.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
}

/// Every file opened by this process, for [`reopen_all`].
static OPEN: Mutex<Vec<Arc<LogFile>>> = Mutex::new(Vec::new());

impl LogFile {
    /// Opens `path` for appending and registers it for [`reopen_all`].
    pub(crate) fn open(path: &Path) -> io::Result<Arc<LogFile>> {
        let file = Arc::new(LogFile {
            path: path.to_owned(),
            file: logfile::open_append(path)?,
        });
        OPEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&file));
        Ok(file)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` in one `write` (a regular file takes all of it).
    pub(crate) fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.file).write_all(bytes)
    }

    /// Opens the path anew (a file renamed away keeps what was written to it) and points this
    /// file's descriptor at it: lines written before went to the old file, lines after go to
    /// the new one, and none is lost in between.
    fn reopen(&self) -> io::Result<()> {
        let fresh = logfile::open_append(&self.path)?;
        logfile::replace(&self.file, &fresh)
    }
}

/// Reopens every log file of this process (USR1 to the master; USR2 from it to a worker). A file
/// that cannot be reopened keeps the old one and says so.
pub(crate) fn reopen_all() {
    super::flush_all();
    let files: Vec<Arc<LogFile>> = OPEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for file in files {
        match file.reopen() {
            Ok(()) => log::debug!("reopened {}", file.path().display()),
            Err(e) => log::error!(
                "cannot reopen the log file {}: {e}; still writing to the file it was before (check its directory and permissions, then send USR1 again)",
                file.path().display()
            ),
        }
    }
}
