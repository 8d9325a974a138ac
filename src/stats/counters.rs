//! A worker's counters: one mapping shared with the master (`crate::sys::shm`), split into
//! shards so serving threads on different CPUs never write the same cache line. A serving thread
//! owns its shard: counting is a plain load and store into it, no locked instruction; other
//! threads (an app's own, the HTTP/2 runtime, serving threads past the 31st) share shard 0 with
//! relaxed atomic adds. Timing a request takes one clock read (vDSO, no system call) at its end:
//! its start is the reading the serving thread took when it woke to the request's bytes
//! (`woke`), then a bucket by leading zeros and two more adds (`latency.rs`). The master sums
//! the shards when it is asked.
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

type Shard = [AtomicU64; SHARD_WORDS];

/// This process's page, once attached.
static PAGE: OnceLock<&'static [AtomicU64]> = OnceLock::new();

thread_local! {
    /// This thread's shard, and whether no other thread writes it. Set by `serving_thread`, or
    /// to shard 0 (shared) by the first count of any other thread once the page is attached.
    static SHARD: Cell<Option<(&'static Shard, bool)>> = const { Cell::new(None) };
    /// When this serving thread last woke to events, not yet taken by a request.
    static WOKE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Count into `page` from now on (a worker, before it serves).
pub(crate) fn attach(page: &'static [AtomicU64]) {
    if page.len() < PAGE_WORDS || PAGE.set(page).is_err() {
        log::warn!("statistics page refused (too small, or one is attached already)");
    }
}

/// Shard `index` of the attached page.
fn page_shard(index: usize) -> Option<&'static Shard> {
    PAGE.get()?
        .get(index * SHARD_WORDS..)?
        .first_chunk::<SHARD_WORDS>()
}

/// Serving thread `index` counts into a shard of its own (the first `SHARDS - 1` threads; any
/// beyond share shard 0).
pub(crate) fn serving_thread(index: usize) {
    let own = index < SHARDS - 1;
    let shard = if own {
        page_shard(1 + index)
    } else {
        page_shard(0)
    };
    if let Some(shard) = shard {
        SHARD.with(|mine| mine.set(Some((shard, own))));
    }
}

/// This thread's shard and whether it is its own; `None` before a page is attached.
#[inline]
fn shard() -> Option<(&'static Shard, bool)> {
    SHARD.with(Cell::get).or_else(shared_shard)
}

#[cold]
fn shared_shard() -> Option<(&'static Shard, bool)> {
    let shard = page_shard(0)?;
    SHARD.with(|mine| mine.set(Some((shard, false))));
    Some((shard, false))
}

/// Adds `n` to `word`: a plain load and store when only this thread writes it (the master's
/// relaxed loads still see whole values), else an atomic add.
#[inline]
fn bump(word: &AtomicU64, n: u64, own: bool) {
    if own {
        word.store(
            word.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    } else {
        word.fetch_add(n, Ordering::Relaxed);
    }
}

#[inline]
fn add(counter: usize, n: u64) {
    if let Some((shard, own)) = shard() {
        if let Some(word) = shard.get(counter) {
            bump(word, n, own);
        }
    }
}

/// A serving thread woke to events at `now` (its loop reads the clock then anyway): the first
/// request it serves next was received by then, and is timed from it.
#[inline]
pub(crate) fn woke(now: Instant) {
    if PAGE.get().is_some() {
        WOKE.with(|woke| woke.set(Some(now)));
    }
}

/// When a request whose head was just parsed on a serving thread was received, for its
/// duration: the thread's wake-up reading if no request took it yet, else now (a request that
/// followed another on its connection); `None` (no clock read) in a process that does not
/// count.
#[inline]
pub(crate) fn request_clock() -> Option<Instant> {
    PAGE.get()?;
    Some(WOKE.with(Cell::take).unwrap_or_else(Instant::now))
}

/// Now, for a request's duration; `None` (no clock read) in a process that does not count.
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
    let Some((shard, own)) = shard() else {
        return;
    };
    let class = usize::from(status / 100).clamp(1, CLASS_COUNT) - 1;
    if let Some(word) = shard.get(CLASSES + class) {
        bump(word, 1, own);
    }
    if let Some(started) = started {
        let elapsed = started.elapsed();
        let ns = elapsed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(elapsed.subsec_nanos()));
        if let Some(word) = shard.get(DURATION_SUMS + class) {
            bump(word, ns, own);
        }
        let bucket = DURATION_BUCKETS + class * latency::BUCKETS + latency::bucket(ns);
        if let Some(word) = shard.get(bucket) {
            bump(word, 1, own);
        }
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
