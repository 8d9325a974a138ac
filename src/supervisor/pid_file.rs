//! `--pid FILE`: the master's pid, and a lock that says the master is alive.
//!
//! The master holds an exclusive `flock` on FILE from before it binds until it exits, so:
//! - a second master with the same FILE is refused (naming the running one) and touches nothing;
//! - FILE (and `FILE.status`) left behind by a master killed with -9 are stale, and recognisably
//!   so: nobody holds the lock (`flock -n FILE true` succeeds). The next master takes them over.
//!
//! The master removes both files as it exits, before the lock goes with the open file, so a
//! master starting meanwhile never locks a file that is about to disappear.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::process::status_path;
use crate::sys::flock::try_lock_exclusive;

/// How long a master waits for a lock held by someone else before it refuses: long enough for a
/// script that only probes the lock (`flock -n FILE true`), short enough to refuse promptly.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);
const LOCK_RETRY: Duration = Duration::from_millis(20);
/// Opening FILE and locking it are two steps; if the previous owner removed FILE in between,
/// the lock guards a file no longer there, and we open it again (this often at most).
const OPEN_ATTEMPTS: usize = 10;

/// Why `--pid FILE` cannot be ours.
#[derive(Debug)]
pub(crate) enum PidFileError {
    /// Another master holds FILE's lock; its pid, if FILE names one.
    Held {
        path: PathBuf,
        pid: Option<u32>,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for PidFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidFileError::Held {
                path,
                pid: Some(pid),
            } => write!(
                f,
                "another master (pid {pid}) is running with --pid {}; stop it first (kill -TERM {pid}) or give this one another --pid",
                path.display()
            ),
            PidFileError::Held { path, pid: None } => write!(
                f,
                "another master is running with --pid {} (it holds the file's lock); stop it first or give this one another --pid",
                path.display()
            ),
            PidFileError::Io { path, source } => {
                write!(f, "cannot use --pid {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for PidFileError {}

/// FILE, locked and holding this process's pid; removed (with `FILE.status`) when dropped.
pub(crate) struct PidFile {
    path: PathBuf,
    /// Open for as long as the master runs: closing it releases the lock.
    file: File,
    /// FILE names this master: it removes FILE when it exits. Not yet for a new master of a
    /// binary upgrade (until it serves), no longer for the old one (once the new one serves).
    owned: bool,
}

impl PidFile {
    /// Lock `path` and write this process's pid into it; a stale file (its lock free) is taken
    /// over and its stale status removed.
    pub(crate) fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let io_error = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let started = Instant::now();
        let mut attempts = 0;
        let mut file = loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_error)?;
            if !try_lock_exclusive(file.as_fd()).map_err(io_error)? {
                if started.elapsed() < LOCK_PATIENCE {
                    std::thread::sleep(LOCK_RETRY);
                    continue;
                }
                return Err(PidFileError::Held {
                    path: path.to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            attempts += 1;
            if is_at(&file, path) || attempts >= OPEN_ATTEMPTS {
                break file;
            }
        };
        if let Some(stale) = read_pid(&mut file) {
            log::info!(
                "taking over {}: master {stale} left it and is gone (nobody held its lock)",
                path.display()
            );
        }
        let status = status_path(path);
        match fs::remove_file(&status) {
            Ok(()) => log::debug!("removed the stale {}", status.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        let mut pid_file = PidFile {
            path: path.to_path_buf(),
            file,
            owned: false,
        };
        pid_file.write_pid().map_err(io_error)?;
        Ok(pid_file)
    }

    /// FILE, open and locked by the old master of a binary upgrade, which handed down `fd`: the
    /// lock is the same open file's, so it never lapses. FILE still names the old master until
    /// [`PidFile::write_pid`].
    pub(crate) fn adopt(path: &Path, fd: OwnedFd) -> Result<PidFile, PidFileError> {
        let file = File::from(fd);
        let io_error = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        if !try_lock_exclusive(file.as_fd()).map_err(io_error)? || !is_at(&file, path) {
            return Err(io_error(io::Error::other(
                "the old master handed down another file than --pid names",
            )));
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
            owned: false,
        })
    }

    /// FILE names this process from now on, and goes with it.
    pub(crate) fn write_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file
            .write_all(format!("{}\n", std::process::id()).as_bytes())?;
        self.owned = true;
        Ok(())
    }

    /// A new master took FILE over: leave it (and `FILE.status`) in place when this one exits.
    pub(crate) fn hand_over(&mut self) {
        self.owned = false;
    }

    /// The open file (and its lock), to hand down to a new master.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only while the path is still our file: never another master's.
        if !self.owned || !is_at(&self.file, &self.path) {
            return;
        }
        for path in [status_path(&self.path), self.path.clone()] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

/// Whether `path` names the file open as `file` (and not a new one made after it was removed).
fn is_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// The pid a pid file names, if it names one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("webserver-pidfile-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn one_holder_at_a_time_and_the_holder_cleans_up() {
        let dir = scratch("one");
        let path = dir.join("ws.pid");
        let held = PidFile::acquire(&path).unwrap();
        let me = std::process::id();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{me}\n"));
        fs::write(status_path(&path), "ready 1 h\n").unwrap();
        // flock locks belong to open files: a second open in this process is refused too.
        match PidFile::acquire(&path) {
            Err(PidFileError::Held { pid: Some(pid), .. }) => assert_eq!(pid, me),
            other => panic!("{:?}", other.map(|_| ())),
        }
        // The refused one touched nothing.
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{me}\n"));
        assert!(status_path(&path).exists());
        drop(held);
        assert!(!path.exists() && !status_path(&path).exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_file_is_taken_over_and_its_status_dropped() {
        let dir = scratch("stale");
        let path = dir.join("ws.pid");
        fs::write(&path, "4000000\nsome junk").unwrap();
        fs::write(status_path(&path), "ready 7 h\n").unwrap();
        let held = PidFile::acquire(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert!(!status_path(&path).exists());
        drop(held);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_holder_whose_file_was_replaced_leaves_the_new_one_alone() {
        let dir = scratch("replaced");
        let path = dir.join("ws.pid");
        let held = PidFile::acquire(&path).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, "12345\n").unwrap();
        drop(held);
        assert_eq!(fs::read_to_string(&path).unwrap(), "12345\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
