//! `--forwarded-allow-ips`: which peers may tell the server who the client is
//! (`Forwarded`, `X-Forwarded-For`, `X-Forwarded-Proto`; see `forwarded.rs`).
//!
//! A list of comma-separated entries: an address (`10.0.0.7`, `::1`), a CIDR block
//! (`10.0.0.0/8`, `fd00::/8`), `*` for every TCP peer, or `unix` for peers on unix-socket
//! listeners (those have no address to match, so they are trusted only when named: a local
//! proxy such as nginx talking over a socket file). The default, as gunicorn's, is
//! `127.0.0.1,::1`. IPv4 peers seen as IPv4-mapped IPv6 addresses (`::ffff:10.0.0.7`, on a
//! dual-stack listener) match IPv4 entries.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The entry that trusts every TCP peer.
const EVERYONE: &str = "*";
/// The entry that trusts peers on unix-socket listeners.
const UNIX: &str = "unix";

/// An address block: `addr/prefix` (a single address has the full prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    addr: IpAddr,
    prefix: u8,
}

impl Block {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// The first `prefix` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let whole = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`: the same peer, whichever socket family it arrived on.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The peers whose forwarding headers are believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustList {
    everyone: bool,
    unix: bool,
    blocks: Vec<Block>,
}

impl TrustList {
    /// The peer at `ip` (a TCP peer) is trusted.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.everyone || self.blocks.iter().any(|block| block.contains(ip))
    }

    /// Peers on unix-socket listeners are trusted (the `unix` entry).
    pub(crate) fn trusts_unix(&self) -> bool {
        self.unix
    }
}

impl Default for TrustList {
    /// `127.0.0.1,::1`, as gunicorn: a proxy on the same machine.
    fn default() -> Self {
        TrustList {
            everyone: false,
            unix: false,
            blocks: vec![
                Block {
                    addr: [127, 0, 0, 1].into(),
                    prefix: 32,
                },
                Block {
                    addr: std::net::Ipv6Addr::LOCALHOST.into(),
                    prefix: 128,
                },
            ],
        }
    }
}

/// Why a `--forwarded-allow-ips` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustListError(String);

impl fmt::Display for TrustListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (expected comma-separated addresses or CIDR blocks, `*` or `unix`, e.g. 127.0.0.1,10.0.0.0/8,unix)",
            self.0
        )
    }
}

impl std::error::Error for TrustListError {}

impl FromStr for TrustList {
    type Err = TrustListError;

    /// Comma-separated entries; an empty value trusts nobody.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut list = TrustList {
            everyone: false,
            unix: false,
            blocks: Vec::new(),
        };
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == EVERYONE {
                list.everyone = true;
            } else if entry.eq_ignore_ascii_case(UNIX) {
                list.unix = true;
            } else {
                list.blocks.push(parse_block(entry)?);
            }
        }
        Ok(list)
    }
}

fn parse_block(entry: &str) -> Result<Block, TrustListError> {
    let bad = |why: &str| TrustListError(format!("'{entry}' {why}"));
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| bad("is not an IP address or CIDR block"))?;
    let addr = canonical(addr);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| bad(&format!("has a prefix length over {max}")))?,
        Some(_) => return Err(bad("has a prefix length that is not a number")),
    };
    Ok(Block { addr, prefix })
}

impl fmt::Display for TrustList {
    /// The form `from_str` reads (a worker's command line carries it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries: Vec<String> = Vec::new();
        if self.everyone {
            entries.push(EVERYONE.into());
        }
        if self.unix {
            entries.push(UNIX.into());
        }
        for block in &self.blocks {
            let max = if block.addr.is_ipv4() { 32 } else { 128 };
            if block.prefix == max {
                entries.push(block.addr.to_string());
            } else {
                entries.push(format!("{}/{}", block.addr, block.prefix));
            }
        }
        f.write_str(&entries.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> TrustList {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_is_loopback_only() {
        let trust = TrustList::default();
        assert!(trust.trusts(ip("127.0.0.1")));
        assert!(trust.trusts(ip("::1")));
        assert!(trust.trusts(ip("::ffff:127.0.0.1")), "mapped IPv4");
        assert!(!trust.trusts(ip("127.0.0.2")));
        assert!(!trust.trusts(ip("10.0.0.1")));
        assert!(!trust.trusts_unix());
        assert_eq!(trust, list("127.0.0.1,::1"));
        assert_eq!(trust.to_string(), "127.0.0.1,::1");
    }

    #[test]
    fn blocks_match_by_prefix() {
        let trust = list("10.0.0.0/8, 192.168.1.128/25, fd00::/8, 2001:db8::5");
        for yes in [
            "10.1.2.3",
            "192.168.1.200",
            "fdab::1",
            "2001:db8::5",
            "::ffff:10.9.9.9",
        ] {
            assert!(trust.trusts(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "192.168.1.127", "fe00::1", "2001:db8::6", "::1"] {
            assert!(!trust.trusts(ip(no)), "{no}");
        }
        assert_eq!(
            trust.to_string(),
            "10.0.0.0/8,192.168.1.128/25,fd00::/8,2001:db8::5"
        );
        assert_eq!(list(&trust.to_string()), trust, "round trip");
    }

    #[test]
    fn everyone_unix_and_nobody() {
        let star = list("*");
        assert!(star.trusts(ip("203.0.113.9")) && !star.trusts_unix());
        let unix = list("unix");
        assert!(unix.trusts_unix() && !unix.trusts(ip("127.0.0.1")));
        let nobody = list("");
        assert!(!nobody.trusts(ip("127.0.0.1")) && !nobody.trusts_unix());
        assert_eq!(list("unix,*").to_string(), "*,unix");
        let zero = list("0.0.0.0/0");
        assert!(zero.trusts(ip("1.2.3.4")) && !zero.trusts(ip("::2")));
    }

    #[test]
    fn refuses_nonsense_with_the_entry_named() {
        for (bad, why) in [
            ("localhost", "'localhost' is not an IP address"),
            ("10.0.0.0/33", "over 32"),
            ("::/129", "over 128"),
            ("10.0.0.0/", "not a number"),
            ("10.0.0.0/+8", "not a number"),
            ("10.0.0.0/8/8", "not a number"),
            ("1.2.3", "is not an IP address"),
        ] {
            let err = bad.parse::<TrustList>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
