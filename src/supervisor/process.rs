//! Process plumbing for the master: descriptors for children, signals, exit statuses.

use std::io;
use std::net::TcpListener;
use std::os::fd::{IntoRawFd, RawFd};
use std::path::{Path, PathBuf};

use crate::sys::syscall;

/// `FILE.status` beside the pid file: what the last swap did, for scripts.
pub(crate) fn status_path(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".status");
    PathBuf::from(name)
}

/// Moves the listener to a high descriptor so dup2 onto 3 and 4 in the child cannot clobber it.
pub(crate) fn high_fd(listener: TcpListener) -> io::Result<RawFd> {
    let fd = listener.into_raw_fd();
    // SAFETY: fd is open and ours; F_DUPFD_CLOEXEC returns a new descriptor or -1.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    // SAFETY: fd is ours and no longer needed once duplicated.
    unsafe { libc::close(fd) };
    if high < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(high)
}

/// A close-on-exec pipe whose ends sit above the descriptors the child's dup2 targets; the read
/// end is non-blocking.
pub(crate) fn pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut high = [0 as RawFd; 2];
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: fd is a descriptor pipe2 just opened for us.
        high[i] = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100) };
        // SAFETY: as above; the duplicate replaces it.
        unsafe { libc::close(*fd) };
    }
    if high.iter().any(|&fd| fd < 0) {
        return Err(io::Error::last_os_error());
    }
    // The worker's end must block: it writes a few lines and must not lose them.
    // SAFETY: high[1] is open; F_SETFL with 0 clears O_NONBLOCK.
    unsafe { libc::fcntl(high[1], libc::F_SETFL, 0) };
    Ok((high[0], high[1]))
}

pub(crate) fn signal_pid(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions; pid is one of our children.
    if let Err(e) = syscall!(kill(pid, signal)) {
        log::debug!("kill({pid}, {signal}): {e}");
    }
}

/// Spread --max-requests so workers do not all recycle at once.
pub(crate) fn jitter(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos ^ std::process::id()) % (max + 1)
}

pub(crate) fn describe_exit(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        format!("was killed by signal {signal} ({})", signal_name(signal))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}

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
        _ => "signal",
    }
}
