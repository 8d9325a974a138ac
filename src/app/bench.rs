//! The ABI's own cost, without sockets: environ build, app call, body iteration and response
//! encoding over an in-memory transport, one request at a time, reusing every buffer as a
//! serving thread does. Driven by `benches/abi.rs` (time and allocations per request) and
//! `tests/abi_cost.rs` (no server-side heap allocation on the hello path); neither is part of
//! the production binary.

use app_abi::raw::WS_REQ_MULTITHREAD;

use super::call::{self, MemoryTransport, RequestFacts, Scratch};
use super::environ::Environ;
use super::loader::{LoadError, LoadedApp};
use super::target::AppTarget;

/// The request wrk sends, as the server would see it.
const HEADERS: [(&[u8], &[u8]); 3] = [
    (b"Host", b"127.0.0.1:8888"),
    (b"User-Agent", b"wrk"),
    (b"Accept", b"*/*"),
];

/// What a keep-alive `GET /` from wrk looks like to the encoder.
const FACTS: RequestFacts = RequestFacts {
    is_head: false,
    version_minor: 1,
    keep_alive: true,
    flags: WS_REQ_MULTITHREAD,
    defer_flush: false,
    frames_heads: false,
};

/// One loaded app and the per-thread buffers a serving thread would reuse for it.
pub struct AbiBench {
    app: LoadedApp,
    environ: Environ,
    scratch: Scratch,
    transport: MemoryTransport,
}

/// Why [`AbiBench::load`] failed: the loader's own message.
#[derive(Debug)]
pub struct BenchLoadError(LoadError);

impl std::fmt::Display for BenchLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BenchLoadError {}

impl AbiBench {
    /// Load `LIB:SYMBOL` as a worker would (init included).
    pub fn load(spec: &str) -> Result<AbiBench, BenchLoadError> {
        let target = AppTarget::parse(spec).map_err(|e| BenchLoadError(e.into()))?;
        Ok(AbiBench {
            app: LoadedApp::load(&target, &[]).map_err(BenchLoadError)?,
            environ: Environ::default(),
            scratch: Scratch::default(),
            transport: MemoryTransport::default(),
        })
    }

    /// The app's name and version, as its descriptor says.
    pub fn app(&self) -> (&str, &str) {
        (self.app.name(), self.app.version())
    }

    /// Serve one `GET /` through the ABI; returns the response status.
    pub fn request(&mut self) -> u16 {
        let parts = call::parts_for(&self.app, &self.environ);
        let pairs =
            self.environ
                .build_synthetic_get(&HEADERS, WS_REQ_MULTITHREAD, self.app.wants_parts());
        call::run(
            &self.app,
            (pairs, parts),
            FACTS,
            &mut self.transport,
            &mut self.scratch,
        )
        .status
    }

    /// Run the app's shutdown.
    pub fn shutdown(self) {
        self.app.shutdown();
    }
}
