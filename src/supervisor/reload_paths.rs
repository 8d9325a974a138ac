//! `--reload-path PATH`: with `--reload`, also hot-swap when a file under PATH changes — the
//! source of an app the library loads at run time (a Python app under `libwsgi.so`), which the
//! library's own file does not reflect.
//!
//! A path's version is one hash over every regular file below it (name, length, modification
//! time, inode), directories walked recursively. Skipped: entries whose name starts with `.`
//! (`.git`, editors' swap files) and `__pycache__` directories and `*.pyc` files, which Python
//! writes while the new generation imports the app, and the master's own `--pid` file and its
//! status files (watching any of these would swap forever).

use super::reload::FileWatch;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Trees are walked at most this often (the master ticks faster; walking a tree costs a stat per
/// file). Well under the debounce, so a change is still loaded about as soon as a library's.
const LOOK_INTERVAL: Duration = Duration::from_millis(250);
/// Past this many files a path's walk stops (a mistaken `--reload-path /` must not stall the
/// master); changes beyond it go unnoticed, which the log says once.
const MAX_FILES: usize = 20_000;

/// Files the server writes itself: the `--pid FILE` and every `FILE.*` beside it (status, temp).
struct OwnFiles {
    /// (device, inode) of the pid file's directory.
    dir: (u64, u64),
    prefix: std::ffi::OsString,
}

impl OwnFiles {
    fn of(pid_file: Option<&Path>) -> Option<OwnFiles> {
        let pid_file = pid_file?;
        let dir = match pid_file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let meta = fs::metadata(dir).ok()?;
        Some(OwnFiles {
            dir: (meta.dev(), meta.ino()),
            prefix: pid_file.file_name()?.to_owned(),
        })
    }

    fn contains(&self, dir: &fs::Metadata, name: &std::ffi::OsStr) -> bool {
        (dir.dev(), dir.ino()) == self.dir
            && name
                .as_encoded_bytes()
                .starts_with(self.prefix.as_encoded_bytes())
    }
}

/// The watched paths and their last version.
pub(crate) struct PathsWatch {
    paths: Vec<PathBuf>,
    own: Option<OwnFiles>,
    watch: FileWatch<u64>,
    last_look: Instant,
    warned_truncated: bool,
}

impl PathsWatch {
    /// `None` when no path is watched. `pid_file` (`--pid`) and its siblings are never watched.
    pub(crate) fn new(
        paths: &[PathBuf],
        pid_file: Option<&Path>,
        now: Instant,
    ) -> Option<PathsWatch> {
        if paths.is_empty() {
            return None;
        }
        let mut watch = PathsWatch {
            paths: paths.to_vec(),
            own: OwnFiles::of(pid_file),
            watch: FileWatch::new(None, now),
            last_look: now,
            warned_truncated: false,
        };
        watch.watch = FileWatch::new(watch.stamp(), now);
        Some(watch)
    }

    /// True when a file under the paths changed and held still (see [`FileWatch::changed`]).
    pub(crate) fn changed(&mut self, can_start: bool, now: Instant) -> bool {
        if now.saturating_duration_since(self.last_look) < LOOK_INTERVAL {
            return false;
        }
        self.last_look = now;
        let stamp = self.stamp();
        self.watch.changed(stamp, can_start, now)
    }

    pub(crate) fn describe(&self) -> String {
        let names: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        names.join(", ")
    }

    /// One hash over every watched file; `None` if no path exists.
    fn stamp(&mut self) -> Option<u64> {
        let mut hash = Fnv::new();
        let mut files = 0usize;
        let mut any = false;
        for path in &self.paths {
            any |= fs::symlink_metadata(path).is_ok();
            walk(path, self.own.as_ref(), &mut hash, &mut files);
        }
        if files >= MAX_FILES && !self.warned_truncated {
            self.warned_truncated = true;
            log::warn!(
                "--reload-path: more than {MAX_FILES} files under {}; changes past them are not \
                 noticed (name the app's own directory)",
                self.describe()
            );
        }
        any.then(|| hash.finish())
    }
}

fn skipped(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b".") || name == b"__pycache__" || name.ends_with(b".pyc")
}

/// Adds every file under `path` (in name order, so the hash does not depend on readdir order).
fn walk(path: &Path, own: Option<&OwnFiles>, hash: &mut Fnv, files: &mut usize) {
    if *files >= MAX_FILES {
        return;
    }
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let Ok(entries) = fs::read_dir(path) else {
            return;
        };
        let mut children: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                !skipped(&name) && !own.is_some_and(|own| own.contains(&meta, &name))
            })
            .map(|e| e.path())
            .collect();
        children.sort();
        for child in children {
            walk(&child, own, hash, files);
        }
    } else if meta.is_file() {
        *files += 1;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        hash.write(path.as_os_str().as_encoded_bytes());
        for n in [meta.len(), modified, meta.ino()] {
            hash.write(&n.to_le_bytes());
        }
    }
}

/// FNV-1a, 64 bits: enough to tell versions of a tree apart, with no dependency.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv {
        Fnv(Fnv::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Fnv::PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ws-reload-paths-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("pkg")).unwrap();
        fs::write(dir.join("app.py"), "v1").unwrap();
        fs::write(dir.join("pkg/mod.py"), "v1").unwrap();
        dir
    }

    fn stamp_of(dir: &Path) -> Option<u64> {
        PathsWatch::new(
            &[dir.to_path_buf()],
            Some(&dir.join("ws.pid")),
            Instant::now(),
        )?
        .stamp()
    }

    #[test]
    fn a_nested_edit_changes_the_version_and_python_caches_do_not() {
        let dir = scratch("nested");
        let before = stamp_of(&dir);
        assert!(before.is_some());
        fs::create_dir_all(dir.join("pkg/__pycache__")).unwrap();
        fs::write(dir.join("pkg/__pycache__/mod.cpython-311.pyc"), "x").unwrap();
        fs::write(dir.join("stray.pyc"), "x").unwrap();
        fs::write(dir.join(".app.py.swp"), "x").unwrap();
        assert_eq!(
            stamp_of(&dir),
            before,
            "caches and hidden files are not the app"
        );
        fs::write(dir.join("pkg/mod.py"), "version 2").unwrap();
        assert_ne!(stamp_of(&dir), before);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_path_has_no_version() {
        assert_eq!(stamp_of(Path::new("/nonexistent/webserver-reload")), None);
    }

    #[test]
    fn changes_are_looked_for_at_most_every_interval() {
        let dir = scratch("interval");
        let start = Instant::now();
        let mut watch = PathsWatch::new(std::slice::from_ref(&dir), None, start).unwrap();
        fs::write(dir.join("app.py"), "version 2").unwrap();
        // Seen at the first look, loaded once stable for the debounce.
        assert!(!watch.changed(true, start + LOOK_INTERVAL));
        assert!(!watch.changed(true, start + LOOK_INTERVAL + Duration::from_millis(10)));
        let later = start + LOOK_INTERVAL * 2 + super::super::reload::DEBOUNCE;
        assert!(watch.changed(true, later));
        let _ = fs::remove_dir_all(&dir);
    }
}
