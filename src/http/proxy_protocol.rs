//! The PROXY protocol header (HAProxy's spec, versions 1 and 2), which a proxy sends first on a
//! connection to say whose connection it relays: on a listener with the `proxy` option (or
//! `--proxy-protocol`) every connection must start with one.
//!
//! Parsing is strict and resumable: [`parse`] looks at the bytes received so far and says
//! "need more", "this header, `len` bytes long", or why it is refused. Nothing but a valid
//! header is accepted — no HTTP without it, no v1 line longer than 107 bytes or with anything
//! but single spaces, no address of the wrong family, no port with leading zeros or above
//! 65535, no v2 version other than 2, no v2 TLV that overruns the header — since a server that
//! guesses would let a client that reaches the listener directly choose its own address.
//!
//! `LOCAL` (v2) and `UNKNOWN` (v1) headers, and v2 headers for unix or unspecified families,
//! carry no usable client address: the connection keeps its own. TLVs are skipped.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v1 prefix.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the spec's 107).
const V1_MAX: usize = 107;
/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/transport and the 2-byte length.
const V2_FIXED: usize = 16;
/// Address block sizes of the v2 families (source, destination, ports).
const V2_INET_LEN: usize = 12;
const V2_INET6_LEN: usize = 36;
const V2_UNIX_LEN: usize = 216;

/// A complete PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyHeader {
    /// Its length: the connection's own data (HTTP) starts after it.
    pub(crate) len: usize,
    /// The client's address, if the header gives one.
    pub(crate) source: Option<SocketAddr>,
    /// The address the client connected to, if the header gives one.
    pub(crate) destination: Option<SocketAddr>,
}

/// Why a PROXY header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyError(&'static str);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Looks for a PROXY header at the start of `input`: `Ok(None)` until enough bytes arrived.
pub(crate) fn parse(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    if is_prefix_of(input, V1_PREFIX) || is_prefix_of(input, V2_SIGNATURE) {
        return Ok(None);
    }
    if input.starts_with(V2_SIGNATURE) {
        return parse_v2(input);
    }
    if input.starts_with(V1_PREFIX) {
        return parse_v1(input);
    }
    Err(ProxyError(
        "the connection does not start with a PROXY protocol header (v1 'PROXY ' or the v2 signature)",
    ))
}

/// `input` is shorter than `whole` and agrees with its start.
fn is_prefix_of(input: &[u8], whole: &[u8]) -> bool {
    input.len() < whole.len() && whole.starts_with(input)
}

fn parse_v1(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    // The CR must leave room for its LF within the limit.
    let window = &input[..input.len().min(V1_MAX - 1)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if let Some(bad) = window.iter().find(|&&b| !is_v1_byte(b)) {
            return Err(v1_byte_error(*bad));
        }
        return if input.len() >= V1_MAX - 1 {
            Err(ProxyError("v1 header longer than 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = &window[..cr];
    if let Some(bad) = line.iter().find(|&&b| !is_v1_byte(b)) {
        return Err(v1_byte_error(*bad));
    }
    match input.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        _ => return Err(ProxyError("v1 header not ended by CRLF")),
    }
    let len = cr + 2;
    // Printable ASCII only (checked above), so this is UTF-8.
    let line = std::str::from_utf8(line).map_err(|_| ProxyError("v1 header is not ASCII"))?;
    let mut fields = line.split(' ');
    let _proxy = fields.next();
    let local = ProxyHeader {
        len,
        source: None,
        destination: None,
    };
    let family = fields.next().unwrap_or_default();
    if family == "UNKNOWN" {
        // The spec: the rest of an UNKNOWN line is ignored.
        return Ok(Some(local));
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(ProxyError("v1 protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyError(
            "v1 header needs exactly: PROXY TCP4|TCP6 SRC DST SPORT DPORT, single spaces",
        ));
    };
    let address = |text: &str| -> Result<IpAddr, ProxyError> {
        if v6 {
            text.parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| ProxyError("v1 TCP6 address is not an IPv6 address"))
        } else {
            text.parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| ProxyError("v1 TCP4 address is not an IPv4 address"))
        }
    };
    Ok(Some(ProxyHeader {
        len,
        source: Some(SocketAddr::new(address(src)?, v1_port(sport)?)),
        destination: Some(SocketAddr::new(address(dst)?, v1_port(dport)?)),
    }))
}

/// The bytes a v1 line may hold: printable ASCII and the space.
fn is_v1_byte(b: u8) -> bool {
    (b' '..=b'~').contains(&b)
}

fn v1_byte_error(b: u8) -> ProxyError {
    if b == b'\n' {
        ProxyError("v1 header ended by a bare LF")
    } else {
        ProxyError("v1 header holds a byte that is not printable ASCII")
    }
}

/// A port: 1 to 5 digits, no leading zero (but "0"), at most 65535.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(ProxyError(
            "v1 port is not a decimal number without leading zeros",
        ));
    }
    text.parse()
        .map_err(|_| ProxyError("v1 port is above 65535"))
}

fn parse_v2(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    let Some(fixed) = input.get(..V2_FIXED) else {
        return Ok(None);
    };
    let version_command = fixed[12];
    let family_transport = fixed[13];
    let body_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if version_command >> 4 != 2 {
        return Err(ProxyError("v2 header with a version other than 2"));
    }
    let is_proxy = match version_command & 0x0f {
        0 => false,
        1 => true,
        _ => return Err(ProxyError("v2 command is neither LOCAL nor PROXY")),
    };
    let len = V2_FIXED + body_len;
    let local = ProxyHeader {
        len,
        source: None,
        destination: None,
    };
    if !is_proxy {
        // LOCAL (a health check by the proxy itself): the spec says to discard the block,
        // family included, and use the connection's own addresses.
        return Ok(input.get(..len).map(|_| local));
    }
    let (family, transport) = (family_transport >> 4, family_transport & 0x0f);
    let address_len = match (family, transport) {
        (0, 0) => 0,
        (1..=3, 2) => {
            return Err(ProxyError(
                "v2 header for a datagram (UDP) connection on a stream",
            ))
        }
        (1..=3, 1) => [V2_INET_LEN, V2_INET6_LEN, V2_UNIX_LEN][usize::from(family) - 1],
        _ => return Err(ProxyError("v2 address family or transport is unknown")),
    };
    if body_len < address_len {
        return Err(ProxyError("v2 header too short for its address family"));
    }
    let Some(body) = input.get(V2_FIXED..len) else {
        return Ok(None);
    };
    let (addresses, tlvs) = body.split_at(address_len);
    check_tlvs(tlvs)?;
    let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
    let (source, destination) = match family {
        1 => {
            let ip = |at: usize| {
                IpAddr::from(<[u8; 4]>::try_from(&addresses[at..at + 4]).unwrap_or_default())
            };
            (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            )
        }
        2 => {
            let ip = |at: usize| {
                IpAddr::from(<[u8; 16]>::try_from(&addresses[at..at + 16]).unwrap_or_default())
            };
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )
        }
        // Unix or unspecified: no IP address to give.
        _ => return Ok(Some(local)),
    };
    Ok(Some(ProxyHeader {
        len,
        source: Some(source),
        destination: Some(destination),
    }))
}

/// The TLVs after the addresses (type, 2-byte length, value) must fill the header exactly.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let Some(&[_, high, low]) = tlvs.get(..3) else {
            return Err(ProxyError("v2 TLV truncated"));
        };
        let end = 3 + usize::from(u16::from_be_bytes([high, low]));
        tlvs = tlvs
            .get(end..)
            .ok_or(ProxyError("v2 TLV longer than the header"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn inet4_body() -> Vec<u8> {
        let mut body = vec![192, 0, 2, 1, 10, 0, 0, 1];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body
    }

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    /// Every valid header, with the HTTP that follows: parsed whole, and `None` for every
    /// strict prefix (the resumable contract).
    #[test]
    fn valid_headers_whole_and_at_every_prefix() {
        let mut inet6 = vec![0x20, 0x01, 0x0d, 0xb8];
        inet6.extend_from_slice(&[0; 11]);
        inet6.push(1);
        inet6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        inet6.extend_from_slice(&[0x12, 0x34, 0, 80]);
        let mut with_tlvs = inet4_body();
        with_tlvs.extend_from_slice(&[0x04, 0, 3, b'a', b'b', b'c', 0x01, 0, 0]);
        let cases: Vec<(Vec<u8>, Option<SocketAddr>, Option<SocketAddr>)> = vec![
            (
                b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n".to_vec(),
                addr("192.0.2.1:56324"),
                addr("10.0.0.1:443"),
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 4660 80\r\n".to_vec(),
                addr("[2001:db8::1]:4660"),
                addr("[::1]:80"),
            ),
            (
                b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 0\r\n".to_vec(),
                addr("255.255.255.255:65535"),
                addr("255.255.255.255:0"),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), None, None),
            (
                b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".to_vec(),
                None,
                None,
            ),
            (
                v2(1, 0x11, &inet4_body()),
                addr("192.0.2.1:56324"),
                addr("10.0.0.1:443"),
            ),
            (
                v2(1, 0x21, &inet6),
                addr("[2001:db8::1]:4660"),
                addr("[::1]:80"),
            ),
            (
                v2(1, 0x11, &with_tlvs),
                addr("192.0.2.1:56324"),
                addr("10.0.0.1:443"),
            ),
            (v2(0, 0x00, &[]), None, None),
            (v2(0, 0x11, &inet4_body()), None, None),
            (v2(1, 0x00, &[]), None, None),
            (v2(1, 0x31, &[0; V2_UNIX_LEN]), None, None),
        ];
        for (header, source, destination) in cases {
            let name = String::from_utf8_lossy(&header).into_owned();
            let input = [&header[..], b"GET / HTTP/1.1\r\n"].concat();
            let want = ProxyHeader {
                len: header.len(),
                source,
                destination,
            };
            assert_eq!(parse(&input), Ok(Some(want)), "{name:?}");
            for end in 0..header.len() {
                assert_eq!(parse(&header[..end]), Ok(None), "{name:?} cut at {end}");
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let mut short_inet = inet4_body();
        short_inet.truncate(11);
        let mut bad_tlv = inet4_body();
        bad_tlv.extend_from_slice(&[0x04, 0, 9, b'a']);
        let mut version1 = v2(1, 0x11, &inet4_body());
        version1[12] = 0x11;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "does not start"),
            (b"PROXY\r\n".to_vec(), "does not start"),
            (
                b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
                "does not start",
            ),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n".to_vec(), "bare LF"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX".to_vec(), "CRLF"),
            (b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n".to_vec(), "exactly"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n".to_vec(), "exactly"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n".to_vec(), "exactly"),
            (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(), "TCP4, TCP6"),
            (b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(), "TCP4, TCP6"),
            (b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n".to_vec(), "IPv4"),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n".to_vec(), "IPv6"),
            (b"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n".to_vec(), "IPv4"),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n".to_vec(),
                "above 65535",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n".to_vec(),
                "leading zeros",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n".to_vec(),
                "leading zeros",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n".to_vec(),
                "leading zeros",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\x00\r\n".to_vec(),
                "printable",
            ),
            (
                [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100]].concat(),
                "longer than 107",
            ),
            (version1, "version other than 2"),
            (v2(2, 0x11, &inet4_body()), "neither LOCAL nor PROXY"),
            (v2(1, 0x12, &inet4_body()), "datagram"),
            (v2(1, 0x41, &inet4_body()), "unknown"),
            (v2(1, 0x13, &inet4_body()), "unknown"),
            (v2(1, 0x11, &short_inet), "too short"),
            (v2(1, 0x21, &inet4_body()), "too short"),
            (v2(1, 0x11, &bad_tlv), "TLV longer"),
            (
                v2(1, 0x11, &[inet4_body(), vec![0x04, 0]].concat()),
                "TLV truncated",
            ),
        ];
        for (input, why) in cases {
            let name = String::from_utf8_lossy(&input).into_owned();
            match parse(&input) {
                Err(e) => assert!(e.to_string().contains(why), "{name:?}: {e}, want {why:?}"),
                Ok(got) => panic!("{name:?} accepted: {got:?}"),
            }
        }
    }
}
