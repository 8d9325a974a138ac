//! Where the serving path meets `--static` (`crate::static_files`): a request under a prefix is
//! answered before the app would run, and a body too large to hold goes out from its file as
//! the client reads, parking the connection in between.

use super::conn::Conn;
use super::serve::{After, Buffers, Then};
use crate::app::environ::Environ;
use crate::http::response_fields::FieldLines;
use crate::logging;
use crate::static_files::Answer;

/// What `serve` does about a file body still being sent on `conn` before serving anything
/// else: nothing (`None`: none is, or it is all out and the connection carries on), or wait for
/// the client or close.
pub(super) fn send_file_body(conn: &mut Conn) -> Option<After> {
    if !conn.sending_file() {
        return None;
    }
    match conn.send_file_body() {
        Ok(None) => Some(After::Park),
        Ok(Some(true)) => Some(After::Close),
        Ok(Some(false)) => None,
        Err(e) => {
            log::debug!("{}: client gone while sending a file: {e}", conn.peer());
            Some(After::Close)
        }
    }
}

/// The request whose head `conn` just consumed was answered by `answer` (its head, and a small
/// body, held in `buffers`): count and log it, and keep the rest of its body in the connection.
pub(super) fn answered(
    conn: &mut Conn,
    answer: Answer,
    keep_alive: bool,
    buffers: &Buffers,
    started: Option<std::time::Instant>,
) -> Then {
    count_and_log(answer.status, answer.body_bytes, &buffers.environ, started);
    match answer.body {
        // `serve` sends the held head, then the file (`send_file_body`).
        Some(body) => {
            conn.set_file_body(body);
            Then::Wait
        }
        None if keep_alive => Then::Next,
        None => Then::Close,
    }
}

/// A request `--static` answered (over HTTP/1.x or HTTP/2): count it, and log it from the
/// request's `environ`.
pub(crate) fn count_and_log(
    status: u16,
    body_bytes: u64,
    environ: &Environ,
    started: Option<std::time::Instant>,
) {
    crate::stats::request_started();
    // Counted, not timed: the latency histograms are the app's.
    crate::stats::response(status, None);
    if let Some(log) = logging::access_log() {
        let none = FieldLines::default();
        log.served(
            environ.remote_host(),
            environ,
            &none,
            status,
            body_bytes,
            started,
        );
    }
}
