//! Repeated identical warnings and errors are summarised instead of flooding the log.
//!
//! An app that panics on every request would otherwise write two ERROR lines per request: one
//! client could fill a disk (measured: 362 MB in 15 s). The first few copies of a line in each
//! window go through unchanged; later ones are counted, and when the window ends one line says
//! how many were left out. Info and lower levels (the access log among them) are never limited:
//! they are the operator's to switch off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{Level, Log, Metadata, Record};

/// Copies of one line that go through per window.
const BURST: u32 = 5;
/// How long a window lasts; its summary is written once it is over.
const WINDOW: Duration = Duration::from_secs(5);
/// Distinct lines tracked at once; lines beyond that go through unlimited (only repeats flood).
const MAX_TRACKED: usize = 1024;

/// A logger that passes records on to `inner`, limiting repeated warnings and errors.
pub(crate) struct RepeatLimit<L> {
    inner: L,
    seen: Mutex<HashMap<Key, Window>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    level: Level,
    target: String,
    message: String,
}

struct Window {
    started: Instant,
    passed: u32,
    suppressed: u64,
}

/// Lines left out during a window that is over.
struct Summary {
    key: Key,
    suppressed: u64,
}

impl<L: Log> RepeatLimit<L> {
    pub(crate) fn new(inner: L) -> RepeatLimit<L> {
        RepeatLimit {
            inner,
            seen: Mutex::default(),
        }
    }

    /// Whether a line goes out at `now`, and the summaries of windows that ended before it.
    fn admit(&self, key: Option<Key>, now: Instant) -> (bool, Vec<Summary>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut summaries = Vec::new();
        seen.retain(|key, window| {
            if now.saturating_duration_since(window.started) < WINDOW {
                return true;
            }
            if window.suppressed > 0 {
                summaries.push(Summary {
                    key: key.clone(),
                    suppressed: window.suppressed,
                });
            }
            false
        });
        let Some(key) = key else {
            return (true, summaries);
        };
        if !seen.contains_key(&key) && seen.len() >= MAX_TRACKED {
            return (true, summaries);
        }
        let window = seen.entry(key).or_insert(Window {
            started: now,
            passed: 0,
            suppressed: 0,
        });
        if window.passed < BURST {
            window.passed += 1;
            (true, summaries)
        } else {
            window.suppressed += 1;
            (false, summaries)
        }
    }

    fn write_summaries(&self, summaries: Vec<Summary>) {
        for Summary { key, suppressed } in summaries {
            self.inner.log(
                &Record::builder()
                    .level(key.level)
                    .target(&key.target)
                    .args(format_args!(
                        "{} (repeated {suppressed} more time(s) in {}s; not shown)",
                        key.message,
                        WINDOW.as_secs()
                    ))
                    .build(),
            );
        }
    }
}

impl<L: Log> Log for RepeatLimit<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let key = (record.level() <= Level::Warn).then(|| Key {
            level: record.level(),
            target: record.target().to_owned(),
            message: record.args().to_string(),
        });
        let limited = key.is_some();
        let (pass, summaries) = self.admit(key, Instant::now());
        if limited || !summaries.is_empty() {
            self.write_summaries(summaries);
        }
        if pass {
            self.inner.log(record);
        }
    }

    /// Also writes the summaries of windows that are over, so the last word on a flood that
    /// stopped is not held back until the next warning: call it periodically.
    fn flush(&self) {
        let (_, summaries) = self.admit(None, Instant::now());
        self.write_summaries(summaries);
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);

    impl Log for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &Record<'_>) {
            let line = format!("{} {}", record.level(), record.args());
            self.0.lock().unwrap().push(line);
        }
        fn flush(&self) {}
    }

    fn key(message: &str) -> Option<Key> {
        Some(Key {
            level: Level::Error,
            target: "app".into(),
            message: message.into(),
        })
    }

    #[test]
    fn a_burst_passes_then_repeats_are_counted_and_summarised_when_the_window_ends() {
        let limit = RepeatLimit::new(Capture::default());
        let start = Instant::now();
        let passed: Vec<bool> = (0..100)
            .map(|i| limit.admit(key("boom"), start + Duration::from_millis(i)).0)
            .collect();
        assert_eq!(passed.iter().filter(|p| **p).count(), BURST as usize);
        assert!(passed[..BURST as usize].iter().all(|p| *p));
        // Another line is limited on its own.
        assert!(limit.admit(key("other"), start).0);

        let (pass, summaries) = limit.admit(key("boom"), start + WINDOW);
        assert!(pass, "a new window starts with a fresh burst");
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].suppressed, 100 - u64::from(BURST));
        assert_eq!(summaries[0].key.message, "boom");
    }

    #[test]
    fn flush_writes_the_summary_of_a_flood_that_stopped() {
        let limit = RepeatLimit::new(Capture::default());
        for _ in 0..20 {
            limit.log(
                &Record::builder()
                    .level(Level::Error)
                    .target("app")
                    .args(format_args!("boom"))
                    .build(),
            );
        }
        let lines = limit.inner.0.lock().unwrap().clone();
        assert_eq!(lines, vec!["ERROR boom"; BURST as usize]);
        // Nothing is due yet; once the window is over the summary is.
        limit.flush();
        assert_eq!(limit.inner.0.lock().unwrap().len(), BURST as usize);
        let (_, summaries) = limit.admit(None, Instant::now() + WINDOW);
        assert_eq!(summaries[0].suppressed, 20 - u64::from(BURST));
    }

    #[test]
    fn info_lines_are_never_limited() {
        let limit = RepeatLimit::new(Capture::default());
        for _ in 0..50 {
            limit.log(
                &Record::builder()
                    .level(Level::Info)
                    .target("access")
                    .args(format_args!("GET / 200"))
                    .build(),
            );
        }
        assert_eq!(limit.inner.0.lock().unwrap().len(), 50);
    }
}
