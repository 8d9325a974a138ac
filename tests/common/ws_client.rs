//! A WebSocket client for the end-to-end tests (tungstenite's, as tokio-tungstenite re-exports
//! it): what the server sends, observed as one line per event so two servers' answers compare.

use super::IO_TIMEOUT;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocket;
use tokio_tungstenite::tungstenite::{self, Message};

/// A WebSocket client on `path`, with the read timeout every test read has.
pub fn connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let url = format!("ws://{addr}{path}");
    let (ws, resp) = tungstenite::client::client(url.as_str(), sock)
        .unwrap_or_else(|e| panic!("WebSocket handshake on {url}: {e}"));
    assert_eq!(resp.status(), 101);
    ws
}

/// The next message that is not a pong, or what ended the connection, as one line.
pub fn next_event(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return format!("text {} {}", t.len(), digest(t.as_bytes())),
            Ok(Message::Binary(b)) => return format!("binary {} {}", b.len(), digest(&b)),
            Ok(Message::Pong(p)) => return format!("pong {:?}", String::from_utf8_lossy(&p)),
            Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => continue,
            Ok(Message::Close(frame)) => {
                return format!("close {:?}", frame.map(|f| (u16::from(f.code), f.reason)))
            }
            Err(tungstenite::Error::ConnectionClosed) => return "closed".to_owned(),
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                return "no answer within the read timeout".to_owned()
            }
            Err(e) => return format!("error {}", kind_of(&e)),
        }
    }
}

/// An error's kind without its details (which name addresses and differ by run).
pub fn kind_of(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => format!("io {:?}", io.kind()),
        tungstenite::Error::Protocol(p) => format!("protocol {p}"),
        other => other.to_string(),
    }
}

/// A short fingerprint of a payload (FNV-1a), so observations stay one line.
pub fn digest(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}
