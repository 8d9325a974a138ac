//! The master's book of counters: each live worker's page (created here, mapped by the worker),
//! the totals of workers that are gone (folded in when they are reaped, so no counter ever goes
//! backwards), and the exits the master counts as crashes or timeouts, per worker number.
//! Durations are kept per generation too (the live one against the one before it), for the
//! last `KEPT_GENERATIONS` generations that served.
//!
//! Worker numbers are the master's (`WorkerProcess::next_number`): a replacement takes the number
//! of the worker it replaces, so they make bounded metric labels.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime};

use super::counters::{Totals, PAGE_WORDS};
use super::facts::{CrashLoopView, GenerationView, Machine, SwapCounts, WorkerFate, WorkerView};
use super::latency::Latency;
use crate::exit::HARAKIRI;
use crate::sys::process::ChildExit;
use crate::sys::shm::SharedCounters;

/// How many recent crashes and timeouts the JSON lists (the counters count them all).
const RECENT_EXITS: usize = 32;

/// How many generations' durations the book keeps once their workers are gone.
const KEPT_GENERATIONS: usize = 8;

/// Why the master counts a worker's exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitCause {
    /// Killed by a signal nobody meant (a segfault, an abort, `kill -9`), or a non-zero exit
    /// after it was ready.
    Crash,
    /// Killed for `--timeout`: it exited over a stuck request (harakiri) or was killed for its
    /// silence.
    Timeout,
}

impl ExitCause {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ExitCause::Crash => "crash",
            ExitCause::Timeout => "timeout",
        }
    }

    /// What `how` means for a worker the master knew as `fate`; `None`: an ordinary exit.
    fn of(how: ChildExit, fate: Option<WorkerFate>) -> Option<ExitCause> {
        let fate = fate.unwrap_or(WorkerFate {
            silenced: false,
            ready: false,
            stopping: false,
        });
        if fate.silenced || how == ChildExit::Exited(i32::from(HARAKIRI)) {
            return Some(ExitCause::Timeout);
        }
        match how {
            // A stop kills the workers that are late: that is the stop, not a crash.
            ChildExit::Signaled(_) if fate.stopping => None,
            // Someone asked it to stop (a TERM that came before its handler): planned.
            ChildExit::Signaled(libc::SIGTERM) => None,
            ChildExit::Signaled(_) => Some(ExitCause::Crash),
            ChildExit::Exited(code) if code != 0 && fate.ready => Some(ExitCause::Crash),
            ChildExit::Exited(_) => None,
        }
    }
}

struct LivePage {
    pid: i32,
    number: usize,
    generation: u64,
    spawned: Instant,
    counters: SharedCounters,
}

/// One counted exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExitRecord {
    pub(crate) pid: i32,
    pub(crate) number: usize,
    pub(crate) generation: u64,
    pub(crate) cause: ExitCause,
    /// The exit status or signal, as the log says it.
    pub(crate) how: String,
    pub(crate) at: SystemTime,
    /// How long the worker had lived.
    pub(crate) age: Duration,
}

/// Crashes and timeouts of one worker number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deaths {
    pub(crate) crashes: u64,
    pub(crate) timeouts: u64,
}

/// See the module docs.
pub(crate) struct Book {
    pages: Vec<LivePage>,
    /// What the workers that are gone had counted.
    folded: Totals,
    /// The durations of the workers that are gone, by generation (the newest few).
    folded_latency: BTreeMap<u64, Latency>,
    deaths: BTreeMap<usize, Deaths>,
    recent: VecDeque<ExitRecord>,
    started: Instant,
}

/// A generation's share of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GenerationStats {
    pub(crate) view: GenerationView,
    pub(crate) workers: usize,
    pub(crate) in_flight: u64,
}

/// A live worker's share of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkerStats {
    pub(crate) number: usize,
    pub(crate) pid: i32,
    pub(crate) generation: u64,
    /// `booting` until it is ready, then its generation's state.
    pub(crate) state: &'static str,
    pub(crate) age: Duration,
    pub(crate) totals: Totals,
}

/// Everything a scrape shows, gathered at once.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub(crate) master_pid: u32,
    pub(crate) uptime: Duration,
    /// The live generation (absent while the first one boots or after a stop began).
    pub(crate) live: Option<GenerationView>,
    pub(crate) generations: Vec<GenerationStats>,
    pub(crate) totals: Totals,
    pub(crate) workers: Vec<WorkerStats>,
    pub(crate) swaps: SwapCounts,
    /// The live generation's replacements keep dying before they are ready.
    pub(crate) crash_loop: Option<CrashLoopView>,
    pub(crate) deaths: BTreeMap<usize, Deaths>,
    pub(crate) recent_exits: Vec<ExitRecord>,
    /// Request durations by generation, live workers' and gone ones' together.
    pub(crate) latency: BTreeMap<u64, Latency>,
}

impl Snapshot {
    pub(crate) fn crashes(&self) -> u64 {
        self.deaths.values().map(|d| d.crashes).sum()
    }

    pub(crate) fn timeouts(&self) -> u64 {
        self.deaths.values().map(|d| d.timeouts).sum()
    }
}

impl Default for Book {
    fn default() -> Self {
        Book {
            pages: Vec::new(),
            folded: Totals::default(),
            folded_latency: BTreeMap::new(),
            deaths: BTreeMap::new(),
            recent: VecDeque::new(),
            started: Instant::now(),
        }
    }
}

impl Book {
    /// A fresh page for a worker about to be spawned: the descriptor to hand down, and the
    /// master's mapping (give it to `spawned`).
    pub(crate) fn new_page(generation: u64) -> io::Result<(OwnedFd, SharedCounters)> {
        let name = CString::new(format!("webserver-stats-gen{generation}"))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        SharedCounters::create(&name, PAGE_WORDS)
    }

    /// Worker `pid`, number `number`, of `generation` started and counts into `counters`.
    pub(crate) fn spawned(
        &mut self,
        pid: i32,
        number: usize,
        generation: u64,
        counters: SharedCounters,
    ) {
        self.pages.push(LivePage {
            pid,
            number,
            generation,
            spawned: Instant::now(),
            counters,
        });
    }

    /// Worker `pid` was reaped (it `how`; the master knew it as `fate`): fold its counters into
    /// the totals and count a crash or a timeout.
    pub(crate) fn exited(&mut self, pid: i32, how: ChildExit, fate: Option<WorkerFate>) {
        let Some(index) = self.pages.iter().position(|p| p.pid == pid) else {
            return;
        };
        let page = self.pages.swap_remove(index);
        // The process is gone: nothing writes the page any more, so this read is final.
        let last = Totals::read(page.counters.words());
        self.folded.add(&last.finished());
        self.folded_latency
            .entry(page.generation)
            .or_default()
            .add(&last.latency);
        while self.folded_latency.len() > KEPT_GENERATIONS {
            self.folded_latency.pop_first();
        }
        let Some(cause) = ExitCause::of(how, fate) else {
            return;
        };
        let deaths = self.deaths.entry(page.number).or_default();
        match cause {
            ExitCause::Crash => deaths.crashes += 1,
            ExitCause::Timeout => deaths.timeouts += 1,
        }
        if self.recent.len() == RECENT_EXITS {
            self.recent.pop_front();
        }
        self.recent.push_back(ExitRecord {
            pid,
            number: page.number,
            generation: page.generation,
            cause,
            how: how.to_string(),
            at: SystemTime::now(),
            age: page.spawned.elapsed(),
        });
    }

    /// Request durations by generation now, live workers' and gone ones' together.
    pub(crate) fn latency(&self) -> BTreeMap<u64, Latency> {
        let mut latency = self.folded_latency.clone();
        for page in &self.pages {
            latency
                .entry(page.generation)
                .or_default()
                .add(&Totals::read(page.counters.words()).latency);
        }
        latency
    }

    /// What a scrape shows now.
    pub(crate) fn snapshot(&self, machine: &dyn Machine) -> Snapshot {
        let generations = machine.generation_views();
        let views = machine.worker_views();
        let mut totals = self.folded;
        let mut latency = self.folded_latency.clone();
        let mut workers = Vec::with_capacity(self.pages.len());
        for page in &self.pages {
            let counted = Totals::read(page.counters.words());
            totals.add(&counted);
            latency
                .entry(page.generation)
                .or_default()
                .add(&counted.latency);
            let view = views.iter().find(|w| w.pid == page.pid);
            workers.push(WorkerStats {
                number: page.number,
                pid: page.pid,
                generation: page.generation,
                state: worker_state(view, &generations, page.generation),
                age: page.spawned.elapsed(),
                totals: counted,
            });
        }
        workers.sort_by_key(|w| (w.generation, w.number));
        let generations: Vec<GenerationStats> = generations
            .into_iter()
            .map(|view| {
                let mine = workers.iter().filter(|w| w.generation == view.id);
                GenerationStats {
                    workers: mine.clone().count(),
                    // Saturating: a worker (app code) can write anything into its page.
                    in_flight: mine
                        .map(|w| w.totals.in_flight())
                        .fold(0, u64::saturating_add),
                    view,
                }
            })
            .collect();
        Snapshot {
            master_pid: std::process::id(),
            uptime: self.started.elapsed(),
            live: generations
                .iter()
                .find(|g| g.view.state == "live")
                .map(|g| g.view.clone()),
            generations,
            totals,
            workers,
            swaps: machine.swap_counts().clone(),
            crash_loop: machine.crash_loop(Instant::now()),
            deaths: self.deaths.clone(),
            recent_exits: self.recent.iter().cloned().collect(),
            latency,
        }
    }
}

fn worker_state(
    view: Option<&WorkerView>,
    generations: &[GenerationView],
    generation: u64,
) -> &'static str {
    match view {
        Some(w) if !w.ready => "booting",
        _ => generations
            .iter()
            .find(|g| g.id == generation)
            .map_or("exiting", |g| g.state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fate(silenced: bool, ready: bool, stopping: bool) -> Option<WorkerFate> {
        Some(WorkerFate {
            silenced,
            ready,
            stopping,
        })
    }

    #[test]
    fn exits_are_crashes_timeouts_or_ordinary() {
        let segv = ChildExit::Signaled(libc::SIGSEGV);
        let kill = ChildExit::Signaled(libc::SIGKILL);
        let harakiri = ChildExit::Exited(i32::from(HARAKIRI));
        assert_eq!(
            ExitCause::of(segv, fate(false, true, false)),
            Some(ExitCause::Crash)
        );
        assert_eq!(
            ExitCause::of(segv, fate(false, false, false)),
            Some(ExitCause::Crash)
        );
        assert_eq!(
            ExitCause::of(kill, fate(true, true, false)),
            Some(ExitCause::Timeout)
        );
        assert_eq!(
            ExitCause::of(harakiri, fate(false, true, false)),
            Some(ExitCause::Timeout)
        );
        assert_eq!(
            ExitCause::of(ChildExit::Exited(0), fate(false, true, false)),
            None
        );
        // A worker whose app failed to load exits 1: a failed swap, not a crash.
        assert_eq!(
            ExitCause::of(ChildExit::Exited(1), fate(false, false, false)),
            None
        );
        assert_eq!(
            ExitCause::of(ChildExit::Exited(1), fate(false, true, false)),
            Some(ExitCause::Crash)
        );
        // Killed for being late at a stop.
        assert_eq!(ExitCause::of(kill, fate(false, true, true)), None);
        // Stopped by a TERM from outside or a TTOU before its handler was installed.
        let term = ChildExit::Signaled(libc::SIGTERM);
        assert_eq!(ExitCause::of(term, fate(false, false, false)), None);
    }

    #[test]
    fn a_reaped_worker_folds_its_counts_and_its_number_counts_its_crash() {
        let mut book = Book::default();
        for (pid, number) in [(10, 0), (11, 1)] {
            let (_fd, counters) = Book::new_page(1).unwrap();
            counters.words()[super::super::counters::STARTED]
                .store(3, std::sync::atomic::Ordering::Relaxed);
            counters.words()[super::super::counters::CLASSES + 1]
                .store(2, std::sync::atomic::Ordering::Relaxed);
            book.spawned(pid, number, 1, counters);
        }
        book.exited(
            10,
            ChildExit::Signaled(libc::SIGSEGV),
            fate(false, true, false),
        );
        assert_eq!(book.folded.served(), 2);
        assert_eq!(book.folded.in_flight(), 0);
        assert_eq!(book.deaths[&0].crashes, 1);
        assert_eq!(book.pages.iter().map(|p| p.number).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_reaped_workers_durations_stay_with_its_generation() {
        use super::super::counters::{DURATION_BUCKETS, DURATION_SUMS};
        use std::sync::atomic::Ordering::Relaxed;
        let mut book = Book::default();
        for generation in 1..=KEPT_GENERATIONS as u64 + 2 {
            let (_fd, counters) = Book::new_page(generation).unwrap();
            counters.words()[DURATION_BUCKETS + 3].store(generation, Relaxed);
            counters.words()[DURATION_SUMS].store(1_000, Relaxed);
            let pid = 100 + generation as i32;
            book.spawned(pid, 0, generation, counters);
            book.exited(pid, ChildExit::Exited(0), fate(false, true, true));
        }
        assert_eq!(book.folded_latency.len(), KEPT_GENERATIONS);
        let newest = &book.folded_latency[&(KEPT_GENERATIONS as u64 + 2)];
        assert_eq!(newest.classes[0].buckets[3], KEPT_GENERATIONS as u64 + 2);
        assert_eq!(newest.classes[0].sum_ns, 1_000);
        assert!(!book.folded_latency.contains_key(&2));
    }
}
