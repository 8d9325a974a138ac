//! A worker's counters: one mapping shared with the master (`crate::sys::shm`), split into
//! shards so serving threads on different CPUs never write the same cache line. Counting a
//! request is one relaxed add per counter into the thread's own shard, and timing it two clock
//! reads (vDSO, no system call), a bucket search and two more adds (`latency.rs`); the master
//! sums the shards when it is asked.
//!
//! The hooks below do nothing in a process that was given no page (no `--stats`, `check`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use super::latency::{self, Histogram, Latency};

/// Counters per shard: 128 `u64`s, 1 KiB, a multiple of two cache lines (the adjacent-line
/// prefetcher moves lines in pairs, so shards 128-byte aligned keep threads apart). A request
/// touches three of its lines: the counters, its class's sum and its bucket.
pub(crate) const SHARD_WORDS: usize = 128;
/// Shards per worker (32 KiB).
pub(crate) const SHARDS: usize = 32;
/// The words of one worker's page.
pub(crate) const PAGE_WORDS: usize = SHARD_WORDS * SHARDS;

/// What each word of a shard counts.
pub(crate) const STARTED: usize = 0;
/// Responses 1xx..5xx: `CLASSES + status / 100 - 1`.
pub(crate) const CLASSES: usize = 1;
pub(crate) const CLASS_COUNT: usize = 5;
pub(crate) const BYTES_IN: usize = 6;
pub(crate) const BYTES_OUT: usize = 7;
pub(crate) const ACCEPT_ERRORS: usize = 8;
/// Nanoseconds spent on timed requests, per class: `DURATION_SUMS + class`.
pub(crate) const DURATION_SUMS: usize = 9;
/// The worker retired itself for `--limit-memory` (0 or 1 per worker).
pub(crate) const MEMORY_RECYCLES: usize = DURATION_SUMS + CLASS_COUNT;
/// Requests that were HTTP/2 streams (counted in `STARTED` and the classes too).
pub(crate) const HTTP2_STREAMS: usize = MEMORY_RECYCLES + 1;
/// Timed requests per class and duration bucket: `DURATION_BUCKETS + class * latency::BUCKETS +
/// bucket`.
pub(crate) const DURATION_BUCKETS: usize = 16;
const _: () = assert!(MEMORY_RECYCLES < DURATION_BUCKETS);
/// Upgraded connections (ABI 1.2), after the duration buckets: opened and closed (the gauge is
/// their difference), WebSocket messages and upgraded bytes in and out. Calls made on app
/// threads count into shard 0.
pub(crate) const UPGRADES: usize = DURATION_BUCKETS + CLASS_COUNT * latency::BUCKETS;
pub(crate) const UPGRADES_CLOSED: usize = UPGRADES + 1;
pub(crate) const WS_MESSAGES_IN: usize = UPGRADES + 2;
pub(crate) const WS_MESSAGES_OUT: usize = UPGRADES + 3;
pub(crate) const UPGRADED_BYTES_IN: usize = UPGRADES + 4;
pub(crate) const UPGRADED_BYTES_OUT: usize = UPGRADES + 5;
const _: () = assert!(UPGRADED_BYTES_OUT < SHARD_WORDS);
const _: () = assert!(HTTP2_STREAMS < DURATION_BUCKETS);
const _: () = assert!(DURATION_BUCKETS + CLASS_COUNT * latency::BUCKETS <= SHARD_WORDS);

/// This process's page, once attached.
static PAGE: OnceLock<&'static [AtomicU64]> = OnceLock::new();

thread_local! {
    /// The first word of this thread's shard: shard 0 (shared by the threads that serve no
    /// requests) until `serving_thread` gives it its own.
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Count into `page` from now on (a worker, before it serves).
pub(crate) fn attach(page: &'static [AtomicU64]) {
    if page.len() < PAGE_WORDS || PAGE.set(page).is_err() {
        log::warn!("statistics page refused (too small, or one is attached already)");
    }
}

/// Serving thread `index` counts into a shard of its own (shared only beyond `SHARDS - 1`
/// threads).
pub(crate) fn serving_thread(index: usize) {
    SHARD.with(|shard| shard.set((1 + index % (SHARDS - 1)) * SHARD_WORDS));
}

#[inline]
fn add(counter: usize, n: u64) {
    if let Some(page) = PAGE.get() {
        if let Some(word) = page.get(SHARD.with(Cell::get) + counter) {
            word.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// When a request's head was parsed, for its duration; `None` (no clock read) in a process
/// that does not count.
#[inline]
pub(crate) fn clock() -> Option<Instant> {
    PAGE.get().map(|_| Instant::now())
}

/// A request reaches the app (it is in flight until its `response`).
#[inline]
pub(crate) fn request_started() {
    add(STARTED, 1);
}

/// A request that `request_started` ended with `status`; timed from `started` (`clock`) if
/// given.
#[inline]
pub(crate) fn response(status: u16, started: Option<Instant>) {
    let class = usize::from(status / 100).clamp(1, CLASS_COUNT) - 1;
    let Some(page) = PAGE.get() else {
        return;
    };
    let shard = SHARD.with(Cell::get);
    let Some(shard) = page.get(shard..shard + SHARD_WORDS) else {
        return;
    };
    let add = |counter: usize, n: u64| {
        if let Some(word) = shard.get(counter) {
            word.fetch_add(n, Ordering::Relaxed);
        }
    };
    add(CLASSES + class, 1);
    if let Some(started) = started {
        let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        add(DURATION_SUMS + class, ns);
        add(
            DURATION_BUCKETS + class * latency::BUCKETS + latency::bucket(ns),
            1,
        );
    }
}

/// The server answered `status` without the app (a bad request, a header timeout): counted,
/// not timed (the durations are the app's).
#[inline]
pub(crate) fn rejected(status: u16) {
    request_started();
    response(status, None);
}

/// Bytes read from clients.
#[inline]
pub(crate) fn bytes_in(n: usize) {
    add(BYTES_IN, n as u64);
}

/// Bytes written to clients.
#[inline]
pub(crate) fn bytes_out(n: usize) {
    add(BYTES_OUT, n as u64);
}

/// `accept` failed (out of descriptors or memory, a connection reset while queued).
#[inline]
pub(crate) fn accept_error() {
    add(ACCEPT_ERRORS, 1);
}

/// A connection was upgraded (its 101 counts as a response of its own).
pub(crate) fn upgrade_opened() {
    add(UPGRADES, 1);
}

/// An upgraded connection ended.
pub(crate) fn upgrade_closed() {
    add(UPGRADES_CLOSED, 1);
}

/// A WebSocket message of `len` payload bytes from a client reached its app.
pub(crate) fn ws_message_in(len: usize) {
    add(WS_MESSAGES_IN, 1);
    add(UPGRADED_BYTES_IN, len as u64);
}

/// An app's WebSocket message of `len` payload bytes was queued for its client.
pub(crate) fn ws_message_out(len: usize) {
    add(WS_MESSAGES_OUT, 1);
    add(UPGRADED_BYTES_OUT, len as u64);
}

/// Bytes an app read from an upgraded connection (payload bytes in message mode).
pub(crate) fn upgraded_bytes_in(n: usize) {
    add(UPGRADED_BYTES_IN, n as u64);
}

/// Bytes an app wrote to an upgraded connection (payload bytes in message mode).
pub(crate) fn upgraded_bytes_out(n: usize) {
    add(UPGRADED_BYTES_OUT, n as u64);
}

/// This worker is recycling itself for `--limit-memory`.
pub(crate) fn memory_recycle() {
    add(MEMORY_RECYCLES, 1);
}

/// A request that reached the app was an HTTP/2 stream (besides `request_started`).
#[inline]
pub(crate) fn http2_stream() {
    add(HTTP2_STREAMS, 1);
}

/// A worker's counters summed over its shards (or several workers' added up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) started: u64,
    pub(crate) classes: [u64; CLASS_COUNT],
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) accept_errors: u64,
    pub(crate) memory_recycles: u64,
    pub(crate) http2_streams: u64,
    pub(crate) latency: Latency,
    pub(crate) upgraded: Upgrades,
}

/// The upgraded connections' counters (ABI 1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Upgrades {
    pub(crate) opened: u64,
    pub(crate) closed: u64,
    pub(crate) messages_in: u64,
    pub(crate) messages_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl Upgrades {
    /// Open now (each shard is read one word at a time while threads count: never negative).
    pub(crate) fn open(&self) -> u64 {
        self.opened.saturating_sub(self.closed)
    }

    fn add(&mut self, other: &Upgrades) {
        self.opened = self.opened.wrapping_add(other.opened);
        self.closed = self.closed.wrapping_add(other.closed);
        self.messages_in = self.messages_in.wrapping_add(other.messages_in);
        self.messages_out = self.messages_out.wrapping_add(other.messages_out);
        self.bytes_in = self.bytes_in.wrapping_add(other.bytes_in);
        self.bytes_out = self.bytes_out.wrapping_add(other.bytes_out);
    }
}

impl Totals {
    /// What `page` holds now.
    pub(crate) fn read(page: &[AtomicU64]) -> Totals {
        let mut totals = Totals::default();
        for shard in page.chunks_exact(SHARD_WORDS) {
            let get = |i: usize| shard[i].load(Ordering::Relaxed);
            totals.started = totals.started.wrapping_add(get(STARTED));
            for (c, total) in totals.classes.iter_mut().enumerate() {
                *total = total.wrapping_add(get(CLASSES + c));
            }
            totals.bytes_in = totals.bytes_in.wrapping_add(get(BYTES_IN));
            totals.bytes_out = totals.bytes_out.wrapping_add(get(BYTES_OUT));
            totals.accept_errors = totals.accept_errors.wrapping_add(get(ACCEPT_ERRORS));
            totals.memory_recycles = totals.memory_recycles.wrapping_add(get(MEMORY_RECYCLES));
            totals.upgraded.add(&Upgrades {
                opened: get(UPGRADES),
                closed: get(UPGRADES_CLOSED),
                messages_in: get(WS_MESSAGES_IN),
                messages_out: get(WS_MESSAGES_OUT),
                bytes_in: get(UPGRADED_BYTES_IN),
                bytes_out: get(UPGRADED_BYTES_OUT),
            });
            totals.http2_streams = totals.http2_streams.wrapping_add(get(HTTP2_STREAMS));
            for (c, histogram) in totals.latency.classes.iter_mut().enumerate() {
                let mut read = Histogram {
                    sum_ns: get(DURATION_SUMS + c),
                    ..Histogram::default()
                };
                for (b, n) in read.buckets.iter_mut().enumerate() {
                    *n = get(DURATION_BUCKETS + c * latency::BUCKETS + b);
                }
                histogram.add(&read);
            }
        }
        totals
    }

    /// Requests answered.
    pub(crate) fn served(&self) -> u64 {
        self.classes.iter().fold(0, |a, &b| a.wrapping_add(b))
    }

    /// Requests started and not answered yet. Each shard's words are read one at a time while
    /// threads count, so a response may be seen before its start: that reads as 0, not as a
    /// huge number.
    pub(crate) fn in_flight(&self) -> u64 {
        self.started.saturating_sub(self.served())
    }

    /// `self` plus `other`.
    pub(crate) fn add(&mut self, other: &Totals) {
        self.started = self.started.wrapping_add(other.started);
        for (total, n) in self.classes.iter_mut().zip(other.classes) {
            *total = total.wrapping_add(n);
        }
        self.bytes_in = self.bytes_in.wrapping_add(other.bytes_in);
        self.bytes_out = self.bytes_out.wrapping_add(other.bytes_out);
        self.accept_errors = self.accept_errors.wrapping_add(other.accept_errors);
        self.memory_recycles = self.memory_recycles.wrapping_add(other.memory_recycles);
        self.http2_streams = self.http2_streams.wrapping_add(other.http2_streams);
        self.latency.add(&other.latency);
        self.upgraded.add(&other.upgraded);
    }

    /// The counts of a worker that is gone: the requests it left in flight are over, answered
    /// by nobody.
    pub(crate) fn finished(&self) -> Totals {
        let mut upgraded = self.upgraded;
        upgraded.closed = upgraded.opened;
        Totals {
            started: self.served(),
            upgraded,
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Vec<AtomicU64> {
        (0..PAGE_WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn shards_add_up_and_in_flight_is_started_minus_answered() {
        let page = page();
        page[STARTED].store(3, Ordering::Relaxed);
        page[SHARD_WORDS + STARTED].store(4, Ordering::Relaxed);
        page[CLASSES + 1].store(2, Ordering::Relaxed); // 2xx
        page[SHARD_WORDS + CLASSES + 3].store(4, Ordering::Relaxed); // 4xx
        page[2 * SHARD_WORDS + BYTES_OUT].store(100, Ordering::Relaxed);
        let totals = Totals::read(&page);
        assert_eq!(totals.served(), 6);
        assert_eq!(totals.in_flight(), 1);
        assert_eq!(totals.classes, [0, 2, 0, 4, 0]);
        assert_eq!(totals.bytes_out, 100);
    }

    #[test]
    fn folding_a_dead_worker_drops_its_in_flight_requests() {
        let mut folded = Totals::default();
        let dead = Totals {
            started: 5,
            classes: [0, 3, 0, 0, 0],
            bytes_in: 10,
            ..Totals::default()
        };
        folded.add(&dead.finished());
        assert_eq!(folded.in_flight(), 0);
        assert_eq!(folded.served(), 3);
        assert_eq!(folded.bytes_in, 10);
    }

    #[test]
    fn a_response_seen_before_its_start_is_not_a_huge_in_flight_count() {
        let totals = Totals {
            started: 1,
            classes: [0, 2, 0, 0, 0],
            ..Totals::default()
        };
        assert_eq!(totals.in_flight(), 0);
    }

    #[test]
    fn durations_are_read_per_class_and_summed_over_shards() {
        let page = page();
        let five = DURATION_BUCKETS + 4 * latency::BUCKETS;
        page[five + 2].store(1, Ordering::Relaxed);
        page[SHARD_WORDS + five + 2].store(2, Ordering::Relaxed);
        page[SHARD_WORDS + DURATION_SUMS + 4].store(90_000, Ordering::Relaxed);
        let totals = Totals::read(&page);
        assert_eq!(totals.latency.classes[4].buckets[2], 3);
        assert_eq!(totals.latency.classes[4].sum_ns, 90_000);
        assert_eq!(totals.latency.all().count(), 3);
    }
}
