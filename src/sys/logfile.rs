//! Log files that can be reopened in place (logrotate's rename-then-signal) and the signal mask
//! that keeps a worker from dying of the reopen signal before it can handle it.
//!
//! A log file is one descriptor number for the life of the process; reopening opens the path
//! anew and `dup2`s the new file onto that number, which the kernel does atomically: a line
//! written concurrently goes whole to the old file or whole to the new one, never nowhere, and
//! writers need no lock.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::syscall;

/// Opens `path` for appending (created if missing, mode 0644 less the umask). Appends from
/// several processes (master and workers share the files) never overwrite each other.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    File::options().append(true).create(true).open(path)
}

/// Makes `live`'s descriptor refer to `fresh`'s file from now on; `fresh` may be dropped after.
pub(crate) fn replace(live: &File, fresh: &File) -> io::Result<()> {
    // SAFETY: dup2 on two descriptors this process owns (both `File`s are alive); it closes the
    // old file behind `live`'s number and makes the number refer to `fresh`'s file, atomically.
    syscall!(dup2(fresh.as_raw_fd(), live.as_raw_fd())).map(drop)
}

/// Makes the standard stream `std_fd` (1 or 2) refer to `fresh`'s file from now on (the same
/// atomic `dup2` as [`replace`]); `fresh` may be dropped after.
pub(crate) fn redirect_std(fresh: BorrowedFd<'_>, std_fd: RawFd) -> io::Result<()> {
    // SAFETY: dup2 from a descriptor this process holds (borrowed) onto a standard stream's
    // number, which it closes and reuses atomically; no Rust object owns that number.
    syscall!(dup2(fresh.as_raw_fd(), std_fd)).map(drop)
}

/// Starts `command`'s child with `signal` blocked: one sent before the child installed its
/// handler stays pending instead of killing it (the default action), and is delivered once the
/// child calls [`unblock`].
pub(crate) fn spawn_blocked(command: &mut Command, signal: i32) {
    // SAFETY: the closure runs in the forked child before exec; `set_blocked` makes only
    // async-signal-safe calls and allocates nothing; the mask survives exec.
    unsafe {
        command.pre_exec(move || set_blocked(libc::SIG_BLOCK, signal));
    }
}

/// Unblocks `signal` for the calling thread (and the threads it starts from now on); a pending
/// one is delivered at once.
pub(crate) fn unblock(signal: i32) -> io::Result<()> {
    set_blocked(libc::SIG_UNBLOCK, signal)
}

/// `pthread_sigmask(how, {signal})`: sigemptyset, sigaddset and pthread_sigmask only.
fn set_blocked(how: i32, signal: i32) -> io::Result<()> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigaddset then writes into it.
    let set = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), signal);
        set.assume_init()
    };
    // SAFETY: pthread_sigmask reads `set` and changes only this thread's mask.
    match unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn replace_points_the_same_descriptor_at_the_new_file() {
        let dir = std::env::temp_dir().join(format!("ws-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("a.log"), dir.join("b.log"));
        let live = open_append(&old).unwrap();
        (&live).write_all(b"one\n").unwrap();
        replace(&live, &open_append(&new).unwrap()).unwrap();
        (&live).write_all(b"two\n").unwrap();
        let read = |p: &Path| {
            let mut s = String::new();
            File::open(p).unwrap().read_to_string(&mut s).unwrap();
            s
        };
        assert_eq!((read(&old), read(&new)), ("one\n".into(), "two\n".into()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
