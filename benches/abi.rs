//! The ABI's own cost: environ build, app call, body iteration and response encoding, without
//! sockets, in time and server-side heap allocations per request.
//!
//!     cargo bench --bench abi [-- LIB:SYMBOL [REQUESTS]]
//!
//! LIB:SYMBOL defaults to the hello sample app beside this benchmark's build (`cargo build
//! --release --workspace` first). The first line is for bench/run.sh: `environ+call+encode
//! ns_per_request=X allocs_per_request=Y`; the rest is the same for people.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use webserver::AbiBench;

webserver::install_counting_allocator!();

/// Requests that let every reused buffer grow to its steady size before measuring.
const WARM_UP: u64 = 1_000;
/// Requests measured when the command line does not say.
const DEFAULT_REQUESTS: u64 = 1_000_000;

fn main() -> ExitCode {
    // cargo passes `--bench` (and libtest-style flags); the benchmark's own arguments are the
    // positional ones.
    let mut positional = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let spec = positional.next().unwrap_or_else(default_app);
    let requests = match positional.next().map(|n| n.parse::<u64>()) {
        None => DEFAULT_REQUESTS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("abi bench: error: REQUESTS must be a positive whole number");
            return ExitCode::FAILURE;
        }
    };
    let mut bench = match AbiBench::load(&spec) {
        Ok(bench) => bench,
        Err(e) => {
            eprintln!("abi bench: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for _ in 0..WARM_UP {
        bench.request();
    }
    let allocations_before = counting_allocator::allocations();
    let started = Instant::now();
    let mut status = 0;
    for _ in 0..requests {
        status = bench.request();
    }
    let elapsed = started.elapsed();
    let allocations = counting_allocator::allocations() - allocations_before;
    let per_request_ns = elapsed.as_nanos() as f64 / requests as f64;
    let allocations_per_request = allocations as f64 / requests as f64;
    println!(
        "environ+call+encode ns_per_request={per_request_ns:.1} allocs_per_request={allocations_per_request:.3}"
    );
    let (name, version) = bench.app();
    println!("app:                      {name} {version}");
    println!("requests:                 {requests} (status {status})");
    println!("time per request:         {per_request_ns:.0} ns");
    println!("server heap allocations:  {allocations_per_request:.3} per request");
    bench.shutdown();
    ExitCode::SUCCESS
}

/// The hello sample app in the profile directory this benchmark was built in
/// (`target/release/deps/abi-HASH` → `target/release/libhello.so`).
fn default_app() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map_or_else(PathBuf::new, PathBuf::from);
    format!("{}:app", profile_dir.join("libhello.so").display())
}
