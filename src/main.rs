//! `webserver LIB:SYMBOL` — an HTTP/1.1 server for apps in shared libraries.

mod app;
mod cli;
mod http;
mod server;

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use app::loader::{LoadError, LoadedApp};
use app::target::AppTarget;
use cli::Cli;
use server::Shutdown;

/// Everything that stops the server, one variant per layer; `main` turns each into one line.
#[derive(Debug)]
enum Error {
    Load(LoadError),
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    Signals(std::io::Error),
    Serve(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Load(e) => write!(f, "{e}"),
            Error::Bind { addr, source } => write!(
                f,
                "cannot listen on {addr}: {source} (is another server using it? pick one with --bind)"
            ),
            Error::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            Error::Serve(e) => write!(f, "the server stopped: {e}"),
        }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        Error::Load(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,access=warn"))
        .format_timestamp_millis()
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webserver: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Error> {
    let target = AppTarget::parse(&cli.app).map_err(LoadError::from)?;
    let app = Arc::new(LoadedApp::load(&target)?);
    log::info!(
        "loaded {} {} from {} (symbol {})",
        app.name,
        app.version,
        app.path.display(),
        target.symbol
    );
    let listener = server::bind(cli.bind).map_err(|source| Error::Bind {
        addr: cli.bind,
        source,
    })?;
    let local = listener.local_addr().map_err(Error::Serve)?;

    let shutdown = Arc::new(Shutdown::default());
    watch_signals(&shutdown).map_err(Error::Signals)?;

    let config = cli.server_config();
    println!("Serving HTTP on {local} ...");
    let _ = std::io::stdout().flush();
    log::info!(
        "{} app threads; keep-alive {:?}",
        config.threads,
        config.keep_alive
    );

    let served = server::serve(listener, Arc::clone(&app), config, shutdown);
    app.shutdown();
    log::info!("stopped");
    served.map_err(Error::Serve)
}

/// SIGINT/SIGTERM: stop gracefully; a second one exits at once.
fn watch_signals(shutdown: &Arc<Shutdown>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let shutdown = Arc::clone(shutdown);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    log::warn!("second signal {signal}: exiting now");
                    std::process::exit(1);
                }
                log::info!("signal {signal}: graceful stop");
                shutdown.trigger();
            }
        })?;
    Ok(())
}
