//! `--stats`: what the server is doing, served by the master (never by app code) as JSON
//! (`GET /stats`) and Prometheus text (`GET /metrics`), and the settings in force as
//! `--print-config` prints them (`GET /config`).
//!
//! - Workers count requests, responses by status class, bytes and accept errors, and time each
//!   request into a histogram per status class (`latency.rs`), in shared memory the master gives
//!   each of them (`counters.rs`, `crate::sys::shm`): one relaxed add per counter, into the
//!   serving thread's own cache lines, no system call.
//! - The master keeps the pages of its live workers and folds a worker's counts into its own
//!   totals when it is reaped, so counters never go backwards; it counts crashes and timeouts
//!   by worker number (`book.rs`). Generations, libraries and swaps come from the state machine.
//! - `endpoint.rs` answers scrapes from the master's loop, never blocking it; `render.rs` writes
//!   the two formats.

mod book;
mod counters;
mod endpoint;
pub(crate) mod facts;
mod latency;
mod render;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use clap::Args;

pub(crate) use counters::{
    accept_error, bytes_in, bytes_out, clock, http2_stream, memory_recycle, rejected,
    request_clock, request_started, response, serving_thread, upgrade_closed, upgrade_opened,
    upgraded_bytes_in, upgraded_bytes_out, woke, ws_message_in, ws_message_out,
};
pub(crate) use endpoint::StatsAddr;
pub(crate) use latency::Latency;

use crate::sys::process::{claim_inherited, dup_at_or_above, ChildExit};
use crate::sys::shm::SharedCounters;
use book::Book;
use counters::PAGE_WORDS;
use endpoint::{Endpoint, Page};
use facts::{Machine, WorkerFate};

/// Where a worker finds its counter page: far above the descriptors a worker is handed for
/// its listeners, pipe and library, below the highest one a worker may claim.
pub(crate) const STATS_FD: RawFd = 60;

/// The master's `--stats` flag.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct StatsArgs {
    /// Serve statistics from the master on unix:PATH or HOST:PORT: GET /stats (JSON), GET
    /// /metrics (Prometheus text format) and GET /config (the settings in force, as
    /// --print-config prints them). App code never answers there.
    #[arg(
        long,
        value_name = "unix:PATH|HOST:PORT",
        env = "WEBSERVER_STATS",
        help_heading = "Metrics"
    )]
    pub(crate) stats: Option<StatsAddr>,
}

/// A worker's side of `--stats` (internal).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct WorkerStatsArgs {
    /// A counter page waits at descriptor `STATS_FD`.
    #[arg(long = "stats-page", hide = true)]
    pub(crate) stats_page: bool,
}

impl WorkerStatsArgs {
    /// The worker's command-line arguments for a master with (`true`) or without `--stats`.
    pub(crate) fn to_args(enabled: bool) -> Vec<String> {
        if enabled {
            vec!["--stats-page".into()]
        } else {
            Vec::new()
        }
    }

    /// In a worker: count into the page the master handed down, if it did.
    pub(crate) fn attach(&self) {
        if !self.stats_page {
            return;
        }
        let attached =
            claim_inherited(STATS_FD).and_then(|fd| SharedCounters::map(fd.as_fd(), PAGE_WORDS));
        match attached {
            // The mapping outlives the descriptor; the worker counts into it until it exits.
            Ok(page) => counters::attach(page.leak()),
            Err(e) => log::warn!("no statistics page at descriptor {STATS_FD} ({e}); this worker's requests are not counted"),
        }
    }
}

/// The master's side: the listener and the book.
pub(crate) struct Stats {
    endpoint: Endpoint,
    book: Book,
}

/// A counter page for a worker about to start: the descriptor to hand down (at or above
/// `FD_FLOOR`) and the master's mapping.
pub(crate) struct NewPage {
    fd: OwnedFd,
    counters: SharedCounters,
}

impl NewPage {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Stats {
    /// Listen where `--stats` says, if it says anything: on `inherited` if an old master
    /// handed its listener down (`USR2`).
    pub(crate) fn start(args: &StatsArgs, inherited: Option<OwnedFd>) -> io::Result<Option<Stats>> {
        let Some(addr) = &args.stats else {
            return Ok(None);
        };
        let endpoint = match inherited {
            Some(fd) => Endpoint::inherit(addr, fd)?,
            None => Endpoint::bind(addr)?,
        };
        log::info!(
            "statistics on {} (GET /stats: JSON, GET /metrics: Prometheus, GET /config: settings)",
            endpoint.describe()
        );
        Ok(Some(Stats {
            endpoint,
            book: Book::default(),
        }))
    }

    /// The listening socket, to hand down to a new master (`USR2`).
    pub(crate) fn listener_fd(&self) -> BorrowedFd<'_> {
        self.endpoint.listener_fd()
    }

    /// A new master serves on the socket now: leave its file in place at exit.
    pub(crate) fn keep_socket_file(&mut self) {
        self.endpoint.keep_socket_file();
    }

    /// This master serves on the socket it was handed (`USR2`): remove its file at exit.
    pub(crate) fn own_socket_file(&mut self) {
        self.endpoint.own_socket_file();
    }

    pub(crate) fn new_page(generation: u64) -> io::Result<NewPage> {
        let (fd, counters) = Book::new_page(generation)?;
        let fd = dup_at_or_above(fd.as_fd(), crate::sys::process::FD_FLOOR)?;
        Ok(NewPage { fd, counters })
    }

    /// Worker `pid`, number `number`, of `generation` started with `page`.
    pub(crate) fn spawned(&mut self, pid: i32, number: usize, generation: u64, page: NewPage) {
        // The descriptor closes here; the mapping stays.
        self.book.spawned(pid, number, generation, page.counters);
    }

    /// Worker `pid` was reaped (see `Book::exited`).
    pub(crate) fn exited(&mut self, pid: i32, how: ChildExit, fate: Option<WorkerFate>) {
        self.book.exited(pid, how, fate);
    }

    /// Request durations by generation now (a canary's window is the difference of two).
    pub(crate) fn latency(&self) -> BTreeMap<u64, Latency> {
        self.book.latency()
    }

    /// What the master's loop should wake for.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.endpoint.wake_fd()
    }

    /// Answer what scrapes can be answered now, from `machine`'s state; `config` describes the
    /// settings in force (`GET /config`).
    pub(crate) fn serve(&mut self, machine: &dyn Machine, config: Option<&str>) {
        let book = &self.book;
        self.endpoint.serve(&mut |page| match page {
            Page::Json => render::json(&book.snapshot(machine)),
            Page::Prometheus => render::prometheus(&book.snapshot(machine)),
            Page::Config => config.map_or_else(
                || "# the settings are not known\n".to_owned(),
                str::to_owned,
            ),
        });
    }
}
