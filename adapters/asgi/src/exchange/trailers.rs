//! The ASGI HTTP trailers extension (`http.response.trailers`): when `http.response.start` said
//! `trailers: True`, the body's end does not complete the response; the `http.response.trailers`
//! messages that follow (until one with `more_trailers` false) are collected and handed to the
//! server (ABI 1.3 `set_trailers`) just before the body's end: HTTP/1.1's chunked trailer
//! section, HTTP/2's trailing HEADERS.

use super::*;
use app_abi::AbiError;

impl Channel {
    /// One `http.response.trailers` message.
    pub(super) fn trailers(&self, message: &Bound<'_, PyAny>) -> PyResult<u8> {
        let py = message.py();
        let headers = field_or(message, intern!(py, "headers"), Vec::new(), |h| {
            header_pairs(h, "http.response.trailers")
        })?;
        let more = flag(message, intern!(py, "more_trailers"))?;
        let mut st = self.shared.state();
        if st.closed {
            return Ok(SEND_DONE);
        }
        if !st.wants_trailers || !st.body_ended || st.complete {
            return Err(PyRuntimeError::new_err(
                "http.response.trailers must follow an http.response.start with trailers: True \
                 and the body's last message (more_body false), before one with more_trailers \
                 false",
            ));
        }
        st.trailers.extend(headers);
        st.complete = !more;
        let complete = st.complete;
        drop(st);
        if complete {
            self.shared.waker.wake();
        }
        Ok(SEND_DONE)
    }
}

impl Body {
    /// Hands the app's trailers (if it asked to send some) to the server; false when the server
    /// refused them, logged: the response is then cut, so the client does not take it for
    /// complete. A server without trailers (ABI 1.2, which the scope did not offer the extension
    /// on) drops them with a warning.
    pub(super) fn send_trailers(&self, io: &mut BodyIo<'_>, trailers: Option<Headers>) -> bool {
        let Some(trailers) = trailers.filter(|t| !t.is_empty()) else {
            return true;
        };
        match io.set_trailers(trailers.iter().map(|(n, v)| (&n[..], &v[..]))) {
            Ok(()) => true,
            Err(AbiError::State) => {
                self.shared.logger.warn(&format!(
                    "ASGI app {} sent trailers, which this server (ABI 1.2) cannot send: they \
                     are dropped; check scope[\"extensions\"] for \"http.response.trailers\"",
                    self.shared.label
                ));
                true
            }
            Err(err) => {
                self.shared.logger.error(&format!(
                    "ASGI app {} sent trailers the server refused ({err}): trailer names must be \
                     tokens, values without CR/LF/NUL, and not fields a trailer cannot carry \
                     (content-length, content-type, transfer-encoding, ...); the response is cut",
                    self.shared.label
                ));
                false
            }
        }
    }
}
