//! `--static` over HTTP/2: a stream whose path is under a prefix is answered by the same
//! responder as an HTTP/1.1 request (`crate::static_files`: status, validators, Range, 304,
//! HEAD) and never reaches the app. Its head becomes the HEADERS frame as an app's does
//! (`transport.rs`); a body too large to go with the head is read from the file in chunks and
//! sent as DATA frames while the client's window takes it, on the serving thread; once the window
//! holds it back, the rest of the file is the HTTP/2 thread's to send (`tail.rs`).

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;

use super::tail::FILE_CHUNK;
use super::transport::{StreamState, StreamTransport};
use super::Queue;
use crate::app::call::Transport;
use crate::http::response::DateCache;
use crate::listen::Peer;
use crate::server::Shared;
use crate::static_files::{FileBody, Request, StaticFiles};

/// What a stream asks.
pub(super) struct Asked<'r> {
    pub(super) method: &'r [u8],
    /// Still percent-encoded.
    pub(super) path: &'r [u8],
    pub(super) fields: &'r [(&'r [u8], &'r [u8])],
    pub(super) peer: Peer,
}

/// Answers the stream if its path is under a `--static` prefix: the status and body bytes,
/// for the access log. Otherwise gives its handles back for the app.
pub(super) fn answer(
    statics: &StaticFiles,
    asked: Asked<'_>,
    (body, respond): (RecvStream, SendResponse<Bytes>),
    shared: &Shared,
    queue: &Queue,
    (thread, date): (usize, &mut DateCache),
) -> Result<(u16, u64), (RecvStream, SendResponse<Bytes>)> {
    let request =
        Request::new(asked.method, asked.path, 1, true).with_headers(asked.fields.iter().copied());
    let mut head = Vec::new();
    let now = date.at(shared.coarse_wall());
    let Some(answer) = statics.answer(&request, &mut head, now) else {
        return Err((body, respond));
    };
    crate::stats::http2_stream();
    let peer = asked.peer;
    let mut state = StreamState::new(body, respond, &shared.config, None, peer, queue.runtime());
    let mut transport = StreamTransport::new(&mut state, shared, thread, date);
    let sent = transport.write_all(&[&head]).and_then(|()| {
        answer
            .body
            .map_or(Ok(()), |file| send_file(&mut transport, file))
    });
    if let Err(e) = &sent {
        log::debug!("{peer}: --static over HTTP/2 not sent whole: {e}");
    }
    transport.finish(&[], sent.is_ok());
    Ok((answer.status, answer.body_bytes))
}

/// The rest of the file: read and sent here while the client's window takes it, then left to
/// the HTTP/2 thread (`tail.rs`) once it does not, so a slow or stalled reader holds no
/// serving thread.
fn send_file(transport: &mut StreamTransport<'_>, mut file: FileBody) -> std::io::Result<()> {
    let mut chunk = vec![0; FILE_CHUNK];
    loop {
        if transport.window_is_shut() {
            transport.rest_from(file);
            return Ok(());
        }
        let n = file.read_next(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        transport.write_all(&[&chunk[..n]])?;
    }
}
