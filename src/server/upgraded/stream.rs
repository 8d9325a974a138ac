//! Raw mode's host calls (`stream_read`, `stream_write`), answered from any thread under the
//! connection's lock: one non-blocking step each, `WS_PENDING` arming the event that follows.

use std::sync::atomic::Ordering;
use std::time::Instant;

use app_abi::raw::{WS_EV_READABLE, WS_EV_WRITABLE};

use super::{emptied_socket, fail_log, Phase, Step, Upgraded, EARLY_OUTPUT_LIMIT};

impl Upgraded {
    /// `stream_read`: buffered input first, then one non-blocking read.
    pub(crate) fn read(&self, out: &mut [u8]) -> Step<usize> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.ws.is_some() {
            log::error!(target: "app", "stream_read on a WebSocket's handle (use websocket_recv)");
            return Step::Refused;
        }
        let Some(conn) = st.conn.as_deref_mut() else {
            return match st.phase {
                Phase::Starting => {
                    st.armed |= WS_EV_READABLE;
                    Step::Pending
                }
                _ => Step::Done(0),
            };
        };
        if out.is_empty() {
            return Step::Done(0);
        }
        // A reader reads until "would block": after a read that emptied the socket, the next one
        // is answered without a syscall until an epoll edge says input came (the edge is taken
        // before the read, so one that comes during it is kept for the next). The app is woken
        // by that edge as for any pending read. Not under TLS, whose session may hold plaintext.
        let edge = self.input_edge.swap(false, Ordering::Acquire);
        if st.input_drained && !edge && conn.input().is_empty() && !st.client_ended {
            st.armed |= WS_EV_READABLE;
            return Step::Pending;
        }
        let from_socket = conn.input().is_empty();
        let read = conn.read_into(out);
        st.input_drained = emptied_socket(conn, from_socket, out.len(), &read);
        match read {
            Ok(n) => {
                st.client_ended |= n == 0;
                st.counts.bytes_in += n as u64;
                crate::stats::upgraded_bytes_in(n);
                Step::Done(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                st.armed |= WS_EV_READABLE;
                Step::Pending
            }
            Err(e) => {
                fail_log(conn, &e);
                st.client_ended = true;
                self.end(st, true);
                drop(guard);
                self.queue();
                Step::Done(0)
            }
        }
    }

    /// `stream_write`: what the socket takes now.
    pub(crate) fn write(&self, data: &[u8]) -> Step<usize> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.ws.is_some() {
            log::error!(target: "app", "stream_write on a WebSocket's handle (use websocket_send)");
            return Step::Refused;
        }
        if st.goodbye_sent {
            return Step::Gone;
        }
        if st.phase == Phase::Starting {
            if st.early.len() >= EARLY_OUTPUT_LIMIT {
                st.armed |= WS_EV_WRITABLE;
                return Step::Pending;
            }
            st.early.extend_from_slice(data);
            if let Some(frames) = st.out_frames.as_mut() {
                frames.feed(data);
            }
            return Step::Done(data.len());
        }
        let Some(conn) = st.conn.as_deref_mut() else {
            return Step::Gone;
        };
        if data.is_empty() {
            return Step::Done(0);
        }
        match conn.write_some(data) {
            Ok(0) => {
                st.armed |= WS_EV_WRITABLE;
                st.output_since.get_or_insert_with(Instant::now);
                self.set_deadline(st);
                Step::Pending
            }
            Ok(n) => {
                if let Some(frames) = st.out_frames.as_mut() {
                    frames.feed(&data[..n]);
                }
                st.counts.bytes_out += n as u64;
                crate::stats::upgraded_bytes_out(n);
                // Progress: the --io-timeout of a stalled client counts from here.
                st.output_since = conn.has_unsent().then(Instant::now);
                self.set_deadline(st);
                Step::Done(n)
            }
            Err(e) => {
                fail_log(conn, &e);
                self.end(st, true);
                drop(guard);
                self.queue();
                Step::Gone
            }
        }
    }
}
