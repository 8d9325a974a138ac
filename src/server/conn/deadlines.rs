//! When the coordinator may close a connection that waits parked, by what it waits for: the
//! header timeout for a head (or, on a new connection, none yet), the keep-alive timeout
//! between requests, `--io-timeout` while output waits for the client, a parked request's
//! `--timeout` (set by `deferred.rs`), and, once the process drains, at most a short linger.

use std::time::{Duration, Instant};

use super::Conn;
use crate::server::Config;

/// While draining, how long a connection whose last response promised keep-alive (it began
/// before the drain) waits for the request its client may already be sending.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// While draining, how long an idle connection may wait for its next request.
fn drain_linger(config: &Config) -> Duration {
    config
        .keep_alive
        .min(config.graceful_timeout)
        .min(DRAIN_LINGER)
}

impl Conn {
    /// When the coordinator may close this connection if it is still parked.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Set the deadline directly (a parked request's `--timeout`).
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Past its deadline, whether this connection is only waiting for a serving thread: its
    /// client sent bytes that no thread has read yet. A connection whose output waits for the
    /// client does not count (a client that sends but never reads must not keep it open).
    pub(crate) fn has_request_waiting(&mut self) -> bool {
        !self.sending_file() && !self.write_interest() && self.stream_mut().has_input()
    }

    /// The process began draining at `now` while this connection was parked. A head in
    /// progress gets at most one more keep-alive period. An idle connection waits for its
    /// client's next request no longer than the drain linger after its last response (or its
    /// connect): one idle that long is closed at once, and one that just got a response can still
    /// have the request its client is sending answered (with `Connection: close`), so a reload
    /// loses none.
    /// A `--static` file body being sent keeps its `--io-timeout` deadline: the graceful
    /// timeout still ends it.
    pub(crate) fn begin_drain(&mut self, now: Instant, config: &Config) {
        if self.sending_file() {
            return;
        }
        let limit = if self.has_partial_request() {
            now + config.keep_alive.min(config.graceful_timeout)
        } else if !self.is_fresh() {
            if self.deadline <= now + drain_linger(config) {
                // Parked once the drain had begun (`set_parked_deadline`), or due anyway.
                return;
            }
            // Parked with the keep-alive timeout when its last response was sent.
            let parked_at = self.deadline.checked_sub(config.keep_alive).unwrap_or(now);
            parked_at + drain_linger(config)
        } else {
            self.head_since().unwrap_or(now) + drain_linger(config)
        };
        self.deadline = self.deadline.min(limit);
    }

    /// The deadline policy, applied when the connection is parked at `now`: a head in progress
    /// (or none yet on a new connection) gets the header timeout counted from its first byte,
    /// an idle connection between requests the keep-alive timeout. While `draining`, a
    /// connection parked after its response promised keep-alive still gets a request its client
    /// sends right behind that response answered (with `Connection: close`), but an idle client
    /// cannot hold the process for a whole keep-alive period.
    pub(crate) fn set_parked_deadline(&mut self, now: Instant, config: &Config, draining: bool) {
        if self.sending_file() {
            // Output waits for the client: one wait, as a blocking write has (a drain does not
            // cut a download short; the graceful timeout still ends it).
            self.deadline = now + config.io_timeout;
            return;
        }
        self.park_between_requests(now);
        self.deadline = match self.head_since() {
            Some(since) => since + config.header_timeout,
            None => now + config.keep_alive,
        };
        if draining {
            self.deadline = self.deadline.min(now + drain_linger(config));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::tests::{config, pair, settle};
    use super::*;

    /// The deadline a parked connection gets, by what it is waiting for.
    #[test]
    fn parked_deadline_table() {
        let secs = Duration::from_secs;
        // (served a request, bytes of the next one buffered, draining, deadline after `now`)
        let cases = [
            (false, false, false, secs(10)), // new connection: header timeout from connect
            (true, false, false, secs(5)),   // idle between requests: keep-alive
            (true, true, false, secs(10)),   // a head in progress: header timeout
            (true, false, true, secs(1)),    // draining: at most the linger
            (false, false, true, secs(1)),
        ];
        for (served, partial, draining, want) in cases {
            let (mut conn, mut client) = pair();
            let connected = conn.head_since().unwrap();
            if served {
                conn.start_request(0);
            }
            if partial {
                client.write_all(b"GET").unwrap();
                settle(&mut conn, 3);
            }
            conn.set_parked_deadline(connected, &config(5, 10, 30), draining);
            assert_eq!(
                conn.deadline() - connected,
                want,
                "served {served} partial {partial} draining {draining}"
            );
        }
    }
}
