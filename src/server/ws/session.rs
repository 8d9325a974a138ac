//! One WebSocket's RFC 6455 state: tungstenite's sans-I/O `WebSocketContext` over the
//! connection's non-blocking socket (a `WouldBlock` leaves its state intact, exactly a
//! non-blocking socket's contract), the last message handed to the app, whether output waits
//! for the client, the liveness pings, and how the session ended. Every method runs under the
//! connection's lock (`upgraded.rs`) and never waits.
//!
//! tungstenite reports a protocol violation as an error and leaves the connection active, so
//! the session answers it with the close code RFC 6455 §7.4.1 assigns (`close_code_for`), then
//! waits for the client's close (up to `--io-timeout`) before the socket goes.
//! The streams the context reads and writes are `session/wire.rs`.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tungstenite::error::Error;
use tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, Utf8Bytes};
use tungstenite::protocol::WebSocketContext;
use tungstenite::{Bytes, Message};

use super::boundary::FrameBoundary;
use super::WsConfig;
use crate::server::conn::Conn;

mod wire;

use wire::{close_code_for, context, wire, would_block, Early, Wire};

/// Messages closer together than this make a connection busy: its quiet context is kept for
/// `IDLE_DROP` rather than dropped at once, so a busy connection does not make a new context for
/// every message, while one that exchanged a single message costs none as soon as it is idle.
const BUSY_GAP: Duration = Duration::from_millis(100);
const IDLE_DROP: Duration = Duration::from_secs(1);

/// What a read for the app gave.
pub(crate) enum Received<'a> {
    /// A whole text (valid UTF-8) or binary message.
    Message { text: bool, data: &'a [u8] },
    /// Nothing complete now: the app is told when input comes.
    Pending,
    /// The session ended: the code and reason the app sees.
    Ended { code: u16, reason: &'a [u8] },
}

/// What a send gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Queued (and written as far as the socket takes it).
    Queued,
    /// Not taken: earlier output still waits for the client.
    Blocked,
    /// The session ended.
    Gone,
}

/// The RFC 6455 state of one connection in message mode.
pub(crate) struct WsSession {
    /// Made on first use, so a connection that only did its handshake has none.
    ctx: Option<Box<WebSocketContext>>,
    max_message: usize,
    ping_interval: Option<Duration>,
    /// The payload of the message handed to the app last (valid until its next recv/close).
    received: Vec<u8>,
    /// The payload of the message being sent (its allocation is reused).
    outgoing: BytesMut,
    /// Where the input the context read stands.
    seen: FrameBoundary,
    /// Plain TCP: the last read emptied the socket (it came up short, or found nothing) and no
    /// epoll edge came since, so another read would only find nothing (`Wire::read`).
    input_drained: bool,
    /// The context's output did not all go out (the socket was full).
    out_waiting: bool,
    /// We sent a close and wait for the client's.
    closing: bool,
    /// The session is over on the wire: the socket may close once output is out.
    over: bool,
    /// How it ended, as the app sees it.
    end: Option<(u16, Vec<u8>)>,
    /// Whether the end came from a failure (no orderly close: 1006, or a protocol error).
    failed: bool,
    last_alive: Instant,
    ping_sent: Option<Instant>,
    /// When the last message came, and whether it came within `BUSY_GAP` of the one before.
    last_message: Option<Instant>,
    busy: bool,
    /// A busy connection's quiet context: since when it has held nothing (`tick` drops it
    /// `IDLE_DROP` later if it still does).
    quiet_since: Option<Instant>,
}

impl WsSession {
    pub(crate) fn new(config: &WsConfig) -> WsSession {
        WsSession {
            ctx: None,
            max_message: config.max_message,
            ping_interval: config.ping_interval,
            received: Vec::new(),
            outgoing: BytesMut::new(),
            seen: FrameBoundary::default(),
            input_drained: false,
            out_waiting: false,
            closing: false,
            over: false,
            end: None,
            failed: false,
            last_alive: Instant::now(),
            ping_sent: None,
            last_message: None,
            busy: false,
            quiet_since: None,
        }
    }

    fn ctx(&mut self) -> &mut WebSocketContext {
        context(&mut self.ctx, self.max_message)
    }

    /// A read of the context's, with what it reads followed.
    fn read(&mut self, conn: &mut Conn) -> tungstenite::Result<Message> {
        let ctx = context(&mut self.ctx, self.max_message);
        ctx.read(&mut Wire {
            conn,
            seen: Some(&mut self.seen),
            drained: Some(&mut self.input_drained),
        })
    }

    /// An epoll edge came: the socket may hold input again.
    pub(crate) fn input_may_come(&mut self) {
        self.input_drained = false;
    }

    /// Whether the context holds nothing that matters: no partial frame or open message read
    /// (after a read that found the socket empty), no output, no closing handshake. A fresh
    /// context is then the same as this one.
    fn holds_nothing(&self) -> bool {
        self.seen.quiet()
            && !self.out_waiting
            && !self.closing
            && self.ctx.as_ref().is_some_and(|ctx| ctx.can_write())
    }

    /// After a read that found the socket empty: a context that holds nothing is dropped with
    /// its buffers — at once on a connection that is not busy (an idle WebSocket then costs no
    /// context at all), `IDLE_DROP` later on a busy one (`tick`).
    fn drop_if_quiet(&mut self, now: Instant) {
        if !self.holds_nothing() {
            self.quiet_since = None;
        } else if self.busy {
            self.quiet_since.get_or_insert(now);
        } else {
            self.drop_context();
        }
    }

    /// The context and the send buffer go (a quiet connection holds neither).
    fn drop_context(&mut self) {
        self.ctx = None;
        self.outgoing = BytesMut::new();
    }

    /// A message came at `now`.
    fn message_at(&mut self, now: Instant) {
        self.busy = self.last_message.is_some_and(|t| now < t + BUSY_GAP);
        self.last_message = Some(now);
        self.quiet_since = None;
    }

    /// The largest message an app may send.
    pub(crate) fn max_message(&self) -> usize {
        self.max_message
    }

    /// Output waits for the client to read.
    pub(crate) fn output_waits(&self) -> bool {
        self.out_waiting
    }

    /// The session is over on the wire (the socket may close once its output is out).
    pub(crate) fn is_over(&self) -> bool {
        self.over
    }

    /// The session ended by a failure rather than an orderly close (for the app: CLOSED).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The close code for the access log, once ended.
    pub(crate) fn close_code(&self) -> Option<u16> {
        self.end.as_ref().map(|(code, _)| *code)
    }

    /// A sign of life from the client (input it sent that nobody has read yet counts).
    pub(crate) fn alive(&mut self, now: Instant) {
        self.last_alive = now;
        self.ping_sent = None;
    }

    /// When the session needs the sweep: the next ping, the end of the wait for its pong, or
    /// the drop of a busy connection's quiet context.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.over {
            return None;
        }
        let ping = self
            .ping_interval
            .map(|interval| self.ping_sent.unwrap_or(self.last_alive) + interval);
        let drop = self
            .quiet_since
            .filter(|_| self.ctx.is_some())
            .map(|since| since + IDLE_DROP);
        ping.into_iter().chain(drop).min()
    }

    fn ended(&mut self, code: u16, reason: &[u8], failed: bool) {
        if self.end.is_none() {
            self.end = Some((code, reason.to_vec()));
        }
        self.failed |= failed;
    }

    /// Sends the context's queued output as far as the socket takes it. False if the
    /// connection failed.
    pub(crate) fn flush(&mut self, conn: &mut Conn) -> bool {
        let Some(ctx) = self.ctx.as_deref_mut() else {
            return true;
        };
        match ctx.flush(&mut wire(conn)) {
            Ok(()) => {
                self.out_waiting = false;
                true
            }
            Err(e) if would_block(&e) => {
                self.out_waiting = true;
                true
            }
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                // The closing handshake is complete (tungstenite wrote the last frame).
                self.out_waiting = conn.has_unsent();
                self.over = true;
                true
            }
            Err(e) => {
                log::debug!("{}: WebSocket output failed: {e}", conn.peer());
                self.ended(1006, b"", true);
                self.over = true;
                false
            }
        }
    }

    /// The next message for the app. Reads only while the session's own output is out: a
    /// client that floods pings without reading is paced by its own reading (one pong waits at
    /// most, tungstenite replaces an unsent one).
    pub(crate) fn recv(&mut self, conn: &mut Conn) -> Received<'_> {
        if self.end.is_some() {
            return self.ended_for_app();
        }
        if !self.flush(conn) || self.out_waiting {
            if self.end.is_some() {
                return self.ended_for_app();
            }
            return Received::Pending;
        }
        loop {
            let read = self.read(conn);
            match read {
                Ok(message) => {
                    let now = Instant::now();
                    self.alive(now);
                    match message {
                        Message::Text(text) => {
                            self.message_at(now);
                            self.received.clear();
                            self.received.extend_from_slice(text.as_bytes());
                            return Received::Message {
                                text: true,
                                data: &self.received,
                            };
                        }
                        Message::Binary(data) => {
                            self.message_at(now);
                            self.received.clear();
                            self.received.extend_from_slice(&data);
                            return Received::Message {
                                text: false,
                                data: &self.received,
                            };
                        }
                        Message::Close(frame) => {
                            // tungstenite queued the reply; it goes out now or on the next edge.
                            let (code, reason) = frame.map_or((1005, Vec::new()), |f| {
                                (u16::from(f.code), f.reason.as_bytes().to_vec())
                            });
                            self.ended(code, &reason, false);
                            self.flush(conn);
                            if self.closing {
                                self.over = true;
                            }
                            return self.ended_for_app();
                        }
                        // Pongs are answered by tungstenite; pongs and raw frames are the
                        // server's.
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                            self.flush(conn);
                            if self.out_waiting {
                                return Received::Pending;
                            }
                        }
                    }
                }
                Err(e) if would_block(&e) => {
                    self.flush(conn);
                    self.drop_if_quiet(Instant::now());
                    return Received::Pending;
                }
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                    self.over = true;
                    self.ended(1005, b"", false);
                    return self.ended_for_app();
                }
                Err(e) => {
                    self.fail(conn, &e);
                    return self.ended_for_app();
                }
            }
        }
    }

    /// A violation answered with its close code, or a connection that is gone.
    fn fail(&mut self, conn: &mut Conn, e: &Error) {
        match close_code_for(e) {
            Some(code) => {
                // _Fail the WebSocket Connection_ (RFC 6455 §7.1.7): the close frame, then the
                // TCP close once it is out, without waiting for a reply — the context cannot
                // read past the error (tungstenite keeps the frame it refused).
                log::debug!("{}: WebSocket closed with {code}: {e}", conn.peer());
                let reason = e.to_string();
                let reason = truncate_utf8(&reason, 123);
                self.send_close(conn, code, reason);
                self.ended(code, reason.as_bytes(), true);
                self.over = true;
            }
            None => {
                log::debug!("{}: WebSocket connection lost: {e}", conn.peer());
                self.ended(1006, b"", true);
                self.over = true;
            }
        }
    }

    pub(crate) fn ended_for_app(&self) -> Received<'_> {
        let (code, reason) = self
            .end
            .as_ref()
            .map_or((1006, &[][..]), |(code, reason)| (*code, reason.as_slice()));
        Received::Ended { code, reason }
    }

    /// Queues one message from the app (before the attach: into `early`); a text message's
    /// UTF-8 was checked by the caller.
    pub(crate) fn send(
        &mut self,
        conn: Option<&mut Conn>,
        early: &mut Vec<u8>,
        text: bool,
        data: &[u8],
    ) -> Sent {
        if self.end.is_some() || self.closing || self.over {
            return Sent::Gone;
        }
        // The caller checked a text message's UTF-8 (`websocket_send`). The payload goes through
        // the session's own buffer: tungstenite copies it into its output and drops the frame,
        // so the buffer's next `reserve` takes the same allocation back (no allocation, and no
        // second UTF-8 check, per message).
        self.outgoing.clear();
        self.outgoing.extend_from_slice(data);
        let opcode = OpCode::Data(if text { OpData::Text } else { OpData::Binary });
        let message = Message::Frame(Frame::message(self.outgoing.split().freeze(), opcode, true));
        let Some(conn) = conn else {
            let written = self.ctx().write(&mut Early(early), message);
            return if written.is_ok() {
                Sent::Queued
            } else {
                Sent::Gone
            };
        };
        if !self.flush(conn) {
            return Sent::Gone;
        }
        if self.out_waiting || conn.has_unsent() {
            return Sent::Blocked;
        }
        let written = self.ctx().write(&mut wire(conn), message);
        match written {
            Ok(()) => {
                self.flush(conn);
                Sent::Queued
            }
            Err(e) if would_block(&e) => {
                self.out_waiting = true;
                Sent::Queued
            }
            Err(e) => {
                log::debug!("{}: WebSocket send failed: {e}", conn.peer());
                self.ended(1006, b"", true);
                self.over = true;
                Sent::Gone
            }
        }
    }

    /// Starts the closing handshake with `code` (0: none) unless it is already closing or over.
    pub(crate) fn close(
        &mut self,
        conn: Option<&mut Conn>,
        early: &mut Vec<u8>,
        code: u16,
        reason: &str,
    ) {
        if self.closing || self.over {
            return;
        }
        let app_code = if code == 0 { 1005 } else { code };
        match conn {
            Some(conn) => {
                if self.end.is_some() {
                    // The client closed first and was answered: nothing more to say.
                    self.over = true;
                    return;
                }
                self.send_close(conn, code, reason);
            }
            None => {
                let frame = close_frame(code, reason);
                let _ = self.ctx().close(&mut Early(early), frame);
                self.closing = true;
            }
        }
        self.ended(app_code, truncate_utf8(reason, 123).as_bytes(), false);
    }

    fn send_close(&mut self, conn: &mut Conn, code: u16, reason: &str) {
        self.closing = true;
        let frame = close_frame(code, reason);
        match self.ctx().close(&mut wire(conn), frame) {
            Ok(()) => self.out_waiting = false,
            Err(e) if would_block(&e) => self.out_waiting = true,
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => self.over = true,
            Err(_) => {
                self.ended(1006, b"", true);
                self.over = true;
            }
        }
    }

    /// The sweep's and the events' work: the closing handshake's reply, pings, liveness.
    /// Returns false when the client is to be given up (no pong within an interval).
    pub(crate) fn tick(&mut self, conn: &mut Conn, now: Instant) -> bool {
        if self
            .quiet_since
            .is_some_and(|since| now >= since + IDLE_DROP)
        {
            self.quiet_since = None;
            if self.holds_nothing() {
                self.drop_context();
            }
        }
        if self.closing && !self.over {
            // Read (and drop) what precedes the client's close reply.
            loop {
                match self.read(conn) {
                    Ok(Message::Close(_)) | Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                        self.flush(conn);
                        self.over = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if would_block(&e) => break,
                    Err(_) => {
                        self.over = true;
                        break;
                    }
                }
            }
            return true;
        }
        let Some(interval) = self.ping_interval else {
            return true;
        };
        if self.over || self.end.is_some() {
            return true;
        }
        match self.ping_sent {
            Some(sent) if now >= sent + interval => {
                log::debug!(
                    "{}: WebSocket answered no ping within {interval:?}",
                    conn.peer()
                );
                self.ended(1006, b"", true);
                self.over = true;
                false
            }
            Some(_) => true,
            None if now >= self.last_alive + interval => {
                self.ping_sent = Some(now);
                let pinged = self
                    .ctx()
                    .write(&mut wire(conn), Message::Ping(Bytes::new()));
                match pinged {
                    Ok(()) => {
                        self.flush(conn);
                    }
                    Err(e) if would_block(&e) => self.out_waiting = true,
                    Err(_) => {}
                }
                true
            }
            None => true,
        }
    }

    /// The socket closed: once the app closed too, the received message's buffer goes (until
    /// then the app may still hold the last message).
    pub(crate) fn forget_received_if(&mut self, app_closed: bool) {
        if app_closed {
            self.received = Vec::new();
            self.drop_context();
        }
    }
}

fn close_frame(code: u16, reason: &str) -> Option<CloseFrame> {
    (code != 0).then(|| CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(truncate_utf8(reason, 123).to_owned()),
    })
}

/// At most `max` bytes of `text`, cut at a character boundary (a close reason's limit).
fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
