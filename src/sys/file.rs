//! Files served from disk (`--static`): a directory opened once, a file opened beneath it with
//! the kernel refusing every way out of it, and `sendfile(2)` from a file to a socket.
//!
//! `open_beneath` uses `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` (Linux 5.6+): the
//! kernel resolves the path one component at a time and fails with `EXDEV` when `..` or a
//! symlink (absolute or relative) would leave the directory, so no check-then-open race exists.
//! Where the system call is missing (`ENOSYS`: an older kernel, or a seccomp filter that does
//! not know it) the answer is remembered and [`open_beneath`] reports [`Beneath::Unsupported`];
//! the caller then resolves the path itself (`crate::static_files::resolve`).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::syscall;

/// `openat2` returned `ENOSYS` once: it will not be tried again.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// `struct open_how` (linux/openat2.h), the version-0 layout every openat2 kernel takes
/// (libc's is non-exhaustive, so it cannot be built field by field).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// What [`open_beneath`] found.
#[derive(Debug)]
pub(crate) enum Beneath {
    Opened(File),
    /// The system has no `openat2`: resolve the path another way.
    Unsupported,
}

/// Opens the directory `path` (`O_PATH`: only as a place to open files beneath).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path.as_os_str().as_bytes())?;
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: `path` is a NUL-terminated string that outlives the call; no mode is needed
    // without O_CREAT.
    let fd = syscall!(open(path.as_ptr(), flags))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `relative` (no leading `/`) beneath the directory `dir` for reading. Non-blocking, so
/// that a FIFO planted in the directory cannot hold the thread (the caller serves regular
/// files only); close-on-exec; never the controlling terminal.
pub(crate) fn open_beneath(dir: BorrowedFd<'_>, relative: &[u8]) -> io::Result<Beneath> {
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return Ok(Beneath::Unsupported);
    }
    let path = c_path(relative)?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 reads `path` (NUL-terminated, alive through the call) and `how`, whose
    // size is passed as the kernel's extensible-struct protocol requires; `dir` is borrowed,
    // so open. It returns a new descriptor or -1.
    let rc = syscall!(syscall(
        libc::SYS_openat2,
        dir.as_raw_fd(),
        path.as_ptr(),
        &how as *const OpenHow,
        std::mem::size_of::<OpenHow>(),
    ));
    match rc {
        Ok(fd) => {
            // The system call's return is a descriptor (an int) in a long.
            let fd = fd as libc::c_int;
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            Ok(Beneath::Opened(File::from(unsafe {
                OwnedFd::from_raw_fd(fd)
            })))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            NO_OPENAT2.store(true, Ordering::Relaxed);
            log::info!(
                "openat2 is not available: --static checks paths itself (canonicalize and compare)"
            );
            Ok(Beneath::Unsupported)
        }
        Err(e) => Err(e),
    }
}

/// Opens the file at `path`, whose every symlink the caller resolved, for reading: as
/// [`open_beneath`] does, and refusing a symlink in the last component (one planted since).
pub(crate) fn open_resolved(path: &Path) -> io::Result<File> {
    let path = c_path(path.as_os_str().as_bytes())?;
    let flags =
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW;
    // SAFETY: `path` is a NUL-terminated string that outlives the call; no mode without O_CREAT.
    let fd = syscall!(open(path.as_ptr(), flags))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// What of a file's status tells whether it changed: which file it is (device and inode), its
/// size, and its modification and change times (the change time moves on any write or
/// `touch`, even one that restores the modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) regular: bool,
    /// Seconds and nanoseconds since the epoch.
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
}

impl FileStat {
    fn from_stat(st: &libc::stat) -> FileStat {
        FileStat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// The status of what `relative` (NUL-terminated, no leading `/`) names beneath `dir`,
/// following symlinks. No check that the path stays beneath `dir`: the caller only compares
/// the answer with a file it opened safely ([`open_beneath`]).
pub(crate) fn stat_at(dir: BorrowedFd<'_>, relative: &CStr) -> io::Result<FileStat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `relative` is NUL-terminated and alive through the call, `dir` is borrowed, so
    // open; `st` has room for one `struct stat`, which the kernel fills on success.
    syscall!(fstatat(
        dir.as_raw_fd(),
        relative.as_ptr(),
        st.as_mut_ptr(),
        0
    ))?;
    // SAFETY: fstatat returned 0, so it wrote the whole struct.
    Ok(FileStat::from_stat(unsafe { st.assume_init_ref() }))
}

/// The status of the open file `file`.
pub(crate) fn stat_fd(file: BorrowedFd<'_>) -> io::Result<FileStat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `file` is borrowed, so open; `st` has room for one `struct stat`.
    syscall!(fstat(file.as_raw_fd(), st.as_mut_ptr()))?;
    // SAFETY: fstat returned 0, so it wrote the whole struct.
    Ok(FileStat::from_stat(unsafe { st.assume_init_ref() }))
}

/// Sends up to `count` bytes of `file` from `*offset` to the socket `out` without copying them
/// through user space, without waiting (the socket is non-blocking); advances `*offset` by what
/// was sent and returns it (`WouldBlock` when the socket is full).
pub(crate) fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(*offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    // SAFETY: both descriptors are borrowed, so open; `off` is a live off_t the kernel reads
    // and updates; the kernel caps `count` itself.
    let sent = syscall!(sendfile(out.as_raw_fd(), file.as_raw_fd(), &mut off, count))?;
    *offset = u64::try_from(off).unwrap_or(*offset);
    Ok(sent as usize)
}

/// A path for a system call; one with a NUL byte names no file.
fn c_path(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ws-sys-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("in")).unwrap();
        dir
    }

    #[test]
    fn openat2_refuses_every_way_out() {
        let dir = scratch("beneath");
        std::fs::write(dir.join("secret"), b"s").unwrap();
        std::fs::write(dir.join("in/a"), b"a").unwrap();
        std::os::unix::fs::symlink("../secret", dir.join("in/up")).unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), dir.join("in/abs")).unwrap();
        std::os::unix::fs::symlink("a", dir.join("in/inside")).unwrap();
        let root = open_dir(&dir.join("in")).unwrap();
        let open = |p: &str| open_beneath(root.as_fd(), p.as_bytes());
        let Beneath::Opened(mut file) = open("a").unwrap() else {
            eprintln!("no openat2 here: nothing to test");
            return;
        };
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "a");
        assert!(matches!(open("inside").unwrap(), Beneath::Opened(_)));
        for escape in ["../secret", "up", "abs", "/etc/passwd", "a/../../secret"] {
            let e = open(escape).unwrap_err();
            assert!(
                matches!(e.raw_os_error(), Some(libc::EXDEV | libc::ENOTDIR)),
                "{escape}: {e}"
            );
        }
        assert_eq!(open("a\0b").unwrap_err().kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sendfile_sends_a_range_and_moves_the_offset() {
        let dir = scratch("sendfile");
        let path = dir.join("in/f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"0123456789")
            .unwrap();
        let file = File::open(&path).unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut offset = 3;
        let sent = sendfile(b.as_fd(), file.as_fd(), &mut offset, 4).unwrap();
        assert_eq!((sent, offset), (4, 7));
        drop(b);
        let mut got = String::new();
        a.read_to_string(&mut got).unwrap();
        assert_eq!(got, "3456");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
