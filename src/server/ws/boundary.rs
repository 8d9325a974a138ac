//! `FrameBoundary`: following a stream of WebSocket frames byte by byte without buffering it.
//! Message mode follows what tungstenite reads, to know when its context holds nothing and may
//! be dropped (`session.rs`); a raw `Upgrade: websocket` stream (an app with its own WebSocket
//! stack) follows what the app writes, so the drain's close frame goes between two frames
//! (`upgraded.rs`).

/// Where a stream of WebSocket frames stands (RFC 6455 §5.2), fed the bytes as they pass:
/// inside a frame header or payload, and whether a fragmented message is open.
#[derive(Default)]
pub(crate) struct FrameBoundary {
    header: [u8; 14],
    have: usize,
    payload_left: u64,
    message_open: bool,
}

impl FrameBoundary {
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = (bytes.len() as u64).min(self.payload_left);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have < 2 {
                continue;
            }
            let (b0, b1) = (self.header[0], self.header[1]);
            let extended = match b1 & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let needed = 2 + extended + if b1 & 0x80 != 0 { 4 } else { 0 };
            if self.have < needed {
                continue;
            }
            self.payload_left = match extended {
                0 => u64::from(b1 & 0x7f),
                n => self.header[2..2 + n]
                    .iter()
                    .fold(0u64, |len, &b| len << 8 | u64::from(b)),
            };
            let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
            if opcode < 8 {
                // A data frame (control frames may come between fragments).
                self.message_open = !fin;
            }
            self.have = 0;
        }
    }

    /// Between two frames (a control frame may go here, even inside a fragmented message).
    pub(crate) fn between_frames(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    /// Between two messages.
    pub(crate) fn quiet(&self) -> bool {
        self.between_frames() && !self.message_open
    }
}

#[cfg(test)]
mod tests {
    use super::FrameBoundary;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match len {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.resize(out.len() + len, 0xaa);
        out
    }

    #[test]
    fn the_boundary_follows_frames_fed_in_any_pieces() {
        let mut stream = frame(true, 1, 5);
        stream.extend(frame(false, 2, 300));
        stream.extend(frame(true, 9, 3)); // a ping between fragments
        stream.extend(frame(true, 0, 70_000));
        for piece in [1, 2, 7, 1000, usize::MAX] {
            let mut seen = FrameBoundary::default();
            let mut quiet_after = Vec::new();
            let mut fed = 0;
            for chunk in stream.chunks(piece.min(stream.len())) {
                seen.feed(chunk);
                fed += chunk.len();
                if seen.quiet() {
                    quiet_after.push(fed);
                }
            }
            // Quiet only at the end of the first (whole) message and at the very end; never
            // inside a frame or while the fragmented message is open.
            assert!(quiet_after.contains(&stream.len()), "piece {piece}");
            assert!(
                quiet_after.iter().all(|&at| at == 11 || at == stream.len()),
                "piece {piece}: {quiet_after:?}"
            );
        }
    }
}
