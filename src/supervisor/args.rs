//! The serve options the supervisor runs with: a master's ([`ServeArgs`]), the part each worker
//! applies ([`Tuning`], which builds the server's `Config` and travels on a worker's command line),
//! a worker's own ([`WorkerArgs`]) and `check`'s ([`ProbeArgs`]). clap parses them as part of
//! `crate::cli::Cli` (with the environment and the `--config` file, `crate::config`); the layers
//! below take their own groups from them (`ListenArgs`, `TlsArgs`, `StatsArgs`, ...).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

mod proxy;

use super::probe::{Expect, ProbeTarget};
use crate::app::target::AppTarget;
use crate::http::scan::Limits;
use crate::listen::args::ListenArgs;
use crate::listen::ListenerOptions;
use crate::logging::LogArgs;
use crate::server::Config;
use crate::values::{self, SecondsOrOff};

/// What `check` asks the app, and which answers pass.
#[derive(Args, Debug, Clone)]
pub(crate) struct ProbeArgs {
    /// The path (and optional ?query) the check requests, e.g. /healthz.
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub(crate) probe: ProbeTarget,

    /// Statuses that pass, comma-separated codes or classes: 200, 200,204, 2xx (default: any
    /// status below 500).
    #[arg(long, value_name = "STATUSES")]
    pub(crate) expect: Option<Expect>,

    /// The probe runs in the worker sandbox, so what the app would be denied shows.
    #[command(flatten)]
    pub(crate) sandbox: crate::privilege::sandbox::SandboxArgs,
}

/// Options of a serving master. Every option also reads `WEBSERVER_<OPTION>` and the `--config`
/// file (see `crate::config`): give each new one `env` and a `help_heading` (`--help` lists the
/// headings in the order they first appear here).
#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// The app to serve, as LIB:SYMBOL (split at the last ':'); in a --config file: app.
    // Checked here: with APP_ARGS after it, a stray word would otherwise be taken for the app.
    #[arg(
        value_name = "LIB:SYMBOL",
        required_unless_present = "print_config",
        value_parser = lib_symbol
    )]
    pub(crate) app: Option<String>,

    /// The app's own arguments: every word after LIB:SYMBOL reaches the app's init (and each
    /// worker's, in hot swaps too); in a --config file: app-args, with app.
    #[arg(
        value_name = "APP_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) app_args: Vec<OsString>,

    /// Read options from this TOML file: keys are the long option names (`workers = 4`,
    /// `bind = "127.0.0.1:8000"`, `app = "hello:app"`). Flags and WEBSERVER_* variables win
    /// over it.
    #[arg(long, value_name = "FILE", env = "WEBSERVER_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Print every option's effective value and where it came from (flag, env, file or
    /// default) as a TOML config file, and exit; LIB:SYMBOL is not required.
    #[arg(long)]
    pub(crate) print_config: bool,

    #[command(flatten)]
    pub(crate) listen: ListenArgs,

    /// Worker processes, 1 to 1024; the master only supervises and never loads app code.
    #[arg(
        short,
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = values::workers,
        env = "WEBSERVER_WORKERS",
        help_heading = "Processes"
    )]
    pub(crate) workers: usize,

    /// Write the master's pid to FILE (and the swap status to FILE.status); FILE stays locked
    /// (flock) while the master runs, so a second master with the same FILE is refused.
    #[arg(
        long,
        value_name = "FILE",
        env = "WEBSERVER_PID",
        help_heading = "Processes"
    )]
    pub(crate) pid: Option<PathBuf>,

    /// Watch LIB's file and hot-swap when it changed and has been stable for a moment.
    #[arg(
        long,
        env = "WEBSERVER_RELOAD",
        value_parser = BoolishValueParser::new(),
        help_heading = "Reload"
    )]
    pub(crate) reload: bool,

    /// With --reload, also hot-swap when a file under PATH changes (repeatable, or several
    /// separated by ':'; directories are watched recursively, without hidden entries and
    /// __pycache__): e.g. a Python app's source.
    #[arg(
        long = "reload-path",
        value_name = "PATH",
        requires = "reload",
        value_delimiter = ':',
        env = "WEBSERVER_RELOAD_PATH",
        help_heading = "Reload"
    )]
    pub(crate) reload_paths: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) tuning: Tuning,

    #[command(flatten)]
    pub(crate) tls: crate::tls::TlsArgs,

    #[command(flatten)]
    pub(crate) stats: crate::stats::StatsArgs,

    #[command(flatten)]
    pub(crate) privilege: crate::privilege::PrivilegeArgs,

    #[command(flatten)]
    pub(crate) canary: super::canary::CanaryArgs,

    #[command(flatten)]
    pub(crate) upgrade: super::upgrade::UpgradeArgs,
}

/// Options that each worker applies (the master passes them on).
#[derive(Args, Debug, Clone)]
pub(crate) struct Tuning {
    /// Serving threads per worker, 1 to 4096 (default: one per CPU this process may run on;
    /// raise it for apps that block, e.g. on a database, since a blocking call holds its thread).
    #[arg(
        long,
        value_name = "N",
        value_parser = values::threads,
        env = "WEBSERVER_THREADS",
        help_heading = "Processes"
    )]
    pub(crate) threads: Option<usize>,

    /// Seconds an idle keep-alive connection is kept open, 1 to 86400.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5,
        value_parser = values::positive_seconds,
        env = "WEBSERVER_KEEP_ALIVE",
        help_heading = "Timeouts"
    )]
    pub(crate) keep_alive: u64,

    /// Seconds a client may take to send a request head (answered with 408 after that), 1 to
    /// 86400.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = values::positive_seconds,
        env = "WEBSERVER_HEADER_TIMEOUT",
        help_heading = "Timeouts"
    )]
    pub(crate) header_timeout: u64,

    /// Seconds one request may run in the app (waits for the client do not count), 1 to 86400,
    /// or `off`; a worker stuck longer, or silent (frozen) that long, is killed and replaced
    /// (harakiri). `off` turns both checks off.
    #[arg(
        long,
        value_name = "SECS|off",
        default_value = "30",
        value_parser = values::seconds_or_off,
        env = "WEBSERVER_TIMEOUT",
        help_heading = "Timeouts"
    )]
    pub(crate) timeout: SecondsOrOff,

    /// Seconds one read of the request body or one write of the response may wait for the
    /// client, 1 to 86400.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = values::positive_seconds,
        env = "WEBSERVER_IO_TIMEOUT",
        help_heading = "Timeouts"
    )]
    pub(crate) io_timeout: u64,

    /// Seconds one request may wait for its body in total, however slowly it trickles in
    /// (answered with 408 after that), 1 to 86400.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = values::positive_seconds,
        env = "WEBSERVER_BODY_TIMEOUT",
        help_heading = "Timeouts"
    )]
    pub(crate) body_timeout: u64,

    /// Seconds in-flight requests may take to finish on stop or swap, 0 (stop at once) to 86400.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = values::seconds_or_zero,
        env = "WEBSERVER_GRACEFUL_TIMEOUT",
        help_heading = "Timeouts"
    )]
    pub(crate) graceful_timeout: u64,

    /// Largest request body accepted, in bytes (larger: 413); 0 refuses every request body.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 16 * 1024 * 1024,
        value_parser = values::bytes,
        env = "WEBSERVER_MAX_BODY",
        help_heading = "Limits"
    )]
    pub(crate) max_body: u64,

    /// Largest WebSocket message (and frame) a client may send or an app may send, in bytes,
    /// 1 KiB to 1 GiB; a larger one from the client closes the connection with 1009.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 16 * 1024 * 1024,
        value_parser = values::ws_message_size,
        env = "WEBSERVER_WS_MAX_MESSAGE",
        help_heading = "Limits"
    )]
    pub(crate) ws_max_message: u64,

    /// Seconds a WebSocket may be quiet before the server pings it; one more without an answer
    /// closes it (0: never ping), up to 86400.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 20,
        value_parser = values::seconds_or_zero,
        env = "WEBSERVER_WS_PING_INTERVAL",
        help_heading = "Timeouts"
    )]
    pub(crate) ws_ping_interval: u64,

    /// Serve HTTP/2: cleartext with prior knowledge (h2c, e.g. `curl --http2-prior-knowledge`,
    /// a proxy's gRPC upstream) on plain and unix listeners, and `h2` offered by ALPN before
    /// `http/1.1` on TLS listeners. Off: the preface gets 505 and ALPN offers HTTP/1.1 only.
    #[arg(
        long,
        value_name = "on|off",
        default_value = "off",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        env = "WEBSERVER_HTTP2",
        help_heading = "Listeners"
    )]
    pub(crate) http2: bool,

    /// HTTP/2 streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS), and
    /// queued or running in the app: a stream the client reset counts until the app is done
    /// with it (rapid reset).
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::server::Http2Limits::DEFAULT.max_streams,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        env = "WEBSERVER_HTTP2_MAX_STREAMS",
        help_heading = "Limits"
    )]
    pub(crate) http2_max_streams: u32,

    /// The largest HTTP/2 header list a client may send, decoded (SETTINGS_MAX_HEADER_LIST_SIZE):
    /// past it 431, far past it GOAWAY (HPACK bombs, CONTINUATION floods).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = crate::server::Http2Limits::DEFAULT.max_header_list,
        value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024),
        env = "WEBSERVER_HTTP2_MAX_HEADER_LIST",
        help_heading = "Limits"
    )]
    pub(crate) http2_max_header_list: u32,

    /// SETTINGS and PING frames an HTTP/2 client may send in one second; past it the
    /// connection is cut off with GOAWAY(ENHANCE_YOUR_CALM).
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::server::Http2Limits::DEFAULT.max_control_frames,
        value_parser = clap::value_parser!(u32).range(1..),
        env = "WEBSERVER_HTTP2_MAX_CONTROL_FRAMES",
        help_heading = "Limits"
    )]
    pub(crate) http2_max_control_frames: u32,

    /// Recycle a worker after this many requests, up to 10^12 (0: never).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        value_parser = values::request_count,
        env = "WEBSERVER_MAX_REQUESTS",
        help_heading = "Processes"
    )]
    pub(crate) max_requests: u64,

    /// Add up to this many requests, at random per worker, to --max-requests (so workers do not
    /// all recycle at once), up to 10^12.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        value_parser = values::request_count,
        env = "WEBSERVER_MAX_REQUESTS_JITTER",
        help_heading = "Processes"
    )]
    pub(crate) max_requests_jitter: u64,

    #[command(flatten)]
    pub(crate) logging: LogArgs,

    #[command(flatten)]
    pub(crate) proxy: proxy::ProxyArgs,

    #[command(flatten)]
    pub(crate) statics: crate::static_files::StaticArgs,
}

/// A worker's view: where its listeners and ready pipe are, and what to load.
#[derive(Args, Debug, Clone)]
pub(crate) struct WorkerArgs {
    /// One listener's options (`plain`, `tls`, `proxy`, `tls,proxy`), repeated in the order of
    /// the listening sockets at `FIRST_LISTEN_FD`, `FIRST_LISTEN_FD + 1`, ...
    #[arg(long = "listener", value_name = "OPTIONS")]
    pub(crate) listeners: Vec<ListenerOptions>,
    /// The library to load: the descriptor the master handed down (`/proc/self/fd/N`).
    #[arg(long)]
    pub(crate) lib: PathBuf,
    #[arg(long)]
    pub(crate) symbol: String,
    /// One app argument (repeated, in order).
    #[arg(long = "app-arg", value_name = "WORD", allow_hyphen_values = true)]
    pub(crate) app_args: Vec<OsString>,
    #[arg(long)]
    pub(crate) generation: u64,
    /// The hash of the generation's library (the access log's `%(library)s`).
    #[arg(long, default_value = "")]
    pub(crate) library_hash: String,
    /// Other workers serve the same app (`webserver.multiprocess`).
    #[arg(long)]
    pub(crate) multiprocess: bool,
    /// Serve TLS with the certificate and key the master handed down (`crate::tls::TLS_FD`).
    #[arg(long)]
    pub(crate) tls: bool,
    /// The process title `ps` shows (app, worker number, generation), made by the master.
    #[arg(long, default_value = "")]
    pub(crate) title: String,
    #[command(flatten)]
    pub(crate) tuning: Tuning,
    #[command(flatten)]
    pub(crate) stats: crate::stats::WorkerStatsArgs,
    #[command(flatten)]
    pub(crate) privilege: crate::privilege::WorkerPrivilegeArgs,
}

/// A `LIB:SYMBOL` argument, refused as a usage error when it has no `:` between two parts.
fn lib_symbol(arg: &str) -> Result<String, String> {
    AppTarget::parse(arg)
        .map(|_| arg.to_owned())
        .map_err(|e| e.to_string())
}

impl Tuning {
    pub(crate) fn server_config(&self, multiprocess: bool) -> Config {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config {
            // One per CPU (available_parallelism follows the affinity mask): more runnable
            // threads than CPUs cost fast apps a scheduler time slice of tail latency (measured:
            // p99 0.35 ms with 1 thread on 1 CPU, 3.6 ms with 2, 13 ms with 4). Apps that block
            // need more, and say so with --threads.
            threads: self.threads.unwrap_or(cpus),
            keep_alive: Duration::from_secs(self.keep_alive),
            header_timeout: Duration::from_secs(self.header_timeout),
            io_timeout: Duration::from_secs(self.io_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            request_timeout: self.timeout.duration(),
            graceful_timeout: Duration::from_secs(self.graceful_timeout),
            max_body: self.max_body,
            max_requests: (self.max_requests > 0).then_some(self.max_requests),
            limits: Limits::default(),
            multiprocess,
            proxies: self.proxy.proxies(),
            // The worker adds it from the copy the master handed down.
            tls: None,
            // The worker opens the directories.
            statics: None,
            websocket: crate::server::ws::WsConfig {
                max_message: usize::try_from(self.ws_max_message).unwrap_or(usize::MAX),
                ping_interval: (self.ws_ping_interval > 0)
                    .then(|| Duration::from_secs(self.ws_ping_interval)),
            },
            http2: self.http2,
            tls_h2: None,
            http2_limits: crate::server::Http2Limits {
                max_streams: self.http2_max_streams,
                max_header_list: self.http2_max_header_list,
                max_control_frames: self.http2_max_control_frames,
            },
        }
    }

    /// The same options as command-line arguments, for a worker's command line.
    pub(crate) fn to_args(&self, max_requests: u64) -> Vec<String> {
        let mut args = vec![
            format!("--keep-alive={}", self.keep_alive),
            format!("--header-timeout={}", self.header_timeout),
            format!("--timeout={}", self.timeout),
            format!("--io-timeout={}", self.io_timeout),
            format!("--body-timeout={}", self.body_timeout),
            format!("--graceful-timeout={}", self.graceful_timeout),
            format!("--max-body={}", self.max_body),
            format!("--ws-max-message={}", self.ws_max_message),
            format!("--ws-ping-interval={}", self.ws_ping_interval),
            format!("--http2={}", if self.http2 { "on" } else { "off" }),
            format!("--http2-max-streams={}", self.http2_max_streams),
            format!("--http2-max-header-list={}", self.http2_max_header_list),
            format!(
                "--http2-max-control-frames={}",
                self.http2_max_control_frames
            ),
            format!("--max-requests={max_requests}"),
        ];
        if let Some(threads) = self.threads {
            args.push(format!("--threads={threads}"));
        }
        args.extend(self.logging.to_args());
        args.extend(self.proxy.to_args());
        args.extend(self.statics.to_args());
        args
    }
}
