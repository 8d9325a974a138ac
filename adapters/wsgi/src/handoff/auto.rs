//! `WEBSERVER_WSGI_HANDOFF` unset (or `auto`): requests are queued only for an app whose calls
//! compute long enough to gain from it, judged by the average CPU time of its calls.
//!
//! Why: a queued request waits for the holder's batch and is sent by the holder, one thread among
//! the serving threads sharing the CPU. The Flask hello (about 45 µs of CPU per call) had half
//! its requests or more queued and its hand-overs halved; the bare hello (1–2 µs) had 3 % queued
//! (those that came while the kernel had the holder off the CPU), saved no hand-over, and its p99
//! went from 3.2–4.6 to 11.2–11.4 ms (bench/RESULTS.md). Wall time would count a preempted
//! thread's wait (and an app's wait without the GIL) as the app's: the thread's CPU clock does
//! not. The same average, kept in every mode, decides the serving threads' scheduler slice
//! ([`crate::sched_slice`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Whether the queue is only for an app whose calls compute long ([`worth_queueing`]).
static AUTO: AtomicBool = AtomicBool::new(false);

pub(super) fn enable(on: bool) {
    AUTO.store(on, Ordering::Relaxed);
}

/// Requests are queued once calls of the app's callable take this long, on average
/// ([`CallTimer`]): above the bare hello's 1–2 µs (about 6 for rules.py's `/ping` in the tests),
/// below the Flask hello's 40 or more (release builds on the bench machine).
const QUEUE_FROM: Duration = Duration::from_micros(25);
/// One call counts at most this long in the average: a collection or a first call that compiles
/// a template does not make the app look slow for the next few hundred.
const SAMPLE_MAX: Duration = Duration::from_micros(50);
/// The average moves by an eighth of each sample's difference from it.
const AVERAGE_SHIFT: u32 = 3;
/// One call in this many is timed: the clock is a system call.
const SAMPLE_EVERY: u64 = 8;
/// The average CPU time of the app's sampled calls, in ns (updated without a lock: a lost
/// update only leaves out one sample).
static APP_NANOS: AtomicU64 = AtomicU64::new(0);
/// Calls of the app's callable, for [`SAMPLE_EVERY`].
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Times one call of the app's callable in the CPU time of its thread (so a thread the kernel
/// took off the CPU meanwhile, or an app waiting without the GIL, does not count as a slow app),
/// for one call in [`SAMPLE_EVERY`], in every mode: the serving threads' scheduler slice follows
/// the average too ([`calls_are_short`]).
pub(crate) struct CallTimer(Option<Duration>);

impl CallTimer {
    pub(crate) fn start() -> CallTimer {
        let sampled = CALLS
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SAMPLE_EVERY);
        CallTimer(sampled.then(thread_cpu_time).flatten())
    }

    pub(crate) fn stop(self) {
        let (Some(started), Some(now)) = (self.0, thread_cpu_time()) else {
            return;
        };
        let sample = now.saturating_sub(started).min(SAMPLE_MAX).as_nanos() as u64;
        let average = APP_NANOS.load(Ordering::Relaxed);
        let next = average - (average >> AVERAGE_SHIFT) + (sample >> AVERAGE_SHIFT);
        APP_NANOS.store(next, Ordering::Relaxed);
    }
}

/// The CPU time this thread has used; `None` if the clock cannot be read.
fn thread_cpu_time() -> Option<Duration> {
    super::read_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Whether a request should be queued for the holder rather than run on its own thread.
pub(super) fn worth_queueing() -> bool {
    !AUTO.load(Ordering::Relaxed) || !calls_are_short()
}

/// Whether the app's calls lately took less than [`QUEUE_FROM`] of CPU on average (the bare
/// hello, not the Flask hello): its serving threads then ask for a short scheduler slice
/// ([`crate::sched_slice`]).
pub(crate) fn calls_are_short() -> bool {
    APP_NANOS.load(Ordering::Relaxed) < QUEUE_FROM.as_nanos() as u64
}

/// The average, while this mode decides (for the debug line at shutdown).
pub(super) fn average() -> Option<Duration> {
    AUTO.load(Ordering::Relaxed)
        .then(|| Duration::from_nanos(APP_NANOS.load(Ordering::Relaxed)))
}
