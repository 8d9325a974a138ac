//! The trampolines driven through a fake in-process host that records every callback.

use super::__private::{body_close, body_next, call, descriptor, init, shutdown};
use super::*;
use crate::raw::*;
use core::ffi::c_void;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What the fake host saw. `io` and `log_ctx` both point to one `Fake`; callbacks only take `&Fake`.
#[derive(Default)]
struct Fake {
    rec: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    logs: Vec<(u32, String)>,
    starts: Vec<Started>,
    written: Vec<u8>,
    input: Vec<u8>,
    pos: usize,
    read_error: Option<i32>,
    start_result: i32,
}

#[derive(Debug, Clone)]
struct Started {
    status: u16,
    reason: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    flags: u32,
}

unsafe fn fake<'a>(p: *const c_void) -> &'a Fake {
    // SAFETY: tests pass a pointer to a live Fake as io/log_ctx.
    unsafe { &*p.cast::<Fake>() }
}

unsafe extern "C" fn fake_read(io: *mut c_void, buf: *mut u8, cap: usize, n: *mut usize) -> i32 {
    // SAFETY: io is a live Fake; buf/n are valid per the ABI.
    unsafe {
        let mut r = fake(io).rec.lock().unwrap();
        if let Some(code) = r.read_error {
            return code;
        }
        // Hand out at most 3 bytes per read to exercise read loops.
        let k = (r.input.len() - r.pos).min(cap).min(3);
        core::ptr::copy_nonoverlapping(r.input[r.pos..].as_ptr(), buf, k);
        r.pos += k;
        *n = k;
    }
    WS_OK
}

unsafe extern "C" fn fake_start(
    io: *mut c_void,
    status: u16,
    reason: WsBytes,
    headers: *const WsPair,
    n: usize,
    flags: u32,
) -> i32 {
    // SAFETY: io is a live Fake; headers/reason are valid during the call per the ABI.
    unsafe {
        let mut r = fake(io).rec.lock().unwrap();
        let pairs = if n == 0 {
            &[][..]
        } else {
            core::slice::from_raw_parts(headers, n)
        };
        r.starts.push(Started {
            status,
            reason: reason.as_slice().to_vec(),
            headers: pairs
                .iter()
                .map(|p| (p.name.as_slice().to_vec(), p.value.as_slice().to_vec()))
                .collect(),
            flags,
        });
        r.start_result
    }
}

unsafe extern "C" fn fake_write(io: *mut c_void, buf: *const u8, len: usize) -> i32 {
    // SAFETY: io is a live Fake; buf valid for len.
    unsafe {
        let data = core::slice::from_raw_parts(buf, len);
        fake(io).rec.lock().unwrap().written.extend_from_slice(data);
    }
    WS_OK
}

unsafe extern "C" fn fake_log(ctx: *const c_void, level: u32, msg: *const u8, len: usize) {
    // SAFETY: ctx is a live Fake; msg valid for len.
    unsafe {
        let msg = String::from_utf8_lossy(core::slice::from_raw_parts(msg, len)).into_owned();
        fake(ctx).rec.lock().unwrap().logs.push((level, msg));
    }
}

static HOST: WsHost = WsHost {
    size: core::mem::size_of::<WsHost>() as u32,
    reserved: 0,
    read: Some(fake_read),
    start_response: Some(fake_start),
    write: Some(fake_write),
    log: Some(fake_log),
    try_read: None,
    waker_new: None,
    waker_wake: None,
    waker_free: None,
    ..WsHost::EMPTY
};

fn env(pairs: &[(&'static str, &'static str)]) -> Vec<WsPair> {
    pairs
        .iter()
        .map(|(n, v)| WsPair {
            name: WsBytes::from_slice(n.as_bytes()),
            value: WsBytes::from_slice(v.as_bytes()),
        })
        .collect()
}

fn raw_request(fake: &Fake, environ: &[WsPair]) -> WsRequest {
    WsRequest {
        size: core::mem::size_of::<WsRequest>() as u32,
        flags: WS_REQ_MULTITHREAD,
        environ: environ.as_ptr(),
        environ_len: environ.len(),
        io: fake as *const Fake as *mut c_void,
        host: &HOST,
        log_ctx: fake as *const Fake as *const c_void,
    }
}

static CLOSES: AtomicUsize = AtomicUsize::new(0);
static SHUTDOWNS: AtomicUsize = AtomicUsize::new(0);

/// The app under test dispatches on PATH_INFO.
struct TestApp;

impl App for TestApp {
    fn init(ctx: &InitContext<'_>) -> Result<Self, String> {
        ctx.info("test app init");
        Ok(TestApp)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        match req.path() {
            b"/panic" => panic!("boom {}", 42),
            b"/bytes" => Response::new(200)
                .header("X-A", "1")
                .header(String::from("X-B"), String::from("two"))
                .body(Body::from(b"hello".to_vec()).with_on_close(|| {
                    CLOSES.fetch_add(1, Ordering::SeqCst);
                })),
            b"/iter" => Response::text(200, Body::from_iter(vec!["a", "", "bc"])),
            b"/iter-panic" => Response::text(
                200,
                Body::from_iter((0..3).map(|i| {
                    assert!(i < 1, "second chunk fails");
                    "x"
                })),
            ),
            b"/bad-header" => Response::text(
                200,
                Body::from_static(b"x").with_on_close(|| {
                    CLOSES.fetch_add(100, Ordering::SeqCst);
                }),
            )
            .header("Bad Name", "v"),
            b"/started" => {
                req.start_response(201, "Made", &[("X-S", "1")], false)
                    .unwrap();
                req.write(b"early").unwrap();
                Response::started("")
            }
            b"/empty" => Response::new(204),
            b"/copied" => Response::text(200, Body::copy_from_slice(b"copied")),
            _ => Response::not_found(),
        }
    }

    fn shutdown(&self) {
        SHUTDOWNS.fetch_add(1, Ordering::SeqCst);
    }
}

struct FailingApp;

impl App for FailingApp {
    fn init(_: &InitContext<'_>) -> Result<Self, String> {
        Err("database unreachable: héllo".into())
    }
    fn call(&self, _: &mut Request<'_>) -> Response {
        unreachable!()
    }
}

struct PanickingInit;

impl App for PanickingInit {
    fn init(_: &InitContext<'_>) -> Result<Self, String> {
        panic!("no config")
    }
    fn call(&self, _: &mut Request<'_>) -> Response {
        unreachable!()
    }
}

/// Runs `init::<T>` with an error buffer of `cap` bytes: (rc, state, message).
fn run_init<T: App>(fake: &Fake, cap: usize) -> (i32, *mut c_void, String) {
    let mut buf = vec![0u8; cap];
    let mut len = 0usize;
    let ws_init = WsInit {
        size: core::mem::size_of::<WsInit>() as u32,
        reserved: 0,
        host: &HOST,
        log_ctx: fake as *const Fake as *const c_void,
        error_buf: buf.as_mut_ptr(),
        error_cap: cap,
        error_len: &mut len,
        args: core::ptr::null(),
        n_args: 0,
    };
    let mut state = core::ptr::null_mut();
    // SAFETY: valid WsInit and out-pointer.
    let rc = unsafe { init::<T>(&ws_init, &mut state) };
    (rc, state, String::from_utf8(buf[..len].to_vec()).unwrap())
}

/// Calls `TestApp` for `path`; returns (rc, body).
fn run_call(fake: &Fake, state: *mut c_void, path: &'static str) -> (i32, WsBody) {
    let environ = env(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", path)]);
    let req = raw_request(fake, &environ);
    let mut body = WsBody::EMPTY;
    // SAFETY: state from init::<TestApp>; valid request and body.
    let rc = unsafe { call::<TestApp>(state, &req, &mut body) };
    (rc, body)
}

/// Pulls every chunk: (chunks, final code).
fn drain(body: &WsBody) -> (Vec<Vec<u8>>, i32) {
    let mut chunks = Vec::new();
    loop {
        let mut chunk = WsBytes::EMPTY;
        // SAFETY: ctx from call, not closed.
        let rc = unsafe { (body.next.unwrap())(body.ctx, &mut chunk) };
        if rc != 1 {
            return (chunks, rc);
        }
        // SAFETY: the chunk is valid until the next next/close.
        chunks.push(unsafe { chunk.as_slice() }.to_vec());
    }
}

#[test]
fn init_call_bytes_body_and_shutdown() {
    let fake = Fake::default();
    let (rc, state, _) = run_init::<TestApp>(&fake, 64);
    assert_eq!(rc, WS_OK);
    assert!(!state.is_null());

    let before = CLOSES.load(Ordering::SeqCst);
    let (rc, body) = run_call(&fake, state, "/bytes");
    assert_eq!(rc, WS_OK);
    assert_eq!(body.length_hint, 5);
    {
        let r = fake.rec.lock().unwrap();
        assert_eq!(r.starts.len(), 1);
        let s = &r.starts[0];
        assert_eq!((s.status, s.reason.as_slice(), s.flags), (200, &b""[..], 0));
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"X-A".to_vec(), b"1".to_vec()),
            (b"X-B".to_vec(), b"two".to_vec()),
        ];
        assert_eq!(s.headers, want);
        assert_eq!(r.logs[0], (WS_LOG_INFO, "test app init".to_owned()));
    }
    let (chunks, end) = drain(&body);
    assert_eq!((chunks, end), (vec![b"hello".to_vec()], 0));
    let mut chunk = WsBytes::EMPTY;
    // SAFETY: still open; next after the end keeps returning 0.
    assert_eq!(unsafe { (body.next.unwrap())(body.ctx, &mut chunk) }, 0);
    assert_eq!(
        CLOSES.load(Ordering::SeqCst),
        before,
        "on_close before close"
    );
    // SAFETY: closed exactly once.
    unsafe { (body.close.unwrap())(body.ctx) };
    assert_eq!(CLOSES.load(Ordering::SeqCst), before + 1);

    let shutdowns = SHUTDOWNS.load(Ordering::SeqCst);
    // SAFETY: the state from init, after the last request.
    unsafe { shutdown::<TestApp>(state) };
    assert_eq!(SHUTDOWNS.load(Ordering::SeqCst), shutdowns + 1);
}

#[test]
fn a_closed_body_leaves_its_box_and_its_bytes_to_the_next_call_on_its_thread() {
    let fake = Fake::default();
    let (_, state, _) = run_init::<TestApp>(&fake, 64);
    let mut seen = Vec::new();
    // Blocks of every small size, taken after the first close: a box or buffer that was freed
    // there would be handed to one of them, not to the second call.
    let mut blockers: Vec<Vec<u8>> = Vec::new();
    for _ in 0..2 {
        let (rc, body) = run_call(&fake, state, "/copied");
        assert_eq!((rc, body.length_hint), (WS_OK, 6));
        let mut chunk = WsBytes::EMPTY;
        // SAFETY: ctx from call, not closed.
        assert_eq!(unsafe { (body.next.unwrap())(body.ctx, &mut chunk) }, 1);
        // SAFETY: the chunk is valid until the next next/close.
        assert_eq!(unsafe { chunk.as_slice() }, b"copied");
        seen.push((body.ctx, chunk.ptr));
        // SAFETY: closed exactly once.
        unsafe { (body.close.unwrap())(body.ctx) };
        blockers.extend((1..=64).map(|n| Vec::with_capacity(n * 8)));
    }
    assert_eq!(
        seen[0], seen[1],
        "the second call reuses the first one's box and bytes"
    );
    drop(blockers);
    // SAFETY: the state from init, after the last request.
    unsafe { shutdown::<TestApp>(state) };
}

#[test]
fn panic_in_call_is_logged_and_returns_err_app() {
    let fake = Fake::default();
    let (_, state, _) = run_init::<TestApp>(&fake, 64);
    let (rc, body) = run_call(&fake, state, "/panic");
    assert_eq!(rc, WS_ERR_APP);
    assert!(body.close.is_none() && body.ctx.is_null());
    let r = fake.rec.lock().unwrap();
    assert!(r.starts.is_empty());
    assert!(r
        .logs
        .iter()
        .any(|(l, m)| *l == WS_LOG_ERROR && m.starts_with("panic in app: boom 42 (at ")));
    drop(r);
    // The same state keeps serving.
    assert_eq!(run_call(&fake, state, "/nope").0, WS_OK);
    // SAFETY: the state from init.
    unsafe { shutdown::<TestApp>(state) };
}

#[test]
fn iterator_body_skips_empty_chunks_and_panics_become_err_app() {
    let fake = Fake::default();
    let (_, state, _) = run_init::<TestApp>(&fake, 64);
    let (rc, body) = run_call(&fake, state, "/iter");
    assert_eq!((rc, body.length_hint), (WS_OK, WS_LENGTH_UNKNOWN));
    assert_eq!(drain(&body), (vec![b"a".to_vec(), b"bc".to_vec()], 0));
    // SAFETY: closed once.
    unsafe { (body.close.unwrap())(body.ctx) };

    let (rc, body) = run_call(&fake, state, "/iter-panic");
    assert_eq!(rc, WS_OK);
    assert_eq!(drain(&body), (vec![b"x".to_vec()], WS_ERR_APP));
    let mut chunk = WsBytes::EMPTY;
    // SAFETY: still open; a failed body stays failed.
    assert_eq!(unsafe { body_next(body.ctx, &mut chunk) }, WS_ERR_APP);
    // SAFETY: closed once.
    unsafe { body_close(body.ctx) };
    let r = fake.rec.lock().unwrap();
    assert!(r
        .logs
        .iter()
        .any(|(l, m)| *l == WS_LOG_ERROR
            && m.starts_with("panic in app body: second chunk fails (at ")));
    drop(r);
    // SAFETY: the state from init.
    unsafe { shutdown::<TestApp>(state) };
}

#[test]
fn rejected_head_returns_the_host_code_and_drops_the_body() {
    let fake = Fake::default();
    fake.rec.lock().unwrap().start_result = WS_ERR_INVALID;
    let (_, state, _) = run_init::<TestApp>(&fake, 64);
    let before = CLOSES.load(Ordering::SeqCst);
    let (rc, body) = run_call(&fake, state, "/bad-header");
    assert_eq!(rc, WS_ERR_INVALID);
    assert!(body.close.is_none());
    assert_eq!(CLOSES.load(Ordering::SeqCst), before + 100, "on_close ran");
    let r = fake.rec.lock().unwrap();
    assert_eq!(r.starts[0].headers[1].0, b"Bad Name".to_vec());
    assert!(r
        .logs
        .iter()
        .any(|(l, m)| *l == WS_LOG_ERROR && m.starts_with("response head rejected by the server")));
    drop(r);
    // SAFETY: the state from init.
    unsafe { shutdown::<TestApp>(state) };
}

#[test]
fn started_response_and_write_and_empty_body() {
    let fake = Fake::default();
    let (_, state, _) = run_init::<TestApp>(&fake, 64);
    let (rc, body) = run_call(&fake, state, "/started");
    assert_eq!(rc, WS_OK);
    {
        let r = fake.rec.lock().unwrap();
        assert_eq!(r.starts.len(), 1, "the trampoline did not start again");
        assert_eq!(
            (r.starts[0].status, &r.starts[0].reason[..]),
            (201, &b"Made"[..])
        );
        assert_eq!(r.written, b"early");
    }
    assert_eq!(body.length_hint, 0);
    assert!(body.next.is_none() && body.close.is_none());

    let (rc, body) = run_call(&fake, state, "/empty");
    assert_eq!((rc, body.length_hint), (WS_OK, 0));
    assert!(body.next.is_none() && body.close.is_none() && body.ctx.is_null());
    assert_eq!(fake.rec.lock().unwrap().starts[1].status, 204);
    // SAFETY: the state from init.
    unsafe { shutdown::<TestApp>(state) };
}

#[test]
fn init_error_is_truncated_into_the_buffer() {
    let fake = Fake::default();
    let (rc, state, msg) = run_init::<FailingApp>(&fake, 512);
    assert_ne!(rc, WS_OK);
    assert!(state.is_null());
    assert_eq!(msg, "database unreachable: héllo");
    let (_, _, msg) = run_init::<FailingApp>(&fake, 8);
    assert_eq!(msg, "database");
    // "é" is two bytes at offsets 23..25: a cut inside it backs off to 23.
    let (_, _, msg) = run_init::<FailingApp>(&fake, 24);
    assert_eq!(msg, "database unreachable: h");
    let (rc, _, msg) = run_init::<PanickingInit>(&fake, 512);
    assert_ne!(rc, WS_OK);
    assert!(msg.starts_with("init panicked: no config (at "), "{msg}");
}

#[test]
fn request_accessors_over_a_fake_environ() {
    let fake = Fake::default();
    fake.rec.lock().unwrap().input = b"0123456789".to_vec();
    let environ = env(&[
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/a b/\u{e9}"),
        ("QUERY_STRING", "n=5&delay_ms=10&flag"),
        ("CONTENT_TYPE", "text/plain"),
        ("CONTENT_LENGTH", "10"),
        ("HTTP_X_FORWARDED_FOR", "1.2.3.4, 5.6.7.8"),
        ("HTTP_HOST", "example.com"),
        ("webserver.url_scheme", "http"),
    ]);
    let raw = raw_request(&fake, &environ);
    // SAFETY: raw is valid for this test.
    let mut req = unsafe { Request::from_raw(&raw) };
    assert_eq!(req.method(), "POST");
    assert_eq!(req.path(), "/a b/é".as_bytes());
    assert_eq!(req.path_str(), "/a b/é");
    assert_eq!(req.query(), b"n=5&delay_ms=10&flag");
    assert_eq!(req.query_param(b"delay_ms"), Some(&b"10"[..]));
    assert_eq!(req.query_param(b"flag"), Some(&b""[..]));
    assert_eq!(req.query_param(b"missing"), None);
    assert_eq!(req.var(b"webserver.url_scheme"), Some(&b"http"[..]));
    assert_eq!(req.var(b"REMOTE_ADDR"), None);
    assert_eq!(req.vars().count(), 9);
    assert_eq!(req.header("Content-Type"), Some(&b"text/plain"[..]));
    assert_eq!(
        req.header("x-forwarded-for"),
        Some(&b"1.2.3.4, 5.6.7.8"[..])
    );
    assert_eq!(
        req.header("X-Forwarded-For"),
        Some(&b"1.2.3.4, 5.6.7.8"[..])
    );
    assert_eq!(req.header("x-forwarded"), None);
    assert_eq!(req.content_length(), Some(10));
    assert_eq!(req.flags(), WS_REQ_MULTITHREAD);
    let headers: Vec<(String, &[u8])> = req.headers().collect();
    assert_eq!(
        headers,
        vec![
            ("content-type".to_owned(), &b"text/plain"[..]),
            ("content-length".to_owned(), &b"10"[..]),
            ("x-forwarded-for".to_owned(), &b"1.2.3.4, 5.6.7.8"[..]),
            ("host".to_owned(), &b"example.com"[..]),
        ]
    );
    assert_eq!(req.read_body().unwrap(), b"0123456789");
    let mut rest = [0u8; 4];
    assert_eq!(req.body().read(&mut rest).unwrap(), 0, "EOF stays EOF");
    req.warn("careful");
    assert_eq!(
        fake.rec.lock().unwrap().logs,
        vec![(WS_LOG_WARN, "careful".to_owned())]
    );
}

#[test]
fn read_errors_keep_their_code() {
    let fake = Fake::default();
    fake.rec.lock().unwrap().read_error = Some(WS_ERR_TOO_LARGE);
    let environ = env(&[]);
    let raw = raw_request(&fake, &environ);
    // SAFETY: raw is valid for this test.
    let mut req = unsafe { Request::from_raw(&raw) };
    let err = req.read_body().unwrap_err();
    assert_eq!(AbiError::from_io(&err), Some(AbiError::TooLarge));
    assert_eq!(AbiError::from_io(&err).unwrap().code(), WS_ERR_TOO_LARGE);
    assert!(err.to_string().contains("WS_ERR_TOO_LARGE"), "{err}");
    assert_eq!(AbiError::check(-99), Err(AbiError::Other(-99)));
}

#[test]
fn descriptor_header_and_macro() {
    crate::export_app!(
        TEST_DESCRIPTOR,
        TestApp,
        name = "test",
        version = "0.1",
        flags = WS_APP_SINGLE_THREADED
    );
    let d = &TEST_DESCRIPTOR;
    assert_eq!(
        (d.magic, d.abi_major, d.abi_minor),
        (WS_APP_MAGIC, WS_ABI_MAJOR, WS_ABI_MINOR)
    );
    assert_eq!(
        (d.size, d.flags),
        (WS_APP_SIZE_V1_0, WS_APP_SINGLE_THREADED)
    );
    // SAFETY: NUL-terminated statics.
    let name = unsafe { core::ffi::CStr::from_ptr(d.name) };
    assert_eq!(name.to_bytes(), b"test");
    assert!(d.init.is_some() && d.call.is_some() && d.shutdown.is_some());
    assert_eq!(descriptor::<TestApp>("x\0", "y\0", 0).flags, 0);
}

#[test]
fn response_builder() {
    let r = Response::json(201, String::from("{}")).header("X-Y", "z");
    assert_eq!(r.status_code(), 201);
    assert_eq!(r.get_header("content-type"), Some("application/json"));
    assert_eq!(r.header_count(), 2);
    assert_eq!(r.body_ref().length_hint(), 2);
    assert_eq!(Response::not_found().status_code(), 404);
    assert!(Response::started("x").is_started());
}

#[test]
fn header_pairs_reach_the_host_whole_and_in_order_at_any_count() {
    // Around the two stack arrays' sizes, and past the larger (a `Vec` then).
    for count in [0, 1, 4, 5, 16, 17, 40] {
        let fields: Vec<(String, String)> = (0..count)
            .map(|i| (format!("x-{i}"), format!("value {i}")))
            .collect();
        let iter = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        let seen = super::request::with_pairs(iter, |pairs| {
            pairs
                .iter()
                // SAFETY: the pairs borrow `fields`, alive for this call.
                .map(|p| unsafe { (p.name.as_slice().to_vec(), p.value.as_slice().to_vec()) })
                .collect::<Vec<_>>()
        });
        let want: Vec<(Vec<u8>, Vec<u8>)> = fields
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(seen, want, "{count} headers");
    }
}
