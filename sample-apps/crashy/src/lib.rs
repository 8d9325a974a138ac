//! `crashy`: kills the process it runs in on purpose, to show crash isolation between workers.
//!
//! - `/segv`: stores through a wild pointer: the worker dies of SIGSEGV, as with a buggy app;
//! - `/abort`: `std::process::abort()` (SIGABRT);
//! - `/slow?ms=N`: sleeps N ms (capped at 60000, default 1000), then 200 `slow done\n`;
//! - `/pid`: 200 with the worker's process id, so tests can tell workers apart;
//! - `/read?path=P`, `/write?path=P`: opens the file P for reading, or creates it for writing,
//!   and answers 200 `ok` or 500 `errno N` (what the sandbox refused, for the tests);
//! - `/leak?mb=N`: allocates N MiB (default 16, at most 1024), touches it and keeps it for the
//!   process's life (what `--limit-memory` catches);
//! - `/spin?ms=N`: burns CPU for N ms (default 1000, at most 60000; `--limit-cpu-seconds`);
//! - `/keyctl`: asks the kernel keyring a harmless question (`keyctl`, which `--seccomp`
//!   refuses) and answers `ok` or `errno N`;
//! - any other path: 200 `crashy ok\n`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What `/leak` keeps.
static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// The number query parameter `name`, or `default`, at most `max`.
fn number(req: &Request<'_>, name: &[u8], default: u64, max: u64) -> u64 {
    req.query_param(name)
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or(default)
        .min(max)
}

use app_abi::{export_app, App, InitContext, Request, Response};

/// The app: no state.
pub struct Crashy;

impl App for Crashy {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        Ok(Crashy)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        match req.path() {
            b"/segv" => {
                // A genuine invalid memory access, as a buggy native app makes: a store through a
                // wild (non-null, unmapped: the first page is never mapped) pointer. `black_box`
                // keeps the compiler from reasoning about the address.
                // (Not `raise(SIGSEGV)`: the Rust runtime's stack-overflow handler swallows one
                // *raised* SIGSEGV — it resets the disposition and returns — while a real fault
                // re-faults under the default disposition and kills the process.)
                let wild = std::hint::black_box(16usize) as *mut u8;
                // SAFETY: none — this deliberately crashes the worker process with SIGSEGV so the
                // tests can check that the master isolates the crash and replaces the worker.
                unsafe { wild.write_volatile(1) };
                Response::text(500, "the wild store did not crash this process\n")
            }
            b"/abort" => std::process::abort(),
            b"/slow" => {
                let ms = number(req, b"ms", 1000, 60_000);
                std::thread::sleep(Duration::from_millis(ms));
                Response::text(200, "slow done\n")
            }
            b"/leak" => {
                let mb = number(req, b"mb", 16, 1024);
                // Touched (not zeroed by the allocator's fresh pages): it is resident.
                let block = vec![1u8; usize::try_from(mb << 20).unwrap_or(usize::MAX)];
                let mut leaked = LEAKED.lock().unwrap_or_else(|e| e.into_inner());
                leaked.push(block);
                Response::text(200, format!("leaked {mb} MiB\n"))
            }
            b"/keyctl" => {
                const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
                const KEY_SPEC_PROCESS_KEYRING: libc::c_long = -2;
                // SAFETY: keyctl(GET_KEYRING_ID, process keyring, create = 0) takes integers only
                // and changes nothing.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_keyctl,
                        KEYCTL_GET_KEYRING_ID,
                        KEY_SPEC_PROCESS_KEYRING,
                        0 as libc::c_long,
                    )
                };
                if rc >= 0 {
                    Response::text(200, "ok\n")
                } else {
                    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                    Response::text(200, format!("errno {errno}\n"))
                }
            }
            b"/spin" => {
                let until =
                    Instant::now() + Duration::from_millis(number(req, b"ms", 1000, 60_000));
                let mut n = 0u64;
                while Instant::now() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                Response::text(200, "spun\n")
            }
            b"/pid" => Response::text(200, format!("{}\n", std::process::id())),
            b"/read" | b"/write" => {
                let Some(path) = req
                    .query_param(b"path")
                    .and_then(|p| std::str::from_utf8(p).ok().map(str::to_owned))
                else {
                    return Response::text(400, "path=P is missing\n");
                };
                let opened = if req.path() == b"/read" {
                    std::fs::File::open(&path)
                } else {
                    std::fs::File::create(&path)
                };
                match opened {
                    Ok(_) => Response::text(200, "ok\n"),
                    Err(e) => {
                        Response::text(500, format!("errno {}\n", e.raw_os_error().unwrap_or(0)))
                    }
                }
            }
            _ => Response::text(200, "crashy ok\n"),
        }
    }
}

export_app!(app, Crashy, name = "crashy", version = "1.0");
