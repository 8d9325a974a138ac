//! Processes: a master that never loads app code, generations of workers that do.
//!
//! - `args.rs`: the options a master, a worker and `check` run with (clap parses them as part of
//!   `crate::cli::Cli`).
//! - `generation.rs` decides: the generation state machine (swaps, failures, replacements,
//!   back-off, stops), pure logic with events in and actions out.
//! - `master.rs` does the master's I/O: signals, pipes, reaping, the status file, `--reload`,
//!   `--stats` scrapes (the counting and the listener are `crate::stats`).
//! - `worker.rs` is a worker's life; `message.rs` what it tells the master on its pipe;
//!   `children.rs` a worker as the master sees it.
//! - `artifact.rs` reads a library once and seals it in memory for a generation's workers
//!   (`crate::elf::complete` refuses a half-written one); `reload.rs` notices a changed one, `reload_paths.rs`
//!   a change under `--reload-path`; `source_pin.rs` keeps a generation to one version of the code
//!   an app reads from disk (Python's `.py` files).
//! - `canary.rs`: `--canary`'s options and verdict (the window is the state machine's).
//! - `reread.rs`: a swap re-reads `--config` and keeps what needs a restart as started;
//!   `effective.rs` describes the settings in force.
//! - `pid_file.rs` is `--pid FILE`, locked for the master's life.
//! - `probe.rs` is `webserver check`; `process.rs` small helpers. System calls are in
//!   `crate::sys::process` and `crate::sys::memfd`.

pub(crate) mod args;
pub(crate) mod artifact;
pub(crate) mod canary;
pub(crate) mod children;
pub(crate) mod effective;
pub(crate) mod generation;
pub(crate) mod master;
pub(crate) mod message;
pub(crate) mod pid_file;
pub(crate) mod probe;
pub(crate) mod process;
pub(crate) mod reload;
pub(crate) mod reload_paths;
pub(crate) mod reread;
pub(crate) mod source_pin;
pub(crate) mod upgrade;
pub(crate) mod worker;
