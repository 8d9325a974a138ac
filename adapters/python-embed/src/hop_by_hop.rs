//! Hop-by-hop headers an app sets (PEP 3333 forbids them, ASGI servers drop them; RFC 9110 §7.6.1
//! makes them the connection's): `Connection`, `Keep-Alive`, `Proxy-Connection`,
//! `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`. The server would refuse the whole head (a 500
//! for a header the client never needed), so they are dropped, as gunicorn and uvicorn do, with one
//! warning per header name in this worker.

use app_abi::Logger;
use std::collections::HashSet;
use std::sync::Mutex;

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Lower-case names already warned about (a worker serves one app).
static WARNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// Removes the hop-by-hop headers from `headers`; true if one was `Connection` with the `close`
/// option. `close_honoured` says whether the caller passes that on (`WS_RESPONSE_CLOSE`), for the
/// warning's wording.
pub fn drop_from(
    headers: &mut Vec<(Vec<u8>, Vec<u8>)>,
    logger: Logger,
    close_honoured: bool,
) -> bool {
    let mut close = false;
    headers.retain(|(name, value)| {
        let Some(known) = HOP_BY_HOP
            .iter()
            .find(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        else {
            return true;
        };
        if *known == "connection" {
            close |= value
                .split(|&b| b == b',')
                .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        warn_once(known, name, logger, close_honoured);
        false
    });
    close
}

fn warn_once(known: &'static str, name: &[u8], logger: Logger, close_honoured: bool) {
    let first = WARNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(known);
    if first {
        let honoured = if known == "connection" && close_honoured {
            " (Connection: close is honoured: the server closes after the response)"
        } else {
            ""
        };
        logger.warn(&format!(
            "the app set the hop-by-hop header {:?}, which belongs to the server: dropped{honoured}; \
             further ones are dropped silently",
            String::from_utf8_lossy(name)
        ));
    }
}
