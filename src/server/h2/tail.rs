//! A response's tail on the HTTP/2 thread: what a stream still had to send when its serving
//! thread was done with it, because the client's windows were shut (`transport.rs`). A task of
//! the HTTP/2 thread sends it as WINDOW_UPDATEs come: the bytes the app wrote, then the rest of
//! a `--static` file (read a chunk at a time as the window opens), then the trailers or
//! END_STREAM. A window that stays shut for `--io-timeout` resets the stream (CANCEL), so a
//! client that never opens its window holds neither a serving thread nor, past that, memory.

use std::future::poll_fn;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::{Reason, SendStream};

use crate::listen::Peer;
use crate::static_files::FileBody;

/// What is read from a `--static` file at a time (a default window's worth).
pub(super) const FILE_CHUNK: usize = 64 * 1024;

/// What a stream still has to send.
pub(super) struct Tail {
    pub(super) send: SendStream<Bytes>,
    /// Written by the app (or read from the file) and not yet given to `h2`.
    pub(super) bytes: BytesMut,
    /// The rest of a `--static` file, after `bytes`.
    pub(super) file: Option<FileBody>,
    /// Sent last, in place of END_STREAM on the last DATA frame.
    pub(super) trailers: Option<http::HeaderMap>,
    /// `--io-timeout`: the longest wait for one WINDOW_UPDATE.
    pub(super) timeout: Duration,
    pub(super) peer: Peer,
}

/// Gives `h2` as much of `bytes` as the client's windows take now (without waiting), with
/// END_STREAM on the last byte if `last` (true: it went). `h2` asks the client for the rest.
pub(super) fn send_ready(
    send: &mut SendStream<Bytes>,
    bytes: &mut BytesMut,
    last: bool,
) -> Result<bool, h2::Error> {
    if bytes.is_empty() {
        return Ok(false);
    }
    send.reserve_capacity(bytes.len());
    let n = send.capacity().min(bytes.len());
    if n == 0 {
        return Ok(false);
    }
    let ended = last && n == bytes.len();
    send.send_data(bytes.split_to(n).freeze(), ended)?;
    Ok(ended)
}

/// Ends the stream once its body is out: its trailers, or an empty END_STREAM DATA frame.
pub(super) fn end(
    send: &mut SendStream<Bytes>,
    trailers: Option<http::HeaderMap>,
) -> Result<(), h2::Error> {
    match trailers {
        Some(trailers) => send.send_trailers(trailers),
        None => send.send_data(Bytes::new(), true),
    }
}

impl Tail {
    /// Sends the rest on the HTTP/2 thread (a task of its runtime).
    pub(super) async fn send_rest(mut self) {
        if let Err(e) = self.send_all().await {
            log::debug!("{}: HTTP/2 response tail not sent: {e}", self.peer);
        }
    }

    async fn send_all(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        loop {
            if self.bytes.is_empty() {
                if let Some(file) = &mut self.file {
                    self.bytes.resize(FILE_CHUNK, 0);
                    let n = file.read_next(&mut self.bytes)?;
                    self.bytes.truncate(n);
                    if n == 0 {
                        self.file = None;
                    }
                }
            }
            let last = self.file.is_none() && self.trailers.is_none();
            if self.bytes.is_empty() && self.file.is_none() {
                return Ok(end(&mut self.send, self.trailers.take())?);
            }
            if send_ready(&mut self.send, &mut self.bytes, last)? {
                return Ok(());
            }
            if self.bytes.is_empty() {
                continue;
            }
            let send = &mut self.send;
            match tokio::time::timeout(self.timeout, poll_fn(|cx| send.poll_capacity(cx))).await {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e.into()),
                // The stream was reset or ended meanwhile.
                Ok(None) => return Ok(()),
                Err(_) => {
                    send.send_reset(Reason::CANCEL);
                    return Err("the client's HTTP/2 window stayed shut for --io-timeout".into());
                }
            }
        }
    }
}
