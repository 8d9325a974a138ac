//! The ABI's own cost on the server side, in process: the hello path (environ build, call, body
//! iteration, response encoding) makes no heap allocation once its buffers have grown (issue 5:
//! "no per-request heap allocation on the hello path"). This test target installs its own
//! counting allocator; the production binary has none (tests/production_binary.rs).

mod common;

use std::time::{Duration, Instant};

use webserver::AbiBench;

webserver::install_counting_allocator!();

/// Requests that let every reused buffer grow to its steady size.
const WARM_UP: u32 = 1_000;
/// Requests measured after that, at least.
const MEASURED: u32 = 20_000;
/// And for at least this long: the Date header changes once a second, so the measurement must
/// include that refresh for a per-second allocation to show.
const MEASURED_FOR: Duration = Duration::from_millis(1_100);

#[test]
fn the_hello_path_makes_no_server_side_heap_allocation() {
    // The counter must see this thread's allocations, or a zero below would prove nothing.
    let before = counting_allocator::allocations();
    let probe = std::hint::black_box(Box::new(0u64));
    assert!(
        counting_allocator::allocations() > before,
        "the counter counts nothing"
    );
    drop(probe);

    let spec = format!("{}:app", common::sample_app("hello").display());
    let mut bench = AbiBench::load(&spec).unwrap_or_else(|e| panic!("load {spec}: {e}"));
    for _ in 0..WARM_UP {
        assert_eq!(bench.request(), 200);
    }
    let before = counting_allocator::allocations();
    let started = Instant::now();
    let (mut requests, mut statuses_ok) = (0u32, 0u32);
    while requests < MEASURED || started.elapsed() < MEASURED_FOR {
        statuses_ok += u32::from(bench.request() == 200);
        requests += 1;
    }
    let allocations = counting_allocator::allocations() - before;
    bench.shutdown();
    assert_eq!(statuses_ok, requests, "every request must be answered 200");
    assert_eq!(
        allocations, 0,
        "{allocations} server-side heap allocations in {requests} requests"
    );
}
