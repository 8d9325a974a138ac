//! From a request path to a file beneath a `--static` directory, refusing every way out.
//!
//! Two layers. The path is checked as text first: after percent-decoding (so `%2e%2e` is
//! `..`), a NUL, a backslash, or a `.` / `..` segment makes it name no file (404); empty
//! segments (`//`) are dropped. Then the file is opened beneath the directory by the kernel
//! (`sys::file::open_beneath`: `openat2` with `RESOLVE_BENEATH`), which also refuses symlinks
//! that lead outside — the part text cannot decide. Without `openat2`, [`open_checked`]
//! canonicalizes the path and compares it with the directory's own canonical path before
//! opening it without following a last symlink (a race with someone replacing a directory
//! of the tree by a symlink remains; `openat2` has none).

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::file::{open_beneath, open_resolved, Beneath};

/// The path relative to the mount's directory that `rest` (the decoded request path after the
/// mount's prefix) names, or `None` if it names no file there. A trailing `/` names a
/// directory: no listings.
pub(crate) fn relative(rest: &[u8]) -> Option<Vec<u8>> {
    if rest.iter().any(|&b| b == 0 || b == b'\\') || rest.last().is_none_or(|&b| b == b'/') {
        return None;
    }
    // One more byte: the NUL that makes it the cache's key and a system call's path.
    let mut out = Vec::with_capacity(rest.len() + 1);
    for segment in rest.split(|&b| b == b'/') {
        match segment {
            b"" => {}
            b"." | b".." => return None,
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    // Only empty segments: the directory itself.
    (!out.is_empty()).then_some(out)
}

/// Opens `relative` beneath the directory `dir` (whose canonical path is `root`), by the kernel
/// when it can, else by [`open_checked`].
pub(crate) fn open(dir: BorrowedFd<'_>, root: &Path, relative: &[u8]) -> io::Result<File> {
    match open_beneath(dir, relative)? {
        Beneath::Opened(file) => Ok(file),
        Beneath::Unsupported => open_checked(root, relative),
    }
}

/// Without `openat2`: the canonical path of `root/relative` must be beneath `root` (itself
/// canonical); a path outside is `NotFound`, like one that does not exist.
pub(crate) fn open_checked(root: &Path, relative: &[u8]) -> io::Result<File> {
    let joined = root.join(std::ffi::OsStr::from_bytes(relative));
    let resolved = joined.canonicalize()?;
    if !resolved.starts_with(root) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the path leads outside the --static directory",
        ));
    }
    open_resolved(&resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::file::open_dir;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn relative_table() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"a.css", Some(b"a.css")),
            (b"admin/css/base.css", Some(b"admin/css/base.css")),
            (b"//a//b", Some(b"a/b")),
            (b"a/", None),
            (b"", None),
            (b"/", None),
            (b"..", None),
            (b"a/../b", None),
            (b"./a", None),
            (b"a/.", None),
            (b"..a", Some(b"..a")),
            (b"a..", Some(b"a..")),
            (b"a\\..\\b", None),
            (b"a\0b", None),
        ];
        for (rest, want) in cases {
            assert_eq!(
                relative(rest).as_deref(),
                *want,
                "{:?}",
                String::from_utf8_lossy(rest)
            );
        }
    }

    /// Both ways of opening agree: files and symlinks inside open, symlinks leading out do not.
    #[test]
    fn kernel_and_fallback_refuse_the_same_escapes() {
        let base = std::env::temp_dir().join(format!("ws-static-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), "secret").unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("sub/a.txt", root.join("inside")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("abs")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/parent")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc", root.join("magic")).unwrap();
        let root = root.canonicalize().unwrap();
        let dir = open_dir(&root).unwrap();
        let read = |file: io::Result<File>| {
            file.map(|mut f| {
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                s
            })
        };
        for opener in ["kernel", "fallback"] {
            let open = |rel: &str| match opener {
                "kernel" => read(open(dir.as_fd(), &root, rel.as_bytes())),
                _ => read(open_checked(&root, rel.as_bytes())),
            };
            assert_eq!(open("sub/a.txt").unwrap(), "a", "{opener}");
            assert_eq!(open("inside").unwrap(), "a", "{opener}");
            assert_eq!(open("sub/parent/sub/a.txt").unwrap(), "a", "{opener}");
            for escape in ["up", "abs", "sub/parent/../secret", "magic/passwd", "nope"] {
                assert!(open(escape).is_err(), "{opener}: {escape} opened");
            }
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
