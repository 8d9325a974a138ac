//! The ABI 1.1 safe layer (init args, the 1.0-host refusal, wakers, `try_read`, deferred bodies)
//! driven through a fake host that plays 1.0 or 1.1.

use super::__private::{body_close, body_next, call, init};
use super::*;
use crate::raw::*;
use core::ffi::c_void;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A recorded `start_response`: status and headers.
type Started = (u16, Vec<(Vec<u8>, Vec<u8>)>);

/// One request's fake server side; `io` points to it.
#[derive(Default)]
struct Io {
    /// Answers `try_read` gives, in order (then `WS_PENDING`).
    reads: Mutex<VecDeque<Result<&'static [u8], i32>>>,
    starts: Mutex<Vec<Started>>,
    wakers_made: AtomicUsize,
}

/// Waker calls across every test: (woken, freed), per waker pointer's `Io`.
static WAKES: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn try_read(io: *mut c_void, buf: *mut u8, cap: usize, n: *mut usize) -> i32 {
    // SAFETY: tests pass a live `Io`; buf/n valid per the ABI.
    unsafe {
        let io = &*io.cast::<Io>();
        *n = 0;
        match io.reads.lock().unwrap().pop_front() {
            None => WS_PENDING,
            Some(Err(code)) => code,
            Some(Ok(bytes)) => {
                let k = bytes.len().min(cap);
                core::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, k);
                *n = k;
                WS_OK
            }
        }
    }
}

unsafe extern "C" fn start(
    io: *mut c_void,
    status: u16,
    _reason: WsBytes,
    headers: *const WsPair,
    n: usize,
    _flags: u32,
) -> i32 {
    // SAFETY: a live `Io`; headers valid for n pairs during the call.
    unsafe {
        let io = &*io.cast::<Io>();
        let pairs = if n == 0 {
            &[][..]
        } else {
            core::slice::from_raw_parts(headers, n)
        };
        let headers = pairs
            .iter()
            .map(|p| (p.name.as_slice().to_vec(), p.value.as_slice().to_vec()))
            .collect();
        io.starts.lock().unwrap().push((status, headers));
    }
    WS_OK
}

unsafe extern "C" fn waker_new(io: *mut c_void) -> *mut c_void {
    // SAFETY: a live `Io`.
    unsafe {
        (*io.cast::<Io>())
            .wakers_made
            .fetch_add(1, Ordering::SeqCst)
    };
    // Any non-null token will do: the fake counts, it does not look the waker up.
    Box::into_raw(Box::new(0u8)).cast()
}

unsafe extern "C" fn waker_wake(_waker: *mut c_void) {
    WAKES.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn waker_free(waker: *mut c_void) {
    // SAFETY: made by `waker_new` above, freed once (what the test checks).
    drop(unsafe { Box::from_raw(waker.cast::<u8>()) });
    FREES.fetch_add(1, Ordering::SeqCst);
}

static HOST_1_1: WsHost = WsHost {
    size: WS_HOST_SIZE_V1_1,
    reserved: 0,
    read: None,
    start_response: Some(start),
    write: None,
    log: None,
    try_read: Some(try_read),
    waker_new: Some(waker_new),
    waker_wake: Some(waker_wake),
    waker_free: Some(waker_free),
    ..WsHost::EMPTY
};

/// What a 1.0 server hands out: its `size` ends at `log` (the fields past it are garbage there;
/// here they are set, to prove the layer goes by `size`, not by what it finds).
static HOST_1_0: WsHost = WsHost {
    size: WS_HOST_SIZE_V1_0,
    ..HOST_1_1
};

/// Runs `init::<T>` against `host` with `args` and a `WsInit` of `size`: (rc, state, message).
fn run_init<T: App>(host: &'static WsHost, size: u32, args: &[&str]) -> (i32, *mut c_void, String) {
    let args: Vec<WsBytes> = args
        .iter()
        .map(|a| WsBytes::from_slice(a.as_bytes()))
        .collect();
    let mut buf = vec![0u8; 256];
    let mut len = 0usize;
    let ws_init = WsInit {
        size,
        reserved: 0,
        host,
        log_ctx: core::ptr::null(),
        error_buf: buf.as_mut_ptr(),
        error_cap: buf.len(),
        error_len: &mut len,
        args: args.as_ptr(),
        n_args: args.len(),
    };
    let mut state = core::ptr::null_mut();
    // SAFETY: a valid WsInit and out-pointer.
    let rc = unsafe { init::<T>(&ws_init, &mut state) };
    (rc, state, String::from_utf8(buf[..len].to_vec()).unwrap())
}

thread_local! {
    /// What the last `init` on this thread saw: per thread, because tests run in parallel and
    /// each calls `init` on its own thread.
    static SEEN_ARGS: core::cell::RefCell<Vec<String>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// An app that needs 1.1 and answers `/later` with a deferred body.
struct AsyncApp;

impl App for AsyncApp {
    fn init(ctx: &InitContext<'_>) -> Result<Self, String> {
        let args = ctx
            .args()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        SEEN_ARGS.with(|seen| *seen.borrow_mut() = args);
        ctx.require_abi_1_1()?;
        Ok(AsyncApp)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        match req.path() {
            b"/later" => Response::deferred(Later::default()),
            b"/panic" => Response::deferred(Panics),
            _ => Response::not_found(),
        }
    }
}

/// Pends until the request body is complete, then answers it in upper case, in one chunk.
#[derive(Default)]
struct Later {
    got: Vec<u8>,
    out: Vec<u8>,
    sent: bool,
}

impl DeferredBody for Later {
    fn next<'s>(&'s mut self, io: &mut BodyIo<'_>) -> Next<'s> {
        if self.sent {
            return Next::End;
        }
        let mut buf = [0u8; 4];
        loop {
            match io.try_read(&mut buf) {
                TryRead::Data(n) => self.got.extend_from_slice(&buf[..n]),
                TryRead::Pending => return Next::Pending,
                TryRead::Failed(_) => return Next::Error,
                TryRead::End => break,
            }
        }
        let len = self.got.len().to_string();
        let headers = [(&b"content-length"[..], len.as_bytes())];
        if io.start_response(200, "", headers.into_iter()).is_err() {
            return Next::Error;
        }
        self.out = self.got.to_ascii_uppercase();
        self.sent = true;
        Next::Chunk(&self.out)
    }
}

struct Panics;

impl DeferredBody for Panics {
    fn next<'s>(&'s mut self, _io: &mut BodyIo<'_>) -> Next<'s> {
        panic!("deferred body fails");
    }
}

fn request(io: &Io, host: &'static WsHost, path: &'static str) -> (WsRequest, Vec<WsPair>) {
    let environ = vec![WsPair {
        name: WsBytes::from_slice(b"PATH_INFO"),
        value: WsBytes::from_slice(path.as_bytes()),
    }];
    let req = WsRequest {
        size: core::mem::size_of::<WsRequest>() as u32,
        flags: 0,
        environ: environ.as_ptr(),
        environ_len: environ.len(),
        io: io as *const Io as *mut c_void,
        host,
        log_ctx: core::ptr::null(),
    };
    (req, environ)
}

#[test]
fn an_app_that_needs_1_1_refuses_a_1_0_server_with_the_agreed_message() {
    let (rc, state, msg) = run_init::<AsyncApp>(&HOST_1_0, WS_INIT_SIZE_V1_0, &["x"]);
    assert_eq!(rc, WS_ERR_APP);
    assert!(state.is_null());
    assert_eq!(
        msg,
        "needs a webserver speaking ABI 1.1 (wakers); this server speaks 1.0: upgrade webserver"
    );
    assert!(
        SEEN_ARGS.with(|seen| seen.borrow().is_empty()),
        "a 1.0 WsInit has no args, whatever lies past its size"
    );
}

/// An app that upgrades connections: it needs ABI 1.2.
struct UpgradingApp;

impl App for UpgradingApp {
    fn init(ctx: &InitContext<'_>) -> Result<Self, String> {
        ctx.require_abi_1_2()?;
        Ok(UpgradingApp)
    }

    fn call(&self, _req: &mut Request<'_>) -> Response {
        Response::not_found()
    }
}

/// A 1.1 server whose vtable claims the 1.2 size but lacks the calls: presence is by field.
static HOST_1_2_EMPTY: WsHost = WsHost {
    size: core::mem::size_of::<WsHost>() as u32,
    ..HOST_1_1
};

#[test]
fn an_app_that_needs_1_2_refuses_older_servers_with_one_line() {
    let size = core::mem::size_of::<WsInit>() as u32;
    for host in [&HOST_1_1, &HOST_1_2_EMPTY] {
        let (rc, state, msg) = run_init::<UpgradingApp>(host, size, &[]);
        assert_eq!(rc, WS_ERR_APP);
        assert!(state.is_null());
        assert_eq!(msg, crate::NEEDS_ABI_1_2);
        assert!(!msg.contains('\n'));
    }
    let (rc, _, msg) = run_init::<UpgradingApp>(&HOST_1_0, WS_INIT_SIZE_V1_0, &[]);
    assert_eq!(rc, WS_ERR_APP);
    assert!(
        msg.contains("needs webserver ABI 1.2") && msg.contains("speaks 1.0"),
        "{msg}"
    );
}

#[test]
fn init_args_reach_the_app_on_a_1_1_server() {
    let (rc, state, msg) = run_init::<AsyncApp>(
        &HOST_1_1,
        core::mem::size_of::<WsInit>() as u32,
        &["--config", "app.toml"],
    );
    assert_eq!((rc, msg.as_str()), (WS_OK, ""));
    SEEN_ARGS.with(|seen| assert_eq!(*seen.borrow(), ["--config", "app.toml"]));
    // SAFETY: the state init made, shut down once.
    unsafe { super::__private::shutdown::<AsyncApp>(state) };
}

#[test]
fn a_waker_is_send_sync_wakes_from_any_thread_and_is_freed_once() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Waker>();
    let io = Io::default();
    let (req, _env) = request(&io, &HOST_1_1, "/");
    // SAFETY: `req` is valid while `_env` and `io` live.
    let r = unsafe { Request::from_raw(&req) };
    let waker = std::sync::Arc::new(r.waker().expect("a 1.1 host makes wakers"));
    let (wakes, frees) = (WAKES.load(Ordering::SeqCst), FREES.load(Ordering::SeqCst));
    let remote = waker.clone();
    std::thread::spawn(move || remote.wake()).join().unwrap();
    waker.wake();
    assert!(WAKES.load(Ordering::SeqCst) >= wakes + 2);
    drop(waker);
    assert!(
        FREES.load(Ordering::SeqCst) > frees,
        "dropping the last handle frees it"
    );
    let task_waker = r.waker().unwrap().into_task_waker();
    task_waker.wake_by_ref();
    drop(task_waker);
    assert_eq!(io.wakers_made.load(Ordering::SeqCst), 2);
    // A 1.0 host has none.
    let (req, _env) = request(&io, &HOST_1_0, "/");
    // SAFETY: as above.
    let mut r = unsafe { Request::from_raw(&req) };
    assert!(r.waker().is_none());
    assert_eq!(r.try_read(&mut [0; 4]), TryRead::Failed(AbiError::State));
}

#[test]
fn a_deferred_body_pends_until_the_request_body_is_in_then_starts_and_sends() {
    let (rc, state, _) =
        run_init::<AsyncApp>(&HOST_1_1, core::mem::size_of::<WsInit>() as u32, &[]);
    assert_eq!(rc, WS_OK);
    let io = Io::default();
    io.reads.lock().unwrap().push_back(Ok(b"abc"));
    let (req, _env) = request(&io, &HOST_1_1, "/later");
    let mut body = WsBody::EMPTY;
    // SAFETY: state from init; a valid request and body.
    assert_eq!(unsafe { call::<AsyncApp>(state, &req, &mut body) }, WS_OK);
    assert!(
        io.starts.lock().unwrap().is_empty(),
        "call must not start a deferred response"
    );
    assert_eq!(body.length_hint, WS_LENGTH_UNKNOWN);
    let next = body.next.unwrap();
    let mut chunk = WsBytes::EMPTY;
    // SAFETY: the body `call` filled, not closed; `chunk` writable.
    assert_eq!(unsafe { next(body.ctx, &mut chunk) }, WS_PENDING);
    io.reads
        .lock()
        .unwrap()
        .extend([Ok(&b"de"[..]), Ok(&b""[..])]);
    // SAFETY: as above.
    assert_eq!(unsafe { next(body.ctx, &mut chunk) }, 1);
    // SAFETY: the chunk is valid until the next `next`/`close`.
    assert_eq!(unsafe { chunk.as_slice() }, b"ABCDE");
    let starts = io.starts.lock().unwrap().clone();
    assert_eq!(
        starts,
        [(200, vec![(b"content-length".to_vec(), b"5".to_vec())])]
    );
    // SAFETY: as above.
    assert_eq!(unsafe { next(body.ctx, &mut chunk) }, 0);
    // SAFETY: closed once.
    unsafe { body_close(body.ctx) };
    // SAFETY: the state init made, shut down once.
    unsafe { super::__private::shutdown::<AsyncApp>(state) };
}

#[test]
fn a_panic_in_a_deferred_body_is_an_app_error() {
    let (_, state, _) = run_init::<AsyncApp>(&HOST_1_1, core::mem::size_of::<WsInit>() as u32, &[]);
    let io = Io::default();
    let (req, _env) = request(&io, &HOST_1_1, "/panic");
    let mut body = WsBody::EMPTY;
    // SAFETY: as in the test above.
    unsafe {
        assert_eq!(call::<AsyncApp>(state, &req, &mut body), WS_OK);
        let mut chunk = WsBytes::EMPTY;
        assert_eq!(body_next(body.ctx, &mut chunk), WS_ERR_APP);
        assert_eq!(
            body_next(body.ctx, &mut chunk),
            WS_ERR_APP,
            "failed stays failed"
        );
        body_close(body.ctx);
        super::__private::shutdown::<AsyncApp>(state);
    }
}
