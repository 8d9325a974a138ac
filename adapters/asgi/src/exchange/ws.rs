//! The WebSocket side of a request's exchange (ASGI's `websocket` scope; `websocket.rs` has the
//! connection): `receive()` and `send()` before and after the accept, and the body's `next`
//! handing `websocket.accept` to the server.

use super::*;

impl Channel {
    pub(super) fn ws_receive(
        &self,
        py: Python<'_>,
        ws: &WsShared,
        fut: PyObject,
    ) -> PyResult<Option<PyObject>> {
        let event = PyDict::new_bound(py);
        if ws.accepted() {
            match ws.recv(fut) {
                Received::Pending => return Ok(None),
                // Both keys, the other one None, as asgiref's WebSocketReceiveEvent has them.
                Received::Text(text) => {
                    event.set_item("type", "websocket.receive")?;
                    event.set_item("bytes", py.None())?;
                    event.set_item("text", text)?;
                }
                Received::Bytes(bytes) => {
                    event.set_item("type", "websocket.receive")?;
                    event.set_item("bytes", PyBytes::new_bound(py, &bytes))?;
                    event.set_item("text", py.None())?;
                }
                Received::Closed(code, reason) => {
                    event.set_item("type", "websocket.disconnect")?;
                    event.set_item("code", code)?;
                    event.set_item("reason", reason)?;
                }
            }
            return Ok(Some(event.into_any().unbind()));
        }
        let mut st = self.shared.state();
        if !st.connect_told {
            st.connect_told = true;
            event.set_item("type", "websocket.connect")?;
        } else if st.closed || st.complete || st.failed {
            // Refused, answered over HTTP, or the client left before an accept.
            event.set_item("type", "websocket.disconnect")?;
            event.set_item("code", 1006)?;
        } else {
            st.receive_waiter = Some(fut);
            return Ok(None);
        }
        Ok(Some(event.into_any().unbind()))
    }

    pub(super) fn ws_send(
        &self,
        ws: &WsShared,
        kind: &str,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<u8> {
        let py = message.py();
        match kind {
            "websocket.accept" => {
                let protocol = field_or(message, intern!(py, "subprotocol"), Vec::new(), |p| {
                    Ok(p.extract::<String>()?.into_bytes())
                })?;
                let headers = field_or(message, intern!(py, "headers"), Vec::new(), |h| {
                    header_pairs(h, "websocket.accept")
                })?;
                let mut st = self.shared.state();
                if st.closed || ws.accepted() {
                    return Ok(SEND_GONE);
                }
                if st.started || st.accept.is_some() || st.accepting {
                    return Err(PyRuntimeError::new_err(
                        "websocket.accept after the handshake was answered",
                    ));
                }
                st.accept = Some((protocol, headers));
                drop(st);
                self.shared.waker.wake();
                Ok(SEND_WAIT)
            }
            "websocket.send" if ws.accepted() => {
                let sent = if let Some(text) = present(message, intern!(py, "text"))? {
                    let text: String = text.extract()?;
                    ws.send(WS_MSG_TEXT, text.as_bytes())
                } else if let Some(bytes) = present(message, intern!(py, "bytes"))? {
                    match bytes.downcast::<PyBytes>() {
                        Ok(bytes) => ws.send(WS_MSG_BINARY, bytes.as_bytes()),
                        Err(_) => ws.send(WS_MSG_BINARY, &super::byte_string(&bytes)?),
                    }
                } else {
                    return Err(PyValueError::new_err(
                        "websocket.send needs 'text' or 'bytes'",
                    ));
                };
                match sent {
                    Sent::Done => Ok(SEND_DONE),
                    Sent::Wait => Ok(SEND_RETRY),
                    Sent::Gone => Ok(SEND_GONE),
                    Sent::TooLarge => Err(PyValueError::new_err(
                        "websocket.send: the message is larger than the server's --ws-max-message",
                    )),
                }
            }
            "websocket.close" if ws.accepted() => {
                let code: u16 = field_or(message, intern!(py, "code"), 1000, |c| c.extract())?;
                let reason = field_or(message, intern!(py, "reason"), String::new(), |r| {
                    r.extract::<String>()
                })?;
                ws.close(code, &reason);
                Ok(SEND_DONE)
            }
            "websocket.close" => {
                // Before the accept: the handshake is refused with 403, as the spec says.
                let mut st = self.shared.state();
                if st.closed || st.started {
                    return Ok(SEND_DONE);
                }
                st.started = true;
                st.complete = true;
                st.head = Some(Head {
                    status: 403,
                    headers: Vec::new(),
                });
                drop(st);
                self.shared.waker.wake();
                Ok(SEND_DONE)
            }
            "websocket.send" => {
                if self.shared.state().closed {
                    Ok(SEND_GONE)
                } else {
                    Err(PyRuntimeError::new_err(
                        "websocket.send before websocket.accept",
                    ))
                }
            }
            other => Err(PyRuntimeError::new_err(format!(
                "unexpected ASGI message {other:?} for a websocket: send websocket.accept (or \
                 websocket.close, or websocket.http.response.start), then websocket.send and \
                 websocket.close"
            ))),
        }
    }
}

impl Body {
    /// Hands `websocket.accept` to the server: the 101 goes out, the request ends, the app's
    /// `send(accept)` returns.
    pub(super) fn accept(&mut self, protocol: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> Next<'_> {
        let outcome = match (&self.shared.ws, self.raw) {
            // SAFETY: `raw` is this request's host and io, and this is its `next` on this thread.
            (Some(ws), Some(raw)) => unsafe {
                websocket::accept(raw.host, raw.io, ws, protocol, headers)
            },
            _ => Err(app_abi::raw::WS_ERR_STATE),
        };
        let waiter = {
            let mut st = self.shared.state();
            st.accepting = false;
            match outcome {
                Ok(()) => st.complete = true,
                Err(_) => st.failed = true,
            }
            st.send_waiter.take()
        };
        if let Some(fut) = waiter {
            self.runtime.resume(fut);
        }
        match outcome {
            Ok(()) => Next::End,
            Err(rc) => {
                self.shared.logger.error(&format!(
                    "ASGI app {}: the server refused websocket.accept (code {rc}){}",
                    self.shared.label,
                    if rc == WS_ERR_INVALID {
                        ": the subprotocol must be one the client offered, headers valid"
                    } else {
                        ""
                    }
                ));
                Next::Error
            }
        }
    }
}
