//! `request.rs` (`assemble`) forgets the URI and header map that `http::Request::new` makes,
//! replaced by the request's own, rather than dropping them: sound and leak-free only as long as
//! they own no memory. `Cargo.toml` asks for `http = "1"`, so an app's lock file may pick another
//! 1.x than this workspace's: this test says so if that version's defaults allocate (a forgotten
//! allocation on every request).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Const-initialised, no destructor: reading it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting the calling thread's allocations (the harness's own threads
/// do not disturb the count).
struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: ptr/layout come from this allocator; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_defaults_a_new_request_is_made_with_own_no_memory() {
    let uri = http::Uri::from_static("/hello?x=1");
    let mut map = http::HeaderMap::with_capacity(4);
    map.insert("x-a", http::HeaderValue::from_static("1"));
    let before = allocations();
    let mut request = http::Request::new(());
    let old_uri = std::mem::replace(request.uri_mut(), uri);
    let old_map = std::mem::replace(request.headers_mut(), map);
    assert_eq!(
        allocations(),
        before,
        "http::Request::new allocated: forgetting its default URI or header map would leak"
    );
    assert_eq!(old_uri, "/");
    assert!(old_map.is_empty());
    std::mem::forget(old_uri);
    std::mem::forget(old_map);
    assert_eq!(request.uri(), "/hello?x=1");
    assert_eq!(request.headers()["x-a"], "1");
}
