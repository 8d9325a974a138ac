//! Serving threads give way to the event loop: each marks itself `SCHED_BATCH` the first time it
//! calls the app, so waking it never preempts the loop thread.
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
//! Only this worker's serving threads are marked, and only after they served an ASGI request:
//! the worker serves one app. No privilege is needed to leave `SCHED_OTHER` for `SCHED_BATCH`.

use std::cell::Cell;

thread_local! {
    /// This thread has been marked (or tried to be).
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling serving thread `SCHED_BATCH`, once per thread; an error leaves the
/// thread as it was (it serves the same, only with more context switches).
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
