//! The deferred body the server pulls for one request on its serving threads: each `next`
//! decides under the request's lock what to do ([`Step`]) and does it without the lock.

use super::file::ResponseFile;
use super::{Head, Headers, RawIo, Shared, READ_CHUNK, SEND_HIGH_WATER};
use crate::runtime::Runtime;
use app_abi::{BodyIo, DeferredBody, Next, TryRead};
use pyo3::prelude::*;
use std::sync::Arc;

/// What `next` does after looking at the state (decided under the lock, done without it).
enum Step {
    Accept(Vec<u8>, Headers),
    Start(Head),
    Chunk(Vec<u8>, Option<PyObject>),
    File(ResponseFile, Option<Headers>),
    Read,
    End(Option<Headers>),
    Pending,
    Error,
}

/// The deferred body the server pulls for one request.
pub(crate) struct Body {
    pub(super) shared: Arc<Shared>,
    pub(super) runtime: Arc<Runtime>,
    /// For `websocket_accept` (a WebSocket request only).
    pub(super) raw: Option<RawIo>,
    pub(super) head_sent: bool,
    /// The chunk last returned: the server's until the next `next` or the drop.
    pub(super) current: Vec<u8>,
    /// `http.response.pathsend`'s file, handed to the server (or read by a server too old),
    /// or a file trailers follow, read here.
    pub(super) file: Option<ResponseFile>,
}

impl Body {
    pub(crate) fn new(shared: Arc<Shared>, runtime: Arc<Runtime>, raw: Option<RawIo>) -> Body {
        Body {
            shared,
            runtime,
            raw,
            head_sent: false,
            current: Vec::new(),
            file: None,
        }
    }

    fn step(&self) -> Step {
        let mut st = self.shared.state();
        let read = st.body_wanted && !st.body_end && !st.body_failed;
        if !self.head_sent {
            if let Some((protocol, headers)) = st.accept.take() {
                st.accepting = true;
                return Step::Accept(protocol, headers);
            }
            return match st.head.take() {
                Some(head) => Step::Start(head),
                None if st.failed => Step::Error,
                None if read => Step::Read,
                None => Step::Pending,
            };
        }
        if let Some(chunk) = st.chunks.pop_front() {
            st.queued -= chunk.len();
            let waiter = if st.queued <= SEND_HIGH_WATER {
                st.send_waiter.take()
            } else {
                None
            };
            return Step::Chunk(chunk, waiter);
        }
        // A file ends the body: handed over once the trailers (if any) are in, since they go
        // to the server first.
        if st.complete {
            let trailers = st.wants_trailers.then(|| std::mem::take(&mut st.trailers));
            if let Some(file) = st.file.take() {
                return Step::File(file, trailers);
            }
            Step::End(trailers)
        } else if st.failed {
            Step::Error
        } else if read {
            Step::Read
        } else {
            Step::Pending
        }
    }

    /// One `try_read` for a waiting `receive()`; `false`: nothing buffered, park.
    fn read(&self, io: &mut BodyIo<'_>) -> bool {
        let mut buf = vec![0u8; READ_CHUNK];
        let outcome = io.try_read(&mut buf);
        let mut st = self.shared.state();
        match outcome {
            TryRead::Pending => return false,
            TryRead::Data(n) => {
                buf.truncate(n);
                st.body_in.push_back(buf);
            }
            TryRead::End => st.body_end = true,
            TryRead::Failed(_) => st.body_failed = true,
        }
        st.body_wanted = false;
        let waiter = st.receive_waiter.take();
        drop(st);
        if let Some(fut) = waiter {
            self.runtime.resume(fut);
        }
        true
    }
}

impl DeferredBody for Body {
    fn next<'s>(&'s mut self, io: &mut BodyIo<'_>) -> Next<'s> {
        loop {
            if self.file.is_some() {
                return match self.file.as_mut() {
                    None => Next::Error,
                    Some(ResponseFile::Send(file)) => file.next(io),
                    Some(ResponseFile::Read(file)) => match file.read(&mut self.current) {
                        Ok(true) => Next::Chunk(&self.current),
                        Ok(false) => Next::End,
                        Err(err) => {
                            self.shared.logger.error(&format!(
                                "ASGI app {}: reading the response's file: {err}",
                                self.shared.label
                            ));
                            Next::Error
                        }
                    },
                };
            }
            match self.step() {
                Step::Accept(protocol, headers) => return self.accept(&protocol, &headers),
                Step::Start(mut head) => {
                    python_embed::hop_by_hop::drop_from(
                        &mut head.headers,
                        self.shared.logger,
                        false,
                    );
                    let headers = head.headers.iter().map(|(n, v)| (&n[..], &v[..]));
                    if let Err(err) = io.start_response(head.status, "", headers) {
                        self.shared.logger.error(&format!(
                            "ASGI app {} sent a response head the server refused ({err}): the \
                             status must be 100-599, header names tokens and values without \
                             CR/LF/NUL",
                            self.shared.label
                        ));
                        self.shared.state().failed = true;
                        return Next::Error;
                    }
                    self.head_sent = true;
                }
                Step::Chunk(chunk, waiter) => {
                    if let Some(fut) = waiter {
                        self.runtime.resume(fut);
                    }
                    self.current = chunk;
                    return Next::Chunk(&self.current);
                }
                Step::File(file, trailers) => {
                    if !self.send_trailers(io, trailers) {
                        return Next::Error;
                    }
                    self.file = Some(file);
                }
                Step::Read => {
                    if !self.read(io) {
                        return Next::Pending;
                    }
                }
                Step::End(trailers) => {
                    return if self.send_trailers(io, trailers) {
                        Next::End
                    } else {
                        Next::Error
                    };
                }
                Step::Pending => return Next::Pending,
                Step::Error => return Next::Error,
            }
        }
    }
}

impl Drop for Body {
    /// The header's `close`: the response is over. A coroutine still waiting is resumed (its
    /// `receive()` then says `http.disconnect`, its `send()` returns and later ones do nothing).
    /// One that had not completed its response (client gone, `--timeout`, a drain that ran out
    /// of time) is cancelled unless a `receive()` of it was waiting: that app listens for the
    /// disconnect (Starlette's `StreamingResponse` does) and ends on its own, as under uvicorn.
    /// One that completed its response runs on (Starlette's background tasks run after it).
    fn drop(&mut self) {
        let (receiver, sender, cancel) = {
            let mut st = self.shared.state();
            st.closed = true;
            let receiver = st.receive_waiter.take();
            let cancel = !st.finished && !st.complete && receiver.is_none();
            (receiver, st.send_waiter.take(), cancel)
        };
        if receiver.is_none() && sender.is_none() && !cancel {
            return;
        }
        for fut in receiver.into_iter().chain(sender) {
            self.runtime.resume(fut);
        }
        if cancel {
            self.runtime.cancel(&self.shared);
        }
    }
}
