use app_abi::{export_app, App, Events, InitContext, Message, Recv, Request, Response, Sent};

pub struct Hello;

impl App for Hello {
    fn init(_ctx: &InitContext<'_>) -> Result<Self, String> {
        Ok(Hello) // an Err(message) refuses the load: "init failed: message"
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        if req.path() == b"/ws" {
            return websocket_echo(req);
        }
        // `?name=J%C3%BCrgen` arrives percent-decoded; absent, it is "world".
        let name = req.query_get("name").unwrap_or_else(|| "world".into());
        Response::text(200, format!("Hello, {name}! path={}\n", req.path_str()))
    }
}

/// `/ws`: a WebSocket echo. The server speaks the protocol (handshake, frames, pings, close);
/// the app sees whole messages, and is called back when one arrives or the client can take more.
fn websocket_echo(req: &Request<'_>) -> Response {
    if !req.is_websocket() {
        return Response::text(426, "/ws speaks WebSocket\n").header("Sec-WebSocket-Version", "13");
    }
    let mut held: Option<Message> = None; // a message the client cannot take yet
    Response::websocket(move |ws: &app_abi::WebSocket, _events: Events| loop {
        let msg = match held.take() {
            Some(msg) => msg,
            None => match ws.recv() {
                Recv::Message(msg) => msg,
                Recv::Pending => return, // called again when a message arrives
                Recv::Closed { .. } | Recv::Failed(_) => return ws.close(1000, ""),
            },
        };
        if ws.send(msg.as_outgoing()) == Sent::WouldBlock {
            held = Some(msg); // called again when the client reads
            return;
        }
    })
}

export_app!(app, Hello, name = "{{name}}", version = "0.1.0");
