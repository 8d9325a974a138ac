//! What an upgrade request offers (RFC 9110 §7.8) and whether it is a valid WebSocket opening
//! handshake (RFC 6455 §4.2.1): read once from the head of a request that has an `Upgrade` field
//! named in `Connection` (`RequestHead::upgrade`), so ordinary requests pay nothing. The app's
//! `upgrade` and `websocket_accept` are checked against it (`app/exchange.rs`); the server's
//! WebSocket code re-exports it as `server::ws::handshake`.

use super::grammar::trim_ows;

/// The `Sec-WebSocket-Version` this server speaks (RFC 6455 §4.4).
pub(crate) const WEBSOCKET_VERSION: &[u8] = b"13";

/// What an upgrade request offers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct UpgradeOffer {
    /// The client's `Upgrade` field values, joined with `, `.
    protocols: Vec<u8>,
    /// `Some(Ok)`: a valid WebSocket handshake; `Some(Err(status))`: the client asked for a
    /// WebSocket but the handshake is invalid (400, or 426 for another version); `None`: the
    /// client did not ask for a WebSocket.
    pub(crate) websocket: Option<Result<WebSocketOffer, u16>>,
}

/// A valid WebSocket opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebSocketOffer {
    /// `Sec-WebSocket-Accept` for the client's key.
    pub(crate) accept: String,
    /// The client's `Sec-WebSocket-Protocol` values, joined with `, ` (may be empty).
    subprotocols: Vec<u8>,
}

impl UpgradeOffer {
    /// The offer of an upgrade request whose method is `method` and fields `headers`.
    pub(crate) fn read<'h>(
        method: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> UpgradeOffer {
        let mut protocols = Vec::new();
        let (mut key, mut version, mut subprotocols) = (None, None, Vec::new());
        let mut keys = 0;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case(b"upgrade") {
                join(&mut protocols, value);
            } else if name.eq_ignore_ascii_case(b"sec-websocket-key") {
                keys += 1;
                key = Some(value);
            } else if name.eq_ignore_ascii_case(b"sec-websocket-version") {
                version = Some(value);
            } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
                join(&mut subprotocols, value);
            }
        }
        let websocket = tokens(&protocols)
            .any(|p| p.eq_ignore_ascii_case(b"websocket"))
            .then(|| {
                if method != b"GET" || keys != 1 || !key.is_some_and(valid_key) {
                    return Err(400);
                }
                if version != Some(WEBSOCKET_VERSION) {
                    return Err(426);
                }
                let key = key.unwrap_or_default();
                Ok(WebSocketOffer {
                    accept: tungstenite::handshake::derive_accept_key(key),
                    subprotocols,
                })
            });
        UpgradeOffer {
            protocols,
            websocket,
        }
    }

    /// Whether the client offered `protocol` (`Upgrade: name[/version]`, compared without case).
    pub(crate) fn offers(&self, protocol: &[u8]) -> bool {
        let protocol = trim_ows(protocol);
        !protocol.is_empty() && tokens(&self.protocols).any(|p| p.eq_ignore_ascii_case(protocol))
    }

    /// The valid WebSocket handshake, if the request is one.
    pub(crate) fn websocket(&self) -> Option<&WebSocketOffer> {
        self.websocket.as_ref()?.as_ref().ok()
    }
}

impl WebSocketOffer {
    /// Whether the client offered subprotocol `name` (exact, as RFC 6455 §4.1 compares them).
    pub(crate) fn offers_subprotocol(&self, name: &[u8]) -> bool {
        tokens(&self.subprotocols).any(|p| p == name)
    }
}

/// Appends a field value to a comma-separated list.
fn join(list: &mut Vec<u8>, value: &[u8]) {
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(value);
}

/// The non-empty elements of a comma-separated list, trimmed.
fn tokens(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// A `Sec-WebSocket-Key`: the base64 of 16 bytes (24 characters, two of them `=` padding).
fn valid_key(key: &[u8]) -> bool {
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(base64) && &key[22..] == b"=="
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(method: &str, headers: &[(&str, &str)]) -> UpgradeOffer {
        UpgradeOffer::read(
            method.as_bytes(),
            headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        )
    }

    const KEY: (&str, &str) = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    const V13: (&str, &str) = ("Sec-WebSocket-Version", "13");

    #[test]
    fn a_valid_handshake_gets_the_rfc_accept_key() {
        let o = offer("GET", &[("Upgrade", "websocket"), KEY, V13]);
        // RFC 6455 §1.3's example.
        assert_eq!(
            o.websocket().unwrap().accept,
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(o.offers(b"WebSocket"));
        assert!(!o.offers(b"h2c"));
    }

    #[test]
    fn invalid_handshakes_say_400_or_426() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16);
        let cases: &[Case<'_>] = &[
            ("POST", &[("Upgrade", "websocket"), KEY, V13], 400),
            ("GET", &[("Upgrade", "websocket"), V13], 400),
            (
                "GET",
                &[
                    ("Upgrade", "websocket"),
                    ("Sec-WebSocket-Key", "short"),
                    V13,
                ],
                400,
            ),
            ("GET", &[("Upgrade", "websocket"), KEY, KEY, V13], 400),
            (
                "GET",
                &[
                    ("Upgrade", "websocket"),
                    KEY,
                    ("Sec-WebSocket-Version", "8"),
                ],
                426,
            ),
            ("GET", &[("Upgrade", "websocket"), KEY], 426),
        ];
        for (method, headers, status) in cases {
            assert_eq!(
                offer(method, headers).websocket,
                Some(Err(*status)),
                "{method} {headers:?}"
            );
        }
        assert_eq!(offer("GET", &[("Upgrade", "echo")]).websocket, None);
    }

    #[test]
    fn protocols_and_subprotocols_are_lists() {
        let o = offer(
            "GET",
            &[
                ("Upgrade", "h2c, websocket"),
                KEY,
                V13,
                ("Sec-WebSocket-Protocol", "chat, superchat"),
                ("Sec-WebSocket-Protocol", "v2"),
            ],
        );
        assert!(o.offers(b"h2c") && o.offers(b"websocket"));
        let ws = o.websocket().unwrap();
        assert!(ws.offers_subprotocol(b"superchat") && ws.offers_subprotocol(b"v2"));
        assert!(!ws.offers_subprotocol(b"Chat"));
    }
}
