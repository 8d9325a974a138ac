//! WebSockets (RFC 6455) for every app kind, in the server: the opening handshake's checks
//! (`handshake.rs`) and message mode's host calls.

pub(crate) mod handshake;

use app_abi::raw::{WsMessage, WS_ERR_STATE};

use super::upgraded::Upgraded;

/// `websocket_recv`.
pub(crate) fn recv(_conn: &Upgraded, _message: &mut WsMessage) -> i32 {
    WS_ERR_STATE
}

/// `websocket_send`.
pub(crate) fn send(_conn: &Upgraded, _kind: u32, _data: &[u8]) -> i32 {
    WS_ERR_STATE
}

/// `websocket_close`.
pub(crate) fn close(conn: &Upgraded, _code: u16, _reason: &[u8]) {
    conn.close();
}
