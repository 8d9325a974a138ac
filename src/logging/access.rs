//! The access log of a worker: set up once from `--access-logfile` and `--access-logformat`,
//! then one line per request from any serving thread.
//!
//! Each line is formatted into a buffer of the serving thread and written with one `write` to
//! the file, opened for appending: no lock between threads, no interleaving between the
//! workers sharing the file, and nothing held in memory that a crash or `--timeout` could lose.
//! Without `--access-logfile`, `RUST_LOG=info` (the `access` target at info) still puts the
//! same lines into the error log.

use std::cell::RefCell;
use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

use super::file::Output;
use super::format::{AccessFormat, FormatKind};
use super::record::{render_json, render_text, AccessRecord, Lookup, Served};

/// The worker's access log; unset when off.
static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

/// A line buffer longer than this is given back after use (one huge header must not pin it).
const KEEP_LINE_BUFFER: usize = 16 * 1024;

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub(crate) struct AccessLog {
    format: AccessFormat,
    output: Sink,
    served: Served,
    needs_clock: bool,
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
    let _ = ACCESS_LOG.set(AccessLog {
        format,
        output,
        served,
        needs_clock,
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

    /// The line for a request the app answered.
    pub(crate) fn served(
        &self,
        peer: IpAddr,
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
        LINE.with_borrow_mut(|line| {
            line.clear();
            match &*self.format.kind {
                FormatKind::Text(atoms) => render_text(atoms, record, &self.served, line),
                FormatKind::Json => render_json(record, &self.served, line),
            }
            match &self.output {
                Sink::Output(output) => {
                    line.push(b'\n');
                    if let Err(e) = output.write_lines(line) {
                        log::warn!("cannot write the access log: {e}");
                    }
                }
                Sink::ErrorLog => {
                    log::info!(target: "access", "{}", String::from_utf8_lossy(line));
                }
            }
            if line.capacity() > KEEP_LINE_BUFFER {
                *line = Vec::new();
            }
        });
    }
}

/// The line for a request the app never saw (a malformed head, a header timeout). The reason
/// goes to the error log's `access` target, as before there was an access log file.
pub(crate) fn refused(peer: IpAddr, status: u16, reason: &dyn fmt::Display) {
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
