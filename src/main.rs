//! `webserver LIB:SYMBOL` — an HTTP/1.1 server for apps in shared libraries. The server is the
//! library (`src/lib.rs`); this file parses the command line, runs it, and is the one place that
//! prints a final error line and chooses the exit status.

use std::process::ExitCode;

use clap::Parser;

use webserver::{exit, Cli};

fn main() -> ExitCode {
    match webserver::run(Cli::parse()) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(err) => {
            if !err.already_reported() {
                eprintln!("webserver: error: {err}");
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}
