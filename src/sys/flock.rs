//! Advisory whole-file locks (`flock(2)`): held by an open file description, so a lock lives
//! exactly as long as its holder keeps the file open, and the kernel releases it when the holder
//! dies, however it dies (`kill -9` included). That is what makes a lock tell a live owner from a
//! stale file.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::syscall;

/// Takes the exclusive lock on `file` without waiting: `Ok(true)` if this process holds it now,
/// `Ok(false)` if another open file description holds a lock on the same file.
pub(crate) fn try_lock_exclusive(file: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: flock on an open (borrowed) descriptor has no memory-safety preconditions.
        match syscall!(flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn a_lock_is_exclusive_between_open_files_and_ends_with_its_holder() {
        let path = std::env::temp_dir().join(format!("webserver-flock-{}", std::process::id()));
        let first = File::create(&path).unwrap();
        let second = File::open(&path).unwrap();
        assert!(try_lock_exclusive(first.as_fd()).unwrap());
        // Again through the same open file: still ours.
        assert!(try_lock_exclusive(first.as_fd()).unwrap());
        assert!(!try_lock_exclusive(second.as_fd()).unwrap());
        drop(first);
        assert!(try_lock_exclusive(second.as_fd()).unwrap());
        std::fs::remove_file(&path).unwrap();
    }
}
