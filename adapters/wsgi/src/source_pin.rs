//! One version of the app's Python code per generation. Each worker imports the app's `.py` files
//! when it starts, so a worker that replaces another later (after a crash, a `--max-requests`
//! recycle, a TTIN) would import whatever is on disk by then: an edit not yet deployed with HUP,
//! running inside the old generation and under its name. The server hands every worker of a
//! generation the same pin (an in-memory file, named by `WEBSERVER_SOURCE_PIN_FD`; see the
//! server's `supervisor/source_pin.rs`): the first worker to load writes down the app files it
//! imported and a hash of each; a later one compares the files it imported and refuses to start
//! if one differs. The generation's other workers serve on with the code it started with.
//!
//! The app's files are the modules imported from the app's directory (the current directory,
//! first on `sys.path`), outside any installed package directory. Modules first imported later,
//! while serving, are not compared: a file in one worker's record and not another's is left
//! alone, since an edit that makes a replacement import other modules changes a file both
//! imported.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{DefaultHasher, Hasher};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// What `/proc/self/fd/N` shows for the server's pin (an in-memory file named so).
const PIN_NAME: &str = "/memfd:webserver-pin-";
/// Names the descriptor of the generation's pin; absent when the server has none for us.
const PIN_FD_ENV: &str = "WEBSERVER_SOURCE_PIN_FD";

/// Records the app's files in the generation's pin (first worker) or checks them against it.
/// `Err` is the one line that refuses this worker.
pub(crate) fn check(py: Python<'_>) -> Result<(), String> {
    let Some(fd) = std::env::var(PIN_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return Ok(());
    };
    let app_dir = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    let files = app_files(py, &app_dir);
    let mine = record(&files);
    // A pin that cannot be used pins nothing: serving an app is worth more than the check.
    let Ok(mut pin) = Pin::open(fd) else {
        return Ok(());
    };
    let Ok(pinned) = pin.read_or_write(&mine) else {
        return Ok(());
    };
    let pinned = parse(&pinned);
    for (path, hash) in &files {
        if pinned.get(path).is_some_and(|first| first != hash) {
            let shown = path.strip_prefix(&app_dir).unwrap_or(path);
            return Err(format!(
                "{} is not what this generation's first worker imported: the source changed; \
                 HUP to deploy it (the generation's other workers serve on with its code)",
                shown.display()
            ));
        }
    }
    Ok(())
}

/// Each imported module's file under `app_dir` (outside package directories) and its hash.
fn app_files(py: Python<'_>, app_dir: &Path) -> Vec<(PathBuf, u64)> {
    let modules = py
        .import_bound("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|m| m.downcast_into::<PyDict>().map_err(PyErr::from))
        // A copy: reading the files releases nothing, but the loop must not see the dict change.
        .and_then(|m| m.copy());
    let Ok(modules) = modules else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, u64)> = modules
        .values()
        .iter()
        .filter_map(|module| module.getattr("__file__").ok()?.extract::<String>().ok())
        .map(|file| std::path::absolute(&file).unwrap_or_else(|_| PathBuf::from(file)))
        .filter(|path| path.starts_with(app_dir) && !in_package_dir(path))
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            // The same hasher in every worker of a generation: they run the same library copy.
            let mut hasher = DefaultHasher::new();
            hasher.write(&bytes);
            Some((path, hasher.finish()))
        })
        .collect();
    files.sort();
    files.dedup();
    files
}

/// A virtualenv or installed package inside the app's directory is not the app's own code.
fn in_package_dir(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str();
        c == "site-packages" || c == "dist-packages"
    })
}

/// One line per file: `HASH PATH`.
fn record(files: &[(PathBuf, u64)]) -> String {
    files
        .iter()
        .map(|(path, hash)| format!("{hash:016x} {}\n", path.display()))
        .collect()
}

fn parse(pinned: &str) -> HashMap<PathBuf, u64> {
    pinned
        .lines()
        .filter_map(|line| {
            let (hash, path) = line.split_once(' ')?;
            Some((PathBuf::from(path), u64::from_str_radix(hash, 16).ok()?))
        })
        .collect()
}

/// The pin, opened anew (its own open file, so the lock below excludes the other workers, which
/// inherited the same descriptor) and locked until dropped.
struct Pin(File);

impl Pin {
    fn open(fd: i32) -> std::io::Result<Pin> {
        let path = format!("/proc/self/fd/{fd}");
        // The variable may have reached a process that is no worker (a subprocess of the app
        // inherits it): only the server's pin is ever written to.
        let target = std::fs::read_link(&path)?;
        if !target.to_string_lossy().starts_with(PIN_NAME) {
            return Err(std::io::Error::other("not a webserver source pin"));
        }
        let file = File::options().read(true).write(true).open(&path)?;
        // SAFETY: flock on a descriptor this File owns; released when it is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Pin(file))
    }

    /// What the first worker wrote; if nothing yet, this worker is first and writes `mine`.
    fn read_or_write(&mut self, mine: &str) -> std::io::Result<String> {
        let mut pinned = String::new();
        self.0.read_to_string(&mut pinned)?;
        if pinned.is_empty() {
            self.0.rewind()?;
            self.0.write_all(mine.as_bytes())?;
            return Ok(mine.to_owned());
        }
        Ok(pinned)
    }
}
