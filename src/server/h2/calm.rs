//! A bound on the control frames a client may send (SETTINGS and PING floods): `h2` answers
//! each one, so a client that sends them as fast as it can, and reads the answers, keeps the
//! HTTP/2 thread busy for as long as it likes. The connection's reader watches the frame
//! headers going into `h2` (the plaintext, after TLS); past `--http2-max-control-frames` such
//! frames in a second the connection is ended with `GOAWAY(ENHANCE_YOUR_CALM)` (RFC 9113 §5.4.1).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRAME_HEADER: usize = 9;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
/// The client's connection preface, before its first frame.
const PREFACE_LEN: usize = 24;

/// Follows the frame headers in the bytes a connection reads.
pub(super) struct FrameWatch {
    /// Bytes still to skip: the preface, then the current frame's payload.
    skip: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    window_start: Instant,
    in_window: u32,
    /// SETTINGS and PING frames (ACKs not counted) a client may send in one second. Clients
    /// send a handful: one SETTINGS at the start, a keep-alive PING now and then, hyper's
    /// adaptive window one PING per round trip while a body arrives; the default (1,000) is
    /// never near.
    per_second: u32,
    /// Set once the client went past the bound; the connection's task ends it.
    flooded: Arc<AtomicBool>,
}

impl FrameWatch {
    pub(super) fn new(flooded: Arc<AtomicBool>, per_second: u32) -> FrameWatch {
        FrameWatch {
            skip: PREFACE_LEN,
            header: [0; FRAME_HEADER],
            header_len: 0,
            window_start: Instant::now(),
            in_window: 0,
            per_second,
            flooded,
        }
    }

    /// The next bytes `h2` reads; true once the client sent too many control frames.
    pub(super) fn read(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == FRAME_HEADER {
                self.header_len = 0;
                let [l0, l1, l2, kind, flags, ..] = self.header;
                self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                if (kind == SETTINGS || kind == PING) && flags & ACK == 0 {
                    self.count_control();
                }
            }
        }
        self.flooded.load(Ordering::Relaxed)
    }

    fn count_control(&mut self) {
        self.in_window += 1;
        if self.in_window <= self.per_second {
            return;
        }
        if self.window_start.elapsed() < Duration::from_secs(1) {
            self.flooded.store(true, Ordering::Relaxed);
        } else {
            self.window_start = Instant::now();
            self.in_window = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    const CONTROL_PER_SECOND: u32 = 1000;

    fn watch() -> FrameWatch {
        FrameWatch::new(Arc::default(), CONTROL_PER_SECOND)
    }

    #[test]
    fn control_frames_past_the_bound_in_a_second_are_a_flood_even_split_anywhere() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for n in 0..=CONTROL_PER_SECOND {
            bytes.extend(frame(PING, 0, &u64::from(n).to_be_bytes()));
            // Frames of other kinds and ACKs in between are not counted.
            bytes.extend(frame(0x0, 0, &[7; 20]));
            bytes.extend(frame(SETTINGS, ACK, &[]));
        }
        let mut one_at_a_time = watch();
        let last = bytes.len() - 1;
        for (at, byte) in bytes.iter().enumerate() {
            let flooded = one_at_a_time.read(std::slice::from_ref(byte));
            // The bound is passed by the last PING, whose header ends 8 + 9 + 20 + 9 bytes
            // before the end.
            assert_eq!(flooded, at >= last - 46, "at byte {at} of {}", bytes.len());
        }
        let mut whole = watch();
        assert!(whole.read(&bytes));
    }

    #[test]
    fn acks_and_other_frames_are_never_a_flood() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..5000 {
            bytes.extend(frame(PING, ACK, &[0; 8]));
            bytes.extend(frame(0x8, 0, &[0, 0, 1, 0]));
        }
        assert!(!watch().read(&bytes));
    }
}
