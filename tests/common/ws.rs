//! A WebSocket client on raw TCP for the RFC 6455 conformance suite: it builds every frame
//! itself (so it can also send what a correct client never would: unmasked frames, reserved
//! bits and opcodes, oversized control frames) and reads the server's frames strictly (a
//! server frame must not be masked).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::IO_TIMEOUT;

pub const OP_CONT: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// The RFC 6455 §1.3 sample key and the accept value it must get.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A close frame's code (1005 when it has none).
    pub fn close_code(&self) -> u16 {
        match self.payload.as_slice() {
            [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            _ => 1005,
        }
    }
}

/// A frame as a client sends it (`mask` false: the protocol error of an unmasked frame).
pub fn encode(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if mask {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A close frame's payload: the code and the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    out.extend_from_slice(reason);
    out
}

/// A client connection after its handshake (or its refusal).
pub struct WsClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl WsClient {
    /// Sends the opening handshake for `path` (`extra` header lines, then `after` in the same
    /// write); returns the client and the response head's text.
    pub fn open(addr: SocketAddr, path: &str, extra: &str, after: &[u8]) -> (WsClient, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = WsClient {
            stream,
            buf: Vec::new(),
        };
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\r\n"
        )
        .into_bytes();
        request.extend_from_slice(after);
        client.stream.write_all(&request).unwrap();
        let head = client.read_head();
        (client, head)
    }

    /// A valid handshake to `path`; panics unless the answer is a correct 101.
    pub fn connect(addr: SocketAddr, path: &str) -> WsClient {
        let extra = format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n");
        let (client, head) = WsClient::open(addr, path, &extra, b"");
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            // Header names in any case: hyper (the axum app's 101) writes them in lower case.
            head.to_ascii_lowercase().contains(&format!(
                "\r\nsec-websocket-accept: {}\r\n",
                SAMPLE_ACCEPT.to_ascii_lowercase()
            )),
            "{head}"
        );
        client
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("reading from the server: {e}"),
        }
    }

    fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end + 4].to_vec()).unwrap();
                self.buf.drain(..end + 4);
                return head;
            }
            assert!(self.fill() > 0, "closed before a response head");
        }
    }

    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill() == 0 {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        // The server may close first (a protocol error): what it sent is still read after.
        let _ = self.stream.write_all(bytes);
    }

    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.send_raw(&encode(true, 0, opcode, payload, true));
    }

    /// The next frame, or `None` if the server closed the TCP connection.
    pub fn try_read(&mut self) -> Option<Frame> {
        let head = self.take(2)?;
        assert_eq!(head[1] & 0x80, 0, "the server masked a frame");
        assert_eq!(head[0] & 0x70, 0, "reserved bits from the server");
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.take(8)?.try_into().unwrap()) as usize,
            n => n as usize,
        };
        let payload = self.take(len)?;
        Some(Frame {
            fin: head[0] & 0x80 != 0,
            opcode: head[0] & 0x0f,
            payload,
        })
    }

    pub fn read(&mut self) -> Frame {
        self.try_read().expect("the server closed the connection")
    }

    /// Expects the server's close frame with `code`, answers it as a client does, then
    /// expects the TCP close (the server closes first, RFC 6455 §7.1.1).
    pub fn expect_close(&mut self, code: u16) {
        let frame = self.read();
        assert_eq!(frame.opcode, OP_CLOSE, "{frame:?}");
        assert_eq!(frame.close_code(), code, "{frame:?}");
        self.send(OP_CLOSE, &close_payload(code, b""));
        self.expect_tcp_close();
    }

    /// The server closes the TCP connection within a few seconds (after answering our close,
    /// or `--io-timeout` after its own). Frames meanwhile are ignored.
    pub fn expect_tcp_close(&mut self) {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        while self.try_read().is_some() {}
    }
}
