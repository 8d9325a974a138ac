//! The error log: `log` records through `env_logger` (its `RUST_LOG` filter syntax), to stderr or
//! `--error-logfile`, with repeated warnings summarised (`log_limit.rs`). Each line names the
//! process that wrote it, since the master and its workers share the destination.

use std::io::{self, Write};
use std::sync::Arc;

use super::file::LogFile;
use crate::log_limit::RepeatLimit;

/// The filter when `RUST_LOG` is not set: `level`, without the `access` target (the access log
/// has its own file; `RUST_LOG=info` still shows it here).
pub(crate) fn default_filter(level: &str) -> String {
    format!("{level},access=warn")
}

/// Installs the process's logger. `file`: `--error-logfile` (else stderr).
pub(crate) fn install(role: String, default_filter: &str, file: Option<Arc<LogFile>>) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    builder.format(move |out, record| {
        writeln!(
            out,
            "[{} {:5} {}] [{role}] {}",
            out.timestamp_millis(),
            record.level(),
            record.target(),
            record.args()
        )
    });
    if let Some(file) = file {
        builder.target(env_logger::Target::Pipe(Box::new(FileWriter(file))));
    }
    let logger = builder.build();
    let max_level = logger.filter();
    // Repeated warnings and errors (an app failing on every request) are summarised.
    if log::set_boxed_logger(Box::new(RepeatLimit::new(logger))).is_ok() {
        log::set_max_level(max_level);
    }
}

/// `env_logger` writes each record with one `write_all`: one `write` to the file.
struct FileWriter(Arc<LogFile>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
