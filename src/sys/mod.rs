//! The operating system. Every libc call the server makes goes through this module (mio's
//! habit): each wrapper states its safety argument once, turns `-1` into the `errno` error, and
//! retries `EINTR` where the call may be interrupted. Code outside `sys` (and outside `app`, which
//! talks to app code through raw pointers) has no `unsafe`.
//!
//! One file per kind of object: sub-modules are added as the call sites move here.

use std::io;

pub(crate) mod epoll;
pub(crate) mod file;
pub(crate) mod flock;
pub(crate) mod heap;
pub(crate) mod logfile;
pub(crate) mod memfd;
pub(crate) mod notify;
pub(crate) mod peer;
pub(crate) mod privilege;
pub(crate) mod process;
pub(crate) mod proctitle;
pub(crate) mod reactor;
pub(crate) mod seccomp;
pub(crate) mod shm;
pub(crate) mod socket;

/// Return values of libc calls that signal failure with `-1` and set `errno`.
pub(crate) trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}

impl MinusOne for i32 {
    const MINUS_ONE: Self = -1;
}

impl MinusOne for i64 {
    const MINUS_ONE: Self = -1;
}

impl MinusOne for isize {
    const MINUS_ONE: Self = -1;
}

/// `-1` becomes the `errno` error; any other value is the call's result.
pub(crate) fn check<T: MinusOne>(rc: T) -> io::Result<T> {
    if rc == T::MINUS_ONE {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Wraps one libc call: `syscall!(close(fd))` is `check(unsafe { libc::close(fd) })`. The
/// caller writes the `// SAFETY:` comment for the call above the macro.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(clippy::undocumented_unsafe_blocks)] // the caller's SAFETY comment covers it
        let rc = unsafe { libc::$fn($($arg),*) };
        $crate::sys::check(rc)
    }};
}
pub(crate) use syscall;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_one_is_the_errno_error() {
        // SAFETY: closing a descriptor that cannot be open has no effect but EBADF.
        let closed = syscall!(close(-1));
        assert_eq!(closed.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(check(3i32).unwrap(), 3);
    }
}
