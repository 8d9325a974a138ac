//! `webserver LIB:SYMBOL` — an HTTP/1.1 server for apps in shared libraries. The server is the
//! library (`src/lib.rs`); this file parses the command line, runs it, and is the one place that
//! prints a final error line and chooses the exit status.

use std::io::Write;
use std::process::ExitCode;

use webserver::{exit, Cli, CommandLineError};

fn main() -> ExitCode {
    let cli = match Cli::from_all_sources() {
        Ok(cli) => cli,
        Err(CommandLineError::Usage(e)) => {
            // clap's own output: the usage error (exit 2), or --help/--version (exit 0).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
        Err(CommandLineError::Config(e)) => {
            error_line(&e);
            return ExitCode::from(exit::USAGE);
        }
    };
    match webserver::run(cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(err) => {
            if !err.already_reported() {
                error_line(&err);
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Writes `webserver: error: WHY` to stderr in one `write`. `eprintln!` writes the prefix, the
/// message and the newline separately, and stderr is often a pipe shared with other processes
/// (the workers, or the old master's during a binary upgrade, write their log lines to it): a
/// line written between those pieces split the error line in two. A pipe write of up to
/// `PIPE_BUF` (4 KiB) bytes is atomic, so a line that fits in one reaches a reader whole.
fn error_line(why: &dyn std::fmt::Display) {
    let line = format!("webserver: error: {why}\n");
    // Nothing is left to tell a failure to write the error line to.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
