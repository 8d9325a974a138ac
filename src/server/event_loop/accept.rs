//! Accepting: a listener's event, from `accept` to the connection served or parked.

use std::io;
use std::sync::Mutex;

use super::{lock, serve, Loop, INLINE_ACCEPTS};
use crate::server::accept_pause::AcceptError;
use crate::server::conn::Conn;
use crate::server::h2;
use crate::server::listener::Listener;
use crate::server::serve::ThreadScratch;
use crate::server::Shared;
use crate::tls::TlsSession;

/// Accept every pending connection of listener `index`. This thread serves the last one
/// itself, reading the request that usually arrives right behind the handshake without waiting
/// for an event. With more than one serving thread the others are parked: registering them
/// reports their input to the other threads at once. The only serving thread would only find
/// them again in its next `epoll_wait`, so it serves up to `INLINE_ACCEPTS` of them here at once
/// too: a connection served and closed without ever waiting (`Connection: close`) then costs no
/// `epoll_ctl`, no event and no deregistration on close. (Not "while no other thread waits":
/// one that is about to wait again would then find the connection served after this thread's,
/// one slow request after another.)
///
/// The listener's lock is held for each `accept` only, never while an app runs: the
/// coordinator takes the listener out under it when a drain begins, and must not wait for an
/// app to do so.
pub(super) fn accept_all(
    index: usize,
    shared_loop: &Loop,
    shared: &Shared,
    scratch: &mut ThreadScratch,
) {
    let Some(listener) = shared_loop.listeners.get(index) else {
        return;
    };
    let mut accepted: Option<Box<Conn>> = None;
    let mut inline = 0;
    loop {
        let conn = match accept_one(listener, shared_loop, shared) {
            Accepted::Conn(conn) => conn,
            Accepted::Refused => continue,
            Accepted::NoMore => break,
        };
        let Some(previous) = accepted.replace(conn) else {
            continue;
        };
        if inline < INLINE_ACCEPTS && shared.config.threads <= 1 {
            inline += 1;
            serve(previous, shared_loop, shared, scratch);
            continue;
        }
        if let Some(ready) = shared_loop.slots.park(previous, shared, &shared_loop.epoll) {
            // Its input came in while it was being registered, and the event went to a thread
            // that found the slot busy. Served here, it would hold back the connection accepted
            // after it for as long as its app runs: the next free thread takes it instead.
            shared_loop.slots.queue_conn(ready);
        }
    }
    if let Some(conn) = accepted {
        serve(conn, shared_loop, shared, scratch);
    }
}

/// What one `accept` on a listener gave.
enum Accepted {
    Conn(Box<Conn>),
    /// A connection came and was closed at once (a proxy not allowed, no TLS session).
    Refused,
    /// The queue is empty, the listener is gone or draining, or accepting rests.
    NoMore,
}

/// Accept one connection of `listener` and make it a `Conn` (its slot reserved, its TLS session
/// begun).
fn accept_one(listener: &Mutex<Option<Listener>>, shared_loop: &Loop, shared: &Shared) -> Accepted {
    let (accepted_now, ticket) = {
        let guard = lock(listener);
        // Once a stop is asked, new connections stay in the shared backlog for the workers that
        // keep serving, even before the coordinator has closed this process's listener.
        let Some(listener) = guard.as_ref().filter(|_| !shared.draining()) else {
            return Accepted::NoMore;
        };
        let Some(ticket) = shared_loop.accept_pause.may_accept(shared.coarse_now()) else {
            // Out of descriptors a moment ago: the coordinator re-arms the listener when the
            // rest is over, so new arrivals wait in the queue instead of failing one by one.
            return Accepted::NoMore;
        };
        match listener.accept() {
            Ok(accepted_now) => (accepted_now, ticket),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::NoMore,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Accepted::Refused,
            Err(e) => {
                crate::stats::accept_error();
                return match AcceptError::of(&e) {
                    AcceptError::ThisConnection => {
                        log::debug!("accept: a queued connection failed: {e}");
                        Accepted::Refused
                    }
                    AcceptError::NoResources => {
                        // The connection stays queued; accepting is retried on a timer.
                        shared_loop.accept_pause.failed(&e, shared.coarse_now());
                        Accepted::NoMore
                    }
                };
            }
        }
    };
    shared_loop
        .accept_pause
        .accepted(ticket, shared.coarse_now());
    if !shared
        .config
        .proxies
        .admits(accepted_now.peer, accepted_now.options)
    {
        return Accepted::Refused;
    }
    let token = shared_loop.slots.reserve();
    let mut conn = Box::new(Conn::new(
        accepted_now,
        token,
        shared.coarse_now(),
        shared.config.header_timeout,
    ));
    let options = conn.listener_options();
    let config = match h2::serves_http2(options, &shared.config) {
        true => shared.config.tls_h2.as_ref(),
        false => shared.config.tls.as_ref(),
    };
    if let Some(config) = config.filter(|_| options.tls) {
        match TlsSession::new(config) {
            Ok(session) => conn.set_tls(session),
            Err(e) => {
                log::warn!("{}: cannot start a TLS session: {e}", conn.peer());
                shared_loop.slots.close(conn);
                return Accepted::Refused;
            }
        }
    }
    Accepted::Conn(conn)
}
