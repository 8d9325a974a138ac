//! A generation's library, held by the master as a sealed in-memory file (memfd).
//!
//! The master reads the user's file once, checks that it is one whole version (it did not change
//! while read; its ELF headers fit), and writes the bytes into an in-memory file sealed against
//! change. Workers get that file as an inherited descriptor (`LIBRARY_FD`) and load
//! `/proc/self/fd/LIBRARY_FD`. So replacing the live file (in place or by rename) cannot reach
//! running code; glibc's dlopen cache, which answers a second dlopen of a known path or inode with
//! the old handle, cannot hand a worker stale code (each worker is a fresh process); and there is
//! nothing on disk that a tmp cleaner could delete, a full disk could cut short, or swaps could
//! pile up. The descriptor closes when the last holder (the generation in the state machine, a
//! spawn in flight) drops it: a forgotten generation costs nothing.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::children::FD_FLOOR;
use super::source_pin::SourcePin;
use super::worker::LIBRARY_FD;
use crate::elf::complete::{check_complete, Truncated};
use crate::sys::memfd::sealed_file;
use crate::sys::process::dup_at_or_above;
use crate::tls::TlsMaterial;

/// One version of the user's library, ready for workers to load.
#[derive(Clone, Debug)]
pub(crate) struct Artifact {
    /// The file the user named (the live path).
    pub(crate) source: PathBuf,
    /// Hex digest of the bytes (FNV-1a 64, enough to tell versions apart).
    pub(crate) hash: String,
    /// The bytes, sealed in memory, at or above `FD_FLOOR` (so handing it down as `LIBRARY_FD`
    /// cannot overwrite another descriptor being handed down).
    image: Arc<OwnedFd>,
    /// The certificate and key the generation serves TLS with (`--certfile`/`--keyfile`), read
    /// with the library: a swap re-reads both.
    pub(crate) tls: Option<TlsMaterial>,
    /// What the generation's first worker loaded from disk besides the library (`source_pin.rs`).
    pub(crate) pin: SourcePin,
    /// The generation's settings when a swap re-read `--config` (`reread.rs`); `None`: the
    /// master's own.
    pub(crate) settings: Option<Arc<super::args::ServeArgs>>,
    /// How `settings` describe themselves (`--print-config`'s text), for the stats socket.
    pub(crate) config: Option<Arc<super::effective::EffectiveConfig>>,
}

/// Two artifacts are the same when they are the same preparation (not merely equal bytes).
impl PartialEq for Artifact {
    fn eq(&self, other: &Artifact) -> bool {
        Arc::ptr_eq(&self.image, &other.image)
    }
}

impl Eq for Artifact {}

/// The path a worker loads its library from: the descriptor it inherited. Messages from workers
/// name it; the master shows the user's file instead.
pub(crate) fn worker_library_path() -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{LIBRARY_FD}"))
}

/// What identifies a version of the live file cheaply, for `--reload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        })
    }
}

/// Why a library could not be prepared for a generation.
#[derive(Debug)]
pub(crate) enum ArtifactError {
    /// The user's file could not be read.
    Read { path: PathBuf, source: io::Error },
    /// The file was replaced or written to while it was being read.
    Changed { path: PathBuf },
    /// The ELF headers point past the end of the file: it was read before it was complete.
    Truncated { path: PathBuf, detail: Truncated },
    /// The in-memory copy could not be made.
    Memory { path: PathBuf, source: io::Error },
}

/// What deployment scripts should do so that neither of the two errors above can happen.
const WRITE_THEN_RENAME: &str =
    "write the new library to a temporary file and rename it into place";

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::Read { path, source } => write!(
                f,
                "cannot read {}: {source} (check the path and permissions)",
                path.display()
            ),
            ArtifactError::Changed { path } => write!(
                f,
                "{} changed while it was being read (still being written?); {WRITE_THEN_RENAME}",
                path.display()
            ),
            ArtifactError::Truncated { path, detail } => write!(
                f,
                "{} is incomplete: {detail} (still being written?); {WRITE_THEN_RENAME}",
                path.display()
            ),
            ArtifactError::Memory { path, source } => write!(
                f,
                "cannot keep a copy of {} in memory: {source} (is the system out of memory or descriptors?)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ArtifactError {}

impl Artifact {
    /// Read `source` once (so the copy is one consistent version) and seal it in memory. A file
    /// that changed during the read, or whose ELF headers announce more bytes than it has, is
    /// refused: it was caught half-written.
    pub(crate) fn prepare(source: &Path) -> Result<Artifact, ArtifactError> {
        let before = FileStamp::of(source);
        let bytes = fs::read(source).map_err(|e| ArtifactError::Read {
            path: source.to_path_buf(),
            source: e,
        })?;
        if FileStamp::of(source) != before || before.is_some_and(|b| b.len != bytes.len() as u64) {
            return Err(ArtifactError::Changed {
                path: source.to_path_buf(),
            });
        }
        check_complete(&bytes).map_err(|detail| ArtifactError::Truncated {
            path: source.to_path_buf(),
            detail,
        })?;
        let hash = format!("{:016x}", fnv1a64(&bytes));
        let name = source
            .file_name()
            .map_or_else(|| "lib.so".into(), |n| n.to_string_lossy().into_owned());
        let memory = |e| ArtifactError::Memory {
            path: source.to_path_buf(),
            source: e,
        };
        // Named for /proc/PID/fd, where an operator sees which versions the master holds.
        let image = sealed_file(&format!("webserver-{hash}-{name}"), &bytes).map_err(memory)?;
        let image = dup_at_or_above(image.as_fd(), FD_FLOOR).map_err(memory)?;
        let pin = SourcePin::new(&hash).map_err(memory)?;
        Ok(Artifact {
            source: source.to_path_buf(),
            hash,
            settings: None,
            config: None,
            image: Arc::new(image),
            tls: None,
            pin,
        })
    }

    /// A library with a made-up hash, for the state machine's tests.
    #[cfg(test)]
    pub(crate) fn for_tests(source: &Path, hash: &str) -> Artifact {
        Artifact {
            source: source.to_path_buf(),
            hash: hash.to_owned(),
            settings: None,
            config: None,
            image: Arc::new(sealed_file(hash, b"").expect("an in-memory file")),
            tls: None,
            pin: SourcePin::new(hash).expect("an in-memory file"),
        }
    }

    /// The sealed copy, to hand down to a worker as `LIBRARY_FD`.
    pub(crate) fn image(&self) -> BorrowedFd<'_> {
        self.image.as_fd()
    }
}

/// FNV-1a, 64 bit: tells library versions apart; not a defence against a chosen collision, which
/// would need write access to the live path anyway.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_prepared_library_is_its_bytes_in_memory_and_outlives_the_file() {
        let dir = std::env::temp_dir().join(format!("ws-artifact-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let live = dir.join("libx.so");
        fs::write(&live, b"version one").unwrap();
        let one = Artifact::prepare(&live).unwrap();
        fs::write(&live, b"version two").unwrap();
        let two = Artifact::prepare(&live).unwrap();
        assert_ne!(one.hash, two.hash);
        assert_ne!(one, two);
        assert_eq!(one, one.clone());
        fs::remove_dir_all(&dir).unwrap();
        for (artifact, bytes) in [(&one, b"version one"), (&two, b"version two")] {
            let fd = artifact.image().as_raw_fd();
            assert!(fd >= FD_FLOOR);
            assert_eq!(fs::read(format!("/proc/self/fd/{fd}")).unwrap(), bytes);
        }
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
