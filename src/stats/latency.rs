//! Request durations (the request head received → the response's last byte handed to the socket),
//! as fixed-bucket histograms per status class: a serving thread adds one to one bucket and the
//! nanoseconds to one sum (`counters::response`); the master sums shards and workers into a
//! [`Latency`], renders it as a Prometheus histogram and estimates quantiles from it.
//!
//! The buckets are fixed so every worker, generation and scrape adds up; their bounds follow the
//! 1-2.5-5 series from 25 µs (a keep-alive hello) to a minute (past any sane `--timeout`).

use super::counters::CLASS_COUNT;

/// Upper bounds of the finite buckets, in microseconds (a bucket holds durations ≤ its bound).
pub(crate) const BOUNDS_US: [u64; 20] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// The finite buckets and the one above them all (`+Inf`).
pub(crate) const BUCKETS: usize = BOUNDS_US.len() + 1;

const BOUNDS_NS: [u64; BOUNDS_US.len()] = {
    let mut ns = [0; BOUNDS_US.len()];
    let mut i = 0;
    while i < ns.len() {
        ns[i] = BOUNDS_US[i] * 1_000;
        i += 1;
    }
    ns
};

/// The finite bounds and, past them, one no duration exceeds: `BOUNDS[bucket]` is defined for
/// every bucket.
const BOUNDS: [u64; BUCKETS] = {
    let mut all = [u64::MAX; BUCKETS];
    let mut i = 0;
    while i < BOUNDS_NS.len() {
        all[i] = BOUNDS_NS[i];
        i += 1;
    }
    all
};

/// The first bucket whose bound is not below `ns`, by a scan (what `bucket` computes faster).
const fn bucket_by_scan(ns: u64) -> usize {
    let mut i = 0;
    while i < BOUNDS_NS.len() && ns > BOUNDS_NS[i] {
        i += 1;
    }
    i
}

/// For each bit length of a duration (0 to 64 bits), the bucket of the smallest duration of
/// that length.
const FIRST_OF_LENGTH: [u8; 65] = {
    let mut first = [0u8; 65];
    let mut len = 1;
    while len <= 64 {
        first[len] = bucket_by_scan(1u64 << (len - 1)) as u8;
        len += 1;
    }
    first
};

// Each bound is at least twice the one before, so at most one lies inside a range of durations
// of one bit length: the bucket is the first of that length or the next.
const _: () = {
    let mut i = 1;
    while i < BOUNDS_NS.len() {
        assert!(BOUNDS_NS[i] >= 2 * BOUNDS_NS[i - 1]);
        i += 1;
    }
};

/// The bucket of a duration of `ns` nanoseconds: a table lookup by its bit length and one
/// comparison, the same cost whichever bucket it falls in.
#[inline]
pub(crate) fn bucket(ns: u64) -> usize {
    let first = usize::from(FIRST_OF_LENGTH[(u64::BITS - ns.leading_zeros()) as usize]);
    first + usize::from(ns > BOUNDS[first])
}

/// The upper bound of bucket `index` in seconds (`+Inf` for the last).
pub(crate) fn bound_seconds(index: usize) -> f64 {
    BOUNDS_US
        .get(index)
        .map_or(f64::INFINITY, |&us| us as f64 / 1e6)
}

/// One histogram: how many durations fell in each bucket (not cumulative), and their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Histogram {
    pub(crate) buckets: [u64; BUCKETS],
    pub(crate) sum_ns: u64,
}

impl Histogram {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().fold(0, |a, &b| a.wrapping_add(b))
    }

    pub(crate) fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine = mine.wrapping_add(theirs);
        }
        self.sum_ns = self.sum_ns.wrapping_add(other.sum_ns);
    }

    /// What was counted since `earlier` (a reading of the same counters): the window between
    /// two readings. Saturating: a worker that died in between was folded in whole.
    pub(crate) fn since(&self, earlier: &Histogram) -> Histogram {
        let mut window = *self;
        for (mine, theirs) in window.buckets.iter_mut().zip(earlier.buckets) {
            *mine = mine.saturating_sub(theirs);
        }
        window.sum_ns = window.sum_ns.saturating_sub(earlier.sum_ns);
        window
    }

    /// The running totals Prometheus wants: bucket `i` counts every duration ≤ its bound.
    pub(crate) fn cumulative(&self) -> [u64; BUCKETS] {
        let mut running = 0u64;
        self.buckets.map(|n| {
            running = running.wrapping_add(n);
            running
        })
    }

    /// The `q`-quantile (0 < q ≤ 1) in seconds, interpolated linearly inside its bucket as
    /// Prometheus's `histogram_quantile` does; the highest finite bound if it falls above them
    /// all; `None` without durations.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            let through = below + n;
            if n > 0 && through as f64 >= rank {
                if i == BOUNDS_US.len() {
                    return Some(bound_seconds(i - 1));
                }
                let lower = if i == 0 { 0.0 } else { bound_seconds(i - 1) };
                let upper = bound_seconds(i);
                let inside = (rank - below as f64) / n as f64;
                return Some(lower + (upper - lower) * inside);
            }
            below = through;
        }
        Some(bound_seconds(BOUNDS_US.len() - 1))
    }
}

/// The histograms of one worker, generation or server: one per status class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Latency {
    pub(crate) classes: [Histogram; CLASS_COUNT],
}

impl Latency {
    pub(crate) fn add(&mut self, other: &Latency) {
        for (mine, theirs) in self.classes.iter_mut().zip(&other.classes) {
            mine.add(theirs);
        }
    }

    /// All classes in one histogram.
    pub(crate) fn all(&self) -> Histogram {
        let mut all = Histogram::default();
        for class in &self.classes {
            all.add(class);
        }
        all
    }

    /// See [`Histogram::since`].
    pub(crate) fn since(&self, earlier: &Latency) -> Latency {
        let mut window = *self;
        for (mine, theirs) in window.classes.iter_mut().zip(&earlier.classes) {
            *mine = mine.since(theirs);
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_first_bucket_whose_bound_is_not_below_them() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(25_000), 0);
        assert_eq!(bucket(25_001), 1);
        assert_eq!(bucket(60_000_000), 11); // 60 ms: ≤ 100 ms
        assert_eq!(bucket(60_000_000_000), BOUNDS_US.len() - 1);
        assert_eq!(bucket(u64::MAX), BOUNDS_US.len());
        assert!(BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_bucket_by_bit_length_is_the_bucket_by_scan() {
        let mut durations = vec![0, 1, 2, 3, u64::MAX, u64::MAX - 1];
        for bound in BOUNDS_NS {
            durations.extend([bound - 1, bound, bound + 1]);
        }
        for shift in 0..64 {
            let power = 1u64 << shift;
            durations.extend([power - 1, power, power + 1, power | (power >> 1)]);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            durations.push(x >> (x % 64));
        }
        for ns in durations {
            assert_eq!(bucket(ns), bucket_by_scan(ns), "{ns} ns");
        }
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        // 90 durations ≤ 25 µs, 10 in (50 ms, 100 ms].
        h.buckets[0] = 90;
        h.buckets[bucket(60_000_000)] = 10;
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 0.000_025 * 50.0 / 90.0).abs() < 1e-12, "{p50}");
        assert_eq!(h.quantile(0.9), Some(0.000_025));
        let p99 = h.quantile(0.99).unwrap();
        assert!((p99 - 0.095).abs() < 1e-9, "{p99}");
        assert_eq!(h.cumulative()[BUCKETS - 1], 100);
        h.buckets[BUCKETS - 1] = 1000;
        assert_eq!(h.quantile(0.99), Some(60.0));
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let mut before = Latency::default();
        before.classes[1].buckets[0] = 5;
        before.classes[1].sum_ns = 50;
        let mut after = before;
        after.classes[1].buckets[0] = 7;
        after.classes[1].sum_ns = 80;
        after.classes[4].buckets[3] = 1;
        let window = after.since(&before);
        assert_eq!(window.classes[1].buckets[0], 2);
        assert_eq!(window.classes[1].sum_ns, 30);
        assert_eq!(window.all().count(), 3);
    }
}
