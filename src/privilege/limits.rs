//! Per-worker limits: `--limit-memory`, `--limit-open-files`, `--limit-cpu-seconds`.
//!
//! - Memory is the worker's resident set (RSS), watched by the worker itself a few times a
//!   second from `/proc/self/statm`: past the limit it logs one line and recycles as
//!   `--max-requests` does (the master starts its replacement; in-flight requests finish). Not
//!   `RLIMIT_AS`: address space is not memory (every thread's stack and glibc's malloc arenas
//!   reserve far more than they use), and an allocation that fails inside an app aborts the
//!   process with every request it was serving.
//! - Open files is `RLIMIT_NOFILE`, set before the app's init: the worker's own descriptors
//!   (listeners, connections) count too.
//! - CPU seconds is `RLIMIT_CPU` over the worker's life: the kernel kills it (SIGXCPU, then
//!   SIGKILL a second later) and the master replaces it like a crashed one, naming the signal.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::server::Shutdown;
use crate::sys::privilege::{page_size, set_limit, Limit};
use crate::values;

/// How often a worker looks at its resident memory.
const MEMORY_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Fewer descriptors than this and a worker cannot hold its own listeners and a few clients.
const MIN_OPEN_FILES: u64 = 64;

/// The limits, the master's options passed on to each worker as they are.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct LimitArgs {
    /// Recycle a worker whose resident memory (RSS) passes BYTES: it logs one line, its
    /// replacement starts, its in-flight requests finish (as with --max-requests).
    #[arg(
        long,
        value_name = "BYTES",
        value_parser = values::bytes,
        env = "WEBSERVER_LIMIT_MEMORY",
        help_heading = "Limits"
    )]
    pub(crate) limit_memory: Option<u64>,

    /// Most descriptors a worker may have open (RLIMIT_NOFILE), its own listeners and
    /// connections included; at least 64.
    #[arg(
        long,
        value_name = "N",
        value_parser = open_files,
        env = "WEBSERVER_LIMIT_OPEN_FILES",
        help_heading = "Limits"
    )]
    pub(crate) limit_open_files: Option<u64>,

    /// CPU seconds a worker may use in its life (RLIMIT_CPU); past it the kernel kills it
    /// (SIGXCPU) and it is replaced like a crashed one.
    #[arg(
        long,
        value_name = "SECS",
        value_parser = values::positive_seconds,
        env = "WEBSERVER_LIMIT_CPU_SECONDS",
        help_heading = "Limits"
    )]
    pub(crate) limit_cpu_seconds: Option<u64>,
}

fn open_files(arg: &str) -> Result<u64, String> {
    let n = values::bytes(arg)?;
    if n < MIN_OPEN_FILES {
        return Err(format!(
            "expected at least {MIN_OPEN_FILES}: a worker needs descriptors for its listeners and clients"
        ));
    }
    Ok(n)
}

impl LimitArgs {
    /// The worker's command-line arguments.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(bytes) = self.limit_memory {
            args.push(format!("--limit-memory={bytes}"));
        }
        if let Some(n) = self.limit_open_files {
            args.push(format!("--limit-open-files={n}"));
        }
        if let Some(secs) = self.limit_cpu_seconds {
            args.push(format!("--limit-cpu-seconds={secs}"));
        }
        args
    }

    /// In a worker, before the app's init: the kernel's limits.
    pub(crate) fn apply(&self) -> Result<(), String> {
        if let Some(n) = self.limit_open_files {
            set_limit(Limit::OpenFiles, n, n)
                .map_err(|e| format!("cannot set --limit-open-files {n}: {e}"))?;
        }
        if let Some(secs) = self.limit_cpu_seconds {
            // The hard limit a second later: SIGXCPU first (a core dump where enabled), then
            // SIGKILL for a process that ignores it.
            set_limit(Limit::CpuSeconds, secs, secs + 1)
                .map_err(|e| format!("cannot set --limit-cpu-seconds {secs}: {e}"))?;
        }
        Ok(())
    }

    /// In a serving worker: with `--limit-memory`, watch the resident memory on a thread of its
    /// own and retire the worker once it is past the limit.
    pub(crate) fn watch_memory(&self, shutdown: &Arc<Shutdown>) -> std::io::Result<()> {
        let Some(limit) = self.limit_memory else {
            return Ok(());
        };
        let shutdown = Arc::clone(shutdown);
        let page = page_size();
        std::thread::Builder::new()
            .name("memory-watch".into())
            .spawn(move || {
                while !shutdown.is_requested() {
                    if let Some(resident) = resident_pages().map(|pages| pages * page) {
                        if resident > limit {
                            log::warn!(
                                "resident memory {} MiB is past --limit-memory {} MiB: recycling this worker after its in-flight requests",
                                resident >> 20,
                                limit >> 20
                            );
                            crate::stats::memory_recycle();
                            shutdown.retire();
                            return;
                        }
                    }
                    std::thread::sleep(MEMORY_CHECK_INTERVAL);
                }
            })?;
        Ok(())
    }
}

/// The second field of `/proc/self/statm`: resident pages.
fn resident_pages() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    statm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_pages() {
        assert!(resident_pages().unwrap() > 0);
    }

    #[test]
    fn too_few_open_files_are_refused() {
        assert!(open_files("63").unwrap_err().contains("at least 64"));
        assert_eq!(open_files("64"), Ok(64));
    }
}
