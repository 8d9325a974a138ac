//! The worker's threads give way to each other rather than preempt: serving threads mark
//! themselves `SCHED_BATCH` the first time they call the app, and the loop thread when it starts.
//!
//! Why: a response the loop finishes wakes a serving thread (the request's waker). On a worker
//! with one CPU, the woken thread took the CPU from the loop at once, wrote that one response,
//! queued the connection's next request for the loop and slept, and the loop went on until its
//! next response: two context switches per request, and the loop's working set (the app's
//! Python) evicted from the caches each time. FastAPI's hello cost 115-125 us of CPU per request
//! so, against 84 us with the serving threads batched (and uvicorn's 88 us), measured by
//! `perf stat` over `wrk -c50` on one pinned CPU. A `SCHED_BATCH` thread still gets its fair
//! share of the CPU; it only waits, when woken, until the running thread blocks or its slice
//! ends, so the loop runs its turn through and the serving threads then write every finished
//! response and queue every new request in one go.
//!
//! The loop thread is marked for the other direction: a serving thread that queues a request
//! wakes the loop, which otherwise could take the CPU from it in the middle of writing the
//! responses of the loop's last turn. Marked too, it runs once the serving threads have written
//! them all and queued every request that came meanwhile. The bare hello's CPU per request over
//! `wrk -c50` went down 3-14 % keep-alive in four interleaved runs on a busy machine (and 2-12 %
//! with `Connection: close` in three of four); see `bench/RESULTS.md`.
//!
//! Only this worker's threads are marked, and serving threads only after they served an ASGI
//! request: the worker serves one app. No privilege is needed to leave `SCHED_OTHER` for
//! `SCHED_BATCH`.

use std::cell::Cell;

thread_local! {
    /// This thread has been marked (or tried to be).
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread (a serving thread, or the loop thread) `SCHED_BATCH`, once per
/// thread; an error leaves the thread as it was (it serves the same, only with more context
/// switches). The one `SCHED_BATCH` call of this crate: the server's (`src/sys/process.rs`) and
/// the tower adapter's are not shared, since an app links only against `app-abi`, never against
/// the server that loads it or another adapter.
pub(crate) fn mark_this_thread() {
    if MARKED.with(|m| m.replace(true)) {
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call, which
    // only reads it.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
}
