//! `--reload`: notice that the live library changed, once it has stopped changing.
//!
//! Pure logic: the caller looks at the file ([`FileStamp`](super::artifact::FileStamp) in the
//! master) and says what time it is.

use std::time::{Duration, Instant};

/// A changed library must stay unchanged this long before it is loaded, so a half-copied file
/// is never swapped in.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(500);

/// Compares successive looks at one file; `Stamp` is whatever tells its versions apart.
pub(crate) struct FileWatch<Stamp> {
    /// The version last swapped to (or seen at start).
    swapped: Option<Stamp>,
    /// The latest version seen, and since when it holds.
    seen: Option<Stamp>,
    seen_since: Instant,
}

impl<Stamp: PartialEq + Clone> FileWatch<Stamp> {
    /// Starts from the version the server starts with (`None`: the file is missing).
    pub(crate) fn new(stamp: Option<Stamp>, now: Instant) -> FileWatch<Stamp> {
        FileWatch {
            swapped: stamp.clone(),
            seen: stamp,
            seen_since: now,
        }
    }

    /// True once the file (`stamp`, looked at `now`) differs from the version last swapped to
    /// and has been stable for [`DEBOUNCE`] — and a swap `can_start`; the new version then counts
    /// as swapped to, whatever the swap's outcome (a broken file is retried when it changes
    /// again). A missing file never starts a swap.
    pub(crate) fn changed(&mut self, stamp: Option<Stamp>, can_start: bool, now: Instant) -> bool {
        if stamp != self.seen {
            self.seen = stamp;
            self.seen_since = now;
            return false;
        }
        let stable = now.saturating_duration_since(self.seen_since) >= DEBOUNCE;
        if stamp.is_some() && stamp != self.swapped && stable && can_start {
            self.swapped = stamp;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Each row: milliseconds since start, the file's version (`None`: missing), whether a swap
    /// can start, and whether the watch must answer "changed".
    fn run(rows: &[(u64, Option<u32>, bool, bool)]) {
        let start = Instant::now();
        let mut watch = FileWatch::new(Some(1), start);
        for &(at, stamp, can_start, want) in rows {
            let got = watch.changed(stamp, can_start, start + MS * at as u32);
            assert_eq!(got, want, "at {at} ms, version {stamp:?}");
        }
    }

    #[test]
    fn an_unchanged_file_never_swaps() {
        run(&[(0, Some(1), true, false), (10_000, Some(1), true, false)]);
    }

    #[test]
    fn a_change_is_loaded_once_it_held_for_the_debounce() {
        run(&[
            (100, Some(2), true, false), // first seen
            (599, Some(2), true, false), // stable 499 ms
            (600, Some(2), true, true),  // stable 500 ms
            (700, Some(2), true, false), // swapped to already
        ]);
    }

    #[test]
    fn a_file_that_keeps_changing_is_not_loaded_until_it_holds_still() {
        let mut rows: Vec<(u64, Option<u32>, bool, bool)> = (0..20)
            .map(|i| (100 + i * 400, Some(2 + i as u32), true, false))
            .collect();
        // The last version (21, seen at 7,700 ms) holds from then on.
        rows.push((8_199, Some(21), true, false));
        rows.push((8_200, Some(21), true, true));
        run(&rows);
    }

    #[test]
    fn a_change_waits_while_a_swap_cannot_start_and_is_not_lost() {
        run(&[
            (0, Some(2), true, false),
            (600, Some(2), false, false),
            (5_000, Some(2), false, false),
            (5_050, Some(2), true, true),
        ]);
    }

    #[test]
    fn a_missing_file_never_swaps_and_its_return_does_after_the_debounce() {
        run(&[
            (0, None, true, false),
            (1_000, None, true, false),
            (1_100, Some(1), true, false), // back as it was: nothing to do
            (2_000, Some(1), true, false),
            (2_100, None, true, false),
            (2_200, Some(3), true, false),
            (2_700, Some(3), true, true),
        ]);
    }

    #[test]
    fn changing_back_to_the_swapped_version_swaps_nothing() {
        run(&[
            (0, Some(2), true, false),
            (100, Some(1), true, false),
            (1_000, Some(1), true, false),
        ]);
    }
}
