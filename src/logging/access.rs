//! The access log of a worker: set up once from `--access-logfile` and `--access-logformat`,
//! then one line per request from any serving thread.
//!
//! Each serving thread formats its lines into a buffer of its own and writes them with one
//! `write` when it has served the events it took and is about to wait for more
//! ([`flush_thread`]), or when the buffer is full: under load one write carries a batch of lines,
//! and an idle server writes each line at once. The file is opened for appending, so the
//! workers' batches never mix. Every buffer is also reachable from [`flush_all`], which the
//! worker calls before it exits (`--timeout` harakiri included) and before a reopen, so a line
//! is lost only if the process dies outright (a crash in the app) with it still buffered.
//! Without `--access-logfile`, `RUST_LOG=info` (the `access` target at info) still puts the
//! same lines into the error log, one `log` record each.

use crate::listen::PeerHost;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::time::Instant;

use super::file::Output;
use super::format::{AccessFormat, FormatKind};
use super::record::{render_json, render_text, AccessRecord, Lookup, Served};

/// The worker's access log; unset when off.
static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

/// A thread's buffer is written out once it holds this much, even before the thread waits.
const FLUSH_AT: usize = 32 * 1024;
/// A buffer that grew past this (huge lines) is given back once written.
const KEEP_BUFFER: usize = 2 * FLUSH_AT;

/// Lines a thread formatted and has not written yet.
type Pending = Arc<Mutex<Vec<u8>>>;

/// Every thread's buffer, for [`flush_all`].
static ALL_PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

/// This thread's buffer, registered in [`ALL_PENDING`] while the thread lives.
struct ThreadLines(Pending);

impl ThreadLines {
    fn new() -> ThreadLines {
        let pending = Pending::default();
        lock(&ALL_PENDING).push(Arc::clone(&pending));
        ThreadLines(pending)
    }
}

impl Drop for ThreadLines {
    /// A thread that ends writes what it holds.
    fn drop(&mut self) {
        if let Some(log) = get() {
            log.write_out(&mut lock(&self.0));
        }
        lock(&ALL_PENDING).retain(|p| !Arc::ptr_eq(p, &self.0));
    }
}

thread_local! {
    static THREAD_LINES: ThreadLines = ThreadLines::new();
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes this thread's buffered lines: a serving thread calls it before it waits for events.
pub(crate) fn flush_thread() {
    if let Some(log) = get() {
        if matches!(log.output, Sink::Output(_)) {
            // try_with: not while the thread is being torn down (its Drop writes).
            let _ = THREAD_LINES.try_with(|lines| log.write_out(&mut lock(&lines.0)));
        }
    }
}

/// Writes every thread's buffered lines (before a reopen, before the process exits). A buffer
/// whose thread is writing it right now is skipped rather than waited for: that thread writes
/// it, and an exit for `--timeout` must not wait on a stuck thread.
pub(crate) fn flush_all() {
    let Some(log) = get() else {
        return;
    };
    let all: Vec<Pending> = lock(&ALL_PENDING).clone();
    for pending in all {
        match pending.try_lock() {
            Ok(mut lines) => log.write_out(&mut lines),
            Err(TryLockError::Poisoned(e)) => log.write_out(&mut e.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
    }
}

pub(crate) struct AccessLog {
    format: AccessFormat,
    output: Sink,
    served: Served,
    needs_clock: bool,
    reads_response_fields: bool,
}

enum Sink {
    Output(Output),
    /// The error log's `access` target (no `--access-logfile`, `RUST_LOG` asks for it).
    ErrorLog,
}

/// Turns the access log on for this process. A second call is ignored.
pub(crate) fn install(format: AccessFormat, output: Option<Output>, served: Served) {
    let output = match output {
        Some(output) => Sink::Output(output),
        None if log::log_enabled!(target: "access", log::Level::Info) => Sink::ErrorLog,
        None => return,
    };
    let needs_clock = format.needs_clock();
    let reads_response_fields = format.reads_response_fields();
    let _ = ACCESS_LOG.set(AccessLog {
        format,
        output,
        served,
        needs_clock,
        reads_response_fields,
    });
}

/// The access log, if it is on.
pub(crate) fn get() -> Option<&'static AccessLog> {
    ACCESS_LOG.get()
}

impl AccessLog {
    /// When a request starts: the clock, only if the format uses the duration.
    pub(crate) fn start(&self) -> Option<Instant> {
        self.needs_clock.then(Instant::now)
    }

    /// Whether a line prints the app's response fields (the encoder keeps them for it).
    pub(crate) fn reads_response_fields(&self) -> bool {
        self.reads_response_fields
    }

    /// The line for a request the app answered.
    pub(crate) fn served(
        &self,
        peer: PeerHost,
        environ: &dyn Lookup,
        response: &dyn Lookup,
        status: u16,
        body_bytes: u64,
        started: Option<Instant>,
    ) {
        self.write(&AccessRecord {
            peer,
            environ: Some(environ),
            response: Some(response),
            status,
            body_bytes,
            elapsed: started.map(|t| t.elapsed()),
        });
    }

    fn write(&self, record: &AccessRecord<'_>) {
        self.write_with(record, None);
    }

    /// The line at the end of an upgraded connection, with its close code (`upgrade.rs`).
    pub(super) fn write_closed(&self, record: &AccessRecord<'_>, code: u16) {
        self.write_with(record, Some(code));
    }

    fn write_with(&self, record: &AccessRecord<'_>, close: Option<u16>) {
        match &self.output {
            Sink::Output(_) => {
                let buffered = THREAD_LINES.try_with(|lines| {
                    let mut lines = lock(&lines.0);
                    self.render_line(record, close, &mut lines);
                    lines.push(b'\n');
                    // A close line may be rendered on an app's own thread (a tokio task closing
                    // its upgraded stream), which never flushes its buffer as serving threads
                    // do before they wait: it goes out now, after this thread's earlier lines.
                    if lines.len() >= FLUSH_AT || close.is_some() {
                        self.write_out(&mut lines);
                    }
                });
                if buffered.is_err() {
                    // A thread being torn down: write the line on its own.
                    let mut line = Vec::new();
                    self.render_line(record, close, &mut line);
                    line.push(b'\n');
                    self.write_out(&mut line);
                }
            }
            Sink::ErrorLog => {
                let mut line = Vec::new();
                self.render_line(record, close, &mut line);
                log::info!(target: "access", "{}", String::from_utf8_lossy(&line));
            }
        }
    }

    /// The line, and an upgraded connection's close code: ` close=CODE` after a text line,
    /// `"close_code"` as the last key of a JSON one.
    fn render_line(&self, record: &AccessRecord<'_>, close: Option<u16>, out: &mut Vec<u8>) {
        self.render(record, out);
        if let Some(code) = close {
            match &*self.format.kind {
                FormatKind::Text(_) => out.extend_from_slice(format!(" close={code}").as_bytes()),
                FormatKind::Json => {
                    if out.last() == Some(&b'}') {
                        out.pop();
                        out.extend_from_slice(format!(",\"close_code\":{code}}}").as_bytes());
                    }
                }
            }
        }
    }

    fn render(&self, record: &AccessRecord<'_>, out: &mut Vec<u8>) {
        match &*self.format.kind {
            FormatKind::Text(atoms) => render_text(atoms, record, &self.served, out),
            FormatKind::Json => render_json(record, &self.served, out),
        }
    }

    /// Writes `lines` (whole lines) to the file in one `write` and empties them.
    fn write_out(&self, lines: &mut Vec<u8>) {
        if lines.is_empty() {
            return;
        }
        if let Sink::Output(output) = &self.output {
            if let Err(e) = output.write_lines(lines) {
                log::warn!("cannot write the access log: {e}");
            }
        }
        lines.clear();
        if lines.capacity() > KEEP_BUFFER {
            *lines = Vec::new();
        }
    }
}

/// The line for a request the app never saw (a malformed head, a header timeout). The reason
/// goes to the error log's `access` target, as before there was an access log file.
pub(crate) fn refused(peer: PeerHost, status: u16, reason: &dyn fmt::Display) {
    log::info!(target: "access", "{peer} \"-\" {status} 0 {reason}");
    if let Some(log) = get().filter(|log| matches!(log.output, Sink::Output(_))) {
        log.write(&AccessRecord {
            peer,
            environ: None,
            response: None,
            status,
            body_bytes: 0,
            elapsed: None,
        });
    }
}
