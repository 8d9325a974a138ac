//! Open files kept per mount, nginx's `open_file_cache` idea with a revalidation on every
//! request: a path served once keeps its descriptor, its validators, its `Last-Modified` text
//! and its media type, and a small file (up to [`INLINE_BODY`]) its bytes. A request then
//! costs one `fstatat` of the path instead of opening, checking and closing the file.
//!
//! The cached answer is used only while that `fstatat` reports the very file it describes: the
//! same device and inode, size, modification and change times. Anything else (a new deploy
//! renamed over it, an edit in place, a `touch`) opens the file afresh beneath the directory,
//! with every path check (`path.rs`); so what is served is always a file that was opened
//! safely under that path, and a file that changed is served fresh. The path's `fstatat`
//! follows symlinks without checking where they lead: it only has to tell whether the path
//! still names the cached file, and a path that now leads elsewhere names another file.
//!
//! A file changed within the last [`SETTLE`] keeps no bytes: a change in the same clock tick
//! as the status taken (timestamps are only as fine as the kernel's tick) would go unseen,
//! git's "racy clean" problem. Such a file is read from its descriptor per request until it
//! has settled. The cache holds at most [`MAX_FILES`] files (fewer under a low `ulimit -n`:
//! an eighth of it) and [`MAX_BYTES`] of contents; when either is reached it starts over
//! (closing what it held once no answer uses it).

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::conditional::Validators;
use super::path;
use crate::sys::file::{stat_at, stat_fd, FileStat};
use crate::sys::privilege::open_files_limit;

/// Bodies up to this size are read into the held output with their head (one write, and
/// pipelined answers stay batched); larger ones are sent from the file as the client reads.
pub(crate) const INLINE_BODY: u64 = 16 * 1024;

/// Files one mount keeps open at most, and at most this share of the descriptors the process
/// may open (`ulimit -n`): the rest are for connections.
const MAX_FILES: usize = 1024;
const SHARE_OF_DESCRIPTORS: u64 = 8;

/// Bytes of small files' contents one mount keeps at most.
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// How long after its last change a file's bytes are not kept.
const SETTLE: Duration = Duration::from_secs(2);

/// One mount's cache.
#[derive(Debug, Default)]
pub(super) struct FileCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// By path relative to the mount's directory, NUL-terminated.
    files: HashMap<Box<[u8]>, Arc<CachedFile>>,
    /// Contents held by `files`.
    bytes: usize,
}

/// A file opened beneath a mount's directory, with what answers about it need.
#[derive(Debug)]
pub(crate) struct CachedFile {
    pub(crate) file: Arc<File>,
    stat: FileStat,
    pub(crate) validators: Validators,
    pub(crate) last_modified: String,
    /// From the path's extension.
    pub(crate) content_type: &'static str,
    /// All of a small file's bytes, unless it changed too recently to trust them.
    contents: Option<Box<[u8]>>,
}

impl CachedFile {
    pub(crate) fn size(&self) -> u64 {
        self.stat.size
    }

    /// Appends bytes `first..first + len` of the file to `out`.
    pub(crate) fn read_into(&self, first: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let range = usize::try_from(first).ok().and_then(|first| {
            let end = first.checked_add(usize::try_from(len).ok()?)?;
            self.contents.as_deref()?.get(first..end)
        });
        if let Some(bytes) = range {
            out.extend_from_slice(bytes);
            return Ok(());
        }
        let start = out.len();
        out.resize(start + len as usize, 0);
        let read = self
            .file
            .read_exact_at(out.get_mut(start..).unwrap_or_default(), first);
        if read.is_err() {
            out.truncate(start);
        }
        read
    }
}

impl FileCache {
    /// The regular file `relative` (NUL-terminated) names beneath `dir` (canonical path
    /// `root`): cached if the path still names the cached file, else opened afresh. Anything
    /// but a regular file is `NotFound`.
    pub(super) fn get(
        &self,
        dir: BorrowedFd<'_>,
        root: &Path,
        relative: &[u8],
    ) -> io::Result<Arc<CachedFile>> {
        let name = CStr::from_bytes_with_nul(relative)
            .map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
        let now = stat_at(dir, name)?;
        if !now.regular {
            return Err(not_regular());
        }
        if let Some(cached) = self.lock().files.get(relative) {
            if cached.stat == now && (cached.contents.is_some() || !worth_holding(&now)) {
                return Ok(Arc::clone(cached));
            }
        }
        let path = name.to_bytes();
        let file = path::open(dir, root, path)?;
        let stat = stat_fd(file.as_fd())?;
        if !stat.regular {
            return Err(not_regular());
        }
        let contents = if worth_holding(&stat) && settled(&stat) {
            let mut bytes = vec![0; stat.size as usize];
            file.read_exact_at(&mut bytes, 0)?;
            Some(bytes.into_boxed_slice())
        } else {
            None
        };
        let validators = Validators::new(system_time(stat.mtime), stat.size);
        let cached = Arc::new(CachedFile {
            file: Arc::new(file),
            stat,
            last_modified: validators.last_modified(),
            validators,
            content_type: mime_guess::from_path(Path::new(OsStr::from_bytes(path)))
                .first_raw()
                .unwrap_or("application/octet-stream"),
            contents,
        });
        let mut entries = self.lock();
        let held = cached.contents.as_ref().map_or(0, |bytes| bytes.len());
        if entries.files.len() >= max_files() || entries.bytes + held > MAX_BYTES {
            entries.files.clear();
            entries.bytes = 0;
        }
        let replaced = entries.files.insert(relative.into(), Arc::clone(&cached));
        entries.bytes += held;
        let dropped = replaced.and_then(|old| old.contents.as_ref().map(|bytes| bytes.len()));
        entries.bytes -= dropped.unwrap_or(0);
        Ok(cached)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many files one mount may keep open now (the descriptor limit may change at start).
fn max_files() -> usize {
    let limit = open_files_limit().unwrap_or(1024) / SHARE_OF_DESCRIPTORS;
    usize::try_from(limit).map_or(MAX_FILES, |limit| limit.min(MAX_FILES))
}

/// A file small enough for its bytes to be kept.
fn worth_holding(stat: &FileStat) -> bool {
    stat.size <= INLINE_BODY
}

/// The file's last change is at least [`SETTLE`] old.
fn settled(stat: &FileStat) -> bool {
    SystemTime::now()
        .duration_since(system_time(stat.ctime))
        .is_ok_and(|age| age >= SETTLE)
}

/// A file time (seconds and nanoseconds since the epoch); one before the epoch is the epoch.
fn system_time((secs, nanos): (i64, i64)) -> SystemTime {
    UNIX_EPOCH
        + Duration::new(
            u64::try_from(secs).unwrap_or(0),
            u32::try_from(nanos).unwrap_or(0),
        )
}

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "not a regular file")
}
