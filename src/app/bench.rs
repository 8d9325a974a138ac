//! `webserver __bench-abi LIB:SYMBOL [N]`: the cost of the ABI itself — environ build, app call,
//! body iteration and response encoding — without sockets, per request, with the server-side
//! heap allocations counted.

use std::time::Instant;

use app_abi::raw::WS_REQ_MULTITHREAD;

use super::call::{self, MemoryTransport, RequestFacts, Scratch};
use super::environ::Environ;
use super::loader::LoadedApp;
use super::target::AppTarget;
use crate::alloc_count;

/// The request wrk sends, as the server would see it.
const HEADERS: [(&[u8], &[u8]); 3] = [
    (b"Host", b"127.0.0.1:8888"),
    (b"User-Agent", b"wrk"),
    (b"Accept", b"*/*"),
];

pub(crate) fn run(spec: &str, iterations: u64) -> i32 {
    let app = match AppTarget::parse(spec)
        .map_err(Into::into)
        .and_then(|target| LoadedApp::load(&target))
    {
        Ok(app) => app,
        Err(e) => {
            eprintln!("webserver: error: {e}");
            return 1;
        }
    };
    let mut environ = Environ::default();
    let mut scratch = Scratch::default();
    let mut transport = MemoryTransport::default();
    let facts = RequestFacts {
        is_head: false,
        version_minor: 1,
        keep_alive: true,
        flags: WS_REQ_MULTITHREAD,
        defer_flush: false,
    };
    let mut one = |environ: &mut Environ, scratch: &mut Scratch| {
        let pairs = environ.build_synthetic_get(&HEADERS, WS_REQ_MULTITHREAD);
        call::run(&app, pairs, facts, &mut transport, scratch)
    };
    // Warm up: buffers grow to their steady size.
    for _ in 0..1000 {
        one(&mut environ, &mut scratch);
    }
    let allocations_before = alloc_count::allocations();
    let started = Instant::now();
    let mut status = 0;
    for _ in 0..iterations {
        status = one(&mut environ, &mut scratch).status;
    }
    let elapsed = started.elapsed();
    let allocations = alloc_count::allocations() - allocations_before;
    let per_request_ns = elapsed.as_nanos() as f64 / iterations as f64;
    // One machine-readable line for bench/run.sh, then the same for people.
    println!(
        "environ+call+encode ns_per_request={per_request_ns:.1} allocs_per_request={:.3}",
        allocations as f64 / iterations as f64
    );
    println!("app:                      {} {}", app.name(), app.version());
    println!("requests:                 {iterations} (status {status})");
    println!("time per request:         {per_request_ns:.0} ns");
    println!(
        "server heap allocations:  {:.3} per request",
        allocations as f64 / iterations as f64
    );
    app.shutdown();
    0
}
