//! The command line: `webserver [OPTIONS] LIB:SYMBOL`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::http::request::Limits;
use crate::server::Config;

/// Serve a web app from a shared library: WSGI's idea (any app on any server) for native code.
///
/// LIB:SYMBOL names a library and the app descriptor it exports. LIB with a '/' or a '.so' suffix
/// is a path relative to the current directory; a bare NAME means libNAME.so in the current
/// directory, then beside this executable. Examples: hello:app, ./libpyramidish.so:app.
#[derive(Parser, Debug)]
#[command(name = "webserver", version, about, long_about)]
pub(crate) struct Cli {
    /// The app to serve, as LIB:SYMBOL (split at the last ':').
    #[arg(value_name = "LIB:SYMBOL")]
    pub(crate) app: String,

    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(
        short,
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8888"
    )]
    pub(crate) bind: SocketAddr,

    /// App threads (default: 4 per CPU this process may run on).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub(crate) keep_alive: u64,

    /// Seconds a client may take to send a request head (answered with 408 after that).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) header_timeout: u64,

    /// Seconds one read of the request body or one write of the response may wait for the client.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) timeout: u64,

    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) graceful_timeout: u64,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub(crate) max_body: u64,
}

impl Cli {
    pub(crate) fn server_config(&self) -> Config {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config {
            // Apps may block (databases, sleeps in a stream); a few threads per CPU keep one
            // blocking call from stalling the rest without oversubscribing the CPU for fast apps.
            threads: self.threads.unwrap_or(cpus * 4).max(1),
            keep_alive: Duration::from_secs(self.keep_alive),
            header_timeout: Duration::from_secs(self.header_timeout.max(1)),
            io_timeout: Duration::from_secs(self.timeout.max(1)),
            graceful_timeout: Duration::from_secs(self.graceful_timeout),
            max_body: self.max_body,
            limits: Limits::default(),
            multiprocess: false,
        }
    }
}
