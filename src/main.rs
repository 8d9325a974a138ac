//! `webserver LIB:SYMBOL` — an HTTP/1.1 server for apps in shared libraries.

mod alloc_count;
mod app;
mod cli;
mod http;
mod log_limit;
mod server;
mod supervisor;
mod sys;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let role = match &cli.command {
        None => "master".to_owned(),
        Some(Command::Worker(args)) => {
            format!("worker {} gen {}", std::process::id(), args.generation)
        }
        Some(Command::Check { .. } | Command::Probe { .. } | Command::BenchAbi { .. }) => {
            "check".to_owned()
        }
    };
    init_logging(role);
    let status = match &cli.command {
        None => match supervisor::master::run(&cli.serve) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("webserver: error: {e}");
                1
            }
        },
        Some(Command::Check { app }) => supervisor::probe::check(app),
        Some(Command::Probe { app }) => supervisor::probe::probe(app),
        Some(Command::Worker(args)) => supervisor::worker::run(args),
        Some(Command::BenchAbi { app, iterations }) => app::bench::run(app, *iterations),
    };
    ExitCode::from(status.clamp(0, 255) as u8)
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
