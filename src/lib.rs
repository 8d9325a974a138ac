//! `webserver`: an HTTP/1.1 server for apps in shared libraries, as a library. The binary
//! (`src/main.rs`) parses the command line ([`Cli::from_all_sources`]: flags, `WEBSERVER_*`
//! variables, `--config` file), calls [`run`] and turns its error into one line and
//! an exit status; benches, tests and the fuzz targets use the hidden items below.
//!
//! Layers: `http` is protocol over bytes, `server` sockets and threads, `app` the ABI (the only
//! place with dlopen), `supervisor` processes, `sys` the libc calls, `cli` and `config` the
//! command line. Each imports only the layers below it (`tests/layers.rs` has the order and
//! checks it); the options each layer runs with are its own clap group, built by `cli`/`config`.

mod alloc_count;
mod app;
mod cli;
mod config;
mod elf;
mod error;
pub mod exit;
mod http;
mod listen;
mod log_limit;
mod logging;
mod privilege;
mod scaffold;
mod server;
mod static_files;
mod stats;
mod supervisor;
mod sys;
mod tls;
mod values;
mod write_parts;

use std::io::Write;

pub use cli::Cli;
pub use config::{CommandLineError, ConfigFileError};
pub use error::Error;

use cli::Command;

/// The in-memory ABI benchmark (`benches/abi.rs`, `tests/abi_cost.rs`).
#[doc(hidden)]
pub use app::bench::AbiBench;

/// What the fuzz targets (`fuzz/`, built with `cfg(fuzzing)` by cargo-fuzz) drive: the
/// split-consistency checks the property tests run too.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Request head parser (default and small limits) fed whole and in pieces, then the body it
    /// frames, then the chunked decoder on the same bytes. The first 8 bytes seed the split
    /// points. Panics on any disagreement.
    pub fn request_head(data: &[u8]) {
        crate::http::selfcheck::check_all(data);
    }

    /// Chunked decoder fed whole and in pieces with small output buffers. The first 8 bytes
    /// seed the split points. Panics on any disagreement.
    pub fn chunked_body(data: &[u8]) {
        crate::http::selfcheck::check_chunked(data);
    }
}

/// Run what the command line asks for: serve (the master), `--print-config`, `check`, or one of
/// the hidden process roles the master and `check` start (`__worker`, `__probe`).
pub fn run(cli: Cli) -> Result<(), Error> {
    let log_args = match &cli.command {
        None => Some(&cli.serve.tuning.logging),
        Some(Command::Worker(args)) => Some(&args.tuning.logging),
        Some(_) => None,
    };
    if let (None, Some(mask)) = (&cli.command, cli.serve.listen.umask) {
        // Before the first file the master creates (its log files, then --pid FILE, its status
        // and the unix sockets), so that --umask covers every one; the workers inherit it.
        sys::process::set_umask(mask);
    }
    let logging = logging::init(role(&cli), log_args);
    if let Err(e) = logging {
        match &cli.command {
            None => return Err(e.into()),
            // A worker logs to stderr instead; the master, which opened the file, can too.
            _ => log::error!("{e}; logging to stderr"),
        }
    }
    match &cli.command {
        None => match &cli.effective {
            Some(effective) if cli.serve.print_config => print_stdout(effective.text().as_bytes()),
            effective => Ok(supervisor::master::run(
                &cli.serve,
                effective.as_ref(),
                config::reparse,
            )?),
        },
        Some(Command::Check {
            app,
            app_args,
            probe,
        }) => Ok(supervisor::probe::check(app, app_args, probe)?),
        Some(Command::Probe {
            app,
            app_args,
            probe,
        }) => Ok(supervisor::probe::probe(app, app_args, probe)?),
        Some(Command::New { path, lang }) => {
            let name = scaffold::new_app(path, *lang)?;
            print!("{}", scaffold::next_steps(path, &name, *lang));
            Ok(())
        }
        Some(Command::Header) => print_stdout(scaffold::C_HEADER.as_bytes()),
        Some(Command::Completions { shell }) => print_stdout(&cli::manual::completions(*shell)),
        Some(Command::Man) => print_stdout(&cli::manual::man_page()),
        Some(Command::Worker(args)) => match supervisor::worker::run(args) {
            0 => Ok(()),
            status => Err(Error::worker(status)),
        },
    }
}

/// Writes `bytes` to stdout (`webserver header > FILE`). A reader that went away (`| head`)
/// wanted no more: that is not an error worth a line.
fn print_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Which process this is, for its log lines.
fn role(cli: &Cli) -> String {
    match &cli.command {
        None => "master".to_owned(),
        Some(Command::Worker(args)) => {
            format!("worker {} gen {}", std::process::id(), args.generation)
        }
        Some(Command::Check { .. } | Command::Probe { .. }) => "check".to_owned(),
        Some(
            Command::New { .. } | Command::Header | Command::Completions { .. } | Command::Man,
        ) => "author".to_owned(),
    }
}
