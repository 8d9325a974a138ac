//! WebSockets (RFC 6455) for every app kind, in the server: the opening handshake's checks
//! (`crate::http::upgrade_offer`, protocol over bytes, re-exported as `handshake`), the protocol state of one connection on tungstenite (`session.rs`), and
//! message mode's host calls (`websocket_recv`, `websocket_send`, `websocket_close`), which
//! run under the connection's lock like the raw stream's (`upgraded.rs`).

pub(crate) mod boundary;
pub(crate) use crate::http::upgrade_offer as handshake;
pub(crate) mod session;

use std::time::{Duration, Instant};

use app_abi::raw::{
    WsBytes, WsMessage, WS_ERR_CLIENT_GONE, WS_ERR_INVALID, WS_ERR_STATE, WS_ERR_TOO_LARGE,
    WS_EV_CLOSED, WS_EV_READABLE, WS_EV_WRITABLE, WS_MSG_BINARY, WS_MSG_CLOSE, WS_MSG_TEXT, WS_OK,
    WS_PENDING,
};

use super::upgraded::{Phase, State, Upgraded};
use session::{Received, Sent};

/// `--ws-max-message` and `--ws-ping-interval`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WsConfig {
    pub(crate) max_message: usize,
    /// `None`: never ping.
    pub(crate) ping_interval: Option<Duration>,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message: 16 * 1024 * 1024,
            ping_interval: Some(Duration::from_secs(20)),
        }
    }
}

/// Early output (before the attach) stops being taken at this much.
const EARLY_LIMIT: usize = 64 * 1024;

/// `websocket_recv`: 1 and a message, `WS_PENDING`, or 0 and the end.
pub(crate) fn recv(conn: &Upgraded, message: &mut WsMessage) -> i32 {
    let mut guard = conn.lock();
    let st = &mut *guard;
    let State {
        ws,
        conn: socket,
        phase,
        armed,
        counts,
        ..
    } = st;
    let Some(ws) = ws.as_deref_mut() else {
        log::error!(target: "app", "websocket_recv on a handle from upgrade (use stream_read)");
        return WS_ERR_STATE;
    };
    if conn.take_input_edge() {
        ws.input_may_come();
    }
    let received = match socket.as_deref_mut() {
        Some(socket) => ws.recv(socket),
        None if *phase == Phase::Starting => {
            *armed |= WS_EV_READABLE;
            return WS_PENDING;
        }
        None => ws.ended_for_app(),
    };
    let rc = match received {
        Received::Message { text, data } => {
            message.kind = if text { WS_MSG_TEXT } else { WS_MSG_BINARY };
            message.data = WsBytes::from_slice(data);
            counts.messages_in += 1;
            counts.bytes_in += data.len() as u64;
            crate::stats::ws_message_in(data.len());
            1
        }
        Received::Pending => {
            *armed |= WS_EV_READABLE;
            WS_PENDING
        }
        Received::Ended { code, reason } => {
            message.kind = WS_MSG_CLOSE;
            message.close_code = code;
            message.data = WsBytes::from_slice(reason);
            0
        }
    };
    settle(conn, st);
    rc
}

/// `websocket_send`.
pub(crate) fn send(conn: &Upgraded, kind: u32, data: &[u8]) -> i32 {
    let text = match kind {
        WS_MSG_TEXT => true,
        WS_MSG_BINARY => false,
        _ => return WS_ERR_INVALID,
    };
    if text && std::str::from_utf8(data).is_err() {
        return WS_ERR_INVALID;
    }
    let mut guard = conn.lock();
    let st = &mut *guard;
    if st.app_closed {
        return WS_ERR_STATE;
    }
    let State {
        ws,
        conn: socket,
        early,
        armed,
        counts,
        ..
    } = st;
    let Some(ws) = ws.as_deref_mut() else {
        log::error!(target: "app", "websocket_send on a handle from upgrade (use stream_write)");
        return WS_ERR_STATE;
    };
    if data.len() > ws.max_message() {
        return WS_ERR_TOO_LARGE;
    }
    if socket.is_none() && early.len() >= EARLY_LIMIT {
        *armed |= WS_EV_WRITABLE;
        return WS_PENDING;
    }
    let rc = match ws.send(socket.as_deref_mut(), early, text, data) {
        Sent::Queued => {
            counts.messages_out += 1;
            counts.bytes_out += data.len() as u64;
            crate::stats::ws_message_out(data.len());
            WS_OK
        }
        Sent::Blocked => {
            *armed |= WS_EV_WRITABLE;
            WS_PENDING
        }
        Sent::Gone => WS_ERR_CLIENT_GONE,
    };
    settle(conn, st);
    rc
}

/// `websocket_close`: the closing handshake with `code` (0: none), finished by the server.
pub(crate) fn close(conn: &Upgraded, code: u16, reason: &[u8]) {
    // A reason that is not UTF-8 (or a code that may not be sent) is not worth a protocol
    // error on the client's side: it is left out.
    let reason = std::str::from_utf8(reason).unwrap_or("");
    let code = if code == 0 || sendable(code) {
        code
    } else {
        1000
    };
    conn.close_with(|st| {
        let State {
            ws,
            conn: socket,
            early,
            ..
        } = st;
        if let Some(ws) = ws.as_deref_mut() {
            ws.close(socket.as_deref_mut(), early, code, reason);
        }
    });
}

/// A close code an endpoint may send (RFC 6455 §7.4).
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// After a message-mode step: output that waits starts the `--io-timeout` clock, a session
/// that is over (and flushed) closes its socket, and an app that has not closed hears the end.
fn settle(conn: &Upgraded, st: &mut State) {
    let Some(ws) = st.ws.as_deref() else {
        return;
    };
    let waiting = ws.output_waits() || st.conn.as_ref().is_some_and(|c| c.has_unsent());
    if waiting {
        st.output_since.get_or_insert_with(Instant::now);
    } else if st.armed & WS_EV_WRITABLE == 0 {
        st.output_since = None;
    }
    let (over, failed) = (ws.is_over(), ws.failed());
    if over && !waiting && st.phase == Phase::Open {
        if !st.app_closed {
            st.owed |= WS_EV_CLOSED;
        }
        conn.end(st, failed);
        conn.queue();
    }
    conn.set_deadline(st);
}
