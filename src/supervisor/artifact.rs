//! Private, content-addressed copies of app libraries.
//!
//! A generation never loads the live path: replacing that file (in place or by rename) cannot
//! reach running code, and glibc's dlopen cache — which answers a second dlopen of a known path
//! or inode with the old handle — can never hand a new worker stale code. The copy's name is
//! the hash of its bytes, so swapping back to an earlier version reuses its copy.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::elf::{check_complete, Truncated};

/// A library copied into the master's private directory.
#[derive(Clone, Debug)]
pub(crate) struct Artifact {
    /// The file the user named (the live path).
    pub(crate) source: PathBuf,
    /// The private copy workers load.
    pub(crate) copy: PathBuf,
    /// Hex digest of the bytes (FNV-1a 64, enough to tell versions apart).
    pub(crate) hash: String,
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

/// Why a library could not be copied for a generation.
#[derive(Debug)]
pub(crate) enum ArtifactError {
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The file was replaced or written to while it was being read.
    Changed { path: PathBuf },
    /// The ELF headers point past the end of the file: it was copied before it was complete.
    Truncated { path: PathBuf, detail: Truncated },
}

/// What deployment scripts should do so that neither of the two errors above can happen.
const WRITE_THEN_RENAME: &str =
    "write the new library to a temporary file and rename it into place";

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::Io {
                path,
                action,
                source,
            } => write!(
                f,
                "cannot {action} {}: {source} (check the path and permissions)",
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
        }
    }
}

impl std::error::Error for ArtifactError {}

/// Where this master keeps its copies: one directory per master process.
pub(crate) fn private_dir() -> PathBuf {
    std::env::temp_dir().join(format!("webserver-{}", std::process::id()))
}

/// Remove the private directories of masters that are gone (killed with -9, or a crash), so
/// copies do not pile up in the temporary directory.
pub(crate) fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("webserver-"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = match crate::sys::process::exists(pid) {
            Ok(exists) => !exists,
            Err(e) => {
                log::debug!("cannot tell whether process {pid} exists: {e}");
                false
            }
        };
        if gone {
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                log::debug!("cannot remove stale {}: {e}", entry.path().display());
            }
        }
    }
}

impl Artifact {
    /// Read `source` once (so the copy is one consistent version) and store it under its hash.
    /// A file that changed during the read, or whose ELF headers announce more bytes than it
    /// has, is refused: it was caught half-written.
    pub(crate) fn prepare(source: &Path, dir: &Path) -> Result<Artifact, ArtifactError> {
        let err = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| ArtifactError::Io {
                path,
                action,
                source,
            }
        };
        let before = FileStamp::of(source);
        let bytes = fs::read(source).map_err(err("read", source))?;
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
        fs::create_dir_all(dir).map_err(err("create", dir))?;
        let name = source
            .file_name()
            .map_or_else(|| "lib.so".into(), |n| n.to_string_lossy().into_owned());
        let copy = dir.join(format!("{hash}-{name}"));
        if !copy.exists() {
            // Write then rename, so a worker never maps a half-written copy.
            let tmp = dir.join(format!(".{hash}-{name}.tmp"));
            let mut file = fs::File::create(&tmp).map_err(err("write", &tmp))?;
            file.write_all(&bytes).map_err(err("write", &tmp))?;
            file.sync_all().map_err(err("write", &tmp))?;
            fs::rename(&tmp, &copy).map_err(err("rename", &tmp))?;
        }
        Ok(Artifact {
            source: source.to_path_buf(),
            copy,
            hash,
        })
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

    #[test]
    fn same_bytes_same_copy_different_bytes_different_copy() {
        let dir = std::env::temp_dir().join(format!("ws-artifact-test-{}", std::process::id()));
        let src = dir.join("src");
        fs::create_dir_all(&src).unwrap();
        let live = src.join("libx.so");
        fs::write(&live, b"version one").unwrap();
        let a = Artifact::prepare(&live, &dir).unwrap();
        let b = Artifact::prepare(&live, &dir).unwrap();
        assert_eq!(a.copy, b.copy);
        fs::write(&live, b"version two").unwrap();
        let c = Artifact::prepare(&live, &dir).unwrap();
        assert_ne!(a.copy, c.copy);
        assert_eq!(fs::read(&a.copy).unwrap(), b"version one");
        assert_eq!(fs::read(&c.copy).unwrap(), b"version two");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
