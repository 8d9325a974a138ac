//! Processes and the descriptors they share: signals, reaping, pipes, moving descriptors to fixed
//! numbers in a child, claiming them in the child, and the master's wait on its workers' pipes.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::syscall;

/// The master keeps the descriptors it hands down at or above this number, so the child's dup2
/// onto `READY_FD`, `LIBRARY_FD` and the listeners' numbers cannot overwrite one before it is
/// moved.
pub(crate) const FD_FLOOR: RawFd = 100;

/// The signal the master forwards to its workers to have them reopen their log files (USR1 is
/// a worker's go).
pub(crate) const WORKER_REOPEN_SIGNAL: i32 = libc::SIGUSR2;

/// The signals the supervisor sends to its workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The master's go: start accepting.
    Usr1,
    /// Drain and exit (or exit at once before the go).
    Term,
    /// Exit now.
    Quit,
    Kill,
    /// Reopen the log files (the master got USR1).
    ReopenLogs,
}

impl Signal {
    fn number(self) -> i32 {
        match self {
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Term => libc::SIGTERM,
            Signal::Quit => libc::SIGQUIT,
            Signal::Kill => libc::SIGKILL,
            Signal::ReopenLogs => WORKER_REOPEN_SIGNAL,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Usr1 => "SIGUSR1",
            other => signal_name(other.number()),
        })
    }
}

/// Sends `signal` to process `pid`.
pub(crate) fn kill(pid: i32, signal: Signal) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    syscall!(kill(pid, signal.number())).map(drop)
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildExit {
    Exited(i32),
    Signaled(i32),
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChildExit::Exited(code) => write!(f, "exited with status {code}"),
            ChildExit::Signaled(signal) => {
                write!(f, "was killed by signal {signal} ({})", signal_name(signal))
            }
        }
    }
}

/// One child that has ended, if any, without waiting. `None` also when there are no children.
pub(crate) fn reap_any() -> io::Result<Option<(i32, ChildExit)>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        match syscall!(waitpid(-1, &mut status, libc::WNOHANG)) {
            Ok(0) => return Ok(None),
            Ok(pid) if libc::WIFSIGNALED(status) => {
                return Ok(Some((pid, ChildExit::Signaled(libc::WTERMSIG(status)))))
            }
            Ok(pid) => return Ok(Some((pid, ChildExit::Exited(libc::WEXITSTATUS(status))))),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Marks the calling thread `SCHED_BATCH`: waking it no longer preempts the thread running on
/// its CPU (it waits for that one to block or use up its slice), and it keeps its fair share.
/// No privilege is needed to leave `SCHED_OTHER` for it.
pub(crate) fn mark_this_thread_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param, only read.
    syscall!(sched_setscheduler(0, libc::SCHED_BATCH, &param))?;
    Ok(())
}

/// Set this process's umask (its children inherit it).
pub(crate) fn set_umask(mask: u32) {
    // SAFETY: umask(2) only replaces the process's file mode creation mask; it cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// A close-on-exec duplicate of `fd`, numbered `floor` or higher.
pub(crate) fn dup_at_or_above(fd: BorrowedFd<'_>, floor: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fd is open (borrowed); F_DUPFD_CLOEXEC returns a new descriptor or -1.
    let new = syscall!(fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor))?;
    // SAFETY: `new` was just opened by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A pipe whose ends are close-on-exec and non-blocking: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK))?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Clears `O_NONBLOCK` on `fd`, keeping its other status flags.
pub(crate) fn set_blocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL on an open (borrowed) descriptor only reads its flags.
    let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
    // SAFETY: F_SETFL on an open (borrowed) descriptor only changes its status flags.
    syscall!(fcntl(
        fd.as_raw_fd(),
        libc::F_SETFL,
        flags & !libc::O_NONBLOCK
    ))
    .map(drop)
}

/// Which open file a descriptor refers to (device and inode): tells whether a descriptor number
/// still refers to the same file after someone may have closed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

/// The identity of the file open at `fd`; `EBADF` once it is closed.
pub(crate) fn file_identity(fd: RawFd) -> io::Result<FileIdentity> {
    // SAFETY: `libc::stat` is plain old data, for which all-zero bytes are a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `stat`, which we own; any fd number is allowed (EBADF).
    syscall!(fstat(fd, &mut stat))?;
    Ok(FileIdentity {
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

/// Descriptor numbers below this can be claimed with [`claim_inherited`].
const CLAIMABLE: RawFd = 64;
/// One bit per descriptor number already claimed.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// Takes ownership of the descriptor this process inherited from its parent at number `fd`, and
/// marks it close-on-exec so it goes no further.
///
/// Refuses a number claimed before, a closed one, and one that is close-on-exec: everything this
/// process opens itself through std is close-on-exec, so a descriptor without the flag was
/// handed down across `exec` (or opened by foreign code without the flag, which the parent's
/// descriptor at that number rules out, as a descriptor number is taken by the lowest free slot).
pub(crate) fn claim_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if !(0..CLAIMABLE).contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not one a parent hands down"),
        ));
    }
    let bit = 1u64 << fd;
    if CLAIMED.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("descriptor {fd} was claimed already"),
        ));
    }
    let claimed = mark_close_on_exec_if_inherited(fd);
    if claimed.is_err() {
        CLAIMED.fetch_and(!bit, Ordering::SeqCst);
    }
    claimed?;
    // SAFETY: fd is open, was inherited (it lacked FD_CLOEXEC, see above) and is claimed once
    // (CLAIMED), so this is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mark_close_on_exec_if_inherited(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD only reads the descriptor flags; a closed fd is EBADF.
    let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
    if flags & libc::FD_CLOEXEC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} was opened by this process, not inherited"),
        ));
    }
    // SAFETY: F_SETFD only changes the descriptor flags of an open descriptor.
    syscall!(fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC)).map(drop)
}

/// Arranges for `command`'s child to find each `(from, to)` descriptor of this process at number
/// `to` (not close-on-exec there), and to be sent `death_signal` when this process dies. Each
/// `from` must stay open until the child is spawned and must differ from every `to` (dup2 onto
/// itself would keep the close-on-exec flag); if one is closed, spawning fails with `EBADF`.
pub(crate) fn hand_down(command: &mut Command, moves: Vec<(RawFd, RawFd)>, death_signal: Signal) {
    let death_signal = death_signal.number();
    // SAFETY: the closure runs in the forked child before exec; `in_child` makes only
    // async-signal-safe calls and allocates nothing.
    unsafe {
        command.pre_exec(move || in_child(&moves, death_signal));
    }
}

/// [`hand_down`] for a child meant to outlive this process (a new master, `USR2`): no death
/// signal.
pub(crate) fn hand_down_detached(command: &mut Command, moves: Vec<(RawFd, RawFd)>) {
    // SAFETY: the closure runs in the forked child before exec; `move_descriptors` makes only
    // async-signal-safe calls and allocates nothing.
    unsafe {
        command.pre_exec(move || move_descriptors(&moves));
    }
}

/// dup2 each `(from, to)`: the copy at `to` is not close-on-exec. Async-signal-safe.
fn move_descriptors(moves: &[(RawFd, RawFd)]) -> io::Result<()> {
    for &(from, to) in moves {
        // SAFETY: dup2 is async-signal-safe and has no memory-safety preconditions.
        syscall!(dup2(from, to))?;
    }
    Ok(())
}

/// The child's side of [`hand_down`], between fork and exec: dup2 and prctl, no allocation.
fn in_child(moves: &[(RawFd, RawFd)], death_signal: i32) -> io::Result<()> {
    move_descriptors(moves)?;
    // A worker must not outlive a master killed with -9.
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and only sets this process's flag.
    syscall!(prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong)).map(drop)
}

/// Ends the process at once: no destructors, no atexit handlers, no flush of buffered output.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no memory-safety preconditions; nothing of this process runs after it.
    unsafe { libc::_exit(code) }
}

/// Waits until one of `fds` is readable or hung up, `timeout` passes, or a signal arrives.
/// Returns how many descriptors are ready (0 after a timeout or a signal).
pub(crate) fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<usize> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let count = libc::nfds_t::try_from(pollfds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // SAFETY: pollfds is a valid array of `count` pollfds for the duration of the call.
    match syscall!(poll(pollfds.as_mut_ptr(), count, millis)) {
        Ok(ready) => Ok(usize::try_from(ready).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// The usual name of a signal number, for log lines.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        // The kernel's answer to a worker past --limit-cpu-seconds.
        libc::SIGXCPU => "SIGXCPU",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn pipe_ends_move_above_a_floor_and_the_write_end_blocks() {
        let (read, write) = pipe().unwrap();
        let read = dup_at_or_above(read.as_fd(), 100).unwrap();
        let write = dup_at_or_above(write.as_fd(), 100).unwrap();
        assert!(read.as_raw_fd() >= 100 && write.as_raw_fd() >= 100);
        set_blocking(write.as_fd()).unwrap();
        let mut reader = std::fs::File::from(read);
        let mut buf = [0u8; 8];
        let empty = reader.read(&mut buf).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
        std::fs::File::from(write).write_all(b"ok").unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
    }

    #[test]
    fn a_descriptor_has_its_files_identity_and_a_closed_one_has_none() {
        let (read, write) = pipe().unwrap();
        let (other, _) = pipe().unwrap();
        let fd = read.as_raw_fd();
        // Both ends of a pipe are one file; another pipe is another.
        assert_eq!(
            file_identity(fd).unwrap(),
            file_identity(write.as_raw_fd()).unwrap()
        );
        assert_ne!(
            file_identity(fd).unwrap(),
            file_identity(other.as_raw_fd()).unwrap()
        );
        // Not a number just closed: another test's thread may have reused it meanwhile (this
        // failed so once). No descriptor is ever -1.
        let gone = file_identity(-1).unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn a_descriptor_this_process_opened_is_not_inherited() {
        // std opens everything close-on-exec: claiming it would make a second owner.
        let (read, _write) = pipe().unwrap();
        let refused = claim_inherited(read.as_raw_fd()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{refused}");
        assert!(claim_inherited(CLAIMABLE).is_err());
    }

    #[test]
    fn exits_read_like_log_lines() {
        assert_eq!(ChildExit::Exited(3).to_string(), "exited with status 3");
        assert_eq!(
            ChildExit::Signaled(libc::SIGSEGV).to_string(),
            "was killed by signal 11 (SIGSEGV)"
        );
        assert_eq!(Signal::Usr1.to_string(), "SIGUSR1");
    }
}
