//! Where a connection stands in its life, as one value ([`Phase`]) instead of flags that could
//! contradict each other: a PROXY header still expected, its first head arriving, a request
//! being served, idle between requests, a head in progress after one, or a deferred request
//! parked in it. The transitions are the methods below; what a thread does in each phase is
//! `serve.rs`'s and `deferred.rs`'s.
//!
//! ```text
//!   ProxyHeader ──header read──▶ FirstHead ──head taken──▶ Serving ◀──head taken── NextHead
//!                                    │                       │  │ ▲                   ▲
//!                                    │ HTTP/2 preface        │  │ └─resume── Parked ◀─┤ next: pending
//!                                    ▼                       │  └──parks, bytes of    │
//!                              (to server::h2)    upgrade: ──┘     the next head ─────┘
//!                                               (to server::upgraded)   parks empty: KeepAliveIdle
//! ```
//! The output that waits for the client (`output.rs`) is not a phase: a deferred request's
//! unsent bytes and a `--static` file body both go out while the connection is in one.

use std::time::Instant;

use super::Conn;
use crate::app::call::Cancel;
use crate::server::deferred::ParkedRequest;

/// A connection's phase.
pub(crate) enum Phase {
    /// On a `proxy` listener, before its PROXY header: no HTTP yet; the header timeout counts
    /// from the connect (`since`).
    ProxyHeader { since: Instant },
    /// Before its first request: the header timeout counts from the connect (`since`).
    FirstHead { since: Instant },
    /// A request's head was taken: a thread serves it (or, after it, looks for the next one).
    Serving,
    /// Parked between requests with nothing of the next one: the keep-alive timeout applies.
    KeepAliveIdle,
    /// Parked with part of the next head, whose first bytes came at `since`: the header
    /// timeout counts from there, however slowly the rest trickles in.
    NextHead { since: Instant },
    /// A deferred request (ABI 1.1) waits in the connection for its app or its client.
    Parked(Box<ParkedRequest>),
}

impl Conn {
    /// No request has been served on this connection yet.
    pub(crate) fn is_fresh(&self) -> bool {
        matches!(
            self.phase,
            Phase::ProxyHeader { .. } | Phase::FirstHead { .. }
        )
    }

    /// A PROXY header must come before anything else, and has not yet.
    pub(super) fn awaits_proxy_header(&self) -> bool {
        matches!(self.phase, Phase::ProxyHeader { .. })
    }

    /// The PROXY header was read: HTTP follows, under the same header timeout.
    pub(super) fn proxy_header_taken(&mut self) {
        if let Phase::ProxyHeader { since } = self.phase {
            self.phase = Phase::FirstHead { since };
        }
    }

    /// The head of `head_len` bytes at the start of the input is being served: its body (or
    /// the next request) starts after it, and the header timeout no longer runs.
    pub(crate) fn start_request(&mut self, head_len: usize) {
        self.consume(head_len);
        self.phase = Phase::Serving;
    }

    /// When the header timeout of the head being waited for started (`None`: between requests,
    /// or a request is in progress).
    pub(super) fn head_since(&self) -> Option<Instant> {
        match self.phase {
            Phase::ProxyHeader { since }
            | Phase::FirstHead { since }
            | Phase::NextHead { since } => Some(since),
            _ => None,
        }
    }

    /// The connection parks at `now` with no request in progress: a head in progress, or
    /// none, decides what it waits under.
    pub(super) fn park_between_requests(&mut self, now: Instant) {
        let partial = self.has_partial_request();
        match self.phase {
            Phase::Serving | Phase::KeepAliveIdle if partial => {
                self.phase = Phase::NextHead { since: now };
            }
            Phase::Serving => self.phase = Phase::KeepAliveIdle,
            // A head in progress keeps its start; the bytes of one never go away unserved.
            _ => {}
        }
    }

    /// The parked request's wake number (0 if it made no waker), if one is parked.
    pub(crate) fn parked_request(&self) -> Option<u64> {
        match &self.phase {
            Phase::Parked(parked) => Some(parked.body.wake_id),
            _ => None,
        }
    }

    /// A deferred request waits in the connection.
    pub(crate) fn is_parked(&self) -> bool {
        matches!(self.phase, Phase::Parked(_))
    }

    /// The deferred request waits in the connection from now on.
    pub(crate) fn park_request(&mut self, parked: Box<ParkedRequest>) {
        self.phase = Phase::Parked(parked);
    }

    /// Takes the parked request for a thread to run: the connection is serving it again.
    pub(crate) fn take_parked(&mut self) -> Option<Box<ParkedRequest>> {
        match std::mem::replace(&mut self.phase, Phase::Serving) {
            Phase::Parked(parked) => Some(parked),
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// A waker of the parked request was woken: call its `next` again.
    pub(crate) fn mark_woken(&mut self) {
        if let Phase::Parked(parked) = &mut self.phase {
            parked.due.woken();
        }
    }

    /// The parked request is to be closed without another `next`.
    pub(crate) fn cancel_parked(&mut self, cancel: Cancel) {
        if let Phase::Parked(parked) = &mut self.phase {
            parked.due.cancel(cancel);
        }
    }
}
