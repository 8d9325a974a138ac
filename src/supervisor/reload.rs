//! `--reload`: notice that the live library changed, once it has stopped changing.

use std::path::Path;
use std::time::{Duration, Instant};

use super::artifact::FileStamp;

/// A changed library must stay unchanged this long before it is loaded, so a half-copied file
/// is never swapped in.
const DEBOUNCE: Duration = Duration::from_millis(500);

pub(crate) struct FileWatch {
    /// The version last swapped to (or seen at start).
    swapped: Option<FileStamp>,
    /// The latest version seen, and since when it holds.
    seen: Option<FileStamp>,
    seen_since: Instant,
}

impl FileWatch {
    pub(crate) fn new(path: &Path) -> FileWatch {
        FileWatch {
            swapped: FileStamp::of(path),
            seen: FileStamp::of(path),
            seen_since: Instant::now(),
        }
    }

    /// True once `path` differs from the version last swapped to and has been stable for the
    /// debounce period — and a swap `can_start`; the new version then counts as swapped to,
    /// whatever the swap's outcome (a broken file is retried when it changes again).
    pub(crate) fn changed(&mut self, path: &Path, can_start: bool) -> bool {
        let stamp = FileStamp::of(path);
        if stamp != self.seen {
            self.seen = stamp;
            self.seen_since = Instant::now();
            return false;
        }
        let stable = self.seen_since.elapsed() >= DEBOUNCE;
        if stamp.is_some() && stamp != self.swapped && stable && can_start {
            self.swapped = stamp;
            return true;
        }
        false
    }
}
