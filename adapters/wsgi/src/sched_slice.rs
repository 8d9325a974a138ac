//! A serving thread that runs a fast app asks the kernel for a short scheduler slice ([`SHORT`])
//! instead of the kernel's default (which grows with the number of CPUs: 1.4 ms on the two-CPU
//! bench machine); one that runs a slow app goes back to the default.
//!
//! Why: with `--threads 4` on one CPU, the bare hello (about 7 µs per request, 1–2 µs of it in
//! Python) answered most requests in turn, but 1 % of them after 200–340 other responses where
//! turn by turn is 49 (`bench/wsgi_order.py`, 50 connections), which made its p99 1.3× granian's.
//! `perf sched` showed the serving threads woken by new events waiting for the CPU (0.5 ms on
//! average) while the running one served; the kernel switches threads when a slice runs out, in
//! the middle of whatever the running thread did, often with a request it had read but not yet
//! answered (outside the GIL). That request then waited while each of the other threads served
//! its own newer requests for a whole slice. A shorter slice bounds that wait: 100 µs (the least
//! the kernel grants) took the overtaking p99 to 82–83 (150 µs: 92–97; 200 µs: 109–111; 300 µs:
//! 127–133; granian 51), for 0.2–1 µs more CPU per request (0.07 → 0.35 context switches). On a
//! quiet machine, wrk's p99 over 12 fresh servers was 0.79–1.84 ms, median 0.99, against
//! granian's 1.12–1.27 (150 µs: 1.12–1.88, median 1.49; the default: 1.52–2.08), at 7.2–7.6 µs
//! of CPU per request against granian's 9.1 (bench/RESULTS.md, wsgi8 and session 11). A slow app gains nothing from it: the Flask hello's requests are
//! queued for the thread holding the GIL ([`crate::handoff`]), which answers them in order
//! anyway, and a 100–300 µs slice only added switches (about 0.35 → 0.5 per request) and saved
//! no CPU. So the slice follows the app's average call time, as the handoff queue does
//! ([`crate::handoff::calls_are_short`]).
//!
//! Kernels before 6.12 take the request and ignore it (their fair class has no custom slice); an
//! error leaves the thread as it was. The policy, nice value and flags are kept.

use std::cell::Cell;
use std::time::Duration;

/// The slice a serving thread asks for while the app's calls are short.
pub(crate) const SHORT: Duration = Duration::from_micros(100);

thread_local! {
    /// Whether this thread last asked for [`SHORT`] (`None`: it has not asked for anything).
    static ASKED_SHORT: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Asks for [`SHORT`] (`short`) or the kernel's default slice for the calling thread, with one
/// system call pair only when that differs from what it last asked for.
pub(crate) fn fit(short: bool) {
    if ASKED_SHORT.with(|asked| asked.replace(Some(short))) == Some(short) {
        return;
    }
    set_own_slice(short.then_some(SHORT));
}

/// Sets the calling thread's slice (`None`: the kernel's default) if it runs under a fair policy.
fn set_own_slice(slice: Option<Duration>) {
    let size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: sched_attr is plain integers, for which all zeroes is a valid value.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getattr writes at most `size` bytes of the calling thread's (pid 0)
    // attributes into `attr`, which is that large; flags must be 0.
    let read = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) };
    let fair = [libc::SCHED_OTHER, libc::SCHED_BATCH, libc::SCHED_IDLE]
        .iter()
        .any(|&policy| attr.sched_policy == policy as u32);
    if read != 0 || !fair {
        return;
    }
    attr.size = size;
    // For a fair policy the kernel reads `sched_runtime` as the slice wanted; 0 is its default.
    attr.sched_runtime = slice.map_or(0, |slice| slice.as_nanos() as u64);
    // SAFETY: sched_setattr reads `size` bytes of `attr` for the calling thread (pid 0); the
    // policy, nice value and flags are the ones just read, so it asks for no privilege.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) };
}
