//! `webserver LIB:SYMBOL` — an HTTP/1.1 server for apps in shared libraries. The server is the
//! library (`src/lib.rs`); this file parses the command line, runs it, and is the one place that
//! prints a final error line and chooses the exit status.

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
            eprintln!("webserver: error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match webserver::run(cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(err) => {
            if !err.already_reported() {
                eprintln!("webserver: error: {err}");
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}
