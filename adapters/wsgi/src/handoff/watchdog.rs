//! The handoff queue's watchdog: wakes the first queued request when no holder will run it soon.
//!
//! Queued requests wait for a holder to finish its own request and [`super::drain`] them. A
//! holder may never get there soon: it is in one long request, or blocked without the GIL in the
//! app (I/O, `time.sleep`). The queue is called stuck when no queued request was taken for
//! [`STUCK_AFTER`] and either
//! - a holder has computed that long meanwhile (CPython would hand the GIL over then too), or
//! - at every look for that long, some holder was inside the app ([`Holder::enter_app`]: it
//!   took the GIL for its request) and no holder was runnable (`R` in its `/proc` stat): the
//!   holders in the app wait without the GIL, the others only for it.
//!
//! Then the first queued request is woken to run on its own thread, and requests are not queued
//! for [`LIVE_FOR`]: an app that waits rather than computes serves best with every serving
//! thread running its own requests.
//!
//! The watchdog looks every [`TICK`] only once the queue has not moved for [`STUCK_AFTER`];
//! before that, every [`DOZE`], or when a request is queued behind a queue that has not moved
//! ([`queued`]). So an app that waits without the GIL is noticed within about 10 ms while
//! requests keep coming, and within about 30 ms when the last ones are all queued.
//!
//! What is not stuck, though nothing moves: a holder merely off the CPU (other processes) is
//! runnable; holders that are all still lining up for the GIL wait for a thread that is not a
//! holder (a body's later iteration, a thread the app started), which CPython makes hand it over
//! within its switch interval; and with no holder at all, the last one to leave woke the first
//! queued request already, which waits only for its serving thread to come back to its event
//! loop. On a loaded machine the last two tripped the watchdog several times a second, each trip
//! turning queueing off (`wsgi_threads::a_loaded_cpu_does_not_make_the_handoff_queue_look_stuck`).
//! A first request that nobody woke (the one before it was cancelled) is woken without a trip.

use super::{count, line, Line, COUNTS, WATCH};
use app_abi::Logger;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No queued request taken for this long while some wait: the holders are not running Python
/// (CPython's own switch interval is 5 ms).
const STUCK_AFTER: Duration = Duration::from_millis(5);
/// After a stuck queue, how long every serving thread runs its own requests.
pub(super) const LIVE_FOR: Duration = Duration::from_millis(250);
/// How often the watchdog looks while the queue has not moved for [`STUCK_AFTER`].
const TICK: Duration = Duration::from_millis(2);
/// How often it looks otherwise, while requests were queued lately: it is told sooner when a
/// request is queued behind a queue that has not moved ([`queued`]). Looking every [`TICK`]
/// was about a fifth of the worker's voluntary context switches under a Flask load.
const DOZE: Duration = Duration::from_millis(25);
/// How long the watchdog keeps looking after the last request was queued.
const IDLE_AFTER: Duration = Duration::from_millis(200);

/// A serving thread, as the watchdog looks at it: its id, its CPU-time clock, and whether it is
/// inside the app.
#[derive(Clone)]
pub(super) struct Holder {
    tid: libc::pid_t,
    /// `None` if the thread's clock could not be had: the generic per-thread clock, read from
    /// the watchdog, would measure the watchdog itself.
    clock: Option<libc::clockid_t>,
    /// Set from when the thread has the GIL for its request until it leaves ([`super::Holding`]).
    in_app: Arc<AtomicBool>,
}

impl Holder {
    /// This thread.
    pub(super) fn current() -> Holder {
        thread_local! {
            static ME: Holder = {
                let mut clock: libc::clockid_t = 0;
                // SAFETY: gettid has no preconditions; pthread_getcpuclockid writes the calling
                // thread's CPU-time clock id through a valid pointer.
                let (tid, found) = unsafe {
                    let found = libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock);
                    (libc::gettid(), found == 0)
                };
                let clock = found.then_some(clock);
                Holder { tid, clock, in_app: Arc::new(AtomicBool::new(false)) }
            };
        }
        ME.with(Holder::clone)
    }

    pub(super) fn is(&self, other: &Holder) -> bool {
        self.tid == other.tid
    }

    /// The thread took the GIL for its request: from now on, blocked means blocked in the app.
    pub(super) fn enter_app(&self) {
        self.in_app.store(true, Ordering::Relaxed);
    }

    pub(super) fn leave_app(&self) {
        self.in_app.store(false, Ordering::Relaxed);
    }

    fn in_app(&self) -> bool {
        self.in_app.load(Ordering::Relaxed)
    }

    /// CPU time this thread has used, in ns (0 once it is gone, or with no clock of its own).
    fn cpu_ns(&self) -> u64 {
        self.clock
            .and_then(super::read_clock)
            .map_or(0, |used| u64::try_from(used.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Its state letter in `/proc` (`R` running or waiting for a CPU, `S` blocked...).
    fn state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    fn runnable(&self) -> bool {
        self.state() == Some('R')
    }
}

/// How the watchdog waits.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Watching {
    /// Nothing queued for [`IDLE_AFTER`]: until a request is queued.
    Idle,
    /// For [`DOZE`], or until a request is queued behind a queue that has not moved.
    Dozing,
    /// Awake, or looking every [`TICK`].
    Looking,
}

/// A request was just queued: starts the watchdog thread if there is none (none if the system
/// has no thread for it: then only leaving holders wake queued requests), or wakes it if it
/// waits longer than it should now.
pub(super) fn queued(line: &mut Line, now: Instant, logger: Logger) {
    if line.watchdog.is_none() {
        if !line.stopping {
            line.watchdog = std::thread::Builder::new()
                .name("wsgi-handoff".to_owned())
                .spawn(move || watch(logger))
                .ok();
        }
        return;
    }
    let wake = match line.watching {
        Watching::Idle => true,
        Watching::Dozing => stalled(line, now),
        Watching::Looking => false,
    };
    if wake {
        line.watching = Watching::Looking;
        WATCH.notify_one();
    }
}

/// Requests are queued and none was taken for [`STUCK_AFTER`].
fn stalled(line: &Line, now: Instant) -> bool {
    !line.jobs.is_empty()
        && line
            .progress
            .is_some_and(|p| now.saturating_duration_since(p) >= STUCK_AFTER)
}

/// The watchdog thread: wakes the first queued request when the queue is stuck.
fn watch(logger: Logger) {
    // The holders' CPU time when the queue last moved, or when the watchdog first saw them
    // since: a holder that has computed for STUCK_AFTER since is in one long request; one that
    // has not may only be off the CPU.
    let mut baseline: (Option<Instant>, Vec<(Holder, u64)>) = (None, Vec::new());
    // Since when, at every look, a holder was in the app and none was runnable: one look is not
    // enough, since a holder also blocks for a moment on a lock.
    let mut blocked_since: Option<Instant> = None;
    let mut line = line();
    loop {
        if line.stopping {
            return;
        }
        let now = Instant::now();
        let recent = line.queued.is_some_and(|q| now - q < IDLE_AFTER);
        line.watching = if line.jobs.is_empty() && !recent {
            Watching::Idle
        } else if stalled(&line, now) {
            Watching::Looking
        } else {
            Watching::Dozing
        };
        line = match line.watching {
            Watching::Idle => WATCH.wait(line).unwrap_or_else(|e| e.into_inner()),
            Watching::Dozing | Watching::Looking => {
                let wait = if line.watching == Watching::Dozing {
                    DOZE
                } else {
                    TICK
                };
                WATCH
                    .wait_timeout(line, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        line.watching = Watching::Looking;
        let Some(first) = line.jobs.front().cloned() else {
            continue;
        };
        let holders = line.holders.clone();
        let progress = line.progress;
        drop(line);
        if baseline.0 != progress {
            baseline = (progress, Vec::new());
            blocked_since = None;
        }
        for holder in &holders {
            if !baseline.1.iter().any(|(seen, _)| seen.is(holder)) {
                baseline.1.push((holder.clone(), holder.cpu_ns()));
            }
        }
        let now = Instant::now();
        let stalled = progress.is_some_and(|p| now.saturating_duration_since(p) >= STUCK_AFTER);
        if stalled && holders.is_empty() {
            // Its holder left without waking it (it was behind a request that was cancelled).
            if first.mark_rescued() {
                first.wake();
            }
            line = self::line();
            continue;
        }
        // Looked at only once stalled: reading /proc on every tick would cost every request.
        let in_app = holders.iter().any(Holder::in_app);
        if !stalled || !in_app || holders.iter().any(Holder::runnable) {
            blocked_since = None;
        } else {
            blocked_since.get_or_insert(now);
        }
        let computed_long = stalled
            && holders.iter().any(|holder| {
                let before = baseline.1.iter().find(|(seen, _)| seen.is(holder));
                let used = before.map_or(0, |(_, ns)| holder.cpu_ns().saturating_sub(*ns));
                used >= STUCK_AFTER.as_nanos() as u64
            });
        let blocked_long =
            blocked_since.is_some_and(|since| now.saturating_duration_since(since) >= STUCK_AFTER);
        line = self::line();
        if (computed_long || blocked_long) && line.progress == progress && !line.jobs.is_empty() {
            count(&COUNTS.stuck);
            line.live_until = Some(now + LIVE_FOR);
            line.progress = Some(now);
            let rescue = line.jobs.front().cloned();
            drop(line);
            let why = if computed_long {
                "a holder computed that long"
            } else {
                "a holder was in the app and none could run that long"
            };
            let states: String = holders.iter().map(|h| h.state().unwrap_or('-')).collect();
            logger.debug(&format!(
                "queued requests were not taken for 5 ms ({why}: the app computes or waits \
                 without the GIL; the holders' states: {states}): every serving thread \
                 runs its own requests for 250 ms"
            ));
            if let Some(job) = rescue {
                job.mark_rescued();
                job.wake();
            }
            line = self::line();
        }
    }
}
