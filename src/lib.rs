//! `webserver`: an HTTP/1.1 server for apps in shared libraries, as a library. The binary
//! (`src/main.rs`) parses the command line, calls [`run`] and turns its error into one line and
//! an exit status; benches, tests and the fuzz targets use the hidden items below.
//!
//! Layers: `http` is protocol over bytes, `server` sockets and threads, `app` the ABI (the only
//! place with dlopen), `supervisor` processes, `sys` the libc calls.

mod alloc_count;
mod app;
mod cli;
mod elf;
mod error;
pub mod exit;
mod http;
mod listen;
mod log_limit;
mod scaffold;
mod server;
mod stats;
mod supervisor;
mod sys;
mod tls;

use std::io::Write;

pub use cli::Cli;
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

/// Run what the command line asks for: serve (the master), `check`, or one of the hidden
/// process roles the master and `check` start (`__worker`, `__probe`).
pub fn run(cli: Cli) -> Result<(), Error> {
    init_logging(role(&cli));
    match &cli.command {
        None => Ok(supervisor::master::run(&cli.serve)?),
        Some(Command::Check {
            app,
            app_args,
            probe,
        }) => Ok(supervisor::probe::check(app, app_args, probe)?),
        Some(Command::Probe {
            app,
            app_args,
            probe,
        }) => supervisor::probe::probe(app, app_args, probe),
        Some(Command::New { name, lang }) => {
            let dir = scaffold::new_app(std::path::Path::new("."), name, *lang)?;
            print!("{}", scaffold::next_steps(&dir, name, *lang));
            Ok(())
        }
        Some(Command::Header) => print_stdout(scaffold::C_HEADER.as_bytes()),
        Some(Command::Completions { shell }) => print_stdout(&scaffold::completions(*shell)),
        Some(Command::Man) => print_stdout(&scaffold::man_page()),
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

/// `RUST_LOG` decides what is shown (default: info, without the access log); each line says
/// which process wrote it, since master and workers share stderr.
fn init_logging(role: String) {
    let logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,access=warn"),
    )
    .format(move |out, record| {
        writeln!(
            out,
            "[{} {:5} {}] [{role}] {}",
            out.timestamp_millis(),
            record.level(),
            record.target(),
            record.args()
        )
    })
    .build();
    let max_level = logger.filter();
    // Repeated warnings and errors (an app failing on every request) are summarised.
    if log::set_boxed_logger(Box::new(log_limit::RepeatLimit::new(logger))).is_ok() {
        log::set_max_level(max_level);
    }
}
