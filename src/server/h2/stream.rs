//! One HTTP/2 stream through the app, on a serving thread: the environ from its pseudo-headers
//! and fields, then the app called through the same ABI and response encoder as an HTTP/1.1
//! request, with the stream's transport (`transport.rs`). An ABI 1.0 app runs on the thread to
//! the end (`call::run`); an ABI 1.1 app's stream parks when its body pends (`park.rs`) and is
//! resumed on whichever serving thread takes it when woken.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use app_abi::raw::{WS_REQ_MULTIPROCESS, WS_REQ_MULTITHREAD};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;

use super::driver::InFlight;
use super::park::{self, ParkedStream};
use super::statics::{self, Asked};
use super::transport::{poll_once, StreamState, StreamTransport};
use super::Queue;
use crate::app::call::{self, Cancel, Progress, RequestFacts, Scratch};
use crate::app::environ::{AddrVars, Environ, RequestParts, HTTP2};
use crate::app::parts::{Head, Noted, VERSION_HTTP2};
use crate::http::encoder::{Outcome, CLIENT_LEFT};
use crate::http::target::{parse_target, split_origin_form};
use crate::listen::Peer;
use crate::server::conn::Conn;
use crate::server::proxied;
use crate::server::serve::{log_access, ThreadScratch};
use crate::server::static_route;
use crate::server::Shared;
use crate::tls::ClientCert;

/// What every stream of a connection shares: who the client is.
pub(crate) struct ConnInfo {
    pub(super) peer: Peer,
    local: Option<SocketAddr>,
    tls: bool,
    client_cert: Option<ClientCert>,
    spelled: AddrVars,
}

impl ConnInfo {
    pub(super) fn of(conn: &mut Conn) -> ConnInfo {
        ConnInfo {
            peer: conn.peer(),
            local: conn.local(),
            tls: conn.is_tls(),
            client_cert: conn.client_cert().cloned(),
            spelled: conn.spelled_addrs().clone(),
        }
    }
}

/// A stream the HTTP/2 thread accepted, for a serving thread to run.
pub(crate) struct StreamJob {
    pub(super) request: http::Request<RecvStream>,
    pub(super) respond: SendResponse<Bytes>,
    pub(super) info: Arc<ConnInfo>,
    /// Where the stream goes back when its app wakes it, if it parks.
    pub(super) queue: Arc<Queue>,
    /// Counted against the connection's streams until the app is done with it.
    pub(super) _in_flight: InFlight,
}

/// Runs one stream through the app on serving thread `scratch.thread`.
pub(super) fn start(job: StreamJob, shared: &Shared, scratch: &mut ThreadScratch) {
    let StreamJob {
        request,
        mut respond,
        info,
        queue,
        _in_flight,
    } = job;
    // A stream the client reset while it was queued (rapid reset) never reaches the app.
    if let Some(Poll::Ready(_)) = poll_once(|cx| respond.poll_reset(cx)) {
        log::debug!("{}: HTTP/2 stream reset before it ran", info.peer);
        return;
    }
    let started = crate::stats::clock().or_else(|| crate::logging::access_log()?.start());
    let config = &shared.config;
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().as_bytes();
    let raw_target = match parts.uri.path_and_query() {
        Some(path) => path.as_str().as_bytes(),
        None => parts
            .uri
            .authority()
            .map_or(&b"/"[..], |a| a.as_str().as_bytes()),
    };
    // `http` split the `:path` at its `?` already.
    let split = parts.uri.path_and_query().and_then(|p| {
        let path = p.as_str().starts_with('/').then(|| p.path().as_bytes())?;
        split_origin_form(method, path, p.query().map(str::as_bytes))
    });
    let target = match split.map_or_else(|| parse_target(method, raw_target), Ok) {
        Ok(target) => target,
        Err(e) => {
            crate::logging::refused(info.peer.host(), e.status(), &e);
            crate::stats::rejected(e.status());
            let status =
                http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
            let mut response = http::Response::new(());
            *response.status_mut() = status;
            let _ = respond.send_response(response, true);
            return;
        }
    };
    // The fields as bytes, walked once (the parts are filled from them too); whether a Host
    // came is noted on the way rather than looked up in h2's map.
    let mut fields: Vec<(&[u8], &[u8])> = Vec::with_capacity(parts.headers.len() + 1);
    let mut has_host = false;
    for (name, value) in &parts.headers {
        has_host |= name == http::header::HOST;
        fields.push((name.as_str().as_bytes(), value.as_bytes()));
    }
    // `:authority` stands for Host (RFC 9113 §8.3.1) unless the client sent both.
    let authority = parts
        .uri
        .authority()
        .filter(|_| !has_host)
        .map(|authority| (&b"host"[..], authority.as_str().as_bytes()));
    if let Some(host) = authority {
        fields.insert(0, host);
    }
    let sent = &fields[usize::from(authority.is_some())..];
    let headers = fields.iter().copied();
    let mut flags = WS_REQ_MULTITHREAD;
    if config.multiprocess {
        flags |= WS_REQ_MULTIPROCESS;
    }
    let is_head = method == b"HEAD";
    let facts = RequestFacts {
        is_head,
        // HTTP/1.0's framing: the body's bytes as they are, never chunked.
        version_minor: 0,
        keep_alive: true,
        flags,
        defer_flush: true,
        frames_heads: true,
    };
    let client = proxied::client(info.peer, info.tls, headers.clone(), &config.proxies);
    let thread = scratch.thread;
    let buffers = &mut scratch.buffers;
    let request_parts = RequestParts {
        method,
        target,
        version_minor: HTTP2,
        headers,
        local: info.local,
        remote: client.remote,
        url_scheme: client.scheme,
        strip_forwarding: client.strip_forwarding,
        flags,
        spelled: (client.remote == info.peer).then_some(&info.spelled),
        client_cert: info.client_cert.as_ref(),
        noted: None,
    };
    let (body, respond) = match &config.statics {
        None => (body, respond),
        Some(statics) => {
            let asked = Asked {
                method,
                path: target.path,
                fields: &fields,
                peer: info.peer,
            };
            let stream = (body, respond);
            match statics::answer(
                statics,
                asked,
                stream,
                shared,
                &queue,
                (thread, &mut buffers.date),
            ) {
                Err(stream) => stream,
                Ok((status, body_bytes)) => {
                    buffers.environ.build(request_parts);
                    static_route::count_and_log(status, body_bytes, &buffers.environ, started);
                    return;
                }
            }
        }
    };
    let mut request_parts = request_parts;
    if shared.app.wants_parts() {
        let noted = buffers.environ.parts.fill(Head {
            version: VERSION_HTTP2,
            method,
            scheme: parts.uri.scheme_str().unwrap_or_default().as_bytes(),
            authority: parts
                .uri
                .authority()
                .map_or(&b""[..], |a| a.as_str().as_bytes()),
            target: parts
                .uri
                .path_and_query()
                .map_or(&b""[..], |p| p.as_str().as_bytes()),
            fields: sent.iter().copied(),
            strip_forwarding: client.strip_forwarding,
            // h2's fields lie in separate buffers.
            block: &[],
        });
        // The environ's SERVER_NAME from `:authority` when no Host came, as with the fields.
        let authority_as_host = authority.map(|(_, value)| value);
        request_parts.noted = Some(Noted {
            host: noted.host.or(authority_as_host),
            authority_as_host,
            ..noted
        });
    }
    let parts = call::parts_for(&shared.app, &buffers.environ);
    let environ = if call::environ_read(&shared.app) {
        buffers.environ.build(request_parts)
    } else {
        let fields_in_parts = request_parts.noted.is_some();
        buffers
            .environ
            .leave_out(request_parts.remote, fields_in_parts)
    };
    let parks_on = shared.app.defers().then(|| Arc::clone(&queue));
    let mut state = StreamState::new(body, respond, config, parks_on, info.peer, queue.runtime());
    let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
    shared.mark_busy(thread, true);
    let deadline = config.request_timeout.map(|limit| Instant::now() + limit);
    crate::stats::request_started();
    crate::stats::http2_stream();
    let mut transport = StreamTransport::new(&mut state, shared, thread, &mut buffers.date);
    if !transport.s.parks() {
        let outcome = call::run(
            &shared.app,
            (environ, parts),
            facts,
            &mut transport,
            &mut buffers.call,
        );
        return end(
            transport,
            outcome,
            (&buffers.environ, &mut buffers.call),
            started,
        );
    }
    let progress = call::start(
        &shared.app,
        &mut buffers.environ,
        facts,
        &mut transport,
        &mut buffers.call,
    );
    match progress {
        Progress::Done(outcome) => end(
            transport,
            outcome,
            (&buffers.environ, &mut buffers.call),
            started,
        ),
        Progress::Pending(call) => {
            transport.head_before_park();
            shared.mark_idle(thread);
            park::park(ParkedStream {
                call,
                environ: std::mem::take(&mut buffers.environ),
                state,
                info,
                started,
                deadline,
                cancel: None,
                _in_flight,
            });
        }
    }
}

/// Runs a parked stream's app again (woken, or its client reset the stream).
pub(super) fn resume(parked: Box<ParkedStream>, shared: &Shared, scratch: &mut ThreadScratch) {
    let ParkedStream {
        call,
        environ,
        mut state,
        info,
        started,
        deadline,
        cancel,
        _in_flight,
    } = *parked;
    let thread = scratch.thread;
    let buffers = &mut scratch.buffers;
    let _serialised = shared.app_lock.as_ref().map(|lock| lock.lock());
    shared.mark_busy(thread, true);
    let mut transport = StreamTransport::new(&mut state, shared, thread, &mut buffers.date);
    let cancel = match transport.client_left() {
        true => Some(Cancel::ClientGone),
        // Past --timeout (504) or the graceful timeout (503).
        false => cancel,
    };
    let progress = call::resume(
        &shared.app,
        &environ,
        call,
        &mut transport,
        cancel,
        true,
        &mut buffers.call,
    );
    match progress {
        Progress::Done(outcome) => {
            // The access log reads the environ the stream started with.
            end(transport, outcome, (&environ, &mut buffers.call), started);
        }
        Progress::Pending(call) => {
            transport.head_before_park();
            shared.mark_idle(thread);
            park::park(ParkedStream {
                call,
                environ,
                state,
                info,
                started,
                deadline,
                cancel: None,
                _in_flight,
            });
        }
    }
}

/// The exchange is over: ends the stream (or resets it), counts and logs it.
fn end(
    mut transport: StreamTransport<'_>,
    mut outcome: Outcome,
    (environ, response): (&Environ, &mut Scratch),
    started: Option<Instant>,
) {
    let held = std::mem::take(response.hold());
    if !transport.finish(&held, outcome.complete) && outcome.status != CLIENT_LEFT {
        log::debug!("{}: HTTP/2 stream reset mid-response", transport.s.peer);
    }
    *response.hold() = held;
    response.clear_held();
    if transport.client_left() && transport.s.send.is_none() && !transport.s.ended {
        outcome.status = CLIENT_LEFT;
    }
    if let Some(park) = &transport.s.park {
        park.done();
    }
    transport.shared.mark_busy(transport.thread, false);
    crate::stats::response(outcome.status, started);
    log_access(environ, response, outcome, started);
}
