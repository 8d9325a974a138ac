//! The access-log line at the end of an upgraded connection (ABI 1.2): the request's line again
//! (status 101), with the bytes the app sent over the connection, the connection's lifetime as
//! its duration, and its close code (` close=CODE` after a text line, `"close_code"` in JSON).
//! The request's environ is gone by then, so what the line needs is copied at the upgrade —
//! only when an access log is on.

use std::time::Duration;

use super::access::get as access_log;
use super::record::{AccessRecord, Lookup};
use crate::listen::PeerHost;

/// What the close line needs of the request that upgraded.
pub(crate) struct UpgradeSeed {
    peer: PeerHost,
    environ: Vec<Var>,
}

/// One environ variable, copied.
type Var = (Box<[u8]>, Box<[u8]>);

impl Lookup for UpgradeSeed {
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.environ
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| &**v)
    }

    fn for_each<'s>(&'s self, f: &mut dyn FnMut(&[u8], &'s [u8])) {
        for (name, value) in &self.environ {
            f(name, value);
        }
    }
}

impl UpgradeSeed {
    /// The seed of a request that upgrades, if the access log is on.
    pub(crate) fn new(peer: PeerHost, environ: &dyn Lookup) -> Option<Box<UpgradeSeed>> {
        access_log()?;
        let mut copied = Vec::new();
        environ.for_each(&mut |name, value| copied.push((name.into(), value.into())));
        Some(Box::new(UpgradeSeed {
            peer,
            environ: copied,
        }))
    }

    /// The connection ended after `lifetime`, the app having sent `bytes_out`, with `code`.
    pub(crate) fn closed(&self, lifetime: Duration, bytes_out: u64, code: u16) {
        if let Some(log) = access_log() {
            let record = AccessRecord {
                peer: self.peer,
                environ: Some(self),
                response: None,
                status: 101,
                body_bytes: bytes_out,
                elapsed: Some(lifetime),
            };
            log.write_closed(&record, code);
        }
    }
}
