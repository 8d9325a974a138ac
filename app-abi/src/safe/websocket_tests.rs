//! The ABI 1.2 safe layer (`Response::websocket`, `WebSocket`, `Upgraded`, the handler
//! trampolines) driven through a fake host that plays the server's side of one connection.

use super::__private::{call, init, shutdown};
use super::*;
use crate::raw::*;
use core::ffi::c_void;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One connection's fake server side; its address is both the request's `io` and the handle.
#[derive(Default)]
struct Fake {
    handler: Mutex<Option<WsConnHandler>>,
    /// Messages `websocket_recv` gives (kind, bytes), then `WS_PENDING`; `closed_by_client`
    /// makes it answer 0 with 1001 once they are out.
    inbox: Mutex<VecDeque<(u32, Vec<u8>)>>,
    closed_by_client: AtomicBool,
    /// The message `recv` last handed out (its bytes stay valid until the next call).
    current: Mutex<Vec<u8>>,
    sent: Mutex<Vec<(u32, Vec<u8>)>>,
    /// `send` answers `WS_PENDING` while set.
    full: AtomicBool,
    closes: Mutex<Vec<(u16, Vec<u8>)>>,
    accept_fails: AtomicBool,
    upgrade_headers: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    written: Mutex<Vec<u8>>,
}

fn fake<'a>(p: *mut c_void) -> &'a Fake {
    // SAFETY: every pointer the fake hands out is a live `Fake` of the running test.
    unsafe { &*p.cast::<Fake>() }
}

unsafe extern "C" fn accept(
    io: *mut c_void,
    _protocol: WsBytes,
    _headers: *const WsPair,
    _n: usize,
    _flags: u32,
    handler: *const WsConnHandler,
    out: *mut *mut c_void,
) -> i32 {
    let f = fake(io);
    if f.accept_fails.load(Ordering::SeqCst) {
        return WS_ERR_INVALID;
    }
    // SAFETY: valid during the call per the ABI; the fake copies it, as the server does.
    *f.handler.lock().unwrap() = Some(unsafe { *handler });
    // SAFETY: `out` is writable per the ABI.
    unsafe { *out = io };
    WS_OK
}

unsafe extern "C" fn upgrade(
    io: *mut c_void,
    headers: *const WsPair,
    n: usize,
    _flags: u32,
    handler: *const WsConnHandler,
    out: *mut *mut c_void,
) -> i32 {
    let f = fake(io);
    // SAFETY: `headers` holds `n` pairs valid during the call.
    let pairs = unsafe { core::slice::from_raw_parts(headers, n) };
    *f.upgrade_headers.lock().unwrap() = pairs
        .iter()
        // SAFETY: the pairs' bytes are valid during the call.
        .map(|p| unsafe { (p.name.as_slice().to_vec(), p.value.as_slice().to_vec()) })
        .collect();
    // SAFETY: as in `accept`.
    unsafe { accept(io, WsBytes::EMPTY, core::ptr::null(), 0, 0, handler, out) }
}

unsafe extern "C" fn recv(ws: *mut c_void, msg: *mut WsMessage) -> i32 {
    let f = fake(ws);
    let mut current = f.current.lock().unwrap();
    // SAFETY: `msg` is writable per the ABI.
    let msg = unsafe { &mut *msg };
    match f.inbox.lock().unwrap().pop_front() {
        Some((kind, bytes)) => {
            *current = bytes;
            msg.kind = kind;
            msg.data = WsBytes::from_slice(&current);
            1
        }
        None if f.closed_by_client.load(Ordering::SeqCst) => {
            *current = b"bye".to_vec();
            msg.kind = WS_MSG_CLOSE;
            msg.close_code = 1001;
            msg.data = WsBytes::from_slice(&current);
            0
        }
        None => WS_PENDING,
    }
}

unsafe extern "C" fn send(ws: *mut c_void, kind: u32, data: *const u8, len: usize) -> i32 {
    let f = fake(ws);
    if f.full.load(Ordering::SeqCst) {
        return WS_PENDING;
    }
    // SAFETY: `data` is readable for `len` bytes during the call.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) }.to_vec();
    f.sent.lock().unwrap().push((kind, bytes));
    WS_OK
}

unsafe extern "C" fn ws_close(ws: *mut c_void, code: u16, reason: WsBytes) {
    // SAFETY: `reason` is valid during the call.
    let reason = unsafe { reason.as_slice() }.to_vec();
    fake(ws).closes.lock().unwrap().push((code, reason));
}

unsafe extern "C" fn stream_write(
    s: *mut c_void,
    buf: *const u8,
    len: usize,
    n: *mut usize,
) -> i32 {
    // SAFETY: readable for `len` bytes; `n` writable.
    unsafe {
        fake(s)
            .written
            .lock()
            .unwrap()
            .extend_from_slice(core::slice::from_raw_parts(buf, len.min(3)));
        *n = len.min(3);
    }
    WS_OK
}

unsafe extern "C" fn stream_read(_s: *mut c_void, _b: *mut u8, _cap: usize, n: *mut usize) -> i32 {
    // SAFETY: `n` writable.
    unsafe { *n = 0 };
    WS_OK
}

unsafe extern "C" fn stream_close(s: *mut c_void) {
    fake(s).closes.lock().unwrap().push((0, b"stream".to_vec()));
}

unsafe extern "C" fn start(
    _io: *mut c_void,
    _status: u16,
    _reason: WsBytes,
    _headers: *const WsPair,
    _n: usize,
    _flags: u32,
) -> i32 {
    WS_OK
}

static HOST_1_2: WsHost = WsHost {
    start_response: Some(start),
    upgrade: Some(upgrade),
    stream_read: Some(stream_read),
    stream_write: Some(stream_write),
    stream_close: Some(stream_close),
    websocket_accept: Some(accept),
    websocket_recv: Some(recv),
    websocket_send: Some(send),
    websocket_close: Some(ws_close),
    ..WsHost::EMPTY
};

thread_local! {
    /// Handlers dropped so far on this test's thread: tests run in parallel, and each drops its
    /// handlers on its own thread, so one test's drop never shows in another's count.
    static DROPPED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An echo that holds a message the client cannot take yet.
#[derive(Default)]
struct Echo {
    held: Option<Message>,
    events: Arc<Mutex<Vec<u32>>>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        DROPPED.set(DROPPED.get() + 1);
    }
}

impl WebSocketHandler for Echo {
    fn on_event(&mut self, ws: &WebSocket, events: Events) {
        self.events.lock().unwrap().push(events.bits());
        loop {
            let msg = match self.held.take() {
                Some(msg) => msg,
                None => match ws.recv() {
                    Recv::Message(msg) => msg,
                    Recv::Pending => return,
                    Recv::Closed { .. } | Recv::Failed(_) => return ws.close(1000, ""),
                },
            };
            if ws.send(msg.as_outgoing()) == Sent::WouldBlock {
                self.held = Some(msg);
                return;
            }
        }
    }
}

/// Runs the call trampoline for `resp` on `f` (a request with `flags`): its return code.
fn call_with(f: &Fake, flags: u32, resp: fn() -> Response) -> i32 {
    struct OneShot;
    thread_local! {
        static RESPONSE: core::cell::Cell<Option<fn() -> Response>> = const { core::cell::Cell::new(None) };
    }
    impl App for OneShot {
        fn init(_: &InitContext<'_>) -> Result<Self, String> {
            Ok(OneShot)
        }
        fn call(&self, req: &mut Request<'_>) -> Response {
            assert_eq!(req.is_websocket(), req.flags() & WS_REQ_WEBSOCKET != 0);
            RESPONSE.with(|r| r.get().unwrap())()
        }
    }
    RESPONSE.with(|r| r.set(Some(resp)));
    let req = raw_request(f, flags);
    let mut body = WsBody {
        size: core::mem::size_of::<WsBody>() as u32,
        reserved: 0,
        ctx: core::ptr::null_mut(),
        next: None,
        close: None,
        length_hint: 0,
    };
    let mut err = [0u8; 64];
    let mut err_len = 0usize;
    let ws_init = WsInit {
        size: core::mem::size_of::<WsInit>() as u32,
        reserved: 0,
        host: &HOST_1_2,
        log_ctx: core::ptr::null(),
        error_buf: err.as_mut_ptr(),
        error_cap: err.len(),
        error_len: &mut err_len,
        args: core::ptr::null(),
        n_args: 0,
    };
    let mut state = core::ptr::null_mut();
    // SAFETY: a valid WsInit, request and body; the state is shut down once, after the call.
    unsafe {
        assert_eq!(init::<OneShot>(&ws_init, &mut state), WS_OK);
        let rc = call::<OneShot>(state, &req, &mut body);
        shutdown::<OneShot>(state);
        rc
    }
}

/// A request whose `io` is `f`.
fn raw_request(f: &Fake, flags: u32) -> WsRequest {
    WsRequest {
        size: core::mem::size_of::<WsRequest>() as u32,
        flags,
        environ: core::ptr::null(),
        environ_len: 0,
        io: f as *const Fake as *mut c_void,
        host: &HOST_1_2,
        log_ctx: core::ptr::null(),
    }
}

fn event(f: &Fake, events: u32) {
    let h = f.handler.lock().unwrap().unwrap();
    // SAFETY: the handler's own ctx, as the server calls it (one at a time).
    unsafe { h.on_event.unwrap()(h.ctx, events) }
}

fn release(f: &Fake) {
    let h = f.handler.lock().unwrap().unwrap();
    // SAFETY: once, after the app's close, as the server does.
    unsafe { h.release.unwrap()(h.ctx) }
}

#[test]
fn an_echo_accepted_by_response_websocket_echoes_waits_and_is_released_once() {
    let f = Fake::default();
    let dropped = DROPPED.get();
    assert_eq!(
        call_with(
            &f,
            WS_REQ_WEBSOCKET,
            || Response::websocket(Echo::default())
        ),
        WS_OK
    );
    assert!(
        f.handler.lock().unwrap().is_some(),
        "accepted with a handler"
    );
    f.inbox.lock().unwrap().extend([
        (WS_MSG_TEXT, b"one".to_vec()),
        (WS_MSG_BINARY, vec![0, 1, 2]),
    ]);
    event(&f, WS_EV_READABLE);
    assert_eq!(
        *f.sent.lock().unwrap(),
        vec![
            (WS_MSG_TEXT, b"one".to_vec()),
            (WS_MSG_BINARY, vec![0, 1, 2])
        ]
    );
    // The client does not read: the next message is held, and sent on WRITABLE.
    f.full.store(true, Ordering::SeqCst);
    f.inbox
        .lock()
        .unwrap()
        .push_back((WS_MSG_TEXT, b"two".to_vec()));
    event(&f, WS_EV_READABLE);
    assert_eq!(f.sent.lock().unwrap().len(), 2);
    f.full.store(false, Ordering::SeqCst);
    event(&f, WS_EV_WRITABLE);
    assert_eq!(f.sent.lock().unwrap()[2], (WS_MSG_TEXT, b"two".to_vec()));
    // The client closes: the echo closes its handle, once; release drops the handler.
    f.closed_by_client.store(true, Ordering::SeqCst);
    event(&f, WS_EV_READABLE | WS_EV_CLOSED);
    assert_eq!(*f.closes.lock().unwrap(), vec![(1000, Vec::new())]);
    assert_eq!(DROPPED.get(), dropped);
    release(&f);
    assert_eq!(DROPPED.get(), dropped + 1);
    assert_eq!(f.closes.lock().unwrap().len(), 1, "closed exactly once");
}

#[test]
fn a_connection_the_client_left_is_released_when_the_apps_last_clone_goes() {
    let f = Fake::default();
    let raw = raw_request(&f, WS_REQ_WEBSOCKET);
    // SAFETY: a valid request whose host answers `io` = `f`.
    let mut req_io = unsafe { Request::from_raw(&raw) };
    let kept = Arc::new(Mutex::new(None::<WebSocket>));
    let ws = req_io
        .websocket_accept("", &[], |_: &WebSocket, _: Events| {})
        .unwrap();
    *kept.lock().unwrap() = Some(ws.clone());
    drop(ws);
    // The registration's clone is dropped on CLOSED; the app's clone still holds the handle.
    event(&f, WS_EV_CLOSED);
    assert!(f.closes.lock().unwrap().is_empty());
    let last = kept.lock().unwrap().take().unwrap();
    assert_eq!(
        last.send_text("late"),
        Sent::Queued,
        "the fake still takes it"
    );
    drop(last);
    assert_eq!(*f.closes.lock().unwrap(), vec![(1000, Vec::new())]);
    release(&f);
}

#[test]
fn close_is_once_and_later_calls_say_the_client_is_gone() {
    let f = Fake::default();
    let raw = raw_request(&f, WS_REQ_WEBSOCKET);
    // SAFETY: a valid request whose host answers `io` = `f`.
    let mut req_io = unsafe { Request::from_raw(&raw) };
    let ws = req_io
        .websocket_accept("", &[], |_: &WebSocket, _: Events| {})
        .unwrap();
    let other = ws.clone();
    ws.close(4000, &"é".repeat(100));
    other.close(1000, "again");
    let closes = f.closes.lock().unwrap().clone();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].0, 4000);
    assert_eq!(
        closes[0].1.len(),
        122,
        "cut to 123 bytes at a UTF-8 boundary"
    );
    assert_eq!(other.send_text("x"), Sent::Failed(AbiError::ClientGone));
    assert_eq!(other.recv(), Recv::Failed(AbiError::ClientGone));
    assert!(other.is_closed());
    release(&f);
}

#[test]
fn a_refused_accept_frees_the_handler_and_fails_the_call() {
    let f = Fake::default();
    f.accept_fails.store(true, Ordering::SeqCst);
    let dropped = DROPPED.get();
    assert_eq!(
        call_with(&f, 0, || Response::websocket(Echo::default())),
        WS_ERR_INVALID
    );
    assert_eq!(DROPPED.get(), dropped + 1);
}

#[test]
fn a_raw_upgrade_names_its_protocol_and_writes_partially() {
    let f = Fake::default();
    let rc = call_with(&f, 0, || {
        Response::upgrade("echo", |_: &Upgraded, _: Events| {}).header("X-A", "1")
    });
    assert_eq!(rc, WS_OK);
    assert_eq!(
        *f.upgrade_headers.lock().unwrap(),
        vec![
            (b"Upgrade".to_vec(), b"echo".to_vec()),
            (b"X-A".to_vec(), b"1".to_vec())
        ]
    );
    let raw = raw_request(&f, WS_REQ_WEBSOCKET);
    // SAFETY: a valid request whose host answers `io` = `f`.
    let mut req_io = unsafe { Request::from_raw(&raw) };
    let stream = req_io
        .upgrade(&[("Upgrade", "echo")], |_: &Upgraded, _: Events| {})
        .unwrap();
    assert_eq!(stream.write(b"hello"), StreamIo::Done(3));
    assert_eq!(stream.read(&mut [0u8; 8]), StreamIo::End);
    // The server's registration keeps a live connection open whatever the app drops.
    drop(stream.clone());
    assert!(f.closes.lock().unwrap().is_empty());
    stream.close();
    assert_eq!(*f.closes.lock().unwrap(), vec![(0, b"stream".to_vec())]);
    assert_eq!(stream.write(b"x"), StreamIo::Failed(AbiError::ClientGone));
}
