//! WebSockets in safe Rust (ABI 1.2): the server speaks RFC 6455, this app sees messages.
//!
//! - `/ws`: an echo. A message the client cannot take yet is held (and no more is read) until the
//!   server says the client reads again: back-pressure without a thread or a growing buffer.
//! - `/chat`: a broadcast. Every text or binary message a member sends goes to every member of
//!   this worker process, the sender included. A member whose client does not keep up misses
//!   messages (a send that would block is dropped for that member), so one slow client never holds
//!   the others back or grows the server's memory.
//! - anything else: 426 with a line saying which routes speak WebSocket.
//!
//! Served as `webserver target/debug/libws_echo.so:app`.

use app_abi::{
    export_app, App, Body, Events, InitContext, Message, Recv, Request, Response, Sent, WebSocket,
    WebSocketHandler,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct WsEcho {
    chat: Arc<Chat>,
}

impl App for WsEcho {
    fn init(ctx: &InitContext<'_>) -> Result<Self, String> {
        ctx.require_abi_1_2()?;
        Ok(WsEcho {
            chat: Arc::default(),
        })
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        // A request that asks for a WebSocket goes on to be accepted even when its handshake is
        // invalid: the server's refusal (400, or 426 for another version) answers it then.
        if !req.is_websocket() && req.header("upgrade").is_none() {
            return Response::text(426, "/ws (echo) and /chat (broadcast) speak WebSocket\n")
                .header("Sec-WebSocket-Version", "13");
        }
        match req.path() {
            b"/ws" => Response::websocket(Echo::default()),
            b"/chat" => self.chat.join(req),
            _ => Response::not_found(),
        }
    }
}

/// The echo: holds at most one message.
#[derive(Default)]
struct Echo {
    held: Option<Message>,
}

impl WebSocketHandler for Echo {
    fn on_event(&mut self, ws: &WebSocket, _events: Events) {
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

/// The chat's members, by id.
#[derive(Default)]
struct Chat {
    members: Mutex<Vec<(u64, WebSocket)>>,
    next_id: AtomicU64,
}

impl Chat {
    fn members(&self) -> std::sync::MutexGuard<'_, Vec<(u64, WebSocket)>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts the WebSocket and adds it to the members.
    fn join(self: &Arc<Self>, req: &mut Request<'_>) -> Response {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let member = Member {
            chat: self.clone(),
            id,
        };
        match req.websocket_accept("", &[], member) {
            Ok(ws) => {
                self.members().push((id, ws));
                Response::started(Body::empty())
            }
            Err(err) => {
                req.error(&format!("cannot accept the WebSocket: {err}"));
                Response::text(500, "cannot accept the WebSocket\n")
            }
        }
    }

    /// Sends `msg` to every member; one that cannot take it now misses it, one that is gone
    /// leaves.
    fn broadcast(&self, msg: &Message) {
        // Clones, so no send runs under the members' lock.
        let members: Vec<(u64, WebSocket)> = self.members().clone();
        for (id, ws) in members {
            if let Sent::Failed(_) = ws.send(msg.as_outgoing()) {
                self.leave(id);
            }
        }
    }

    /// Removes member `id` (its last clone here: the server may then release the connection).
    fn leave(&self, id: u64) {
        let gone: Vec<_> = {
            let mut members = self.members();
            let (gone, stay) = members.drain(..).partition(|(m, _)| *m == id);
            *members = stay;
            gone
        };
        drop(gone);
    }
}

/// One member's handler: what it reads goes to everyone.
struct Member {
    chat: Arc<Chat>,
    id: u64,
}

impl WebSocketHandler for Member {
    fn on_event(&mut self, ws: &WebSocket, _events: Events) {
        loop {
            match ws.recv() {
                Recv::Message(msg) => self.chat.broadcast(&msg),
                Recv::Pending => return,
                Recv::Closed { .. } | Recv::Failed(_) => {
                    self.chat.leave(self.id);
                    return ws.close(1000, "");
                }
            }
        }
    }
}

export_app!(
    app,
    WsEcho,
    name = "ws-echo",
    version = env!("CARGO_PKG_VERSION")
);
