//! A counting global allocator for the ABI benchmark and its test, as a macro: the library only
//! defines it, so the production binary (which never invokes it) has no trace of it, and every
//! allocation there goes straight to the system allocator. `benches/abi.rs` and
//! `tests/abi_cost.rs` invoke it to show that the hello path allocates nothing on the server side
//! (an app's cdylib has its own allocator front end, so its allocations are not counted).

/// Installs, in the crate that invokes it, a module `counting_allocator` whose
/// `CountingAllocator` is that crate's `#[global_allocator]`: the system allocator, counting
/// allocations and reallocations per thread, so the harness's own threads do not disturb a
/// measurement. `counting_allocator::allocations()` is the calling thread's count so far.
#[doc(hidden)]
#[macro_export]
macro_rules! install_counting_allocator {
    () => {
        mod counting_allocator {
            use std::alloc::{GlobalAlloc, Layout, System};
            use std::cell::Cell;

            thread_local! {
                // Const-initialised and without a destructor: reading it never allocates, so
                // the allocator may use it.
                static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
            }

            fn count() {
                // try_with: a thread being torn down still allocates; such calls go uncounted.
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            }

            /// Allocations (and reallocations) made by the calling thread so far.
            pub(crate) fn allocations() -> u64 {
                ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
            }

            /// The system allocator, counting.
            pub(crate) struct CountingAllocator;

            // SAFETY: every call is forwarded unchanged to the system allocator, which upholds
            // the GlobalAlloc contract; counting has no effect on the memory handed out.
            unsafe impl GlobalAlloc for CountingAllocator {
                unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                    count();
                    // SAFETY: forwarded with the caller's layout, as GlobalAlloc::alloc requires.
                    unsafe { System.alloc(layout) }
                }

                unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                    // SAFETY: ptr was allocated by System with this layout (every allocation of
                    // this program goes through this allocator, which forwards to System).
                    unsafe { System.dealloc(ptr, layout) }
                }

                unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                    count();
                    // SAFETY: ptr/layout come from this allocator; forwarded unchanged.
                    unsafe { System.realloc(ptr, layout, new_size) }
                }
            }

            #[global_allocator]
            static ALLOCATOR: CountingAllocator = CountingAllocator;
        }
    };
}
