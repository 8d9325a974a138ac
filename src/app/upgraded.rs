//! What the app's upgraded-connection host calls (`host_upgrade.rs`) and the server's upgraded
//! connections (`crate::server::upgraded`, which re-exports these) say to each other: how the
//! app sees the connection, and what one non-blocking step gave.

/// What one non-blocking step gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<T> {
    Done(T),
    /// Nothing now: an event follows.
    Pending,
    /// The connection is closed (or failed).
    Gone,
    /// Not a call for this kind of handle (a byte-stream call on a WebSocket's).
    Refused,
}

/// How the app sees the connection.
pub(crate) enum Mode {
    /// `upgrade`: bytes. `websocket` when the 101 said `Upgrade: websocket` (an app with its own
    /// WebSocket stack, axum): the drain still says goodbye with a close frame.
    Raw { websocket: bool },
    /// `websocket_accept`: RFC 6455 messages, framed by the server.
    WebSocket,
}
